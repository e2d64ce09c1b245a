//! Where a capture's frames go ([`Sink`]), and the one place they are
//! written to a pcapng file ([`PcapngSink`]): `collect` writes there as it
//! captures, `watch` when it writes a bundle from its ring.

use super::frame::MAX_SNAPLEN;
use super::ring::KernelCounts;
use formats::bundle::PacketCounts;
use formats::link;
use formats::pcapng::{self, EpbFlags, Statistics, Writer};
use std::ffi::c_int;
use std::io::{self, Write};

/// An interface a capture has seen, named inside its namespace (an ifindex
/// means nothing outside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub ifindex: c_int,
    pub name: String,
    pub link_type: u16,
}

/// Why a sink takes no more packets.
#[derive(Debug)]
pub enum Refusal {
    /// The file would grow past its size bound.
    ByteLimit,
    /// The packet bound is reached.
    PacketLimit,
    Write(io::Error),
}

/// Where a capture's frames go.
pub trait Sink {
    /// One frame, seen on `ifaces[iface]`, at `ts_ns`; `Err` once the sink
    /// takes no more (the capture then counts the rest as dropped by
    /// capsnap).
    fn packet(
        &mut self,
        ifaces: &[Seen],
        iface: usize,
        ts_ns: u64,
        frame: &[u8],
        wire_len: u32,
        flags: EpbFlags,
    ) -> Result<(), Refusal>;

    /// What the kernel counted since the last call (every second or so):
    /// a sink that keeps its own account of time (`watch`) records it.
    fn kernel_counts(&mut self, _ts_ns: u64, _counts: KernelCounts) {}

    /// Pushes what is buffered to where it goes (called every second, so
    /// that a capsnap killed outright loses at most that much).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Bounds of one pcapng file; 0 means none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounds {
    pub max_packets: u64,
    pub max_bytes: u64,
}

/// Room kept at the end of a size-bounded file for the blocks written
/// last: an interface "any" and its statistics.
const TAIL: u64 = (pcapng::STATISTICS_BLOCK_LEN + 160 + 256) as u64;

/// A pcapng section: interfaces described as their first packet comes,
/// within [`Bounds`]. Every packet any capture writes goes through
/// [`PcapngSink::packet`].
pub struct PcapngSink<W: Write> {
    writer: Writer<W>,
    /// `if_description` of every interface: the capture point's label.
    description: String,
    /// The IDB id of each of the capture's interfaces, once written.
    ids: Vec<Option<u32>>,
    bounds: Bounds,
    packets: u64,
    /// The collection's disk budget: every block is claimed from it before
    /// it is written, in steps of [`CLAIM_STEP`] (it is shared by every
    /// capture thread: one claim a packet would make them queue on it).
    disk: Option<std::sync::Arc<crate::space::DiskBudget>>,
    /// Bytes claimed and not yet written.
    credit: u64,
}

/// Bytes a capture file buffers before it writes (a `BufWriter`'s
/// capacity). Writing a packet file into the page cache costs per page and
/// per call far more than per byte (a profile of `bench/capture.sh` had 55%
/// of the collector's time in ext4's buffered write path with the default
/// 8 KiB: every call of about 8 KiB began and ended inside a page, so most
/// pages were prepared twice, and ext4 (Linux 6.16+, large folios) only
/// allocates a folio as large as the write). 256 KiB, not more: the
/// kernel copies the buffer into the page cache right after capsnap filled
/// it, and a buffer that still sits in the core's cache copies fast (with
/// 1 MiB, `copy_folio_from_iter_atomic` went from 13% to 17-49% of the
/// samples). That is one write per ring block of packets cut to 128
/// bytes; the capture still flushes every second.
pub const WRITE_BUFFER: usize = 256 << 10;

/// Bytes claimed from the disk budget at once.
const CLAIM_STEP: u64 = 256 << 10;

impl<W: Write> PcapngSink<W> {
    /// Starts the file: its section header, flushed so that the file is a
    /// valid (empty) capture from the start.
    pub fn new(out: W, label: &str, bounds: Bounds) -> io::Result<Self> {
        let os = crate::sys::kernel().map(|k| format!("Linux {}", k.release));
        let mut writer = Writer::new(out, "capsnap", os.as_deref())?;
        writer.flush()?;
        Ok(PcapngSink {
            writer,
            // Parsed by formats::InterfaceMeta::of; labels have no spaces.
            description: formats::InterfaceMeta::description(label),
            ids: Vec::new(),
            bounds,
            packets: 0,
            disk: None,
            credit: 0,
        })
    }

    /// Claims every block from `disk` before it is written: the sink
    /// refuses packets (as a write error) once the budget says the disk is
    /// low.
    pub fn with_disk(mut self, disk: Option<std::sync::Arc<crate::space::DiskBudget>>) -> Self {
        self.disk = disk;
        self
    }

    /// The IDB of interface `name`, written if it is not yet. Interfaces
    /// capture every packet whole at most ([`MAX_SNAPLEN`]): DNS is kept
    /// whole whatever the snap length of the rest.
    fn interface_id(&mut self, slot: Option<usize>, name: &str, link_type: u16) -> io::Result<u32> {
        if let Some(Some(id)) = slot.and_then(|i| self.ids.get(i)) {
            return Ok(*id);
        }
        let id = self
            .writer
            .interface(link_type, MAX_SNAPLEN, name, &self.description)?;
        if let Some(i) = slot {
            if self.ids.len() <= i {
                self.ids.resize(i + 1, None);
            }
            self.ids[i] = Some(id);
        }
        Ok(id)
    }

    /// Writes the counts of one packet socket as an interface statistics
    /// block: on the socket's interface when it was bound to one (named
    /// `bound`), else on an interface "any" that stands for the socket, as
    /// libpcap's "any" device does. `isb_ifrecv` is what the
    /// socket received, `isb_osdrop` what the kernel dropped for want of
    /// ring room, `isb_usrdeliv` what reached capsnap; the comment says
    /// how many of those capsnap wrote.
    pub fn statistics(
        &mut self,
        ifaces: &[Seen],
        bound: Option<&str>,
        counts: &PacketCounts,
        start_ns: u64,
        end_ns: u64,
    ) -> io::Result<()> {
        let seen = bound.and_then(|name| ifaces.iter().position(|s| s.name == name));
        let id = match (bound, seen) {
            (_, Some(i)) => {
                let (name, lt) = (ifaces[i].name.clone(), ifaces[i].link_type);
                self.interface_id(Some(i), &name, lt)?
            }
            // A bound interface that saw no packet: its link type is unknown.
            (Some(name), None) => self.interface_id(None, name, link::LINUX_SLL)?,
            (None, None) => self.interface_id(None, "any", link::LINUX_SLL)?,
        };
        let stats = Statistics {
            ts_ns: end_ns,
            start_ns: Some(start_ns),
            end_ns: Some(end_ns),
            received: Some(counts.received),
            os_dropped: Some(counts.kernel_dropped),
            delivered: Some(counts.written + counts.capsnap_dropped),
            comment: Some(format!(
                "capsnap: the packet socket received {}, the kernel dropped {} (ring full), \
                 capsnap wrote {} and dropped {}",
                counts.received, counts.kernel_dropped, counts.written, counts.capsnap_dropped
            )),
            ..Statistics::default()
        };
        self.writer.statistics(id, &stats)
    }

    /// The underlying writer, flushed.
    pub fn into_inner(self) -> io::Result<W> {
        self.writer.into_inner()
    }
}

impl<W: Write> Sink for PcapngSink<W> {
    fn packet(
        &mut self,
        ifaces: &[Seen],
        iface: usize,
        ts_ns: u64,
        frame: &[u8],
        wire_len: u32,
        flags: EpbFlags,
    ) -> Result<(), Refusal> {
        let seen = &ifaces[iface];
        let known = self.ids.get(iface).copied().flatten().is_some();
        let mut need = pcapng::packet_block_len(frame.len()) as u64;
        if !known {
            need += pcapng::interface_block_len(&seen.name, &self.description) as u64;
        }
        if self.bounds.max_bytes > 0 && self.writer.written() + need + TAIL > self.bounds.max_bytes
        {
            return Err(Refusal::ByteLimit);
        }
        if let Some(disk) = &self.disk
            && self.credit < need
        {
            let n = need.max(CLAIM_STEP);
            disk.claim(n).map_err(Refusal::Write)?;
            self.credit += n;
        }
        self.credit = self.credit.saturating_sub(need);
        let id = if known {
            self.ids[iface].unwrap_or_default()
        } else {
            let (name, lt) = (seen.name.clone(), seen.link_type);
            self.interface_id(Some(iface), &name, lt)
                .map_err(Refusal::Write)?
        };
        self.writer
            .packet(id, ts_ns, frame, wire_len, flags)
            .map_err(Refusal::Write)?;
        self.packets += 1;
        if self.bounds.max_packets > 0 && self.packets >= self.bounds.max_packets {
            return Err(Refusal::PacketLimit);
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use formats::testing::read_back;

    fn seen(ifindex: c_int, name: &str) -> Seen {
        Seen {
            ifindex,
            name: name.into(),
            link_type: link::ETHERNET,
        }
    }

    #[test]
    fn interfaces_are_described_once_and_counts_land_on_the_socket_interface() {
        let ifaces = [seen(2, "eth0"), seen(1, "lo")];
        let mut sink = PcapngSink::new(Vec::new(), "pod/web", Bounds::default()).unwrap();
        for (iface, ts) in [(0, 10), (1, 11), (0, 12)] {
            sink.packet(&ifaces, iface, ts, b"abc", 60, EpbFlags(1))
                .unwrap();
        }
        let counts = PacketCounts {
            received: 5,
            kernel_dropped: 1,
            written: 3,
            capsnap_dropped: 1,
        };
        sink.statistics(&ifaces, None, &counts, 1, 20).unwrap();
        sink.statistics(&ifaces, Some("lo"), &counts, 1, 20)
            .unwrap();
        let bytes = sink.into_inner().unwrap();
        let (ix, frames) = read_back(&bytes);
        let names: Vec<_> = ix.interfaces.iter().map(|i| i.name.as_deref()).collect();
        assert_eq!(names, [Some("eth0"), Some("lo"), Some("any")]);
        assert!(ix.interfaces.iter().all(|i| i.snaplen == MAX_SNAPLEN));
        assert_eq!(
            frames.iter().map(|f| f.interface).collect::<Vec<_>>(),
            [0, 1, 0]
        );
        let got: Vec<_> = ix
            .stats
            .iter()
            .map(|s| (s.interface, s.if_received, s.os_dropped, s.delivered))
            .collect();
        assert_eq!(
            got,
            [
                (2, Some(5), Some(1), Some(4)),
                (1, Some(5), Some(1), Some(4))
            ]
        );
    }

    #[test]
    fn a_size_bound_leaves_room_for_the_statistics() {
        let ifaces = [seen(2, "eth0")];
        let bounds = Bounds {
            max_packets: 0,
            max_bytes: 2000,
        };
        let mut sink = PcapngSink::new(Vec::new(), "host", bounds).unwrap();
        let mut n = 0;
        while sink
            .packet(&ifaces, 0, n, &[0; 100], 100, EpbFlags(1))
            .is_ok()
        {
            n += 1;
        }
        sink.statistics(&ifaces, None, &PacketCounts::default(), 0, 1)
            .unwrap();
        let bytes = sink.into_inner().unwrap();
        assert!(bytes.len() <= 2000, "{} bytes", bytes.len());
        assert!(n > 5, "{n} packets");
    }
}
