-- id: ephemeral-port-exhaustion
-- title: Ephemeral ports exhausted towards a destination: connect() fails with EADDRNOTAVAIL
-- severity: high
-- requires: events, sysctls
-- why: A connect(2) without bind(2) takes a local port from
--   net.ipv4.ip_local_port_range (per network namespace); a port can be
--   reused towards other destinations, so the range runs out per
--   destination address and port. When every port of the range is held by
--   a socket to that destination (connected, or in TIME_WAIT),
--   inet_hash_connect (net/ipv4/inet_hashtables.c) finds none and connect
--   fails with EADDRNOTAVAIL before any SYN is sent: no capture shows it,
--   only the errno the process got (eBPF connect_error events). The
--   sockets holding the range come from sock_diag when the bundle has it.
-- action: Find who holds the ports towards that destination (the sockets
--   below, joined to fds for their processes): reuse connections (keep-alive,
--   pooling) instead of opening one per request, let the server close
--   first to keep TIME_WAIT off the client, widen ip_local_port_range, or
--   spread over more destination addresses.
CREATE TABLE ephemeral_port_exhaustion_errors AS
SELECT e.bundle, coalesce(n.netns, concat('netns inode ', CAST(e.netns_inode AS VARCHAR))) AS netns,
       e.pid, e.comm, e.daddr, e.dport, count(*) AS eaddrnotavail,
       min(e.ts) AS first_ts, max(e.ts) AS last_ts
FROM events e
LEFT JOIN netns n ON n.bundle = e.bundle AND n.inode = e.netns_inode
WHERE e.event = 'connect_error' AND e.reason = 'EADDRNOTAVAIL'
GROUP BY e.bundle, coalesce(n.netns, concat('netns inode ', CAST(e.netns_inode AS VARCHAR))),
         e.pid, e.comm, e.daddr, e.dport;

CREATE TABLE ephemeral_port_exhaustion_ranges AS
SELECT bundle, netns, value AS port_range,
       CAST(split_part(value, ' ', 1) AS BIGINT) AS low,
       CAST(split_part(value, ' ', 2) AS BIGINT) AS high
FROM sysctls
WHERE name = 'net.ipv4.ip_local_port_range';

CREATE TABLE ephemeral_port_exhaustion_holders AS
SELECT s.bundle, s.netns, s.remote_address, s.remote_port,
       sum(s.n) AS holding,
       string_agg(concat(s.state, ' ', CAST(s.n AS VARCHAR)), ', ' ORDER BY s.n DESC, s.state) AS by_state
FROM (
    SELECT i.bundle, i.netns, i.remote_address, i.remote_port, i.state, count(*) AS n
    FROM inet_sockets i
    JOIN ephemeral_port_exhaustion_ranges r ON r.bundle = i.bundle AND r.netns = i.netns
    WHERE i.protocol = 'tcp' AND i.local_port BETWEEN r.low AND r.high
      AND concat(i.remote_address, ':', CAST(i.remote_port AS VARCHAR)) IN
          (SELECT concat(daddr, ':', CAST(dport AS VARCHAR)) FROM ephemeral_port_exhaustion_errors)
    GROUP BY i.bundle, i.netns, i.remote_address, i.remote_port, i.state
) s
GROUP BY s.bundle, s.netns, s.remote_address, s.remote_port;

SELECT concat('ephemeral ports towards ', e.daddr, ':', CAST(e.dport AS VARCHAR), ' exhausted in ', e.netns,
              ': connect() failed with EADDRNOTAVAIL ', CAST(e.eaddrnotavail AS VARCHAR), ' times for ',
              coalesce(e.comm, '?'), ' pid ', coalesce(CAST(e.pid AS VARCHAR), '?'),
              coalesce('; ip_local_port_range ' || r.port_range || ' (' || CAST(r.high - r.low + 1 AS VARCHAR) || ' ports)', ''),
              coalesce('; ' || CAST(h.holding AS VARCHAR) || ' sockets of the range hold it (' || h.by_state || ')', '')) AS finding,
       e.bundle, e.netns, concat(e.daddr, ':', CAST(e.dport AS VARCHAR)) AS destination,
       e.pid, e.comm, e.eaddrnotavail, r.port_range, r.high - r.low + 1 AS range_size,
       h.holding AS sockets_holding_the_range, h.by_state, e.first_ts, e.last_ts
FROM ephemeral_port_exhaustion_errors e
LEFT JOIN ephemeral_port_exhaustion_ranges r ON r.bundle = e.bundle AND r.netns = e.netns
LEFT JOIN ephemeral_port_exhaustion_holders h
       ON h.bundle = e.bundle AND h.netns = e.netns
      AND h.remote_address = e.daddr AND h.remote_port = e.dport
ORDER BY e.bundle, e.netns, e.eaddrnotavail DESC
