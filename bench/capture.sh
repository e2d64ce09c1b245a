#!/usr/bin/env bash
# Packet capture: capsnap against one tcpdump per namespace, on the same
# traffic in the same run (issue 11).
#
#   sudo bench/capture.sh [ROUNDS] [SECONDS] [SNAPLEN]    (default 3 10 128)
#   sudo CAPSNAP=/path/to/capsnap bench/capture.sh ...
#   sudo CAPSNAP=new CAPSNAP_BEFORE=old bench/capture.sh ...
#
# CAPSNAP_BEFORE adds a second collector (an earlier build) to every
# round, as row "before": a change is measured against the build it
# changes under the same load, which on a shared machine moves more
# between two runs than the change itself.
#
# The lab: client (10.77.1.2) --veth-- node (10.77.1.1 | 10.77.2.1,
# MASQUERADE) --veth-- server (10.77.2.2), offloads off on every veth (so
# every packet is MTU-sized and the packet rate is what it would be on a
# wire), IPv6 off (no stray neighbour discovery). iperf3 runs one TCP
# stream client -> server for SECONDS, in each round once with nothing
# capturing, once with a tcpdump -i any -s SNAPLEN in each of the three
# namespaces, and once with capsnap collect (run inside the node, its
# --netns selecting the other two: three capture points) with --snaplen
# SNAPLEN, in turns, so that a busy machine weighs on all three alike.
#
# Completeness: packets each tool wrote / packets the interfaces of the
# namespace counted (rx + tx of every veth, from just after the capture is
# ready to just before it stops; `any` sees a forwarded packet on both
# interfaces of the node, and so do the counters). Throughput cost: the
# iperf3 rate with the tool running against the rate without. CPU: the
# tool's user + system time while the traffic ran, per packet written.
# Needs root, iproute2, iptables, ethtool, iperf3, tcpdump, python3, tar
# with zstd. Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
secs=${2:-10}
snap=${3:-128}
for tool in ip iptables ethtool iperf3 tcpdump python3 tar zstd; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is missing" >&2; exit 2; }
done
((EUID == 0)) || { echo "$0: needs root" >&2; exit 2; }
# The collector build (no DataFusion: minutes to build, not most of an
# hour); CAPSNAP=path runs a binary built already.
if [[ -n ${CAPSNAP:-} ]]; then
    capsnap=$CAPSNAP
else
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/capsnap/target}"
    cargo build --release --quiet --no-default-features --bin capsnap
    capsnap="$CARGO_TARGET_DIR/release/capsnap"
fi

lab=cbench
C=$lab-client N=$lab-node S=$lab-server
work=$(mktemp -d /tmp/$lab.XXXXXX)
teardown() {
    local ns
    for ns in "$C" "$N" "$S"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
}
cleanup() {
    teardown
    rm -rf "$work"
}
trap cleanup EXIT
teardown
for ns in "$C" "$N" "$S"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add "$lab-c" netns "$C" type veth peer name "$lab-nc" netns "$N"
ip link add "$lab-ns" netns "$N" type veth peer name "$lab-s" netns "$S"
ip -n "$C" addr add 10.77.1.2/24 dev "$lab-c"
ip -n "$N" addr add 10.77.1.1/24 dev "$lab-nc"
ip -n "$N" addr add 10.77.2.1/24 dev "$lab-ns"
ip -n "$S" addr add 10.77.2.2/24 dev "$lab-s"
for pair in "$C:$lab-c" "$N:$lab-nc" "$N:$lab-ns" "$S:$lab-s"; do
    ns=${pair%%:*} dev=${pair#*:}
    ip netns exec "$ns" ethtool -K "$dev" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
    ip -n "$ns" link set "$dev" up
done
ip -n "$C" route add default via 10.77.1.1
ip -n "$S" route add default via 10.77.2.1
ip netns exec "$N" sysctl -qw net.ipv4.ip_forward=1
ip netns exec "$N" iptables -t nat -A POSTROUTING -s 10.77.1.0/24 -o "$lab-ns" -j MASQUERADE
ip netns exec "$S" iperf3 -s -D --pidfile "$work/iperf3.pid" >/dev/null
sleep 0.5
# (no ping: iperf3 itself fails loudly when the path is broken)

# Packets the veths of a namespace counted (rx + tx), per namespace.
counters() {
    local ns dev sum
    for ns in "$C" "$N" "$S"; do
        sum=0
        for dev in $(ip netns exec "$ns" ls /sys/class/net); do
            [[ $dev == lo ]] && continue
            sum=$((sum + $(ip netns exec "$ns" cat "/sys/class/net/$dev/statistics/rx_packets") + \
                $(ip netns exec "$ns" cat "/sys/class/net/$dev/statistics/tx_packets")))
        done
        printf '%s ' "$sum"
    done
}
# CPU ticks (user + system) of the given pids, summed.
ticks() {
    local t=0 p f
    for p in "$@"; do
        read -ra f <"/proc/$p/stat"
        # fields 14 and 15, counted after the ")" that ends comm
        local rest=${f[*]}
        rest=${rest##*) }
        read -ra f <<<"$rest"
        t=$((t + f[11] + f[12]))
    done
    echo "$t"
}
iperf() { # -> bits per second received
    ip netns exec "$C" iperf3 -c 10.77.2.2 -t "$secs" -J >"$work/iperf.json"
    python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]))' "$work/iperf.json"
}

results=$work/results
: >"$results"
hz=$(getconf CLK_TCK)
for round in $(seq "$rounds"); do
    # Nothing capturing.
    bps=$(iperf)
    echo "none $round $bps" >>"$results"

    # One tcpdump per namespace.
    pids=()
    for ns in "$C" "$N" "$S"; do
        ip netns exec "$ns" tcpdump -Z root -n -i any -s "$snap" -w "$work/td-$ns.pcap" 2>"$work/td-$ns.log" &
        pids+=($!)
    done
    for ns in "$C" "$N" "$S"; do
        until grep -q listening "$work/td-$ns.log" 2>/dev/null; do sleep 0.05; done
    done
    read -ra before <<<"$(counters)"
    t0=$(ticks "${pids[@]}")
    bps=$(iperf)
    read -ra after <<<"$(counters)"
    t1=$(ticks "${pids[@]}")
    kill -INT "${pids[@]}"
    wait "${pids[@]}" 2>/dev/null || true
    line="tcpdump $round $bps $((t1 - t0))"
    for i in 0 1 2; do
        ns=$(echo "$C $N $S" | cut -d' ' -f$((i + 1)))
        got=$(sed -n 's/^\([0-9]*\) packets captured.*/\1/p' "$work/td-$ns.log")
        dropped=$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' "$work/td-$ns.log")
        line+=" $((after[i] - before[i])):$got:$dropped"
    done
    echo "$line" >>"$results"
    rm -f "$work"/td-*.pcap

    # capsnap: three capture points, one process.
    # Two builds: in turns, so that neither always runs first.
    tools=capsnap
    if [[ -n ${CAPSNAP_BEFORE:-} ]]; then
        tools="before capsnap"
        ((round % 2 == 0)) && tools="capsnap before"
    fi
    for tool in $tools; do
        bin=$capsnap
        [[ $tool == before ]] && bin=$CAPSNAP_BEFORE
        rm -rf "$work/out" && mkdir -p "$work/out"
        CAPSNAP_PROGRESS=1 ip netns exec "$N" "$bin" collect --duration 600s --no-ebpf \
            --netns "$C" --netns "$S" --snaplen "$snap" --max-packets 0 --max-bytes 16G \
            -o "$work/out/b.capsnap" 2>"$work/cs.log" &
        cs=$!
        until grep -q 'window open' "$work/cs.log" 2>/dev/null; do
            kill -0 "$cs" 2>/dev/null || { cat "$work/cs.log" >&2; exit 1; }
            sleep 0.05
        done
        sleep 0.2
        read -ra before <<<"$(counters)"
        t0=$(ticks "$cs")
        bps=$(iperf)
        read -ra after <<<"$(counters)"
        t1=$(ticks "$cs")
        kill -INT "$cs"
        wait "$cs" || { cat "$work/cs.log" >&2; exit 1; }
        tar --zstd -xOf "$work/out/b.capsnap" manifest.json >"$work/manifest.json"
        line="$tool $round $bps $((t1 - t0))"
        for i in 0 1 2; do
            label=host
            ((i == 0)) && label=$C
            ((i == 2)) && label=$S
            c=$(python3 -c 'import json,sys
m = json.load(open(sys.argv[1]))
p = [s["packets"] for s in m["sources"] if s["source"] == "packets" and s.get("netns") == sys.argv[2]][0]
print(p["written"], p["kernel_dropped"] + p["capsnap_dropped"], sep=":")' "$work/manifest.json" "$label")
            line+=" $((after[i] - before[i])):$c"
        done
        echo "$line" >>"$results"
        rm -rf "$work/out"
    done
done

python3 - "$results" "$rounds" "$secs" "$snap" "$hz" <<'PY'
import sys
path, rounds, secs, snap, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rows = [l.split() for l in open(path)]
none = {int(r[1]): int(r[2]) for r in rows if r[0] == "none"}
print(f"iperf3 TCP client -> NAT node -> server, offloads off, {secs} s x {rounds} rounds, snap length {snap}")
print(f"{'tool':8} {'round':>5} {'Gb/s':>6} {'vs none':>8} {'completeness (client node server)':>36} {'dropped':>8} {'CPU ms':>7} {'CPU us/pkt':>10}")
mean = {}
for tool in ("none", "tcpdump", "before", "capsnap"):
    for r in rows:
        if r[0] != tool:
            continue
        rnd, bps = int(r[1]), int(r[2])
        if tool == "none":
            print(f"{tool:8} {rnd:5} {bps / 1e9:6.2f}")
            continue
        cpu = int(r[3]) * 1000 / hz
        comp, dropped, written = [], 0, 0
        for point in r[4:]:
            counted, got, drop = (int(x or 0) for x in point.split(":"))
            comp.append(100.0 * got / counted if counted else 0.0)
            dropped += drop
            written += got
        per = cpu * 1000 / written if written else 0
        mean.setdefault(tool, []).append((100.0 * bps / none[rnd], min(comp), per))
        print(f"{tool:8} {rnd:5} {bps / 1e9:6.2f} {100.0 * bps / none[rnd]:7.1f}% "
              f"{'  '.join(f'{c:6.1f}%' for c in comp):>36} {dropped:8} {cpu:7.0f} {per:10.3f}")
print("mean over the rounds: throughput vs none, lowest completeness of a point, CPU us/packet")
for tool, m in mean.items():
    n = len(m)
    print(f"{tool:8} {sum(x[0] for x in m) / n:7.1f}% {sum(x[1] for x in m) / n:7.1f}% {sum(x[2] for x in m) / n:7.3f}")
PY
