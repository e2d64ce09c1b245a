//! Addresses (RTM_NEWADDR answers of `netlink/addr.nl`) as rows of the
//! `addresses` table (the one `ip addr` output fills, see
//! [`crate::addresses`]): one row per address of an interface and one per
//! interface without any, the interface's columns from the link dump the
//! same file starts with. When a namespace has both files, this one is
//! read and `ip-addr.txt` is not.
//!
//! A message is a `struct ifaddrmsg` (8 bytes: family u8, prefixlen u8,
//! flags u8, scope u8, index u32) and attributes (include/uapi/linux/
//! if_addr.h: IFA_ADDRESS 1, IFA_LOCAL 2, IFA_LABEL 3, IFA_BROADCAST 4,
//! IFA_CACHEINFO 6, IFA_FLAGS 8). For IPv4, IFA_LOCAL is the interface's
//! own address and IFA_ADDRESS the peer on a point-to-point link (equal
//! otherwise); IPv6 sends IFA_ADDRESS alone (and IFA_LOCAL as the own
//! address only on point-to-point links). IFA_FLAGS carries all 32 flag
//! bits where the header's u8 holds the low 8.

use super::link::{LinkMsg, links};
use super::{claims_conversation, scope_name};
use crate::addresses::TABLE;
use crate::netlink::{
    self, AF_INET, AF_INET6, RTM_GETADDR, RTM_NEWADDR, Turn, attrs_after, c_str, u32_at,
};
use crate::rows::{Reader, Rows, V};
use std::collections::{HashMap, HashSet};

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
const IFA_BROADCAST: u16 = 4;
const IFA_CACHEINFO: u16 = 6;
const IFA_FLAGS: u16 = 8;
/// `struct ifaddrmsg`.
const IFADDRMSG_LEN: usize = 8;
/// `ifa_cacheinfo` lifetimes of an address that does not expire.
const INFINITY_LIFE_TIME: u32 = u32::MAX;

/// Reads `netlink/addr.nl`.
pub const READER: Reader = Reader {
    table: &TABLE,
    what: "netlink/addr.nl (rtnetlink RTM_GETADDR dump)",
    claims: |path, head| claims_conversation(path, head, "addr.nl", RTM_GETADDR, &[]),
    superseded_by: &[],
    parse,
};

/// IFA_F_* of include/uapi/linux/if_addr.h, named as `ip addr` names them.
fn flags_text(flags: u32, v6: bool) -> String {
    let names: [(u32, &str); 12] = [
        (0x01, if v6 { "temporary" } else { "secondary" }),
        (0x02, "nodad"),
        (0x04, "optimistic"),
        (0x08, "dadfailed"),
        (0x10, "homeaddress"),
        (0x20, "deprecated"),
        (0x40, "tentative"),
        (0x80, "permanent"),
        (0x100, "mngtmpaddr"),
        (0x200, "noprefixroute"),
        (0x400, "autojoin"),
        (0x800, "stable-privacy"),
    ];
    names
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

fn parse(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let all = links(input, |_, _| {}).unwrap_or_default();
    let by_index: HashMap<u32, &LinkMsg> = all.iter().map(|l| (l.index, l)).collect();
    let mut out: Vec<Result<Vec<Owned>, (usize, String)>> = Vec::new();
    netlink::conversation(input, RTM_NEWADDR, |turn| match turn {
        Turn::Answer {
            message, number, ..
        } => out.push(read_addr(message.payload).map_err(|why| (number, why))),
        Turn::Trouble { number, why } => out.push(Err((number, why))),
    })?;
    let mut with_address = HashSet::new();
    for row in out {
        match row {
            Ok(values) => {
                let ifindex = match values[0] {
                    Owned::U(i) => u32::try_from(i).unwrap_or(0),
                    _ => 0,
                };
                with_address.insert(ifindex);
                let iface = interface(ifindex, by_index.get(&ifindex).copied(), &by_index);
                let mut row: Vec<V> = iface.iter().map(Owned::v).collect();
                row.extend(values[1..].iter().map(Owned::v));
                rows.push(&row);
            }
            Err((n, why)) => rows.skip(n, why),
        }
    }
    // Interfaces without an address get a row too, as from `ip addr`.
    for l in &all {
        if with_address.contains(&l.index) {
            continue;
        }
        let iface = interface(l.index, Some(l), &by_index);
        let mut row: Vec<V> = iface.iter().map(Owned::v).collect();
        row.extend(std::iter::repeat_n(V::Null, ADDRESS_COLUMNS));
        rows.push(&row);
    }
    Ok(())
}

/// Columns of an address row after the interface's.
const ADDRESS_COLUMNS: usize = 10;

/// The interface's columns of a row: ifindex, ifname, link, flags, mtu,
/// state, master, mac, link_netns, kind (as `ip addr` prints them; the
/// name is the index when the link dump lacks the interface).
fn interface(index: u32, l: Option<&LinkMsg>, all: &HashMap<u32, &LinkMsg>) -> [Owned; 10] {
    let Some(l) = l else {
        return [
            Owned::U(u64::from(index)),
            Owned::S(index.to_string()),
            Owned::Null,
            Owned::Null,
            Owned::Null,
            Owned::Null,
            Owned::Null,
            Owned::Null,
            Owned::Null,
            Owned::Null,
        ];
    };
    let name_of = |i: u32| all.get(&i).map(|m| m.name.to_string());
    // ip prints `NAME@ifN` for a parent in another namespace, else
    // `NAME@PARENT` (ip/ipaddress.c print_linkinfo).
    let link = l.link.link_ifindex.and_then(|i| match l.link.link_netnsid {
        Some(_) => Some(format!("if{i}")),
        None => name_of(i),
    });
    let s = |v: Option<&str>| Owned::opt_s(v.map(str::to_owned));
    [
        Owned::U(u64::from(index)),
        Owned::S(l.name.to_string()),
        Owned::opt_s(link),
        Owned::opt_s(l.link.flags.clone()),
        Owned::opt_u(l.link.mtu.map(u64::from)),
        s(l.link.operstate),
        Owned::opt_s(l.master.and_then(name_of)),
        Owned::opt_s(l.link.mac.clone()),
        Owned::opt_s(l.link.link_netnsid.map(|n| n.to_string())),
        s(l.link.kind),
    ]
}

/// A value computed from a message, owned so rows can borrow it.
pub(crate) enum Owned {
    Null,
    S(String),
    U(u64),
}

impl Owned {
    pub(crate) fn v(&self) -> V<'_> {
        match self {
            Owned::Null => V::Null,
            Owned::S(s) => V::Str(s),
            Owned::U(n) => V::U64(*n),
        }
    }

    pub(crate) fn opt_s(s: Option<String>) -> Owned {
        s.map_or(Owned::Null, Owned::S)
    }

    pub(crate) fn opt_u(n: Option<u64>) -> Owned {
        n.map_or(Owned::Null, Owned::U)
    }
}

/// The row of one address message: ifindex, then the address columns of
/// `addresses` (family, address, prefix_len, scope, peer, broadcast,
/// label, address_flags, valid, preferred).
fn read_addr(p: &[u8]) -> Result<Vec<Owned>, String> {
    let short = || format!("{} bytes, not an ifaddrmsg", p.len());
    let (family, prefix_len, flags8, scope) = match p {
        [f, l, fl, s, ..] => (*f, *l, *fl, *s),
        _ => return Err(short()),
    };
    let index = u32_at(p, 4).ok_or_else(short)?;
    let attrs = attrs_after(p, IFADDRMSG_LEN).ok_or_else(short)?;
    let (mut address, mut local, mut label, mut broadcast) = (None, None, None, None);
    let mut flags = u32::from(flags8);
    let (mut valid, mut preferred) = (None, None);
    for (kind, data) in attrs {
        match kind {
            IFA_ADDRESS => address = netlink::address(data),
            IFA_LOCAL => local = netlink::address(data),
            IFA_LABEL => label = Some(c_str(data).into_owned()),
            IFA_BROADCAST => broadcast = netlink::address(data),
            IFA_FLAGS => flags = u32_at(data, 0).unwrap_or(flags),
            IFA_CACHEINFO => {
                // ifa_prefered, ifa_valid, cstamp, tstamp (u32 each).
                let life = |at| u32_at(data, at).filter(|&v| v != INFINITY_LIFE_TIME);
                preferred = life(0).map(u64::from);
                valid = life(4).map(u64::from);
            }
            _ => {}
        }
    }
    let own = local
        .or(address)
        .ok_or("an address message without IFA_LOCAL or IFA_ADDRESS")?;
    let peer = address.filter(|a| local.is_some() && *a != own);
    Ok(vec![
        Owned::U(u64::from(index)),
        Owned::S(
            match family {
                AF_INET => "inet",
                AF_INET6 => "inet6",
                _ => return Err(format!("family {family}: not an IP address")),
            }
            .into(),
        ),
        Owned::S(own.to_string()),
        Owned::U(u64::from(prefix_len)),
        Owned::S(scope_name(scope)),
        Owned::opt_s(peer.map(|a| a.to_string())),
        Owned::opt_s(broadcast.map(|a| a.to_string())),
        Owned::opt_s(label),
        Owned::S(flags_text(flags, family == AF_INET6)),
        Owned::opt_u(valid),
        Owned::opt_u(preferred),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::testing::{strings, u64s};
    use crate::rows::{Origin, read};

    /// A real address dump (links first) taken on Linux 6.18 in the lab
    /// namespace of formats/testdata/make-netlink.sh.
    const REAL: &[u8] = include_bytes!("../../testdata/netlink/addr.nl");

    #[test]
    fn a_real_dump_reads_like_ip_addr() {
        let (batch, skipped, _) = read(
            &READER,
            REAL,
            Origin::of("b", None, "netns/x/netlink/addr.nl"),
        )
        .unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        let addrs = strings(&batch, "address");
        let at = |a: &str| addrs.iter().position(|x| x.as_deref() == Some(a)).unwrap();
        let lo = at("127.0.0.1");
        assert_eq!(strings(&batch, "ifname")[lo].as_deref(), Some("lo"));
        assert_eq!(strings(&batch, "scope")[lo].as_deref(), Some("host"));
        assert_eq!(u64s(&batch, "prefix_len")[lo], Some(8));
        let br = at("10.77.0.1");
        assert_eq!(strings(&batch, "ifname")[br].as_deref(), Some("inlab-br"));
        assert_eq!(
            strings(&batch, "broadcast")[br].as_deref(),
            Some("10.77.0.255")
        );
        assert_eq!(strings(&batch, "label")[br].as_deref(), Some("inlab-br"));
        assert_eq!(
            strings(&batch, "address_flags")[br].as_deref(),
            Some("permanent")
        );
        assert_eq!(u64s(&batch, "valid_lft_s")[br], None, "forever");
        let v6 = at("fd77::1");
        assert_eq!(strings(&batch, "family")[v6].as_deref(), Some("inet6"));
        assert_eq!(u64s(&batch, "prefix_len")[v6], Some(64));
        // Each row carries what the link dump says of its interface.
        let names = strings(&batch, "ifname");
        let row_of = |n: &str| names.iter().position(|x| x.as_deref() == Some(n)).unwrap();
        let veth = row_of("inlab-v0");
        assert_eq!(strings(&batch, "family")[veth].as_deref(), Some("inet6"));
        assert_eq!(strings(&batch, "kind")[veth].as_deref(), Some("veth"));
        assert_eq!(strings(&batch, "master")[veth].as_deref(), Some("inlab-br"));
        assert!(
            strings(&batch, "link")[veth]
                .as_deref()
                .unwrap()
                .starts_with("if")
        );
        assert!(strings(&batch, "link_netns")[veth].is_some());
        let vx = row_of("inlab-d0");
        assert_eq!(u64s(&batch, "mtu")[vx], Some(1400));
        assert_eq!(strings(&batch, "kind")[vx].as_deref(), Some("vxlan"));
        assert_eq!(strings(&batch, "state")[lo].as_deref(), Some("UNKNOWN"));
        let second = at("10.77.0.9");
        assert_eq!(
            strings(&batch, "address_flags")[second].as_deref(),
            Some("secondary,permanent")
        );
    }

    #[test]
    fn an_interface_without_an_address_has_a_row_of_its_own() {
        let links = super::super::link::tests::hand_made(1);
        let (batch, _, _) = read(
            &READER,
            &links,
            Origin::of("b", None, "netns/x/netlink/addr.nl"),
        )
        .unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(strings(&batch, "ifname")[0].as_deref(), Some("eth0"));
        assert_eq!(strings(&batch, "address")[0], None);
        assert_eq!(strings(&batch, "master")[0].as_deref(), Some("br0"));
        assert_eq!(strings(&batch, "link")[0].as_deref(), Some("if7"));
        assert_eq!(strings(&batch, "link_netns")[0].as_deref(), Some("0"));
        assert_eq!(u64s(&batch, "mtu")[0], Some(1400));
    }

    #[test]
    fn every_prefix_of_the_real_dump_never_panics() {
        for cut in (0..REAL.len()).step_by(7) {
            let _ = read(&READER, &REAL[..cut], Origin::of("b", None, "addr.nl"));
        }
    }
}
