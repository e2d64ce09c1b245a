//! `capsnap watch`: the collector left running, which keeps the last
//! minutes of packets and eBPF events in a bounded ring ([`ring`]) and
//! writes an ordinary bundle when a trigger fires ([`triggers`]).
//!
//! It reuses the collector. The namespaces are found and named as
//! `collect` finds them; the window sources of [`SOURCES`] (packets, eBPF)
//! run for the whole watch and feed the ring instead of files; when a
//! trigger fires, `watch` waits `--after`, writes what the ring holds of
//! the window (`--keep` before the trigger to `--after` past it) as the
//! files those sources would have written, runs the snapshot sources
//! ([`Phase::Close`]) as `collect` does when its window closes, and writes
//! the bundle with the same writer. The manifest records the trigger.
//!
//! Cleanup, however the watch ends: bpftrace dies with capsnap
//! (PR_SET_PDEATHSIG, [`crate::sys::spawn_tied`]); every file a watch
//! writes before a bundle is complete lives in its work directory
//! `DIR/.capsnap-watch-<pid>`, removed on the way out and, should capsnap
//! be killed outright, by a small process that waits on a pipe capsnap
//! holds and removes the directory when the pipe closes.
//!
//! [`SOURCES`]: crate::source::SOURCES
//! [`Phase::Close`]: crate::source::Phase

mod open_copies;
mod ring;
mod triggers;

pub use triggers::Kind as TriggerKind;

use crate::collect::{Error, Options, close_snapshot, namespaces, write_bundle};
use crate::ebpf::{EbpfOptions, EbpfSession, stream_bpftrace};
use crate::netns::Netns;
use crate::packets::{
    Bounds, CaptureOptions, CaptureTarget, KernelCounts, PcapngSink, Refusal, Seen, Sink,
    capture_with,
};
use crate::report::{SourceReport, Status};
use crate::source::Context;
use crate::sys;
use formats::bundle::{PACKETS, PacketCounts, Trigger};
use formats::pcapng::EpbFlags;
use open_copies::OpenCopies;
use ring::{Record, Ring};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use triggers::{CounterWatch, EventWatch, Kind, RstCandidate, UnixWatch};

/// What to watch and within which bounds.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Where bundles go.
    pub dir: PathBuf,
    /// Kept before a trigger.
    pub keep: Duration,
    /// Captured after a trigger, before the snapshot.
    pub after: Duration,
    /// How long the watch runs.
    pub run_for: Duration,
    pub max_bundles: u32,
    /// After a bundle's trigger, triggers are ignored this long.
    pub cooldown: Duration,
    /// Bytes of the ring, across capture points and events.
    pub ring_bytes: usize,
    /// Bytes of bundles written at most; no bundle is started past it.
    pub max_total_bytes: u64,
    /// The triggers on (empty: all).
    pub triggers: Vec<Kind>,
    /// Binary names whose exec fires `unix-socket-replaced`.
    pub watch_exec: Vec<String>,
    /// The collector's options: namespaces, interfaces, snap length, eBPF,
    /// tool time limit, redaction.
    pub collect: Options,
}

/// bpftrace's `start` record, its `ts_ns` and the wall-clock time then:
/// what turns event times into wall-clock time, and the first line of a
/// bundle's events file (the readers pair clocks through it).
type StartLine = Arc<Mutex<Option<(Vec<u8>, u64, u64)>>>;

/// Set by SIGUSR1: the manual trigger.
static MANUAL: AtomicBool = AtomicBool::new(false);

extern "C" fn on_usr1(_: libc::c_int) {
    MANUAL.store(true, Ordering::SeqCst);
}

/// How long a capture point may hold packets before they reach the ring:
/// its sink hands them over every second ([`crate::packets`]' tick), the
/// kernel a block every 50 ms.
const FLUSH_LAG: Duration = Duration::from_millis(1500);
/// How often the counters are read.
const COUNTER_PERIOD: Duration = Duration::from_secs(1);
/// How often the listening unix sockets are read.
const UNIX_PERIOD: Duration = Duration::from_secs(2);
/// RSTs waiting for their conntrack check at most.
const RST_QUEUE: usize = 64;
/// A RST seen again within this long is not checked again.
const RST_DEDUP: Duration = Duration::from_secs(5);

/// What the watch did.
#[derive(Debug, Default)]
pub struct Summary {
    pub bundles: Vec<PathBuf>,
    /// Triggers that fired but wrote no bundle (cooldown, bounds).
    pub ignored: u64,
}

/// Runs a watch until `run_for` passes or `stop` is set. `progress` gets
/// one line per step, for stderr; `on_bundle` each bundle's path as soon
/// as it is written.
pub fn watch(
    opts: &WatchOptions,
    stop: &AtomicBool,
    progress: &(dyn Fn(&str) + Sync),
    on_bundle: &mut dyn FnMut(&Path),
) -> Result<Summary, Error> {
    let began = Instant::now();
    let proc = Path::new("/proc");
    let work = opts
        .dir
        .join(format!(".capsnap-watch-{}", std::process::id()));
    // Owner-only, as collect's staging: packets and events are sensitive.
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&work)
        .map_err(|source| Error::Staging {
            path: work.clone(),
            source,
        })?;
    let _cleanup = RemoveDir(work.clone());
    let _reaper = reaper(&work);
    // The ring lives on DIR's file system: it must fit there, with room
    // left for a bundle.
    if let Some((free, _)) = crate::space::statvfs(&work)
        && free < 2 * opts.ring_bytes as u64
    {
        return Err(Error::Target(format!(
            "{}: {} MiB free, less than twice --ring ({} MiB): the ring and a bundle would not fit",
            opts.dir.display(),
            free >> 20,
            opts.ring_bytes >> 20
        )));
    }
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGUSR1, on_usr1 as *const () as libc::sighandler_t);
    }

    let discovery = work.join("discovery");
    let _ = std::fs::create_dir(&discovery);
    let (chosen, _) = namespaces(&opts.collect, &discovery, proc, progress);
    let _ = std::fs::remove_dir_all(&discovery);
    let kinds: Vec<Kind> = if opts.triggers.is_empty() {
        Kind::ALL.to_vec()
    } else {
        opts.triggers.clone()
    };
    let retain = opts.keep + opts.after + FLUSH_LAG + Duration::from_secs(2);
    let ring_dir = work.join("ring");
    std::fs::create_dir(&ring_dir).map_err(|source| Error::Staging {
        path: ring_dir.clone(),
        source,
    })?;
    let ring = Arc::new(Ring::new(
        &ring_dir,
        opts.ring_bytes,
        retain.as_nanos() as u64,
        chosen.len(),
    ));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();

    let (fire, fired) = channel::<Trigger>();
    // Bounded: a port scan makes the node send a RST per closed port, and
    // each candidate costs a conntrack lookup; the excess is dropped.
    let (rst, rst_rx) = std::sync::mpsc::sync_channel::<RstCandidate>(RST_QUEUE);
    let halt = AtomicBool::new(false);
    let start_reports: Mutex<Vec<Option<SourceReport>>> = Mutex::new(vec![None; chosen.len()]);
    let mut summary = Summary::default();
    let open_copies = OpenCopies::new(opts.keep, opts.after);

    std::thread::scope(|s| {
        // eBPF: from this thread, which lives as long as the session
        // (PR_SET_PDEATHSIG follows the thread that started bpftrace).
        let start_line: StartLine = Arc::default();
        let (session, ebpf_report) = if opts.collect.ebpf {
            start_ebpf(
                opts,
                &work,
                &ring,
                &kinds,
                &chosen,
                &fire,
                &rst,
                &start_line,
            )
        } else {
            (
                None,
                Some(
                    SourceReport::new(formats::bundle::EVENTS.source, None)
                        .with(Status::Skipped, "not asked for (--no-ebpf)"),
                ),
            )
        };
        let ebpf_on = session.is_some();
        if ebpf_on {
            progress("eBPF probes attached");
        }

        // One capture per namespace, into the ring.
        for (i, ns) in chosen.iter().enumerate() {
            let (ring, halt, fire, rst, start_reports) =
                (&ring, &halt, &fire, &rst, &start_reports);
            let cap = capture_options(opts, chosen.len());
            let rst = (!ebpf_on && kinds.contains(&Kind::HostOnlyRst)).then(|| rst.clone());
            let on_counters = kinds.contains(&Kind::Counter);
            let on_unix = kinds.contains(&Kind::UnixSocketReplaced);
            if opts.collect.packets {
                s.spawn(move || {
                    let report = capture_point(i, ns, &cap, ring, rst, halt);
                    start_reports.lock().unwrap_or_else(PoisonError::into_inner)[i] = report;
                });
            }
            let (fire, open_copies) = (fire.clone(), &open_copies);
            s.spawn(move || probe(ns, on_counters, on_unix, &fire, halt, open_copies));
        }
        if kinds.contains(&Kind::HostOnlyRst) {
            let (chosen, fire, halt) = (&chosen, fire.clone(), &halt);
            s.spawn(move || check_rsts(chosen, rst_rx, &fire, halt));
        }
        if kinds.contains(&Kind::Log) {
            let (kernel, journal, halt) = (fire.clone(), fire.clone(), &halt);
            s.spawn(move || follow_kmsg(&kernel, halt));
            s.spawn(move || follow_journal(&journal, halt));
        }
        progress(&format!(
            "watching {} namespaces: keeping {:?} in a ring of {} MiB; triggers: {}",
            chosen.len(),
            opts.keep,
            opts.ring_bytes >> 20,
            kinds
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));

        let writer = BundleWriter {
            opts,
            work: &work,
            ring: &ring,
            namespaces: &chosen,
            host: &host,
            session: session.as_ref(),
            ebpf_report: ebpf_report.clone(),
            start_line: &start_line,
            start_reports: &start_reports,
            open_copies: &open_copies,
            progress,
        };
        let mut state = Pending::default();
        let mut written_bytes = 0u64;
        let mut last_status = Instant::now();
        loop {
            if last_status.elapsed() >= Duration::from_secs(60) {
                last_status = Instant::now();
                let held = ring
                    .oldest_ns()
                    .map_or(0.0, |o| sys::now_ns().saturating_sub(o) as f64 / 1e9);
                let (disk, _, error) = ring.usage();
                progress(&format!(
                    "ring: {} MiB on disk holding {held:.0} s; {} packets captured; {} bundles{}",
                    disk >> 20,
                    crate::packets::PACKETS_CAPTURED.load(Ordering::Relaxed),
                    summary.bundles.len(),
                    error.map(|e| format!("; {e}")).unwrap_or_default()
                ));
            }
            let ending = stop.load(Ordering::SeqCst) || began.elapsed() >= opts.run_for;
            if MANUAL.swap(false, Ordering::SeqCst) && kinds.contains(&Kind::Signal) {
                let _ = fire.send(triggers::fired(
                    Kind::Signal,
                    None,
                    None,
                    vec!["SIGUSR1".to_owned()],
                ));
            }
            // Every trigger that fired meanwhile, not one per wake-up.
            let first = fired.recv_timeout(Duration::from_millis(100)).ok();
            for t in first.into_iter().chain(fired.try_iter()) {
                let full = summary.bundles.len() as u32 >= opts.max_bundles
                    || written_bytes >= opts.max_total_bytes;
                if !state.consider(t, opts.cooldown, full, progress) {
                    summary.ignored += 1;
                }
            }
            let due = state
                .pending
                .as_ref()
                .is_some_and(|(_, at, _)| at.elapsed() >= opts.after + FLUSH_LAG);
            if (due || ending)
                && let Some((mut trigger, _, fired_ns)) = state.pending.take()
            {
                trigger.keep_ms = opts.keep.as_millis() as u64;
                trigger.after_ms = opts.after.as_millis() as u64;
                if !state.also.is_empty() {
                    trigger.evidence.push(format!(
                        "also fired within --after: {}",
                        std::mem::take(&mut state.also).join("; ")
                    ));
                }
                match writer.write(&trigger, fired_ns, summary.bundles.len() + 1) {
                    Ok((path, size)) => {
                        written_bytes += size;
                        on_bundle(&path);
                        summary.bundles.push(path);
                    }
                    Err(e) => progress(&format!("could not write a bundle: {e}")),
                }
            }
            if ending {
                break;
            }
        }
        halt.store(true, Ordering::SeqCst);
        if let Some(session) = session {
            let _ = session.stop();
        }
    });
    Ok(summary)
}

/// The trigger waiting for its `--after`, and what fired meanwhile.
#[derive(Default)]
struct Pending {
    /// The trigger, and when it fired (an `Instant` and wall-clock time:
    /// its `ts_ns` may be earlier, when the fault it saw began).
    pending: Option<(Trigger, Instant, u64)>,
    /// Triggers that fired while one was pending: named in its bundle.
    also: Vec<String>,
    /// When the last bundle's trigger fired.
    last: Option<Instant>,
}

impl Pending {
    /// Takes a trigger that fired; false when it writes no bundle.
    fn consider(
        &mut self,
        t: Trigger,
        cooldown: Duration,
        full: bool,
        progress: &(dyn Fn(&str) + Sync),
    ) -> bool {
        let what = format!("{}: {}", t.name, t.evidence.join("; "));
        if self.pending.is_some() {
            if self.also.len() < 20 {
                self.also.push(what);
            }
            return false;
        }
        if full {
            progress(&format!(
                "trigger {what}: no bundle (--max-bundles or the byte cap reached)"
            ));
            return false;
        }
        if self.last.is_some_and(|l| l.elapsed() < cooldown) {
            progress(&format!("trigger {what}: no bundle (--cooldown)"));
            return false;
        }
        progress(&format!("trigger {what}"));
        self.last = Some(Instant::now());
        self.pending = Some((t, Instant::now(), sys::now_ns()));
        true
    }
}

/// The collector's capture options for one of `points` capture points.
fn capture_options(opts: &WatchOptions, points: usize) -> CaptureOptions {
    CaptureOptions {
        duration: opts.run_for,
        max_packets: 0,
        max_bytes: 0,
        snaplen: opts.collect.snaplen,
        ring_bytes: crate::sources::packets::ring_bytes(points),
        disk: None,
    }
}

/// Captures namespace `ns` (capture point `i`) into the ring until `halt`;
/// the report of why not, if it cannot.
fn capture_point(
    i: usize,
    ns: &Netns,
    opts: &CaptureOptions,
    ring: &Arc<Ring>,
    rst: Option<SyncSender<RstCandidate>>,
    halt: &AtomicBool,
) -> Option<SourceReport> {
    let failed = |why: String| {
        Some(SourceReport::new(PACKETS.source, Some(ns.label.clone())).with(Status::Failed, why))
    };
    if ns.label != "host"
        && let Err(why) = sys::enter_netns(&ns.path)
    {
        return failed(why);
    }
    let target = CaptureTarget {
        label: ns.label.clone(),
        netns: None,
        interfaces: Vec::new(),
        file: String::new(),
    };
    let mut sink = RingSink {
        ring: ring.clone(),
        point: i as u8,
        buf: Vec::with_capacity(SINK_BATCH),
        known: 0,
        rst,
        ns: i,
        headers: formats::Headers::default(),
    };
    match capture_with(&target, opts, halt, None, &mut sink) {
        Ok(_) => None,
        Err(why) => failed(why),
    }
}

/// Records batched by a capture point before they go to the ring (one lock
/// per batch, not per packet).
const SINK_BATCH: usize = 256 * 1024;

/// A capture point's way into the ring. Without eBPF it also looks at the
/// RSTs the node sends, the packet side of the `host-only-rst` trigger.
struct RingSink {
    ring: Arc<Ring>,
    point: u8,
    buf: Vec<u8>,
    /// Interfaces the ring knows of this point.
    known: usize,
    rst: Option<SyncSender<RstCandidate>>,
    ns: usize,
    headers: formats::Headers,
}

impl Sink for RingSink {
    fn packet(
        &mut self,
        ifaces: &[Seen],
        iface: usize,
        ts_ns: u64,
        frame: &[u8],
        wire_len: u32,
        flags: EpbFlags,
    ) -> Result<(), Refusal> {
        if ifaces.len() != self.known {
            self.ring.set_interfaces(self.point, ifaces);
            self.known = ifaces.len();
        }
        Record::Packet {
            point: self.point,
            iface: iface as u16,
            ts_ns,
            wire_len,
            flags,
            data: frame,
        }
        .encode(&mut self.buf);
        if let Some(tx) = &self.rst
            && flags.0 & 3 == EpbFlags::OUTBOUND
        {
            formats::decode(ifaces[iface].link_type, frame, &mut self.headers);
            let h = &self.headers;
            if let (Some(t), Some(src), Some(dst), Some(sport), Some(dport)) =
                (h.tcp, h.src, h.dst, h.src_port, h.dst_port)
                && t.flags & formats::tcp_flag::RST != 0
            {
                let _ = tx.try_send(RstCandidate {
                    ns: self.ns,
                    src: src.to_string(),
                    sport,
                    dst: dst.to_string(),
                    dport,
                    seen: format!("captured leaving on {}", ifaces[iface].name),
                    ts_ns,
                });
            }
        }
        if self.buf.len() >= SINK_BATCH {
            self.hand_over();
        }
        Ok(())
    }

    fn kernel_counts(&mut self, ts_ns: u64, counts: KernelCounts) {
        Record::Counts {
            point: self.point,
            ts_ns,
            counts,
        }
        .encode(&mut self.buf);
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.hand_over();
        Ok(())
    }
}

impl RingSink {
    fn hand_over(&mut self) {
        if !self.buf.is_empty() {
            self.ring.append(&self.buf, sys::now_ns());
            self.buf.clear();
        }
    }
}

impl Drop for RingSink {
    fn drop(&mut self) {
        self.hand_over();
    }
}

/// Starts bpftrace with its records going to the ring and the event
/// triggers; the session, or the report of why not.
#[allow(clippy::too_many_arguments)]
fn start_ebpf(
    opts: &WatchOptions,
    work: &Path,
    ring: &Arc<Ring>,
    kinds: &[Kind],
    chosen: &[Netns],
    fire: &Sender<Trigger>,
    rst: &SyncSender<RstCandidate>,
    start_line: &StartLine,
) -> (Option<EbpfSession>, Option<SourceReport>) {
    let ebpf = EbpfOptions {
        loader: crate::ebpf::Loader::Auto,
        bpftrace: opts.collect.bpftrace.clone(),
        attach_timeout: Duration::from_secs(30).min(opts.collect.source_timeout * 3),
    };
    let by_inode = chosen
        .iter()
        .enumerate()
        .map(|(i, n)| (n.inode, (i, n.label.clone())))
        .collect();
    let mut events = EventWatch::new(
        kinds.to_vec(),
        by_inode,
        opts.watch_exec.clone(),
        fire.clone(),
        rst.clone(),
    );
    let (ring, start_line) = (ring.clone(), start_line.clone());
    let each = Box::new(move |line: &[u8]| {
        let now = sys::now_ns();
        // bpftrace's clock to wall-clock time, through the start record.
        let mut start = start_line.lock().unwrap_or_else(PoisonError::into_inner);
        if start.is_none() && formats::bpftrace::event_kind(line) == Some("start") {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
            let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
            if let (Some(ts), Some(wall)) = (n("ts_ns"), n("realtime_ns")) {
                *start = Some((line.to_vec(), ts, wall));
            }
            return;
        }
        let ts_ns = match (&*start, ts_of(line)) {
            (Some((_, ts0, wall0)), Some(ts)) => (wall0 + ts).saturating_sub(*ts0),
            _ => now,
        };
        drop(start);
        let mut buf = Vec::with_capacity(line.len() + 32);
        Record::Event { ts_ns, line }.encode(&mut buf);
        ring.append(&buf, now);
        events.record(line, ts_ns);
    });
    let dir = work.join("ebpf-session");
    let _ = std::fs::create_dir_all(&dir);
    match stream_bpftrace(&ebpf, &dir, each) {
        Ok(session) => (Some(session), None),
        Err(report) => (None, Some(report)),
    }
}

/// `ts_ns` of an event record, read without parsing it whole.
fn ts_of(line: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"ts_ns\":";
    let at = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = line[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&line[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// Reads a namespace's counters every second and its listening unix
/// sockets every two, from a thread inside it, until `halt`; keeps the
/// readings its bundles' window-open copies come from.
fn probe(
    ns: &Netns,
    counters: bool,
    unix: bool,
    fire: &Sender<Trigger>,
    halt: &AtomicBool,
    open_copies: &OpenCopies,
) {
    if ns.label != "host" && sys::enter_netns(&ns.path).is_err() {
        return;
    }
    let mut counter_watch = CounterWatch::default();
    let mut unix_watch = UnixWatch::default();
    let mut last_unix: Option<Instant> = None;
    let dir = Path::new("/proc/thread-self/net");
    while !halt.load(Ordering::Relaxed) {
        let tick = Instant::now();
        open_copies.record(&ns.label, sys::now_ns());
        if counters {
            let mut values = Vec::new();
            for file in ["netstat", "stat/nf_conntrack"] {
                if let Ok(text) = std::fs::read(dir.join(file))
                    && let Ok(v) = formats::counter_values(file, &text)
                {
                    values.extend(v);
                }
            }
            if let Some(t) = counter_watch.update(&ns.label, &values) {
                let _ = fire.send(t);
            }
        }
        if unix && last_unix.is_none_or(|l| l.elapsed() >= UNIX_PERIOD) {
            last_unix = Some(Instant::now());
            if let Ok(now) = crate::sources::unix_sockets::listeners(ns)
                && let Some(t) = unix_watch.update(&ns.label, &now)
            {
                let _ = fire.send(t);
            }
        }
        let spent = tick.elapsed();
        sleep_unless(halt, COUNTER_PERIOD.saturating_sub(spent));
    }
}

/// Sleeps `d` in steps, returning early once `halt` is set.
fn sleep_unless(halt: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !halt.load(Ordering::Relaxed) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// Checks the RSTs the node sends against its conntrack table (a ctnetlink
/// dump in the namespace) for the flow whose NAT port the RST left from.
fn check_rsts(
    namespaces: &[Netns],
    candidates: Receiver<RstCandidate>,
    fire: &Sender<Trigger>,
    halt: &AtomicBool,
) {
    let mut seen: HashMap<(usize, String, u16, String, u16), Instant> = HashMap::new();
    while !halt.load(Ordering::Relaxed) {
        let Ok(c) = candidates.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        seen.retain(|_, at| at.elapsed() < RST_DEDUP);
        let key = (c.ns, c.src.clone(), c.sport, c.dst.clone(), c.dport);
        if seen.insert(key, Instant::now()).is_some() {
            continue;
        }
        let Some(ns) = namespaces.get(c.ns) else {
            continue;
        };
        // Let conntrack finish with the packets around the RST.
        std::thread::sleep(Duration::from_millis(20));
        let Ok(entries) = conntrack_in(ns) else {
            continue;
        };
        for line in formats::conntrack_entry_lines(&entries) {
            if let Some(t) = triggers::host_only_rst(&c, &line, &ns.label) {
                let _ = fire.send(t);
                break;
            }
        }
    }
}

/// The conntrack table of namespace `ns` as ctnetlink answers it (the
/// conversation's bytes), asked from a thread that enters it: setns(2)
/// moves only the calling thread.
fn conntrack_in(ns: &Netns) -> std::io::Result<Vec<u8>> {
    let path = (ns.label != "host").then(|| ns.path.clone());
    std::thread::spawn(move || {
        if let Some(path) = path {
            sys::enter_netns(&path).map_err(std::io::Error::other)?;
        }
        crate::netlink::converse(&formats::netlink::CONNTRACK_DUMP).map(|c| c.bytes)
    })
    .join()
    .map_err(|_| std::io::Error::other("the conntrack lookup thread panicked"))?
}

/// Follows the kernel log (/dev/kmsg, from its end) for the lines that
/// fire.
fn follow_kmsg(fire: &Sender<Trigger>, halt: &AtomicBool) {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
    else {
        return;
    };
    // SAFETY: lseek on an fd we own; /dev/kmsg's SEEK_END skips the
    // records already in the buffer (Documentation/ABI/testing/dev-kmsg).
    unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_END) };
    let mut buf = vec![0u8; 8192];
    while !halt.load(Ordering::Relaxed) {
        if !readable(file.as_raw_fd(), 500) {
            continue;
        }
        // One record per read; EPIPE when records were overwritten
        // meanwhile, EAGAIN when there is none.
        // SAFETY: reads at most buf.len() bytes into buf.
        let n = unsafe { libc::read(file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        let Ok(n) = usize::try_from(n) else {
            continue;
        };
        let record = String::from_utf8_lossy(&buf[..n]);
        // "prio,seq,usec,flags;message\n continuation lines"
        let first = record.lines().next().unwrap_or("");
        let message = formats::kmsg_record(first).map_or(first, |r| r.message);
        if let Some(t) = triggers::log_line(message, "kernel") {
            let _ = fire.send(t);
        }
    }
}

/// Follows the journal (`journalctl -f`, from now on) for the lines that
/// fire; nothing when journalctl is missing.
fn follow_journal(fire: &Sender<Trigger>, halt: &AtomicBool) {
    let mut cmd = std::process::Command::new("journalctl");
    cmd.args(["-f", "-n", "0", "-q", "-o", "cat"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let Ok(mut child) = sys::spawn_tied(&mut cmd, None) else {
        return;
    };
    let Some(out) = child.stdout.take() else {
        return;
    };
    let fd = out.as_raw_fd();
    let mut reader = std::io::BufReader::new(out);
    let mut line = String::new();
    while !halt.load(Ordering::Relaxed) {
        if !readable(fd, 500) {
            continue;
        }
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if let Some(t) = triggers::log_line(&line, "journal") {
                    let _ = fire.send(t);
                }
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Whether `fd` has something to read within `ms` milliseconds.
fn readable(fd: i32, ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, ms) > 0 }
}

/// Writes bundles from the ring.
struct BundleWriter<'a> {
    opts: &'a WatchOptions,
    work: &'a Path,
    ring: &'a Arc<Ring>,
    namespaces: &'a [Netns],
    host: &'a str,
    session: Option<&'a EbpfSession>,
    /// Why there are no eBPF events, when there are none.
    ebpf_report: Option<SourceReport>,
    start_line: &'a StartLine,
    /// Why a capture point has no packets, when it has none.
    start_reports: &'a Mutex<Vec<Option<SourceReport>>>,
    open_copies: &'a OpenCopies,
    progress: &'a (dyn Fn(&str) + Sync),
}

impl BundleWriter<'_> {
    /// Writes bundle `n` for `trigger`, which fired at `fired_ns`, into the
    /// watch's directory: `--keep` before the fault, `--after` after it
    /// fired. Its path and size.
    fn write(&self, trigger: &Trigger, fired_ns: u64, n: usize) -> Result<(PathBuf, u64), Error> {
        let staging = self.work.join(format!("bundle-{n}"));
        std::fs::create_dir_all(&staging).map_err(|source| Error::Staging {
            path: staging.clone(),
            source,
        })?;
        let _cleanup = RemoveDir(staging.clone());
        let from_ns = trigger
            .ts_ns
            .saturating_sub(self.opts.keep.as_nanos() as u64);
        let to_ns = trigger.ts_ns.max(fired_ns) + self.opts.after.as_nanos() as u64;
        (self.progress)(&format!("writing the bundle of trigger {}", trigger.name));

        let cx = Arc::new(Context {
            opts: self.opts.collect.clone(),
            staging: staging.clone(),
            proc: PathBuf::from("/proc"),
            namespaces: self.namespaces.to_vec(),
            disk: Arc::new(crate::space::DiskBudget::new(&staging)),
        });
        let (_, mut reports) = crate::runtime::collect_runtime(
            &staging,
            &cx.proc,
            &self.opts.collect.runtime_state,
            self.opts.collect.source_timeout,
        );
        let window = self.ring.window(from_ns, to_ns);
        let oldest = self.ring.oldest_ns();
        let start_reports = self
            .start_reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for (i, ns) in self.namespaces.iter().enumerate() {
            reports.push(match (self.opts.collect.packets, &start_reports.get(i)) {
                (false, _) => SourceReport::new(PACKETS.source, Some(ns.label.clone()))
                    .with(Status::Skipped, "not asked for (--no-packets)"),
                (true, Some(Some(failed))) => failed.clone(),
                _ => self.packets_of(i as u8, ns, &window, &staging, oldest),
            });
        }
        // The counters as they were when the window opened, as near as the
        // probes' readings go.
        let mut opened_ns = None::<u64>;
        for ns in self.namespaces {
            let (copies, taken) = self.open_copies.write(ns, &staging, from_ns);
            reports.extend(copies);
            opened_ns = match (opened_ns, taken) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        reports.push(match (self.session, &self.ebpf_report) {
            (Some(session), _) => {
                let mut events = Vec::new();
                if let Some((start, ..)) = &*self
                    .start_line
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                {
                    events.extend_from_slice(start);
                    events.push(b'\n');
                }
                let read = window.each(|r| {
                    if let Record::Event { line, .. } = r {
                        events.extend_from_slice(line);
                        events.push(b'\n');
                    }
                    Ok::<(), std::io::Error>(())
                });
                let report = session.bundle_files(&events, &staging);
                match read {
                    Ok(()) => report,
                    Err(e) => report.with(
                        Status::Partial,
                        format!("cannot read the ring back ({e}): events after that are missing"),
                    ),
                }
            }
            (None, Some(report)) => report.clone(),
            (None, None) => SourceReport::new(formats::bundle::EVENTS.source, None)
                .with(Status::Failed, "no eBPF session"),
        });
        drop(window);
        let closed_ns = sys::now_ns();
        reports.extend(close_snapshot(&cx, self.progress));

        let name = formats::bundle::default_name(self.host, trigger.ts_ns);
        // Written in the work directory (removed however capsnap ends), then
        // moved into DIR whole.
        let target = crate::bundle::Target::File {
            path: self.work.join(&name),
            existed: false,
        };
        let (tmp, size, _) = write_bundle(
            &cx,
            self.host,
            from_ns,
            opened_ns.map_or((0, 0), |open| (open, closed_ns)),
            reports,
            Some(trigger.clone()),
            &target,
            self.progress,
        )?;
        let out = unused_name(&self.opts.dir, &name);
        std::fs::rename(&tmp, &out).map_err(|source| Error::Bundle {
            path: out.clone(),
            source,
        })?;
        Ok((out, size))
    }

    /// Writes capture point `point`'s packets of the window and reports
    /// them with their counts.
    fn packets_of(
        &self,
        point: u8,
        ns: &Netns,
        window: &ring::Window,
        staging: &Path,
        oldest: Option<u64>,
    ) -> SourceReport {
        let rel = PACKETS.path_in(Some(&ns.dir));
        let path = staging.join(&rel);
        let mut report = SourceReport::new(PACKETS.source, Some(ns.label.clone()));
        let ifaces = self.ring.interfaces(point);
        let written = (|| {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = std::fs::File::create(&path)?;
            let mut sink =
                PcapngSink::new(std::io::BufWriter::new(file), &ns.label, Bounds::default())?;
            let mut counts = PacketCounts::default();
            let mut kernel = KernelCounts::default();
            window.each(|r| {
                match r {
                    Record::Packet {
                        point: p,
                        iface,
                        ts_ns,
                        wire_len,
                        flags,
                        data,
                    } if p == point && usize::from(iface) < ifaces.len() => {
                        match sink.packet(&ifaces, usize::from(iface), ts_ns, data, wire_len, flags)
                        {
                            Ok(()) => counts.written += 1,
                            Err(Refusal::Write(e)) => return Err(e),
                            Err(_) => counts.capsnap_dropped += 1,
                        }
                    }
                    Record::Counts {
                        point: p,
                        counts: c,
                        ..
                    } if p == point => kernel += c,
                    _ => {}
                }
                Ok(())
            })?;
            counts.capsnap_dropped += self.ring.lost(point, window.from_ns);
            counts.kernel_dropped = kernel.dropped;
            counts.received = counts.written + counts.capsnap_dropped + counts.kernel_dropped;
            sink.statistics(&ifaces, None, &counts, window.from_ns, window.to_ns)?;
            sink.into_inner()?.flush()?;
            Ok::<_, std::io::Error>(counts)
        })();
        let counts = match written {
            Ok(c) => c,
            Err(e) => {
                return report.with(Status::Failed, format!("cannot write {rel}: {e}"));
            }
        };
        report.files.push(rel);
        report.packets = Some(Box::new(counts));
        let mut notes = Vec::new();
        if let Some(oldest) = oldest
            && oldest > window.from_ns
        {
            notes.push(format!(
                "the ring held {:.1} s of the {:.1} s asked for before the trigger (--ring too small for this traffic)",
                (window.to_ns.saturating_sub(oldest) as f64 / 1e9 - self.opts.after.as_secs_f64())
                    .max(0.0),
                self.opts.keep.as_secs_f64()
            ));
        }
        if counts.capsnap_dropped > 0 {
            notes.push(format!(
                "{} packets of the window left the ring for want of room",
                counts.capsnap_dropped
            ));
        }
        if counts.kernel_dropped > 0 {
            notes.push(format!(
                "the kernel dropped {} packets (capture ring full)",
                counts.kernel_dropped
            ));
        }
        if !notes.is_empty() {
            report = report.with(Status::Partial, notes.join("; "));
        }
        report
    }
}

/// `dir/name`, or with `-2`, `-3` ... before `.capsnap` when it exists.
fn unused_name(dir: &Path, name: &str) -> PathBuf {
    let mut out = dir.join(name);
    let stem = name.strip_suffix(".capsnap").unwrap_or(name);
    let mut n = 1;
    while out.exists() {
        n += 1;
        out = dir.join(format!("{stem}-{n}.capsnap"));
    }
    out
}

/// Removes a directory however the watch ends (but SIGKILL: [`reaper`]).
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A process that removes `dir` once capsnap is gone, however it went
/// (SIGKILL, the OOM killer): it blocks reading a pipe whose other end
/// only capsnap holds, which the kernel closes when capsnap dies. The
/// returned end is that pipe's; dropping it (a normal exit) ends the
/// process too.
fn reaper(dir: &Path) -> Option<std::process::ChildStdin> {
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "read -r _; rm -rf -- \"$1\"", "capsnap-reaper"])
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().ok()?;
    let stdin = child.stdin.take();
    // Reaped by init once it exits; capsnap does not wait for it.
    std::mem::forget(child);
    stdin
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Phase, SOURCES};

    /// watch writes the files of every window source from its ring: a new
    /// window source must be kept by watch too.
    #[test]
    fn watch_keeps_what_every_window_source_writes() {
        let mut written: Vec<&str> = SOURCES
            .iter()
            .filter(|s| s.phase() == Phase::Window)
            .flat_map(|s| s.writes())
            .map(|a| a.path)
            .collect();
        written.sort_unstable();
        let mut kept = vec![
            PACKETS.path,
            formats::bundle::EVENTS.path,
            formats::bundle::EBPF_STDERR.path,
            formats::bundle::EBPF_SCRIPT.path,
            formats::bundle::EBPF_CLOCK.path,
            formats::bundle::EBPF_SUMMARY.path,
        ];
        kept.sort_unstable();
        assert_eq!(written, kept);
    }

    #[test]
    fn event_times_are_read_from_the_record() {
        assert_eq!(
            ts_of(b"{\"event\":\"exec\",\"ts_ns\":8786444019591,\"pid\":1}"),
            Some(8786444019591)
        );
        assert_eq!(ts_of(b"Lost 3 events"), None);
    }

    #[test]
    fn a_second_bundle_in_one_second_gets_its_own_name() {
        let dir = tempfile::tempdir().unwrap();
        let a = unused_name(dir.path(), "capsnap-h-x.capsnap");
        std::fs::write(&a, "").unwrap();
        let b = unused_name(dir.path(), "capsnap-h-x.capsnap");
        assert_eq!(b, dir.path().join("capsnap-h-x-2.capsnap"));
    }

    #[test]
    fn triggers_within_after_and_cooldown_write_no_bundle() {
        let quiet = |_: &str| {};
        let mut p = Pending::default();
        let t = || triggers::fired(Kind::Signal, None, None, vec!["x".into()]);
        assert!(p.consider(t(), Duration::from_secs(60), false, &quiet));
        assert!(!p.consider(t(), Duration::from_secs(60), false, &quiet));
        assert_eq!(p.also.len(), 1);
        p.pending = None;
        assert!(
            !p.consider(t(), Duration::from_secs(60), false, &quiet),
            "cooldown"
        );
        let mut p = Pending::default();
        assert!(
            !p.consider(t(), Duration::ZERO, true, &quiet),
            "bounds reached"
        );
    }
}
