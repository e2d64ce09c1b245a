# Shared by host-only-rst.sh, connect-timeout.sh and healthy.sh; sourced,
# not run. Each of them builds a small NAT lab out of network namespaces,
# starts `capsnap collect` inside the "node" namespace (so the node is the
# bundle's "host"), causes its fault inside the capture window and checks
# that the fault really happened.
#
# The caller sets, before sourcing: LAB (namespace prefix, e.g. cs-hr) and
# ID (the incident id, used in messages).

# A hard kill of an earlier run can leave namespaces behind; everything
# this lab makes lives in namespaces named "$LAB-*", so deleting them (and
# killing what runs in them) undoes all of it, iptables rules included.
lab_teardown() {
    local ns pid
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$LAB-" || true); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null || true
        done
        ip netns del "$ns" 2>/dev/null || true
    done
}

fail() {
    echo "$ID: reproduction failed: $*" >&2
    rm -f "$OUT" "$FACTS"
    exit 1
}

say() { echo "$ID: $*" >&2; }

# Sleep without an exec: keeps the bundle's exec events free of "sleep".
nap() { read -rt "$1" <> <(:) || true; }

lab_preflight() {
    if (($# != 1)); then
        echo "usage: $0 OUT.capsnap" >&2
        exit 2
    fi
    if ((EUID != 0)); then
        echo "$0: needs root (network namespaces, iptables, capsnap collect)" >&2
        exit 2
    fi
    local tool
    for tool in ip iptables conntrack python3 tcpdump tar zstd ss nstat; do
        command -v "$tool" >/dev/null || { echo "$0: $tool is missing" >&2; exit 2; }
    done
    OUT=$(realpath -m "$1")
    FACTS=${OUT%.capsnap}.facts.json
    HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    PY=$(python3 -c 'import sys; print(sys.executable)')
    CAPSNAP_BIN=$(command -v "${CAPSNAP:-capsnap}") ||
        { echo "$0: capsnap not found (set CAPSNAP=/path/to/capsnap)" >&2; exit 2; }
    CAPSNAP_BIN=$(realpath "$CAPSNAP_BIN")
    command -v "$CAPSNAP_BIN" >/dev/null || { echo "$0: $CAPSNAP_BIN is not executable" >&2; exit 2; }
    # CAPSNAP_COLLECTOR=path collects (and watches) with another build, the
    # static collector above all, which has no `query` for the checks.
    COLLECT_BIN=$(realpath "${CAPSNAP_COLLECTOR:-$CAPSNAP_BIN}")
    [[ -x $COLLECT_BIN ]] || { echo "$0: $COLLECT_BIN is not executable" >&2; exit 2; }
    mkdir -p "$(dirname "$OUT")"
    rm -f "$OUT" "$FACTS"
    WORK=$(mktemp -d "/tmp/$LAB-work.XXXXXX")
}

# The EXIT trap: stop a collector still running (SIGTERM ends its window;
# its bundle goes with the work dir), kill everything in the lab, drop the
# work dir (KEEP_WORK=1 keeps it, with the unpacked bundle, for debugging).
lab_cleanup() {
    local rc=$?
    if [[ -n ${COLLECTOR:-} ]] && kill -0 "$COLLECTOR" 2>/dev/null; then
        kill -TERM "$COLLECTOR" 2>/dev/null || true
        wait "$COLLECTOR" 2>/dev/null || true
    fi
    disown -a # no "Killed" notices for the lab's jobs
    lab_teardown
    if [[ -n ${KEEP_WORK:-} && -n ${WORK:-} ]]; then
        echo "$ID: work dir kept: $WORK" >&2
    elif [[ -n ${WORK:-} ]]; then
        rm -rf "$WORK"
    fi
    return "$rc"
}

# veth NS_A IF_A NS_B IF_B: a veth pair made directly inside two namespaces
# (nothing is created in the namespace the script runs in).
veth() {
    ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
    ip -n "$1" link set "$2" up
    ip -n "$3" link set "$4" up
}

# lab_bin NAME FILE: installs the python program FILE as $WORK/bin/NAME,
# with this python in its #! line, so that its processes are named NAME in
# the bundle (comm, exec events) instead of python3.
lab_bin() {
    mkdir -p "$WORK/bin"
    { echo "#!$PY"; tail -n +2 "$2"; } >"$WORK/bin/$1"
    chmod 755 "$WORK/bin/$1"
}

# has_line FILE PATTERN: FILE has a line matching the bash PATTERN (read
# without running grep: polls inside the capture window leave no exec).
has_line() {
    local line
    [[ -e $1 ]] || return 1
    while IFS= read -r line || [[ -n $line ]]; do
        # shellcheck disable=SC2053
        [[ $line == $2 ]] && return 0
    done <"$1"
    return 1
}

# start_in NS NAME CMD...: runs a lab program in a namespace, in the
# background, logging to $WORK/NAME.log, and waits for its "ready" line.
start_in() {
    local ns=$1 name=$2
    shift 2
    ip netns exec "$ns" "$@" >"$WORK/$name.log" 2>&1 &
    local pid=$! i
    disown "$pid" # killed by lab_teardown; no "Killed" job notice
    for ((i = 0; i < 200; i++)); do
        has_line "$WORK/$name.log" 'ready*' && return 0
        kill -0 "$pid" 2>/dev/null || break
        nap 0.05
    done
    fail "$name did not start: $(tail -3 "$WORK/$name.log")"
}

# collect_start NODE_NS NETNS...: capsnap collect (3 s window) inside the
# node namespace, selecting only the lab's other namespaces, and returns
# once the capture window has started. capsnap attaches its bpftrace probes
# first (a few seconds), then prints "window open" (with CAPSNAP_PROGRESS
# set) and starts capturing: the first pcapng in its staging directory
# marks the capture running.
collect_start() {
    local node=$1 sel=() ns
    shift
    for ns in "$@"; do
        sel+=(--netns "$ns")
    done
    if [[ -n ${CAPSNAP_WATCH:-} ]]; then
        watch_start "$node" "${sel[@]}"
        return
    fi
    mkdir -p "$WORK/out"
    CAPSNAP_PROGRESS=1 ip netns exec "$node" "$COLLECT_BIN" collect --duration "${COLLECT_DURATION:-3s}" "${sel[@]}" \
        -o "$WORK/out/bundle.capsnap" >"$WORK/collect.log" 2>&1 &
    COLLECTOR=$!
    COLLECT_STARTED=$SECONDS
    local i f
    for ((i = 0; i < 1200; i++)); do
        if grep -qs 'window open' "$WORK/collect.log"; then
            for f in "$WORK"/out/.capsnap-staging-*/netns/*/packets.pcapng; do
                [[ -e $f ]] && return 0
            done
        fi
        kill -0 "$COLLECTOR" 2>/dev/null || fail "capsnap collect ended before its window: $(tail -5 "$WORK/collect.log")"
        nap 0.05
    done
    fail "capsnap collect did not start capturing within 60 s: $(tail -5 "$WORK/collect.log")"
}

# Waits for the collector, moves the bundle to OUT and unpacks a copy to
# $WORK/bundle for the checks.
collect_finish() {
    local rc=0
    if [[ -n ${CAPSNAP_WATCH:-} ]]; then
        watch_finish
    else
        wait "$COLLECTOR" || rc=$?
        COLLECTOR=
        ((rc == 0)) || fail "capsnap collect exited with $rc: $(tail -5 "$WORK/collect.log")"
    fi
    mv "$WORK/out/bundle.capsnap" "$OUT"
    chmod 644 "$OUT"
    mkdir "$WORK/bundle"
    tar --zstd -xf "$OUT" -C "$WORK/bundle"
    say "collected in $((SECONDS - COLLECT_STARTED)) s: $(stat -c %s "$OUT") bytes, $OUT"
}

# With CAPSNAP_WATCH=1 the scripts run `capsnap watch` instead of collect
# (tests/watch_lab.rs): the fault then happens at a moment picked at
# random, after at least --keep (WATCH_KEEP seconds, default 4) of
# ordinary traffic (a datagram every 0.2 s from the node to WATCH_PING, and
# what the script runs), and the trigger it fires must write exactly one
# bundle, which must hold packets from --keep minus a second before the
# fault. WATCH_EXPECT=none (the healthy lab): no trigger may fire within
# as long; then a SIGUSR1 (the manual trigger) asks for
# the bundle that the checks read.
watch_start() {
    local node=$1 i
    shift
    WATCH_KEEP=${WATCH_KEEP:-4}
    mkdir -p "$WORK/out"
    CAPSNAP_PROGRESS=1 ip netns exec "$node" "$COLLECT_BIN" watch -o "$WORK/out" --keep "${WATCH_KEEP}s" \
        --after 1s --for 300s --cooldown 5m "$@" >"$WORK/watch.out" 2>"$WORK/collect.log" &
    COLLECTOR=$!
    COLLECT_STARTED=$SECONDS
    for ((i = 0; i < 1200; i++)); do
        grep -qs '^capsnap: watching' "$WORK/collect.log" && break
        kill -0 "$COLLECTOR" 2>/dev/null || fail "capsnap watch ended early: $(tail -5 "$WORK/collect.log")"
        nap 0.05
    done
    grep -qs '^capsnap: watching' "$WORK/collect.log" || fail "capsnap watch did not start within 60 s"
    if [[ -n ${WATCH_PING:-} ]]; then
        # A datagram every 0.2 s to the discard port (answered by an ICMP
        # port unreachable): ordinary traffic with no tool to install.
        ip netns exec "$node" "$PY" -c 'import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
while True:
    try:
        s.sendto(b"capsnap watch lab", (sys.argv[1], 9))
    except OSError:
        pass
    time.sleep(0.2)' "$WATCH_PING" >/dev/null 2>&1 &
        disown $!
    fi
    # Ordinary traffic for --keep and a random 0-3 s more, then the fault.
    nap "$((WATCH_KEEP + RANDOM % 4)).$((RANDOM % 10))"
    fault_now
    say "watch running for $((SECONDS - COLLECT_STARTED)) s; the fault comes now"
}

# fault_now: the fault happens now (read without an exec). A script whose
# fault comes later than collect_start's return calls it again then.
fault_now() { FAULT_NS=$((${EPOCHREALTIME/[.,]/} * 1000)); }

# Waits for the watch's bundle (its path is a line on stdout), checks that
# no second one follows and that the watch leaves nothing behind when
# stopped (SIGINT), and puts the bundle where collect_finish expects it.
watch_finish() {
    local i n rc=0
    if [[ ${WATCH_EXPECT:-} == none ]]; then
        # Within --keep of the "fault", so that the bundle holds the traffic
        # the script made after it.
        nap "$((WATCH_KEEP - 1))"
        [[ ! -s $WORK/watch.out ]] || fail "healthy traffic fired a trigger: $(grep trigger "$WORK/collect.log")"
        say "no trigger in $((SECONDS - COLLECT_STARTED)) s of healthy traffic; asking for a bundle with SIGUSR1"
        kill -USR1 "$COLLECTOR"
    fi
    for ((i = 0; i < 1200; i++)); do
        [[ -s $WORK/watch.out ]] && break
        kill -0 "$COLLECTOR" 2>/dev/null || fail "capsnap watch ended without a bundle: $(tail -5 "$WORK/collect.log")"
        nap 0.05
    done
    [[ -s $WORK/watch.out ]] || fail "no bundle 60 s after the fault: $(tail -5 "$WORK/collect.log")"
    nap 2 # a second bundle would be a second trigger past the cooldown
    kill -INT "$COLLECTOR"
    wait "$COLLECTOR" || rc=$?
    COLLECTOR=
    ((rc == 0)) || fail "capsnap watch exited with $rc: $(tail -5 "$WORK/collect.log")"
    n=$(wc -l <"$WORK/watch.out")
    ((n == 1)) || fail "the watch wrote $n bundles: $(cat "$WORK/watch.out")"
    for f in "$WORK"/out/.capsnap* "$WORK"/out/.*.tmp-*; do
        [[ -e $f ]] && fail "the watch left $f behind"
    done
    mv "$(cat "$WORK/watch.out")" "$WORK/out/bundle.capsnap"
    local first
    first=$("$CAPSNAP_BIN" query --format csv "$WORK/out/bundle.capsnap" \
        "select cast(min(ts) as bigint) from packets" | tail -n +2)
    [[ -n $first ]] || fail "the watch's bundle has no packets"
    say "trigger: $(grep -h '^capsnap: trigger' "$WORK/collect.log" | head -1)"
    say "the bundle's first packet is $(((FAULT_NS - first) / 1000000)) ms before the fault (--keep ${WATCH_KEEP}s)"
    [[ ${WATCH_EXPECT:-} == none ]] || ((FAULT_NS - first >= (WATCH_KEEP - 1) * 1000000000)) ||
        fail "the bundle starts $(((FAULT_NS - first) / 1000000)) ms before the fault, less than --keep minus a second"
}

# q SQL [LABEL=PCAP...]: capsnap query, CSV without the header.
q() {
    local sql=$1
    shift
    "$CAPSNAP_BIN" query --format csv "$@" "$sql" | tail -n +2
}
