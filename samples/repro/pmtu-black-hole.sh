#!/usr/bin/env bash
# Reproduces a path MTU black hole for real and collects a bundle while it
# happens:
#   samples/repro/pmtu-black-hole.sh OUT.capsnap
# writes OUT.capsnap and OUT.facts.json (what a correct detection must name).
#
# The scene: a pod (cs-pm-pod, 10.244.5.7, MTU 1500) uploads to a server
# (cs-pm-remote, 192.168.79.2:9000, MTU 1500) through a node (cs-pm-node)
# that MASQUERADEs it and whose uplink (cs-pm-up) has MTU 1400, as a tunnel
# or a provider link would. Both ends advertise an MSS of 1460, so the pod
# sends 1500-byte packets with DF set; ip_forward (net/ipv4/ip_forward.c)
# finds them too big for the uplink, counts Ip FragFails and sends ICMP
# "fragmentation needed" back, which the node's hardened firewall drops
# (OUTPUT -p icmp --icmp-type fragmentation-needed -j DROP). The pod never
# learns: its 200-byte header arrived and was answered, the server's
# 16-byte heartbeats (every 0.3 s) still arrive, but every full-size segment
# of the body is lost and the pod's socket sits in RTO back-off. Checked
# while the window is open: the pod's socket with backoff, unacked data and
# pmtu 1500; after: the firewall rule counted drops, and the bundle shows
# the same socket.
#
# Needs root, iproute2, iptables, ss, python3, tar+zstd, capsnap
# (CAPSNAP=path). Leaves nothing behind (trap EXIT).
set -euo pipefail

LAB=cs-pm
ID=pmtu-black-hole
# shellcheck source=samples/repro/nat-lab.sh
source "$(dirname "$0")/nat-lab.sh"
lab_preflight "$@"
trap lab_cleanup EXIT
lab_teardown

NODE=$LAB-node
POD=$LAB-pod
REMOTE=$LAB-remote
POD_IP=10.244.5.7
REMOTE_IP=192.168.79.2
PORT=9000
UPLINK_MTU=1400
lab_bin uploader "$HERE/pmtu-black-hole.py"
lab_bin receiver "$HERE/pmtu-black-hole.py"

ip netns add "$NODE"
ip netns add "$POD"
ip netns add "$REMOTE"
for ns in "$NODE" "$POD" "$REMOTE"; do
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
veth "$NODE" "$LAB-pod0" "$POD" eth0
veth "$NODE" "$LAB-up" "$REMOTE" eth0
ip -n "$NODE" link set "$LAB-up" mtu "$UPLINK_MTU"
ip -n "$POD" addr add "$POD_IP/24" dev eth0
ip -n "$POD" route add default via 10.244.5.1
ip -n "$NODE" addr add 10.244.5.1/24 dev "$LAB-pod0"
ip -n "$NODE" addr add 192.168.79.1/24 dev "$LAB-up"
ip -n "$REMOTE" addr add "$REMOTE_IP/24" dev eth0
ip -n "$REMOTE" route add default via 192.168.79.1
ip netns exec "$NODE" sysctl -qw net.ipv4.ip_forward=1
ip netns exec "$NODE" iptables -t nat -A POSTROUTING -s 10.244.0.0/16 -o "$LAB-up" -j MASQUERADE
ip netns exec "$NODE" iptables -A OUTPUT -p icmp --icmp-type fragmentation-needed -j DROP

start_in "$REMOTE" receiver "$WORK/bin/receiver" server "$REMOTE_IP" "$PORT"
icmp_drops() { ip netns exec "$NODE" iptables -nvxL OUTPUT | awk '/icmp/ {print $1}'; }
drops_before=$(icmp_drops)

# The upload starts inside the window (5 s), so that the retransmissions,
# spaced by an RTO that doubles each time, and the ICMP the node drops fall
# in it.
COLLECT_DURATION=5s collect_start "$NODE" "$POD"
start_in "$POD" uploader "$WORK/bin/uploader" client "$REMOTE_IP" "$PORT"
# The fault, checked while the window is open: the upload stalls in
# back-off.
sock() { ip netns exec "$POD" ss -tniH state established "( dport = :$PORT )"; }
for _ in $(seq 60); do
    sock | grep -q 'backoff:[2-9]' && break
    nap 0.05
done
info=$(sock | tr -s ' \n' ' ')
say "fault present: $info"
[[ $info == *backoff:[2-9]* ]] || fail "the pod's upload is not in RTO back-off: $info"
[[ $info == *pmtu:1500* ]] || fail "the pod's socket does not believe pmtu 1500: $info"
[[ $info == *unacked:* ]] || fail "the pod's socket has nothing unacknowledged: $info"
has_line "$WORK/receiver.log" 'body bytes*' && fail "body data reached the server: $(tail -1 "$WORK/receiver.log")"
collect_finish
drops_after=$(icmp_drops)
say "ICMP fragmentation-needed dropped by the node: $drops_before before, $drops_after after the collect"
((drops_after > drops_before)) || fail "no ICMP dropped during the window"

# The evidence, read back from the bundle as a detection will.
B=$WORK/bundle
grep -q 'icmp' "$B/netns/$NODE/iptables-save.txt" 2>/dev/null ||
    grep -q 'icmp' "$B"/netns/*/iptables-save.txt || fail "the bundle has no iptables-save with the ICMP rule"
row=$(q "select backoff, unacked, pmtu from inet_sockets where netns = '$POD' and remote_port = $PORT and state = 'ESTABLISHED'" "$OUT")
say "bundle: the pod's socket backoff, unacked, pmtu = $row"
IFS=, read -r b_backoff b_unacked b_pmtu <<<"$row"
((b_backoff >= 2 && b_unacked > 0 && b_pmtu == 1500)) || fail "the bundle's socket is '$row'"

"$PY" - "$FACTS" <<PY
import json, sys
facts = {
    "detection": "pmtu-black-hole",
    "named": ["netns", "remote", "small_link", "icmp_rule"],
    "objects": {
        "netns": "$POD",
        "remote": "$REMOTE_IP:$PORT",
        "small_link": "$LAB-up mtu $UPLINK_MTU",
        "icmp_rule": "--icmp-type 3/4 -j DROP",
    },
    "observed_in_window": {
        "socket": """$info""",
        "icmp_dropped_before_collect": $drops_before,
        "icmp_dropped_after_collect": $drops_after,
    },
    "notes": [
        "iptables-save prints --icmp-type fragmentation-needed as 3/4.",
        "ip_forward counts Ip FragFails for each packet too big to forward with DF.",
    ],
}
with open(sys.argv[1], "w") as f:
    json.dump(facts, f, indent=2)
    f.write("\n")
PY
say "wrote $OUT and $FACTS"
