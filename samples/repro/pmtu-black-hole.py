#!/usr/bin/env python3
# The programs of pmtu-black-hole.sh, one file (installed under two names):
#   server ADDR PORT   accepts one upload; reads the 200-byte header, then
#                      sends a 16-byte heartbeat every 0.3 s while it waits
#                      for the body (as gRPC keepalives or HTTP/2 PINGs do)
#   client ADDR PORT   sends the header, waits for the first heartbeat,
#                      then writes a 256 KiB body that never arrives
import socket
import sys
import time

role, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if role == "server":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(8)
    print("ready", flush=True)
    c, peer = s.accept()
    header = b""
    while len(header) < 200:
        header += c.recv(200 - len(header))
    print("header from", peer, flush=True)
    c.setblocking(False)
    got = 0
    while True:
        c.send(b"waiting for body\n")
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            try:
                data = c.recv(65536)
                if not data:
                    sys.exit(0)
                got += len(data)
                print("body bytes", got, flush=True)
            except BlockingIOError:
                time.sleep(0.02)
else:
    c = socket.create_connection((addr, port))
    c.sendall(b"H" * 199 + b"\n")
    c.recv(64)
    print("ready", flush=True)
    c.sendall(b"B" * 262144)
    print("body queued", flush=True)
    while c.recv(64):
        pass
