#!/usr/bin/env python3
"""Programs of the host-only-rst lab (samples/repro/host-only-rst.sh).
The script installs this file as upload-server, uploader and ack-injector,
so that the process name (comm) in the bundle says which is which.

  host-only-rst.py sink ADDR PORT
      The remote upload server: accepts connections and reads everything.
  host-only-rst.py upload LOCAL_PORT ADDR PORT STOP_FILE
      The container's uploader: from LOCAL_PORT, sends 16 KiB every 20 ms
      (a long, slow upload: a few hundred packets a second, so the capture
      stays small) until STOP_FILE exists, then closes cleanly.
  host-only-rst.py inject IFACE PORT AHEAD
      Run in the remote's namespace: learns the current sequence numbers of
      the connection served on PORT from the last segment the remote sent
      on IFACE (an AF_PACKET socket sees outgoing frames only when bound to
      ETH_P_ALL), then sends one pure ACK on that connection whose ack number
      is AHEAD bytes beyond what the remote has received. Prints one JSON
      line describing the ACK.

Why such an ACK: netfilter's tcp_in_window (net/netfilter/
nf_conntrack_proto_tcp.c) marks a segment INVALID when it acknowledges data
the other side has not sent ("ACK is over upper bound ... (ACKed data not
seen yet)"). An INVALID packet keeps no conntrack entry, so the node's
MASQUERADE is not undone: the ACK is delivered to the node itself, where
no socket owns the NAT port, and tcp_v4_rcv answers it with a RST. An ACK
that is merely old (the seed's "delayed ACK", ack below the lower bound)
no longer does this on recent kernels (checked on 6.18): conntrack logs
"ignored ACK under lower bound ... (possible overly delayed)" and lets it
through un-NATed to the container, whose TCP drops it; no RST.

Every program prints "ready" when set up and dies with its parent.
"""

import ctypes
import json
import os
import signal
import socket
import struct
import sys
import time

PR_SET_PDEATHSIG = 1
ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
TCP_ACK = 0x10


def die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def ready(**info):
    print("ready", json.dumps(info) if info else "", flush=True)


def sink(addr, port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, int(port)))
    srv.listen(16)
    ready()
    buf = bytearray(1 << 20)
    while True:
        conn, _ = srv.accept()
        while conn.recv_into(buf):
            pass
        conn.close()


def upload(local_port, addr, port, stop_file):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(local_port)))
    s.connect((addr, int(port)))
    ready(local=s.getsockname(), remote=s.getpeername())
    chunk = b"u" * 16384
    sent = 0
    while not os.path.exists(stop_file):
        s.sendall(chunk)
        sent += len(chunk)
        time.sleep(0.02)
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
    s.close()
    print(f"uploaded {sent} bytes, closed", flush=True)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def inject(iface, port, ahead):
    port, ahead = int(port), int(ahead)
    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sniff.bind((iface, 0))
    sniff.settimeout(0.5)
    last = None
    start = time.monotonic()
    # The newest segment the remote sent on the connection: its seq is the
    # remote's snd_nxt, its ack what the remote has received so far.
    while time.monotonic() - start < (0.2 if last else 3):
        try:
            frame, addr = sniff.recvfrom(65535)
        except socket.timeout:
            continue
        if addr[2] != PACKET_OUTGOING or frame[12:14] != struct.pack("!H", ETH_P_IP):
            continue
        ip = frame[14:]
        if ip[9] != socket.IPPROTO_TCP:
            continue
        tcp = ip[(ip[0] & 15) * 4:]
        sport, dport, seq, ack = struct.unpack("!HHII", tcp[:12])
        if sport == port:
            window = struct.unpack("!H", tcp[14:16])[0]
            last = (ip[12:16], ip[16:20], sport, dport, seq, ack, window)
    if last is None:
        sys.exit(f"no segment from port {port} seen on {iface}")
    src, dst, sport, dport, seq, ack, window = last
    bogus_ack = (ack + ahead) & 0xFFFFFFFF
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, bogus_ack, 5 << 4, TCP_ACK, window, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0x4A4B, 0x4000, 64,
                     socket.IPPROTO_TCP, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw.sendto(ip + tcp, (socket.inet_ntoa(dst), 0))
    print(json.dumps({
        "src": f"{socket.inet_ntoa(src)}:{sport}",
        "dst": f"{socket.inet_ntoa(dst)}:{dport}",
        "seq": seq,
        "remote_rcv_nxt": ack,
        "ack": bogus_ack,
        "window": window,
    }), flush=True)


def main():
    die_with_parent()
    roles = {"sink": sink, "upload": upload, "inject": inject}
    if len(sys.argv) < 2 or sys.argv[1] not in roles:
        sys.exit(__doc__)
    roles[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    main()
