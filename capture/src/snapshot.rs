//! Point-in-time snapshots: per namespace, the /proc/net tables, namespaced
//! sysctls, addresses, routes, netfilter rules and conntrack; per node, the
//! processes with their fds, the kernel log and the journal. Files are
//! copied as the kernel or the tool printed them: they are the bundle's
//! source of truth, parsed later by `formats`.

use crate::netns::Netns;
use crate::redact::redact_cmdline;
use crate::report::{SourceReport, Status};
use crate::sys;
use formats::bundle::ProcessRecord;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// /proc/net files copied per namespace (those missing on a kernel, such as
/// nf_conntrack without the module, are reported as skipped).
const PROC_NET: &[&str] = &[
    "tcp",
    "tcp6",
    "udp",
    "udp6",
    "raw",
    "raw6",
    "unix",
    "packet",
    "sockstat",
    "sockstat6",
    "snmp",
    "snmp6",
    "netstat",
    "dev",
    "nf_conntrack",
    "stat/nf_conntrack",
];

/// Sysctls that explain the incidents capsnap is for (under /proc/sys/).
/// Most are per network namespace; tcp_mem and nf_conntrack_max are global.
const SYSCTLS: &[&str] = &[
    "net/ipv4/tcp_mem",
    "net/ipv4/tcp_rmem",
    "net/ipv4/tcp_wmem",
    "net/ipv4/tcp_max_orphans",
    "net/ipv4/tcp_max_tw_buckets",
    "net/ipv4/tcp_fin_timeout",
    "net/ipv4/tcp_tw_reuse",
    "net/ipv4/tcp_syn_retries",
    "net/ipv4/tcp_synack_retries",
    "net/ipv4/tcp_retries2",
    "net/ipv4/tcp_syncookies",
    "net/ipv4/tcp_max_syn_backlog",
    "net/ipv4/ip_local_port_range",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/rp_filter",
    "net/core/somaxconn",
    "net/core/netdev_max_backlog",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_count",
    "net/netfilter/nf_conntrack_buckets",
    "net/netfilter/nf_conntrack_tcp_be_liberal",
    "net/netfilter/nf_conntrack_tcp_loose",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_time_wait",
    "net/netfilter/nf_conntrack_tcp_timeout_fin_wait",
    "net/netfilter/nf_conntrack_log_invalid",
];

/// Number of commands run per namespace.
pub const TOOL_COUNT: usize = TOOLS.len();

/// Commands run inside each namespace: (file, argv).
const TOOLS: &[(&str, &[&str])] = &[
    ("ip-addr.txt", &["ip", "-d", "-s", "addr"]),
    ("ip-link.txt", &["ip", "-d", "-s", "link"]),
    ("ip-route.txt", &["ip", "route", "show", "table", "all"]),
    (
        "ip6-route.txt",
        &["ip", "-6", "route", "show", "table", "all"],
    ),
    ("ip-rule.txt", &["ip", "rule"]),
    ("iptables-save.txt", &["iptables-save", "-c"]),
    ("ip6tables-save.txt", &["ip6tables-save", "-c"]),
    ("nft-ruleset.txt", &["nft", "list", "ruleset"]),
    ("conntrack.txt", &["conntrack", "-L", "-o", "extended"]),
    ("conntrack-stats.txt", &["conntrack", "-S"]),
];

fn elapsed_ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

/// Runs `argv` with stdout into `out`, inside `netns` when given, killed
/// after `timeout`. Never outlives capsnap ([`sys::spawn_tied`]).
pub fn run_tool(
    argv: &[&str],
    netns: Option<&File>,
    out: &Path,
    rel: &str,
    label: Option<&str>,
    timeout: Duration,
) -> SourceReport {
    let started = Instant::now();
    let mut report =
        SourceReport::new(format!("tool:{}", argv.join(" ")), label.map(str::to_owned));
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
    let mut child = match sys::spawn_tied(&mut cmd, netns.map(File::as_fd)) {
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
    let deadline = started + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    report.duration_ms = elapsed_ms(started);
    report.files.push(rel.to_owned());
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

/// Copies `src` to `dst`, reporting what happened.
fn copy_file(src: &Path, dst: &Path, source: &str, rel: &str, label: &str) -> SourceReport {
    let started = Instant::now();
    let mut r = SourceReport::new(source, Some(label.to_owned()));
    let result = std::fs::read(src).and_then(|bytes| std::fs::write(dst, bytes));
    r.duration_ms = elapsed_ms(started);
    match result {
        Ok(()) => {
            r.files.push(rel.to_owned());
            r
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => r.with(
            Status::Skipped,
            format!(
                "{} does not exist on this kernel (module not loaded?)",
                src.display()
            ),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => r.with(
            Status::Failed,
            format!("permission: reading {}: {e}", src.display()),
        ),
        Err(e) => r.with(Status::Failed, format!("reading {}: {e}", src.display())),
    }
}

/// Snapshots one namespace into `root/netns/<label>/`. The /proc/net files
/// and sysctls are read by a thread that has entered the namespace (both
/// follow the reading thread's namespace); without the privilege to enter
/// it, /proc/PID/net of a process inside is read instead and the sysctls
/// are reported as not collected.
pub fn snapshot_netns(ns: &Netns, root: &Path, tool_timeout: Duration) -> Vec<SourceReport> {
    let dir_rel = formats::bundle::netns_path(&ns.dir);
    let dir = root.join(&dir_rel);
    let mut reports = Vec::new();
    if let Err(e) = std::fs::create_dir_all(dir.join("proc/net/stat")) {
        reports.push(SourceReport::new("netns", Some(ns.label.clone())).with(
            Status::Failed,
            format!("cannot create {}: {e}", dir.display()),
        ));
        return reports;
    }
    let ns_file = if ns.label == "host" {
        None
    } else {
        File::open(&ns.path).ok()
    };
    let label = ns.label.clone();
    let entered = std::thread::scope(|s| {
        s.spawn(|| {
            let entered = match &ns_file {
                None => true,
                // Why it failed is not kept: the sources below take it for
                // a lack of privilege (EPERM).
                Some(f) => sys::enter_netns_file(f, &ns.path).is_ok(),
            };
            let mut out = Vec::new();
            let proc_net = if entered {
                PathBuf::from("/proc/thread-self/net")
            } else {
                match ns.pids.first() {
                    Some(pid) => PathBuf::from(format!("/proc/{pid}/net")),
                    None => {
                        out.push(SourceReport::new("proc_net", Some(label.clone())).with(Status::Failed, "permission: cannot enter the namespace (needs root) and no process in it to read /proc/PID/net from"));
                        return (entered, out);
                    }
                }
            };
            for name in PROC_NET {
                let rel = format!("{dir_rel}/proc/net/{name}");
                out.push(copy_file(&proc_net.join(name), &root.join(&rel), &format!("proc_net_{}", name.replace('/', "_")), &rel, &label));
            }
            out.push(sysctls(&dir, &dir_rel, &label, entered));
            out.push(unix_diag(ns, &dir, &dir_rel, entered));
            (entered, out)
        })
        .join()
        .unwrap_or_else(|_| (false, vec![SourceReport::new("netns", Some(label.clone())).with(Status::Failed, "snapshot thread panicked")]))
    });
    let (entered, mut out) = entered;
    reports.append(&mut out);
    for (file, argv) in TOOLS {
        let rel = format!("{dir_rel}/{file}");
        if ns_file.is_some() && !entered {
            reports.push(
                SourceReport::new(format!("tool:{}", argv.join(" ")), Some(ns.label.clone())).with(
                    Status::Failed,
                    "permission: cannot enter the namespace (needs root)",
                ),
            );
            continue;
        }
        reports.push(run_tool(
            argv,
            ns_file.as_ref(),
            &root.join(&rel),
            &rel,
            Some(&ns.label),
            tool_timeout,
        ));
    }
    reports
}

fn sysctls(dir: &Path, dir_rel: &str, label: &str, entered: bool) -> SourceReport {
    let started = Instant::now();
    let mut r = SourceReport::new("sysctls", Some(label.to_owned()));
    if !entered {
        return r.with(
            Status::Failed,
            "permission: sysctls follow the reader's namespace and entering it needs root",
        );
    }
    let mut text = String::new();
    let mut missing = Vec::new();
    for key in SYSCTLS {
        match std::fs::read_to_string(Path::new("/proc/sys").join(key)) {
            Ok(v) => text.push_str(&format!(
                "{} = {}\n",
                key.replace('/', "."),
                v.trim().replace('\t', " ")
            )),
            Err(_) => missing.push(key.replace('/', ".")),
        }
    }
    let rel = format!("{dir_rel}/sysctls.txt");
    if let Err(e) = std::fs::write(dir.join("sysctls.txt"), text) {
        return r.with(Status::Failed, format!("cannot write: {e}"));
    }
    r.files.push(rel);
    r.duration_ms = elapsed_ms(started);
    if !missing.is_empty() {
        r = r.with(
            Status::Partial,
            format!(
                "not present on this kernel or namespace: {}",
                missing.join(", ")
            ),
        );
    }
    r
}

fn unix_diag(ns: &Netns, dir: &Path, dir_rel: &str, entered: bool) -> SourceReport {
    let started = Instant::now();
    let mut r = SourceReport::new("unix_diag", Some(ns.label.clone()));
    if !entered {
        return r.with(
            Status::Failed,
            "permission: sock_diag answers for the caller's namespace and entering it needs root",
        );
    }
    let dump = match crate::unix_diag::dump_unix_sockets() {
        Ok(d) => d,
        Err(e) => return r.with(Status::Failed, format!("sock_diag: {e}")),
    };
    let mut sockets = dump.sockets;
    // Bound paths are resolved in the owner's mount namespace: a socket held
    // by a process in another one (a container, also a hostNetwork pod in
    // the host's network namespace) is looked at through that process's
    // root. Picking one process for the whole network namespace would
    // resolve every host socket through some pod's root, and call them all
    // replaced.
    let owners = foreign_socket_owners(&ns.pids);
    for s in &mut sockets {
        if let Some(pid) = owners.get(&s.inode) {
            s.restat_in(&PathBuf::from(format!("/proc/{pid}/root")));
        }
    }
    let rel = format!("{dir_rel}/unix_diag.tsv");
    let written = File::create(dir.join("unix_diag.tsv")).and_then(|f| {
        let mut w = std::io::BufWriter::new(f);
        crate::unix_diag::write_tsv(&sockets, &mut w)?;
        w.flush()
    });
    r.duration_ms = elapsed_ms(started);
    match written {
        Ok(()) => {
            r.files.push(rel);
            if dump.skipped > 0 {
                r = r.with(
                    Status::Partial,
                    format!("{} damaged sock_diag messages skipped", dump.skipped),
                );
            }
            r
        }
        Err(e) => r.with(Status::Failed, format!("cannot write unix_diag.tsv: {e}")),
    }
}

/// Socket inode -> a pid holding it, for those of `pids` that live in
/// another mount namespace than capsnap (pids that vanish or whose mount
/// namespace cannot be read are left out: their sockets keep capsnap's own
/// view of the path).
fn foreign_socket_owners(pids: &[u32]) -> std::collections::HashMap<u64, u32> {
    let own_mnt = crate::netns::ns_inode(Path::new("/proc/self/ns/mnt"));
    let mut owners = std::collections::HashMap::new();
    for &pid in pids {
        let mnt = crate::netns::ns_inode(Path::new(&format!("/proc/{pid}/ns/mnt")));
        if mnt.is_none() || mnt == own_mnt {
            continue;
        }
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for e in dir.flatten() {
            let Ok(target) = std::fs::read_link(e.path()) else {
                continue;
            };
            let inode = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok());
            if let Some(inode) = inode {
                owners.entry(inode).or_insert(pid);
            }
        }
    }
    owners
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
pub fn snapshot_processes(proc: &Path, root: &Path, redact: bool) -> SourceReport {
    let started = Instant::now();
    let mut report = SourceReport::new("processes", None);
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
    let written = std::fs::write(root.join("processes.jsonl"), procs)
        .and_then(|()| std::fs::write(root.join("fds.tsv"), fds));
    report.duration_ms = elapsed_ms(started);
    if let Err(e) = written {
        return report.with(Status::Failed, format!("cannot write: {e}"));
    }
    report.files = vec!["processes.jsonl".into(), "fds.tsv".into()];
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

/// The kernel log: the `dmesg` tool (it reads /dev/kmsg or syslog(2)).
pub fn snapshot_kernel_log(root: &Path, timeout: Duration) -> SourceReport {
    let mut r = run_tool(
        &["dmesg", "-x", "--time-format", "iso"],
        None,
        &root.join("dmesg.txt"),
        "dmesg.txt",
        None,
        timeout,
    );
    r.source = "kernel_log".into();
    r
}

/// Recent journal lines of the units that matter for node incidents.
pub fn snapshot_journal(root: &Path, timeout: Duration) -> SourceReport {
    let argv = [
        "journalctl",
        "--no-pager",
        "-o",
        "short-iso-precise",
        "--since",
        "-2h",
        "-n",
        "20000",
        "-u",
        "kubelet",
        "-u",
        "containerd",
        "-u",
        "docker",
        "-u",
        "crio",
        "-u",
        "systemd",
        "-u",
        "dbus",
        "-k",
    ];
    let mut r = run_tool(
        &argv,
        None,
        &root.join("journal.txt"),
        "journal.txt",
        None,
        timeout,
    );
    r.source = "journal".into();
    r
}

/// Classic log files, read when present. A node without journald, or whose
/// journal is volatile, keeps the kubelet, container runtime, systemd and
/// dbus lines only where rsyslog (or the kubelet's own `--log-file`) writes
/// them.
const LOG_FILES: &[&str] = &[
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
pub fn snapshot_log_files(root: &Path) -> SourceReport {
    log_files_from(LOG_FILES.iter().map(Path::new), root, LOG_TAIL_BYTES)
}

fn log_files_from<'a>(
    files: impl Iterator<Item = &'a Path>,
    root: &Path,
    max: u64,
) -> SourceReport {
    let started = Instant::now();
    let mut r = SourceReport::new("log_files", None);
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
        let rel = format!("logs/{}", name.to_string_lossy());
        let written = tail(src, max).and_then(|(bytes, len)| {
            std::fs::create_dir_all(root.join("logs"))?;
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
                format!("none of {} exists", LOG_FILES.join(", ")),
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
    use std::os::fd::AsRawFd;

    /// Regression: a listener in capsnap's own mount namespace was resolved
    /// through the root of another process of its network namespace (any
    /// one in another mount namespace), and reported replaced.
    #[test]
    fn socket_owners_are_only_processes_in_another_mount_namespace() {
        if !sys::is_root() {
            eprintln!("skipped: needs root (unshare -m)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let ours = std::os::unix::net::UnixListener::bind(dir.path().join("ours.sock")).unwrap();
        let mut child = Command::new("unshare")
            .args(["-m", "python3", "-c"])
            .arg("import os, socket, time\ns = socket.socket(socket.AF_UNIX)\ns.bind(f'\\0capsnap-test-{os.getpid()}')\ns.listen()\nprint('ready', flush=True)\ntime.sleep(30)")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut ready,
        )
        .unwrap();
        assert_eq!(
            ready, "ready\n",
            "the child in its own mount namespace did not start"
        );
        let theirs: Vec<u64> = std::fs::read_dir(format!("/proc/{}/fd", child.id()))
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let t = std::fs::read_link(e.path()).ok()?;
                t.to_str()?
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .parse()
                    .ok()
            })
            .collect();
        let owners = foreign_socket_owners(&[std::process::id(), child.id()]);
        let _ = child.kill();
        let _ = child.wait();

        use std::os::unix::fs::MetadataExt;
        let our_inode = std::fs::metadata(format!("/proc/self/fd/{}", ours.as_raw_fd()))
            .unwrap()
            .ino();
        assert_eq!(owners.get(&our_inode), None);
        assert_eq!(theirs.len(), 1);
        assert_eq!(owners.get(&theirs[0]), Some(&child.id()));
    }

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
