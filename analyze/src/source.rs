//! Opening inputs: `[LABEL=]PATH` arguments and the capture files behind them.

use crate::error::Error;
use formats::{CaptureMeta, Chunk, Index, Indexer, InterfaceMeta};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

/// One input argument: a path and the capture-point label its rows get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    pub label: String,
    pub path: PathBuf,
}

impl InputSpec {
    /// Parses `LABEL=PATH` or `PATH`. Without a label, the file name without
    /// its capture extension is used (`node.pcap` -> `node`). A `=` is read
    /// as a label separator only when the text before it is not a path that
    /// exists, so files with `=` in their name still open.
    pub fn parse(arg: &str) -> InputSpec {
        if let Some((label, path)) = arg.split_once('=')
            && !label.is_empty()
            && !Path::new(arg).exists()
        {
            return InputSpec {
                label: label.to_owned(),
                path: PathBuf::from(path),
            };
        }
        let path = PathBuf::from(arg);
        InputSpec {
            label: default_label(&path),
            path,
        }
    }

    /// True when the argument names an input (an existing path, or a label
    /// followed by one) rather than SQL text.
    pub fn looks_like_input(arg: &str) -> bool {
        let spec = InputSpec::parse(arg);
        spec.path.exists()
    }
}

fn default_label(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    for ext in [".pcapng.gz", ".pcap.gz", ".pcapng", ".pcap", ".cap"] {
        if let Some(stem) = name.strip_suffix(ext)
            && !stem.is_empty()
        {
            return stem.to_owned();
        }
    }
    name
}

/// A capture file, indexed as it is first read.
///
/// The bytes are read with positional reads into buffers the size of a
/// chunk, not mapped: a mapping costs a page fault and a cache miss for
/// every few packets (and its pages must be released again to keep memory
/// bounded), where a read copies the bytes sequentially into a buffer that
/// stays in the CPU cache.
///
/// The index pass is not a pass of its own: whichever scan first needs a
/// chunk not yet found reads the next piece of the file, walks its records
/// (which fixes the frame numbers of the chunk it closes) and decodes that
/// chunk from the same buffer while another scan reads the piece after it.
/// So the file is read once, and its walk overlaps the decoding. Chunks
/// found earlier are read again from the file. [`CaptureSource::index`]
/// finishes the walk for those who need all of it.
pub struct CaptureSource {
    pub path: PathBuf,
    label: String,
    /// The `bundle` and `host` of its rows: the file's path and none, or
    /// the bundle it was found in ([`CaptureSource::in_bundle`]).
    bundle: String,
    host: Option<String>,
    len: usize,
    file: File,
    /// The index pass, advanced by whoever holds it.
    walk: Mutex<Walk>,
    /// Chunks found so far, each with the file's description at its end.
    found: Mutex<Found>,
    /// The whole index, once the walk is done.
    done: OnceLock<Index>,
    /// The tables aggregated over the whole file (`flows`, `dns`), built
    /// in one pass by the first scan that needs any of them and kept for
    /// every later query and detection of the run.
    aggregates: Mutex<Option<Arc<crate::scan::Aggregates>>>,
}

/// What the file's records have described up to some point: enough to
/// decode and label the chunks that end there.
#[derive(Debug)]
pub struct Described {
    /// Sections and interfaces (no chunks, no damage).
    pub index: Index,
    /// Labels for every row, shared by all the batch builders.
    pub meta: Arc<CaptureMeta>,
}

struct Walk {
    /// `None` once the walk is done.
    indexer: Option<Indexer>,
    /// The start of the record the last piece ended in.
    leftover: Vec<u8>,
    described: Arc<Described>,
}

#[derive(Default)]
struct Found {
    chunks: Vec<(Chunk, Arc<Described>)>,
    done: bool,
}

/// Chunks to decode and the buffer they are in: the chunk `c` of
/// `chunks` spans `buf[c.offset - base..c.end - base]`.
pub struct Piece {
    pub chunks: Vec<Chunk>,
    pub described: Arc<Described>,
    pub base: usize,
}

impl std::fmt::Debug for CaptureSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureSource")
            .field("path", &self.path)
            .field("len", &self.len)
            .finish()
    }
}

/// Bytes read at a time (and so the size of most chunks, since each read
/// ends one): small enough to stay in the CPU cache while decoded.
const READ_BYTES: usize = 1024 * 1024;

/// Longest file header [`Indexer::new`] reads.
const HEAD_BYTES: usize = 24;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CaptureSource {
    /// Opens `spec.path` and reads its file header: a file that is not a
    /// capture fails here; damage further in is found as it is read.
    pub fn open(spec: &InputSpec) -> Result<CaptureSource, Error> {
        let path = spec.path.clone();
        let open_error = |source| Error::Open {
            path: path.clone(),
            source,
        };
        let file = crate::load::open_regular(&path)?;
        // Only the length seen here is read: a capture still being written
        // is read as it was when opened.
        let len = file.metadata().map_err(open_error)?.len() as usize;
        let mut head = vec![0; HEAD_BYTES.min(len)];
        read_at(&file, &path, &mut head, 0)?;
        let indexer = Indexer::new(&head, len).map_err(|source| Error::Capture {
            path: path.clone(),
            source,
        })?;
        let bundle = path.display().to_string();
        let described = Arc::new(describe(&indexer, &bundle, None, &spec.label));
        Ok(CaptureSource {
            label: spec.label.clone(),
            bundle,
            host: None,
            len,
            file,
            walk: Mutex::new(Walk {
                indexer: Some(indexer),
                leftover: Vec::new(),
                described,
            }),
            found: Mutex::new(Found::default()),
            done: OnceLock::new(),
            aggregates: Mutex::new(None),
            path,
        })
    }

    /// The same capture labelled as a member of bundle `bundle` from node
    /// `host` (before any of it is read).
    pub fn in_bundle(mut self, bundle: &str, host: Option<String>) -> CaptureSource {
        self.bundle = bundle.to_owned();
        self.host = host;
        let walk = self.walk.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(indexer) = &walk.indexer {
            walk.described = Arc::new(describe(
                indexer,
                &self.bundle,
                self.host.as_deref(),
                &self.label,
            ));
        }
        self
    }

    /// Length of the file in bytes.
    pub fn len(&self) -> u64 {
        self.len as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file's aggregate tables, built by `build` on first use. A
    /// second caller waits for the first rather than reading the file again.
    pub(crate) fn aggregates(
        &self,
        build: impl FnOnce() -> datafusion::common::Result<crate::scan::Aggregates>,
    ) -> datafusion::common::Result<Arc<crate::scan::Aggregates>> {
        let mut slot = lock(&self.aggregates);
        if let Some(a) = &*slot {
            return Ok(a.clone());
        }
        let built = Arc::new(build()?);
        *slot = Some(built.clone());
        Ok(built)
    }

    /// The whole index, walking the rest of the file first if no scan did.
    pub fn index(&self) -> Result<&Index, Error> {
        if let Some(ix) = self.done.get() {
            return Ok(ix);
        }
        let mut walk = lock(&self.walk);
        let mut buf = Vec::new();
        while self.done.get().is_none() {
            self.advance(&mut walk, &mut buf, None)?;
        }
        Ok(self.done.get().expect("walk is done"))
    }

    /// The scan's next chunks, claimed through its cursor `next` (the
    /// number of this file's chunks it has taken), in `buf`: read from the
    /// file when the walk found them already, else read by walking on.
    /// `None` once the scan has taken every chunk.
    pub fn next_piece(
        &self,
        next: &AtomicUsize,
        buf: &mut Vec<u8>,
    ) -> Result<Option<Piece>, Error> {
        loop {
            {
                let found = lock(&self.found);
                let c = next.load(Ordering::Acquire);
                if let Some((chunk, described)) = found.chunks.get(c) {
                    if next
                        .compare_exchange(c, c + 1, Ordering::AcqRel, Ordering::Acquire)
                        .is_err()
                    {
                        continue;
                    }
                    let piece = Piece {
                        chunks: vec![chunk.clone()],
                        described: described.clone(),
                        base: chunk.offset,
                    };
                    drop(found);
                    buf.resize(piece.chunks[0].end - piece.base, 0);
                    read_at(&self.file, &self.path, buf, piece.base)?;
                    return Ok(Some(piece));
                }
                if found.done {
                    return Ok(None);
                }
            }
            let mut walk = lock(&self.walk);
            if next.load(Ordering::Acquire) < lock(&self.found).chunks.len() {
                // Someone walked on while we waited: take what they found.
                continue;
            }
            if let Some(piece) = self.advance(&mut walk, buf, Some(next))? {
                return Ok(Some(piece));
            }
        }
    }

    /// The first frame number of each chunk found so far, in file order.
    pub fn chunk_first_frames(&self) -> Vec<u64> {
        lock(&self.found)
            .chunks
            .iter()
            .map(|(c, _)| c.first_frame)
            .collect()
    }

    /// Chunk `k` (of those found so far), read into `buf`.
    pub fn chunk(&self, k: usize, buf: &mut Vec<u8>) -> Result<Option<Piece>, Error> {
        if k >= lock(&self.found).chunks.len() {
            return Ok(None);
        }
        self.next_piece(&AtomicUsize::new(k), buf)
    }

    /// Reads the next piece of the file into `buf` and walks it. The chunks
    /// it closes are published and, with a cursor `claim` that has taken
    /// all chunks found before, claimed for the caller and returned.
    fn advance(
        &self,
        walk: &mut Walk,
        buf: &mut Vec<u8>,
        claim: Option<&AtomicUsize>,
    ) -> Result<Option<Piece>, Error> {
        let Some(indexer) = walk.indexer.as_mut() else {
            return Ok(None);
        };
        let base = indexer.position();
        let kept = walk.leftover.len();
        // A record longer than a read is read whole; it cannot reach past
        // the end of the file (the walk stops there instead).
        let want = READ_BYTES
            .max(indexer.need())
            .min(self.len - base)
            .max(kept);
        buf.clear();
        buf.extend_from_slice(&walk.leftover);
        buf.resize(want, 0);
        read_at(&self.file, &self.path, &mut buf[kept..], base + kept)?;
        let used = indexer.feed(buf);
        walk.leftover.clear();
        walk.leftover.extend_from_slice(&buf[used..]);
        if indexer.described() != described_counts(&walk.described.index) {
            walk.described = Arc::new(describe(
                indexer,
                &self.bundle,
                self.host.as_deref(),
                &self.label,
            ));
        }
        let mut found = lock(&self.found);
        let before = found.chunks.len();
        let chunks = indexer.chunks()[before..].to_vec();
        for c in &chunks {
            found.chunks.push((c.clone(), walk.described.clone()));
        }
        if indexer.is_done() {
            let indexer = walk.indexer.take().expect("checked above");
            let _ = self.done.set(indexer.finish());
            found.done = true;
        }
        let claimed = claim.is_some_and(|next| {
            next.compare_exchange(
                before,
                found.chunks.len(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        });
        Ok((claimed && !chunks.is_empty()).then(|| Piece {
            chunks,
            described: walk.described.clone(),
            base,
        }))
    }

    /// The values every row of this file has in the columns that do not
    /// vary within it: `bundle`, `host` and `capture`.
    pub fn constants(&self) -> (&str, Option<&str>, &str) {
        (&self.bundle, self.host.as_deref(), &self.label)
    }

    /// What the whole file describes (walking it first if no scan did).
    pub fn described(&self) -> Result<Arc<Described>, Error> {
        self.index()?;
        Ok(lock(&self.walk).described.clone())
    }

    /// Damage found in the file, as warnings naming it (walks the whole
    /// file if no scan did).
    pub fn warnings(&self) -> Result<Vec<String>, Error> {
        Ok(self
            .index()?
            .damage
            .iter()
            .map(|d| {
                format!(
                    "{}: at byte offset {}: {}",
                    self.path.display(),
                    d.offset,
                    d.message
                )
            })
            .collect())
    }
}

fn described_counts(ix: &Index) -> (usize, usize) {
    (ix.sections_len(), ix.interfaces.len())
}

fn describe(indexer: &Indexer, bundle: &str, host: Option<&str>, label: &str) -> Described {
    let index = indexer.snapshot();
    let interfaces = index.interfaces.iter().map(InterfaceMeta::of).collect();
    let meta = Arc::new(CaptureMeta {
        bundle: bundle.to_owned(),
        host: host.map(str::to_owned),
        capture: label.to_owned(),
        interfaces,
    });
    Described { index, meta }
}

/// Fills `buf` from `offset` of `file`.
fn read_at(file: &File, path: &Path, buf: &mut [u8], offset: usize) -> Result<(), Error> {
    file.read_exact_at(buf, offset as u64)
        .map_err(|source| Error::Read {
            path: path.to_owned(),
            offset: offset as u64,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_argument_or_file_name() {
        let cases = [
            ("host=/tmp/x.pcap", "host", "/tmp/x.pcap"),
            ("pod/web=a.pcapng", "pod/web", "a.pcapng"),
            ("/var/tmp/node.pcap", "node", "/var/tmp/node.pcap"),
            ("dump.pcapng", "dump", "dump.pcapng"),
            ("trace", "trace", "trace"),
        ];
        for (arg, label, path) in cases {
            assert_eq!(
                InputSpec::parse(arg),
                InputSpec {
                    label: label.into(),
                    path: path.into()
                },
                "{arg}"
            );
        }
    }
}

#[cfg(test)]
mod walk_tests {
    use super::*;

    fn block(t: u32, body: &[u8]) -> Vec<u8> {
        let total = 12 + body.len().div_ceil(4) * 4;
        let mut v = t.to_le_bytes().to_vec();
        v.extend((total as u32).to_le_bytes());
        v.extend(body);
        v.resize(total - 4, 0);
        v.extend((total as u32).to_le_bytes());
        v
    }

    fn shb() -> Vec<u8> {
        let mut b = 0x1a2b_3c4du32.to_le_bytes().to_vec();
        b.extend([1, 0, 0, 0]);
        b.extend((-1i64).to_le_bytes());
        block(0x0a0d_0d0a, &b)
    }

    fn idb(link: u16, name: &str) -> Vec<u8> {
        let mut b = link.to_le_bytes().to_vec();
        b.extend([0; 6]);
        b.extend([2, 0, name.len() as u8, 0]);
        b.extend(name.as_bytes());
        b.resize(b.len().div_ceil(4) * 4, 0);
        block(1, &b)
    }

    fn epb(iface: u32, n: u32, len: usize) -> Vec<u8> {
        let mut b = iface.to_le_bytes().to_vec();
        b.extend([0; 4]);
        b.extend(n.to_le_bytes());
        b.extend((len as u32).to_le_bytes());
        b.extend((len as u32).to_le_bytes());
        b.extend(std::iter::repeat_n(n as u8, len));
        block(6, &b)
    }

    /// Two sections, interfaces described midway and a block larger than a
    /// read: scans that walk the file together, and one that comes after,
    /// each see every packet once, with Wireshark's number and its labels.
    #[test]
    fn scans_sharing_the_walk_take_every_packet_once() {
        let mut d = shb();
        d.extend(idb(1, "eth0"));
        let mut n = 0;
        for _ in 0..3000 {
            n += 1;
            d.extend(epb(0, n, 900));
        }
        d.extend(block(0x0bad, &[0; 8]));
        d.extend(shb());
        d.extend(idb(101, "tun0"));
        n += 1;
        d.extend(epb(0, n, 3 * READ_BYTES));
        d.extend(idb(113, "any"));
        for i in 0..3000 {
            n += 1;
            d.extend(epb(i % 2, n, 700));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pcapng");
        std::fs::write(&path, &d).unwrap();
        let whole = formats::index(&d).unwrap();
        let want: Vec<_> = whole
            .chunks
            .iter()
            .flat_map(|c| {
                whole
                    .frames(&d, c)
                    .map(|f| (f.number, f.interface, f.data.len(), f.ts_ns))
            })
            .collect();
        assert_eq!(want.len(), 6001);
        let src = CaptureSource::open(&InputSpec::parse(&path.display().to_string())).unwrap();
        let scan = |next: &AtomicUsize| {
            let mut buf = Vec::new();
            let mut seen = Vec::new();
            while let Some(p) = src.next_piece(next, &mut buf).unwrap() {
                for c in &p.chunks {
                    let bytes = &buf[c.offset - p.base..c.end - p.base];
                    for f in p.described.index.chunk_frames(bytes, c) {
                        let iface = &p.described.meta.interfaces[f.interface as usize];
                        assert_eq!(
                            iface.link_type,
                            whole.interfaces[f.interface as usize].link_type
                        );
                        seen.push((f.number, f.interface, f.data.len(), f.ts_ns));
                    }
                }
            }
            seen
        };
        let first = AtomicUsize::new(0);
        let mut seen: Vec<_> = std::thread::scope(|s| {
            let a = s.spawn(|| scan(&first));
            let b = s.spawn(|| scan(&first));
            let mut v = a.join().unwrap();
            v.extend(b.join().unwrap());
            v
        });
        seen.sort();
        assert_eq!(seen, want);
        assert_eq!(scan(&AtomicUsize::new(0)), want);
        assert_eq!(src.index().unwrap().frames, 6001);
        assert_eq!(src.described().unwrap().meta.interfaces.len(), 3);
    }
}
