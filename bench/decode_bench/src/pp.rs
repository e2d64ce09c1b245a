//! The record walk done with pcap-parser's parsers (`parse_pcap_frame*`,
//! `parse_block_le`/`parse_block_be`) over our buffers, with our chunking,
//! frame numbering and timestamp rules around them. Where pcap-parser has
//! no bound on a record length, ours is applied first (a damaged length
//! must not make the reader read the rest of the file into memory).

use crate::Walk;
use capsnap_formats::{Direction, Frame};
use pcap_parser::nom;
use pcap_parser::pcapng::Block;
use pcap_parser::{PcapError, PcapHeader};
use std::sync::Arc;

/// Our bounds (formats/src/capfile.rs).
const MAX_PCAP_RECORD: usize = 262_144;
const MAX_BLOCK: usize = 16 * 1024 * 1024;
const CHUNK_BYTES: usize = 2 * 1024 * 1024;

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Pcap {
        big_endian: bool,
        nanos: bool,
        modified: bool,
        snaplen: u32,
    },
    PcapNg,
}

#[derive(Debug, Clone, Copy)]
pub struct Iface {
    link_type: u16,
    snaplen: u32,
    /// `if_tsresol` as written (bit 7: power of 2).
    tsresol: u8,
    tsoffset: i64,
}

/// Sections and interfaces (the description a chunk walk needs).
#[derive(Debug, Clone)]
pub struct Desc {
    kind: Kind,
    /// First interface of each section.
    sections: Vec<u32>,
    ifaces: Vec<Iface>,
}

/// Where the walk stands at a record boundary.
#[derive(Debug, Clone, Copy, Default)]
struct State {
    /// Sections begun so far (the current one is `sections - 1`).
    sections: u32,
    /// Interfaces the current section has described.
    defined: u32,
    big_endian: bool,
}

#[derive(Debug, Clone)]
pub struct PpChunk {
    offset: usize,
    end: usize,
    first_frame: u64,
    state: State,
}

/// What one record turned out to be.
enum Rec<'a> {
    Packet {
        local: u32,
        ts_units: Option<u64>,
        data: &'a [u8],
        wire_len: u32,
        direction: Option<Direction>,
        comment: Option<&'a str>,
    },
    Section {
        big_endian: bool,
    },
    Interface(Iface),
    Numbered,
    Other,
}

enum Stop {
    Cut(usize),
    Bad(String),
}

/// The record at the start of `d`: `(record, length)`.
fn record<'a>(kind: Kind, d: &'a [u8], state: &State) -> Result<(Rec<'a>, usize), Stop> {
    let incomplete = |n: nom::Needed| match n {
        nom::Needed::Size(n) => d.len() + n.get(),
        nom::Needed::Unknown => d.len() + 1,
    };
    match kind {
        Kind::Pcap {
            big_endian,
            nanos,
            modified,
            snaplen,
        } => {
            let header = if modified { 24 } else { 16 };
            let parsed = match (modified, big_endian) {
                (false, false) => pcap_parser::parse_pcap_frame(d),
                (false, true) => pcap_parser::parse_pcap_frame_be(d),
                (true, false) => pcap_parser::parse_pcap_frame_modified(d),
                (true, true) => {
                    return Err(Stop::Bad(
                        "pcap-parser reads the modified format little-endian only".into(),
                    ));
                }
            };
            let max = MAX_PCAP_RECORD.max(snaplen as usize);
            match parsed {
                Ok((rest, b)) => {
                    if b.caplen as usize > max {
                        return Err(Stop::Bad(format!("record of {} bytes", b.caplen)));
                    }
                    let scale = if nanos { 1_000_000_000 } else { 1_000_000 };
                    Ok((
                        Rec::Packet {
                            local: 0,
                            ts_units: Some(u64::from(b.ts_sec) * scale + u64::from(b.ts_usec)),
                            data: b.data,
                            wire_len: b.origlen,
                            // LegacyPcapBlock has no pkt_type.
                            direction: None,
                            comment: None,
                        },
                        d.len() - rest.len(),
                    ))
                }
                Err(nom::Err::Incomplete(n)) => {
                    let need = incomplete(n);
                    if need > header + max {
                        Err(Stop::Bad(format!("record of {} bytes", need - header)))
                    } else {
                        Err(Stop::Cut(need))
                    }
                }
                Err(e) => Err(Stop::Bad(format!("{e:?}"))),
            }
        }
        Kind::PcapNg => {
            let parsed = if state.big_endian {
                pcap_parser::parse_block_be(d)
            } else {
                pcap_parser::parse_block_le(d)
            };
            let (rest, block) = match parsed {
                Ok(ok) => ok,
                Err(nom::Err::Incomplete(n)) => {
                    let need = incomplete(n);
                    return Err(if need > MAX_BLOCK {
                        Stop::Bad(format!("block of {need} bytes"))
                    } else {
                        Stop::Cut(need)
                    });
                }
                Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
                    return Err(Stop::Bad(describe_error(&e)));
                }
            };
            let len = d.len() - rest.len();
            let rec = match block {
                Block::SectionHeader(shb) => Rec::Section {
                    big_endian: shb.big_endian(),
                },
                Block::InterfaceDescription(idb) => Rec::Interface(Iface {
                    link_type: idb.linktype.0 as u16,
                    snaplen: idb.snaplen,
                    tsresol: idb.if_tsresol,
                    tsoffset: idb.if_tsoffset,
                }),
                Block::EnhancedPacket(epb) => {
                    let mut direction = None;
                    let mut comment = None;
                    for o in &epb.options {
                        match o.code.0 {
                            1 if comment.is_none() => {
                                if let std::borrow::Cow::Borrowed(v) = o.value {
                                    let v = &v[..usize::from(o.len).min(v.len())];
                                    let v = v.strip_suffix(&[0]).unwrap_or(v);
                                    comment = std::str::from_utf8(v).ok();
                                }
                            }
                            2 if o.len == 4 => {
                                let v = o.value();
                                let b = [v[0], v[1], v[2], v[3]];
                                let flags = if state.big_endian {
                                    u32::from_be_bytes(b)
                                } else {
                                    u32::from_le_bytes(b)
                                };
                                direction = match flags & 3 {
                                    1 => Some(Direction::In),
                                    2 => Some(Direction::Out),
                                    _ => None,
                                };
                            }
                            _ => {}
                        }
                    }
                    let caplen = (epb.caplen as usize).min(epb.data.len());
                    Rec::Packet {
                        local: epb.if_id,
                        ts_units: Some((u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low)),
                        data: &epb.data[..caplen],
                        wire_len: epb.origlen,
                        direction,
                        comment,
                    }
                }
                Block::SimplePacket(spb) => Rec::Packet {
                    local: 0,
                    ts_units: None,
                    data: &spb.data[..(spb.origlen as usize).min(spb.data.len())],
                    wire_len: spb.origlen,
                    direction: None,
                    comment: None,
                },
                Block::Custom(_) | Block::SystemdJournalExport(_) => Rec::Numbered,
                _ => Rec::Other,
            };
            Ok((rec, len))
        }
    }
}

fn describe_error(e: &PcapError<&[u8]>) -> String {
    match e {
        PcapError::NomError(_, kind) => format!("pcap-parser: {kind:?}"),
        other => format!("pcap-parser: {other:?}"),
    }
}

/// The walk, as [`capsnap_formats::Indexer`] does it, over pcap-parser's parsers.
pub struct Pp {
    desc: Desc,
    shared: Arc<Desc>,
    pos: usize,
    len: usize,
    need: usize,
    done: bool,
    state: State,
    /// Frame numbers used so far.
    numbers: u64,
    pub frames: u64,
    start: usize,
    start_state: State,
    first_number: u64,
    packets: u64,
    chunks: Vec<PpChunk>,
    pub damage: Vec<(usize, String)>,
}

impl Pp {
    pub fn new(head: &[u8], len: usize) -> Result<Pp, String> {
        let ng = head.starts_with(&0x0a0d_0d0au32.to_le_bytes());
        let (kind, pos, desc) = if ng {
            let kind = Kind::PcapNg;
            let desc = Desc {
                kind,
                sections: Vec::new(),
                ifaces: Vec::new(),
            };
            (kind, 0, desc)
        } else {
            let (_, h): (_, PcapHeader) =
                pcap_parser::parse_pcap_header(head).map_err(|e| format!("{e:?}"))?;
            let kind = Kind::Pcap {
                big_endian: h.is_bigendian(),
                nanos: h.is_nanosecond_precision(),
                modified: h.is_modified_format(),
                snaplen: h.snaplen,
            };
            let iface = Iface {
                link_type: (h.network.0 & 0xffff) as u16,
                snaplen: h.snaplen,
                tsresol: if h.is_nanosecond_precision() { 9 } else { 6 },
                tsoffset: 0,
            };
            let desc = Desc {
                kind,
                sections: vec![0],
                ifaces: vec![iface],
            };
            (kind, 24, desc)
        };
        let state = match kind {
            Kind::Pcap { .. } => State {
                sections: 1,
                defined: 1,
                big_endian: false,
            },
            Kind::PcapNg => State::default(),
        };
        Ok(Pp {
            shared: Arc::new(desc.clone()),
            desc,
            pos,
            len,
            need: 0,
            done: pos >= len,
            state,
            numbers: 0,
            frames: 0,
            start: pos,
            start_state: state,
            first_number: 1,
            packets: 0,
            chunks: Vec::new(),
            damage: Vec::new(),
        })
    }

    fn close(&mut self, at: usize) {
        if self.packets > 0 {
            self.chunks.push(PpChunk {
                offset: self.start,
                end: at,
                first_frame: self.first_number,
                state: self.start_state,
            });
        }
        self.start = at;
        self.start_state = self.state;
        self.first_number = self.numbers + 1;
        self.packets = 0;
    }
}

impl Walk for Pp {
    type Chunk = PpChunk;
    type Desc = Desc;

    fn position(&self) -> usize {
        self.pos
    }
    fn need(&self) -> usize {
        self.need
    }
    fn is_done(&self) -> bool {
        self.done
    }

    fn feed(&mut self, bytes: &[u8]) -> usize {
        if self.done {
            return 0;
        }
        let eof = self.pos + bytes.len() >= self.len;
        let mut at = 0;
        let mut stop = None;
        while at < bytes.len() {
            match record(self.desc.kind, &bytes[at..], &self.state) {
                Ok((rec, n)) => {
                    let here = self.pos + at;
                    match rec {
                        Rec::Packet { local, .. } => {
                            if local < self.state.defined {
                                if here - self.start >= CHUNK_BYTES {
                                    self.close(here);
                                }
                                self.frames += 1;
                                self.packets += 1;
                                self.numbers += 1;
                            } else {
                                self.damage
                                    .push((here, format!("unknown interface {local}")));
                            }
                        }
                        Rec::Section { big_endian } => {
                            self.desc.sections.push(self.desc.ifaces.len() as u32);
                            self.state = State {
                                sections: self.state.sections + 1,
                                defined: 0,
                                big_endian,
                            };
                        }
                        Rec::Interface(i) => {
                            if self.state.sections > 0 {
                                self.desc.ifaces.push(i);
                                self.state.defined += 1;
                            }
                        }
                        Rec::Numbered => self.numbers += 1,
                        Rec::Other => {}
                    }
                    at += n;
                }
                Err(s) => {
                    stop = Some(s);
                    break;
                }
            }
        }
        self.need = 0;
        match stop {
            Some(Stop::Cut(need)) if !eof => self.need = need,
            Some(Stop::Cut(_)) => {
                self.damage
                    .push((self.pos + at, "file cut in a record".into()));
                self.done = true;
            }
            Some(Stop::Bad(why)) => {
                self.damage.push((self.pos + at, why));
                self.done = true;
            }
            None => self.done = eof,
        }
        self.pos += at;
        self.close(self.pos);
        at
    }

    fn take_chunks(&mut self) -> Vec<PpChunk> {
        std::mem::take(&mut self.chunks)
    }

    fn describe(&mut self) -> Arc<Desc> {
        if self.shared.sections.len() != self.desc.sections.len()
            || self.shared.ifaces.len() != self.desc.ifaces.len()
        {
            self.shared = Arc::new(self.desc.clone());
        }
        self.shared.clone()
    }

    fn span(chunk: &PpChunk) -> (usize, usize) {
        (chunk.offset, chunk.end)
    }

    fn link_type(desc: &Desc, interface: u32) -> u16 {
        desc.ifaces[interface as usize].link_type
    }

    fn frames<'a, F: FnMut(&Frame<'a>)>(
        desc: &'a Desc,
        bytes: &'a [u8],
        chunk: &PpChunk,
        mut f: F,
    ) {
        let mut state = chunk.state;
        let mut next = chunk.first_frame;
        let mut at = 0;
        while at < bytes.len() {
            let Ok((rec, n)) = record(desc.kind, &bytes[at..], &state) else {
                return;
            };
            at += n;
            match rec {
                Rec::Section { big_endian } => {
                    state = State {
                        sections: state.sections + 1,
                        defined: 0,
                        big_endian,
                    }
                }
                Rec::Interface(_) => state.defined += 1,
                Rec::Numbered => next += 1,
                Rec::Other => {}
                Rec::Packet {
                    local,
                    ts_units,
                    data,
                    wire_len,
                    direction,
                    comment,
                } => {
                    if local >= state.defined || state.sections == 0 {
                        continue;
                    }
                    let interface = desc.sections[state.sections as usize - 1] + local;
                    let iface = &desc.ifaces[interface as usize];
                    let (data, ts_ns) = match ts_units {
                        Some(u) => (data, Some(ts_ns(iface, u))),
                        None if iface.snaplen != 0 => {
                            (&data[..data.len().min(iface.snaplen as usize)], None)
                        }
                        None => (data, None),
                    };
                    f(&Frame {
                        number: next,
                        ts_ns,
                        interface,
                        data,
                        wire_len,
                        direction,
                        comment,
                    });
                    next += 1;
                }
            }
        }
    }
}

/// Nanoseconds since the epoch, as `Index::ts_ns` computes them.
fn ts_ns(iface: &Iface, units: u64) -> i64 {
    let n = iface.tsresol & 0x7f;
    let ns: i128 = if iface.tsresol & 0x80 == 0 {
        if n <= 9 {
            i128::from(units) * 10i128.pow(u32::from(9 - n))
        } else {
            i128::from(units) / 10i128.checked_pow(u32::from(n - 9)).unwrap_or(i128::MAX)
        }
    } else if n < 64 {
        (i128::from(units) * 1_000_000_000) >> n
    } else {
        0
    };
    let ns = ns + i128::from(iface.tsoffset) * 1_000_000_000;
    ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}
