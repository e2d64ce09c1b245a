-- id: accept-queue-overflow
-- title: A listener's accept queue is full: the kernel drops the SYNs of new connections
-- severity: high
-- requires: inet_sockets, net_counters
-- why: A TCP listener holds completed connections in its accept queue until
--   the application calls accept(2); the queue holds the listen(2) backlog
--   (capped at net.core.somaxconn) plus one. When it is full the kernel
--   drops each new SYN (tcp_conn_request, net/ipv4/tcp_input.c) and counts
--   TcpExtListenOverflows and TcpExtListenDrops; the clients retransmit
--   their SYNs (1 s, 3 s, 7 s ...) and see connect timeouts. The listener
--   is named by sock_diag (its accept queue against its backlog, the SYNs
--   its socket dropped), its process through the socket's inode in fds,
--   and the retransmitted SYNs towards it from the captures.
-- action: Find why the process stopped accepting (all workers busy or
--   blocked, a stuck event loop: look at its threads, runtime-hang, CPU);
--   raise the backlog (listen(2) and net.core.somaxconn) only when the
--   process is merely slow to catch up with bursts.
CREATE TABLE accept_queue_overflow_listeners AS
SELECT l.bundle, l.host, l.netns, l.local_address, l.local_port, l.inode,
       l.accept_queue, l.backlog, l.drops AS socket_drops
FROM inet_sockets l
WHERE l.protocol = 'tcp' AND l.state = 'LISTEN' AND l.backlog IS NOT NULL
  AND l.accept_queue >= l.backlog;

CREATE TABLE accept_queue_overflow_counters AS
SELECT bundle, netns,
       max(CASE WHEN name = 'ListenOverflows' THEN value END) AS overflows_total,
       max(CASE WHEN name = 'ListenOverflows' THEN delta END) AS overflows_delta,
       max(CASE WHEN name = 'ListenDrops' THEN delta END) AS listen_drops_delta
FROM net_counters
WHERE "group" = 'TcpExt' AND name IN ('ListenOverflows', 'ListenDrops')
GROUP BY bundle, netns;

CREATE TABLE accept_queue_overflow_owners AS
SELECT f.bundle, f.inode,
       string_agg(DISTINCT concat(p.comm, ' pid ', CAST(p.pid AS VARCHAR)), ', ') AS process
FROM fds f
JOIN processes p ON p.bundle = f.bundle AND p.pid = f.pid
WHERE f.inode IN (SELECT inode FROM accept_queue_overflow_listeners)
GROUP BY f.bundle, f.inode;

CREATE TABLE accept_queue_overflow_syns AS
SELECT f.bundle, f.netns, f.dst_ip, f.dst_port,
       count(*) AS connections_seen,
       sum(f.syn_retries) AS syns_retransmitted,
       sum(CASE WHEN f.history NOT LIKE '%h%' THEN 1 ELSE 0 END) AS never_answered
FROM flows f
WHERE f.proto = 'tcp' AND f.syn_retries > 0
  AND f.dst_port IN (SELECT local_port FROM accept_queue_overflow_listeners)
GROUP BY f.bundle, f.netns, f.dst_ip, f.dst_port;

SELECT concat('accept queue of ', l.local_address, ':', CAST(l.local_port AS VARCHAR), ' in ', l.netns,
              ' is full (', CAST(l.accept_queue AS VARCHAR), ' waiting, backlog ', CAST(l.backlog AS VARCHAR), ')',
              coalesce(', held by ' || o.process, ''),
              CASE WHEN c.overflows_delta IS NOT NULL
                   THEN concat('; ListenOverflows +', CAST(c.overflows_delta AS VARCHAR), ' during the window')
                   ELSE concat('; ListenOverflows ', CAST(c.overflows_total AS VARCHAR), ' since boot (no window-open copy)') END,
              coalesce('; ' || CAST(s.syns_retransmitted AS VARCHAR) || ' SYNs retransmitted towards it', '')) AS finding,
       l.bundle, l.netns, concat(l.local_address, ':', CAST(l.local_port AS VARCHAR)) AS listener,
       o.process, l.accept_queue, l.backlog, l.socket_drops,
       c.overflows_delta, c.listen_drops_delta, c.overflows_total,
       s.connections_seen, s.syns_retransmitted, s.never_answered
FROM accept_queue_overflow_listeners l
JOIN accept_queue_overflow_counters c ON c.bundle = l.bundle AND c.netns = l.netns
LEFT JOIN accept_queue_overflow_owners o ON o.bundle = l.bundle AND o.inode = l.inode
LEFT JOIN accept_queue_overflow_syns s
       ON s.bundle = l.bundle AND s.dst_port = l.local_port
      AND (s.dst_ip = l.local_address OR l.local_address IN ('0.0.0.0', '::'))
WHERE c.overflows_delta > 0 OR (c.overflows_delta IS NULL AND c.overflows_total > 0)
ORDER BY l.bundle, l.netns, l.local_port
