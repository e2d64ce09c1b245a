# shellcheck shell=bash
# Sourced by the reproductions that need a server and a client namespace
# joined by one veth, no NAT (accept queue, TIME_WAIT, port exhaustion,
# conntrack full):
#
#   pair_lab_init TAG N "TOOL..." "$@"   checks, then sets OUT FACTS CAPSNAP PY,
#                                        SRV=inp-TAG-srv CLI=inp-TAG-cli,
#                                        ADDR=10.203.N.1 CLI_ADDR=10.203.N.2, WORK
#   lab_undo() { ...; }                  optional: what the script changed
#                                        outside its namespaces, undone on exit
#   pair_lab_up                          removes a killed run's leftovers, builds
#   pair_lab_server PROG                 starts PROG in SRV (pid in `server`),
#                                        waits for its "ready" line
#   pair_lab_collect ARG...              collects into OUT, unpacks to $WORK/bundle
#   netstat_now NS NAME                  a TcpExt counter of NS now
#   netstat_in_window NS NAME            a TcpExt counter's rise in the bundle
#
# The script appends its background processes to `pids` and the collector's
# to `collector`; the EXIT trap ends them, removes the namespaces and WORK.

pair_lab_init() {
    local tag=$1 n=$2 tools=$3 tool
    shift 3
    if (($# != 1)); then
        echo "usage: $0 OUT.capsnap" >&2
        exit 2
    fi
    if ((EUID != 0)); then
        echo "$0: needs root (network namespaces)" >&2
        exit 2
    fi
    for tool in $tools; do
        command -v "$tool" >/dev/null || { echo "$0: $tool is missing" >&2; exit 2; }
    done
    OUT=$(realpath -m "$1")
    FACTS=${OUT%.capsnap}.facts.json
    # These reproductions only collect: CAPSNAP_COLLECTOR (the static
    # collector build) is used when given, as by nat-lab.sh.
    CAPSNAP=${CAPSNAP_COLLECTOR:-${CAPSNAP:-capsnap}}
    TAG=$tag
    SRV=inp-$tag-srv
    CLI=inp-$tag-cli
    WORK=/run/inp-$tag-work
    ADDR=10.203.$n.1
    CLI_ADDR=10.203.$n.2
    PY=$(python3 -c 'import sys; print(sys.executable)')
    pids=()
    collector=
    trap cleanup EXIT
}

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
    if declare -F lab_undo >/dev/null; then
        lab_undo
    fi
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
    rm -rf "$WORK"
}

fail() {
    echo "$0: reproduction failed: $*" >&2
    rm -f "$OUT" "$FACTS"
    exit 1
}

nap() { read -rt "$1" <> <(:) || true; } # sleep without an exec

pair_lab_up() {
    cleanup # a previous run killed with SIGKILL
    mkdir -p "$WORK" "$(dirname "$OUT")"
    rm -f "$OUT" "$FACTS"
    ip netns add "$SRV"
    ip netns add "$CLI"
    ip link add "inp-$TAG-s0" netns "$SRV" type veth peer name "inp-$TAG-c0" netns "$CLI"
    ip -n "$SRV" addr add "$ADDR/24" dev "inp-$TAG-s0"
    ip -n "$CLI" addr add "$CLI_ADDR/24" dev "inp-$TAG-c0"
    local ns
    for ns in "$SRV" "$CLI"; do
        ip -n "$ns" link set lo up
    done
    ip -n "$SRV" link set "inp-$TAG-s0" up
    ip -n "$CLI" link set "inp-$TAG-c0" up
}

# pair_lab_server PROG: runs PROG in the server namespace, logging to
# $WORK/server.log, and waits for it to print "ready".
pair_lab_server() {
    ip netns exec "$SRV" "$1" >"$WORK/server.log" 2>&1 &
    server=$!
    pids+=("$server")
    for _ in $(seq 100); do
        grep -qs ready "$WORK/server.log" && return 0
        nap 0.05
    done
    fail "the server did not start: $(cat "$WORK/server.log")"
}

# pair_lab_collect ARG...: `capsnap collect` for a 3 s window with ARG...
# (namespaces, --no-ebpf ...) into OUT, and the bundle unpacked into
# $WORK/bundle for the script's checks.
pair_lab_collect() {
    local others rc=0
    others=$(ps -eo pid=,ppid=,args= | awk -v me=$$ '$1 != me && $2 != me && /repro\/[a-z-]+\.sh/ {printf "%s ", $1}')
    [[ -z $others ]] || echo "$0: warning: other repro scripts are running (pids $others)" >&2
    "$CAPSNAP" collect --duration 3s "$@" -o "$OUT" >"$WORK/collect.log" 2>&1 &
    collector=$!
    wait "$collector" || rc=$?
    collector=
    ((rc == 0)) || fail "capsnap collect exited with $rc: $(tail -5 "$WORK/collect.log")"
    mkdir "$WORK/bundle"
    tar --zstd -xf "$OUT" -C "$WORK/bundle"
}

# netstat_now NS NAME: TcpExt NAME of namespace NS, now.
netstat_now() {
    ip netns exec "$1" awk -v name="$2" '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) k[i] = $i; h = 1 } else for (i = 1; i <= NF; i++) if (k[i] == name) print $i }' /proc/net/netstat
}

# netstat_in_window NS NAME: how much TcpExt NAME rose between the
# bundle's two copies of NS's /proc/net/netstat (window open and close).
netstat_in_window() {
    "$PY" - "$WORK/bundle/netns/$1" "$2" <<'PY'
import sys
def counter(path, name):
    lines = [l.split() for l in open(path) if l.startswith("TcpExt:")]
    return int(dict(zip(lines[0][1:], lines[1][1:]))[name])
d, name = sys.argv[1], sys.argv[2]
print(counter(f"{d}/proc/net/netstat", name) - counter(f"{d}/window-open/proc/net/netstat", name))
PY
}
