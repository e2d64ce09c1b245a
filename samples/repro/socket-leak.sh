#!/usr/bin/env bash
# Reproduces incident 5 (DESIGN.md; seed 004, "socket leak") for real and
# collects a bundle while the fault is present:
#   samples/repro/socket-leak.sh OUT.capsnap
# writes OUT.capsnap and OUT.facts.json (what a correct detection must name).
#
# The scene: a "pod" (network namespace cs-skl-pod) runs leaky-exporter,
# which scrapes an upstream in another namespace (cs-skl-up, over a veth
# pair) with one connection per scrape and keeps every socket without
# closing it. The upstream answers each scrape with a small body and resets
# the connection. After COUNT scrapes the exporter holds COUNT socket fds
# whose connections are closed: the kernel moved them to TCP_CLOSE and
# unhashed them, so they appear in no /proc/net table and not in sockstat
# "inuse", while sockstat "alloc" counts them and "mem" counts the bodies
# left unread in their receive queues.
#
# What this does not reproduce: the "TCP: out of memory" line in dmesg. The
# kernel prints it (net/ipv4/tcp.c, tcp_check_oom) only when the machine-wide
# TCP memory exceeds tcp_mem[2] (2.2 GiB on a 24 GiB machine) and a socket
# with unsent data is closed or times out. Getting there takes either
# lowering the global net.ipv4.tcp_mem (no per-namespace copy exists) or
# really pinning gigabytes of socket buffers, which starves every TCP user of
# the machine for the duration; and the line would then stay in the kernel
# ring buffer, i.e. in every later bundle collected on this machine,
# including healthy samples. The leak itself, sockstat and fds are real.
#
# Needs root, iproute2, python3. Leaves nothing behind (trap EXIT).
set -euo pipefail

if (($# != 1)); then
    echo "usage: $0 OUT.capsnap" >&2
    exit 2
fi
if ((EUID != 0)); then
    echo "$0: needs root (network namespaces)" >&2
    exit 2
fi
for tool in ip python3; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is missing" >&2; exit 2; }
done

OUT=$(realpath -m "$1")
FACTS=${OUT%.capsnap}.facts.json
# Only collects: the static collector build when given (as nat-lab.sh).
CAPSNAP=${CAPSNAP_COLLECTOR:-${CAPSNAP:-capsnap}}
HERE=$(cd "$(dirname "$0")" && pwd)
POD=cs-skl-pod
UP=cs-skl-up
WORK=/run/cs-skl-work
COUNT=2000
BODY=8000
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
    ip netns del "$POD" 2>/dev/null || true
    ip netns del "$UP" 2>/dev/null || true
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
mkdir -p "$WORK" "$(dirname "$OUT")"
rm -f "$OUT" "$FACTS"
{ echo "#!$PY"; tail -n +2 "$HERE/leaky-exporter.py"; } >"$WORK/leaky-exporter"
chmod 755 "$WORK/leaky-exporter"

ip netns add "$POD"
ip netns add "$UP"
ip link add cs-skl-eth0 netns "$POD" type veth peer name cs-skl-up0 netns "$UP"
ip -n "$POD" addr add 10.201.45.2/24 dev cs-skl-eth0
ip -n "$UP" addr add 10.201.45.1/24 dev cs-skl-up0
for ns in "$POD" "$UP"; do
    ip -n "$ns" link set lo up
done
ip -n "$POD" link set cs-skl-eth0 up
ip -n "$UP" link set cs-skl-up0 up

ip netns exec "$UP" "$PY" "$HERE/socket-leak-upstream.py" 10.201.45.1 9100 "$BODY" >"$WORK/upstream.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    grep -qs ready "$WORK/upstream.log" && break
    nap 0.05
done
grep -qs ready "$WORK/upstream.log" || fail "the upstream did not start: $(cat "$WORK/upstream.log")"

alloc_before=$(awk '/^TCP:/ {for (i = 2; i < NF; i++) if ($i == "alloc") print $(i + 1)}' /proc/net/sockstat)
ip netns exec "$POD" "$WORK/leaky-exporter" 10.201.45.1 9100 "$COUNT" >"$WORK/exporter.log" 2>&1 &
exporter=$!
pids+=("$exporter")
for _ in $(seq 600); do
    grep -qs leaked "$WORK/exporter.log" && break
    kill -0 "$exporter" 2>/dev/null || break
    nap 0.05
done
grep -qs "leaked $COUNT" "$WORK/exporter.log" || fail "the exporter did not leak $COUNT sockets: $(tail -3 "$WORK/exporter.log")"
[[ $(cat /proc/$exporter/comm) == leaky-exporter ]] || fail "exporter comm is $(cat /proc/$exporter/comm)"
nap 0.5 # the last resets in flight

# The fault, checked before collecting: COUNT socket fds in the exporter,
# none of their inodes in any /proc/net table of its namespace or the
# host's, sockstat alloc up by at least COUNT while inuse stays small.
verdict=$("$PY" - "$exporter" "$COUNT" "$alloc_before" <<'PY'
import os, sys
pid, count, before = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
socks = set()
for fd in os.listdir(f"/proc/{pid}/fd"):
    try:
        t = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        continue
    if t.startswith("socket:["):
        socks.add(int(t[8:-1]))
listed = set()
for proc in (f"/proc/{pid}/net", "/proc/1/net"):
    for name in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6"):
        for line in open(f"{proc}/{name}").readlines()[1:]:
            listed.add(int(line.split()[9]))
    for line in open(f"{proc}/unix").readlines()[1:]:
        listed.add(int(line.split()[6]))
def tcp(path):
    f = open(path).read().split("TCP:")[1].split("\n")[0].split()
    return dict(zip(f[::2], map(int, f[1::2])))
pod, host = tcp(f"/proc/{pid}/net/sockstat"), tcp("/proc/1/net/sockstat")
print(len(socks), len(socks & listed), pod["inuse"], pod["alloc"], pod["mem"], host["alloc"], host["mem"])
ok = len(socks) == count and not (socks & listed) and pod["alloc"] - before >= count and pod["inuse"] < 10
sys.exit(0 if ok else 1)
PY
)  || fail "leak not as expected (socket fds, of them listed in /proc/net, pod inuse, pod alloc, pod mem, host alloc, host mem): $verdict"
read -r fds listed pod_inuse pod_alloc pod_mem host_alloc host_mem <<<"$verdict"
echo "fault present: leaky-exporter pid $exporter holds $fds socket fds, $listed of them in /proc/net; pod sockstat TCP inuse $pod_inuse alloc $pod_alloc mem $pod_mem (host: alloc $host_alloc mem $host_mem; alloc before $alloc_before)" >&2

# Processes, eBPF events and sockstat alloc/mem are machine-wide: another
# repro running now would put its evidence into this bundle too.
others=$(ps -eo pid=,ppid=,args= | awk -v me=$$ '$1 != me && $2 != me && /repro\/[a-z-]+\.sh/ {printf "%s ", $1}')
[[ -z $others ]] || echo "$0: warning: other repro scripts are running (pids $others); their processes and events will be in this bundle too" >&2
started=$SECONDS
"$CAPSNAP" collect --duration 3s --netns "$POD" --no-packets --no-ebpf -o "$OUT" \
    >"$WORK/collect.log" 2>&1 &
collector=$!
collect_rc=0
wait "$collector" || collect_rc=$?
collector=
((collect_rc == 0)) || fail "capsnap collect exited with $collect_rc: $(tail -5 "$WORK/collect.log")"
echo "collected in $((SECONDS - started)) s: $(du -h "$OUT" | cut -f1) $OUT" >&2

mkdir "$WORK/bundle"
tar --zstd -xf "$OUT" -C "$WORK/bundle"
"$PY" - "$WORK/bundle" "$POD" "$exporter" "$COUNT" <<'PY' || fail "the bundle lacks the evidence (see above)"
import json, sys
root, pod, pid, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
proc = [json.loads(l) for l in open(f"{root}/processes.jsonl")]
me = [p for p in proc if str(p["pid"]) == pid]
socks = {l.split("\t")[2].strip()[8:-1] for l in open(f"{root}/fds.tsv")
         if l.startswith(pid + "\t") and "\tsocket:[" in l}
listed = set()
for name in ("tcp", "tcp6"):
    for line in open(f"{root}/netns/{pod}/proc/net/{name}").readlines()[1:]:
        listed.add(line.split()[9])
stat = open(f"{root}/netns/{pod}/proc/net/sockstat").read()
tcp = stat.split("TCP:")[1].split("\n")[0].split()
tcp = dict(zip(tcp[::2], map(int, tcp[1::2])))
print(f"bundle: {me[0]['comm'] if me else None} socket_fd_count="
      f"{me[0]['socket_fd_count'] if me else None}, {len(socks)} socket fds in fds.tsv, "
      f"{len(socks & listed)} in the pod's tcp tables; pod sockstat TCP {tcp}", file=sys.stderr)
ok = (me and me[0]["socket_fd_count"] == count and len(socks) == count
      and not socks & listed and tcp["alloc"] - tcp["inuse"] - tcp["tw"] - tcp["orphan"] >= count)
sys.exit(0 if ok else 1)
PY

"$PY" - "$FACTS" <<PY
import json, sys
facts = {
    "detection": "socket-leak",
    "named": ["pid", "comm", "netns", "leaked_fds"],
    "objects": {
        "pid": $exporter,
        "comm": "leaky-exporter",
        "leaked_fds": $COUNT,
        "netns": "$POD",
        "peer": "10.201.45.1:9100",
    },
    "observed_before_collection": {
        "pod_sockstat_tcp_inuse": $pod_inuse,
        "sockstat_tcp_alloc": $pod_alloc,
        "sockstat_tcp_mem_pages": $host_mem,
        "sockstat_tcp_alloc_before_leak": $alloc_before,
    },
    "dmesg_tcp_out_of_memory": False,
    "notes": [
        "Leaked sockets are in TCP_CLOSE (reset by the peer), unhashed: in the "
        "exporter's fds (fds.tsv socket:[inode]) and in no /proc/net table.",
        "sockstat: inuse and tw are per network namespace; alloc, orphan and mem are "
        "machine-wide (the same numbers in every namespace's sockstat). Compare alloc "
        "with the sum of inuse+tw over all namespaces, not with one namespace's.",
        "No 'TCP: out of memory' line: producing it needs machine-wide TCP memory above "
        "tcp_mem[2]; see the header of samples/repro/socket-leak.sh.",
    ],
}
with open(sys.argv[1], "w") as f:
    json.dump(facts, f, indent=2)
    f.write("\n")
PY
echo "wrote $OUT and $FACTS" >&2
