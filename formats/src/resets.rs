//! The `resets` table: one row per TCP RST a capture holds, with the
//! packet that provoked it: the last packet the RST's receiver sent before
//! it, in the same flow, that was not itself an RST (what the RST answers:
//! a SYN to a closed port, an out-of-window segment, data after close).
//!
//! It is built by the [`FlowTable`](crate::FlowTable) in the pass that
//! builds `flows`, so a detection that shows RSTs with their cause does not
//! read the capture's packets again. Each side of a flow remembers its
//! last packet; an RST takes its peer's if the thread that decodes the
//! RST's chunk saw that packet in the same chunk (then nothing can lie
//! between them). Otherwise the packet is in an earlier chunk, which
//! another thread may have decoded: the RST stays [`open`](Reset::open)
//! and [`FlowTable::settle_resets`](crate::FlowTable::settle_resets) finds
//! it by reading the chunks before, backwards, once the pass is done.
//! RSTs are few, and their cause is nearly always a few packets before
//! them, so this costs a chunk or two where it happens at all.

use crate::capfile::Frame;
use crate::decode::{Addr, Headers, tcp_flag};
use crate::packets::CaptureMeta;
use crate::table::{Column, Kind, Table, col};
use arrow_array::builder::{
    StringBuilder, StringDictionaryBuilder, TimestampNanosecondBuilder, UInt16Builder,
    UInt32Builder, UInt64Builder,
};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, RecordBatch};
use std::sync::Arc;

/// The columns of `resets`, in table order.
pub const COLUMNS: &[Column] = &[
    col(
        "bundle",
        Kind::Dict,
        false,
        "bundle (or capture file) the row comes from",
    ),
    col("host", Kind::Dict, true, "node the bundle was collected on"),
    col("capture", Kind::Dict, false, "capture point label"),
    col(
        "netns",
        Kind::Dict,
        true,
        "network namespace of the interface the RST was captured on",
    ),
    col(
        "ifname",
        Kind::Dict,
        true,
        "interface the RST was captured on",
    ),
    col("frame", Kind::U64, false, "frame number of the RST"),
    col("ts", Kind::Ts, true, "capture time of the RST, UTC"),
    col("src_ip", Kind::Str, false, "sender of the RST"),
    col("src_port", Kind::U16, false, "sender's port"),
    col("dst_ip", Kind::Str, false, "receiver of the RST"),
    col("dst_port", Kind::U16, false, "receiver's port"),
    col(
        "tcp_flags",
        Kind::U16,
        false,
        "the RST's TCP flags (see packets.tcp_flags)",
    ),
    col("seq", Kind::U32, false, "the RST's sequence number"),
    col(
        "ack_seq",
        Kind::U32,
        false,
        "the RST's acknowledgment number",
    ),
    col("window", Kind::U16, false, "the RST's window field"),
    col(
        "payload_bytes",
        Kind::U32,
        false,
        "the RST's payload length (RFC 9293 3.5.3 allows diagnostic text)",
    ),
    col(
        "prev_frame",
        Kind::U64,
        true,
        "the provoking packet: the last non-RST packet the receiver sent in this flow before the RST (null: none in the capture)",
    ),
    col("prev_ts", Kind::Ts, true, "its capture time"),
    col("prev_ifname", Kind::Dict, true, "its interface"),
    col("prev_tcp_flags", Kind::U16, true, "its TCP flags"),
    col("prev_seq", Kind::U32, true, "its sequence number"),
    col("prev_ack_seq", Kind::U32, true, "its acknowledgment number"),
    col("prev_window", Kind::U16, true, "its window field"),
    col("prev_payload_bytes", Kind::U32, true, "its payload length"),
];

/// The table as listed by `capsnap tables`.
pub const TABLE: Table = Table {
    name: "resets",
    doc: "one row per TCP RST in a capture, with the packet that provoked it (the last one its receiver sent before)",
    columns: COLUMNS,
};

/// What a row tells of one TCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) frame: u64,
    ts: Option<i64>,
    interface: u32,
    flags: u16,
    seq: u32,
    ack: u32,
    window: u16,
    payload: u32,
}

impl Seen {
    /// The TCP packet `frame` whose headers are `h`, if it is one.
    pub(crate) fn of(frame: &Frame, h: &Headers) -> Option<Seen> {
        let tcp = h.tcp?;
        Some(Seen {
            frame: frame.number,
            ts: frame.ts_ns,
            interface: frame.interface,
            flags: tcp.flags,
            seq: tcp.seq,
            ack: tcp.ack,
            window: tcp.window,
            payload: h.payload_len.unwrap_or(0),
        })
    }

    pub(crate) fn is_rst(&self) -> bool {
        self.flags & tcp_flag::RST != 0
    }
}

/// One RST, as found in the pass.
#[derive(Debug, Clone)]
pub(crate) struct Reset {
    pub(crate) src: (Addr, u16),
    pub(crate) dst: (Addr, u16),
    pub(crate) rst: Seen,
    pub(crate) prev: Option<Seen>,
    /// The provoking packet may be in an earlier chunk than the RST's.
    pub(crate) open: bool,
    /// While open: the first frame its receiver sent (no earlier frame
    /// can hold the packet).
    pub(crate) floor: u64,
}

/// The resets of one capture as one batch of the `resets` schema, in frame
/// order.
pub(crate) fn finish(mut resets: Vec<Reset>, meta: &CaptureMeta) -> RecordBatch {
    resets.sort_by_key(|r| r.rst.frame);
    let n = resets.len();
    let dict = StringDictionaryBuilder::<Int32Type>::new;
    let (mut bundle, mut host, mut capture, mut netns, mut ifname) =
        (dict(), dict(), dict(), dict(), dict());
    let (mut src_ip, mut dst_ip) = (StringBuilder::new(), StringBuilder::new());
    let (mut src_port, mut dst_port) = (
        UInt16Builder::with_capacity(n),
        UInt16Builder::with_capacity(n),
    );
    let mut text = String::new();
    let mut packet = PacketColumns::new(n, false);
    let mut prev = PacketColumns::new(n, true);
    for r in &resets {
        let iface = |s: &Seen| meta.interfaces.get(s.interface as usize);
        bundle.append_value(&meta.bundle);
        host.append_option(meta.host.as_deref());
        capture.append_value(&meta.capture);
        netns.append_option(iface(&r.rst).and_then(|i| i.netns.as_deref()));
        ifname.append_option(iface(&r.rst).and_then(|i| i.name.as_deref()));
        r.src.0.write_to(&mut text);
        src_ip.append_value(&text);
        src_port.append_value(r.src.1);
        r.dst.0.write_to(&mut text);
        dst_ip.append_value(&text);
        dst_port.append_value(r.dst.1);
        packet.append(Some(&r.rst), None);
        let prev_ifname = r
            .prev
            .as_ref()
            .and_then(iface)
            .and_then(|i| i.name.as_deref());
        prev.append(r.prev.as_ref(), prev_ifname);
    }
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(bundle.finish()),
        Arc::new(host.finish()),
        Arc::new(capture.finish()),
        Arc::new(netns.finish()),
        Arc::new(ifname.finish()),
    ];
    let mut rst = packet.finish();
    // The RST's frame and time come before its addresses.
    arrays.extend(rst.drain(..2));
    arrays.extend([
        Arc::new(src_ip.finish()) as ArrayRef,
        Arc::new(src_port.finish()),
        Arc::new(dst_ip.finish()),
        Arc::new(dst_port.finish()),
    ]);
    arrays.extend(rst);
    arrays.extend(prev.finish());
    RecordBatch::try_new(TABLE.schema(), arrays).expect("resets arrays follow COLUMNS")
}

/// The columns that describe one packet: frame, ts, (ifname), tcp_flags,
/// seq, ack_seq, window, payload_bytes.
struct PacketColumns {
    frame: UInt64Builder,
    ts: TimestampNanosecondBuilder,
    ifname: Option<StringDictionaryBuilder<Int32Type>>,
    flags: UInt16Builder,
    seq: UInt32Builder,
    ack: UInt32Builder,
    window: UInt16Builder,
    payload: UInt32Builder,
}

impl PacketColumns {
    fn new(n: usize, with_ifname: bool) -> Self {
        PacketColumns {
            frame: UInt64Builder::with_capacity(n),
            ts: TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC"),
            ifname: with_ifname.then(StringDictionaryBuilder::new),
            flags: UInt16Builder::with_capacity(n),
            seq: UInt32Builder::with_capacity(n),
            ack: UInt32Builder::with_capacity(n),
            window: UInt16Builder::with_capacity(n),
            payload: UInt32Builder::with_capacity(n),
        }
    }

    /// Appends `s` (null when `None`), with its interface's name where
    /// these columns have one (the provoking packet's).
    fn append(&mut self, s: Option<&Seen>, ifname: Option<&str>) {
        self.frame.append_option(s.map(|s| s.frame));
        self.ts.append_option(s.and_then(|s| s.ts));
        if let Some(b) = &mut self.ifname {
            b.append_option(ifname);
        }
        self.flags.append_option(s.map(|s| s.flags));
        self.seq.append_option(s.map(|s| s.seq));
        self.ack.append_option(s.map(|s| s.ack));
        self.window.append_option(s.map(|s| s.window));
        self.payload.append_option(s.map(|s| s.payload));
    }

    fn finish(mut self) -> Vec<ArrayRef> {
        let mut out: Vec<ArrayRef> =
            vec![Arc::new(self.frame.finish()), Arc::new(self.ts.finish())];
        if let Some(mut ifname) = self.ifname.take() {
            out.push(Arc::new(ifname.finish()));
        }
        out.extend([
            Arc::new(self.flags.finish()) as ArrayRef,
            Arc::new(self.seq.finish()),
            Arc::new(self.ack.finish()),
            Arc::new(self.window.finish()),
            Arc::new(self.payload.finish()),
        ]);
        out
    }
}
