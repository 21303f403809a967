#!/usr/bin/env python3
"""Python's socketserver.ThreadingTCPServer answering "Hello, world!" over
HTTP/1.1 with keep-alive: the "throwaway Python server" baseline of bench/run.

Usage: threading_server.py PORT
"""
import socketserver
import sys

REPLY = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 13\r\n\r\nHello, world!")
CLOSE_REPLY = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
               b"Content-Length: 13\r\nConnection: close\r\n\r\nHello, world!")


class Hello(socketserver.BaseRequestHandler):
    def handle(self):
        buf = b""
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            buf += data
            out = []
            close = False
            while b"\r\n\r\n" in buf:
                head, buf = buf.split(b"\r\n\r\n", 1)
                close = b"\r\nconnection: close" in head.lower()
                out.append(CLOSE_REPLY if close else REPLY)
                if close:
                    break
            if out:
                self.request.sendall(b"".join(out))
            if close:
                return


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 1024


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8888
    with Server(("127.0.0.1", port), Hello) as server:
        print("Serving HTTP on port %d ..." % port, flush=True)
        server.serve_forever()
