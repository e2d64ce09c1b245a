//! The `packets` table: one row per captured frame.
//!
//! [`COLUMNS`] is the single list of the table's columns (name, type, doc).
//! [`PacketBuilder`] appends only the projected columns, so a query that
//! reads `rst` decodes headers but builds one boolean column.

use crate::capfile::{Frame, Interface};
use crate::decode::{self, Headers, L3, tcp_flag};
use crate::table::{Column, Kind, Table, schema_of};
use arrow_array::builder::{
    BooleanBuilder, Int32Builder, StringBuilder, StringDictionaryBuilder,
    TimestampNanosecondBuilder, UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, DictionaryArray, RecordBatch, RecordBatchOptions, StringArray};
use arrow_schema::SchemaRef;
use std::sync::{Arc, LazyLock};

/// The table as listed by `capsnap tables`.
pub const TABLE: Table = Table {
    name: "packets",
    doc: "one row per captured frame",
    columns: COLUMNS,
};

macro_rules! columns {
    ($( $id:ident $name:literal $kind:ident $nullable:literal $doc:literal ),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[allow(clippy::upper_case_acronyms)]
        enum Col { $($id),* }
        const ORDER: &[Col] = &[$(Col::$id),*];
        /// The columns of `packets`, in table order.
        pub const COLUMNS: &[Column] = &[$(Column { name: $name, kind: Kind::$kind, nullable: $nullable, doc: $doc }),*];
    };
}

columns! {
    Bundle "bundle" Dict false "bundle (or capture file) the row comes from",
    Host "host" Dict true "node the bundle was collected on",
    Capture "capture" Dict false "capture point label, e.g. host or pod/web",
    Netns "netns" Dict true "network namespace of the capture interface",
    Ifname "ifname" Dict true "interface name (pcapng if_name)",
    LinkType "link_type" U16 false "LINKTYPE_* of the interface",
    Frame "frame" U64 false "frame number, 1-based as in Wireshark",
    Ts "ts" Ts true "capture time, UTC (null for pcapng simple packet blocks, which have none)",
    CapturedBytes "captured_bytes" U32 false "bytes captured (cut by snap length)",
    WireBytes "wire_bytes" U32 false "bytes on the wire",
    Direction "direction" Dict true "in or out, where the capture records it",
    Vlan "vlan" U16 true "outermost 802.1Q VLAN id",
    L3 "l3" Dict true "network layer: ipv4, ipv6, arp or the EtherType",
    SrcIp "src_ip" Str true "source IP address",
    DstIp "dst_ip" Str true "destination IP address",
    IpProto "ip_proto" U8 true "IP protocol number (after IPv6 extension headers)",
    Proto "proto" Dict true "tcp, udp, icmp, icmpv6, sctp or the protocol number",
    Ttl "ttl" U8 true "IPv4 TTL or IPv6 hop limit",
    IpId "ip_id" U32 true "IPv4 identification or IPv6 fragment id",
    Fragment "fragment" Bool true "the IP packet is a fragment",
    SrcPort "src_port" U16 true "TCP/UDP/SCTP source port",
    DstPort "dst_port" U16 true "TCP/UDP/SCTP destination port",
    TcpFlags "tcp_flags" U16 true "TCP flags as a number (FIN=1 SYN=2 RST=4 PSH=8 ACK=16 URG=32 ECE=64 CWR=128 AE/NS=256, reserved bits above)",
    Syn "syn" Bool true "TCP SYN",
    Ack "ack" Bool true "TCP ACK flag",
    Fin "fin" Bool true "TCP FIN",
    Rst "rst" Bool true "TCP RST",
    Psh "psh" Bool true "TCP PSH",
    Urg "urg" Bool true "TCP URG",
    Ece "ece" Bool true "TCP ECE",
    Cwr "cwr" Bool true "TCP CWR",
    Seq "seq" U32 true "TCP sequence number (absolute)",
    AckSeq "ack_seq" U32 true "TCP acknowledgment number (absolute)",
    Window "window" U16 true "TCP window field (unscaled)",
    PayloadBytes "payload_bytes" U32 true "transport payload length per the IP header",
    IcmpType "icmp_type" U8 true "ICMP or ICMPv6 type",
    IcmpCode "icmp_code" U8 true "ICMP or ICMPv6 code",
    Comment "comment" Str true "pcapng packet comment",
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| schema_of(COLUMNS));

/// The full `packets` schema.
pub fn schema() -> SchemaRef {
    SCHEMA.clone()
}

/// Where a capture file comes from: labels put on every row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureMeta {
    pub bundle: String,
    pub host: Option<String>,
    /// Capture point label, e.g. `host` or `pod/web`.
    pub capture: String,
    pub interfaces: Vec<InterfaceMeta>,
}

/// Per-interface labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceMeta {
    pub link_type: u16,
    pub name: Option<String>,
    pub netns: Option<String>,
}

impl InterfaceMeta {
    /// The `if_description` capsnap writes for an interface it captures on
    /// in the namespace `label`: `netns=` and the label, whole (a label may
    /// hold spaces).
    pub fn description(label: &str) -> String {
        format!("netns={label}")
    }

    /// Labels of a pcapng interface: the namespace from a description
    /// [`InterfaceMeta::description`] wrote, or from a `netns=NAME` word in
    /// another tool's description.
    pub fn of(iface: &Interface) -> Self {
        let netns = iface
            .description
            .as_deref()
            .and_then(|d| {
                d.strip_prefix("netns=")
                    .or_else(|| d.split_whitespace().find_map(|w| w.strip_prefix("netns=")))
            })
            .map(str::to_owned);
        InterfaceMeta {
            link_type: iface.link_type,
            name: iface.name.clone(),
            netns,
        }
    }
}

/// Name of an IP protocol number, as in the `proto` column.
pub fn proto_name(p: u8) -> Option<&'static str> {
    Some(match p {
        decode::PROTO_TCP => "tcp",
        decode::PROTO_UDP => "udp",
        decode::PROTO_ICMP => "icmp",
        decode::PROTO_ICMPV6 => "icmpv6",
        decode::PROTO_SCTP => "sctp",
        2 => "igmp",
        4 => "ipip",
        41 => "ipv6",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        _ => return None,
    })
}

/// A dictionary column whose values are known up front (one per capture
/// interface, or a single constant): rows only append keys.
struct FixedDict {
    keys: Int32Builder,
    values: ArrayRef,
}

impl FixedDict {
    fn new(values: Vec<Option<String>>) -> Self {
        FixedDict {
            keys: Int32Builder::new(),
            values: Arc::new(StringArray::from(values)),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        let keys = self.keys.finish();
        Arc::new(
            DictionaryArray::<Int32Type>::try_new(keys, self.values.clone())
                .expect("keys index the values they were built for"),
        )
    }
}

enum Builder {
    Fixed(FixedDict),
    Dict(StringDictionaryBuilder<Int32Type>),
    Str(StringBuilder),
    Bool(BooleanBuilder),
    U8(UInt8Builder),
    U16(UInt16Builder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    Ts(TimestampNanosecondBuilder),
}

/// Appends frames as rows of `packets`, only for the projected columns.
pub struct PacketBuilder {
    meta: Arc<CaptureMeta>,
    columns: Vec<(Col, Builder)>,
    schema: SchemaRef,
    rows: usize,
    text: String,
    headers: Headers,
}

impl PacketBuilder {
    /// `projection` holds indices into [`COLUMNS`]; `None` means all.
    pub fn new(meta: Arc<CaptureMeta>, projection: Option<&[usize]>) -> Self {
        let all: Vec<usize> = (0..ORDER.len()).collect();
        let projection = projection.unwrap_or(&all);
        let schema = Arc::new(
            schema()
                .project(projection)
                .expect("projection indices come from this schema"),
        );
        let per_iface = |f: fn(&InterfaceMeta) -> Option<String>| {
            meta.interfaces.iter().map(f).collect::<Vec<_>>()
        };
        let columns = projection
            .iter()
            .map(|&i| {
                let col = ORDER[i];
                let builder = match col {
                    Col::Bundle => Builder::Fixed(FixedDict::new(vec![Some(meta.bundle.clone())])),
                    Col::Host => Builder::Fixed(FixedDict::new(vec![meta.host.clone()])),
                    Col::Capture => {
                        Builder::Fixed(FixedDict::new(vec![Some(meta.capture.clone())]))
                    }
                    Col::Netns => Builder::Fixed(FixedDict::new(per_iface(|i| i.netns.clone()))),
                    Col::Ifname => Builder::Fixed(FixedDict::new(per_iface(|i| i.name.clone()))),
                    _ => match COLUMNS[i].kind {
                        Kind::Dict => Builder::Dict(StringDictionaryBuilder::new()),
                        Kind::Str => Builder::Str(StringBuilder::new()),
                        Kind::Bool => Builder::Bool(BooleanBuilder::new()),
                        Kind::U8 => Builder::U8(UInt8Builder::new()),
                        Kind::U16 => Builder::U16(UInt16Builder::new()),
                        Kind::U32 => Builder::U32(UInt32Builder::new()),
                        Kind::U64 => Builder::U64(UInt64Builder::new()),
                        Kind::Ts => {
                            Builder::Ts(TimestampNanosecondBuilder::new().with_timezone("UTC"))
                        }
                        Kind::I64 | Kind::F64 => {
                            unreachable!("packets has no Int64 or Float64 column")
                        }
                    },
                };
                (col, builder)
            })
            .collect();
        PacketBuilder {
            meta,
            columns,
            schema,
            rows: 0,
            text: String::new(),
            headers: Headers::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Decodes `frame` and appends it as a row.
    pub fn append(&mut self, frame: &Frame) {
        let link_type = self
            .meta
            .interfaces
            .get(frame.interface as usize)
            .map_or(u16::MAX, |i| i.link_type);
        decode::decode(link_type, frame.data, &mut self.headers);
        let h = &self.headers;
        let tcp = h.tcp;
        let flag = |bit: u16| tcp.map(|t| t.flags & bit != 0);
        let iface_key = Some(frame.interface as i32);
        for (col, b) in &mut self.columns {
            let col = *col;
            match (col, b) {
                (Col::Bundle | Col::Capture, Builder::Fixed(d)) => d.keys.append_value(0),
                (Col::Host, Builder::Fixed(d)) => {
                    d.keys.append_option(self.meta.host.as_ref().map(|_| 0))
                }
                (Col::Netns | Col::Ifname, Builder::Fixed(d)) => d
                    .keys
                    .append_option(iface_key.filter(|&k| !d.values.is_null(k as usize))),
                (Col::LinkType, Builder::U16(b)) => b.append_value(link_type),
                (Col::Frame, Builder::U64(b)) => b.append_value(frame.number),
                (Col::Ts, Builder::Ts(b)) => b.append_option(frame.ts_ns),
                (Col::CapturedBytes, Builder::U32(b)) => b.append_value(frame.data.len() as u32),
                (Col::WireBytes, Builder::U32(b)) => b.append_value(frame.wire_len),
                (Col::Direction, Builder::Dict(b)) => {
                    b.append_option(frame.direction.or(h.direction).map(|d| d.as_str()))
                }
                (Col::Vlan, Builder::U16(b)) => b.append_option(h.vlan),
                (Col::L3, Builder::Dict(b)) => match h.l3 {
                    L3::None => b.append_null(),
                    L3::Ipv4 => b.append_value("ipv4"),
                    L3::Ipv6 => b.append_value("ipv6"),
                    L3::Arp => b.append_value("arp"),
                    L3::Other(t) => {
                        use std::fmt::Write;
                        self.text.clear();
                        let _ = write!(self.text, "0x{t:04x}");
                        b.append_value(&self.text);
                    }
                },
                (Col::SrcIp | Col::DstIp, Builder::Str(b)) => {
                    match if col == Col::SrcIp { h.src } else { h.dst } {
                        Some(a) => {
                            a.write_to(&mut self.text);
                            b.append_value(&self.text);
                        }
                        None => b.append_null(),
                    }
                }
                (Col::IpProto, Builder::U8(b)) => b.append_option(h.ip_proto),
                (Col::Proto, Builder::Dict(b)) => match h.ip_proto {
                    Some(p) => match proto_name(p) {
                        Some(name) => b.append_value(name),
                        None => {
                            self.text = p.to_string();
                            b.append_value(&self.text);
                        }
                    },
                    None => b.append_null(),
                },
                (Col::Ttl, Builder::U8(b)) => b.append_option(h.ttl),
                (Col::IpId, Builder::U32(b)) => b.append_option(h.ip_id),
                (Col::Fragment, Builder::Bool(b)) => b.append_option(h.src.map(|_| h.fragment)),
                (Col::SrcPort, Builder::U16(b)) => b.append_option(h.src_port),
                (Col::DstPort, Builder::U16(b)) => b.append_option(h.dst_port),
                (Col::TcpFlags, Builder::U16(b)) => b.append_option(tcp.map(|t| t.flags)),
                (Col::Syn, Builder::Bool(b)) => b.append_option(flag(tcp_flag::SYN)),
                (Col::Ack, Builder::Bool(b)) => b.append_option(flag(tcp_flag::ACK)),
                (Col::Fin, Builder::Bool(b)) => b.append_option(flag(tcp_flag::FIN)),
                (Col::Rst, Builder::Bool(b)) => b.append_option(flag(tcp_flag::RST)),
                (Col::Psh, Builder::Bool(b)) => b.append_option(flag(tcp_flag::PSH)),
                (Col::Urg, Builder::Bool(b)) => b.append_option(flag(tcp_flag::URG)),
                (Col::Ece, Builder::Bool(b)) => b.append_option(flag(tcp_flag::ECE)),
                (Col::Cwr, Builder::Bool(b)) => b.append_option(flag(tcp_flag::CWR)),
                (Col::Seq, Builder::U32(b)) => b.append_option(tcp.map(|t| t.seq)),
                (Col::AckSeq, Builder::U32(b)) => b.append_option(tcp.map(|t| t.ack)),
                (Col::Window, Builder::U16(b)) => b.append_option(tcp.map(|t| t.window)),
                (Col::PayloadBytes, Builder::U32(b)) => b.append_option(h.payload_len),
                (Col::IcmpType, Builder::U8(b)) => b.append_option(h.icmp_type),
                (Col::IcmpCode, Builder::U8(b)) => b.append_option(h.icmp_code),
                (Col::Comment, Builder::Str(b)) => b.append_option(frame.comment),
                (col, _) => unreachable!("column {col:?} was given a builder of another type"),
            }
        }
        self.rows += 1;
    }

    /// The rows appended so far as a batch; the builder starts over empty.
    pub fn finish(&mut self) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|(_, b)| -> ArrayRef {
                match b {
                    Builder::Fixed(d) => d.finish(),
                    Builder::Dict(b) => Arc::new(b.finish()),
                    Builder::Str(b) => Arc::new(b.finish()),
                    Builder::Bool(b) => Arc::new(b.finish()),
                    Builder::U8(b) => Arc::new(b.finish()),
                    Builder::U16(b) => Arc::new(b.finish()),
                    Builder::U32(b) => Arc::new(b.finish()),
                    Builder::U64(b) => Arc::new(b.finish()),
                    Builder::Ts(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        self.rows = 0;
        RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
            .expect("builders match the projected schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::UInt16Type;

    fn meta() -> Arc<CaptureMeta> {
        Arc::new(CaptureMeta {
            bundle: "b".into(),
            host: None,
            capture: "host".into(),
            interfaces: vec![InterfaceMeta {
                link_type: decode::link::RAW,
                name: Some("eth0".into()),
                netns: None,
            }],
        })
    }

    const SYN: &[u8] = &[
        0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, //
        0x30, 0x39, 0, 80, 0, 0, 0, 7, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ];

    fn frame(data: &[u8]) -> Frame<'_> {
        Frame {
            number: 3,
            ts_ns: Some(5),
            interface: 0,
            data,
            wire_len: data.len() as u32,
            direction: None,
            comment: None,
        }
    }

    #[test]
    fn projection_builds_only_asked_columns() {
        let rst = COLUMNS.iter().position(|c| c.name == "rst").unwrap();
        let port = COLUMNS.iter().position(|c| c.name == "dst_port").unwrap();
        let mut b = PacketBuilder::new(meta(), Some(&[rst, port]));
        b.append(&frame(SYN));
        b.append(&frame(&[0x60]));
        let batch = b.finish();
        assert_eq!(batch.num_columns(), 2);
        let rst = batch.column(0).as_boolean();
        assert_eq!((rst.value(0), rst.is_null(1)), (false, true));
        assert_eq!(batch.column(1).as_primitive::<UInt16Type>().value(0), 80);
    }

    #[test]
    fn empty_projection_still_counts_rows() {
        let mut b = PacketBuilder::new(meta(), Some(&[]));
        b.append(&frame(SYN));
        assert_eq!(b.finish().num_rows(), 1);
    }

    #[test]
    fn full_row_has_every_column() {
        let mut b = PacketBuilder::new(meta(), None);
        b.append(&frame(SYN));
        let batch = b.finish();
        assert_eq!(batch.num_columns(), COLUMNS.len());
        let get = |n: &str| batch.column_by_name(n).unwrap().clone();
        assert_eq!(get("src_ip").as_string::<i32>().value(0), "10.0.0.1");
        assert!(get("syn").as_boolean().value(0));
        assert_eq!(
            get("ifname").as_dictionary::<Int32Type>().keys().value(0),
            0
        );
    }
}
