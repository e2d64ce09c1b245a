-- id: dns-failures
-- title: DNS queries unanswered or slow
-- severity: medium
-- requires: dns
-- why: Every connection by name starts with a lookup. A server that never
--   answers some queries (one zone's upstream gone, a rate limit, a
--   conntrack or firewall rule dropping them, a UDP packet lost) makes the
--   C library's stub wait its whole timeout (resolv.conf `timeout:`, 5 s by
--   default) and send again (`attempts:`), then fail with "Temporary
--   failure in name resolution"; a slow one adds its delay to every
--   request that looks the name up. Applications then see timeouts that
--   look like network faults. Counted per lookup (a query and its
--   retransmissions with the same id and port are one), from the capture
--   point that saw the most of the server's lookups: unanswered (no
--   response, and the capture went on 1 s or more after it), slow (0.5 s
--   or more), SERVFAIL; latency percentiles over the answered ones.
-- action: Query the named server for the named names directly (dig @SERVER
--   NAME) from the client's namespace and from the server's side. For a
--   cluster DNS (CoreDNS, kube-dns) check its logs and its upstreams for
--   those zones, its pods' CPU limits, and conntrack (UDP DNS races in
--   conntrack insert_failed: see conntrack-full). Slow answers for
--   everything point at the server or the path; for one name, at its zone's
--   upstream.

-- Step 1: lookups (first tries of a query), with the response code of
-- their response.
CREATE TABLE dns_failures_lookups AS
SELECT q.bundle, q.capture, coalesce(q.ifname, '') AS ifname, q.server_ip, q.server_port, q.client_ip,
       coalesce(q.query_name, concat('(', q.problem, ')')) AS query_name, coalesce(q.query_type, '?') AS query_type,
       q.answered = false AS unanswered,
       coalesce(q.latency_us >= 500000, false) AS slow,
       coalesce(r.rcode = 'SERVFAIL', false) AS servfail,
       q.latency_us
FROM dns q
LEFT JOIN dns r ON r.bundle = q.bundle AND r.capture = q.capture AND r.frame = q.response_frame
WHERE NOT q.response AND q.retransmission = false AND q.opcode = 0;

-- Step 2: per server, from the capture point (and interface) that saw the
-- most of its lookups: a node that forwards them sees each one on two
-- interfaces, the pod's capture once.
CREATE TABLE dns_failures_servers AS
WITH per_point AS (
    SELECT bundle, capture, ifname, server_ip, server_port,
           count(*) AS lookups,
           sum(CASE WHEN unanswered THEN 1 ELSE 0 END) AS unanswered,
           sum(CASE WHEN slow THEN 1 ELSE 0 END) AS slow,
           sum(CASE WHEN servfail THEN 1 ELSE 0 END) AS servfail,
           approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_us) AS p50_us,
           approx_percentile_cont(0.9) WITHIN GROUP (ORDER BY latency_us) AS p90_us,
           approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_us) AS p99_us,
           max(latency_us) AS max_us
    FROM dns_failures_lookups
    GROUP BY bundle, capture, ifname, server_ip, server_port
),
ranked AS (
    SELECT *, row_number() OVER (PARTITION BY bundle, server_ip, server_port
                                 ORDER BY lookups DESC, capture, ifname) AS _rank
    FROM per_point
)
SELECT * FROM ranked
WHERE _rank = 1 AND unanswered + slow + servfail >= 2;

-- Step 3: per name, for those servers.
CREATE TABLE dns_failures_names AS
SELECT l.bundle, l.capture, l.ifname, l.server_ip, l.server_port, l.query_name, l.query_type,
       count(*) AS lookups,
       sum(CASE WHEN l.unanswered THEN 1 ELSE 0 END) AS unanswered,
       sum(CASE WHEN l.slow THEN 1 ELSE 0 END) AS slow,
       sum(CASE WHEN l.servfail THEN 1 ELSE 0 END) AS servfail,
       max(l.latency_us) AS max_us,
       array_to_string(array_sort(array_agg(DISTINCT l.client_ip)), ', ') AS clients
FROM dns_failures_lookups l
JOIN dns_failures_servers s ON s.bundle = l.bundle AND s.capture = l.capture AND s.ifname = l.ifname
 AND s.server_ip = l.server_ip AND s.server_port = l.server_port
GROUP BY l.bundle, l.capture, l.ifname, l.server_ip, l.server_port, l.query_name, l.query_type;

WITH failing AS (
    SELECT bundle, capture, ifname, server_ip, server_port,
           array_to_string(array_sort(array_agg(DISTINCT CASE WHEN unanswered > 0 THEN query_name END)), ', ') AS unanswered_names,
           array_to_string(array_sort(array_agg(DISTINCT CASE WHEN slow > 0 THEN query_name END)), ', ') AS slow_names,
           array_to_string(array_sort(array_agg(DISTINCT CASE WHEN servfail > 0 THEN query_name END)), ', ') AS servfail_names
    FROM dns_failures_names
    GROUP BY bundle, capture, ifname, server_ip, server_port
)
SELECT concat('DNS server ', s.server_ip, ':', s.server_port, ': ',
              s.unanswered, ' of ', s.lookups, ' lookups unanswered',
              CASE WHEN s.unanswered > 0 THEN concat(' (', f.unanswered_names, ')') ELSE '' END,
              ', ', s.slow, ' slow, 0.5 s or more',
              CASE WHEN s.slow > 0 THEN concat(' (', f.slow_names, ')') ELSE '' END,
              CASE WHEN s.servfail > 0 THEN concat(', ', s.servfail, ' SERVFAIL (', f.servfail_names, ')') ELSE '' END,
              '; latency p50 ', round(s.p50_us / 1000.0, 1), ' ms, p90 ', round(s.p90_us / 1000.0, 1),
              ' ms, p99 ', round(s.p99_us / 1000.0, 1), ' ms',
              ' (capture ', s.capture, CASE WHEN s.ifname <> '' THEN concat(' on ', s.ifname) ELSE '' END, ')') AS finding,
       n.bundle, n.capture, n.ifname, n.server_ip, n.server_port, n.query_name, n.query_type, n.clients,
       n.lookups, n.unanswered, n.slow, n.servfail,
       round(n.max_us / 1000.0, 1) AS max_ms,
       round(s.p50_us / 1000.0, 1) AS server_p50_ms,
       round(s.p90_us / 1000.0, 1) AS server_p90_ms,
       round(s.p99_us / 1000.0, 1) AS server_p99_ms
FROM dns_failures_servers s
JOIN failing f ON f.bundle = s.bundle AND f.capture = s.capture AND f.ifname = s.ifname
 AND f.server_ip = s.server_ip AND f.server_port = s.server_port
JOIN dns_failures_names n ON n.bundle = s.bundle AND n.capture = s.capture AND n.ifname = s.ifname
 AND n.server_ip = s.server_ip AND n.server_port = s.server_port
WHERE n.unanswered + n.slow + n.servfail > 0
ORDER BY n.bundle, n.server_ip, n.unanswered DESC, n.slow DESC, n.query_name, n.query_type
