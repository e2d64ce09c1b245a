//! The ring of `capsnap watch`: the packets of every capture point, the
//! eBPF events and the kernel's packet counts of the last minutes, in one
//! bounded amount of memory.
//!
//! Records go into chunks of 1 MiB, appended in the order they arrive;
//! whole chunks are dropped from the front when they are older than the
//! ring keeps, or when a new chunk would pass the byte bound. A bundle
//! takes the chunks of its window by reference (an `Arc` each, no copy):
//! the chunk being filled is then shared, so the next record opens a new
//! one. A chunk dropped from the ring while a bundle still reads it counts
//! against the bound until the bundle lets go, so the ring and the chunks
//! bundles hold never pass `--ring` bytes together; a record that finds no
//! room is dropped and counted.

use crate::packets::{KernelCounts, Seen};
use formats::pcapng::EpbFlags;
use std::collections::{BTreeMap, VecDeque};
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

/// A chunk and the span of time its records cover.
struct Slot {
    bytes: Arc<Vec<u8>>,
    min_ts: u64,
    max_ts: u64,
}

/// What the ring lost for want of room, for a bundle to report.
#[derive(Debug, Default)]
struct Losses {
    /// Packets dropped from the ring younger than it should keep them,
    /// per (second, point).
    evicted: BTreeMap<(u64, u8), u64>,
    /// Packets that found no room at all, per (second, point).
    refused: BTreeMap<(u64, u8), u64>,
}

struct Inner {
    slots: VecDeque<Slot>,
    /// Chunks dropped from the ring that a bundle still holds.
    retired: Vec<Arc<Vec<u8>>>,
    losses: Losses,
    /// The interfaces of each capture point, by the index its packet
    /// records carry.
    interfaces: Vec<Vec<Seen>>,
}

/// The ring; shared by every capture point, the eBPF reader and the
/// bundle writer.
pub struct Ring {
    inner: Mutex<Inner>,
    /// Bytes of chunks at most, in the ring and held by bundles.
    cap: usize,
    /// How long records are kept (`--keep` + `--after` and a margin).
    retain_ns: u64,
}

/// The chunks of a window, held by a bundle being written.
pub struct Window {
    chunks: Vec<Arc<Vec<u8>>>,
    pub from_ns: u64,
    pub to_ns: u64,
}

impl Window {
    /// The records of the window, in ring order.
    pub fn records(&self) -> impl Iterator<Item = Record<'_>> {
        let (from, to) = (self.from_ns, self.to_ns);
        self.chunks
            .iter()
            .flat_map(|c| records(c))
            .filter(move |r| (from..=to).contains(&r.ts_ns()))
    }
}

impl Ring {
    pub fn new(cap: usize, retain_ns: u64, points: usize) -> Ring {
        Ring {
            inner: Mutex::new(Inner {
                slots: VecDeque::new(),
                retired: Vec::new(),
                losses: Losses::default(),
                interfaces: vec![Vec::new(); points],
            }),
            cap: cap.max(2 * CHUNK),
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
            if !self.room_for(&mut inner, one.len(), oldest) {
                if let Record::Packet { point, ts_ns, .. } = r {
                    *inner
                        .losses
                        .refused
                        .entry((ts_ns / 1_000_000_000, point))
                        .or_default() += 1;
                }
                continue;
            }
            let Some(slot) = inner.slots.back_mut() else {
                continue;
            };
            let ts = r.ts_ns();
            if let Some(buf) = Arc::get_mut(&mut slot.bytes) {
                buf.extend_from_slice(one);
                slot.min_ts = slot.min_ts.min(ts);
                slot.max_ts = slot.max_ts.max(ts);
            }
        }
    }

    /// Makes sure the last chunk can take `len` more bytes and is not
    /// shared, opening a new chunk (and dropping old ones) when it must.
    fn room_for(&self, inner: &mut Inner, len: usize, oldest: u64) -> bool {
        if let Some(last) = inner.slots.back_mut()
            && Arc::get_mut(&mut last.bytes).is_some()
            && last.bytes.len() + len <= CHUNK
        {
            return true;
        }
        if len > CHUNK {
            return false;
        }
        loop {
            inner.retired.retain(|c| Arc::strong_count(c) > 1);
            let used = (inner.slots.len() + inner.retired.len()) * CHUNK;
            if used + CHUNK <= self.cap {
                inner.slots.push_back(Slot {
                    bytes: Arc::new(Vec::with_capacity(CHUNK)),
                    min_ts: u64::MAX,
                    max_ts: 0,
                });
                return true;
            }
            if inner.slots.is_empty() {
                return false;
            }
            self.retire_front(inner, Some(oldest));
        }
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
            for r in records(&slot.bytes) {
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
        let horizon = young.unwrap_or(0) / 1_000_000_000;
        inner
            .losses
            .evicted
            .retain(|(s, _), _| *s + 3600 >= horizon);
        inner
            .losses
            .refused
            .retain(|(s, _), _| *s + 3600 >= horizon);
        if Arc::strong_count(&slot.bytes) > 1 {
            inner.retired.push(slot.bytes);
        }
    }

    /// The chunks that may hold records from `from_ns` to `to_ns`.
    pub fn window(&self, from_ns: u64, to_ns: u64) -> Window {
        let inner = self.lock();
        let chunks = inner
            .slots
            .iter()
            .filter(|s| s.max_ts >= from_ns && s.min_ts <= to_ns)
            .map(|s| s.bytes.clone())
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
        self.lock().slots.iter().map(|s| s.min_ts).min()
    }

    /// Bytes of chunks allocated, in the ring and held by bundles.
    pub fn bytes(&self) -> usize {
        let inner = self.lock();
        (inner.slots.len() + inner.retired.len()) * CHUNK
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

    #[test]
    fn old_records_leave_and_the_bound_holds() {
        let ring = Ring::new(4 * CHUNK, 10 * S, 1);
        let data = vec![0u8; 1000];
        let mut batch = Vec::new();
        for i in 0..20_000u64 {
            batch.clear();
            packet(0, i * S / 1000, &data).encode(&mut batch);
            ring.append(&batch, i * S / 1000);
        }
        assert!(ring.bytes() <= 4 * CHUNK, "{}", ring.bytes());
        // 20 s of 1,000 packets a second, 4 MiB: about 4 s kept; what was
        // dropped younger than 10 s is counted as lost.
        let oldest = ring.oldest_ns().unwrap();
        assert!((15 * S..17 * S).contains(&oldest), "{oldest}");
        let lost = ring.lost(0, 10 * S);
        assert!((5_000..7_000).contains(&lost), "{lost}");
        let w = ring.window(18 * S, 19 * S);
        assert_eq!(w.records().count(), 1001);
        // Time-based eviction alone, with room to spare.
        let ring = Ring::new(64 * CHUNK, 2 * S, 1);
        for i in 0..10u64 {
            batch.clear();
            packet(0, i * S, &data).encode(&mut batch);
            ring.append(&batch, i * S);
        }
        assert_eq!(ring.window(0, 100 * S).records().count(), 10);
        for i in 10..20u64 {
            batch.clear();
            packet(0, i * S, &data).encode(&mut batch);
            ring.append(&batch, i * S);
        }
        // Everything fits in one chunk, which goes whole: nothing is lost.
        assert_eq!(ring.oldest_ns(), Some(0));
        assert_eq!(ring.lost(0, 0), 0);
    }

    #[test]
    fn a_window_held_by_a_bundle_counts_against_the_bound() {
        let ring = Ring::new(3 * CHUNK, 1000 * S, 1);
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
        let n = held.records().count();
        assert_eq!(n, 25);
        for ts in 25..100 {
            push(ts);
            assert!(ring.bytes() <= 3 * CHUNK);
        }
        // The held window still reads whole.
        assert_eq!(held.records().count(), n);
        drop(held);
        push(100);
        assert!(ring.bytes() <= 3 * CHUNK);
    }
}
