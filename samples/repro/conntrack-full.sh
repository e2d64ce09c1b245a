#!/usr/bin/env bash
# Reproduces a full conntrack table in one namespace for real and collects
# a bundle while it happens:
#   samples/repro/conntrack-full.sh OUT.capsnap
# writes OUT.capsnap and OUT.facts.json (what a correct detection must name).
#
# The scene: a server namespace (inp-ct-srv) tracks connections (an
# iptables rule matching conntrack state turns conntrack on there) and
# accepts and keeps every connection a client in inp-ct-cli opens, 50 a
# second. nf_conntrack_max is one limit for the machine, compared with
# each namespace's own count (__nf_conntrack_alloc,
# net/netfilter/nf_conntrack_core.c): it is lowered to MAX for the run
# (and restored on exit, whatever happens; the host namespace tracks
# nothing here, checked first). Once the server namespace holds MAX
# entries, all ESTABLISHED and ASSURED (so early_drop finds nothing to
# evict), the first packet of each new connection is dropped, the drop
# counter of /proc/net/stat/nf_conntrack rises, and recent kernels (6.18 here)
# log "nf_conntrack: table full in netns N, dropping packet". The client
# namespace tracks nothing and must not be named. Checked before
# collecting: the count at MAX and drops rising; after: the bundle's two
# copies of the namespace's nf_conntrack stats differ.
#
# Needs root, iproute2, iptables, python3, tar+zstd, capsnap (CAPSNAP=path).
# Leaves nothing behind (trap EXIT).
set -euo pipefail

# shellcheck source=samples/repro/pair-lab.sh
source "$(dirname "$0")/pair-lab.sh"
pair_lab_init ct 64 "ip iptables python3 tar" "$@"
PORT=6000
MAX=200
MAX_WAS=$(cat /proc/sys/net/netfilter/nf_conntrack_max 2>/dev/null || true)
lab_undo() {
    [[ -z $MAX_WAS ]] || echo "$MAX_WAS" >/proc/sys/net/netfilter/nf_conntrack_max
}
pair_lab_up

[[ -n $MAX_WAS ]] || fail "no /proc/sys/net/netfilter/nf_conntrack_max (nf_conntrack not loaded)"
ip netns exec "$SRV" iptables -A INPUT -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT
host_count=$(cat /proc/sys/net/netfilter/nf_conntrack_count)
((host_count < MAX / 2)) || fail "the host namespace tracks $host_count connections: lowering nf_conntrack_max to $MAX would drop its packets"

# The server: accepts and keeps every connection.
cat >"$WORK/ct-server" <<PYEOF
#!$PY
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("$ADDR", $PORT))
s.listen(4096)
print("ready", flush=True)
held = []
while True:
    held.append(s.accept()[0])
PYEOF
# The client: 50 new connections a second, each kept (non-blocking: those
# whose SYN is dropped just retransmit).
cat >"$WORK/ct-client" <<PYEOF
#!$PY
import socket, time
held = []
while len(held) < 1500:
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(("$ADDR", $PORT))
    except BlockingIOError:
        pass
    held.append(c)
    time.sleep(0.02)
time.sleep(120)
PYEOF
chmod 755 "$WORK/ct-server" "$WORK/ct-client"

pair_lab_server "$WORK/ct-server"

drops() {
    # /proc/net/stat/nf_conntrack: a header, then one line of hex counters
    # per CPU; the namespace's drops are the sum of the `drop` column.
    ip netns exec "$SRV" "$PY" -c '
lines = [l.split() for l in open("/proc/net/stat/nf_conntrack")]
at = lines[0].index("drop")
print(sum(int(l[at], 16) for l in lines[1:]))'
}
echo "$MAX" >/proc/sys/net/netfilter/nf_conntrack_max
before=$(drops)
ip netns exec "$CLI" "$WORK/ct-client" >"$WORK/client.log" 2>&1 &
client=$!
pids+=("$client")
nap 6
# The fault, checked before collecting: the namespace's table at the limit,
# drops rising.
count=$(ip netns exec "$SRV" cat /proc/sys/net/netfilter/nf_conntrack_count)
now=$(drops)
echo "fault present: $count entries in $SRV (max $MAX); drop $before -> $now" >&2
((count >= MAX)) || fail "the table is not full: $count of $MAX"
((now > before)) || fail "conntrack drops did not rise ($before -> $now)"

pair_lab_collect --netns "$SRV" --netns "$CLI" --no-ebpf --no-packets
after=$(drops)
echo "$MAX_WAS" >/proc/sys/net/netfilter/nf_conntrack_max

inside=$("$PY" - "$WORK/bundle/netns/$SRV" <<'PY'
import sys
def drops(path):
    lines = [l.split() for l in open(path)]
    at = lines[0].index("drop")
    return sum(int(l[at], 16) for l in lines[1:])
d = sys.argv[1]
print(drops(f"{d}/proc/net/stat/nf_conntrack") - drops(f"{d}/window-open/proc/net/stat/nf_conntrack"))
PY
) || fail "the bundle lacks the two copies of the namespace's nf_conntrack stats"
((inside > 0)) || fail "conntrack drops did not rise inside the window: +$inside"
inode=$(stat -L -c %i "/run/netns/$SRV")
logged=$(grep -c "table full in netns $inode, dropping packet" "$WORK/bundle/kmsg.txt" || true)
echo "bundle: drop +$inside inside the window ($now before, $after after); $logged 'table full in netns $inode' lines in kmsg.txt" >&2

"$PY" - "$FACTS" <<PY
import json, sys
facts = {
    "detection": "conntrack-full",
    "named": ["netns", "max_entries", "top_source"],
    "objects": {
        "netns": "$SRV",
        "max_entries": $MAX,
        "top_source": "10.203.64.2",
        "netns_inode": $inode,
    },
    "observed_before_collection": {
        "entries": $count,
        "drop_before_client": $before,
        "drop_before_collect": $now,
        "drop_after_collect": $after,
        "table_full_lines_in_bundle": $logged,
    },
    "notes": [
        "nf_conntrack_max is global, compared with each namespace's own count.",
        "Not named: $CLI, which tracks nothing.",
    ],
}
with open(sys.argv[1], "w") as f:
    json.dump(facts, f, indent=2)
    f.write("\n")
PY
echo "wrote $OUT and $FACTS" >&2
