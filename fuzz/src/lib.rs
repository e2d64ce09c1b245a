//! What the fuzz targets share: each target is one parser of `formats`
//! fed arbitrary bytes; none may panic, hang or allocate what the input
//! only claims. Crashes found become regression tests next to the parser
//! (named after the bug) and their inputs are kept in `fuzz/regressions/`.

use formats::bundle::reader::{self, Sink};
use formats::{FlowTable, Headers, Indexer, Origin, index, read, readers};
use std::io::Write;

/// Runs the reader whose description starts with `what` on `data`, as the
/// file `path` (a path it claims), and its claim on the first bytes.
pub fn reader(what: &str, path: &str, data: &[u8]) {
    let r = readers()
        .iter()
        .find(|r| r.what.starts_with(what))
        .unwrap_or_else(|| panic!("no reader described as {what:?}"));
    let head = data.get(..4096).unwrap_or(data);
    let _ = (r.claims)(path, head);
    let _ = read(r, data, Origin::of("b", Some("h"), path));
}

/// Indexes a capture whole, then decodes every frame of every chunk into
/// the packet headers and the flow table, as `capsnap query` does.
pub fn capture(data: &[u8]) {
    let Ok(ix) = index(data) else { return };
    let mut h = Headers::default();
    let mut flows = FlowTable::default();
    for c in &ix.chunks {
        for f in ix.frames(data, c) {
            let link = ix
                .interfaces
                .get(f.interface as usize)
                .map_or(1, |i| i.link_type);
            formats::decode(link, f.data, &mut h);
            flows.add(&f, &h);
        }
    }
}

/// Feeds a capture to the incremental indexer `piece` bytes at a time (as
/// the analyzer reads a big file), and checks it agrees with the whole.
pub fn indexer(data: &[u8]) {
    let whole = index(data);
    let piece = data.first().map_or(1, |b| usize::from(*b % 97) + 1);
    let Ok(mut ixr) = Indexer::new(&data[..data.len().min(24)], data.len()) else {
        assert!(whole.is_err(), "the indexer refused what index() read");
        return;
    };
    // A feed may consume nothing while a block's length is being learned
    // (it then asks for more with `need`), never twice with what it asked.
    let mut steps = 0;
    while !ixr.is_done() {
        let pos = ixr.position();
        let end = data.len().min(pos + piece.max(ixr.need()));
        let n = ixr.feed(&data[pos..end]);
        assert!(
            n > 0 || ixr.need() > end - pos || ixr.is_done(),
            "no progress at {pos}"
        );
        steps += 1;
        assert!(steps <= 3 * data.len() + 8, "the walk does not end");
    }
    let ix = ixr.finish();
    let whole = whole.expect("index() reads what the indexer read");
    assert_eq!(
        (ix.frames, ix.end),
        (whole.frames, whole.end),
        "piece {piece}"
    );
}

/// The L2-L4 decoder: the first two bytes pick the link type.
pub fn decode(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let link = u16::from_le_bytes([data[0], data[1]]) % 300;
    let mut h = Headers::default();
    formats::decode(link, &data[2..], &mut h);
}

/// The bpftrace record joiner, whole and line by line: both must give
/// the same items.
pub fn joiner(data: &[u8]) {
    let whole = formats::bpftrace::records(data).count();
    let mut lines = 0;
    formats::bpftrace::read_records(data, |_| lines += 1).expect("reading from memory");
    assert_eq!(whole, lines, "whole and line-by-line reads disagree");
}

/// The manifest parser.
pub fn manifest(data: &[u8]) {
    let _ = formats::Manifest::parse(data);
}

/// A sink that keeps nothing: the bundle reader's checks are the target.
struct Discard;

impl Sink for Discard {
    fn manifest(&mut self, _: &[u8], _: u64) -> Result<(), String> {
        Ok(())
    }
    fn dir(&mut self, _: &str) -> Result<(), String> {
        Ok(())
    }
    fn file(&mut self, _: &str, _: u64) -> Result<Box<dyn Write + '_>, String> {
        Ok(Box::new(std::io::sink()))
    }
}

/// The bundle reader (extraction), on the compressed bytes as given and on
/// the bytes as an uncompressed tar stream compressed here (so the fuzzer
/// reaches the tar and manifest checks, not only zstd's).
pub fn bundle(data: &[u8]) {
    let _ = reader::manifest_bytes(data);
    let _ = reader::read(data, &mut Discard);
    if let Ok(z) = zstd::bulk::compress(data, 1) {
        let _ = reader::read(&z[..], &mut Discard);
    }
}
