#!/usr/bin/env python3
"""The example application ferry runs beside in deploy/k8s and deploy/compose: a few pages
that take each of ferry's paths, using nothing but Python's standard library.

Usage: app.py [--listen 127.0.0.1:3000] [--files /srv/files]

At start it writes the files it hands to ferry into the shared volume FILES:
  FILES/static/index.html, style.css   served by ferry's /static/ location (sendfile)
  FILES/protected/report.bin           8 MiB, served only through X-Accel-Redirect
Then it answers (ferry forwards everything outside /static/ to it):
  /                  an HTML page with links to the rest (proxied, Content-Length: splice)
  /download/report   200 with X-Accel-Redirect: /protected/report.bin (ferry sends the file)
  /api/time          JSON with Cache-Control: max-age=5 (ferry's disk cache keeps it 5s)
  /api/feed          a chunked body (proxied on the buffered path)
  /healthz           "ok"
  anything else      404
"""

import argparse
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INDEX = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ferry demo</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body><h1>ferry demo</h1><ul>
<li><a href="/static/index.html">a static file</a> (sendfile)</li>
<li><a href="/download/report">an 8 MiB download</a> (X-Accel-Redirect)</li>
<li><a href="/api/time">a cached API answer</a> (disk cache)</li>
<li><a href="/api/feed">a chunked feed</a> (buffered)</li>
</ul></body></html>
"""
STYLE = b"body { font-family: sans-serif; margin: 2em; }\n"
REPORT_SIZE = 8 * 1024 * 1024


def write_files(root):
    """Writes the demo files atomically (rename), so ferry never sends half a file."""
    for rel, data in [
        ("static/index.html", INDEX),
        ("static/style.css", STYLE),
        ("protected/report.bin", bytes(range(256)) * (REPORT_SIZE // 256)),
    ]:
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ferry-demo-app"

    def send_body(self, status, ctype, body, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/":
            self.send_body(200, "text/html; charset=utf-8", INDEX)
        elif path == "/download/report":
            # The app decides who may download; ferry moves the bytes.
            self.send_body(200, "text/plain", b"", [
                ("X-Accel-Redirect", "/protected/report.bin"),
                ("Content-Disposition", 'attachment; filename="report.bin"'),
            ])
        elif path == "/api/time":
            body = json.dumps({"time": time.time()}).encode() + b"\n"
            self.send_body(200, "application/json", body, [("Cache-Control", "max-age=5")])
        elif path == "/api/feed":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command != "HEAD":
                for i in range(16):
                    line = b"event %d\n" % i
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.write(b"0\r\n\r\n")
        elif path == "/healthz":
            self.send_body(200, "text/plain", b"ok\n")
        else:
            self.send_body(404, "text/plain", b"not found\n")

    do_HEAD = do_GET

    def log_message(self, fmt, *args):
        pass  # ferry writes the access log


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:3000")
    parser.add_argument("--files", default="/srv/files")
    args = parser.parse_args()
    write_files(args.files)
    host, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    print("listening %s:%d" % server.server_address[:2], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
