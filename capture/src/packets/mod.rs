//! AF_PACKET capture in one or more network namespaces at once, written as
//! pcapng.
//!
//! Each [`CaptureTarget`] gets its own OS thread. The thread enters the
//! target's namespace with `setns(CLONE_NEWNET)`, which moves only the
//! calling thread (setns(2)), and only then opens its packet sockets: a
//! socket belongs to the namespace it was created in for its whole life, so
//! the order matters and the thread can be thrown away afterwards. The
//! threads are fresh `std::thread::scope` threads, never a pool's, so no
//! other work ever runs in a namespace it did not ask for.
//!
//! Each socket reads a TPACKET_V3 ring ([`ring`]), as libpcap does; each
//! packet becomes a frame ([`frame`]: headers the kernel took away put
//! back, cut to the snap length except DNS) that goes to a [`Sink`]: the
//! pcapng file of `collect` ([`sink::PcapngSink`]) or the ring of `watch`.
//! Every packet the kernel accepted is accounted for: dropped by the
//! kernel, written, or dropped by capsnap, in the report
//! ([`formats::bundle::PacketCounts`]) and in the file's interface
//! statistics block.
//!
//! The capture is read-only towards the node: no promiscuous mode, no
//! change to any interface, bounded by time, packet count and file size,
//! and it always ends (poll with a short timeout, every thread joined).

mod frame;
mod ring;
mod sink;

pub use frame::{Framer, epb_flags};
pub use ring::{Geometry, KernelCounts};
pub use sink::{Bounds, PcapngSink, Refusal, Seen, Sink, WRITE_BUFFER};

use crate::report::{SourceReport, Status};
use formats::bundle::PacketCounts;
use formats::pcapng::EpbFlags;
use ring::{Packet, RingSocket};
use std::collections::HashSet;
use std::ffi::{CStr, CString, c_int};
use std::io::{self, BufWriter};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Where to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureTarget {
    /// Capture point label, e.g. `host`, `pod/default/web`, `netns-4026532301`.
    pub label: String,
    /// A namespace file (`/proc/PID/ns/net`, `/var/run/netns/NAME`); `None`
    /// is the namespace capsnap runs in.
    pub netns: Option<PathBuf>,
    /// Interface names to capture on; empty means all of the namespace's.
    pub interfaces: Vec<String>,
    /// File name for the pcapng inside the output directory.
    pub file: String,
}

/// Bounds of a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureOptions {
    pub duration: Duration,
    /// Stop a target after this many packets.
    pub max_packets: u64,
    /// Stop a target after this many bytes written.
    pub max_bytes: u64,
    /// Bytes kept of each packet that is not DNS (DNS is kept whole).
    pub snaplen: u32,
    /// Bytes of kernel ring per packet socket.
    pub ring_bytes: usize,
    /// The collection's disk budget: every block is claimed from it before
    /// it is written, and the capture ends when it says the disk is low.
    pub disk: Option<std::sync::Arc<crate::space::DiskBudget>>,
}

/// Kernel ring per capture point when nothing else is asked: 32 blocks of
/// 256 KiB. At 1 Gb/s of full-size frames that is 60 ms of packets, ample
/// for a reader that empties a block in microseconds; tcpdump's default is
/// 2 MiB.
pub const RING_BYTES: usize = 8 << 20;

/// How often the loop wakes up to look at `stop` and the deadline, and how
/// long the kernel keeps a partly filled block before handing it over.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How often buffered blocks are pushed to the file, so that a capsnap
/// killed outright (SIGKILL, OOM) loses at most this much of the capture,
/// and the kernel's counters are read.
const TICK: Duration = Duration::from_secs(1);

/// Packets written by every capture of this process so far, for the
/// progress display.
pub static PACKETS_CAPTURED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Captures on every target at the same time until `duration` passes,
/// `stop` becomes true or a bound is hit. One report per target.
///
/// Each target writes `out_dir/target.file` and yields one report, in the
/// order of `targets`: `ok` (with a reason when a packet or byte bound
/// ended it early), `partial` when interrupted by `stop`, when the kernel
/// dropped packets or a named interface is missing, `failed` with the
/// reason (`permission: ...`, namespace gone, ...) when nothing could be
/// captured; one target failing never stops the others.
///
/// A bound of 0 (`max_packets`, `max_bytes`) means no bound (the duration
/// still applies); `snaplen` 0 means 262144 bytes, libpcap's maximum.
pub fn capture_packets(
    targets: &[CaptureTarget],
    opts: &CaptureOptions,
    stop: &AtomicBool,
    out_dir: &Path,
) -> Vec<SourceReport> {
    let deadline = Instant::now().checked_add(opts.duration);
    let mut seen = HashSet::new();
    // Files are checked before any thread starts: a path that escapes the
    // output directory, or two targets writing one file, fail that target
    // only.
    let checked: Vec<Result<PathBuf, SourceReport>> = targets
        .iter()
        .map(|t| {
            let path = checked_file(&t.file).map_err(|why| failed(t, why))?;
            if !seen.insert(path.clone()) {
                return Err(failed(
                    t,
                    format!("file {} is also written by another capture target", t.file),
                ));
            }
            Ok(out_dir.join(path))
        })
        .collect();
    std::thread::scope(|s| {
        let running: Vec<_> = targets
            .iter()
            .zip(checked)
            .enumerate()
            .map(|(i, (target, path))| {
                let path = path?;
                std::thread::Builder::new()
                    .name(format!("capture-{i}"))
                    .spawn_scoped(s, move || capture_one(target, opts, stop, &path, deadline))
                    .map_err(|e| failed(target, format!("cannot start a capture thread: {e}")))
            })
            .collect();
        running
            .into_iter()
            .zip(targets)
            .map(|(handle, target)| match handle {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| failed(target, "capture thread panicked")),
                Err(report) => report,
            })
            .collect()
    })
}

/// Captures on `target` from the calling thread (which enters
/// `target.netns` first, when set) until `opts.duration` passes, `stop`
/// becomes true or a bound is hit: what [`capture_packets`] does for each
/// of its targets on a thread of its own.
pub fn capture_here(
    target: &CaptureTarget,
    opts: &CaptureOptions,
    stop: &AtomicBool,
    out_dir: &Path,
) -> SourceReport {
    match checked_file(&target.file) {
        Ok(path) => capture_one(
            target,
            opts,
            stop,
            &out_dir.join(path),
            Instant::now().checked_add(opts.duration),
        ),
        Err(why) => failed(target, why),
    }
}

fn failed(target: &CaptureTarget, why: impl Into<String>) -> SourceReport {
    SourceReport::new(formats::bundle::PACKETS.source, Some(target.label.clone()))
        .with(Status::Failed, why)
}

/// `file` as a path that stays inside the output directory, `.` parts
/// dropped so two spellings of one file are seen as one: `join` with an
/// absolute path would replace the directory, and `..` would leave it.
fn checked_file(file: &str) -> Result<PathBuf, String> {
    let bad = || format!("file name {file:?} must be a relative path inside the output directory");
    let mut path = PathBuf::new();
    for c in Path::new(file).components() {
        match c {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) | Component::ParentDir => return Err(bad()),
        }
    }
    if path.as_os_str().is_empty() {
        return Err(bad());
    }
    Ok(path)
}

/// Why a capture ended.
#[derive(Debug)]
pub enum End {
    Deadline,
    Stopped,
    PacketLimit,
    ByteLimit,
    Write(io::Error),
    Read(io::Error),
}

/// What capsnap did with a socket's packets.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    written: u64,
    capsnap_dropped: u64,
}

/// One packet socket of a capture: bound to one interface (named) or all.
struct Socket {
    ring: RingSocket,
    interface: Option<String>,
    /// The kernel's counts so far.
    kernel: KernelCounts,
    tally: Tally,
}

impl Socket {
    fn counts(&self) -> PacketCounts {
        PacketCounts {
            received: self.kernel.received,
            kernel_dropped: self.kernel.dropped,
            written: self.tally.written,
            capsnap_dropped: self.tally.capsnap_dropped,
        }
    }
}

/// What a capture did, for its report and statistics blocks.
pub struct Outcome {
    pub end: End,
    /// Every interface it saw.
    pub interfaces: Vec<Seen>,
    /// Per socket: the interface it was bound to (`None`: all) and its counts.
    pub sockets: Vec<(Option<String>, PacketCounts)>,
    /// Wall-clock start and end, nanoseconds since the epoch.
    pub start_ns: u64,
    pub end_ns: u64,
    /// Interfaces missing or gone down, worded for the report.
    pub notes: Vec<String>,
    pub geometry: Geometry,
}

impl Outcome {
    /// The counts of every socket together.
    pub fn total(&self) -> PacketCounts {
        let mut t = PacketCounts::default();
        for (_, c) in &self.sockets {
            t.received += c.received;
            t.kernel_dropped += c.kernel_dropped;
            t.written += c.written;
            t.capsnap_dropped += c.capsnap_dropped;
        }
        t
    }
}

fn capture_one(
    target: &CaptureTarget,
    opts: &CaptureOptions,
    stop: &AtomicBool,
    path: &Path,
    deadline: Option<Instant>,
) -> SourceReport {
    let started = Instant::now();
    let mut report = match capture_to_file(target, opts, stop, path, deadline) {
        Ok(report) => report,
        Err(why) => failed(target, why),
    };
    report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    report
}

/// Enters the namespace, opens the sockets and the file, captures into it
/// and reports. `Err` is the reason nothing usable was captured.
fn capture_to_file(
    target: &CaptureTarget,
    opts: &CaptureOptions,
    stop: &AtomicBool,
    path: &Path,
    deadline: Option<Instant>,
) -> Result<SourceReport, String> {
    if let Some(ns) = &target.netns {
        crate::sys::enter_netns(ns)?;
    }
    let sockets = open_sockets(target, opts)?;

    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    }
    // Owner-only: packet headers and payload prefixes can be sensitive.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let bounds = Bounds {
        max_packets: opts.max_packets,
        max_bytes: opts.max_bytes,
    };
    let mut sink = match PcapngSink::new(
        BufWriter::with_capacity(sink::WRITE_BUFFER, file),
        &target.label,
        bounds,
    ) {
        Ok(w) => w.with_disk(opts.disk.clone()),
        Err(e) => {
            let _ = std::fs::remove_file(path);
            return Err(format!("cannot write {}: {e}", path.display()));
        }
    };

    let mut out = capture_into(sockets, opts, stop, deadline, &mut sink);
    let mut wrote_stats = Ok(());
    for (bound, counts) in &out.sockets {
        if wrote_stats.is_ok() {
            wrote_stats = sink.statistics(
                &out.interfaces,
                bound.as_deref(),
                counts,
                out.start_ns,
                out.end_ns,
            );
        }
    }
    let flushed = wrote_stats.and_then(|()| sink.into_inner().map(|_| ()));
    if let Err(e) = flushed {
        out.notes
            .push(format!("writing {} failed at the end: {e}", path.display()));
    }
    let mut report = SourceReport::new(formats::bundle::PACKETS.source, Some(target.label.clone()));
    report.files = vec![target.file.clone()];
    Ok(describe(report, &out, opts, &path.display().to_string()))
}

/// Opens the target's sockets in the calling thread's namespace: one for
/// all interfaces, or one per named interface. `Err` when none could be.
/// A named interface that is missing is a note of the outcome.
fn open_sockets(
    target: &CaptureTarget,
    opts: &CaptureOptions,
) -> Result<(Vec<Socket>, Vec<String>), String> {
    let geometry = Geometry::of(opts.ring_bytes, POLL_INTERVAL);
    // The kernel cuts what is not DNS (ring::capture_program).
    let snaplen = match opts.snaplen {
        0 => u32::MAX,
        n => n,
    };
    let socket = |ring, interface| Socket {
        ring,
        interface,
        kernel: KernelCounts::default(),
        tally: Tally::default(),
    };
    let mut notes = Vec::new();
    let mut sockets = Vec::new();
    if target.interfaces.is_empty() {
        sockets.push(socket(RingSocket::open(0, geometry, snaplen)?, None));
    } else {
        let mut missing = Vec::new();
        let mut unique = HashSet::new();
        let names: Vec<&String> = target
            .interfaces
            .iter()
            .filter(|n| unique.insert(*n))
            .collect();
        // One ring each: the named interfaces share the point's ring bytes.
        let each = Geometry::of(opts.ring_bytes / names.len().max(1), POLL_INTERVAL);
        for name in names {
            match ifindex_of(name) {
                Some(ifindex) => sockets.push(socket(
                    RingSocket::open(ifindex, each, snaplen)?,
                    Some(name.clone()),
                )),
                None => missing.push(name.as_str()),
            }
        }
        if !missing.is_empty() {
            let why = format!(
                "interface {} not found in the namespace",
                missing.join(", ")
            );
            if sockets.is_empty() {
                return Err(why);
            }
            notes.push(why);
        }
    }
    Ok((sockets, notes))
}

/// The report of a capture: ok, or partial with every reason, and its
/// counts.
fn describe(
    mut report: SourceReport,
    out: &Outcome,
    opts: &CaptureOptions,
    file: &str,
) -> SourceReport {
    let total = out.total();
    report.packets = Some(Box::new(total));
    let ms = (out.end_ns.saturating_sub(out.start_ns)) / 1_000_000;
    let n = total.written;
    let mut status = Status::Ok;
    let mut notes = Vec::new();
    match &out.end {
        End::Deadline => {}
        End::PacketLimit => notes.push(format!(
            "stopped at packet limit {} after {ms} ms",
            opts.max_packets
        )),
        End::ByteLimit => notes.push(format!(
            "stopped at byte limit {} (file size) after {n} packets and {ms} ms",
            opts.max_bytes
        )),
        End::Stopped => {
            status = Status::Partial;
            let asked = opts.duration.as_millis();
            notes.push(format!(
                "interrupted after {ms} ms of the {asked} ms asked for"
            ));
        }
        End::Write(e) => {
            status = Status::Partial;
            notes.push(format!("writing {file} failed after {n} packets: {e}"));
        }
        End::Read(e) => {
            status = Status::Partial;
            notes.push(format!("reading packets failed after {n} packets: {e}"));
        }
    }
    if !out.notes.is_empty() {
        status = Status::Partial;
        notes.extend(out.notes.iter().cloned());
    }
    if total.kernel_dropped > 0 {
        status = Status::Partial;
        notes.push(format!(
            "the kernel dropped {} of {} packets (capture ring of {} KiB full); the capture has gaps",
            total.kernel_dropped,
            total.received,
            out.geometry.bytes() / 1024
        ));
    }
    if total.capsnap_dropped > 0 && matches!(out.end, End::Write(_) | End::Read(_)) {
        notes.push(format!(
            "{} packets received after that were not written",
            total.capsnap_dropped
        ));
    }
    if !notes.is_empty() {
        report = report.with(status, notes.join("; "));
    }
    report
}

/// The state of one capture loop: the interfaces seen and the frame buffer,
/// reused for every packet.
struct Capture {
    framer: Framer,
    interfaces: Vec<Seen>,
    /// Set once the sink refused a packet: the rest are counted, not kept.
    refused: Option<Refusal>,
    /// Packets written not yet added to [`PACKETS_CAPTURED`]: an atomic
    /// shared by every capture thread, touched once a batch, not once a
    /// packet (its cache line would travel between cores at each packet).
    unreported: u64,
}

impl Capture {
    fn written(&mut self, t: &mut Tally) {
        t.written += 1;
        self.unreported += 1;
        if self.unreported >= 4096 {
            self.report_progress();
        }
    }

    fn report_progress(&mut self) {
        PACKETS_CAPTURED.fetch_add(std::mem::take(&mut self.unreported), Ordering::Relaxed);
    }
}

impl Capture {
    /// Hands one packet of a socket (whose tally is `t`) to the sink.
    fn take<S: Sink>(&mut self, p: &Packet, t: &mut Tally, sink: &mut S) {
        if self.refused.is_some() {
            t.capsnap_dropped += 1;
            return;
        }
        let iface = match self.interfaces.iter().position(|i| i.ifindex == p.ifindex) {
            Some(i) => i,
            None => {
                // A new interface is named now, inside the namespace.
                self.interfaces.push(Seen {
                    ifindex: p.ifindex,
                    name: ifname_of(p.ifindex),
                    link_type: frame::link_type_of(p.meta.hatype),
                });
                self.interfaces.len() - 1
            }
        };
        let (frame, wire) = self.framer.frame(p, self.interfaces[iface].link_type);
        let flags: EpbFlags = epb_flags(p.meta.pkttype);
        match sink.packet(&self.interfaces, iface, p.ts_ns, frame, wire, flags) {
            Ok(()) => self.written(t),
            Err(refusal) => {
                // A bound reached after the packet was written keeps it.
                if matches!(refusal, Refusal::PacketLimit) {
                    self.written(t);
                } else {
                    t.capsnap_dropped += 1;
                }
                self.refused = Some(refusal);
            }
        }
    }
}

/// Opens the target's sockets in the calling thread's namespace (which the
/// caller has entered) and captures into `sink` until the deadline, `stop`
/// or the sink's refusal: the capture `watch` keeps in its ring.
pub fn capture_with<S: Sink>(
    target: &CaptureTarget,
    opts: &CaptureOptions,
    stop: &AtomicBool,
    deadline: Option<Instant>,
    sink: &mut S,
) -> Result<Outcome, String> {
    let sockets = open_sockets(target, opts)?;
    Ok(capture_into(sockets, opts, stop, deadline, sink))
}

/// The capture loop: reads every socket's ready blocks, waits on them with
/// a short timeout, reads the kernel's counters and flushes every second,
/// and at the end collects the last blocks with exact counts.
fn capture_into<S: Sink>(
    (mut sockets, notes): (Vec<Socket>, Vec<String>),
    opts: &CaptureOptions,
    stop: &AtomicBool,
    deadline: Option<Instant>,
    sink: &mut S,
) -> Outcome {
    let start_ns = crate::sys::now_ns();
    let mut cx = Capture {
        framer: Framer::new(opts.snaplen),
        interfaces: Vec::new(),
        refused: None,
        unreported: 0,
    };
    let mut notes = notes;
    let geometry = sockets
        .first()
        .map_or(Geometry::of(0, POLL_INTERVAL), |s| s.ring.geometry());
    let mut last_tick = Instant::now();
    let end = loop {
        if stop.load(Ordering::Relaxed) {
            break End::Stopped;
        }
        if let Some(r) = &cx.refused {
            break match r {
                Refusal::ByteLimit => End::ByteLimit,
                Refusal::PacketLimit => End::PacketLimit,
                Refusal::Write(e) => End::Write(io::Error::new(e.kind(), e.to_string())),
            };
        }
        let now = Instant::now();
        let wait: Duration = match deadline {
            Some(d) if now >= d => break End::Deadline,
            Some(d) => (d - now).min(POLL_INTERVAL),
            None => POLL_INTERVAL,
        };
        if now.duration_since(last_tick) >= TICK {
            last_tick = now;
            cx.report_progress();
            if let Err(e) = sink.flush() {
                break End::Write(e);
            }
            let mut delta = KernelCounts::default();
            for s in &mut sockets {
                let c = s.ring.counts();
                s.kernel += c;
                delta += c;
            }
            sink.kernel_counts(crate::sys::now_ns(), delta);
        }
        let mut any = false;
        for s in &mut sockets {
            // A bounded number of blocks per socket and turn, so that one
            // busy socket cannot keep the loop from the others and `stop`.
            for _ in 0..s.ring.geometry().blocks {
                let tally = &mut s.tally;
                if s.ring.read_block(|p| cx.take(p, tally, sink)).is_none() {
                    break;
                }
                any = true;
            }
        }
        if !any && let Err(e) = wait_any(&sockets, wait, &mut notes) {
            break End::Read(e);
        }
    };
    let mut last = KernelCounts::default();
    for s in &mut sockets {
        let tally = &mut s.tally;
        let c = s.ring.finish(|p| cx.take(p, tally, sink));
        s.kernel += c;
        last += c;
    }
    sink.kernel_counts(crate::sys::now_ns(), last);
    let _ = sink.flush();
    cx.report_progress();
    Outcome {
        end,
        interfaces: cx.interfaces,
        sockets: sockets
            .iter()
            .map(|s| (s.interface.clone(), s.counts()))
            .collect(),
        start_ns,
        end_ns: crate::sys::now_ns(),
        notes,
        geometry,
    }
}

/// Waits up to `wait` for a block on any socket. An interface that went
/// down is noted once (the socket resumes when it comes back).
fn wait_any(sockets: &[Socket], wait: Duration, notes: &mut Vec<String>) -> io::Result<()> {
    if let [one] = sockets {
        return match one.ring.wait(wait) {
            Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) => {
                note_down(one, notes);
                std::thread::sleep(wait);
                Ok(())
            }
            other => other,
        };
    }
    let mut fds: Vec<libc::pollfd> = sockets
        .iter()
        .map(|s| libc::pollfd {
            fd: s.ring.raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as c_int;
    // SAFETY: `fds` is a valid array of fds.len() pollfd.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(())
        } else {
            Err(e)
        };
    }
    for (pfd, s) in fds.iter().zip(sockets) {
        if pfd.revents & libc::POLLERR != 0 {
            let e = s.ring.take_error();
            if e.raw_os_error() == Some(libc::ENETDOWN) {
                note_down(s, notes);
            } else if e.raw_os_error().is_some_and(|c| c != 0) {
                return Err(e);
            }
        }
    }
    Ok(())
}

fn note_down(s: &Socket, notes: &mut Vec<String>) {
    let name = s.interface.as_deref().unwrap_or("an interface");
    let note = format!("interface {name} went down during the capture");
    if !notes.contains(&note) {
        notes.push(note);
    }
}

/// The index of interface `name` in the calling thread's namespace.
fn ifindex_of(name: &str) -> Option<c_int> {
    let name = CString::new(name).ok()?;
    // SAFETY: if_nametoindex reads a NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
    c_int::try_from(i).ok().filter(|&i| i > 0)
}

/// The name of interface `ifindex` in the calling thread's namespace
/// (if_indextoname asks through a socket, so the thread's namespace counts).
fn ifname_of(ifindex: c_int) -> String {
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer has the IF_NAMESIZE bytes if_indextoname may write.
    let p = unsafe { libc::if_indextoname(ifindex as libc::c_uint, name.as_mut_ptr()) };
    if p.is_null() {
        return format!("ifindex{ifindex}");
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    unsafe { CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys;
    use formats::testing::{Owned, read_back};
    use formats::{Direction, Headers, link, tcp_flag};
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::process::Command;

    #[test]
    fn output_file_names_stay_inside_the_directory() {
        for (file, want) in [
            ("packets.pcapng", Some("packets.pcapng")),
            (
                "netns/pod-web/packets.pcapng",
                Some("netns/pod-web/packets.pcapng"),
            ),
            ("./a//b.pcapng", Some("a/b.pcapng")),
            ("", None),
            (".", None),
            ("/tmp/x.pcapng", None),
            ("../x.pcapng", None),
            ("a/../../x.pcapng", None),
        ] {
            let got = checked_file(file).ok();
            assert_eq!(got.as_deref(), want.map(Path::new), "{file:?}");
        }
    }

    fn target(label: &str, netns: Option<&str>, interfaces: &[&str], file: &str) -> CaptureTarget {
        CaptureTarget {
            label: label.into(),
            netns: netns.map(PathBuf::from),
            interfaces: interfaces.iter().map(|s| s.to_string()).collect(),
            file: file.into(),
        }
    }

    fn opts(duration: Duration) -> CaptureOptions {
        CaptureOptions {
            duration,
            max_packets: 100_000,
            max_bytes: 64 * 1024 * 1024,
            snaplen: 256,
            ring_bytes: 2 << 20,
            disk: None,
        }
    }

    #[test]
    fn bad_targets_fail_alone_with_their_reason() {
        let dir = tempfile::tempdir().unwrap();
        let targets = [
            target("abs", None, &[], "/tmp/escape.pcapng"),
            target("up", None, &[], "../escape.pcapng"),
            target("empty", None, &[], ""),
            target("gone", Some("/nonexistent/ns/net"), &[], "gone.pcapng"),
            target("twice", Some("/nonexistent/ns/net"), &[], "./gone.pcapng"),
        ];
        let stop = AtomicBool::new(false);
        let reports = capture_packets(&targets, &opts(Duration::ZERO), &stop, dir.path());
        let got: Vec<_> = reports
            .iter()
            .map(|r| {
                (
                    r.source.as_str(),
                    r.netns.as_deref(),
                    r.status,
                    r.files.len(),
                )
            })
            .collect();
        let want: Vec<_> = targets
            .iter()
            .map(|t| ("packets", Some(t.label.as_str()), Status::Failed, 0))
            .collect();
        assert_eq!(got, want);
        let reasons: Vec<_> = reports
            .iter()
            .map(|r| r.reason.clone().unwrap_or_default())
            .collect();
        for (reason, want) in reasons.iter().zip([
            "must be a relative path",
            "must be a relative path",
            "must be a relative path",
            "/nonexistent/ns/net not found",
            "also written by another capture target",
        ]) {
            assert!(reason.contains(want), "{reason:?} lacks {want:?}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// Clears capabilities from the calling thread's effective set with the
    /// raw capset syscall, which (unlike what glibc does for setuid) acts
    /// on this thread alone; threads it starts inherit the reduced set.
    fn drop_caps_of_this_thread(caps: &[u32]) -> Result<(), String> {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: c_int,
        }
        #[repr(C)]
        #[derive(Clone, Copy, Default)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        // linux/capability.h _LINUX_CAPABILITY_VERSION_3: two Data words.
        let mut header = Header {
            version: 0x2008_0522,
            pid: 0,
        };
        let mut data = [Data::default(); 2];
        // SAFETY: capget/capset read and write one header and two data words.
        unsafe {
            if libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) != 0 {
                return Err(format!("capget: {}", io::Error::last_os_error()));
            }
            for &c in caps {
                data[(c / 32) as usize].effective &= !(1 << (c % 32));
            }
            if libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) != 0 {
                return Err(format!("capset: {}", io::Error::last_os_error()));
            }
        }
        Ok(())
    }

    #[test]
    fn missing_capabilities_are_reported_as_permission() {
        const CAP_NET_RAW: u32 = 13;
        const CAP_SYS_ADMIN: u32 = 21;
        let dir = tempfile::tempdir().unwrap();
        let targets = [
            target("pod-web", Some("/proc/self/ns/net"), &[], "pod.pcapng"),
            target("host", None, &[], "host.pcapng"),
        ];
        let stop = AtomicBool::new(false);
        let reports = std::thread::scope(|s| {
            s.spawn(|| {
                drop_caps_of_this_thread(&[CAP_NET_RAW, CAP_SYS_ADMIN])?;
                Ok::<_, String>(capture_packets(
                    &targets,
                    &opts(Duration::from_secs(1)),
                    &stop,
                    dir.path(),
                ))
            })
            .join()
            .unwrap()
        });
        let reports = match reports {
            Ok(r) => r,
            Err(why) => return eprintln!("SKIPPED: cannot drop capabilities: {why}"),
        };
        let got: Vec<_> = reports
            .iter()
            .map(|r| (r.status, r.reason.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Status::Failed, Some("permission: setns needs root")),
                (
                    Status::Failed,
                    Some("permission: AF_PACKET sockets need CAP_NET_RAW (run as root)")
                ),
            ]
        );
        assert!(reports.iter().all(|r| r.files.is_empty()));
    }

    fn ip(args: &[&str]) -> Result<(), String> {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("cannot run ip: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Two namespaces joined by a veth pair, 10.88.0.1/24 in `a` and
    /// 10.88.0.2/24 in `b`. Dropping it deletes the namespaces, which
    /// deletes the interfaces in them.
    struct Lab {
        a: String,
        b: String,
        va: String,
        vb: String,
    }

    impl Lab {
        /// The lab, or why this machine cannot have one.
        fn new(tag: &str) -> Result<Lab, String> {
            if !sys::is_root() {
                return Err("needs root for network namespaces and AF_PACKET".into());
            }
            let pid = std::process::id();
            let lab = Lab {
                a: format!("capsnap-pk-{tag}{pid}-a"),
                b: format!("capsnap-pk-{tag}{pid}-b"),
                va: format!("pk{tag}{pid}a"),
                vb: format!("pk{tag}{pid}b"),
            };
            ip(&["netns", "add", &lab.a])?;
            ip(&["netns", "add", &lab.b])?;
            let (a, b, va, vb) = (&lab.a, &lab.b, &lab.va, &lab.vb);
            ip(&[
                "-n", a, "link", "add", va, "type", "veth", "peer", "name", vb, "netns", b,
            ])?;
            for (ns, dev, addr) in [(a, va, "10.88.0.1/24"), (b, vb, "10.88.0.2/24")] {
                ip(&["-n", ns, "addr", "add", addr, "dev", dev])?;
                ip(&["-n", ns, "link", "set", dev, "up"])?;
                ip(&["-n", ns, "link", "set", "lo", "up"])?;
            }
            Ok(lab)
        }

        fn path(ns: &str) -> String {
            format!("/var/run/netns/{ns}")
        }
    }

    impl Drop for Lab {
        fn drop(&mut self) {
            for ns in [&self.a, &self.b] {
                let _ = ip(&["netns", "del", ns]);
            }
        }
    }

    /// Runs `f` on a new thread inside namespace `ns`. Sockets made there
    /// stay in that namespace wherever they are used afterwards.
    fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                sys::enter_netns(Path::new(&Lab::path(ns))).expect("setns");
                f()
            })
            .join()
            .expect("thread in netns")
        })
    }

    /// Waits until every file has its section header: the capture thread
    /// writes it only once its sockets are bound.
    fn wait_ready(files: &[PathBuf]) {
        let t = Instant::now();
        while !files
            .iter()
            .all(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0))
        {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "capture did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A TCP connection from `client_ns` to `server`, carrying "hello" and
    /// its echo. Returns the server port.
    fn tcp_exchange(server_ns: &str, client_ns: &str, server: &str) -> u16 {
        let listener = in_netns(server_ns, || TcpListener::bind(server).expect("listen"));
        let addr = listener.local_addr().unwrap();
        let timeout = Some(Duration::from_secs(5));
        std::thread::scope(|s| {
            // Bounded waits everywhere: a failed connect must fail the
            // test, not leave the server thread blocking the scope.
            s.spawn(|| {
                use std::io::{Read, Write};
                listener.set_nonblocking(true).unwrap();
                let t = Instant::now();
                let mut c = loop {
                    match listener.accept() {
                        Ok((c, _)) => break c,
                        Err(e)
                            if e.kind() == io::ErrorKind::WouldBlock
                                && t.elapsed() < Duration::from_secs(5) =>
                        {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => panic!("accept: {e}"),
                    }
                };
                c.set_nonblocking(false).unwrap();
                c.set_read_timeout(timeout).unwrap();
                let mut b = [0; 5];
                c.read_exact(&mut b).unwrap();
                c.write_all(&b).unwrap();
            });
            use std::io::{Read, Write};
            let mut c = in_netns(client_ns, || TcpStream::connect(addr).expect("connect"));
            c.set_read_timeout(timeout).unwrap();
            c.write_all(b"hello").unwrap();
            let mut b = [0; 5];
            c.read_exact(&mut b).unwrap();
            assert_eq!(&b, b"hello");
        });
        addr.port()
    }

    /// Sends from namespace `ns` on `dev`, through a packet socket, one
    /// broadcast Ethernet frame tagged with VLAN 10 carrying an IPv4/UDP
    /// header 10.88.10.1 -> 10.88.10.2. The receiving side's kernel moves
    /// the tag into skb metadata before packet taps see the frame
    /// (net/core/dev.c __netif_receive_skb_core, skb_vlan_untag), even
    /// without the 8021q module, so the capture has to put it back.
    fn send_tagged_frame(ns: &str, dev: &str) {
        let mut frame = vec![0xffu8; 6];
        frame.extend([0x02, 0, 0, 0, 0, 0x01, 0x81, 0x00, 0x00, 0x0a, 0x08, 0x00]);
        frame.extend([
            0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 88, 10, 1, 10, 88, 10, 2,
        ]);
        frame.extend([0x30, 0x39, 0x30, 0x39, 0, 8, 0, 0]);
        in_netns(ns, || {
            let ifindex = ifindex_of(dev).expect("veth in its namespace");
            // SAFETY: plain socket(2); checked below.
            let fd =
                unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
            assert!(fd >= 0, "{}", io::Error::last_os_error());
            // SAFETY: a new descriptor owned by nobody else.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: sockaddr_ll is plain data.
            let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            to.sll_family = libc::AF_PACKET as u16;
            to.sll_protocol = 0x8100u16.to_be();
            to.sll_ifindex = ifindex;
            to.sll_halen = 6;
            to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
            // SAFETY: sendto reads `frame` and `to` for the lengths given.
            let n = unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&raw const to).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            assert_eq!(n, frame.len() as isize, "{}", io::Error::last_os_error());
        });
    }

    /// A frame of a capture with its interface and decoded headers.
    struct Row {
        ifname: String,
        h: Headers,
        f: Owned,
    }

    fn rows(path: &Path, label: &str) -> (formats::Index, Vec<Row>) {
        let bytes = std::fs::read(path).unwrap();
        let (ix, frames) = read_back(&bytes);
        assert!(ix.damage.is_empty(), "{}: {:?}", path.display(), ix.damage);
        assert_eq!(ix.end, bytes.len());
        for i in &ix.interfaces {
            assert_eq!(
                i.description.as_deref(),
                Some(format!("netns={label}").as_str())
            );
            // DNS is kept whole: no packet is cut shorter than that.
            assert_eq!(i.snaplen, frame::MAX_SNAPLEN);
        }
        let rows = frames
            .into_iter()
            .map(|f| {
                let iface = &ix.interfaces[f.interface as usize];
                let mut h = Headers::default();
                formats::decode(iface.link_type, &f.data, &mut h);
                Row {
                    ifname: iface.name.clone().unwrap_or_default(),
                    h,
                    f,
                }
            })
            .collect();
        (ix, rows)
    }

    fn addr(a: Option<formats::Addr>) -> String {
        a.map(|a| a.to_string()).unwrap_or_default()
    }

    /// Rows of TCP segments to `port` or from it with exactly `flags` of
    /// SYN/ACK set, as (ifname, src, dst, direction).
    fn tcp(rows: &[Row], port: u16, flags: u16) -> Vec<(&str, String, String, Option<Direction>)> {
        rows.iter()
            .filter(|r| r.h.dst_port == Some(port) || r.h.src_port == Some(port))
            .filter(|r| {
                r.h.tcp
                    .is_some_and(|t| t.flags & (tcp_flag::SYN | tcp_flag::ACK) == flags)
            })
            .map(|r| {
                (
                    r.ifname.as_str(),
                    addr(r.h.src),
                    addr(r.h.dst),
                    r.f.direction,
                )
            })
            .collect()
    }

    #[test]
    fn captures_in_two_namespaces_at_once_lab() {
        let lab = match Lab::new("m") {
            Ok(lab) => lab,
            Err(why) => return eprintln!("SKIPPED: {why}"),
        };
        let (pa, pb) = (Lab::path(&lab.a), Lab::path(&lab.b));
        let dir = tempfile::tempdir().unwrap();
        let targets = [
            target("host", Some(&pa), &[], "host/packets.pcapng"),
            target("pod-web", Some(&pb), &[], "pod-web/packets.pcapng"),
            target("pod-web-veth", Some(&pb), &[&lab.vb], "pod-web-veth.pcapng"),
            target("pod-web-typo", Some(&pb), &["nosuch0"], "typo.pcapng"),
        ];
        let files: Vec<PathBuf> = targets.iter().map(|t| dir.path().join(&t.file)).collect();
        let stop = AtomicBool::new(false);
        let opts = opts(Duration::from_secs(3));
        let wall_start = sys::now_ns();
        let (reports, veth_port, lo_port) = std::thread::scope(|s| {
            let capture = s.spawn(|| capture_packets(&targets, &opts, &stop, dir.path()));
            wait_ready(&files[..3]);
            let veth_port = tcp_exchange(&lab.b, &lab.a, "10.88.0.2:0");
            let lo_port = tcp_exchange(&lab.a, &lab.a, "127.0.0.1:0");
            send_tagged_frame(&lab.a, &lab.va);
            // A DNS-sized message to port 53 and another to port 54.
            let to = |port| format!("10.88.0.2:{port}");
            let sender = in_netns(&lab.a, || UdpSocket::bind("10.88.0.1:0").unwrap());
            for port in [53, 54] {
                sender.send_to(&[0x51; 600], to(port)).unwrap();
            }
            (capture.join().unwrap(), veth_port, lo_port)
        });
        let wall_end = sys::now_ns();

        let summary: Vec<_> = reports
            .iter()
            .map(|r| {
                (
                    r.source.as_str(),
                    r.netns.as_deref(),
                    r.status,
                    r.files.clone(),
                )
            })
            .collect();
        let ok = |label: &'static str, file: &str| {
            ("packets", Some(label), Status::Ok, vec![file.to_string()])
        };
        assert_eq!(
            summary,
            vec![
                ok("host", "host/packets.pcapng"),
                ok("pod-web", "pod-web/packets.pcapng"),
                ok("pod-web-veth", "pod-web-veth.pcapng"),
                ("packets", Some("pod-web-typo"), Status::Failed, vec![]),
            ]
        );
        assert_eq!(reports[0].reason, None);
        assert_eq!(
            reports[3].reason.as_deref(),
            Some("interface nosuch0 not found in the namespace")
        );
        assert!(reports[0].duration_ms >= 2900, "{}", reports[0].duration_ms);

        for f in &files[..3] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(f).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", f.display());
        }
        let (ia, a) = rows(&files[0], "host");
        let (_, b) = rows(&files[1], "pod-web");
        let (ib, only_vb) = rows(&files[2], "pod-web-veth");
        let (c, s) = ("10.88.0.1".to_string(), "10.88.0.2".to_string());
        let (va, vb) = (lab.va.as_str(), lab.vb.as_str());
        use Direction::{In, Out};
        assert_eq!(
            tcp(&a, veth_port, tcp_flag::SYN),
            vec![(va, c.clone(), s.clone(), Some(Out))]
        );
        assert_eq!(
            tcp(&a, veth_port, tcp_flag::SYN | tcp_flag::ACK),
            vec![(va, s.clone(), c.clone(), Some(In))]
        );
        assert_eq!(
            tcp(&b, veth_port, tcp_flag::SYN),
            vec![(vb, c.clone(), s.clone(), Some(In))]
        );
        assert_eq!(
            tcp(&b, veth_port, tcp_flag::SYN | tcp_flag::ACK),
            vec![(vb, s.clone(), c.clone(), Some(Out))]
        );
        for rows in [&a, &b] {
            let hello = rows
                .iter()
                .filter(|r| r.h.src_port == Some(veth_port) || r.h.dst_port == Some(veth_port))
                .filter(|r| r.f.data.windows(5).any(|w| w == b"hello"))
                .count();
            assert_eq!(hello, 2, "hello and its echo");
        }
        // Loopback: one copy of each packet, not the outgoing one too.
        let lo = "127.0.0.1".to_string();
        assert_eq!(
            tcp(&a, lo_port, tcp_flag::SYN),
            vec![("lo", lo.clone(), lo.clone(), Some(In))]
        );
        // The interface filter keeps only vb's packets.
        assert_eq!(
            ib.interfaces
                .iter()
                .map(|i| i.name.as_deref())
                .collect::<Vec<_>>(),
            vec![Some(vb)]
        );
        assert_eq!(tcp(&only_vb, veth_port, tcp_flag::SYN).len(), 1);
        for (name, want) in [(va, link::ETHERNET), ("lo", link::ETHERNET)] {
            let i = ia
                .interfaces
                .iter()
                .find(|i| i.name.as_deref() == Some(name));
            assert_eq!(i.map(|i| i.link_type), Some(want), "{name}");
        }
        // Kernel timestamps are wall-clock time within the capture.
        for r in a.iter().chain(&b).chain(&only_vb) {
            let ts = r.f.ts_ns.unwrap_or(0) as u64;
            assert!(
                (wall_start..=wall_end).contains(&ts),
                "frame {} at {ts}",
                r.f.number
            );
        }
        // The tag is in the frame on the sending side, and put back from
        // PACKET_AUXDATA on the receiving side.
        fn tagged(rows: &[Row]) -> Vec<(&str, Option<u16>, Option<Direction>)> {
            rows.iter()
                .filter(|r| addr(r.h.src) == "10.88.10.1" && r.h.ip_proto == Some(17))
                .map(|r| (r.ifname.as_str(), r.h.vlan, r.f.direction))
                .collect()
        }
        assert_eq!(tagged(&a), vec![(va, Some(10), Some(Out))]);
        assert_eq!(tagged(&b), vec![(vb, Some(10), Some(In))]);
        assert_eq!(tagged(&only_vb), vec![(vb, Some(10), Some(In))]);
        let on_vb = only_vb.iter().find(|r| addr(r.h.src) == "10.88.10.1");
        assert_eq!(
            on_vb.map(|r| &r.f.data[12..16]),
            Some(&[0x81, 0, 0, 10][..])
        );
        assert_eq!(on_vb.map(|r| r.f.wire_len), Some(46));

        // DNS whole, the rest cut to the snap length (256).
        let udp_to = |port| {
            a.iter()
                .filter(|r| r.h.ip_proto == Some(17) && r.h.dst_port == Some(port))
                .map(|r| (r.f.data.len(), r.f.wire_len))
                .collect::<Vec<_>>()
        };
        assert_eq!(udp_to(53), [(642, 642)]);
        assert_eq!(udp_to(54), [(256, 642)]);

        // Exact counts, in the report and in the file's statistics.
        for (report, file, label) in [
            (&reports[0], &files[0], "host"),
            (&reports[1], &files[1], "pod-web"),
            (&reports[2], &files[2], "pod-web-veth"),
        ] {
            let c = report.packets.as_deref().copied().expect("counts");
            let (ix, frames) = rows(file, label);
            assert_eq!(c.written, frames.len() as u64, "{label}");
            assert_eq!(
                c.received,
                c.kernel_dropped + c.written + c.capsnap_dropped,
                "{label}"
            );
            assert_eq!((c.kernel_dropped, c.capsnap_dropped), (0, 0), "{label}");
            let stats: Vec<_> = ix
                .stats
                .iter()
                .map(|s| {
                    let name = ix.interfaces[s.interface as usize].name.clone();
                    (name, s.if_received, s.os_dropped, s.delivered)
                })
                .collect();
            let on = if label == "pod-web-veth" { vb } else { "any" };
            assert_eq!(
                stats,
                [(
                    Some(on.to_string()),
                    Some(c.received),
                    Some(0),
                    Some(c.written)
                )],
                "{label}"
            );
        }
    }

    /// A sink that takes `delay` per packet: a reader too slow for the
    /// traffic, so that the kernel's ring fills and drops.
    struct Slow {
        delay: Duration,
        packets: u64,
    }

    impl Sink for Slow {
        fn packet(
            &mut self,
            _: &[Seen],
            _: usize,
            _: u64,
            _: &[u8],
            _: u32,
            _: EpbFlags,
        ) -> Result<(), Refusal> {
            std::thread::sleep(self.delay);
            self.packets += 1;
            Ok(())
        }
    }

    #[test]
    fn drops_are_counted_exactly_when_the_reader_falls_behind_lab() {
        let lab = match Lab::new("d") {
            Ok(lab) => lab,
            Err(why) => return eprintln!("SKIPPED: {why}"),
        };
        let target = target("host", None, &[], "unused.pcapng");
        // The smallest ring: 4 blocks of 256 KiB, about 1,000 of the
        // 1,000-byte datagrams below.
        let opts = CaptureOptions {
            ring_bytes: 0,
            ..opts(Duration::from_secs(30))
        };
        let stop = AtomicBool::new(false);
        let mut slow = Slow {
            delay: Duration::from_micros(200),
            packets: 0,
        };
        let out = std::thread::scope(|s| {
            let capture = s.spawn(|| {
                sys::enter_netns(Path::new(&Lab::path(&lab.b))).unwrap();
                capture_with(&target, &opts, &stop, None, &mut slow).unwrap()
            });
            std::thread::sleep(Duration::from_millis(300));
            let sender = in_netns(&lab.a, || UdpSocket::bind("10.88.0.1:0").unwrap());
            for _ in 0..20_000 {
                let _ = sender.send_to(&[0x55; 1000], "10.88.0.2:9");
            }
            std::thread::sleep(Duration::from_millis(500));
            stop.store(true, Ordering::SeqCst);
            capture.join().unwrap()
        });
        let c = out.total();
        assert!(c.kernel_dropped > 1000, "{c:?}");
        assert_eq!(c.written, slow.packets, "{c:?}");
        assert_eq!(c.capsnap_dropped, 0, "{c:?}");
        // Every datagram arrived (ICMP port unreachables go back too).
        assert!(c.received >= 20_000, "{c:?}");
        assert_eq!(c.received, c.kernel_dropped + c.written, "{c:?}");
    }

    #[test]
    fn stop_and_bounds_end_the_capture_early_lab() {
        let lab = match Lab::new("s") {
            Ok(lab) => lab,
            Err(why) => return eprintln!("SKIPPED: {why}"),
        };
        let (pa, pb) = (Lab::path(&lab.a), Lab::path(&lab.b));
        let sender = in_netns(&lab.a, || UdpSocket::bind("10.88.0.1:0").unwrap());
        let sink = in_netns(&lab.b, || UdpSocket::bind("10.88.0.2:0").unwrap());
        let to = sink.local_addr().unwrap();
        let done = AtomicBool::new(false);
        let long = Duration::from_secs(30);
        // (case, options, stop after, status, reason starts with)
        let cases = [
            (
                "stop",
                opts(long),
                Some(Duration::from_millis(300)),
                Status::Partial,
                "interrupted after",
            ),
            (
                "packets",
                CaptureOptions {
                    max_packets: 5,
                    ..opts(long)
                },
                None,
                Status::Ok,
                "stopped at packet limit 5",
            ),
            (
                "bytes",
                CaptureOptions {
                    max_bytes: 2000,
                    ..opts(long)
                },
                None,
                Status::Ok,
                "stopped at byte limit 2000",
            ),
        ];
        /// Ends the traffic even when an assertion fails, so the scope
        /// can join the sender and the test fails instead of hanging.
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    let _ = sender.send_to(&[0x55; 100], to);
                    std::thread::sleep(Duration::from_millis(2));
                }
            });
            let _done = Done(&done);
            for (case, opts, stop_after, status, reason) in cases {
                let dir = tempfile::tempdir().unwrap();
                let targets = [
                    target("host", Some(&pa), &[], "a.pcapng"),
                    target("pod-web", Some(&pb), &[], "b.pcapng"),
                ];
                let files: Vec<_> = targets.iter().map(|t| dir.path().join(&t.file)).collect();
                let stop = AtomicBool::new(false);
                let started = Instant::now();
                let (reports, stopped_at) = std::thread::scope(|s| {
                    let capture = s.spawn(|| capture_packets(&targets, &opts, &stop, dir.path()));
                    let mut stopped_at = None;
                    if let Some(after) = stop_after {
                        wait_ready(&files);
                        std::thread::sleep(after);
                        stop.store(true, Ordering::SeqCst);
                        stopped_at = Some(Instant::now());
                    }
                    (capture.join().unwrap(), stopped_at)
                });
                let took = started.elapsed();
                assert!(took < Duration::from_secs(5), "{case}: took {took:?}");
                if let Some(at) = stopped_at {
                    let lag = at.elapsed();
                    assert!(
                        lag < Duration::from_millis(500),
                        "{case}: {lag:?} after stop"
                    );
                }
                for (report, file) in reports.iter().zip(&files) {
                    assert_eq!(report.status, status, "{case}: {:?}", report.reason);
                    let why = report.reason.as_deref().unwrap_or_default();
                    assert!(why.starts_with(reason), "{case}: {why}");
                    let bytes = std::fs::read(file).unwrap();
                    let (ix, frames) = read_back(&bytes);
                    assert!(ix.damage.is_empty(), "{case}: {:?}", ix.damage);
                    assert!(!frames.is_empty(), "{case}");
                    match case {
                        "packets" => assert_eq!(frames.len(), 5),
                        "bytes" => assert!(bytes.len() <= 2000, "{} bytes", bytes.len()),
                        _ => {}
                    }
                }
            }
        });
    }
}
