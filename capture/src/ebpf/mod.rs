//! eBPF events through bpftrace: exec, TCP state changes, connects, resets
//! sent and received, retransmits and packet drops with a reason, one JSON
//! object per line in `ebpf/events.jsonl`.
//!
//! Why bpftrace and tracepoints only: bpftrace compiles against the running
//! kernel's BTF, so nothing is built per kernel, and tracepoints are a stable
//! interface. kprobes are not, and kernels built without `CONFIG_KPROBES`
//! (such as the lab's 6.18) have none; bpftrace 0.17 cannot use fentry there
//! either. The probes live in `capture/bpftrace/*.bt`, one file per event
//! kind, each with its tracepoint and why:
//! `sched:sched_process_exec` (exec), `sock:inet_sock_set_state` (tcp_state,
//! connect), `tcp:tcp_retransmit_skb` and `tcp:tcp_retransmit_synack`
//! (retransmit), `tcp:tcp_receive_reset` (reset_received),
//! `tcp:tcp_send_reset` (reset_sent), `skb:kfree_skb` (drop), and
//! `syscalls:sys_enter_prctl` (start, the attach sentinel). [`PROBES`] names
//! the tracepoint fields each reads; [`start_bpftrace`] leaves out a probe
//! whose tracepoint is missing or has another shape on this kernel (and says
//! so in the report) instead of handing bpftrace a script that does not
//! compile. The probes see every network namespace, whichever one capsnap
//! runs in; the `netns` field (a namespace inode) tells them apart.
//!
//! Files written under `out_dir/ebpf/`:
//! - `events.jsonl`: bpftrace's stdout. Every event has `event` and `ts_ns`
//!   (bpftrace's `nsecs`). Kinds: `start` (probes attached; pairs `ts_ns`
//!   with CLOCK_REALTIME), `exec`, `tcp_state`, `connect`, `retransmit`,
//!   `reset_received`, `reset_sent`, `drop`, `suppressed` (rate limit hit),
//!   `stop`. Lines from different CPUs are not in time order: sort by
//!   `ts_ns`. Readers must skip blank lines and the `Lost N events` lines
//!   bpftrace prints there when a perf buffer overflows.
//! - `bpftrace.stderr`, `probes.bt` (the exact script run), `clock.json`
//!   (how to turn `ts_ns` into wall-clock time) and `summary.json` (counts).
//!
//! Limitations, from bpftrace 0.17's `printf`: strings (comm, file names,
//! argv) are printed unescaped. A quote or backslash in one makes its event
//! invalid JSON, and a newline (common in `sh -c` scripts) splits it over
//! several lines. Every event starts a line with `{"event":"` and its string
//! fields come last, in the fixed order of its probe file, so a reader can
//! join the continuation lines and take such an event apart
//! ([`formats::bpftrace`] does the joining; `summary.json` counts them as
//! `unescaped`). Strings are cut at 63 bytes (`BPFTRACE_STRLEN` is
//! [`formats::bpftrace::STRLEN`], which `exec.bt` is sized for: its printf
//! record is built on the 512-byte BPF stack), argv after 4 entries. Each kind is
//! limited to 1000-2000 lines a second (the `limit` of each [`Probe`]) so
//! that a storm cannot fill the disk; what was left out is reported by
//! `suppressed` lines and makes the source `partial`.
//!
//! The parts: [`probes`] (the probe table, and the script planned against
//! this kernel's tracepoint formats), [`tracefs`] (finding or mounting it),
//! [`clock`] (pairing bpftrace's `nsecs` with wall-clock time:
//! `clock.json`) and [`summary`] (counting the events file into
//! `summary.json`). This file runs the session: start, wait for the
//! probes, stop, report.
//!
//! [`PROBES`]: probes::PROBES
//! [`Probe`]: probes::Probe

mod clock;
mod probes;
mod summary;
mod tracefs;

use crate::report::{SourceReport, Status};
use crate::sys;
use clock::{Clocks, StartLine, StartScanner, write_clock};
use formats::bundle;
use probes::{START_MAGIC, nonce, plan};
use serde::Serialize;
use std::fs::{self, File};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};
use summary::{Summary, count_events, kinds_text, trim_trailing_newlines};
use tracefs::ensure_tracefs;

/// How to run the probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EbpfOptions {
    /// bpftrace executable name or path.
    pub bpftrace: String,
    /// How long to wait for the probes to attach before giving up. bpftrace
    /// 0.17 takes 3-6 s to compile and attach these probes on an idle
    /// machine: allow 30 s on a loaded node.
    pub attach_timeout: Duration,
}

/// A running bpftrace; stopping it (or dropping it) ends the child.
#[derive(Debug)]
pub struct EbpfSession {
    /// The bpftrace process, leader of its own process group. `None` once
    /// it has been reaped.
    child: Option<Child>,
    /// `out_dir/ebpf`.
    dir: PathBuf,
    started: Instant,
    /// Probes left out on this kernel, and why.
    omitted: Vec<String>,
    /// Set when capsnap had to mount tracefs itself.
    mounted_tracefs: Option<PathBuf>,
    /// For a streamed session: the thread reading bpftrace's output, which
    /// ends when bpftrace does.
    tee: Option<std::thread::JoinHandle<()>>,
}

/// What a streamed session hands over: each record of bpftrace's output
/// (an event, or `Lost N events`), as the events file would hold it.
pub type OnRecord = Box<dyn FnMut(&[u8]) + Send>;

/// Source name in the report.
const SOURCE: &str = bundle::EVENTS.source;

/// How long bpftrace gets to run its END block after SIGINT.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How often the start line is polled for.
const ATTACH_POLL: Duration = Duration::from_millis(50);

const EVENTS_FILE: &str = file_name(&bundle::EVENTS);
const STDERR_FILE: &str = file_name(&bundle::EBPF_STDERR);
const SCRIPT_FILE: &str = file_name(&bundle::EBPF_SCRIPT);
const CLOCK_FILE: &str = file_name(&bundle::EBPF_CLOCK);
const SUMMARY_FILE: &str = file_name(&bundle::EBPF_SUMMARY);
/// The folder of the session's files in the bundle (`ebpf`): every file it
/// writes is an artifact of the registry under it.
const DIR: &str = bundle::EVENTS
    .path
    .split_at(bundle::EVENTS.path.len() - EVENTS_FILE.len() - 1)
    .0;

/// The last component of an artifact's path.
const fn file_name(a: &bundle::Artifact) -> &'static str {
    let bytes = a.path.as_bytes();
    let mut i = bytes.len();
    while i > 0 && bytes[i - 1] != b'/' {
        i -= 1;
    }
    a.path.split_at(i).1
}

/// Starts the probes, writing JSON lines to `out_dir/ebpf/events.jsonl`,
/// and returns once they are attached. `Err` is the report of why not.
///
/// bpftrace runs in its own process group and gets SIGKILL when the thread
/// that called this function exits (PR_SET_PDEATHSIG follows the parent
/// thread, not the process): call it from a thread that outlives the
/// session, such as the one that will call [`EbpfSession::stop`].
pub fn start_bpftrace(opts: &EbpfOptions, out_dir: &Path) -> Result<EbpfSession, SourceReport> {
    start(opts, out_dir, None)
}

/// Like [`start_bpftrace`], for a session that runs for hours (`capsnap
/// watch`): bpftrace's output is not kept in the events file, which would
/// grow without bound, but read from a pipe by a thread of the session and
/// handed to `each` record by record, joined as the readers join them
/// ([`formats::bpftrace::read_records`]). The events file gets the lines
/// up to the `start` line only, which tell that the probes are attached.
/// [`EbpfSession::bundle_files`] writes a bundle's eBPF files from the
/// records the caller kept.
pub fn stream_bpftrace(
    opts: &EbpfOptions,
    out_dir: &Path,
    each: OnRecord,
) -> Result<EbpfSession, SourceReport> {
    start(opts, out_dir, Some(each))
}

fn start(
    opts: &EbpfOptions,
    out_dir: &Path,
    stream: Option<OnRecord>,
) -> Result<EbpfSession, SourceReport> {
    let began = Instant::now();
    let fail = |status: Status, reason: String, files: Vec<String>| {
        let mut report = SourceReport::new(SOURCE, None).with(status, reason);
        report.files = files;
        report.duration_ms = millis(began.elapsed());
        report
    };

    let Some(bin) = sys::find_executable(&opts.bpftrace) else {
        return Err(fail(
            Status::Skipped,
            "bpftrace not installed".to_string(),
            Vec::new(),
        ));
    };
    if !sys::is_root() {
        return Err(fail(
            Status::Failed,
            "permission: bpftrace needs root (CAP_BPF, CAP_PERFMON)".to_string(),
            Vec::new(),
        ));
    }
    let tracefs = ensure_tracefs().map_err(|e| fail(Status::Failed, e, Vec::new()))?;

    let dir = out_dir.join(DIR);
    fs::create_dir_all(&dir).map_err(|e| {
        fail(
            Status::Failed,
            format!("cannot create {}: {e}", dir.display()),
            Vec::new(),
        )
    })?;
    let nonce = nonce();
    let plan = plan(&tracefs.path, nonce).map_err(|e| fail(Status::Failed, e, Vec::new()))?;
    let script_path = dir.join(SCRIPT_FILE);
    let files_so_far = || existing_files(&dir, &[SCRIPT_FILE, EVENTS_FILE, STDERR_FILE]);
    let open = |name: &str| {
        File::create(dir.join(name))
            .map_err(|e| format!("cannot create {}: {e}", dir.join(name).display()))
    };
    let (events, stderr) = fs::write(&script_path, &plan.script)
        .map_err(|e| format!("cannot write {}: {e}", script_path.display()))
        .and_then(|()| Ok((open(EVENTS_FILE)?, open(STDERR_FILE)?)))
        .map_err(|e| fail(Status::Failed, e, files_so_far()))?;

    let (stdout, tee_file) = match &stream {
        None => (Stdio::from(events), None),
        Some(_) => (Stdio::piped(), Some(events)),
    };
    let mut child = spawn(&bin, &script_path, stdout, stderr).map_err(|e| {
        fail(
            Status::Failed,
            format!("cannot start {}: {e}", bin.display()),
            files_so_far(),
        )
    })?;
    let tee = match (stream, tee_file, child.stdout.take()) {
        (Some(each), Some(file), Some(pipe)) => Some(tee(pipe, file, each)),
        _ => None,
    };
    let mut session = EbpfSession {
        child: Some(child),
        dir,
        started: began,
        omitted: plan.omitted,
        mounted_tracefs: tracefs.mounted.then_some(tracefs.path),
        tee,
    };
    match session.wait_attached(opts.attach_timeout, nonce) {
        Ok(start) => {
            if let Err(e) = write_clock(&session.dir, &start, &bin) {
                session.omitted.push(format!("no {CLOCK_FILE}: {e}"));
            }
            Ok(session)
        }
        Err(reason) => {
            session.finish(false);
            let files = existing_files(&session.dir, &[SCRIPT_FILE, EVENTS_FILE, STDERR_FILE]);
            Err(fail(Status::Failed, reason, files))
        }
    }
}

impl EbpfSession {
    /// Stops bpftrace and reports what was collected.
    ///
    /// SIGINT lets bpftrace detach and run its END block (which prints the
    /// last `suppressed` counts and the `stop` line); after `STOP_GRACE` (2 s)
    /// the process group gets SIGKILL.
    pub fn stop(mut self) -> SourceReport {
        let ending = self.finish(true);
        let events_path = self.dir.join(EVENTS_FILE);
        // bpftrace 0.17 prints one empty line per map when it exits, even
        // for maps the END block cleared; they are not events.
        let _ = trim_trailing_newlines(&events_path);
        self.report(&self.dir, Some(ending))
    }

    /// Writes the eBPF files of a bundle into `out_dir/ebpf` while the
    /// session goes on: `events` (records of a streamed session, one a
    /// line) as the events file, the script, the clock and bpftrace's
    /// stderr as they are, and the summary of those events; reports them
    /// as [`EbpfSession::stop`] does.
    pub fn bundle_files(&self, events: &[u8], out_dir: &Path) -> SourceReport {
        let dir = out_dir.join(DIR);
        let mut written =
            fs::create_dir_all(&dir).and_then(|()| fs::write(dir.join(EVENTS_FILE), events));
        for name in [SCRIPT_FILE, CLOCK_FILE, STDERR_FILE] {
            if written.is_ok() && self.dir.join(name).is_file() {
                written = fs::copy(self.dir.join(name), dir.join(name)).map(|_| ());
            }
        }
        let mut report = self.report(&dir, None);
        if let Err(e) = written {
            report = report.with(
                Status::Failed,
                format!("cannot write {}: {e}", dir.display()),
            );
        }
        report
    }

    /// The report of the events in `dir` (and their `summary.json`):
    /// `ending` is how bpftrace ended, `None` while it runs on.
    fn report(&self, dir: &Path, ending: Option<Option<Ending>>) -> SourceReport {
        let events_path = dir.join(EVENTS_FILE);
        let (mut summary, unreadable) = match count_events(&events_path) {
            Ok(summary) => (summary, None),
            Err(e) => (
                Summary::default(),
                Some(format!("cannot read {EVENTS_FILE}: {e}")),
            ),
        };
        summary.omitted = self.omitted.clone();
        summary.mounted_tracefs = self
            .mounted_tracefs
            .as_ref()
            .map(|p| p.display().to_string());

        let mut notes = Vec::new();
        let mut status = Status::Ok;
        let stderr = || stderr_head(&self.dir.join(STDERR_FILE));
        match ending {
            None => summary.exit = "running".to_string(),
            Some(Some(Ending::Exited(st))) => {
                summary.exit = st.to_string();
                status = if summary.total > 0 {
                    Status::Partial
                } else {
                    Status::Failed
                };
                notes.push(format!(
                    "bpftrace exited by itself before stop ({st}): {}",
                    stderr()
                ));
            }
            Some(Some(Ending::Stopped(st))) => {
                summary.exit = st.to_string();
                if !st.success() {
                    status = Status::Partial;
                    notes.push(format!("bpftrace ended with {st}: {}", stderr()));
                }
            }
            Some(Some(Ending::Killed) | None) => {
                summary.exit = "killed".to_string();
                status = Status::Partial;
                notes.push(format!(
                    "bpftrace did not stop within {STOP_GRACE:?} of SIGINT and was killed; \
                     the last events may be missing"
                ));
            }
        }
        if let Some(e) = unreadable {
            status = Status::Failed;
            notes.push(e);
        }
        if summary.lost > 0 {
            status = worst(status, Status::Partial);
            notes.push(format!(
                "{} events lost by bpftrace (perf buffer full)",
                summary.lost
            ));
        }
        for (kind, n) in &summary.suppressed {
            status = worst(status, Status::Partial);
            notes.push(format!("rate limit: {n} {kind} events not recorded"));
        }
        if summary.unparsed > 0 {
            status = worst(status, Status::Partial);
            notes.push(format!(
                "{} lines of bpftrace's output are not events",
                summary.unparsed
            ));
        }
        if !self.omitted.is_empty() {
            status = worst(status, Status::Partial);
            notes.extend(self.omitted.iter().cloned());
        }
        let _ = write_json(&dir.join(SUMMARY_FILE), &summary);

        let mut report = SourceReport::new(SOURCE, None);
        report.status = status;
        if status != Status::Ok {
            notes.push(format!(
                "recorded {} events ({})",
                summary.total,
                kinds_text(&summary.events)
            ));
            report.reason = Some(notes.join("; "));
        }
        report.files = existing_files(
            dir,
            &[
                EVENTS_FILE,
                STDERR_FILE,
                CLOCK_FILE,
                SCRIPT_FILE,
                SUMMARY_FILE,
            ],
        );
        report.duration_ms = millis(self.started.elapsed());
        report
    }

    /// Calls the start sentinel until its line shows up in the events file.
    fn wait_attached(&mut self, timeout: Duration, nonce: u64) -> Result<StartLine, String> {
        let deadline = Instant::now() + timeout;
        let mut scanner = StartScanner::default();
        let events_path = self.dir.join(EVENTS_FILE);
        loop {
            let Some(child) = self.child.as_mut() else {
                return Err("bpftrace is gone".to_string());
            };
            match child.try_wait() {
                Ok(Some(st)) => {
                    self.child = None;
                    return Err(format!(
                        "bpftrace exited ({st}) before its probes were attached: {}",
                        stderr_head(&self.dir.join(STDERR_FILE))
                    ));
                }
                Ok(None) => {}
                Err(e) => return Err(format!("cannot wait for bpftrace: {e}")),
            }
            let clocks = Clocks::now();
            // SAFETY: prctl() with integer arguments only; the option is
            // unknown to the kernel, so it returns EINVAL without effect.
            unsafe {
                libc::prctl(
                    START_MAGIC,
                    clocks.realtime as libc::c_ulong,
                    nonce as libc::c_ulong,
                    clocks.monotonic as libc::c_ulong,
                    clocks.boottime as libc::c_ulong,
                );
            }
            if let Some(start) = scanner
                .scan(&events_path)
                .map_err(|e| format!("cannot read {}: {e}", events_path.display()))?
            {
                return Ok(start);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "probes not attached within {timeout:?} (bpftrace still compiling or \
                     attaching): {}",
                    stderr_head(&self.dir.join(STDERR_FILE))
                ));
            }
            sleep(ATTACH_POLL);
        }
    }

    /// Ends bpftrace (gently: SIGINT first) and reaps it. Idempotent.
    fn finish(&mut self, gently: bool) -> Option<Ending> {
        let ending = self.end_child(gently);
        // The pipe is at its end once bpftrace (and its group) is gone.
        if let Some(tee) = self.tee.take() {
            let _ = tee.join();
        }
        ending
    }

    fn end_child(&mut self, gently: bool) -> Option<Ending> {
        let mut child = self.child.take()?;
        if let Ok(Some(st)) = child.try_wait() {
            return Some(Ending::Exited(st));
        }
        // The child is not reaped yet, so its pid (= its process group, see
        // `spawn`) cannot have been reused: signalling the group is safe.
        let pgid = child.id() as libc::pid_t;
        if gently {
            // SAFETY: kill() only sends a signal.
            unsafe { libc::kill(-pgid, libc::SIGINT) };
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline {
                match child.try_wait() {
                    Ok(Some(st)) => return Some(Ending::Stopped(st)),
                    Ok(None) => sleep(Duration::from_millis(20)),
                    Err(_) => break,
                }
            }
        }
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = child.wait();
        Some(Ending::Killed)
    }
}

impl Drop for EbpfSession {
    /// A session dropped without [`EbpfSession::stop`] (an error path, a
    /// panic) must not leave probes attached: kill and reap bpftrace.
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// How bpftrace ended.
#[derive(Debug)]
enum Ending {
    /// It had exited before it was asked to.
    Exited(ExitStatus),
    /// It exited on SIGINT.
    Stopped(ExitStatus),
    /// It had to be killed.
    Killed,
}

/// `a` or `b`, whichever is worse.
fn worst(a: Status, b: Status) -> Status {
    let rank = |s: Status| match s {
        Status::Ok => 0,
        Status::Skipped => 1,
        Status::Partial => 2,
        Status::Failed => 3,
    };
    if rank(b) > rank(a) { b } else { a }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Starts bpftrace on `script` with its output going to the given files,
/// tied to the calling thread ([`sys::spawn_tied`]).
fn spawn(bin: &Path, script: &Path, events: Stdio, stderr: File) -> io::Result<Child> {
    let mut cmd = Command::new(bin);
    // -q: no "Attaching N probes..." on stdout. -B line: every event line
    // reaches the file as it is printed (stdout is not a tty: full buffering
    // otherwise, and the start line would sit in the buffer).
    cmd.arg("-q")
        .arg("-B")
        .arg("line")
        .arg(script)
        .env("BPFTRACE_STRLEN", formats::bpftrace::STRLEN.to_string())
        .stdin(Stdio::null())
        .stdout(events)
        .stderr(stderr)
        // Own process group (setpgid(0, 0) in the child before exec), so
        // that stop/drop signal bpftrace and anything it starts, and a ^C
        // meant for capsnap does not reach it before capsnap asks.
        .process_group(0);
    // SAFETY: the closure runs in the forked child before exec and only
    // makes an async-signal-safe system call.
    unsafe {
        cmd.pre_exec(|| {
            // Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; bpftrace
            // tries to raise it itself. Failure is harmless on newer kernels.
            let unlimited = libc::rlimit {
                rlim_cur: libc::RLIM_INFINITY,
                rlim_max: libc::RLIM_INFINITY,
            };
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited);
            Ok(())
        });
    }
    // Die with capsnap, even if capsnap is SIGKILLed.
    sys::spawn_tied(&mut cmd, None)
}

/// Reads bpftrace's output from `pipe` until it ends: the records up to
/// the `start` line also go to `file` (where the session looks for it),
/// every record to `each`.
fn tee(
    pipe: std::process::ChildStdout,
    file: File,
    mut each: OnRecord,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        use std::io::Write;
        let mut file = Some(io::BufWriter::new(file));
        let _ = formats::bpftrace::read_records(io::BufReader::new(pipe), |item| {
            let lost;
            let bytes: &[u8] = match &item {
                formats::bpftrace::Item::Record { bytes, .. } => bytes,
                formats::bpftrace::Item::Lost { count, .. } => {
                    lost = format!("Lost {count} events");
                    lost.as_bytes()
                }
                formats::bpftrace::Item::Stray { bytes, .. } => bytes,
            };
            if let Some(f) = file.as_mut() {
                let _ = f.write_all(bytes).and_then(|()| f.write_all(b"\n"));
                let _ = f.flush();
                if formats::bpftrace::event_kind(bytes) == Some("start") {
                    file = None;
                }
            }
            each(bytes);
        });
    })
}

fn write_json(path: &Path, value: &impl Serialize) -> io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    text.push('\n');
    fs::write(path, text)
}

/// The first lines of bpftrace's stderr, for a report reason. The
/// RLIMIT_MEMLOCK complaint of bpftrace 0.17 is left out: on kernels that
/// account BPF memory to cgroups (5.11+) it is harmless, and it would hide
/// the line that matters.
fn stderr_head(path: &Path) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let useful: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.contains("RLIMIT_MEMLOCK"))
        .collect();
    let chosen = if useful.is_empty() { lines } else { useful };
    if chosen.is_empty() {
        return "no message from bpftrace".to_string();
    }
    chosen
        .iter()
        .take(5)
        .map(|l| {
            if l.len() > 300 {
                format!("{}...", truncate(l, 300))
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Bundle paths (`ebpf/x`) of those of `names` that exist in `dir`.
fn existing_files(dir: &Path, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|n| dir.join(n).is_file())
        .map(|n| format!("{DIR}/{n}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::summary::{Item, for_each_item};
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::fs::PermissionsExt;

    /// Why the live tests cannot run here, if they cannot.
    fn live_skip_reason() -> Option<String> {
        if !sys::is_root() {
            return Some("not root".to_string());
        }
        if sys::find_executable("bpftrace").is_none() {
            return Some("bpftrace not installed".to_string());
        }
        None
    }

    fn live_opts() -> EbpfOptions {
        EbpfOptions {
            bpftrace: "bpftrace".to_string(),
            attach_timeout: Duration::from_secs(90),
        }
    }

    /// The events of a run, and the records that are not JSON (strings of
    /// other processes holding quotes or newlines) as text.
    fn events(dir: &Path) -> (Vec<serde_json::Value>, Vec<String>) {
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for_each_item(&dir.join("ebpf").join(EVENTS_FILE), |item| match item {
            Item::Record { bytes: r, .. } => match serde_json::from_slice(&r) {
                Ok(v) => good.push(v),
                Err(_) => bad.push(String::from_utf8_lossy(&r).into_owned()),
            },
            Item::Lost { count, .. } => panic!("bpftrace lost {count} events"),
            Item::Stray { bytes, .. } => panic!("stray line: {}", String::from_utf8_lossy(bytes)),
        })
        .expect("events file");
        (good, bad)
    }

    /// No process of `pid`'s process group is left (bpftrace runs as the
    /// leader of its own group).
    fn group_is_gone(pid: u32) -> bool {
        if Path::new(&format!("/proc/{pid}")).exists() {
            return false;
        }
        let Ok(entries) = fs::read_dir("/proc") else {
            return true;
        };
        !entries.flatten().any(|e| {
            let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid pgrp ...: comm may hold spaces.
            let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            after.split_whitespace().nth(2) == Some(pid.to_string().as_str())
        })
    }

    #[test]
    fn missing_bpftrace_is_skipped() {
        let out = tempfile::tempdir().expect("tempdir");
        let opts = EbpfOptions {
            bpftrace: "/nonexistent/bpftrace".to_string(),
            attach_timeout: Duration::from_secs(1),
        };
        let report = start_bpftrace(&opts, out.path()).expect_err("no bpftrace, no session");
        assert_eq!(report.source, "ebpf");
        assert_eq!(report.status, Status::Skipped);
        assert_eq!(report.reason.as_deref(), Some("bpftrace not installed"));
        assert!(report.files.is_empty());
        assert!(
            !out.path().join("ebpf").exists(),
            "nothing is written when skipped"
        );
    }

    #[test]
    fn events_of_an_exec_and_a_refused_connect() {
        if let Some(why) = live_skip_reason() {
            println!("SKIPPED: {why}");
            return;
        }
        let out = tempfile::tempdir().expect("tempdir");
        let before = Clocks::now();
        let session = start_bpftrace(&live_opts(), out.path())
            .unwrap_or_else(|r| panic!("bpftrace did not start: {r:?}"));
        let omitted = session.omitted.clone();

        // An exec with a marker argument, by a shell that the test started.
        let sh = std::process::Command::new("/bin/sh")
            .args(["-c", "exec /bin/true capsnap-probe-arg"])
            .spawn()
            .expect("spawn sh");
        let sh_pid = sh.id();
        let status = sh.wait_with_output().expect("wait sh").status;
        assert!(status.success());
        // A port nobody listens on: bind, note the port, close.
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let refused = TcpStream::connect(("127.0.0.1", port));
        assert!(refused.is_err(), "port {port} should be closed");
        // Let bpftrace drain its perf buffers (it polls every 100 ms).
        sleep(Duration::from_millis(500));
        let report = session.stop();
        let after = Clocks::now();

        assert_eq!(report.source, "ebpf");
        assert_eq!(
            report.status,
            if omitted.is_empty() {
                Status::Ok
            } else {
                Status::Partial
            },
            "{report:?}"
        );
        for f in [
            "ebpf/events.jsonl",
            "ebpf/bpftrace.stderr",
            "ebpf/clock.json",
        ] {
            assert!(
                report.files.iter().any(|x| x == f),
                "{f} missing from {:?}",
                report.files
            );
        }

        let (all, bad) = events(out.path());
        // Only user-controlled strings can break a line, and ours do not.
        for record in &bad {
            println!("note: record of another process is not JSON: {record}");
            assert!(
                !record.contains("capsnap-probe-arg") && !record.contains(&format!(":{port},"))
            );
        }
        for e in &all {
            assert!(
                e.get("event").and_then(|v| v.as_str()).is_some(),
                "no event in {e}"
            );
            assert!(
                e.get("ts_ns").and_then(|v| v.as_u64()).is_some(),
                "no ts_ns in {e}"
            );
        }
        let of = |kind: &'static str| all.iter().filter(move |e| e["event"] == kind);

        let start = of("start").next().expect("a start line");
        let clock: serde_json::Value = serde_json::from_str(
            &fs::read_to_string(out.path().join("ebpf").join(CLOCK_FILE)).expect("clock.json"),
        )
        .expect("clock.json is JSON");
        assert_eq!(clock["ts_ns"], start["ts_ns"]);
        assert!(clock["boottime_ns"].as_u64().is_some() && clock["realtime_ns"].as_u64().is_some());
        assert!(of("stop").next().is_some(), "bpftrace ran its END block");

        let exec = of("exec")
            .find(|e| {
                e["argv"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == "capsnap-probe-arg"))
            })
            .unwrap_or_else(|| {
                panic!(
                    "no exec of capsnap-probe-arg among {:?}",
                    of("exec").collect::<Vec<_>>()
                )
            });
        assert_eq!(exec["filename"], "/bin/true");
        assert_eq!(exec["argv"][0], "/bin/true");
        assert_eq!(exec["argc"], 2);
        assert_eq!(exec["comm"], "true");
        // sh exec'd true in place: same pid, and its parent is this test.
        assert_eq!(exec["pid"], sh_pid);
        assert_eq!(exec["ppid"], std::process::id());
        // real_parent is the thread that forked: this test's thread.
        let thread_comm = fs::read_to_string("/proc/thread-self/comm").expect("comm");
        assert_eq!(exec["pcomm"], thread_comm.trim());
        // Its wall-clock time falls within the test.
        let ts = exec["ts_ns"].as_u64().expect("ts_ns");
        let wall = clock["realtime_ns"].as_u64().unwrap() + ts - clock["ts_ns"].as_u64().unwrap();
        assert!(
            wall > before.realtime && wall < after.realtime,
            "{wall} outside the test"
        );

        let closed = of("tcp_state")
            .find(|e| e["dport"] == port && e["newstate"] == "CLOSE")
            .unwrap_or_else(|| panic!("no tcp_state to CLOSE for port {port}"));
        assert_eq!(closed["oldstate"], "SYN_SENT");
        assert_eq!(closed["family"], "ipv4");
        assert_eq!(closed["daddr"], "127.0.0.1");
        let sk = closed["sk"].clone();
        let connect = of("connect")
            .find(|e| e["dport"] == port)
            .expect("a connect line");
        assert_eq!(
            connect["sk"], sk,
            "connect and state change are the same socket"
        );
        assert_eq!(connect["pid"], std::process::id());
        if !omitted.iter().any(|o| o.contains("reset_received")) {
            let rst = of("reset_received")
                .find(|e| e["dport"] == port)
                .expect("reset_received");
            assert_eq!(rst["state"], "SYN_SENT");
            assert_eq!(rst["sk"], sk);
        }
        if !omitted.iter().any(|o| o.contains("reset_sent")) {
            let rst = of("reset_sent")
                .find(|e| e["sport"] == port)
                .expect("reset_sent");
            assert_eq!(rst["reason_name"], "NO_SOCKET");
        }
        // The blocking connect failed at once: its errno, pid and netns.
        let failed = of("connect_error")
            .find(|e| e["dport"] == port)
            .unwrap_or_else(|| panic!("no connect_error for port {port}"));
        assert_eq!(failed["ret"], -111, "ECONNREFUSED");
        assert_eq!(failed["daddr"], "127.0.0.1");
        assert_eq!(failed["pid"], std::process::id());
        assert_eq!(failed["netns"], connect["netns"]);
        if !omitted.iter().any(|o| o.contains("drop")) {
            let drop = of("drop")
                .find(|e| e["dport"] == port)
                .expect("the SYN's drop");
            assert_eq!(drop["reason_name"], "NO_SOCKET");
            assert_eq!(drop["ip_proto"], 6);
        }
    }

    #[test]
    fn no_bpftrace_outlives_its_session() {
        if let Some(why) = live_skip_reason() {
            println!("SKIPPED: {why}");
            return;
        }
        let out = tempfile::tempdir().expect("tempdir");
        let session = start_bpftrace(&live_opts(), out.path())
            .unwrap_or_else(|r| panic!("bpftrace did not start: {r:?}"));
        let pid = session.child.as_ref().expect("running").id();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        let report = session.stop();
        assert_ne!(report.status, Status::Failed, "{report:?}");
        assert!(group_is_gone(pid), "bpftrace {pid} survived stop()");

        let out = tempfile::tempdir().expect("tempdir");
        let session = start_bpftrace(&live_opts(), out.path())
            .unwrap_or_else(|r| panic!("bpftrace did not start: {r:?}"));
        let pid = session.child.as_ref().expect("running").id();
        drop(session);
        assert!(group_is_gone(pid), "bpftrace {pid} survived drop");
    }

    #[test]
    fn early_exit_is_reported_with_bpftrace_stderr() {
        if let Some(why) = live_skip_reason() {
            println!("SKIPPED: {why}");
            return;
        }
        // A fake bpftrace that fails the way a refused probe does.
        let bin_dir = tempfile::tempdir().expect("tempdir");
        let fake = bin_dir.path().join("bpftrace");
        fs::write(
            &fake,
            "#!/bin/sh\necho 'ERROR: Error attaching probe: tracepoint:x:y' >&2\nexit 1\n",
        )
        .expect("write fake");
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).expect("chmod");
        let out = tempfile::tempdir().expect("tempdir");
        let opts = EbpfOptions {
            bpftrace: fake.display().to_string(),
            attach_timeout: Duration::from_secs(10),
        };
        let report = start_bpftrace(&opts, out.path()).expect_err("the fake exits at once");
        assert_eq!(report.status, Status::Failed);
        let reason = report.reason.unwrap_or_default();
        assert!(
            reason.contains("before its probes were attached"),
            "{reason}"
        );
        assert!(
            reason.contains("Error attaching probe: tracepoint:x:y"),
            "{reason}"
        );
        assert!(report.files.iter().any(|f| f == "ebpf/bpftrace.stderr"));
    }

    #[test]
    fn attach_timeout_kills_bpftrace() {
        if let Some(why) = live_skip_reason() {
            println!("SKIPPED: {why}");
            return;
        }
        // A fake bpftrace that never prints the start line.
        let bin_dir = tempfile::tempdir().expect("tempdir");
        let fake = bin_dir.path().join("bpftrace");
        let pid_file = bin_dir.path().join("pid");
        fs::write(
            &fake,
            format!(
                "#!/bin/sh\necho $$ > {}\nexec sleep 60\n",
                pid_file.display()
            ),
        )
        .expect("write fake");
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).expect("chmod");
        let out = tempfile::tempdir().expect("tempdir");
        let opts = EbpfOptions {
            bpftrace: fake.display().to_string(),
            attach_timeout: Duration::from_millis(500),
        };
        let report = start_bpftrace(&opts, out.path()).expect_err("never attaches");
        assert_eq!(report.status, Status::Failed);
        assert!(
            report
                .reason
                .as_deref()
                .unwrap_or("")
                .contains("not attached within"),
            "{report:?}"
        );
        let pid: u32 = fs::read_to_string(&pid_file)
            .expect("pid")
            .trim()
            .parse()
            .expect("pid");
        assert!(
            group_is_gone(pid),
            "fake bpftrace {pid} survived the timeout"
        );
    }

    #[test]
    fn worst_status_wins() {
        assert_eq!(worst(Status::Ok, Status::Partial), Status::Partial);
        assert_eq!(worst(Status::Failed, Status::Partial), Status::Failed);
        assert_eq!(worst(Status::Ok, Status::Ok), Status::Ok);
    }
}
