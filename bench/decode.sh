#!/usr/bin/env bash
# Our record walker and decoder against pcap-parser's and etherparse's, in
# the read path of `capsnap query` (pread into 1 MiB buffers, the index fed
# as the file is read, chunks decoded in parallel), without DataFusion: see
# bench/decode_bench/src/main.rs. First checks that every variant
# reads the same frames and fields (bench captures and ../shared/corpus/pcap),
# then times each variant with the captures in page cache.
#
#   bench/decode.sh [PACKETS] [RUNS]   (default 3000000 packets, 10 runs)
#
# DATA=dir puts the captures elsewhere (default bench/data). Needs hyperfine,
# GNU time and python3 (apt-get install hyperfine time python3).
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-3000000}
runs=${2:-10}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/capsnap/target}"
data=${DATA:-bench/data}
mkdir -p "$data" "$CARGO_TARGET_DIR"
cargo build --release --quiet --manifest-path bench/decode_bench/Cargo.toml
bench="$CARGO_TARGET_DIR/release/decode_bench"
# gen_capture needs only std: built alone, not with the capsnap binary.
gen="$CARGO_TARGET_DIR/gen_capture"
rustc --edition 2024 -C opt-level=3 examples/gen_capture.rs -o "$gen"
plain="$data/tcp-$packets.pcap"
opts="$data/tcp-opts-$packets.pcap"
[[ -s $plain ]] || "$gen" "$plain" "$packets" | tee "$plain.txt"
[[ -s $opts ]] || "$gen" "$opts" "$packets" --tcp-options | tee "$opts.txt"
# The same packets as `capsnap collect` writes them: pcapng, epb_flags on each.
ng="$data/tcp-$packets.pcapng"
[[ -s $ng ]] || "$bench" --to-pcapng "$plain" "$ng"

echo "== agreement (every variant, frame by frame)"
"$bench" --check "$plain" "$opts" "$ng" ../shared/corpus/pcap | tee "$data/decode-check.txt" | sed -n '/^-- /,$p'

echo "== time (load: $(cut -d' ' -f1-3 /proc/loadavg))"
for file in "$plain" "$opts" "$ng"; do
    cat "$file" >/dev/null   # into page cache
    name=$(basename "$file")
    hyperfine --warmup 1 --runs "$runs" --style basic \
        --export-json "$data/decode-$name.json" \
        -n ours "$bench $file" \
        -n pcap-parser "$bench $file --walker pcap-parser" \
        -n etherparse "$bench $file --decoder etherparse"
    python3 - "$data/decode-$name.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"{r['command']:12} min {r['min'] * 1000:6.0f} ms  median {r['median'] * 1000:6.0f} ms")
PY
    for v in "" "--walker pcap-parser" "--decoder etherparse"; do
        /usr/bin/time -f "peak RSS %M KiB: ${v:-ours}" "$bench" "$file" $v >/dev/null
    done
done
