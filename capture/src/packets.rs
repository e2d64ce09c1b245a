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
//! The capture is read-only towards the node: no promiscuous mode, no
//! change to any interface, bounded by time, packet count and file size,
//! and it always ends (poll with a short timeout, every thread joined).

use crate::report::{SourceReport, Status};
use formats::link;
use formats::pcapng::{self, EpbFlags, Writer};
use std::collections::HashSet;
use std::ffi::{CStr, CString, c_int, c_void};
use std::io::{self, BufWriter};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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
    /// Bytes kept of each packet.
    pub snaplen: u32,
    /// The collection's disk budget: every block is claimed from it before
    /// it is written, and the capture ends when it says the disk is low.
    pub disk: Option<std::sync::Arc<crate::space::DiskBudget>>,
}

/// How often the loop wakes up to look at `stop` and the deadline.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Packets read from one socket before the loop looks at `stop` and the
/// deadline again, so a flood cannot keep a thread past its bounds.
const BATCH: usize = 256;
/// How often buffered blocks are pushed to the file, so that a capsnap
/// killed outright (SIGKILL, OOM) loses at most this much of the capture.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// libpcap's MAXIMUM_SNAPLEN (pcap-int.h); a snaplen of 0 means this.
const MAX_SNAPLEN: u32 = 262_144;
/// Receive buffer asked for per socket. The default (rmem_default, about
/// 208 KiB) holds only ~100 full-size frames because every queued packet
/// is charged its whole skb; 2 MiB rides out bursts of a few milliseconds
/// at 1 Gb/s while bounding what many namespaces can pin together.
const RCVBUF: c_int = 2 * 1024 * 1024;
/// A synthesized `LINKTYPE_LINUX_SLL` header (tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html).
const SLL_HEADER: usize = 16;
/// Room in front of the received bytes for what the kernel took off or
/// never had: a cooked header or a VLAN tag.
const HEADROOM: usize = SLL_HEADER;
/// 802.1Q TPID, used when the kernel does not say which TPID a tag had.
const TPID_8021Q: u16 = 0x8100;

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

/// Why the capture loop ended.
enum End {
    Deadline,
    Stopped,
    PacketLimit,
    ByteLimit,
    Write(io::Error),
    Read(io::Error),
}

/// One interface seen by a capture, and its IDB.
struct Seen {
    ifindex: c_int,
    id: u32,
    link_type: u16,
}

/// One packet socket and the interface it is bound to (all when `None`).
struct Socket {
    fd: OwnedFd,
    interface: Option<String>,
}

fn capture_one(
    target: &CaptureTarget,
    opts: &CaptureOptions,
    stop: &AtomicBool,
    path: &Path,
    deadline: Option<Instant>,
) -> SourceReport {
    let started = Instant::now();
    let mut report = match capture_in_thread(target, opts, stop, path, deadline, started) {
        Ok(report) => report,
        Err(why) => failed(target, why),
    };
    report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    report
}

/// Enters the namespace, opens the sockets and the file and runs the loop.
/// `Err` is the reason nothing usable was captured.
fn capture_in_thread(
    target: &CaptureTarget,
    opts: &CaptureOptions,
    stop: &AtomicBool,
    path: &Path,
    deadline: Option<Instant>,
    started: Instant,
) -> Result<SourceReport, String> {
    if let Some(ns) = &target.netns {
        crate::sys::enter_netns(ns)?;
    }
    let mut notes = Vec::new();
    let mut status = Status::Ok;
    let mut sockets = Vec::new();
    if target.interfaces.is_empty() {
        sockets.push(Socket {
            fd: open_socket(0)?,
            interface: None,
        });
    } else {
        let mut missing = Vec::new();
        let mut unique = HashSet::new();
        for name in target.interfaces.iter().filter(|n| unique.insert(*n)) {
            match ifindex_of(name) {
                Some(ifindex) => sockets.push(Socket {
                    fd: open_socket(ifindex)?,
                    interface: Some(name.clone()),
                }),
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
            status = Status::Partial;
            notes.push(why);
        }
    }

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
    // The section header goes to disk before the first packet is read, so
    // the file is a valid (empty) capture from the start.
    let started_file = Writer::new(BufWriter::new(file), "capsnap", kernel().as_deref())
        .and_then(|mut w| w.flush().map(|()| w));
    let mut writer = match started_file {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(path);
            return Err(format!("cannot write {}: {e}", path.display()));
        }
    };

    let mut report = SourceReport::new(formats::bundle::PACKETS.source, Some(target.label.clone()));
    report.files = vec![target.file.clone()];
    let mut capture = Capture::new(opts, &target.label);
    let end = capture.run(&sockets, &mut writer, stop, deadline, &mut notes);
    let drops: u64 = sockets.iter().map(|s| drops(&s.fd)).sum();
    let flushed = writer.into_inner().map(|_| ());

    let ms = started.elapsed().as_millis();
    let n = capture.packets;
    match end {
        End::Deadline => {}
        End::PacketLimit => notes.insert(
            0,
            format!("stopped at packet limit {} after {ms} ms", opts.max_packets),
        ),
        End::ByteLimit => notes.insert(
            0,
            format!(
                "stopped at byte limit {} (file size) after {n} packets and {ms} ms",
                opts.max_bytes
            ),
        ),
        End::Stopped => {
            status = Status::Partial;
            let asked = opts.duration.as_millis();
            notes.insert(
                0,
                format!("interrupted after {ms} ms of the {asked} ms asked for"),
            );
        }
        End::Write(e) => {
            status = Status::Partial;
            notes.insert(
                0,
                format!("writing {} failed after {n} packets: {e}", path.display()),
            );
        }
        End::Read(e) => {
            status = Status::Partial;
            notes.insert(0, format!("reading packets failed after {n} packets: {e}"));
        }
    }
    if let Err(e) = flushed {
        status = Status::Partial;
        notes.push(format!("writing {} failed at the end: {e}", path.display()));
    }
    if drops > 0 {
        status = Status::Partial;
        notes.push(format!(
            "the kernel dropped {drops} packets (socket receive buffer full); the capture has gaps"
        ));
    }
    if !notes.is_empty() {
        report = report.with(status, notes.join("; "));
    }
    Ok(report)
}

/// Opens a packet socket on `ifindex` (0: every interface of the calling
/// thread's namespace).
///
/// The socket is created with protocol 0, which per packet(7) receives
/// nothing until bound; options are set first and `bind` with ETH_P_ALL
/// starts the flow. So no packet arrives without a timestamp, and a socket
/// meant for one interface never queues another's packets (libpcap does the
/// same for the same reason).
fn open_socket(ifindex: c_int) -> Result<OwnedFd, String> {
    let ty = libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_PACKET, ty, 0) };
    if raw < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            // net/packet/af_packet.c packet_create: -EPERM without CAP_NET_RAW.
            Some(libc::EPERM | libc::EACCES) => {
                "permission: AF_PACKET sockets need CAP_NET_RAW (run as root)".to_string()
            }
            Some(libc::EAFNOSUPPORT) => {
                "kernel lacks it: no AF_PACKET support (CONFIG_PACKET)".to_string()
            }
            _ => format!("cannot open an AF_PACKET socket: {e}"),
        });
    }
    // SAFETY: `raw` is a new descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // Failures here only cost precision (timestamps fall back to
    // clock_gettime, VLAN tags are not restored, a smaller buffer).
    set_int(&fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1);
    set_int(&fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, 1);
    // SO_RCVBUFFORCE (root) goes past net.core.rmem_max; SO_RCVBUF is
    // capped by it.
    if !set_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF) {
        set_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF);
    }
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: bind reads `sll` for the length given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(format!(
            "cannot bind the AF_PACKET socket to interface {ifindex}: {e}"
        ));
    }
    Ok(fd)
}

fn set_int(fd: &OwnedFd, level: c_int, name: c_int, value: c_int) -> bool {
    // SAFETY: setsockopt reads one c_int.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            std::mem::size_of::<c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// Packets the kernel dropped on `fd` because its receive queue was full
/// (PACKET_STATISTICS, linux/if_packet.h `struct tpacket_stats`).
fn drops(fd: &OwnedFd) -> u64 {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `stats`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&raw mut stats).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        u64::from(stats.tp_drops)
    } else {
        0
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

/// `Linux <release>` for the section header's `shb_os`.
fn kernel() -> Option<String> {
    crate::sys::kernel().map(|k| format!("Linux {}", k.release))
}

/// The pcapng link type for a device's ARPHRD_* type (`sll_hatype`,
/// linux/if_arp.h): devices whose frames start with an Ethernet header,
/// devices whose frames are bare IP, and for everything else the Linux
/// cooked header, which carries the protocol and the device type itself
/// (libpcap's pcap-linux.c falls back to it the same way).
fn link_type_of(hatype: u16) -> u16 {
    // linux/if_arp.h; ARPHRD_RAWIP (519) and ARPHRD_IP6GRE (823) are not
    // in every libc.
    const ARPHRD_RAWIP: u16 = 519;
    const ARPHRD_IP6GRE: u16 = 823;
    match hatype {
        // Loopback frames carry a zeroed Ethernet header (drivers/net/loopback.c).
        libc::ARPHRD_ETHER | libc::ARPHRD_LOOPBACK => link::ETHERNET,
        // tun, wireguard (NONE), ipip and vti (TUNNEL), ip6tnl (TUNNEL6),
        // sit, gre, ip6gre: the frame is the IP packet.
        libc::ARPHRD_NONE
        | ARPHRD_RAWIP
        | libc::ARPHRD_TUNNEL
        | libc::ARPHRD_TUNNEL6
        | libc::ARPHRD_SIT
        | libc::ARPHRD_IPGRE
        | ARPHRD_IP6GRE => link::RAW,
        _ => link::LINUX_SLL,
    }
}

/// `epb_flags` for a `sll_pkttype` (linux/if_packet.h PACKET_*):
/// direction, and for received packets how they were addressed.
fn epb_flags(pkttype: u8) -> EpbFlags {
    EpbFlags(match pkttype {
        libc::PACKET_OUTGOING => EpbFlags::OUTBOUND,
        libc::PACKET_HOST => EpbFlags::INBOUND | EpbFlags::UNICAST,
        libc::PACKET_BROADCAST => EpbFlags::INBOUND | EpbFlags::BROADCAST,
        libc::PACKET_MULTICAST => EpbFlags::INBOUND | EpbFlags::MULTICAST,
        libc::PACKET_OTHERHOST => EpbFlags::INBOUND | EpbFlags::PROMISCUOUS,
        _ => EpbFlags::INBOUND,
    })
}

/// What the kernel told about one received packet besides its bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Meta {
    pkttype: u8,
    hatype: u16,
    /// `sll_protocol`, kept in network byte order as the SLL header wants it.
    protocol: [u8; 2],
    halen: u8,
    addr: [u8; 8],
    /// Offset of the network header in the received bytes (PACKET_AUXDATA
    /// `tp_net`).
    net_offset: usize,
    /// VLAN tag (TPID, TCI) the kernel took out of the frame.
    vlan: Option<(u16, u16)>,
}

/// Turns the `received` bytes at `buf[HEADROOM..]` (at most the snap
/// length of a packet that was `wire` bytes long) into the frame to write:
/// its range in `buf` and its original length.
///
/// - Ethernet: the kernel strips a received VLAN tag into metadata before
///   packet taps see the frame, and a VLAN-offloading device does so on
///   transmit too; the tag is put back after the MAC addresses, as
///   libpcap does (tcpdump.org/linktypes.html, LINKTYPE_ETHERNET).
/// - Cooked: the link header is replaced by a 16-byte SLL header built from
///   `sockaddr_ll` (packet type, ARPHRD type, address, protocol), so the
///   payload starts at the network header as LINKTYPE_LINUX_SLL requires.
/// - Raw IP: as received.
///
/// The frame is then cut to `snaplen`, headers included, as libpcap does.
fn assemble(
    buf: &mut [u8],
    received: usize,
    wire: usize,
    link_type: u16,
    meta: &Meta,
    snaplen: usize,
) -> (std::ops::Range<usize>, u32) {
    let end = HEADROOM + received;
    let (start, wire) = match link_type {
        link::ETHERNET if meta.vlan.is_some() && received >= 12 => {
            let (tpid, tci) = meta.vlan.unwrap_or_default();
            let start = HEADROOM - 4;
            buf.copy_within(HEADROOM..HEADROOM + 12, start);
            buf[start + 12..start + 14].copy_from_slice(&tpid.to_be_bytes());
            buf[start + 14..start + 16].copy_from_slice(&tci.to_be_bytes());
            (start, wire + 4)
        }
        link::LINUX_SLL => {
            let skip = meta.net_offset.min(received);
            let start = HEADROOM + skip - SLL_HEADER;
            let h = &mut buf[start..start + SLL_HEADER];
            h[0..2].copy_from_slice(&u16::from(meta.pkttype).to_be_bytes());
            h[2..4].copy_from_slice(&meta.hatype.to_be_bytes());
            h[4..6].copy_from_slice(&u16::from(meta.halen.min(8)).to_be_bytes());
            h[6..14].copy_from_slice(&meta.addr);
            h[14..16].copy_from_slice(&meta.protocol);
            (start, wire.saturating_sub(meta.net_offset) + SLL_HEADER)
        }
        _ => (HEADROOM, wire),
    };
    let end = end.min(start + snaplen);
    (start..end, u32::try_from(wire).unwrap_or(u32::MAX))
}

/// The state of one target's capture loop; its buffers are reused for
/// every packet.
struct Capture {
    snaplen: usize,
    max_packets: u64,
    max_bytes: u64,
    description: String,
    /// HEADROOM + snaplen bytes.
    buf: Vec<u8>,
    /// Control messages: SCM_TIMESTAMPNS (a timespec) and PACKET_AUXDATA
    /// (a tpacket_auxdata) need well under 128 bytes with their headers;
    /// u64 elements keep the buffer aligned for cmsghdr.
    control: [u64; 16],
    interfaces: Vec<Seen>,
    packets: u64,
    disk: Option<std::sync::Arc<crate::space::DiskBudget>>,
}

impl Capture {
    fn new(opts: &CaptureOptions, label: &str) -> Self {
        let snaplen = match opts.snaplen {
            0 => MAX_SNAPLEN,
            n => n.min(MAX_SNAPLEN),
        } as usize;
        Capture {
            snaplen,
            max_packets: opts.max_packets,
            max_bytes: opts.max_bytes,
            // Parsed by formats::InterfaceMeta::of; labels have no spaces.
            description: formats::InterfaceMeta::description(label),
            buf: vec![0; HEADROOM + snaplen],
            control: [0; 16],
            interfaces: Vec::new(),
            packets: 0,
            disk: opts.disk.clone(),
        }
    }

    fn run<W: io::Write>(
        &mut self,
        sockets: &[Socket],
        writer: &mut Writer<W>,
        stop: &AtomicBool,
        deadline: Option<Instant>,
        notes: &mut Vec<String>,
    ) -> End {
        let mut fds: Vec<libc::pollfd> = sockets
            .iter()
            .map(|s| libc::pollfd {
                fd: s.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let mut last_flush = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                return End::Stopped;
            }
            let now = Instant::now();
            let wait = match deadline {
                Some(d) if now >= d => return End::Deadline,
                Some(d) => (d - now).min(POLL_INTERVAL),
                None => POLL_INTERVAL,
            };
            if now.duration_since(last_flush) >= FLUSH_INTERVAL {
                if let Err(e) = writer.flush() {
                    return End::Write(e);
                }
                last_flush = now;
            }
            let ms = wait.as_micros().div_ceil(1000) as c_int;
            // SAFETY: `fds` is a valid array of fds.len() pollfd.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return End::Read(e);
            }
            for (pfd, socket) in fds.iter_mut().zip(sockets) {
                if pfd.revents == 0 {
                    continue;
                }
                pfd.revents = 0;
                for _ in 0..BATCH {
                    match self.receive(&socket.fd, writer) {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(Step::End(end)) => return end,
                        Err(Step::Down) => {
                            let name = socket.interface.as_deref().unwrap_or("an interface");
                            let note = format!("interface {name} went down during the capture");
                            if !notes.contains(&note) {
                                notes.push(note);
                            }
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Reads and writes one packet. `Ok(false)` when the socket has none.
    fn receive<W: io::Write>(
        &mut self,
        fd: &OwnedFd,
        writer: &mut Writer<W>,
    ) -> Result<bool, Step> {
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: self.buf[HEADROOM..].as_mut_ptr().cast::<c_void>(),
            iov_len: self.snaplen,
        };
        // SAFETY: msghdr is plain data; all-zero is a valid value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&raw mut from).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = self.control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&self.control) as _;
        // MSG_TRUNC makes a packet socket return the packet's full length
        // even when less was copied (packet(7)).
        // SAFETY: every pointer in `msg` refers to a live buffer of the
        // length stated next to it.
        let n = unsafe {
            libc::recvmsg(
                fd.as_raw_fd(),
                &mut msg,
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => Ok(false),
                // The bound interface went down (af_packet.c packet_notifier
                // reports it once through sk_err); the socket resumes when
                // the interface comes back.
                Some(libc::ENETDOWN) => Err(Step::Down),
                _ => Err(Step::End(End::Read(e))),
            };
        }
        let wire = n as usize;
        let received = wire.min(self.snaplen);
        // libpcap drops the outgoing copy on loopback: every packet sent on
        // lo is also received on it, and would otherwise appear twice.
        if from.sll_hatype == libc::ARPHRD_LOOPBACK && from.sll_pkttype == libc::PACKET_OUTGOING {
            return Ok(true);
        }
        let (ts_ns, net_offset, vlan) = control_messages(&msg);
        let meta = Meta {
            pkttype: from.sll_pkttype,
            hatype: from.sll_hatype,
            protocol: from.sll_protocol.to_ne_bytes(),
            halen: from.sll_halen,
            addr: from.sll_addr,
            net_offset,
            vlan,
        };
        let ts_ns = ts_ns.unwrap_or_else(crate::sys::now_ns);

        let ifindex = from.sll_ifindex;
        let known = self
            .interfaces
            .iter()
            .find(|i| i.ifindex == ifindex)
            .map(|i| (i.id, i.link_type));
        let link_type = known.map_or_else(|| link_type_of(meta.hatype), |(_, lt)| lt);
        let (range, wire) = assemble(
            &mut self.buf,
            received,
            wire,
            link_type,
            &meta,
            self.snaplen,
        );
        let mut need = pcapng::packet_block_len(range.len()) as u64;
        // A new interface is named now, inside the namespace, because an
        // ifindex means nothing outside it.
        let new_name = known.is_none().then(|| ifname_of(ifindex));
        if let Some(name) = &new_name {
            need += pcapng::interface_block_len(name, &self.description) as u64;
        }
        if self.max_bytes > 0 && writer.written() + need > self.max_bytes {
            return Err(Step::End(End::ByteLimit));
        }
        if let Some(disk) = &self.disk {
            disk.claim(need).map_err(|e| Step::End(End::Write(e)))?;
        }
        let id = match (known, new_name) {
            (Some((id, _)), _) => id,
            (None, name) => {
                let name = name.unwrap_or_default();
                let id = writer
                    .interface(link_type, self.snaplen as u32, &name, &self.description)
                    .map_err(|e| Step::End(End::Write(e)))?;
                self.interfaces.push(Seen {
                    ifindex,
                    id,
                    link_type,
                });
                id
            }
        };
        writer
            .packet(id, ts_ns, &self.buf[range], wire, epb_flags(meta.pkttype))
            .map_err(|e| Step::End(End::Write(e)))?;
        self.packets += 1;
        PACKETS_CAPTURED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.max_packets > 0 && self.packets >= self.max_packets {
            return Err(Step::End(End::PacketLimit));
        }
        Ok(true)
    }
}

/// How reading one packet went wrong.
enum Step {
    End(End),
    Down,
}

/// The kernel timestamp (SCM_TIMESTAMPNS), the network header offset and
/// VLAN tag (PACKET_AUXDATA, linux/if_packet.h `struct tpacket_auxdata`)
/// from the control messages of `msg`.
fn control_messages(msg: &libc::msghdr) -> (Option<u64>, usize, Option<(u16, u16)>) {
    let (mut ts, mut net, mut vlan) = (None, 0, None);
    // SAFETY: `msg` was filled by recvmsg; the CMSG_* macros stay within
    // msg_controllen, and the payloads are read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            let data = libc::CMSG_DATA(c);
            match ((*c).cmsg_level, (*c).cmsg_type) {
                (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => {
                    let t = std::ptr::read_unaligned(data.cast::<libc::timespec>());
                    ts = timespec_ns(&t);
                }
                (libc::SOL_PACKET, libc::PACKET_AUXDATA) => {
                    let aux = std::ptr::read_unaligned(data.cast::<libc::tpacket_auxdata>());
                    net = usize::from(aux.tp_net);
                    // libpcap's VLAN_VALID: a TCI, or the flag for TCI 0.
                    if aux.tp_vlan_tci != 0 || aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                        let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                            aux.tp_vlan_tpid
                        } else {
                            TPID_8021Q
                        };
                        vlan = Some((tpid, aux.tp_vlan_tci));
                    }
                }
                _ => {}
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    (ts, net, vlan)
}

fn timespec_ns(t: &libc::timespec) -> Option<u64> {
    let secs = u64::try_from(t.tv_sec).ok()?;
    let nanos = u64::try_from(t.tv_nsec).ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys;
    use formats::testing::{Owned, read_back};
    use formats::{Direction, Headers, tcp_flag};
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::process::Command;

    #[test]
    fn link_types_follow_the_device_type() {
        for (hatype, want) in [
            (libc::ARPHRD_ETHER, link::ETHERNET),
            (libc::ARPHRD_LOOPBACK, link::ETHERNET),
            (libc::ARPHRD_NONE, link::RAW),
            (519, link::RAW),
            (libc::ARPHRD_TUNNEL, link::RAW),
            (libc::ARPHRD_TUNNEL6, link::RAW),
            (libc::ARPHRD_SIT, link::RAW),
            (libc::ARPHRD_IPGRE, link::RAW),
            (823, link::RAW),
            (libc::ARPHRD_PPP, link::LINUX_SLL),
            (libc::ARPHRD_INFINIBAND, link::LINUX_SLL),
            (libc::ARPHRD_IEEE80211_RADIOTAP, link::LINUX_SLL),
        ] {
            assert_eq!(link_type_of(hatype), want, "ARPHRD {hatype}");
        }
    }

    #[test]
    fn packet_types_become_direction_and_reception_flags() {
        for (pkttype, want) in [
            (libc::PACKET_OUTGOING, 2),
            (libc::PACKET_HOST, 1 | 1 << 2),
            (libc::PACKET_BROADCAST, 1 | 3 << 2),
            (libc::PACKET_MULTICAST, 1 | 2 << 2),
            (libc::PACKET_OTHERHOST, 1 | 4 << 2),
            (7, 1),
        ] {
            assert_eq!(epb_flags(pkttype), EpbFlags(want), "pkttype {pkttype}");
        }
    }

    /// 12 bytes of MAC addresses, EtherType 0x0800, then `rest`.
    fn ether(rest: &[u8]) -> Vec<u8> {
        let mut f = vec![0xaa; 6];
        f.extend([0xbb; 6]);
        f.extend([0x08, 0x00]);
        f.extend(rest);
        f
    }

    type Case<'a> = (&'a str, u16, Vec<u8>, usize, &'a Meta, usize, Vec<u8>, u32);

    #[test]
    fn frames_get_back_what_the_kernel_took_away() {
        let tagged = Meta {
            vlan: Some((0x8100, 0x200a)),
            ..Meta::default()
        };
        let cooked = Meta {
            pkttype: libc::PACKET_OUTGOING,
            hatype: libc::ARPHRD_INFINIBAND,
            protocol: 0x0800u16.to_be_bytes(),
            halen: 6,
            addr: [1, 2, 3, 4, 5, 6, 0, 0],
            net_offset: 4,
            vlan: None,
        };
        let mut with_tag = vec![0xaa; 6];
        with_tag.extend([0xbb; 6]);
        with_tag.extend([0x81, 0x00, 0x20, 0x0a, 0x08, 0x00, 0x45, 0x46]);
        let sll = [0, 4, 0, 32, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        let mut sll_ip = sll.to_vec();
        sll_ip.extend([0x45, 0x46, 0x47]);
        let ip = [0x45, 0x46];
        let cooked_frame = [[9; 4].as_slice(), &[0x45, 0x46, 0x47]].concat();
        // (case, link type, bytes received, wire length, metadata, snaplen,
        //  frame written, wire length written)
        #[rustfmt::skip]
        let cases: [Case; 7] = [
            ("untagged ethernet", link::ETHERNET, ether(&ip), 16, &Meta::default(), 128, ether(&ip), 16),
            ("tag restored", link::ETHERNET, ether(&ip), 16, &tagged, 128, with_tag.clone(), 20),
            ("tag restored then cut", link::ETHERNET, ether(&ip), 16, &tagged, 14, with_tag[..14].to_vec(), 20),
            ("raw ip cut", link::RAW, vec![0x45, 1, 2, 3, 4], 5, &Meta::default(), 3, vec![0x45, 1, 2], 5),
            // The 4-byte link header (up to tp_net) is replaced by SLL.
            ("cooked", link::LINUX_SLL, cooked_frame.clone(), 7, &cooked, 128, sll_ip.clone(), 19),
            ("cooked cut in the header", link::LINUX_SLL, cooked_frame.clone(), 7, &cooked, 10, sll[..10].to_vec(), 19),
            // Fewer bytes received than were on the wire (snap length).
            ("cooked snapped", link::LINUX_SLL, cooked_frame, 1500, &cooked, 128, sll_ip, 1512),
        ];
        for (name, link_type, received, wire, meta, snaplen, want, want_wire) in cases {
            let mut buf = vec![0u8; HEADROOM + received.len()];
            buf[HEADROOM..].copy_from_slice(&received);
            let (range, wire) = assemble(&mut buf, received.len(), wire, link_type, meta, snaplen);
            assert_eq!(&buf[range], &want[..], "{name}");
            assert_eq!(wire, want_wire, "{name}");
        }
    }

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
            assert_eq!(i.snaplen, 256);
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
