//! The copies a watch bundle has "from when its window opened". `collect`
//! copies snmp, netstat, sockstat ... when its window opens, so that the
//! readers give each counter's change during the window; a watch bundle's
//! window opened in the past (`--keep` before the trigger). So each
//! namespace's probe thread reads those /proc/net files every few seconds
//! and keeps the readings that a window may still reach back to; a bundle
//! gets, per namespace, the last reading taken at or before its window's
//! start (else the oldest: a watch younger than `--keep`).

use crate::netns::Netns;
use crate::report::SourceReport;
use formats::bundle::{Artifact, at_open_copies};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Readings kept per namespace at most, whatever `--keep` is: with the
/// default 60 s + 10 s one every 2 s, about 12 KiB each.
const READINGS_KEPT: u64 = 40;

/// One reading of the files of a namespace.
struct Reading {
    ts_ns: u64,
    files: Vec<(&'static Artifact, Vec<u8>)>,
}

pub struct OpenCopies {
    /// How far back a bundle's window may start (`--keep` + `--after` and
    /// a margin).
    span: Duration,
    /// Time between two kept readings.
    every: Duration,
    by_ns: Mutex<HashMap<String, VecDeque<Reading>>>,
}

impl OpenCopies {
    pub fn new(keep: Duration, after: Duration) -> OpenCopies {
        let span = keep + after + Duration::from_secs(5);
        let every = (span / READINGS_KEPT as u32).max(Duration::from_secs(1));
        OpenCopies {
            span,
            every,
            by_ns: Mutex::default(),
        }
    }

    /// The copies taken at window open that are /proc/net files, with the
    /// file name under /proc/net.
    fn files() -> impl Iterator<Item = (&'static Artifact, &'static str)> {
        at_open_copies().filter_map(|copy| Some((copy, copy.taken_at_close()?.proc_net_file()?)))
    }

    /// Reads the files of the calling thread's namespace at `now_ns`, when
    /// the last reading of `ns` is older than the period.
    pub fn record(&self, ns: &str, now_ns: u64) {
        {
            let by_ns = self.by_ns.lock().unwrap_or_else(PoisonError::into_inner);
            let last = by_ns.get(ns).and_then(|r| r.back()).map(|r| r.ts_ns);
            if last.is_some_and(|t| now_ns.saturating_sub(t) < self.every.as_nanos() as u64) {
                return;
            }
        }
        let dir = Path::new("/proc/thread-self/net");
        let files = Self::files()
            .filter_map(|(copy, name)| Some((copy, std::fs::read(dir.join(name)).ok()?)))
            .collect();
        let mut by_ns = self.by_ns.lock().unwrap_or_else(PoisonError::into_inner);
        let readings = by_ns.entry(ns.to_owned()).or_default();
        readings.push_back(Reading {
            ts_ns: now_ns,
            files,
        });
        let oldest = now_ns.saturating_sub(self.span.as_nanos() as u64);
        // Keep one reading at or before `oldest`: the window may start there.
        while readings.len() > 1 && readings[1].ts_ns <= oldest {
            readings.pop_front();
        }
    }

    /// Writes into `staging` the reading of `ns` for a window starting at
    /// `from_ns`, and reports it; with the time it was taken.
    pub fn write(
        &self,
        ns: &Netns,
        staging: &Path,
        from_ns: u64,
    ) -> (Vec<SourceReport>, Option<u64>) {
        let by_ns = self.by_ns.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(readings) = by_ns.get(&ns.label) else {
            return (Vec::new(), None);
        };
        let Some(reading) = readings
            .iter()
            .rev()
            .find(|r| r.ts_ns <= from_ns)
            .or_else(|| readings.front())
        else {
            return (Vec::new(), None);
        };
        let reports = reading
            .files
            .iter()
            .map(|(copy, bytes)| {
                let rel = copy.path_in(Some(&ns.dir));
                let report = SourceReport::new(copy.source, Some(ns.label.clone()));
                let path = staging.join(&rel);
                let written = path
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| std::fs::write(&path, bytes));
                match written {
                    Ok(()) => {
                        let mut report = report;
                        report.files.push(rel);
                        report
                    }
                    Err(e) => report.with(
                        crate::report::Status::Failed,
                        format!("writing {}: {e}", path.display()),
                    ),
                }
            })
            .collect();
        (reports, Some(reading.ts_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_gets_the_last_reading_at_or_before_its_start() {
        let copies = OpenCopies::new(Duration::from_secs(10), Duration::from_secs(2));
        assert_eq!(copies.every, Duration::from_secs(1));
        let s = 1_000_000_000u64;
        for t in [100, 100, 101, 102, 103, 130] {
            copies.record("host", t * s);
        }
        let by_ns = copies.by_ns.lock().unwrap();
        let times: Vec<u64> = by_ns["host"].iter().map(|r| r.ts_ns / s).collect();
        // The second reading at 100 s came too soon; at 130 s the span
        // (17 s) reaches back to 113 s: 103 s is the last before it.
        assert_eq!(times, [103, 130]);
        // This thread's namespace has the files (snmp, netstat ...).
        assert!(
            by_ns["host"][0].files.len() >= 4,
            "{}",
            by_ns["host"][0].files.len()
        );
    }

    #[test]
    fn readings_are_spaced_for_a_long_keep() {
        let copies = OpenCopies::new(Duration::from_secs(600), Duration::from_secs(10));
        assert_eq!(copies.every.as_secs(), 615 / READINGS_KEPT);
    }
}
