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

if (($# != 1)); then
    echo "usage: $0 OUT.capsnap" >&2
    exit 2
fi
if ((EUID != 0)); then
    echo "$0: needs root (network namespaces)" >&2
    exit 2
fi
for tool in ip ss python3 tar; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is missing" >&2; exit 2; }
done

OUT=$(realpath -m "$1")
FACTS=${OUT%.capsnap}.facts.json
CAPSNAP=${CAPSNAP:-capsnap}
SRV=inp-tw-srv
CLI=inp-tw-cli
WORK=/run/inp-tw-work
ADDR=10.203.62.1
PORT=9000
MAX_TW=32
PY=$(python3 -c 'import sys; print(sys.executable)')

pids=()
collector=
cleanup() {
    local p
    if [[ -n $collector ]] && kill -0 "$collector" 2>/dev/null; then
        kill -TERM "$collector" 2>/dev/null || true
        wait "$collector" 2>/dev/null || true
    fi
    [[ -z $collector ]] || rm -rf "$(dirname "$OUT")/.capsnap-staging-$collector"
    for p in "${pids[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
    echo "$0: reproduction failed: $*" >&2
    rm -f "$OUT" "$FACTS"
    exit 1
}
nap() { read -rt "$1" <> <(:) || true; } # sleep without an exec

cleanup # a previous run killed with SIGKILL
mkdir -p "$WORK" "$(dirname "$OUT")"
rm -f "$OUT" "$FACTS"

ip netns add "$SRV"
ip netns add "$CLI"
ip link add inp-tw-s0 netns "$SRV" type veth peer name inp-tw-c0 netns "$CLI"
ip -n "$SRV" addr add "$ADDR/24" dev inp-tw-s0
ip -n "$CLI" addr add 10.203.62.2/24 dev inp-tw-c0
for ns in "$SRV" "$CLI"; do
    ip -n "$ns" link set lo up
done
ip -n "$SRV" link set inp-tw-s0 up
ip -n "$CLI" link set inp-tw-c0 up

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

ip netns exec "$SRV" "$WORK/tw-server" >"$WORK/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    grep -qs ready "$WORK/server.log" && break
    nap 0.05
done
grep -qs ready "$WORK/server.log" || fail "the server did not start: $(cat "$WORK/server.log")"

overflows() {
    ip netns exec "$CLI" awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) k[i] = $i; h = 1 } else for (i = 1; i <= NF; i++) if (k[i] == "TCPTimeWaitOverflow") print $i }' /proc/net/netstat
}
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

others=$(ps -eo pid=,ppid=,args= | awk -v me=$$ '$1 != me && $2 != me && /repro\/[a-z-]+\.sh/ {printf "%s ", $1}')
[[ -z $others ]] || echo "$0: warning: other repro scripts are running (pids $others)" >&2
"$CAPSNAP" collect --duration 3s --netns "$CLI" --no-ebpf --no-packets -o "$OUT" >"$WORK/collect.log" 2>&1 &
collector=$!
collect_rc=0
wait "$collector" || collect_rc=$?
collector=
((collect_rc == 0)) || fail "capsnap collect exited with $collect_rc: $(tail -5 "$WORK/collect.log")"
after=$(overflows)

mkdir "$WORK/bundle"
tar --zstd -xf "$OUT" -C "$WORK/bundle"
inside=$("$PY" - "$WORK/bundle/netns/$CLI" <<'PY'
import sys
def counter(path):
    lines = [l.split() for l in open(path) if l.startswith("TcpExt:")]
    return int(dict(zip(lines[0][1:], lines[1][1:]))["TCPTimeWaitOverflow"])
d = sys.argv[1]
print(counter(f"{d}/proc/net/netstat") - counter(f"{d}/window-open/proc/net/netstat"))
PY
) || fail "the bundle lacks the two copies of /proc/net/netstat"
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
