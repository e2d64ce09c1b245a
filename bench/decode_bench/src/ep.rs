//! The decoder done with etherparse's zero-copy slicing
//! (`LaxSlicedPacket`, which tolerates frames cut by the snap length),
//! filling the same [`Headers`] as `capsnap_formats::decode`, TCP options
//! included (from `TcpSlice::options_iterator`).
//!
//! etherparse starts at Ethernet II, Linux SLL, an EtherType or an IP
//! header. The link headers it does not know (SLL2, BSD NULL/LOOP, PPP,
//! NFLOG, PKTAP) are stripped here as `decode.rs` strips them; MPLS and
//! 802.2 SNAP, which it does not know either, are left undecoded, as an
//! adopter would find them.

use capsnap_formats::{Addr, Direction, Headers, L3, Tcp, TcpOptions, link};
use etherparse::{
    EtherType, Icmpv4Slice, Icmpv6Slice, IpNumber, Ipv6ExtensionSlice, LaxIpPayloadSlice,
    LaxNetSlice, LaxSlicedPacket, TcpOptionElement, TcpSlice, TransportSlice, UdpSlice,
};

pub fn decode(link_type: u16, d: &[u8], h: &mut Headers) {
    *h = Headers::default();
    match link_type {
        link::ETHERNET => {
            if let Ok(p) = LaxSlicedPacket::from_ethernet(d) {
                fill(&p, h);
            }
        }
        link::LINUX_SLL if d.len() >= 16 => {
            // LaxSlicedPacket has no SLL entry point.
            h.direction = Some(direction(u16::from_be_bytes([d[0], d[1]]) == 4));
            let proto = u16::from_be_bytes([d[14], d[15]]);
            ether(proto, &d[16..], h);
        }
        link::LINUX_SLL2 if d.len() >= 20 => {
            h.direction = Some(direction(d[10] == 4));
            ether(u16::from_be_bytes([d[0], d[1]]), &d[20..], h);
        }
        link::NULL | link::LOOP if d.len() >= 4 => {
            let raw = [d[0], d[1], d[2], d[3]];
            let family = if link_type == link::LOOP || u32::from_le_bytes(raw) > 0xffff {
                u32::from_be_bytes(raw)
            } else {
                u32::from_le_bytes(raw)
            };
            match family {
                2 => ether(0x0800, &d[4..], h),
                10 | 24 | 28 | 30 => ether(0x86dd, &d[4..], h),
                _ => {}
            }
        }
        link::RAW | 12 | 14 => {
            if let Ok(p) = LaxSlicedPacket::from_ip(d) {
                fill(&p, h);
            }
        }
        link::IPV4 => ether(0x0800, d, h),
        link::IPV6 => ether(0x86dd, d, h),
        link::PPP | 50 => {
            let d = d.strip_prefix(&[0xff, 0x03]).unwrap_or(d);
            match d.get(..2) {
                Some([0x00, 0x21]) => ether(0x0800, &d[2..], h),
                Some([0x00, 0x57]) => ether(0x86dd, &d[2..], h),
                _ => {}
            }
        }
        link::NFLOG => nflog(d, h),
        link::PKTAP if d.len() >= 8 => {
            let len = u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize;
            let inner = u32::from_le_bytes([d[4], d[5], d[6], d[7]]);
            if len >= 8 && len <= d.len() && inner != u32::from(link::PKTAP) {
                decode(inner as u16, &d[len..], h);
            }
        }
        _ => {}
    }
}

fn direction(out: bool) -> Direction {
    if out { Direction::Out } else { Direction::In }
}

fn ether(proto: u16, d: &[u8], h: &mut Headers) {
    fill(&LaxSlicedPacket::from_ether_type(EtherType(proto), d), h);
}

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
                2 => ether(0x0800, payload, h),
                10 => ether(0x86dd, payload, h),
                _ => {
                    if let Ok(p) = LaxSlicedPacket::from_ip(payload) {
                        fill(&p, h);
                    }
                }
            }
            return;
        }
        at += len.div_ceil(4) * 4;
    }
}

/// Copies what etherparse sliced into `h`.
fn fill(p: &LaxSlicedPacket, h: &mut Headers) {
    if let Some(v) = p.vlan_ids().first() {
        h.vlan = Some(v.value());
    }
    // The network layer the link names, even where its header is bad.
    if let Some(e) = p.ether_payload() {
        h.l3 = match e.ether_type {
            EtherType::IPV4 => L3::Ipv4,
            EtherType::IPV6 => L3::Ipv6,
            EtherType::ARP => L3::Arp,
            EtherType(t) => L3::Other(t),
        };
    }
    let (payload, ip_payload) = match &p.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            h.l3 = L3::Ipv4;
            let hdr = ip.header();
            h.src = Some(v4(hdr.source()));
            h.dst = Some(v4(hdr.destination()));
            h.ttl = Some(hdr.ttl());
            h.ip_proto = Some(hdr.protocol().0);
            h.ip_id = Some(u32::from(hdr.identification()));
            let offset = hdr.fragments_offset().value();
            h.fragment = offset != 0 || hdr.more_fragments();
            if offset != 0 {
                return;
            }
            let ihl = usize::from(hdr.ihl()) * 4;
            let total = usize::from(hdr.total_len());
            let payload = ip.payload();
            let ip_payload = if total >= ihl {
                total - ihl
            } else {
                payload.payload.len()
            };
            (payload, ip_payload)
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            h.l3 = L3::Ipv6;
            let hdr = ip.header();
            h.src = Some(v6(hdr.source()));
            h.dst = Some(v6(hdr.destination()));
            h.ttl = Some(hdr.hop_limit());
            let exts = ip.extensions();
            let payload = ip.payload();
            h.ip_proto = Some(payload.ip_number.0);
            for e in exts.clone() {
                if let Ipv6ExtensionSlice::Fragment(f) = e {
                    h.fragment = true;
                    h.ip_id = Some(f.identification());
                    if f.fragment_offset().value() != 0 {
                        return;
                    }
                }
            }
            let ip_payload = usize::from(hdr.payload_length()).saturating_sub(exts.slice().len());
            (payload, ip_payload)
        }
        Some(LaxNetSlice::Arp(_)) => {
            h.l3 = L3::Arp;
            return;
        }
        None => return,
    };
    match &p.transport {
        Some(t) => transport(t, ip_payload, h),
        // etherparse slices no transport header in a first fragment.
        None if payload.fragmented && payload.payload.len() >= 4 => {
            first_fragment(payload, ip_payload, h)
        }
        None => {
            if !matches!(
                payload.ip_number,
                IpNumber::TCP | IpNumber::UDP | IpNumber::ICMP | IpNumber::IPV6_ICMP
            ) {
                h.payload_len = Some(ip_payload as u32);
            }
        }
    }
}

fn first_fragment(payload: &LaxIpPayloadSlice, ip_payload: usize, h: &mut Headers) {
    let d = payload.payload;
    let t = match payload.ip_number {
        IpNumber::TCP => TcpSlice::from_slice(d).ok().map(TransportSlice::Tcp),
        IpNumber::UDP => UdpSlice::from_slice_lax(d).ok().map(TransportSlice::Udp),
        IpNumber::ICMP => Icmpv4Slice::from_slice(d).ok().map(TransportSlice::Icmpv4),
        IpNumber::IPV6_ICMP => Icmpv6Slice::from_slice(d).ok().map(TransportSlice::Icmpv6),
        _ => {
            h.payload_len = Some(ip_payload as u32);
            None
        }
    };
    if let Some(t) = t {
        transport(&t, ip_payload, h);
    }
}

fn transport(t: &TransportSlice, ip_payload: usize, h: &mut Headers) {
    match t {
        TransportSlice::Tcp(tcp) => {
            h.src_port = Some(tcp.source_port());
            h.dst_port = Some(tcp.destination_port());
            let flags = [
                tcp.fin(),
                tcp.syn(),
                tcp.rst(),
                tcp.psh(),
                tcp.ack(),
                tcp.urg(),
                tcp.ece(),
                tcp.cwr(),
                tcp.ns(),
            ]
            .iter()
            .enumerate()
            .fold(0u16, |f, (i, &on)| f | (u16::from(on) << i));
            h.tcp = Some(Tcp {
                flags,
                seq: tcp.sequence_number(),
                ack: tcp.acknowledgment_number(),
                window: tcp.window_size(),
                options: options(tcp),
            });
            h.payload_len =
                Some(ip_payload.saturating_sub(usize::from(tcp.data_offset()) * 4) as u32);
        }
        TransportSlice::Udp(udp) => {
            h.src_port = Some(udp.source_port());
            h.dst_port = Some(udp.destination_port());
            h.payload_len = Some(ip_payload.saturating_sub(8) as u32);
        }
        TransportSlice::Icmpv4(icmp) => {
            h.icmp_type = Some(icmp.type_u8());
            h.icmp_code = Some(icmp.code_u8());
            h.payload_len = Some(ip_payload.saturating_sub(4) as u32);
        }
        TransportSlice::Icmpv6(icmp) => {
            h.icmp_type = Some(icmp.type_u8());
            h.icmp_code = Some(icmp.code_u8());
            h.payload_len = Some(ip_payload.saturating_sub(4) as u32);
        }
        _ => h.payload_len = Some(ip_payload as u32),
    }
}

/// The first of each option, until the iterator reports an error (it
/// stops there: an unknown option kind ends it).
fn options(tcp: &TcpSlice) -> TcpOptions {
    let mut o = TcpOptions::default();
    for e in tcp.options_iterator() {
        match e {
            Ok(TcpOptionElement::MaximumSegmentSize(v)) if o.mss.is_none() => o.mss = Some(v),
            Ok(TcpOptionElement::WindowScale(v)) if o.wscale.is_none() => o.wscale = Some(v),
            Ok(TcpOptionElement::SelectiveAcknowledgementPermitted) => o.sack_permitted = true,
            Ok(TcpOptionElement::SelectiveAcknowledgement(_, more)) if o.sack_blocks == 0 => {
                o.sack_blocks = 1 + more.iter().flatten().count() as u8
            }
            Ok(TcpOptionElement::Timestamp(v, e)) if o.timestamps.is_none() => {
                o.timestamps = Some((v, e))
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    o
}

fn v4(b: [u8; 4]) -> Addr {
    let mut bytes = [0; 16];
    bytes[..4].copy_from_slice(&b);
    Addr { v6: false, bytes }
}

fn v6(bytes: [u8; 16]) -> Addr {
    Addr { v6: true, bytes }
}
