-- id: rp-filter-drops
-- title: Reverse-path filter dropping packets that arrive on the "wrong" interface
-- severity: high
-- requires: net_counters, sysctls
-- why: With rp_filter on (net.ipv4.conf.<dev>.rp_filter: 1 strict, 2 loose;
--   the device's value is the larger of conf.all and conf.<dev>,
--   IN_DEV_RPFILTER in include/linux/inetdevice.h), fib_validate_source
--   (net/ipv4/fib_frontend.c) looks up the route back to each packet's
--   source; when strict mode finds that a reply would leave by another
--   interface (or loose mode finds no route at all), ip_rcv_finish drops
--   the packet silently and counts TcpExtIPReversePathFilter. Asymmetric
--   paths cause it: a second uplink, policy routing, a VIP or a CNI whose
--   return route uses another device. Connections from those sources time
--   out with nothing answered and nothing logged (log_martians aside).
--   The sources and the interface they came in on come from eBPF drop
--   events (reason IP_RPFILTER) when the bundle has them.
-- action: Make the path symmetric (a route back through the interface the
--   traffic arrives on, or a policy rule for the source), or set
--   rp_filter=2 (loose) on that interface; rp_filter=0 only where nothing
--   else guards against spoofed sources.
CREATE TABLE rp_filter_drops_counters AS
SELECT bundle, netns, max(value) AS drops_total, max(delta) AS drops_delta
FROM net_counters
WHERE "group" = 'TcpExt' AND name = 'IPReversePathFilter'
GROUP BY bundle, netns;

CREATE TABLE rp_filter_drops_settings AS
SELECT d.bundle, d.netns,
       string_agg(concat(d.dev, ' rp_filter=', CAST(greatest(d.v, coalesce(a.v, 0)) AS VARCHAR)), ', ' ORDER BY d.dev) AS filtering,
       max(a.v) AS all_value
FROM (
    SELECT bundle, netns, split_part(name, '.', 4) AS dev, TRY_CAST(value AS BIGINT) AS v
    FROM sysctls
    WHERE name LIKE 'net.ipv4.conf.%.rp_filter' AND name NOT IN ('net.ipv4.conf.all.rp_filter', 'net.ipv4.conf.default.rp_filter')
) d
LEFT JOIN (
    SELECT bundle, netns, TRY_CAST(value AS BIGINT) AS v FROM sysctls WHERE name = 'net.ipv4.conf.all.rp_filter'
) a ON a.bundle = d.bundle AND a.netns = d.netns
WHERE greatest(d.v, coalesce(a.v, 0)) > 0 AND d.dev <> 'lo'
GROUP BY d.bundle, d.netns;

CREATE TABLE rp_filter_drops_sources AS
SELECT bundle, netns,
       string_agg(concat(saddr, ' on ', ifname, ' (', CAST(n AS VARCHAR), ')'), ', ' ORDER BY n DESC, saddr) AS sources,
       sum(n) AS events
FROM (
    SELECT e.bundle, e.netns, e.saddr, coalesce(i.ifname, concat('ifindex ', CAST(e.ifindex AS VARCHAR))) AS ifname, count(*) AS n
    FROM events e
    LEFT JOIN (SELECT DISTINCT bundle, netns, ifindex, name AS ifname FROM interfaces WHERE ifindex IS NOT NULL) i
           ON i.bundle = e.bundle AND i.netns = e.netns AND i.ifindex = e.ifindex
    WHERE e.event = 'drop' AND e.reason = 'IP_RPFILTER'
    GROUP BY e.bundle, e.netns, e.saddr, coalesce(i.ifname, concat('ifindex ', CAST(e.ifindex AS VARCHAR)))
) s
GROUP BY bundle, netns;

SELECT concat('reverse-path filter dropped packets in ', c.netns, ': ',
              CASE WHEN c.drops_delta IS NOT NULL
                   THEN concat('IPReversePathFilter +', CAST(c.drops_delta AS VARCHAR), ' during the window')
                   ELSE concat('IPReversePathFilter ', CAST(c.drops_total AS VARCHAR), ' since boot (no window-open copy)') END,
              coalesce('; ' || f.filtering, '; rp_filter is off now'),
              coalesce('; dropped from ' || s.sources, '')) AS finding,
       c.bundle, c.netns, c.drops_delta, c.drops_total, f.filtering AS rp_filter, f.all_value AS rp_filter_all,
       s.sources, s.events AS drop_events
FROM rp_filter_drops_counters c
LEFT JOIN rp_filter_drops_settings f ON f.bundle = c.bundle AND f.netns = c.netns
LEFT JOIN rp_filter_drops_sources s ON s.bundle = c.bundle AND s.netns = c.netns
WHERE c.drops_delta > 0
   OR (c.drops_delta IS NULL AND c.drops_total > 0 AND f.filtering IS NOT NULL)
ORDER BY c.bundle, c.netns
