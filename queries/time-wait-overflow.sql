-- id: time-wait-overflow
-- title: TIME_WAIT buckets exhausted: closing connections skip TIME_WAIT
-- severity: medium
-- requires: net_counters, sockstat, sysctls
-- why: A TCP socket that closes first waits in TIME_WAIT (60 s on Linux) so
--   that late segments of the old connection are not taken for a new one.
--   A namespace holds at most net.ipv4.tcp_max_tw_buckets of them; past
--   that, tcp_time_wait (net/ipv4/tcp_minisocks.c) closes the socket at
--   once and counts TcpExtTCPTimeWaitOverflow. Connections then end
--   without TIME_WAIT's protection (a reused 4-tuple may take the old
--   connection's segments), and a node at the limit usually churns
--   through short connections to the same peers, close to exhausting the
--   ephemeral ports towards them. The peers holding the most TIME_WAIT
--   sockets come from sock_diag when the bundle has it.
-- action: Reuse connections (keep-alive, pooling) towards the top peers;
--   let the server close first where the protocol allows; raise
--   tcp_max_tw_buckets only with memory to spare (about 256 bytes each),
--   and consider net.ipv4.tcp_tw_reuse=1 for outgoing connections.
CREATE TABLE time_wait_overflow_counters AS
SELECT bundle, netns, max(value) AS overflows_total, max(delta) AS overflows_delta
FROM net_counters
WHERE "group" = 'TcpExt' AND name = 'TCPTimeWaitOverflow'
GROUP BY bundle, netns;

CREATE TABLE time_wait_overflow_peers AS
SELECT bundle, netns,
       string_agg(concat(peer, ' (', CAST(n AS VARCHAR), ')'), ', ' ORDER BY n DESC, peer) AS top_peers
FROM (
    SELECT bundle, netns, peer, n,
           row_number() OVER (PARTITION BY bundle, netns ORDER BY n DESC, peer) AS rank
    FROM (
        SELECT bundle, netns, concat(remote_address, ':', CAST(remote_port AS VARCHAR)) AS peer, count(*) AS n
        FROM inet_sockets
        WHERE state = 'TIME_WAIT'
        GROUP BY bundle, netns, remote_address, remote_port
    ) p
) r
WHERE rank <= 3
GROUP BY bundle, netns;

SELECT concat('TIME_WAIT full in ', c.netns, ': ', coalesce(CAST(s.tw AS VARCHAR), '?'),
              ' sockets of net.ipv4.tcp_max_tw_buckets ', coalesce(CAST(cfg.max_tw AS VARCHAR), '?'),
              CASE WHEN c.overflows_delta IS NOT NULL
                   THEN concat('; TCPTimeWaitOverflow +', CAST(c.overflows_delta AS VARCHAR), ' during the window')
                   ELSE concat('; TCPTimeWaitOverflow ', CAST(c.overflows_total AS VARCHAR), ' since boot (no window-open copy)') END,
              coalesce('; top peers ' || p.top_peers, '')) AS finding,
       c.bundle, c.netns, s.tw AS time_wait, cfg.max_tw AS tcp_max_tw_buckets,
       c.overflows_delta, c.overflows_total, p.top_peers
FROM time_wait_overflow_counters c
LEFT JOIN (SELECT bundle, netns, max(tw) AS tw FROM sockstat WHERE protocol = 'TCP' GROUP BY bundle, netns) s
       ON s.bundle = c.bundle AND s.netns = c.netns
LEFT JOIN (SELECT bundle, netns, max(CAST(value AS BIGINT)) AS max_tw FROM sysctls
           WHERE name = 'net.ipv4.tcp_max_tw_buckets' GROUP BY bundle, netns) cfg
       ON cfg.bundle = c.bundle AND cfg.netns = c.netns
LEFT JOIN time_wait_overflow_peers p ON p.bundle = c.bundle AND p.netns = c.netns
WHERE c.overflows_delta > 0
   OR (c.overflows_delta IS NULL AND c.overflows_total > 0 AND s.tw >= cfg.max_tw)
ORDER BY c.bundle, c.netns
