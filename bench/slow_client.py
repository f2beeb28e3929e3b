#!/usr/bin/env python3
"""The clients of bench/slow.sh, and the reading of bench/slow_app.py's event log after them.
Prints one JSON object (the figures of that phase) on stdout.

  slow_client.py readers --port P --name NAME --size BYTES --sha HEX --n N --tag TAG --app-log PATH
                         [--prefix BYTES] [--stall-timeout S] [--no-stall]
      N clients at once GET /f/NAME?id=TAG-i (Connection: close). Each reads the response head
      and PREFIX body bytes (default 64 KiB), then stops reading until the app's log shows all
      N body writes done (or STALL_TIMEOUT seconds passed, default 30: the app was held), then
      reads the rest at full speed. Every body is checked: length and SHA-256. --no-stall reads
      at once (the relay baseline). Times are CLOCK_MONOTONIC, as in the app's log.

  slow_client.py uploads --port P --n M --size BYTES --chunk BYTES --interval S --tag TAG --app-log PATH
      M clients at once POST /up?id=TAG-i with a Content-Length body of SIZE bytes (its own
      pseudo-random bytes per client), CHUNK bytes every INTERVAL seconds, and check that the
      answer is 200 with the SHA-256 of their body (the app hashes what it got). A request
      counts as begun early when the app had its head before the client started to send its
      last chunk.
"""

import argparse
import hashlib
import os
import json
import random
import socket
import sys
import threading
import time

BUF = 1 << 20


def read_head(sock):
    """Reads a response head; returns (status, content_length or None, leftover body bytes)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before the response head (%d bytes)" % len(buf))
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return status, length, rest


def app_events(path, tag):
    """The app's events for requests of this phase (ids TAG-i), and its open/close events."""
    ev = {"head": {}, "wstart": {}, "wdone": {}, "body": {}, "open": [], "close": []}
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) < 3:
                continue
            kind, t = p[0], float(p[1])
            if kind in ("open", "close"):
                ev[kind].append(t)
            elif kind == "head" and len(p) >= 5 and p[4].startswith(tag + "-"):
                ev["head"][p[4]] = t
            elif kind in ("wstart", "wdone", "body") and len(p) >= 5 and p[3].startswith(tag + "-"):
                ev[kind][p[3]] = (t, int(p[4]))
    return ev


def count_wdone(path, tag, offset):
    """Lines "wdone ... TAG-i ..." in the app log from byte OFFSET on."""
    n = 0
    with open(path) as f:
        f.seek(offset)
        for line in f:
            p = line.split()
            if len(p) >= 5 and p[0] == "wdone" and p[3].startswith(tag + "-"):
                n += 1
    return n


def readers(a):
    log_offset = os.path.getsize(a.app_log)
    release = threading.Event()
    results = [None] * a.n
    start = threading.Barrier(a.n + 1)

    def one(i):
        r = {"id": "%s-%d" % (a.tag, i), "bytes": 0, "ok": False, "err": None}
        results[i] = r
        h = hashlib.sha256()
        try:
            s = socket.create_connection(("127.0.0.1", a.port))
            start.wait()
            s.sendall(b"GET /f/%s?id=%s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
                      % (a.name.encode(), r["id"].encode()))
            status, length, rest = read_head(s)
            r["status"] = status
            h.update(rest)
            got = len(rest)
            buf = bytearray(BUF)
            view = memoryview(buf)
            while got < a.prefix:
                n = s.recv_into(view, min(BUF, a.prefix - got))
                if n == 0:
                    break
                h.update(view[:n])
                got += n
            r["t_prefix"] = time.monotonic()
            if not a.no_stall:
                release.wait()
            while True:
                n = s.recv_into(view)
                if n == 0:
                    break
                h.update(view[:n])
                got += n
            r["t_end"] = time.monotonic()
            s.close()
            r["bytes"] = got
            r["ok"] = status == 200 and length == a.size and got == a.size and h.hexdigest() == a.sha
        except Exception as e:  # a failed client is reported, not raised: the row says FAILED
            r["err"] = "%s: %s" % (type(e).__name__, e)
            r["t_end"] = time.monotonic()

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(a.n)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.monotonic()
    reason = "no_stall"
    if not a.no_stall:
        deadline = t0 + a.stall_timeout
        reason = "timeout"
        while time.monotonic() < deadline:
            if count_wdone(a.app_log, a.tag, log_offset) >= a.n:
                reason = "app_done"
                break
            time.sleep(0.01)
    t_release = time.monotonic()
    release.set()
    for t in threads:
        t.join()
    ev = app_events(a.app_log, a.tag)
    done = [ev["wdone"][k][0] for k in ev["wdone"]]
    starts = ev["wstart"]

    def held_at(t):  # app body writes started and not returned at time t
        return sum(1 for k, (ts, _) in starts.items() if ts <= t and (k not in ev["wdone"] or ev["wdone"][k][0] > t))

    out = {
        "phase": "readers",
        "n": a.n,
        "size": a.size,
        "t0": t0,
        "release_reason": reason,
        "release_s": t_release - t0,
        "app_writes_started": len(starts),
        "app_writes_done": len(done),
        "held_1s": held_at(t0 + 1.0),
        "held_at_release": held_at(t_release),
        "app_done_s": (max(done) - t0) if len(done) == a.n else None,
        "clients_done_s": max(r["t_end"] for r in results) - t0,
        "ok": sum(1 for r in results if r["ok"]),
        "bytes": sum(r["bytes"] for r in results),
        "errors": [r["id"] + ": " + (r["err"] or "status %s, %d bytes, hash %s" % (
            r.get("status"), r["bytes"], "?")) for r in results if not r["ok"]][:5],
    }
    print(json.dumps(out))


def uploads(a):
    results = [None] * a.n
    start = threading.Barrier(a.n + 1)

    def one(i):
        r = {"id": "%s-%d" % (a.tag, i), "ok": False, "err": None}
        results[i] = r
        body = random.Random("%s-%d" % (a.tag, i)).randbytes(a.size)
        sha = hashlib.sha256(body).hexdigest()
        try:
            s = socket.create_connection(("127.0.0.1", a.port))
            start.wait()
            s.sendall(b"POST /up?id=%s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\n"
                      b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (r["id"].encode(), a.size))
            r["t_first"] = time.monotonic()
            off = 0
            while off < a.size:
                if off:
                    time.sleep(a.interval)  # the upload's pace, not synchronisation
                if off + a.chunk >= a.size:
                    # the last chunk: no byte of it can reach the proxy before this instant
                    r["t_last_start"] = time.monotonic()
                s.sendall(body[off:off + a.chunk])
                off += a.chunk
            r["t_last"] = time.monotonic()
            status, length, rest = read_head(s)
            while length is None or len(rest) < length:
                data = s.recv(65536)
                if not data:
                    break
                rest += data
            s.close()
            r["status"] = status
            r["ok"] = status == 200 and rest.strip().decode() == sha
            if not r["ok"]:
                r["err"] = "status %d, answer %r" % (status, rest[:80])
        except Exception as e:
            r["err"] = "%s: %s" % (type(e).__name__, e)
        r["t_end"] = time.monotonic()

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(a.n)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    ev = app_events(a.app_log, a.tag)
    last = {r["id"]: r.get("t_last") for r in results}
    last_start = {r["id"]: r.get("t_last_start") for r in results}
    first_complete = min((t for t in last.values() if t is not None), default=None)
    # requests the app had begun (head received) before that client had even started to send
    # its last chunk (t_last, after sendall returned, can trail the proxy by a scheduling delay)
    early = sum(1 for k, th in ev["head"].items() if last_start.get(k) is not None and th < last_start[k])
    # the app's head after the client began its last chunk, per request
    lag_ms = sorted((th - last_start[k]) * 1e3 for k, th in ev["head"].items() if last_start.get(k) is not None)
    opened_early = sum(1 for t in ev["open"] if first_complete is not None and t0 <= t < first_complete)
    # how long the app spent receiving each body: head to body read whole
    recv_ms = sorted((ev["body"][k][0] - th) * 1e3 for k, th in ev["head"].items() if k in ev["body"])
    out = {
        "phase": "uploads",
        "n": a.n,
        "size": a.size,
        "t0": t0,
        "early_requests": early,
        "conns_opened_before_first_body_complete": opened_early,
        "first_body_complete_s": (first_complete - t0) if first_complete else None,
        "last_body_complete_s": (max(t for t in last.values() if t is not None) - t0) if first_complete else None,
        "app_heads": len(ev["head"]),
        "app_bodies_whole": sum(1 for _, n in ev["body"].values() if n == a.size),
        "head_after_last_chunk_ms_median": lag_ms[len(lag_ms) // 2] if lag_ms else None,
        "head_after_last_chunk_ms_min": lag_ms[0] if lag_ms else None,
        "app_recv_ms_median": recv_ms[len(recv_ms) // 2] if recv_ms else None,
        "app_recv_ms_max": recv_ms[-1] if recv_ms else None,
        "clients_done_s": max(r["t_end"] for r in results) - t0,
        "ok": sum(1 for r in results if r["ok"]),
        "bytes": a.size * sum(1 for r in results if r["ok"]),
        "errors": [r["id"] + ": " + str(r["err"]) for r in results if not r["ok"]][:5],
    }
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("readers")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--name", required=True)
    r.add_argument("--size", type=int, required=True)
    r.add_argument("--sha", required=True)
    r.add_argument("--n", type=int, required=True)
    r.add_argument("--tag", required=True)
    r.add_argument("--app-log", required=True)
    r.add_argument("--prefix", type=int, default=65536)
    r.add_argument("--stall-timeout", type=float, default=30.0)
    r.add_argument("--no-stall", action="store_true")
    u = sub.add_parser("uploads")
    u.add_argument("--port", type=int, required=True)
    u.add_argument("--n", type=int, required=True)
    u.add_argument("--size", type=int, required=True)
    u.add_argument("--chunk", type=int, required=True)
    u.add_argument("--interval", type=float, required=True)
    u.add_argument("--tag", required=True)
    u.add_argument("--app-log", required=True)
    a = p.parse_args()
    readers(a) if a.cmd == "readers" else uploads(a)


if __name__ == "__main__":
    sys.exit(main())
