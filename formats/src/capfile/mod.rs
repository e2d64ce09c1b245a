//! Classic pcap and pcapng, read from borrowed bytes (and pcapng written).
//!
//! One record walker serves two passes. [`index`] walks the whole file once,
//! hopping from header to header, to learn the sections and interfaces, to
//! find where the readable data ends (and why), and to cut the file into
//! [`Chunk`]s at record boundaries; an [`Indexer`] does the same with the
//! file handed over piece by piece, so a reader needs one small buffer, not
//! the whole file in memory. [`Frames`] then walks any one chunk on its own,
//! so chunks can be decoded in parallel and each knows the frame number of
//! its first packet (frame numbers match Wireshark's).
//!
//! This file holds the public types and the walker both passes share
//! ([`Walk`] reads one record, [`Frames`] follows a chunk); `pcap` and
//! `pcapng` read the records of each format, `indexer` is the indexing pass
//! and `writer` the pcapng writer the collector uses.
//!
//! Formats: pcap with micro- or nanosecond timestamps in either byte order,
//! the Kuznetzov "modified" pcap (24-byte records), and pcapng with any number
//! of sections of either byte order, interfaces of different link types and
//! snap lengths, EPB/SPB/OPB packets, `if_tsresol`/`if_tsoffset`, interface
//! names and descriptions, packet comments and direction flags
//! (draft-ietf-opsawg-pcapng, sections 4.1-4.3 and appendix A).

mod indexer;
mod pcap;
mod pcapng;
pub mod writer;

pub use indexer::{Indexer, index};

/// Which kind of capture file this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Classic libpcap format.
    Pcap {
        big_endian: bool,
        nanos: bool,
        modified: bool,
    },
    /// pcapng (byte order is per section).
    PcapNg,
}

/// How an interface counts time: units of 10^-n or 2^-n seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TsResolution {
    Pow10(u8),
    Pow2(u8),
}

/// One capture interface (pcapng IDB, or the single implicit one of a pcap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// LINKTYPE_* value (tcpdump.org/linktypes.html).
    pub link_type: u16,
    pub snaplen: u32,
    /// `if_name` option.
    pub name: Option<String>,
    /// `if_description` option.
    pub description: Option<String>,
    resolution: TsResolution,
    offset_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Section {
    big_endian: bool,
    /// Index into [`Index::interfaces`] of this section's interface 0.
    first_interface: u32,
    interfaces: u32,
}

/// A run of whole records that can be decoded on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub offset: usize,
    pub end: usize,
    /// Frame number (1-based, as Wireshark counts) of the chunk's first record.
    pub first_frame: u64,
    /// Packets in the chunk.
    pub frames: u64,
    section: u32,
    /// Interfaces its section had defined where the chunk starts: a packet
    /// may only use interfaces described before it.
    interfaces: u32,
}

/// Something wrong in the file that did not stop it from being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub offset: u64,
    pub message: String,
}

/// The result of the indexing pass over a capture file.
#[derive(Debug, Clone)]
pub struct Index {
    pub layout: Layout,
    pub interfaces: Vec<Interface>,
    sections: Vec<Section>,
    pub chunks: Vec<Chunk>,
    /// Packets in the file.
    pub frames: u64,
    /// Byte offset where readable data ends (the file length when intact).
    pub end: usize,
    /// Records that were skipped, and (last) why reading stopped early.
    pub damage: Vec<Damage>,
    /// Interface statistics blocks, in file order.
    pub stats: Vec<InterfaceStats>,
}

/// What a pcapng interface statistics block says (section 4.6): counts of
/// an interface from `start_ns` (or the start of the capture) to `end_ns`
/// (or `ts_ns`). A counter the writer did not give is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceStats {
    /// Index into [`Index::interfaces`].
    pub interface: u32,
    /// When the counts were taken, nanoseconds since the epoch.
    pub ts_ns: i64,
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
    /// `isb_ifrecv`: packets received.
    pub if_received: Option<u64>,
    /// `isb_ifdrop`: dropped by the interface for lack of resources.
    pub if_dropped: Option<u64>,
    /// `isb_filteraccept`: accepted by the capture filter.
    pub filter_accepted: Option<u64>,
    /// `isb_osdrop`: dropped by the operating system.
    pub os_dropped: Option<u64>,
    /// `isb_usrdeliv`: delivered to the capturing program.
    pub delivered: Option<u64>,
    /// The block's first `opt_comment`.
    pub comment: Option<String>,
}

/// An interface statistics block as read, before its interface and
/// timestamps are resolved against the section.
#[derive(Debug, Clone, Default)]
struct RawStats {
    /// The interface's id in its section.
    interface: u32,
    ts_units: u64,
    start_units: Option<u64>,
    end_units: Option<u64>,
    if_received: Option<u64>,
    if_dropped: Option<u64>,
    filter_accepted: Option<u64>,
    os_dropped: Option<u64>,
    delivered: Option<u64>,
    comment: Option<String>,
}

/// Packet direction where the capture records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// One captured packet, borrowing its bytes from the file.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// 1-based, as Wireshark numbers frames.
    pub number: u64,
    /// Nanoseconds since the Unix epoch, UTC; `None` for simple packet
    /// blocks, which carry no timestamp.
    pub ts_ns: Option<i64>,
    /// Index into [`Index::interfaces`].
    pub interface: u32,
    pub data: &'a [u8],
    pub wire_len: u32,
    pub direction: Option<Direction>,
    pub comment: Option<&'a str>,
}

/// Whether `head` starts like a capture: a pcap magic (either byte order,
/// micro, nano or the "modified" format) or a pcapng section header.
pub fn is_capture(head: &[u8]) -> bool {
    let Some(m) = head.first_chunk::<4>() else {
        return false;
    };
    let le = u32::from_le_bytes(*m);
    le == pcapng::BT_SHB || pcap::is_magic(le) || pcap::is_magic(le.swap_bytes())
}

/// What one record at a position turned out to be.
enum Record<'a> {
    Packet {
        local_interface: u32,
        /// `None` for a simple packet block: no time, interface 0, cut to
        /// that interface's snap length (pcapng section 4.4).
        ts_units: Option<u64>,
        data: &'a [u8],
        wire_len: u32,
        direction: Option<Direction>,
        comment: Option<&'a str>,
    },
    Section {
        big_endian: bool,
    },
    Interface(Interface),
    /// Interface statistics: not a frame in Wireshark's numbering.
    Stats(RawStats),
    /// Not a packet, but Wireshark gives it a frame number (custom blocks,
    /// systemd journal entries), so frame numbers must count it too.
    Numbered,
    Other,
    /// The record is bad but its length is known: skip it.
    Skip(String),
}

/// Why a record walk cannot go on at a position.
enum Stop {
    /// The bytes end inside the record, which needs `need` bytes from its
    /// start: more of the file may complete it, the end of the file cannot.
    Cut { need: usize, why: String },
    /// A length that cannot be trusted: nothing after it can be found.
    Bad(String),
}

/// Reads the record at `pos`: `Ok((record, len))`, or why the walk stops.
type Step<'a> = Result<(Record<'a>, usize), Stop>;

/// Which record walk a file needs: the one reader both passes call.
#[derive(Debug, Clone, Copy)]
enum Walk {
    Pcap(pcap::Params),
    /// Byte order of the current section.
    PcapNg {
        big_endian: bool,
    },
}

impl Walk {
    /// Reads the record at `pos` of `d`.
    fn step<'a>(&self, d: &'a [u8], pos: usize) -> Step<'a> {
        match *self {
            Walk::Pcap(params) => pcap::record(d, pos, params),
            Walk::PcapNg { big_endian } => pcapng::block(d, pos, big_endian),
        }
    }
}

fn u16_at(d: &[u8], at: usize, be: bool) -> u16 {
    let b = [d[at], d[at + 1]];
    if be {
        u16::from_be_bytes(b)
    } else {
        u16::from_le_bytes(b)
    }
}

fn u32_at(d: &[u8], at: usize, be: bool) -> u32 {
    let b = [d[at], d[at + 1], d[at + 2], d[at + 3]];
    if be {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

impl Index {
    /// Sections met (1 for classic pcap).
    pub fn sections_len(&self) -> usize {
        self.sections.len()
    }

    /// The interfaces' timestamps as nanoseconds since the epoch.
    fn ts_ns(&self, interface: u32, units: u64) -> i64 {
        let iface = &self.interfaces[interface as usize];
        let ns: i128 = match iface.resolution {
            TsResolution::Pow10(n) if n <= 9 => i128::from(units) * 10i128.pow(u32::from(9 - n)),
            TsResolution::Pow10(n) => {
                i128::from(units) / 10i128.checked_pow(u32::from(n - 9)).unwrap_or(i128::MAX)
            }
            TsResolution::Pow2(n) if n < 64 => (i128::from(units) * 1_000_000_000) >> n,
            TsResolution::Pow2(_) => 0,
        };
        let ns = ns + i128::from(iface.offset_secs) * 1_000_000_000;
        ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Walks the packets of one chunk; `data` is the whole file.
    pub fn frames<'a>(&'a self, data: &'a [u8], chunk: &Chunk) -> Frames<'a> {
        self.chunk_frames(&data[chunk.offset..chunk.end], chunk)
    }

    /// Walks the packets of one chunk; `bytes` are the chunk's own bytes,
    /// from [`Chunk::offset`] to [`Chunk::end`].
    pub fn chunk_frames<'a>(&'a self, bytes: &'a [u8], chunk: &Chunk) -> Frames<'a> {
        let walk = match self.layout {
            Layout::Pcap {
                big_endian,
                nanos,
                modified,
            } => Walk::Pcap(pcap::Params {
                big_endian,
                nanos,
                modified,
                snaplen: self.interfaces[0].snaplen,
            }),
            Layout::PcapNg => Walk::PcapNg {
                big_endian: self
                    .sections
                    .get(chunk.section as usize)
                    .is_some_and(|s| s.big_endian),
            },
        };
        Frames {
            index: self,
            data: &bytes[..bytes.len().min(chunk.end - chunk.offset)],
            pos: 0,
            next_frame: chunk.first_frame,
            section: chunk.section,
            walk,
            // Only the file's first section header starts section 0; a
            // chunk that starts at a later one moves on from its section.
            started: chunk.offset > 0,
            defined: chunk.interfaces,
        }
    }
}

/// Iterator over the packets of one [`Chunk`].
pub struct Frames<'a> {
    index: &'a Index,
    data: &'a [u8],
    pos: usize,
    next_frame: u64,
    section: u32,
    /// The record reader, with the byte order of the current section.
    walk: Walk,
    /// A section is in effect: the next section header starts a new one.
    started: bool,
    /// Interfaces of the current section described so far.
    defined: u32,
}

impl<'a> Iterator for Frames<'a> {
    type Item = Frame<'a>;

    fn next(&mut self) -> Option<Frame<'a>> {
        while self.pos < self.data.len() {
            // The index pass validated every record up to chunk end.
            let Ok((record, len)) = self.walk.step(self.data, self.pos) else {
                return None;
            };
            self.pos += len;
            match record {
                Record::Section { big_endian } => {
                    if self.started {
                        self.section += 1;
                        self.defined = 0;
                    }
                    self.walk = Walk::PcapNg { big_endian };
                }
                Record::Packet {
                    local_interface,
                    ts_units,
                    data,
                    wire_len,
                    direction,
                    comment,
                } => {
                    self.started = true;
                    let section = self.index.sections.get(self.section as usize)?;
                    // The index pass applied the same rule and reported it.
                    if local_interface >= self.defined {
                        continue;
                    }
                    let interface = section.first_interface + local_interface;
                    let iface = &self.index.interfaces[interface as usize];
                    let (data, ts_ns) = match ts_units {
                        Some(units) => (data, Some(self.index.ts_ns(interface, units))),
                        None if iface.snaplen != 0 => {
                            (&data[..data.len().min(iface.snaplen as usize)], None)
                        }
                        None => (data, None),
                    };
                    let number = self.next_frame;
                    self.next_frame += 1;
                    return Some(Frame {
                        number,
                        ts_ns,
                        interface,
                        data,
                        wire_len,
                        direction,
                        comment,
                    });
                }
                Record::Numbered => {
                    self.started = true;
                    self.next_frame += 1;
                }
                Record::Interface(_) => {
                    self.started = true;
                    self.defined += 1;
                }
                Record::Stats(_) | Record::Other | Record::Skip(_) => self.started = true,
            }
        }
        None
    }
}

/// Capture files built by hand for the tests of `pcap`, `pcapng` and
/// `indexer`, and the checks they share.
#[cfg(test)]
mod fixtures {
    use super::*;

    /// A classic pcap file: `magic` as written little-endian, one record
    /// per `(seconds, fraction, data)`.
    pub fn pcap(magic: u32, link: u32, records: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(magic.to_le_bytes());
        v.extend(2u16.to_le_bytes());
        v.extend(4u16.to_le_bytes());
        v.extend([0; 8]);
        v.extend(65535u32.to_le_bytes());
        v.extend(link.to_le_bytes());
        for (sec, frac, data) in records {
            v.extend(sec.to_le_bytes());
            v.extend(frac.to_le_bytes());
            v.extend((data.len() as u32).to_le_bytes());
            v.extend((data.len() as u32).to_le_bytes());
            v.extend(*data);
        }
        v
    }

    /// Indexes `d` and returns every frame as (number, ts_ns or -1, data).
    pub fn all(d: &[u8]) -> (Index, Vec<(u64, i64, Vec<u8>)>) {
        let ix = index(d).unwrap();
        let frames = ix
            .chunks
            .iter()
            .flat_map(|c| {
                ix.frames(d, c)
                    .map(|f| (f.number, f.ts_ns.unwrap_or(-1), f.data.to_vec()))
                    .collect::<Vec<_>>()
            })
            .collect();
        (ix, frames)
    }

    /// One little-endian pcapng block of type `t`, padded, with both lengths.
    pub fn block(t: u32, body: &[u8]) -> Vec<u8> {
        let total = 12 + body.len().div_ceil(4) * 4;
        let mut v = Vec::new();
        v.extend(t.to_le_bytes());
        v.extend((total as u32).to_le_bytes());
        v.extend(body);
        v.resize(total - 4, 0);
        v.extend((total as u32).to_le_bytes());
        v
    }

    /// A section header without options (28 bytes).
    pub fn shb() -> Vec<u8> {
        let mut b = pcapng::BYTE_ORDER_MAGIC.to_le_bytes().to_vec();
        b.extend([1, 0, 0, 0]);
        b.extend((-1i64).to_le_bytes());
        block(pcapng::BT_SHB, &b)
    }

    /// An interface named eth0 (32 bytes), with `if_tsresol` when given.
    pub fn idb(link: u16, tsresol: Option<u8>) -> Vec<u8> {
        let mut b = link.to_le_bytes().to_vec();
        b.extend([0, 0]);
        b.extend(0u32.to_le_bytes());
        b.extend([2, 0, 4, 0]);
        b.extend(b"eth0");
        if let Some(r) = tsresol {
            b.extend([9, 0, 1, 0, r, 0, 0, 0]);
        }
        block(pcapng::BT_IDB, &b)
    }

    /// An enhanced packet block, with `epb_flags` when given.
    pub fn epb(iface: u32, ts: u64, data: &[u8], flags: Option<u32>) -> Vec<u8> {
        let mut b = iface.to_le_bytes().to_vec();
        b.extend(((ts >> 32) as u32).to_le_bytes());
        b.extend((ts as u32).to_le_bytes());
        b.extend((data.len() as u32).to_le_bytes());
        b.extend((data.len() as u32).to_le_bytes());
        b.extend(data);
        b.resize(b.len().div_ceil(4) * 4, 0);
        if let Some(f) = flags {
            b.extend([2, 0, 4, 0]);
            b.extend(f.to_le_bytes());
        }
        block(pcapng::BT_EPB, &b)
    }

    /// One section written by [`writer::Writer`]: an interface per link
    /// type (named after its position), then `(interface, ts_ns, data)`
    /// packets.
    pub fn section(links: &[u16], packets: &[(u32, u64, &[u8])]) -> Vec<u8> {
        use writer::{EpbFlags, Writer};
        let mut w = Writer::new(Vec::new(), "capsnap tests", None).unwrap();
        for (i, link) in links.iter().enumerate() {
            w.interface(*link, 0, &format!("if{i}"), "").unwrap();
        }
        for (iface, ts, data) in packets {
            let wire = data.len() as u32;
            w.packet(*iface, *ts, data, wire, EpbFlags(EpbFlags::INBOUND))
                .unwrap();
        }
        w.into_inner().unwrap()
    }

    /// A small pcapng file with two interfaces, a custom block and packets
    /// with and without flags: the seed the robustness tests change.
    pub fn sample_pcapng() -> Vec<u8> {
        let mut d = shb();
        d.extend(idb(1, Some(9)));
        d.extend(idb(101, None));
        d.extend(epb(0, 77, &[0xff; 60], Some(1)));
        d.extend(block(0x0bad, &[1, 2, 3, 4]));
        d.extend(epb(1, 78, &[0x45; 40], None));
        d
    }

    /// Indexes `d` and decodes every frame of every chunk, whole and fed in
    /// pieces; must not panic. Returns the packets read.
    pub fn read_everything(d: &[u8]) -> u64 {
        let Ok(ix) = index(d) else { return 0 };
        for piece in [1, 7, 64] {
            same_as_whole(d, &ix, piece);
        }
        let mut h = crate::Headers::default();
        let mut n = 0;
        for c in &ix.chunks {
            for f in ix.frames(d, c) {
                crate::decode(
                    ix.interfaces[f.interface as usize].link_type,
                    f.data,
                    &mut h,
                );
                n += 1;
            }
        }
        assert_eq!(n, ix.frames, "chunks hold exactly the indexed packets");
        n
    }

    /// Indexes `d` fed `piece` bytes at a time (more where a record needs
    /// it), as a reader with a small buffer does, and checks that every
    /// chunk lies within one feed and that frames and damage are those of
    /// the whole-file index `whole`.
    pub fn same_as_whole(d: &[u8], whole: &Index, piece: usize) {
        let mut ixr = Indexer::new(&d[..d.len().min(24)], d.len()).unwrap();
        while !ixr.is_done() {
            let pos = ixr.position();
            let end = d.len().min(pos + piece.max(ixr.need()));
            let before = ixr.chunks().len();
            let n = ixr.feed(&d[pos..end]);
            for c in &ixr.chunks()[before..] {
                assert!(
                    c.offset >= pos && c.end <= pos + n,
                    "{c:?} outside {pos}+{n}"
                );
            }
            assert!(
                n > 0 || ixr.need() > end - pos || ixr.is_done(),
                "no progress at {pos}"
            );
        }
        let ix = ixr.finish();
        let frames = |ix: &Index| -> Vec<(u64, Option<i64>, u32, Vec<u8>)> {
            ix.chunks
                .iter()
                .flat_map(|c| {
                    ix.chunk_frames(&d[c.offset..c.end], c)
                        .map(|f| (f.number, f.ts_ns, f.interface, f.data.to_vec()))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        assert_eq!(frames(&ix), frames(whole), "piece {piece}");
        assert_eq!(
            (ix.frames, ix.end, &ix.damage),
            (whole.frames, whole.end, &whole.damage)
        );
    }
}
