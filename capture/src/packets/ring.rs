//! One packet socket with a TPACKET_V3 receive ring, as libpcap reads
//! them (pcap-linux.c): the kernel copies packets into blocks of a memory
//! region shared with capsnap and hands a block over when it is full or
//! its timeout passes; capsnap reads every packet of the block in place
//! and gives it back. One system call (poll) per block instead of one
//! recvmsg per packet (Documentation/networking/packet_mmap.rst).
//!
//! Counting is exact. The kernel counts every packet the socket's filter
//! accepts (`tp_packets`) and every one it had no room for (`tp_drops`,
//! included in `tp_packets`); PACKET_STATISTICS reads both and resets them
//! (net/packet/af_packet.c, `packet_getsockopt`). The filter rejects
//! loopback's outgoing copies (every packet sent on `lo` is also received
//! on it; libpcap drops the copy in user space), so that what the kernel
//! counts is what capsnap receives. [`RingSocket::finish`] stops the
//! socket taking packets, waits until the kernel has handed over its last
//! partly filled block and reads the counters last: then every packet the
//! kernel counted and did not drop is in a block capsnap has read.

use super::frame::Meta;
use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// linux/if_packet.h `enum tpacket_versions`.
const TPACKET_V3: c_int = 2;
/// `TPACKET_ALIGN(sizeof(struct tpacket3_hdr))`: where the `sockaddr_ll`
/// of a packet starts after its header (linux/if_packet.h).
const SLL_OFFSET: usize = 48;
/// The fixed part of `struct tpacket_block_desc` up to `ts_last_pkt`.
const BLOCK_HEADER: usize = 48;
/// A packet's `tpacket3_hdr` and the `sockaddr_ll` after it, up to the
/// end of `sll_addr`.
const HEADERS: usize = SLL_OFFSET + 20;
/// The kernel's upper bound on a block: it must be a power-of-two number
/// of pages and allocatable at once (`alloc_pg_vec` falls back to vmalloc,
/// but the order is capped by MAX_PAGE_ORDER).
const MAX_BLOCK: usize = 4 << 20;

/// How the ring is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes per block: a power of two of at least a page. A packet must fit
    /// in a block whole, so at least 64 KiB + headers for GRO'd packets.
    pub block_size: usize,
    pub blocks: usize,
    /// The kernel hands over a partly filled block after this long
    /// (`tp_retire_blk_tov`).
    pub timeout: Duration,
}

impl Geometry {
    /// `bytes` of ring in blocks of 256 KiB (libpcap's size: it holds the
    /// largest packet libpcap captures, MAXIMUM_SNAPLEN), at least 4.
    pub fn of(bytes: usize, timeout: Duration) -> Geometry {
        const BLOCK: usize = 256 * 1024;
        Geometry {
            block_size: BLOCK,
            blocks: (bytes / BLOCK).max(4),
            timeout,
        }
    }

    pub fn bytes(&self) -> usize {
        self.block_size * self.blocks
    }
}

/// What the kernel's counters said (PACKET_STATISTICS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelCounts {
    /// Packets the socket's filter accepted, dropped ones included.
    pub received: u64,
    /// Accepted packets for which the ring had no room.
    pub dropped: u64,
}

impl std::ops::AddAssign for KernelCounts {
    fn add_assign(&mut self, o: KernelCounts) {
        self.received += o.received;
        self.dropped += o.dropped;
    }
}

/// One received packet, in place in its block.
pub struct Packet<'a> {
    pub ts_ns: u64,
    /// The bytes the kernel copied, from the link header on.
    pub data: &'a [u8],
    /// Length on the wire (`tp_len`).
    pub wire_len: usize,
    pub ifindex: c_int,
    pub meta: Meta,
}

/// A packet socket bound to one interface (or all of the namespace's), with
/// its ring mapped.
pub struct RingSocket {
    fd: OwnedFd,
    map: NonNull<u8>,
    geometry: Geometry,
    /// The block to read next.
    next: usize,
}

// SAFETY: the mapping belongs to this value alone; the kernel's side of it
// is synchronised through each block's status word.
unsafe impl Send for RingSocket {}

impl Drop for RingSocket {
    fn drop(&mut self) {
        // SAFETY: `map` is the mapping of `geometry.bytes()` bytes made in
        // `open`, unmapped only here. Closing the fd afterwards frees the ring.
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.geometry.bytes()) };
    }
}

/// Bytes the kernel keeps beyond the snap length on devices whose frames
/// are written with a cooked header: its cut counts from the link-layer
/// header, which the frame written replaces by one of 16 bytes, and that
/// header may be longer; the frame is then cut to the snap length exactly
/// ([`super::frame::Framer`]). Ethernet frames need none: a VLAN tag put
/// back goes after the first 12 bytes and the frame is cut after it, so
/// the first `snaplen` bytes received are all the frame written can hold.
pub const CUT_SLACK: u32 = 128;

/// One instruction of [`capture_program`], its jumps to named places.
#[derive(Clone, Copy)]
enum Ins {
    Op(u16, u32),
    /// A conditional jump: code, k, where to when true, when false.
    Jump(u16, u32, Place, Place),
    Goto(Place),
    /// Names the next instruction.
    At(Place),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Place {
    Next,
    Protocol,
    V4Fragment,
    V6,
    V6Header,
    Ports,
    Cut,
    Exact,
    Whole,
    Drop,
}

/// The classic BPF program of every capture socket. The kernel copies into
/// the ring only as many bytes as the program returns (tpacket_rcv takes
/// run_filter's result as the snap length), so packets are cut there, as
/// libpcap's `ret #snaplen` cuts them: a 1500-byte frame costs `cut`
/// bytes of copy and ring, not 1500. It
///
/// - drops what loopback sends (it receives each again): `ld hatype; jeq
///   LOOPBACK; ld pkttype; jeq OUTGOING; ret 0`;
/// - keeps DNS whole: UDP or TCP from or to port 53, over IPv4 (first
///   fragments) or IPv6 (without extension headers), the network header
///   read through `SKF_NET_OFF` whatever the link type (linux/filter.h);
///   a VLAN tag left in the frame hides it (the kernel takes tags out on
///   receive and most drivers on transmit);
/// - cuts the rest to `snaplen` bytes on Ethernet and loopback devices,
///   `snaplen` + [`CUT_SLACK`] on the others (`u32::MAX`: keeps it
///   whole). Every byte kept beyond what is written is copied by the
///   kernel on the path of the traffic and takes ring room: at snap length
///   128 a slack on Ethernet doubled both (issue 11's benchmark).
pub fn capture_program(snaplen: u32) -> Vec<libc::sock_filter> {
    use Ins::{At, Goto, Jump, Op};
    use Place::*;
    use libc::{
        BPF_ABS, BPF_B, BPF_H, BPF_IMM, BPF_IND, BPF_JA, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD,
        BPF_LDX, BPF_MSH, BPF_RET, BPF_W,
    };
    let ad = |what: c_int| (libc::SKF_AD_OFF + what) as u32;
    let net = |k: i32| (libc::SKF_NET_OFF + k) as u32;
    let c = |bits: u32| bits as u16;
    let (ldw, ldh, ldb) = (
        c(BPF_LD | BPF_W | BPF_ABS),
        c(BPF_LD | BPF_H | BPF_ABS),
        c(BPF_LD | BPF_B | BPF_ABS),
    );
    let (jeq, ret) = (c(BPF_JMP | BPF_JEQ | BPF_K), c(BPF_RET | BPF_K));
    let (udp, tcp) = (libc::IPPROTO_UDP as u32, libc::IPPROTO_TCP as u32);
    const DNS: u32 = 53;
    let code = [
        Op(ldw, ad(libc::SKF_AD_HATYPE)),
        Jump(jeq, u32::from(libc::ARPHRD_LOOPBACK), Next, Protocol),
        Op(ldw, ad(libc::SKF_AD_PKTTYPE)),
        Jump(jeq, u32::from(libc::PACKET_OUTGOING), Drop, Protocol),
        At(Protocol),
        // skb->protocol, in host byte order.
        Op(ldw, ad(libc::SKF_AD_PROTOCOL)),
        Jump(jeq, libc::ETH_P_IP as u32, Next, V6),
        Op(ldb, net(9)),
        Jump(jeq, udp, V4Fragment, Next),
        Jump(jeq, tcp, V4Fragment, Cut),
        At(V4Fragment),
        Op(ldh, net(6)),
        Jump(c(BPF_JMP | BPF_JSET | BPF_K), 0x1fff, Cut, Next),
        // X = the IPv4 header's length.
        Op(c(BPF_LDX | BPF_B | BPF_MSH), net(0)),
        Goto(Ports),
        At(V6),
        Jump(jeq, libc::ETH_P_IPV6 as u32, Next, Cut),
        Op(ldb, net(6)),
        Jump(jeq, udp, V6Header, Next),
        Jump(jeq, tcp, V6Header, Cut),
        At(V6Header),
        Op(c(BPF_LDX | BPF_W | BPF_IMM), 40),
        At(Ports),
        Op(c(BPF_LD | BPF_H | BPF_IND), net(0)),
        Jump(jeq, DNS, Whole, Next),
        Op(c(BPF_LD | BPF_H | BPF_IND), net(2)),
        Jump(jeq, DNS, Whole, Cut),
        At(Cut),
        Op(ldw, ad(libc::SKF_AD_HATYPE)),
        Jump(jeq, u32::from(libc::ARPHRD_ETHER), Exact, Next),
        Jump(jeq, u32::from(libc::ARPHRD_LOOPBACK), Exact, Next),
        Op(ret, snaplen.saturating_add(CUT_SLACK)),
        At(Exact),
        Op(ret, snaplen),
        At(Whole),
        Op(ret, u32::MAX),
        At(Drop),
        Op(ret, 0),
    ];
    // Where each place is: the index of the instruction after its At.
    let mut at = std::collections::HashMap::new();
    let mut n = 0usize;
    for i in &code {
        match i {
            At(p) => {
                at.insert(*p, n);
            }
            _ => n += 1,
        }
    }
    let mut out = Vec::with_capacity(n);
    for i in code {
        let here = out.len();
        // Classic BPF jumps are forward, relative to the next instruction.
        let to = |p: Place| -> u32 {
            let target = if p == Next { here + 1 } else { at[&p] };
            (target - here - 1) as u32
        };
        let (code, jt, jf, k) = match i {
            At(_) => continue,
            Op(code, k) => (code, 0, 0, k),
            Jump(code, k, t, f) => (code, to(t) as u8, to(f) as u8, k),
            Goto(p) => (c(BPF_JMP | BPF_JA), 0, 0, to(p)),
        };
        out.push(libc::sock_filter { code, jt, jf, k });
    }
    out
}

fn attach_filter(fd: &OwnedFd, program: &[libc::sock_filter]) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    set_opt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
}

fn set_opt<T>(fd: &OwnedFd, level: c_int, name: c_int, value: &T) -> io::Result<()> {
    // SAFETY: setsockopt reads size_of::<T>() bytes of `value`.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl RingSocket {
    /// Opens a packet socket on `ifindex` (0: every interface of the
    /// calling thread's namespace) with a ring of `geometry`, halving the
    /// number of blocks while the kernel cannot find the memory.
    ///
    /// The socket is created with protocol 0, which per packet(7) receives
    /// nothing until bound; the filter and ring are set up first and
    /// `bind` with ETH_P_ALL starts the flow, so a socket meant for one
    /// interface never holds another's packets (libpcap does the same).
    /// The kernel cuts what is not DNS to about `snaplen` bytes
    /// ([`capture_program`]; `u32::MAX`: nothing is cut).
    pub fn open(ifindex: c_int, geometry: Geometry, snaplen: u32) -> Result<RingSocket, String> {
        let ty = libc::SOCK_RAW | libc::SOCK_CLOEXEC;
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
        set_opt(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &TPACKET_V3)
            .map_err(|e| format!("kernel lacks it: TPACKET_V3 rings (Linux 3.2+): {e}"))?;
        attach_filter(&fd, &capture_program(snaplen))
            .map_err(|e| format!("cannot attach the packet filter: {e}"))?;

        let mut g = geometry;
        g.block_size = g.block_size.clamp(page_size(), MAX_BLOCK);
        let map = loop {
            let req = libc::tpacket_req3 {
                tp_block_size: g.block_size as u32,
                tp_block_nr: g.blocks as u32,
                // One "frame" per block: V3 places packets of any size in a
                // block; the kernel only checks that frames tile the blocks.
                tp_frame_size: g.block_size as u32,
                tp_frame_nr: g.blocks as u32,
                tp_retire_blk_tov: g.timeout.as_millis().clamp(1, u32::MAX as u128) as u32,
                tp_sizeof_priv: 0,
                tp_feature_req_word: 0,
            };
            match set_opt(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOMEM) && g.blocks > 2 => {
                    g.blocks /= 2;
                    continue;
                }
                Err(e) => return Err(format!("cannot set up the capture ring ({g:?}): {e}")),
            }
            // SAFETY: maps the ring the kernel just allocated for this fd.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    g.bytes(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(format!(
                    "cannot map the capture ring: {}",
                    io::Error::last_os_error()
                ));
            }
            break NonNull::new(p.cast::<u8>()).ok_or("the capture ring mapped at 0")?;
        };
        let ring = RingSocket {
            fd,
            map,
            geometry: g,
            next: 0,
        };

        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: bind reads `sll` for the length given.
        let rc = unsafe {
            libc::bind(
                ring.fd.as_raw_fd(),
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
        Ok(ring)
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    pub fn raw_fd(&self) -> c_int {
        self.fd.as_raw_fd()
    }

    /// The status word of block `i`. The kernel sets TP_STATUS_USER (with a
    /// release barrier, `prb_close_block`) once the block is complete;
    /// capsnap writes TP_STATUS_KERNEL to give it back.
    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: block i starts at i * block_size inside the mapping; its
        // `hdr.bh1.block_status` is the aligned u32 at offset 8, only ever
        // accessed atomically by both sides.
        unsafe {
            &*self
                .map
                .as_ptr()
                .add(i * self.geometry.block_size + 8)
                .cast::<AtomicU32>()
        }
    }

    /// Whether the next block is complete and ours to read.
    pub fn ready(&self) -> bool {
        self.status(self.next).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    /// Calls `each` for every packet of the next block if the kernel has
    /// handed it over, gives the block back and returns how many packets
    /// it held (`None`: no block is ready). `each` sees the packets in the
    /// order the kernel wrote them.
    pub fn read_block(&mut self, mut each: impl FnMut(&Packet)) -> Option<u64> {
        if !self.ready() {
            return None;
        }
        let bs = self.geometry.block_size;
        // SAFETY: the block is ours until its status is written back below;
        // the kernel does not touch it meanwhile (TP_STATUS_USER).
        let block =
            unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(self.next * bs), bs) };
        let u32_at = |at: usize| {
            block
                .get(at..at + 4)
                .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        };
        // struct tpacket_hdr_v1: num_pkts at 12, offset_to_first_pkt at 16.
        let count = u32_at(12);
        let mut at = u32_at(16) as usize;
        let mut seen = 0;
        while seen < count && at >= BLOCK_HEADER {
            // The packet's headers as one array: a single bounds check, and
            // every field below is read at a constant offset without one
            // (this runs once per packet).
            let Some(h) = block
                .get(at..at + HEADERS)
                .and_then(|h| <&[u8; HEADERS]>::try_from(h).ok())
            else {
                break;
            };
            let u32_of = |i: usize| u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
            let u16_of = |i: usize| u16::from_ne_bytes([h[i], h[i + 1]]);
            // struct tpacket3_hdr (linux/if_packet.h).
            let next = u32_of(0) as usize;
            let sec = u64::from(u32_of(4));
            let nsec = u64::from(u32_of(8));
            let snaplen = u32_of(12) as usize;
            let len = u32_of(16) as usize;
            let status = u32_of(20);
            let mac = usize::from(u16_of(24));
            let net = usize::from(u16_of(26));
            // hv1: tp_rxhash at 28, tp_vlan_tci at 32, tp_vlan_tpid at 36.
            let tci = u32_of(32) as u16;
            let tpid = u16_of(36);
            // struct sockaddr_ll right after the aligned header.
            const S: usize = SLL_OFFSET;
            let protocol = [h[S + 2], h[S + 3]];
            let ifindex = u32_of(S + 4) as c_int;
            let hatype = u16_of(S + 8);
            let pkttype = h[S + 10];
            let halen = h[S + 11];
            let mut addr = [0; 8];
            addr.copy_from_slice(&h[S + 12..S + 20]);
            // libpcap's VLAN_VALID: a TCI, or the flag for TCI 0.
            let vlan = (tci != 0 || status & libc::TP_STATUS_VLAN_VALID != 0).then(|| {
                let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                    tpid
                } else {
                    super::frame::TPID_8021Q
                };
                (tpid, tci)
            });
            let data_at = at + mac;
            if let Some(data) = block.get(data_at..data_at + snaplen) {
                each(&Packet {
                    ts_ns: sec * 1_000_000_000 + nsec,
                    data,
                    wire_len: len,
                    ifindex,
                    meta: Meta {
                        pkttype,
                        hatype,
                        protocol,
                        halen,
                        addr,
                        net_offset: net.saturating_sub(mac),
                        vlan,
                    },
                });
            }
            seen += 1;
            if next == 0 {
                break;
            }
            at += next;
        }
        self.status(self.next)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.next = (self.next + 1) % self.geometry.blocks;
        Some(u64::from(count))
    }

    /// Waits up to `timeout` for the next block.
    pub fn wait(&self, timeout: Duration) -> io::Result<()> {
        if self.ready() {
            return Ok(());
        }
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN | libc::POLLERR,
            revents: 0,
        };
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as c_int;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        if pfd.revents & libc::POLLERR != 0 {
            return Err(self.take_error());
        }
        Ok(())
    }

    /// The pending socket error (SO_ERROR): ENETDOWN when the bound
    /// interface went down (af_packet.c `packet_notifier`); the socket
    /// resumes when it comes back.
    pub fn take_error(&self) -> io::Error {
        let mut err: c_int = 0;
        let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes one c_int.
        unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&raw mut err).cast(),
                &mut len,
            );
        }
        io::Error::from_raw_os_error(err)
    }

    /// The kernel's counts since the last call (reading resets them).
    pub fn counts(&self) -> KernelCounts {
        let mut st = libc::tpacket_stats_v3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `st`.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut st).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return KernelCounts::default();
        }
        KernelCounts {
            received: u64::from(st.tp_packets),
            dropped: u64::from(st.tp_drops),
        }
    }

    /// Ends the capture with exact counts: the socket stops accepting
    /// packets (a filter that takes none), the kernel gets the time to hand
    /// over its partly filled block (its retire timer closes a block with
    /// packets once the block has stayed current for a whole timeout:
    /// `prb_retire_rx_blk_timer_expired`, so two timeouts), then the last
    /// counters are read and every remaining block is passed to `each`.
    /// Returns the kernel's counts since the last [`RingSocket::counts`].
    pub fn finish(&mut self, mut each: impl FnMut(&Packet)) -> KernelCounts {
        let refused = attach_filter(
            &self.fd,
            &[libc::sock_filter {
                code: (libc::BPF_RET | libc::BPF_K) as u16,
                jt: 0,
                jf: 0,
                k: 0,
            }],
        );
        let settle = Instant::now() + self.geometry.timeout * 2 + Duration::from_millis(20);
        loop {
            while self.read_block(&mut each).is_some() {}
            let now = Instant::now();
            if now >= settle || refused.is_err() {
                break;
            }
            let _ = self.wait((settle - now).min(self.geometry.timeout));
        }
        let counts = self.counts();
        while self.read_block(&mut each).is_some() {}
        counts
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).unwrap_or(4096).max(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_sizes_are_whole_blocks_of_at_least_four() {
        let t = Duration::from_millis(50);
        for (bytes, blocks) in [(0, 4), (1 << 20, 4), (8 << 20, 32), ((8 << 20) + 1, 32)] {
            let g = Geometry::of(bytes, t);
            assert_eq!((g.block_size, g.blocks), (256 * 1024, blocks), "{bytes}");
        }
    }

    #[test]
    fn the_filter_jumps_land_on_its_returns() {
        let p = capture_program(300);
        let lands = |from: usize, off: u8| from + 1 + usize::from(off);
        let ret = |i: usize| {
            assert_eq!(p[i].code, (libc::BPF_RET | libc::BPF_K) as u16, "{i}");
            p[i].k
        };
        let n = p.len();
        assert_eq!(
            (ret(n - 4), ret(n - 3), ret(n - 2), ret(n - 1)),
            (300 + CUT_SLACK, 300, u32::MAX, 0)
        );
        // The cut: exact on Ethernet and loopback (the two jumps after the
        // last load of the device type), with slack on the others.
        let hatype = (libc::SKF_AD_OFF + libc::SKF_AD_HATYPE) as u32;
        let last = (0..n).rfind(|&i| p[i].k == hatype).unwrap();
        for (i, dev) in [
            (last + 1, libc::ARPHRD_ETHER),
            (last + 2, libc::ARPHRD_LOOPBACK),
        ] {
            assert_eq!(p[i].k, u32::from(dev), "{i}");
            assert_eq!(lands(i, p[i].jt), n - 3, "{i}");
        }
        assert_eq!(lands(last + 2, p[last + 2].jf), n - 4);
        // Loopback's outgoing copies: dropped.
        assert_eq!(lands(3, p[3].jt), n - 1);
        // Every jump lands inside the program, every path on a return.
        for (i, ins) in p.iter().enumerate() {
            if ins.code & 0x07 == libc::BPF_JMP as u16 {
                assert!(lands(i, ins.jt) < n && lands(i, ins.jf) < n, "{i}");
            }
        }
        // Port 53 (either port) goes to "whole".
        let ports: Vec<usize> = (0..n).filter(|&i| p[i].k == 53).collect();
        assert_eq!(ports.len(), 2);
        for i in ports {
            assert_eq!(lands(i, p[i].jt), n - 2);
        }
    }
}
