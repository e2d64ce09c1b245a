//! The pcapng writer (draft-ietf-opsawg-pcapng), beside the reader so the
//! two agree on every block type and option code: one little-endian
//! section header, interface description blocks and enhanced packet
//! blocks, written as a stream. The collector writes its captures with it.
//!
//! Every block is assembled in one reused buffer and handed to the
//! underlying writer with a single `write_all`. With a `BufWriter` below,
//! that keeps the file on disk ending at a block boundary whenever the
//! writer flushes (the buffer only ever holds whole blocks), so a capture
//! cut short at any point still reads as a valid file; the reader also
//! tolerates a torn last block should a disk fill up.

use super::pcapng::{
    BT_EPB, BT_IDB, BT_ISB, BT_SHB, BYTE_ORDER_MAGIC, EPB_FLAGS, IF_DESCRIPTION, IF_NAME,
    IF_TSRESOL, ISB_ENDTIME, ISB_FILTERACCEPT, ISB_IFDROP, ISB_IFRECV, ISB_OSDROP, ISB_STARTTIME,
    ISB_USRDELIV, OPT_COMMENT, OPT_ENDOFOPT, SHB_OS, SHB_USERAPPL,
};
use std::io::{self, Write};

/// `if_tsresol` value 9: timestamps count 10^-9 s (section 4.2). Linux
/// gives packet sockets nanosecond timestamps (SO_TIMESTAMPNS), so none of
/// their precision is thrown away.
const TSRESOL_NANOS: u8 = 9;

/// Fixed part of an EPB: type, length, interface id, timestamp (2 words),
/// captured and original length, trailing length (section 4.3).
const EPB_FIXED: usize = 32;
/// `epb_flags` (4 + 4 bytes) and `opt_endofopt` (4 bytes).
const EPB_OPTIONS: usize = 12;

/// What the `epb_flags` option says about a packet (section 4.3.1): bits
/// 0-1 are the direction, bits 2-4 the reception type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpbFlags(pub u32);

impl EpbFlags {
    /// Direction: received by the host.
    pub const INBOUND: u32 = 1;
    /// Direction: sent by the host.
    pub const OUTBOUND: u32 = 2;
    /// Reception type: to this host's address.
    pub const UNICAST: u32 = 1 << 2;
    /// Reception type: to a multicast group.
    pub const MULTICAST: u32 = 2 << 2;
    /// Reception type: to the link's broadcast address.
    pub const BROADCAST: u32 = 3 << 2;
    /// Reception type: for another host, seen in promiscuous mode.
    pub const PROMISCUOUS: u32 = 4 << 2;
}

/// The counts of an interface statistics block (section 4.6), all
/// optional; times in nanoseconds since the epoch. What each counter means
/// for a given capture is the writer's to say (in `comment`, too): the
/// collector's captures use `received` for what the kernel's packet socket
/// took, `os_dropped` for what it dropped for want of room, `delivered` for
/// what reached capsnap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statistics {
    /// When the counts were taken (the block's timestamp).
    pub ts_ns: u64,
    pub start_ns: Option<u64>,
    pub end_ns: Option<u64>,
    /// `isb_ifrecv`.
    pub received: Option<u64>,
    /// `isb_ifdrop`.
    pub if_dropped: Option<u64>,
    /// `isb_filteraccept`.
    pub filter_accepted: Option<u64>,
    /// `isb_osdrop`.
    pub os_dropped: Option<u64>,
    /// `isb_usrdeliv`.
    pub delivered: Option<u64>,
    /// `opt_comment`.
    pub comment: Option<String>,
}

/// Bytes an ISB with every counter, both times and no comment takes:
/// room a size-bounded capture keeps for the blocks it writes last.
pub const STATISTICS_BLOCK_LEN: usize = 12 + 12 + 7 * 12 + 4;

fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// Bytes an EPB takes for a packet of `caplen` captured bytes.
pub fn packet_block_len(caplen: usize) -> usize {
    EPB_FIXED + pad4(caplen) + EPB_OPTIONS
}

/// Bytes an IDB takes with these labels.
pub fn interface_block_len(name: &str, description: &str) -> usize {
    // type, length, link type + reserved, snaplen, trailing length.
    20 + 4 + pad4(name.len()) + 4 + pad4(description.len()) + 8 + 4
}

/// Writes one pcapng section to `W`. Counts the bytes it has written so
/// the caller can bound the file size.
pub struct Writer<W: Write> {
    out: W,
    /// One block at a time is built here; reused, so writing a packet does
    /// not allocate once the buffer has grown to the largest block.
    block: Vec<u8>,
    interfaces: u32,
    written: u64,
}

impl<W: Write> Writer<W> {
    /// Starts a section: writes the SHB with `shb_userappl` and, when
    /// given, `shb_os`. The section length is -1 ("not specified", section
    /// 4.1) because the file is written as a stream.
    pub fn new(out: W, userappl: &str, os: Option<&str>) -> io::Result<Self> {
        let mut w = Writer {
            out,
            block: Vec::with_capacity(512),
            interfaces: 0,
            written: 0,
        };
        w.begin(BT_SHB);
        w.put_u32(BYTE_ORDER_MAGIC);
        w.put_u16(1); // major version
        w.put_u16(0); // minor version
        w.block.extend_from_slice(&(-1i64).to_le_bytes());
        if let Some(os) = os {
            w.put_option(SHB_OS, os.as_bytes());
        }
        w.put_option(SHB_USERAPPL, userappl.as_bytes());
        w.put_option(OPT_ENDOFOPT, &[]);
        w.finish()?;
        Ok(w)
    }

    /// Writes an IDB and returns its interface id (the IDB's position in
    /// the section, section 4.2), which packets on it refer to.
    pub fn interface(
        &mut self,
        link_type: u16,
        snaplen: u32,
        name: &str,
        description: &str,
    ) -> io::Result<u32> {
        self.begin(BT_IDB);
        self.put_u16(link_type);
        self.put_u16(0); // reserved
        self.put_u32(snaplen);
        self.put_option(IF_NAME, name.as_bytes());
        self.put_option(IF_DESCRIPTION, description.as_bytes());
        self.put_option(IF_TSRESOL, &[TSRESOL_NANOS]);
        self.put_option(OPT_ENDOFOPT, &[]);
        self.finish()?;
        let id = self.interfaces;
        self.interfaces += 1;
        Ok(id)
    }

    /// Writes an EPB: `data` (already cut to the snap length) captured on
    /// `interface` at `ts_ns` nanoseconds since the epoch, `wire_len`
    /// bytes long on the wire.
    pub fn packet(
        &mut self,
        interface: u32,
        ts_ns: u64,
        data: &[u8],
        wire_len: u32,
        flags: EpbFlags,
    ) -> io::Result<()> {
        // Written straight to `out` in three pieces, not built in `block`
        // first: this is once per packet, and the copy showed in profiles.
        let total = packet_block_len(data.len());
        let total32 = u32::try_from(total)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pcapng block too large"))?;
        let mut head = [0u8; EPB_FIXED - 4];
        for (i, v) in [
            BT_EPB,
            total32,
            interface,
            // Section 4.3: the timestamp is one 64-bit count of
            // if_tsresol units, stored as the high word then the low word.
            (ts_ns >> 32) as u32,
            ts_ns as u32,
            data.len() as u32,
            wire_len,
        ]
        .into_iter()
        .enumerate()
        {
            head[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        self.out.write_all(&head)?;
        // The packet in pieces of 32 bytes and one shorter rest: each piece
        // of a constant size is copied inline. One memcpy call per packet
        // (musl's rep movs with byte loops for unaligned ends) was 13% of
        // the collector's samples under bench/capture.sh at snap length 128.
        let (pieces, rest) = data.as_chunks::<32>();
        for piece in pieces {
            self.out.write_all(piece)?;
        }
        self.out.write_all(rest)?;
        // Padding to 32 bits, epb_flags, opt_endofopt, the length again.
        let pad = pad4(data.len()) - data.len();
        let mut tail = [0u8; 3 + EPB_OPTIONS + 4];
        tail[pad..pad + 2].copy_from_slice(&EPB_FLAGS.to_le_bytes());
        tail[pad + 2..pad + 4].copy_from_slice(&4u16.to_le_bytes());
        tail[pad + 4..pad + 8].copy_from_slice(&flags.0.to_le_bytes());
        // opt_endofopt: code 0, length 0, already zero.
        tail[pad + 12..pad + 16].copy_from_slice(&total32.to_le_bytes());
        // One length per padding: each write is of a constant size, which
        // the compiler copies inline instead of calling memcpy (musl's is
        // slow on the short, unaligned copies of a buffered writer).
        match pad {
            0 => self.out.write_all(&tail[..EPB_OPTIONS + 4]),
            1 => self.out.write_all(&tail[..EPB_OPTIONS + 5]),
            2 => self.out.write_all(&tail[..EPB_OPTIONS + 6]),
            _ => self.out.write_all(&tail[..EPB_OPTIONS + 7]),
        }?;
        self.written += total as u64;
        Ok(())
    }

    /// Writes an ISB with the counts of `interface` (section 4.6).
    /// Timestamps use the interface's resolution, nanoseconds for every
    /// interface this writer describes.
    pub fn statistics(&mut self, interface: u32, s: &Statistics) -> io::Result<()> {
        self.begin(BT_ISB);
        self.put_u32(interface);
        self.put_u32((s.ts_ns >> 32) as u32);
        self.put_u32(s.ts_ns as u32);
        if let Some(comment) = &s.comment {
            self.put_option(OPT_COMMENT, comment.as_bytes());
        }
        for (code, time) in [(ISB_STARTTIME, s.start_ns), (ISB_ENDTIME, s.end_ns)] {
            if let Some(t) = time {
                let mut v = [0; 8];
                v[..4].copy_from_slice(&((t >> 32) as u32).to_le_bytes());
                v[4..].copy_from_slice(&(t as u32).to_le_bytes());
                self.put_option(code, &v);
            }
        }
        for (code, count) in [
            (ISB_IFRECV, s.received),
            (ISB_IFDROP, s.if_dropped),
            (ISB_FILTERACCEPT, s.filter_accepted),
            (ISB_OSDROP, s.os_dropped),
            (ISB_USRDELIV, s.delivered),
        ] {
            if let Some(n) = count {
                self.put_option(code, &n.to_le_bytes());
            }
        }
        self.put_option(OPT_ENDOFOPT, &[]);
        self.finish()
    }

    /// Interfaces described so far.
    pub fn interfaces(&self) -> u32 {
        self.interfaces
    }

    /// Bytes written so far (whole blocks).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer, flushed.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }

    fn begin(&mut self, block_type: u32) {
        self.block.clear();
        self.put_u32(block_type);
        self.put_u32(0); // total length, patched by finish
    }

    /// Closes the block with its trailing length (section 3.1: the length
    /// appears at both ends so readers can walk backwards) and writes it.
    fn finish(&mut self) -> io::Result<()> {
        let total = self.block.len() + 4;
        let total32 = u32::try_from(total)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pcapng block too large"))?;
        self.block[4..8].copy_from_slice(&total32.to_le_bytes());
        self.put_u32(total32);
        self.out.write_all(&self.block)?;
        self.written += total as u64;
        Ok(())
    }

    fn put_u16(&mut self, v: u16) {
        self.block.extend_from_slice(&v.to_le_bytes());
    }

    fn put_u32(&mut self, v: u32) {
        self.block.extend_from_slice(&v.to_le_bytes());
    }

    fn put_padded(&mut self, v: &[u8]) {
        self.block.extend_from_slice(v);
        self.block.resize(pad4(self.block.len()), 0);
    }

    /// An option (section 3.5): code, length of the value without padding,
    /// value padded to 32 bits. Values longer than an option can say are
    /// cut (interface names and labels are far shorter).
    fn put_option(&mut self, code: u16, value: &[u8]) {
        let value = &value[..value.len().min(usize::from(u16::MAX) & !3)];
        self.put_u16(code);
        self.put_u16(value.len() as u16);
        self.put_padded(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::read_back;
    use crate::{Direction, link};

    /// (interface, ts_ns, data, wire_len, flags)
    type Packet = (u32, u64, &'static [u8], u32, u32);

    #[test]
    fn packets_on_two_interfaces_read_back_with_labels_times_and_directions() {
        let interfaces = [
            (link::ETHERNET, 128, "veth0", "netns=host"),
            (link::RAW, 96, "tun0", "netns=pod/default/web"),
        ];
        let packets: [Packet; 4] = [
            (
                0,
                1_700_000_000_123_456_789,
                b"\x01\x02\x03",
                60,
                EpbFlags::INBOUND | EpbFlags::UNICAST,
            ),
            (
                1,
                1_700_000_000_123_456_790,
                b"\x45\x00\x00\x14",
                20,
                EpbFlags::OUTBOUND,
            ),
            // A timestamp past 2^32 ns in the low word and a 4-byte body.
            (
                0,
                (1u64 << 32) + 7,
                b"abcd",
                1514,
                EpbFlags::INBOUND | EpbFlags::BROADCAST,
            ),
            (1, 1_800_000_000_000_000_001, b"", 0, EpbFlags::OUTBOUND),
        ];
        let mut w = Writer::new(Vec::new(), "capsnap", Some("Linux 6.1")).unwrap();
        for (i, (lt, snap, name, desc)) in interfaces.iter().enumerate() {
            assert_eq!(w.interface(*lt, *snap, name, desc).unwrap(), i as u32);
        }
        for (iface, ts, data, wire, flags) in packets {
            w.packet(iface, ts, data, wire, EpbFlags(flags)).unwrap();
        }
        let written = w.written();
        let bytes = w.into_inner().unwrap();
        assert_eq!(written, bytes.len() as u64);

        let (ix, got) = read_back(&bytes);
        assert!(ix.damage.is_empty(), "{:?}", ix.damage);
        assert_eq!(ix.end, bytes.len());
        let labels: Vec<_> = ix
            .interfaces
            .iter()
            .map(|i| {
                (
                    i.link_type,
                    i.snaplen,
                    i.name.as_deref(),
                    i.description.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            labels,
            vec![
                (link::ETHERNET, 128, Some("veth0"), Some("netns=host")),
                (link::RAW, 96, Some("tun0"), Some("netns=pod/default/web")),
            ]
        );
        assert_eq!(got.len(), packets.len());
        for (n, (f, (iface, ts, data, wire, flags))) in got.iter().zip(packets).enumerate() {
            let direction = if flags & 3 == EpbFlags::OUTBOUND {
                Direction::Out
            } else {
                Direction::In
            };
            assert_eq!(f.number, n as u64 + 1);
            assert_eq!(f.interface, iface);
            assert_eq!(f.ts_ns, Some(ts as i64), "frame {n}");
            assert_eq!(f.data, data);
            assert_eq!(f.wire_len, wire);
            assert_eq!(f.direction, Some(direction));
        }
    }

    #[test]
    fn block_lengths_match_what_is_written() {
        for (name, desc) in [("", ""), ("lo", "netns=host"), ("eth0", "netns=pod-web")] {
            let mut w = Writer::new(Vec::new(), "capsnap", None).unwrap();
            let before = w.written();
            w.interface(1, 0, name, desc).unwrap();
            assert_eq!(w.written() - before, interface_block_len(name, desc) as u64);
            for caplen in 0..9 {
                let before = w.written();
                w.packet(0, 0, &[7; 8][..caplen], 8, EpbFlags(1)).unwrap();
                assert_eq!(w.written() - before, packet_block_len(caplen) as u64);
            }
        }
    }

    #[test]
    fn statistics_read_back_with_their_interface_times_and_counts() {
        let mut w = Writer::new(Vec::new(), "capsnap", None).unwrap();
        w.interface(link::ETHERNET, 128, "eth0", "netns=host")
            .unwrap();
        w.interface(link::LINUX_SLL, 128, "any", "netns=host")
            .unwrap();
        w.packet(0, 5, b"ab", 2, EpbFlags(1)).unwrap();
        let full = Statistics {
            ts_ns: 1_700_000_000_000_000_009,
            start_ns: Some(1_700_000_000_000_000_001),
            end_ns: Some(1_700_000_000_000_000_008),
            received: Some(1 << 40),
            if_dropped: Some(0),
            filter_accepted: Some(7),
            os_dropped: Some(3),
            delivered: Some((1 << 40) - 3),
            comment: Some("capsnap: 0 dropped by capsnap".into()),
        };
        let before = w.written();
        w.statistics(1, &full).unwrap();
        assert_eq!(
            w.written() - before,
            (STATISTICS_BLOCK_LEN + 4 + pad4(29)) as u64,
            "the comment's option adds its padded length"
        );
        let sparse = Statistics {
            ts_ns: 42,
            received: Some(1),
            ..Statistics::default()
        };
        let before = w.written();
        w.statistics(0, &sparse).unwrap();
        assert!(((w.written() - before) as usize) < STATISTICS_BLOCK_LEN);
        let bytes = w.into_inner().unwrap();

        let (ix, got) = read_back(&bytes);
        assert!(ix.damage.is_empty(), "{:?}", ix.damage);
        assert_eq!(got.len(), 1, "statistics are not frames");
        let as_read = |s: &Statistics, interface| crate::InterfaceStats {
            interface,
            ts_ns: s.ts_ns as i64,
            start_ns: s.start_ns.map(|t| t as i64),
            end_ns: s.end_ns.map(|t| t as i64),
            if_received: s.received,
            if_dropped: s.if_dropped,
            filter_accepted: s.filter_accepted,
            os_dropped: s.os_dropped,
            delivered: s.delivered,
            comment: s.comment.clone(),
        };
        assert_eq!(ix.stats, vec![as_read(&full, 1), as_read(&sparse, 0)]);
    }

    #[test]
    fn file_cut_after_any_block_is_valid_and_keeps_the_packets_before() {
        let mut w = Writer::new(Vec::new(), "capsnap", None).unwrap();
        let mut ends = vec![w.written() as usize];
        w.interface(1, 64, "eth0", "netns=host").unwrap();
        ends.push(w.written() as usize);
        for i in 0..3u8 {
            w.packet(0, u64::from(i), &[i; 5], 5, EpbFlags(2)).unwrap();
            ends.push(w.written() as usize);
        }
        let bytes = w.into_inner().unwrap();
        for (k, end) in ends.iter().enumerate() {
            let cut = &bytes[..*end];
            let (ix, got) = read_back(cut);
            assert!(ix.damage.is_empty(), "cut at {end}: {:?}", ix.damage);
            assert_eq!(got.len(), k.saturating_sub(1), "cut at {end}");
        }
    }
}
