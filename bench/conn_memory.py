#!/usr/bin/env python3
"""Resident memory per idle keep-alive connection, for bench/conn_memory.sh.

    bench/conn_memory.py --port P [--tls | --h2] [--conns N] [--path /static/f4k.bin] PID...

PID... are the server's processes (nginx: master and workers; ferry: its one process). The
script reads their summed VmRSS from /proc, opens N keep-alive connections (TLS with --tls;
certificates are not verified: the same self-signed one for every server; --h2: TLS with ALPN
h2 and one HTTP/2 stream, spoken here by hand) to 127.0.0.1:P, sends one GET on each and reads
the whole response, then, with all of them open and idle,
reads VmRSS again. Then it closes every connection, waits until the servers' open file
descriptors are back to what they were before (every connection is gone on their side too),
and reads VmRSS a last time. It prints one line, in KiB:

    before  held  (held - before) / N  after-close  after-close - before
"""

import argparse
import asyncio
import os
import ssl
import sys
import time

REQUEST = "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
# How many connections are being set up at once (the listen backlogs are not the question).
PARALLEL = 100


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def open_fds(pids):
    return sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in pids)


async def one(port, path, context, gate):
    """One connection after its first response has been read in full."""
    async with gate:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost" if context else None
        )
        writer.write(REQUEST.format(path=path).encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        if status != b"200":
            raise RuntimeError(f"status {status.decode()}: {head[:200]!r}")
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError("no content-length in the response")
        await reader.readexactly(length)
        return reader, writer, length


def h2_frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def hpack_literal(name_index, value):
    """A header field without indexing, its name from the static table (RFC 7541 6.2.2)."""
    value = value.encode()
    assert len(value) < 127
    return bytes([name_index, len(value)]) + value


async def one_h2(port, path, context, gate):
    """One HTTP/2 connection after the response on its stream 1 has been read in full."""
    async with gate:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
        alpn = writer.get_extra_info("ssl_object").selected_alpn_protocol()
        if alpn != "h2":
            raise RuntimeError(f"ALPN gave {alpn!r}, not h2")
        # GET (static index 2), https (7), :path and :authority as literals.
        block = b"\x82\x87" + hpack_literal(4, path) + hpack_literal(1, "localhost")
        writer.write(
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            + h2_frame(4, 0, 0)
            + h2_frame(1, 0x5, 1, block)  # HEADERS, END_STREAM | END_HEADERS
        )
        await writer.drain()
        length = 0
        while True:
            head = await reader.readexactly(9)
            size = int.from_bytes(head[:3], "big")
            kind, flags = head[3], head[4]
            stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
            payload = await reader.readexactly(size)
            if kind == 4 and not flags & 0x1:  # SETTINGS: acknowledge
                writer.write(h2_frame(4, 0x1, 0))
            elif kind == 7:
                raise RuntimeError(f"GOAWAY: {payload[:64]!r}")
            elif kind == 1 and stream == 1:
                # The servers measured here send :status 200 as static index 8 first.
                if not payload.startswith(b"\x88"):
                    raise RuntimeError(f"not a 200: HEADERS block {payload[:32]!r}")
            elif kind == 0 and stream == 1:
                length += size
            if stream == 1 and kind in (0, 1) and flags & 0x1:
                break
        await writer.drain()
        return reader, writer, length


async def settle(pids, baseline_fds, limit):
    """Waits until the servers hold no more descriptors than before (or `limit` seconds)."""
    deadline = time.monotonic() + limit
    while open_fds(pids) > baseline_fds and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return open_fds(pids) - baseline_fds


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--h2", action="store_true")
    parser.add_argument("--conns", type=int, default=5000)
    parser.add_argument("--path", default="/static/f4k.bin")
    parser.add_argument("pids", type=int, nargs="+")
    args = parser.parse_args()

    context = None
    if args.tls or args.h2:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2" if args.h2 else "http/1.1"])
    connect = one_h2 if args.h2 else one

    baseline_fds = open_fds(args.pids)
    before = rss_kib(args.pids)
    gate = asyncio.Semaphore(PARALLEL)
    conns = await asyncio.gather(
        *(connect(args.port, args.path, context, gate) for _ in range(args.conns))
    )
    # Every server has answered on every connection; let it reach its idle wait.
    await asyncio.sleep(1)
    held = rss_kib(args.pids)
    for _, writer, _ in conns:
        writer.close()
    for _, writer, _ in conns:
        try:
            await writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass
    left = await settle(args.pids, baseline_fds, 60)
    # The descriptors are closed; give the workers a moment to finish their tasks' teardown.
    await asyncio.sleep(1)
    after = rss_kib(args.pids)
    if left:
        print(f"conn_memory.py: the server still holds {left} descriptors", file=sys.stderr)
    kib_per_conn = (held - before) / args.conns
    print(f"{before:10d} {held:10d} {kib_per_conn:10.2f} {after:12d} {after - before:10d}")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as err:  # reported to the shell script, which stops the run
        print(f"conn_memory.py: {err!r}", file=sys.stderr)
        sys.exit(1)
