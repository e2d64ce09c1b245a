//! The ring of `capsnap watch`: the packets of every capture point, the
//! eBPF events and the kernel's packet counts of the last minutes, on disk
//! within one byte bound (`--ring`).
//!
//! Records go into chunks of 1 MiB, appended in the order they arrive.
//! Only the chunk being filled is in memory; a full one is written to an
//! anonymous file (`O_TMPFILE` in the watch's work directory: it has no
//! name, so however capsnap ends, even SIGKILL, nothing is left on disk)
//! and read back only when a bundle is written. Whole chunks are dropped
//! from the front when they are older than the ring keeps, or when a new
//! chunk would pass the byte bound. A bundle takes the chunks of its
//! window by reference (an `Arc` of each file; the chunk being filled is
//! written out first). A chunk dropped from the ring while a bundle still
//! reads it counts against the bound until the bundle lets go, so the
//! ring and the chunks bundles hold never pass `--ring` bytes together; a
//! record that finds no room is dropped and counted.

use crate::packets::{KernelCounts, Seen};
use formats::pcapng::EpbFlags;
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// Bytes per chunk: small next to any useful ring, large enough for the
/// largest record (a whole 256 KiB frame).
pub const CHUNK: usize = 1 << 20;
/// Record header: kind, point, interface, length, time, two words.
const HEADER: usize = 24;

const PACKET: u8 = 1;
const EVENT: u8 = 2;
const COUNTS: u8 = 3;

/// One record, borrowed from its chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    Packet {
        point: u8,
        iface: u16,
        ts_ns: u64,
        wire_len: u32,
        flags: EpbFlags,
        data: &'a [u8],
    },
    /// One eBPF record, as a line of the events file.
    Event { ts_ns: u64, line: &'a [u8] },
    /// What the kernel counted at a capture point over the second before.
    Counts {
        point: u8,
        ts_ns: u64,
        counts: KernelCounts,
    },
}

impl Record<'_> {
    pub fn ts_ns(&self) -> u64 {
        match *self {
            Record::Packet { ts_ns, .. }
            | Record::Event { ts_ns, .. }
            | Record::Counts { ts_ns, .. } => ts_ns,
        }
    }

    /// Appends the record's encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (kind, point, iface, ts, a, b, data): (u8, u8, u16, u64, u32, u32, &[u8]) = match *self
        {
            Record::Packet {
                point,
                iface,
                ts_ns,
                wire_len,
                flags,
                data,
            } => (PACKET, point, iface, ts_ns, wire_len, flags.0, data),
            Record::Event { ts_ns, line } => (EVENT, 0, 0, ts_ns, 0, 0, line),
            Record::Counts {
                point,
                ts_ns,
                counts,
            } => {
                out.extend([COUNTS, point, 0, 0]);
                out.extend(16u32.to_le_bytes());
                out.extend(ts_ns.to_le_bytes());
                out.extend([0; 8]);
                out.extend(counts.received.to_le_bytes());
                out.extend(counts.dropped.to_le_bytes());
                return;
            }
        };
        out.extend([kind, point]);
        out.extend(iface.to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out.extend(ts.to_le_bytes());
        out.extend(a.to_le_bytes());
        out.extend(b.to_le_bytes());
        out.extend(data);
    }
}

/// The first record of `bytes` and the bytes it takes; `None` when it does
/// not fit (the bytes are capsnap's own, so only a bug could cause that).
fn first(bytes: &[u8]) -> Option<(Record<'_>, usize)> {
    let h = bytes.get(..HEADER)?;
    let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let len = u32_at(4) as usize;
    let ts_ns = u64::from_le_bytes(h[8..16].try_into().ok()?);
    let data = bytes.get(HEADER..HEADER + len)?;
    let record = match h[0] {
        PACKET => Record::Packet {
            point: h[1],
            iface: u16::from_le_bytes([h[2], h[3]]),
            ts_ns,
            wire_len: u32_at(16),
            flags: EpbFlags(u32_at(20)),
            data,
        },
        EVENT => Record::Event { ts_ns, line: data },
        _ => Record::Counts {
            point: h[1],
            ts_ns,
            counts: KernelCounts {
                received: u64::from_le_bytes(data.get(..8)?.try_into().ok()?),
                dropped: u64::from_le_bytes(data.get(8..16)?.try_into().ok()?),
            },
        },
    };
    Some((record, HEADER + len))
}

/// The records of encoded bytes, in order, each with its encoding.
fn spans(mut bytes: &[u8]) -> impl Iterator<Item = (Record<'_>, &[u8])> {
    std::iter::from_fn(move || {
        let (r, n) = first(bytes)?;
        let (this, rest) = bytes.split_at(n);
        bytes = rest;
        Some((r, this))
    })
}

/// The records of encoded bytes, in order; stops at the first that does
/// not fit.
pub fn records(bytes: &[u8]) -> impl Iterator<Item = Record<'_>> {
    spans(bytes).map(|(r, _)| r)
}

/// A chunk written out: its file and length.
#[derive(Clone)]
struct Sealed {
    file: Arc<File>,
    len: usize,
}

impl Sealed {
    /// Reads the chunk back into `buf`.
    fn read(&self, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.resize(self.len, 0);
        self.file.read_exact_at(buf, 0)
    }
}

/// A chunk and the span of time its records cover.
struct Slot {
    sealed: Sealed,
    min_ts: u64,
    max_ts: u64,
}

/// What the ring lost for want of room, for a bundle to report.
#[derive(Debug, Default)]
struct Losses {
    /// Packets dropped from the ring younger than it should keep them,
    /// per (second, point).
    evicted: BTreeMap<(u64, u8), u64>,
    /// Packets that found no room at all (or could not be written to
    /// disk), per (second, point).
    refused: BTreeMap<(u64, u8), u64>,
}

struct Inner {
    /// Chunks on disk, oldest first.
    slots: VecDeque<Slot>,
    /// The chunk being filled, in memory, and the span of its records.
    open: Vec<u8>,
    open_min: u64,
    open_max: u64,
    /// Chunks dropped from the ring that a bundle still holds.
    retired: Vec<Arc<File>>,
    losses: Losses,
    /// Why the last chunk could not be written, for the status line.
    error: Option<String>,
    /// The interfaces of each capture point, by the index its packet
    /// records carry.
    interfaces: Vec<Vec<Seen>>,
}

/// The ring; shared by every capture point, the eBPF reader and the
/// bundle writer.
pub struct Ring {
    inner: Mutex<Inner>,
    /// Where chunk files are made.
    dir: PathBuf,
    /// Bytes of chunks at most: on disk, held by bundles, and the one
    /// being filled.
    cap: usize,
    /// How long records are kept (`--keep` + `--after` and a margin).
    retain_ns: u64,
}

/// The chunks of a window, held by a bundle being written.
pub struct Window {
    chunks: Vec<Sealed>,
    pub from_ns: u64,
    pub to_ns: u64,
}

impl Window {
    /// Calls `each` with every record of the window, in ring order; stops
    /// at the first error (its own, or reading a chunk back).
    pub fn each<E: From<io::Error>>(
        &self,
        mut each: impl FnMut(Record<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut buf = Vec::with_capacity(CHUNK);
        for c in &self.chunks {
            c.read(&mut buf)?;
            for r in records(&buf).filter(|r| (self.from_ns..=self.to_ns).contains(&r.ts_ns())) {
                each(r)?;
            }
        }
        Ok(())
    }
}

impl Ring {
    /// A ring of `cap` bytes whose chunk files go in `dir`.
    pub fn new(dir: &Path, cap: usize, retain_ns: u64, points: usize) -> Ring {
        Ring {
            inner: Mutex::new(Inner {
                slots: VecDeque::new(),
                open: Vec::new(),
                open_min: u64::MAX,
                open_max: 0,
                retired: Vec::new(),
                losses: Losses::default(),
                error: None,
                interfaces: vec![Vec::new(); points],
            }),
            dir: dir.to_owned(),
            cap: cap.max(3 * CHUNK),
            retain_ns,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records what capture point `point` calls its interfaces.
    pub fn set_interfaces(&self, point: u8, ifaces: &[Seen]) {
        let mut inner = self.lock();
        if let Some(known) = inner.interfaces.get_mut(usize::from(point)) {
            known.clear();
            known.extend_from_slice(ifaces);
        }
    }

    pub fn interfaces(&self, point: u8) -> Vec<Seen> {
        self.lock()
            .interfaces
            .get(usize::from(point))
            .cloned()
            .unwrap_or_default()
    }

    /// Appends encoded records; `now_ns` drives the time-based eviction.
    pub fn append(&self, encoded: &[u8], now_ns: u64) {
        let mut inner = self.lock();
        let oldest = now_ns.saturating_sub(self.retain_ns);
        while inner.slots.front().is_some_and(|s| s.max_ts < oldest) {
            self.retire_front(&mut inner, None);
        }
        for (r, one) in spans(encoded) {
            if inner.open.len() + one.len() > CHUNK && !self.seal(&mut inner, oldest) {
                if let Record::Packet { point, ts_ns, .. } = r {
                    *inner
                        .losses
                        .refused
                        .entry((ts_ns / 1_000_000_000, point))
                        .or_default() += 1;
                }
                continue;
            }
            if inner.open.capacity() == 0 {
                inner.open.reserve_exact(CHUNK);
            }
            let ts = r.ts_ns();
            inner.open.extend_from_slice(one);
            inner.open_min = inner.open_min.min(ts);
            inner.open_max = inner.open_max.max(ts);
        }
    }

    /// Writes the chunk being filled to disk, first dropping old chunks
    /// until the bound has room for it; false when it cannot (the chunk
    /// then stays in memory, and what does not fit is refused).
    fn seal(&self, inner: &mut Inner, oldest: u64) -> bool {
        if inner.open.is_empty() {
            return true;
        }
        loop {
            inner.retired.retain(|c| Arc::strong_count(c) > 1);
            // The chunk being filled is counted as a full one.
            let used = (inner.slots.len() + inner.retired.len() + 1) * CHUNK;
            if used + CHUNK <= self.cap {
                break;
            }
            if inner.slots.is_empty() {
                return false;
            }
            self.retire_front(inner, Some(oldest));
        }
        let written = anonymous_file(&self.dir).and_then(|f| {
            f.write_all_at(&inner.open, 0)?;
            Ok(f)
        });
        match written {
            Ok(file) => {
                let slot = Slot {
                    sealed: Sealed {
                        file: Arc::new(file),
                        len: inner.open.len(),
                    },
                    min_ts: inner.open_min,
                    max_ts: inner.open_max,
                };
                inner.slots.push_back(slot);
                inner.error = None;
            }
            Err(e) => {
                // The chunk is lost; its packets are counted as refused.
                inner.error = Some(format!(
                    "cannot write a ring chunk in {}: {e}",
                    self.dir.display()
                ));
                let lost: Vec<(u64, u8)> = records(&inner.open)
                    .filter_map(|r| match r {
                        Record::Packet { point, ts_ns, .. } => Some((ts_ns / 1_000_000_000, point)),
                        _ => None,
                    })
                    .collect();
                for key in lost {
                    *inner.losses.refused.entry(key).or_default() += 1;
                }
            }
        }
        inner.open.clear();
        inner.open_min = u64::MAX;
        inner.open_max = 0;
        true
    }

    /// Drops the oldest chunk; with `young` set, counts the packets it held
    /// that were younger than that (lost for want of room).
    fn retire_front(&self, inner: &mut Inner, young: Option<u64>) {
        let Some(slot) = inner.slots.pop_front() else {
            return;
        };
        if let Some(oldest) = young
            && slot.max_ts >= oldest
        {
            let mut buf = Vec::new();
            if slot.sealed.read(&mut buf).is_ok() {
                for r in records(&buf) {
                    if let Record::Packet { point, ts_ns, .. } = r
                        && ts_ns >= oldest
                    {
                        *inner
                            .losses
                            .evicted
                            .entry((ts_ns / 1_000_000_000, point))
                            .or_default() += 1;
                    }
                }
            }
        }
        let horizon = young.unwrap_or(0) / 1_000_000_000;
        inner
            .losses
            .evicted
            .retain(|(s, _), _| *s + 3600 >= horizon);
        inner
            .losses
            .refused
            .retain(|(s, _), _| *s + 3600 >= horizon);
        if Arc::strong_count(&slot.sealed.file) > 1 {
            inner.retired.push(slot.sealed.file);
        }
    }

    /// The chunks that may hold records from `from_ns` to `to_ns`; the
    /// chunk being filled is written out first, so that the window holds
    /// what came up to now.
    pub fn window(&self, from_ns: u64, to_ns: u64) -> Window {
        let mut inner = self.lock();
        let oldest = crate::sys::now_ns().saturating_sub(self.retain_ns);
        self.seal(&mut inner, oldest);
        let chunks = inner
            .slots
            .iter()
            .filter(|s| s.max_ts >= from_ns && s.min_ts <= to_ns)
            .map(|s| s.sealed.clone())
            .collect();
        Window {
            chunks,
            from_ns,
            to_ns,
        }
    }

    /// Packets of `point` from `from_ns` on that the ring lost for want of
    /// room (to the second): dropped from it early, or never let in.
    pub fn lost(&self, point: u8, from_ns: u64) -> u64 {
        let inner = self.lock();
        let from = from_ns / 1_000_000_000;
        let l = &inner.losses;
        l.evicted
            .iter()
            .chain(l.refused.iter())
            .filter(|((s, p), _)| *p == point && *s >= from)
            .map(|(_, n)| n)
            .sum()
    }

    /// The time of the oldest record the ring holds.
    pub fn oldest_ns(&self) -> Option<u64> {
        let inner = self.lock();
        inner
            .slots
            .iter()
            .map(|s| s.min_ts)
            .chain((!inner.open.is_empty()).then_some(inner.open_min))
            .min()
    }

    /// Bytes of chunks on disk (in the ring and held by bundles) and in
    /// memory; why the last chunk could not be written, if it could not.
    pub fn usage(&self) -> (usize, usize, Option<String>) {
        let inner = self.lock();
        (
            (inner.slots.len() + inner.retired.len()) * CHUNK,
            inner.open.capacity(),
            inner.error.clone(),
        )
    }

    /// Bytes counted against the bound.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        let (disk, memory, _) = self.usage();
        disk + memory.max(CHUNK)
    }
}

/// A file in `dir` with no name: `O_TMPFILE` (open(2)), or where the file
/// system lacks it a file created and unlinked at once. Its blocks go back
/// when the last descriptor closes, however the process ends.
fn anonymous_file(dir: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).mode(0o600);
    match o.clone().custom_flags(libc::O_TMPFILE).open(dir) {
        Err(e)
            if e.raw_os_error() == Some(libc::EOPNOTSUPP)
                || e.raw_os_error() == Some(libc::EISDIR) =>
        {
            let path = dir.join(format!("chunk-{}", crate::sys::now_ns()));
            let f = o.create_new(true).open(&path)?;
            std::fs::remove_file(&path)?;
            Ok(f)
        }
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(point: u8, ts_ns: u64, data: &[u8]) -> Record<'_> {
        Record::Packet {
            point,
            iface: 1,
            ts_ns,
            wire_len: 1500,
            flags: EpbFlags(2),
            data,
        }
    }

    #[test]
    fn records_read_back_as_written() {
        let counts = KernelCounts {
            received: 7,
            dropped: 2,
        };
        let all = [
            packet(3, 10, b"abc"),
            Record::Event {
                ts_ns: 11,
                line: b"{\"event\":\"exec\"}",
            },
            Record::Counts {
                point: 1,
                ts_ns: 12,
                counts,
            },
            packet(0, 13, b""),
        ];
        let mut bytes = Vec::new();
        for r in &all {
            r.encode(&mut bytes);
        }
        assert_eq!(records(&bytes).collect::<Vec<_>>(), all);
        // A cut record ends the walk.
        assert_eq!(records(&bytes[..bytes.len() - 1]).count(), 3);
    }

    const S: u64 = 1_000_000_000;

    fn count(w: &Window) -> usize {
        let mut n = 0;
        w.each(|_| {
            n += 1;
            Ok::<(), io::Error>(())
        })
        .unwrap();
        n
    }

    /// Bytes of the files in `dir` (chunk files have no name: none).
    fn named(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn old_records_leave_and_the_bound_holds() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Ring::new(dir.path(), 4 * CHUNK, 10 * S, 1);
        let data = vec![0u8; 1000];
        let mut batch = Vec::new();
        for i in 0..20_000u64 {
            batch.clear();
            packet(0, i * S / 1000, &data).encode(&mut batch);
            ring.append(&batch, i * S / 1000);
            assert!(ring.bytes() <= 4 * CHUNK, "{}", ring.bytes());
        }
        // 20 s of 1,000 packets a second in 4 MiB: about 4 s kept (three
        // chunks on disk, one filling); what was dropped younger than 10 s
        // is counted as lost.
        let oldest = ring.oldest_ns().unwrap();
        assert!((15 * S..18 * S).contains(&oldest), "{oldest}");
        let lost = ring.lost(0, 10 * S);
        assert!((5_000..8_000).contains(&lost), "{lost}");
        assert_eq!(count(&ring.window(18 * S, 19 * S)), 1001);
        assert_eq!(named(dir.path()), 0, "chunk files have no name");
        // Time-based eviction alone, with room to spare.
        let ring = Ring::new(dir.path(), 64 * CHUNK, 2 * S, 1);
        for i in 0..10u64 {
            batch.clear();
            packet(0, i * S, &data).encode(&mut batch);
            ring.append(&batch, i * S);
        }
        // A window writes the chunk being filled out.
        assert_eq!(count(&ring.window(0, 100 * S)), 10);
        assert_eq!(ring.usage().0, CHUNK);
        for i in 10..20u64 {
            batch.clear();
            packet(0, i * S, &data).encode(&mut batch);
            ring.append(&batch, i * S);
        }
        // That chunk went whole once its last record was too old: nothing
        // was lost for want of room.
        assert_eq!(ring.oldest_ns(), Some(10 * S));
        assert_eq!(ring.lost(0, 0), 0);
    }

    #[test]
    fn a_window_held_by_a_bundle_counts_against_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Ring::new(dir.path(), 4 * CHUNK, 1000 * S, 1);
        let data = vec![0u8; 100_000];
        let mut batch = Vec::new();
        let mut push = |ts: u64| {
            batch.clear();
            packet(0, ts, &data).encode(&mut batch);
            ring.append(&batch, ts);
        };
        for ts in 0..25 {
            push(ts);
        }
        let held = ring.window(0, 1000);
        let n = count(&held);
        assert_eq!(n, 25);
        for ts in 25..100 {
            push(ts);
            assert!(ring.bytes() <= 4 * CHUNK, "{}", ring.bytes());
        }
        // The held window still reads whole.
        assert_eq!(count(&held), n);
        drop(held);
        push(100);
        assert!(ring.bytes() <= 4 * CHUNK);
    }
}
