#!/usr/bin/env python3
"""leaky-exporter: the leaking process of incident 5 (seed 004), cut down.

An exporter that opens one TCP connection per scrape of its upstream and
keeps every socket object in a list "for reuse" without ever closing it (the
seed's server kept them in a dict). The upstream answers each scrape with a
body and then resets the connection. Each reset moves the exporter's socket
to TCP_CLOSE: the kernel unhashes it (tcp_done -> tcp_set_state(TCP_CLOSE)),
so it is in no /proc/net/tcp table and not counted in sockstat "inuse", but
it stays allocated ("alloc") as long as the fd is open, and the body the
exporter never read stays in its receive queue, counted in sockstat "mem".

Usage: leaky-exporter HOST PORT COUNT. Prints "leaked N" when done, then
sleeps until killed (it dies with its parent: PR_SET_PDEATHSIG).
"""

import ctypes
import resource
import signal
import socket
import sys
import time

PR_SET_PDEATHSIG = 1


def main():
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = count + 64
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(hard, need)))
    pool = []  # the bug: every connection is kept, none is ever closed
    for _ in range(count):
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: upstream\r\n\r\n")
        pool.append(s)
    print(f"leaked {len(pool)}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
