//! The `logs` table: kernel and service log lines, from capsnap's
//! `kmsg.txt` (the kernel log as /dev/kmsg gives it; `dmesg.txt` in older
//! bundles) and `journal.txt`, the classic files it copies to `logs/`
//! (syslog, messages, kern.log, daemon.log, kubelet.log) and such files
//! saved by hand.
//!
//! Each line is recognised on its own, so a file may mix formats:
//! - /dev/kmsg records (Documentation/ABI/testing/dev-kmsg):
//!   `prio,seq,usec,flags[,...];message`, the message with unprintable
//!   bytes escaped as `\xHH`, then indented `KEY=value` lines (the record's
//!   device dictionary, which dmesg does not show either: not kept). The
//!   time is microseconds since boot on the kernel's clock; with the boot
//!   time the manifest records (`boot_ns`) it becomes `ts`, as `dmesg
//!   --time-format iso` computes it;
//! - dmesg, with or without `-x` (`kern  :info  : `), `-r` (`<6>`), and a
//!   time as `[  8642.344577]` (seconds since boot), `-T`
//!   (`[Sat Nov 21 19:58:47 2026]`) or `--time-format iso`
//!   (`2026-11-21T19:58:47,344577+00:00`);
//! - journalctl `-o short-iso[-precise]` and rsyslog's RFC 3339 files
//!   (`2026-11-21T22:18:45.123456+00:00 host ident[pid]: message`);
//! - BSD syslog and journalctl's default `short`
//!   (`Nov 21 22:18:45 host ident[pid]: message`);
//! - klog, alone (kubelet `--log-file`) or inside a syslog line
//!   (`E1121 22:18:45.123456    1234 kubelet.go:2183] "message"`);
//! - pve-firewall (`0 3 PVEFW-HOST-IN 20/Jun/2022:13:09:14 +0200 policy DROP: ...`).
//!
//! Times are UTC only where the line says its zone. `dmesg -T` prints the
//! node's local time with no zone (and computes it from the boot time, so
//! it drifts after a suspend): such a time is read as UTC and flagged with
//! `ts_local`, right on the usual UTC nodes and off by the zone elsewhere.
//! BSD syslog and klog print no year: their rows have no `ts`, only
//! `time_text`. Indented lines continue the message above them (dmesg and
//! journalctl indent the further lines of a multi-line message).
//! journalctl's `-- No entries --`, `-- Boot ... --` markers are not rows.

use crate::rows::{Reader, Rows, V, text};

crate::artifact_table!(
    "logs",
    "one row per log line: dmesg, journal, syslog files, klog",
    [
        (
            "source",
            Dict,
            false,
            "dmesg (the kernel log: /dev/kmsg, or the dmesg tool in older bundles), journal, or the file's name (syslog, kern.log, kubelet.log ...)"
        ),
        (
            "ts",
            Ts,
            true,
            "UTC time of the line, where it has a date with a year"
        ),
        (
            "ts_local",
            Bool,
            true,
            "ts comes from a local time printed without a zone (dmesg -T), read as UTC"
        ),
        (
            "time_text",
            Str,
            true,
            "the time as printed (also when it has no year: `Nov 21 22:18:45`, klog `1121 22:18:45.123456`)"
        ),
        (
            "uptime_ns",
            U64,
            true,
            "the kernel's own timestamp, nanoseconds since boot (`[ 8642.344577]`)"
        ),
        (
            "level",
            Dict,
            true,
            "emerg, alert, crit, err, warning, notice, info, debug (where the line says)"
        ),
        (
            "facility",
            Dict,
            true,
            "kern, user, daemon, ... (dmesg -x, syslog <PRI>)"
        ),
        (
            "hostname",
            Dict,
            true,
            "host name printed in the line (journal, syslog)"
        ),
        (
            "ident",
            Dict,
            true,
            "program: kernel, kubelet, containerd, systemd ..."
        ),
        ("pid", U32, true, "process id printed with the program"),
        (
            "location",
            Str,
            true,
            "klog source location (kubelet.go:2183)"
        ),
        (
            "message",
            Str,
            false,
            "the message; lines of a multi-line message joined with newlines"
        ),
        (
            "seq",
            U64,
            true,
            "the kernel's sequence number of the record (/dev/kmsg): a gap means records were overwritten before they were read; null for other logs"
        ),
    ]
);

/// Reads log files by name (capsnap's) and by their first line.
pub const READER: Reader = Reader {
    table: &TABLE,
    what: "dmesg.txt, journal.txt, logs/* (syslog, messages, kern.log, kubelet.log), syslog and klog files",
    claims: |path, head| {
        let name = path.rsplit('/').next().unwrap_or(path);
        if matches!(name, "kmsg.txt" | "dmesg.txt" | "journal.txt") {
            return true;
        }
        let text = text(head);
        let in_logs_dir = path.starts_with("logs/") || path.contains("/logs/");
        if in_logs_dir && !head.contains(&0) {
            return true;
        }
        text.lines()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| line(l).ok().flatten())
            .is_some_and(|e| e.time_text.is_some())
    },
    superseded_by: &[],
    parse,
};

const LEVELS: &[&str] = &[
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// Facility names in code order (RFC 5424 table 1; util-linux dmesg's names).
const FACILITIES: &[&str] = &[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "res0", "res1", "res2", "res3", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// One row.
#[derive(Debug, Default, Clone, PartialEq)]
struct Entry {
    ts: Option<i64>,
    ts_local: Option<bool>,
    time_text: Option<String>,
    uptime_ns: Option<u64>,
    level: Option<&'static str>,
    facility: Option<&'static str>,
    hostname: Option<String>,
    ident: Option<String>,
    pid: Option<u64>,
    location: Option<String>,
    message: String,
    seq: Option<u64>,
}

fn parse(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let text = text(input);
    let source = match rows.origin().file_name() {
        "kmsg.txt" | "dmesg.txt" => "dmesg".to_owned(),
        "journal.txt" => "journal".to_owned(),
        other => other.to_owned(),
    };
    let boot_ns = rows
        .origin()
        .manifest
        .as_ref()
        .map(|m| m.boot_ns)
        .filter(|&b| b > 0);
    let mut entries: Vec<Entry> = Vec::new();
    let mut lines = 0;
    let mut last_ok = false;
    for (n, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        lines += 1;
        // A further line of the message above: indented by dmesg and
        // journalctl, never a log line of its own.
        if raw.starts_with([' ', '\t'])
            && last_ok
            && let Some(e) = entries.last_mut()
        {
            if e.seq.is_some() {
                // A /dev/kmsg record's dictionary (SUBSYSTEM=, DEVICE=).
                continue;
            }
            e.message.push('\n');
            e.message.push_str(raw.trim());
            continue;
        }
        match line(raw) {
            Ok(Some(mut e)) => {
                if let (Some(up), Some(boot)) = (e.uptime_ns.filter(|_| e.seq.is_some()), boot_ns) {
                    let ts = boot.saturating_add(up);
                    e.ts = i64::try_from(ts).ok();
                    e.ts_local = Some(false);
                    e.time_text = Some(crate::bundle::rfc3339(ts));
                }
                entries.push(e);
                last_ok = true;
            }
            Ok(None) => last_ok = false,
            Err(why) => {
                rows.skip(n + 1, why);
                last_ok = false;
            }
        }
    }
    if lines > 0 && entries.is_empty() && rows.skipped().1 == lines {
        return Err("no line is a log line (dmesg, journalctl, syslog, klog)".into());
    }
    for e in &entries {
        rows.push(&[
            V::Str(&source),
            e.ts.map_or(V::Null, V::Ts),
            e.ts_local.map_or(V::Null, V::Bool),
            V::from(e.time_text.as_deref()),
            V::from(e.uptime_ns),
            V::from(e.level),
            V::from(e.facility),
            V::from(e.hostname.as_deref()),
            V::from(e.ident.as_deref()),
            V::from(e.pid),
            V::from(e.location.as_deref()),
            V::Str(&e.message),
            V::from(e.seq),
        ]);
    }
    Ok(())
}

/// One line: `Ok(None)` for journalctl's markers, `Err` for a line of no
/// known format.
fn line(raw: &str) -> Result<Option<Entry>, String> {
    let l = raw.trim_end();
    let t = l.trim_start();
    if t.starts_with("-- ") && t.ends_with(" --") {
        return Ok(None);
    }
    if let Some(r) = kmsg_record(t) {
        let mut e = Entry {
            level: LEVELS.get(usize::from(r.prio & 7)).copied(),
            facility: FACILITIES.get(usize::from(r.prio >> 3)).copied(),
            uptime_ns: Some(r.usec.saturating_mul(1000)),
            time_text: Some(format!("{}.{:06}", r.usec / 1_000_000, r.usec % 1_000_000)),
            ident: Some("kernel".into()),
            message: unescape(r.message),
            seq: Some(r.seq),
            ..Entry::default()
        };
        name_writer(&mut e);
        return Ok(Some(e));
    }
    let mut e = Entry::default();
    // `<PRI>` of dmesg -r and raw syslog.
    let mut rest = t;
    if let Some((pri, after)) = t.strip_prefix('<').and_then(|r| r.split_once('>'))
        && let Ok(pri) = pri.parse::<usize>()
    {
        e.level = LEVELS.get(pri & 7).copied();
        e.facility = FACILITIES.get(pri >> 3).copied();
        rest = after;
    }
    // dmesg -x: `kern  :info  : `.
    if let Some((fac, after)) = rest.split_once(':')
        && let Some(fac) = FACILITIES.iter().find(|f| **f == fac.trim_end())
        && let Some((lvl, after)) = after.split_once(':')
        && let Some(lvl) = level_name(lvl.trim())
    {
        e.facility = Some(fac);
        e.level = Some(lvl);
        return Ok(Some(dmesg(after.strip_prefix(' ').unwrap_or(after), e)));
    }
    if rest.starts_with('[') {
        return Ok(Some(dmesg(rest, e)));
    }
    if let Some((ts, zone_known, text, after)) = iso_time(rest) {
        e.time_text = Some(text.to_owned());
        e.ts = ts;
        e.ts_local = ts.map(|_| !zone_known);
        // dmesg --time-format iso: a comma before the fraction, no host.
        if text.contains(',') {
            e.message = after.trim_start().to_owned();
            e.ident = Some("kernel".into());
            return Ok(Some(e));
        }
        return Ok(Some(syslog_body(after, e)));
    }
    if let Some((text, after)) = bsd_time(rest) {
        e.time_text = Some(text.to_owned());
        return Ok(Some(syslog_body(after, e)));
    }
    if let Some(k) = klog(rest) {
        e.level = Some(k.level);
        e.time_text = Some(k.time.to_owned());
        e.pid = k.pid;
        e.location = Some(k.location.to_owned());
        e.message = k.message.to_owned();
        return Ok(Some(e));
    }
    if let Some(p) = pve_firewall(rest) {
        return Ok(Some(p));
    }
    // `dmesg -r -t`: a priority and the message.
    if e.level.is_some() {
        return Ok(Some(dmesg(rest, e)));
    }
    let shown: String = t.chars().take(60).collect();
    Err(format!("not a log line of a known format: {shown:?}"))
}

fn level_name(s: &str) -> Option<&'static str> {
    match s {
        "warn" => Some("warning"),
        "error" => Some("err"),
        "emergency" | "panic" => Some("emerg"),
        "critical" => Some("crit"),
        _ => LEVELS.iter().find(|l| **l == s).copied(),
    }
}

/// The body of a dmesg line: its time (if any) and message.
fn dmesg(body: &str, mut e: Entry) -> Entry {
    let body = body.trim_start();
    e.ident = Some("kernel".into());
    if let Some(inner) = body.strip_prefix('[')
        && let Some((stamp, msg)) = inner.split_once(']')
    {
        if let Some(ns) = uptime(stamp) {
            e.uptime_ns = Some(ns);
            e.time_text = Some(stamp.trim().to_owned());
            e.message = msg.strip_prefix(' ').unwrap_or(msg).to_owned();
        } else if let Some(ts) = ctime(stamp) {
            e.ts = Some(ts);
            e.ts_local = Some(true);
            e.time_text = Some(stamp.to_owned());
            e.message = msg.strip_prefix(' ').unwrap_or(msg).to_owned();
        } else {
            e.message = body.to_owned();
        }
    } else if let Some((ts, zone_known, text, after)) = iso_time(body) {
        e.ts = ts;
        e.ts_local = ts.map(|_| !zone_known);
        e.time_text = Some(text.to_owned());
        e.message = after.trim_start().to_owned();
    } else {
        e.message = body.to_owned();
    }
    name_writer(&mut e);
    e
}

/// A line written to /dev/kmsg by a program (`systemd[1]: ...`) with a
/// facility other than kern names its writer.
fn name_writer(e: &mut Entry) {
    if e.facility.is_some_and(|f| f != "kern")
        && let Some((ident, pid, msg)) = tag(&e.message)
    {
        e.ident = Some(ident.to_owned());
        e.pid = pid;
        e.message = msg.to_owned();
    }
}

/// One /dev/kmsg record's header and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KmsgRecord<'a> {
    /// Facility << 3 | level.
    pub prio: u16,
    pub seq: u64,
    /// Microseconds since boot (the kernel's `local_clock`).
    pub usec: u64,
    /// The message as the kernel escaped it (`\xHH`).
    pub message: &'a str,
}

/// The first line of a /dev/kmsg record, `prio,seq,usec,flags[,...];message`
/// (kernel/printk/printk.c `info_print_ext_header`), if `line` is one.
pub fn kmsg_record(line: &str) -> Option<KmsgRecord<'_>> {
    let (header, message) = line.split_once(';')?;
    let mut fields = header.split(',');
    let number = |s: Option<&str>| {
        s.filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))?
            .parse::<u64>()
            .ok()
    };
    let prio = u16::try_from(number(fields.next())?).ok()?;
    let seq = number(fields.next())?;
    let usec = number(fields.next())?;
    // The flags: `-`, or `c` for a continued line in older kernels.
    let flags = fields.next()?;
    if flags.len() != 1 || prio > 191 {
        return None;
    }
    Some(KmsgRecord {
        prio,
        seq,
        usec,
        message,
    })
}

/// A /dev/kmsg message with its `\xHH` escapes undone (the kernel escapes
/// backslashes and bytes outside printable ASCII, newlines among them).
pub fn unescape(message: &str) -> String {
    if !message.contains("\\x") {
        return message.to_owned();
    }
    let b = message.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && b.get(i + 1) == Some(&b'x')
            && let Some(hex) = b.get(i + 2..i + 4)
            && let Ok(hex) = std::str::from_utf8(hex)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `8642.344577` (seconds since boot, as printk prints them) in ns.
fn uptime(s: &str) -> Option<u64> {
    let (secs, frac) = s.trim().split_once('.')?;
    if secs.is_empty()
        || frac.is_empty()
        || frac.len() > 9
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    let frac: u64 = format!("{frac:0<9}").parse().ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(frac)
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// UTC nanoseconds of a civil date and time, when it is a valid one.
fn epoch_ns(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32, nanos: u32) -> Option<i64> {
    if !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || h > 23
        || mi > 59
        || s > 60
        || !(1..=9999).contains(&y)
    {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400
        + i64::from(h) * 3600
        + i64::from(mi) * 60
        + i64::from(s);
    secs.checked_mul(1_000_000_000)?
        .checked_add(i64::from(nanos))
}

fn month(s: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| *m == s)
        .and_then(|i| u32::try_from(i + 1).ok())
}

/// `HH:MM:SS` as numbers.
fn hms(s: &str) -> Option<(u32, u32, u32)> {
    let mut parts = s.split(':');
    let h = parts.next()?;
    let m = parts.next()?;
    let sec = parts.next()?;
    if parts.next().is_some()
        || [h, m, sec]
            .iter()
            .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    Some((h.parse().ok()?, m.parse().ok()?, sec.parse().ok()?))
}

/// `Sat Nov 21 19:58:47 2026` (dmesg -T, local time) as if it were UTC.
fn ctime(s: &str) -> Option<i64> {
    let w: Vec<&str> = s.split_whitespace().collect();
    let [_weekday, mon, day, time, year] = w.as_slice() else {
        return None;
    };
    let (h, mi, sec) = hms(time)?;
    epoch_ns(
        year.parse().ok()?,
        month(mon)?,
        day.parse().ok()?,
        h,
        mi,
        sec,
        0,
    )
}

/// A leading ISO 8601 time: (UTC ns when valid, whether it had a zone,
/// the text, the rest of the line).
fn iso_time(s: &str) -> Option<(Option<i64>, bool, &str, &str)> {
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    let text = &s[..end];
    let b = text.as_bytes();
    if b.len() < 19
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || b.get(10) != Some(&b'T')
    {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let p = text.get(r)?;
        p.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| p.parse().ok())
            .flatten()
    };
    let (y, mo, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (h, mi, sec) = hms(text.get(11..19)?)?;
    let mut rest = text.get(19..)?;
    let mut nanos = 0;
    if let Some(f) = rest.strip_prefix(['.', ',']) {
        let n = f.bytes().take_while(u8::is_ascii_digit).count();
        let frac = f.get(..n)?;
        if n == 0 {
            return None;
        }
        nanos = format!("{:0<9}", frac.get(..n.min(9))?).parse().ok()?;
        rest = f.get(n..)?;
    }
    let (offset_s, zone_known) = match rest {
        "" => (0, false),
        "Z" => (0, true),
        z => {
            let sign = match z.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let hhmm: String = z.get(1..)?.chars().filter(|c| *c != ':').collect();
            if hhmm.len() != 4 || !hhmm.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let oh: i64 = hhmm.get(..2)?.parse().ok()?;
            let om: i64 = hhmm.get(2..)?.parse().ok()?;
            (sign * (oh * 3600 + om * 60), true)
        }
    };
    let ts = epoch_ns(i64::from(y), mo, d, h, mi, sec, nanos)
        .and_then(|ns| ns.checked_sub(offset_s * 1_000_000_000));
    Some((ts, zone_known, text, &s[end..]))
}

/// A leading BSD syslog time `Nov 21 22:18:45` (`Nov  1` padded): its text
/// and the rest of the line.
fn bsd_time(s: &str) -> Option<(&str, &str)> {
    let mon = s.get(..3)?;
    month(mon)?;
    let after_mon = s.get(3..)?.strip_prefix(' ')?;
    let day_str = after_mon.trim_start_matches(' ');
    let day_len = day_str.bytes().take_while(u8::is_ascii_digit).count();
    if !(1..=2).contains(&day_len) {
        return None;
    }
    let after_day = day_str.get(day_len..)?.strip_prefix(' ')?;
    hms(after_day.get(..8)?)?;
    let end = s.len() - after_day.len() + 8;
    Some((s.get(..end)?, s.get(end..)?))
}

/// `ident[pid]: message` or `ident: message` at the start of `s`.
fn tag(s: &str) -> Option<(&str, Option<u64>, &str)> {
    let (word, msg) = match s.split_once(' ') {
        Some((w, m)) => (w, m),
        None => (s, ""),
    };
    let tag = word.strip_suffix(':')?;
    if tag.is_empty() {
        return None;
    }
    if let Some((ident, pid)) = tag.strip_suffix(']').and_then(|t| t.split_once('[')) {
        return Some((ident, pid.parse().ok(), msg));
    }
    Some((tag, None, msg))
}

/// After the time of a journal or syslog line: `host ident[pid]: message`.
fn syslog_body(after: &str, mut e: Entry) -> Entry {
    let after = after.trim_start();
    let (host, rest) = after.split_once(' ').unwrap_or((after, ""));
    e.hostname = (!host.is_empty()).then(|| host.to_owned());
    let rest = rest.trim_start();
    let mut message = rest;
    if let Some((ident, pid, msg)) = tag(rest) {
        e.ident = Some(ident.to_owned());
        e.pid = pid;
        message = msg;
    }
    // The kernel's timestamp, which rsyslog keeps in the message.
    if e.ident.as_deref() == Some("kernel")
        && let Some(inner) = message.strip_prefix('[')
        && let Some((stamp, msg)) = inner.split_once(']')
        && let Some(ns) = uptime(stamp)
    {
        e.uptime_ns = Some(ns);
        message = msg.strip_prefix(' ').unwrap_or(msg);
    }
    if let Some(k) = klog(message) {
        e.level = Some(k.level);
        e.location = Some(k.location.to_owned());
        e.pid = e.pid.or(k.pid);
        message = k.message;
    }
    e.message = message.to_owned();
    e
}

struct Klog<'a> {
    level: &'static str,
    time: &'a str,
    pid: Option<u64>,
    location: &'a str,
    message: &'a str,
}

/// `E1121 22:18:45.123456    1234 kubelet.go:2183] message` (klog/glog:
/// Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg).
fn klog(s: &str) -> Option<Klog<'_>> {
    let level = match s.as_bytes().first()? {
        b'I' => "info",
        b'W' => "warning",
        b'E' => "err",
        b'F' => "crit",
        _ => return None,
    };
    let mmdd = s.get(1..5)?;
    if !mmdd.bytes().all(|b| b.is_ascii_digit()) || s.get(5..6)? != " " {
        return None;
    }
    hms(s.get(6..14)?)?;
    let after_time = s.get(14..)?;
    let frac = after_time
        .strip_prefix('.')
        .map_or(0, |f| f.bytes().take_while(u8::is_ascii_digit).count() + 1);
    let time_end = 14 + frac;
    let rest = s.get(time_end..)?.trim_start();
    let (pid, rest) = rest.split_once(' ')?;
    let (location, message) = rest
        .trim_start()
        .split_once("] ")
        .or_else(|| rest.trim_start().strip_suffix(']').map(|l| (l, "")))?;
    if !location.contains(':') || location.contains(' ') {
        return None;
    }
    Some(Klog {
        level,
        time: s.get(1..time_end)?,
        pid: pid.parse().ok(),
        location,
        message,
    })
}

/// pve-firewall's log: `VMID LEVEL CHAIN DD/Mon/YYYY:HH:MM:SS +ZZZZ message`.
fn pve_firewall(s: &str) -> Option<Entry> {
    let mut w = s.splitn(6, ' ');
    let vmid = w.next()?;
    let level = w.next()?;
    let chain = w.next()?;
    let stamp = w.next()?;
    let zone = w.next()?;
    let message = w.next().unwrap_or("");
    if !vmid.bytes().all(|b| b.is_ascii_digit()) || vmid.is_empty() {
        return None;
    }
    let level: usize = level.parse().ok()?;
    let (date, time) = stamp.split_once(':')?;
    let mut d = date.split('/');
    let (day, mon, year) = (d.next()?, d.next()?, d.next()?);
    let (h, mi, sec) = hms(time)?;
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let oh: i64 = zone.get(1..3)?.parse().ok()?;
    let om: i64 = zone.get(3..5)?.parse().ok()?;
    let ts = epoch_ns(
        year.parse().ok()?,
        month(mon)?,
        day.parse().ok()?,
        h,
        mi,
        sec,
        0,
    )?
    .checked_sub(sign * (oh * 3600 + om * 60) * 1_000_000_000)?;
    Some(Entry {
        ts: Some(ts),
        ts_local: Some(false),
        time_text: Some(format!("{stamp} {zone}")),
        level: LEVELS.get(level).copied(),
        ident: Some("pvefw-logger".into()),
        message: format!("{chain} {message}"),
        ..Entry::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::{Origin, read};
    use arrow_array::RecordBatch;
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampNanosecondType;

    use crate::rows::testing::strings as strs;

    fn at(batch: &RecordBatch, name: &str, row: usize) -> Option<String> {
        strs(batch, name).get(row).cloned().flatten()
    }

    fn ts(batch: &RecordBatch) -> Vec<Option<i64>> {
        batch
            .column_by_name("ts")
            .unwrap()
            .as_primitive::<TimestampNanosecondType>()
            .iter()
            .collect()
    }

    use crate::rows::testing::u64s as u;

    fn load(input: &str, path: &str) -> (RecordBatch, Vec<crate::Skipped>, usize) {
        read(&READER, input.as_bytes(), Origin::of("b", Some("vm"), path)).unwrap()
    }

    /// 2026-11-21T19:58:47Z
    const BOOT: i64 = 1_795_291_127_000_000_000;

    /// Records as /dev/kmsg gives them: a kernel line with its device
    /// dictionary, an escaped multi-line message, a line systemd wrote
    /// (facility daemon), and a gap in the sequence numbers.
    const KMSG: &str = r"6,1021,8642344577,-;veth-c: left promiscuous mode
 SUBSYSTEM=net
 DEVICE=n7
4,1022,8643000001,-;first\x0asecond \x5c end
30,1025,8644100000,-;systemd[1]: Started capsnap.service.
";

    #[test]
    fn kmsg_records_keep_their_sequence_numbers_and_kernel_times() {
        let manifest = crate::bundle::Manifest {
            format_version: crate::bundle::FORMAT_VERSION,
            boot_ns: BOOT as u64,
            ..Default::default()
        };
        let origin = Origin::in_bundle("b", &std::sync::Arc::new(manifest), "kmsg.txt");
        let (b, skipped, _) = read(&READER, KMSG.as_bytes(), origin).unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(b.num_rows(), 3);
        assert_eq!(u(&b, "seq"), [Some(1021), Some(1022), Some(1025)]);
        assert_eq!(
            u(&b, "uptime_ns"),
            [
                Some(8_642_344_577_000),
                Some(8_643_000_001_000),
                Some(8_644_100_000_000)
            ]
        );
        assert_eq!(ts(&b)[0], Some(BOOT + 8_642_344_577_000));
        assert_eq!(
            strs(&b, "time_text")[0].as_deref(),
            Some("2026-11-21T22:22:49.344577000Z")
        );
        assert_eq!(
            strs(&b, "message"),
            [
                Some("veth-c: left promiscuous mode".into()),
                Some("first\nsecond \\ end".into()),
                Some("Started capsnap.service.".into())
            ]
        );
        assert_eq!(
            strs(&b, "level"),
            [
                Some("info".into()),
                Some("warning".into()),
                Some("info".into())
            ]
        );
        assert_eq!(strs(&b, "facility")[2].as_deref(), Some("daemon"));
        assert_eq!(strs(&b, "ident")[2].as_deref(), Some("systemd"));
        assert_eq!(u(&b, "pid")[2], Some(1));
        assert!(
            strs(&b, "source")
                .iter()
                .all(|s| s.as_deref() == Some("dmesg"))
        );
        // Saved by hand (`cat /dev/kmsg`), without a manifest: the time
        // since boot only.
        let (b, _, _) = load(KMSG, "saved/kmsg");
        assert_eq!(b.num_rows(), 3);
        assert_eq!(ts(&b)[0], None);
        assert_eq!(strs(&b, "time_text")[0].as_deref(), Some("8642.344577"));
        assert!((READER.claims)("saved/kmsg", KMSG.as_bytes()));
    }

    #[test]
    fn capsnap_dmesg_with_a_continuation_line() {
        // Lines of a real bundle's dmesg.txt (`dmesg -T -x`).
        let input = r"kern  :notice: [Sat Nov 21 19:58:47 2026] Linux version 6.18.44-fc-v669 (builder@sandboxing) #1 SMP PREEMPT_DYNAMIC @0
kern  :warn  : [Sat Nov 21 19:58:47 2026] amd_pstate: The CPPC feature is supported but currently disabled by the BIOS.
                                          Please enable it if your BIOS has the CPPC option.
kern  :debug : [Sat Nov 21 19:58:47 2026] PCI: Using configuration type 1 for base access
kern  :info  : [Sat Nov 21 20:31:50 2026] veth-c: left promiscuous mode
";
        let (b, skipped, _) = load(input, "dmesg.txt");
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(b.num_rows(), 4);
        assert!(
            strs(&b, "source")
                .iter()
                .all(|s| s.as_deref() == Some("dmesg"))
        );
        assert_eq!(
            strs(&b, "level"),
            [
                Some("notice".into()),
                Some("warning".into()),
                Some("debug".into()),
                Some("info".into())
            ]
        );
        assert_eq!(at(&b, "facility", 0).as_deref(), Some("kern"));
        assert_eq!(at(&b, "ident", 0).as_deref(), Some("kernel"));
        assert_eq!(ts(&b)[0], Some(BOOT));
        assert_eq!(ts(&b)[3], Some(BOOT + (32 * 60 + 63) * 1_000_000_000));
        let local: Vec<_> = b
            .column_by_name("ts_local")
            .unwrap()
            .as_boolean()
            .iter()
            .collect();
        assert_eq!(local[0], Some(true));
        assert_eq!(
            at(&b, "time_text", 0).as_deref(),
            Some("Sat Nov 21 19:58:47 2026")
        );
        assert_eq!(
            at(&b, "message", 1).as_deref(),
            Some(
                "amd_pstate: The CPPC feature is supported but currently disabled by the BIOS.\nPlease enable it if your BIOS has the CPPC option."
            )
        );
    }

    #[test]
    fn dmesg_time_formats() {
        let cases: &[(&str, Option<i64>, Option<u64>, &str)] = &[
            (
                "kern  :info  : [ 8642.344577] cs-x-nr: entered promiscuous mode",
                None,
                Some(8_642_344_577_000),
                "cs-x-nr: entered promiscuous mode",
            ),
            (
                "[    0.000000] Linux version 6.18",
                None,
                Some(0),
                "Linux version 6.18",
            ),
            (
                "<6>[ 8642.344577] cs-x-nr: entered promiscuous mode",
                None,
                Some(8_642_344_577_000),
                "cs-x-nr: entered promiscuous mode",
            ),
            (
                "kern  :info  : 2026-11-21T22:22:49,344577+00:00 cs-x-nr: entered promiscuous mode",
                Some(BOOT + 8642 * 1_000_000_000 + 344_577_000),
                None,
                "cs-x-nr: entered promiscuous mode",
            ),
            (
                "2026-11-21T23:22:49,344577+01:00 cs-x-nr: x",
                Some(BOOT + 8642 * 1_000_000_000 + 344_577_000),
                None,
                "cs-x-nr: x",
            ),
            (
                "kern  :err   : plain message with no time",
                None,
                None,
                "plain message with no time",
            ),
        ];
        for (line, want_ts, want_up, want_msg) in cases {
            let (b, skipped, _) = load(line, "dmesg.txt");
            assert!(skipped.is_empty(), "{line}: {skipped:?}");
            assert_eq!(ts(&b)[0], *want_ts, "{line}");
            assert_eq!(u(&b, "uptime_ns")[0], *want_up, "{line}");
            assert_eq!(at(&b, "message", 0).as_deref(), Some(*want_msg), "{line}");
            assert_eq!(at(&b, "ident", 0).as_deref(), Some("kernel"), "{line}");
        }
        let (b, _, _) = load("<6>[ 1.0] x", "dmesg.txt");
        assert_eq!(
            (at(&b, "level", 0), at(&b, "facility", 0)),
            (Some("info".into()), Some("kern".into()))
        );
        // A daemon writing to /dev/kmsg.
        let (b, _, _) = load(
            "daemon:info  : [Sat Nov 21 19:58:48 2026] systemd[1]: Started Journal Service.",
            "dmesg.txt",
        );
        assert_eq!(
            (at(&b, "ident", 0), u(&b, "pid")[0]),
            (Some("systemd".into()), Some(1))
        );
        assert_eq!(
            at(&b, "message", 0).as_deref(),
            Some("Started Journal Service.")
        );
    }

    #[test]
    fn journal_short_iso_precise() {
        let input = r#"-- Boot 9b1be2d94f954840 --
2026-11-21T22:18:45.123456+00:00 node kubelet[1234]: E1121 22:18:45.123400    1234 kubelet.go:2183] "Failed to sync pod" pod="default/web"
2026-11-21T22:18:46.000001+0000 node kernel: nf_conntrack: table full, dropping packet
2026-11-21T23:18:47.5+01:00 node containerd[88]: time="x" level=info msg="hello"
   continued line
-- No entries --
"#;
        let (b, skipped, _) = load(input, "journal.txt");
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(b.num_rows(), 3);
        assert_eq!(at(&b, "source", 0).as_deref(), Some("journal"));
        let base = BOOT + (2 * 3600 + 19 * 60 + 58) * 1_000_000_000;
        assert_eq!(
            ts(&b),
            [
                Some(base + 123_456_000),
                Some(base + 1_000_001_000),
                Some(base + 2_500_000_000)
            ]
        );
        assert_eq!(at(&b, "hostname", 0).as_deref(), Some("node"));
        assert_eq!(
            (at(&b, "ident", 0), u(&b, "pid")[0]),
            (Some("kubelet".into()), Some(1234))
        );
        assert_eq!(at(&b, "level", 0).as_deref(), Some("err"));
        assert_eq!(at(&b, "location", 0).as_deref(), Some("kubelet.go:2183"));
        assert_eq!(
            at(&b, "message", 0).as_deref(),
            Some("\"Failed to sync pod\" pod=\"default/web\"")
        );
        assert_eq!(
            (at(&b, "ident", 1), u(&b, "pid")[1]),
            (Some("kernel".into()), None)
        );
        assert_eq!(
            at(&b, "message", 2).as_deref(),
            Some("time=\"x\" level=info msg=\"hello\"\ncontinued line")
        );

        let (b, skipped, _) = load("-- No entries --\n", "journal.txt");
        assert_eq!((b.num_rows(), skipped.len()), (0, 0));
    }

    #[test]
    fn syslog_and_klog_files() {
        let input = "Nov 21 22:18:45 node kubelet[1234]: I1121 22:18:45.123456    1234 kubelet.go:2183] \"SyncLoop ADD\"\n\
Nov  1 02:03:04 node systemd[1]: Started kubelet.\n\
Nov 21 22:18:47 node kernel: [ 8642.344577] TCP: out of memory -- consider tuning tcp_mem\n\
garbage line\n\
W1121 22:18:48.000001    4321 reflector.go:535] watch of *v1.Pod ended\n";
        let (b, skipped, total) = load(input, "logs/syslog");
        assert_eq!(b.num_rows(), 4);
        assert_eq!((total, skipped[0].line), (1, 4));
        assert_eq!(at(&b, "source", 0).as_deref(), Some("syslog"));
        assert_eq!(ts(&b), [None, None, None, None]);
        assert_eq!(at(&b, "time_text", 1).as_deref(), Some("Nov  1 02:03:04"));
        assert_eq!(at(&b, "level", 0).as_deref(), Some("info"));
        assert_eq!(at(&b, "message", 1).as_deref(), Some("Started kubelet."));
        assert_eq!(u(&b, "uptime_ns")[2], Some(8_642_344_577_000));
        assert_eq!(
            at(&b, "message", 2).as_deref(),
            Some("TCP: out of memory -- consider tuning tcp_mem")
        );
        assert_eq!(at(&b, "level", 3).as_deref(), Some("warning"));
        assert_eq!(
            at(&b, "time_text", 3).as_deref(),
            Some("1121 22:18:48.000001")
        );
        assert_eq!(u(&b, "pid")[3], Some(4321));
        assert_eq!(
            at(&b, "message", 3).as_deref(),
            Some("watch of *v1.Pod ended")
        );
        assert!(read(&READER, b"hello\nworld\n", Origin::of("b", None, "logs/x")).is_err());
    }

    #[test]
    fn claims() {
        assert!((READER.claims)("dmesg.txt", b""));
        assert!((READER.claims)("journal.txt", b"-- No entries --\n"));
        assert!((READER.claims)("logs/kubelet.log", b"anything\n"));
        assert!(!(READER.claims)("logs/syslog.1.gz", b"\x1f\x8b\x08\0"));
        assert!((READER.claims)(
            "saved/node.log",
            b"Nov 21 22:18:45 node kubelet[1234]: x\n"
        ));
        assert!((READER.claims)(
            "k.log",
            b"E1121 22:18:45.123456    1234 kubelet.go:2183] x\n"
        ));
        for (path, head) in [
            (
                "netns/host/conntrack.txt",
                &b"ipv4     2 tcp      6 431994 ESTABLISHED src=1.2.3.4"[..],
            ),
            (
                "netns/host/iptables-save.txt",
                b"# Generated by iptables-save v1.8.9 on Sat Nov 21 22:18:46 2026\n",
            ),
            ("netns/host/sysctls.txt", b"net.ipv4.tcp_mem = 1 2 3\n"),
            (
                "netns/host/ip-addr.txt",
                b"1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536\n",
            ),
            ("ebpf/events.jsonl", b"{\"event\":\"start\"}\n"),
            (
                "tcpretrans.txt",
                b"TIME     PID    IP LADDR:LPORT          T> RADDR:RPORT          STATE\n",
            ),
            (
                "netns/host/proc/net/tcp",
                b"  sl  local_address rem_address   st\n",
            ),
        ] {
            assert!(!(READER.claims)(path, head), "{path}");
        }
    }

    #[test]
    fn corpus_netfilter_logs() {
        let dir = crate::testing::corpus().join("misc/netfilter-log/crowdsec-hub");
        // (file, rows, ident of the first row)
        for (file, rows, ident) in [
            ("crowdsec-hub__iptables-logs.log", 4, Some("kernel")),
            (
                "crowdsec-hub__iptables-scan-multi-port.log",
                49,
                Some("kernel"),
            ),
            (
                "crowdsec-hub__proxmox-iptables.log",
                10,
                Some("pvefw-logger"),
            ),
            ("crowdsec-hub__unifi-logs.log", 4, None),
        ] {
            let bytes = std::fs::read(dir.join(file)).unwrap();
            assert!((READER.claims)(file, &bytes), "{file}");
            let (b, skipped, _) = read(&READER, &bytes, Origin::of("c", None, file)).unwrap();
            assert!(skipped.is_empty(), "{file}: {skipped:?}");
            assert_eq!(b.num_rows(), rows, "{file}");
            assert_eq!(at(&b, "ident", 0).as_deref(), ident, "{file}");
        }
        let bytes = std::fs::read(dir.join("crowdsec-hub__iptables-logs.log")).unwrap();
        let (b, _, _) = read(&READER, &bytes, Origin::of("c", None, "x.log")).unwrap();
        assert_eq!(u(&b, "uptime_ns")[3], Some(203_842_973_000));
        assert!(
            at(&b, "message", 3)
                .unwrap()
                .starts_with("IPTABLES-DROP: IN=lo OUT= ")
        );
        let bytes = std::fs::read(dir.join("crowdsec-hub__proxmox-iptables.log")).unwrap();
        let (b, _, _) = read(&READER, &bytes, Origin::of("c", None, "pve-firewall.log")).unwrap();
        // 20/Jun/2022:13:09:14 +0200 = 11:09:14Z.
        assert_eq!(ts(&b)[0], Some(1_655_723_354_000_000_000));
        assert_eq!(at(&b, "level", 0).as_deref(), Some("err"));
        assert!(
            at(&b, "message", 0)
                .unwrap()
                .starts_with("PVEFW-HOST-IN policy DROP: IN=vmbr0.94")
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(epoch_ns(2026, 11, 21, 19, 58, 47, 0), Some(BOOT));
        assert_eq!(epoch_ns(2026, 13, 1, 0, 0, 0, 0), None);
        assert_eq!(ctime("Sat Nov 21 19:58:47 2026"), Some(BOOT));
        assert_eq!(ctime("Sat Nov 21 19:58 2026"), None);
        assert_eq!(
            iso_time("2026-11-21T19:58:47Z x").map(|t| t.0),
            Some(Some(BOOT))
        );
        assert_eq!(
            iso_time("2026-11-21T19:58:47 x").map(|t| (t.0, t.1)),
            Some((Some(BOOT), false))
        );
        assert_eq!(iso_time("2026-11-21T19:58:47+5 x").map(|t| t.0), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "([ -~\t\n]|Nov|<6>|kern  :|\\[|\\]|2026-11-21T|E1121 ){0,200}") {
            let _ = read(&READER, s.as_bytes(), Origin::of("b", None, "logs/syslog"));
        }

        #[test]
        fn arbitrary_bytes_never_panic(d in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = read(&READER, &d, Origin::of("b", None, "dmesg.txt"));
        }
    }
}
