//! From a packet as the kernel delivers it to the frame capsnap writes:
//! the link type of its device, the header parts the kernel took away put
//! back, its direction flags, and the cut to the snap length, which keeps
//! DNS whole.

use super::ring::Packet;
use formats::link;
use formats::pcapng::EpbFlags;
use formats::{Headers, decode};

/// libpcap's MAXIMUM_SNAPLEN (pcap-int.h); a snaplen of 0 means this.
pub const MAX_SNAPLEN: u32 = 262_144;
/// A synthesized `LINKTYPE_LINUX_SLL` header (tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html).
const SLL_HEADER: usize = 16;
/// Room in front of the received bytes for what the kernel took off or
/// never had: a cooked header or a VLAN tag.
const HEADROOM: usize = SLL_HEADER;
/// 802.1Q TPID, used when the kernel does not say which TPID a tag had.
pub const TPID_8021Q: u16 = 0x8100;
/// Bytes of a packet looked at to tell DNS from the rest: link, VLAN and
/// IP headers (with options) and the ports.
const PROBE: usize = 128;
/// DNS over UDP and TCP (RFC 1035 section 4.2).
const DNS_PORT: u16 = 53;

/// The pcapng link type for a device's ARPHRD_* type (`sll_hatype`,
/// linux/if_arp.h): devices whose frames start with an Ethernet header,
/// devices whose frames are bare IP, and for everything else the Linux
/// cooked header, which carries the protocol and the device type itself
/// (libpcap's pcap-linux.c falls back to it the same way).
pub fn link_type_of(hatype: u16) -> u16 {
    // linux/if_arp.h; ARPHRD_RAWIP (519) and ARPHRD_IP6GRE (823) are not
    // in every libc.
    const ARPHRD_RAWIP: u16 = 519;
    const ARPHRD_IP6GRE: u16 = 823;
    match hatype {
        // Loopback frames carry a zeroed Ethernet header (drivers/net/loopback.c).
        libc::ARPHRD_ETHER | libc::ARPHRD_LOOPBACK => link::ETHERNET,
        // tun, wireguard (NONE), ipip and vti (TUNNEL), ip6tnl (TUNNEL6),
        // sit, gre, ip6gre: the frame is the IP packet.
        libc::ARPHRD_NONE
        | ARPHRD_RAWIP
        | libc::ARPHRD_TUNNEL
        | libc::ARPHRD_TUNNEL6
        | libc::ARPHRD_SIT
        | libc::ARPHRD_IPGRE
        | ARPHRD_IP6GRE => link::RAW,
        _ => link::LINUX_SLL,
    }
}

/// `epb_flags` for a `sll_pkttype` (linux/if_packet.h PACKET_*):
/// direction, and for received packets how they were addressed.
pub fn epb_flags(pkttype: u8) -> EpbFlags {
    EpbFlags(match pkttype {
        libc::PACKET_OUTGOING => EpbFlags::OUTBOUND,
        libc::PACKET_HOST => EpbFlags::INBOUND | EpbFlags::UNICAST,
        libc::PACKET_BROADCAST => EpbFlags::INBOUND | EpbFlags::BROADCAST,
        libc::PACKET_MULTICAST => EpbFlags::INBOUND | EpbFlags::MULTICAST,
        libc::PACKET_OTHERHOST => EpbFlags::INBOUND | EpbFlags::PROMISCUOUS,
        _ => EpbFlags::INBOUND,
    })
}

/// What the kernel told about one received packet besides its bytes (its
/// `sockaddr_ll` and `tpacket3_hdr`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Meta {
    pub pkttype: u8,
    pub hatype: u16,
    /// `sll_protocol`, kept in network byte order as the SLL header wants it.
    pub protocol: [u8; 2],
    pub halen: u8,
    pub addr: [u8; 8],
    /// Offset of the network header in the received bytes (`tp_net -
    /// tp_mac`).
    pub net_offset: usize,
    /// VLAN tag (TPID, TCI) the kernel took out of the frame.
    pub vlan: Option<(u16, u16)>,
}

/// Turns the `received` bytes at `buf[HEADROOM..]` (at most the snap
/// length of a packet that was `wire` bytes long) into the frame to write:
/// its range in `buf` and its original length.
///
/// - Ethernet: the kernel strips a received VLAN tag into metadata before
///   packet taps see the frame, and a VLAN-offloading device does so on
///   transmit too; the tag is put back after the MAC addresses, as
///   libpcap does (tcpdump.org/linktypes.html, LINKTYPE_ETHERNET).
/// - Cooked: the link header is replaced by a 16-byte SLL header built from
///   `sockaddr_ll` (packet type, ARPHRD type, address, protocol), so the
///   payload starts at the network header as LINKTYPE_LINUX_SLL requires.
/// - Raw IP: as received.
///
/// The frame is then cut to `snaplen`, headers included, as libpcap does.
fn assemble(
    buf: &mut [u8],
    received: usize,
    wire: usize,
    link_type: u16,
    meta: &Meta,
    snaplen: usize,
) -> (std::ops::Range<usize>, u32) {
    let end = HEADROOM + received;
    let (start, wire) = match link_type {
        link::ETHERNET if meta.vlan.is_some() && received >= 12 => {
            let (tpid, tci) = meta.vlan.unwrap_or_default();
            let start = HEADROOM - 4;
            buf.copy_within(HEADROOM..HEADROOM + 12, start);
            buf[start + 12..start + 14].copy_from_slice(&tpid.to_be_bytes());
            buf[start + 14..start + 16].copy_from_slice(&tci.to_be_bytes());
            (start, wire + 4)
        }
        link::LINUX_SLL => {
            let skip = meta.net_offset.min(received);
            let start = HEADROOM + skip - SLL_HEADER;
            let h = &mut buf[start..start + SLL_HEADER];
            h[0..2].copy_from_slice(&u16::from(meta.pkttype).to_be_bytes());
            h[2..4].copy_from_slice(&meta.hatype.to_be_bytes());
            h[4..6].copy_from_slice(&u16::from(meta.halen.min(8)).to_be_bytes());
            h[6..14].copy_from_slice(&meta.addr);
            h[14..16].copy_from_slice(&meta.protocol);
            (start, wire.saturating_sub(meta.net_offset) + SLL_HEADER)
        }
        _ => (HEADROOM, wire),
    };
    let end = end.min(start.saturating_add(snaplen));
    (start..end, u32::try_from(wire).unwrap_or(u32::MAX))
}

/// Whether decoded headers are a DNS message's: UDP or TCP to or from
/// port 53.
fn is_dns(h: &Headers) -> bool {
    matches!(h.ip_proto, Some(6 | 17))
        && (h.src_port == Some(DNS_PORT) || h.dst_port == Some(DNS_PORT))
}

/// Makes the frames of one capture in one reused buffer.
///
/// The ring holds packets whole (as libpcap's does without a filter); each
/// is cut here to the snap length, except DNS, kept whole up to
/// [`MAX_SNAPLEN`] so that every question and answer can be read back (the
/// `dns` table is built from captures). Telling DNS apart takes the same
/// decoder the readers use, on the frame as written.
pub struct Framer {
    snaplen: usize,
    buf: Vec<u8>,
    headers: Headers,
}

impl Framer {
    /// `snaplen`: bytes kept of a packet that is not DNS; 0 means all.
    pub fn new(snaplen: u32) -> Framer {
        let snaplen = match snaplen {
            0 => MAX_SNAPLEN,
            n => n.min(MAX_SNAPLEN),
        } as usize;
        Framer {
            snaplen,
            buf: vec![0; HEADROOM + snaplen.max(PROBE)],
            headers: Headers::default(),
        }
    }

    /// The frame to write for `p` (on a link of `link_type`) and its length
    /// on the wire.
    pub fn frame<'a>(&'a mut self, p: &Packet<'a>, link_type: u16) -> (&'a [u8], u32) {
        let have = p.data.len().min(MAX_SNAPLEN as usize);
        // Ethernet without a VLAN tag to put back is written as received:
        // no copy (once per packet, it showed in profiles).
        if link_type == link::ETHERNET && p.meta.vlan.is_none() {
            let data = &p.data[..have];
            let mut keep = self.snaplen;
            if p.data.len() >= p.wire_len && data.len() > keep {
                decode(link_type, data, &mut self.headers);
                if is_dns(&self.headers) {
                    keep = MAX_SNAPLEN as usize;
                }
            }
            let wire = u32::try_from(p.wire_len).unwrap_or(u32::MAX);
            return (&data[..data.len().min(keep)], wire);
        }
        let mut take = have.min(self.snaplen.max(PROBE));
        self.load(p, take);
        let (mut range, mut wire) = assemble(
            &mut self.buf,
            take,
            p.wire_len,
            link_type,
            &p.meta,
            usize::MAX,
        );
        let mut keep = self.snaplen;
        // A packet the kernel cut is not DNS (ring::capture_program keeps
        // DNS whole): no need to decode it.
        let cut_by_kernel = p.data.len() < p.wire_len;
        if !cut_by_kernel && (range.len() > self.snaplen || take < have) {
            decode(link_type, &self.buf[range.clone()], &mut self.headers);
            if is_dns(&self.headers) {
                keep = MAX_SNAPLEN as usize;
                if take < have {
                    take = have;
                    self.load(p, take);
                    (range, wire) =
                        assemble(&mut self.buf, take, p.wire_len, link_type, &p.meta, keep);
                }
            }
        }
        let end = range.end.min(range.start + keep);
        (&self.buf[range.start..end], wire)
    }

    /// Copies the first `n` bytes of `p` behind the headroom.
    fn load(&mut self, p: &Packet, n: usize) {
        if self.buf.len() < HEADROOM + n {
            self.buf.resize(HEADROOM + n, 0);
        }
        self.buf[HEADROOM..HEADROOM + n].copy_from_slice(&p.data[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_types_follow_the_device_type() {
        for (hatype, want) in [
            (libc::ARPHRD_ETHER, link::ETHERNET),
            (libc::ARPHRD_LOOPBACK, link::ETHERNET),
            (libc::ARPHRD_NONE, link::RAW),
            (519, link::RAW),
            (libc::ARPHRD_TUNNEL, link::RAW),
            (libc::ARPHRD_TUNNEL6, link::RAW),
            (libc::ARPHRD_SIT, link::RAW),
            (libc::ARPHRD_IPGRE, link::RAW),
            (823, link::RAW),
            (libc::ARPHRD_PPP, link::LINUX_SLL),
            (libc::ARPHRD_INFINIBAND, link::LINUX_SLL),
            (libc::ARPHRD_IEEE80211_RADIOTAP, link::LINUX_SLL),
        ] {
            assert_eq!(link_type_of(hatype), want, "ARPHRD {hatype}");
        }
    }

    #[test]
    fn packet_types_become_direction_and_reception_flags() {
        for (pkttype, want) in [
            (libc::PACKET_OUTGOING, 2),
            (libc::PACKET_HOST, 1 | 1 << 2),
            (libc::PACKET_BROADCAST, 1 | 3 << 2),
            (libc::PACKET_MULTICAST, 1 | 2 << 2),
            (libc::PACKET_OTHERHOST, 1 | 4 << 2),
            (7, 1),
        ] {
            assert_eq!(epb_flags(pkttype), EpbFlags(want), "pkttype {pkttype}");
        }
    }

    /// 12 bytes of MAC addresses, EtherType 0x0800, then `rest`.
    fn ether(rest: &[u8]) -> Vec<u8> {
        let mut f = vec![0xaa; 6];
        f.extend([0xbb; 6]);
        f.extend([0x08, 0x00]);
        f.extend(rest);
        f
    }

    type Case<'a> = (&'a str, u16, Vec<u8>, usize, &'a Meta, usize, Vec<u8>, u32);

    #[test]
    fn frames_get_back_what_the_kernel_took_away() {
        let tagged = Meta {
            vlan: Some((0x8100, 0x200a)),
            ..Meta::default()
        };
        let cooked = Meta {
            pkttype: libc::PACKET_OUTGOING,
            hatype: libc::ARPHRD_INFINIBAND,
            protocol: 0x0800u16.to_be_bytes(),
            halen: 6,
            addr: [1, 2, 3, 4, 5, 6, 0, 0],
            net_offset: 4,
            vlan: None,
        };
        let mut with_tag = vec![0xaa; 6];
        with_tag.extend([0xbb; 6]);
        with_tag.extend([0x81, 0x00, 0x20, 0x0a, 0x08, 0x00, 0x45, 0x46]);
        let sll = [0, 4, 0, 32, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        let mut sll_ip = sll.to_vec();
        sll_ip.extend([0x45, 0x46, 0x47]);
        let ip = [0x45, 0x46];
        let cooked_frame = [[9; 4].as_slice(), &[0x45, 0x46, 0x47]].concat();
        // (case, link type, bytes received, wire length, metadata, snaplen,
        //  frame written, wire length written)
        #[rustfmt::skip]
        let cases: [Case; 7] = [
            ("untagged ethernet", link::ETHERNET, ether(&ip), 16, &Meta::default(), 128, ether(&ip), 16),
            ("tag restored", link::ETHERNET, ether(&ip), 16, &tagged, 128, with_tag.clone(), 20),
            ("tag restored then cut", link::ETHERNET, ether(&ip), 16, &tagged, 14, with_tag[..14].to_vec(), 20),
            ("raw ip cut", link::RAW, vec![0x45, 1, 2, 3, 4], 5, &Meta::default(), 3, vec![0x45, 1, 2], 5),
            // The 4-byte link header (up to tp_net) is replaced by SLL.
            ("cooked", link::LINUX_SLL, cooked_frame.clone(), 7, &cooked, 128, sll_ip.clone(), 19),
            ("cooked cut in the header", link::LINUX_SLL, cooked_frame.clone(), 7, &cooked, 10, sll[..10].to_vec(), 19),
            // Fewer bytes received than were on the wire (snap length).
            ("cooked snapped", link::LINUX_SLL, cooked_frame, 1500, &cooked, 128, sll_ip, 1512),
        ];
        for (name, link_type, received, wire, meta, snaplen, want, want_wire) in cases {
            let mut buf = vec![0u8; HEADROOM + received.len()];
            buf[HEADROOM..].copy_from_slice(&received);
            let (range, wire) = assemble(&mut buf, received.len(), wire, link_type, meta, snaplen);
            assert_eq!(&buf[range], &want[..], "{name}");
            assert_eq!(wire, want_wire, "{name}");
        }
    }

    /// An Ethernet/IPv4 frame of `len` bytes carrying `proto` from port
    /// 40000 to `dport`.
    fn ipv4(proto: u8, dport: u16, len: usize) -> Vec<u8> {
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let total = (len - 14) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip.extend(40000u16.to_be_bytes());
        ip.extend(dport.to_be_bytes());
        let mut f = ether(&ip);
        f.resize(len, 0x61);
        f
    }

    #[test]
    fn dns_is_kept_whole_and_the_rest_cut_to_the_snap_length() {
        // (case, frame, snaplen, bytes kept)
        let cases = [
            ("udp 53, big answer", ipv4(17, 53, 1400), 128, 1400),
            ("tcp 53", ipv4(6, 53, 600), 128, 600),
            ("udp 5353 is not DNS", ipv4(17, 5353, 600), 128, 128),
            ("tcp 443", ipv4(6, 443, 1500), 128, 128),
            ("short snap, DNS still whole", ipv4(17, 53, 300), 40, 300),
            ("short snap, the rest", ipv4(6, 80, 300), 40, 40),
            ("snaplen 0 keeps all", ipv4(6, 80, 3000), 0, 3000),
            ("small packet", ipv4(6, 80, 60), 128, 60),
        ];
        for (name, frame, snaplen, kept) in cases {
            let mut framer = Framer::new(snaplen);
            let p = Packet {
                ts_ns: 0,
                data: &frame,
                wire_len: frame.len(),
                ifindex: 1,
                meta: Meta::default(),
            };
            let (got, wire) = framer.frame(&p, link::ETHERNET);
            assert_eq!(got, &frame[..kept], "{name}");
            assert_eq!(wire as usize, frame.len(), "{name}");
        }
    }
}
