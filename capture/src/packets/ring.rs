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

/// A classic BPF program accepting every packet whole, except those that
/// loopback sends (it receives each again): `ld hatype; jeq LOOPBACK;
/// ld pkttype; jeq OUTGOING; ret 0; ret -1` (linux/filter.h SKF_AD_*).
/// The kernel cuts a packet to what the program returns, so "whole" is
/// u32::MAX.
fn accept_program() -> [libc::sock_filter; 6] {
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let ad = |what: c_int| (libc::SKF_AD_OFF + what) as u32;
    [
        op(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            0,
            0,
            ad(libc::SKF_AD_HATYPE),
        ),
        op(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            0,
            3,
            u32::from(libc::ARPHRD_LOOPBACK),
        ),
        op(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            0,
            0,
            ad(libc::SKF_AD_PKTTYPE),
        ),
        op(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            0,
            1,
            u32::from(libc::PACKET_OUTGOING),
        ),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, u32::MAX),
    ]
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
    pub fn open(ifindex: c_int, geometry: Geometry) -> Result<RingSocket, String> {
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
        attach_filter(&fd, &accept_program())
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
        let u16_at = |at: usize| {
            block
                .get(at..at + 2)
                .map_or(0, |b| u16::from_ne_bytes([b[0], b[1]]))
        };
        // struct tpacket_hdr_v1: num_pkts at 12, offset_to_first_pkt at 16.
        let count = u32_at(12);
        let mut at = u32_at(16) as usize;
        let mut seen = 0;
        while seen < count && at >= BLOCK_HEADER && at + SLL_OFFSET + 20 <= bs {
            // struct tpacket3_hdr (linux/if_packet.h).
            let next = u32_at(at) as usize;
            let sec = u64::from(u32_at(at + 4));
            let nsec = u64::from(u32_at(at + 8));
            let snaplen = u32_at(at + 12) as usize;
            let len = u32_at(at + 16) as usize;
            let status = u32_at(at + 20);
            let mac = usize::from(u16_at(at + 24));
            let net = usize::from(u16_at(at + 26));
            // hv1: tp_rxhash at 28, tp_vlan_tci at 32, tp_vlan_tpid at 36.
            let tci = u32_at(at + 32) as u16;
            let tpid = u16_at(at + 36);
            // struct sockaddr_ll right after the aligned header.
            let sll = at + SLL_OFFSET;
            let protocol = block.get(sll + 2..sll + 4).map_or([0; 2], |b| [b[0], b[1]]);
            let ifindex = u32_at(sll + 4) as c_int;
            let hatype = u16_at(sll + 8);
            let pkttype = block.get(sll + 10).copied().unwrap_or(0);
            let halen = block.get(sll + 11).copied().unwrap_or(0);
            let mut addr = [0; 8];
            if let Some(b) = block.get(sll + 12..sll + 20) {
                addr.copy_from_slice(b);
            }
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
        let p = accept_program();
        // From the loopback test (1): not loopback skips to "accept" (5).
        assert_eq!(1 + 1 + usize::from(p[1].jf), 5);
        // From the pkttype test (3): outgoing falls through to "reject" (4).
        assert_eq!(3 + 1 + usize::from(p[3].jt), 4);
        assert_eq!(3 + 1 + usize::from(p[3].jf), 5);
        assert_eq!((p[4].k, p[5].k), (0, u32::MAX));
    }
}
