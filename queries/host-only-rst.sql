-- id: host-only-rst
-- title: RSTs on the node that the container never saw
-- severity: high
-- requires: flows
-- why: When conntrack marks a packet of a NATed connection INVALID (for
--   example an ACK outside the window it tracks), the packet is not
--   un-NATed: the node's own stack receives it, finds no socket for the NAT
--   address and port, and answers with an RST. The remote end tears the
--   connection down; the container never sees the RST and its upload just
--   stalls. Evidence: the RST in the node-side capture, the packet that
--   provoked it, the flow mapped to the container through the conntrack
--   entry (or port-preserving NAT when conntrack was not taken), no RST in
--   the container-side capture, conntrack's INVALID counter and
--   nf_conntrack_tcp_be_liberal.
-- action: Set net.netfilter.nf_conntrack_tcp_be_liberal=1 on the node (out
--   of window packets are then not INVALID), or drop INVALID packets before
--   they reach the stack: iptables -t filter -I FORWARD/INPUT -m conntrack
--   --ctstate INVALID -j DROP. Check for middleboxes that rewrite sequence
--   numbers or window scaling.

-- Step 1: the TCP flows of every capture, computed once (DataFusion would
-- aggregate the captures again at every reference).
CREATE TABLE host_only_rst_flows AS
SELECT bundle, coalesce(host, '') AS node, capture,
       capture IN ('host', 'node') OR capture LIKE 'host%' OR capture LIKE 'node%' AS node_side,
       src_ip, src_port, dst_ip, dst_port,
       coalesce(orig_rsts, 0) AS orig_rsts, coalesce(resp_rsts, 0) AS resp_rsts, packets
FROM flows WHERE proto = 'tcp';

-- Step 2: node-side flows with RSTs sent from the NAT end that the
-- container-side capture saw, where the container itself sent no RST. Small,
-- and kept as a table so the steps below do not plan it again.
CREATE TABLE host_only_rst_found AS
WITH node_rst AS (
    SELECT * FROM host_only_rst_flows WHERE node_side AND orig_rsts + resp_rsts > 0
),
ct AS (
    SELECT bundle, coalesce(host, '') AS node, orig_src, orig_sport, orig_dst, orig_dport,
           reply_src, reply_sport, reply_dst, reply_dport, state, raw
    FROM conntrack WHERE proto = 'tcp' AND NOT (orig_src = reply_dst AND orig_sport = reply_dport)
),
-- The container's view of each RST flow (c_src:c_sport the container end,
-- c_dst:c_dport the remote end; nat_is_orig: the node-side flow's
-- originator is the NAT end): through the conntrack entry whose reply tuple
-- is the flow's, in either orientation ...
mapped AS (
    SELECT r.*, c.orig_src AS c_src, c.orig_sport AS c_sport, c.orig_dst AS c_dst, c.orig_dport AS c_dport,
           c.reply_dst = r.src_ip AND c.reply_dport = r.src_port AS nat_is_orig,
           'conntrack' AS mapped_by, c.raw AS ct_entry
    FROM node_rst r JOIN ct c ON c.node = r.node
     AND least(c.reply_sport, c.reply_dport) = least(r.src_port, r.dst_port)
     AND greatest(c.reply_sport, c.reply_dport) = greatest(r.src_port, r.dst_port)
     AND ((c.reply_dst = r.src_ip AND c.reply_dport = r.src_port AND c.reply_src = r.dst_ip AND c.reply_sport = r.dst_port)
       OR (c.reply_dst = r.dst_ip AND c.reply_dport = r.dst_port AND c.reply_src = r.src_ip AND c.reply_sport = r.src_port))
),
-- ... or, without an entry, a container-side flow sharing the remote end,
-- whose other end has the same port and another address (MASQUERADE keeps
-- the source port when it is free). Either end may be the originator in
-- either capture: of a flow already under way when a capture starts, the
-- first packet it has decides.
pairs AS (
    SELECT r.*, f.src_ip AS f_src, f.src_port AS f_sport, f.dst_ip AS f_dst, f.dst_port AS f_dport,
           (f.dst_ip = r.dst_ip AND f.dst_port = r.dst_port) OR (f.src_ip = r.dst_ip AND f.src_port = r.dst_port) AS nat_is_orig,
           (f.dst_ip = r.dst_ip AND f.dst_port = r.dst_port) OR (f.dst_ip = r.src_ip AND f.dst_port = r.src_port) AS container_is_forig
    FROM node_rst r
    JOIN host_only_rst_flows f ON f.node = r.node AND NOT f.node_side
     AND least(f.src_port, f.dst_port) = least(r.src_port, r.dst_port)
     AND greatest(f.src_port, f.dst_port) = greatest(r.src_port, r.dst_port)
    WHERE (f.dst_ip = r.dst_ip AND f.dst_port = r.dst_port AND f.src_port = r.src_port AND f.src_ip <> r.src_ip)
       OR (f.src_ip = r.src_ip AND f.src_port = r.src_port AND f.dst_port = r.dst_port AND f.dst_ip <> r.dst_ip)
       OR (f.src_ip = r.dst_ip AND f.src_port = r.dst_port AND f.dst_port = r.src_port AND f.dst_ip <> r.src_ip)
       OR (f.dst_ip = r.src_ip AND f.dst_port = r.src_port AND f.src_port = r.dst_port AND f.src_ip <> r.dst_ip)
),
guessed AS (
    SELECT bundle, node, capture, node_side, src_ip, src_port, dst_ip, dst_port, orig_rsts, resp_rsts, packets,
           CASE WHEN container_is_forig THEN f_src ELSE f_dst END AS c_src,
           CASE WHEN container_is_forig THEN f_sport ELSE f_dport END AS c_sport,
           CASE WHEN container_is_forig THEN f_dst ELSE f_src END AS c_dst,
           CASE WHEN container_is_forig THEN f_dport ELSE f_sport END AS c_dport,
           nat_is_orig, 'port-preserving NAT' AS mapped_by, CAST(NULL AS VARCHAR) AS ct_entry
    FROM pairs p
    WHERE NOT EXISTS (SELECT 1 FROM mapped m WHERE m.bundle = p.bundle AND m.capture = p.capture
                      AND m.src_ip = p.src_ip AND m.src_port = p.src_port AND m.dst_ip = p.dst_ip AND m.dst_port = p.dst_port)
),
candidates AS (
    SELECT *, CASE WHEN nat_is_orig THEN orig_rsts ELSE resp_rsts END AS nat_rsts FROM mapped
    UNION ALL
    SELECT *, CASE WHEN nat_is_orig THEN orig_rsts ELSE resp_rsts END AS nat_rsts FROM guessed
),
-- The container-side captures that saw the flow, and the RSTs the
-- container sent there.
inside AS (
    SELECT c.bundle, c.capture, c.src_ip, c.src_port, c.dst_ip, c.dst_port,
           f.capture AS container_capture,
           sum(CASE WHEN f.src_ip = c.c_src AND f.src_port = c.c_sport THEN f.orig_rsts ELSE f.resp_rsts END) AS container_rsts,
           sum(f.packets) AS container_packets
    FROM candidates c
    JOIN host_only_rst_flows f ON f.node = c.node AND NOT f.node_side
     AND least(f.src_port, f.dst_port) = least(c.c_sport, c.c_dport)
     AND greatest(f.src_port, f.dst_port) = greatest(c.c_sport, c.c_dport)
     AND ((f.src_ip = c.c_src AND f.src_port = c.c_sport AND f.dst_ip = c.c_dst AND f.dst_port = c.c_dport)
       OR (f.dst_ip = c.c_src AND f.dst_port = c.c_sport AND f.src_ip = c.c_dst AND f.src_port = c.c_dport))
    GROUP BY c.bundle, c.capture, c.src_ip, c.src_port, c.dst_ip, c.dst_port, f.capture
)
SELECT c.*, i.container_capture, i.container_packets,
       concat('node capture ', c.capture, ' has ', c.nat_rsts, ' RST(s) sent from the NAT end of ',
              c.src_ip, ':', c.src_port, ' <-> ', c.dst_ip, ':', c.dst_port,
              ' (container flow ', c.c_src, ':', c.c_sport, ' -> ', c.c_dst, ':', c.c_dport, ' by ', c.mapped_by,
              '); capture ', i.container_capture, ' saw ', i.container_packets,
              ' packets of it and no RST from the container') AS finding
FROM candidates c
JOIN inside i ON i.bundle = c.bundle AND i.capture = c.capture AND i.src_ip = c.src_ip AND i.src_port = c.src_port
             AND i.dst_ip = c.dst_ip AND i.dst_port = c.dst_port
WHERE c.nat_rsts > 0 AND i.container_rsts = 0;

-- Step 3: their RSTs at the node-side capture, each with the packet that
-- provoked it (resets is built in the pass that builds flows: no second
-- read of the capture).
CREATE TABLE host_only_rst_resets AS
SELECT r.*, f.finding
    FROM resets r
    JOIN host_only_rst_found f ON r.bundle = f.bundle AND r.capture = f.capture
     AND least(r.src_port, r.dst_port) = least(f.src_port, f.dst_port)
     AND greatest(r.src_port, r.dst_port) = greatest(f.src_port, f.dst_port)
     AND ((r.src_ip = f.src_ip AND r.src_port = f.src_port AND r.dst_ip = f.dst_ip AND r.dst_port = f.dst_port)
       OR (r.src_ip = f.dst_ip AND r.src_port = f.dst_port AND r.dst_ip = f.src_ip AND r.dst_port = f.src_port));

-- Step 4: the evidence, one row per fact.
WITH counters AS (
    SELECT bundle, netns, "group", name, value FROM net_counters
    WHERE ("group" IN ('conntrack', 'nf_conntrack') AND name = 'invalid')
),
liberal AS (
    SELECT bundle, netns, value FROM sysctls WHERE name = 'net.netfilter.nf_conntrack_tcp_be_liberal'
)
SELECT finding, 1 AS _order, 'rst' AS evidence, bundle, capture, frame, ts, ifname,
       concat(src_ip, ':', src_port, ' -> ', dst_ip, ':', dst_port) AS packet,
       tcp_flags, seq, ack_seq, window, CAST(NULL AS VARCHAR) AS detail
FROM host_only_rst_resets
UNION ALL
SELECT finding, 0, 'provoking packet', bundle, capture, prev_frame, prev_ts, prev_ifname,
       concat(dst_ip, ':', dst_port, ' -> ', src_ip, ':', src_port),
       prev_tcp_flags, prev_seq, prev_ack_seq, prev_window, concat('last packet before the RST in frame ', frame)
FROM host_only_rst_resets WHERE prev_frame IS NOT NULL
UNION ALL
SELECT finding, 2, 'conntrack', bundle, capture, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       coalesce(ct_entry, concat('no conntrack entry; mapped by ', mapped_by))
FROM host_only_rst_found
UNION ALL
SELECT f.finding, 3, 'counter', f.bundle, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       concat(c.netns, ': ', c."group", ' ', c.name, ' = ', c.value)
FROM host_only_rst_found f JOIN counters c ON c.bundle = f.bundle
UNION ALL
SELECT f.finding, 4, 'sysctl', f.bundle, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       concat(l.netns, ': net.netfilter.nf_conntrack_tcp_be_liberal = ', l.value)
FROM host_only_rst_found f JOIN liberal l ON l.bundle = f.bundle
ORDER BY finding, _order, frame, detail
