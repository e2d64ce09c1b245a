#!/usr/bin/env bash
# Reproduces incident 4 (DESIGN.md; seed 003, "connect timeout from a port
# colliding with a sidecar's FIN_WAIT2 socket") and collects a bundle while
# it happens:
#   samples/repro/connect-timeout.sh OUT.capsnap
# writes OUT.capsnap and OUT.facts.json (what a correct detection must name).
#
# The scene, Istio-like: a pod (cs-ct-pod, 10.244.3.7) whose iptables
# REDIRECT every outbound TCP connection to port 7777 to a sidecar proxy on
# port 15001 (the proxy's own upstream connections carry a mark and are not
# redirected); the pod reaches an upstream (cs-ct-remote, 192.168.77.2:7777)
# through a node (cs-ct-node) that MASQUERADEs it. As in Istio #43297/#43301:
#   1. The app connects from port 44410; the upstream answers and closes;
#      the sidecar half-closes the app's side and waits for the app's FIN:
#      127.0.0.1:15001 -> 10.244.3.7:44410 sits in FIN_WAIT2, no timer.
#   2. The app keeps its socket in CLOSE_WAIT past the conntrack timeout
#      (nf_conntrack_tcp_timeout_close_wait, 60 s; here the entry is deleted
#      with conntrack -D instead of waiting for its timer). Its FIN then
#      finds no NAT entry and goes to 192.168.77.2:7777 un-NATed; the
#      sidecar never sees it. The leak is in place.
#   3. In the capture window the app connects again from 44410 (forced, as
#      the seed's author did with `nc -p`) with a 2.2 s timeout. The SYN is
#      redirected to 127.0.0.1:15001 and lands on the FIN_WAIT2 socket,
#      which answers with a challenge ACK (RFC 5961); the app answers that
#      with a RST and retransmits the SYN; no SYN-ACK ever comes; connect
#      times out and close() moves the socket SYN_SENT -> CLOSE.
#
# One stand-in, and why: in step 3 the seed's kernel found the app's RST
# outside the new connection's window and marked it INVALID (Istio #43301,
# step 7: "in some kernel version"), so the RST was not NATed and never
# reached the sidecar. This lab's kernel (6.18) accepts that RST: NATed to
# 127.0.0.1:15001 it resets the FIN_WAIT2 socket, and the SYN retransmitted
# ~10 ms later connects (checked: 1 SYN retransmit, no timeout). The raw
# table rule below (CT --notrack for RSTs to port 7777) gives that RST the
# old verdict, "not NATed", and nothing else changes. Everything else is
# the kernel's own behaviour.
#
# Needs root, iproute2, iptables, conntrack, tcpdump, ss, python3, tar+zstd,
# capsnap (CAPSNAP=path) with bpftrace. Leaves nothing behind (trap EXIT).
set -euo pipefail

LAB=cs-ct
ID=connect-timeout
# shellcheck source=samples/repro/nat-lab.sh
source "$(dirname "$0")/nat-lab.sh"
lab_preflight "$@"
trap lab_cleanup EXIT
lab_teardown

NODE=$LAB-node
POD=$LAB-pod
REMOTE=$LAB-remote
POD_IP=10.244.3.7
REMOTE_IP=192.168.77.2
REMOTE_PORT=7777
LOCAL_PORT=44410
SIDECAR_PORT=15001
MARK=1337
TIMEOUT=2.2
lab_bin upstream "$HERE/connect-timeout.py"
lab_bin sidecar "$HERE/connect-timeout.py"
lab_bin app "$HERE/connect-timeout.py"

ip netns add "$NODE"
ip netns add "$POD"
ip netns add "$REMOTE"
for ns in "$NODE" "$POD" "$REMOTE"; do
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
veth "$NODE" "$LAB-pod0" "$POD" eth0
veth "$NODE" "$LAB-up" "$REMOTE" eth0
ip -n "$POD" addr add "$POD_IP/24" dev eth0
ip -n "$POD" route add default via 10.244.3.1
ip -n "$NODE" addr add 10.244.3.1/24 dev "$LAB-pod0"
ip -n "$NODE" addr add 192.168.77.1/24 dev "$LAB-up"
ip -n "$REMOTE" addr add "$REMOTE_IP/24" dev eth0
ip -n "$REMOTE" route add default via 192.168.77.1
ip netns exec "$NODE" sysctl -qw net.ipv4.ip_forward=1
ip netns exec "$NODE" iptables -t nat -A POSTROUTING -s 10.244.0.0/16 -o "$LAB-up" -j MASQUERADE
# The pod's interception, Istio-like.
ip netns exec "$POD" iptables -t nat -N PROXY_OUTPUT
ip netns exec "$POD" iptables -t nat -A OUTPUT -p tcp -j PROXY_OUTPUT
ip netns exec "$POD" iptables -t nat -A PROXY_OUTPUT -m mark --mark "$MARK" -j RETURN
ip netns exec "$POD" iptables -t nat -A PROXY_OUTPUT -d 127.0.0.1/32 -j RETURN
ip netns exec "$POD" iptables -t nat -A PROXY_OUTPUT -p tcp --dport "$REMOTE_PORT" -j REDIRECT --to-ports "$SIDECAR_PORT"
# The stand-in for the older kernels' verdict on the app's RST (see above).
ip netns exec "$POD" iptables -t raw -A OUTPUT -p tcp --tcp-flags RST RST --dport "$REMOTE_PORT" -j CT --notrack

start_in "$REMOTE" upstream "$WORK/bin/upstream" upstream "$REMOTE_IP" "$REMOTE_PORT"
start_in "$POD" sidecar "$WORK/bin/sidecar" sidecar "$SIDECAR_PORT" "$MARK"

# 1. The earlier connection and the sidecar's half-close.
start_in "$POD" app "$WORK/bin/app" app "$LOCAL_PORT" "$REMOTE_IP" "$REMOTE_PORT" "$WORK/close-app"
fin_wait2() { ip netns exec "$POD" ss -tnH state fin-wait-2 "( sport = :$SIDECAR_PORT and dport = :$LOCAL_PORT )"; }
for _ in $(seq 100); do
    [[ -n $(fin_wait2) ]] && break
    nap 0.05
done
[[ -n $(fin_wait2) ]] || fail "the sidecar's socket to port $LOCAL_PORT is not in FIN_WAIT2"

# 2. The conntrack entry expires while the app holds CLOSE_WAIT; then the
# app closes and its FIN goes out un-NATed.
entry() { ip netns exec "$POD" conntrack -L -p tcp --orig-port-src "$LOCAL_PORT" 2>/dev/null; }
entry | grep -q CLOSE_WAIT || fail "no CLOSE_WAIT conntrack entry for port $LOCAL_PORT: $(entry)"
# Its 60 s timer is not waited for: the entry is deleted, which is what
# the timer would do (conntrack -U --timeout is refused for NAT entries).
ip netns exec "$POD" conntrack -D -p tcp --orig-port-src "$LOCAL_PORT" >"$WORK/conntrack-d.log" 2>&1 ||
    fail "conntrack -D failed: $(cat "$WORK/conntrack-d.log")"
[[ -z $(entry) ]] || fail "the conntrack entry did not expire: $(entry)"
touch "$WORK/close-app"
app_socket() { ip netns exec "$POD" ss -tnaH "( sport = :$LOCAL_PORT )"; }
for _ in $(seq 100); do
    grep -q closed "$WORK/app.log" && [[ -z $(app_socket) ]] && break
    nap 0.05
done
[[ -z $(app_socket) ]] || fail "the app's old socket is still there: $(app_socket)"
[[ -n $(fin_wait2) ]] || fail "the app's FIN reached the sidecar: no FIN_WAIT2 left"
say "leak in place: $(fin_wait2 | awk '{print $3, "->", $4}') in FIN_WAIT2, no conntrack entry, the app's socket gone"

# Our own witness of the failing connect.
ip netns exec "$POD" tcpdump -U -n -i any -w "$WORK/pod.pcap" "tcp port $LOCAL_PORT" 2>"$WORK/tcpdump.log" &
td=$!
for _ in $(seq 100); do
    grep -q listening "$WORK/tcpdump.log" && break
    nap 0.05
done
stats() { ip netns exec "$POD" nstat -az TcpExtTCPSYNChallenge TcpExtTCPChallengeACK TcpExtTCPSynRetrans | awk 'NR > 1 {print $2}' | paste -sd' '; }
stats_before=$(stats)

# 3. The failing connect, inside the capture window.
WATCH_PING=$POD_IP collect_start "$NODE" "$POD"
nap 0.2
ip netns exec "$POD" "$WORK/bin/app" connect "$LOCAL_PORT" "$REMOTE_IP" "$REMOTE_PORT" "$TIMEOUT" >"$WORK/connect.json"
collect_finish
stats_after=$(stats)
kill -INT "$td"
wait "$td" || true

result=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["result"])' "$WORK/connect.json")
syns=$(tcpdump -nr "$WORK/pod.pcap" 2>/dev/null | grep -c "$POD_IP.$LOCAL_PORT > 127.0.0.1.$SIDECAR_PORT: Flags \[S\]" || true)
synacks=$(tcpdump -nr "$WORK/pod.pcap" 2>/dev/null | grep -c "Flags \[S\.\]" || true)
say "connect: $(cat "$WORK/connect.json"); $syns SYNs to the sidecar, $synacks SYN-ACKs;" \
    "TCPSYNChallenge TCPChallengeACK TCPSynRetrans: $stats_before -> $stats_after"
[[ $result == timeout ]] || fail "the connect did not time out: $(cat "$WORK/connect.json")"
((syns >= 2)) || fail "expected the SYN and at least one retransmit, saw $syns SYNs"
((synacks == 0)) || fail "a SYN-ACK came back"
[[ -n $(fin_wait2) ]] || fail "the FIN_WAIT2 socket is gone after the connect"

# The evidence, read back from the bundle as a detection will.
B=$WORK/bundle
pod_inode=$("$PY" -c 'import json,sys; print([n["inode"] for n in json.load(open(sys.argv[1]))["namespaces"] if n["label"] == sys.argv[2]][0])' "$B/manifest.json" "$POD")
read -r closes retrans <<<"$("$PY" - "$B/ebpf/events.jsonl" "$pod_inode" "$LOCAL_PORT" <<'PY'
import json, sys
path, netns, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
closes = retrans = 0
for line in open(path):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("netns") != netns or e.get("sport") != port:
        continue
    if e["event"] == "tcp_state" and e["oldstate"] == "SYN_SENT" and e["newstate"] == "CLOSE":
        closes += 1
    if e["event"] == "retransmit" and e["state"] == "SYN_SENT":
        retrans += 1
print(closes, retrans)
PY
)"
hex_port=$(printf '%04X' "$LOCAL_PORT")
hex_sidecar=$(printf '%04X' "$SIDECAR_PORT")
fw2_rows=$(awk -v l="0100007F:$hex_sidecar" -v p=":$hex_port" '$2 == l && substr($3, 9) == p && $4 == "05"' \
    "$B/netns/$POD/proc/net/tcp" | wc -l)
pod_syns=$(q "select count(*) from packets where syn and not ack and src_port = $LOCAL_PORT" "$POD=$B/netns/$POD/packets.pcapng")
flow=$(q "select conn_state, history, syn_retries from flows where src_port = $LOCAL_PORT and dst_port = $SIDECAR_PORT" \
    "$POD=$B/netns/$POD/packets.pcapng")
say "bundle: eBPF SYN_SENT->CLOSE $closes, SYN retransmits $retrans; /proc/net/tcp FIN_WAIT2 127.0.0.1:$SIDECAR_PORT" \
    "peer port $LOCAL_PORT rows $fw2_rows; SYNs from port $LOCAL_PORT in the pod capture $pod_syns"
# eBPF evidence is recorded, not required: bpftrace can lose events on a
# loaded machine, and our capture above already proves the fault.
((closes == 1 && retrans >= 1)) ||
    say "warning: the bundle has $closes eBPF SYN_SENT->CLOSE and $retrans SYN retransmit events for port $LOCAL_PORT"
((fw2_rows == 1)) || fail "the bundle's $POD /proc/net/tcp lacks the FIN_WAIT2 socket"
((pod_syns >= 2)) || fail "the bundle's pod capture has $pod_syns SYNs from port $LOCAL_PORT"
IFS=, read -r flow_state flow_history flow_syn_retries <<<"$flow"
[[ $flow_state == S0 ]] && ((flow_syn_retries >= 1)) || fail "the bundle's flow from port $LOCAL_PORT is '$flow'"

"$PY" - "$FACTS" "$WORK/connect.json" <<PY
import json, sys
facts = {
    "detection": "connect-timeout",
    "named": ["local_port", "remote_ip", "remote_port", "fin_wait2_local"],
    "objects": {
        "local_port": $LOCAL_PORT,
        "remote_ip": "$REMOTE_IP",
        "remote_port": $REMOTE_PORT,
        "fin_wait2_local": "127.0.0.1:$SIDECAR_PORT",
        "fin_wait2_peer_port": $LOCAL_PORT,
        "syn_retries_min": 1,
        "netns": "$POD",
    },
    "evidence": {
        "ebpf": "ebpf/events.jsonl (netns = the inode of $POD in manifest.json): connect and "
            "tcp_state CLOSE->SYN_SENT for $POD_IP:$LOCAL_PORT -> $REMOTE_IP:$REMOTE_PORT "
            "(comm app), retransmit events in state SYN_SENT ($retrans), then tcp_state "
            "SYN_SENT->CLOSE when the app gives up after ${TIMEOUT} s; drop events with reason "
            "TCP_INVALID_SYN at tcp_validate_incoming for $POD_IP:$LOCAL_PORT -> "
            "127.0.0.1:$SIDECAR_PORT (the FIN_WAIT2 socket discarding each SYN); reset_sent "
            "from $POD_IP:$LOCAL_PORT in state SYN_SENT, reason TCP_INVALID_ACK_SEQUENCE",
        "ebpf_syn_sent_to_close_events": $closes,
        "ebpf_syn_retransmit_events": $retrans,
        "proc_net_tcp": "netns/$POD/proc/net/tcp: st 05 (FIN_WAIT2) local 0100007F:$hex_sidecar "
            "rem port $hex_port ($LOCAL_PORT), owned by the sidecar (fds.tsv inode)",
        "packets": "netns/$POD/packets.pcapng, on lo: SYN $POD_IP:$LOCAL_PORT -> "
            "127.0.0.1:$SIDECAR_PORT (after REDIRECT), the sidecar's challenge ACK (un-NATed "
            "back to $REMOTE_IP:$REMOTE_PORT -> $POD_IP:$LOCAL_PORT, ack outside the new "
            "connection), the app's RST leaving un-NATed on eth0 to $REMOTE_IP:$REMOTE_PORT, "
            "SYN retransmits, never a SYN-ACK ($pod_syns SYNs in all)",
        "flows": "flows of netns/$POD/packets.pcapng: $POD_IP:$LOCAL_PORT -> 127.0.0.1:$SIDECAR_PORT "
            "conn_state $flow_state, history $flow_history, syn_retries $flow_syn_retries (the "
            "capture on lo sees the redirected address; eBPF events carry the original "
            "$REMOTE_IP:$REMOTE_PORT)",
        "iptables": "netns/$POD/iptables-save.txt: REDIRECT --to-ports $SIDECAR_PORT for "
            "--dport $REMOTE_PORT; raw CT --notrack for RSTs (the lab's stand-in, see notes)",
    },
    "connect": json.load(open(sys.argv[2])),
    "observed_by_the_script": {
        "syns_to_sidecar": $syns,
        "syn_acks": $synacks,
        "nstat_TCPSYNChallenge_TCPChallengeACK_TCPSynRetrans": ["$stats_before", "$stats_after"],
    },
    "notes": [
        "The seed's kernel left the app's RST (answering the challenge ACK) un-NATed as "
        "INVALID; this lab's 6.18 accepts it, NATs it to the sidecar and the FIN_WAIT2 "
        "socket dies, so the connect would succeed after one fast SYN retransmit. The raw "
        "table rule 'CT --notrack' for RSTs to port $REMOTE_PORT restores the old verdict; "
        "a detection must not depend on that rule.",
        "The conntrack entry of the earlier connection was deleted (conntrack -D) where "
        "production waits for nf_conntrack_tcp_timeout_close_wait (60 s) to expire it.",
        "Counters in the bundle are snapshotted at the start of the window, before the "
        "failing connect.",
    ],
}
with open(sys.argv[1], "w") as f:
    json.dump(facts, f, indent=2)
    f.write("\n")
PY
say "wrote $OUT and $FACTS"
