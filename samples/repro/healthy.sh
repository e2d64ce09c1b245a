#!/usr/bin/env bash
# Collects a bundle from a healthy NAT setup, the sample every detection
# must stay silent on:
#   samples/repro/healthy.sh OUT.capsnap
# writes OUT.capsnap and OUT.facts.json.
#
# The scene: a pod (cs-ok-pod, 10.244.9.5) behind a node (cs-ok-node) that
# MASQUERADEs it towards a web server (cs-ok-remote, 192.168.90.2:8080).
# The pod's client ("shop") does rounds of GET /small, GET /large (256 KiB)
# and POST /orders, one connection each, every 0.4 s through the capture
# window; every request succeeds and every connection closes with FINs.
# Checked: all requests answered, no RST anywhere (our own tcpdump on both
# sides and the bundle's captures), no conntrack INVALID, no socket left in
# FIN_WAIT2 or CLOSE_WAIT in the pod, no retransmission in the eBPF events.
#
# BUSY=1 makes it a busy node instead (tests/detect_samples.rs
# busy_healthy_node_fires_nothing_lab): offloads off, a 12 s window with
# 1500 short connections ("crowd", 8 threads) and one 200 MB download
# ("bulk") through the NAT, so that capsnap's own capture is under
# pressure; the same checks hold, and no detection may fire.
#
# Needs root, iproute2, iptables, conntrack, tcpdump, ss, python3, tar+zstd,
# capsnap (CAPSNAP=path) with bpftrace, and ethtool with BUSY=1. Leaves
# nothing behind (trap EXIT).
set -euo pipefail

LAB=cs-ok
ID=healthy
# shellcheck source=samples/repro/nat-lab.sh
source "$(dirname "$0")/nat-lab.sh"
lab_preflight "$@"
trap lab_cleanup EXIT
lab_teardown

NODE=$LAB-node
POD=$LAB-pod
REMOTE=$LAB-remote
POD_IP=10.244.9.5
NAT_IP=192.168.90.1
WEB=192.168.90.2:8080
BUSY=${BUSY:-}
CROWD=1500
BULK=$((200 << 20))
lab_bin web "$HERE/healthy.py"
lab_bin shop "$HERE/healthy.py"
lab_bin crowd "$HERE/healthy.py"
lab_bin bulk "$HERE/healthy.py"

ip netns add "$NODE"
ip netns add "$POD"
ip netns add "$REMOTE"
for ns in "$NODE" "$POD" "$REMOTE"; do
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
veth "$NODE" "$LAB-pod0" "$POD" eth0
veth "$NODE" "$LAB-up" "$REMOTE" eth0
if [[ -n $BUSY ]]; then
    # Without segmentation offloads every packet reaches the capture as a
    # wire-sized frame: 200 MB is about 140,000 of them per capture point.
    for dev in "$NODE:$LAB-pod0" "$NODE:$LAB-up" "$POD:eth0" "$REMOTE:eth0"; do
        ip netns exec "${dev%%:*}" ethtool -K "${dev#*:}" tso off gso off gro off >/dev/null 2>&1 ||
            fail "ethtool could not turn offloads off on ${dev#*:}"
    done
fi
ip -n "$POD" addr add "$POD_IP/24" dev eth0
ip -n "$POD" route add default via 10.244.9.1
ip -n "$NODE" addr add 10.244.9.1/24 dev "$LAB-pod0"
ip -n "$NODE" addr add "$NAT_IP/24" dev "$LAB-up"
ip -n "$REMOTE" addr add "${WEB%:*}/24" dev eth0
ip netns exec "$NODE" sysctl -qw net.ipv4.ip_forward=1
ip netns exec "$NODE" iptables -t nat -A POSTROUTING -s 10.244.0.0/16 -o "$LAB-up" -j MASQUERADE

start_in "$REMOTE" web "$WORK/bin/web" web "${WEB%:*}" "${WEB#*:}"

ip netns exec "$NODE" tcpdump -U -n -s 96 -i any -w "$WORK/node.pcap" 'tcp' 2>"$WORK/tcpdump-node.log" &
td_node=$!
ip netns exec "$POD" tcpdump -U -n -s 96 -i any -w "$WORK/pod.pcap" 'tcp' 2>"$WORK/tcpdump-pod.log" &
td_pod=$!
for _ in $(seq 100); do
    grep -q listening "$WORK/tcpdump-node.log" && grep -q listening "$WORK/tcpdump-pod.log" && break
    nap 0.05
done

# One round before the window: conntrack then holds finished NAT entries.
start_in "$POD" warmup "$WORK/bin/shop" shop "http://$WEB" 1 0
for _ in $(seq 100); do
    grep -q '^done' "$WORK/warmup.log" && break
    nap 0.05
done
grep -q '^done 3 ok' "$WORK/warmup.log" || fail "the warm-up requests failed: $(tail -3 "$WORK/warmup.log")"

if [[ -n $BUSY ]]; then
    COLLECT_DURATION=12s WATCH_PING=$POD_IP collect_start "$NODE" "$POD"
    nap 0.3
    start_in "$POD" crowd "$WORK/bin/crowd" crowd "http://$WEB" "$CROWD" 8 8
    start_in "$POD" bulk "$WORK/bin/bulk" bulk "http://$WEB" "$BULK"
    collect_finish
    grep -q "^done $CROWD ok" "$WORK/crowd.log" || fail "not every short connection succeeded: $(tail -3 "$WORK/crowd.log")"
    grep -q "^done $BULK bytes" "$WORK/bulk.log" || fail "the bulk download did not complete: $(tail -3 "$WORK/bulk.log")"
    requests=$((CROWD + 1))
else
    # A window long enough for the 15 requests on a loaded machine (CI
    # builds while the labs run: at 3 s, 12 of 15 fell inside it once).
    COLLECT_DURATION=8s WATCH_PING=$POD_IP collect_start "$NODE" "$POD"
    nap 0.3
    start_in "$POD" shop "$WORK/bin/shop" shop "http://$WEB" 5 0.4
    collect_finish
    grep -q '^done 15 ok' "$WORK/shop.log" || fail "not every request succeeded: $(tail -3 "$WORK/shop.log")"
    requests=15
fi
kill -INT "$td_node" "$td_pod"
wait "$td_node" "$td_pod" || true

rsts=$(tcpdump -nr "$WORK/node.pcap" 'tcp[tcpflags] & tcp-rst != 0' 2>/dev/null | wc -l)
rsts_pod=$(tcpdump -nr "$WORK/pod.pcap" 'tcp[tcpflags] & tcp-rst != 0' 2>/dev/null | wc -l)
invalid=$(for ns in "$NODE" "$POD"; do ip netns exec "$ns" conntrack -S; done |
    sed -n 's/.* invalid=\([0-9]*\).*/\1/p' | awk '{s += $1} END {print s + 0}')
half=$(ip netns exec "$POD" ss -tnH state fin-wait-2 state close-wait | wc -l)
say "own captures: $rsts RSTs on the node, $rsts_pod in the pod; conntrack invalid $invalid; half-closed sockets in the pod $half"
((rsts == 0 && rsts_pod == 0)) || fail "RSTs were sent"
((invalid == 0)) || fail "conntrack counted $invalid INVALID packets"
((half == 0)) || fail "sockets left half-closed in the pod"

B=$WORK/bundle
bad=$(q "select count(*) from packets where rst" "host=$B/netns/host/packets.pcapng" "$POD=$B/netns/$POD/packets.pcapng")
flows=$(q "select count(*) from flows where proto = 'tcp' and dst_port = ${WEB#*:}" "$POD=$B/netns/$POD/packets.pcapng")
retrans=$(grep -c '"event":"retransmit"' "$B/ebpf/events.jsonl" || true)
pod_inode=$("$PY" -c 'import json,sys; print([n["inode"] for n in json.load(open(sys.argv[1]))["namespaces"] if n["label"] == sys.argv[2]][0])' "$B/manifest.json" "$POD")
host_inode=$("$PY" -c 'import json,sys; print([n["inode"] for n in json.load(open(sys.argv[1]))["namespaces"] if n["label"] == "host"][0])' "$B/manifest.json")
lab_retrans=$(grep -E '"event":"(retransmit|reset_sent|reset_received)"' "$B/ebpf/events.jsonl" |
    grep -cE "\"netns\":($pod_inode|$host_inode)," || true)
say "bundle: $bad RSTs in the captures, $flows connections to the web server in the pod capture," \
    "$lab_retrans retransmit/reset events in the lab's namespaces (${retrans:-0} machine-wide)"
((bad == 0)) || fail "the bundle's captures hold RSTs"
((flows >= 15)) || fail "the bundle's pod capture has $flows connections, expected at least 15"
# A busy node retransmits now and then (a veth backlog full under the
# bulk transfer): recorded, and no detection may make a fault of it.
[[ -n $BUSY ]] || ((lab_retrans == 0)) || fail "the bundle has retransmit or reset events in the lab's namespaces"
pressure=$(q "select coalesce(sum(packets_received), 0), coalesce(sum(packets_kernel_dropped), 0) from collection where packets_received is not null" "$OUT")
say "capsnap's capture: packets received, dropped by the kernel = $pressure"

if [[ -n $BUSY ]]; then
    scene="$CROWD short connections (GET 2 KiB, 8 threads) and one $BULK-byte download in the capture window, offloads off"
else
    scene="15 requests in the capture window (GET 2 KiB, GET 256 KiB, POST)"
fi

"$PY" - "$FACTS" <<PY
import json, sys
facts = {
    "detection": None,
    "objects": {},
    "description": "Healthy NAT setup: pod $POD_IP behind node MASQUERADE ($NAT_IP) talking "
        "HTTP to $WEB; $scene, "
        "all answered, every connection closed with FINs. No detection may fire.",
    "netns": {"host": "the node, $NODE", "$POD": "the pod"},
    "observed_by_the_script": {
        "requests_ok": $requests,
        "capture_received_and_kernel_dropped": "$pressure",
        "rsts_node": $rsts,
        "rsts_pod": $rsts_pod,
        "conntrack_invalid": $invalid,
        "pod_fin_wait2_or_close_wait_sockets": $half,
        "bundle_tcp_flows_to_web": $flows,
        "lab_retransmit_or_reset_events": $lab_retrans,
    },
    "notes": [
        "ebpf/events.jsonl covers the whole machine: events of other namespaces (other "
        "workloads running meanwhile) may appear; the lab's are those whose netns is the "
        "inode of host or $POD in manifest.json.",
    ],
}
with open(sys.argv[1], "w") as f:
    json.dump(facts, f, indent=2)
    f.write("\n")
PY
say "wrote $OUT and $FACTS"
