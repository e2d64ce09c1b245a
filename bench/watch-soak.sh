#!/usr/bin/env bash
# Soak of `capsnap watch` (issue 11): steady traffic for MINUTES, the
# watch's resident memory sampled every 30 s; prints the samples and
# first/last/max. Not run in CI (it takes as long as it is asked to).
#
#   sudo bench/watch-soak.sh [MINUTES] [MBIT]      (default 60 20; MBIT 0: idle)
#
# The lab: client (10.78.1.2) --veth-- server (10.78.1.1); iperf3 sends
# MBIT Mb/s client -> server; the watch runs in the server namespace and
# selects the client's, so it captures both ends (two capture points), with
# eBPF on, --keep 60s and a 64 MiB ring. CAPSNAP=path picks the binary
# (default: a release build). Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-60}
mbit=${2:-20}
((EUID == 0)) || { echo "$0: needs root" >&2; exit 2; }
for tool in ip iperf3; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is missing" >&2; exit 2; }
done
if [[ -z ${CAPSNAP:-} ]]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/capsnap/target}"
    cargo build --release --quiet --no-default-features --bin capsnap
    CAPSNAP=$CARGO_TARGET_DIR/release/capsnap
fi
lab=${SOAK_LAB:-wsoak} # namespace prefix
C=$lab-client S=$lab-server
work=$(mktemp -d /tmp/$lab.XXXXXX)
teardown() {
    local ns
    for ns in "$C" "$S"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
}
cleanup() {
    [[ -n ${watch:-} ]] && kill -INT "$watch" 2>/dev/null && wait "$watch" 2>/dev/null
    teardown
    rm -rf "$work"
}
trap cleanup EXIT
teardown
ip netns add "$C"
ip netns add "$S"
ip link add "$lab-c" netns "$C" type veth peer name "$lab-s" netns "$S"
ip -n "$C" addr add 10.78.1.2/24 dev "$lab-c"
ip -n "$S" addr add 10.78.1.1/24 dev "$lab-s"
for ns in "$C" "$S"; do
    ip -n "$ns" link set lo up
done
ip -n "$C" link set "$lab-c" up
ip -n "$S" link set "$lab-s" up
ip netns exec "$S" iperf3 -s -D --pidfile "$work/iperf3.pid" >/dev/null
sleep 0.5
mkdir "$work/out"
CAPSNAP_PROGRESS=1 ip netns exec "$S" "$CAPSNAP" watch -o "$work/out" --keep 60s --ring 64M \
    --for "$((minutes + 1))m" --netns "$C" >"$work/bundles" 2>"$work/watch.log" &
watch=$!
until grep -q '^capsnap: watching' "$work/watch.log" 2>/dev/null; do
    kill -0 "$watch" 2>/dev/null || { cat "$work/watch.log" >&2; exit 1; }
    sleep 0.2
done
traffic=
if ((mbit > 0)); then
    ip netns exec "$C" iperf3 -c 10.78.1.1 -b "${mbit}M" -t "$((minutes * 60))" >/dev/null &
    traffic=$!
fi
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$watch/stat"; }
t0=$(ticks)
echo "minute rss_kib cpu_%"
samples=()
prev=$t0
for ((i = 1; i <= minutes * 2; i++)); do
    sleep 30
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$watch/status")
    t=$(ticks)
    cpu=$(awk -v d="$((t - prev))" -v hz="$hz" 'BEGIN {printf "%.1f", 100 * d / hz / 30}')
    prev=$t
    samples+=("$rss")
    printf '%6.1f %7d %5s\n' "$(awk -v i="$i" 'BEGIN {print i / 2}')" "$rss" "$cpu"
done
[[ -z $traffic ]] || kill "$traffic" 2>/dev/null || true
printf 'rss first %d KiB, last %d KiB, max %d KiB over %d min at %d Mb/s; bundles: %d\n' \
    "${samples[0]}" "${samples[-1]}" "$(printf '%s\n' "${samples[@]}" | sort -n | tail -1)" \
    "$minutes" "$mbit" "$(wc -l <"$work/bundles")"
grep -E '^capsnap: (ring|trigger)' "$work/watch.log" | tail -5
