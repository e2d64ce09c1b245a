//! A collector source: one kind of thing `capsnap collect` gathers, as one
//! implementation of [`Source`], listed once in [`SOURCES`].
//!
//! `collect()` runs the list: every [`Phase::Window`] source starts first
//! and says when it is ready (the window opens once all are: eBPF probes
//! attached, packet sockets open); then every [`Phase::Open`] source takes
//! its copy of what is read again at the end (counters), and the window
//! opens; the window sources run until it closes; then every
//! [`Phase::Close`] source takes its snapshot, so counters, sockets and
//! conntrack hold what the window's traffic left behind, and a counter
//! read at both ends says what changed during the window. A
//! [`Scope::Netns`] source runs once per selected namespace, on a thread
//! that has entered it; a [`Scope::Node`] source runs once.
//!
//! Adding a source: write one file in `sources/` implementing [`Source`]
//! (it writes the artifacts of `formats::bundle` it names in `writes` and
//! reports each under the artifact's source id), and add one line to
//! [`SOURCES`].

use crate::collect::Options;
use crate::netns::Netns;
use crate::report::{SourceReport, Status};
use crate::sources;
use formats::bundle::Artifact;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Instant;

/// Every source of a collection, in the order each phase runs them.
pub const SOURCES: &[&dyn Source] = &[
    &sources::ebpf::Ebpf,
    &sources::packets::Packets,
    &sources::window_open::WindowOpen,
    &sources::proc_net::ProcNet,
    &sources::netlink::Netlink,
    &sources::sysctls::Sysctls,
    &sources::unix_sockets::UnixSockets,
    &sources::tools::Tools,
    &sources::processes::Processes,
    &sources::kernel_log::KernelLog,
    &sources::journal::Journal,
    &sources::log_files::LogFiles,
];

/// Where a source runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Once for the node.
    Node,
    /// Once per selected network namespace, on a thread that has entered
    /// it: setns(2) moves only that thread, and what it reads under
    /// /proc/thread-self/net, the sysctls, sock_diag, the packet sockets it
    /// opens and the children it starts all follow it.
    Netns,
}

/// When a source runs, relative to the capture window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// For the whole window: started before it opens, ended when it closes.
    Window,
    /// When the window opens, once every window source is ready and before
    /// the window is announced open: the first copy of what a close source
    /// reads again, so the change between the two is the window's.
    Open,
    /// When the window closes: snapshots that must include the window.
    Close,
}

/// One kind of thing the collector gathers.
pub trait Source: Sync {
    /// A short name, for progress lines.
    fn name(&self) -> &'static str;
    fn scope(&self) -> Scope;
    fn phase(&self) -> Phase;
    /// The artifacts of `formats::bundle` it writes.
    fn writes(&self) -> Vec<&'static Artifact>;
    /// Runs it: once per namespace (`ns` set) for a [`Scope::Netns`]
    /// source, once (`ns` none) for a [`Scope::Node`] one. A
    /// [`Phase::Window`] source calls [`Window::ready`] as soon as it
    /// observes (or knows it cannot), and returns once the window closed.
    /// It reports each artifact it wrote, or why not, and never fails the
    /// collection.
    fn run(&self, cx: &Context, ns: Option<&InNetns>, window: &Window) -> Vec<SourceReport>;
}

/// What every source of one collection gets.
#[derive(Debug)]
pub struct Context {
    pub opts: Options,
    /// The staging directory: a source writes `artifact.path_in(..)` here.
    pub staging: PathBuf,
    /// Normally `/proc`.
    pub proc: PathBuf,
    /// The selected namespaces, each with its bundle directory.
    pub namespaces: Vec<Netns>,
    /// The disk budget of the staging directory's file system: a source
    /// that writes much (the packet capture) claims every write from it
    /// and stops when it says the disk is low.
    pub disk: std::sync::Arc<crate::space::DiskBudget>,
}

impl Context {
    /// Where `artifact` of a node source is written.
    pub fn node_file(&self, artifact: &Artifact) -> PathBuf {
        self.staging.join(artifact.path_in(None))
    }
}

/// A namespace as a per-namespace source sees it, from a thread that tried
/// to enter it.
#[derive(Debug)]
pub struct InNetns<'a> {
    pub ns: &'a Netns,
    /// Whether this thread is inside the namespace. Without the privilege
    /// to enter it (not root), a source reads what is readable from outside
    /// or reports why not.
    pub entered: bool,
    /// The namespace is gone (its file vanished before the snapshot):
    /// nothing of it can be read, from inside or out.
    pub gone: bool,
    /// Why it could not be entered.
    pub why_not: Option<String>,
}

impl InNetns<'_> {
    /// The bundle path of `artifact` in this namespace.
    pub fn rel(&self, artifact: &Artifact) -> String {
        artifact.path_in(Some(&self.ns.dir))
    }

    /// Where `artifact` is written in this namespace; its folder is made.
    pub fn file(&self, cx: &Context, artifact: &Artifact) -> PathBuf {
        let path = cx.staging.join(self.rel(artifact));
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        path
    }

    /// A report of `artifact` in this namespace.
    pub fn report(&self, artifact: &Artifact) -> SourceReport {
        SourceReport::new(artifact.source, Some(self.ns.label.clone()))
    }

    /// The report of an artifact that needs the namespace entered, when it
    /// was not: failed, saying why.
    pub fn not_entered(&self, artifact: &Artifact, what: &str) -> SourceReport {
        let why = self.why_not.as_deref().unwrap_or("not entered");
        self.report(artifact)
            .with(Status::Failed, format!("{why}: {what}"))
    }
}

/// The capture window, shared by the sources that span it.
#[derive(Debug, Default)]
pub struct WindowState {
    state: Mutex<(usize, bool)>,
    /// What the sources said when ready ("eBPF probes attached").
    notes: Mutex<Vec<&'static str>>,
    changed: Condvar,
    closed: AtomicBool,
    interrupted: AtomicBool,
}

impl WindowState {
    /// A window that waits for `sources` to be ready before it opens.
    pub fn new(sources: usize) -> Self {
        WindowState {
            state: Mutex::new((sources, false)),
            ..WindowState::default()
        }
    }

    /// One source's view of it.
    pub fn member(&self) -> Window<'_> {
        Window {
            state: self,
            readied: AtomicBool::new(false),
        }
    }

    /// What the sources said when they became ready, in that order.
    pub fn notes(&self) -> Vec<&'static str> {
        self.notes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until every source is ready.
    pub fn wait_ready(&self) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while s.0 > 0 {
            s = self.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Opens the window: sources waiting in [`Window::wait_open`] go on.
    pub fn open(&self) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.1 = true;
        self.changed.notify_all();
    }

    /// Says that a signal ends the window early (sources that watch
    /// [`Window::interrupted_flag`] stop at once).
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
    }

    /// Closes it.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.1 = true;
        self.changed.notify_all();
    }
}

/// One source's handle on the capture window.
#[derive(Debug)]
pub struct Window<'a> {
    state: &'a WindowState,
    readied: AtomicBool,
}

impl Window<'_> {
    /// This source is ready (or will not observe anything): the window
    /// opens once every source has said so. Saying it twice is harmless;
    /// the runner says it for a source that returns without saying it.
    pub fn ready(&self) {
        if self.readied.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut s = self
            .state
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        s.0 = s.0.saturating_sub(1);
        self.state.changed.notify_all();
    }

    /// [`Window::ready`], with what the window-open line says of it.
    pub fn ready_as(&self, note: &'static str) {
        if !self.readied.load(Ordering::SeqCst) {
            self.state
                .notes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(note);
        }
        self.ready();
    }

    /// Waits until the window opens (or was closed before it opened).
    pub fn wait_open(&self) {
        let mut s = self
            .state
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while !s.1 {
            s = self
                .state
                .changed
                .wait(s)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The flag a signal sets when it ends the window early.
    pub fn interrupted_flag(&self) -> &AtomicBool {
        &self.state.interrupted
    }

    /// Whether the window has closed.
    pub fn is_closed(&self) -> bool {
        self.state.closed.load(Ordering::SeqCst)
    }
}

/// Milliseconds since `t`.
pub fn elapsed_ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

/// Copies `src` to `dst` for the report `r` (whose `files` gets `rel`),
/// telling a file the kernel lacks from one capsnap may not read.
pub fn copy_file(src: &Path, dst: &Path, rel: String, mut r: SourceReport) -> SourceReport {
    let started = Instant::now();
    let result = std::fs::read(src).and_then(|bytes| std::fs::write(dst, bytes));
    r.duration_ms = elapsed_ms(started);
    match result {
        Ok(()) => {
            r.files.push(rel);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_artifact_with_a_source_id_is_written_by_one_source() {
        use formats::bundle::{ARTIFACTS, Scope as ArtifactScope};
        let written: Vec<&Artifact> = SOURCES.iter().flat_map(|s| s.writes()).collect();
        for a in ARTIFACTS {
            // The manifest is the bundle itself; runtime listings are read
            // before any source runs, to name the namespaces.
            if a.scope == ArtifactScope::Hand
                || !a.collected
                || a.source == "manifest"
                || a.path.starts_with("runtime/")
            {
                continue;
            }
            let key = |x: &Artifact| (x.path, x.scope, x.source);
            let n = written.iter().filter(|w| key(w) == key(a)).count();
            assert_eq!(n, 1, "{} ({}) is written by {n} sources", a.path, a.source);
        }
        // The conntrack tool's files are only read from older bundles.
        for w in &written {
            assert!(w.collected, "{} is retired but still written", w.path);
        }
        for s in SOURCES {
            for a in s.writes() {
                let scope = match a.scope {
                    ArtifactScope::Netns => Scope::Netns,
                    _ => Scope::Node,
                };
                assert_eq!(scope, s.scope(), "{} writes {}", s.name(), a.path);
            }
        }
    }

    #[test]
    fn the_window_opens_when_every_source_is_ready() {
        let w = WindowState::new(2);
        std::thread::scope(|s| {
            let (a, b) = (w.member(), w.member());
            s.spawn(move || {
                a.ready();
                a.ready();
                a.wait_open();
                while !a.is_closed() {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            });
            s.spawn(move || b.ready());
            w.wait_ready();
            w.open();
            w.close();
        });
        assert!(w.closed.load(Ordering::SeqCst));
    }
}
