//! The `dns` table: one row per DNS message seen in a capture, queries
//! matched with their responses.
//!
//! A [`DnsTable`] is filled from decoded frames like a
//! [`FlowTable`](crate::FlowTable): UDP and TCP port 53, the header and
//! the first question read in place (RFC 1035 section 4.1). Tables filled
//! from different chunks of one capture [`merge`](DnsTable::merge); the
//! matching of queries and responses is done once, at
//! [`finish`](DnsTable::finish), over the whole capture in frame order.
//!
//! A message is a query or a response by its QR bit, not by its ports, so
//! the client and server columns are right for a resolver talking to
//! another resolver on port 53 too. A query is matched with the first
//! response after it on the same interface with the same client and
//! server address and port, transport and transaction id (what a stub
//! resolver checks, RFC 5452 section 9.1). Hostile names (compression
//! loops, forward pointers, names over 255 octets, cut by the snap length)
//! leave `query_name` empty and say why in `problem`; they never panic.

use crate::capfile::Frame;
use crate::decode::{Addr, Headers, PROTO_TCP, PROTO_UDP};
use crate::packets::CaptureMeta;
use crate::table::{Column, Kind, Table, col};
use arrow_array::builder::{
    BooleanBuilder, StringBuilder, StringDictionaryBuilder, TimestampNanosecondBuilder,
    UInt8Builder, UInt16Builder, UInt64Builder,
};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, RecordBatch};
use std::collections::HashMap;
use std::sync::Arc;

/// The DNS port (RFC 1035 section 4.2).
pub const PORT: u16 = 53;

/// A query with no response is `answered = false` only when the capture
/// went on at least this long after it; before that it may still have
/// been on its way (`answered` is null). One second is far above a
/// healthy answer and well below the 5 s a glibc stub waits (resolv.conf
/// `timeout:`), so a query the stub gave up on is always counted.
pub const UNANSWERED_AFTER_NS: i64 = 1_000_000_000;

/// The columns of `dns`, in table order.
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
        "network namespace of the capture interface",
    ),
    col(
        "ifname",
        Kind::Dict,
        true,
        "interface name (pcapng if_name)",
    ),
    col(
        "frame",
        Kind::U64,
        false,
        "frame number, 1-based as in Wireshark",
    ),
    col("ts", Kind::Ts, true, "capture time, UTC"),
    col("transport", Kind::Dict, false, "udp or tcp"),
    col(
        "client_ip",
        Kind::Str,
        false,
        "the asking side: source of a query, destination of a response",
    ),
    col("client_port", Kind::U16, false, "the asking side's port"),
    col(
        "server_ip",
        Kind::Str,
        false,
        "the answering side (the DNS server)",
    ),
    col("server_port", Kind::U16, false, "the server's port"),
    col("id", Kind::U16, false, "transaction id"),
    col(
        "response",
        Kind::Bool,
        false,
        "QR bit: a response (else a query)",
    ),
    col(
        "opcode",
        Kind::U8,
        false,
        "opcode: 0 query, 4 notify, 5 update",
    ),
    col(
        "truncated",
        Kind::Bool,
        false,
        "TC bit: the answer did not fit (the client retries over TCP)",
    ),
    col(
        "query_name",
        Kind::Str,
        true,
        "name of the first question, as dig prints it without the final dot (root: `.`); null when it could not be read (see problem)",
    ),
    col(
        "query_type",
        Kind::Dict,
        true,
        "type of the first question: A, AAAA, PTR ... or TYPEn (RFC 3597)",
    ),
    col(
        "rcode",
        Kind::Dict,
        true,
        "response code of a response: NOERROR, NXDOMAIN, SERVFAIL, REFUSED ... (header bits only; null on queries)",
    ),
    col(
        "answers",
        Kind::U16,
        false,
        "answer count (ANCOUNT) of the header",
    ),
    col(
        "authorities",
        Kind::U16,
        false,
        "authority count (NSCOUNT) of the header",
    ),
    col(
        "additionals",
        Kind::U16,
        false,
        "additional count (ARCOUNT) of the header",
    ),
    col(
        "problem",
        Kind::Str,
        true,
        "why the question was not read: cut by the snap length, a compression loop, a name over 255 octets ...",
    ),
    col(
        "retransmission",
        Kind::Bool,
        true,
        "a query sent again: the same client, server and id asked before in this capture (null on responses)",
    ),
    col(
        "answered",
        Kind::Bool,
        true,
        "of a query: a response came; false when none came and the capture went on for 1 s or more after it; null when the capture ended sooner (and on responses)",
    ),
    col(
        "response_frame",
        Kind::U64,
        true,
        "of a query: the frame of its response",
    ),
    col(
        "query_frame",
        Kind::U64,
        true,
        "of a response: the frame of the first query it answers (the first of its retransmissions)",
    ),
    col(
        "latency_us",
        Kind::U64,
        true,
        "microseconds from the query (for a response: from the first query it answers) to the response",
    ),
];

/// The table as listed by `capsnap tables`.
pub const TABLE: Table = Table {
    name: "dns",
    doc: "one row per DNS message (UDP and TCP port 53) in a capture, each query matched with its response",
    columns: COLUMNS,
};

/// Why a question could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The message ends (or the snap length cut it) inside the question.
    Cut,
    /// A compression pointer that does not point before itself (RFC 1035
    /// section 4.1.4: "a prior occurrence"), the only way to loop.
    Pointer,
    /// More than 255 octets (RFC 1035 section 2.3.4).
    TooLong,
    /// A label type other than a length or a pointer (0x40 and 0x80;
    /// RFC 6891 section 5 retired the extended label types).
    LabelType(u8),
    /// The header has no question (QDCOUNT 0).
    NoQuestion,
}

impl Problem {
    fn text(self) -> String {
        match self {
            Problem::Cut => "question cut short (snap length or a short message)".into(),
            Problem::Pointer => "compression pointer that does not point backwards (loop)".into(),
            Problem::TooLong => "name longer than 255 octets".into(),
            Problem::LabelType(t) => format!("label type 0x{t:02x}"),
            Problem::NoQuestion => "no question".into(),
        }
    }
}

/// The fixed header of a message (RFC 1035 section 4.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    pub response: bool,
    pub opcode: u8,
    pub truncated: bool,
    pub rcode: u8,
    pub questions: u16,
    pub answers: u16,
    pub authorities: u16,
    pub additionals: u16,
}

impl Header {
    /// The header of `msg`, if it has the 12 bytes.
    pub fn parse(msg: &[u8]) -> Option<Header> {
        let w = |at: usize| -> Option<u16> {
            Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]))
        };
        let flags = w(2)?;
        Some(Header {
            id: w(0)?,
            response: flags & 0x8000 != 0,
            opcode: ((flags >> 11) & 0x0f) as u8,
            truncated: flags & 0x0200 != 0,
            rcode: (flags & 0x000f) as u8,
            questions: w(4)?,
            answers: w(6)?,
            authorities: w(8)?,
            additionals: w(10)?,
        })
    }
}

/// The first question of `msg` (whose header is `h`): its name written to
/// `name` (cleared first) and its type.
pub fn question(msg: &[u8], h: &Header, name: &mut String) -> Result<u16, Problem> {
    name.clear();
    if h.questions == 0 {
        return Err(Problem::NoQuestion);
    }
    let end = read_name(msg, 12, name)?;
    let qtype = msg.get(end..end + 2).ok_or(Problem::Cut)?;
    Ok(u16::from_be_bytes([qtype[0], qtype[1]]))
}

/// Reads the name at `at` into `out` and returns the offset just after it
/// where it started (after its first pointer, if it has one).
///
/// Terminates on any input: every pointer must point before itself, and
/// every label adds at least two octets to a count that may not pass 255,
/// so the walk ends or fails within 255 labels and a chain of backward
/// jumps.
pub fn read_name(msg: &[u8], mut at: usize, out: &mut String) -> Result<usize, Problem> {
    let mut after = None;
    let mut octets = 0usize;
    loop {
        let len = *msg.get(at).ok_or(Problem::Cut)?;
        match len & 0xc0 {
            0xc0 => {
                let low = *msg.get(at + 1).ok_or(Problem::Cut)?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(low);
                if target >= at {
                    return Err(Problem::Pointer);
                }
                after.get_or_insert(at + 2);
                at = target;
            }
            0x00 if len == 0 => {
                if out.is_empty() {
                    out.push('.');
                }
                return Ok(after.unwrap_or(at + 1));
            }
            0x00 => {
                let len = usize::from(len);
                octets += len + 1;
                if octets + 1 > 255 {
                    return Err(Problem::TooLong);
                }
                let label = msg.get(at + 1..at + 1 + len).ok_or(Problem::Cut)?;
                if !out.is_empty() {
                    out.push('.');
                }
                escape(label, out);
                at += 1 + len;
            }
            t => return Err(Problem::LabelType(t)),
        }
    }
}

/// Label bytes as dig prints them (RFC 4343 section 2.1): `.` and `\`
/// escaped with a backslash, other bytes outside printable ASCII as `\DDD`.
fn escape(label: &[u8], out: &mut String) {
    use std::fmt::Write;
    for &b in label {
        match b {
            b'.' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x21..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
}

/// Name of a question type (IANA DNS parameters), else `TYPEn`.
pub fn type_name(t: u16) -> std::borrow::Cow<'static, str> {
    let name = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        39 => "DNAME",
        41 => "OPT",
        43 => "DS",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        52 => "TLSA",
        64 => "SVCB",
        65 => "HTTPS",
        251 => "IXFR",
        252 => "AXFR",
        255 => "ANY",
        257 => "CAA",
        _ => return format!("TYPE{t}").into(),
    };
    name.into()
}

/// Name of a response code (RFC 1035 section 4.1.1, RFC 2136), else `RCODEn`.
pub fn rcode_name(r: u8) -> std::borrow::Cow<'static, str> {
    let name = match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => return format!("RCODE{r}").into(),
    };
    name.into()
}

/// One message as read from a frame.
#[derive(Debug, Clone)]
struct Message {
    frame: u64,
    ts: Option<i64>,
    interface: u32,
    tcp: bool,
    client: (Addr, u16),
    server: (Addr, u16),
    header: Header,
    /// The question's name and type, or why it could not be read.
    question: Result<(Box<str>, u16), Problem>,
}

/// The DNS messages of one capture, being collected.
#[derive(Debug, Default, Clone)]
pub struct DnsTable {
    messages: Vec<Message>,
    /// The last capture time of any frame (not only DNS): how long the
    /// capture went on after an unanswered query.
    last_ts: Option<i64>,
    name: String,
}

impl DnsTable {
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Looks at one frame whose headers are `h`: a DNS message over UDP or
    /// TCP port 53 becomes a row. Over TCP only a segment holding one
    /// whole message after its two-byte length (RFC 1035 section 4.2.2) is
    /// read; a message split over segments is not reassembled.
    pub fn add(&mut self, frame: &Frame, h: &Headers) {
        if let Some(ts) = frame.ts_ns {
            self.last_ts = Some(self.last_ts.map_or(ts, |t| t.max(ts)));
        }
        let (Some(sport), Some(dport)) = (h.src_port, h.dst_port) else {
            return;
        };
        if sport != PORT && dport != PORT {
            return;
        }
        let (Some(src), Some(dst), Some(proto)) = (h.src, h.dst, h.ip_proto) else {
            return;
        };
        let Some(payload) = h.payload(frame.data) else {
            return;
        };
        let (tcp, msg) = match proto {
            PROTO_UDP => (false, payload),
            PROTO_TCP => {
                let told = h.payload_len.unwrap_or(0) as usize;
                match payload.get(..2) {
                    Some(l)
                        if told > 2
                            && usize::from(u16::from_be_bytes([l[0], l[1]])) == told - 2 =>
                    {
                        (true, &payload[2..])
                    }
                    _ => return,
                }
            }
            _ => return,
        };
        let Some(header) = Header::parse(msg) else {
            return;
        };
        let question =
            question(msg, &header, &mut self.name).map(|t| (self.name.as_str().into(), t));
        let (client, server) = if header.response {
            ((dst, dport), (src, sport))
        } else {
            ((src, sport), (dst, dport))
        };
        self.messages.push(Message {
            frame: frame.number,
            ts: frame.ts_ns,
            interface: frame.interface,
            tcp,
            client,
            server,
            header,
            question,
        });
    }

    /// Adds the messages of another part of the same capture.
    pub fn merge(&mut self, other: DnsTable) {
        self.messages.extend(other.messages);
        self.last_ts = match (self.last_ts, other.last_ts) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// The messages as one batch of the `dns` schema, in frame order, each
    /// query matched with its response.
    pub fn finish(mut self, meta: &CaptureMeta) -> RecordBatch {
        self.messages.sort_by_key(|m| m.frame);
        let n = self.messages.len();
        let matched = self.matches();
        let mut bundle = StringDictionaryBuilder::<Int32Type>::new();
        let mut host = StringDictionaryBuilder::<Int32Type>::new();
        let mut capture = StringDictionaryBuilder::<Int32Type>::new();
        let mut netns = StringDictionaryBuilder::<Int32Type>::new();
        let mut ifname = StringDictionaryBuilder::<Int32Type>::new();
        let mut frame = UInt64Builder::with_capacity(n);
        let mut ts = TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut transport = StringDictionaryBuilder::<Int32Type>::new();
        let (mut client_ip, mut server_ip) = (StringBuilder::new(), StringBuilder::new());
        let (mut client_port, mut server_port, mut id) = (
            UInt16Builder::with_capacity(n),
            UInt16Builder::with_capacity(n),
            UInt16Builder::with_capacity(n),
        );
        let (mut response, mut truncated) = (
            BooleanBuilder::with_capacity(n),
            BooleanBuilder::with_capacity(n),
        );
        let mut opcode = UInt8Builder::with_capacity(n);
        let mut query_name = StringBuilder::new();
        let mut query_type = StringDictionaryBuilder::<Int32Type>::new();
        let mut rcode = StringDictionaryBuilder::<Int32Type>::new();
        let mut counts: [UInt16Builder; 3] = Default::default();
        let mut problem = StringBuilder::new();
        let (mut retransmission, mut answered) = (
            BooleanBuilder::with_capacity(n),
            BooleanBuilder::with_capacity(n),
        );
        let (mut response_frame, mut query_frame, mut latency) = (
            UInt64Builder::with_capacity(n),
            UInt64Builder::with_capacity(n),
            UInt64Builder::with_capacity(n),
        );
        let mut text = String::new();
        for (m, x) in self.messages.iter().zip(&matched) {
            let iface = meta.interfaces.get(m.interface as usize);
            bundle.append_value(&meta.bundle);
            host.append_option(meta.host.as_deref());
            capture.append_value(&meta.capture);
            netns.append_option(iface.and_then(|i| i.netns.as_deref()));
            ifname.append_option(iface.and_then(|i| i.name.as_deref()));
            frame.append_value(m.frame);
            ts.append_option(m.ts);
            transport.append_value(if m.tcp { "tcp" } else { "udp" });
            m.client.0.write_to(&mut text);
            client_ip.append_value(&text);
            client_port.append_value(m.client.1);
            m.server.0.write_to(&mut text);
            server_ip.append_value(&text);
            server_port.append_value(m.server.1);
            let h = &m.header;
            id.append_value(h.id);
            response.append_value(h.response);
            opcode.append_value(h.opcode);
            truncated.append_value(h.truncated);
            match &m.question {
                Ok((name, t)) => {
                    query_name.append_value(name);
                    query_type.append_value(type_name(*t));
                    problem.append_null();
                }
                Err(p) => {
                    query_name.append_null();
                    query_type.append_null();
                    problem.append_value(p.text());
                }
            }
            match h.response {
                true => rcode.append_value(rcode_name(h.rcode)),
                false => rcode.append_null(),
            }
            for (b, v) in counts
                .iter_mut()
                .zip([h.answers, h.authorities, h.additionals])
            {
                b.append_value(v);
            }
            retransmission.append_option(x.retransmission);
            answered.append_option(x.answered);
            response_frame.append_option(x.response_frame);
            query_frame.append_option(x.query_frame);
            latency.append_option(x.latency_us);
        }
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(bundle.finish()),
            Arc::new(host.finish()),
            Arc::new(capture.finish()),
            Arc::new(netns.finish()),
            Arc::new(ifname.finish()),
            Arc::new(frame.finish()),
            Arc::new(ts.finish()),
            Arc::new(transport.finish()),
            Arc::new(client_ip.finish()),
            Arc::new(client_port.finish()),
            Arc::new(server_ip.finish()),
            Arc::new(server_port.finish()),
            Arc::new(id.finish()),
            Arc::new(response.finish()),
            Arc::new(opcode.finish()),
            Arc::new(truncated.finish()),
            Arc::new(query_name.finish()),
            Arc::new(query_type.finish()),
            Arc::new(rcode.finish()),
        ];
        arrays.extend(counts.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        arrays.extend([
            Arc::new(problem.finish()) as ArrayRef,
            Arc::new(retransmission.finish()),
            Arc::new(answered.finish()),
            Arc::new(response_frame.finish()),
            Arc::new(query_frame.finish()),
            Arc::new(latency.finish()),
        ]);
        RecordBatch::try_new(TABLE.schema(), arrays).expect("dns arrays follow COLUMNS")
    }

    /// Matches queries and responses, in frame order: every query still
    /// waiting under a key is answered by the next response under it.
    fn matches(&self) -> Vec<Match> {
        type Key = (u32, bool, (Addr, u16), (Addr, u16), u16);
        /// Per key: the frame and time of the first query of the lookup
        /// under way, and the queries waiting (indices).
        #[derive(Default)]
        struct Lookup {
            first: Option<(u64, i64)>,
            waiting: Vec<usize>,
            /// Queries seen under the key, answered or not.
            asked: bool,
        }
        let mut out = vec![Match::default(); self.messages.len()];
        let mut lookups: HashMap<Key, Lookup> = HashMap::new();
        for (i, m) in self.messages.iter().enumerate() {
            let key = (m.interface, m.tcp, m.client, m.server, m.header.id);
            let ts = m.ts.unwrap_or(0);
            let l = lookups.entry(key).or_default();
            if !m.header.response {
                out[i].retransmission = Some(l.asked);
                l.asked = true;
                l.first.get_or_insert((m.frame, ts));
                l.waiting.push(i);
                continue;
            }
            let Some((first_frame, first_ts)) = l.first.take() else {
                continue;
            };
            out[i].query_frame = Some(first_frame);
            out[i].latency_us = Some(micros(ts - first_ts));
            for q in l.waiting.drain(..) {
                let asked = self.messages[q].ts.unwrap_or(0);
                out[q].answered = Some(true);
                out[q].response_frame = Some(m.frame);
                out[q].latency_us = Some(micros(ts - asked));
            }
        }
        for l in lookups.values() {
            for &q in &l.waiting {
                let asked = self.messages[q].ts.unwrap_or(0);
                let waited = self.last_ts.map_or(0, |last| last - asked);
                out[q].answered = (waited >= UNANSWERED_AFTER_NS).then_some(false);
            }
        }
        out
    }
}

fn micros(ns: i64) -> u64 {
    u64::try_from(ns / 1000).unwrap_or(0)
}

/// What matching found for one message.
#[derive(Debug, Clone, Copy, Default)]
struct Match {
    retransmission: Option<bool>,
    answered: Option<bool>,
    response_frame: Option<u64>,
    query_frame: Option<u64>,
    latency_us: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::InterfaceMeta;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{UInt16Type, UInt64Type};

    /// A DNS message: header fields, then the question name's wire bytes
    /// and type.
    fn message(id: u16, flags: u16, ancount: u16, name: &[u8], qtype: u16) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend(id.to_be_bytes());
        m.extend(flags.to_be_bytes());
        m.extend(1u16.to_be_bytes());
        m.extend(ancount.to_be_bytes());
        m.extend([0, 0, 0, 0]);
        m.extend(name);
        m.extend(qtype.to_be_bytes());
        m.extend(1u16.to_be_bytes());
        m
    }

    const WWW: &[u8] = b"\x03www\x07example\x03com\x00";

    /// An Ethernet/IPv4/UDP frame carrying `payload`.
    fn udp_frame(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0; 12];
        f.extend([0x08, 0x00]);
        let total = (20 + 8 + payload.len()) as u16;
        f.extend([0x45, 0]);
        f.extend(total.to_be_bytes());
        f.extend([0, 1, 0, 0, 64, 17, 0, 0]);
        f.extend(src);
        f.extend(dst);
        f.extend(sport.to_be_bytes());
        f.extend(dport.to_be_bytes());
        f.extend(((8 + payload.len()) as u16).to_be_bytes());
        f.extend([0, 0]);
        f.extend(payload);
        f
    }

    fn add(t: &mut DnsTable, number: u64, ts_ms: i64, data: &[u8]) {
        let mut h = Headers::default();
        crate::decode(crate::link::ETHERNET, data, &mut h);
        let frame = Frame {
            number,
            ts_ns: Some(ts_ms * 1_000_000),
            interface: 0,
            data,
            wire_len: data.len() as u32,
            direction: None,
            comment: None,
        };
        t.add(&frame, &h);
    }

    fn meta() -> CaptureMeta {
        CaptureMeta {
            bundle: "b".into(),
            host: None,
            capture: "c".into(),
            interfaces: vec![InterfaceMeta {
                link_type: 1,
                name: Some("eth0".into()),
                netns: None,
            }],
        }
    }

    const CLIENT: [u8; 4] = [10, 0, 0, 2];
    const SERVER: [u8; 4] = [10, 0, 0, 53];

    #[test]
    fn names_with_compression_and_escapes() {
        let mut out = String::new();
        // A response's answer name pointing back at the question (0xc00c).
        let mut m = message(1, 0x8180, 1, WWW, 1);
        let answer_at = m.len();
        m.extend([0xc0, 12]);
        assert_eq!(read_name(&m, answer_at, &mut out), Ok(answer_at + 2));
        assert_eq!(out, "www.example.com");
        // A label holding a dot, a backslash and a space.
        out.clear();
        assert_eq!(read_name(b"\x03a.\\\x02 b\x00", 0, &mut out), Ok(8));
        assert_eq!(out, "a\\.\\\\.\\032b");
        out.clear();
        assert_eq!(read_name(b"\x00", 0, &mut out), Ok(1));
        assert_eq!(out, ".");
    }

    #[test]
    fn hostile_names_are_refused_not_followed() {
        let mut out = String::new();
        // A pointer to itself, and one pointing forward.
        assert_eq!(read_name(b"\xc0\x00", 0, &mut out), Err(Problem::Pointer));
        assert_eq!(
            read_name(b"\x01a\xc0\x05\x00\x00", 0, &mut out),
            Err(Problem::Pointer)
        );
        // Two names pointing at each other: the second points back into
        // the first, whose pointer points forward.
        out.clear();
        assert_eq!(
            read_name(b"\x01a\xc0\x04\x01b\xc0\x00", 4, &mut out),
            Err(Problem::Pointer)
        );
        // A loop through backward pointers and labels: label at 0 ("x"),
        // then a pointer at 2 back to 0, forever; the length bound ends it.
        out.clear();
        assert_eq!(
            read_name(b"\x01x\xc0\x00", 0, &mut out),
            Err(Problem::TooLong)
        );
        // Cut inside a label, and an extended label type.
        assert_eq!(read_name(b"\x05ab", 0, &mut out), Err(Problem::Cut));
        assert_eq!(
            read_name(b"\x41ab", 0, &mut out),
            Err(Problem::LabelType(0x40))
        );
        // 64 labels of 3: over 255 octets.
        let long: Vec<u8> = std::iter::repeat_n(*b"\x03abc", 64)
            .flatten()
            .chain([0])
            .collect();
        assert_eq!(read_name(&long, 0, &mut out), Err(Problem::TooLong));
    }

    #[test]
    fn queries_match_responses_and_retransmissions_are_marked() {
        let mut t = DnsTable::default();
        let q = message(0x1234, 0x0100, 0, WWW, 1);
        let r = message(0x1234, 0x8183, 0, WWW, 1);
        let lost = message(7, 0x0100, 0, b"\x04slow\x04test\x00", 28);
        add(&mut t, 1, 0, &udp_frame(CLIENT, 40000, SERVER, 53, &q));
        add(&mut t, 2, 5, &udp_frame(CLIENT, 40001, SERVER, 53, &lost));
        // The first try is lost; the stub asks again and is answered.
        add(&mut t, 3, 5000, &udp_frame(CLIENT, 40000, SERVER, 53, &q));
        add(&mut t, 4, 5012, &udp_frame(SERVER, 53, CLIENT, 40000, &r));
        // Not DNS: another port.
        add(&mut t, 5, 6000, &udp_frame(CLIENT, 40002, SERVER, 54, &q));
        let b = t.finish(&meta());
        assert_eq!(b.num_rows(), 4);
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        let s = |n: &str, i: usize| {
            use arrow_array::Array;
            let c = col(n);
            if !c.is_valid(i) {
                return None;
            }
            Some(match c.data_type() {
                arrow_schema::DataType::Boolean => c.as_boolean().value(i).to_string(),
                arrow_schema::DataType::Utf8 => c.as_string::<i32>().value(i).to_owned(),
                _ => {
                    let d = c.as_dictionary::<arrow_array::types::Int32Type>();
                    let k = d.keys().value(i) as usize;
                    d.values().as_string::<i32>().value(k).to_owned()
                }
            })
        };
        assert_eq!(s("query_name", 0).as_deref(), Some("www.example.com"));
        assert_eq!(s("query_type", 1).as_deref(), Some("AAAA"));
        assert_eq!(s("client_ip", 3).as_deref(), Some("10.0.0.2"));
        assert_eq!(s("server_ip", 3).as_deref(), Some("10.0.0.53"));
        assert_eq!(s("rcode", 3).as_deref(), Some("NXDOMAIN"));
        assert_eq!(s("rcode", 0), None);
        assert_eq!(
            [0, 1, 2, 3].map(|i| s("answered", i)),
            [
                Some("true".into()),
                Some("false".into()),
                Some("true".into()),
                None
            ]
        );
        assert_eq!(
            [0, 2].map(|i| s("retransmission", i)),
            [Some("false".into()), Some("true".into())]
        );
        let latency = col("latency_us");
        let latency = latency.as_primitive::<UInt64Type>();
        assert_eq!(latency.value(0), 5_012_000);
        assert_eq!(latency.value(2), 12_000);
        assert_eq!(latency.value(3), 5_012_000, "from the first try");
        let qf = col("query_frame");
        assert_eq!(qf.as_primitive::<UInt64Type>().value(3), 1);
        let ports = col("client_port");
        assert_eq!(ports.as_primitive::<UInt16Type>().value(3), 40000);
    }

    #[test]
    fn a_query_at_the_end_of_the_capture_is_not_called_unanswered() {
        let mut t = DnsTable::default();
        let q = message(9, 0x0100, 0, WWW, 1);
        add(&mut t, 1, 0, &udp_frame(CLIENT, 40000, SERVER, 53, &q));
        add(&mut t, 2, 999, &udp_frame(CLIENT, 1, SERVER, 2, b"x"));
        let b = t.finish(&meta());
        assert!(b.column_by_name("answered").unwrap().is_null(0));
    }

    #[test]
    fn dns_over_tcp_one_message_per_segment() {
        // IPv4 + TCP (data offset 5) from the server, payload: length + message.
        let msg = message(5, 0x8180, 1, WWW, 1);
        let mut payload = (msg.len() as u16).to_be_bytes().to_vec();
        payload.extend(&msg);
        let mut f = vec![0; 12];
        f.extend([0x08, 0x00, 0x45, 0]);
        f.extend(((40 + payload.len()) as u16).to_be_bytes());
        f.extend([0, 1, 0, 0, 64, 6, 0, 0]);
        f.extend(SERVER);
        f.extend(CLIENT);
        f.extend(53u16.to_be_bytes());
        f.extend(40000u16.to_be_bytes());
        f.extend([0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend(&payload);
        let mut t = DnsTable::default();
        add(&mut t, 1, 0, &f);
        assert_eq!(t.len(), 1);
        assert!(t.messages[0].tcp && t.messages[0].header.response);
    }

    proptest::proptest! {
        /// Arbitrary bytes as a DNS payload, at any start: an error or a
        /// name, never a panic, and never a name over 255 octets.
        #[test]
        fn arbitrary_names_never_panic(
            d in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            at in 0usize..300,
        ) {
            let mut out = String::new();
            if read_name(&d, at, &mut out).is_ok() {
                proptest::prop_assert!(out.len() <= 255 * 4);
            }
        }

        /// Every prefix of a real query and response, and arbitrary bytes
        /// after a DNS port, through the whole table.
        #[test]
        fn arbitrary_payloads_never_panic(
            d in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            cut in 0usize..200,
        ) {
            let mut t = DnsTable::default();
            add(&mut t, 1, 0, &udp_frame(CLIENT, 40000, SERVER, 53, &d));
            let mut r = message(1, 0x8180, 1, WWW, 1);
            r.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
            let full = udp_frame(SERVER, 53, CLIENT, 40000, &r);
            add(&mut t, 2, 1, &full[..cut.min(full.len())]);
            let b = t.finish(&meta());
            proptest::prop_assert!(b.num_rows() <= 2);
        }
    }
}
