#!/usr/bin/env bash
# Reproduces an accept queue overflow for real and collects a bundle while
# it happens:
#   samples/repro/accept-queue-overflow.sh OUT.capsnap
# writes OUT.capsnap and OUT.facts.json (what a correct detection must name).
#
# The scene: a server (stuck-acceptor, in namespace inp-aq-srv) listens on
# 10.203.61.1:8080 with a backlog of 8 and never calls accept(2), as a
# server whose workers are all blocked. A client in inp-aq-cli opens a new
# connection every two seconds (after a burst that fills the queue) and keeps
# it. The first 9 complete the handshake
# and wait in the accept queue (backlog + 1: sk_acceptq_is_full tests
# ack_backlog > max_ack_backlog, include/net/sock.h); every later SYN is
# dropped by tcp_conn_request (net/ipv4/tcp_input.c), which counts
# TcpExtListenOverflows and TcpExtListenDrops, and the clients retransmit
# their SYNs. The client keeps connecting during the collect window, so
# the counters rise inside it. Checked before collecting: the queue full
# (ss Recv-Q > backlog) and ListenOverflows rising; after: the bundle's
# two copies of /proc/net/netstat differ.
#
# Needs root, iproute2, ss, python3, tar+zstd, capsnap (CAPSNAP=path).
# Leaves nothing behind (trap EXIT).
set -euo pipefail

# shellcheck source=samples/repro/pair-lab.sh
source "$(dirname "$0")/pair-lab.sh"
pair_lab_init aq 61 "ip ss python3 tar" "$@"
PORT=8080
BACKLOG=8
pair_lab_up

# The server: listens and never accepts. Its comm is its file name.
cat >"$WORK/stuck-acceptor" <<PYEOF
#!$PY
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("$ADDR", $PORT))
s.listen($BACKLOG)
print("ready", flush=True)
time.sleep(120)
PYEOF
# The client: enough connections to fill the queue, then a new one every
# two seconds, each kept open (few flows, so that the sample stays small).
cat >"$WORK/aq-client" <<PYEOF
#!$PY
import socket, time
held = []
while len(held) < 200:
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(("$ADDR", $PORT))
    except BlockingIOError:
        pass
    held.append(c)
    time.sleep(0.05 if len(held) <= $BACKLOG + 2 else 2)
time.sleep(120)
PYEOF
chmod 755 "$WORK/stuck-acceptor" "$WORK/aq-client"

pair_lab_server "$WORK/stuck-acceptor"

overflows() { netstat_now "$SRV" ListenOverflows; }
before=$(overflows)
ip netns exec "$CLI" "$WORK/aq-client" >"$WORK/client.log" 2>&1 &
pids+=($!)
nap 2.5
# The fault, checked before collecting: the queue full, overflows rising.
queue=$(ip netns exec "$SRV" ss -Hltn "sport = :$PORT" | awk '{print $2 " " $3}')
read -r recvq sendq <<<"$queue"
now=$(overflows)
echo "fault present: $ADDR:$PORT Recv-Q $recvq Send-Q $sendq; ListenOverflows $before -> $now" >&2
((recvq > BACKLOG && sendq == BACKLOG)) || fail "the accept queue is not full: Recv-Q $recvq Send-Q $sendq"
((now > before)) || fail "ListenOverflows did not rise ($before -> $now)"

pair_lab_collect --netns "$SRV" --no-ebpf
after=$(overflows)

inside=$(netstat_in_window "$SRV" ListenOverflows) || fail "the bundle lacks the two copies of /proc/net/netstat"
((inside > 0)) || fail "ListenOverflows did not rise inside the window: +$inside"
echo "bundle: ListenOverflows +$inside inside the window ($now before, $after after)" >&2

"$PY" - "$FACTS" <<PY
import json, sys
facts = {
    "detection": "accept-queue-overflow",
    "named": ["listener", "comm", "netns", "backlog"],
    "objects": {
        "listener": "$ADDR:$PORT",
        "comm": "stuck-acceptor",
        "pid": $server,
        "netns": "$SRV",
        "backlog": $BACKLOG,
    },
    "observed_before_collection": {
        "recv_q": $recvq,
        "send_q": $sendq,
        "listen_overflows_before_client": $before,
        "listen_overflows_before_collect": $now,
        "listen_overflows_after_collect": $after,
    },
    "notes": [
        "The accept queue holds backlog + 1 connections (sk_acceptq_is_full).",
        "ListenOverflows and ListenDrops are per network namespace.",
    ],
}
with open(sys.argv[1], "w") as f:
    json.dump(facts, f, indent=2)
    f.write("\n")
PY
echo "wrote $OUT and $FACTS" >&2
