#!/usr/bin/env bash
# capsnap against tcpdump and tshark on one large generated capture, in one
# run, with the file in page cache. Prints wall time and peak memory (max
# RSS) of each command and the capsnap/peer ratios.
#
#   bench/run.sh [PACKETS]      (default 3000000 packets, about 1.5 GB)
#
# Needs tcpdump, tshark and GNU time (apt-get install tcpdump tshark time).
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-3000000}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/capsnap/target}"
cargo build --release --quiet --bin capsnap --example gen_capture
capsnap="$CARGO_TARGET_DIR/release/capsnap"
data=bench/data; mkdir -p "$data"
file="$data/tcp-$packets.pcap"
if [[ ! -s $file ]]; then
    "$CARGO_TARGET_DIR/release/examples/gen_capture" "$file" "$packets" | tee "$file.txt"
fi
echo "capture: $file, $(du -h "$file" | cut -f1); $(cat "$file.txt" 2>/dev/null || true)"
cat "$file" >/dev/null   # into page cache

# measure RUNS NAME CMD...: runs CMD RUNS times, keeps the fastest.
measure() {
    local runs=$1 name=$2; shift 2
    local best=999999 mem=0
    for _ in $(seq "$runs"); do
        /usr/bin/time -f "%e %M" -o "$data/time" bash -c "$*" >"$data/$name.out" 2>"$data/$name.err" || { cat "$data/$name.err"; exit 1; }
        read -r secs kb <"$data/time"
        if awk "BEGIN{exit !($secs < $best)}"; then best=$secs; mem=$kb; fi
    done
    printf '%-34s %8.2f s %8.0f MiB   -> %s\n' "$name" "$best" "$((mem / 1024))" "$(head -c 80 "$data/$name.out" | tr '\n' ' ')"
    eval "t_$name=$best; m_$name=$((mem / 1024))"
}

echo
echo "== count of RST packets"
measure 3 capsnap_rst "'$capsnap' query --format csv '$file' 'select count(*) from packets where rst' | tail -1"
measure 3 tcpdump_rst "tcpdump -nn -r '$file' 'tcp[tcpflags] & tcp-rst != 0' 2>/dev/null | wc -l"
ours=$(tail -1 "$data/capsnap_rst.out"); theirs=$(tr -d ' ' <"$data/tcpdump_rst.out")
[[ $ours == "$theirs" ]] && echo "RST counts agree: $ours" || { echo "RST counts DIFFER: capsnap $ours, tcpdump $theirs"; exit 1; }
echo "== top 10 flows by bytes"
measure 3 capsnap_flows "'$capsnap' query --format csv '$file' 'select src_ip, src_port, dst_ip, dst_port, bytes from flows order by bytes desc limit 10'"
measure 1 tshark_conv "tshark -n -q -r '$file' -z conv,tcp | sort -t'|' -k2 | head -20"
echo
awk -v a="$t_capsnap_rst" -v b="$t_tcpdump_rst" 'BEGIN{printf "capsnap/tcpdump time ratio (RST count): %.2f (target <= 1.0)\n", a/b}'
awk -v a="$t_capsnap_flows" -v b="$t_tshark_conv" 'BEGIN{printf "capsnap/tshark  time ratio (top flows): %.2f\n", a/b}'
echo "capsnap peak memory: RST count ${m_capsnap_rst} MiB, flows ${m_capsnap_flows} MiB (target < 300 MiB)"
