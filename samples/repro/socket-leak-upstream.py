#!/usr/bin/env python3
"""The upstream of incident 5's leaky exporter: answers each connection with
a response of BODY bytes and then aborts it (SO_LINGER 0: close sends a RST),
as a proxy or load balancer timing out a connection does.

Usage: socket-leak-upstream.py ADDR PORT BODY. Prints "ready" once listening. Dies with
its parent (PR_SET_PDEATHSIG).
"""

import ctypes
import signal
import socket
import struct
import sys

PR_SET_PDEATHSIG = 1


def main():
    addr, port, body = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % body + b"#" * body
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(4096)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        try:
            conn.recv(4096)
            conn.sendall(response)
        except OSError:
            pass
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
