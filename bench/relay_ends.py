#!/usr/bin/env python3
"""The two ends of bench/relay-throughput's bulk transfer, zero-copy so the
relay between them, not the ends, sets the pace.

  relay_ends.py recv OUTFILE      # prints "PORT" on stdout, accepts one
                                  # connection, splice(2)s it into OUTFILE
  relay_ends.py send PORT INFILE  # sendfile(2)s INFILE to 127.0.0.1:PORT,
                                  # half-closes, waits for the peer's close

Both move the bytes in the kernel (os.sendfile, os.splice through a pipe),
so on a 2-core machine they leave the CPU to the relay under test.
"""

import os
import socket
import sys

CHUNK = 1 << 20


def recv(path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    print(listener.getsockname()[1], flush=True)
    conn, _ = listener.accept()
    listener.close()
    read_end, write_end = os.pipe()
    with open(path, "wb") as out:
        while True:
            n = os.splice(conn.fileno(), write_end, CHUNK)
            if n == 0:
                break
            while n:
                n -= os.splice(read_end, out.fileno(), n)
    conn.close()


def send(port, path):
    sock = socket.create_connection(("127.0.0.1", int(port)))
    with open(path, "rb") as f:
        sock.sendfile(f)
    sock.shutdown(socket.SHUT_WR)
    while sock.recv(65536):
        pass
    sock.close()


if __name__ == "__main__":
    if sys.argv[1] == "recv":
        recv(sys.argv[2])
    elif sys.argv[1] == "send":
        send(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
