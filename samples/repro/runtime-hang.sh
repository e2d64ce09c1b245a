#!/usr/bin/env bash
# Reproduces incident 2 (DESIGN.md; seed 001, "runtime hang / PLEG") and
# collects a bundle while the fault is present:
#   samples/repro/runtime-hang.sh OUT.capsnap
# writes OUT.capsnap and OUT.facts.json (what a correct detection must name).
#
# What is real: a runc process (comm "runc", runc's argv as a docker 20.10
# containerd-shim-runc-v2 runs it, --systemd-cgroup) blocked in read(2) on
# the system bus socket /run/dbus/system_bus_socket, whose peer (a
# dbus-daemon stand-in) reads the request and never answers - as systemd's
# bus stopped answering in the seed once its message cookie overflowed. It
# is collected when it has been blocked for at least MIN_AGE_S (35 s), far
# longer than a container start takes; the detection is expected to use a
# 30 s threshold. Its parent is a containerd-shim-runc-v2 stand-in; kubelet,
# dockerd and containerd stand-ins exist (comm and argv only) so that the
# process table and the log lines agree. All are one small C program
# (runtime-hang-fakes.c) run under those names.
#
# What is not real: the log lines. No kubelet, containerd or systemd runs
# here, and this machine has no running journald. The lines are written, at
# the moment each would be logged, in the format rsyslog gives them in
# /var/log/messages on a CentOS 7 node (the seed's), with texts taken from
# real reports: kubelet's PLEG error, containerd's "get state" timeout, and
# systemd's "Failed to propagate agent release message: Operation not
# supported" (seen in /var/log/messages with the cookie overflow, runc issue
# #1959). Their numbers ("pleg was last seen active 3m..s ago") are the
# kubelet's 3 min threshold, not the 35 s this repro waits.
#
# Isolation: the script re-runs itself in a private mount namespace with
# tmpfs over /run and /var/log, so the bus socket, the binaries and the log
# file exist only there, and capsnap collect runs there too (it reads
# /var/log/messages: capture's log_files source). Needs root, util-linux
# (unshare), a C compiler (cc), python3. Leaves nothing behind (trap EXIT;
# every stand-in also dies with its parent).
set -euo pipefail

if (($# != 1)); then
    echo "usage: $0 OUT.capsnap" >&2
    exit 2
fi
if ((EUID != 0)); then
    echo "$0: needs root (mount namespace)" >&2
    exit 2
fi
for tool in unshare cc python3; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is missing" >&2; exit 2; }
done
if [[ -z ${CS_RTH_INNER:-} ]]; then
    # Only collects: the static collector build when given (as nat-lab.sh).
    CAPSNAP=$(command -v "${CAPSNAP_COLLECTOR:-${CAPSNAP:-capsnap}}") || { echo "$0: capsnap not found (set CAPSNAP)" >&2; exit 2; }
    export CAPSNAP CS_RTH_INNER=1
    exec unshare --mount --propagation private "$BASH" "$0" "$(realpath -m "$1")"
fi

OUT=$1
case $OUT in
/run/* | /var/run/* | /var/log/*) echo "$0: OUT must not be under /run or /var/log (hidden by this repro)" >&2; exit 2 ;;
esac
FACTS=${OUT%.capsnap}.facts.json
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=/run/cs-rth-work
MIN_AGE_S=35
THRESHOLD_S=30
PY=$(python3 -c 'import sys; print(sys.executable)')
NODE=$(hostname)
CID=cs-rth-4f1c2b9e8d7a6c5b4a39281706f5e4d3c2b1a0918273645546372819a0b1c2d
TASK=/run/containerd/io.containerd.runtime.v2.task/moby/$CID
LOG=/var/log/messages

nap() { read -rt "$1" <> <(:) || true; } # sleep without an exec
pids=()
cleanup() {
    local i
    # Newest first: runc and its shim go before the bus they wait on.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill -KILL "${pids[i]}" 2>/dev/null || true
    done
    local p
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    # runc is not our child: wait until whoever reaps it has.
    for p in "${pids[@]}"; do
        for _ in $(seq 40); do
            [[ -e /proc/$p ]] || break
            nap 0.05
        done
    done
    # The tmpfs mounts go with this mount namespace when the script exits.
}
trap cleanup EXIT
fail() {
    echo "$0: reproduction failed: $*" >&2
    rm -f "$OUT" "$FACTS"
    exit 1
}

mount -t tmpfs -o mode=755 cs-rth-run /run
mount -t tmpfs -o mode=755 cs-rth-log /var/log
mkdir -p "$WORK/bin" /run/dbus "$TASK" /var/run/docker/runtime-runc/moby "$(dirname "$OUT")"
rm -f "$OUT" "$FACTS"
cc -O2 -Wall -o "$WORK/bin/runc" "$HERE/runtime-hang-fakes.c"
for name in dbus-daemon containerd-shim-runc-v2 containerd dockerd kubelet; do
    ln "$WORK/bin/runc" "$WORK/bin/$name"
done
: >"$LOG"

# syslog LINE... in rsyslog's format (RSYSLOG_TraditionalFileFormat).
syslog() {
    local prog=$1
    shift
    printf '%s %s %s: %s\n' "$(date '+%b %e %H:%M:%S')" "$NODE" "$prog" "$*" >>"$LOG"
}
# klog LEVEL PID FILE:LINE MSG: a kubelet line (klog header) via syslog.
klog() {
    syslog "kubelet[$2]" "$(printf '%s%s %7d %s] %s' "$1" "$(date '+%m%d %H:%M:%S.%6N')" "$2" "$3" "$4")"
}
# A Go duration as the kubelet prints it, for 180 s + $1 s.
pleg_lag() { printf '3m%d.%09ds ago' "$1" "$((RANDOM * 30517 % 1000000000))"; }

(exec -a /usr/bin/dbus-daemon "$WORK/bin/dbus-daemon" --system --address=systemd: --nofork \
    --nopidfile --systemd-activation --syslog-only >"$WORK/dbus.log" 2>&1) &
bus=$!
pids+=("$bus")
(exec -a /usr/bin/containerd "$WORK/bin/containerd") &
containerd=$!
(exec -a /usr/bin/dockerd "$WORK/bin/dockerd" -H fd:// --containerd=/run/containerd/containerd.sock) &
dockerd=$!
(exec -a /usr/bin/kubelet "$WORK/bin/kubelet" --config=/var/lib/kubelet/config.yaml \
    --container-runtime=docker --cgroup-driver=systemd --pod-infra-container-image=pause:3.5) &
kubelet=$!
pids+=("$containerd" "$dockerd" "$kubelet")
for _ in $(seq 100); do
    [[ -S /run/dbus/system_bus_socket ]] && break
    nap 0.05
done
[[ -S /run/dbus/system_bus_socket ]] || fail "the bus stand-in does not listen: $(cat "$WORK/dbus.log")"

syslog systemd "Failed to propagate agent release message: Operation not supported"
(PATH=$WORK/bin:$PATH exec -a /usr/bin/containerd-shim-runc-v2 "$WORK/bin/containerd-shim-runc-v2" \
    -namespace moby -id "$CID" -address /run/containerd/containerd.sock >"$WORK/shim.log" 2>&1) &
shim=$!
pids+=("$shim")
started=$SECONDS
runc=
for _ in $(seq 100); do
    runc=$(cat "/proc/$shim/task/$shim/children" 2>/dev/null | awk '{print $1}')
    [[ -n $runc && $(cat "/proc/$runc/comm" 2>/dev/null) == runc ]] && break
    nap 0.05
done
[[ -n $runc && $(cat "/proc/$runc/comm" 2>/dev/null) == runc ]] || fail "runc did not start"
pids+=("$runc")

# The fault, checked before collecting: runc sleeps in read(2) on a unix
# socket connected to the bus, and the bus got its request.
for _ in $(seq 40); do
    grep -qs 'no answer' "$WORK/dbus.log" && break
    nap 0.05
done
grep -qs 'no answer' "$WORK/dbus.log" || fail "the bus never got runc's request"
blocked() {
    local state syscall
    state=$(awk '{print $3}' "/proc/$runc/stat" 2>/dev/null) || return 1
    syscall=$(awk '{print $1}' "/proc/$runc/syscall" 2>/dev/null) || return 1
    # x86_64: syscall 0 is read(2). Elsewhere only the state is checked.
    [[ $state == S && ($(uname -m) != x86_64 || $syscall == 0) ]]
}
blocked || fail "runc is not blocked in read(2): $(cat /proc/$runc/stat 2>/dev/null)"
echo "fault present: runc pid $runc blocked on /run/dbus/system_bus_socket (wchan $(cat /proc/$runc/wchan)); waiting until it is ${MIN_AGE_S}+ s old" >&2

# While runc hangs, the node logs as it would; runc is checked every second.
next_pleg=6
first_pleg=
for ((i = 0; ; i++)); do
    age=$((SECONDS - started))
    ((age >= MIN_AGE_S + 1)) && break
    blocked || fail "runc stopped hanging after $age s"
    if ((i == 4)); then
        syslog "containerd[$containerd]" "time=\"$(date -u '+%Y-%m-%dT%H:%M:%S.%NZ')\" level=error msg=\"get state for $CID\" error=\"context deadline exceeded: unknown\""
    fi
    if ((age >= next_pleg)); then
        first_pleg=${first_pleg:-$age}
        klog E "$kubelet" kubelet.go:2034 "\"Skipping pod synchronization\" err=\"PLEG is not healthy: pleg was last seen active $(pleg_lag $((age - first_pleg))); threshold is 3m0s\""
        if [[ -z ${not_ready:-} ]] && ((age - first_pleg >= 10)); then
            not_ready=1
            now=$(date -u '+%Y-%m-%d %H:%M:%S.%N +0000 UTC')
            klog I "$kubelet" setters.go:546 "\"Node became not ready\" node=\"$NODE\" condition={Type:Ready Status:False LastHeartbeatTime:$now LastTransitionTime:$now Reason:KubeletNotReady Message:PLEG is not healthy: pleg was last seen active $(pleg_lag $((age - first_pleg))); threshold is 3m0s}"
        fi
        next_pleg=$((age + 5))
    fi
    if ((i % 15 == 7)); then
        syslog systemd "Failed to propagate agent release message: Operation not supported"
    fi
    nap 1
done

# Processes, eBPF events and sockstat alloc/mem are machine-wide: another
# repro running now would put its evidence into this bundle too.
others=$(ps -eo pid=,ppid=,args= | awk -v me=$$ '$1 != me && $2 != me && /repro\/[a-z-]+\.sh/ {printf "%s ", $1}')
[[ -z $others ]] || echo "$0: warning: other repro scripts are running (pids $others); their processes and events will be in this bundle too" >&2
collect_started=$SECONDS
"$CAPSNAP" collect --duration 3s --netns host --no-packets --no-ebpf -o "$OUT" >"$WORK/collect.log" 2>&1 ||
    fail "capsnap collect failed: $(tail -5 "$WORK/collect.log")"
blocked || fail "runc stopped hanging during the collection"
echo "collected in $((SECONDS - collect_started)) s: $(du -h "$OUT" | cut -f1) $OUT" >&2

mkdir "$WORK/bundle"
tar --zstd -xf "$OUT" -C "$WORK/bundle"
age_s=$("$PY" - "$WORK/bundle" "$runc" "$MIN_AGE_S" <<'PY'
import json, sys
root, pid, min_age = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
manifest = json.load(open(f"{root}/manifest.json"))
procs = {p["pid"]: p for p in map(json.loads, open(f"{root}/processes.jsonl"))}
runc = procs.get(pid)
age = (manifest["started_ns"] - runc["start_time_ns"]) / 1e9 if runc else 0
socks = [l.split("\t")[2].strip()[8:-1] for l in open(f"{root}/fds.tsv")
         if l.startswith(f"{pid}\t") and "\tsocket:[" in l]
rows = list(open(f"{root}/netns/host/unix_diag.tsv"))
head = rows[0].rstrip("\n").split("\t")
diag = {r["inode"]: r for r in (dict(zip(head, l.rstrip("\n").split("\t"))) for l in rows[1:])}
peers = [diag.get(diag[s]["peer"]) for s in socks if s in diag]
on_bus = any(p and p["path"] == "/run/dbus/system_bus_socket" for p in peers)
log = open(f"{root}/logs/messages").read() if "logs/messages" in {m["path"] for m in manifest["members"]} else ""
src = [s for s in manifest["sources"] if s["source"] == "log_files"]
print(f"bundle: runc {pid} comm={runc and runc['comm']} age={age:.1f} s; connected to the bus: {on_bus}; "
      f"logs/messages: {log.count('PLEG is not healthy')} PLEG lines; log_files source: "
      f"{src[0]['status'] if src else 'missing'}", file=sys.stderr)
print(f"{age:.1f}")
sys.exit(0 if runc and runc["comm"] == "runc" and age >= min_age and on_bus and "PLEG is not healthy" in log else 1)
PY
) || fail "the bundle lacks the evidence (see above; logs/messages needs a capsnap whose collector has the log_files source)"

argv=$(tr '\0' ' ' <"/proc/$runc/cmdline")
"$PY" - "$FACTS" <<PY
import json, sys
facts = {
    "detection": "runtime-hang",
    "named": ["runc_pid", "log_patterns"],
    "objects": {
        "runc_pid": $runc,
        "runc_comm": "runc",
        "runc_argv": "${argv% }",
        "runc_min_age_s": $THRESHOLD_S,
        "min_age_s": $THRESHOLD_S,
        "runc_age_s_at_collection": $age_s,
        "runc_parent_pid": $shim,
        "runc_parent_comm": "containerd-shim",
        "bus_path": "/run/dbus/system_bus_socket",
        "bus_peer_pid": $bus,
        "bus_peer_comm": "dbus-daemon",
        "kubelet_pid": $kubelet,
        "log_file": "logs/messages",
        "log_patterns": [
            "PLEG is not healthy",
            "Skipping pod synchronization",
            "Node became not ready",
            "Failed to propagate agent release message: Operation not supported",
        ],
    },
    "notes": [
        "runc is real and really blocked (read(2) on a unix socket connected to "
        "/run/dbus/system_bus_socket; the peer never answers) for runc_age_s_at_collection s; "
        "the detection threshold assumed is min_age_s.",
        "runc's parent comm is 'containerd-shim' (the kernel keeps 15 bytes of "
        "'containerd-shim-runc-v2').",
        "The log lines are written by the repro, not by a kubelet/containerd/systemd, "
        "in rsyslog's /var/log/messages format with texts from real reports; they carry "
        "the pids of the stand-in processes. There is no journal on this machine "
        "(journal.txt: '-- No entries --').",
    ],
}
with open(sys.argv[1], "w") as f:
    json.dump(facts, f, indent=2)
    f.write("\n")
PY
echo "wrote $OUT and $FACTS" >&2
