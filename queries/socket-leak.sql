-- id: socket-leak
-- title: A process leaks sockets: TCP sockets allocated far beyond those in use
-- severity: high
-- requires: sockstat, fds, processes
-- why: Every TCP socket the kernel allocated is counted in sockstat's `alloc`
--   (machine-wide); sockets in a connection table are `inuse` (per
--   namespace), plus orphans and TIME_WAIT. A socket whose connection is
--   closed but whose fd a process still holds is in no /proc/net table yet
--   still holds kernel memory: when thousands pile up, TCP memory reaches
--   net.ipv4.tcp_mem and the kernel logs "TCP: out of memory", and the
--   whole node's networking crawls.
-- action: Restart or fix the named process (it never close()s sockets whose
--   peer went away; look for missing close on error paths). Compare
--   tcp_mem_pages with the net.ipv4.tcp_mem thresholds; do not raise tcp_mem
--   to hide a leak.
WITH tcp AS (
    SELECT bundle,
           max(CASE WHEN protocol = 'TCP' THEN alloc END) AS alloc,
           max(CASE WHEN protocol = 'TCP' THEN orphan END) AS orphan,
           max(CASE WHEN protocol = 'TCP' THEN mem END) AS mem_pages,
           sum(CASE WHEN protocol IN ('TCP', 'TCP6') THEN inuse ELSE 0 END) AS inuse,
           sum(CASE WHEN protocol = 'TCP' THEN tw ELSE 0 END) AS tw,
           count(DISTINCT netns) AS namespaces
    FROM sockstat
    GROUP BY bundle
),
known AS (
    SELECT bundle, inode FROM sockets WHERE inode > 0
    UNION
    SELECT bundle, inode FROM unix_sockets
),
unknown AS (
    SELECT f.bundle, f.pid, count(*) AS socket_fds
    FROM fds f
    LEFT JOIN known k ON k.bundle = f.bundle AND k.inode = f.inode
    WHERE f.kind = 'socket' AND k.inode IS NULL
    GROUP BY f.bundle, f.pid
),
limits AS (
    SELECT bundle, max(value) AS tcp_mem FROM sysctls WHERE name = 'net.ipv4.tcp_mem' GROUP BY bundle
),
oom AS (
    SELECT bundle, count(*) AS lines, max(message) AS line
    FROM logs WHERE message LIKE '%TCP: out of memory%'
    GROUP BY bundle
)
SELECT concat('pid ', u.pid, ' (', p.comm, ') holds ', u.socket_fds,
              ' socket fds that no /proc/net table knows; TCP sockets allocated ', t.alloc,
              ' vs ', t.inuse + coalesce(t.orphan, 0) + t.tw, ' in use, orphaned or in TIME_WAIT') AS finding,
       u.bundle, p.netns, u.pid, p.comm, p.cmdline,
       u.socket_fds AS unknown_socket_fds, p.socket_fd_count,
       t.alloc AS tcp_alloc, t.inuse AS tcp_inuse_all_netns, t.orphan AS tcp_orphan, t.tw AS tcp_tw,
       t.mem_pages AS tcp_mem_pages, l.tcp_mem AS tcp_mem_sysctl,
       coalesce(o.lines, 0) AS out_of_memory_lines, o.line AS out_of_memory_line
FROM unknown u
JOIN tcp t ON t.bundle = u.bundle
JOIN processes p ON p.bundle = u.bundle AND p.pid = u.pid AND p.netns IS NOT NULL
LEFT JOIN limits l ON l.bundle = u.bundle
LEFT JOIN oom o ON o.bundle = u.bundle
WHERE u.socket_fds >= 100
  AND t.alloc >= 2 * (t.inuse + coalesce(t.orphan, 0) + t.tw)
  AND t.alloc - (t.inuse + coalesce(t.orphan, 0) + t.tw) >= 100
ORDER BY u.socket_fds DESC, u.bundle, u.pid, p.netns
