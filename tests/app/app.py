#!/usr/bin/env python3
"""The application behind ferry in the integration tests: a small, dependency-free HTTP/1.1
server over raw sockets (one thread per connection), so a test can make it misbehave in
exactly the way it needs (malformed heads, early hints, close-delimited bodies, closing
mid-body, hanging, switching protocols and echoing bytes).

Usage: app.py --log FILE [--unix PATH] [--backlog N] [--workers N] [--delay-ms N] [--reset]
  Listens on 127.0.0.1:0 (prints "port N") or on the unix socket PATH (prints "unix PATH"),
  then "ready". --backlog sets the listen backlog (default 128). --workers N serves like a
  pre-fork server with N sync workers: N threads each accept one connection and serve it to
  its end before accepting the next (default: a thread per connection). --delay-ms makes
  every answer wait that long (a slow app). --reset answers every request by resetting the
  connection (RST, no response), after logging it. Every request it reads is logged to FILE as one JSON line:
    {"kind":"request","conn":ID,"peer_port":P,"seq":K,"method":..,"target":..,"version":..,
     "headers":[[name,value],...],"body_len":N,"body_sha256":HEX,"body_complete":bool}
  Connection events are logged as {"kind":"event","event":NAME,"conn":ID,...}:
    "open" (with "active": the connections being served, this one included), "eof" (the
    peer closed; with "received" = bytes read after the head for /ws and
    /hang), "closed" (the app closed it), "dropped" (a request head was read and the
    connection closed without an answer, see /idle-close?mode=drop-next), "bad_request".

The behaviour is chosen by the request path (query arguments in brackets):
  /echo                      200, text body "ok <method> <body_len> <sha256>"
  /file [path, mode=length|chunked|close|http10, chunk=N, status, h=Name:Value ...]
                             the bytes of the file at `path`: with Content-Length (length),
                             chunked with chunks of `chunk` bytes + an extension + a trailer
                             (chunked), or as an HTTP/1.0 response delimited by closing the
                             connection (close). A HEAD gets the same head and no body.
                             With split=1 (length, chunked) the head is over 16 KiB and
                             leaves in one write with the first 1000 body bytes.
                             Once a whole length-mode or chunked body is written, the event
                             "sent" (with target and bytes) is logged.
  /status [code, h=...]      that status with no body (204, 304: no Content-Length either)
  /early-hints [path]        "103 Early Hints" with a Link header, then 200 with a body
  /accel [to, h=..., body]   200 with X-Accel-Redirect: `to` and a small app body
  /sendfile [path, cl, body, h=...]  200 with X-Sendfile: `path` and the app's own body
                             with Content-Length `cl` (the body is padded/cut to it)
  /raw [b64, close=1]        writes the base64-decoded bytes verbatim, then closes
  /hang                      reads the request, never answers; logs "eof" when ferry closes
  /midclose [announce, send] Content-Length `announce`, sends `send` bytes, closes
  /bighead [n]               200 with one header `n` bytes long
  /stall [announce, send]    like /midclose, but then waits (logging "eof" when ferry closes)
  /idle-close [mode]         200 "idle-close", keep-alive; then the app closes the connection
                             (mode=close-now, logged "closed"), or (mode=drop-next) closes it
                             as soon as the next request head arrives on it, without answering
                             and without logging that request (an idle close that raced a
                             request)
  .../whoami                 200, the app's own address as body ("127.0.0.1:PORT" or
                             "unix:PATH"), keep-alive (any path ending in /whoami)
  /ws                        101 Switching Protocols (websocket), then echoes every byte
                             until EOF; logs "eof" with the number of bytes echoed
  /cacheable/... [path, delay_ms, fail_if, status, echo=Name ..., h=..., h304=...]
                             for the cache tests (any path under /cacheable/): the bytes of the
                             file at `path` with Content-Length, an ETag ("size-mtime_ns" in
                             hex) and Last-Modified of that file, and the h= headers (which
                             set Cache-Control, Expires, Vary, ...); 304 Not Modified when
                             If-None-Match has that ETag (or, without If-None-Match,
                             If-Modified-Since is at or after the file's mtime), with the
                             h304=Name:Value headers after the h= ones (only on a 304). Waits
                             `delay_ms` before answering; answers 503 while the file `fail_if`
                             exists. `status` (default 200) is the status of a full answer
                             (a 301 with h=Location:... say); each echo=Name adds
                             `X-Echo-Name: <the request's Name value, or "none">`, so what the
                             app was asked shows in what is stored.
"""

import argparse
import base64
import email.utils
import hashlib
import itertools
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse

LOG_LOCK = threading.Lock()
ACTIVE_LOCK = threading.Lock()
ACTIVE = 0
OPTIONS = None
ADDRESS = ""
LOG_FILE = None
CONN_IDS = itertools.count(1)
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD = 64 * 1024


def log(record):
    line = json.dumps(record, separators=(",", ":")) + "\n"
    with LOG_LOCK:
        LOG_FILE.write(line)
        LOG_FILE.flush()


class Closed(Exception):
    """The peer closed the connection."""


class BadRequest(Exception):
    pass


class Conn:
    def __init__(self, sock, conn_id, peer_port):
        self.sock = sock
        self.id = conn_id
        self.peer_port = peer_port
        self.buf = b""
        self.drop_next = False

    def event(self, name, **extra):
        rec = {"kind": "event", "event": name, "conn": self.id, "peer_port": self.peer_port}
        rec.update(extra)
        log(rec)

    def fill(self):
        data = self.sock.recv(256 * 1024)
        if not data:
            raise Closed()
        self.buf += data

    def read_head(self):
        """Returns the head bytes (without the final CRLFCRLF), or None on a clean EOF."""
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > MAX_HEAD:
                raise BadRequest("head too large")
            try:
                self.fill()
            except Closed:
                if self.buf:
                    raise BadRequest("EOF inside head")
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head

    def read_exact(self, n, sink):
        """Feeds exactly n bytes to sink(bytes); returns False on EOF before that."""
        while n > 0:
            if not self.buf:
                try:
                    self.fill()
                except Closed:
                    return False
            take = self.buf[:n]
            self.buf = self.buf[len(take):]
            sink(take)
            n -= len(take)
        return True

    def read_line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 64 * 1024:
                raise BadRequest("line too long")
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_chunked(self, sink):
        """Decodes a chunked body; returns False when the peer closed before its end."""
        try:
            while True:
                line = self.read_line()
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise BadRequest("bad chunk size %r" % size_text)
                if size == 0:
                    while self.read_line() != b"":
                        pass
                    return True
                if not self.read_exact(size, sink):
                    return False
                if self.read_line() != b"":
                    raise BadRequest("chunk data not followed by CRLF")
        except Closed:
            return False

    def send(self, data):
        self.sock.sendall(data)


def parse_head(head):
    lines = head.split(b"\r\n")
    request_line = lines[0].decode("latin-1")
    parts = request_line.split(" ")
    if len(parts) != 3:
        raise BadRequest("bad request line %r" % request_line)
    method, target, version = parts
    headers = []
    for raw in lines[1:]:
        text = raw.decode("latin-1")
        if ":" not in text:
            raise BadRequest("bad header line %r" % text)
        name, value = text.split(":", 1)
        headers.append([name, value.strip(" \t")])
    return method, target, version, headers


def header(headers, name):
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


def response(status, reason, headers, body=b"", version="HTTP/1.1", length=True):
    out = ["%s %d %s\r\n" % (version, status, reason)]
    for k, v in headers:
        out.append("%s: %s\r\n" % (k, v))
    if length:
        out.append("Content-Length: %d\r\n" % len(body))
    out.append("\r\n")
    return "".join(out).encode("latin-1") + body


def extra_headers(query):
    """h=Name:Value query arguments, in order."""
    out = []
    for item in query.get("h", []):
        name, value = item.split(":", 1)
        out.append((name, value))
    return out


def send_file_bytes(conn, path):
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size:
            conn.sock.sendfile(f, 0, size)


def handle(conn, method, target, version, headers, body_info):
    """Answers one request. Returns False when the connection must be closed afterwards."""
    path, _, qs = target.partition("?")
    query = urllib.parse.parse_qs(qs, keep_blank_values=True)
    arg = lambda name, default=None: query.get(name, [default])[0]
    head_only = method == "HEAD"
    if OPTIONS.reset:
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False
    if OPTIONS.delay_ms:
        time.sleep(OPTIONS.delay_ms / 1000.0)

    if path.endswith("/whoami"):
        body = ADDRESS.encode()
        conn.send(response(200, "OK", [("Content-Type", "text/plain")], body))
        return True

    if path == "/echo":
        body = ("ok %s %d %s" % (method, body_info[0], body_info[1])).encode()
        conn.send(response(200, "OK", [("Content-Type", "text/plain")] + extra_headers(query), body))
        return True

    if path == "/file" and arg("split") == "1" and not head_only:
        # A head larger than ferry's 16 KiB peek (a 20 KB X-Pad header), sent in one write
        # together with the first 1000 body bytes, then the rest: ferry reads body bytes
        # together with the head (its "leftover" path) instead of finding the whole body in
        # the socket.
        mode = arg("mode", "length")
        with open(arg("path"), "rb") as f:
            data = f.read()
        pad = [("X-Pad", "p" * 20000), ("X-App", "relayed")]
        if mode == "length":
            head = response(200, "OK", pad + [("Content-Length", str(len(data)))], length=False)
            body = data
        else:
            head = response(200, "OK", pad + [("Transfer-Encoding", "chunked")], length=False)
            chunk = int(arg("chunk", "65536"))
            body = b"".join(b"%x\r\n" % len(data[i:i + chunk]) + data[i:i + chunk] + b"\r\n"
                            for i in range(0, len(data), chunk)) + b"0\r\n\r\n"
        whole = head + body
        conn.send(whole[:len(head) + 1000])
        conn.send(whole[len(head) + 1000:])
        return True

    if path == "/file":
        file_path = arg("path")
        size = os.stat(file_path).st_size
        mode = arg("mode", "length")
        status = int(arg("status", "200"))
        extra = [("X-App", "relayed")] + extra_headers(query)
        if mode == "length":
            conn.send(response(status, "OK", extra + [("Content-Length", str(size))], length=False))
            if not head_only:
                send_file_bytes(conn, file_path)
                conn.event("sent", target=target, bytes=size)
            return True
        if mode == "chunked":
            chunk = int(arg("chunk", "65536"))
            conn.send(response(status, "OK", extra + [("Transfer-Encoding", "chunked"), ("Trailer", "X-Trailer")], length=False))
            if head_only:
                return True
            with open(file_path, "rb") as f:
                n = 0
                while True:
                    data = f.read(chunk)
                    if not data:
                        break
                    # every other chunk carries an extension, which ferry must not pass on
                    ext = ";ext=%d" % n if n % 2 else ""
                    conn.send(b"%x%s\r\n" % (len(data), ext.encode()) + data + b"\r\n")
                    n += 1
            conn.send(b"0\r\nX-Trailer: t\r\n\r\n")
            conn.event("sent", target=target, bytes=size)
            return True
        if mode == "close":
            conn.send(response(status, "OK", extra, version="HTTP/1.0", length=False))
            if not head_only:
                send_file_bytes(conn, file_path)
            return False
        raise BadRequest("unknown mode %r" % mode)

    if path.startswith("/cacheable/"):
        delay = int(arg("delay_ms", "0"))
        if delay:
            time.sleep(delay / 1000.0)
        fail_if = arg("fail_if")
        if fail_if and os.path.exists(fail_if):
            conn.send(response(503, "Service Unavailable", [("Content-Type", "text/plain")], b"down"))
            return True
        file_path = arg("path")
        st = os.stat(file_path)
        etag = '"%x-%x"' % (st.st_size, st.st_mtime_ns)
        modified = email.utils.formatdate(st.st_mtime, usegmt=True)
        validators = [("ETag", etag), ("Last-Modified", modified)]
        inm = header(headers, "If-None-Match")
        ims = header(headers, "If-Modified-Since")
        not_modified = False
        if inm is not None:
            not_modified = etag in [t.strip() for t in inm.split(",")] or inm.strip() == "*"
        elif ims is not None:
            try:
                since = email.utils.parsedate_to_datetime(ims).timestamp()
                not_modified = int(st.st_mtime) <= since
            except (TypeError, ValueError):
                pass
        echoed = [("X-Echo-" + name, header(headers, name) or "none") for name in query.get("echo", [])]
        extra = validators + echoed + extra_headers(query)
        if not_modified:
            only_304 = [tuple(item.split(":", 1)) for item in query.get("h304", [])]
            conn.send(response(304, "Not Modified", extra + only_304, length=False))
            return True
        status = int(arg("status", "200"))
        conn.send(response(status, "OK", extra + [("Content-Length", str(st.st_size))], length=False))
        if not head_only:
            send_file_bytes(conn, file_path)
        return True

    if path == "/status":
        code = int(arg("code", "204"))
        reasons = {204: "No Content", 304: "Not Modified"}
        conn.send(response(code, reasons.get(code, "Status"), extra_headers(query), length=False))
        return True

    if path == "/early-hints":
        conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n")
        conn.send(response(200, "OK", [("Content-Type", "text/plain")], b"after early hints"))
        return True

    if path == "/accel":
        hdrs = [("X-Accel-Redirect", arg("to"))] + extra_headers(query)
        body = arg("body", "app body that the client must never see").encode()
        conn.send(response(200, "OK", hdrs, b"" if head_only else body, length=not head_only))
        return True

    if path == "/sendfile":
        body = arg("body", "app-body").encode()
        cl = int(arg("cl", str(len(body))))
        body = (body * (cl // max(len(body), 1) + 1))[:cl]
        hdrs = [("X-Sendfile", arg("path"))] + extra_headers(query) + [("Content-Length", str(cl))]
        conn.send(response(200, "OK", hdrs, b"" if head_only else body, length=False))
        return True

    if path == "/raw":
        conn.send(base64.b64decode(arg("b64")))
        return arg("close", "1") != "1"

    if path == "/hang":
        received = 0
        try:
            while True:
                data = conn.sock.recv(65536)
                if not data:
                    break
                received += len(data)
        except OSError:
            pass
        conn.event("eof", received=received, target=target)
        return False

    if path == "/midclose":
        announce = int(arg("announce"))
        send = int(arg("send"))
        conn.send(response(200, "OK", [("Content-Length", str(announce))], length=False))
        conn.send(b"m" * send)
        return False

    if path == "/bighead":
        conn.send(response(200, "OK", [("X-Big", "b" * int(arg("n")))], b""))
        return True

    if path == "/stall":
        announce = int(arg("announce"))
        send = int(arg("send"))
        conn.send(response(200, "OK", [("Content-Length", str(announce))], length=False))
        conn.send(b"s" * send)
        received = 0
        try:
            while True:
                data = conn.sock.recv(65536)
                if not data:
                    break
                received += len(data)
        except OSError:
            pass
        conn.event("eof", received=received, target=target)
        return False

    if path == "/idle-close":
        mode = arg("mode", "close-now")
        conn.send(response(200, "OK", [("Content-Type", "text/plain")], b"idle-close"))
        if mode == "close-now":
            return False
        conn.drop_next = True
        return True

    if path == "/ws":
        key = header(headers, "Sec-WebSocket-Key") or ""
        accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        conn.send(response(101, "Switching Protocols", [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept),
            # The ID ferry sent, and one of the app's own that ferry must not pass on.
            ("X-Seen-Request-Id", header(headers, "X-Request-Id") or "-"),
            ("X-Request-Id", "app-own"),
        ], length=False))
        echoed = 0
        if conn.buf:
            conn.send(conn.buf)
            echoed += len(conn.buf)
            conn.buf = b""
        try:
            while True:
                data = conn.sock.recv(256 * 1024)
                if not data:
                    break
                conn.send(data)
                echoed += len(data)
        except OSError as e:
            conn.event("ws_error", error=str(e))
        conn.event("eof", received=echoed, target=target)
        return False

    conn.send(response(404, "Not Found", [("Content-Type", "text/plain")], b"no such app route\n"))
    return True


def serve_conn(sock, peer_port):
    global ACTIVE
    with ACTIVE_LOCK:
        ACTIVE += 1
        active = ACTIVE
    try:
        serve_counted(sock, peer_port, active)
    finally:
        with ACTIVE_LOCK:
            ACTIVE -= 1


def serve_counted(sock, peer_port, active):
    conn = Conn(sock, next(CONN_IDS), peer_port)
    conn.event("open", active=active)
    seq = 0
    try:
        while True:
            head = conn.read_head()
            if head is None:
                conn.event("eof")
                return
            if conn.drop_next:
                conn.event("dropped", head=head.decode("latin-1"))
                return
            method, target, version, headers = parse_head(head)
            digest = hashlib.sha256()
            length = 0

            def sink(data):
                nonlocal length
                digest.update(data)
                length += len(data)

            te = header(headers, "Transfer-Encoding")
            cl = header(headers, "Content-Length")
            if te is not None and te.lower() == "chunked":
                complete = conn.read_chunked(sink)
            elif te is not None:
                raise BadRequest("unexpected transfer-encoding %r" % te)
            elif cl is not None:
                complete = conn.read_exact(int(cl), sink)
            else:
                complete = True
            seq += 1
            log({
                "kind": "request", "conn": conn.id, "peer_port": conn.peer_port, "seq": seq,
                "method": method, "target": target, "version": version, "headers": headers,
                "body_len": length, "body_sha256": digest.hexdigest(), "body_complete": complete,
            })
            if not complete:
                conn.event("eof")
                return
            if not handle(conn, method, target, version, headers, (length, digest.hexdigest())):
                conn.event("closed")
                return
    except BadRequest as e:
        conn.event("bad_request", error=str(e))
    except (Closed, ConnectionError) as e:
        conn.event("eof", error=str(e))
    except Exception as e:  # a bug in the app: make it visible in the log
        conn.event("app_error", error="%s: %s" % (type(e).__name__, e))
    finally:
        try:
            sock.close()
        except OSError:
            pass


def accept(srv):
    sock, peer = srv.accept()
    if srv.family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, peer[1]
    return sock, 0


def sync_worker(srv):
    """One pre-fork style worker: one connection at a time, to its end."""
    while True:
        serve_conn(*accept(srv))


def main():
    global LOG_FILE, OPTIONS, ADDRESS
    p = argparse.ArgumentParser()
    p.add_argument("--log", required=True)
    p.add_argument("--unix")
    p.add_argument("--backlog", type=int, default=128)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--delay-ms", type=int, default=0)
    p.add_argument("--reset", action="store_true")
    args = p.parse_args()
    OPTIONS = args
    LOG_FILE = open(args.log, "a", encoding="utf-8")
    if args.unix:
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(args.unix)
        srv.listen(args.backlog)
        ADDRESS = "unix:%s" % args.unix
        print("unix %s" % args.unix, flush=True)
    else:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", 0))
        srv.listen(args.backlog)
        ADDRESS = "127.0.0.1:%d" % srv.getsockname()[1]
        print("port %d" % srv.getsockname()[1], flush=True)
    print("ready", flush=True)
    if args.workers:
        for _ in range(args.workers):
            threading.Thread(target=sync_worker, args=(srv,), daemon=True).start()
        threading.Event().wait()
    while True:
        sock, peer_port = accept(srv)
        threading.Thread(target=serve_conn, args=(sock, peer_port), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
