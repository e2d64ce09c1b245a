//! Pairing bpftrace's clock with wall-clock time. Events carry bpftrace's
//! `nsecs` (`ts_ns`), a kernel clock that is not wall-clock time; the
//! start sentinel's prctl() carries capsnap's clocks read just before it,
//! so the `start` line holds both at one moment ([`StartLine`]), and
//! `clock.json` says how to turn any `ts_ns` into wall-clock time.

use super::{CLOCK_FILE, write_json};
use crate::sys;
use serde::Serialize;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One reading of the clocks, taken back to back.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clocks {
    pub(super) realtime: u64,
    pub(super) monotonic: u64,
    pub(super) boottime: u64,
}

impl Clocks {
    pub(super) fn now() -> Clocks {
        let read = |clock: libc::clockid_t| {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: ts is a valid timespec to write into.
            unsafe { libc::clock_gettime(clock, &mut ts) };
            (ts.tv_sec as u64)
                .saturating_mul(1_000_000_000)
                .saturating_add(ts.tv_nsec as u64)
        };
        Clocks {
            monotonic: read(libc::CLOCK_MONOTONIC),
            boottime: read(libc::CLOCK_BOOTTIME),
            realtime: read(libc::CLOCK_REALTIME),
        }
    }
}

/// The `start` line: bpftrace's clock and capsnap's clocks at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StartLine {
    pub(super) ts_ns: u64,
    pub(super) realtime_ns: u64,
    pub(super) monotonic_ns: u64,
    pub(super) boottime_ns: u64,
}

/// Reads the events file as it grows, looking for the `start` line.
#[derive(Debug, Default)]
pub(super) struct StartScanner {
    offset: u64,
    partial: Vec<u8>,
}

impl StartScanner {
    pub(super) fn scan(&mut self, path: &Path) -> io::Result<Option<StartLine>> {
        let mut f = File::open(path)?;
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let mut found = None;
        let mut consumed = 0;
        while let Some(nl) = self.partial[consumed..].iter().position(|&b| b == b'\n') {
            let line = &self.partial[consumed..consumed + nl];
            consumed += nl + 1;
            if found.is_none() {
                found = parse_start(line);
            }
        }
        self.partial.drain(..consumed);
        Ok(found)
    }
}

fn parse_start(line: &[u8]) -> Option<StartLine> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    if v.get("event")?.as_str()? != "start" {
        return None;
    }
    let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
    Some(StartLine {
        ts_ns: n("ts_ns")?,
        realtime_ns: n("realtime_ns")?,
        monotonic_ns: n("monotonic_ns")?,
        boottime_ns: n("boottime_ns")?,
    })
}

/// `clock.json`: what turns an event's `ts_ns` into wall-clock time.
#[derive(Debug, Serialize)]
struct ClockFile {
    /// bpftrace's clock (`ts_ns` of the start line)...
    ts_ns: u64,
    /// ...and capsnap's clocks, read just before the syscall that fired it.
    realtime_ns: u64,
    monotonic_ns: u64,
    boottime_ns: u64,
    /// Which kernel clock `ts_ns` follows: `boottime`, `monotonic`, or
    /// `either` when the machine never suspended and the two agree.
    ts_clock: &'static str,
    /// How to use it.
    wall_clock: &'static str,
    bpftrace: String,
    bpftrace_version: String,
}

/// `bpftrace --version`, tied to capsnap and given two seconds like any
/// tool on a sick node; empty when it says nothing in time.
fn bpftrace_version(bin: &Path) -> String {
    let mut cmd = Command::new(bin);
    cmd.arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let Ok(mut child) = sys::spawn_tied(&mut cmd, None) else {
        return String::new();
    };
    // A version line fits the pipe's buffer: reading after the exit
    // cannot block the child.
    if sys::wait_until(&mut child, Instant::now() + Duration::from_secs(2)).is_none() {
        return String::new();
    }
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    out.trim().to_owned()
}

pub(super) fn write_clock(dir: &Path, start: &StartLine, bin: &Path) -> io::Result<()> {
    let from_boot = start.ts_ns.abs_diff(start.boottime_ns);
    let from_mono = start.ts_ns.abs_diff(start.monotonic_ns);
    // Time spent suspended is the gap between the two clocks; under a
    // millisecond they are the same for our purposes.
    let ts_clock = if start.boottime_ns.abs_diff(start.monotonic_ns) < 1_000_000 {
        "either"
    } else if from_boot <= from_mono {
        "boottime"
    } else {
        "monotonic"
    };
    let version = bpftrace_version(bin);
    let clock = ClockFile {
        ts_ns: start.ts_ns,
        realtime_ns: start.realtime_ns,
        monotonic_ns: start.monotonic_ns,
        boottime_ns: start.boottime_ns,
        ts_clock,
        wall_clock: "realtime_ns + (event ts_ns - ts_ns)",
        bpftrace: bin.display().to_string(),
        bpftrace_version: version,
    };
    write_json(&dir.join(CLOCK_FILE), &clock)
}

#[cfg(test)]
mod tests {
    use super::super::EVENTS_FILE;
    use super::*;
    use std::fs;

    #[test]
    fn start_line_is_found_across_partial_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(EVENTS_FILE);
        let line = "{\"event\":\"start\",\"ts_ns\":10,\"realtime_ns\":20,\"monotonic_ns\":9,\"boottime_ns\":9,\"schema\":1,\"capsnap_pid\":1}\n";
        let mut scanner = StartScanner::default();
        fs::write(&path, "{\"event\":\"exec\",\"ts_ns\":1}\n").expect("write");
        assert_eq!(scanner.scan(&path).expect("scan"), None);
        let (a, b) = line.split_at(30);
        fs::write(&path, format!("{{\"event\":\"exec\",\"ts_ns\":1}}\n{a}")).expect("write");
        assert_eq!(scanner.scan(&path).expect("scan"), None);
        fs::write(&path, format!("{{\"event\":\"exec\",\"ts_ns\":1}}\n{a}{b}")).expect("write");
        assert_eq!(
            scanner.scan(&path).expect("scan"),
            Some(StartLine {
                ts_ns: 10,
                realtime_ns: 20,
                monotonic_ns: 9,
                boottime_ns: 9
            })
        );
    }
}
