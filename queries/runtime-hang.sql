-- id: runtime-hang
-- title: Container runtime hang: runc processes alive far longer than a container start
-- severity: high
-- requires: processes, collection
-- why: runc (crun, youki) runs only while it creates, starts or kills a
--   container: seconds. One alive for minutes is stuck, usually waiting on
--   systemd over D-Bus (cgroup setup). kubelet then sees the runtime as
--   unresponsive ("PLEG is not healthy") and the node goes NotReady. In the
--   reference incident systemd's D-Bus message cookie had overflowed 32
--   bits, so systemd silently stopped answering.
-- action: Look at what the stuck runc waits on (cat /proc/PID/stack, strace
--   -p PID). If it is D-Bus to systemd, `systemctl daemon-reexec` restores
--   it; upgrade systemd to a release with the cookie fix. The log rows show
--   kubelet's and systemd's side.
WITH window AS (
    SELECT bundle, min(started) AS started FROM collection GROUP BY bundle
),
stuck AS (
    SELECT p.bundle, p.pid, p.ppid, p.comm, p.cmdline, p.start_time,
           to_unixtime(w.started) - to_unixtime(p.start_time) AS age_s
    FROM processes p JOIN window w ON w.bundle = p.bundle
    WHERE (p.comm IN ('runc', 'crun', 'youki') OR p.comm LIKE 'runc:[%')
      AND to_unixtime(w.started) - to_unixtime(p.start_time) >= 30
),
summary AS (
    SELECT bundle, count(*) AS n, max(age_s) AS oldest, min(pid) AS pid FROM stuck GROUP BY bundle
),
lines AS (
    SELECT l.bundle, l.ts, l.ident, l.pid, l.message
    FROM logs l JOIN summary s ON s.bundle = l.bundle
    WHERE l.message LIKE '%PLEG is not healthy%'
       OR l.message LIKE '%container runtime is down%'
       OR l.message LIKE '%ContainerGCFailed%'
       OR (l.ident IN ('systemd', 'dbus-daemon', 'dbus', 'dbus-broker', 'containerd', 'dockerd', 'crio')
           AND (l.message LIKE '%imeout%' OR l.message LIKE '%Failed%' OR l.message LIKE '%failed%'
                OR l.message LIKE '%not respond%' OR l.message LIKE '%deadline exceeded%'))
)
SELECT concat(CASE WHEN s.n = 1 THEN concat('runc pid ', s.pid, ' alive for ', s.oldest, ' s')
                   ELSE concat(s.n, ' runc processes alive, the oldest for ', s.oldest, ' s (pid ', s.pid, ' and others)') END) AS finding,
       x.bundle, 'process' AS kind, x.pid, x.ppid, x.comm, x.start_time AS ts, x.age_s, x.cmdline AS text
FROM stuck x JOIN summary s ON s.bundle = x.bundle
UNION ALL
SELECT concat(CASE WHEN s.n = 1 THEN concat('runc pid ', s.pid, ' alive for ', s.oldest, ' s')
                   ELSE concat(s.n, ' runc processes alive, the oldest for ', s.oldest, ' s (pid ', s.pid, ' and others)') END) AS finding,
       l.bundle, concat('log ', l.ident) AS kind, l.pid, NULL AS ppid, l.ident AS comm, l.ts, NULL AS age_s, l.message AS text
FROM lines l JOIN summary s ON s.bundle = l.bundle
ORDER BY kind DESC, ts
