//! The kernel log, read from /dev/kmsg (no `dmesg` tool): every record the
//! kernel's buffer still holds, kept as the kernel gives them
//! (`prio,seq,usec,flags;message` and the record's dictionary lines,
//! Documentation/ABI/testing/dev-kmsg), so the table has the kernel's own
//! sequence numbers and timestamps.
//!
//! A new reader of /dev/kmsg starts at the oldest record; each read(2)
//! returns one record. Opened non-blocking, the read that would wait
//! (EAGAIN) is the end of the log. EPIPE says the records after the last
//! one read were overwritten meanwhile: the next read resumes at the
//! oldest one left, and the gap shows in the sequence numbers. Reading
//! needs CAP_SYSLOG while kernel.dmesg_restrict is set (the usual default).

use crate::report::{SourceReport, Status};
use crate::source::{Context, InNetns, Phase, Scope, Source, Window, elapsed_ms};
use formats::bundle::{Artifact, KERNEL_LOG};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct KernelLog;

/// A record is at most a message (1 KiB in practice, PRINTK_MESSAGE_MAX
/// 2 KiB) and its dictionary; the kernel refuses a read into less than
/// CONSOLE_EXT_LOG_MAX (8 KiB) with EINVAL (kernel/printk/printk.c,
/// `devkmsg_read`).
const RECORD_BUF: usize = 16 * 1024;
/// The buffer is log_buf_len (at most a few MiB); these bound a run that
/// races a kernel logging without pause.
const MAX_BYTES: u64 = 64 << 20;
const MAX_TIME: Duration = Duration::from_secs(10);

impl Source for KernelLog {
    fn name(&self) -> &'static str {
        "kernel log"
    }

    fn scope(&self) -> Scope {
        Scope::Node
    }

    fn phase(&self) -> Phase {
        Phase::Close
    }

    fn writes(&self) -> Vec<&'static Artifact> {
        vec![&KERNEL_LOG]
    }

    fn run(&self, cx: &Context, _: Option<&InNetns>, _: &Window) -> Vec<SourceReport> {
        let report = SourceReport::new(KERNEL_LOG.source, None);
        vec![read_kmsg(
            Path::new("/dev/kmsg"),
            &cx.node_file(&KERNEL_LOG),
            report,
        )]
    }
}

/// Copies every record of `kmsg` (a /dev/kmsg) into `out`.
fn read_kmsg(kmsg: &Path, out: &Path, mut report: SourceReport) -> SourceReport {
    let started = Instant::now();
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(kmsg)
    {
        Ok(f) => f,
        Err(e) => {
            let why = match e.kind() {
                io::ErrorKind::PermissionDenied => format!(
                    "permission: reading {} needs CAP_SYSLOG while kernel.dmesg_restrict is 1: {e}",
                    kmsg.display()
                ),
                io::ErrorKind::NotFound => {
                    return report.with(
                        Status::Skipped,
                        format!("{} does not exist here", kmsg.display()),
                    );
                }
                _ => format!("opening {}: {e}", kmsg.display()),
            };
            return report.with(Status::Failed, why);
        }
    };
    let mut sink = match File::create(out) {
        Ok(f) => io::BufWriter::new(f),
        Err(e) => {
            return report.with(
                Status::Failed,
                format!("cannot write {}: {e}", out.display()),
            );
        }
    };
    let (copied, trouble) = copy_records(&mut file, &mut sink, started);
    if let Err(e) = sink.flush() {
        return report.with(
            Status::Failed,
            format!("cannot write {}: {e}", out.display()),
        );
    }
    report.duration_ms = elapsed_ms(started);
    report.files.push(KERNEL_LOG.path.into());
    match trouble {
        Some(why) if copied == 0 => {
            report.files.clear();
            let _ = std::fs::remove_file(out);
            report.with(Status::Failed, why)
        }
        Some(why) => report.with(Status::Partial, why),
        None => report,
    }
}

/// Reads records until the log's end; returns the records copied and
/// what cut the copy short, if anything did.
fn copy_records(kmsg: &mut File, out: &mut impl Write, started: Instant) -> (u64, Option<String>) {
    let mut buf = vec![0u8; RECORD_BUF];
    let (mut records, mut bytes, mut overwritten) = (0u64, 0u64, 0u64);
    let trouble = loop {
        if bytes > MAX_BYTES || started.elapsed() > MAX_TIME {
            break Some(format!(
                "stopped after {records} records ({bytes} bytes, {} ms): the kernel kept logging",
                started.elapsed().as_millis()
            ));
        }
        match kmsg.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => {
                if let Err(e) = out.write_all(&buf[..n]) {
                    break Some(format!("cannot write: {e}"));
                }
                records += 1;
                bytes += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Overwritten before read: the next read goes on from the
            // oldest record left.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => overwritten += 1,
            Err(e) => break Some(format!("reading /dev/kmsg: {e}")),
        }
    };
    let trouble = match (trouble, overwritten) {
        (t, 0) => t,
        (None, n) => Some(format!(
            "records were overwritten while read ({n} times): the gaps show in `seq`"
        )),
        (Some(t), n) => Some(format!("{t}; records overwritten {n} times")),
    };
    (records, trouble)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_kmsg_reads_to_its_end_with_sequence_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("kmsg.txt");
        let r = read_kmsg(
            Path::new("/dev/kmsg"),
            &out,
            SourceReport::new("kernel_log", None),
        );
        if r.status == Status::Failed
            && r.reason
                .as_deref()
                .is_some_and(|w| w.contains("permission"))
        {
            eprintln!("SKIPPED: {:?}", r.reason);
            return;
        }
        assert_eq!(r.status, Status::Ok, "{:?}", r.reason);
        let text = std::fs::read_to_string(&out).unwrap();
        let seqs: Vec<u64> = text
            .lines()
            .filter_map(formats::kmsg_record)
            .map(|r| r.seq)
            .collect();
        assert!(!seqs.is_empty(), "{text}");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    }

    #[test]
    fn a_missing_device_is_skipped_not_failed() {
        let dir = tempfile::tempdir().unwrap();
        let r = read_kmsg(
            &dir.path().join("kmsg"),
            &dir.path().join("out"),
            SourceReport::new("kernel_log", None),
        );
        assert_eq!(r.status, Status::Skipped);
    }
}
