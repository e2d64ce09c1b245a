//! The indexing pass: one walk over a capture file, whole ([`index`]) or
//! handed over piece by piece ([`Indexer`]), that learns its sections and
//! interfaces, finds where the readable data ends and why, and cuts it into
//! [`Chunk`]s at record boundaries ([`Chunker`]).

use super::{
    Chunk, Damage, Index, InterfaceStats, Layout, Record, Section, Stop, Walk, pcap, pcapng,
};
use crate::error::Error;

/// A chunk is closed after this many bytes, so that even a small capture is
/// split into enough pieces to keep every core busy.
const CHUNK_BYTES: usize = 2 * 1024 * 1024;

/// Sections and interfaces an index keeps: every one is held (and cloned
/// into each snapshot a reader takes) for the whole file, so a file of
/// 300,000 tiny sections would cost memory in proportion to its count
/// squared. Real captures have one section and a few interfaces; a
/// collection of many namespaces writes one file each.
pub const MAX_SECTIONS: usize = 1024;
/// See [`MAX_SECTIONS`].
pub const MAX_INTERFACES: usize = 4096;
/// Damage records kept; further damage is counted in the last one.
pub const MAX_DAMAGE: usize = 1000;
/// Interface statistics blocks kept: capsnap writes one per interface at
/// the end of a capture; a file of millions must not cost memory each.
pub const MAX_STATS: usize = 4 * MAX_INTERFACES;

/// Reads the file header and walks every record once. Fails only when the
/// file is not a capture at all; damage further in is reported in
/// [`Index::damage`] and everything before it stays readable.
pub fn index(d: &[u8]) -> Result<Index, Error> {
    let mut indexer = Indexer::new(d, d.len())?;
    indexer.feed(&d[indexer.position()..]);
    Ok(indexer.finish())
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

impl Indexer {
    /// Reads the file header from `head`, the file's first bytes (at least
    /// 24 of them, unless the file is shorter); `len` is the file's length.
    /// Fails only when the file is not a capture at all.
    pub fn new(head: &[u8], len: usize) -> Result<Indexer, Error> {
        if head.first_chunk::<4>().map(|m| u32::from_le_bytes(*m)) == Some(pcapng::BT_SHB) {
            let ix = Index {
                layout: Layout::PcapNg,
                interfaces: Vec::new(),
                sections: Vec::new(),
                chunks: Vec::new(),
                frames: 0,
                end: 0,
                damage: Vec::new(),
                stats: Vec::new(),
            };
            return Ok(Indexer::start(
                ix,
                Walk::PcapNg { big_endian: false },
                0,
                len,
                0,
            ));
        }
        let (ix, params) = pcap::header(head)?;
        Ok(Indexer::start(
            ix,
            Walk::Pcap(params),
            pcap::HEADER_LEN,
            len,
            1,
        ))
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
            stats: Vec::new(),
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
        let stop = loop {
            if at >= bytes.len() {
                break None;
            }
            // A section header changes the walk: read it afresh each time.
            match self.walk.step(bytes, at) {
                Ok((Record::Section { .. }, _)) if self.ix.sections.len() >= MAX_SECTIONS => {
                    break Some(Stop::Bad(format!(
                        "section header {} (capsnap reads at most {MAX_SECTIONS} sections a file)",
                        MAX_SECTIONS + 1
                    )));
                }
                Ok((Record::Interface(_), _)) if self.ix.interfaces.len() >= MAX_INTERFACES => {
                    break Some(Stop::Bad(format!(
                        "interface description {} (capsnap reads at most {MAX_INTERFACES} interfaces a file)",
                        MAX_INTERFACES + 1
                    )));
                }
                Ok((record, len)) => {
                    self.follow(record, self.pos + at);
                    at += len;
                }
                Err(stop) => break Some(stop),
            }
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

    /// Follows one record at file offset `pos`. A classic pcap has one
    /// section with one interface and only packet records.
    fn follow(&mut self, record: Record, pos: usize) {
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
            Record::Packet {
                local_interface, ..
            } => match ix.sections.last() {
                Some(s) if local_interface < s.interfaces => self.chunker.packet(ix, pos),
                _ => damage(ix, pos, || {
                    format!(
                        "packet block refers to interface {local_interface}, which its section never described; packet skipped"
                    )
                }),
            },
            Record::Skip(message) => damage(ix, pos, || format!("{message}; block skipped")),
            Record::Stats(_) if ix.stats.len() >= MAX_STATS => damage(ix, pos, || {
                format!(
                    "statistics block {} (capsnap keeps at most {MAX_STATS} a file); block skipped",
                    MAX_STATS + 1
                )
            }),
            Record::Stats(raw) => match ix.sections.last() {
                Some(s) if raw.interface < s.interfaces => {
                    let interface = s.first_interface + raw.interface;
                    let ns = |units| ix.ts_ns(interface, units);
                    let stats = InterfaceStats {
                        interface,
                        ts_ns: ns(raw.ts_units),
                        start_ns: raw.start_units.map(ns),
                        end_ns: raw.end_units.map(ns),
                        if_received: raw.if_received,
                        if_dropped: raw.if_dropped,
                        filter_accepted: raw.filter_accepted,
                        os_dropped: raw.os_dropped,
                        delivered: raw.delivered,
                        comment: raw.comment,
                    };
                    ix.stats.push(stats);
                }
                _ => damage(ix, pos, || {
                    format!(
                        "statistics block refers to interface {}, which its section never described; block skipped",
                        raw.interface
                    )
                }),
            },
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

/// Records damage at `pos`, up to [`MAX_DAMAGE`] entries; the last one
/// says that further damage is not listed (a file of millions of bad
/// blocks must not cost a message each).
fn damage(ix: &mut Index, pos: usize, message: impl FnOnce() -> String) {
    let n = ix.damage.len();
    if n + 1 < MAX_DAMAGE {
        ix.damage.push(Damage {
            offset: pos as u64,
            message: message(),
        });
    } else if n + 1 == MAX_DAMAGE {
        ix.damage.push(Damage {
            offset: pos as u64,
            message: format!(
                "{}; damaged records after this one are skipped without being listed",
                message()
            ),
        });
    }
}

/// Cuts the record stream into chunks during the index pass. A chunk
/// starts at a packet (or at the file start) and remembers the section in
/// effect there; section headers inside it are followed by
/// [`Frames`](super::Frames).
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::{
        all, block, pcap, read_everything, same_as_whole, sample_pcapng, section,
    };
    use super::super::pcap::{MAGIC_NS, MAGIC_US};
    use super::*;
    use crate::link;

    #[test]
    fn not_a_capture_names_the_magic() {
        let err = index(b"GET / HTTP/1.1\r\n").unwrap_err().to_string();
        assert!(err.contains("47455420"), "{err}");
        assert!(index(&[]).unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn chunks_cover_every_frame_once_with_right_numbers() {
        let payload = vec![0u8; 100_000];
        let records: Vec<(u32, u32, &[u8])> = (0..100).map(|i| (i, 0, &payload[..])).collect();
        let d = pcap(MAGIC_US, 1, &records);
        let (ix, frames) = all(&d);
        assert!(ix.chunks.len() >= 4, "{} chunks", ix.chunks.len());
        assert_eq!(
            frames.iter().map(|f| f.0).collect::<Vec<_>>(),
            (1..=100).collect::<Vec<_>>()
        );
        assert_eq!(frames[99].1, 99_000_000_000);
    }

    #[test]
    fn indexing_in_pieces_keeps_sections_and_numbers() {
        // Two sections: a custom block ends the first, the second describes
        // two interfaces before its packets use them.
        let mut d = section(&[link::ETHERNET], &[(0, 1, b"a")]);
        d.extend(block(0x0bad, &[0; 8]));
        d.extend(section(
            &[link::RAW, link::LINUX_SLL],
            &[(1, 2, b"b"), (0, 3, b"c")],
        ));
        let ix = index(&d).unwrap();
        assert_eq!(ix.frames, 3);
        assert_eq!(ix.sections_len(), 2);
        for piece in 1..=d.len() {
            same_as_whole(&d, &ix, piece);
        }
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
            let mut d = if ng { sample_pcapng()[..28 + 32].to_vec() } else { pcap(MAGIC_NS, 1, &[]) };
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
                MAGIC_US,
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

/// Inputs the fuzzer (fuzz/fuzz_targets/indexer.rs) found, kept as
/// regression tests named after what they exercise.
#[cfg(test)]
mod fuzzed {
    use super::super::fixtures::same_as_whole;
    use super::*;

    /// An SHB whose section length is -1 followed by an IDB that ends the
    /// file exactly, fed 11 bytes at a time: the first fuzzer crash, which
    /// was the harness's (it took a feed that consumes nothing while the
    /// block's length is learned for a stall); the indexer keeps to its
    /// contract here.
    #[test]
    fn indexer_fed_in_pieces_progresses_over_a_block_ending_the_file() {
        let d: &[u8] = &[
            0xa, 0xd, 0xd, 0xa, 0x1c, 0x0, 0x0, 0x0, 0x4d, 0x3c, 0x2b, 0x1a, 0x1, 0x0, 0x0, 0x0,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1c, 0x0, 0x0, 0x0, 0x1, 0x0, 0x0,
            0x0, 0x14, 0x0, 0x0, 0x0, 0x1, 0x0, 0x0, 0x0, 0x0, 0x0, 0x4, 0x0, 0x14, 0x0, 0x0, 0x0,
        ];
        let whole = index(d).unwrap();
        for piece in [1, 7, 11, 64] {
            same_as_whole(d, &whole, piece);
        }
    }
}
