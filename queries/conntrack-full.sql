-- id: conntrack-full
-- title: Connection tracking table near full, or entries failing to insert
-- severity: high
-- requires: net_counters, sysctls
-- why: When the conntrack table reaches net.netfilter.nf_conntrack_max, new
--   connections are dropped ("nf_conntrack: table full, dropping packet");
--   insert_failed and drop count packets lost to races or a full table;
--   early_drop counts entries evicted to make room.
-- action: Raise nf_conntrack_max (and the hash size) if the load is real;
--   otherwise find who opens so many connections (conntrack table, flows).
--   insert_failed without a full table points at the SNAT port race
--   (use --random-fully on MASQUERADE).
WITH c AS (
    SELECT bundle, netns,
           max(CASE WHEN name = 'entries' THEN value END) AS entries,
           max(CASE WHEN name = 'insert_failed' THEN value END) AS insert_failed,
           max(CASE WHEN name = 'drop' THEN value END) AS dropped,
           max(CASE WHEN name = 'early_drop' THEN value END) AS early_drop
    FROM net_counters
    WHERE "group" IN ('nf_conntrack', 'conntrack')
    GROUP BY bundle, netns
),
cfg AS (
    SELECT bundle,
           max(CASE WHEN name = 'net.netfilter.nf_conntrack_max' THEN CAST(value AS BIGINT) END) AS max_entries,
           max(CASE WHEN name = 'net.netfilter.nf_conntrack_count' THEN CAST(value AS BIGINT) END) AS count_now
    FROM sysctls GROUP BY bundle
),
full_log AS (
    SELECT bundle, count(*) AS lines FROM logs WHERE message LIKE '%table full, dropping packet%' GROUP BY bundle
)
SELECT concat('conntrack in ', c.netns, ': ', coalesce(cfg.count_now, c.entries), ' of ', cfg.max_entries,
              ' entries; insert_failed ', c.insert_failed, ', drop ', c.dropped, ', early_drop ', c.early_drop) AS finding,
       c.bundle, c.netns, coalesce(cfg.count_now, c.entries) AS entries, cfg.max_entries,
       c.insert_failed, c.dropped, c.early_drop, coalesce(f.lines, 0) AS table_full_log_lines
FROM c
JOIN cfg ON cfg.bundle = c.bundle
LEFT JOIN full_log f ON f.bundle = c.bundle
WHERE coalesce(cfg.count_now, c.entries) >= 0.9 * cfg.max_entries
   OR c.insert_failed > 0 OR c.dropped > 0 OR c.early_drop > 0 OR f.lines > 0
ORDER BY c.bundle, c.netns
