#!/usr/bin/env bash
# Makes the lab namespace the netlink fixtures of formats/testdata/netlink/
# were taken in, collects it with capsnap and copies its conversations
# here. Root; run under the lab lock:
#   flock /tmp/capsnap-lab.lock formats/testdata/make-netlink.sh target/debug/capsnap
set -euo pipefail
capsnap=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
ns=inlab peer=inlab-peer
work=$(mktemp -d)
cleanup() {
    ip netns pids $ns 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del $ns 2>/dev/null || true
    ip netns del $peer 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cleanup
mkdir -p "$work"
ip netns add $ns
ip netns add $peer
ip -n $ns link set lo up
ip -n $ns link add inlab-br type bridge
ip link add inlab-v0 netns $ns type veth peer name inlab-v1 netns $peer
ip -n $ns link set inlab-v0 master inlab-br
ip -n $ns link add inlab-d0 type vxlan id 42 dstport 4789
ip -n $ns link set inlab-d0 mtu 1400 up
ip -n $ns link set inlab-br up
ip -n $ns link set inlab-v0 up
ip -n $peer link set inlab-v1 up
ip -n $ns addr add 10.77.0.1/24 brd + dev inlab-br
ip -n $ns addr add 10.77.0.9/24 dev inlab-br
ip -n $ns addr add fd77::1/64 dev inlab-br nodad
ip -n $ns route add default via 10.77.0.254
ip -n $ns route add 10.88.0.0/16 via 10.77.0.254 mtu 1300 metric 50
ip -n $ns route add 10.99.0.0/16 dev inlab-d0 table 100
ip -n $ns route add blackhole 192.0.2.0/24
ip -n $ns route add 10.66.0.0/16 nexthop via 10.77.0.253 weight 1 nexthop via 10.77.0.252 weight 2
ip -n $ns rule add from 10.77.5.0/24 iif inlab-br table 100 priority 100
ip -n $ns rule add fwmark 0x42 prohibit priority 200
# Sockets: a listener with backlog 3 that never accepts and 5 clients, an
# established pair that moved 100000 bytes each way, a UDP socket.
cat >"$work/socks.py" <<'PY'
import socket, time
l = socket.socket(); l.bind(("10.77.0.1", 7000)); l.listen(3)
clients = []
for _ in range(5):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(("10.77.0.1", 7000))
    except BlockingIOError: pass
    clients.append(c)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.0.1", 7001)); s.listen()
a = socket.create_connection(("10.77.0.1", 7001)); b, _ = s.accept()
data = b"x" * 100000
a.sendall(data); got = 0
while got < len(data): got += len(b.recv(65536))
b.sendall(data); got = 0
while got < len(data): got += len(a.recv(65536))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 5353))
print("ready", flush=True)
time.sleep(60)
PY
ip netns exec $ns python3 "$work/socks.py" >"$work/ready" &
until grep -q ready "$work/ready" 2>/dev/null; do sleep 0.1; done
sleep 0.5
"$capsnap" collect --netns $ns --no-packets --no-ebpf --duration 1s -o "$work/b.capsnap" >/dev/null
mkdir "$work/x"
tar --zstd -xf "$work/b.capsnap" -C "$work/x"
for f in link addr route rule inet_diag; do
    cp "$work/x/netns/$ns/netlink/$f.nl" "$here/netlink/$f.nl"
done
# What ip and ss said at the same time, for the tests' expectations.
{
    ip -n $ns -d link; ip -n $ns addr; ip -n $ns route show table all
    ip -n $ns -6 route show table all; ip -n $ns rule; ip -n $ns -6 rule
    ip netns exec $ns ss -tuianm
} >"$here/netlink/ip-and-ss.txt"
