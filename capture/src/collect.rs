//! `capsnap collect`: one bounded run from discovery to bundle.
//!
//! Order: find namespaces; start bpftrace and wait until its probes are
//! attached; start packet capture in every selected namespace at once;
//! when the window ends (duration or Ctrl-C/SIGTERM), snapshot the
//! namespaces and the processes (so their counters include the window's
//! traffic), stop capture and probes, read the kernel log, journal and log
//! files, write the manifest and bundle.
//! A source that fails is recorded and the rest goes on.

use crate::bundle::{self, Manifest};
use crate::netns::{self, Selector};
use crate::packets::{CaptureOptions, CaptureTarget};
use crate::report::{SourceReport, Status};
use crate::{ebpf, snapshot, sys};
use std::path::{Path, PathBuf};
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
    let staging_parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staging = staging_parent.join(format!(".capsnap-staging-{}", std::process::id()));
    std::fs::create_dir(&staging).map_err(|source| Error::Staging {
        path: staging.clone(),
        source,
    })?;
    let _cleanup = RemoveDir(staging.clone());
    let root = sys::is_root();
    let mut sources = Vec::new();

    let mut all = netns::discover(proc);
    let (runtime, runtime_reports) = crate::runtime::collect_runtime(&staging, opts.source_timeout);
    runtime.annotate(&mut all);
    sources.extend(runtime_reports);
    let (mut chosen, unmatched) = netns::select(&all, &opts.selectors, proc);
    formats::bundle::assign_dirs(&mut chosen);
    for s in unmatched {
        sources.push(SourceReport::new("netns_selector", None).with(
            Status::Failed,
            format!("--netns {s} matches no namespace in use"),
        ));
    }
    progress(&format!(
        "{} network namespaces in use, {} selected",
        all.len(),
        chosen.len()
    ));

    let ebpf_session = if opts.ebpf {
        progress("attaching eBPF probes");
        let eopts = ebpf::EbpfOptions {
            bpftrace: opts.bpftrace.clone(),
            attach_timeout: Duration::from_secs(30).min(opts.source_timeout * 3),
        };
        match ebpf::start_bpftrace(&eopts, &staging) {
            Ok(s) => Some(s),
            Err(report) => {
                sources.push(report);
                None
            }
        }
    } else {
        sources.push(
            SourceReport::new("ebpf", None).with(Status::Skipped, "not asked for (--no-ebpf)"),
        );
        None
    };

    let window_start = Instant::now();
    // Scripts that cause a fault inside the window (samples/repro) wait for
    // this line (CAPSNAP_PROGRESS=1 shows it when stderr is not a terminal).
    progress(&format!(
        "window open for {:?}: {}{}",
        opts.duration,
        if ebpf_session.is_some() {
            "eBPF probes attached"
        } else {
            "no eBPF"
        },
        if opts.packets {
            ", capture starting"
        } else {
            ""
        }
    ));
    let targets: Vec<CaptureTarget> = chosen
        .iter()
        .map(|ns| CaptureTarget {
            label: ns.label.clone(),
            netns: (ns.label != "host").then(|| ns.path.clone()),
            interfaces: opts.interfaces.clone(),
            file: formats::bundle::PACKETS.path_in(Some(&ns.dir)),
        })
        .collect();
    for ns in &chosen {
        let _ = std::fs::create_dir_all(staging.join(formats::bundle::netns_path(&ns.dir)));
    }
    let cap_opts = CaptureOptions {
        duration: opts.duration,
        max_packets: opts.max_packets,
        max_bytes: opts.max_bytes / targets.len().max(1) as u64,
        snaplen: opts.snaplen,
    };
    let ticker_done = AtomicBool::new(false);
    let sources_done = std::sync::atomic::AtomicUsize::new(sources.len());
    let (capture_reports, mut snap_reports) = std::thread::scope(|s| {
        let capture = opts.packets.then(|| {
            progress(&format!(
                "capturing packets in {} namespaces for {:?}",
                targets.len(),
                opts.duration
            ));
            s.spawn(|| crate::packets::capture_packets(&targets, &cap_opts, stop, &staging))
        });
        // A progress line tells the packets captured and the time left.
        if opts.packets {
            s.spawn(|| {
                while !ticker_done.load(Ordering::SeqCst)
                    && !stop.load(Ordering::SeqCst)
                    && window_start.elapsed() < opts.duration
                {
                    let left = opts.duration.saturating_sub(window_start.elapsed());
                    progress(&format!(
                        "capturing: {} packets, {} sources done, {} s left",
                        crate::packets::PACKETS_CAPTURED.load(Ordering::Relaxed),
                        sources_done.load(Ordering::Relaxed),
                        left.as_secs()
                    ));
                    std::thread::sleep(Duration::from_secs(1).min(left));
                }
            });
        }
        // Snapshots are taken when the window ends, so counters, sockets and
        // conntrack show what the window's traffic left behind (a fault
        // seen in the capture is also in the counters).
        if capture.is_some() || ebpf_session.is_some() {
            while window_start.elapsed() < opts.duration && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let mut snaps = Vec::new();
        for (i, ns) in chosen.iter().enumerate() {
            progress(&format!(
                "snapshot of namespace {} ({}/{})",
                ns.label,
                i + 1,
                chosen.len()
            ));
            snaps.extend(bounded_snapshot(ns, &staging, opts.source_timeout));
            sources_done.store(sources.len() + snaps.len(), Ordering::Relaxed);
        }
        progress("snapshot of processes and fds");
        snaps.push(snapshot::snapshot_processes(proc, &staging, opts.redact));
        sources_done.store(sources.len() + snaps.len(), Ordering::Relaxed);
        ticker_done.store(true, Ordering::SeqCst);
        let captured = match capture {
            Some(h) => h.join().unwrap_or_else(|_| {
                vec![
                    SourceReport::new("packets", None)
                        .with(Status::Failed, "capture thread panicked"),
                ]
            }),
            None => vec![
                SourceReport::new("packets", None)
                    .with(Status::Skipped, "not asked for (--no-packets)"),
            ],
        };
        (captured, snaps)
    });
    if let Some(session) = ebpf_session {
        progress("stopping eBPF probes");
        sources.push(session.stop());
    }
    sources.extend(capture_reports);
    sources.append(&mut snap_reports);
    progress("kernel log, journal and log files");
    sources.push(snapshot::snapshot_kernel_log(&staging, opts.source_timeout));
    sources.push(snapshot::snapshot_journal(&staging, opts.source_timeout));
    sources.push(snapshot::snapshot_log_files(&staging));
    if stop.load(Ordering::SeqCst) {
        sources.push(SourceReport::new("window", None).with(
            Status::Partial,
            format!(
                "interrupted after {} ms by a signal; what was collected is kept",
                window_start.elapsed().as_millis()
            ),
        ));
    }

    let finished_ns = sys::now_ns();
    let members = bundle::members(&staging).map_err(|source| Error::Bundle {
        path: out.clone(),
        source,
    })?;
    let kernel = sys::kernel()
        .map(|k| format!("{} {} {}", k.sysname, k.release, k.machine))
        .unwrap_or_default();
    let manifest = Manifest {
        format_version: bundle::FORMAT_VERSION,
        capsnap_version: env!("CARGO_PKG_VERSION").to_owned(),
        host,
        kernel,
        boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
        started: formats::bundle::rfc3339(started_ns),
        finished: formats::bundle::rfc3339(finished_ns),
        started_ns,
        finished_ns,
        root,
        options: serde_json::to_value(opts).unwrap_or_default(),
        namespaces: chosen,
        sources: sources.clone(),
        members,
    };
    progress("writing bundle");
    let size = bundle::write(&staging, &manifest, &out).map_err(|source| Error::Bundle {
        path: out.clone(),
        source,
    })?;
    Ok(Outcome {
        bundle: out,
        size,
        sources,
    })
}

/// Snapshots a namespace on a thread of its own and waits at most for the
/// tool time limit times the number of tools: a /proc read or a stat that
/// hangs (a dead NFS mount) is reported and left behind, never blocking the
/// rest of the collection.
fn bounded_snapshot(
    ns: &netns::Netns,
    staging: &Path,
    tool_timeout: Duration,
) -> Vec<SourceReport> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (ns2, staging2) = (ns.clone(), staging.to_owned());
    std::thread::spawn(move || {
        let _ = tx.send(snapshot::snapshot_netns(&ns2, &staging2, tool_timeout));
    });
    let limit = tool_timeout * (snapshot::TOOL_COUNT as u32 + 2);
    rx.recv_timeout(limit).unwrap_or_else(|_| {
        vec![
            SourceReport::new("netns_snapshot", Some(ns.label.clone())).with(
                Status::Partial,
                format!(
                    "timed out after {} s; files written until then are kept",
                    limit.as_secs()
                ),
            ),
        ]
    })
}

/// Removes the staging directory however the collection ends.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
