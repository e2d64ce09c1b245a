#!/usr/bin/env bash
# Reproduces a TIME_WAIT bucket overflow for real and collects a bundle
# while it happens:
#   samples/repro/time-wait-overflow.sh OUT.capsnap
# writes OUT.capsnap and OUT.facts.json (what a correct detection must name).
#
# The scene: a client namespace (inp-tw-cli) whose net.ipv4.tcp_max_tw_buckets
# is 32 (a per-namespace sysctl; the namespace is deleted afterwards, so
# nothing is restored) opens short connections to a server in inp-tw-srv
# (10.203.62.1:9000), 50 a second, and closes each first, so each of its
# sockets must wait in TIME_WAIT. Once 32 wait, tcp_time_wait
# (net/ipv4/tcp_minisocks.c) finds no bucket (inet_twsk_alloc), counts
# TcpExtTCPTimeWaitOverflow and closes the socket at once. The client keeps
# going during the collect window, so the counter rises inside it. Checked
# before collecting: 32 sockets in TIME_WAIT and the counter rising; after:
# the bundle's two copies of /proc/net/netstat differ.
#
# Needs root, iproute2, ss, python3, tar+zstd, capsnap (CAPSNAP=path).
# Leaves nothing behind (trap EXIT).
set -euo pipefail

# shellcheck source=samples/repro/pair-lab.sh
source "$(dirname "$0")/pair-lab.sh"
pair_lab_init tw 62 "ip ss python3 tar" "$@"
PORT=9000
MAX_TW=32
pair_lab_up

ip netns exec "$CLI" sysctl -qw net.ipv4.tcp_max_tw_buckets=$MAX_TW

# The server: answers each connection and closes after the client did.
cat >"$WORK/tw-server" <<PYEOF
#!$PY
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("$ADDR", $PORT))
s.listen(128)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"hello\n")
    while c.recv(4096):
        pass
    c.close()
PYEOF
# The client: 50 short connections a second, closed first.
cat >"$WORK/tw-client" <<PYEOF
#!$PY
import socket, time
while True:
    c = socket.create_connection(("$ADDR", $PORT))
    c.recv(64)
    c.close()
    time.sleep(0.02)
PYEOF
chmod 755 "$WORK/tw-server" "$WORK/tw-client"

pair_lab_server "$WORK/tw-server"

overflows() { netstat_now "$CLI" TCPTimeWaitOverflow; }
before=$(overflows)
ip netns exec "$CLI" "$WORK/tw-client" >"$WORK/client.log" 2>&1 &
client=$!
pids+=("$client")
nap 2.5
# The fault, checked before collecting: the buckets full, overflows rising.
tw=$(ip netns exec "$CLI" ss -Htan state time-wait | wc -l)
now=$(overflows)
echo "fault present: $tw sockets in TIME_WAIT in $CLI (max $MAX_TW); TCPTimeWaitOverflow $before -> $now" >&2
((tw >= MAX_TW)) || fail "TIME_WAIT is not full: $tw of $MAX_TW"
((now > before)) || fail "TCPTimeWaitOverflow did not rise ($before -> $now)"
kill -0 "$client" || fail "the client died: $(tail -3 "$WORK/client.log")"

pair_lab_collect --netns "$CLI" --no-ebpf --no-packets
after=$(overflows)

inside=$(netstat_in_window "$CLI" TCPTimeWaitOverflow) || fail "the bundle lacks the two copies of /proc/net/netstat"
((inside > 0)) || fail "TCPTimeWaitOverflow did not rise inside the window: +$inside"
echo "bundle: TCPTimeWaitOverflow +$inside inside the window ($now before, $after after)" >&2

"$PY" - "$FACTS" <<PY
import json, sys
facts = {
    "detection": "time-wait-overflow",
    "named": ["netns", "tcp_max_tw_buckets", "peer"],
    "objects": {
        "netns": "$CLI",
        "tcp_max_tw_buckets": $MAX_TW,
        "peer": "$ADDR:$PORT",
    },
    "observed_before_collection": {
        "time_wait": $tw,
        "tcp_time_wait_overflow_before_client": $before,
        "tcp_time_wait_overflow_before_collect": $now,
        "tcp_time_wait_overflow_after_collect": $after,
    },
    "notes": [
        "tcp_max_tw_buckets, sockstat tw and TCPTimeWaitOverflow are per network namespace.",
        "Linux 6.18 logs nothing when it happens (no 'time wait bucket table overflow' line).",
    ],
}
with open(sys.argv[1], "w") as f:
    json.dump(facts, f, indent=2)
    f.write("\n")
PY
echo "wrote $OUT and $FACTS" >&2
