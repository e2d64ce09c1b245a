-- id: retransmission-storm
-- title: Retransmission storm: many TCP segments sent again
-- severity: medium
-- requires: net_counters
-- why: TCP retransmits a segment when it is not acknowledged in time. A few
--   per thousand is normal on a busy network; a large share means loss,
--   congestion, a broken middlebox or a peer that stopped answering.
-- action: Look at which flows retransmit (events where event =
--   'retransmit', or flows with many packets and few bytes), then at drops
--   on the interfaces (interfaces.rx_drop, tx_drop) and in the kernel
--   (events where event = 'drop').
WITH t AS (
    SELECT bundle, netns,
           max(CASE WHEN "group" = 'Tcp' AND name = 'OutSegs' THEN value END) AS out_segs,
           max(CASE WHEN "group" = 'Tcp' AND name = 'RetransSegs' THEN value END) AS retrans_segs
    FROM net_counters GROUP BY bundle, netns
),
ev AS (
    SELECT bundle, count(*) AS retransmits, count(DISTINCT concat(saddr, sport, daddr, dport)) AS flows
    FROM events WHERE event = 'retransmit' GROUP BY bundle
)
SELECT concat(t.netns, ': ', t.retrans_segs, ' of ', t.out_segs, ' TCP segments retransmitted (',
              round(100.0 * t.retrans_segs / t.out_segs, 1), '%)') AS finding,
       t.bundle, t.netns, t.out_segs, t.retrans_segs,
       round(100.0 * t.retrans_segs / t.out_segs, 2) AS retrans_percent,
       ev.retransmits AS retransmit_events, ev.flows AS retransmitting_flows
FROM t LEFT JOIN ev ON ev.bundle = t.bundle
WHERE t.out_segs >= 1000 AND t.retrans_segs * 100 >= 5 * t.out_segs
ORDER BY t.bundle, t.netns
