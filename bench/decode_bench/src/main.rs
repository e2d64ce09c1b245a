//! Times the capture read path of `capsnap query` without DataFusion, with
//! our record walker and decoder or with pcap-parser's and etherparse's in
//! their place, and checks that every variant reads the same frames and
//! the same header fields (issue 8).
//!
//! The file is read as `analyze/src/source.rs` reads it: positional reads
//! into 1 MiB buffers under one lock, the walk fed each piece as it is
//! read (closing the chunks in it), and those chunks walked again and
//! decoded from the same buffer, outside the lock, while the other
//! threads read the next pieces. Every frame is decoded and counted as a
//! query over `packets` and `flows` would: RSTs, TCP options, and a
//! [`FlowTable`] per thread, merged at the end.
//!
//! ```sh
//! cargo run --release --manifest-path bench/decode_bench/Cargo.toml -- FILE [--walker ours|pcap-parser] [--decoder ours|etherparse|none] [--threads N]
//! cargo run --release --manifest-path bench/decode_bench/Cargo.toml -- --check FILE_OR_DIR...
//! ```
//!
//! `--check` reads each file single-threaded with all variants and lists
//! every frame the walkers disagree on and every field the decoders
//! disagree on, with a count per file and field and the first frame.
//! `--dump-options FILE` prints our decoder's TCP options of every TCP
//! frame (frame, MSS, window scale, SACK-permitted, TSval, TSecr; `-` for
//! none), the columns `tshark -T fields` prints for `tcp.options.mss_val`,
//! `tcp.options.wscale.shift`, `tcp.options.sack_perm`,
//! `tcp.options.timestamp.tsval` and `.tsecr`, to compare with it.
//! `--to-pcapng IN OUT` rewrites a capture as pcapng the way `capsnap
//! collect` writes it: one section, one Ethernet interface, an enhanced
//! packet block with `epb_flags` for every packet.

mod check;
mod ep;
mod pp;

use capsnap_formats::{Chunk, FlowTable, Frame, Headers, Index, Indexer, tcp_flag};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Bytes read at a time, as in analyze/src/source.rs.
const READ_BYTES: usize = 1024 * 1024;

/// Which record walker finds the records: for the index pass and again
/// for the frames of each chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WalkerKind {
    Ours,
    PcapParser,
}

/// Which decoder reads the headers of each frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecoderKind {
    Ours,
    Etherparse,
    /// No decoding: frames are walked and counted, to time the walker.
    None,
}

/// A record walker as the reader drives it: fed pieces in file order,
/// closing chunks at record boundaries, then walking any closed chunk on
/// its own.
trait Walk: Send {
    type Chunk: Clone + Send;
    /// What walking a chunk needs to know (sections, interfaces).
    type Desc: Send + Sync;

    fn position(&self) -> usize;
    fn need(&self) -> usize;
    fn is_done(&self) -> bool;
    /// Walks the whole records at the start of `bytes` (the file from
    /// [`Walk::position`]); returns the bytes consumed.
    fn feed(&mut self, bytes: &[u8]) -> usize;
    /// Chunks closed since the last call.
    fn take_chunks(&mut self) -> Vec<Self::Chunk>;
    /// The description in force at the end of the chunks closed so far.
    fn describe(&mut self) -> Arc<Self::Desc>;
    fn span(chunk: &Self::Chunk) -> (usize, usize);
    fn link_type(desc: &Self::Desc, interface: u32) -> u16;
    /// Calls `f` with every frame of `chunk`, whose bytes are `bytes`.
    fn frames<'a, F: FnMut(&Frame<'a>)>(
        desc: &'a Self::Desc,
        bytes: &'a [u8],
        chunk: &Self::Chunk,
        f: F,
    );
}

/// Our walker: [`Indexer`] and [`Index::chunk_frames`].
struct Ours {
    ix: Indexer,
    taken: usize,
    desc: Arc<Index>,
}

impl Ours {
    fn new(head: &[u8], len: usize) -> Result<Ours, String> {
        let ix = Indexer::new(head, len).map_err(|e| e.to_string())?;
        let desc = Arc::new(ix.snapshot());
        Ok(Ours { ix, taken: 0, desc })
    }
}

impl Walk for Ours {
    type Chunk = Chunk;
    type Desc = Index;

    fn position(&self) -> usize {
        self.ix.position()
    }
    fn need(&self) -> usize {
        self.ix.need()
    }
    fn is_done(&self) -> bool {
        self.ix.is_done()
    }
    fn feed(&mut self, bytes: &[u8]) -> usize {
        self.ix.feed(bytes)
    }
    fn take_chunks(&mut self) -> Vec<Chunk> {
        let new = self.ix.chunks()[self.taken..].to_vec();
        self.taken += new.len();
        new
    }
    fn describe(&mut self) -> Arc<Index> {
        if self.ix.described() != (self.desc.sections_len(), self.desc.interfaces.len()) {
            self.desc = Arc::new(self.ix.snapshot());
        }
        self.desc.clone()
    }
    fn span(chunk: &Chunk) -> (usize, usize) {
        (chunk.offset, chunk.end)
    }
    fn link_type(desc: &Index, interface: u32) -> u16 {
        desc.interfaces[interface as usize].link_type
    }
    fn frames<'a, F: FnMut(&Frame<'a>)>(desc: &'a Index, bytes: &'a [u8], chunk: &Chunk, mut f: F) {
        for frame in desc.chunk_frames(bytes, chunk) {
            f(&frame);
        }
    }
}

/// What one thread counted.
#[derive(Default)]
struct Totals {
    frames: u64,
    bytes: u64,
    tcp: u64,
    rst: u64,
    mss: u64,
    wscale: u64,
    sack_permitted: u64,
    sack: u64,
    timestamps: u64,
    flows: FlowTable,
}

impl Totals {
    fn add(&mut self, frame: &Frame, h: &Headers) {
        self.frames += 1;
        self.bytes += u64::from(frame.wire_len);
        if let Some(t) = h.tcp {
            self.tcp += 1;
            self.rst += u64::from(t.flags & tcp_flag::RST != 0);
            let o = t.options;
            self.mss += u64::from(o.mss.is_some());
            self.wscale += u64::from(o.wscale.is_some());
            self.sack_permitted += u64::from(o.sack_permitted);
            self.sack += u64::from(o.sack_blocks > 0);
            self.timestamps += u64::from(o.timestamps.is_some());
        }
        self.flows.add(frame, h);
    }

    fn merge(&mut self, o: Totals) {
        self.frames += o.frames;
        self.bytes += o.bytes;
        self.tcp += o.tcp;
        self.rst += o.rst;
        self.mss += o.mss;
        self.wscale += o.wscale;
        self.sack_permitted += o.sack_permitted;
        self.sack += o.sack;
        self.timestamps += o.timestamps;
        self.flows.merge(o.flows);
    }
}

/// Decodes `data` (captured on `link`) into `h` with the chosen decoder.
#[inline]
fn decode(decoder: DecoderKind, link: u16, data: &[u8], h: &mut Headers) {
    match decoder {
        DecoderKind::Ours => capsnap_formats::decode(link, data, h),
        DecoderKind::Etherparse => ep::decode(link, data, h),
        DecoderKind::None => {}
    }
}

/// The walk shared by the reading threads, as `source::Walk`.
struct Shared<W> {
    walker: W,
    /// The start of the record the last piece ended in.
    leftover: Vec<u8>,
}

/// Reads `file` (`len` bytes) with `threads` threads, walking with
/// `walker` and decoding with `decoder`.
fn scan<W: Walk>(
    file: &File,
    len: usize,
    walker: W,
    decoder: DecoderKind,
    threads: usize,
) -> Totals {
    let shared = Mutex::new(Shared {
        walker,
        leftover: Vec::new(),
    });
    let parts: Vec<Totals> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut totals = Totals::default();
                    let mut buf = Vec::new();
                    let mut h = Headers::default();
                    loop {
                        // Read the next piece and walk it, under the lock.
                        let (chunks, desc, base) = {
                            let mut g = shared.lock().expect("no thread panics");
                            let Shared { walker, leftover } = &mut *g;
                            if walker.is_done() {
                                break;
                            }
                            let base = walker.position();
                            let kept = leftover.len();
                            let want = READ_BYTES.max(walker.need()).min(len - base).max(kept);
                            buf.clear();
                            buf.extend_from_slice(leftover);
                            buf.resize(want, 0);
                            file.read_exact_at(&mut buf[kept..], (base + kept) as u64)
                                .expect("file is readable");
                            let used = walker.feed(&buf);
                            leftover.clear();
                            leftover.extend_from_slice(&buf[used..]);
                            (walker.take_chunks(), walker.describe(), base)
                        };
                        // Walk its chunks again and decode them, outside it.
                        for chunk in &chunks {
                            let (start, end) = W::span(chunk);
                            let bytes = &buf[start - base..end - base];
                            W::frames(&desc, bytes, chunk, |frame| {
                                let link = W::link_type(&desc, frame.interface);
                                decode(decoder, link, frame.data, &mut h);
                                totals.add(frame, &h);
                            });
                        }
                    }
                    totals
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("no thread panics"))
            .collect()
    });
    let mut all = Totals::default();
    for t in parts {
        all.merge(t);
    }
    all
}

fn usage() -> ! {
    eprintln!(
        "usage: decode_bench FILE [--walker ours|pcap-parser] [--decoder ours|etherparse|none] [--threads N]\n       decode_bench --check FILE_OR_DIR...\n       decode_bench --dump-options FILE\n       decode_bench --to-pcapng IN OUT"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--check") => std::process::exit(check::run(&args[1..])),
        Some("--dump-options") => std::process::exit(check::dump_options(&args[1..])),
        Some("--to-pcapng") => std::process::exit(check::to_pcapng(&args[1..])),
        _ => {}
    }
    let mut file = None;
    let mut walker = WalkerKind::Ours;
    let mut decoder = DecoderKind::Ours;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--walker" => {
                walker = match it.next().map(String::as_str) {
                    Some("ours") => WalkerKind::Ours,
                    Some("pcap-parser") => WalkerKind::PcapParser,
                    _ => usage(),
                }
            }
            "--decoder" => {
                decoder = match it.next().map(String::as_str) {
                    Some("ours") => DecoderKind::Ours,
                    Some("etherparse") => DecoderKind::Etherparse,
                    Some("none") => DecoderKind::None,
                    _ => usage(),
                }
            }
            "--threads" => {
                threads = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            f if !f.starts_with('-') && file.is_none() => file = Some(f.to_owned()),
            _ => usage(),
        }
    }
    let path = file.unwrap_or_else(|| usage());
    let f = File::open(&path).unwrap_or_else(|e| {
        eprintln!("decode_bench: {path}: {e}");
        std::process::exit(2)
    });
    let len = f.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let mut head = vec![0; len.min(24)];
    f.read_exact_at(&mut head, 0).expect("file is readable");
    let start = Instant::now();
    let totals = match walker {
        WalkerKind::Ours => Ours::new(&head, len).map(|w| scan(&f, len, w, decoder, threads)),
        WalkerKind::PcapParser => {
            pp::Pp::new(&head, len).map(|w| scan(&f, len, w, decoder, threads))
        }
    }
    .unwrap_or_else(|e| {
        eprintln!("decode_bench: {path}: {e}");
        std::process::exit(2)
    });
    let secs = start.elapsed().as_secs_f64();
    println!(
        "frames {} wire_bytes {} tcp {} rst {} flows {} mss {} wscale {} sack_permitted {} sack {} timestamps {}",
        totals.frames,
        totals.bytes,
        totals.tcp,
        totals.rst,
        totals.flows.len(),
        totals.mss,
        totals.wscale,
        totals.sack_permitted,
        totals.sack,
        totals.timestamps
    );
    eprintln!(
        "walker {walker:?}, decoder {decoder:?}, {threads} threads: {secs:.3} s, {:.0} MB/s",
        len as f64 / secs / 1e6
    );
}
