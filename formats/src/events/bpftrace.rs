//! capsnap's own eBPF events, `ebpf/events.jsonl`: one JSON object per
//! event, printed by bpftrace 0.17's `printf` from the collector's probes
//! (capture/bpftrace/*.bt).
//!
//! bpftrace does not escape strings, so a quote in a comm or a newline in
//! an `sh -c` argument makes a record invalid JSON or splits it over lines.
//! Every record starts a line with `{"event":"` and its strings come last,
//! so records are read here with a tolerant reader that takes strings
//! verbatim (no escapes are ever produced) and joins continuation lines.
//!
//! `ts_ns` is bpftrace's `nsecs`; the `start` record pairs it with
//! CLOCK_REALTIME, so wall time is `realtime_ns + (ts_ns - start ts_ns)`
//! (the same pairing as `ebpf/clock.json`). `start` and `stop` are not
//! rows; `suppressed` (rate limit hit) and bpftrace's `Lost N events` are,
//! so gaps show.

use super::{Event, TABLE, address};
use crate::rows::{Reader, Rows, file_name_is, text};
use crate::tcp_state::tcp_state_of_text;

/// Reads capsnap's `ebpf/events.jsonl`.
pub(crate) const READER: Reader = Reader {
    table: &TABLE,
    what: "ebpf/events.jsonl (capsnap's bpftrace probes)",
    claims: |path, head| {
        file_name_is(path, &["events.jsonl"]) || head.starts_with(RECORD_START.as_bytes())
    },
    superseded_by: None,
    parse: parse_jsonl,
};

const RECORD_START: &str = "{\"event\":\"";
const CAPSNAP_TOOL: &str = "capsnap-bpftrace";

/// A value of a record, verbatim.
#[derive(Debug, Clone, PartialEq)]
enum JVal<'a> {
    /// A number or a literal, as printed.
    Num(&'a str),
    Str(&'a str),
    Arr(Vec<&'a str>),
}

impl JVal<'_> {
    fn text(&self) -> Option<&str> {
        match self {
            JVal::Num(s) | JVal::Str(s) => Some(s),
            JVal::Arr(_) => None,
        }
    }
}

/// True when `after` (the text after a closing quote) ends the value: the
/// end of the record, or the next `,"key":`.
fn value_ends(after: &str) -> bool {
    if after.trim() == "}" {
        return true;
    }
    let Some(rest) = after.strip_prefix(",\"") else {
        return false;
    };
    let key_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    key_len > 0 && rest.get(key_len..).is_some_and(|r| r.starts_with("\":"))
}

/// Reads one record, taking strings verbatim: a string ends at the first
/// quote that is followed by the end of the record or by the next key, so
/// the unescaped quotes and newlines bpftrace prints stay in the value.
fn parse_record(record: &str) -> Result<Vec<(&str, JVal<'_>)>, &'static str> {
    let mut rest = record.trim().strip_prefix('{').ok_or("not a JSON object")?;
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return if after.trim().is_empty() {
                Ok(out)
            } else {
                Err("text after the closing brace")
            };
        }
        let body = rest.strip_prefix('"').ok_or("expected a key")?;
        let key_end = body.find('"').ok_or("unterminated key")?;
        let key = &body[..key_end];
        rest = body[key_end + 1..]
            .trim_start()
            .strip_prefix(':')
            .ok_or("expected `:` after a key")?
            .trim_start();
        let (value, after) = if let Some(s) = rest.strip_prefix('"') {
            let end = s
                .match_indices('"')
                .map(|(i, _)| i)
                .find(|&i| value_ends(&s[i + 1..]))
                .ok_or("unterminated string")?;
            (JVal::Str(&s[..end]), &s[end + 1..])
        } else if let Some(a) = rest.strip_prefix('[') {
            let trimmed = a.trim_start();
            if let Some(after) = trimmed.strip_prefix(']') {
                (JVal::Arr(Vec::new()), after)
            } else {
                let inner = trimmed
                    .strip_prefix('"')
                    .ok_or("expected a string in an array")?;
                let end = inner
                    .match_indices("\"]")
                    .map(|(i, _)| i)
                    .find(|&i| value_ends(&inner[i + 2..]))
                    .ok_or("unterminated array")?;
                (
                    JVal::Arr(inner[..end].split("\",\"").collect()),
                    &inner[end + 2..],
                )
            }
        } else {
            let end = rest.find([',', '}']).ok_or("unterminated value")?;
            let v = rest[..end].trim();
            if v.is_empty() {
                return Err("empty value");
            }
            (JVal::Num(v), &rest[end..])
        };
        out.push((key, value));
        rest = after.trim_start();
        if let Some(a) = rest.strip_prefix(',') {
            rest = a;
        } else if !rest.starts_with('}') {
            return Err("expected `,` or `}` after a value");
        }
    }
}

/// The clock pairing of the `start` record: (ts_ns, realtime_ns).
fn start_clock(record: &[(&str, JVal<'_>)]) -> Option<(u64, u64)> {
    let get = |k: &str| {
        record
            .iter()
            .find(|(key, _)| *key == k)
            .and_then(|(_, v)| v.text())
            .and_then(|t| t.parse::<u64>().ok())
    };
    Some((get("ts_ns")?, get("realtime_ns")?))
}

/// `Lost N events`, bpftrace's notice of a full perf buffer.
fn lost_count(line: &str) -> Option<u64> {
    line.trim()
        .strip_prefix("Lost ")?
        .strip_suffix(" events")?
        .parse()
        .ok()
}

/// The records of the file: (first line number, text), continuation lines
/// joined; and the lines that are neither.
enum Item<'a> {
    Record(usize, std::borrow::Cow<'a, str>),
    Lost(u64),
    Stray(usize),
}

fn items(text: &str) -> Vec<Item<'_>> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (n, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with(RECORD_START) {
            if let Some((at, r)) = pending.take() {
                out.push(Item::Record(at, r.into()));
            }
            if parse_record(line).is_ok() {
                out.push(Item::Record(n + 1, line.into()));
            } else {
                pending = Some((n + 1, line.to_owned()));
            }
        } else if let Some(lost) = lost_count(line) {
            out.push(Item::Lost(lost));
        } else if let Some((at, r)) = pending.as_mut() {
            // The rest of a string that held a newline.
            r.push('\n');
            r.push_str(line);
            if parse_record(r).is_ok() {
                let at = *at;
                if let Some((_, r)) = pending.take() {
                    out.push(Item::Record(at, r.into()));
                }
            }
        } else if !line.trim().is_empty() {
            out.push(Item::Stray(n + 1));
        }
    }
    if let Some((at, r)) = pending {
        out.push(Item::Record(at, r.into()));
    }
    out
}

fn parse_jsonl(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let text = text(input);
    let items = items(&text);
    if !items.is_empty() && !items.iter().any(|i| matches!(i, Item::Record(..))) {
        return Err("no `{\"event\":\"...` record: not capsnap's events.jsonl".into());
    }
    let clock = items.iter().find_map(|i| match i {
        Item::Record(_, r) if r.starts_with("{\"event\":\"start\"") => {
            parse_record(r).ok().and_then(|rec| start_clock(&rec))
        }
        _ => None,
    });
    for item in &items {
        match item {
            Item::Stray(n) => rows.skip(*n, "not an event record"),
            Item::Lost(count) => Event {
                event: "lost".into(),
                tool: CAPSNAP_TOOL.into(),
                detail: vec![format!("count={count}")],
                ..Event::default()
            }
            .push(rows),
            Item::Record(n, r) => match parse_record(r) {
                Err(why) => rows.skip(*n, format!("damaged record: {why}")),
                Ok(record) => match capsnap_event(&record, clock) {
                    Ok(Some(e)) => e.push(rows),
                    Ok(None) => {}
                    Err(why) => rows.skip(*n, why),
                },
            },
        }
    }
    Ok(())
}

/// One record as a row; `None` for the start and stop markers.
fn capsnap_event(
    record: &[(&str, JVal<'_>)],
    clock: Option<(u64, u64)>,
) -> Result<Option<Event>, String> {
    let mut e = Event {
        tool: CAPSNAP_TOOL.into(),
        ..Event::default()
    };
    let mut argc = None;
    let mut argv: Option<&[&str]> = None;
    let mut reason_code = None;
    for (key, value) in record {
        let bad = || format!("`{key}` has an unexpected value {value:?}");
        if let JVal::Arr(items) = value {
            match *key {
                "argv" => argv = Some(items),
                _ => e.detail.push(format!("{key}={}", items.join(","))),
            }
            continue;
        }
        let text = value.text().unwrap_or("");
        let num = || text.parse::<u64>().map_err(|_| bad());
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        match *key {
            "event" => e.event = text.to_owned(),
            "ts_ns" => e.ktime_ns = Some(num()?),
            "pid" => e.pid = Some(num()?),
            "ppid" => e.ppid = Some(num()?),
            "uid" => e.uid = Some(num()?),
            "old_pid" => {
                // Differs from pid when a thread other than the leader exec'd.
                if Some(num()?) != e.pid {
                    e.detail.push(format!("old_pid={text}"));
                }
            }
            "netns" => e.netns_inode = Some(num()?),
            "family" => {
                e.family = match text {
                    "ipv4" | "4" | "2" => Some(4),
                    "ipv6" | "6" | "10" => Some(6),
                    _ => return Err(bad()),
                }
            }
            "saddr" => e.saddr = opt(text).map(|a| address(&a)),
            "daddr" => e.daddr = opt(text).map(|a| address(&a)),
            "sport" => e.sport = Some(u16::try_from(num()?).map_err(|_| bad())?),
            "dport" => e.dport = Some(u16::try_from(num()?).map_err(|_| bad())?),
            "state" => e.state = tcp_state_of_text(text),
            "oldstate" => e.old_state = tcp_state_of_text(text),
            "newstate" => e.new_state = tcp_state_of_text(text),
            // "0": no socket (a RST sent for a segment no socket matched).
            "sk" => e.sk = opt(text).filter(|s| s != "0"),
            "comm" => e.comm = opt(text),
            "pcomm" => e.pcomm = opt(text),
            "filename" => e.filename = opt(text),
            "argc" => argc = Some(num()?),
            "reason" => reason_code = Some(text.to_owned()),
            "reason_name" => e.reason = opt(text),
            "location" => e.stack = opt(text).into_iter().collect(),
            "ret" => e.ret = Some(text.parse().map_err(|_| bad())?),
            "ifindex" | "ip_proto" | "kind" | "count" | "capsnap_pid" | "schema" | "ethertype" => {
                e.detail.push(format!("{key}={text}"))
            }
            "realtime_ns" | "monotonic_ns" | "boottime_ns" => {}
            _ => e.detail.push(format!("{key}={text}")),
        }
    }
    match e.event.as_str() {
        "start" | "stop" => return Ok(None),
        "" => return Err("record without an event kind".into()),
        _ => {}
    }
    if let Some(code) = reason_code {
        if e.reason.is_none() {
            e.reason = Some(code.clone());
        }
        e.detail.push(format!("reason_code={code}"));
    }
    if let Some(items) = argv {
        // Entries past argc are printed as "".
        let shown = argc.map_or(items.len(), |n| {
            usize::try_from(n).unwrap_or(usize::MAX).min(items.len())
        });
        let args = items.get(..shown).unwrap_or(items);
        e.argv = Some(args.join(" "));
        if let Some(n) = argc
            && n > shown as u64
        {
            e.detail.push(format!("argc={n}"));
        }
    }
    if let (Some((start_ts, realtime)), Some(ts)) = (clock, e.ktime_ns) {
        let wall = i128::from(realtime) + i128::from(ts) - i128::from(start_ts);
        e.ts = i64::try_from(wall).ok();
    }
    Ok(Some(e))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{num_at, read_ok, str_at, strs};
    use super::*;
    use crate::rows::{Origin, read};

    /// Records from a capsnap bundle taken on a NAT lab (client netns
    /// 4026532389 -> gateway -> server netns 4026532528), cut to one of each
    /// kind. The exec of `sh -c 'echo "quoted \ back"<newline>echo second
    /// line'` is printed unescaped over two lines, as bpftrace 0.17 does.
    const JSONL: &str = r#"{"event":"exec","ts_ns":8786499176982,"pid":5262,"old_pid":5262,"ppid":5183,"uid":0,"netns":4026531833,"argc":2,"comm":"bpftrace","pcomm":"capsnap","filename":"/usr/bin/bpftrace","argv":["/usr/bin/bpftrace","--version","",""]}
{"event":"start","ts_ns":8786444019591,"realtime_ns":1795299913979477311,"monotonic_ns":8786443993873,"boottime_ns":8786443993903,"schema":1,"capsnap_pid":5183}
{"event":"tcp_state","ts_ns":8786837055447,"pid":5109,"netns":4026532389,"family":"ipv4","saddr":"10.77.1.2","sport":0,"daddr":"10.77.1.1","dport":8080,"oldstate":"CLOSE","newstate":"SYN_SENT","sk":"ffff88845b109280","comm":"python3"}
{"event":"connect","ts_ns":8786837068837,"pid":5109,"netns":4026532389,"family":"ipv4","saddr":"10.77.1.2","sport":0,"daddr":"10.77.1.1","dport":8080,"sk":"ffff88845b109280","comm":"python3"}
{"event":"reset_received","ts_ns":8786840821919,"pid":5109,"netns":4026532528,"family":"ipv6","saddr":"fd77:2::2","sport":80,"daddr":"fd77:1::2","dport":58578,"state":"ESTABLISHED","sk":"ffff8881060b6180","comm":"python3"}
{"event":"reset_sent","ts_ns":8786840315057,"pid":5109,"netns":4026532528,"family":"ipv4","saddr":"10.77.2.2","sport":81,"daddr":"10.77.2.1","dport":50024,"state":"","reason":1,"reason_name":"NO_SOCKET","sk":"0","comm":"python3"}
{"event":"drop","ts_ns":8786840325913,"netns":4026532528,"ifindex":7,"reason":3,"reason_name":"NO_SOCKET","location":"tcp_v4_rcv","family":"ipv4","ip_proto":6,"saddr":"10.77.2.1","sport":50024,"daddr":"10.77.2.2","dport":81}
{"event":"retransmit","ts_ns":8789055855086,"netns":4026532177,"family":"ipv4","saddr":"172.30.53.2","sport":41234,"daddr":"10.99.53.2","dport":7777,"state":"ESTABLISHED","sk":"ffff88847d5a1280"}
{"event":"exec","ts_ns":8786841409462,"pid":5301,"old_pid":5301,"ppid":5109,"uid":0,"netns":4026532389,"argc":3,"comm":"sh","pcomm":"python3","filename":"/usr/bin/sh","argv":["sh","-c","echo "quoted \ back"
echo second line",""]}
Lost 7 events
{"event":"suppressed","ts_ns":8789405654525,"kind":"drop","count":2655}
{"event":"stop","ts_ns":8792216980147}
"#;

    #[test]
    fn capsnap_events_every_kind() {
        let (b, skipped) = read_ok(&READER, JSONL, "ebpf/events.jsonl");
        assert_eq!(skipped, 0);
        let kinds: Vec<_> = strs(&b, "event").into_iter().flatten().collect();
        assert_eq!(
            kinds,
            [
                "exec",
                "tcp_state",
                "connect",
                "reset_received",
                "reset_sent",
                "drop",
                "retransmit",
                "exec",
                "lost",
                "suppressed"
            ]
        );
        assert!(
            strs(&b, "tool")
                .iter()
                .all(|t| t.as_deref() == Some("capsnap-bpftrace"))
        );
        // Wall clock from the start record, even for a line printed before it.
        assert_eq!(
            num_at(&b, "ts", 1),
            Some(1795299913979477311 + (8786837055447 - 8786444019591))
        );
        assert_eq!(
            num_at(&b, "ts", 0),
            Some(1795299913979477311 - (8786444019591 - 8786499176982))
        );
        assert_eq!(num_at(&b, "ktime_ns", 1), Some(8786837055447));
        assert_eq!(
            str_at(&b, "argv", 0).as_deref(),
            Some("/usr/bin/bpftrace --version")
        );
        assert_eq!(str_at(&b, "pcomm", 0).as_deref(), Some("capsnap"));
        assert_eq!(num_at(&b, "ppid", 0), Some(5183));
        assert_eq!(num_at(&b, "netns_inode", 1), Some(4026532389));
        assert_eq!(
            (str_at(&b, "old_state", 1), str_at(&b, "new_state", 1)),
            (Some("CLOSE".into()), Some("SYN_SENT".into()))
        );
        assert_eq!(num_at(&b, "family", 3), Some(6));
        assert_eq!(str_at(&b, "saddr", 3).as_deref(), Some("fd77:2::2"));
        assert_eq!(str_at(&b, "state", 3).as_deref(), Some("ESTABLISHED"));
        // A RST for no socket: no state, no sk.
        assert_eq!((str_at(&b, "state", 4), str_at(&b, "sk", 4)), (None, None));
        assert_eq!(str_at(&b, "reason", 4).as_deref(), Some("NO_SOCKET"));
        assert_eq!(str_at(&b, "detail", 4).as_deref(), Some("reason_code=1"));
        assert_eq!(str_at(&b, "stack", 5).as_deref(), Some("tcp_v4_rcv"));
        assert_eq!(
            str_at(&b, "detail", 5).as_deref(),
            Some("ifindex=7 ip_proto=6 reason_code=3")
        );
        assert_eq!(num_at(&b, "dport", 5), Some(81));
        assert_eq!(num_at(&b, "pid", 6), None);
        // The unescaped record keeps its quote, backslash and newline.
        assert_eq!(
            str_at(&b, "argv", 7).as_deref(),
            Some("sh -c echo \"quoted \\ back\"\necho second line")
        );
        assert_eq!(str_at(&b, "detail", 8).as_deref(), Some("count=7"));
        assert_eq!(
            str_at(&b, "detail", 9).as_deref(),
            Some("kind=drop count=2655")
        );
    }

    #[test]
    fn the_bundle_sample_reads_whole() {
        // ebpf/events.jsonl of a real bundle, head and tail.
        let input = r#"{"event":"start","ts_ns":8400883878679,"realtime_ns":1795299528419358902,"monotonic_ns":8400883875223,"boottime_ns":8400883875374,"schema":1,"capsnap_pid":26828}
{"event":"exec","ts_ns":8400981530546,"pid":26859,"old_pid":26859,"ppid":26828,"uid":0,"netns":4026531833,"argc":4,"comm":"ip","pcomm":"capsnap","filename":"/usr/sbin/ip","argv":["ip","-d","-s","addr"]}
{"event":"exec","ts_ns":8400993415702,"pid":26861,"old_pid":26861,"ppid":26828,"uid":0,"netns":4026531833,"argc":5,"comm":"ip","pcomm":"capsnap","filename":"/usr/sbin/ip","argv":["ip","route","show","table"]}
{"event":"stop","ts_ns":8404569309986}
"#;
        let (b, skipped) = read_ok(&READER, input, "ebpf/events.jsonl");
        assert_eq!((b.num_rows(), skipped), (2, 0));
        // 2026-11-21T22:18:48.517Z
        assert_eq!(num_at(&b, "ts", 0), Some(1795299528419358902 + 97651867));
        assert_eq!(
            str_at(&b, "argv", 1).as_deref(),
            Some("ip route show table")
        );
        assert_eq!(str_at(&b, "detail", 1).as_deref(), Some("argc=5"));
    }

    #[test]
    fn damaged_records_are_skipped_and_the_rest_kept() {
        let input = "{\"event\":\"exec\",\"ts_ns\":1,\"pid\":\"x\"}\nwhat is this\n{\"event\":\"drop\",\"ts_ns\":2}\n{\"event\":\"tcp_state\",\"ts_ns\":3,\"sport\":70000}\n{\"event\":\"exec\",\"ts_ns\":4,\"comm\":\"a\n";
        let (b, skipped, total) = read(
            &READER,
            input.as_bytes(),
            Origin::of("b", None, "ebpf/events.jsonl"),
        )
        .unwrap();
        assert_eq!(b.num_rows(), 1);
        assert_eq!(total, 4);
        assert_eq!(
            skipped.iter().map(|s| s.line).collect::<Vec<_>>(),
            [1, 2, 4, 5]
        );
        // No start record: no wall clock.
        assert_eq!(num_at(&b, "ts", 0), None);
        assert!(read(&READER, b"hello\n", Origin::of("b", None, "events.jsonl")).is_err());
        let (b, _, _) = read(&READER, b"", Origin::of("b", None, "ebpf/events.jsonl")).unwrap();
        assert_eq!(b.num_rows(), 0);
    }

    #[test]
    fn tolerant_record_reader() {
        type Fields<'a> = Vec<(&'a str, JVal<'a>)>;
        let cases: &[(&str, Option<Fields>)] = &[
            (
                r#"{"a":1,"b":"x"}"#,
                Some(vec![("a", JVal::Num("1")), ("b", JVal::Str("x"))]),
            ),
            (
                r#"{"c":"say "hi", ok","d":2}"#,
                Some(vec![
                    ("c", JVal::Str("say \"hi\", ok")),
                    ("d", JVal::Num("2")),
                ]),
            ),
            (
                r#"{"v":["a","b"],"w":[]}"#,
                Some(vec![
                    ("v", JVal::Arr(vec!["a", "b"])),
                    ("w", JVal::Arr(vec![])),
                ]),
            ),
            (
                r#"{"v":["a"]"]}"#,
                Some(vec![("v", JVal::Arr(vec!["a\"]"]))]),
            ),
            (r#"{"a":1"#, None),
            (r#"{"a":}"#, None),
            (r#"{"a":"x"} tail"#, None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_record(text).ok(), *want, "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_jsonl_never_panics(s in "[ -~\n\"{}\\[\\]:,]{0,300}") {
            let _ = read(&READER, s.as_bytes(), Origin::of("b", None, "ebpf/events.jsonl"));
        }

        #[test]
        fn every_prefix_of_the_sample_never_panics(cut in 0usize..3000) {
            let cut = cut.min(JSONL.len());
            if JSONL.is_char_boundary(cut) {
                let _ = read(&READER, &JSONL.as_bytes()[..cut], Origin::of("b", None, "ebpf/events.jsonl"));
            }
        }
    }
}
