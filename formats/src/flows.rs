//! The `flows` table: one row per 5-tuple and capture point.
//!
//! A [`FlowTable`] is filled from decoded frames. Tables filled from
//! different chunks of one capture [`merge`](FlowTable::merge) into the same
//! result in any order: every per-side figure is a sum or a first-seen time.
//! Who originated a flow, its Zeek-like `conn_state` and `history` are only
//! decided at the end, from those figures.

use crate::capfile::Frame;
use crate::decode::{Addr, Headers, PROTO_TCP, tcp_flag};
use crate::packets::{CaptureMeta, proto_name};
use crate::resets::{self, Reset, Seen};
use crate::table::{Column, Kind, Table, col};
use arrow_array::builder::{
    StringBuilder, StringDictionaryBuilder, TimestampNanosecondBuilder, UInt8Builder,
    UInt16Builder, UInt64Builder,
};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, RecordBatch};
use std::collections::HashMap;
use std::sync::Arc;

/// The columns of `flows`, in table order.
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
        "network namespace of the interface the flow was first seen on",
    ),
    col(
        "proto",
        Kind::Dict,
        false,
        "tcp, udp, icmp, ... or the protocol number",
    ),
    col("ip_proto", Kind::U8, false, "IP protocol number"),
    col(
        "src_ip",
        Kind::Str,
        false,
        "originator address (sender of the first SYN, else of the first packet)",
    ),
    col("src_port", Kind::U16, true, "originator port"),
    col("dst_ip", Kind::Str, false, "responder address"),
    col("dst_port", Kind::U16, true, "responder port"),
    col("first_ts", Kind::Ts, false, "first packet"),
    col("last_ts", Kind::Ts, false, "last packet"),
    col("packets", Kind::U64, false, "packets both ways"),
    col("bytes", Kind::U64, false, "wire bytes both ways"),
    col(
        "orig_packets",
        Kind::U64,
        false,
        "packets from the originator",
    ),
    col(
        "resp_packets",
        Kind::U64,
        false,
        "packets from the responder",
    ),
    col(
        "orig_bytes",
        Kind::U64,
        false,
        "wire bytes from the originator",
    ),
    col(
        "resp_bytes",
        Kind::U64,
        false,
        "wire bytes from the responder",
    ),
    col(
        "orig_payload_bytes",
        Kind::U64,
        false,
        "transport payload bytes from the originator",
    ),
    col(
        "resp_payload_bytes",
        Kind::U64,
        false,
        "transport payload bytes from the responder",
    ),
    col(
        "tcp_flags",
        Kind::U16,
        true,
        "every TCP flag seen, OR-ed (see packets.tcp_flags)",
    ),
    col(
        "history",
        Kind::Str,
        true,
        "Zeek-like history: S syn, H syn-ack, A pure ack, D data, F fin, R rst; upper case from the originator, lower from the responder, in order of first appearance",
    ),
    col(
        "conn_state",
        Kind::Dict,
        false,
        "Zeek conn_state: S0 S1 SF REJ S2 S3 RSTO RSTR RSTOS0 RSTRH SH SHR OTH",
    ),
    col(
        "syn_retries",
        Kind::U64,
        true,
        "SYNs from the originator beyond the first",
    ),
    col("orig_rsts", Kind::U64, true, "RSTs sent by the originator"),
    col("resp_rsts", Kind::U64, true, "RSTs sent by the responder"),
];

/// The table as listed by `capsnap tables`.
pub const TABLE: Table = Table {
    name: "flows",
    doc: "one row per 5-tuple and capture point, with Zeek-like conn_state",
    columns: COLUMNS,
};

/// An address and port (0 for protocols without ports).
type Endpoint = (Addr, u16);

/// The two endpoints of a flow in canonical order (`a` <= `b`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    proto: u8,
    a: (Addr, u16),
    b: (Addr, u16),
}

/// Per-direction figures; `first_*` are first-seen times (i64::MAX: never).
#[derive(Debug, Clone, Copy)]
struct Side {
    packets: u64,
    bytes: u64,
    payload: u64,
    flags: u16,
    syns: u64,
    rsts: u64,
    first: i64,
    first_syn: i64,
    first_synack: i64,
    first_ack: i64,
    first_data: i64,
    first_fin: i64,
    first_rst: i64,
    /// Frame number of the first packet (u64::MAX: none).
    first_frame: u64,
    /// The last TCP packet that was not an RST: what an RST from the peer
    /// answers (`resets`).
    last: Option<Seen>,
}

impl Default for Side {
    fn default() -> Self {
        Side {
            packets: 0,
            bytes: 0,
            payload: 0,
            flags: 0,
            syns: 0,
            rsts: 0,
            first: i64::MAX,
            first_syn: i64::MAX,
            first_synack: i64::MAX,
            first_ack: i64::MAX,
            first_data: i64::MAX,
            first_fin: i64::MAX,
            first_rst: i64::MAX,
            first_frame: u64::MAX,
            last: None,
        }
    }
}

impl Side {
    fn merge(&mut self, o: &Side) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.payload += o.payload;
        self.flags |= o.flags;
        self.syns += o.syns;
        self.rsts += o.rsts;
        self.first_frame = self.first_frame.min(o.first_frame);
        if o.last.map(|l| l.frame) > self.last.map(|l| l.frame) {
            self.last = o.last;
        }
        for (mine, theirs) in [
            (&mut self.first, o.first),
            (&mut self.first_syn, o.first_syn),
            (&mut self.first_synack, o.first_synack),
            (&mut self.first_ack, o.first_ack),
            (&mut self.first_data, o.first_data),
            (&mut self.first_fin, o.first_fin),
            (&mut self.first_rst, o.first_rst),
        ] {
            *mine = (*mine).min(theirs);
        }
    }

    fn saw(t: i64) -> bool {
        t != i64::MAX
    }
}

#[derive(Debug, Clone, Copy)]
struct Flow {
    /// Interface of the first packet (for `netns`).
    interface: u32,
    last: i64,
    a: Side,
    b: Side,
}

/// Flows of one capture, being filled.
#[derive(Debug, Default, Clone)]
pub struct FlowTable {
    flows: HashMap<Key, Flow>,
    /// Every RST, with the packet that provoked it when known.
    resets: Vec<Reset>,
    /// First frame of the chunk being added.
    chunk_start: u64,
    /// The RSTs [`FlowTable::open_resets`] left looking for their provoking
    /// packet in earlier chunks, by the flow and side that sent it.
    settling: HashMap<(Key, bool), Vec<usize>>,
}

/// An RST whose provoking packet is in an earlier chunk than its own, if
/// anywhere: the chunks from `rst_frame`'s down to `floor`'s may hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenReset {
    pub rst_frame: u64,
    /// The first packet its receiver sent in the capture.
    pub floor: u64,
}

impl FlowTable {
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The frames added next are those of the chunk that starts at frame
    /// `first_frame`, in order.
    pub fn begin_chunk(&mut self, first_frame: u64) {
        self.chunk_start = first_frame;
    }

    /// Counts one frame whose headers are `h`. Frames without IP addresses
    /// belong to no flow.
    pub fn add(&mut self, frame: &Frame, h: &Headers) {
        let Some((key, forward, s, d)) = key_of(h) else {
            return;
        };
        // Simple packet blocks have no time; they count at the epoch.
        let ts = frame.ts_ns.unwrap_or(0);
        let flow = self.flows.entry(key).or_insert(Flow {
            interface: frame.interface,
            last: ts,
            a: Side::default(),
            b: Side::default(),
        });
        flow.last = flow.last.max(ts);
        let (side, peer) = if forward {
            (&mut flow.a, &flow.b)
        } else {
            (&mut flow.b, &flow.a)
        };
        if let Some(seen) = Seen::of(frame, h) {
            if seen.is_rst() {
                // The peer's last packet answers for the RST only if this
                // thread saw it in this chunk: an earlier chunk may have
                // gone to another thread (settled after the pass).
                let prev = peer.last.filter(|p| p.frame >= self.chunk_start);
                self.resets.push(Reset {
                    src: s,
                    dst: d,
                    rst: seen,
                    prev,
                    open: prev.is_none(),
                    floor: 0,
                });
            } else {
                side.last = Some(seen);
            }
        }
        side.first_frame = side.first_frame.min(frame.number);
        side.packets += 1;
        side.bytes += u64::from(frame.wire_len);
        side.payload += u64::from(h.payload_len.unwrap_or(0));
        side.first = side.first.min(ts);
        if h.payload_len.unwrap_or(0) > 0 {
            side.first_data = side.first_data.min(ts);
        }
        if let Some(tcp) = h.tcp {
            let f = tcp.flags;
            side.flags |= f;
            let syn = f & tcp_flag::SYN != 0;
            let ack = f & tcp_flag::ACK != 0;
            if syn && !ack {
                side.syns += 1;
                side.first_syn = side.first_syn.min(ts);
            }
            if syn && ack {
                side.first_synack = side.first_synack.min(ts);
            }
            // A pure ACK: no other control flag and no payload.
            if ack
                && f & (tcp_flag::SYN | tcp_flag::FIN | tcp_flag::RST) == 0
                && h.payload_len.unwrap_or(0) == 0
            {
                side.first_ack = side.first_ack.min(ts);
            }
            if f & tcp_flag::FIN != 0 {
                side.first_fin = side.first_fin.min(ts);
            }
            if f & tcp_flag::RST != 0 {
                side.rsts += 1;
                side.first_rst = side.first_rst.min(ts);
            }
        }
    }

    /// Adds the flows of another part of the same capture.
    pub fn merge(&mut self, other: FlowTable) {
        self.resets.extend(other.resets);
        for (key, o) in other.flows {
            match self.flows.get_mut(&key) {
                Some(f) => {
                    if o.a.first.min(o.b.first) < f.a.first.min(f.b.first) {
                        f.interface = o.interface;
                    }
                    f.last = f.last.max(o.last);
                    f.a.merge(&o.a);
                    f.b.merge(&o.b);
                }
                None => {
                    self.flows.insert(key, o);
                }
            }
        }
    }

    /// After every chunk was added and merged: the RSTs whose provoking
    /// packet may be in an earlier chunk than theirs. Those whose receiver
    /// sent nothing before them have none, and are settled here.
    pub fn open_resets(&mut self) -> Vec<OpenReset> {
        for (i, r) in self.resets.iter_mut().enumerate() {
            if !r.open {
                continue;
            }
            let (key, forward) = key_between(PROTO_TCP, r.src, r.dst);
            r.floor = self.flows.get(&key).map_or(u64::MAX, |f| {
                if forward {
                    f.b.first_frame
                } else {
                    f.a.first_frame
                }
            });
            if r.floor >= r.rst.frame {
                r.open = false;
                continue;
            }
            // Offered frames are packets the peer sent: `!forward`.
            self.settling.entry((key, !forward)).or_default().push(i);
        }
        self.still_open()
    }

    /// The RSTs still looking for their provoking packet.
    pub fn still_open(&self) -> Vec<OpenReset> {
        self.settling
            .values()
            .flatten()
            .map(|&i| OpenReset {
                rst_frame: self.resets[i].rst.frame,
                floor: self.resets[i].floor,
            })
            .collect()
    }

    /// A frame of a chunk before an open RST's, offered to the RSTs still
    /// open: one its receiver sent in its flow, before it and not an RST,
    /// is its provoking packet if later than the one it has.
    pub fn offer(&mut self, frame: &Frame, h: &Headers) {
        let Some((key, forward, ..)) = key_of(h) else {
            return;
        };
        let Some(waiting) = self.settling.get(&(key, forward)) else {
            return;
        };
        let Some(seen) = Seen::of(frame, h).filter(|s| !s.is_rst()) else {
            return;
        };
        for &i in waiting {
            let r = &mut self.resets[i];
            if r.open && seen.frame < r.rst.frame && r.prev.is_none_or(|p| p.frame < seen.frame) {
                r.prev = Some(seen);
            }
        }
    }

    /// Every frame of the chunk starting at `first_frame` was offered, and
    /// those of the chunks after it up to each open RST's: an RST that
    /// found its packet, or whose receiver's first packet is in this chunk
    /// or later, is settled.
    pub fn chunk_offered(&mut self, first_frame: u64) {
        let resets = &mut self.resets;
        for waiting in self.settling.values_mut() {
            waiting.retain(|&i| {
                let r = &mut resets[i];
                // The chunk comes after the RST: it could not hold its packet.
                if r.rst.frame < first_frame {
                    return true;
                }
                r.open = r.prev.is_none() && r.floor < first_frame;
                r.open
            });
        }
        self.settling.retain(|_, w| !w.is_empty());
    }

    /// The `resets` rows of this capture (after the open ones were settled).
    pub fn take_resets(&mut self, meta: &CaptureMeta) -> RecordBatch {
        self.settling.clear();
        resets::finish(std::mem::take(&mut self.resets), meta)
    }

    /// The flows as one batch of the `flows` schema, ordered by first packet
    /// then by endpoints, so output does not depend on partitioning.
    pub fn finish(self, meta: &CaptureMeta) -> RecordBatch {
        let mut rows: Vec<(Key, Flow, bool)> = self
            .flows
            .into_iter()
            .map(|(k, f)| {
                let a_orig = a_is_originator(&f);
                (k, f, a_orig)
            })
            .collect();
        rows.sort_by_key(|(k, f, _)| (f.a.first.min(f.b.first), k.proto, k.a, k.b));
        let n = rows.len();
        let mut bundle = StringDictionaryBuilder::<Int32Type>::new();
        let mut host = StringDictionaryBuilder::<Int32Type>::new();
        let mut capture = StringDictionaryBuilder::<Int32Type>::new();
        let mut netns = StringDictionaryBuilder::<Int32Type>::new();
        let mut proto = StringDictionaryBuilder::<Int32Type>::new();
        let mut ip_proto = UInt8Builder::with_capacity(n);
        let (mut src_ip, mut dst_ip) = (StringBuilder::new(), StringBuilder::new());
        let (mut src_port, mut dst_port) = (UInt16Builder::new(), UInt16Builder::new());
        let mut first_ts = TimestampNanosecondBuilder::new().with_timezone("UTC");
        let mut last_ts = TimestampNanosecondBuilder::new().with_timezone("UTC");
        let mut counts: [UInt64Builder; 8] = Default::default();
        let mut tcp_flags = UInt16Builder::new();
        let mut history = StringBuilder::new();
        let mut conn_state = StringDictionaryBuilder::<Int32Type>::new();
        let mut tcp_counts: [UInt64Builder; 3] = Default::default();
        let mut text = String::new();
        for (k, f, a_orig) in &rows {
            let (o, r, oe, re) = if *a_orig {
                (&f.a, &f.b, k.a, k.b)
            } else {
                (&f.b, &f.a, k.b, k.a)
            };
            bundle.append_value(&meta.bundle);
            host.append_option(meta.host.as_deref());
            capture.append_value(&meta.capture);
            netns.append_option(
                meta.interfaces
                    .get(f.interface as usize)
                    .and_then(|i| i.netns.as_deref()),
            );
            match proto_name(k.proto) {
                Some(p) => proto.append_value(p),
                None => proto.append_value(k.proto.to_string()),
            }
            ip_proto.append_value(k.proto);
            oe.0.write_to(&mut text);
            src_ip.append_value(&text);
            re.0.write_to(&mut text);
            dst_ip.append_value(&text);
            let has_ports = oe.1 != 0 || re.1 != 0;
            src_port.append_option(has_ports.then_some(oe.1));
            dst_port.append_option(has_ports.then_some(re.1));
            first_ts.append_value(o.first.min(r.first));
            last_ts.append_value(f.last);
            for (b, v) in counts.iter_mut().zip([
                o.packets + r.packets,
                o.bytes + r.bytes,
                o.packets,
                r.packets,
                o.bytes,
                r.bytes,
                o.payload,
                r.payload,
            ]) {
                b.append_value(v);
            }
            let tcp = k.proto == PROTO_TCP;
            tcp_flags.append_option(tcp.then_some(o.flags | r.flags));
            history.append_option(tcp.then(|| history_of(o, r)));
            conn_state.append_value(if tcp {
                tcp_state(o, r)
            } else if r.packets > 0 {
                "SF"
            } else {
                "S0"
            });
            let retries = o.syns.saturating_sub(1);
            for (b, v) in tcp_counts.iter_mut().zip([retries, o.rsts, r.rsts]) {
                b.append_option(tcp.then_some(v));
            }
        }
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(bundle.finish()),
            Arc::new(host.finish()),
            Arc::new(capture.finish()),
            Arc::new(netns.finish()),
            Arc::new(proto.finish()),
            Arc::new(ip_proto.finish()),
            Arc::new(src_ip.finish()),
            Arc::new(src_port.finish()),
            Arc::new(dst_ip.finish()),
            Arc::new(dst_port.finish()),
            Arc::new(first_ts.finish()),
            Arc::new(last_ts.finish()),
        ];
        arrays.extend(counts.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        arrays.push(Arc::new(tcp_flags.finish()));
        arrays.push(Arc::new(history.finish()));
        arrays.push(Arc::new(conn_state.finish()));
        arrays.extend(
            tcp_counts
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        RecordBatch::try_new(TABLE.schema(), arrays).expect("flows arrays follow COLUMNS")
    }
}

/// The flow of a frame with headers `h`, whether its sender is the key's
/// `a`, and its sender and receiver; `None` without IP addresses.
fn key_of(h: &Headers) -> Option<(Key, bool, Endpoint, Endpoint)> {
    let (Some(src), Some(dst), Some(proto)) = (h.src, h.dst, h.ip_proto) else {
        return None;
    };
    let s = (src, h.src_port.unwrap_or(0));
    let d = (dst, h.dst_port.unwrap_or(0));
    let (key, forward) = key_between(proto, s, d);
    Some((key, forward, s, d))
}

/// The flow between sender `s` and receiver `d` (endpoints in canonical
/// order), and whether `s` is its `a`.
fn key_between(proto: u8, s: Endpoint, d: Endpoint) -> (Key, bool) {
    if s <= d {
        (Key { proto, a: s, b: d }, true)
    } else {
        (Key { proto, a: d, b: s }, false)
    }
}

/// The originator sent the first bare SYN; failing that, the side that
/// answered with SYN-ACK is the responder; failing that, whoever spoke first.
fn a_is_originator(f: &Flow) -> bool {
    let (a, b) = (&f.a, &f.b);
    if Side::saw(a.first_syn) || Side::saw(b.first_syn) {
        return a.first_syn <= b.first_syn;
    }
    if Side::saw(a.first_synack) || Side::saw(b.first_synack) {
        return b.first_synack <= a.first_synack;
    }
    a.first <= b.first
}

/// Zeek's conn_state for TCP (Zeek base/protocols/conn/main.zeek), from
/// originator `o` and responder `r`.
fn tcp_state(o: &Side, r: &Side) -> &'static str {
    let syn = Side::saw(o.first_syn);
    let synack = Side::saw(r.first_synack);
    let (o_rst, r_rst) = (o.rsts > 0, r.rsts > 0);
    let (o_fin, r_fin) = (Side::saw(o.first_fin), Side::saw(r.first_fin));
    match (syn, synack) {
        (true, true) => {
            if o_rst && (!r_rst || o.first_rst <= r.first_rst) {
                "RSTO"
            } else if r_rst {
                "RSTR"
            } else if o_fin && r_fin {
                "SF"
            } else if o_fin {
                "S2"
            } else if r_fin {
                "S3"
            } else {
                "S1"
            }
        }
        (true, false) if r_rst => "REJ",
        (true, false) if o_rst => "RSTOS0",
        (true, false) if o_fin => "SH",
        (true, false) => "S0",
        (false, true) if r_rst => "RSTRH",
        (false, true) if r_fin => "SHR",
        _ => "OTH",
    }
}

fn history_of(o: &Side, r: &Side) -> String {
    let mut events: Vec<(i64, char)> = [
        (o.first_syn, 'S'),
        (o.first_synack, 'H'),
        (o.first_ack, 'A'),
        (o.first_data, 'D'),
        (o.first_fin, 'F'),
        (o.first_rst, 'R'),
        (r.first_syn, 's'),
        (r.first_synack, 'h'),
        (r.first_ack, 'a'),
        (r.first_data, 'd'),
        (r.first_fin, 'f'),
        (r.first_rst, 'r'),
    ]
    .into_iter()
    .filter(|(t, _)| Side::saw(*t))
    .collect();
    events.sort();
    events.into_iter().map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Tcp;
    use crate::packets::InterfaceMeta;
    use arrow_array::cast::AsArray;
    use arrow_array::types::UInt64Type;

    fn addr(last: u8) -> Addr {
        let mut bytes = [0; 16];
        bytes[..4].copy_from_slice(&[10, 0, 0, last]);
        Addr { v6: false, bytes }
    }

    /// A TCP frame from 10.0.0.`from` to 10.0.0.`to` with `flags` at `ts`.
    fn tcp(t: &mut FlowTable, ts: i64, from: (u8, u16), to: (u8, u16), flags: u16, payload: u32) {
        let (mut frame, mut h) = numbered(0, from, to, flags, 0);
        frame.ts_ns = Some(ts);
        frame.wire_len = 60 + payload;
        h.payload_len = Some(payload);
        t.add(&frame, &h);
    }

    fn meta() -> CaptureMeta {
        CaptureMeta {
            bundle: "b".into(),
            host: None,
            capture: "host".into(),
            interfaces: vec![InterfaceMeta {
                link_type: 1,
                name: None,
                netns: None,
            }],
        }
    }

    fn states(t: FlowTable) -> Vec<(String, String, u64)> {
        let batch = t.finish(&meta());
        let state = batch.column_by_name("conn_state").unwrap();
        let state = datafusion_free_dict(state);
        let hist = batch
            .column_by_name("history")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let retries = batch
            .column_by_name("syn_retries")
            .unwrap()
            .as_primitive::<UInt64Type>()
            .clone();
        (0..batch.num_rows())
            .map(|i| {
                (
                    state[i].clone(),
                    hist.value(i).to_string(),
                    retries.value(i),
                )
            })
            .collect()
    }

    fn datafusion_free_dict(a: &ArrayRef) -> Vec<String> {
        let d = a.as_dictionary::<Int32Type>();
        let values = d.values().as_string::<i32>();
        d.keys()
            .iter()
            .map(|k| values.value(k.unwrap() as usize).to_string())
            .collect()
    }

    use tcp_flag::{ACK, FIN, PSH, RST, SYN};
    const C: (u8, u16) = (9, 40000);
    const S: (u8, u16) = (1, 80);

    /// (name, [(ts, from client?, flags, payload)], conn_state, history)
    type Case<'a> = (&'a str, &'a [(i64, bool, u16, u32)], &'a str, &'a str);

    #[test]
    fn conn_states_like_zeek() {
        let cases: &[Case] = &[
            // (name, [(ts, from client?, flags, payload)], state, history)
            (
                "normal",
                &[
                    (1, true, SYN, 0),
                    (2, false, SYN | ACK, 0),
                    (3, true, ACK, 0),
                    (4, true, ACK, 10),
                    (5, true, FIN | ACK, 0),
                    (6, false, FIN | ACK, 0),
                ],
                "SF",
                "ShADFf",
            ),
            (
                "no answer, two retries",
                &[(1, true, SYN, 0), (2, true, SYN, 0), (3, true, SYN, 0)],
                "S0",
                "S",
            ),
            (
                "rejected",
                &[(1, true, SYN, 0), (2, false, RST | ACK, 0)],
                "REJ",
                "Sr",
            ),
            (
                "reset by responder",
                &[
                    (1, true, SYN, 0),
                    (2, false, SYN | ACK, 0),
                    (3, true, ACK, 5),
                    (4, false, RST, 0),
                ],
                "RSTR",
                "ShDr",
            ),
            (
                "reset by originator",
                &[
                    (1, true, SYN, 0),
                    (2, false, SYN | ACK, 0),
                    (3, true, RST, 0),
                ],
                "RSTO",
                "ShR",
            ),
            (
                "midstream",
                &[(1, false, ACK, 5), (2, true, ACK, 0)],
                "OTH",
                "Da",
            ),
            (
                "established",
                &[
                    (1, true, SYN, 0),
                    (2, false, SYN | ACK, 0),
                    (3, true, ACK, 0),
                ],
                "S1",
                "ShA",
            ),
            (
                "half-open then fin",
                &[(1, true, SYN, 0), (2, true, FIN, 0)],
                "SH",
                "SF",
            ),
        ];
        for (name, packets, state, history) in cases {
            let mut t = FlowTable::default();
            for &(ts, client, flags, payload) in *packets {
                let (from, to) = if client { (C, S) } else { (S, C) };
                tcp(&mut t, ts, from, to, flags, payload);
            }
            let got = states(t);
            assert_eq!(got.len(), 1, "{name}");
            assert_eq!(
                (got[0].0.as_str(), got[0].1.as_str()),
                (*state, *history),
                "{name}"
            );
        }
    }

    #[test]
    fn merge_in_any_order_gives_same_flow() {
        let packets = [
            (1, C, S, SYN),
            (2, C, S, SYN),
            (3, S, C, SYN | ACK),
            (4, C, S, ACK),
            (5, S, C, RST),
        ];
        let mut whole = FlowTable::default();
        for &(ts, f, to, fl) in &packets {
            tcp(&mut whole, ts, f, to, fl, 0);
        }
        let (mut first, mut second) = (FlowTable::default(), FlowTable::default());
        for &(ts, f, to, fl) in &packets[..2] {
            tcp(&mut first, ts, f, to, fl, 0);
        }
        for &(ts, f, to, fl) in &packets[2..] {
            tcp(&mut second, ts, f, to, fl, 0);
        }
        second.merge(first);
        let (a, b) = (states(whole), states(second));
        assert_eq!(a, b);
        assert_eq!(a[0], ("RSTR".to_string(), "ShAr".to_string(), 1));
    }

    #[test]
    fn originator_is_the_syn_sender_even_if_seen_second() {
        let mut t = FlowTable::default();
        tcp(&mut t, 1, S, C, SYN | ACK, 0);
        tcp(&mut t, 2, C, S, SYN, 0);
        let batch = t.finish(&meta());
        assert_eq!(
            batch
                .column_by_name("src_ip")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "10.0.0.9"
        );
    }

    /// Frame `number` from `from` to `to` with `flags` and `seq`, as the
    /// pass sees it: its frame and headers.
    fn numbered(
        number: u64,
        from: (u8, u16),
        to: (u8, u16),
        flags: u16,
        seq: u32,
    ) -> (Frame<'static>, Headers) {
        let h = Headers {
            src: Some(addr(from.0)),
            dst: Some(addr(to.0)),
            ip_proto: Some(PROTO_TCP),
            src_port: Some(from.1),
            dst_port: Some(to.1),
            tcp: Some(Tcp {
                flags,
                seq,
                ..Tcp::default()
            }),
            payload_len: Some(0),
            ..Headers::default()
        };
        let frame = Frame {
            number,
            ts_ns: Some(number as i64 * 1000),
            interface: 0,
            data: &[],
            wire_len: 60,
            direction: None,
            comment: None,
        };
        (frame, h)
    }

    /// (frame, src_ip, prev_frame, prev_seq) of every `resets` row.
    fn resets_of(t: &mut FlowTable) -> Vec<(u64, String, Option<u64>, Option<u32>)> {
        use arrow_array::Array;
        use arrow_array::types::UInt32Type;
        let b = t.take_resets(&meta());
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        let (frame, src, prev, seq) = (
            col("frame"),
            col("src_ip"),
            col("prev_frame"),
            col("prev_seq"),
        );
        let (frame, src) = (frame.as_primitive::<UInt64Type>(), src.as_string::<i32>());
        let (prev, seq) = (
            prev.as_primitive::<UInt64Type>(),
            seq.as_primitive::<UInt32Type>(),
        );
        (0..b.num_rows())
            .map(|i| {
                (
                    frame.value(i),
                    src.value(i).to_owned(),
                    prev.is_valid(i).then(|| prev.value(i)),
                    seq.is_valid(i).then(|| seq.value(i)),
                )
            })
            .collect()
    }

    #[test]
    fn an_rst_takes_the_last_packet_its_receiver_sent_before_it() {
        let mut t = FlowTable::default();
        t.begin_chunk(1);
        for (n, from, to, flags, seq) in [
            (1, C, S, ACK, 100),
            (2, S, C, ACK, 7),
            (3, C, S, ACK | PSH, 200),
            // The receiver's own RSTs are not what provoked one.
            (4, C, S, RST, 300),
            (5, S, C, RST, 8),
            (6, C, S, ACK, 400),
        ] {
            let (frame, h) = numbered(n, from, to, flags, seq);
            t.add(&frame, &h);
        }
        assert!(t.open_resets().is_empty());
        assert_eq!(
            resets_of(&mut t),
            [
                (4, "10.0.0.9".into(), Some(2), Some(7)),
                (5, "10.0.0.1".into(), Some(3), Some(200)),
            ]
        );
    }

    /// The pass gives chunks to threads as they come: the thread that
    /// decodes an RST's chunk may have decoded an earlier packet of its
    /// flow, but not the last one before it. That RST is settled from the
    /// chunks before it, read backwards after the pass.
    #[test]
    fn an_rst_whose_packet_another_thread_decoded_is_settled_from_earlier_chunks() {
        // (frame, from, to, flags, seq) of each chunk's packets.
        type Packet = (u64, (u8, u16), (u8, u16), u16, u32);
        let chunks: [&[Packet]; 3] = [
            &[
                (1, C, S, SYN, 10),
                (2, S, C, SYN | ACK, 50),
                (3, C, S, ACK, 11),
            ],
            &[(4, C, S, ACK | PSH, 20), (5, S, C, ACK, 51)],
            &[(6, S, C, RST, 52), (7, C, S, ACK, 30)],
        ];
        let (mut x, mut y) = (FlowTable::default(), FlowTable::default());
        for (k, on_y) in [(0, false), (1, true), (2, false)] {
            let thread = if on_y { &mut y } else { &mut x };
            thread.begin_chunk(chunks[k][0].0);
            for &(n, from, to, flags, seq) in chunks[k] {
                let (frame, h) = numbered(n, from, to, flags, seq);
                thread.add(&frame, &h);
            }
        }
        x.merge(y);
        assert_eq!(
            x.open_resets(),
            [OpenReset {
                rst_frame: 6,
                floor: 1
            }]
        );
        for k in (0..3).rev() {
            for &(n, from, to, flags, seq) in chunks[k] {
                let (frame, h) = numbered(n, from, to, flags, seq);
                x.offer(&frame, &h);
            }
            x.chunk_offered(chunks[k][0].0);
            if k == 2 {
                assert_eq!(x.still_open().len(), 1, "frame 7 comes after the RST");
            }
            if k == 1 {
                assert!(x.still_open().is_empty(), "frame 4 is in chunk 1");
            }
        }
        assert_eq!(
            resets_of(&mut x),
            [(6, "10.0.0.1".into(), Some(4), Some(20))]
        );
    }

    #[test]
    fn an_rst_before_anything_from_its_receiver_has_no_provoking_packet() {
        let mut t = FlowTable::default();
        t.begin_chunk(1);
        let (f1, h1) = numbered(1, S, C, RST, 5);
        t.add(&f1, &h1);
        t.begin_chunk(2);
        let (f2, h2) = numbered(2, C, S, ACK, 9);
        t.add(&f2, &h2);
        assert!(t.open_resets().is_empty());
        assert_eq!(resets_of(&mut t), [(1, "10.0.0.1".into(), None, None)]);
    }
}
