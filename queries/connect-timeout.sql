-- id: connect-timeout
-- title: Outbound connects time out after SYN retransmits
-- severity: medium
-- requires: events | flows
-- why: A connect that retransmits its SYN and ends SYN_SENT -> CLOSE never
--   got a SYN-ACK. One finding per process and destination, with the
--   count of its failed connects (a server that stops accepting makes
--   hundreds). A connect that failed before its SYN left (local port 0:
--   no ephemeral port was free, EADDRNOTAVAIL) or that an RST refused is
--   not a timeout and is not counted here. When the local port the kernel picked is the peer port
--   of a socket still in FIN_WAIT2 (for example a sidecar's end of an
--   earlier, half-closed connection redirected to it), the SYN lands on
--   that old connection: the reply is a challenge ACK for the old sequence
--   space and the new connect times out. It strikes at random, only when
--   the ephemeral port collides.
-- action: If a FIN_WAIT2 socket is named, shorten its life
--   (net.ipv4.tcp_fin_timeout, or fix the side that never closes: the
--   sidecar's half-closed connections) or take its peer ports out of
--   net.ipv4.ip_local_port_range with ip_local_reserved_ports. Otherwise
--   check the destination and the path (half-open-flows, conntrack).
WITH closes AS (
    SELECT bundle, saddr, sport, daddr, dport, min(ts) AS ts, min(pid) AS pid, min(comm) AS comm, 'ebpf' AS seen_by
    FROM events
    WHERE event = 'tcp_state' AND old_state = 'SYN_SENT' AND new_state = 'CLOSE'
      -- Port 0: tcp_v4_connect() set SYN_SENT, then inet_hash_connect()
      -- found no free port and set CLOSE again: no SYN was ever sent
      -- (net/ipv4/tcp_ipv4.c, EADDRNOTAVAIL).
      AND sport <> 0
    GROUP BY bundle, saddr, sport, daddr, dport
),
retries AS (
    SELECT bundle, saddr, sport, daddr, dport, count(*) AS syn_retransmits
    FROM events
    WHERE event = 'retransmit' AND state = 'SYN_SENT'
    GROUP BY bundle, saddr, sport, daddr, dport
),
-- An RST received in SYN_SENT refused the connect (tcp_reset): not a
-- timeout. The event may name either end first.
refused AS (
    SELECT DISTINCT bundle, saddr, sport, daddr, dport FROM (
        SELECT bundle, saddr, sport, daddr, dport FROM events WHERE event = 'reset_received'
        UNION ALL
        SELECT bundle, daddr, dport, saddr, sport FROM events WHERE event = 'reset_received'
    )
),
from_events AS (
    SELECT c.bundle, c.saddr, c.sport, c.daddr, c.dport, c.ts, c.pid, c.comm,
           r.syn_retransmits, c.seen_by
    FROM closes c
    LEFT JOIN retries r ON r.bundle = c.bundle AND r.saddr = c.saddr AND r.sport = c.sport
                       AND r.daddr = c.daddr AND r.dport = c.dport
    LEFT JOIN refused x ON x.bundle = c.bundle AND x.saddr = c.saddr AND x.sport = c.sport
                       AND x.daddr = c.daddr AND x.dport = c.dport
    WHERE x.bundle IS NULL
),
from_flows AS (
    SELECT f.bundle, f.src_ip AS saddr, f.src_port AS sport, f.dst_ip AS daddr, f.dst_port AS dport,
           f.first_ts AS ts, CAST(NULL AS INT UNSIGNED) AS pid, CAST(NULL AS VARCHAR) AS comm,
           f.syn_retries AS syn_retransmits, concat('capture ', f.capture) AS seen_by
    FROM flows f
    WHERE f.proto = 'tcp' AND f.conn_state IN ('S0', 'RSTOS0', 'OTH') AND f.syn_retries >= 1
      -- a connect eBPF saw is reported once, with its original destination
      -- (a capture may show it after REDIRECT/DNAT)
      AND NOT EXISTS (SELECT 1 FROM closes c WHERE c.bundle = f.bundle AND c.saddr = f.src_ip AND c.sport = f.src_port)
),
failed AS (
    SELECT * FROM from_events UNION ALL SELECT * FROM from_flows
),
colliding AS (
    SELECT s.bundle, s.netns, s.local_address, s.local_port, s.remote_address, s.remote_port, s.state, s.inode
    FROM sockets s
    WHERE s.state IN ('FIN_WAIT2', 'FIN_WAIT1', 'CLOSE_WAIT', 'LAST_ACK', 'TIME_WAIT', 'CLOSING')
),
owners AS (
    SELECT c.*, f.pid AS owner_pid, p.comm AS owner_comm
    FROM colliding c
    LEFT JOIN fds f ON f.bundle = c.bundle AND f.kind = 'socket' AND f.inode = c.inode AND c.inode > 0
    LEFT JOIN processes p ON p.bundle = f.bundle AND p.pid = f.pid
),
rows AS (
    SELECT x.*, coalesce(x.comm, x.seen_by) AS who,
           o.netns AS colliding_netns, o.state AS colliding_state,
           concat(o.local_address, ':', o.local_port) AS colliding_local,
           concat(o.remote_address, ':', o.remote_port) AS colliding_remote,
           o.owner_pid AS colliding_pid, o.owner_comm AS colliding_comm,
           CASE WHEN o.state IS NOT NULL
                THEN concat('local port ', x.sport, ' is the peer port of ', o.state, ' socket ',
                            o.local_address, ':', o.local_port, ' <-> ', o.remote_address, ':', o.remote_port,
                            CASE WHEN o.owner_pid IS NOT NULL THEN concat(' (pid ', o.owner_pid, ' ', o.owner_comm, ')') ELSE '' END)
           END AS collision
    FROM failed x
    LEFT JOIN owners o ON o.bundle = x.bundle AND o.remote_port = x.sport
),
-- One finding per process (or capture point, when no eBPF event names
-- it) and destination.
groups AS (
    SELECT bundle, who, daddr, dport,
           count(DISTINCT concat(saddr, ':', sport)) AS connects,
           count(DISTINCT pid) AS pids, min(pid) AS one_pid,
           sum(syn_retransmits) AS retransmits,
           min(concat(saddr, ':', sport)) AS one_local,
           count(DISTINCT collision) AS collisions, min(collision) AS one_collision
    FROM rows
    GROUP BY bundle, who, daddr, dport
)
SELECT concat(g.who,
              CASE WHEN g.pids = 1 THEN concat(' (pid ', g.one_pid, ')')
                   WHEN g.pids > 1 THEN concat(' (', g.pids, ' processes)') ELSE '' END,
              ': ', g.connects, CASE WHEN g.connects = 1 THEN ' connect' ELSE ' connects' END,
              ' to ', r.daddr, ':', r.dport, ' timed out',
              CASE WHEN g.retransmits IS NOT NULL THEN concat(' after ', g.retransmits, ' SYN retransmits') ELSE '' END,
              CASE WHEN g.connects = 1 THEN concat(' (from ', g.one_local, ')') ELSE '' END,
              CASE WHEN g.collisions = 1 THEN concat('; ', g.one_collision)
                   WHEN g.collisions > 1 THEN concat('; ', g.collisions, ' local ports are peer ports of closing sockets, e.g. ', g.one_collision)
                   ELSE '' END) AS finding,
       r.bundle, r.seen_by, r.ts, r.pid, r.comm, r.saddr, r.sport, r.daddr, r.dport, r.syn_retransmits,
       r.colliding_netns, r.colliding_state, r.colliding_local, r.colliding_remote,
       r.colliding_pid, r.colliding_comm
FROM rows r
JOIN groups g ON g.bundle = r.bundle AND g.who = r.who AND g.daddr = r.daddr AND g.dport = r.dport
ORDER BY r.ts
