//! Routes (RTM_NEWROUTE answers of `netlink/route.nl`) as the `routes`
//! table: every route of every table, IPv4 and IPv6, what `ip route show
//! table all` and `ip -6 route show table all` print.
//!
//! A message is a `struct rtmsg` (12 bytes: family, dst_len, src_len, tos,
//! table, protocol, scope, type u8 each, then flags u32) and attributes
//! (include/uapi/linux/rtnetlink.h: RTA_DST 1, SRC 2, IIF 3, OIF 4,
//! GATEWAY 5, PRIORITY 6, PREFSRC 7, METRICS 8 (nested RTAX_*: MTU 2,
//! ADVMSS 8), MULTIPATH 9, TABLE 15, VIA 18, PREF 20). The u8 table of
//! the header cannot say tables above 255: RTA_TABLE (u32) does, and wins.
//! A route's MTU is a metric (`ip route add ... mtu 1400`), only present
//! when set: the path MTU a PMTU black hole is about.

use super::addr::Owned;
use super::{claims_conversation, family_name, link_names, prefix, scope_name, table_name};
use crate::netlink::{self, Attrs, RTM_GETROUTE, RTM_NEWROUTE, Turn, attrs_after, u16_at, u32_at};
use crate::rows::{Reader, Rows, V};
use std::collections::HashMap;

crate::artifact_table!(
    "routes",
    "one row per route of every routing table, IPv4 and IPv6 (rtnetlink RTM_GETROUTE dump, netlink/route.nl): what `ip route show table all` shows",
    [
        ("family", Dict, false, "ipv4 or ipv6"),
        (
            "table",
            U32,
            false,
            "routing table number (254 main, 255 local, 253 default)"
        ),
        (
            "table_name",
            Dict,
            false,
            "main, local, default, or the number"
        ),
        (
            "type",
            Dict,
            false,
            "unicast, local, broadcast, anycast, multicast, blackhole, unreachable, prohibit, throw, nat"
        ),
        (
            "protocol",
            Dict,
            false,
            "who installed it: kernel, boot, static, dhcp, ra, bird, bgp ... or the number"
        ),
        ("scope", Dict, false, "global, link, host, site, nowhere"),
        (
            "destination",
            Str,
            false,
            "destination prefix (10.0.0.0/24), or `default`"
        ),
        ("dst_len", U8, false, "prefix length of the destination"),
        (
            "source",
            Str,
            true,
            "source prefix of a source-specific (IPv6) route (RTA_SRC)"
        ),
        (
            "gateway",
            Str,
            true,
            "next hop (RTA_GATEWAY, or RTA_VIA); null for directly connected routes and multipath"
        ),
        (
            "dev",
            Dict,
            true,
            "output interface name (from the link dump the file starts with)"
        ),
        (
            "oif",
            U32,
            true,
            "output interface index (interfaces.ifindex)"
        ),
        (
            "prefsrc",
            Str,
            true,
            "preferred source address (ip route's `src`)"
        ),
        (
            "metric",
            U32,
            true,
            "route priority/metric (RTA_PRIORITY): lower wins"
        ),
        (
            "mtu",
            U32,
            true,
            "path MTU set on the route (RTAX_MTU metric); null when not set"
        ),
        (
            "advmss",
            U32,
            true,
            "advertised MSS set on the route (RTAX_ADVMSS)"
        ),
        ("tos", U8, false, "TOS the route matches (0: any)"),
        (
            "flags",
            Str,
            true,
            "route flags, comma separated: dead, pervasive, onlink, offload, linkdown, unresolved, trap, cloned"
        ),
        (
            "nexthops",
            Str,
            true,
            "multipath next hops: `via GW dev DEV weight W`, separated by `; `"
        ),
        (
            "pref",
            Dict,
            true,
            "IPv6 router preference (RTA_PREF): low, medium, high"
        ),
    ]
);

const RTA_DST: u16 = 1;
const RTA_SRC: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_METRICS: u16 = 8;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const RTA_VIA: u16 = 18;
const RTA_PREF: u16 = 20;
const RTAX_MTU: u16 = 2;
const RTAX_ADVMSS: u16 = 8;
/// `struct rtmsg`.
const RTMSG_LEN: usize = 12;
/// `struct rtnexthop`: len u16, flags u8, hops u8, ifindex i32.
const RTNEXTHOP_LEN: usize = 8;

/// Reads `netlink/route.nl`.
pub const READER: Reader = Reader {
    table: &TABLE,
    what: "netlink/route.nl (rtnetlink RTM_GETROUTE dump)",
    claims: |path, head| claims_conversation(path, head, "route.nl", RTM_GETROUTE, &[]),
    superseded_by: &[],
    parse,
};

/// RTN_* route types.
fn type_name(t: u8) -> String {
    match t {
        0 => "unspec",
        1 => "unicast",
        2 => "local",
        3 => "broadcast",
        4 => "anycast",
        5 => "multicast",
        6 => "blackhole",
        7 => "unreachable",
        8 => "prohibit",
        9 => "throw",
        10 => "nat",
        11 => "xresolve",
        n => return n.to_string(),
    }
    .into()
}

/// RTPROT_* (rtnetlink.h; names as /etc/iproute2/rt_protos gives them).
pub(crate) fn protocol_name(p: u8) -> String {
    match p {
        0 => "unspec",
        1 => "redirect",
        2 => "kernel",
        3 => "boot",
        4 => "static",
        8 => "gated",
        9 => "ra",
        10 => "mrt",
        11 => "zebra",
        12 => "bird",
        13 => "dnrouted",
        14 => "xorp",
        15 => "ntk",
        16 => "dhcp",
        17 => "mrouted",
        18 => "keepalived",
        42 => "babel",
        99 => "openr",
        186 => "bgp",
        187 => "isis",
        188 => "ospf",
        189 => "rip",
        192 => "eigrp",
        n => return n.to_string(),
    }
    .into()
}

/// RTNH_F_* and RTM_F_* flags of rtm_flags.
fn flags_text(flags: u32) -> Option<String> {
    let names: [(u32, &str); 8] = [
        (1, "dead"),
        (2, "pervasive"),
        (4, "onlink"),
        (8, "offload"),
        (16, "linkdown"),
        (32, "unresolved"),
        (64, "trap"),
        (0x200, "cloned"),
    ];
    let out: Vec<&str> = names
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, n)| *n)
        .collect();
    (!out.is_empty()).then(|| out.join(","))
}

/// RTA_GATEWAY's address, or RTA_VIA's (`struct rtvia`: family u16, then
/// the address).
fn gateway(attrs: &HashMap<u16, &[u8]>) -> Option<String> {
    if let Some(g) = attrs.get(&RTA_GATEWAY).and_then(|d| netlink::address(d)) {
        return Some(g.to_string());
    }
    let via = attrs.get(&RTA_VIA)?;
    let _family = u16_at(via, 0)?;
    netlink::address(via.get(2..)?).map(|a| a.to_string())
}

fn nexthops(data: &[u8], names: &HashMap<u32, String>) -> String {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(len) = u16_at(rest, 0).map(usize::from) {
        if len < RTNEXTHOP_LEN || len > rest.len() {
            break;
        }
        let hops = rest[3];
        let ifindex = u32_at(rest, 4).unwrap_or(0);
        let attrs = super::attr_map(Attrs(&rest[RTNEXTHOP_LEN..len]));
        let mut hop = String::new();
        if let Some(g) = gateway(&attrs) {
            hop.push_str(&format!("via {g} "));
        }
        match names.get(&ifindex) {
            Some(n) => hop.push_str(&format!("dev {n} ")),
            None => hop.push_str(&format!("dev {ifindex} ")),
        }
        hop.push_str(&format!("weight {}", u16::from(hops) + 1));
        out.push(hop);
        rest = &rest[netlink::align4(len).min(rest.len())..];
    }
    out.join("; ")
}

fn parse(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let names = link_names(input);
    let mut out: Vec<Result<Vec<Owned>, (usize, String)>> = Vec::new();
    netlink::conversation(input, RTM_NEWROUTE, |turn| match turn {
        Turn::Answer {
            message, number, ..
        } => out.push(read_route(message.payload, &names).map_err(|why| (number, why))),
        Turn::Trouble { number, why } => out.push(Err((number, why))),
    })?;
    for row in out {
        match row {
            Ok(values) => {
                let row: Vec<V> = values.iter().map(Owned::v).collect();
                rows.push(&row);
            }
            Err((n, why)) => rows.skip(n, why),
        }
    }
    Ok(())
}

fn read_route(p: &[u8], names: &HashMap<u32, String>) -> Result<Vec<Owned>, String> {
    let short = || format!("{} bytes, not an rtmsg", p.len());
    let (family, dst_len, src_len, tos, table8, protocol, scope, kind) = match p {
        [a, b, c, d, e, f, g, h, ..] => (*a, *b, *c, *d, *e, *f, *g, *h),
        _ => return Err(short()),
    };
    let flags = u32_at(p, 8).ok_or_else(short)?;
    let attrs = super::attr_map(attrs_after(p, RTMSG_LEN).ok_or_else(short)?);
    let table = attrs
        .get(&RTA_TABLE)
        .and_then(|d| u32_at(d, 0))
        .unwrap_or(u32::from(table8));
    let destination = prefix(attrs.get(&RTA_DST).copied(), dst_len).unwrap_or_else(|| {
        if dst_len == 0 {
            "default".into()
        } else {
            format!("?/{dst_len}")
        }
    });
    let oif = attrs.get(&RTA_OIF).and_then(|d| u32_at(d, 0));
    let metric_of = |m: u16| {
        attrs
            .get(&RTA_METRICS)
            .and_then(|d| Attrs(d).find(|(k, _)| *k == m))
            .and_then(|(_, d)| u32_at(d, 0))
    };
    let pref = attrs
        .get(&RTA_PREF)
        .and_then(|d| d.first())
        .map(|p| match p {
            0 => "medium".to_owned(),
            1 => "high".to_owned(),
            3 => "low".to_owned(),
            n => n.to_string(),
        });
    let u = |v: Option<u32>| Owned::opt_u(v.map(u64::from));
    Ok(vec![
        Owned::S(family_name(family)),
        Owned::U(u64::from(table)),
        Owned::S(table_name(table)),
        Owned::S(type_name(kind)),
        Owned::S(protocol_name(protocol)),
        Owned::S(scope_name(scope)),
        Owned::S(destination),
        Owned::U(u64::from(dst_len)),
        Owned::opt_s(prefix(attrs.get(&RTA_SRC).copied(), src_len)),
        Owned::opt_s(gateway(&attrs)),
        Owned::opt_s(oif.and_then(|i| names.get(&i).cloned())),
        u(oif),
        Owned::opt_s(
            attrs
                .get(&RTA_PREFSRC)
                .and_then(|d| netlink::address(d))
                .map(|a| a.to_string()),
        ),
        u(attrs.get(&RTA_PRIORITY).and_then(|d| u32_at(d, 0))),
        u(metric_of(RTAX_MTU)),
        u(metric_of(RTAX_ADVMSS)),
        Owned::U(u64::from(tos)),
        Owned::opt_s(flags_text(flags)),
        Owned::opt_s(attrs.get(&RTA_MULTIPATH).map(|d| nexthops(d, names))),
        Owned::opt_s(pref),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::testing::{strings, u64s};
    use crate::rows::{Origin, read};

    /// A real route dump (links first) taken on Linux 6.18 in the lab
    /// namespace of formats/testdata/make-netlink.sh.
    const REAL: &[u8] = include_bytes!("../../testdata/netlink/route.nl");

    #[test]
    fn a_real_dump_reads_like_ip_route_show_table_all() {
        let (batch, skipped, _) = read(
            &READER,
            REAL,
            Origin::of("b", None, "netns/x/netlink/route.nl"),
        )
        .unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        let dst = strings(&batch, "destination");
        let tables = u64s(&batch, "table");
        let find = |d: &str, t: u64| {
            (0..dst.len())
                .find(|&i| dst[i].as_deref() == Some(d) && tables[i] == Some(t))
                .unwrap_or_else(|| panic!("no route {d} in table {t}: {dst:?}"))
        };
        let default = find("default", 254);
        assert_eq!(
            strings(&batch, "gateway")[default].as_deref(),
            Some("10.77.0.254")
        );
        assert_eq!(strings(&batch, "dev")[default].as_deref(), Some("inlab-br"));
        assert_eq!(
            strings(&batch, "protocol")[default].as_deref(),
            Some("boot")
        );
        let connected = find("10.77.0.0/24", 254);
        assert_eq!(
            strings(&batch, "protocol")[connected].as_deref(),
            Some("kernel")
        );
        assert_eq!(strings(&batch, "scope")[connected].as_deref(), Some("link"));
        assert_eq!(
            strings(&batch, "prefsrc")[connected].as_deref(),
            Some("10.77.0.1")
        );
        let mtu = find("10.88.0.0/16", 254);
        assert_eq!(u64s(&batch, "mtu")[mtu], Some(1300));
        assert_eq!(u64s(&batch, "metric")[mtu], Some(50));
        let other = find("10.99.0.0/16", 100);
        assert_eq!(strings(&batch, "table_name")[other].as_deref(), Some("100"));
        assert_eq!(strings(&batch, "dev")[other].as_deref(), Some("inlab-d0"));
        let bh = find("192.0.2.0/24", 254);
        assert_eq!(strings(&batch, "type")[bh].as_deref(), Some("blackhole"));
        let local = find("10.77.0.1/32", 255);
        assert_eq!(strings(&batch, "type")[local].as_deref(), Some("local"));
        assert_eq!(
            strings(&batch, "table_name")[local].as_deref(),
            Some("local")
        );
        let v6 = find("fd77::/64", 254);
        assert_eq!(strings(&batch, "family")[v6].as_deref(), Some("ipv6"));
        let mp = find("10.66.0.0/16", 254);
        assert_eq!(strings(&batch, "gateway")[mp], None);
        assert_eq!(
            strings(&batch, "nexthops")[mp].as_deref(),
            Some("via 10.77.0.253 dev inlab-br weight 1; via 10.77.0.252 dev inlab-br weight 2")
        );
    }
}
