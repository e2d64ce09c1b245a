#!/usr/bin/env bash
# Reproduces ephemeral port exhaustion for real and collects a bundle while
# it happens:
#   samples/repro/ephemeral-port-exhaustion.sh OUT.capsnap
# writes OUT.capsnap and OUT.facts.json (what a correct detection must name).
#
# The scene: a client namespace (inp-pe-cli) whose net.ipv4.ip_local_port_range
# is 40000 40009 (a per-namespace sysctl; the namespace is deleted
# afterwards, so nothing is restored) opens connections to a server in
# inp-pe-srv (10.203.63.1:7000) and keeps them all, as a client that leaks
# its connections or opens one per request. After 10 connections every
# port of the range is held towards that destination: inet_hash_connect
# (net/ipv4/inet_hashtables.c) finds none and connect(2) fails with
# EADDRNOTAVAIL, before any SYN is sent. The client (pe-client) keeps
# trying every 50 ms during the collect window; capsnap's eBPF probe sees
# each failure. Checked before collecting: the client got EADDRNOTAVAIL with
# 10 connections established; after: the bundle's events hold the errors.
#
# Needs root, iproute2, ss, python3, bpftrace, tar+zstd, capsnap
# (CAPSNAP=path). Leaves nothing behind (trap EXIT).
set -euo pipefail

# shellcheck source=samples/repro/pair-lab.sh
source "$(dirname "$0")/pair-lab.sh"
pair_lab_init pe 63 "ip ss python3 tar bpftrace" "$@"
PORT=7000
LOW=40000
HIGH=40009
pair_lab_up

ip netns exec "$CLI" sysctl -qw net.ipv4.ip_local_port_range="$LOW $HIGH"

# The server: accepts and keeps every connection.
cat >"$WORK/pe-server" <<PYEOF
#!$PY
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("$ADDR", $PORT))
s.listen(128)
print("ready", flush=True)
held = []
while True:
    held.append(s.accept()[0])
PYEOF
# The client: connects and keeps each connection; once the ports are used
# up it retries every 50 ms, counting the errors.
cat >"$WORK/pe-client" <<PYEOF
#!$PY
import errno, socket, time
held, failed = [], 0
while True:
    c = socket.socket()
    try:
        c.connect(("$ADDR", $PORT))
        held.append(c)
    except OSError as e:
        c.close()
        if e.errno != errno.EADDRNOTAVAIL:
            raise
        failed += 1
        if failed == 1:
            print(f"exhausted after {len(held)}", flush=True)
        time.sleep(0.05)
PYEOF
chmod 755 "$WORK/pe-server" "$WORK/pe-client"

pair_lab_server "$WORK/pe-server"

ip netns exec "$CLI" "$WORK/pe-client" >"$WORK/client.log" 2>&1 &
client=$!
pids+=("$client")
for _ in $(seq 100); do
    grep -qs exhausted "$WORK/client.log" && break
    nap 0.05
done
# The fault, checked before collecting: EADDRNOTAVAIL with the range held.
held=$(ip netns exec "$CLI" ss -Htn state established "dst $ADDR:$PORT" | wc -l)
echo "fault present: $(cat "$WORK/client.log"); $held connections established to $ADDR:$PORT from $LOW-$HIGH" >&2
grep -qs "exhausted after $((HIGH - LOW + 1))" "$WORK/client.log" || fail "the client did not run out of ports: $(cat "$WORK/client.log")"
((held == HIGH - LOW + 1)) || fail "$held connections established, not $((HIGH - LOW + 1))"
kill -0 "$client" || fail "the client died: $(tail -3 "$WORK/client.log")"

pair_lab_collect --netns "$CLI" --no-packets

seen=$(grep -c "\"event\":\"connect_error\".*\"pid\":$client,.*\"daddr\":\"$ADDR\",\"dport\":$PORT,\"ret\":-99," "$WORK/bundle/ebpf/events.jsonl" || true)
((seen > 0)) || fail "no EADDRNOTAVAIL connect_error of pid $client in the bundle's events"
echo "bundle: $seen EADDRNOTAVAIL connect errors of pe-client pid $client" >&2

"$PY" - "$FACTS" <<PY
import json, sys
facts = {
    "detection": "ephemeral-port-exhaustion",
    "named": ["destination", "netns", "comm", "port_range", "errno"],
    "objects": {
        "destination": "$ADDR:$PORT",
        "netns": "$CLI",
        "comm": "pe-client",
        "pid": $client,
        "port_range": "$LOW $HIGH",
        "errno": "EADDRNOTAVAIL",
    },
    "observed_before_collection": {
        "established_towards_destination": $held,
        "eaddrnotavail_in_bundle": $seen,
    },
    "notes": [
        "ip_local_port_range is per network namespace.",
        "No SYN leaves for a connect that fails with EADDRNOTAVAIL: only the errno shows it.",
    ],
}
with open(sys.argv[1], "w") as f:
    json.dump(facts, f, indent=2)
    f.write("\n")
PY
echo "wrote $OUT and $FACTS" >&2
