#!/usr/bin/env python3
"""The upstream app of bench/run.sh's proxy rows: a small, fast, dependency-free HTTP/1.1
server over raw sockets, one thread per connection, keep-alive, no logging. The same app
runs behind ferry and behind nginx.

Usage: app.py --port N --file PATH [--accel-to URI]
  Listens on 127.0.0.1:N (0 = any free port), prints "port N" and then "ready".

  GET /proxied  200 with the bytes of PATH as the body (Content-Length; sent with
                sendfile(2), so the app itself spends as little CPU as possible on it)
  GET /accel    200 with "X-Accel-Redirect: URI" (default /protected/f1m.bin) and an empty
                body (Content-Length: 0): the proxy serves the file itself
  anything else 404 (with a short body)

HEAD gets the same head without a body. A request body (Content-Length) is read and
discarded; chunked request bodies are not supported (400, then close). The connection is
closed after a response when the client asked for it (Connection: close, or HTTP/1.0
without keep-alive).
"""

import argparse
import os
import socket
import sys
import threading

MAX_HEAD = 64 * 1024


def serve(sock, fd, size, routes):
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
            close = version == b"HTTP/1.0"
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                value = value.strip().lower()
                if name == b"connection":
                    if value == b"close":
                        close = True
                    elif value == b"keep-alive":
                        close = False
                elif name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    return
            while len(buf) < length:  # discard a request body
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
            buf = buf[length:]

            path = target.split(b"?", 1)[0]
            head_only = method == b"HEAD"
            conn_hdr = b"Connection: close\r\n" if close else b""
            if path == b"/proxied":
                sock.sendall(routes[b"/proxied"] + conn_hdr + b"\r\n", 0 if head_only else socket.MSG_MORE)
                if not head_only:
                    off = 0
                    while off < size:
                        n = os.sendfile(sock.fileno(), fd, off, size - off)
                        if n == 0:
                            return
                        off += n
            elif path == b"/accel":
                sock.sendall(routes[b"/accel"] + conn_hdr + b"\r\n")
            else:
                body = b"" if head_only else b"not found\n"
                sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n"
                             + conn_hdr + b"\r\n" + body)
            if close:
                return
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            sock.close()
        except OSError:
            pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--file", required=True)
    p.add_argument("--accel-to", default="/protected/f1m.bin")
    args = p.parse_args()
    fd = os.open(args.file, os.O_RDONLY)
    size = os.fstat(fd).st_size
    routes = {
        b"/proxied": b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Length: %d\r\n" % size,
        b"/accel": b"HTTP/1.1 200 OK\r\nX-Accel-Redirect: " + args.accel_to.encode() +
                   b"\r\nContent-Length: 0\r\n",
    }
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", args.port))
    srv.listen(256)
    print("port %d" % srv.getsockname()[1], flush=True)
    print("ready", flush=True)
    while True:
        sock, _ = srv.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(sock, fd, size, routes), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
