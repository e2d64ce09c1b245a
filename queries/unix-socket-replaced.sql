-- id: unix-socket-replaced
-- title: A listening unix socket is no longer reachable at its path
-- severity: high
-- requires: unix_sockets, fds, processes
-- why: A unix socket is found by its path, but the listener is bound to the
--   file (inode) the path held when bind() ran. If another process unlinks
--   the path and binds it again (a second copy of the daemon, a health
--   check that runs the binary), clients reach the new file and the old
--   listener keeps running unreachable: "connection refused" while the
--   daemon looks healthy. The exec log names who started the replacing
--   process and with which arguments.
-- action: Find what started the second process (the exec rows: parent and
--   arguments) and stop it from running the daemon's binary; restart the
--   original daemon so it binds the path again. Daemons should take a lock
--   before unlinking their socket path.
WITH listeners AS (
    SELECT bundle, netns, path, inode, bound_dev, bound_ino, path_now_ino, replaced
    FROM unix_sockets
    WHERE listening AND path IS NOT NULL AND path NOT LIKE '@%'
),
bad AS (
    SELECT bundle, netns, path
    FROM listeners
    GROUP BY bundle, netns, path
    HAVING bool_or(coalesce(replaced, false))
        OR (count(DISTINCT bound_ino) > 1 AND count(DISTINCT bound_dev) = 1)
),
holders AS (
    SELECT l.bundle, l.netns, l.path, l.inode, l.bound_ino, l.path_now_ino, l.replaced,
           f.pid, p.ppid, p.comm, p.exe, p.cmdline, p.start_time
    FROM listeners l
    JOIN bad b ON b.bundle = l.bundle AND b.netns = l.netns AND b.path = l.path
    LEFT JOIN fds f ON f.bundle = l.bundle AND f.kind = 'socket' AND f.inode = l.inode
    LEFT JOIN processes p ON p.bundle = l.bundle AND p.pid = f.pid
),
stale AS (
    SELECT bundle, path, min(pid) AS pid, min(comm) AS comm FROM holders
    WHERE coalesce(replaced, false) GROUP BY bundle, path
),
programs AS (
    SELECT DISTINCT bundle, path, comm, exe FROM holders WHERE comm IS NOT NULL
),
execs AS (
    SELECT DISTINCT e.bundle, g.path, e.ts, e.pid, e.ppid, e.comm, e.pcomm, e.filename, e.argv
    FROM events e
    JOIN programs g ON g.bundle = e.bundle
     AND (e.comm = g.comm OR e.filename = g.exe
          OR (g.exe IS NOT NULL AND e.filename LIKE concat('%/', split_part(g.exe, '/', -1))))
    WHERE e.event = 'exec'
)
SELECT concat('unix socket ', h.path, ': listener pid ', s.pid, ' (', s.comm,
              ') is bound to inode ', h_old.bound_ino, ' but the path now holds inode ', h_old.path_now_ino) AS finding,
       h.bundle, h.netns, 'listener' AS role, h.path, h.pid, h.ppid, h.comm, h.cmdline,
       h.start_time AS ts, h.inode AS socket_inode, h.bound_ino, h.path_now_ino, h.replaced
FROM holders h
JOIN stale s ON s.bundle = h.bundle AND s.path = h.path
JOIN (SELECT bundle, path, min(bound_ino) AS bound_ino, min(path_now_ino) AS path_now_ino
      FROM holders WHERE coalesce(replaced, false) GROUP BY bundle, path) h_old
  ON h_old.bundle = h.bundle AND h_old.path = h.path
UNION ALL
SELECT concat('unix socket ', x.path, ': listener pid ', s.pid, ' (', s.comm,
              ') is bound to inode ', h_old.bound_ino, ' but the path now holds inode ', h_old.path_now_ino) AS finding,
       x.bundle, NULL AS netns, concat('exec by ', x.pcomm) AS role, x.path, x.pid, x.ppid, x.comm, x.argv AS cmdline,
       x.ts, NULL AS socket_inode, NULL AS bound_ino, NULL AS path_now_ino, NULL AS replaced
FROM execs x
JOIN stale s ON s.bundle = x.bundle AND s.path = x.path
JOIN (SELECT bundle, path, min(bound_ino) AS bound_ino, min(path_now_ino) AS path_now_ino
      FROM holders WHERE coalesce(replaced, false) GROUP BY bundle, path) h_old
  ON h_old.bundle = x.bundle AND h_old.path = x.path
ORDER BY bundle, path, ts, pid
