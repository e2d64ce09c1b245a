//! Classic log files, the end of each one present, under `logs/`: a node
//! without journald, or whose journal is volatile, keeps the kubelet,
//! container runtime, systemd and dbus lines only where rsyslog (or the
//! kubelet's own `--log-file`) writes them.

use crate::report::{SourceReport, Status};
use crate::source::{Context, InNetns, Phase, Scope, Source, Window, elapsed_ms};
use formats::bundle::{Artifact, LOG_FILES as LOGS};
use std::fs::File;
use std::path::Path;
use std::time::Instant;

pub struct LogFiles;

impl Source for LogFiles {
    fn name(&self) -> &'static str {
        "log files"
    }

    fn scope(&self) -> Scope {
        Scope::Node
    }

    fn phase(&self) -> Phase {
        Phase::Close
    }

    fn writes(&self) -> Vec<&'static Artifact> {
        vec![&LOGS]
    }

    fn run(&self, cx: &Context, _: Option<&InNetns>, _: &Window) -> Vec<SourceReport> {
        vec![log_files_from(
            FILES.iter().map(Path::new),
            &cx.staging,
            LOG_TAIL_BYTES,
        )]
    }
}

/// Classic log files, read when present. A node without journald, or whose
/// journal is volatile, keeps the kubelet, container runtime, systemd and
/// dbus lines only where rsyslog (or the kubelet's own `--log-file`) writes
/// them.
const FILES: &[&str] = &[
    "/var/log/syslog",
    "/var/log/messages",
    "/var/log/kern.log",
    "/var/log/daemon.log",
    "/var/log/kubelet.log",
];

/// Bytes kept of the end of each log file.
const LOG_TAIL_BYTES: u64 = 4 << 20;

/// Copies the end of each classic log file present to `logs/<name>`: one
/// source, partial when a file was cut to its last [`LOG_TAIL_BYTES`] or
/// could not be read, skipped when none exists.
fn log_files_from<'a>(
    files: impl Iterator<Item = &'a Path>,
    root: &Path,
    max: u64,
) -> SourceReport {
    let started = Instant::now();
    let mut r = SourceReport::new(LOGS.source, None);
    let mut notes = Vec::new();
    for src in files {
        let Some(name) = src.file_name() else {
            continue;
        };
        // Only regular files: a FIFO or a device would block the read.
        match std::fs::metadata(src) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                notes.push(format!("{}: {e}", src.display()));
                continue;
            }
            Ok(m) if !m.is_file() => {
                notes.push(format!("{} is not a regular file", src.display()));
                continue;
            }
            Ok(_) => {}
        }
        let rel = format!("{}{}", LOGS.path, name.to_string_lossy());
        let written = tail(src, max).and_then(|(bytes, len)| {
            std::fs::create_dir_all(root.join(LOGS.path))?;
            std::fs::write(root.join(&rel), &bytes)?;
            Ok((bytes.len() as u64, len))
        });
        match written {
            Ok((kept, len)) => {
                if kept < len {
                    notes.push(format!(
                        "{}: last {kept} of {len} bytes kept",
                        src.display()
                    ));
                }
                r.files.push(rel);
            }
            Err(e) => notes.push(format!("{}: {e}", src.display())),
        }
    }
    r.duration_ms = elapsed_ms(started);
    if notes.is_empty() {
        if r.files.is_empty() {
            r = r.with(
                Status::Skipped,
                format!("none of {} exists", FILES.join(", ")),
            );
        }
        return r;
    }
    let status = if r.files.is_empty() {
        Status::Failed
    } else {
        Status::Partial
    };
    let why = notes.join("; ");
    let why = if why.contains("ermission denied") {
        format!("permission: {why}")
    } else {
        why
    };
    r.with(status, why)
}

/// The end of `path`: its last `max` bytes without the partial line they
/// may start with, and the file's length.
fn tail(path: &Path, max: u64) -> std::io::Result<(Vec<u8>, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(max);
    // From one byte earlier when cutting: whether it is a newline tells
    // whether `start` begins a line.
    let from = start.saturating_sub(1);
    f.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    // `take`: the file may grow while it is read.
    f.take(len - from).read_to_end(&mut bytes)?;
    if start > 0 {
        let cut = bytes
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| i + 1);
        bytes.drain(..cut);
    }
    Ok((bytes, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_whole_lines_of_the_end() {
        let cases: &[(&str, u64, &str)] = &[
            ("a\nbb\nccc\n", 100, "a\nbb\nccc\n"),
            ("a\nbb\nccc\n", 9, "a\nbb\nccc\n"),
            ("a\nbb\nccc\n", 8, "bb\nccc\n"),
            ("a\nbb\nccc\n", 7, "bb\nccc\n"),
            ("a\nbb\nccc\n", 6, "ccc\n"),
            ("a\nbb\nccc\n", 4, "ccc\n"),
            ("a\nbb\nccc\n", 3, ""),
            ("a\nbb\nccc", 5, "ccc"),
            ("a\nbb\nccc", 2, ""),
            ("", 4, ""),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages");
        for (text, max, want) in cases {
            std::fs::write(&path, text).unwrap();
            let (bytes, len) = tail(&path, *max).unwrap();
            assert_eq!(
                (String::from_utf8(bytes).unwrap().as_str(), len),
                (*want, text.len() as u64),
                "{text:?} max {max}"
            );
        }
    }

    #[test]
    fn log_files_copies_present_files_and_reports_cut_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (logs, out) = (dir.path().join("var-log"), dir.path().join("bundle"));
        std::fs::create_dir_all(logs.join("kubelet.log")).unwrap(); // not a file
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(logs.join("syslog"), "x\n").unwrap();
        std::fs::write(
            logs.join("messages"),
            "old\nkubelet[7]: PLEG is not healthy\n",
        )
        .unwrap();
        let files = ["syslog", "messages", "daemon.log", "kubelet.log"].map(|f| logs.join(f));

        let r = log_files_from(files.iter().map(|p| p.as_path()), &out, 34);
        assert_eq!(r.status, Status::Partial);
        assert_eq!(r.files, ["logs/syslog", "logs/messages"]);
        let reason = r.reason.unwrap();
        assert!(
            reason.contains("messages: last 32 of 36 bytes kept"),
            "{reason}"
        );
        assert!(
            reason.contains("kubelet.log is not a regular file"),
            "{reason}"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("logs/messages")).unwrap(),
            "kubelet[7]: PLEG is not healthy\n"
        );

        let none = [logs.join("kern.log")];
        let r = log_files_from(none.iter().map(|p| p.as_path()), &out, 34);
        assert_eq!(r.status, Status::Skipped);
    }
}
