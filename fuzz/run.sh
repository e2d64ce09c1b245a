#!/usr/bin/env bash
# Runs every fuzz target (or those named) to RUNS executions or MINUTES
# minutes each, whichever comes first, two at a time at the lowest CPU
# priority, and prints per target: executions, corpus size, crashes
# (artifacts), wall time. Seeds: the shared corpus and the samples.
#
#   fuzz/run.sh [RUNS [MINUTES [TARGET...]]]     (default 10000000, 60)
#
# Needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz).
# Corpora and crashes go to $FUZZ_WORK (default fuzz/work, not in git).
set -uo pipefail
cd "$(dirname "$0")"
runs=${1:-10000000}
minutes=${2:-60}
shift 2 2>/dev/null || shift $#
work=${FUZZ_WORK:-$PWD/work}
target_dir=${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/target}-fuzz}
mkdir -p "$work"
seeds=$work/seeds
if [[ ! -d $seeds ]]; then
    mkdir -p "$seeds"/{text,capture,bundle,manifest,events}
    corpus=../../shared/corpus
    find "$corpus"/{proc,ebpf,misc} -type f | while read -r f; do
        cp "$f" "$seeds/text/$(echo "$f" | md5sum | cut -c1-12)"
    done
    cp "$corpus"/ebpf/*/* "$seeds/events/" 2>/dev/null
    cp "$corpus"/pcap/*.pcap* ../samples/basic.pcapng "$seeds/capture/"
    for b in ../samples/*.capsnap; do
        n=$(basename "$b" .capsnap)
        zstd -dcq "$b" >"$seeds/bundle/$n.tar"
        mkdir -p "$work/x/$n" && tar --zstd -xf "$b" -C "$work/x/$n"
        cp "$work/x/$n/manifest.json" "$seeds/manifest/$n.json"
        find "$work/x/$n" -name '*.pcapng' -exec sh -c 'cp "$1" "$2/$(echo "$1" | md5sum | cut -c1-8).pcapng"' _ {} "$seeds/capture" \;
        find "$work/x/$n" -type f ! -name '*.pcapng' -size -200k -exec sh -c 'cp "$1" "$2/$(echo "$1" | md5sum | cut -c1-12)"' _ {} "$seeds/text" \;
    done
    rm -rf "$work/x"
fi
# Real `nft -j list ruleset` output for the nft reader.
mkdir -p "$seeds/nft" && cp ../formats/testdata/nft/*.json "$seeds/nft/"
seed_of() {
    case $1 in
        capture | indexer | decode) echo "$seeds/capture" ;;
        bundle) echo "$seeds/bundle" ;;
        manifest | reader_netns | reader_collection) echo "$seeds/manifest" ;;
        joiner | reader_events | reader_tools) echo "$seeds/events" ;;
        reader_nft) echo "$seeds/nft" ;;
        *) echo "$seeds/text" ;;
    esac
}
max_len_of() {
    case $1 in
        capture | indexer | bundle) echo 262144 ;;
        *) echo 8192 ;;
    esac
}
targets=("$@")
((${#targets[@]})) || mapfile -t targets < <(cargo +nightly fuzz list)
cargo +nightly fuzz build -s none -a --target-dir "$target_dir" >/dev/null 2>&1 || {
    echo "fuzz build failed" >&2
    exit 2
}
one() {
    local t=$1 start=$SECONDS
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
    nice -n 19 cargo +nightly fuzz run -s none -a --target-dir "$target_dir" "$t" \
        "$work/corpus/$t" "$(seed_of "$t")" -- \
        -runs="$runs" -max_total_time=$((minutes * 60)) -max_len="$(max_len_of "$t")" \
        -rss_limit_mb=2048 -timeout=20 -artifact_prefix="$work/artifacts/$t/" \
        >"$work/$t.log" 2>&1
    local execs corpus crashes
    execs=$(grep -Eo '^Done [0-9]+ runs' "$work/$t.log" | grep -Eo '[0-9]+' || grep -Eo '^#[0-9]+' "$work/$t.log" | tail -1 | tr -d '#')
    corpus=$(find "$work/corpus/$t" -type f | wc -l)
    crashes=$(find "$work/artifacts/$t" -type f | wc -l)
    printf '%-24s %12s execs %7s corpus %3s crashes %6s s\n' "$t" "${execs:-?}" "$corpus" "$crashes" $((SECONDS - start))
}
# Two at a time (JOBS to change it): the next target starts as soon as
# either slot is free, so one slow target does not hold up the queue.
slots=${JOBS:-2}
for t in "${targets[@]}"; do
    while (($(jobs -rp | wc -l) >= slots)); do wait -n; done
    one "$t" &
done
wait
