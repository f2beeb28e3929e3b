"""The two small programs of bench/floor.sh.

  python3 floor.py serve ADDR FILE CHUNK  a bare sendfile loop on ADDR (port 0: any): accepts
                                         a connection, reads a request head, answers 200 with
                                         Content-Length and sends FILE with sendfile(2), CHUNK
                                         bytes per call, then closes; prints its port first.
  python3 floor.py get ADDR PORT PATH N  N downloads of PATH, one connection each, the body
                                         thrown away with recv(MSG_TRUNC) so the client copies
                                         nothing; checks every Content-Length arrived whole.
"""
import os
import socket
import sys


def serve(addr, path, chunk):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, 0))
    srv.listen(64)
    print(srv.getsockname()[1], flush=True)
    while True:
        conn, _ = srv.accept()
        head = b""
        while b"\r\n\r\n" not in head:
            got = conn.recv(4096)
            if not got:
                break
            head += got
        fd = os.open(path, os.O_RDONLY)
        size = os.fstat(fd).st_size
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
        off = 0
        while off < size:
            off += os.sendfile(conn.fileno(), fd, off, min(chunk, size - off))
        os.close(fd)
        conn.close()


def get(addr, port, path, count):
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    for _ in range(count):
        sock = socket.create_connection((addr, port))
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n" % path.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            got = sock.recv(4096)
            if not got:
                sys.exit("connection closed before the response head")
            head += got
        head, rest = head.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 200"):
            sys.exit("unexpected answer: %r" % head[:80])
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        left = length - len(rest)
        while left > 0:
            n = sock.recv_into(view, min(left, len(buf)), socket.MSG_TRUNC)
            if n == 0:
                sys.exit("body cut short: %d bytes missing" % left)
            left -= n
        sock.close()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        get(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
