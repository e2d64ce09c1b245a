//! `capsnap collect`: one bounded run from discovery to bundle.
//!
//! Order: find the namespaces and name them; start every window source of
//! [`SOURCES`] (eBPF probes, packet capture in every selected namespace);
//! once all are ready, take the window-open copies (counters read again
//! at the close) and open the window; when it ends (duration or
//! Ctrl-C/SIGTERM), run the snapshot sources (per namespace on a thread
//! inside it, bounded in time; then the node's), collect the window
//! sources' reports, write the manifest and bundle. A source that fails is
//! recorded and the rest goes on.

use crate::bundle::{self, Manifest};
use crate::netns::{self, Netns, Selector};
use crate::report::{SourceReport, Status};
use crate::runtime::StateRoots;
use crate::source::{Context, InNetns, Phase, SOURCES, Scope, Source, Window, WindowState};
use crate::space::DiskBudget;
use crate::sys;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What to collect and within which bounds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Options {
    /// Length of the packet capture and eBPF window.
    pub duration: Duration,
    /// Bundle path; default `capsnap-<host>-<UTC>.capsnap` in the current directory.
    pub output: Option<PathBuf>,
    /// `--netns` selections (empty: every namespace).
    #[serde(skip)]
    pub selectors: Vec<Selector>,
    pub selector_args: Vec<String>,
    pub packets: bool,
    pub ebpf: bool,
    /// Interfaces to capture on (empty: all).
    pub interfaces: Vec<String>,
    pub snaplen: u32,
    /// Per capture point.
    pub max_packets: u64,
    /// Across all capture points together.
    pub max_bytes: u64,
    /// Each tool run is killed after this long.
    pub source_timeout: Duration,
    pub redact: bool,
    pub bpftrace: String,
    /// Where the CRI runtimes keep their state (pod and container names).
    pub runtime_state: StateRoots,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            duration: Duration::from_secs(5),
            output: None,
            selectors: Vec::new(),
            selector_args: Vec::new(),
            packets: true,
            ebpf: true,
            interfaces: Vec::new(),
            snaplen: 128,
            max_packets: 1_000_000,
            max_bytes: 256 * 1024 * 1024,
            source_timeout: Duration::from_secs(10),
            redact: true,
            bpftrace: "bpftrace".into(),
            runtime_state: StateRoots::default(),
        }
    }
}

/// Errors that stop a collection (everything else is a source report).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the staging directory {path}")]
    Staging {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing the bundle {path}")]
    Bundle {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The output cannot be written safely; nothing was collected.
    #[error("output {0}")]
    Target(String),
}

/// Set by SIGINT/SIGTERM: ends the capture window early.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Makes Ctrl-C and SIGTERM end the capture window (the bundle is still
/// written); returns the flag they set.
pub fn install_signal_handlers() -> &'static AtomicBool {
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    &STOP
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// What a collection produced.
#[derive(Debug)]
pub struct Outcome {
    pub bundle: PathBuf,
    pub size: u64,
    pub sources: Vec<SourceReport>,
}

/// Runs a whole collection. `progress` gets one line per step, for stderr.
pub fn collect(
    opts: &Options,
    stop: &AtomicBool,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Outcome, Error> {
    let proc = Path::new("/proc");
    let started_ns = sys::now_ns();
    let host = read_trim("/proc/sys/kernel/hostname");
    let out = opts
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(formats::bundle::default_name(&host, started_ns)));
    let target = bundle::Target::check(&out).map_err(Error::Target)?;
    if target == bundle::Target::Stdout && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(Error::Target(
            "- is a terminal: a bundle is binary; redirect standard output to a file or a pipe"
                .into(),
        ));
    }
    // Staging sits on the output's file system, whose space the disk
    // budget watches (a file system of its own would hide the pressure).
    let staging_parent = target.dir();
    sweep_stale_staging(&staging_parent);
    let staging = staging_parent.join(format!("{STAGING_PREFIX}{}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(|source| Error::Staging {
            path: staging.clone(),
            source,
        })?;
    let _cleanup = RemoveDir(staging.clone());
    let disk = Arc::new(DiskBudget::new(&staging));
    let mut reports = Vec::new();

    let (chosen, discovery) = namespaces(opts, &staging, proc, progress);
    reports.extend(discovery);
    let cx = Arc::new(Context {
        opts: opts.clone(),
        staging: staging.clone(),
        proc: proc.to_owned(),
        namespaces: chosen,
        disk: disk.clone(),
    });

    // Window sources start first; the window opens once all are ready.
    let runs = runs_of(&cx, Phase::Window);
    let state = WindowState::new(runs.len());
    let ticking = AtomicBool::new(true);
    let mut window_open_ns = 0;
    let mut window_close_ns = 0;
    let (window_reports, close_reports, window_ms) = std::thread::scope(|s| {
        progress(&format!(
            "starting {}",
            names(runs.iter().map(|(src, _)| *src)).join(", ")
        ));
        let handles: Vec<_> = runs
            .into_iter()
            .map(|(src, ns)| {
                let (cx, state) = (&cx, &state);
                s.spawn(move || {
                    let window = state.member();
                    let reports = run_source(src, cx, ns, &window);
                    window.ready();
                    reports
                })
            })
            .collect();
        state.wait_ready();
        // The first copies of what is read again at the close, before the
        // window is announced: a fault made after the announcement falls
        // between the two copies.
        let mut open = run_phase(&cx, Phase::Open, progress);
        window_open_ns = sys::now_ns();
        let window_start = Instant::now();
        state.open();
        let notes = state.notes();
        // Scripts that cause a fault inside the window (samples/repro) wait
        // for this line (CAPSNAP_PROGRESS=1 shows it when stderr is not a
        // terminal).
        progress(&format!(
            "window open for {:?}: {}",
            opts.duration,
            if notes.is_empty() {
                "nothing attached".to_owned()
            } else {
                notes.join(", ")
            }
        ));
        if opts.packets {
            let ticking = &ticking;
            s.spawn(move || {
                while ticking.load(Ordering::SeqCst) && window_start.elapsed() < opts.duration {
                    let left = opts.duration.saturating_sub(window_start.elapsed());
                    progress(&format!(
                        "capturing: {} packets, {} s left",
                        crate::packets::PACKETS_CAPTURED.load(Ordering::Relaxed),
                        left.as_secs()
                    ));
                    std::thread::sleep(Duration::from_secs(1).min(left));
                }
            });
        }
        while window_start.elapsed() < opts.duration && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if stop.load(Ordering::SeqCst) {
            state.interrupt();
        }
        ticking.store(false, Ordering::SeqCst);
        state.close();
        window_close_ns = sys::now_ns();
        let window_ms = window_start.elapsed().as_millis();
        // Snapshots when the window closes, so counters, sockets and
        // conntrack show what the window's traffic left behind.
        open.extend(close_snapshot(&cx, progress));
        let close = open;
        let window: Vec<SourceReport> = handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![
                        SourceReport::new("window", None).with(Status::Failed, "a source panicked"),
                    ]
                })
            })
            .collect();
        (window, close, window_ms)
    });
    reports.extend(window_reports);
    reports.extend(close_reports);
    if stop.load(Ordering::SeqCst) {
        reports.push(SourceReport::new("window", None).with(
            Status::Partial,
            format!("interrupted after {window_ms} ms by a signal; what was collected is kept"),
        ));
    }

    let cx = Arc::try_unwrap(cx).unwrap_or_else(|cx| Context {
        opts: cx.opts.clone(),
        staging: cx.staging.clone(),
        proc: cx.proc.clone(),
        namespaces: cx.namespaces.clone(),
        disk: cx.disk.clone(),
    });
    progress("writing bundle");
    let (bundle, size, sources) = write_bundle(
        &cx,
        &host,
        started_ns,
        (window_open_ns, window_close_ns),
        reports,
        None,
        &target,
        progress,
    )?;
    Ok(Outcome {
        bundle,
        size,
        sources,
    })
}

/// The namespaces of a run: those in use, named by the container runtimes
/// (whose listings go into `staging`), then selected; with the reports of
/// the runtimes and of selectors that matched nothing.
pub(crate) fn namespaces(
    opts: &Options,
    staging: &Path,
    proc: &Path,
    progress: &(dyn Fn(&str) + Sync),
) -> (Vec<Netns>, Vec<SourceReport>) {
    let (all, mut reports) =
        crate::runtime::named_namespaces(staging, proc, &opts.runtime_state, opts.source_timeout);
    let (mut chosen, unmatched) = netns::select(&all, &opts.selectors, proc);
    formats::bundle::assign_dirs(&mut chosen);
    for s in unmatched {
        reports.push(SourceReport::new("netns_selector", None).with(
            Status::Failed,
            format!("--netns {s} matches no namespace in use"),
        ));
    }
    progress(&format!(
        "{} network namespaces in use, {} selected",
        all.len(),
        chosen.len()
    ));
    (chosen, reports)
}

/// The snapshot sources ([`Phase::Close`]): those of each namespace on a
/// thread inside it, bounded in time, then the node's.
pub(crate) fn close_snapshot(
    cx: &Arc<Context>,
    progress: &(dyn Fn(&str) + Sync),
) -> Vec<SourceReport> {
    run_phase(cx, Phase::Close, progress)
}

/// Writes the manifest of what `cx.staging` holds and the bundle to
/// `target`; returns where it went, its size and the reports as the
/// manifest has them. `window_ns`: when the window opened and closed, 0
/// when nothing was copied at its opening.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_bundle(
    cx: &Context,
    host: &str,
    started_ns: u64,
    window_ns: (u64, u64),
    mut reports: Vec<SourceReport>,
    trigger: Option<formats::bundle::Trigger>,
    target: &bundle::Target,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(PathBuf, u64, Vec<SourceReport>), Error> {
    let out = match target {
        bundle::Target::Stdout => PathBuf::from("-"),
        bundle::Target::File { path, .. } => path.clone(),
    };
    let finished_ns = sys::now_ns();
    let members = bundle::members(&cx.staging).map_err(|source| Error::Bundle {
        path: out.clone(),
        source,
    })?;
    let kernel = sys::kernel()
        .map(|k| format!("{} {} {}", k.sysname, k.release, k.machine))
        .unwrap_or_default();
    let mut manifest = Manifest {
        format_version: bundle::FORMAT_VERSION,
        capsnap_version: env!("CARGO_PKG_VERSION").to_owned(),
        host: host.to_owned(),
        kernel,
        boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
        boot_ns: sys::boot_ns(),
        started: formats::bundle::rfc3339(started_ns),
        finished: formats::bundle::rfc3339(finished_ns),
        started_ns,
        finished_ns,
        window_open_ns: window_ns.0,
        window_close_ns: window_ns.1,
        root: sys::is_root(),
        options: serde_json::to_value(&cx.opts).unwrap_or_default(),
        namespaces: cx.namespaces.clone(),
        sources: reports.clone(),
        members,
        trigger,
        ebpf: crate::ebpf::path_of(&cx.staging),
    };
    let mut written = bundle::write_to(&cx.staging, &manifest, target);
    // The bundle did not fit (the disk filled while writing, or the
    // captures did not compress as the budget hoped): captures go, the
    // largest first, and the rest is kept, the manifest saying so.
    while let Err(e) = &written
        && e.kind() == std::io::ErrorKind::StorageFull
        && *target != bundle::Target::Stdout
    {
        let why = format!("left out: the bundle did not fit on the output's file system ({e})");
        let cut = cut_captures(&mut manifest.members, 1, &why);
        if cut.is_empty() {
            break;
        }
        progress("the bundle did not fit: writing it again without the largest capture");
        manifest.sources.extend(cut.clone());
        reports.extend(cut);
        written = bundle::write_to(&cx.staging, &manifest, target);
    }
    let (bundle, size) = written.map_err(|source| Error::Bundle {
        path: out.clone(),
        source,
    })?;
    Ok((bundle, size, reports))
}

/// Every run of the sources of `phase`: (source, namespace index) for a
/// per-namespace source in each namespace, (source, none) for a node one.
fn runs_of(cx: &Context, phase: Phase) -> Vec<(&'static dyn Source, Option<usize>)> {
    let mut runs = Vec::new();
    for &src in SOURCES.iter().filter(|s| s.phase() == phase) {
        match src.scope() {
            Scope::Node => runs.push((src, None)),
            Scope::Netns => runs.extend((0..cx.namespaces.len()).map(|i| (src, Some(i)))),
        }
    }
    runs
}

/// The sources' names, once each.
fn names<'a>(sources: impl Iterator<Item = &'a dyn Source>) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for s in sources {
        if !out.contains(&s.name()) {
            out.push(s.name());
        }
    }
    out
}

/// Runs `src` on this thread: for a namespace, after entering it.
fn run_source(
    src: &dyn Source,
    cx: &Context,
    ns: Option<usize>,
    window: &Window,
) -> Vec<SourceReport> {
    match ns {
        None => src.run(cx, None, window),
        Some(i) => {
            let inside = enter(&cx.namespaces[i]);
            src.run(cx, Some(&inside), window)
        }
    }
}

/// Enters `ns` on this thread (setns(2) moves only the calling thread).
/// `host` is the namespace capsnap runs in. A namespace whose file is gone
/// is never read through another: its sources say it is gone.
fn enter(ns: &Netns) -> InNetns<'_> {
    if ns.label == "host" {
        return InNetns {
            ns,
            entered: true,
            gone: false,
            why_not: None,
        };
    }
    match sys::enter_netns(&ns.path) {
        Ok(()) => InNetns {
            ns,
            entered: true,
            gone: false,
            why_not: None,
        },
        Err(why) => InNetns {
            ns,
            entered: false,
            gone: !ns.path.exists(),
            why_not: Some(why),
        },
    }
}

/// Namespaces whose window-open copies are taken at the same time: they
/// are quick reads that delay the window's opening, but each namespace
/// takes a thread.
const OPEN_PARALLEL: usize = 8;

/// Runs the snapshot sources of `phase` (`Open` or `Close`): the
/// per-namespace ones namespace by namespace, each on a thread inside it
/// and bounded in time (at window open, several namespaces at once), then
/// the node's.
fn run_phase(
    cx: &Arc<Context>,
    phase: Phase,
    progress: &(dyn Fn(&str) + Sync),
) -> Vec<SourceReport> {
    let mut reports = Vec::new();
    let n = cx.namespaces.len();
    if !runs_of(cx, phase).is_empty() {
        if phase == Phase::Open {
            progress(&format!("copies at window open in {n} namespaces"));
            let all: Vec<usize> = (0..n).collect();
            for chunk in all.chunks(OPEN_PARALLEL) {
                let started: Vec<_> = chunk
                    .iter()
                    .map(|&i| start_netns_phase(cx, phase, i))
                    .collect();
                for pending in started {
                    reports.extend(pending.wait());
                }
            }
        } else {
            for (i, ns) in cx.namespaces.iter().enumerate() {
                progress(&format!(
                    "snapshot of namespace {} ({}/{n})",
                    ns.label,
                    i + 1
                ));
                reports.extend(start_netns_phase(cx, phase, i).wait());
            }
        }
    }
    for (src, _) in runs_of(cx, phase)
        .into_iter()
        .filter(|(src, _)| src.scope() == Scope::Node)
    {
        progress(&format!("snapshot of {}", src.name()));
        reports.extend(run_source(src, cx, None, &WindowState::new(0).member()));
    }
    reports
}

/// The reports of one namespace's snapshot, running on a thread of its own.
struct PendingSnapshot {
    rx: std::sync::mpsc::Receiver<Vec<SourceReport>>,
    deadline: Instant,
    limit: Duration,
    label: String,
}

impl PendingSnapshot {
    /// Waits for the reports until the deadline: a /proc read or a stat
    /// that hangs (a dead NFS mount) is reported and left behind, never
    /// blocking the rest of the collection.
    fn wait(self) -> Vec<SourceReport> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        self.rx.recv_timeout(left).unwrap_or_else(|_| {
            vec![SourceReport::new("netns_snapshot", Some(self.label)).with(
                Status::Partial,
                format!(
                    "timed out after {} s; files written until then are kept",
                    self.limit.as_secs()
                ),
            )]
        })
    }
}

/// Starts the per-namespace sources of `phase` in namespace `i` on a thread
/// of its own, to be waited for at most the tool time limit for each tool
/// plus two.
fn start_netns_phase(cx: &Arc<Context>, phase: Phase, i: usize) -> PendingSnapshot {
    let runs: Vec<&'static dyn Source> = runs_of(cx, phase)
        .into_iter()
        .filter(|(_, ns)| *ns == Some(i))
        .map(|(src, _)| src)
        .collect();
    let tools = runs
        .iter()
        .flat_map(|s| s.writes())
        .filter(|a| a.command.is_some())
        .count();
    let limit = cx.opts.source_timeout * (tools as u32 + 2);
    let (tx, rx) = std::sync::mpsc::channel();
    let cx2 = cx.clone();
    std::thread::spawn(move || {
        let inside = enter(&cx2.namespaces[i]);
        let window = WindowState::new(0);
        let reports: Vec<SourceReport> = runs
            .iter()
            .flat_map(|src| src.run(&cx2, Some(&inside), &window.member()))
            .collect();
        let _ = tx.send(reports);
    });
    PendingSnapshot {
        rx,
        deadline: Instant::now() + limit,
        limit,
        label: cx.namespaces[i].label.clone(),
    }
}

/// The staging directory of a collection: `<prefix><pid>` next to the
/// output.
const STAGING_PREFIX: &str = ".capsnap-staging-";

/// Removes staging directories left in `dir` by collections that were
/// killed outright (SIGKILL, OOM): only directories of ours whose pid no
/// longer runs (a pid reused since only delays the removal).
fn sweep_stale_staging(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    // SAFETY: geteuid() cannot fail and touches no memory.
    let uid = unsafe { libc::geteuid() };
    for e in entries.flatten() {
        let Some(pid) = e
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix(STAGING_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let ours = std::fs::symlink_metadata(e.path()).is_ok_and(|m| m.is_dir() && m.uid() == uid);
        if ours && !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Removes up to `n` capture members (the largest first) from `members`;
/// one partial report each, naming it.
fn cut_captures(members: &mut Vec<formats::Member>, n: usize, why: &str) -> Vec<SourceReport> {
    let mut reports = Vec::new();
    for _ in 0..n {
        let Some(i) = members
            .iter()
            .enumerate()
            .filter(|(_, m)| {
                formats::bundle::at(&m.path)
                    .is_some_and(|a| a.path == formats::bundle::PACKETS.path)
            })
            .max_by_key(|(_, m)| m.size)
            .map(|(i, _)| i)
        else {
            break;
        };
        let m = members.remove(i);
        reports.push(
            SourceReport::new(formats::bundle::PACKETS.source, None).with(
                Status::Partial,
                format!("{} ({} bytes) {why}", m.path, m.size),
            ),
        );
    }
    reports
}

/// Removes the staging directory however the collection ends.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_of_a_dead_collect_is_removed_9() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.path().join(format!("{STAGING_PREFIX}{dead}"));
        let live = dir
            .path()
            .join(format!("{STAGING_PREFIX}{}", std::process::id()));
        let other = dir.path().join(".capsnap-staging-x");
        for d in [&stale, &live, &other] {
            std::fs::create_dir_all(d.join("netns/host")).unwrap();
        }
        sweep_stale_staging(dir.path());
        assert!(!stale.exists(), "the dead collect's staging stays");
        assert!(live.exists() && other.exists());
    }
}
