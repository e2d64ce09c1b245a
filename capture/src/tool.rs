//! Running a node's own tools (`ip`, `conntrack`, `iptables-save`,
//! `dmesg`, `journalctl`, `crictl` ...) into a bundle file, bounded in
//! time, with a report that tells a missing tool from a failing one.

use crate::report::{SourceReport, Status};
use crate::source::elapsed_ms;
use crate::sys;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the command a tool artifact names (its source id is `tool:` and the
/// command) into its file.
pub fn run_artifact(
    artifact: &formats::bundle::Artifact,
    out: &Path,
    rel: String,
    report: SourceReport,
    timeout: Duration,
) -> SourceReport {
    match artifact.command {
        Some(argv) if !argv.is_empty() => run_tool(argv, out, rel, report, timeout),
        _ => report.with(Status::Failed, "not a tool's output"),
    }
}

/// Runs `argv` with stdout into `out` (bundle path `rel`), killed after
/// `timeout`, and fills in `report`. The child runs in the network
/// namespace of the calling thread (a per-namespace source's thread has
/// entered it) and never outlives capsnap ([`sys::spawn_tied`]).
pub fn run_tool(
    argv: &[&str],
    out: &Path,
    rel: String,
    mut report: SourceReport,
    timeout: Duration,
) -> SourceReport {
    let started = Instant::now();
    let file = match File::create(out) {
        Ok(f) => f,
        Err(e) => {
            return report.with(
                Status::Failed,
                format!("cannot write {}: {e}", out.display()),
            );
        }
    };
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::piped());
    let mut child = match sys::spawn_tied(&mut cmd, None) {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(out);
            let (status, why) = match e.kind() {
                std::io::ErrorKind::NotFound => (
                    Status::Skipped,
                    format!("tool missing: {} is not installed", argv[0]),
                ),
                std::io::ErrorKind::PermissionDenied => (
                    Status::Failed,
                    format!(
                        "permission: cannot enter the namespace or run {}: {e}",
                        argv[0]
                    ),
                ),
                _ => (Status::Failed, format!("cannot run {}: {e}", argv[0])),
            };
            return report.with(status, why);
        }
    };
    let status = sys::wait_until(&mut child, started + timeout);
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    report.duration_ms = elapsed_ms(started);
    report.files.push(rel);
    let first_line = stderr
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_owned();
    match status {
        None => report.with(
            Status::Partial,
            format!(
                "timed out after {} ms; output so far kept",
                timeout.as_millis()
            ),
        ),
        Some(s) if s.success() => report,
        Some(s) => {
            let wrote = std::fs::metadata(out).map(|m| m.len() > 0).unwrap_or(false);
            let why = if first_line.is_empty() {
                format!("exited with {s}")
            } else {
                first_line
            };
            let why = if why.contains("ermission") || why.contains("not permitted") {
                format!("permission: {why}")
            } else {
                why
            };
            if wrote {
                report.with(Status::Partial, why)
            } else {
                report.files.clear();
                let _ = std::fs::remove_file(out);
                report.with(Status::Failed, why)
            }
        }
    }
}
