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
    CAPSNAP=${CAPSNAP:-capsnap}
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
