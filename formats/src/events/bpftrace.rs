//! capsnap's own eBPF events, `ebpf/events.jsonl`: one JSON object per
//! event, printed by bpftrace 0.17's `printf` from the collector's probes
//! (capture/bpftrace/*.bt), and the record joiner the collector shares.
//!
//! bpftrace does not escape strings, so a quote in a comm or a newline in
//! an `sh -c` argument makes a record invalid JSON or splits it over lines.
//! Every record starts a line with [`RECORD_START`] and its strings come
//! last, so records are read here with a tolerant reader that takes strings
//! verbatim (no escapes are ever produced), and [`Records`] joins the lines
//! of a record that a newline split. The joiner checks a growing record by
//! reading on from where the last check stopped, never from its start, and
//! gives a record up once it is longer than any probe prints
//! ([`MAX_RECORD`]), so it is linear in the file on any input and holds one
//! record at most: the collector runs it over the file it wrote, line by
//! line ([`read_records`]), and this crate over the bytes of a bundle's
//! file ([`records`]).
//!
//! `ts_ns` is bpftrace's `nsecs`; the `start` record pairs it with
//! CLOCK_REALTIME, so wall time is `realtime_ns + (ts_ns - start ts_ns)`
//! (the same pairing as `ebpf/clock.json`). `start` and `stop` are not
//! rows; `suppressed` (rate limit hit) and bpftrace's `Lost N events` are,
//! so gaps show.

use super::{Event, TABLE, address};
use crate::rows::{Reader, Rows, file_name_is, text};
use crate::tcp_state::tcp_state_of_text;
use std::borrow::Cow;
use std::io::{self, BufRead};
use std::ops::Range;

/// Every record the probes print starts a line with this.
pub const RECORD_START: &[u8] = b"{\"event\":\"";

/// The string size the collector gives bpftrace (`BPFTRACE_STRLEN`):
/// strings are cut at one byte less, and `exec.bt` is sized for it (its
/// printf record is built on the 512-byte BPF stack).
pub const STRLEN: usize = 64;

/// Bytes a record may take, its continuation lines joined. The longest
/// record the probes print is `exec`'s: about 230 bytes of names and
/// numbers and six strings (comm, pcomm, filename, argv[0..3]) of at most
/// [`STRLEN`] - 1 bytes, some 600 bytes in all. A record still unfinished
/// past this was not printed by a probe: it is given up, its later lines
/// are counted in it but not kept. As each line adds at least its newline,
/// this also bounds the lines of a record.
pub const MAX_RECORD: usize = 4096;

/// The tool name capsnap's rows carry.
const CAPSNAP_TOOL: &str = "capsnap-bpftrace";

/// Reads capsnap's `ebpf/events.jsonl`.
pub(crate) const READER: Reader = Reader {
    table: &TABLE,
    what: "ebpf/events.jsonl (capsnap's bpftrace probes)",
    claims: |path, head| file_name_is(path, &["events.jsonl"]) || head.starts_with(RECORD_START),
    superseded_by: &[],
    parse: parse_jsonl,
};

// ---------------------------------------------------------------------------
// Joining lines into records

/// What a line, or the lines of one record, of the events file are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item<'a> {
    /// One event record, from `line` (1-based), where it starts: the line
    /// itself, or joined by `\n` with the lines after it when a string in
    /// it held a newline (then the record holds that newline raw and is not
    /// valid JSON). A record given up past [`MAX_RECORD`] holds what was
    /// kept of it.
    Record { line: usize, bytes: Cow<'a, [u8]> },
    /// `Lost N events`: bpftrace's notice that the perf buffer was full.
    Lost { line: usize, count: u64 },
    /// A line that is not blank and belongs to no record.
    Stray { line: usize, bytes: &'a [u8] },
}

/// The items of a whole events file held in memory; see [`read_records`]
/// for one read line by line.
pub fn records(input: &[u8]) -> Records<'_> {
    Records {
        rest: input,
        joiner: Joiner::default(),
        queued: None,
        finished: false,
    }
}

/// Reads the items of an events file line by line from `input`, calling
/// `f` with each: only the current line and the record being joined are
/// held in memory.
pub fn read_records(mut input: impl BufRead, mut f: impl FnMut(Item<'_>)) -> io::Result<()> {
    let mut joiner = Joiner::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        for item in joiner.push(text).into_iter().flatten() {
            f(item);
        }
    }
    if let Some(item) = joiner.finish() {
        f(item);
    }
    Ok(())
}

/// The event kind of a record (`exec`, `start` ...), read from its start,
/// so that it is known even when the record is not JSON.
pub fn event_kind(record: &[u8]) -> Option<&str> {
    let rest = record.strip_prefix(RECORD_START)?;
    let end = rest.iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// Iterator over the items of an events file held in memory ([`records`]).
pub struct Records<'a> {
    rest: &'a [u8],
    joiner: Joiner,
    /// A line can end one record and be another.
    queued: Option<Item<'a>>,
    finished: bool,
}

impl<'a> Iterator for Records<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        loop {
            if let Some(item) = self.queued.take() {
                return Some(item);
            }
            if self.rest.is_empty() {
                if self.finished {
                    return None;
                }
                self.finished = true;
                return self.joiner.finish();
            }
            // Lines as `BufRead::read_until` gives them: a newline at the
            // end of the input ends the last line, it starts no other.
            let (line, rest) = match self.rest.iter().position(|&b| b == b'\n') {
                Some(at) => (&self.rest[..at], &self.rest[at + 1..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            let [first, second] = self.joiner.push(line);
            self.queued = second;
            if first.is_some() {
                return first;
            }
        }
    }
}

/// The record being joined.
#[derive(Debug)]
struct Pending {
    /// The line it starts on.
    line: usize,
    /// The record so far, lines joined by `\n`.
    bytes: Vec<u8>,
    /// The check of the record so far: later lines resume it.
    parser: Parser,
    /// False once no text after it can make it a record: later lines are
    /// kept in it but not checked.
    readable: bool,
    /// True once it reached [`MAX_RECORD`]: later lines are counted in it,
    /// not kept.
    full: bool,
}

/// Joins lines into records, one line at a time; [`Records`] and
/// [`read_records`] feed it.
#[derive(Debug, Default)]
struct Joiner {
    /// Lines pushed so far.
    line: usize,
    pending: Option<Pending>,
    /// Bytes the checks of growing records looked at, to test that joining
    /// is linear in the input.
    checked: u64,
}

impl Joiner {
    /// Takes the next line (without its `\n`): what it ends, and what it is.
    fn push<'a>(&mut self, line: &'a [u8]) -> [Option<Item<'a>>; 2] {
        self.line += 1;
        let n = self.line;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(RECORD_START) {
            let ended = self.finish();
            let trimmed = trim_ws(line);
            let mut parser = Parser::default();
            self.checked += trimmed.len() as u64;
            let this = match parser.run(trimmed, &mut |_, _| {}) {
                Progress::Done => Some(Item::Record {
                    line: n,
                    bytes: Cow::Borrowed(line),
                }),
                progress => {
                    self.pending = Some(Pending {
                        line: n,
                        bytes: line.to_vec(),
                        parser,
                        readable: matches!(progress, Progress::More(_)),
                        full: line.len() >= MAX_RECORD,
                    });
                    None
                }
            };
            return [ended, this];
        }
        if let Some(count) = lost_count(line) {
            return [Some(Item::Lost { line: n, count }), None];
        }
        if let Some(p) = &mut self.pending {
            // The rest of a string that held a newline.
            if p.full || p.bytes.len() + 1 + line.len() > MAX_RECORD {
                p.full = true;
                return [None, None];
            }
            p.bytes.push(b'\n');
            let start = p.bytes.len();
            p.bytes.extend_from_slice(line);
            // A line of whitespace leaves the record's text as it was.
            if !p.readable || ws_len(line) == line.len() {
                return [None, None];
            }
            let trimmed = &p.bytes[..start + trim_end_ws(line).len()];
            self.checked += trimmed.len().saturating_sub(p.parser.at) as u64;
            match p.parser.run(trimmed, &mut |_, _| {}) {
                Progress::Done => return [self.finish(), None],
                Progress::More(_) => {}
                Progress::Broken(_) => p.readable = false,
            }
            return [None, None];
        }
        if ws_len(line) == line.len() {
            return [None, None];
        }
        [
            Some(Item::Stray {
                line: n,
                bytes: line,
            }),
            None,
        ]
    }

    /// The record being joined, as it is.
    fn finish(&mut self) -> Option<Item<'static>> {
        self.pending.take().map(|p| Item::Record {
            line: p.line,
            bytes: Cow::Owned(p.bytes),
        })
    }
}

/// `Lost N events`, bpftrace's notice of a full perf buffer.
fn lost_count(line: &[u8]) -> Option<u64> {
    std::str::from_utf8(trim_ws(line))
        .ok()?
        .strip_prefix("Lost ")?
        .strip_suffix(" events")?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------
// The tolerant record reader

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

/// Reads one record, taking strings verbatim: a string ends at the first
/// quote that is followed by the end of the record or by the next key, so
/// the unescaped quotes and newlines bpftrace prints stay in the value.
fn parse_record(record: &str) -> Result<Vec<(&str, JVal<'_>)>, &'static str> {
    let t = record.trim();
    // The parser cuts at ASCII delimiters and whole whitespace characters,
    // so every range falls on character boundaries.
    let at = |r: Range<usize>| t.get(r).unwrap_or_default();
    let mut fields = Vec::new();
    let progress = Parser::default().run(t.as_bytes(), &mut |key, value| {
        let value = match value {
            Value::Num(r) => JVal::Num(at(r)),
            Value::Str(r) => JVal::Str(at(r)),
            Value::Arr(None) => JVal::Arr(Vec::new()),
            Value::Arr(Some(r)) => JVal::Arr(at(r).split("\",\"").collect()),
        };
        fields.push((at(key), value));
    });
    match progress {
        Progress::Done => Ok(fields),
        Progress::More(why) | Progress::Broken(why) => Err(why),
    }
}

/// A value the parser read, by its byte range in the record: for an array
/// of strings, from after its first quote to before its last (`None` for
/// `[]`).
#[derive(Debug)]
enum Value {
    Num(Range<usize>),
    Str(Range<usize>),
    Arr(Option<Range<usize>>),
}

/// How far a record reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// The record is complete where the text ends.
    Done,
    /// Not complete, but more text may complete it; why it is not.
    More(&'static str),
    /// No text after it can make it a record; why.
    Broken(&'static str),
}

/// Where the reading of a record stands, between two [`Parser::run`]s.
#[derive(Debug, Clone, Copy, Default)]
enum State {
    /// Before the `{`.
    #[default]
    Open,
    /// Before a key or the closing `}`.
    Field,
    /// In a key that starts at `start` (after its quote).
    Key { start: usize },
    /// Before the `:` after the key at `key`.
    Colon { key: (usize, usize) },
    /// Before a value.
    Value { key: (usize, usize) },
    /// In a string value that starts at `start`.
    Str { key: (usize, usize), start: usize },
    /// After the `[` of an array value.
    ArrOpen { key: (usize, usize) },
    /// In an array of strings whose first string starts at `start`.
    Arr { key: (usize, usize), start: usize },
    /// In a number or literal that starts at `start`.
    Num { key: (usize, usize), start: usize },
    /// After a value: `,` or `}`.
    After,
    /// After the closing `}`: only the end may follow.
    Close,
}

/// The tolerant reader, resumable: [`Parser::run`] reads on from where its
/// last call stopped. Everything it decided before that point holds
/// whatever text is added after: a decision that depends on what follows
/// the end stops the run there instead (a quote followed by nothing, by
/// whitespace or by the start of a `,"key":`). So checking a record after
/// each of its lines costs each byte a constant number of looks.
#[derive(Debug, Clone, Copy, Default)]
struct Parser {
    /// Offset in the record where the next run starts.
    at: usize,
    state: State,
}

impl Parser {
    /// Reads on in `t`, the record so far without surrounding whitespace
    /// (only ever longer than at the last call, by text added at its end),
    /// handing each field read to `field` as (key range, value).
    fn run(&mut self, t: &[u8], field: &mut impl FnMut(Range<usize>, Value)) -> Progress {
        use Progress::{Broken, Done, More};
        self.at = self.at.min(t.len());
        loop {
            let rest = &t[self.at..];
            match self.state {
                State::Open => {
                    if rest.first() != Some(&b'{') {
                        return if rest.is_empty() {
                            More("not a JSON object")
                        } else {
                            Broken("not a JSON object")
                        };
                    }
                    self.at += 1;
                    self.state = State::Field;
                }
                State::Field => {
                    self.at += ws_len(rest);
                    match t.get(self.at) {
                        None => return More("expected a key"),
                        Some(b'}') => {
                            self.at += 1;
                            self.state = State::Close;
                        }
                        Some(b'"') => {
                            self.at += 1;
                            self.state = State::Key { start: self.at };
                        }
                        Some(_) => return Broken("expected a key"),
                    }
                }
                State::Key { start } => match find(rest, b'"') {
                    None => {
                        self.at = t.len();
                        return More("unterminated key");
                    }
                    Some(i) => {
                        self.at += i + 1;
                        self.state = State::Colon {
                            key: (start, self.at - 1),
                        };
                    }
                },
                State::Colon { key } => {
                    self.at += ws_len(rest);
                    match t.get(self.at) {
                        None => return More("expected `:` after a key"),
                        Some(b':') => {
                            self.at += 1;
                            self.state = State::Value { key };
                        }
                        Some(_) => return Broken("expected `:` after a key"),
                    }
                }
                State::Value { key } => {
                    self.at += ws_len(rest);
                    match t.get(self.at) {
                        None => return More("unterminated value"),
                        Some(b'"') => {
                            self.at += 1;
                            self.state = State::Str {
                                key,
                                start: self.at,
                            };
                        }
                        Some(b'[') => {
                            self.at += 1;
                            self.state = State::ArrOpen { key };
                        }
                        Some(_) => {
                            self.state = State::Num {
                                key,
                                start: self.at,
                            }
                        }
                    }
                }
                State::Str { key, start } => {
                    // The first quote that ends the value ends it.
                    let mut from = self.at;
                    loop {
                        let Some(i) = find(&t[from..], b'"') else {
                            self.at = t.len();
                            return More("unterminated string");
                        };
                        let q = from + i;
                        match value_ends(&t[q + 1..]) {
                            Ends::Yes => {
                                field(key.0..key.1, Value::Str(start..q));
                                self.at = q + 1;
                                self.state = State::After;
                                break;
                            }
                            Ends::No => from = q + 1,
                            Ends::Unknown => {
                                self.at = q;
                                return More("unterminated string");
                            }
                        }
                    }
                }
                State::ArrOpen { key } => {
                    self.at += ws_len(rest);
                    match t.get(self.at) {
                        None => return More("expected a string in an array"),
                        Some(b']') => {
                            field(key.0..key.1, Value::Arr(None));
                            self.at += 1;
                            self.state = State::After;
                        }
                        Some(b'"') => {
                            self.at += 1;
                            self.state = State::Arr {
                                key,
                                start: self.at,
                            };
                        }
                        Some(_) => return Broken("expected a string in an array"),
                    }
                }
                State::Arr { key, start } => {
                    // The first `"]` that ends the value ends it.
                    let mut from = self.at;
                    loop {
                        let Some(i) = t[from..].windows(2).position(|w| w == b"\"]") else {
                            // A quote at the end may meet its `]` later.
                            self.at = if t.last() == Some(&b'"') {
                                from.max(t.len() - 1)
                            } else {
                                t.len()
                            };
                            return More("unterminated array");
                        };
                        let q = from + i;
                        match value_ends(&t[q + 2..]) {
                            Ends::Yes => {
                                field(key.0..key.1, Value::Arr(Some(start..q)));
                                self.at = q + 2;
                                self.state = State::After;
                                break;
                            }
                            Ends::No => from = q + 2,
                            Ends::Unknown => {
                                self.at = q;
                                return More("unterminated array");
                            }
                        }
                    }
                }
                State::Num { key, start } => {
                    let Some(i) = rest.iter().position(|&b| b == b',' || b == b'}') else {
                        self.at = t.len();
                        return More("unterminated value");
                    };
                    let end = self.at + i;
                    let value = trim_range(t, start..end);
                    if value.is_empty() {
                        return Broken("empty value");
                    }
                    field(key.0..key.1, Value::Num(value));
                    self.at = end;
                    self.state = State::After;
                }
                State::After => {
                    self.at += ws_len(rest);
                    match t.get(self.at) {
                        None => return More("expected `,` or `}` after a value"),
                        Some(b',') => {
                            self.at += 1;
                            self.state = State::Field;
                        }
                        // The closing brace is read as a field would be.
                        Some(b'}') => self.state = State::Field,
                        Some(_) => return Broken("expected `,` or `}` after a value"),
                    }
                }
                State::Close => {
                    return if rest.is_empty() {
                        Done
                    } else {
                        Broken("text after the closing brace")
                    };
                }
            }
        }
    }
}

/// Whether a closing quote followed by `after` ends a value.
enum Ends {
    Yes,
    No,
    /// It depends on text not there yet.
    Unknown,
}

/// Whether `after` (the text after a closing quote, to the end of the
/// record so far, which has no trailing whitespace) ends the value: it is
/// the closing `}` of the record, or the next `,"key":`.
fn value_ends(after: &[u8]) -> Ends {
    let ws = ws_len(after);
    let rest = &after[ws..];
    if rest == b"}" {
        return Ends::Yes;
    }
    if rest.is_empty() {
        // The `}` may come on the next line.
        return Ends::Unknown;
    }
    if ws > 0 {
        return Ends::No;
    }
    let Some(key) = after.strip_prefix(b",\"") else {
        return if after == b"," {
            Ends::Unknown
        } else {
            Ends::No
        };
    };
    let key_len = key
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    match &key[key_len..] {
        [] => Ends::Unknown,
        _ if key_len == 0 => Ends::No,
        [b'"'] => Ends::Unknown,
        [b'"', b':', ..] => Ends::Yes,
        _ => Ends::No,
    }
}

fn find(d: &[u8], byte: u8) -> Option<usize> {
    d.iter().position(|&b| b == byte)
}

/// Bytes of whitespace (`char::is_whitespace`, as `str::trim` counts it)
/// at the start of `d`.
fn ws_len(d: &[u8]) -> usize {
    let mut at = 0;
    while let Some(n) = ws_char(&d[at..]) {
        at += n;
    }
    at
}

/// The length of the whitespace character `d` starts with, if it does.
fn ws_char(d: &[u8]) -> Option<usize> {
    let len = match *d.first()? {
        b if b < 0x80 => return char::from(b).is_whitespace().then_some(1),
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => return None,
    };
    let c = std::str::from_utf8(d.get(..len)?).ok()?.chars().next()?;
    c.is_whitespace().then_some(len)
}

/// `d` without whitespace at either end, as `str::trim` cuts it.
fn trim_ws(d: &[u8]) -> &[u8] {
    trim_end_ws(&d[ws_len(d)..])
}

/// `d` without whitespace at its end.
fn trim_end_ws(d: &[u8]) -> &[u8] {
    let mut end = d.len();
    // Step back over whole characters (a UTF-8 character starts with a
    // byte that is not 10xxxxxx, at most 3 bytes before its end).
    while end > 0 {
        let start = (end.saturating_sub(4)..end)
            .rev()
            .find(|&i| d[i] & 0xc0 != 0x80)
            .unwrap_or(end - 1);
        if ws_char(&d[start..end]) != Some(end - start) {
            break;
        }
        end = start;
    }
    &d[..end]
}

/// `r` within `t` without surrounding whitespace.
fn trim_range(t: &[u8], r: Range<usize>) -> Range<usize> {
    let inner = trim_ws(&t[r.clone()]);
    let start = r.start + ws_len(&t[r]);
    start..start + inner.len()
}

// ---------------------------------------------------------------------------
// Records as rows

fn parse_jsonl(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let text = text(input);
    let items: Vec<Item<'_>> = records(text.as_bytes()).collect();
    if !items.is_empty() && !items.iter().any(|i| matches!(i, Item::Record { .. })) {
        return Err("no `{\"event\":\"...` record: not capsnap's events.jsonl".into());
    }
    let clock = items.iter().find_map(|i| match i {
        Item::Record { bytes, .. } if event_kind(bytes) == Some("start") => {
            parse_record(&String::from_utf8_lossy(bytes))
                .ok()
                .and_then(|rec| start_clock(&rec))
        }
        _ => None,
    });
    for item in &items {
        match item {
            Item::Stray { line, .. } => rows.skip(*line, "not an event record"),
            Item::Lost { count, .. } => Event {
                event: "lost".into(),
                tool: CAPSNAP_TOOL.into(),
                detail: vec![format!("count={count}")],
                ..Event::default()
            }
            .push(rows),
            Item::Record { line, bytes } => match parse_record(&String::from_utf8_lossy(bytes)) {
                Err(why) => rows.skip(*line, format!("damaged record: {why}")),
                Ok(record) => match capsnap_event(&record, clock) {
                    Ok(Some(e)) => e.push(rows),
                    Ok(None) => {}
                    Err(why) => rows.skip(*line, why),
                },
            },
        }
    }
    Ok(())
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
            "ifindex" => e.ifindex = Some(u32::try_from(num()?).map_err(|_| bad())?),
            "ip_proto" | "kind" | "count" | "capsnap_pid" | "schema" | "ethertype" => {
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
    // A failed connect(2): the errno by name (asm-generic/errno*.h, the
    // numbers of x86_64 and aarch64).
    if e.event == "connect_error"
        && e.reason.is_none()
        && let Some(ret) = e.ret
    {
        e.reason = Some(errno_name(-ret));
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

/// The name of an errno a socket call returns (include/uapi/asm-generic/
/// errno-base.h and errno.h); others by number.
fn errno_name(errno: i64) -> String {
    let name = match errno {
        1 => "EPERM",
        4 => "EINTR",
        9 => "EBADF",
        11 => "EAGAIN",
        13 => "EACCES",
        22 => "EINVAL",
        24 => "EMFILE",
        97 => "EAFNOSUPPORT",
        98 => "EADDRINUSE",
        99 => "EADDRNOTAVAIL",
        100 => "ENETDOWN",
        101 => "ENETUNREACH",
        104 => "ECONNRESET",
        105 => "ENOBUFS",
        106 => "EISCONN",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        113 => "EHOSTUNREACH",
        114 => "EALREADY",
        n => return format!("errno {n}"),
    };
    name.into()
}

/// The reader and joiner as they were before the joiner was made linear
/// (quadratic on a record that never ends): what the new ones must agree
/// with on every input they both finish.
#[cfg(test)]
mod before {
    use super::JVal;

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
    pub fn parse_record(record: &str) -> Result<Vec<(&str, JVal<'_>)>, &'static str> {
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
    pub enum Item<'a> {
        Record(usize, std::borrow::Cow<'a, str>),
        Lost(u64),
        Stray(usize),
    }

    pub fn items(text: &str) -> Vec<Item<'_>> {
        let mut out = Vec::new();
        let mut pending: Option<(usize, String)> = None;
        for (n, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.starts_with("{\"event\":\"") {
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
}

#[cfg(test)]
mod tests {
    use super::super::testing::{num_at, nums, read_ok, str_at, strs};
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

    /// Lines of capture/bpftrace/connect_error.bt on Linux 6.18: connects
    /// to a closed port on loopback, v4 and v6, then one that found no
    /// free local port.
    #[test]
    fn connect_errors_name_their_errno() {
        let input = r#"{"event":"connect_error","ts_ns":14752399200043,"pid":25918,"netns":4026531833,"family":"ipv4","daddr":"127.0.0.1","dport":1,"ret":-111,"comm":"python3"}
{"event":"connect_error","ts_ns":14752399510185,"pid":25918,"netns":4026531833,"family":"ipv6","daddr":"::1","dport":1,"ret":-111,"comm":"python3"}
{"event":"connect_error","ts_ns":14752399600000,"pid":25919,"netns":4026532999,"family":"ipv4","daddr":"10.0.0.1","dport":80,"ret":-99,"comm":"client"}
"#;
        let (b, _) = read_ok(&READER, input, "ebpf/events.jsonl");
        assert_eq!(b.num_rows(), 3);
        assert_eq!(str_at(&b, "event", 0).as_deref(), Some("connect_error"));
        assert_eq!(str_at(&b, "reason", 0).as_deref(), Some("ECONNREFUSED"));
        assert_eq!(str_at(&b, "daddr", 1).as_deref(), Some("::1"));
        assert_eq!(num_at(&b, "ret", 2), Some(-99));
        assert_eq!(str_at(&b, "reason", 2).as_deref(), Some("EADDRNOTAVAIL"));
        assert_eq!(num_at(&b, "dport", 2), Some(80));
        assert_eq!(str_at(&b, "comm", 2).as_deref(), Some("client"));
        assert_eq!(errno_name(7), "errno 7");
    }

    #[test]
    fn events_are_labelled_with_the_namespace_they_happened_in() {
        let manifest = crate::Manifest::parse(
            br#"{"format_version":2,"host":"n1","namespaces":[{"label":"host","dir":"host","inode":4026531833},{"label":"client","dir":"client","inode":4026532389}]}"#,
        )
        .unwrap();
        let origin = Origin::in_bundle("b", &std::sync::Arc::new(manifest), "events.jsonl");
        let (b, _, _) = read(&READER, JSONL.as_bytes(), origin).unwrap();
        let labels = strs(&b, "netns");
        // exec in the host namespace, tcp_state in client, and a retransmit
        // in a namespace the bundle does not cover (no label).
        assert_eq!(labels[0].as_deref(), Some("host"));
        assert_eq!(labels[1].as_deref(), Some("client"));
        let inodes = nums(&b, "netns_inode");
        let other = inodes.iter().position(|i| *i == Some(4026532177)).unwrap();
        assert_eq!(labels[other], None);
    }

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
            Some("ip_proto=6 reason_code=3")
        );
        assert_eq!(num_at(&b, "dport", 5), Some(81));
        assert_eq!(num_at(&b, "ifindex", 5), Some(7));
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

    /// The items of `input`, read whole and line by line (which must
    /// agree), as "line text", "line lost N" and "line stray text".
    fn items_of(input: &[u8]) -> Vec<String> {
        fn describe(i: Item<'_>) -> String {
            match i {
                Item::Record { line, bytes } => {
                    format!("{line} {}", String::from_utf8_lossy(&bytes))
                }
                Item::Lost { line, count } => format!("{line} lost {count}"),
                Item::Stray { line, bytes } => {
                    format!("{line} stray {}", String::from_utf8_lossy(bytes))
                }
            }
        }
        let whole: Vec<String> = records(input).map(describe).collect();
        let mut by_line = Vec::new();
        read_records(input, |i| by_line.push(describe(i))).unwrap();
        assert_eq!(whole, by_line);
        whole
    }

    /// The collector's fixture: a quote in a comm, a newline and an empty
    /// line in argv, a stray line, a blank one, `Lost`, a CRLF line.
    #[test]
    fn records_lost_and_stray_lines() {
        let input = "{\"event\":\"start\",\"ts_ns\":1}\n\
             {\"event\":\"exec\",\"ts_ns\":2,\"comm\":\"a\"}\r\n\
             Lost 7 events\n\
             {\"event\":\"exec\",\"ts_ns\":3,\"comm\":\"say \"hi\"\"}\n\
             {\"event\":\"exec\",\"ts_ns\":4,\"argv\":[\"sh\",\"-c\",\"a\n\nb\",\"\"]}\n\
             {\"event\":\"drop\",\"ts_ns\":5}\n\
             \n\
             what is this\n\
             {\"event\":\"exec\",\"ts_ns\":6,\"comm\":\"x\nLost 2 events\ny\"}\n\
             {\"event\":\"stop\",\"ts_ns\":7}";
        assert_eq!(
            items_of(input.as_bytes()),
            [
                "1 {\"event\":\"start\",\"ts_ns\":1}",
                "2 {\"event\":\"exec\",\"ts_ns\":2,\"comm\":\"a\"}",
                "3 lost 7",
                "4 {\"event\":\"exec\",\"ts_ns\":3,\"comm\":\"say \"hi\"\"}",
                "5 {\"event\":\"exec\",\"ts_ns\":4,\"argv\":[\"sh\",\"-c\",\"a\n\nb\",\"\"]}",
                "8 {\"event\":\"drop\",\"ts_ns\":5}",
                "10 stray what is this",
                // bpftrace's notice can land inside a record: it stays apart.
                "12 lost 2",
                "11 {\"event\":\"exec\",\"ts_ns\":6,\"comm\":\"x\ny\"}",
                "14 {\"event\":\"stop\",\"ts_ns\":7}",
            ]
        );
        assert_eq!(
            event_kind(b"{\"event\":\"exec\",\"comm\":\"a"),
            Some("exec")
        );
        assert_eq!(event_kind(b"Lost 7 events"), None);
    }

    /// A record still open past MAX_RECORD is given up: one damaged record
    /// that keeps its first MAX_RECORD bytes and swallows its lines up to
    /// the next record, as an unbounded join would, without holding them.
    #[test]
    fn a_record_past_max_record_is_given_up_whole() {
        let mut input = b"{\"event\":\"exec\",\"comm\":\"x".to_vec();
        for _ in 0..10_000 {
            input.extend(b"\nmore");
        }
        input.extend(b"\n{\"event\":\"stop\",\"ts_ns\":7}\n");
        let items = items_of(&input);
        assert_eq!(items.len(), 2);
        // "1 " and the record, cut at a line.
        assert!(
            items[0].starts_with("1 {\"event\":\"exec\""),
            "{}",
            items[0]
        );
        let kept = items[0].len() - 2;
        assert!(kept <= MAX_RECORD && kept > MAX_RECORD - 5, "{kept}");
        assert_eq!(items[1], "10002 {\"event\":\"stop\",\"ts_ns\":7}");
    }

    /// A hostile file of 16 MiB: unterminated records, and records whose
    /// strings never close followed by lines that each might close them
    /// (`}`, a quote, the start of a key) or add only whitespace. Checking a
    /// growing record from its start after each line, as the joiner once
    /// did, re-read 2 KiB per line here (a second per MB, over a minute for
    /// this file); the joiner must look at each byte a bounded number of
    /// times, and hold no more than one record.
    #[test]
    fn joining_hostile_input_is_linear() {
        const PART: usize = (16 << 20) / 7;
        let part = |first: &str, line: &str, lines_per_record: usize| {
            let mut d = Vec::with_capacity(PART + 4096);
            while d.len() < PART {
                d.extend(first.as_bytes());
                for _ in 0..lines_per_record {
                    d.push(b'\n');
                    d.extend(line.as_bytes());
                }
                d.push(b'\n');
            }
            d
        };
        let long_key = format!("{{\"event\":\"x\",\"{}", "k".repeat(3000));
        let open = "{\"event\":\"x\",\"a\":\"";
        let input = [
            part("{\"event\":\"", "", 0),
            part(open, "}", PART / 2),
            part(open, "}", 1500),
            part(open, "\"", 1500),
            part(open, ",\"k", 1000),
            part("{\"event\":\"x\",\"a\":[\"", "\"", 1500),
            part(&long_key, " ", 500),
        ]
        .concat();
        assert!(input.len() >= 16 << 20);
        let mut it = records(&input);
        let mut longest = 0;
        let items = it
            .by_ref()
            .inspect(|i| {
                if let Item::Record { bytes, .. } = i {
                    longest = longest.max(bytes.len());
                }
            })
            .count();
        assert!(items > PART / 11, "{items} items");
        assert!(longest <= MAX_RECORD, "a record of {longest} bytes");
        let checked = it.joiner.checked;
        assert!(
            checked <= 2 * input.len() as u64,
            "{checked} bytes checked for {} bytes of input",
            input.len()
        );
    }

    proptest::proptest! {
        /// The tolerant reader reads what it read before, with Unicode
        /// whitespace, quotes and brackets anywhere.
        #[test]
        fn reads_records_as_before(s in "[ -~\u{a0}\u{2003}\u{3000}\t\n\"{}\\[\\]:,]{0,120}") {
            let with_start = format!("{{\"event\":\"x\",{s}");
            for text in [s.as_str(), with_start.as_str()] {
                proptest::prop_assert_eq!(parse_record(text), before::parse_record(text), "{:?}", text);
            }
        }

        /// The joiner joins as before (the old one also held the text after
        /// the last newline as a line, which only adds a newline to a record
        /// left open at the end).
        #[test]
        fn joins_lines_as_before(lines in proptest::collection::vec(
            "\\{\"event\":\"[a-z]{1,3}\",(\"k\":\"[ -~]{0,6}|\"a\":\\[\"[ -~]{0,6}|\"n\":[0-9]{1,2})?|[ -~]{0,8}|\\}|\"\\]?\\}|Lost [0-9] events|\r", 0..12)) {
            let text = lines.join("\n");
            let got: Vec<(usize, String)> = records(text.as_bytes())
                .map(|i| match i {
                    Item::Record { line, bytes } => (line, format!("R{}", String::from_utf8_lossy(&bytes).trim_end())),
                    Item::Lost { count, .. } => (0, format!("L{count}")),
                    Item::Stray { line, .. } => (line, "S".to_owned()),
                })
                .collect();
            let want: Vec<(usize, String)> = before::items(&text)
                .into_iter()
                .map(|i| match i {
                    before::Item::Record(line, r) => (line, format!("R{}", r.trim_end())),
                    before::Item::Lost(count) => (0, format!("L{count}")),
                    before::Item::Stray(line) => (line, "S".to_owned()),
                })
                .collect();
            proptest::prop_assert_eq!(got, want, "{:?}", text);
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
