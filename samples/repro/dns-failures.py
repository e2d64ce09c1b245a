#!/usr/bin/env python3
"""Programs of the dns-failures lab (samples/repro/dns-failures.sh).
The script installs this file under the role's name (coredns, app), so
that the process name (comm) in the bundle says which is which.

  coredns ADDR IGNORED SLOW DELAY
      A small authoritative DNS server on ADDR, UDP port 53 (RFC 1035
      section 4): an A query is answered with 192.0.2.10, any other type
      with NOERROR and no answer. Queries for IGNORED are read and never
      answered (as a server whose upstream for that zone is gone, or a
      rate limit dropping them); queries for SLOW are answered after
      DELAY seconds. Logs one line per query it read.
  app ROUNDS GAP NAME...
      Resolves every NAME with getaddrinfo(), the C library's stub
      resolver (it reads /etc/resolv.conf, which `ip netns exec` takes
      from /etc/netns/<ns>/), one thread per name, ROUNDS times GAP
      seconds apart. Prints one JSON line per lookup: name, result
      ("ok" or the error), seconds; then "done".

Every program dies with its parent.
"""

import ctypes
import json
import signal
import socket
import struct
import sys
import threading
import time

PR_SET_PDEATHSIG = 1


def die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def question(msg):
    """The first question's name (lower case) and type, and where it ends."""
    at, labels = 12, []
    while at < len(msg) and msg[at] != 0:
        n = msg[at]
        labels.append(msg[at + 1:at + 1 + n].decode("ascii", "replace"))
        at += 1 + n
    qtype = struct.unpack("!H", msg[at + 1:at + 3])[0]
    return ".".join(labels).lower(), qtype, at + 5


def answer(msg):
    qid, flags = struct.unpack("!HH", msg[:4])
    name, qtype, end = question(msg)
    rd = flags & 0x0100
    # QR, AA, RD copied, RA; NOERROR.
    out_flags = 0x8000 | 0x0400 | rd | 0x0080
    ancount = 1 if qtype == 1 else 0
    reply = struct.pack("!HHHHHH", qid, out_flags, 1, ancount, 0, 0) + msg[12:end]
    if qtype == 1:
        # Name as a pointer to the question (0xc00c), A, IN, TTL 30, 4 bytes.
        reply += struct.pack("!HHHIH", 0xC00C, 1, 1, 30, 4) + socket.inet_aton("192.0.2.10")
    return reply


def coredns(addr, ignored, slow, delay):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    lock = threading.Lock()
    print("ready", flush=True)
    while True:
        msg, peer = s.recvfrom(4096)
        try:
            name, qtype, _ = question(msg)
            reply = answer(msg)
        except (IndexError, struct.error):
            continue
        print(f"query {name} type {qtype} from {peer[0]}:{peer[1]}", flush=True)
        if name == ignored:
            continue
        if name == slow:
            def later(reply=reply, peer=peer):
                time.sleep(float(delay))
                with lock:
                    s.sendto(reply, peer)
            threading.Thread(target=later, daemon=True).start()
            continue
        with lock:
            s.sendto(reply, peer)


def app(rounds, gap, *names):
    out = threading.Lock()

    def lookup(name):
        started = time.monotonic()
        try:
            socket.getaddrinfo(name, 80, socket.AF_UNSPEC, socket.SOCK_STREAM)
            result = "ok"
        except socket.gaierror as e:
            result = e.strerror
        with out:
            print(json.dumps({"name": name, "result": result,
                              "seconds": round(time.monotonic() - started, 3)}), flush=True)

    print("ready", flush=True)
    for _ in range(int(rounds)):
        threads = [threading.Thread(target=lookup, args=(n,)) for n in names]
        for t in threads:
            t.start()
        time.sleep(float(gap))
        for t in threads:
            t.join()
    print("done", flush=True)


def main():
    die_with_parent()
    roles = {"coredns": coredns, "app": app}
    if len(sys.argv) < 2 or sys.argv[1] not in roles:
        sys.exit(__doc__)
    roles[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    main()
