//! The text output of the usual tracing tools, saved by hand: bcc,
//! bpftrace's tools and perf-tools (tcpretrans, tcpstates, tcpconnect,
//! tcpaccept, tcplife, tcpdrop, tcptracer, tcpconnlat, execsnoop, solisten,
//! gethostlatency, oomkill).
//!
//! The tools are recognised by their column header (files are saved under
//! any name): the header decides which columns a line has, so the options
//! that add columns (`-t`, `-T`, `-U`, `-L`, `-w`, `-s` CSV) need no
//! special case. The same tool prints differently across projects and
//! versions (bcc tcpretrans `IP LADDR:LPORT T> RADDR:RPORT`, perf-tools
//! `LADDR:LPORT -- RADDR:RPORT`, bpftrace without either; bcc tcpdrop added
//! `REASON (CODE)` and quotes stack frames as `b'...'`); the header tells
//! which one wrote a section, and a `Attaching N probes`/`Attached N probes`
//! banner or a `*.bt` command line decides where headers are identical
//! (tcplife, gethostlatency, oomkill). Kernel stacks printed under an event
//! (tcpdrop, perf-tools tcpretrans -s) are attached to it in `stack`.
//! Tools print a time of day at most, so their rows have no `ts`: the
//! printed time is kept in `time_text`.

use super::{Event, TABLE, address, ms_to_us};
use crate::rows::{Reader, Rows, text};
use crate::tcp_state::tcp_state_of_text;

/// Reads the output of bcc, bpftrace and perf-tools tracing tools.
pub(crate) const READER: Reader = Reader {
    table: &TABLE,
    what: "bcc / bpftrace / perf-tools output: tcpretrans, tcpstates, tcpconnect, tcpaccept, tcplife, tcpdrop, tcptracer, tcpconnlat, execsnoop, solisten, gethostlatency, oomkill",
    claims: |_path, head| {
        let text = text(head);
        text.lines()
            .any(|l| header(l).is_some() || l.contains(OOM_MARK))
    },
    superseded_by: &[],
    parse: parse_tools,
};

/// What follows the time of day in oomkill's line (bcc and bpftrace alike).
const OOM_MARK: &str = "OOM kill of PID ";

/// Which project printed a section.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Flavor {
    Bcc,
    Bpftrace,
    PerfTools,
    /// The projects print the same header: decided by the file's banner.
    Either,
}

/// A tool: its header columns and what its lines are.
struct Spec {
    tool: &'static str,
    event: &'static str,
    /// Columns every version prints.
    required: &'static [&'static str],
    /// Columns some versions or options add.
    optional: &'static [&'static str],
    flavor: fn(&[&str]) -> Flavor,
}

/// Columns any tool may add through options (-t, -T, -U).
const COMMON: &[&str] = &["TIME", "TIME(s)", "TIMEs", "TIME(ms)", "UID"];

/// Columns whose value runs to the end of the line.
const REST: &[&str] = &["ARGS", "QUERY", "HOST"];

/// In this order: the first spec whose columns fit a header takes it.
const SPECS: &[Spec] = &[
    Spec {
        tool: "tcpretrans",
        event: "retransmit",
        required: &["PID", "LADDR:LPORT", "RADDR:RPORT", "STATE"],
        optional: &["IP", "T>", "--", "SEQ"],
        flavor: |c| {
            if c.contains(&"T>") {
                Flavor::Bcc
            } else if c.contains(&"--") {
                Flavor::PerfTools
            } else {
                Flavor::Bpftrace
            }
        },
    },
    Spec {
        tool: "tcpdrop",
        event: "drop",
        required: &["PID", "SADDR:SPORT", "DADDR:DPORT", "STATE"],
        optional: &["IP", ">", "COMM", "(FLAGS)", "REASON", "(CODE)"],
        flavor: |c| {
            if c.contains(&"IP") {
                Flavor::Bcc
            } else {
                Flavor::Bpftrace
            }
        },
    },
    Spec {
        tool: "tcpstates",
        event: "tcp_state",
        required: &[
            "SKADDR", "LADDR", "LPORT", "RADDR", "RPORT", "OLDSTATE", "NEWSTATE",
        ],
        optional: &["C-PID", "C-COMM", "PID", "COMM", "IP", "->", "MS"],
        flavor: |_| Flavor::Bcc,
    },
    Spec {
        tool: "tcptracer",
        event: "connect",
        required: &["T", "PID", "COMM", "SADDR", "DADDR", "SPORT", "DPORT"],
        optional: &["IP", "NETNS"],
        flavor: |_| Flavor::Bcc,
    },
    Spec {
        tool: "tcpconnlat",
        event: "connect",
        required: &["PID", "COMM", "SADDR", "DADDR", "DPORT", "LAT(ms)"],
        optional: &["IP", "LPORT", "SPORT"],
        flavor: |_| Flavor::Bcc,
    },
    Spec {
        tool: "tcpconnect",
        event: "connect",
        required: &["PID", "COMM", "SADDR", "DADDR", "DPORT"],
        optional: &["IP", "LPORT", "SPORT", "QUERY"],
        flavor: |c| {
            if c.contains(&"IP") {
                Flavor::Bcc
            } else {
                Flavor::Bpftrace
            }
        },
    },
    Spec {
        tool: "tcpaccept",
        event: "accept",
        required: &["PID", "COMM", "RADDR", "LADDR", "LPORT"],
        optional: &["IP", "RPORT", "BL"],
        flavor: |c| {
            if c.contains(&"IP") {
                Flavor::Bcc
            } else {
                Flavor::Bpftrace
            }
        },
    },
    Spec {
        tool: "tcplife",
        event: "close",
        required: &[
            "PID", "COMM", "LADDR", "LPORT", "RADDR", "RPORT", "TX_KB", "RX_KB", "MS",
        ],
        optional: &["IP"],
        flavor: |_| Flavor::Either,
    },
    Spec {
        tool: "execsnoop",
        event: "exec",
        required: &["PID", "ARGS"],
        optional: &["COMM", "PCOMM", "PPID", "RET"],
        flavor: |c| {
            if c.contains(&"RET") {
                Flavor::Bcc
            } else if c.contains(&"TIME") || c.contains(&"TIME(ms)") {
                Flavor::Bpftrace
            } else {
                Flavor::PerfTools
            }
        },
    },
    Spec {
        tool: "solisten",
        event: "listen",
        required: &["PID", "COMM", "PROTO", "BACKLOG", "PORT"],
        optional: &["NETNS", "ADDR"],
        flavor: |_| Flavor::Bcc,
    },
    Spec {
        tool: "gethostlatency",
        event: "dns",
        required: &["PID", "COMM", "HOST"],
        optional: &["LATms", "LAT(ms)"],
        flavor: |_| Flavor::Either,
    },
];

/// A recognised header: the spec and the column names, in order.
struct Header {
    spec: &'static Spec,
    columns: Vec<String>,
    csv: bool,
}

/// The tool whose header `line` is, if any.
fn header(line: &str) -> Option<Header> {
    let trimmed = line.trim();
    let csv = !trimmed.contains(char::is_whitespace) && trimmed.contains(',');
    let columns: Vec<&str> = if csv {
        trimmed.split(',').collect()
    } else {
        trimmed.split_whitespace().collect()
    };
    if columns.len() < 2 {
        return None;
    }
    let spec = SPECS.iter().find(|s| {
        s.required.iter().all(|r| columns.contains(r))
            && columns
                .iter()
                .all(|c| s.required.contains(c) || s.optional.contains(c) || COMMON.contains(c))
    })?;
    Some(Header {
        spec,
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        csv,
    })
}

/// Whether `line` is the header of some other table (tcptop, a `-c`
/// count, top(1) pasted in an example): it ends the current section.
fn other_header(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    words.len() >= 2
        && !line.bytes().any(|b| b.is_ascii_lowercase())
        && !words.iter().any(|w| w.bytes().all(|b| b.is_ascii_digit()))
        && !line.trim_start().starts_with(|c: char| c.is_ascii_digit())
}

/// The section being read.
struct Section {
    spec: &'static Spec,
    columns: Vec<String>,
    csv: bool,
    tool: String,
}

/// The name of the tool as it goes into `tool`.
fn tool_name(spec_tool: &str, flavor: Flavor, bpftrace_hint: bool) -> String {
    let project = match flavor {
        Flavor::Bcc => "bcc",
        Flavor::Bpftrace => "bpftrace",
        Flavor::PerfTools => "perf-tools",
        Flavor::Either if bpftrace_hint => "bpftrace",
        Flavor::Either => "bcc",
    };
    format!("{project}-{spec_tool}")
}

/// bpftrace prints `Attaching N probes...` (newer: `Attached N probes`);
/// example files show the `*.bt` command line.
fn bpftrace_banner(line: &str) -> bool {
    let l = line.trim();
    ((l.starts_with("Attaching ") || l.starts_with("Attached ")) && l.contains(" probe"))
        || ((l.starts_with("# ") || l.starts_with("$ "))
            && l.split_whitespace().any(|w| w.ends_with(".bt")))
}

/// A kernel stack frame printed under an event: a tab-indented symbol
/// (bcc tcpdrop, bpftrace kstack) or ` => symbol` (perf-tools -s).
fn stack_frame(line: &str) -> Option<String> {
    let t = line.trim();
    if t.is_empty() {
        return None;
    }
    if let Some(f) = t.strip_prefix("=> ") {
        return Some(f.trim().to_owned());
    }
    if !(line.starts_with('\t') || line.starts_with("        ")) {
        return None;
    }
    // bcc under Python 3 prints b'sym+0x90'.
    if let Some(f) = t.strip_prefix("b'").and_then(|f| f.strip_suffix('\'')) {
        return Some(f.to_owned());
    }
    (!t.contains(char::is_whitespace)).then(|| t.to_owned())
}

fn parse_tools(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let text = text(input);
    let lines: Vec<&str> = text.lines().collect();
    let bpftrace_hint = lines.iter().any(|l| bpftrace_banner(l));
    let mut events: Vec<Event> = Vec::new();
    let mut section: Option<Section> = None;
    let mut recognised = false;
    // The event stack frames attach to: the last one, while only its
    // frames and blank lines follow it.
    let mut stack_target: Option<usize> = None;
    for (n, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(frame) = stack_frame(line)
            && let Some(e) = stack_target.and_then(|i| events.get_mut(i))
        {
            e.stack.push(frame);
            continue;
        }
        stack_target = None;
        if let Some(h) = header(line) {
            recognised = true;
            let flavor = (h.spec.flavor)(&h.columns.iter().map(String::as_str).collect::<Vec<_>>());
            section = Some(Section {
                tool: tool_name(h.spec.tool, flavor, bpftrace_hint),
                spec: h.spec,
                columns: h.columns,
                csv: h.csv,
            });
            continue;
        }
        if line.contains(OOM_MARK) {
            recognised = true;
            match oom_kill(line, bpftrace_hint) {
                Some(e) => events.push(e),
                None => rows.skip(
                    n + 1,
                    format!("an oomkill line without the expected fields: {line:?}"),
                ),
            }
            continue;
        }
        let t = line.trim();
        if t.starts_with("# ") || t.starts_with("$ ") || t == "^C" || other_header(line) {
            section = None;
            continue;
        }
        let Some(s) = &section else { continue };
        match tool_line(s, line) {
            Ok(e) => {
                events.push(e);
                stack_target = Some(events.len() - 1);
            }
            Err(why) if looks_like_data(s, line) => rows.skip(n + 1, why),
            // Prose after the table (example files, banners): the table is over.
            Err(_) => section = None,
        }
    }
    if !recognised {
        return Err(
            "no bcc / bpftrace / perf-tools header line (e.g. `PID COMM IP SADDR DADDR DPORT`)"
                .into(),
        );
    }
    for e in &events {
        e.push(rows);
    }
    Ok(())
}

/// Whether a line that did not parse was meant as an event line (counted
/// as damaged) rather than prose or a banner (which ends the table).
fn looks_like_data(s: &Section, line: &str) -> bool {
    let mut words = line.split_whitespace();
    let first = words.next().unwrap_or("");
    let starts_with_digit = first.starts_with(|c: char| c.is_ascii_digit());
    let comm_first = matches!(
        s.columns.first().map(String::as_str),
        Some("COMM" | "PCOMM" | "UID")
    );
    starts_with_digit || (comm_first && words.next().is_some_and(|w| w.parse::<u64>().is_ok()))
}

/// Byte ranges of the whitespace-separated words of `line`.
fn word_spans(line: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, line.len()));
    }
    spans
}

/// Parses one line of a section. A comm may hold spaces: when the words do
/// not fit the columns, the comm column takes up to three more words.
fn tool_line(s: &Section, line: &str) -> Result<Event, String> {
    let ncols = s.columns.len();
    let rest_last = s.columns.last().is_some_and(|c| REST.contains(&c.as_str()));
    let comm_at = s
        .columns
        .iter()
        .position(|c| matches!(c.as_str(), "COMM" | "C-COMM" | "PCOMM"));
    // (start, end) of each word, or of each CSV field.
    let spans: Vec<(usize, usize)> = if s.csv {
        let mut spans = Vec::new();
        let mut at = 0;
        for field in line.split(',') {
            spans.push((at, at + field.len()));
            at += field.len() + 1;
        }
        spans
    } else {
        word_spans(line)
    };
    let mut first_err = None;
    let extra_max = if comm_at.is_some() && !s.csv { 3 } else { 0 };
    for extra in 0..=extra_max {
        let fits = if rest_last {
            spans.len() + 1 >= ncols + extra
        } else {
            spans.len() == ncols + extra
        };
        if !fits {
            continue;
        }
        let mut values: Vec<&str> = Vec::with_capacity(ncols);
        let mut w = 0;
        for (i, _) in s.columns.iter().enumerate() {
            let take = if Some(i) == comm_at { 1 + extra } else { 1 };
            let value = if rest_last && i == ncols - 1 {
                spans
                    .get(w)
                    .map_or("", |&(a, _)| line.get(a..).unwrap_or("").trim())
            } else {
                match (spans.get(w), spans.get(w + take - 1)) {
                    (Some(&(a, _)), Some(&(_, b))) => line.get(a..b).unwrap_or("").trim(),
                    _ => "",
                }
            };
            values.push(value);
            w += take;
        }
        match event_of(s, &values) {
            Ok(e) => return Ok(e),
            Err(why) => {
                first_err.get_or_insert(why);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| {
        format!(
            "{} words for the {} columns of {}",
            spans.len(),
            ncols,
            s.tool
        )
    }))
}

/// Splits `addr:port` (IPv6 too: the port follows the last colon; `[a]:p`).
fn endpoint(v: &str) -> Result<(String, u16), String> {
    let (a, p) = v
        .rsplit_once(':')
        .ok_or_else(|| format!("`{v}` is not ADDR:PORT"))?;
    let port = p.parse().map_err(|_| format!("bad port in `{v}`"))?;
    Ok((address(a), port))
}

/// Fills an event from the values of one line, column by column.
fn event_of(s: &Section, values: &[&str]) -> Result<Event, String> {
    let mut e = Event {
        event: s.spec.event.to_owned(),
        tool: s.tool.clone(),
        ..Event::default()
    };
    let mut clock_time = None;
    let mut rel_time = None;
    for (col, &v) in s.columns.iter().zip(values) {
        let col = col.as_str();
        let bad = || format!("{col} `{v}` is not what {} prints there", s.tool);
        let num = || v.parse::<u64>().map_err(|_| bad());
        let port = || v.parse::<u16>().map_err(|_| bad());
        match col {
            "TIME" => clock_time = Some(v.to_owned()),
            "TIME(s)" | "TIMEs" => rel_time = Some(format!("{v}s")),
            "TIME(ms)" => rel_time = Some(format!("{v}ms")),
            "PID" | "C-PID" => e.pid = Some(num()?),
            "PPID" => e.ppid = Some(num()?),
            "UID" => e.uid = Some(num()?),
            "COMM" | "C-COMM" => e.comm = Some(v.to_owned()),
            "PCOMM" => e.pcomm = Some(v.to_owned()),
            "IP" => {
                e.family = match v {
                    "4" => Some(4),
                    "6" => Some(6),
                    _ => return Err(bad()),
                }
            }
            "SADDR" | "LADDR" | "ADDR" => e.saddr = Some(address(v)),
            "DADDR" | "RADDR" => e.daddr = Some(address(v)),
            "SPORT" | "LPORT" | "PORT" => e.sport = Some(port()?),
            "DPORT" | "RPORT" => e.dport = Some(port()?),
            "LADDR:LPORT" | "SADDR:SPORT" => {
                let (a, p) = endpoint(v)?;
                (e.saddr, e.sport) = (Some(a), Some(p));
            }
            "RADDR:RPORT" | "DADDR:DPORT" => {
                let (a, p) = endpoint(v)?;
                (e.daddr, e.dport) = (Some(a), Some(p));
            }
            "T>" | "--" => match v {
                "R>" => {}
                "L>" => e.detail.push("type=tail_loss_probe".into()),
                _ => return Err(bad()),
            },
            ">" | "->" => {
                if v != col {
                    return Err(bad());
                }
            }
            "STATE" => e.state = tcp_state_of_text(v),
            "OLDSTATE" => e.old_state = tcp_state_of_text(v),
            "NEWSTATE" => e.new_state = tcp_state_of_text(v),
            "(FLAGS)" => {
                let f = v
                    .strip_prefix('(')
                    .and_then(|f| f.strip_suffix(')'))
                    .ok_or_else(bad)?;
                e.detail.push(format!("tcp_flags={f}"));
            }
            "REASON" => e.reason = Some(v.strip_prefix("SKB_DROP_REASON_").unwrap_or(v).to_owned()),
            "(CODE)" => {
                let c = v
                    .strip_prefix('(')
                    .and_then(|f| f.strip_suffix(')'))
                    .ok_or_else(bad)?;
                e.detail.push(format!("reason_code={c}"));
            }
            "MS" | "LAT(ms)" | "LATms" => e.duration_us = Some(ms_to_us(v).ok_or_else(bad)?),
            "TX_KB" => e.tx_kb = Some(num()?),
            "RX_KB" => e.rx_kb = Some(num()?),
            "RET" => e.ret = Some(v.parse().map_err(|_| bad())?),
            "ARGS" => {
                if s.tool == "bcc-execsnoop" {
                    // bcc prints the file passed to execve() in place of argv[0].
                    e.filename = v.split_whitespace().next().map(str::to_owned);
                }
                e.argv = Some(v.to_owned());
            }
            "SKADDR" => e.sk = Some(v.to_owned()),
            "NETNS" => e.netns_inode = Some(num()?),
            "T" => {
                e.event = match v {
                    "C" => "connect",
                    "A" => "accept",
                    "X" => "close",
                    _ => return Err(bad()),
                }
                .to_owned()
            }
            "PROTO" => {
                e.family = if v.ends_with("v4") {
                    Some(4)
                } else if v.ends_with("v6") {
                    Some(6)
                } else {
                    None
                };
                e.detail.push(format!("proto={v}"));
            }
            "BACKLOG" | "BL" => e.detail.push(format!("backlog={v}")),
            "SEQ" => e.detail.push(format!("seq={}", num()?)),
            "QUERY" | "HOST" => e.detail.push(format!("query={v}")),
            other => e.detail.push(format!("{}={v}", other.to_ascii_lowercase())),
        }
    }
    if let Some(t) = &clock_time
        && !t.contains(':')
    {
        return Err(format!("TIME `{t}` is not a time of day"));
    }
    match (clock_time, rel_time) {
        (Some(c), Some(r)) => {
            e.time_text = Some(c);
            e.detail.push(format!("t={r}"));
        }
        (c, r) => e.time_text = c.or(r),
    }
    Ok(e)
}

/// `21:03:39 Triggered by PID 3297 ("ntpd"), OOM kill of PID 22516
/// ("perl"), 3850642 pages, loadavg: 0.99 0.39 0.30 3/282 22724`
fn oom_kill(line: &str, bpftrace_hint: bool) -> Option<Event> {
    let (head, tail) = line.split_once("Triggered by PID ")?;
    let (tpid, tail) = tail.split_once(" (\"")?;
    let (tcomm, tail) = tail.split_once("\"), ")?;
    let tail = tail.strip_prefix(OOM_MARK)?;
    let (kpid, tail) = tail.split_once(" (\"")?;
    let (kcomm, tail) = tail.split_once("\"), ")?;
    let (pages, tail) = tail.split_once(" pages")?;
    let loadavg = tail.split_once("loadavg: ").map(|(_, l)| l.trim());
    let mut detail = vec![
        format!("triggered_by_pid={}", tpid.trim().parse::<u64>().ok()?),
        format!("triggered_by_comm={tcomm}"),
        format!("pages={}", pages.trim().parse::<u64>().ok()?),
    ];
    if let Some(l) = loadavg {
        detail.push(format!("loadavg={l}"));
    }
    let time = head.trim();
    Some(Event {
        time_text: (!time.is_empty()).then(|| time.to_owned()),
        event: "oom_kill".into(),
        tool: tool_name("oomkill", Flavor::Either, bpftrace_hint),
        pid: Some(kpid.trim().parse().ok()?),
        comm: Some(kcomm.to_owned()),
        detail,
        ..Event::default()
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{num_at, read_ok, str_at, strs};
    use super::*;
    use crate::rows::{Origin, read};
    use arrow_array::RecordBatch;

    fn tool_file(path: &str) -> (RecordBatch, usize) {
        let bytes = std::fs::read(crate::testing::corpus().join("ebpf").join(path)).unwrap();
        assert!(
            (READER.claims)(path, &bytes[..bytes.len().min(4096)]),
            "{path} not claimed"
        );
        let (b, _, skipped) = read(&READER, &bytes, Origin::of("c", None, path)).unwrap();
        (b, skipped)
    }

    #[test]
    fn corpus_tool_outputs() {
        // (file, rows, tool of the first row, event of the first row)
        let cases: &[(&str, usize, &str, &str)] = &[
            (
                "bcc/bcc__tcpretrans_example.txt",
                16,
                "bcc-tcpretrans",
                "retransmit",
            ),
            (
                "bcc/bcc__tcpretrans_example.first-553f2aa1.txt",
                14,
                "bcc-tcpretrans",
                "retransmit",
            ),
            (
                "perf-tools/perf-tools__tcpretrans_example.txt",
                23,
                "perf-tools-tcpretrans",
                "retransmit",
            ),
            (
                "bpftrace/bpftrace__tcpretrans_example.txt",
                3,
                "bpftrace-tcpretrans",
                "retransmit",
            ),
            (
                "bcc/bcc__tcpstates_example.txt",
                5,
                "bcc-tcpstates",
                "tcp_state",
            ),
            (
                "bcc/bcc__tcpstates_example.first-bbd9acd1.txt",
                5,
                "bcc-tcpstates",
                "tcp_state",
            ),
            (
                "bcc/bcc__tcpconnect_example.txt",
                26,
                "bcc-tcpconnect",
                "connect",
            ),
            (
                "bcc/bcc__tcpconnect_example.first-f06d3b42.txt",
                10,
                "bcc-tcpconnect",
                "connect",
            ),
            (
                "bpftrace/bpftrace__tcpconnect_example.txt",
                3,
                "bpftrace-tcpconnect",
                "connect",
            ),
            (
                "bcc/bcc__tcpaccept_example.txt",
                7,
                "bcc-tcpaccept",
                "accept",
            ),
            (
                "bcc/bcc__tcpaccept_example.first-052f89c2.txt",
                6,
                "bcc-tcpaccept",
                "accept",
            ),
            (
                "bpftrace/bpftrace__tcpaccept_example.txt",
                3,
                "bpftrace-tcpaccept",
                "accept",
            ),
            ("bcc/bcc__tcplife_example.txt", 43, "bcc-tcplife", "close"),
            (
                "bcc/bcc__tcplife_example.first-797c3ec1.txt",
                43,
                "bcc-tcplife",
                "close",
            ),
            (
                "bpftrace/bpftrace__tcplife_example.txt",
                12,
                "bpftrace-tcplife",
                "close",
            ),
            ("bcc/bcc__tcpdrop_example.txt", 1, "bcc-tcpdrop", "drop"),
            (
                "bcc/bcc__tcpdrop_example.first-4f13d880.txt",
                2,
                "bcc-tcpdrop",
                "drop",
            ),
            (
                "bpftrace/bpftrace__tcpdrop_example.txt",
                1,
                "bpftrace-tcpdrop",
                "drop",
            ),
            (
                "bcc/bcc__tcptracer_example.txt",
                11,
                "bcc-tcptracer",
                "connect",
            ),
            (
                "bcc/bcc__tcpconnlat_example.txt",
                9,
                "bcc-tcpconnlat",
                "connect",
            ),
            (
                "bcc/bcc__execsnoop_example.txt",
                42,
                "bcc-execsnoop",
                "exec",
            ),
            (
                "bcc/bcc__execsnoop_example.first-af18bb3c.txt",
                24,
                "bcc-execsnoop",
                "exec",
            ),
            (
                "bpftrace/bpftrace__execsnoop_example.txt",
                17,
                "bpftrace-execsnoop",
                "exec",
            ),
            (
                "perf-tools/perf-tools__execsnoop_example.txt",
                46,
                "perf-tools-execsnoop",
                "exec",
            ),
            (
                "bcc/bcc__solisten_example.txt",
                10,
                "bcc-solisten",
                "listen",
            ),
            (
                "bcc/bcc__gethostlatency_example.txt",
                8,
                "bcc-gethostlatency",
                "dns",
            ),
            (
                "bpftrace/bpftrace__gethostlatency_example.txt",
                4,
                "bpftrace-gethostlatency",
                "dns",
            ),
            ("bcc/bcc__oomkill_example.txt", 2, "bcc-oomkill", "oom_kill"),
            (
                "bpftrace/bpftrace__oomkill_example.txt",
                2,
                "bpftrace-oomkill",
                "oom_kill",
            ),
        ];
        for (path, count, tool, event) in cases {
            let (b, skipped) = tool_file(path);
            assert_eq!(skipped, 0, "{path}");
            assert_eq!(b.num_rows(), *count, "{path}");
            assert_eq!(str_at(&b, "tool", 0).as_deref(), Some(*tool), "{path}");
            assert_eq!(str_at(&b, "event", 0).as_deref(), Some(*event), "{path}");
        }
    }

    #[test]
    fn histograms_and_top_views_are_not_events() {
        for path in [
            "bcc/bcc__tcpsynbl_example.txt",
            "bpftrace/bpftrace__tcpsynbl_example.txt",
            "bcc/bcc__tcprtt_example.txt",
            "bcc/bcc__tcptop_example.txt",
            "bcc/bcc__tcpsubnet_example.txt",
        ] {
            let bytes = std::fs::read(crate::testing::corpus().join("ebpf").join(path)).unwrap();
            assert!(
                !(READER.claims)(path, &bytes[..bytes.len().min(4096)]),
                "{path}"
            );
        }
    }

    #[test]
    fn tool_columns_land_in_place() {
        let (b, _) = tool_file("bcc/bcc__tcpretrans_example.txt");
        assert_eq!(str_at(&b, "time_text", 0).as_deref(), Some("01:55:05"));
        assert_eq!(num_at(&b, "ts", 0), None);
        assert_eq!(
            (str_at(&b, "saddr", 0), num_at(&b, "sport", 0)),
            (Some("10.153.223.157".into()), Some(22))
        );
        assert_eq!(
            (str_at(&b, "daddr", 0), num_at(&b, "dport", 0)),
            (Some("69.53.245.40".into()), Some(34619))
        );
        assert_eq!(str_at(&b, "state", 0).as_deref(), Some("ESTABLISHED"));
        assert_eq!(
            str_at(&b, "detail", 6).as_deref(),
            Some("type=tail_loss_probe")
        );
        assert_eq!(str_at(&b, "detail", 14).as_deref(), Some("seq=2879306108"));
        assert_eq!(str_at(&b, "state", 14).as_deref(), Some("SYN_SENT"));

        let (b, _) = tool_file("perf-tools/perf-tools__tcpretrans_example.txt");
        // The -s section: 20 frames attached to its event.
        let stack = str_at(&b, "stack", 15).unwrap();
        assert!(
            stack.starts_with("tcp_fastretrans_alert <- tcp_ack <- "),
            "{stack}"
        );
        assert_eq!(stack.matches(" <- ").count(), 19);
        assert_eq!(str_at(&b, "state", 16).as_deref(), Some("LAST_ACK"));

        let (b, _) = tool_file("bcc/bcc__tcpdrop_example.txt");
        assert_eq!(str_at(&b, "reason", 0).as_deref(), Some("NETFILTER_DROP"));
        assert_eq!(
            str_at(&b, "detail", 0).as_deref(),
            Some("tcp_flags=SYN|ACK reason_code=12")
        );
        assert_eq!(str_at(&b, "state", 0).as_deref(), Some("SYN_SENT"));
        assert!(str_at(&b, "stack", 0).unwrap().starts_with("__traceiter_kfree_skb+0x90 <- __traceiter_kfree_skb+0x90 <- sk_skb_reason_drop+0x1e4 <- nft_do_chain+0x93c"));

        let (b, _) = tool_file("bcc/bcc__tcpdrop_example.first-4f13d880.txt");
        assert!(
            str_at(&b, "stack", 1)
                .unwrap()
                .ends_with("entry_SYSCALL_64_after_hwframe+0x3d")
        );
        assert_eq!(
            str_at(&b, "detail", 1).as_deref(),
            Some("tcp_flags=RST|ACK")
        );

        let (b, _) = tool_file("bpftrace/bpftrace__tcpdrop_example.txt");
        // Cut to 10 characters by the tool.
        assert_eq!(str_at(&b, "state", 0).as_deref(), Some("ESTABLISHED"));
        assert_eq!(str_at(&b, "comm", 0).as_deref(), Some("swapper/2"));

        let (b, _) = tool_file("bcc/bcc__tcpstates_example.txt");
        assert_eq!(str_at(&b, "sk", 2).as_deref(), Some("ffff9fd7e8192000"));
        assert_eq!(
            (str_at(&b, "old_state", 2), str_at(&b, "new_state", 2)),
            (Some("ESTABLISHED".into()), Some("FIN_WAIT1".into()))
        );
        assert_eq!(num_at(&b, "duration_us", 2), Some(176042));
        assert_eq!(str_at(&b, "comm", 1).as_deref(), Some("swapper/5"));

        let (b, _) = tool_file("bcc/bcc__tcplife_example.txt");
        assert_eq!(
            (num_at(&b, "tx_kb", 16), num_at(&b, "rx_kb", 16)),
            (Some(5), Some(10255))
        );
        assert_eq!(num_at(&b, "duration_us", 16), Some(3066790));
        // -w adds IP; IPv6 rows.
        assert_eq!(num_at(&b, "family", 10), Some(6));
        // CSV section (-stT): clock time kept, seconds in detail.
        let csv_row = (0..b.num_rows())
            .find(|&r| str_at(&b, "time_text", r).as_deref() == Some("23:39:38"))
            .unwrap();
        assert_eq!(
            str_at(&b, "comm", csv_row).as_deref(),
            Some("recordProgramSt")
        );
        assert_eq!(
            str_at(&b, "detail", csv_row).as_deref(),
            Some("t=0.000000s")
        );

        let (b, _) = tool_file("bcc/bcc__tcptracer_example.txt");
        let kinds: Vec<_> = strs(&b, "event").into_iter().flatten().take(4).collect();
        assert_eq!(kinds, ["connect", "connect", "close", "accept"]);
        assert_eq!(str_at(&b, "saddr", 1).as_deref(), Some("::1"));
        assert_eq!(str_at(&b, "time_text", 8).as_deref(), Some("0.000s"));

        let (b, _) = tool_file("bcc/bcc__execsnoop_example.txt");
        assert_eq!(str_at(&b, "filename", 0).as_deref(), Some("/usr/bin/man"));
        assert_eq!(str_at(&b, "argv", 0).as_deref(), Some("/usr/bin/man ls"));
        assert_eq!(num_at(&b, "ret", 16), Some(-2));
        let uid_row = (0..b.num_rows())
            .find(|&r| num_at(&b, "uid", r) == Some(1000))
            .unwrap();
        assert_eq!(str_at(&b, "comm", uid_row).as_deref(), Some("ls"));
        assert_eq!(num_at(&b, "ppid", uid_row), Some(133702));

        let (b, _) = tool_file("bpftrace/bpftrace__execsnoop_example.txt");
        assert_eq!(
            str_at(&b, "time_text", 0).as_deref(),
            Some("08:57:52.430193")
        );
        assert_eq!(str_at(&b, "filename", 0), None);

        let (b, _) = tool_file("bcc/bcc__solisten_example.txt");
        assert_eq!(num_at(&b, "netns_inode", 2), Some(4026532165));
        assert_eq!(
            (num_at(&b, "family", 1), str_at(&b, "saddr", 1)),
            (Some(6), Some("2001:f0d0:1002:51::4".into()))
        );
        assert_eq!(num_at(&b, "sport", 1), Some(4242));

        let (b, _) = tool_file("bcc/bcc__gethostlatency_example.txt");
        assert_eq!(num_at(&b, "duration_us", 0), Some(90000));
        assert_eq!(
            str_at(&b, "detail", 0).as_deref(),
            Some("query=www.iovisor.org")
        );

        let (b, _) = tool_file("bcc/bcc__tcpconnect_example.txt");
        let q = (0..b.num_rows())
            .find(|&r| str_at(&b, "detail", r).is_some_and(|d| d.contains("123.342ms")))
            .unwrap();
        assert_eq!(
            str_at(&b, "detail", q).as_deref(),
            Some("query=www.domain.com (123.342ms)")
        );

        let (b, _) = tool_file("bcc/bcc__tcpconnect_example.first-f06d3b42.txt");
        // The first version printed only the last 4 bytes of IPv6 addresses.
        assert_eq!(str_at(&b, "saddr", 3).as_deref(), Some("...fe8203ac"));
        assert_eq!(num_at(&b, "family", 3), Some(6));

        let (b, _) = tool_file("bcc/bcc__oomkill_example.txt");
        assert_eq!(
            (num_at(&b, "pid", 0), str_at(&b, "comm", 0)),
            (Some(22516), Some("perl".into()))
        );
        assert_eq!(
            str_at(&b, "detail", 0).as_deref(),
            Some(
                "triggered_by_pid=3297 triggered_by_comm=ntpd pages=3850642 loadavg=0.99 0.39 0.30 3/282 22724"
            )
        );
    }

    #[test]
    fn damaged_tool_lines_are_skipped_prose_ends_the_table() {
        let input = "Tracing retransmits ... Hit Ctrl-C to end\n\
TIME     PID    IP LADDR:LPORT          T> RADDR:RPORT          STATE\n\
01:55:05 0      4  10.153.223.157:22    R> 69.53.245.40:34619   ESTABLISHED\n\
01:55:05 zero   4  10.153.223.157:22    R> 69.53.245.40:34619   ESTABLISHED\n\
01:55:06 0      4  10.153.223.157:22    R> 69.53.245.40:99999   ESTABLISHED\n\
01:55:07 0      6  [2001:db8::1]:22     R> [2001:db8::2]:40000  FIN_WAIT1\n\
This output shows three TCP retransmits, 4 of them\n\
02:00:00 this line is prose now\n";
        let (b, skipped, total) = read(
            &READER,
            input.as_bytes(),
            Origin::of("b", None, "retrans.txt"),
        )
        .unwrap();
        assert_eq!(b.num_rows(), 2);
        assert_eq!(total, 2);
        assert_eq!(skipped.iter().map(|s| s.line).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(str_at(&b, "saddr", 1).as_deref(), Some("2001:db8::1"));
        assert_eq!(num_at(&b, "family", 1), Some(6));
        assert!(read(&READER, b"nothing here\n", Origin::of("b", None, "x")).is_err());
    }

    #[test]
    fn a_comm_with_spaces_is_kept_whole() {
        let input = "PID    COMM         IP SADDR            DADDR            DPORT\n\
4496   Web Content  4  10.0.0.65        54.241.2.241     443\n";
        let (b, _) = read_ok(&READER, input, "x.txt");
        assert_eq!(str_at(&b, "comm", 0).as_deref(), Some("Web Content"));
        assert_eq!(num_at(&b, "dport", 0), Some(443));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_tool_text_never_panics(s in "(TIME     PID    IP LADDR:LPORT          T> RADDR:RPORT          STATE\n|PID COMM ARGS\n|[ -~\t\n]{0,80})*") {
            let _ = read(&READER, s.as_bytes(), Origin::of("b", None, "x"));
        }
    }
}
