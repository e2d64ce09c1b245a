-- id: tcp-memory-pressure
-- title: TCP memory at or above the kernel's pressure threshold
-- severity: high
-- requires: sockstat, sysctls
-- why: net.ipv4.tcp_mem holds three page counts: below the first the kernel
--   does not limit TCP buffers, above the second it enters memory pressure
--   (shrinks buffers, slows every connection), above the third it refuses
--   memory and logs "TCP: out of memory". sockstat's TCP `mem` is the pages
--   in use now, for the whole machine.
-- action: Find what holds the memory: many sockets with large queues
--   (sockets.rx_queue / tx_queue), orphans, or leaked sockets (see the
--   socket-leak detection). Raise tcp_mem only once the cause is known.
WITH mem AS (
    SELECT bundle, max(mem) AS pages FROM sockstat WHERE protocol = 'TCP' GROUP BY bundle
),
lim AS (
    SELECT bundle, value,
           CAST(split_part(value, ' ', 1) AS BIGINT) AS low,
           CAST(split_part(value, ' ', 2) AS BIGINT) AS pressure,
           CAST(split_part(value, ' ', 3) AS BIGINT) AS high
    FROM sysctls WHERE name = 'net.ipv4.tcp_mem' AND netns = 'host'
),
oom AS (
    SELECT bundle, count(*) AS lines, max(message) AS line
    FROM logs WHERE message LIKE '%TCP: out of memory%' GROUP BY bundle
)
SELECT concat('TCP uses ', m.pages, ' pages of memory; tcp_mem pressure threshold is ', l.pressure,
              ' (max ', l.high, ')') AS finding,
       m.bundle, m.pages AS tcp_mem_pages, l.value AS tcp_mem, coalesce(o.lines, 0) AS out_of_memory_lines, o.line AS out_of_memory_line
FROM mem m
JOIN lim l ON l.bundle = m.bundle
LEFT JOIN oom o ON o.bundle = m.bundle
WHERE m.pages >= l.pressure OR o.lines > 0
ORDER BY m.bundle
