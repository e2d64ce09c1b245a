#!/usr/bin/env bash
# capsnap collect (no packets, no eBPF) against `ss -tanpe` + `ss -xp` run in
# every namespace, on NS namespaces each holding CHILDREN processes with
# CONNS TCP connections apiece (both ends in the namespace) and a unix pair.
#
#   sudo bench/collect.sh [NS] [CHILDREN] [CONNS]    (default 4 500 10:
#   2000 processes, 40000 TCP sockets, 2000 unix sockets)
set -euo pipefail
cd "$(dirname "$0")/.."
ns=${1:-4}; children=${2:-500}; conns=${3:-10}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/capsnap/target}"
cargo build --release --quiet --bin capsnap
capsnap="$CARGO_TARGET_DIR/release/capsnap"
work=$(mktemp -d)
gcc -O2 -o "$work/hold" bench/hold_sockets.c
cleanup() {
    for i in $(seq 1 "$ns"); do
        ip netns pids "capsnap-bench-$i" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "capsnap-bench-$i" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
for i in $(seq 1 "$ns"); do
    ip netns add "capsnap-bench-$i"
    ip -n "capsnap-bench-$i" link set lo up
    ip netns exec "capsnap-bench-$i" "$work/hold" 5000 "$children" "$conns" >"$work/ready-$i" &
done
for i in $(seq 1 "$ns"); do
    until grep -q ready "$work/ready-$i" 2>/dev/null; do sleep 0.2; done
done
echo "$ns namespaces, $((ns * (children + 1))) holder processes, $((ns * children * conns * 2)) TCP sockets"

best() { # best of RUNS wall times of "$@", in seconds
    local runs=$1 b=999999; shift
    for _ in $(seq "$runs"); do
        local s e
        s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N)
        b=$(awk -v b="$b" -v t="$(awk -v s="$s" -v e="$e" 'BEGIN{print e-s}')" 'BEGIN{print (t<b)?t:b}')
    done
    echo "$b"
}
ss_all() {
    for i in $(seq 1 "$ns"); do
        ip netns exec "capsnap-bench-$i" ss -tanpe
        ip netns exec "capsnap-bench-$i" ss -xp
    done
    ss -tanpe; ss -xp
}
# ss -e looks up each socket's cgroup; under `ip netns exec` /sys is
# remounted without cgroup2 and every lookup fails (slowly): that is what a
# user running ss per namespace pays, so it is measured as is, once.
t_ss=$(best 1 ss_all)
t_cs=$(best 3 "$capsnap" collect --no-packets --no-ebpf -o "$work/b.capsnap")
echo "slowest capsnap sources (ms):"
tar --zstd -xOf "$work/b.capsnap" manifest.json | python3 -c '
import json, sys
m = json.load(sys.stdin)
for s in sorted(m["sources"], key=lambda s: -s["duration_ms"])[:6]:
    print("  %6d  %s %s" % (s["duration_ms"], s["source"], s.get("netns", "")))'

echo "ss -tanpe + ss -xp in every namespace: ${t_ss} s"
echo "capsnap collect --no-packets --no-ebpf: ${t_cs} s (bundle $(du -h "$work/b.capsnap" | cut -f1))"
awk -v a="$t_cs" -v b="$t_ss" 'BEGIN{printf "capsnap/ss time ratio: %.2f (target <= 1.0)\n", a/b}'
