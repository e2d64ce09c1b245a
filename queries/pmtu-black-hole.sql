-- id: pmtu-black-hole
-- title: Path MTU black hole: full-size segments never arrive while the peer still talks
-- severity: high
-- requires: inet_sockets
-- why: A TCP sender sizes its segments by the path MTU it believes
--   (tcp_info pmtu, 1500 on Ethernet). When a link on the path has a
--   smaller MTU, the router there drops each larger packet with DF set and
--   sends ICMP "fragmentation needed" (ICMPv6 "packet too big"); the sender
--   lowers its pmtu on receipt (tcp_v4_mtu_reduced, net/ipv4/tcp_ipv4.c).
--   If that ICMP is filtered anywhere, the sender never learns: the
--   handshake and small packets pass, every full-size segment is lost, and
--   the connection stalls in RTO back-off (tcp_info backoff, retransmits)
--   with data unacknowledged, while the peer's own small packets still
--   arrive (tcp_info last_data_recv_ms / last_ack_recv_ms). With
--   net.ipv4.tcp_mtu_probing=0 (the default) it never recovers. The
--   bundle's interfaces with an MTU below the socket's pmtu, firewall rules
--   that dropped ICMP during the window and IP FragFails (packets too big to
--   forward with DF) point at where it happens.
-- action: Let ICMP type 3 code 4 (and ICMPv6 type 2) through every
--   firewall on the path; or clamp the MSS at the smaller link (iptables
--   -t mangle ... -j TCPMSS --clamp-mss-to-pmtu), lower the interface MTU,
--   or enable net.ipv4.tcp_mtu_probing=1 on the senders.
CREATE TABLE pmtu_black_hole_sockets AS
SELECT bundle, netns, local_address, local_port, remote_address, remote_port,
       pmtu, snd_mss, unacked, backoff, retransmits, total_retrans, bytes_acked,
       last_data_recv_ms, last_ack_recv_ms, last_data_sent_ms, rto_us
FROM inet_sockets
WHERE protocol = 'tcp' AND state = 'ESTABLISHED'
  -- stalled: consecutive timeouts now, data outstanding
  AND (backoff >= 2 OR retransmits >= 2) AND unacked > 0
  -- full-size segments: the socket still believes a large path MTU
  AND snd_mss >= 1000 AND pmtu >= snd_mss + 40
  -- earlier, smaller data got through, and the peer still sends: the
  -- path works, for small packets
  AND bytes_acked > 1
  AND least(coalesce(last_data_recv_ms, 4294967295), coalesce(last_ack_recv_ms, 4294967295)) < least(CAST(rto_us AS BIGINT) / 1000, 10000);

CREATE TABLE pmtu_black_hole_links AS
SELECT bundle, string_agg(concat(netns, '/', ifname, ' mtu ', CAST(mtu AS VARCHAR)), ', ' ORDER BY mtu, netns, ifname) AS small_links, min(mtu) AS min_mtu
FROM (SELECT DISTINCT bundle, netns, name AS ifname, mtu FROM interfaces
      WHERE mtu IS NOT NULL AND mtu >= 576 AND mtu < 1500 AND name <> 'lo') i
GROUP BY bundle;

CREATE TABLE pmtu_black_hole_icmp_rules AS
SELECT bundle,
       string_agg(concat(netns, ' ', "table", '/', chain, ' rule ', CAST(position AS VARCHAR), ' ', rule,
                         ' (+', CAST(packets_delta AS VARCHAR), ' packets)'), '; ' ORDER BY netns, chain, position) AS icmp_rules
FROM firewall_rules
WHERE target IN ('DROP', 'REJECT') AND packets_delta > 0
  AND (rule LIKE '%icmp%' OR rule LIKE '%fragmentation-needed%' OR rule LIKE '%packet-too-big%')
GROUP BY bundle;

CREATE TABLE pmtu_black_hole_fragfails AS
SELECT bundle, string_agg(concat(netns, ' +', CAST(delta AS VARCHAR)), ', ' ORDER BY netns) AS fragfails
FROM net_counters
WHERE "group" = 'Ip' AND name = 'FragFails' AND delta > 0
GROUP BY bundle;

SELECT concat('PMTU black hole suspected: ', s.local_address, ':', CAST(s.local_port AS VARCHAR), ' -> ',
              s.remote_address, ':', CAST(s.remote_port AS VARCHAR), ' in ', s.netns,
              ' stalls with ', CAST(s.unacked AS VARCHAR), ' segments of up to ', CAST(s.snd_mss AS VARCHAR),
              ' bytes unacknowledged (pmtu ', CAST(s.pmtu AS VARCHAR), ', backoff ', CAST(s.backoff AS VARCHAR),
              ') while the peer still sends',
              coalesce('; smaller MTU on ' || l.small_links, ''),
              coalesce('; ICMP dropped by ' || r.icmp_rules, ''),
              coalesce('; Ip FragFails ' || f.fragfails, '')) AS finding,
       s.bundle, s.netns, s.local_address, s.local_port, s.remote_address, s.remote_port,
       s.pmtu, s.snd_mss, s.unacked, s.backoff, s.total_retrans, s.bytes_acked,
       s.last_data_recv_ms, s.last_ack_recv_ms, l.small_links, r.icmp_rules, f.fragfails
FROM pmtu_black_hole_sockets s
LEFT JOIN pmtu_black_hole_links l ON l.bundle = s.bundle AND l.min_mtu < s.pmtu
LEFT JOIN pmtu_black_hole_icmp_rules r ON r.bundle = s.bundle
LEFT JOIN pmtu_black_hole_fragfails f ON f.bundle = s.bundle
ORDER BY s.bundle, s.netns, s.local_address, s.local_port
