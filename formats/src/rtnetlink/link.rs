//! Links (RTM_NEWLINK answers of `netlink/link.nl`) as rows of
//! `interfaces`: each device's configuration and its counters.
//!
//! A link message is a `struct ifinfomsg` (16 bytes: family u8, pad u8,
//! type u16, index i32, flags u32, change u32) and attributes
//! (include/uapi/linux/if_link.h; the enum's numbering is the ABI:
//! IFLA_ADDRESS 1, IFNAME 3, MTU 4, LINK 5, QDISC 6, STATS 7, MASTER 10,
//! TXQLEN 13, OPERSTATE 16, LINKINFO 18, IFALIAS 20, STATS64 23, CARRIER
//! 33, LINK_NETNSID 37). The counters are IFLA_STATS64, a `struct
//! rtnl_link_stats64` that grew over the years (23 u64 until 4.6, 24 with
//! rx_nohandler, 25 with rx_otherhost_dropped in 5.19; 6.18 sends 25):
//! only the first 23 are used, summed the way /proc/net/dev prints them
//! (net/core/net-procfs.c, `dev_seq_printf_stats`), so a row means the
//! same from either file. IFLA_STATS, the 32-bit copy, is the fallback.

use super::claims_conversation;
use crate::interfaces::{Counters, Link, TABLE, push};
use crate::netlink::{
    self, Attrs, RTM_GETLINK, RTM_NEWLINK, Turn, attrs_after, c_str, i32_at, link_address, u32_at,
    u64_at,
};
use crate::rows::{Reader, Rows};
use std::borrow::Cow;
use std::collections::HashMap;

pub(crate) const IFLA_ADDRESS: u16 = 1;
pub(crate) const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_QDISC: u16 = 6;
const IFLA_STATS: u16 = 7;
const IFLA_MASTER: u16 = 10;
const IFLA_TXQLEN: u16 = 13;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_LINKINFO: u16 = 18;
const IFLA_IFALIAS: u16 = 20;
const IFLA_STATS64: u16 = 23;
const IFLA_CARRIER: u16 = 33;
const IFLA_LINK_NETNSID: u16 = 37;
/// Nested in IFLA_LINKINFO.
const IFLA_INFO_KIND: u16 = 1;
/// `struct ifinfomsg`.
const IFINFOMSG_LEN: usize = 16;
/// Counters of rtnl_link_stats64 every kernel since 2.6.35 sends.
const STATS_FIELDS: usize = 23;

/// Reads `netlink/link.nl`.
pub const READER: Reader = Reader {
    table: &TABLE,
    what: "netlink/link.nl (rtnetlink RTM_GETLINK dump)",
    claims: |path, head| claims_conversation(path, head, "link.nl", RTM_GETLINK, &[]),
    superseded_by: &[],
    parse,
};

/// One link message, read.
pub(crate) struct LinkMsg<'a> {
    pub(crate) index: u32,
    pub(crate) name: Cow<'a, str>,
    counters: Option<Counters>,
    pub(crate) link: Link<'a>,
    pub(crate) master: Option<u32>,
}

/// The device flags `ip link` prints, in its order (include/uapi/linux/if.h
/// values; iproute2 ip/ipaddress.c `print_link_flags`).
const FLAGS: &[(u32, &str)] = &[
    (0x8, "LOOPBACK"),
    (0x2, "BROADCAST"),
    (0x10, "POINTOPOINT"),
    (0x1000, "MULTICAST"),
    (0x80, "NOARP"),
    (0x200, "ALLMULTI"),
    (0x100, "PROMISC"),
    (0x20, "NOTRAILERS"),
    (0x4, "DEBUG"),
    (0x8000, "DYNAMIC"),
    (0x4000, "AUTOMEDIA"),
    (0x2000, "PORTSEL"),
    (0x400, "MASTER"),
    (0x800, "SLAVE"),
    (0x1, "UP"),
    (0x10000, "LOWER_UP"),
    (0x20000, "DORMANT"),
    (0x40000, "ECHO"),
];
const IFF_UP: u32 = 0x1;
const IFF_RUNNING: u32 = 0x40;

fn flags_text(flags: u32) -> String {
    let mut out: Vec<&str> = Vec::new();
    // ip prints NO-CARRIER for a device up but not running.
    if flags & IFF_UP != 0 && flags & IFF_RUNNING == 0 {
        out.push("NO-CARRIER");
    }
    out.extend(
        FLAGS
            .iter()
            .filter(|(b, _)| flags & b != 0)
            .map(|(_, n)| *n),
    );
    out.join(",")
}

/// RFC 2863 operational states (include/uapi/linux/if.h `IF_OPER_*`).
fn operstate(v: u8) -> &'static str {
    match v {
        1 => "NOTPRESENT",
        2 => "DOWN",
        3 => "LOWERLAYERDOWN",
        4 => "TESTING",
        5 => "DORMANT",
        6 => "UP",
        _ => "UNKNOWN",
    }
}

/// /proc/net/dev's 16 counters from rtnl_link_stats64 (or the 32-bit
/// rtnl_link_stats: same order, u32 fields).
fn counters(stats: &[u8], width: usize) -> Option<Counters> {
    if stats.len() < STATS_FIELDS * width {
        return None;
    }
    let f = |i: usize| -> u64 {
        if width == 8 {
            u64_at(stats, i * 8).unwrap_or(0)
        } else {
            u64::from(u32_at(stats, i * 4).unwrap_or(0))
        }
    };
    // rx_packets 0, tx_packets 1, rx_bytes 2, tx_bytes 3, rx_errors 4,
    // tx_errors 5, rx_dropped 6, tx_dropped 7, multicast 8, collisions 9,
    // rx_length 10, rx_over 11, rx_crc 12, rx_frame 13, rx_fifo 14,
    // rx_missed 15, tx_aborted 16, tx_carrier 17, tx_fifo 18,
    // tx_heartbeat 19, tx_window 20, rx_compressed 21, tx_compressed 22.
    let sum = |fields: &[usize]| fields.iter().fold(0u64, |a, &i| a.wrapping_add(f(i)));
    Some([
        f(2),
        f(0),
        f(4),
        sum(&[6, 15]),
        f(14),
        sum(&[10, 11, 12, 13]),
        f(21),
        f(8),
        f(3),
        f(1),
        f(5),
        f(7),
        f(18),
        f(9),
        sum(&[17, 16, 20, 19]),
        f(22),
    ])
}

fn read_link(payload: &[u8]) -> Result<LinkMsg<'_>, String> {
    let short = || format!("{} bytes, not an ifinfomsg", payload.len());
    let index = u32_at(payload, 4).ok_or_else(short)?;
    let flags = u32_at(payload, 8).ok_or_else(short)?;
    let attrs = attrs_after(payload, IFINFOMSG_LEN).ok_or_else(short)?;
    let mut name = None;
    let mut stats64 = None;
    let mut stats32 = None;
    let mut master = None;
    let mut link = Link {
        ifindex: Some(index),
        flags: Some(flags_text(flags)),
        admin_up: Some(flags & IFF_UP != 0),
        ..Link::default()
    };
    let u32_of = |d: &[u8]| u32_at(d, 0);
    for (kind, data) in attrs {
        match kind {
            IFLA_IFNAME => name = Some(c_str(data)),
            IFLA_ADDRESS => link.mac = link_address(data),
            IFLA_MTU => link.mtu = u32_of(data),
            IFLA_LINK => link.link_ifindex = u32_of(data),
            IFLA_QDISC => link.qdisc = as_str(data),
            IFLA_STATS => stats32 = Some(data),
            IFLA_STATS64 => stats64 = Some(data),
            IFLA_MASTER => master = u32_of(data),
            IFLA_TXQLEN => link.txqlen = u32_of(data),
            IFLA_OPERSTATE => link.operstate = data.first().map(|&v| operstate(v)),
            IFLA_IFALIAS => link.alias = as_str(data).filter(|a| !a.is_empty()),
            IFLA_CARRIER => link.carrier = data.first().map(|&v| v != 0),
            IFLA_LINK_NETNSID => link.link_netnsid = i32_at(data, 0).map(i64::from),
            IFLA_LINKINFO => {
                for (k, d) in Attrs(data) {
                    if k == IFLA_INFO_KIND {
                        link.kind = as_str(d);
                    }
                }
            }
            _ => {}
        }
    }
    // IFLA_LINK names the device itself on devices without a parent.
    if link.link_ifindex == Some(index) {
        link.link_ifindex = None;
    }
    let name = name.ok_or("a link without IFLA_IFNAME")?;
    let counters = stats64
        .and_then(|s| counters(s, 8))
        .or_else(|| stats32.and_then(|s| counters(s, 4)));
    link.master_ifindex = master;
    Ok(LinkMsg {
        index,
        name,
        counters,
        link,
        master,
    })
}

/// A NUL-terminated string attribute that is valid UTF-8, borrowed.
fn as_str(data: &[u8]) -> Option<&str> {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    std::str::from_utf8(&data[..end]).ok()
}

/// The links of a conversation (the bad ones skipped, with why).
pub(crate) fn links(
    input: &[u8],
    mut skip: impl FnMut(usize, String),
) -> Result<Vec<LinkMsg<'_>>, String> {
    let mut out = Vec::new();
    netlink::conversation(input, RTM_NEWLINK, |turn| match turn {
        Turn::Answer {
            message, number, ..
        } => match read_link(message.payload) {
            Ok(l) => out.push(l),
            Err(why) => skip(number, why),
        },
        Turn::Trouble { number, why } => skip(number, why),
    })?;
    Ok(out)
}

fn parse(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    // Counters when the window opened, by ifindex, for the same name.
    let open: HashMap<u32, (String, Counters)> = rows
        .at_open()
        .map(|bytes| {
            links(bytes, |_, _| {})
                .unwrap_or_default()
                .into_iter()
                .filter_map(|l| Some((l.index, (l.name.into_owned(), l.counters?))))
                .collect()
        })
        .unwrap_or_default();
    let secs = rows.window_secs();
    let mut skipped = Vec::new();
    let all = links(input, |n, why| skipped.push((n, why)))?;
    for (n, why) in skipped {
        rows.skip(n, why);
    }
    let names: HashMap<u32, &str> = all.iter().map(|l| (l.index, l.name.as_ref())).collect();
    for l in &all {
        let Some(c) = l.counters else {
            rows.skip(0, format!("link {}: no IFLA_STATS64 or IFLA_STATS", l.name));
            continue;
        };
        let mut link = l.link.clone();
        link.master = l.master.and_then(|m| names.get(&m).copied());
        let before = open
            .get(&l.index)
            .filter(|(name, _)| *name == l.name)
            .map(|(_, c)| c);
        push(rows, &l.name, &c, &link, before, secs);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::netlink::build::{attr, done, message};
    use crate::netlink::{LINK_DUMP, NLM_F_MULTI};
    use crate::rows::testing::{strings, u64s};
    use crate::rows::{Origin, read, read_pair};

    /// A real link dump taken on Linux 6.18 in a namespace with lo, a veth
    /// pair end (peer in another namespace) enslaved to a bridge, the
    /// bridge, and a vxlan with MTU 1400 (formats/testdata/make-netlink.sh).
    pub(crate) const REAL: &[u8] = include_bytes!("../../testdata/netlink/link.nl");

    fn ifinfomsg(index: u32, flags: u32, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut p = vec![0u8, 0, 1, 0];
        p.extend_from_slice(&index.to_le_bytes());
        p.extend_from_slice(&flags.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        for a in attrs {
            p.extend_from_slice(a);
        }
        p
    }

    fn stats64(rx_bytes: u64, rx_dropped: u64, rx_missed: u64) -> Vec<u8> {
        let mut s = [0u64; 25];
        s[2] = rx_bytes;
        s[6] = rx_dropped;
        s[15] = rx_missed;
        s.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    pub(crate) fn hand_made(rx_bytes: u64) -> Vec<u8> {
        let mut f = LINK_DUMP.requests[0].message(5);
        f.extend(message(
            RTM_NEWLINK,
            NLM_F_MULTI,
            5,
            &ifinfomsg(
                2,
                0x1 | 0x2 | 0x1000 | 0x10000 | 0x40,
                &[
                    attr(IFLA_IFNAME, b"eth0\0"),
                    attr(IFLA_MTU, &1400u32.to_le_bytes()),
                    attr(IFLA_MASTER, &3u32.to_le_bytes()),
                    attr(IFLA_OPERSTATE, &[6]),
                    attr(IFLA_STATS64, &stats64(rx_bytes, 2, 3)),
                    attr(IFLA_LINKINFO, &attr(IFLA_INFO_KIND, b"veth\0")),
                    attr(IFLA_LINK, &7u32.to_le_bytes()),
                    attr(IFLA_LINK_NETNSID, &0i32.to_le_bytes()),
                ],
            ),
        ));
        f.extend(message(
            RTM_NEWLINK,
            NLM_F_MULTI,
            5,
            &ifinfomsg(
                3,
                0x1,
                &[
                    attr(IFLA_IFNAME, b"br0\0"),
                    attr(IFLA_STATS64, &stats64(9, 0, 0)),
                ],
            ),
        ));
        f.extend(done(5));
        f
    }

    #[test]
    fn links_give_config_counters_and_master_names() {
        let (batch, skipped, _) = read(
            &READER,
            &hand_made(1000),
            Origin::of("b", None, "netns/host/netlink/link.nl"),
        )
        .unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(
            strings(&batch, "name"),
            [Some("eth0".into()), Some("br0".into())]
        );
        assert_eq!(u64s(&batch, "mtu"), [Some(1400), None]);
        assert_eq!(u64s(&batch, "rx_bytes"), [Some(1000), Some(9)]);
        assert_eq!(
            u64s(&batch, "rx_drop"),
            [Some(5), Some(0)],
            "dropped + missed"
        );
        assert_eq!(strings(&batch, "master")[0].as_deref(), Some("br0"));
        assert_eq!(strings(&batch, "kind")[0].as_deref(), Some("veth"));
        assert_eq!(strings(&batch, "operstate")[0].as_deref(), Some("UP"));
        assert_eq!(
            strings(&batch, "flags")[0].as_deref(),
            Some("BROADCAST,MULTICAST,UP,LOWER_UP")
        );
        assert_eq!(
            strings(&batch, "flags")[1].as_deref(),
            Some("NO-CARRIER,UP")
        );
        assert_eq!(u64s(&batch, "link_ifindex"), [Some(7), None]);
    }

    #[test]
    fn the_window_open_dump_gives_the_change() {
        let (batch, _, _) = read_pair(
            &READER,
            &hand_made(5000),
            Some(&hand_made(1000)),
            crate::rows::testing::in_window("netns/host/netlink/link.nl", 4),
        )
        .unwrap();
        assert_eq!(u64s(&batch, "rx_bytes_delta"), [Some(4000), Some(0)]);
        assert_eq!(
            crate::rows::testing::f64s(&batch, "rx_bytes_per_sec"),
            [Some(1000.0), Some(0.0)]
        );
    }

    #[test]
    fn a_real_dump_reads_like_ip_link() {
        let (batch, skipped, _) = read(
            &READER,
            REAL,
            Origin::of("b", None, "netns/x/netlink/link.nl"),
        )
        .unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        let names = strings(&batch, "name");
        let at = |n: &str| names.iter().position(|x| x.as_deref() == Some(n)).unwrap();
        let (lo, veth, br, dummy) = (at("lo"), at("inlab-v0"), at("inlab-br"), at("inlab-d0"));
        let kinds = strings(&batch, "kind");
        assert_eq!(kinds[lo], None);
        assert_eq!(kinds[veth].as_deref(), Some("veth"));
        assert_eq!(kinds[br].as_deref(), Some("bridge"));
        assert_eq!(kinds[dummy].as_deref(), Some("vxlan"));
        assert_eq!(u64s(&batch, "mtu")[dummy], Some(1400));
        assert_eq!(u64s(&batch, "mtu")[lo], Some(65536));
        assert_eq!(strings(&batch, "master")[veth].as_deref(), Some("inlab-br"));
        assert_eq!(
            crate::rows::testing::i64s(&batch, "link_netnsid")[veth],
            Some(0)
        );
        assert!(u64s(&batch, "link_ifindex")[veth].is_some());
        assert_eq!(strings(&batch, "operstate")[lo].as_deref(), Some("UNKNOWN"));
        assert_eq!(
            strings(&batch, "flags")[lo].as_deref(),
            Some("LOOPBACK,UP,LOWER_UP")
        );
        assert!(u64s(&batch, "rx_packets")[lo].unwrap() > 0);
    }
}
