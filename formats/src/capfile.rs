//! Classic pcap and pcapng, read from borrowed bytes.
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
//! Formats: pcap with micro- or nanosecond timestamps in either byte order,
//! the Kuznetzov "modified" pcap (24-byte records), and pcapng with any number
//! of sections of either byte order, interfaces of different link types and
//! snap lengths, EPB/SPB/OPB packets, `if_tsresol`/`if_tsoffset`, interface
//! names and descriptions, packet comments and direction flags
//! (draft-ietf-opsawg-pcapng, sections 4.1-4.3 and appendix A).

use crate::error::{Error, Hex};

/// Classic pcap magic numbers as read little-endian from the first 4 bytes.
const PCAP_US: u32 = 0xa1b2_c3d4;
const PCAP_NS: u32 = 0xa1b2_3c4d;
const PCAP_MODIFIED: u32 = 0xa1b2_cd34;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BOM: u32 = 0x1a2b_3c4d;

/// libpcap refuses records larger than this (pcap-int.h MAXIMUM_SNAPLEN);
/// anything bigger in a classic pcap is a damaged header, not a packet.
const MAX_PCAP_RECORD: u32 = 262_144;
/// Largest pcapng block accepted; Wireshark uses the same bound (16 MiB).
const MAX_BLOCK: u32 = 16 * 1024 * 1024;

/// A chunk is closed after this many bytes, so that even a small capture is
/// split into enough pieces to keep every core busy.
const CHUNK_BYTES: usize = 2 * 1024 * 1024;

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

fn pcap_record(d: &[u8], pos: usize, p: PcapParams) -> Step<'_> {
    let PcapParams {
        big_endian,
        nanos,
        modified,
        snaplen,
    } = p;
    let header = if modified { 24 } else { 16 };
    let left = d.len() - pos;
    if left < header {
        return Err(Stop::Cut {
            need: header,
            why: format!("file ends in the middle of a record header ({left} of {header} bytes)"),
        });
    }
    let sec = u32_at(d, pos, big_endian);
    let frac = u32_at(d, pos + 4, big_endian);
    let caplen = u32_at(d, pos + 8, big_endian);
    let wire_len = u32_at(d, pos + 12, big_endian);
    if caplen > MAX_PCAP_RECORD.max(snaplen) {
        return Err(Stop::Bad(format!(
            "record claims {caplen} captured bytes, more than any capture writes; the record header is damaged"
        )));
    }
    let len = header + caplen as usize;
    if left < len {
        return Err(Stop::Cut {
            need: len,
            why: format!("file ends in the middle of a record ({left} of {len} bytes)"),
        });
    }
    // The modified format adds ifindex(4), protocol(2), pkt_type(1), pad(1);
    // pkt_type 4 is PACKET_OUTGOING (linux/if_packet.h).
    let direction = modified.then(|| {
        if d[pos + 22] == 4 {
            Direction::Out
        } else {
            Direction::In
        }
    });
    // Units are counted in the pseudo-interface's resolution (10^-6 or
    // 10^-9); a fraction of 10^6 or more is kept as written, as tshark does.
    let scale = if nanos { 1_000_000_000 } else { 1_000_000 };
    let ts_units = u64::from(sec) * scale + u64::from(frac);
    Ok((
        Record::Packet {
            local_interface: 0,
            ts_units: Some(ts_units),
            data: &d[pos + header..pos + len],
            wire_len,
            direction,
            comment: None,
        },
        len,
    ))
}

/// What a classic pcap record walk needs from the file header.
#[derive(Debug, Clone, Copy)]
struct PcapParams {
    big_endian: bool,
    nanos: bool,
    modified: bool,
    snaplen: u32,
}

/// Options of a pcapng block, as (code, value) pairs.
fn options(d: &[u8], mut at: usize, end: usize, be: bool) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if at + 4 > end {
            return None;
        }
        let code = u16_at(d, at, be);
        let len = usize::from(u16_at(d, at + 2, be));
        if code == 0 || at + 4 + len > end {
            return None;
        }
        let value = &d[at + 4..at + 4 + len];
        at += 4 + len.div_ceil(4) * 4;
        Some((code, value))
    })
}

fn utf8(v: &[u8]) -> Option<&str> {
    // Some writers include the C string terminator in the option length.
    let v = v.strip_suffix(&[0]).unwrap_or(v);
    std::str::from_utf8(v).ok()
}

fn pcapng_block(d: &[u8], pos: usize, be: bool) -> Step<'_> {
    let left = d.len() - pos;
    if left < 12 {
        return Err(Stop::Cut {
            need: 12,
            why: format!("file ends in the middle of a block header ({left} of 12 bytes)"),
        });
    }
    let raw_type = u32::from_le_bytes([d[pos], d[pos + 1], d[pos + 2], d[pos + 3]]);
    // A section header sets the byte order for itself and what follows.
    let be = if raw_type == PCAPNG_SHB {
        match u32::from_le_bytes([d[pos + 8], d[pos + 9], d[pos + 10], d[pos + 11]]) {
            PCAPNG_BOM => false,
            m if m.swap_bytes() == PCAPNG_BOM => true,
            m => {
                return Err(Stop::Bad(format!(
                    "section header has byte-order magic {m:08x}, expected 1a2b3c4d"
                )));
            }
        }
    } else {
        be
    };
    let block_type = u32_at(d, pos, be);
    let total = u32_at(d, pos + 4, be);
    if total < 12 || !total.is_multiple_of(4) || total > MAX_BLOCK {
        return Err(Stop::Bad(format!(
            "block of type {block_type:#x} has impossible length {total}"
        )));
    }
    let total = total as usize;
    if left < total {
        return Err(Stop::Cut {
            need: total,
            why: format!(
                "file ends in the middle of a block of type {block_type:#x} ({left} of {total} bytes)"
            ),
        });
    }
    if u32_at(d, pos + total - 4, be) as usize != total {
        return Err(Stop::Bad(format!(
            "block of type {block_type:#x} has different leading and trailing lengths"
        )));
    }
    let body = pos + 8;
    let end = pos + total - 4;
    let body_len = end - body;
    let record = match block_type {
        PCAPNG_SHB => {
            if body_len < 16 {
                return Err(Stop::Bad("section header block too short".into()));
            }
            Record::Section { big_endian: be }
        }
        1 => {
            if body_len < 8 {
                return Ok((
                    Record::Skip("interface description block too short".into()),
                    total,
                ));
            }
            let mut iface = Interface {
                link_type: u16_at(d, body, be),
                snaplen: u32_at(d, body + 4, be),
                name: None,
                description: None,
                resolution: TsResolution::Pow10(6),
                offset_secs: 0,
            };
            for (code, v) in options(d, body + 8, end, be) {
                match (code, v.len()) {
                    (2, _) => iface.name = utf8(v).map(str::to_owned),
                    (3, _) => iface.description = utf8(v).map(str::to_owned),
                    (9, 1) => {
                        let n = v[0] & 0x7f;
                        iface.resolution = if v[0] & 0x80 != 0 {
                            TsResolution::Pow2(n)
                        } else {
                            TsResolution::Pow10(n)
                        };
                    }
                    (14, 8) => {
                        let b: [u8; 8] = v.try_into().unwrap_or_default();
                        iface.offset_secs = if be {
                            i64::from_be_bytes(b)
                        } else {
                            i64::from_le_bytes(b)
                        };
                    }
                    _ => {}
                }
            }
            Record::Interface(iface)
        }
        // Enhanced (6) and obsolete (2) packet blocks share the layout
        // after their first word.
        6 | 2 => {
            if body_len < 20 {
                return Ok((
                    Record::Skip(format!("packet block too short ({body_len} bytes of body)")),
                    total,
                ));
            }
            let local_interface = if block_type == 6 {
                u32_at(d, body, be)
            } else {
                u32::from(u16_at(d, body, be))
            };
            let ts_units =
                (u64::from(u32_at(d, body + 4, be)) << 32) | u64::from(u32_at(d, body + 8, be));
            let caplen = u32_at(d, body + 12, be) as usize;
            let wire_len = u32_at(d, body + 16, be);
            let data_at = body + 20;
            if caplen > end - data_at {
                return Ok((
                    Record::Skip(format!(
                        "packet block says {caplen} captured bytes but holds {}",
                        end - data_at
                    )),
                    total,
                ));
            }
            let mut direction = None;
            let mut comment = None;
            for (code, v) in options(d, data_at + caplen.div_ceil(4) * 4, end, be) {
                match code {
                    1 if comment.is_none() => comment = utf8(v),
                    // epb_flags and the OPB's pack_flags are both option 2.
                    2 if v.len() == 4 => {
                        direction = match u32_at(v, 0, be) & 3 {
                            1 => Some(Direction::In),
                            2 => Some(Direction::Out),
                            _ => None,
                        }
                    }
                    _ => {}
                }
            }
            Record::Packet {
                local_interface,
                ts_units: Some(ts_units),
                data: &d[data_at..data_at + caplen],
                wire_len,
                direction,
                comment,
            }
        }
        // Simple packet block: no interface id (always 0), no timestamp.
        3 => {
            if body_len < 4 {
                return Ok((Record::Skip("simple packet block too short".into()), total));
            }
            let wire_len = u32_at(d, body, be);
            // The captured length is the smaller of the original length and
            // the block's room; the interface snaplen is applied by the caller.
            let caplen = (wire_len as usize).min(body_len - 4);
            Record::Packet {
                local_interface: 0,
                ts_units: None,
                data: &d[body + 4..body + 4 + caplen],
                wire_len,
                direction: None,
                comment: None,
            }
        }
        // Custom blocks (copyable or not) and systemd journal export blocks.
        0x0000_0bad | 0x4000_0bad | 9 => Record::Numbered,
        _ => Record::Other,
    };
    Ok((record, total))
}

/// Reads the file header and walks every record once. Fails only when the
/// file is not a capture at all; damage further in is reported in
/// [`Index::damage`] and everything before it stays readable.
pub fn index(d: &[u8]) -> Result<Index, Error> {
    let mut indexer = Indexer::new(d, d.len())?;
    indexer.feed(&d[indexer.position()..]);
    Ok(indexer.finish())
}

/// Which record walk a file needs.
#[derive(Debug, Clone, Copy)]
enum Walk {
    Pcap(PcapParams),
    /// Byte order of the current section.
    PcapNg {
        big_endian: bool,
    },
}

/// Builds an [`Index`] from a capture file handed over in pieces, in file
/// order, so a caller can read the file through one small buffer instead of
/// mapping all of it. Each [`Indexer::feed`] ends a chunk, so the chunks it
/// closes lie within the bytes of that call and can be decoded from them.
#[derive(Debug)]
pub struct Indexer {
    ix: Index,
    walk: Walk,
    /// Offset of the next record.
    pos: usize,
    /// Length of the whole file.
    len: usize,
    /// Bytes from `pos` the next record needs, when the last feed ended in it.
    need: usize,
    chunker: Chunker,
    /// The walk met damage it cannot get past, or the end of the file.
    stopped: bool,
}

/// Whether `head` starts like a capture: a pcap magic (either byte order,
/// micro, nano or the "modified" format) or a pcapng section header.
pub fn is_capture(head: &[u8]) -> bool {
    let Some(m) = head.first_chunk::<4>() else {
        return false;
    };
    let le = u32::from_le_bytes(*m);
    le == PCAPNG_SHB
        || [le, le.swap_bytes()]
            .iter()
            .any(|m| matches!(*m, PCAP_US | PCAP_NS | PCAP_MODIFIED))
}

impl Indexer {
    /// Reads the file header from `head`, the file's first bytes (at least
    /// 24 of them, unless the file is shorter); `len` is the file's length.
    /// Fails only when the file is not a capture at all.
    pub fn new(head: &[u8], len: usize) -> Result<Indexer, Error> {
        let d = head;
        if d.len() < 4 {
            return Err(Error::UnknownFormat {
                magic: Hex(d.to_vec()),
            });
        }
        let magic_le = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
        let magic_be = magic_le.swap_bytes();
        let pcap = |m: u32| matches!(m, PCAP_US | PCAP_NS | PCAP_MODIFIED);
        if magic_le == PCAPNG_SHB {
            let ix = Index {
                layout: Layout::PcapNg,
                interfaces: Vec::new(),
                sections: Vec::new(),
                chunks: Vec::new(),
                frames: 0,
                end: 0,
                damage: Vec::new(),
            };
            return Ok(Indexer::start(
                ix,
                Walk::PcapNg { big_endian: false },
                0,
                len,
                0,
            ));
        }
        if !pcap(magic_le) && !pcap(magic_be) {
            return Err(Error::UnknownFormat {
                magic: Hex(d[..4].to_vec()),
            });
        }
        if d.len() < 24 {
            return Err(Error::TooShort {
                what: "pcap file",
                len: d.len(),
                need: 24,
            });
        }
        let big_endian = !pcap(magic_le);
        let magic = if big_endian { magic_be } else { magic_le };
        let major = u16_at(d, 4, big_endian);
        if major != 2 {
            return Err(Error::Damaged {
                what: "pcap file header",
                offset: 4,
                detail: format!("version {major}, only version 2 exists"),
            });
        }
        let snaplen = u32_at(d, 16, big_endian);
        let nanos = magic == PCAP_NS;
        let modified = magic == PCAP_MODIFIED;
        // The upper bits of the link-type word carry FCS information.
        let link_type = (u32_at(d, 20, big_endian) & 0xffff) as u16;
        let ix = Index {
            layout: Layout::Pcap {
                big_endian,
                nanos,
                modified,
            },
            interfaces: vec![Interface {
                link_type,
                snaplen,
                name: None,
                description: None,
                resolution: TsResolution::Pow10(if nanos { 9 } else { 6 }),
                offset_secs: 0,
            }],
            sections: vec![Section {
                big_endian,
                first_interface: 0,
                interfaces: 1,
            }],
            chunks: Vec::new(),
            frames: 0,
            end: 24,
            damage: Vec::new(),
        };
        let params = PcapParams {
            big_endian,
            nanos,
            modified,
            snaplen,
        };
        Ok(Indexer::start(ix, Walk::Pcap(params), 24, len, 1))
    }

    fn start(ix: Index, walk: Walk, pos: usize, len: usize, interfaces: u32) -> Indexer {
        Indexer {
            ix,
            walk,
            pos,
            len,
            need: 0,
            chunker: Chunker::new(pos, interfaces),
            stopped: pos >= len,
        }
    }

    /// Offset of the next byte to feed.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes from [`Indexer::position`] the next record needs: a caller
    /// whose buffer is smaller must grow it.
    pub fn need(&self) -> usize {
        self.need
    }

    /// True once the walk reached the end of the file or damage it cannot
    /// get past: feeding more does nothing.
    pub fn is_done(&self) -> bool {
        self.stopped
    }

    /// The chunks closed so far.
    pub fn chunks(&self) -> &[Chunk] {
        &self.ix.chunks
    }

    /// The index so far without its chunks and damage: what
    /// [`Index::chunk_frames`] needs to walk the chunks closed so far.
    pub fn snapshot(&self) -> Index {
        Index {
            layout: self.ix.layout,
            interfaces: self.ix.interfaces.clone(),
            sections: self.ix.sections.clone(),
            chunks: Vec::new(),
            frames: self.ix.frames,
            end: self.pos,
            damage: Vec::new(),
        }
    }

    /// Sections and interfaces met so far: a [`Indexer::snapshot`] taken
    /// when these were the same still serves.
    pub fn described(&self) -> (usize, usize) {
        (self.ix.sections.len(), self.ix.interfaces.len())
    }

    /// Walks the whole records at the start of `bytes`, which are the
    /// file's bytes from [`Indexer::position`], and closes a chunk after
    /// them. Returns the bytes consumed; a record cut by the end of `bytes`
    /// is left for the next call, unless `bytes` reach the end of the file.
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        if self.stopped {
            return 0;
        }
        let eof = self.pos + bytes.len() >= self.len;
        let mut at = 0;
        let stop = match self.walk {
            Walk::Pcap(params) => loop {
                if at >= bytes.len() {
                    break None;
                }
                match pcap_record(bytes, at, params) {
                    Ok((_, len)) => {
                        self.chunker.packet(&mut self.ix, self.pos + at);
                        at += len;
                    }
                    Err(stop) => break Some(stop),
                }
            },
            Walk::PcapNg { .. } => loop {
                if at >= bytes.len() {
                    break None;
                }
                let Walk::PcapNg { big_endian } = self.walk else {
                    unreachable!("pcapng walk")
                };
                match pcapng_block(bytes, at, big_endian) {
                    Ok((record, len)) => {
                        self.block(record, self.pos + at);
                        at += len;
                    }
                    Err(stop) => break Some(stop),
                }
            },
        };
        self.need = 0;
        match stop {
            Some(Stop::Cut { need, .. }) if !eof => self.need = need,
            Some(Stop::Cut { why, .. } | Stop::Bad(why)) => {
                let pos = self.pos + at;
                self.ix.damage.push(Damage {
                    offset: pos as u64,
                    message: format!(
                        "{why}; stopped reading there, {} bytes after it are not read; the {} packets before it are kept",
                        self.len - pos,
                        self.ix.frames
                    ),
                });
                self.stopped = true;
            }
            None => self.stopped = eof,
        }
        self.pos += at;
        self.chunker.close(&mut self.ix, self.pos);
        at
    }

    /// Follows one pcapng block at file offset `pos`.
    fn block(&mut self, record: Record, pos: usize) {
        let ix = &mut self.ix;
        match record {
            Record::Section { big_endian } => {
                self.walk = Walk::PcapNg { big_endian };
                ix.sections.push(Section {
                    big_endian,
                    first_interface: ix.interfaces.len() as u32,
                    interfaces: 0,
                });
            }
            Record::Interface(iface) => {
                if let Some(s) = ix.sections.last_mut() {
                    s.interfaces += 1;
                    ix.interfaces.push(iface);
                }
            }
            Record::Packet { local_interface, .. } => match ix.sections.last() {
                Some(s) if local_interface < s.interfaces => self.chunker.packet(ix, pos),
                _ => ix.damage.push(Damage {
                    offset: pos as u64,
                    message: format!("packet block refers to interface {local_interface}, which its section never described; packet skipped"),
                }),
            },
            Record::Skip(message) => ix.damage.push(Damage {
                offset: pos as u64,
                message: format!("{message}; block skipped"),
            }),
            Record::Numbered => self.chunker.numbered(),
            Record::Other => {}
        }
    }

    /// The index of what was fed: readable data ends at
    /// [`Indexer::position`].
    pub fn finish(mut self) -> Index {
        self.chunker.close(&mut self.ix, self.pos);
        self.ix.end = self.pos;
        self.ix
    }
}

/// Cuts the record stream into chunks during the index pass. A chunk
/// starts at a packet (or at the file start) and remembers the section in
/// effect there; section headers inside it are followed by [`Frames`].
#[derive(Debug)]
struct Chunker {
    start: usize,
    /// Frame numbers used so far (packets and numbered non-packets).
    numbers: u64,
    first_number: u64,
    packets: u64,
    section: u32,
    interfaces: u32,
}

impl Chunker {
    /// `interfaces`: defined before the first record (1 for classic pcap's
    /// implicit one, 0 for pcapng).
    fn new(start: usize, interfaces: u32) -> Self {
        Chunker {
            start,
            numbers: 0,
            first_number: 1,
            packets: 0,
            section: 0,
            interfaces,
        }
    }

    fn close(&mut self, ix: &mut Index, at: usize) {
        if self.packets > 0 {
            ix.chunks.push(Chunk {
                offset: self.start,
                end: at,
                first_frame: self.first_number,
                frames: self.packets,
                section: self.section,
                interfaces: self.interfaces,
            });
        }
        self.start = at;
        self.first_number = self.numbers + 1;
        self.packets = 0;
        self.section = ix.sections.len().saturating_sub(1) as u32;
        self.interfaces = ix.sections.last().map_or(0, |s| s.interfaces);
    }

    #[inline]
    fn packet(&mut self, ix: &mut Index, at: usize) {
        if at - self.start >= CHUNK_BYTES {
            self.close(ix, at);
        }
        ix.frames += 1;
        self.packets += 1;
        self.numbers += 1;
    }

    fn numbered(&mut self) {
        self.numbers += 1;
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
        let be = self
            .sections
            .get(chunk.section as usize)
            .is_some_and(|s| s.big_endian);
        Frames {
            index: self,
            data: &bytes[..bytes.len().min(chunk.end - chunk.offset)],
            pos: 0,
            next_frame: chunk.first_frame,
            section: chunk.section,
            big_endian: be,
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
    big_endian: bool,
    /// A section is in effect: the next section header starts a new one.
    started: bool,
    /// Interfaces of the current section described so far.
    defined: u32,
}

impl<'a> Iterator for Frames<'a> {
    type Item = Frame<'a>;

    fn next(&mut self) -> Option<Frame<'a>> {
        while self.pos < self.data.len() {
            let step = match self.index.layout {
                Layout::Pcap {
                    big_endian,
                    nanos,
                    modified,
                } => pcap_record(
                    self.data,
                    self.pos,
                    PcapParams {
                        big_endian,
                        nanos,
                        modified,
                        snaplen: self.index.interfaces[0].snaplen,
                    },
                ),
                Layout::PcapNg => pcapng_block(self.data, self.pos, self.big_endian),
            };
            // The index pass validated every record up to chunk end.
            let Ok((record, len)) = step else { return None };
            self.pos += len;
            match record {
                Record::Section { big_endian } => {
                    if self.started {
                        self.section += 1;
                        self.defined = 0;
                    }
                    self.big_endian = big_endian;
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
                Record::Other | Record::Skip(_) => self.started = true,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap(magic: u32, link: u32, records: &[(u32, u32, &[u8])]) -> Vec<u8> {
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

    fn all(d: &[u8]) -> (Index, Vec<(u64, i64, Vec<u8>)>) {
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

    #[test]
    fn pcap_micro_and_nano_timestamps() {
        for (magic, frac, want) in [
            (PCAP_US, 250_000, 1_700_000_000_250_000_000i64),
            (PCAP_NS, 250, 1_700_000_000_000_000_250),
        ] {
            let d = pcap(magic, 1, &[(1_700_000_000, frac, b"abc")]);
            let (ix, frames) = all(&d);
            assert_eq!(ix.frames, 1);
            assert_eq!(frames, vec![(1, want, b"abc".to_vec())]);
        }
    }

    #[test]
    fn pcap_cut_in_a_record_keeps_complete_packets_and_names_offset() {
        let mut d = pcap(PCAP_US, 1, &[(1, 0, b"first"), (2, 0, b"second")]);
        d.truncate(d.len() - 3);
        let (ix, frames) = all(&d);
        assert_eq!(frames.len(), 1);
        assert_eq!(ix.damage.len(), 1);
        assert_eq!(ix.damage[0].offset, 24 + 16 + 5);
        assert!(
            ix.damage[0].message.contains("middle of a record"),
            "{}",
            ix.damage[0].message
        );
    }

    #[test]
    fn not_a_capture_names_the_magic() {
        let err = index(b"GET / HTTP/1.1\r\n").unwrap_err().to_string();
        assert!(err.contains("47455420"), "{err}");
        assert!(index(&[]).unwrap_err().to_string().contains("empty"));
    }

    fn block(t: u32, body: &[u8]) -> Vec<u8> {
        let total = 12 + body.len().div_ceil(4) * 4;
        let mut v = Vec::new();
        v.extend(t.to_le_bytes());
        v.extend((total as u32).to_le_bytes());
        v.extend(body);
        v.resize(total - 4, 0);
        v.extend((total as u32).to_le_bytes());
        v
    }

    fn shb() -> Vec<u8> {
        let mut b = PCAPNG_BOM.to_le_bytes().to_vec();
        b.extend([1, 0, 0, 0]);
        b.extend((-1i64).to_le_bytes());
        block(PCAPNG_SHB, &b)
    }

    fn idb(link: u16, tsresol: Option<u8>) -> Vec<u8> {
        let mut b = link.to_le_bytes().to_vec();
        b.extend([0, 0]);
        b.extend(0u32.to_le_bytes());
        b.extend([2, 0, 4, 0]);
        b.extend(b"eth0");
        if let Some(r) = tsresol {
            b.extend([9, 0, 1, 0, r, 0, 0, 0]);
        }
        block(1, &b)
    }

    fn epb(iface: u32, ts: u64, data: &[u8], flags: Option<u32>) -> Vec<u8> {
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
        block(6, &b)
    }

    #[test]
    fn pcapng_sections_interfaces_resolutions_and_flags() {
        let mut d = shb();
        d.extend(idb(1, None));
        d.extend(idb(101, Some(9)));
        d.extend(epb(1, 5_000_000_123, b"xy", Some(2)));
        d.extend(shb());
        d.extend(idb(113, Some(0x80 | 10)));
        d.extend(epb(0, 3 * 1024, b"z", None));
        let ix = index(&d).unwrap();
        assert_eq!(
            ix.interfaces
                .iter()
                .map(|i| i.link_type)
                .collect::<Vec<_>>(),
            vec![1, 101, 113]
        );
        assert_eq!(ix.interfaces[0].name.as_deref(), Some("eth0"));
        let frames: Vec<_> = ix
            .chunks
            .iter()
            .flat_map(|c| ix.frames(&d, c).collect::<Vec<_>>())
            .collect();
        assert_eq!(frames.len(), 2);
        assert_eq!(
            (frames[0].interface, frames[0].ts_ns, frames[0].direction),
            (1, Some(5_000_000_123), Some(Direction::Out))
        );
        assert_eq!(
            (frames[1].interface, frames[1].ts_ns, frames[1].number),
            (2, Some(3_000_000_000), 2)
        );
    }

    #[test]
    fn pcapng_packet_for_unknown_interface_is_skipped_and_reported() {
        let mut d = shb();
        d.extend(idb(1, None));
        d.extend(epb(7, 0, b"bad", None));
        d.extend(epb(0, 0, b"good", None));
        let (ix, frames) = all(&d);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].0, 1);
        assert_eq!(ix.damage.len(), 1);
        assert!(ix.damage[0].message.contains("interface 7"));
    }

    #[test]
    fn custom_blocks_take_a_frame_number_like_in_wireshark() {
        let mut d = shb();
        d.extend(idb(1, None));
        d.extend(block(0x0bad, &[0; 8]));
        d.extend(epb(0, 0, b"a", None));
        d.extend(block(0x4000_0bad, &[0; 8]));
        d.extend(epb(0, 0, b"b", None));
        let (ix, frames) = all(&d);
        assert_eq!(ix.frames, 2);
        assert_eq!(frames.iter().map(|f| f.0).collect::<Vec<_>>(), vec![2, 4]);
    }

    #[test]
    fn chunks_cover_every_frame_once_with_right_numbers() {
        let payload = vec![0u8; 100_000];
        let records: Vec<(u32, u32, &[u8])> = (0..100).map(|i| (i, 0, &payload[..])).collect();
        let d = pcap(PCAP_US, 1, &records);
        let (ix, frames) = all(&d);
        assert!(ix.chunks.len() >= 4, "{} chunks", ix.chunks.len());
        assert_eq!(
            frames.iter().map(|f| f.0).collect::<Vec<_>>(),
            (1..=100).collect::<Vec<_>>()
        );
        assert_eq!(frames[99].1, 99_000_000_000);
    }

    /// Indexes `d` and decodes every frame of every chunk; must not panic.
    fn read_everything(d: &[u8]) -> u64 {
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
    fn same_as_whole(d: &[u8], whole: &Index, piece: usize) {
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

    #[test]
    fn indexing_in_pieces_keeps_sections_and_numbers() {
        let mut d = shb();
        d.extend(idb(1, None));
        d.extend(epb(0, 1, b"a", None));
        d.extend(block(0x0bad, &[0; 8]));
        d.extend(shb());
        d.extend(idb(101, None));
        d.extend(idb(113, None));
        d.extend(epb(1, 2, b"b", None));
        d.extend(epb(0, 3, b"c", None));
        let ix = index(&d).unwrap();
        assert_eq!(ix.frames, 3);
        for piece in 1..=d.len() {
            same_as_whole(&d, &ix, piece);
        }
    }

    fn sample_pcapng() -> Vec<u8> {
        let mut d = shb();
        d.extend(idb(1, Some(9)));
        d.extend(idb(101, None));
        d.extend(epb(0, 77, &[0xff; 60], Some(1)));
        d.extend(block(0x0bad, &[1, 2, 3, 4]));
        d.extend(epb(1, 78, &[0x45; 40], None));
        d
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2000)))]

        #[test]
        fn arbitrary_bytes_never_panic(d in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            read_everything(&d);
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_header_never_panic(
            ng in proptest::prelude::any::<bool>(),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        ) {
            let mut d = if ng { sample_pcapng()[..28 + 32].to_vec() } else { pcap(PCAP_NS, 1, &[]) };
            d.extend(tail);
            read_everything(&d);
        }

        #[test]
        fn a_byte_flipped_anywhere_never_panics(at in 0usize..1000, value in proptest::prelude::any::<u8>()) {
            let mut d = sample_pcapng();
            let at = at % d.len();
            d[at] = value;
            read_everything(&d);
        }
    }

    #[test]
    fn every_prefix_reads_the_complete_packets_before_the_cut() {
        for full in [
            sample_pcapng(),
            pcap(
                PCAP_US,
                113,
                &[(1, 0, &[0; 30]), (2, 0, &[1; 50]), (3, 0, &[2; 10])],
            ),
        ] {
            let all = read_everything(&full);
            let mut last = 0;
            for cut in 0..=full.len() {
                let n = read_everything(&full[..cut]);
                assert!(n >= last && n <= all, "cut {cut}: {n} packets");
                last = n;
            }
            assert_eq!(last, all);
        }
    }

    /// Real files from the corpus's pcap folder, and a stride of their
    /// prefixes.
    #[test]
    fn corpus_files_and_their_prefixes_never_panic() {
        let dir = crate::testing::corpus().join("pcap");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            assert!(
                std::env::var("CI").is_err(),
                "corpus missing at {}",
                dir.display()
            );
            eprintln!("SKIPPED: no corpus at {}", dir.display());
            return;
        };
        let mut files = 0;
        for e in entries {
            let d = std::fs::read(e.unwrap().path()).unwrap();
            files += 1;
            read_everything(&d);
            let step = (d.len() / 64).max(1);
            for cut in (0..d.len()).step_by(step) {
                read_everything(&d[..cut]);
            }
        }
        assert!(files > 200, "{files} corpus files");
    }
}
