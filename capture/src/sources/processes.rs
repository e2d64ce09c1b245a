//! Every process with its fds: `processes.jsonl` (pid, ppid, comm, exe,
//! command line with secrets masked, uid, start time, namespaces, cgroup,
//! container and pod, fd counts) and `fds.tsv` (every fd link), read when
//! the window closes so that they hold the sockets its traffic left.

use crate::redact::redact_cmdline;
use crate::report::{SourceReport, Status};
use crate::source::{Context, InNetns, Phase, Scope, Source, Window, elapsed_ms};
use formats::bundle::{Artifact, FDS, PROCESSES, ProcessRecord};
use std::path::Path;
use std::time::Instant;

pub struct Processes;

impl Source for Processes {
    fn name(&self) -> &'static str {
        "processes and fds"
    }

    fn scope(&self) -> Scope {
        Scope::Node
    }

    fn phase(&self) -> Phase {
        Phase::Close
    }

    fn writes(&self) -> Vec<&'static Artifact> {
        vec![&PROCESSES, &FDS]
    }

    fn run(&self, cx: &Context, _: Option<&InNetns>, _: &Window) -> Vec<SourceReport> {
        vec![snapshot_processes(&cx.proc, &cx.staging, cx.opts.redact)]
    }
}

/// Clock ticks per second for /proc/PID/stat start times.
fn clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// Boot time in seconds since the epoch (`btime` of /proc/stat).
fn boot_time(proc: &Path) -> Option<u64> {
    std::fs::read_to_string(proc.join("stat"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

/// Reads one process; `None` when it vanished before anything was read.
fn read_process(
    proc: &Path,
    pid: u32,
    tck: u64,
    btime: Option<u64>,
    redact: bool,
    fds: &mut String,
) -> Option<ProcessRecord> {
    let base = proc.join(pid.to_string());
    let stat = std::fs::read_to_string(base.join("stat")).ok()?;
    // comm is in parentheses and may itself contain ") ": split at the last one.
    let close = stat.rfind(')')?;
    let comm = stat[stat.find('(')? + 1..close].to_owned();
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let ppid = fields.get(1).and_then(|f| f.parse().ok());
    let start_ticks: Option<u64> = fields.get(19).and_then(|f| f.parse().ok());
    let start_time_ns = match (start_ticks, btime) {
        (Some(t), Some(b)) => Some(b * 1_000_000_000 + t * 1_000_000_000 / tck),
        _ => None,
    };
    let uid = std::fs::read_to_string(base.join("status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Uid:")?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
        });
    let cmdline = std::fs::read(base.join("cmdline")).ok().map(|b| {
        let args: Vec<String> = b
            .split(|c| *c == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if redact { redact_cmdline(&args) } else { args }
    });
    let cgroup = std::fs::read_to_string(base.join("cgroup")).ok();
    let (container_id, pod_uid) = cgroup
        .as_deref()
        .map(crate::netns::container_of)
        .unwrap_or((None, None));
    let (mut fd_count, mut socket_fd_count) = (None, None);
    if let Ok(dir) = std::fs::read_dir(base.join("fd")) {
        let (mut n, mut s) = (0, 0);
        for e in dir.flatten() {
            let Ok(target) = std::fs::read_link(e.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            n += 1;
            s += u64::from(target.starts_with("socket:["));
            use std::fmt::Write as _;
            // One table row per fd, appended in place (a process can hold
            // tens of thousands).
            let _ = writeln!(
                fds,
                "{pid}\t{}\t{}",
                e.file_name().to_string_lossy(),
                target.replace(['\t', '\n'], " ")
            );
        }
        fd_count = Some(n);
        socket_fd_count = Some(s);
    }
    Some(ProcessRecord {
        pid,
        ppid,
        comm: Some(comm),
        exe: std::fs::read_link(base.join("exe"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned()),
        cmdline,
        uid,
        start_time_ns,
        netns_inode: crate::netns::ns_inode(&base.join("ns/net")),
        mntns_inode: crate::netns::ns_inode(&base.join("ns/mnt")),
        cgroup: cgroup.map(|c| c.trim_end().to_owned()),
        container_id,
        pod_uid,
        fd_count,
        socket_fd_count,
    })
}

/// Writes `processes.jsonl` (one JSON object per process) and `fds.tsv`
/// (pid, fd, link target) for every process, two threads sharing the pids.
/// Processes that vanish mid-scan are simply not there; fds of processes
/// capsnap may not read (not root) are counted in the report.
fn snapshot_processes(proc: &Path, root: &Path, redact: bool) -> SourceReport {
    let started = Instant::now();
    let mut report = SourceReport::new(PROCESSES.source, None);
    let mut pids: Vec<u32> = std::fs::read_dir(proc)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    let tck = clk_tck();
    let btime = boot_time(proc);
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    let per = pids.len().div_ceil(workers).max(1);
    let parts: Vec<(Vec<String>, String, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = pids
            .chunks(per)
            .map(|chunk| {
                s.spawn(move || {
                    let (mut rows, mut fds, mut hidden) = (Vec::new(), String::new(), 0);
                    for &pid in chunk {
                        if let Some(row) = read_process(proc, pid, tck, btime, redact, &mut fds) {
                            hidden += u64::from(row.fd_count.is_none());
                            rows.push(serde_json::to_string(&row).unwrap_or_default());
                        }
                    }
                    (rows, fds, hidden)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut procs = String::new();
    let mut fds = String::from(formats::bundle::FDS_HEADER);
    let mut hidden = 0;
    let mut count = 0;
    for (rows, f, h) in parts {
        count += rows.len();
        for r in rows {
            procs.push_str(&r);
            procs.push('\n');
        }
        fds.push_str(&f);
        hidden += h;
    }
    let written = std::fs::write(root.join(PROCESSES.path), procs)
        .and_then(|()| std::fs::write(root.join(FDS.path), fds));
    report.duration_ms = elapsed_ms(started);
    if let Err(e) = written {
        return report.with(Status::Failed, format!("cannot write: {e}"));
    }
    report.files = vec![PROCESSES.path.into(), FDS.path.into()];
    if hidden > 0 {
        report = report.with(
            Status::Partial,
            format!(
                "permission: fds of {hidden} of {count} processes could not be read (needs root)"
            ),
        );
    }
    report
}
