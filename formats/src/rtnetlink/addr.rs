//! Addresses (RTM_NEWADDR answers of `netlink/addr.nl`) as the
//! `addresses` table, one row per address of an interface.
//!
//! A message is a `struct ifaddrmsg` (8 bytes: family u8, prefixlen u8,
//! flags u8, scope u8, index u32) and attributes (include/uapi/linux/
//! if_addr.h: IFA_ADDRESS 1, IFA_LOCAL 2, IFA_LABEL 3, IFA_BROADCAST 4,
//! IFA_CACHEINFO 6, IFA_FLAGS 8). For IPv4, IFA_LOCAL is the interface's
//! own address and IFA_ADDRESS the peer on a point-to-point link (equal
//! otherwise); IPv6 sends IFA_ADDRESS alone (and IFA_LOCAL as the own
//! address only on point-to-point links). IFA_FLAGS carries all 32 flag
//! bits where the header's u8 holds the low 8.

use super::{claims_conversation, family_name, link_names, scope_name};
use crate::netlink::{self, AF_INET6, RTM_GETADDR, RTM_NEWADDR, Turn, attrs_after, c_str, u32_at};
use crate::rows::{Reader, Rows, V};

crate::artifact_table!(
    "addresses",
    "one row per address of an interface (rtnetlink RTM_GETADDR dump, netlink/addr.nl): what `ip addr` shows",
    [
        (
            "ifindex",
            U32,
            false,
            "the interface's index (interfaces.ifindex)"
        ),
        (
            "interface",
            Dict,
            true,
            "the interface's name, from the link dump the same file starts with"
        ),
        ("family", Dict, false, "ipv4 or ipv6"),
        (
            "address",
            Str,
            false,
            "the interface's own address (IFA_LOCAL, else IFA_ADDRESS)"
        ),
        (
            "prefix_len",
            U8,
            false,
            "prefix length: address/prefix_len is the connected network"
        ),
        (
            "peer",
            Str,
            true,
            "the other end of a point-to-point link (IFA_ADDRESS when it differs from IFA_LOCAL)"
        ),
        (
            "broadcast",
            Str,
            true,
            "IPv4 broadcast address (IFA_BROADCAST)"
        ),
        (
            "scope",
            Dict,
            false,
            "global, site, link, host (as ip prints it) or the number"
        ),
        (
            "label",
            Dict,
            true,
            "IPv4 label (IFA_LABEL: eth0, eth0:1 ...)"
        ),
        (
            "flags",
            Str,
            true,
            "address flags, comma separated: secondary (v4) / temporary (v6), nodad, optimistic, dadfailed, homeaddress, deprecated, tentative, permanent, mngtmpaddr, noprefixroute, autojoin, stable-privacy"
        ),
        (
            "valid_lft_s",
            U64,
            true,
            "seconds the address stays valid (IFA_CACHEINFO); null for forever"
        ),
        (
            "preferred_lft_s",
            U64,
            true,
            "seconds it stays preferred; null for forever"
        ),
    ]
);

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
    superseded_by: None,
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
    let names = link_names(input);
    let mut out: Vec<Result<Vec<Owned>, (usize, String)>> = Vec::new();
    netlink::conversation(input, RTM_NEWADDR, |turn| match turn {
        Turn::Answer {
            message, number, ..
        } => out.push(read_addr(message.payload).map_err(|why| (number, why))),
        Turn::Trouble { number, why } => out.push(Err((number, why))),
    })?;
    for row in out {
        match row {
            Ok(values) => {
                let ifindex = match values[0] {
                    Owned::U(i) => i as u32,
                    _ => 0,
                };
                let interface = names.get(&ifindex).map(String::as_str);
                let mut row: Vec<V> = Vec::with_capacity(values.len() + 1);
                row.push(values[0].v());
                row.push(V::from(interface));
                row.extend(values[1..].iter().map(Owned::v));
                rows.push(&row);
            }
            Err((n, why)) => rows.skip(n, why),
        }
    }
    Ok(())
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

/// The row of one address message, without the interface name: ifindex,
/// family, address, prefix_len, peer, broadcast, scope, label, flags,
/// valid, preferred.
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
        Owned::S(family_name(family)),
        Owned::S(own.to_string()),
        Owned::U(u64::from(prefix_len)),
        Owned::opt_s(peer.map(|a| a.to_string())),
        Owned::opt_s(broadcast.map(|a| a.to_string())),
        Owned::S(scope_name(scope)),
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
        assert_eq!(strings(&batch, "interface")[lo].as_deref(), Some("lo"));
        assert_eq!(strings(&batch, "scope")[lo].as_deref(), Some("host"));
        assert_eq!(u64s(&batch, "prefix_len")[lo], Some(8));
        let br = at("10.77.0.1");
        assert_eq!(
            strings(&batch, "interface")[br].as_deref(),
            Some("inlab-br")
        );
        assert_eq!(
            strings(&batch, "broadcast")[br].as_deref(),
            Some("10.77.0.255")
        );
        assert_eq!(strings(&batch, "label")[br].as_deref(), Some("inlab-br"));
        assert_eq!(strings(&batch, "flags")[br].as_deref(), Some("permanent"));
        assert_eq!(u64s(&batch, "valid_lft_s")[br], None, "forever");
        let v6 = at("fd77::1");
        assert_eq!(strings(&batch, "family")[v6].as_deref(), Some("ipv6"));
        assert_eq!(u64s(&batch, "prefix_len")[v6], Some(64));
        let second = at("10.77.0.9");
        assert_eq!(
            strings(&batch, "flags")[second].as_deref(),
            Some("secondary,permanent")
        );
    }

    #[test]
    fn every_prefix_of_the_real_dump_never_panics() {
        for cut in (0..REAL.len()).step_by(7) {
            let _ = read(&READER, &REAL[..cut], Origin::of("b", None, "addr.nl"));
        }
    }
}
