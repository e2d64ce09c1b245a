//! Network counters: `/proc/net/snmp`, `/proc/net/netstat`,
//! `/proc/net/snmp6`, `/proc/net/stat/nf_conntrack` and capsnap's
//! `conntrack-stats.txt` (`conntrack -S`), all as (group, name, value).
//!
//! - snmp and netstat (net/ipv4/proc.c, `snmp_seq_show_*`,
//!   `netstat_seq_show`) print pairs of lines: `Tcp: RtoAlgorithm RtoMin
//!   ...` then `Tcp: 1 200 ...`. The group is the prefix (`Ip`, `Icmp`,
//!   `IcmpMsg`, `Tcp`, `Udp`, `UdpLite`, `TcpExt`, `IpExt`, `MPTcpExt` ...);
//!   `group || name` is the name nstat(8) shows (`TcpExtListenOverflows`).
//!   Values are signed: `Tcp: MaxConn` is -1 (RFC 2012 "dynamic").
//!   A pair whose lengths differ, or a header without its value line, is
//!   skipped and the other pairs are kept.
//! - snmp6 (net/ipv6/proc.c, `snmp6_seq_show`) prints `Ip6InReceives
//!   <tab>123`, one counter a line; the group is the name up to its first
//!   `6` (`Ip6`, `Icmp6`, `Udp6`, `UdpLite6`), the rest is the name.
//!   The per-interface files of /proc/net/dev_snmp6/ start with `ifIndex`
//!   and are not taken.
//! - stat/nf_conntrack (net/netfilter/nf_conntrack_standalone.c,
//!   `ct_cpu_seq_show`) prints a header line and one line of hex numbers
//!   per possible CPU. Each column is summed into group `nf_conntrack`,
//!   except `entries`: that is the namespace's connection count
//!   (`nf_conntrack_count(net)`), printed again on every CPU line, so it is
//!   taken once (the largest, should the lines race). Checked on Linux
//!   6.18 with 2 CPUs: six UDP flows gave `entries` 6 on both lines while
//!   `conntrack -C` said 6. Column names differ between kernels
//!   (`searched`/`clashres`, `delete_list`/`chainlength`); they are taken
//!   from the header.
//! - `conntrack -S` prints `cpu=N found=.. invalid=.. ...` per CPU; each
//!   key but `cpu` is summed into group `conntrack`. The collector now asks
//!   ctnetlink for the same numbers (`netlink/conntrack_stats.nl`, read by
//!   [`crate::ctnetlink`], which prints them as these lines).

use crate::rows::{Reader, Rows, V, file_name_is, path_ends_with, text};
use std::collections::HashMap;

#[rustfmt::skip]
crate::artifact_table!("net_counters", "one row per counter of /proc/net/snmp, netstat, snmp6, stat/nf_conntrack (summed over CPUs) and the ctnetlink per-CPU statistics or, in older bundles, conntrack -S (summed over CPUs)", [
    ("group", Dict, false, "Ip, Icmp, IcmpMsg, Tcp, Udp, UdpLite, TcpExt, IpExt, MPTcpExt, Ip6, Icmp6, Udp6, UdpLite6, nf_conntrack (/proc/net/stat/nf_conntrack), conntrack (ctnetlink statistics named as conntrack -S names them)"),
    ("name", Dict, false, "counter name within the group (ListenOverflows); group || name is nstat's name (TcpExtListenOverflows)"),
    ("value", I64, false, "counter value when the capture window closed; signed because Tcp MaxConn is -1"),
    ("value_open", I64, true, "value when the capture window opened (the bundle's window-open/ copy); null when there is none: bundles made before capsnap took one (formats 1 and 2 until then), files saved by hand, conntrack -S of older bundles, or a counter the kernel did not have then"),
    ("delta", I64, true, "value - value_open: the change during the window, so `delta > 0` says it happened inside it (for levels such as Tcp CurrEstab or nf_conntrack entries, the change of the level); null when value_open is"),
    ("per_sec", F64, true, "delta per second of the window (manifest window_open_ns to window_close_ns; the copies are taken just before it opens and just after it closes); null when delta is, or the manifest does not record the window"),
]);

/// Reads /proc/net/snmp and /proc/net/netstat.
pub const SNMP_READER: Reader = Reader {
    table: &TABLE,
    what: "/proc/net/snmp, /proc/net/netstat",
    claims: |path, head| {
        path_ends_with(path, "net/snmp")
            || path_ends_with(path, "net/netstat")
            || head.starts_with(b"Ip: Forwarding ")
            || head.starts_with(b"TcpExt: ")
            || head.starts_with(b"IpExt: ")
    },
    superseded_by: &[],
    parse: parse_pairs,
};

/// Reads /proc/net/snmp6.
pub const SNMP6_READER: Reader = Reader {
    table: &TABLE,
    what: "/proc/net/snmp6",
    claims: |path, head| path_ends_with(path, "net/snmp6") || head.starts_with(b"Ip6InReceives"),
    superseded_by: &[],
    parse: parse_snmp6,
};

/// Reads /proc/net/stat/nf_conntrack (not the connection table
/// /proc/net/nf_conntrack).
pub const NF_CONNTRACK_STAT_READER: Reader = Reader {
    table: &TABLE,
    what: "/proc/net/stat/nf_conntrack",
    claims: |path, head| path_ends_with(path, "net/stat/nf_conntrack") || is_ct_stat_header(head),
    superseded_by: &[],
    parse: parse_ct_stat,
};

/// Reads capsnap's conntrack-stats.txt (`conntrack -S`).
pub const CONNTRACK_STATS_READER: Reader = Reader {
    table: &TABLE,
    what: "conntrack-stats.txt (conntrack -S)",
    claims: |path, head| {
        file_name_is(path, &["conntrack-stats.txt"])
            || (head.starts_with(b"cpu=") && head.windows(6).any(|w| w == b"found="))
    },
    superseded_by: &["netlink/conntrack_stats.nl"],
    parse: parse_conntrack_s,
};

/// `entries  searched found new invalid ...` (any kernel's variant).
fn is_ct_stat_header(head: &[u8]) -> bool {
    let end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = String::from_utf8_lossy(head.get(..end).unwrap_or_default());
    let mut words = line.split_whitespace();
    words.next() == Some("entries") && words.any(|w| w == "insert_failed")
}

fn is_number(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// What a walk through a counters file finds, in file order.
enum Found<'a> {
    /// (group, name, value).
    Counter(&'a str, &'a str, i64),
    /// A line that could not be read: (1-based line, why).
    Skip(usize, String),
}

/// Walks a counters file's text, handing each counter and each damaged
/// line to the callback; `Err` when the text is not of its kind at all.
type Walk = for<'a> fn(&'a str, &mut dyn FnMut(Found<'a>)) -> Result<(), String>;

/// Rows of the counters `walk` finds in `input` (taken when the window
/// closed), each with its value in the copy taken when the window opened,
/// when there is one ([`Rows::at_open`]), the change and its rate.
fn read_counters(input: &[u8], rows: &mut Rows, walk: Walk) -> Result<(), String> {
    let open = rows.at_open().map(|b| text(b).into_owned());
    read_counter_text(&text(input), open.as_deref(), rows, walk)
}

/// [`read_counters`] of text already decoded (or printed from another
/// form: the ctnetlink reader prints `conntrack -S` lines), with the text
/// of the copy taken when the window opened.
fn read_counter_text(
    text: &str,
    at_open: Option<&str>,
    rows: &mut Rows,
    walk: Walk,
) -> Result<(), String> {
    let at_open: Option<HashMap<(String, String), i64>> = at_open.map(|text| {
        let mut open = HashMap::new();
        // A damaged copy from the window's start costs only its deltas.
        let _ = walk(text, &mut |found| {
            if let Found::Counter(g, n, v) = found {
                open.insert((g.to_owned(), n.to_owned()), v);
            }
        });
        open
    });
    let secs = rows.window_secs();
    walk(text, &mut |found| match found {
        Found::Counter(group, name, value) => {
            let open = at_open
                .as_ref()
                .and_then(|m| m.get(&(group.to_owned(), name.to_owned())))
                .copied();
            let delta = open.map(|o| value.saturating_sub(o));
            let per_sec = delta.zip(secs).map(|(d, s)| d as f64 / s);
            rows.push(&[
                V::Str(group),
                V::Str(name),
                V::I64(value),
                V::from(open),
                V::from(delta),
                V::from(per_sec),
            ]);
        }
        Found::Skip(line, why) => rows.skip(line, why),
    })
}

fn parse_pairs(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    read_counters(input, rows, walk_pairs)
}

fn walk_pairs<'a>(text: &'a str, out: &mut dyn FnMut(Found<'a>)) -> Result<(), String> {
    // The header line waiting for its value line: (line number, group, names).
    let mut pending: Option<(usize, &str, &str)> = None;
    let mut found = 0usize;
    let mut out = |f: Found<'a>| {
        if matches!(f, Found::Counter(..)) {
            found += 1;
        }
        out(f);
    };
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((group, rest)) = line.split_once(':') else {
            if let Some((h, g, _)) = pending.take() {
                out(Found::Skip(
                    h,
                    format!("`{g}:` header without its value line"),
                ));
            }
            out(Found::Skip(
                n + 1,
                format!("no `Group:` prefix in {line:?}"),
            ));
            continue;
        };
        match pending.take() {
            Some((h, g, names)) if g == group => pair(h, n + 1, group, names, rest, &mut out),
            other => {
                if let Some((h, g, _)) = other {
                    out(Found::Skip(
                        h,
                        format!("`{g}:` header without its value line"),
                    ));
                }
                pending = Some((n + 1, group, rest));
            }
        }
    }
    if let Some((h, g, _)) = pending {
        out(Found::Skip(
            h,
            format!("`{g}:` header without its value line"),
        ));
    }
    if found == 0 {
        return Err("no `Group: names` / `Group: values` line pair".into());
    }
    Ok(())
}

/// One header/value pair: every name gets its value, or the pair is skipped.
fn pair<'a>(
    header_line: usize,
    line: usize,
    group: &'a str,
    names: &'a str,
    values: &'a str,
    out: &mut impl FnMut(Found<'a>),
) {
    let group = group.trim();
    let (n_names, n_values) = (
        names.split_whitespace().count(),
        values.split_whitespace().count(),
    );
    if n_names != n_values || n_names == 0 {
        out(Found::Skip(
            line,
            format!("`{group}:` has {n_names} names (line {header_line}) but {n_values} values"),
        ));
        return;
    }
    if names.split_whitespace().any(is_number) {
        out(Found::Skip(
            header_line,
            format!("`{group}:` header line holds numbers"),
        ));
        return;
    }
    let parsed: Option<Vec<i64>> = values.split_whitespace().map(|v| v.parse().ok()).collect();
    let Some(parsed) = parsed else {
        out(Found::Skip(
            line,
            format!("`{group}:` value line has a value that is not a 64-bit integer"),
        ));
        return;
    };
    for (name, value) in names.split_whitespace().zip(parsed) {
        out(Found::Counter(group, name, value));
    }
}

fn parse_snmp6(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    read_counters(input, rows, walk_snmp6)
}

fn walk_snmp6<'a>(text: &'a str, out: &mut dyn FnMut(Found<'a>)) -> Result<(), String> {
    let mut found = 0usize;
    for (n, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        let (Some(full), Some(value), None) = (words.next(), words.next(), words.next()) else {
            if !line.trim().is_empty() {
                out(Found::Skip(n + 1, format!("not `Name value`: {line:?}")));
            }
            continue;
        };
        let split = full
            .find('6')
            .map(|i| i + 1)
            .and_then(|i| Some((full.get(..i)?, full.get(i..)?)));
        let bad = || format!("not `Ip6|Icmp6|Udp6|UdpLite6Name number`: {line:?}");
        let (Some((group, name)), Ok(value)) = (split, value.parse::<i64>()) else {
            out(Found::Skip(n + 1, bad()));
            continue;
        };
        if name.is_empty() || !group.starts_with(|c: char| c.is_ascii_uppercase()) {
            out(Found::Skip(n + 1, bad()));
            continue;
        }
        found += 1;
        out(Found::Counter(group, name, value));
    }
    if found == 0 {
        return Err("no `Ip6InReceives 123` lines".into());
    }
    Ok(())
}

fn parse_ct_stat(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    read_counters(input, rows, walk_ct_stat)
}

fn walk_ct_stat<'a>(text: &'a str, out: &mut dyn FnMut(Found<'a>)) -> Result<(), String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err("empty: no `entries searched found ...` header".into());
    };
    let names: Vec<&str> = header.split_whitespace().collect();
    if names.first() != Some(&"entries") {
        return Err(format!("not a stat/nf_conntrack header: {header:?}"));
    }
    let mut sums = vec![0i64; names.len()];
    let mut cpus = 0usize;
    for (n, line) in lines {
        let values: Option<Vec<i64>> = line
            .split_whitespace()
            .map(|v| {
                let ok = !v.is_empty() && v.len() <= 16 && v.bytes().all(|b| b.is_ascii_hexdigit());
                ok.then(|| i64::from_str_radix(v, 16).ok()).flatten()
            })
            .collect();
        match values {
            Some(values) if values.len() == names.len() => {
                for ((sum, value), name) in sums.iter_mut().zip(values).zip(&names) {
                    *sum = if *name == "entries" {
                        (*sum).max(value)
                    } else {
                        sum.saturating_add(value)
                    };
                }
                cpus += 1;
            }
            Some(values) => out(Found::Skip(
                n + 1,
                format!("{} values for {} columns", values.len(), names.len()),
            )),
            None => out(Found::Skip(n + 1, format!("not hex numbers: {line:?}"))),
        }
    }
    if cpus > 0 {
        for (name, sum) in names.iter().zip(sums) {
            out(Found::Counter("nf_conntrack", name, sum));
        }
    }
    Ok(())
}

fn parse_conntrack_s(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    read_counters(input, rows, walk_conntrack_s)
}

/// Counters from `conntrack -S` text (`cpu=N found=...` lines), and from
/// the copy of it taken when the window opened: group `conntrack`.
pub(crate) fn read_conntrack_s_text(
    text: &str,
    at_open: Option<&str>,
    rows: &mut Rows,
) -> Result<(), String> {
    read_counter_text(text, at_open, rows, walk_conntrack_s)
}

fn walk_conntrack_s<'a>(text: &'a str, out: &mut dyn FnMut(Found<'a>)) -> Result<(), String> {
    let mut sums: Vec<(&str, i64)> = Vec::new();
    let mut seen = 0usize;
    let mut cpus = 0usize;
    'lines: for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        seen += 1;
        if !line.starts_with("cpu=") {
            out(Found::Skip(
                n + 1,
                format!("not a `cpu=N key=value ...` line: {line:?}"),
            ));
            continue;
        }
        let mut parsed = Vec::new();
        for word in line.split_whitespace() {
            let Some((key, value)) = word
                .split_once('=')
                .and_then(|(k, v)| Some((k, v.parse::<i64>().ok()?)))
            else {
                out(Found::Skip(n + 1, format!("`{word}` is not key=number")));
                continue 'lines;
            };
            if key != "cpu" {
                parsed.push((key, value));
            }
        }
        for (key, value) in parsed {
            match sums.iter_mut().find(|(k, _)| *k == key) {
                Some((_, sum)) => *sum = sum.saturating_add(value),
                None => sums.push((key, value)),
            }
        }
        cpus += 1;
    }
    if seen > 0 && cpus == 0 {
        return Err("no `cpu=N found=...` line".into());
    }
    for (key, sum) in sums {
        out(Found::Counter("conntrack", key, sum));
    }
    Ok(())
}

/// The counters of one /proc/net/snmp, netstat or stat/nf_conntrack text
/// by nstat's name (group and name joined: `TcpExtListenOverflows`,
/// `nf_conntrackinsert_failed`), read as the `net_counters` table reads
/// them (what `capsnap watch` compares second by second). `path` says
/// which file it is (`net/netstat`, `net/stat/nf_conntrack`).
pub fn named_values(path: &str, input: &[u8]) -> Result<Vec<(String, i64)>, String> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type};
    let reader = if path.ends_with("stat/nf_conntrack") {
        &NF_CONNTRACK_STAT_READER
    } else {
        &SNMP_READER
    };
    let (batch, _, _) = crate::rows::read(reader, input, crate::rows::Origin::of("", None, path))?;
    let strings = |name: &str| -> Vec<String> {
        let Some(dict) = batch
            .column_by_name(name)
            .and_then(|c| c.as_dictionary_opt::<Int32Type>())
        else {
            return Vec::new();
        };
        let values = dict.values().as_string::<i32>();
        dict.keys()
            .iter()
            .map(|k| k.map_or("", |k| values.value(k as usize)).to_owned())
            .collect()
    };
    let (groups, names) = (strings("group"), strings("name"));
    let values = batch
        .column_by_name("value")
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .ok_or("no value column")?;
    Ok(groups
        .into_iter()
        .zip(names)
        .zip(values.iter())
        .map(|((g, n), v)| (g + &n, v.unwrap_or(0)))
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rows::{Origin, read};
    use arrow_array::RecordBatch;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type};

    fn triples(batch: &RecordBatch) -> Vec<(String, String, i64)> {
        let dict = |name: &str, i: usize| {
            let d = batch
                .column_by_name(name)
                .unwrap()
                .as_dictionary::<Int32Type>();
            d.values()
                .as_string::<i32>()
                .value(d.keys().value(i) as usize)
                .to_owned()
        };
        let values = batch
            .column_by_name("value")
            .unwrap()
            .as_primitive::<Int64Type>();
        (0..batch.num_rows())
            .map(|i| (dict("group", i), dict("name", i), values.value(i)))
            .collect()
    }

    fn get(rows: &[(String, String, i64)], group: &str, name: &str) -> Option<i64> {
        rows.iter()
            .find(|(g, n, _)| g == group && n == name)
            .map(|r| r.2)
    }

    fn load(reader: &Reader, path: &str, input: &[u8]) -> (Vec<(String, String, i64)>, usize) {
        let (batch, _, total) = read(reader, input, Origin::of("b", None, path)).unwrap();
        (triples(&batch), total)
    }

    #[test]
    fn named_values_are_what_nstat_calls_them() {
        let netstat = b"TcpExt: SyncookiesSent ListenOverflows\nTcpExt: 0 7\n";
        let got = named_values("net/netstat", netstat).unwrap();
        assert_eq!(
            got,
            [
                ("TcpExtSyncookiesSent".into(), 0),
                ("TcpExtListenOverflows".into(), 7)
            ]
        );
        let ct = b"entries  searched found new invalid ignore delete delete_list insert insert_failed drop early_drop error  expect_new expect_create expect_delete search_restart\n00000006  00000000 00000000 00000000 00000002 00000000 00000000 00000000 00000000 00000001 00000003 00000000 00000000  00000000 00000000 00000000 00000000\n00000006  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001 00000000 00000000 00000000  00000000 00000000 00000000 00000000\n";
        let got = named_values("net/stat/nf_conntrack", ct).unwrap();
        let get = |k: &str| got.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        assert_eq!(get("nf_conntrackinsert_failed"), Some(2));
        assert_eq!(get("nf_conntrackdrop"), Some(3));
        assert_eq!(get("nf_conntrackentries"), Some(6));
    }

    /// An excerpt of a real bundle's netns/host/proc/net/snmp.
    pub(crate) const SNMP: &[u8] = b"Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams InUnknownProtos InDiscards InDelivers OutRequests OutDiscards OutNoRoutes ReasmTimeout ReasmReqds ReasmOKs ReasmFails FragOKs FragFails FragCreates OutTransmits
Ip: 2 64 6495 0 0 0 0 0 6495 4263 0 0 0 0 0 0 0 0 0 4263
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 1103 9 8 51 15 653161 594855 348 98 1038 0
";

    pub(crate) const CONNTRACK_S: &[u8] = b"cpu=0   \tfound=0 invalid=3 insert=0 insert_failed=1 drop=0 early_drop=0 error=0 search_restart=2 clash_resolve=0 chaintoolong=0 \ncpu=1   \tfound=0 invalid=4 insert=0 insert_failed=0 drop=0 early_drop=0 error=0 search_restart=0 clash_resolve=0 chaintoolong=0 \n";

    #[test]
    fn snmp_pairs_become_rows_with_signed_values() {
        let (rows, skipped) = load(&SNMP_READER, "netns/host/proc/net/snmp", SNMP);
        assert_eq!(skipped, 0);
        assert_eq!(rows.len(), 20 + 15);
        assert_eq!(get(&rows, "Tcp", "MaxConn"), Some(-1));
        assert_eq!(get(&rows, "Tcp", "RetransSegs"), Some(348));
        assert_eq!(get(&rows, "Ip", "OutTransmits"), Some(4263));
    }

    #[test]
    fn window_open_copies_give_the_change_during_the_window() {
        use crate::rows::testing::{f64s, i64s, in_window, strings};
        let open = b"Tcp: ActiveOpens RetransSegs CurrEstab\nTcp: 100 40 7\nTcpExt: ListenOverflows\nTcpExt: 3\n";
        let close = b"Tcp: ActiveOpens RetransSegs CurrEstab\nTcp: 160 40 5\nTcpExt: ListenOverflows TCPTimeWaitOverflow\nTcpExt: 23 9\n";
        let (batch, _, skipped) = crate::rows::read_pair(
            &SNMP_READER,
            close,
            Some(open),
            in_window("netns/host/proc/net/netstat", 4),
        )
        .unwrap();
        assert_eq!(skipped, 0);
        assert_eq!(
            strings(&batch, "name"),
            [
                "ActiveOpens",
                "RetransSegs",
                "CurrEstab",
                "ListenOverflows",
                "TCPTimeWaitOverflow"
            ]
            .map(|s| Some(s.to_owned()))
        );
        assert_eq!(
            i64s(&batch, "value_open"),
            [Some(100), Some(40), Some(7), Some(3), None]
        );
        assert_eq!(
            i64s(&batch, "delta"),
            [Some(60), Some(0), Some(-2), Some(20), None]
        );
        assert_eq!(
            f64s(&batch, "per_sec"),
            [Some(15.0), Some(0.0), Some(-0.5), Some(5.0), None]
        );
        // No copy from the window's start (an older bundle): nulls.
        let (batch, _, _) =
            read(&SNMP_READER, close, Origin::of("b", None, "proc/net/snmp")).unwrap();
        assert!(i64s(&batch, "delta").iter().all(Option::is_none));
        // A copy but no window in the manifest: deltas without rates.
        let (batch, _, _) = crate::rows::read_pair(
            &SNMP_READER,
            close,
            Some(open),
            Origin::of("b", None, "proc/net/snmp"),
        )
        .unwrap();
        assert_eq!(i64s(&batch, "delta")[0], Some(60));
        assert_eq!(f64s(&batch, "per_sec")[0], None);
        // A damaged copy costs only its deltas.
        let (batch, _, skipped) = crate::rows::read_pair(
            &NF_CONNTRACK_STAT_READER,
            b"entries  found invalid\n00000003 00000000 00000010\n00000003 00000000 00000002\n",
            Some(b"\xff\x00garbage"),
            in_window("netns/host/proc/net/stat/nf_conntrack", 2),
        )
        .unwrap();
        assert_eq!(skipped, 0);
        assert_eq!(i64s(&batch, "value"), [Some(3), Some(0), Some(0x12)]);
        assert!(i64s(&batch, "value_open").iter().all(Option::is_none));
    }

    #[test]
    fn mismatched_pairs_are_skipped_and_the_rest_kept() {
        // Shaped like retina's somecorrect-netstat1.
        let input = b"TcpExt: A B\nTcpExt: 1 2 3\nIpExt: X Y\nIpExt: 5 -6\nLonely: Q\nTcp: Z\nTcp: 7\nBroken\n";
        let (batch, skipped, total) =
            read(&SNMP_READER, input, Origin::of("b", None, "netstat")).unwrap();
        let rows = triples(&batch);
        assert_eq!(rows.len(), 3);
        assert_eq!(get(&rows, "IpExt", "Y"), Some(-6));
        assert_eq!(get(&rows, "Tcp", "Z"), Some(7));
        assert_eq!(total, 3);
        assert_eq!(
            skipped.iter().map(|s| s.line).collect::<Vec<_>>(),
            [2, 5, 8]
        );
    }

    #[test]
    fn snmp6_names_split_at_the_family_digit() {
        let input = b"Ip6InReceives                   \t16\nIcmp6InType133                  \t2\nUdp6NoPorts                     \t3\nUdpLite6InErrors                \t0\nifIndex 1\n";
        let (batch, skipped, total) = read(
            &SNMP6_READER,
            input,
            Origin::of("b", None, "proc/net/snmp6"),
        )
        .unwrap();
        let rows = triples(&batch);
        assert_eq!(
            rows,
            [
                ("Ip6".into(), "InReceives".into(), 16),
                ("Icmp6".into(), "InType133".into(), 2),
                ("Udp6".into(), "NoPorts".into(), 3),
                ("UdpLite6".into(), "InErrors".into(), 0),
            ]
        );
        assert_eq!((total, skipped[0].line), (1, 5));
    }

    #[test]
    fn nf_conntrack_stat_sums_cpus_but_not_entries() {
        // Taken on Linux 6.18, 2 CPUs, six UDP flows in a fresh netns
        // (the invalid and search_restart values edited in to show sums).
        let input = b"entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000006  00000000 00000000 00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000  00000000 00000000 00000000 0000000a
00000006  00000000 00000000 00000000 00000002 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000  00000000 00000000 00000000 00000001
0000000
";
        let (batch, _, total) = read(
            &NF_CONNTRACK_STAT_READER,
            input,
            Origin::of("b", None, "netns/host/proc/net/stat/nf_conntrack"),
        )
        .unwrap();
        let rows = triples(&batch);
        assert_eq!(total, 1);
        assert_eq!(rows.len(), 17);
        assert_eq!(get(&rows, "nf_conntrack", "entries"), Some(6));
        assert_eq!(get(&rows, "nf_conntrack", "invalid"), Some(3));
        assert_eq!(get(&rows, "nf_conntrack", "search_restart"), Some(11));
        assert!(
            read(
                &NF_CONNTRACK_STAT_READER,
                b"ipv4     2 tcp      6 1 ESTABLISHED\n",
                Origin::of("b", None, "x")
            )
            .is_err()
        );
    }

    #[test]
    fn conntrack_s_sums_cpus() {
        let (rows, skipped) = load(
            &CONNTRACK_STATS_READER,
            "netns/host/conntrack-stats.txt",
            CONNTRACK_S,
        );
        assert_eq!(skipped, 0);
        assert_eq!(rows.len(), 10);
        assert_eq!(rows[0], ("conntrack".into(), "found".into(), 0));
        assert_eq!(get(&rows, "conntrack", "invalid"), Some(7));
        assert_eq!(get(&rows, "conntrack", "insert_failed"), Some(1));
        assert_eq!(get(&rows, "conntrack", "search_restart"), Some(2));
        let (rows, _) = load(&CONNTRACK_STATS_READER, "conntrack-stats.txt", b"");
        assert!(rows.is_empty());
        let (rows, skipped) = load(
            &CONNTRACK_STATS_READER,
            "conntrack-stats.txt",
            b"cpu=0 found=x\ncpu=1 found=2\n",
        );
        assert_eq!((rows.len(), skipped), (1, 1));
        assert!(
            read(
                &CONNTRACK_STATS_READER,
                b"conntrack: command not found\n",
                Origin::of("b", None, "conntrack-stats.txt")
            )
            .is_err()
        );
    }

    #[test]
    fn claims_do_not_overlap() {
        let cases: [(&str, &[u8], [bool; 4]); 9] = [
            (
                "netns/host/proc/net/snmp",
                b"Ip: Forwarding",
                [true, false, false, false],
            ),
            (
                "proc/26231/net/netstat",
                b"TcpExt: Syn",
                [true, false, false, false],
            ),
            (
                "retina/correct-netstat",
                b"TcpExt: SyncookiesSent",
                [true, false, false, false],
            ),
            (
                "netns/host/proc/net/snmp6",
                b"Ip6InReceives",
                [false, true, false, false],
            ),
            (
                "proc/net/dev_snmp6/eth0",
                b"ifIndex                         \t1\nIp6InReceives",
                [false, false, false, false],
            ),
            (
                "netns/host/proc/net/stat/nf_conntrack",
                b"entries",
                [false, false, true, false],
            ),
            (
                "netns/host/proc/net/nf_conntrack",
                b"ipv4     2 tcp      6 117 TIME_WAIT src=",
                [false, false, false, false],
            ),
            (
                "netns/host/conntrack-stats.txt",
                b"cpu=0",
                [false, false, false, true],
            ),
            (
                "netns/host/conntrack.txt",
                b"tcp      6 431999 ESTABLISHED src=10.0.0.1",
                [false, false, false, false],
            ),
        ];
        let readers = [
            SNMP_READER,
            SNMP6_READER,
            NF_CONNTRACK_STAT_READER,
            CONNTRACK_STATS_READER,
        ];
        for (path, head, want) in cases {
            for (reader, want) in readers.iter().zip(want) {
                assert_eq!(
                    (reader.claims)(path, head),
                    want,
                    "{} on {path}",
                    reader.what
                );
            }
        }
    }

    #[test]
    fn corpus_samples_load() {
        let dir = crate::testing::corpus().join("proc");
        let file = |p: &str| std::fs::read(dir.join(p)).unwrap();
        for path in [
            "prometheus-procfs/proc/26231/net/snmp",
            "prometheus-procfs/proc/26231/net/netstat",
            "node_exporter/proc/net/snmp",
            "node_exporter/proc/net/netstat",
            "retina/correct-netstat",
        ] {
            let bytes = file(path);
            assert!((SNMP_READER.claims)(path, &bytes), "{path}");
            let (rows, skipped) = load(&SNMP_READER, path, &bytes);
            assert_eq!(skipped, 0, "{path}");
            assert!(rows.len() > 10, "{path}");
        }
        let (rows, _) = load(
            &SNMP_READER,
            "x",
            &file("prometheus-procfs/proc/26231/net/snmp"),
        );
        assert_eq!(get(&rows, "Tcp", "MaxConn"), Some(-1));
        assert_eq!(get(&rows, "Udp", "IgnoredMulti"), Some(58));
        assert_eq!(get(&rows, "IcmpMsg", "OutType3"), Some(50));
        let (rows, _) = load(&SNMP_READER, "x", &file("node_exporter/proc/net/netstat"));
        assert_eq!(get(&rows, "IpExt", "InOctets"), Some(6286396970));
        let (rows, _) = load(&SNMP_READER, "x", &file("retina/correct-netstat"));
        assert_eq!(get(&rows, "IpExt", "InOctets"), Some(7291961352));
        assert_eq!(rows.iter().filter(|(g, _, _)| g == "TcpExt").count(), 123);

        // retina's bad inputs: damaged pairs skipped, good ones kept.
        let (rows, skipped) = load(&SNMP_READER, "x", &file("retina/somecorrect-netstat1"));
        assert_eq!(
            rows,
            [
                ("IpExt".into(), "InNoRoutes".into(), 18965),
                ("IpExt".into(), "InTruncatedPkts".into(), 0),
                ("MPTcpExt".into(), "Test1".into(), 10),
            ]
        );
        assert_eq!(skipped, 5);
        let wrong = file("retina/wrong-netstat");
        assert!(!(SNMP_READER.claims)("retina/wrong-netstat", &wrong));
        assert!(
            read(
                &SNMP_READER,
                &wrong,
                Origin::of("c", None, "proc/net/netstat")
            )
            .is_err()
        );

        // procfs' copy ends with a stray `Mode: 644` line left by its ttar
        // archive: skipped, the counters kept.
        for (path, stray) in [
            ("prometheus-procfs/proc/26231/net/snmp6", 1),
            ("node_exporter/proc/net/snmp6", 0),
        ] {
            let bytes = file(path);
            assert!((SNMP6_READER.claims)(path, &bytes));
            let (rows, skipped) = load(&SNMP6_READER, path, &bytes);
            assert_eq!(skipped, stray, "{path}");
            assert!(rows.len() > 50, "{path}");
        }
        let (rows, _) = load(
            &SNMP6_READER,
            "x",
            &file("prometheus-procfs/proc/26231/net/snmp6"),
        );
        assert_eq!(get(&rows, "Ip6", "InReceives"), Some(92166));

        for (path, entries, invalid) in [
            (
                "node_exporter/proc/net/stat/nf_conntrack",
                0x21,
                3 + 2 + 1 + 0x2f,
            ),
            (
                "prometheus-procfs/proc/net/stat/nf_conntrack.old_kernel",
                0x2b,
                0x1bf93,
            ),
            ("capsnap-lab/node/proc/net/stat/nf_conntrack", 1, 2),
        ] {
            let bytes = file(path);
            assert!((NF_CONNTRACK_STAT_READER.claims)(path, &bytes), "{path}");
            let (rows, skipped) = load(&NF_CONNTRACK_STAT_READER, path, &bytes);
            assert_eq!(skipped, 0, "{path}");
            assert_eq!(
                get(&rows, "nf_conntrack", "entries"),
                Some(entries),
                "{path}"
            );
            assert_eq!(
                get(&rows, "nf_conntrack", "invalid"),
                Some(invalid),
                "{path}"
            );
        }
        let (rows, _) = load(
            &NF_CONNTRACK_STAT_READER,
            "x",
            &file("node_exporter/proc/net/stat/nf_conntrack"),
        );
        assert_eq!(get(&rows, "nf_conntrack", "search_restart"), Some(7));
        assert_eq!(
            get(&rows, "nf_conntrack", "ignore"),
            Some(0x588a + 0x56a4 + 0x58d4 + 0x5688)
        );
        let (rows, _) = load(
            &NF_CONNTRACK_STAT_READER,
            "x",
            &file("prometheus-procfs/proc/net/stat/nf_conntrack.old_kernel"),
        );
        assert_eq!(get(&rows, "nf_conntrack", "search_restart"), None);
        assert_eq!(get(&rows, "nf_conntrack", "searched"), Some(0x3159f));
    }
}
