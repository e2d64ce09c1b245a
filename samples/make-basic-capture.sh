#!/usr/bin/env bash
# Makes samples/basic.pcapng: a real capture from two network namespaces
# (client 10.77.0.1, server 10.77.0.2) holding one served HTTP request, one
# connect refused with RST (closed port 81), and one connect to a port that
# drops SYNs (82: SYN retries, no answer). Needs root, iproute2, iptables,
# dumpcap (from tshark/wireshark-common: writes pcapng with interface names), python3. Traffic never leaves the two namespaces it creates.
set -euo pipefail
out=${1:-$(dirname "$0")/basic.pcapng}
c=capsnap-sample-c; s=capsnap-sample-s
cleanup() { ip netns del $c 2>/dev/null || true; ip netns del $s 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add $c; ip netns add $s
ip link add veth-c netns $c type veth peer name veth-s netns $s
ip netns exec $c sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip netns exec $s sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip -n $c addr add 10.77.0.1/24 dev veth-c; ip -n $c link set veth-c up; ip -n $c link set lo up
ip -n $s addr add 10.77.0.2/24 dev veth-s; ip -n $s link set veth-s up; ip -n $s link set lo up
ip netns exec $s iptables -A INPUT -p tcp --dport 82 -j DROP
ip netns exec $s python3 -m http.server 80 --bind 10.77.0.2 >/dev/null 2>&1 &
server=$!
ip netns exec $c dumpcap -q -i veth-c -s 128 -w "$out" 2>/dev/null &
dump=$!
sleep 1
ip netns exec $c python3 - <<'PY'
import socket, urllib.request
urllib.request.urlopen("http://10.77.0.2/", timeout=5).read()
for port, timeout in ((81, 2), (82, 3.5)):
    try:
        socket.create_connection(("10.77.0.2", port), timeout=timeout)
    except OSError as e:
        print(f"port {port}: {e}")
PY
sleep 1
kill -INT $dump; wait $dump || true
chmod 644 "$out"
kill $server; wait $server 2>/dev/null || true
echo "wrote $out"
