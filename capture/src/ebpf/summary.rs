//! What the events file holds, counted into `summary.json` when the
//! session stops: events by kind, lines lost, suppressed, unescaped or
//! not events at all.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
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
}

/// Every line bpftrace prints for an event starts with this.
const RECORD_START: &[u8] = b"{\"event\":\"";

/// What the events file is made of.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Item<'a> {
    /// One event: a line starting with [`RECORD_START`], joined with the
    /// lines after it when a string in it held a newline (then the record
    /// holds that newline raw and is not valid JSON).
    Record(&'a [u8]),
    /// `Lost N events`: bpftrace's notice of a perf buffer overflow.
    Lost(u64),
    /// A line that belongs to no event.
    Stray(&'a [u8]),
}

/// Reads the events file item by item, without loading it whole.
pub(super) fn for_each_item(path: &Path, mut f: impl FnMut(Item<'_>)) -> io::Result<()> {
    let is_json = |r: &[u8]| serde_json::from_slice::<serde::de::IgnoredAny>(r).is_ok();
    let mut reader = BufReader::new(File::open(path)?);
    // A record that is not JSON yet: the lines after it may complete it.
    let mut pending: Option<Vec<u8>> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if text.starts_with(RECORD_START) {
            if let Some(r) = pending.take() {
                f(Item::Record(&r));
            }
            if is_json(text) {
                f(Item::Record(text));
            } else {
                pending = Some(text.to_vec());
            }
        } else if let Some(n) = text
            .strip_prefix(b"Lost ")
            .and_then(|r| r.strip_suffix(b" events"))
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(|n| n.parse::<u64>().ok())
        {
            f(Item::Lost(n));
        } else if let Some(r) = pending.as_mut() {
            // The rest of a string that held a newline.
            r.push(b'\n');
            r.extend_from_slice(text);
            if is_json(r) {
                f(Item::Record(r));
                pending = None;
            }
        } else if !text.trim_ascii().is_empty() {
            f(Item::Stray(text));
        }
    }
    if let Some(r) = pending {
        f(Item::Record(&r));
    }
    Ok(())
}

/// The event kind of a record, read from its start when it is not JSON.
fn record_kind(record: &[u8]) -> Option<&str> {
    let rest = record.strip_prefix(RECORD_START)?;
    let end = rest.iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&rest[..end]).ok()
}

pub(super) fn count_events(path: &Path) -> io::Result<Summary> {
    let mut summary = Summary::default();
    for_each_item(path, |item| match item {
        Item::Lost(n) => summary.lost += n,
        Item::Stray(_) => summary.unparsed += 1,
        Item::Record(r) => {
            let value: Option<serde_json::Value> = serde_json::from_slice(r).ok();
            if value.is_none() {
                summary.unescaped += 1;
            }
            let field = |k: &str| value.as_ref().and_then(|v| v.get(k));
            match record_kind(r).unwrap_or("?") {
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
                Item::Record(r) => String::from_utf8_lossy(r).into_owned(),
                Item::Lost(n) => format!("lost {n}"),
                Item::Stray(l) => format!("stray {}", String::from_utf8_lossy(l)),
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
        assert_eq!(record_kind(items[3].as_bytes()), Some("exec"));

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
