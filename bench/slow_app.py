#!/usr/bin/env python3
"""The upstream app of bench/slow.sh: a small HTTP/1.1 server over raw sockets, one thread per
connection, keep-alive, that writes what it does to an event log, so the benchmark can tell
when the app was held by a client behind the proxy and when it was free.

Usage: slow_app.py --log PATH --file NAME=PATH [--file NAME=PATH ...]
  Listens on 127.0.0.1 on a port the kernel picks, prints "port N" and then "ready".

  GET /f/NAME?id=ID   200 with the bytes of that file (Content-Length), sent with sendfile(2)
  POST /up?id=ID      reads the Content-Length body whole, answers 200 with the hex SHA-256 of it
  anything else       404

Event log, one line per event, times from CLOCK_MONOTONIC (the same clock in every process,
so the clients' times compare with these):
  open T CONN                  a connection from the proxy was accepted
  close T CONN                 it was closed
  head T CONN METHOD ID        a request head arrived (ID from the query, "-" without one)
  wstart T CONN ID BYTES       the app starts writing a GET body
  wdone T CONN ID BYTES        its last byte went into the socket (the write returned)
  body T CONN ID BYTES         a POST body was read whole
"""

import argparse
import hashlib
import os
import socket
import sys
import threading
import time

MAX_HEAD = 64 * 1024


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def write(self, event, *fields):
        with self.lock:
            self.f.write("%s %.6f %s\n" % (event, time.monotonic(), " ".join(str(x) for x in fields)))


def query_id(target):
    _, _, q = target.partition(b"?")
    for kv in q.split(b"&"):
        k, _, v = kv.partition(b"=")
        if k == b"id" and v:
            return v.decode("ascii", "replace")
    return "-"


def serve(sock, conn, files, log):
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                if len(buf) > MAX_HEAD:
                    return
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ")
            if len(parts) != 3:
                sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            method, target, version = parts
            rid = query_id(target)
            log.write("head", conn, method.decode(), rid)
            close = version == b"HTTP/1.0"
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                value = value.strip().lower()
                if name == b"connection":
                    close = value == b"close" or (close and value != b"keep-alive")
                elif name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    return
            h = hashlib.sha256()
            got = min(len(buf), length)
            h.update(buf[:got])
            buf = buf[got:]
            while got < length:
                data = sock.recv(min(1 << 20, length - got))
                if not data:
                    return
                h.update(data)
                got += len(data)
            if method == b"POST":
                log.write("body", conn, rid, got)
            conn_hdr = b"Connection: close\r\n" if close else b""
            path = target.split(b"?", 1)[0]
            if method == b"GET" and path.startswith(b"/f/") and path[3:] in files:
                fd, size = files[path[3:]]
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Content-Length: %d\r\n%s\r\n" % (size, conn_hdr), socket.MSG_MORE)
                log.write("wstart", conn, rid, size)
                off = 0
                while off < size:
                    n = os.sendfile(sock.fileno(), fd, off, size - off)
                    if n == 0:
                        return
                    off += n
                log.write("wdone", conn, rid, size)
            elif method == b"POST" and path == b"/up":
                body = h.hexdigest().encode() + b"\n"
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s"
                             % (len(body), conn_hdr, body))
            else:
                sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n"
                             + conn_hdr + b"\r\nnot found\n")
            if close:
                return
    except (ConnectionError, OSError):
        pass
    finally:
        log.write("close", conn)
        try:
            sock.close()
        except OSError:
            pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--log", required=True)
    p.add_argument("--file", action="append", default=[], help="NAME=PATH, served as /f/NAME")
    args = p.parse_args()
    files = {}
    for spec in args.file:
        name, _, path = spec.partition("=")
        fd = os.open(path, os.O_RDONLY)
        files[name.encode()] = (fd, os.fstat(fd).st_size)
    log = Log(args.log)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(512)
    print("port %d" % srv.getsockname()[1], flush=True)
    print("ready", flush=True)
    conn = 0
    while True:
        sock, _ = srv.accept()
        conn += 1
        log.write("open", conn)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(sock, conn, files, log), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
