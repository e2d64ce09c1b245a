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
//! join the continuation lines and take such an event apart ([`Item`] does
//! the joining; `summary.json` counts them as `unescaped`). Strings are cut
//! at 63 bytes (`BPFTRACE_STRLEN`), argv after 4 entries. Each kind is
//! limited to 1000-2000 lines a second (the `limit` of each [`Probe`]) so
//! that a storm cannot fill the disk; what was left out is reported by
//! `suppressed` lines and makes the source `partial`.

use crate::report::{SourceReport, Status};
use crate::sys;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

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
}

/// Source name in the report.
const SOURCE: &str = "ebpf";
/// The prctl() option that triggers `start.bt`. No kernel defines it, so the
/// call fails with EINVAL after the tracepoint fired (kernel/sys.c
/// SYSCALL_DEFINE5(prctl) default case).
const START_MAGIC: libc::c_int = 0x6361_7073; // "caps"
/// How long bpftrace gets to run its END block after SIGINT.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How often the start line is polled for.
const ATTACH_POLL: Duration = Duration::from_millis(50);
/// String size for bpftrace. `exec.bt` is sized for it: its printf record is
/// built on the 512-byte BPF stack.
const STRLEN: &str = "64";

const EVENTS_FILE: &str = "events.jsonl";
const STDERR_FILE: &str = "bpftrace.stderr";
const SCRIPT_FILE: &str = "probes.bt";
const CLOCK_FILE: &str = "clock.json";
const SUMMARY_FILE: &str = "summary.json";

/// One probe file and what it needs from the kernel.
struct Probe {
    /// Event kinds it prints, for the report.
    events: &'static str,
    /// `group:name` under tracefs `events/`.
    tracepoint: &'static str,
    /// Declarations it reads from the tracepoint's format, as the last word
    /// of the `field:` line (`saddr[28]`, `reason`): the shapes of these
    /// tracepoints changed between kernels (tcp_send_reset stores sockaddrs
    /// since 6.x, kfree_skb has had a reason since 5.17).
    fields: &'static [&'static str],
    /// Its rate-limit counter (a bpftrace map, reset every second).
    counter: &'static str,
    /// Lines per second before the rest are only counted.
    limit: u32,
    source: &'static str,
}

/// Address fields shared by the TCP tracepoints (TP_STORE_ADDRS in
/// include/trace/events/tcp.h).
const TCP_ADDRS: [&str; 5] = [
    "family",
    "saddr[4]",
    "daddr[4]",
    "saddr_v6[16]",
    "daddr_v6[16]",
];

const PROBES: &[Probe] = &[
    Probe {
        events: "exec",
        tracepoint: "sched:sched_process_exec",
        fields: &["filename", "old_pid"],
        counter: "n_exec",
        limit: 1000,
        source: include_str!("../../bpftrace/exec.bt"),
    },
    Probe {
        events: "tcp_state, connect",
        tracepoint: "sock:inet_sock_set_state",
        fields: &[
            "skaddr",
            "oldstate",
            "newstate",
            "sport",
            "dport",
            "protocol",
            TCP_ADDRS[0],
            TCP_ADDRS[1],
            TCP_ADDRS[2],
            TCP_ADDRS[3],
            TCP_ADDRS[4],
        ],
        counter: "n_tcp_state",
        limit: 2000,
        source: include_str!("../../bpftrace/tcp_state.bt"),
    },
    Probe {
        events: "retransmit",
        tracepoint: "tcp:tcp_retransmit_skb",
        fields: &[
            "skaddr",
            "state",
            "sport",
            "dport",
            TCP_ADDRS[0],
            TCP_ADDRS[1],
            TCP_ADDRS[2],
            TCP_ADDRS[3],
            TCP_ADDRS[4],
        ],
        counter: "n_retransmit",
        limit: 1000,
        source: include_str!("../../bpftrace/retransmit.bt"),
    },
    Probe {
        events: "retransmit (SYN-ACK)",
        tracepoint: "tcp:tcp_retransmit_synack",
        fields: &[
            "skaddr",
            "sport",
            "dport",
            TCP_ADDRS[0],
            TCP_ADDRS[1],
            TCP_ADDRS[2],
            TCP_ADDRS[3],
            TCP_ADDRS[4],
        ],
        counter: "n_retransmit",
        limit: 1000,
        source: include_str!("../../bpftrace/retransmit_synack.bt"),
    },
    Probe {
        events: "reset_received",
        tracepoint: "tcp:tcp_receive_reset",
        fields: &[
            "skaddr",
            "sport",
            "dport",
            TCP_ADDRS[0],
            TCP_ADDRS[1],
            TCP_ADDRS[2],
            TCP_ADDRS[3],
            TCP_ADDRS[4],
        ],
        counter: "n_reset_received",
        limit: 1000,
        source: include_str!("../../bpftrace/reset_received.bt"),
    },
    Probe {
        events: "reset_sent",
        tracepoint: "tcp:tcp_send_reset",
        fields: &[
            "skbaddr",
            "skaddr",
            "state",
            "reason",
            "saddr[28]",
            "daddr[28]",
        ],
        counter: "n_reset_sent",
        limit: 1000,
        source: include_str!("../../bpftrace/reset_sent.bt"),
    },
    Probe {
        events: "drop",
        tracepoint: "skb:kfree_skb",
        fields: &["skbaddr", "location", "protocol", "reason"],
        counter: "n_drop",
        limit: 1000,
        source: include_str!("../../bpftrace/drop.bt"),
    },
];

/// The attach sentinel; comes last in the script (see `start.bt`).
const START_TRACEPOINT: &str = "syscalls:sys_enter_prctl";
const START_FIELDS: &[&str] = &["option", "arg2", "arg3", "arg4", "arg5"];
const START_SOURCE: &str = include_str!("../../bpftrace/start.bt");

/// TCP state names (include/net/tcp_states.h; values are kernel ABI).
const TCP_STATES: &[(i64, &str)] = &[
    (1, "ESTABLISHED"),
    (2, "SYN_SENT"),
    (3, "SYN_RECV"),
    (4, "FIN_WAIT1"),
    (5, "FIN_WAIT2"),
    (6, "TIME_WAIT"),
    (7, "CLOSE"),
    (8, "CLOSE_WAIT"),
    (9, "LAST_ACK"),
    (10, "LISTEN"),
    (11, "CLOSING"),
    (12, "NEW_SYN_RECV"),
    (13, "BOUND_INACTIVE"),
];

/// Starts the probes, writing JSON lines to `out_dir/ebpf/events.jsonl`,
/// and returns once they are attached. `Err` is the report of why not.
///
/// bpftrace runs in its own process group and gets SIGKILL when the thread
/// that called this function exits (PR_SET_PDEATHSIG follows the parent
/// thread, not the process): call it from a thread that outlives the
/// session, such as the one that will call [`EbpfSession::stop`].
pub fn start_bpftrace(opts: &EbpfOptions, out_dir: &Path) -> Result<EbpfSession, SourceReport> {
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

    let dir = out_dir.join("ebpf");
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

    let child = spawn(&bin, &script_path, events, stderr).map_err(|e| {
        fail(
            Status::Failed,
            format!("cannot start {}: {e}", bin.display()),
            files_so_far(),
        )
    })?;
    let mut session = EbpfSession {
        child: Some(child),
        dir,
        started: began,
        omitted: plan.omitted,
        mounted_tracefs: tracefs.mounted.then_some(tracefs.path),
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
            Some(Ending::Exited(st)) => {
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
            Some(Ending::Stopped(st)) => {
                summary.exit = st.to_string();
                if !st.success() {
                    status = Status::Partial;
                    notes.push(format!("bpftrace ended with {st}: {}", stderr()));
                }
            }
            Some(Ending::Killed) | None => {
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
        let _ = write_json(&self.dir.join(SUMMARY_FILE), &summary);

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
            &self.dir,
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

/// Where tracefs is, and whether capsnap mounted it.
struct Tracefs {
    path: PathBuf,
    mounted: bool,
}

/// Finds tracefs, mounting it on /sys/kernel/tracing if needed.
///
/// bpftrace reads tracepoint formats and ids there. `ip netns exec` (and a
/// container) mounts a fresh sysfs, where /sys/kernel/tracing is an empty
/// directory. A mount made here is left in place: it is what systemd does at
/// boot, it vanishes with a private mount namespace, and unmounting it could
/// pull it from under another session still compiling.
fn ensure_tracefs() -> Result<Tracefs, String> {
    const TRACING: &str = "/sys/kernel/tracing";
    const DEBUG_TRACING: &str = "/sys/kernel/debug/tracing";
    for dir in [TRACING, DEBUG_TRACING] {
        if Path::new(dir).join("events").is_dir() {
            return Ok(Tracefs {
                path: PathBuf::from(dir),
                mounted: false,
            });
        }
    }
    if !Path::new(TRACING).is_dir() {
        return Err(format!(
            "kernel lacks it: no {TRACING} (kernel built without tracefs?)"
        ));
    }
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL in constants");
    let (src, target, fstype) = (c("nodev"), c(TRACING), c("tracefs"));
    // SAFETY: valid NUL-terminated strings, no data argument.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(format!(
            "permission: tracefs is not mounted on {TRACING} and mounting it failed ({e}); \
             bpftrace needs it for tracepoints"
        ));
    }
    if Path::new(TRACING).join("events").is_dir() {
        Ok(Tracefs {
            path: PathBuf::from(TRACING),
            mounted: true,
        })
    } else {
        Err(format!(
            "kernel lacks it: tracefs mounted on {TRACING} has no events/"
        ))
    }
}

/// A random number to tell our start sentinel from anyone else's; kept
/// below 2^53 so that bpftrace and JSON readers take it as is.
fn nonce() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    let mut v = u64::from_ne_bytes(buf);
    if n != buf.len() as isize {
        let c = Clocks::now();
        v = c.realtime ^ (u64::from(std::process::id()) << 32) ^ c.monotonic.rotate_left(17);
    }
    (v & ((1 << 53) - 1)).max(1)
}

/// The script to run and the probes it leaves out.
#[derive(Debug)]
struct Plan {
    script: String,
    omitted: Vec<String>,
}

/// Assembles the script from the probes this kernel's tracepoints can take.
fn plan(tracefs: &Path, nonce: u64) -> Result<Plan, String> {
    let format = |tp: &str| -> Option<String> {
        let (group, name) = tp.split_once(':')?;
        fs::read_to_string(tracefs.join("events").join(group).join(name).join("format")).ok()
    };
    let start_format = format(START_TRACEPOINT).ok_or_else(|| {
        format!(
            "kernel lacks it: no tracepoint {START_TRACEPOINT} (syscall tracepoints, \
             CONFIG_FTRACE_SYSCALLS), needed to know when the probes are attached"
        )
    })?;
    if let Err(missing) = check_fields(&start_format, START_FIELDS) {
        return Err(format!(
            "kernel lacks it: {START_TRACEPOINT} has no field {missing}"
        ));
    }

    let mut omitted = Vec::new();
    let mut included: Vec<(&Probe, String)> = Vec::new();
    let mut drop_names = Vec::new();
    let mut rst_names = Vec::new();
    for probe in PROBES {
        let Some(fmt) = format(probe.tracepoint) else {
            omitted.push(format!(
                "no {} events: kernel lacks tracepoint {}",
                probe.events, probe.tracepoint
            ));
            continue;
        };
        if let Err(missing) = check_fields(&fmt, probe.fields) {
            omitted.push(format!(
                "no {} events: this kernel's {} has no field {missing}",
                probe.events, probe.tracepoint
            ));
            continue;
        }
        let mut source = probe.source.replace("__LIMIT__", &probe.limit.to_string());
        if probe.tracepoint == "skb:kfree_skb" {
            drop_names = symbolic(&fmt, "reason");
            let Some(&(not_specified, _)) = drop_names.iter().find(|(_, n)| n == "NOT_SPECIFIED")
            else {
                omitted.push(
                    "no drop events: skb:kfree_skb's format does not name \
                     SKB_DROP_REASON_NOT_SPECIFIED"
                        .to_string(),
                );
                continue;
            };
            source = source.replace("__DROP_MIN__", &not_specified.to_string());
        }
        if probe.tracepoint == "tcp:tcp_send_reset" {
            rst_names = symbolic(&fmt, "reason");
        }
        included.push((probe, source));
    }
    if included.is_empty() {
        return Err(format!("kernel lacks it: {}", omitted.join("; ")));
    }

    let mut s = String::new();
    s.push_str("// Generated by capsnap from capture/bpftrace/*.bt for this kernel.\n\n");
    s.push_str("BEGIN\n{\n");
    let mut names = |map: &str, table: &[(i64, String)]| {
        for (value, name) in table {
            s.push_str(&format!("  @{map}[{value}] = \"{name}\";\n"));
        }
    };
    let states: Vec<(i64, String)> = TCP_STATES
        .iter()
        .map(|&(v, n)| (v, n.to_string()))
        .collect();
    names("tcp_state_name", &states);
    let mut maps = vec!["tcp_state_name"];
    let uses = |tp: &str| included.iter().any(|(p, _)| p.tracepoint == tp);
    if uses("skb:kfree_skb") {
        names("drop_reason_name", &drop_names);
        maps.push("drop_reason_name");
    }
    if uses("tcp:tcp_send_reset") {
        if rst_names.is_empty() {
            // The map must be assigned somewhere or bpftrace rejects the read.
            rst_names.push((-1, "?".to_string()));
        }
        names("rst_reason_name", &rst_names);
        maps.push("rst_reason_name");
    }
    s.push_str("}\n\n");

    let mut counters: Vec<(&str, &str, u32)> = Vec::new();
    for (probe, source) in &included {
        s.push_str(source);
        s.push('\n');
        if !counters.iter().any(|(c, _, _)| *c == probe.counter) {
            let kind = probe.counter.trim_start_matches("n_");
            counters.push((probe.counter, kind, probe.limit));
        }
    }
    let suppressed = |s: &mut String| {
        for (counter, kind, limit) in &counters {
            s.push_str(&format!(
                r#"  if (@{counter} > {limit}) {{
    printf("{{\"event\":\"suppressed\",\"ts_ns\":%llu,\"kind\":\"{kind}\",\"count\":%llu}}\n", nsecs, @{counter} - {limit});
  }}
"#
            ));
        }
    };
    // Rate limits: the counters restart every second; what went over is
    // reported as a `suppressed` line. Not atomic across CPUs: approximate.
    s.push_str("// Rate limits (see each probe's counter).\ninterval:s:1\n{\n");
    suppressed(&mut s);
    for (counter, _, _) in &counters {
        s.push_str(&format!("  @{counter} = 0;\n"));
    }
    s.push_str("}\n\n");
    // One END only: bpftrace 0.17 runs a single END block. The maps are
    // cleared so that bpftrace prints no map contents into the events file
    // at exit (it still prints an empty line per map).
    s.push_str("END\n{\n");
    suppressed(&mut s);
    s.push_str(r#"  printf("{\"event\":\"stop\",\"ts_ns\":%llu}\n", nsecs);"#);
    s.push('\n');
    for map in maps
        .iter()
        .copied()
        .chain(counters.iter().map(|(c, _, _)| *c))
    {
        s.push_str(&format!("  clear(@{map});\n"));
    }
    s.push_str("  clear(@capsnap_started);\n}\n\n");
    s.push_str(
        &START_SOURCE
            .replace("__MAGIC__", &format!("{START_MAGIC:#x}"))
            .replace("__NONCE__", &nonce.to_string()),
    );
    Ok(Plan { script: s, omitted })
}

/// Checks that every wanted declaration is in a tracepoint `format` file;
/// `Err` names the first missing one.
fn check_fields<'a>(format: &str, wanted: &[&'a str]) -> Result<(), &'a str> {
    let declared: Vec<&str> = format
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("field:"))
        .filter_map(|l| l.split(';').next())
        .filter_map(|decl| decl.split_whitespace().last())
        .collect();
    match wanted.iter().find(|w| !declared.contains(w)) {
        Some(missing) => Err(*missing),
        None => Ok(()),
    }
}

/// The numeric names of `field` from the `__print_symbolic(REC->field, ...)`
/// of a tracepoint's `print fmt`: how this kernel spells its enum values
/// (the drop reasons of include/net/dropreason-core.h move between kernels).
/// Entries whose value is a C name rather than a number are skipped, and so
/// are names that are not plain identifiers (they go into the script).
fn symbolic(format: &str, field: &str) -> Vec<(i64, String)> {
    let key = format!("__print_symbolic(REC->{field},");
    let Some(at) = format.find(&key) else {
        return Vec::new();
    };
    let mut rest = &format[at + key.len()..];
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start();
        let Some(entry) = rest.strip_prefix('{') else {
            break;
        };
        let Some(end) = entry.find('}') else { break };
        let (inner, after) = (&entry[..end], &entry[end + 1..]);
        if let Some((value, name)) = inner.split_once(',') {
            let name = name.trim().trim_matches('"');
            let plain =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if let (Ok(v), true) = (value.trim().parse::<i64>(), plain) {
                out.push((v, name.to_string()));
            }
        }
        rest = after.trim_start();
        match rest.strip_prefix(',') {
            Some(r) => rest = r,
            None => break,
        }
    }
    out
}

/// Starts bpftrace on `script` with its output going to the given files,
/// tied to the calling thread ([`sys::spawn_tied`]).
fn spawn(bin: &Path, script: &Path, events: File, stderr: File) -> io::Result<Child> {
    let mut cmd = Command::new(bin);
    // -q: no "Attaching N probes..." on stdout. -B line: every event line
    // reaches the file as it is printed (stdout is not a tty: full buffering
    // otherwise, and the start line would sit in the buffer).
    cmd.arg("-q")
        .arg("-B")
        .arg("line")
        .arg(script)
        .env("BPFTRACE_STRLEN", STRLEN)
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

/// One reading of the clocks, taken back to back.
#[derive(Debug, Clone, Copy)]
struct Clocks {
    realtime: u64,
    monotonic: u64,
    boottime: u64,
}

impl Clocks {
    fn now() -> Clocks {
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
struct StartLine {
    ts_ns: u64,
    realtime_ns: u64,
    monotonic_ns: u64,
    boottime_ns: u64,
}

/// Reads the events file as it grows, looking for the `start` line.
#[derive(Debug, Default)]
struct StartScanner {
    offset: u64,
    partial: Vec<u8>,
}

impl StartScanner {
    fn scan(&mut self, path: &Path) -> io::Result<Option<StartLine>> {
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

fn write_clock(dir: &Path, start: &StartLine, bin: &Path) -> io::Result<()> {
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
    let version = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
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

fn write_json(path: &Path, value: &impl Serialize) -> io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    text.push('\n');
    fs::write(path, text)
}

/// `summary.json`: what the events file holds.
#[derive(Debug, Default, Serialize)]
struct Summary {
    /// Event lines by kind (`start`, `stop` and `suppressed` not included).
    events: BTreeMap<String, u64>,
    total: u64,
    /// Events the rate limits left out, by counter.
    suppressed: BTreeMap<String, u64>,
    /// Events bpftrace reported lost (`Lost N events`).
    lost: u64,
    /// Events whose strings (comm, file names, argv) hold a quote, a
    /// backslash or a newline, which bpftrace 0.17 prints unescaped: the
    /// record is not valid JSON, but its fields are in the fixed order of
    /// its probe file, so a reader can still take it apart.
    unescaped: u64,
    /// Non-blank lines that belong to no event.
    unparsed: u64,
    started: bool,
    stopped: bool,
    /// How bpftrace ended.
    exit: String,
    /// Probes left out on this kernel, and why.
    omitted: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mounted_tracefs: Option<String>,
}

/// Every line bpftrace prints for an event starts with this.
const RECORD_START: &[u8] = b"{\"event\":\"";

/// What the events file is made of.
#[derive(Debug, PartialEq, Eq)]
enum Item<'a> {
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
fn for_each_item(path: &Path, mut f: impl FnMut(Item<'_>)) -> io::Result<()> {
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

fn count_events(path: &Path) -> io::Result<Summary> {
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

fn kinds_text(events: &BTreeMap<String, u64>) -> String {
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
fn trim_trailing_newlines(path: &Path) -> io::Result<()> {
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

/// Bundle-relative names (`ebpf/x`) of those of `names` that exist in `dir`.
fn existing_files(dir: &Path, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|n| dir.join(n).is_file())
        .map(|n| format!("ebpf/{n}"))
        .collect()
}

#[cfg(test)]
mod tests {
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
            Item::Record(r) => match serde_json::from_slice(r) {
                Ok(v) => good.push(v),
                Err(_) => bad.push(String::from_utf8_lossy(r).into_owned()),
            },
            Item::Lost(n) => panic!("bpftrace lost {n} events"),
            Item::Stray(l) => panic!("stray line: {}", String::from_utf8_lossy(l)),
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

    const KFREE_SKB: &str = "name: kfree_skb
ID: 2310
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:void * location;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned short protocol;\toffset:32;\tsize:2;\tsigned:0;
\tfield:enum skb_drop_reason reason;\toffset:36;\tsize:4;\tsigned:0;

print fmt: \"skbaddr=%p protocol=%u location=%pS reason: %s\", REC->skbaddr, REC->protocol, \
REC->location, __print_symbolic(REC->reason, { 2, \"NOT_SPECIFIED\" }, { 3, \"NO_SOCKET\" }, \
{ 4, \"SOCKET_CLOSE\" }, { 128, \"MAX\" })
";

    const TCP_SEND_RESET: &str = "format:
\tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;
\tfield:int state;\toffset:24;\tsize:4;\tsigned:1;
\tfield:enum sk_rst_reason reason;\toffset:28;\tsize:4;\tsigned:0;
\tfield:__u8 saddr[28];\toffset:32;\tsize:28;\tsigned:0;
\tfield:__u8 daddr[28];\toffset:60;\tsize:28;\tsigned:0;

print fmt: \"state=%s reason=%s\", REC->state ? __print_symbolic(REC->state, \
{ TCP_ESTABLISHED, \"TCP_ESTABLISHED\" }) : \"UNKNOWN\", __print_symbolic(REC->reason, \
{ 0, \"NOT_SPECIFIED\" }, { 1, \"NO_SOCKET\" })
";

    /// Before 6.x, tcp_send_reset had port and address fields of its own.
    const TCP_SEND_RESET_5_10: &str = "format:
\tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;
\tfield:int state;\toffset:24;\tsize:4;\tsigned:1;
\tfield:__u16 sport;\toffset:28;\tsize:2;\tsigned:0;
\tfield:__u16 dport;\toffset:30;\tsize:2;\tsigned:0;
\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;
\tfield:__u8 daddr[4];\toffset:36;\tsize:4;\tsigned:0;
";

    const PRCTL: &str = "format:
\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int option;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned long arg2;\toffset:24;\tsize:8;\tsigned:0;
\tfield:unsigned long arg3;\toffset:32;\tsize:8;\tsigned:0;
\tfield:unsigned long arg4;\toffset:40;\tsize:8;\tsigned:0;
\tfield:unsigned long arg5;\toffset:48;\tsize:8;\tsigned:0;
";

    #[test]
    fn field_declarations() {
        let cases: &[(&str, &[&str], Result<(), &str>)] = &[
            (
                KFREE_SKB,
                &["skbaddr", "location", "protocol", "reason"],
                Ok(()),
            ),
            (KFREE_SKB, &["reason", "rx_sk"], Err("rx_sk")),
            (TCP_SEND_RESET, &["saddr[28]", "reason"], Ok(())),
            (TCP_SEND_RESET_5_10, &["saddr[28]"], Err("saddr[28]")),
            (TCP_SEND_RESET_5_10, &["saddr[4]", "sport"], Ok(())),
            ("", &["x"], Err("x")),
        ];
        for (format, wanted, expected) in cases {
            assert_eq!(check_fields(format, wanted), *expected, "{wanted:?}");
        }
    }

    #[test]
    fn symbolic_names_of_a_field() {
        let names = symbolic(KFREE_SKB, "reason");
        assert_eq!(
            names,
            vec![
                (2, "NOT_SPECIFIED".to_string()),
                (3, "NO_SOCKET".to_string()),
                (4, "SOCKET_CLOSE".to_string()),
                (128, "MAX".to_string()),
            ]
        );
        // Symbolic C names (not numbers) are skipped, the next table is read.
        assert_eq!(symbolic(TCP_SEND_RESET, "state"), vec![]);
        assert_eq!(
            symbolic(TCP_SEND_RESET, "reason"),
            vec![
                (0, "NOT_SPECIFIED".to_string()),
                (1, "NO_SOCKET".to_string())
            ]
        );
        assert_eq!(symbolic(KFREE_SKB, "nope"), vec![]);
        // Truncated text gives what it can, never a panic.
        for cut in 0..KFREE_SKB.len() {
            if KFREE_SKB.is_char_boundary(cut) {
                let _ = symbolic(&KFREE_SKB[..cut], "reason");
            }
        }
    }

    /// A fake tracefs with the given `group:name` -> format files.
    fn fake_tracefs(formats: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (tp, text) in formats {
            let (group, name) = tp.split_once(':').expect("group:name");
            let d = dir.path().join("events").join(group).join(name);
            fs::create_dir_all(&d).expect("mkdir");
            fs::write(d.join("format"), text).expect("write format");
        }
        dir
    }

    #[test]
    fn plan_leaves_out_probes_this_kernel_cannot_take() {
        let tracefs = fake_tracefs(&[
            (START_TRACEPOINT, PRCTL),
            ("skb:kfree_skb", KFREE_SKB),
            ("tcp:tcp_send_reset", TCP_SEND_RESET_5_10),
        ]);
        let plan = plan(tracefs.path(), 4242).expect("a plan");
        assert!(
            plan.script
                .contains("tracepoint:skb:kfree_skb\n/args->reason > 2/"),
            "{}",
            plan.script
        );
        assert!(
            plan.script
                .contains("@drop_reason_name[3] = \"NO_SOCKET\";")
        );
        assert!(
            !plan.script.contains("tcp_send_reset"),
            "old shape left out"
        );
        assert!(!plan.script.contains("@rst_reason_name"));
        for placeholder in ["__LIMIT__", "__DROP_MIN__", "__NONCE__", "__MAGIC__"] {
            assert!(
                !plan.script.contains(placeholder),
                "{placeholder} left in the script"
            );
        }
        assert!(plan.script.contains("args->arg3 == 4242"));
        // The sentinel is the last probe, the counters are reset and cleared.
        let sentinel = plan
            .script
            .find("tracepoint:syscalls:sys_enter_prctl")
            .expect("sentinel");
        assert!(plan.script.rfind("tracepoint:").unwrap() == sentinel);
        assert!(plan.script.contains("  @n_drop = 0;\n"));
        assert!(plan.script.contains("  clear(@n_drop);\n"));
        assert!(!plan.script.contains("n_exec"));
        let omitted = plan.omitted.join("\n");
        assert!(omitted.contains(
            "no reset_sent events: this kernel's tcp:tcp_send_reset has no field reason"
        ));
        assert!(
            omitted.contains("no exec events: kernel lacks tracepoint sched:sched_process_exec")
        );
    }

    #[test]
    fn plan_needs_the_start_sentinel() {
        let tracefs = fake_tracefs(&[("skb:kfree_skb", KFREE_SKB)]);
        let err = plan(tracefs.path(), 1).expect_err("no sys_enter_prctl");
        assert!(err.contains("CONFIG_FTRACE_SYSCALLS"), "{err}");
        let tracefs = fake_tracefs(&[(START_TRACEPOINT, PRCTL)]);
        let err = plan(tracefs.path(), 1).expect_err("no probe at all");
        assert!(err.starts_with("kernel lacks it"), "{err}");
    }

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

    #[test]
    fn worst_status_wins() {
        assert_eq!(worst(Status::Ok, Status::Partial), Status::Partial);
        assert_eq!(worst(Status::Failed, Status::Partial), Status::Failed);
        assert_eq!(worst(Status::Ok, Status::Ok), Status::Ok);
    }
}
