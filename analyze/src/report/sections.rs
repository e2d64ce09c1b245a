//! The report's sections that are plain tables: what was collected, the
//! namespaces, the counters.

use super::sql::{FLOWS, Grid, cell, clock, grid, int, lit};
use crate::error::Error;
use datafusion::prelude::SessionContext;
use std::collections::BTreeMap;

/// One bundle (one collection run).
pub struct Bundle {
    pub bundle: String,
    pub host: String,
    pub kernel: String,
    pub version: String,
    pub started_ns: i64,
    pub finished_ns: i64,
    pub sources: i64,
    pub ok: i64,
}

impl Bundle {
    pub fn window(&self) -> String {
        window_text(self.started_ns, self.finished_ns)
    }
}

/// `2026-11-21 23:15:35 – 23:15:44 UTC (9.0 s)`.
pub fn window_text(start: i64, end: i64) -> String {
    let day = formats::bundle::rfc3339(u64::try_from(start).unwrap_or(0));
    let date = day.get(..10).unwrap_or("");
    format!(
        "{date} {} – {} UTC ({:.1} s)",
        clock(start, 0),
        clock(end, 0),
        (end - start) as f64 / 1e9
    )
}

/// One capture point.
pub struct Capture {
    pub host: String,
    pub capture: String,
    pub packets: i64,
    pub first_ns: i64,
    pub last_ns: i64,
    pub interfaces: String,
}

/// Sources the collector did not take in full, one row per
/// (status, source, reason) with the namespaces it concerns.
pub struct Source {
    pub bundle: String,
    pub status: String,
    pub source: String,
    pub reason: String,
    pub netns: String,
}

/// What the inputs hold.
pub struct Collected {
    pub bundles: Vec<Bundle>,
    pub captures: Vec<Capture>,
    pub not_ok: Vec<Source>,
    pub skipped: Vec<Source>,
}

impl Collected {
    /// The nodes, for the page title.
    pub fn hosts(&self) -> String {
        let mut hosts: Vec<&str> = self
            .bundles
            .iter()
            .map(|b| b.host.as_str())
            .chain(self.captures.iter().map(|c| c.host.as_str()))
            .filter(|h| !h.is_empty())
            .collect();
        hosts.sort();
        hosts.dedup();
        match hosts.len() {
            0 => {
                let caps: Vec<&str> = self.captures.iter().map(|c| c.capture.as_str()).collect();
                format!("captures {}", caps.join(", "))
            }
            1..=3 => hosts.join(", "),
            n => format!("{n} nodes"),
        }
    }

    /// The window of a node's captures and collections (ns), if any.
    pub fn window_of(&self, host: &str) -> Option<(i64, i64)> {
        let b = self
            .bundles
            .iter()
            .filter(|b| b.host == host && b.started_ns > 0);
        let c = self
            .captures
            .iter()
            .filter(|c| c.host == host && c.first_ns > 0);
        let start = b
            .clone()
            .map(|b| b.started_ns)
            .chain(c.clone().map(|c| c.first_ns))
            .min()?;
        let end = b.map(|b| b.finished_ns).chain(c.map(|c| c.last_ns)).max()?;
        (end > start).then_some((start, end))
    }

    /// The nodes with a window, in order.
    pub fn nodes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for h in self
            .bundles
            .iter()
            .map(|b| &b.host)
            .chain(self.captures.iter().map(|c| &c.host))
        {
            if !out.contains(h) {
                out.push(h.clone());
            }
        }
        out
    }
}

pub async fn collected(ctx: &SessionContext) -> Result<Collected, Error> {
    let b = grid(
        ctx,
        "SELECT bundle, coalesce(host, '') AS host, min(kernel) AS kernel, min(capsnap_version) AS version,
                cast(min(started) AS BIGINT) AS s, cast(max(finished) AS BIGINT) AS e,
                count(*) AS sources, sum(CASE WHEN status = 'ok' THEN 1 ELSE 0 END) AS ok
         FROM collection GROUP BY bundle, coalesce(host, '') ORDER BY s, bundle",
    )
    .await?;
    let bundles = b
        .rows
        .iter()
        .map(|r| Bundle {
            bundle: r[0].clone(),
            host: r[1].clone(),
            kernel: r[2].clone(),
            version: r[3].clone(),
            started_ns: int(&r[4]),
            finished_ns: int(&r[5]),
            sources: int(&r[6]),
            ok: int(&r[7]),
        })
        .collect();
    let c = grid(
        ctx,
        "SELECT coalesce(host, '') AS host, capture, count(*) AS packets,
                cast(min(ts) AS BIGINT) AS first, cast(max(ts) AS BIGINT) AS last,
                array_to_string(array_sort(array_agg(DISTINCT ifname)), ', ') AS interfaces
         FROM packets GROUP BY coalesce(host, ''), capture ORDER BY host, capture",
    )
    .await?;
    let captures = c
        .rows
        .iter()
        .map(|r| Capture {
            host: r[0].clone(),
            capture: r[1].clone(),
            packets: int(&r[2]),
            first_ns: int(&r[3]),
            last_ns: int(&r[4]),
            interfaces: r[5].clone(),
        })
        .collect();
    let s = grid(
        ctx,
        "SELECT bundle, status, source, coalesce(reason, '') AS reason,
                array_to_string(array_sort(array_agg(DISTINCT coalesce(netns, 'node'))), ', ') AS netns
         FROM collection WHERE status <> 'ok'
         GROUP BY bundle, status, source, coalesce(reason, '')
         ORDER BY CASE status WHEN 'failed' THEN 0 WHEN 'partial' THEN 1 ELSE 2 END, bundle, source",
    )
    .await?;
    let (mut not_ok, mut skipped) = (Vec::new(), Vec::new());
    for r in &s.rows {
        let row = Source {
            bundle: r[0].clone(),
            status: r[1].clone(),
            source: r[2].clone(),
            reason: r[3].clone(),
            netns: r[4].clone(),
        };
        if row.status == "skipped" {
            skipped.push(row);
        } else {
            not_ok.push(row);
        }
    }
    Ok(Collected {
        bundles,
        captures,
        not_ok,
        skipped,
    })
}

/// One network namespace and what lives in it.
#[derive(Default)]
pub struct Namespace {
    pub host: String,
    pub label: String,
    /// Pod, containers, `ip netns` name, inode.
    pub identity: Vec<(String, String)>,
    pub interfaces: Grid,
    pub sockets: Vec<(String, String)>,
    pub sockstat: Grid,
    pub talkers: Grid,
    pub processes: Grid,
}

impl Namespace {
    /// `ESTABLISHED 3, LISTEN 2` ... in one line.
    pub fn sockets_line(&self) -> String {
        if self.sockets.is_empty() {
            return "none".into();
        }
        self.sockets
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn identity_line(&self) -> String {
        self.identity
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Interface names with their addresses, in one line.
    pub fn addresses_line(&self) -> String {
        let (Some(n), Some(a)) = (
            self.interfaces.col("interface"),
            self.interfaces.col("addresses"),
        ) else {
            return String::new();
        };
        self.interfaces
            .rows
            .iter()
            .map(|r| {
                if r[a].is_empty() {
                    r[n].clone()
                } else {
                    format!("{} {}", r[n], r[a])
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The busiest flow, in one line.
    pub fn top_talker(&self) -> String {
        let Some(r) = self.talkers.rows.first() else {
            return String::new();
        };
        let c = |n: &str| cell(&self.talkers, r, n).to_owned();
        format!("{} ({}, {} packets)", c("flow"), c("bytes"), c("packets"))
    }
}

/// Rows of `g` grouped by their (host, netns) in the first two columns,
/// those two columns dropped.
fn by_netns(g: Grid) -> BTreeMap<(String, String), Grid> {
    let mut out: BTreeMap<(String, String), Grid> = BTreeMap::new();
    for r in g.rows {
        let e = out
            .entry((r[0].clone(), r[1].clone()))
            .or_insert_with(|| Grid {
                columns: g.columns[2..].to_vec(),
                rows: Vec::new(),
            });
        e.rows.push(r[2..].to_vec());
    }
    out
}

/// Bytes as a person reads them.
pub fn human_bytes(n: i64) -> String {
    let n = n as f64;
    if n < 1024.0 {
        return format!("{n} B");
    }
    let mut v = n;
    for unit in ["KiB", "MiB", "GiB", "TiB"] {
        v /= 1024.0;
        if v < 1024.0 {
            return format!("{v:.1} {unit}");
        }
    }
    format!("{v:.1} PiB")
}

/// Whether the workspace has a table (the report reads tables added after
/// it was written only when they exist).
fn has_table(ctx: &SessionContext, name: &str) -> bool {
    ctx.table_exist(name).unwrap_or(false)
}

pub async fn namespaces(ctx: &SessionContext) -> Result<Vec<Namespace>, Error> {
    let ns = grid(
        ctx,
        "SELECT coalesce(host, '') AS host, netns, cast(inode AS VARCHAR) AS inode, coalesce(name, '') AS name,
                coalesce(pod_names, '') AS pods, coalesce(container_names, '') AS containers,
                coalesce(containers, '') AS ids, cast(process_count AS VARCHAR) AS processes
         FROM netns ORDER BY host, CASE WHEN netns = 'host' THEN 0 ELSE 1 END, netns",
    )
    .await?;
    // Namespaces met in any table, in case there is no manifest to list them.
    let seen = grid(
        ctx,
        &format!(
            "SELECT DISTINCT coalesce(host, '') AS host, netns FROM (
                SELECT host, netns FROM sockets UNION ALL SELECT host, netns FROM sockstat
                UNION ALL SELECT host, netns FROM interfaces
                UNION ALL SELECT host, coalesce(netns, capture) FROM {FLOWS})
             WHERE netns IS NOT NULL ORDER BY host, netns"
        ),
    )
    .await?;
    let mut out: Vec<Namespace> = Vec::new();
    for r in &ns.rows {
        let mut identity = Vec::new();
        for (k, v) in [
            ("pod", &r[4]),
            ("containers", &r[5]),
            ("ip netns", &r[3]),
            ("processes", &r[7]),
            ("inode", &r[2]),
        ] {
            if !v.is_empty() {
                identity.push((k.to_owned(), v.clone()));
            }
        }
        out.push(Namespace {
            host: r[0].clone(),
            label: r[1].clone(),
            identity,
            ..Namespace::default()
        });
    }
    for r in &seen.rows {
        if !out.iter().any(|n| n.host == r[0] && n.label == r[1]) {
            out.push(Namespace {
                host: r[0].clone(),
                label: r[1].clone(),
                ..Namespace::default()
            });
        }
    }
    let addresses = if has_table(ctx, "addresses") {
        "(SELECT coalesce(host, '') AS host, netns, ifname,
                 array_to_string(array_agg(CASE WHEN address IS NOT NULL THEN concat(address, '/', prefix_len) END
                                           ORDER BY family, address), ' ') AS addresses,
                 max(mtu) AS mtu, max(state) AS state,
                 max(concat_ws(' ', kind, CASE WHEN master IS NOT NULL THEN concat('in ', master) END,
                               CASE WHEN link_netns IS NOT NULL THEN concat('peer in ', link_netns) END)) AS link
          FROM addresses GROUP BY 1, 2, 3)"
    } else {
        "(SELECT '' AS host, '' AS netns, '' AS ifname, '' AS addresses, NULL AS mtu, '' AS state, '' AS link WHERE false)"
    };
    let ifaces = by_netns(
        grid(
            ctx,
            &format!(
                "SELECT coalesce(i.host, '') AS host, i.netns, i.name AS interface, coalesce(a.link, '') AS link,
                        coalesce(a.addresses, '') AS addresses, coalesce(a.state, '') AS state,
                        coalesce(cast(a.mtu AS VARCHAR), '') AS mtu,
                        i.rx_packets, i.tx_packets, i.rx_bytes, i.tx_bytes,
                        i.rx_drop + i.rx_errs AS rx_dropped_or_errors, i.tx_drop + i.tx_errs AS tx_dropped_or_errors
                 FROM interfaces i LEFT JOIN {addresses} a
                   ON a.host = coalesce(i.host, '') AND a.netns = i.netns AND a.ifname = i.name
                 ORDER BY host, i.netns, CASE WHEN i.name = 'lo' THEN 1 ELSE 0 END, i.name"
            ),
        )
        .await?,
    );
    let sockets = grid(
        ctx,
        "SELECT coalesce(host, '') AS host, netns,
                CASE WHEN protocol LIKE 'tcp%' THEN 'tcp' WHEN protocol LIKE 'udp%' THEN 'udp' ELSE protocol END AS p,
                state, count(*) AS n
         FROM sockets GROUP BY 1, 2, 3, 4
         UNION ALL
         SELECT coalesce(host, ''), netns, 'unix', state, count(*) FROM unix_sockets GROUP BY 1, 2, 3, 4
         ORDER BY host, netns, p, n DESC, state",
    )
    .await?;
    let mut socket_lines: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    for r in &sockets.rows {
        let lines = socket_lines
            .entry((r[0].clone(), r[1].clone()))
            .or_default();
        let part = format!("{} {}", r[3], r[4]);
        match lines.iter_mut().find(|(p, _)| *p == r[2]) {
            Some((_, v)) => {
                v.push_str(", ");
                v.push_str(&part);
            }
            None => lines.push((r[2].clone(), part)),
        }
    }
    let sockstat = by_netns(
        grid(
            ctx,
            "SELECT coalesce(host, '') AS host, netns, protocol, inuse, orphan, tw, alloc, mem
             FROM sockstat WHERE protocol IN ('sockets', 'TCP', 'UDP', 'TCP6', 'UDP6', 'RAW')
             ORDER BY host, netns, CASE protocol WHEN 'sockets' THEN 0 WHEN 'TCP' THEN 1 WHEN 'TCP6' THEN 2 ELSE 3 END, protocol",
        )
        .await?,
    );
    let talkers = grid(
        ctx,
        &format!(
        "SELECT host, netns, flow, proto, conn_state, packets, bytes FROM (
            SELECT coalesce(host, '') AS host, netns,
                   concat(src_ip, coalesce(concat(':', src_port), ''), ' → ', dst_ip, coalesce(concat(':', dst_port), '')) AS flow,
                   proto, coalesce(conn_state, '') AS conn_state, packets, bytes,
                   row_number() OVER (PARTITION BY host, netns ORDER BY bytes DESC, packets DESC) AS n
            FROM (SELECT host, netns, src_ip, src_port, dst_ip, dst_port, proto,
                         max(conn_state) AS conn_state, max(packets) AS packets, max(bytes) AS bytes
                  FROM (SELECT host, coalesce(netns, capture) AS netns, src_ip, src_port, dst_ip, dst_port, proto,
                               conn_state, packets, bytes FROM {FLOWS})
                  GROUP BY 1, 2, 3, 4, 5, 6, 7))
         WHERE n <= 5 ORDER BY host, netns, n"),
    )
    .await?;
    let mut talkers = by_netns(talkers);
    for g in talkers.values_mut() {
        if let Some(b) = g.col("bytes") {
            for r in &mut g.rows {
                r[b] = human_bytes(int(&r[b]));
            }
        }
    }
    let processes = by_netns(
        grid(
            ctx,
            "SELECT host, netns, pid, comm, socket_fd_count AS socket_fds, fd_count AS fds FROM (
                SELECT coalesce(host, '') AS host, netns, pid, comm, socket_fd_count, fd_count,
                       row_number() OVER (PARTITION BY host, netns ORDER BY socket_fd_count DESC, pid) AS n
                FROM processes WHERE socket_fd_count > 0 AND netns IS NOT NULL)
             WHERE n <= 5 ORDER BY host, netns, n",
        )
        .await?,
    );
    let mut ifaces = ifaces;
    let mut sockstat = sockstat;
    let mut processes = processes;
    for n in &mut out {
        let key = (n.host.clone(), n.label.clone());
        n.interfaces = ifaces.remove(&key).unwrap_or_default();
        n.sockets = socket_lines.remove(&key).unwrap_or_default();
        n.sockstat = sockstat.remove(&key).unwrap_or_default();
        n.talkers = talkers.remove(&key).unwrap_or_default();
        n.processes = processes.remove(&key).unwrap_or_default();
    }
    Ok(out)
}

/// Counters that say something went wrong, and what they mean.
const NOTABLE: &[(&str, &str, &str)] = &[
    ("Tcp", "RetransSegs", "TCP segments sent again"),
    ("Tcp", "OutRsts", "RSTs sent"),
    (
        "Tcp",
        "AttemptFails",
        "connects that failed (SYN_SENT/SYN_RECV to CLOSE)",
    ),
    ("Tcp", "EstabResets", "established connections reset"),
    ("Tcp", "InErrs", "TCP segments received in error"),
    (
        "TcpExt",
        "ListenOverflows",
        "accept queue full: SYNs/ACKs dropped",
    ),
    (
        "TcpExt",
        "ListenDrops",
        "connection requests dropped at a listener",
    ),
    ("TcpExt", "TCPTimeouts", "retransmission timer expirations"),
    ("TcpExt", "TCPSynRetrans", "SYNs and SYN-ACKs sent again"),
    ("TcpExt", "TCPLostRetransmit", "retransmits lost again"),
    (
        "TcpExt",
        "TCPAbortOnData",
        "connections reset: data arrived after close",
    ),
    (
        "TcpExt",
        "TCPAbortOnMemory",
        "connections killed for lack of TCP memory",
    ),
    (
        "TcpExt",
        "TCPAbortOnTimeout",
        "connections killed after too many retransmits",
    ),
    (
        "TcpExt",
        "TCPMemoryPressures",
        "times TCP entered memory pressure",
    ),
    (
        "TcpExt",
        "PruneCalled",
        "receive queues pruned for lack of memory",
    ),
    (
        "TcpExt",
        "TCPBacklogDrop",
        "segments dropped: socket backlog full",
    ),
    (
        "TcpExt",
        "TCPRcvQDrop",
        "segments dropped: receive queue full",
    ),
    (
        "TcpExt",
        "TCPTimeWaitOverflow",
        "TIME_WAIT sockets not created: bucket limit",
    ),
    (
        "TcpExt",
        "TCPReqQFullDrop",
        "SYNs dropped: request queue full",
    ),
    ("Ip", "InDiscards", "IP packets discarded on receive"),
    ("Ip", "OutNoRoutes", "IP packets with no route"),
    ("IpExt", "InNoRoutes", "IP packets received with no route"),
    (
        "Udp",
        "RcvbufErrors",
        "UDP datagrams dropped: receive buffer full",
    ),
    ("Udp", "NoPorts", "UDP datagrams to a closed port"),
    ("Udp", "InErrors", "UDP datagrams received in error"),
    (
        "nf_conntrack",
        "invalid",
        "packets conntrack could not track (INVALID)",
    ),
    (
        "nf_conntrack",
        "insert_failed",
        "connections not inserted into the table",
    ),
    (
        "nf_conntrack",
        "drop",
        "packets dropped: conntrack table full",
    ),
    ("nf_conntrack", "early_drop", "entries evicted to make room"),
    (
        "conntrack",
        "invalid",
        "packets conntrack could not track (INVALID)",
    ),
    (
        "conntrack",
        "insert_failed",
        "connections not inserted into the table",
    ),
    ("conntrack", "drop", "packets dropped: conntrack table full"),
];

/// What the counters say.
#[derive(Default)]
pub struct Counters {
    /// host, netns, counter, value, meaning, change during the window
    /// (empty when the bundle has no window-open reading): non-zero
    /// notable counters at the end of the window.
    pub notable: Vec<[String; 6]>,
    /// host, netns, counter, first, last, change: counters that moved
    /// between bundles of one node.
    pub moved: Vec<[String; 6]>,
    /// Bundles of one node read together (so `moved` could be computed).
    pub series: bool,
}

pub async fn counters(ctx: &SessionContext) -> Result<Counters, Error> {
    let wanted: Vec<String> = NOTABLE
        .iter()
        .map(|(g, n, _)| format!("(\"group\" = {} AND name = {})", lit(g), lit(n)))
        .collect();
    let g = grid(
        ctx,
        &format!(
            "SELECT coalesce(host, '') AS host, netns, \"group\", name, max(value) AS value,
                    max(delta) AS during
             FROM net_counters WHERE value <> 0 AND ({})
             GROUP BY 1, 2, 3, 4
             UNION ALL
             SELECT coalesce(host, ''), netns, 'interface', concat(name, ' ', c), max(v), NULL FROM (
                SELECT host, netns, name, 'rx_drop' AS c, CAST(rx_drop AS BIGINT) AS v FROM interfaces
                UNION ALL SELECT host, netns, name, 'tx_drop', CAST(tx_drop AS BIGINT) FROM interfaces
                UNION ALL SELECT host, netns, name, 'rx_errs', CAST(rx_errs AS BIGINT) FROM interfaces
                UNION ALL SELECT host, netns, name, 'tx_errs', CAST(tx_errs AS BIGINT) FROM interfaces)
             WHERE v <> 0 GROUP BY 1, 2, 3, 4
             ORDER BY 1, 2, 3, 4",
            wanted.join(" OR ")
        ),
    )
    .await?;
    let mut c = Counters::default();
    for r in &g.rows {
        let meaning = NOTABLE
            .iter()
            .find(|(gr, n, _)| *gr == r[2] && *n == r[3])
            .map_or(
                "packets dropped or in error at the interface",
                |(_, _, m)| m,
            );
        c.notable.push([
            r[0].clone(),
            r[1].clone(),
            format!("{} {}", r[2], r[3]),
            r[4].clone(),
            meaning.to_owned(),
            r[5].clone(),
        ]);
    }
    // Bundles of one node: what moved from the first to the last.
    let m = grid(
        ctx,
        "WITH b AS (SELECT bundle, min(started) AS s FROM collection GROUP BY bundle),
              v AS (SELECT coalesce(n.host, '') AS host, n.netns, n.\"group\", n.name, n.value, b.s,
                           row_number() OVER (PARTITION BY n.host, n.netns, n.\"group\", n.name ORDER BY b.s) AS first_n,
                           row_number() OVER (PARTITION BY n.host, n.netns, n.\"group\", n.name ORDER BY b.s DESC) AS last_n,
                           count(*) OVER (PARTITION BY n.host, n.netns, n.\"group\", n.name) AS readings
                    FROM net_counters n JOIN b ON b.bundle = n.bundle)
         SELECT f.host, f.netns, concat(f.\"group\", ' ', f.name), f.value, l.value, l.value - f.value AS change
         FROM v f JOIN v l ON f.host = l.host AND f.netns = l.netns AND f.\"group\" = l.\"group\" AND f.name = l.name
         WHERE f.first_n = 1 AND l.last_n = 1 AND f.readings > 1 AND l.value <> f.value
         ORDER BY abs(l.value - f.value) DESC LIMIT 40",
    )
    .await?;
    c.series = !m.rows.is_empty();
    for r in m.rows {
        c.moved.push([
            r[0].clone(),
            r[1].clone(),
            r[2].clone(),
            r[3].clone(),
            r[4].clone(),
            r[5].clone(),
        ]);
    }
    Ok(c)
}
