#!/usr/bin/env python3
"""Holds N idle HTTP keep-alive connections open to a server.

Each connection sends one GET and reads its response (so the server has
served it and keeps it as an idle keep-alive connection), then stays open
doing nothing. Prints "held N" on stdout once all are idle, and holds them
until stdin closes.

Usage: hold.py HOST PORT N
"""
import resource
import select
import socket
import sys

host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = count + 64
if soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard != resource.RLIM_INFINITY else want, hard))

request = ("GET / HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host, port)).encode()
socks = []
ep = select.epoll()
pending = {}
opened = 0
BATCH = 200  # connect in batches so the listen backlog is never overrun
while opened < count or pending:
    while opened < count and len(pending) < BATCH:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect((host, port))
        s.sendall(request)
        s.setblocking(False)
        socks.append(s)
        pending[s.fileno()] = (s, b"")
        ep.register(s.fileno(), select.EPOLLIN)
        opened += 1
    for fd, _ in ep.poll(5):
        s, got = pending[fd]
        data = s.recv(4096)
        if not data:
            sys.exit("server closed a connection before answering (%d open)" % opened)
        got += data
        # A complete response: the hello body ends it.
        if got.endswith(b"Hello, world!"):
            ep.unregister(fd)
            del pending[fd]
        else:
            pending[fd] = (s, got)
print("held %d" % len(socks), flush=True)
sys.stdin.read()
