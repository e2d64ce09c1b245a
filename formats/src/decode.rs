//! Link, network and transport headers of one frame, read in place.
//!
//! [`decode`] fills a reused [`Headers`] and never allocates. It reads as far
//! as the captured bytes allow and leaves the rest unset, so a frame cut by
//! the snap length, a fragment or an unknown protocol still yields what could
//! be read. Only the outermost IP header and the transport header right after
//! it are read: tunnels and ICMP-quoted packets keep the outer addresses.

use crate::capfile::Direction;
use crate::tcp_options::TcpOptions;
use std::net::{Ipv4Addr, Ipv6Addr};

/// LINKTYPE_* values, tcpdump.org/linktypes.html.
pub mod link {
    pub const NULL: u16 = 0;
    pub const ETHERNET: u16 = 1;
    pub const PPP: u16 = 9;
    pub const RAW_OPENBSD: u16 = 12;
    pub const RAW_BSDOS: u16 = 14;
    pub const PPP_HDLC: u16 = 50;
    pub const RAW: u16 = 101;
    pub const LOOP: u16 = 108;
    pub const LINUX_SLL: u16 = 113;
    pub const IPV4: u16 = 228;
    pub const IPV6: u16 = 229;
    pub const NFLOG: u16 = 239;
    pub const PKTAP: u16 = 258;
    pub const LINUX_SLL2: u16 = 276;
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_ARP: u16 = 0x0806;
const ETH_MPLS: u16 = 0x8847;
const ETH_MPLS_MULTICAST: u16 = 0x8848;
const ETH_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;
pub const PROTO_SCTP: u8 = 132;

/// TCP flag bits as in the header's flags byte (RFC 9293 section 3.1); the
/// four bits above them (AE/NS, RFC 3540, and three reserved) are kept as
/// bits 8-11, as Wireshark shows `tcp.flags`.
pub mod tcp_flag {
    pub const FIN: u16 = 0x01;
    pub const SYN: u16 = 0x02;
    pub const RST: u16 = 0x04;
    pub const PSH: u16 = 0x08;
    pub const ACK: u16 = 0x10;
    pub const URG: u16 = 0x20;
    pub const ECE: u16 = 0x40;
    pub const CWR: u16 = 0x80;
}

/// The network layer found in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum L3 {
    #[default]
    None,
    Ipv4,
    Ipv6,
    Arp,
    /// Another EtherType.
    Other(u16),
}

/// An IP address kept as bytes; v4 uses the first four.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Addr {
    pub v6: bool,
    pub bytes: [u8; 16],
}

impl Addr {
    fn v4(b: &[u8]) -> Self {
        let mut bytes = [0; 16];
        bytes[..4].copy_from_slice(&b[..4]);
        Addr { v6: false, bytes }
    }

    fn v6(b: &[u8]) -> Self {
        let mut bytes = [0; 16];
        bytes.copy_from_slice(&b[..16]);
        Addr { v6: true, bytes }
    }

    /// Writes the address in its usual text form into `out`.
    pub fn write_to(&self, out: &mut String) {
        use std::fmt::Write;
        out.clear();
        let _ = if self.v6 {
            write!(out, "{}", Ipv6Addr::from(self.bytes))
        } else {
            write!(
                out,
                "{}",
                Ipv4Addr::new(self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3])
            )
        };
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        self.write_to(&mut s);
        f.write_str(&s)
    }
}

/// TCP header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tcp {
    pub flags: u16,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    /// MSS, window scale, SACK and timestamps, as far as captured.
    pub options: TcpOptions,
}

/// The headers of one frame. Reset by [`decode`] before each use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Headers {
    pub l3: L3,
    /// Outermost 802.1Q/802.1ad VLAN id.
    pub vlan: Option<u16>,
    /// Direction told by the link header (Linux cooked captures).
    pub direction: Option<Direction>,
    pub src: Option<Addr>,
    pub dst: Option<Addr>,
    pub ip_proto: Option<u8>,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: Option<u8>,
    /// IPv4 identification, or the IPv6 fragment header's.
    pub ip_id: Option<u32>,
    /// The IP packet is a fragment (more fragments follow, or offset > 0).
    pub fragment: bool,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub tcp: Option<Tcp>,
    /// Transport payload length per the IP header (not cut by snap length).
    pub payload_len: Option<u32>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    /// Where the TCP or UDP payload starts, as an address in the frame
    /// [`decode`] read (0: none). Kept as an address rather than an offset
    /// because the headers are read from sub-slices (an NFLOG payload is a
    /// TLV in the middle of the frame); [`Headers::payload`] turns it back
    /// into a slice of the frame, checked.
    pub(crate) payload_addr: usize,
}

impl Headers {
    /// The TCP or UDP payload as captured (cut by the snap length; at most
    /// `payload_len` bytes), given the same `frame` bytes [`decode`] read.
    /// `None` when the frame has no TCP or UDP payload, or `frame` is not
    /// the one decoded.
    pub fn payload<'a>(&self, frame: &'a [u8]) -> Option<&'a [u8]> {
        if self.payload_addr == 0 {
            return None;
        }
        let at = self.payload_addr.checked_sub(frame.as_ptr() as usize)?;
        let rest = frame.get(at..)?;
        let len = self
            .payload_len
            .map_or(rest.len(), |l| rest.len().min(l as usize));
        rest.get(..len)
    }
}

fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

fn be32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

/// Decodes the frame `d` captured on a link of type `link_type` into `h`.
pub fn decode(link_type: u16, d: &[u8], h: &mut Headers) {
    *h = Headers::default();
    match link_type {
        link::ETHERNET => ethernet(d, h),
        link::LINUX_SLL => {
            if let Some(proto) = be16(d, 14) {
                h.direction = Some(if be16(d, 0) == Some(4) {
                    Direction::Out
                } else {
                    Direction::In
                });
                ethertype(proto, &d[16..], h);
            }
        }
        link::LINUX_SLL2
            if d.len() >= 20 => {
                h.direction = Some(if d[10] == 4 {
                    Direction::Out
                } else {
                    Direction::In
                });
                ethertype(u16::from_be_bytes([d[0], d[1]]), &d[20..], h);
            }
        link::NULL | link::LOOP
            if d.len() >= 4 => {
                let raw = [d[0], d[1], d[2], d[3]];
                // DLT_NULL is in the writer's byte order; small values tell it.
                let family = if link_type == link::LOOP || u32::from_le_bytes(raw) > 0xffff {
                    u32::from_be_bytes(raw)
                } else {
                    u32::from_le_bytes(raw)
                };
                match family {
                    2 => ethertype(ETH_IPV4, &d[4..], h),
                    // AF_INET6 differs between BSDs (24, 28, 30) and Linux (10).
                    10 | 24 | 28 | 30 => ethertype(ETH_IPV6, &d[4..], h),
                    _ => {}
                }
            }
        // LINKTYPE_IPV4 and LINKTYPE_IPV6 promise one version, but the
        // packet's version nibble is what the bytes are: Wireshark's IPv4
        // dissector hands a version-6 packet to IPv6 the same way.
        link::RAW | link::RAW_OPENBSD | link::RAW_BSDOS | link::IPV4 | link::IPV6 => raw_ip(d, h),
        link::PPP | link::PPP_HDLC => ppp(d, h),
        link::NFLOG => nflog(d, h),
        link::PKTAP
            // Apple's pktap header: its own length, then the inner DLT
            // (both little-endian), then the packet (libpcap pcap/pktap.h).
            if d.len() >= 8 => {
                let len = u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize;
                let inner = u32::from_le_bytes([d[4], d[5], d[6], d[7]]);
                if len >= 8 && len <= d.len() && inner != u32::from(link::PKTAP) {
                    // DLT_NULL and DLT_EN10MB have the same number as their LINKTYPE.
                    decode(inner as u16, &d[len..], h);
                }
            }
        _ => {}
    }
}

/// An IP packet with no link header: IPv4 or IPv6 by its version nibble.
fn raw_ip(d: &[u8], h: &mut Headers) {
    match d.first().map(|b| b >> 4) {
        Some(4) => ethertype(ETH_IPV4, d, h),
        Some(6) => ethertype(ETH_IPV6, d, h),
        _ => {}
    }
}

fn ethernet(d: &[u8], h: &mut Headers) {
    let Some(mut proto) = be16(d, 12) else { return };
    let mut at = 14;
    while ETH_VLAN.contains(&proto) {
        let (Some(tci), Some(next)) = (be16(d, at), be16(d, at + 2)) else {
            return;
        };
        h.vlan.get_or_insert(tci & 0x0fff);
        proto = next;
        at += 4;
    }
    // Values up to 1500 are an 802.3 length: LLC follows, and with
    // SNAP (AA AA 03, OUI, type) the EtherType comes after it when the OUI
    // is 00-00-00 (RFC 1042) or 00-00-F8 (802.1H); under another OUI the
    // type is that organisation's own (Cisco's CDP is 0x2000).
    if proto > 1500 {
        ethertype(proto, &d[at..], h);
    } else if let Some([0xaa, 0xaa, 0x03, 0, 0, 0 | 0xf8]) = d.get(at..at + 6)
        && let Some(t) = be16(d, at + 6)
    {
        ethertype(t, &d[at + 8..], h);
    }
}

/// MPLS label stack entries (RFC 3032) until the bottom-of-stack bit; the
/// payload's IP version nibble tells v4 from v6.
fn mpls(d: &[u8], h: &mut Headers) {
    let mut at = 0;
    while let Some(entry) = be32(d, at) {
        at += 4;
        if entry & 0x100 != 0 {
            return raw_ip(&d[at..], h);
        }
    }
}

fn ppp(d: &[u8], h: &mut Headers) {
    // Optional HDLC address/control bytes 0xff 0x03 (RFC 1662 section 3.1).
    let d = if d.starts_with(&[0xff, 0x03]) {
        &d[2..]
    } else {
        d
    };
    match be16(d, 0) {
        Some(0x0021) => ethertype(ETH_IPV4, &d[2..], h),
        Some(0x0057) => ethertype(ETH_IPV6, &d[2..], h),
        _ => {}
    }
}

/// NFLOG: a 4-byte header, then TLVs in host byte order, 4-byte aligned;
/// type 9 (NFULA_PAYLOAD) holds the packet from the IP header on
/// (linux/netfilter/nfnetlink_log.h, tcpdump print-nflog.c).
fn nflog(d: &[u8], h: &mut Headers) {
    let Some(&family) = d.first() else { return };
    let mut at = 4;
    while at + 4 <= d.len() {
        let len = usize::from(u16::from_le_bytes([d[at], d[at + 1]]));
        let kind = u16::from_le_bytes([d[at + 2], d[at + 3]]) & 0x7fff;
        if len < 4 || at + len > d.len() {
            return;
        }
        if kind == 9 {
            let payload = &d[at + 4..at + len];
            match family {
                2 => ethertype(ETH_IPV4, payload, h),
                10 => ethertype(ETH_IPV6, payload, h),
                _ => raw_ip(payload, h),
            }
            return;
        }
        at += len.div_ceil(4) * 4;
    }
}

fn ethertype(proto: u16, d: &[u8], h: &mut Headers) {
    match proto {
        ETH_IPV4 => ipv4(d, h),
        ETH_IPV6 => ipv6(d, h),
        ETH_ARP => h.l3 = L3::Arp,
        ETH_MPLS | ETH_MPLS_MULTICAST => mpls(d, h),
        other => h.l3 = L3::Other(other),
    }
}

fn ipv4(d: &[u8], h: &mut Headers) {
    h.l3 = L3::Ipv4;
    if d.len() < 20 || d[0] >> 4 != 4 {
        return;
    }
    let ihl = usize::from(d[0] & 0x0f) * 4;
    h.src = Some(Addr::v4(&d[12..]));
    h.dst = Some(Addr::v4(&d[16..]));
    h.ttl = Some(d[8]);
    h.ip_proto = Some(d[9]);
    h.ip_id = Some(u32::from(u16::from_be_bytes([d[4], d[5]])));
    let frag = u16::from_be_bytes([d[6], d[7]]);
    let offset = frag & 0x1fff;
    h.fragment = offset != 0 || frag & 0x2000 != 0;
    if ihl < 20 || offset != 0 {
        return;
    }
    let total = usize::from(u16::from_be_bytes([d[2], d[3]]));
    // A zero total length is what TSO hands to the capture: use what we have.
    let ip_payload = if total >= ihl {
        total - ihl
    } else {
        d.len().saturating_sub(ihl)
    };
    if d.len() > ihl {
        transport(d[9], &d[ihl..], ip_payload, h);
    }
}

fn ipv6(d: &[u8], h: &mut Headers) {
    h.l3 = L3::Ipv6;
    if d.len() < 40 || d[0] >> 4 != 6 {
        return;
    }
    h.src = Some(Addr::v6(&d[8..]));
    h.dst = Some(Addr::v6(&d[24..]));
    h.ttl = Some(d[7]);
    let mut payload = usize::from(u16::from_be_bytes([d[4], d[5]]));
    let mut next = d[6];
    let mut at = 40;
    // Extension headers (RFC 8200 section 4), each with its own length rule.
    loop {
        let ext_len = match next {
            0 | 43 | 60 | 135 | 139 | 140 => d.get(at + 1).map(|l| (usize::from(*l) + 1) * 8),
            51 => d.get(at + 1).map(|l| (usize::from(*l) + 2) * 4),
            44 => {
                let (Some(off), Some(id)) = (be16(d, at + 2), be32(d, at + 4)) else {
                    break;
                };
                h.fragment = true;
                h.ip_id = Some(id);
                if off & 0xfff8 != 0 {
                    h.ip_proto = d.get(at).copied();
                    return;
                }
                Some(8)
            }
            _ => break,
        };
        let (Some(len), Some(&n)) = (ext_len, d.get(at)) else {
            h.ip_proto = Some(next);
            return;
        };
        next = n;
        at += len;
        payload = payload.saturating_sub(len);
    }
    h.ip_proto = Some(next);
    if d.len() > at {
        transport(next, &d[at..], payload, h);
    }
}

/// Both ports or neither: half a port pair is no flow.
fn ports(d: &[u8], h: &mut Headers) {
    if let (Some(s), Some(t)) = (be16(d, 0), be16(d, 2)) {
        h.src_port = Some(s);
        h.dst_port = Some(t);
    }
}

/// `ip_payload` is the transport segment length told by the IP header.
fn transport(proto: u8, d: &[u8], ip_payload: usize, h: &mut Headers) {
    match proto {
        PROTO_TCP => {
            ports(d, h);
            if d.len() >= 14 {
                let off = usize::from(d[12] >> 4) * 4;
                h.tcp = Some(Tcp {
                    seq: u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
                    ack: u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
                    flags: (u16::from(d[12] & 0x0f) << 8) | u16::from(d[13]),
                    window: be16(d, 14).unwrap_or(0),
                    options: d
                        .get(20..off.min(d.len()))
                        .map(TcpOptions::parse)
                        .unwrap_or_default(),
                });
                if off >= 20 {
                    h.payload_len = Some(ip_payload.saturating_sub(off) as u32);
                    if d.len() >= off {
                        h.payload_addr = d.as_ptr() as usize + off;
                    }
                }
            }
        }
        PROTO_UDP | 136 => {
            ports(d, h);
            h.payload_len = Some(ip_payload.saturating_sub(8) as u32);
            if d.len() >= 8 {
                h.payload_addr = d.as_ptr() as usize + 8;
            }
        }
        PROTO_SCTP => ports(d, h),
        PROTO_ICMP | PROTO_ICMPV6 => {
            h.icmp_type = d.first().copied();
            h.icmp_code = d.get(1).copied();
            h.payload_len = Some(ip_payload.saturating_sub(4) as u32);
        }
        _ => h.payload_len = Some(ip_payload as u32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + 802.1Q + IPv4 + TCP RST|ACK from 10.0.0.1:443 to 10.0.0.2:51000.
    const VLAN_TCP_RST: &[u8] = &[
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x81, 0x00, 0x00, 0x64, 0x08,
        0x00, // eth + vlan 100
        0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, // ipv4
        0x01, 0xbb, 0xc7, 0x38, 0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x14, 0x01, 0x00, 0, 0, 0,
        0, // tcp
    ];

    #[test]
    fn ethernet_vlan_ipv4_tcp() {
        let mut h = Headers::default();
        decode(link::ETHERNET, VLAN_TCP_RST, &mut h);
        assert_eq!(h.vlan, Some(100));
        assert_eq!(h.l3, L3::Ipv4);
        assert_eq!(h.src.unwrap().to_string(), "10.0.0.1");
        assert_eq!(h.dst.unwrap().to_string(), "10.0.0.2");
        assert_eq!((h.src_port, h.dst_port), (Some(443), Some(51000)));
        assert_eq!(
            h.tcp,
            Some(Tcp {
                flags: tcp_flag::RST | tcp_flag::ACK,
                seq: 1,
                ack: 2,
                window: 256,
                options: TcpOptions::default(),
            })
        );
        assert_eq!(
            (h.ttl, h.ip_id, h.payload_len, h.fragment),
            (Some(64), Some(0x1234), Some(0), false)
        );
    }

    #[test]
    fn cisco_snap_pid_is_not_an_ethertype() {
        let llc = |oui: [u8; 3], pid: [u8; 2]| {
            let mut d = vec![0x01, 0, 0x0c, 0xcc, 0xcc, 0xcc, 0, 1, 2, 3, 4, 5, 0, 40];
            d.extend([0xaa, 0xaa, 0x03]);
            d.extend(oui);
            d.extend(pid);
            d.extend(&VLAN_TCP_RST[18..]);
            d
        };
        let mut h = Headers::default();
        decode(link::ETHERNET, &llc([0, 0, 0x0c], [0x20, 0x00]), &mut h);
        assert_eq!((h.l3, h.src), (L3::None, None), "CDP");
        decode(link::ETHERNET, &llc([0, 0, 0], [0x08, 0x00]), &mut h);
        assert_eq!(h.dst.unwrap().to_string(), "10.0.0.2", "RFC 1042");
    }

    #[test]
    fn tcp_options_are_read_as_far_as_captured() {
        // IPv4 + TCP SYN with MSS 1460, SACK-permitted, timestamps, NOP, wscale 7.
        let mut d = vec![
            0x45, 0, 0, 60, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, //
            0x30, 0x39, 0, 80, 0, 0, 0, 7, 0, 0, 0, 0, 0xa0, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ];
        d.extend([
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 9, 0, 0, 0, 0, 1, 3, 3, 7,
        ]);
        let mut h = Headers::default();
        decode(link::RAW, &d, &mut h);
        let o = h.tcp.unwrap().options;
        assert_eq!(
            (o.mss, o.sack_permitted, o.timestamps, o.wscale),
            (Some(1460), true, Some((9, 0)), Some(7))
        );
        assert_eq!(h.payload_len, Some(0));
        // Cut by a snap length inside the timestamps: MSS and SACK-permitted stay.
        decode(link::RAW, &d[..50], &mut h);
        let o = h.tcp.unwrap().options;
        assert_eq!(
            (o.mss, o.sack_permitted, o.timestamps),
            (Some(1460), true, None)
        );
    }

    #[test]
    fn every_prefix_yields_what_it_can() {
        let mut h = Headers::default();
        for n in 0..VLAN_TCP_RST.len() {
            decode(link::ETHERNET, &VLAN_TCP_RST[..n], &mut h);
            assert_eq!(h.src.is_some(), n >= 18 + 20, "prefix {n}");
            assert_eq!(h.src_port.is_some(), n >= 18 + 20 + 4, "prefix {n}");
        }
    }

    /// tcpdump's LINKTYPE_IPV4_invalid.pcap holds an IPv6 packet in a
    /// LINKTYPE_IPV4 file; tshark reads it as IPv6, and so does capsnap.
    #[test]
    fn raw_ip_link_types_decode_by_the_version_nibble() {
        let v4 = &VLAN_TCP_RST[18..];
        let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        v6.extend([0x20, 1, 0xd, 0xb8].iter().chain(&[0; 11]).chain(&[1]));
        v6.extend([0x20, 1, 0xd, 0xb8].iter().chain(&[0; 11]).chain(&[2]));
        v6.extend([0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        for link_type in [
            link::RAW,
            link::RAW_OPENBSD,
            link::RAW_BSDOS,
            link::IPV4,
            link::IPV6,
        ] {
            let mut h = Headers::default();
            decode(link_type, v4, &mut h);
            assert_eq!(
                (h.src.map(|a| a.to_string()), h.dst_port),
                (Some("10.0.0.1".into()), Some(51000)),
                "IPv4 on link type {link_type}"
            );
            decode(link_type, &v6, &mut h);
            assert_eq!(
                (h.src.map(|a| a.to_string()), h.dst_port),
                (Some("2001:db8::1".into()), Some(53)),
                "IPv6 on link type {link_type}"
            );
        }
    }

    #[test]
    fn ipv6_fragment_and_hop_by_hop() {
        let mut d = vec![0x60, 0, 0, 0, 0, 24, 0, 64];
        d.extend([0x20, 1, 0xd, 0xb8].iter().chain(&[0; 11]).chain(&[1]));
        d.extend([0x20, 1, 0xd, 0xb8].iter().chain(&[0; 11]).chain(&[2]));
        d.extend([44, 0, 1, 4, 0, 0, 0, 0]); // hop-by-hop, next = fragment
        d.extend([17, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]); // fragment offset 0, M=1
        d.extend([0, 53, 0x30, 0x39, 0, 8, 0, 0]); // udp
        let mut h = Headers::default();
        decode(link::RAW, &d, &mut h);
        assert_eq!(h.src.unwrap().to_string(), "2001:db8::1");
        assert_eq!(
            (h.ip_proto, h.fragment, h.ip_id),
            (Some(17), true, Some(0xdeadbeef))
        );
        assert_eq!((h.src_port, h.dst_port), (Some(53), Some(12345)));
    }

    #[test]
    fn later_ipv4_fragment_has_no_ports() {
        let mut d = VLAN_TCP_RST[18..].to_vec();
        d[6] = 0x00;
        d[7] = 0x10; // offset 16*8
        let mut h = Headers::default();
        decode(link::IPV4, &d, &mut h);
        assert!(h.fragment);
        assert_eq!((h.src_port, h.tcp), (None, None));
    }

    #[test]
    fn cooked_captures_tell_direction() {
        let mut sll = vec![0, 4, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        sll.extend(&VLAN_TCP_RST[18..]);
        let mut h = Headers::default();
        decode(link::LINUX_SLL, &sll, &mut h);
        assert_eq!((h.direction, h.src_port), (Some(Direction::Out), Some(443)));
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
        ];
        sll2.extend(&VLAN_TCP_RST[18..]);
        decode(link::LINUX_SLL2, &sll2, &mut h);
        assert_eq!(
            (h.direction, h.dst_port),
            (Some(Direction::In), Some(51000))
        );
    }

    #[test]
    fn bsd_null_in_either_byte_order() {
        for af in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
            let mut d = af.to_vec();
            d.extend(&VLAN_TCP_RST[18..]);
            let mut h = Headers::default();
            decode(link::NULL, &d, &mut h);
            assert_eq!(h.dst.unwrap().to_string(), "10.0.0.2");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_on_any_link_never_panic(link in 0u16..300, d in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let mut h = Headers::default();
            decode(link, &d, &mut h);
        }
    }
}
