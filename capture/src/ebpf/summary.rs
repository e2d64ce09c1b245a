//! What the events file holds, counted into `summary.json` when the
//! session stops: events by kind, lines lost, suppressed, unescaped or
//! not events at all.

pub(super) use formats::bpftrace::{self, Item};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// `summary.json`: what the events file holds.
#[derive(Debug, Default, Serialize)]
pub(super) struct Summary {
    /// Event lines by kind (`start`, `stop` and `suppressed` not included).
    pub(super) events: BTreeMap<String, u64>,
    pub(super) total: u64,
    /// Events the rate limits left out, by counter.
    pub(super) suppressed: BTreeMap<String, u64>,
    /// Events bpftrace reported lost (`Lost N events`).
    pub(super) lost: u64,
    /// Events whose strings (comm, file names, argv) hold a quote, a
    /// backslash or a newline, which bpftrace 0.17 prints unescaped: the
    /// record is not valid JSON, but its fields are in the fixed order of
    /// its probe file, so a reader can still take it apart.
    pub(super) unescaped: u64,
    /// Non-blank lines that belong to no event.
    pub(super) unparsed: u64,
    pub(super) started: bool,
    pub(super) stopped: bool,
    /// How bpftrace ended.
    pub(super) exit: String,
    /// Probes left out on this kernel, and why.
    pub(super) omitted: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) mounted_tracefs: Option<String>,
    /// Which path ran the probes (and why not CO-RE): the manifest's
    /// `ebpf` is read from here.
    pub(super) path: formats::bundle::EbpfPath,
}

/// Reads the events file item by item with the shared record joiner,
/// without loading it whole.
pub(super) fn for_each_item(path: &Path, f: impl FnMut(Item<'_>)) -> io::Result<()> {
    bpftrace::read_records(BufReader::new(File::open(path)?), f)
}

pub(super) fn count_events(path: &Path) -> io::Result<Summary> {
    let mut summary = Summary::default();
    for_each_item(path, |item| match item {
        Item::Lost { count, .. } => summary.lost += count,
        Item::Stray { .. } => summary.unparsed += 1,
        Item::Record { bytes: r, .. } => {
            let value: Option<serde_json::Value> = serde_json::from_slice(&r).ok();
            if value.is_none() {
                summary.unescaped += 1;
            }
            let field = |k: &str| value.as_ref().and_then(|v| v.get(k));
            match bpftrace::event_kind(&r).unwrap_or("?") {
                "start" => summary.started = true,
                "stop" => summary.stopped = true,
                "suppressed" => {
                    let kind = field("kind").and_then(|k| k.as_str()).unwrap_or("?");
                    let n = field("count").and_then(|n| n.as_u64()).unwrap_or(0);
                    *summary.suppressed.entry(kind.to_string()).or_default() += n;
                }
                other => {
                    *summary.events.entry(other.to_string()).or_default() += 1;
                    summary.total += 1;
                }
            }
        }
    })?;
    Ok(summary)
}

pub(super) fn kinds_text(events: &BTreeMap<String, u64>) -> String {
    if events.is_empty() {
        return "none".to_string();
    }
    events
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Cuts the run of empty lines bpftrace leaves at the end of the file,
/// keeping the newline of the last line.
pub(super) fn trim_trailing_newlines(path: &Path) -> io::Result<()> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let len = f.metadata()?.len();
    let tail_len = len.min(64 * 1024);
    f.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    f.read_to_end(&mut tail)?;
    let keep = match tail.iter().rposition(|&b| b != b'\n') {
        Some(last) => len - tail_len + last as u64 + 2,
        None if tail_len == len => 0,
        None => return Ok(()),
    };
    if keep < len {
        f.set_len(keep)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::EVENTS_FILE;
    use super::*;
    use std::fs;

    #[test]
    fn counting_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(EVENTS_FILE);
        fs::write(
            &path,
            "{\"event\":\"start\",\"ts_ns\":1}\n\
             {\"event\":\"exec\",\"ts_ns\":2,\"comm\":\"a\"}\n\
             Lost 7 events\n\
             {\"event\":\"exec\",\"ts_ns\":3,\"comm\":\"say \"hi\"\"}\n\
             {\"event\":\"exec\",\"ts_ns\":4,\"argv\":[\"sh\",\"-c\",\"a\n\nb\",\"\"]}\n\
             {\"event\":\"drop\",\"ts_ns\":5}\n\
             \n\
             what is this\n\
             {\"event\":\"suppressed\",\"ts_ns\":6,\"kind\":\"drop\",\"count\":12}\n\
             {\"event\":\"stop\",\"ts_ns\":7}\n\n\n\n",
        )
        .expect("write");
        trim_trailing_newlines(&path).expect("trim");
        let text = fs::read_to_string(&path).expect("read");
        assert!(
            text.ends_with("{\"event\":\"stop\",\"ts_ns\":7}\n"),
            "{text:?}"
        );

        let mut items = Vec::new();
        for_each_item(&path, |item| {
            items.push(match item {
                Item::Record { bytes, .. } => String::from_utf8_lossy(&bytes).into_owned(),
                Item::Lost { count, .. } => format!("lost {count}"),
                Item::Stray { bytes, .. } => format!("stray {}", String::from_utf8_lossy(bytes)),
            })
        })
        .expect("items");
        assert_eq!(items.len(), 9, "{items:#?}");
        assert_eq!(items[2], "lost 7");
        assert_eq!(
            items[4],
            "{\"event\":\"exec\",\"ts_ns\":4,\"argv\":[\"sh\",\"-c\",\"a\n\nb\",\"\"]}"
        );
        assert_eq!(items[6], "stray what is this");
        assert_eq!(bpftrace::event_kind(items[3].as_bytes()), Some("exec"));

        let s = count_events(&path).expect("count");
        assert_eq!(s.total, 4);
        assert_eq!(s.events.get("exec"), Some(&3));
        assert_eq!(s.events.get("drop"), Some(&1));
        assert_eq!(s.lost, 7);
        assert_eq!(s.unescaped, 2, "quotes in comm, newlines in argv");
        assert_eq!(s.unparsed, 1, "the stray line");
        assert_eq!(s.suppressed.get("drop"), Some(&12));
        assert!(s.started && s.stopped);

        // Only blank lines: all cut. Nothing to cut: untouched.
        fs::write(&path, "\n\n").expect("write");
        trim_trailing_newlines(&path).expect("trim");
        assert_eq!(fs::read(&path).expect("read"), b"");
        fs::write(&path, "{}\n").expect("write");
        trim_trailing_newlines(&path).expect("trim");
        assert_eq!(fs::read(&path).expect("read"), b"{}\n");
    }
}
