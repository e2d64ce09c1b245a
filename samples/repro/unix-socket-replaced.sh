#!/usr/bin/env bash
# Reproduces incident 1 (DESIGN.md; seed 000, "unix socket replaced") for real
# and collects a bundle while the fault is present:
#   samples/repro/unix-socket-replaced.sh OUT.capsnap
# writes OUT.capsnap and OUT.facts.json (what a correct detection must name).
#
# The scene, as in the seed: a metrics daemon (nginx-custom-metrics, a small C
# program: its comm is "nginx-custom-me") runs in a "pod" (network namespace
# cs-usr-pod plus a private mount namespace with its own tmpfs /tmp) and
# listens on /tmp/prometheus-nginx.socket. A host security agent (secagent,
# in the host namespaces) runs every binary named like nginx with "-V" inside
# the namespaces of the process it found; the daemon has no -V flag, so the
# copy starts the service again: it unlinks the path and binds a new socket
# file there, and is killed by the agent a second later. The original
# listener keeps running, but the path now leads to a socket file nobody
# listens on: connecting gives ECONNREFUSED.
#
# Sequence: the agent's first scan (before collection) breaks the socket; the
# script checks that it is broken; capsnap collect starts (eBPF on, packets
# off); once its window is open (eBPF attached), the agent's next scan runs,
# so the eBPF exec log holds a probe ("nginx-custom-metrics -V", parent
# secagent) while the unix_diag snapshot shows the listener whose bound inode
# is not the file at its path (replaced=true).
#
# Needs root, iproute2 (ip netns), util-linux (unshare, nsenter), a C
# compiler (cc), python3, bpftrace. Leaves nothing behind (trap EXIT).
set -euo pipefail

if (($# != 1)); then
    echo "usage: $0 OUT.capsnap" >&2
    exit 2
fi
if ((EUID != 0)); then
    echo "$0: needs root (network and mount namespaces, eBPF)" >&2
    exit 2
fi
for tool in ip nsenter cc python3 bpftrace; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is missing" >&2; exit 2; }
done

OUT=$(realpath -m "$1")
FACTS=${OUT%.capsnap}.facts.json
# Only collects: the static collector build when given (as nat-lab.sh).
CAPSNAP=${CAPSNAP_COLLECTOR:-${CAPSNAP:-capsnap}}
HERE=$(cd "$(dirname "$0")" && pwd)
NS=cs-usr-pod
WORK=/run/cs-usr-work
SOCK=/tmp/prometheus-nginx.socket
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
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
    echo "$0: reproduction failed: $*" >&2
    rm -f "$OUT" "$FACTS"
    exit 1
}
nap() { read -rt "$1" <> <(:) || true; } # sleep without an exec (keeps the exec log clean)

cleanup # a previous run killed with SIGKILL
mkdir -p "$WORK/bin" "$(dirname "$OUT")"
rm -f "$OUT" "$FACTS"
cc -O2 -Wall -o "$WORK/bin/nginx-custom-metrics" "$HERE/nginx-custom-metrics.c"
{ echo "#!$PY"; tail -n +2 "$HERE/secagent.py"; } >"$WORK/bin/secagent"
chmod 755 "$WORK/bin/secagent"

ip netns add "$NS"
ip -n "$NS" link set lo up
# `ip netns exec` gives the daemon a mount namespace of its own (it
# remounts /sys there); a tmpfs on /tmp in it plays the container's /tmp.
ip netns exec "$NS" sh -c 'mount -t tmpfs -o mode=1777 cs-usr-tmp /tmp && exec "$0"' \
    "$WORK/bin/nginx-custom-metrics" >"$WORK/daemon.log" 2>&1 &
daemon=$!
pids+=("$daemon")

# Runs python code in the daemon's namespaces (where the socket path is).
in_pod() { nsenter -t "$daemon" -m -n "$PY" -c "$1"; }
probe_connect='
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1] if len(sys.argv) > 1 else "'$SOCK'")
    s.sendall(b"nginx_requests_total 1\n")
    print("connected")
except OSError as e:
    print(e.strerror)
'
for _ in $(seq 50); do
    [[ $(in_pod "$probe_connect" 2>/dev/null) == connected ]] && break
    nap 0.1
done
[[ $(in_pod "$probe_connect") == connected ]] || fail "the daemon does not accept on $SOCK"
[[ $(cat /proc/$daemon/comm) == nginx-custom-me ]] || fail "daemon comm is $(cat /proc/$daemon/comm)"
listener_inode=$(in_pod "import os; print(os.stat('$SOCK').st_ino)")
listener_sock=$(for fd in /proc/$daemon/fd/*; do readlink "$fd"; done |
    sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p' | head -1)

"$WORK/bin/secagent" --only-under "$WORK/bin/" >"$WORK/secagent.log" 2>&1 &
agent=$!
pids+=("$agent")
for _ in $(seq 50); do
    grep -qs ready "$WORK/secagent.log" && break
    nap 0.1
done
grep -qs ready "$WORK/secagent.log" || fail "secagent did not start: $(cat "$WORK/secagent.log")"

# The agent's scan before the collection: this is what breaks the socket.
kill -USR1 "$agent"
for _ in $(seq 50); do
    grep -qs 'scan 1 done' "$WORK/secagent.log" && break
    nap 0.1
done
grep -qs 'scan 1 done' "$WORK/secagent.log" || fail "the agent's first scan did not finish"
first_probe=$(sed -n 's/^probe pid=\([0-9]*\) .*/\1/p' "$WORK/secagent.log" | head -1)
[[ -n $first_probe ]] || fail "the agent probed nothing: $(cat "$WORK/secagent.log")"

# The fault, checked before collecting: the listener still runs, the file at
# the path is another inode, and connecting is refused.
kill -0 "$daemon" 2>/dev/null || fail "the original listener died"
now_inode=$(in_pod "import os; print(os.stat('$SOCK').st_ino)")
[[ $now_inode != "$listener_inode" ]] || fail "the socket file was not replaced (inode $now_inode)"
refused=$(in_pod "$probe_connect")
[[ $refused == "Connection refused" ]] || fail "connecting to $SOCK gave '$refused', not 'Connection refused'"
echo "fault present: $SOCK was inode $listener_inode (bound by pid $daemon), is now $now_inode; connect: $refused" >&2

# Processes, eBPF events and sockstat alloc/mem are machine-wide: another
# repro running now would put its evidence into this bundle too.
others=$(ps -eo pid=,ppid=,args= | awk -v me=$$ '$1 != me && $2 != me && /repro\/[a-z-]+\.sh/ {printf "%s ", $1}')
[[ -z $others ]] || echo "$0: warning: other repro scripts are running (pids $others); their processes and events will be in this bundle too" >&2
# Collect; the agent's next scan runs once capsnap's window is open (eBPF
# probes attached), so the exec log has it; capsnap snapshots the sockets
# when the window ends.
started=$SECONDS
CAPSNAP_PROGRESS=1 "$CAPSNAP" collect --duration 3s --netns "$NS" --no-packets -o "$OUT" >"$WORK/collect.log" 2>&1 &
collector=$!
for _ in $(seq 600); do
    grep -qs 'window open' "$WORK/collect.log" && break
    kill -0 "$collector" 2>/dev/null || break
    nap 0.05
done
nap 0.5
kill -USR1 "$agent"
collect_rc=0
wait "$collector" || collect_rc=$?
((collect_rc == 0)) || fail "capsnap collect exited with $collect_rc: $(tail -5 "$WORK/collect.log")"
for _ in $(seq 40); do
    grep -qs 'scan 2 done' "$WORK/secagent.log" && break
    nap 0.05
done
replacer=$(sed -n 's/^probe pid=\([0-9]*\) .*/\1/p' "$WORK/secagent.log" | sed -n 2p)
[[ -n $replacer ]] || fail "the agent's second scan probed nothing"
echo "collected in $((SECONDS - started)) s: $(du -h "$OUT" | cut -f1) $OUT" >&2

# Check that the bundle holds the evidence before calling it a sample.
mkdir "$WORK/bundle"
tar --zstd -xf "$OUT" -C "$WORK/bundle"
"$PY" - "$WORK/bundle" "$NS" "$SOCK" "$listener_sock" "$replacer" "$agent" <<'PY' || fail "the bundle lacks the evidence (see above)"
import json, sys
root, ns, path, sock, replacer, agent = sys.argv[1:]
rows = [dict(zip(h, l.rstrip("\n").split("\t")))
        for f in [open(f"{root}/netns/{ns}/unix_diag.tsv")]
        for h in [f.readline().rstrip("\n").split("\t")] for l in f]
listeners = [r for r in rows if r["path"] == path and r["state"] == "listen"]
ok = any(r["inode"] == sock and r["replaced"] == "true" for r in listeners)
print(f"unix_diag: {len(listeners)} listener(s) on {path}; listener {sock} replaced: {ok}", file=sys.stderr)
execs = []
for line in open(f"{root}/ebpf/events.jsonl"):
    if line.startswith('{"event":"exec"'):
        try:
            execs.append(json.loads(line))
        except ValueError:
            pass
hit = [e for e in execs if str(e["pid"]) == replacer and str(e["ppid"]) == agent
       and e["pcomm"] == "secagent" and "-V" in e["argv"]]
print(f"ebpf: exec of the probe {replacer} by secagent with -V logged: {bool(hit)}", file=sys.stderr)
sys.exit(0 if ok and hit else 1)
PY

"$PY" - "$FACTS" <<PY
import json, sys
facts = {
    "detection": "unix-socket-replaced",
    "named": ["path", "listener_pid", "replacer_pid", "replacer_argv", "replacer_parent_comm"],
    "objects": {
        "path": "$SOCK",
        "netns": "$NS",
        "listener_pid": $daemon,
        "listener_comm": "nginx-custom-me",
        "listener_socket_inode": $listener_sock,
        "listener_bound_file_inode": $listener_inode,
        "path_file_inode_before_collection": $now_inode,
        "replacer_pid": $replacer,
        "replacer_argv": "$WORK/bin/nginx-custom-metrics -V",
        "replacer_exe": "$WORK/bin/nginx-custom-metrics",
        "replacer_parent_pid": $agent,
        "replacer_parent_comm": "secagent",
        "earlier_replacer_pid": $first_probe,
    },
    "notes": [
        "The path is inside the pod's private mount namespace (tmpfs /tmp); "
        "capsnap stats it through /proc/<listener_pid>/root.",
        "The earlier probe (before the window) broke the socket; replacer_pid is the "
        "agent's next probe, run inside the eBPF window (before the snapshots at its end): it is in "
        "ebpf/events.jsonl (exec, ppid = replacer_parent_pid) but was killed by the "
        "agent after 1 s, so it is not in processes.jsonl and the path's file at "
        "snapshot time is the one the earlier probe bound.",
        "One listener on the path (the original), replaced=true; the probe copies "
        "did not survive, as in the seed (connect: ECONNREFUSED).",
    ],
}
with open(sys.argv[1], "w") as f:
    json.dump(facts, f, indent=2)
    f.write("\n")
PY
echo "wrote $OUT and $FACTS" >&2
