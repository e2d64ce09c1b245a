-- id: conntrack-full
-- title: Connection tracking table near full, or entries failing to insert
-- severity: high
-- requires: net_counters, sysctls
-- why: When a namespace's conntrack table reaches
--   net.netfilter.nf_conntrack_max (one limit for the machine, counted per
--   namespace: __nf_conntrack_alloc compares the namespace's count with
--   it), the first packet of each new connection is dropped and the kernel
--   logs "nf_conntrack: table full, dropping packet" (recent kernels, Linux 6.18 here,
--   "table full in netns N, dropping packet" for a namespace other than
--   the initial one, N its inode). insert_failed and drop count packets
--   lost to races or a full table; early_drop counts entries evicted to
--   make room. Each namespace is judged on its own counters, count and
--   log lines; changes during the capture window are preferred to totals
--   since the namespace was made.
-- action: Raise nf_conntrack_max (and the hash size) if the load is real;
--   otherwise find who opens so many connections (the top sources, the
--   conntrack table, flows). insert_failed without a full table points at
--   the SNAT port race (use --random-fully on MASQUERADE).
CREATE TABLE conntrack_full_counters AS
SELECT bundle, netns,
       max(CASE WHEN name = 'entries' THEN value END) AS entries,
       max(CASE WHEN name = 'insert_failed' THEN value END) AS insert_failed,
       max(CASE WHEN name = 'drop' THEN value END) AS dropped,
       max(CASE WHEN name = 'early_drop' THEN value END) AS early_drop,
       max(CASE WHEN name = 'insert_failed' THEN delta END) AS insert_failed_delta,
       max(CASE WHEN name = 'drop' THEN delta END) AS dropped_delta,
       max(CASE WHEN name = 'early_drop' THEN delta END) AS early_drop_delta
FROM net_counters
WHERE "group" IN ('nf_conntrack', 'conntrack')
GROUP BY bundle, netns;

-- nf_conntrack_count is the namespace's own; nf_conntrack_max is the
-- machine's (a namespace that cannot read it takes its bundle's).
CREATE TABLE conntrack_full_sysctls AS
SELECT s.bundle, s.netns,
       max(CASE WHEN s.name = 'net.netfilter.nf_conntrack_count' THEN CAST(s.value AS BIGINT) END) AS count_now,
       coalesce(max(CASE WHEN s.name = 'net.netfilter.nf_conntrack_max' THEN CAST(s.value AS BIGINT) END),
                max(b.max_entries)) AS max_entries
FROM sysctls s
LEFT JOIN (SELECT bundle, max(CAST(value AS BIGINT)) AS max_entries FROM sysctls
           WHERE name = 'net.netfilter.nf_conntrack_max' GROUP BY bundle) b ON b.bundle = s.bundle
GROUP BY s.bundle, s.netns;

-- Both wordings: "table full in netns N" names its namespace by inode
-- (a namespace the bundle does not cover is left out); the plain one is
-- the initial namespace's on kernels that have both (on older kernels any
-- namespace's), so it is counted for `host` only. The kernel log outlives
-- the fault: only lines from the capture window (5 s either side) count,
-- or every line when the input has no window or the line no time.
CREATE TABLE conntrack_full_log AS
SELECT l.bundle, coalesce(n.netns, 'host') AS netns, count(*) AS lines, max(l.message) AS example
FROM (
    SELECT g.bundle, g.message, g.ts,
           regexp_match(g.message, 'table full in netns ([0-9]+)')[1] AS inode
    FROM logs g
    LEFT JOIN (SELECT bundle, min(started) AS started, max(finished) AS finished
               FROM collection GROUP BY bundle) w ON w.bundle = g.bundle
    WHERE g.message LIKE '%table full%dropping packet%'
      AND (g.ts IS NULL OR w.started IS NULL
           OR g.ts BETWEEN w.started - INTERVAL '5 seconds' AND w.finished + INTERVAL '5 seconds')
) l
LEFT JOIN netns n ON n.bundle = l.bundle AND CAST(n.inode AS VARCHAR) = l.inode
WHERE l.inode IS NULL OR n.netns IS NOT NULL
GROUP BY l.bundle, coalesce(n.netns, 'host');

CREATE TABLE conntrack_full_sources AS
SELECT bundle, netns,
       string_agg(concat(orig_src, ' (', CAST(n AS VARCHAR), ')'), ', ' ORDER BY n DESC, orig_src) AS top_sources
FROM (
    SELECT bundle, netns, orig_src, n,
           row_number() OVER (PARTITION BY bundle, netns ORDER BY n DESC, orig_src) AS rank
    FROM (SELECT bundle, netns, orig_src, count(*) AS n FROM conntrack GROUP BY bundle, netns, orig_src) c
) r
WHERE rank <= 3
GROUP BY bundle, netns;

SELECT concat('conntrack in ', k.netns, ': ', CAST(coalesce(cfg.count_now, c.entries) AS VARCHAR), ' of ',
              coalesce(CAST(cfg.max_entries AS VARCHAR), '?'), ' entries',
              CASE WHEN c.dropped_delta IS NOT NULL
                   THEN concat('; during the window: drop +', CAST(c.dropped_delta AS VARCHAR),
                               ', insert_failed +', CAST(c.insert_failed_delta AS VARCHAR),
                               ', early_drop +', CAST(c.early_drop_delta AS VARCHAR))
                   ELSE concat('; insert_failed ', CAST(c.insert_failed AS VARCHAR), ', drop ', CAST(c.dropped AS VARCHAR),
                               ', early_drop ', CAST(c.early_drop AS VARCHAR)) END,
              coalesce('; ' || CAST(f.lines AS VARCHAR) || ' "table full" log lines', ''),
              coalesce('; top sources ' || s.top_sources, '')) AS finding,
       k.bundle, k.netns, coalesce(cfg.count_now, c.entries) AS entries, cfg.max_entries,
       c.insert_failed, c.dropped, c.early_drop,
       c.insert_failed_delta, c.dropped_delta, c.early_drop_delta,
       coalesce(f.lines, 0) AS table_full_log_lines, f.example AS log_line, s.top_sources
FROM (SELECT bundle, netns FROM conntrack_full_counters
      UNION SELECT bundle, netns FROM conntrack_full_log) k
LEFT JOIN conntrack_full_counters c ON c.bundle = k.bundle AND c.netns = k.netns
LEFT JOIN conntrack_full_sysctls cfg ON cfg.bundle = k.bundle AND cfg.netns = k.netns
LEFT JOIN conntrack_full_log f ON f.bundle = k.bundle AND f.netns = k.netns
LEFT JOIN conntrack_full_sources s ON s.bundle = k.bundle AND s.netns = k.netns
WHERE coalesce(cfg.count_now, c.entries) >= 0.9 * cfg.max_entries
   OR coalesce(c.insert_failed_delta, c.insert_failed) > 0
   OR coalesce(c.dropped_delta, c.dropped) > 0
   OR coalesce(c.early_drop_delta, c.early_drop) > 0
   -- A full table counts each packet it drops (drop, or early_drop when
   -- it evicts): log lines in a window whose counters did not move are
   -- another fault's, before it (namespace inodes are reused: a deleted
   -- namespace's "table full in netns N" then names a new one).
   OR (f.lines > 0 AND coalesce(c.dropped_delta + c.early_drop_delta + c.insert_failed_delta, 1) > 0)
ORDER BY k.bundle, k.netns
