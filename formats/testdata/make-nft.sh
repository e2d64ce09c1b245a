#!/usr/bin/env bash
# Makes the lab namespace the nft fixtures of formats/testdata/nft/ were
# taken in: rules.nft (an inet table with a set, a named counter, counter
# rules, a jump, a drop policy; an ip NAT table), one iptables-nft rule per
# family beside it, `nft -j list ruleset` when the "window" opens and when
# it closes, with traffic, a rule inserted and one deleted in between.
# Root; run under the lab lock:
#   flock /tmp/capsnap-lab.lock formats/testdata/make-nft.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)/nft
ns=nft-fixture peer=nft-fixture-peer
cleanup() {
    ip netns del $ns 2>/dev/null || true
    ip netns del $peer 2>/dev/null || true
}
trap cleanup EXIT
cleanup
x() { ip netns exec $ns "$@"; }
ip netns add $ns
ip netns add $peer
ip link add nftfx0 netns $ns type veth peer name nftfx1 netns $peer
x ip link set lo up
x ip addr add 10.9.9.1/24 dev nftfx0
x ip link set nftfx0 up
x ip route add default via 10.9.9.9
ip -n $peer addr add 10.9.9.9/24 dev nftfx1
ip -n $peer addr add 192.0.2.7/32 dev nftfx1
ip -n $peer link set nftfx1 up
# From the peer, 10.9.9.1 is reached from a blocked source.
ip -n $peer route add 10.9.9.1/32 dev nftfx1 src 192.0.2.7
x nft -f "$here/rules.nft"
x iptables -A INPUT -p icmp --icmp-type fragmentation-needed -m comment --comment "iptables-nft rule" -j DROP
x ip6tables -A INPUT -p tcp --dport 22 -j ACCEPT
x nft -j list ruleset >"$here/open.json"
udp() { echo x >"/dev/udp/$1/$2" 2>/dev/null || true; }
for _ in 1 2 3; do ip netns exec $peer bash -c "$(declare -f udp); udp 10.9.9.1 9"; done
for _ in 1 2 3 4; do x bash -c "$(declare -f udp); udp 10.9.9.9 53"; done
x bash -c "$(declare -f udp); udp 10.96.0.10 53"
handle=$(x nft -a list chain inet filter output | sed -n 's/.*oifname "nftfx0".*# handle \([0-9]*\)/\1/p')
x nft insert rule inet filter output position "$handle" meta l4proto udp counter accept comment '"added"'
x bash -c "$(declare -f udp); udp 10.9.9.9 53"
handle=$(x nft -a list chain inet filter input | sed -n 's/.*ipv6-icmp accept # handle \([0-9]*\)/\1/p')
x nft delete rule inet filter input handle "$handle"
x nft -j list ruleset >"$here/close.json"
x nft list ruleset >"$here/close.txt"
x iptables-save -c >"$here/iptables-save.txt"
x ip6tables-save -c >"$here/ip6tables-save.txt"
echo "wrote $here"
