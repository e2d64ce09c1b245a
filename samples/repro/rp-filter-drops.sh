#!/usr/bin/env bash
# Reproduces reverse-path filter drops for real and collects a bundle while
# they happen:
#   samples/repro/rp-filter-drops.sh OUT.capsnap
# writes OUT.capsnap and OUT.facts.json (what a correct detection must name).
#
# The scene, an asymmetric path: a server namespace (inp-rp-srv) reaches
# 198.18.65.0/24 through a second interface (inp-rp-d0, one end of a veth
# pair standing for another uplink: this kernel has no dummy driver), but a
# client (inp-rp-cli) with an address in that range
# connects to it over the first one (inp-rp-s0, 10.203.65.1). With
# net.ipv4.conf.inp-rp-s0.rp_filter=1 (strict, RFC 3704), fib_validate_source
# (net/ipv4/fib_frontend.c) finds that the reply would leave through
# another interface, so ip_rcv_finish drops each SYN, counts
# TcpExtIPReversePathFilter and, with eBPF, kfree_skb says
# SKB_DROP_REASON_IP_RPFILTER. The client's connects time out. A second
# client address inside the interface's own subnet connects fine, so the
# server is up. Checked before collecting: the counter rising; after: the
# bundle's two copies of /proc/net/netstat differ.
#
# Needs root, iproute2, python3, tar+zstd, capsnap (CAPSNAP=path) with
# its eBPF probes for the drop events (without them the finding still names
# the namespace, interface and counter). Leaves nothing behind (trap EXIT).
set -euo pipefail

# shellcheck source=samples/repro/pair-lab.sh
source "$(dirname "$0")/pair-lab.sh"
pair_lab_init rp 65 "ip python3 tar" "$@"
PORT=8080
SPOOF=198.18.65.2
pair_lab_up

# The other uplink, and the route back to the client's second address
# through it: the path is asymmetric.
ip -n "$SRV" link add inp-rp-d0 type veth peer name inp-rp-d1
ip -n "$SRV" link set inp-rp-d0 up
ip -n "$SRV" link set inp-rp-d1 up
ip -n "$SRV" route add 198.18.65.0/24 dev inp-rp-d0
ip -n "$CLI" addr add "$SPOOF/32" dev "inp-$TAG-c0"
ip netns exec "$SRV" sysctl -qw "net.ipv4.conf.inp-$TAG-s0.rp_filter=1"

cat >"$WORK/rp-server" <<PYEOF
#!$PY
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("$ADDR", $PORT))
s.listen(128)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"hello\n")
    c.close()
PYEOF
# The client: from its own subnet address (answered) and from the address
# the server routes elsewhere (dropped), a connect of each every 0.3 s.
cat >"$WORK/rp-client" <<PYEOF
#!$PY
import socket, threading, time
def loop(source, timeout):
    while True:
        c = socket.socket()
        c.settimeout(timeout)
        c.bind((source, 0))
        try:
            c.connect(("$ADDR", $PORT))
            c.recv(64)
            print("ok", source, flush=True)
        except OSError as e:
            print("failed", source, e, flush=True)
        c.close()
        time.sleep(0.3)
threading.Thread(target=loop, args=("$SPOOF", 1.5), daemon=True).start()
loop("$CLI_ADDR", 2)
PYEOF
chmod 755 "$WORK/rp-server" "$WORK/rp-client"

pair_lab_server "$WORK/rp-server"

rpfilter() { netstat_now "$SRV" IPReversePathFilter; }
before=$(rpfilter)
ip netns exec "$CLI" "$WORK/rp-client" >"$WORK/client.log" 2>&1 &
client=$!
pids+=("$client")
nap 2
# The fault, checked before collecting: drops counted, the other address
# answered.
now=$(rpfilter)
ok=$(grep -c "^ok $CLI_ADDR" "$WORK/client.log" || true)
echo "fault present: IPReversePathFilter $before -> $now in $SRV; $ok connects from $CLI_ADDR answered" >&2
((now > before)) || fail "IPReversePathFilter did not rise ($before -> $now)"
((ok > 0)) || fail "the server answered no connect from $CLI_ADDR: $(tail -3 "$WORK/client.log")"
if grep -q "^ok $SPOOF" "$WORK/client.log"; then
    fail "a connect from $SPOOF was answered: the path is not asymmetric"
fi

pair_lab_collect --netns "$SRV"
after=$(rpfilter)

inside=$(netstat_in_window "$SRV" IPReversePathFilter) || fail "the bundle lacks the two copies of /proc/net/netstat"
((inside > 0)) || fail "IPReversePathFilter did not rise inside the window: +$inside"
echo "bundle: IPReversePathFilter +$inside inside the window ($now before, $after after)" >&2

"$PY" - "$FACTS" <<PY
import json, sys
facts = {
    "detection": "rp-filter-drops",
    "named": ["netns", "interface", "rp_filter"],
    "objects": {
        "netns": "$SRV",
        "interface": "inp-$TAG-s0",
        "rp_filter": "rp_filter=1",
        "source": "$SPOOF",
    },
    "observed_before_collection": {
        "ip_reverse_path_filter_before_client": $before,
        "ip_reverse_path_filter_before_collect": $now,
        "ip_reverse_path_filter_after_collect": $after,
        "answered_from_subnet_address": $ok,
    },
    "notes": [
        "The effective rp_filter of an interface is max(conf.all, conf.<dev>) (IN_DEV_RPFILTER).",
        "The source address is named when the bundle has eBPF drop events (reason IP_RPFILTER).",
    ],
}
with open(sys.argv[1], "w") as f:
    json.dump(facts, f, indent=2)
    f.write("\n")
PY
echo "wrote $OUT and $FACTS" >&2
