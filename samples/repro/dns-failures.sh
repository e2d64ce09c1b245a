#!/usr/bin/env bash
# Reproduces DNS queries that are never answered, for one name, and slow
# answers for another, and collects a bundle while it happens:
#   samples/repro/dns-failures.sh OUT.capsnap
# writes OUT.capsnap and OUT.facts.json (what a correct detection must name).
#
# The scene: a pod (dns-pod, 10.245.1.5) resolves names through the C
# library's stub resolver (getaddrinfo, /etc/resolv.conf from
# /etc/netns/dns-pod/: nameserver 10.53.0.2, timeout:1 attempts:2) against
# a cluster DNS server (dns-dns, 10.53.0.2) routed through the node
# (dns-node, where capsnap runs). The server answers web/api/db.shop.test
# at once, slow.shop.test after 0.7 s, and never answers
# blackhole.shop.test: the stub sends that name's A and AAAA queries,
# sends them again after 1 s, and gives up after 2 s ("Temporary failure
# in name resolution"). Nothing is simulated: the queries, their
# retransmissions and the missing answers are the C library's and the
# kernel's own, checked with our own tcpdump in the pod.
#
# Needs root, iproute2, tcpdump, python3, tar+zstd, capsnap (CAPSNAP=path).
# Leaves nothing behind (trap EXIT).
set -euo pipefail

LAB=dns
ID=dns-failures
# shellcheck source=samples/repro/nat-lab.sh
source "$(dirname "$0")/nat-lab.sh"
lab_preflight "$@"
NODE=$LAB-node
POD=$LAB-pod
SERVER_NS=$LAB-dns
POD_IP=10.245.1.5
SERVER_IP=10.53.0.2
IGNORED=blackhole.shop.test
SLOW=slow.shop.test
DELAY=0.7
OK_NAMES=(web.shop.test api.shop.test db.shop.test)
# ip netns exec bind-mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf.
RESOLV_DIR=/etc/netns/$POD
dns_cleanup() {
    lab_cleanup
    rm -rf "$RESOLV_DIR"
}
trap dns_cleanup EXIT
lab_teardown

lab_bin coredns "$HERE/dns-failures.py"
lab_bin app "$HERE/dns-failures.py"

ip netns add "$NODE"
ip netns add "$POD"
ip netns add "$SERVER_NS"
for ns in "$NODE" "$POD" "$SERVER_NS"; do
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
veth "$NODE" "$LAB-pod0" "$POD" eth0
veth "$NODE" "$LAB-dns0" "$SERVER_NS" eth0
ip -n "$POD" addr add "$POD_IP/24" dev eth0
ip -n "$POD" route add default via 10.245.1.1
ip -n "$NODE" addr add 10.245.1.1/24 dev "$LAB-pod0"
ip -n "$NODE" addr add 10.53.0.1/24 dev "$LAB-dns0"
ip -n "$SERVER_NS" addr add "$SERVER_IP/24" dev eth0
ip -n "$SERVER_NS" route add default via 10.53.0.1
ip netns exec "$NODE" sysctl -qw net.ipv4.ip_forward=1
mkdir -p "$RESOLV_DIR"
printf 'nameserver %s\noptions timeout:1 attempts:2\n' "$SERVER_IP" >"$RESOLV_DIR/resolv.conf"

start_in "$SERVER_NS" coredns "$WORK/bin/coredns" coredns "$SERVER_IP" "$IGNORED" "$SLOW" "$DELAY"
ip netns exec "$POD" tcpdump -U -n -i eth0 -w "$WORK/pod.pcap" 'udp port 53' 2>"$WORK/tcpdump.log" &
td=$!
for _ in $(seq 100); do
    grep -q listening "$WORK/tcpdump.log" && break
    nap 0.05
done

collect_start "$NODE" "$POD"
nap 0.2
start_in "$POD" app "$WORK/bin/app" app 1 0 "${OK_NAMES[@]}" "$SLOW" "$IGNORED"
collect_finish
kill -INT "$td"
wait "$td" || true
has_line "$WORK/app.log" done || fail "the lookups did not finish within the window: $(cat "$WORK/app.log")"

# What the client saw, and what went over the wire (our own capture).
result() { "$PY" -c 'import json,sys
for l in open(sys.argv[1]):
    if l.startswith("{") and json.loads(l)["name"] == sys.argv[2]:
        o = json.loads(l); print(o["result"], o["seconds"])' "$WORK/app.log" "$1"; }
read -r ignored_result ignored_secs <<<"$(result "$IGNORED" | tr ' ' '_' | sed 's/_\([0-9.]*\)$/ \1/')"
read -r slow_result slow_secs <<<"$(result "$SLOW")"
wire() { tcpdump -nr "$WORK/pod.pcap" 2>/dev/null | grep -c "$1" || true; }
ignored_queries=$(wire "? $IGNORED\.")
ignored_answers=$(tcpdump -vv -nr "$WORK/pod.pcap" 2>/dev/null | grep "$SERVER_IP.53 >" | grep -c "? $IGNORED\." || true)
slow_answers=$(tcpdump -vv -nr "$WORK/pod.pcap" 2>/dev/null | grep "$SERVER_IP.53 >" | grep -c "? $SLOW\." || true)
server_read=$(grep -c "^query $IGNORED " "$WORK/coredns.log" || true)
say "client: $IGNORED -> $ignored_result after $ignored_secs s, $SLOW -> $slow_result after $slow_secs s;" \
    "wire: $ignored_queries queries and $ignored_answers answers for $IGNORED, $slow_answers answers for $SLOW;" \
    "the server read $server_read queries for $IGNORED"
[[ $ignored_result != ok ]] || fail "$IGNORED resolved"
((ignored_queries >= 4)) || fail "expected A and AAAA queries for $IGNORED, each sent twice; saw $ignored_queries"
((ignored_answers == 0)) || fail "$IGNORED was answered"
((server_read >= 2)) || fail "the server did not read the queries for $IGNORED (it must receive and ignore them)"
[[ $slow_result == ok ]] || fail "$SLOW did not resolve: $slow_result"
awk "BEGIN{exit !($slow_secs >= $DELAY)}" || fail "$SLOW took $slow_secs s, less than $DELAY"
for n in "${OK_NAMES[@]}"; do
    read -r r _ <<<"$(result "$n")"
    [[ $r == ok ]] || fail "$n did not resolve: $r"
done

# The evidence, read back from the bundle as the detection will.
B=$WORK/bundle
P="$POD=$B/netns/$POD/packets.pcapng"
unanswered=$(q "select count(*) from dns where capture = '$POD' and not response and not retransmission and answered = false and query_name = '$IGNORED'" "$P")
retried=$(q "select count(*) from dns where capture = '$POD' and not response and retransmission and query_name = '$IGNORED'" "$P")
slow_rows=$(q "select count(*) from dns where capture = '$POD' and not response and not retransmission and latency_us >= 500000 and query_name = '$SLOW'" "$P")
say "bundle: $unanswered unanswered lookups and $retried retransmissions for $IGNORED, $slow_rows slow lookups for $SLOW"
((unanswered == 2)) || fail "the bundle's dns table has $unanswered unanswered lookups for $IGNORED, expected 2 (A, AAAA)"
((retried >= 2)) || fail "the bundle's dns table has $retried retransmitted queries for $IGNORED"
((slow_rows == 2)) || fail "the bundle's dns table has $slow_rows slow lookups for $SLOW, expected 2 (A, AAAA)"

"$PY" - "$FACTS" <<PY
import json, sys
facts = {
    "detection": "dns-failures",
    "named": ["server", "ignored_name", "slow_name"],
    "objects": {
        "server": "$SERVER_IP",
        "ignored_name": "$IGNORED",
        "slow_name": "$SLOW",
        "client": "$POD_IP",
        "netns": "$POD",
    },
    "evidence": {
        "dns": "netns/$POD/packets.pcapng: A and AAAA queries for $IGNORED from $POD_IP to "
            "$SERVER_IP:53, sent again after 1 s (same id and port: retransmission), never "
            "answered; $SLOW answered after ${DELAY} s; web/api/db.shop.test answered at once",
        "bundle_unanswered_lookups": $unanswered,
        "bundle_retransmitted_queries": $retried,
        "bundle_slow_lookups": $slow_rows,
    },
    "observed_by_the_script": {
        "ignored_result": "$ignored_result",
        "ignored_seconds": $ignored_secs,
        "slow_seconds": $slow_secs,
        "ignored_queries_on_the_wire": $ignored_queries,
        "ignored_answers_on_the_wire": $ignored_answers,
        "server_read_ignored_queries": $server_read,
    },
    "notes": [
        "resolv.conf (timeout:1 attempts:2) shortens glibc's defaults (5 s, 2 attempts) so "
        "the stub gives up inside the 3 s window; the behaviour is otherwise the default.",
        "The node forwards between the pod and the server: its capture sees each message on "
        "both interfaces; the detection reports the capture point that saw the most lookups.",
    ],
}
with open(sys.argv[1], "w") as f:
    json.dump(facts, f, indent=2)
    f.write("\n")
PY
say "wrote $OUT and $FACTS"
