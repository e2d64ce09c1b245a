//! Policy routing rules (RTM_NEWRULE answers of `netlink/rule.nl`) as the
//! `routing_rules` table, what `ip rule` and `ip -6 rule` print: which
//! routing table a packet is looked up in.
//!
//! A message is a `struct fib_rule_hdr` (12 bytes: family, dst_len,
//! src_len, tos, table, res1, res2, action u8 each, then flags u32) and
//! attributes (include/uapi/linux/fib_rules.h: FRA_DST 1, SRC 2, IIFNAME 3,
//! GOTO 4, PRIORITY 6, FWMARK 10, SUPPRESS_PREFIXLEN 14, TABLE 15, FWMASK
//! 16, OIFNAME 17, L3MDEV 19, UID_RANGE 20, PROTOCOL 21, IP_PROTO 22,
//! SPORT_RANGE 23, DPORT_RANGE 24). The rule at priority 0 (lookup local)
//! has no FRA_PRIORITY at all: priority 0 is read as absent.

use super::addr::Owned;
use super::{claims_conversation, family_name, prefix, table_name};
use crate::netlink::{self, RTM_GETRULE, RTM_NEWRULE, Turn, attrs_after, c_str, u16_at, u32_at};
use crate::rows::{Reader, Rows, V};

crate::artifact_table!(
    "routing_rules",
    "one row per policy routing rule, IPv4 and IPv6 (rtnetlink RTM_GETRULE dump, netlink/rule.nl): what `ip rule` shows",
    [
        ("family", Dict, false, "ipv4 or ipv6"),
        (
            "priority",
            U32,
            false,
            "rule priority: rules are tried from the lowest"
        ),
        (
            "action",
            Dict,
            false,
            "lookup (a table), goto, nop, blackhole, unreachable, prohibit"
        ),
        ("table", U32, true, "the table looked up (lookup rules)"),
        (
            "table_name",
            Dict,
            true,
            "main, local, default, or the number"
        ),
        (
            "source",
            Str,
            true,
            "source prefix matched (from); null for all"
        ),
        (
            "destination",
            Str,
            true,
            "destination prefix matched (to); null for all"
        ),
        ("iif", Dict, true, "input interface matched (iif)"),
        ("oif", Dict, true, "output interface matched (oif)"),
        ("fwmark", U32, true, "firewall mark matched (fwmark)"),
        ("fwmask", U32, true, "mask of the mark"),
        ("tos", U8, false, "TOS matched (0: any)"),
        ("invert", Bool, false, "the match is inverted (`not`)"),
        ("ip_proto", U8, true, "IP protocol matched (ipproto)"),
        ("sport_range", Str, true, "source ports matched, `lo-hi`"),
        (
            "dport_range",
            Str,
            true,
            "destination ports matched, `lo-hi`"
        ),
        ("uid_range", Str, true, "socket owner uids matched, `lo-hi`"),
        (
            "suppress_prefixlen",
            U32,
            true,
            "routes with a prefix this long or shorter are ignored (suppress_prefixlength)"
        ),
        (
            "goto_priority",
            U32,
            true,
            "goto rules: the priority jumped to"
        ),
        (
            "l3mdev",
            Bool,
            false,
            "lookup in the table of the VRF device the packet came through"
        ),
        (
            "protocol",
            Dict,
            true,
            "who installed the rule: kernel, boot, static ..."
        ),
    ]
);

const FRA_DST: u16 = 1;
const FRA_SRC: u16 = 2;
const FRA_IIFNAME: u16 = 3;
const FRA_GOTO: u16 = 4;
const FRA_PRIORITY: u16 = 6;
const FRA_FWMARK: u16 = 10;
const FRA_SUPPRESS_PREFIXLEN: u16 = 14;
const FRA_TABLE: u16 = 15;
const FRA_FWMASK: u16 = 16;
const FRA_OIFNAME: u16 = 17;
const FRA_L3MDEV: u16 = 19;
const FRA_UID_RANGE: u16 = 20;
const FRA_PROTOCOL: u16 = 21;
const FRA_IP_PROTO: u16 = 22;
const FRA_SPORT_RANGE: u16 = 23;
const FRA_DPORT_RANGE: u16 = 24;
const FIB_RULE_INVERT: u32 = 2;
const FR_ACT_TO_TBL: u8 = 1;
/// `struct fib_rule_hdr`.
const FIB_RULE_HDR_LEN: usize = 12;

/// Reads `netlink/rule.nl`.
pub const READER: Reader = Reader {
    table: &TABLE,
    what: "netlink/rule.nl (rtnetlink RTM_GETRULE dump)",
    claims: |path, head| claims_conversation(path, head, "rule.nl", RTM_GETRULE, &[]),
    superseded_by: &[],
    parse,
};

fn action_name(a: u8) -> String {
    match a {
        0 => "unspec",
        1 => "lookup",
        2 => "goto",
        3 => "nop",
        6 => "blackhole",
        7 => "unreachable",
        8 => "prohibit",
        n => return n.to_string(),
    }
    .into()
}

fn parse(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let mut out: Vec<Result<RuleRow, (usize, String)>> = Vec::new();
    netlink::conversation(input, RTM_NEWRULE, |turn| match turn {
        Turn::Answer {
            message, number, ..
        } => out.push(read_rule(message.payload).map_err(|why| (number, why))),
        Turn::Trouble { number, why } => out.push(Err((number, why))),
    })?;
    for row in out {
        match row {
            Ok((values, invert, l3mdev)) => {
                let mut row: Vec<V> = values.iter().map(Owned::v).collect();
                // invert and l3mdev sit after tos and after goto_priority.
                row.insert(12, V::Bool(invert));
                row.insert(19, V::Bool(l3mdev));
                rows.push(&row);
            }
            Err((n, why)) => rows.skip(n, why),
        }
    }
    Ok(())
}

/// The row of one rule without its two booleans (invert, l3mdev), and them.
type RuleRow = (Vec<Owned>, bool, bool);

fn read_rule(p: &[u8]) -> Result<RuleRow, String> {
    let short = || format!("{} bytes, not a fib_rule_hdr", p.len());
    let (family, dst_len, src_len, tos, table8, action) = match p {
        [a, b, c, d, e, _, _, h, ..] => (*a, *b, *c, *d, *e, *h),
        _ => return Err(short()),
    };
    let flags = u32_at(p, 8).ok_or_else(short)?;
    let attrs = super::attr_map(attrs_after(p, FIB_RULE_HDR_LEN).ok_or_else(short)?);
    let u32a = |k: u16| attrs.get(&k).and_then(|d| u32_at(d, 0));
    let range16 = |k: u16| {
        attrs
            .get(&k)
            .and_then(|d| Some(format!("{}-{}", u16_at(d, 0)?, u16_at(d, 2)?)))
    };
    let table = u32a(FRA_TABLE).unwrap_or(u32::from(table8));
    let lookup = action == FR_ACT_TO_TBL;
    let name = |k: u16| attrs.get(&k).map(|d| c_str(d).into_owned());
    let u = |v: Option<u32>| Owned::opt_u(v.map(u64::from));
    Ok((
        vec![
            Owned::S(family_name(family)),
            Owned::U(u64::from(u32a(FRA_PRIORITY).unwrap_or(0))),
            Owned::S(action_name(action)),
            u(lookup.then_some(table)),
            Owned::opt_s(lookup.then(|| table_name(table))),
            Owned::opt_s(prefix(attrs.get(&FRA_SRC).copied(), src_len)),
            Owned::opt_s(prefix(attrs.get(&FRA_DST).copied(), dst_len)),
            Owned::opt_s(name(FRA_IIFNAME)),
            Owned::opt_s(name(FRA_OIFNAME)),
            u(u32a(FRA_FWMARK)),
            u(u32a(FRA_FWMASK)),
            Owned::U(u64::from(tos)),
            Owned::opt_u(
                attrs
                    .get(&FRA_IP_PROTO)
                    .and_then(|d| d.first())
                    .map(|&v| u64::from(v)),
            ),
            Owned::opt_s(range16(FRA_SPORT_RANGE)),
            Owned::opt_s(range16(FRA_DPORT_RANGE)),
            Owned::opt_s(
                attrs
                    .get(&FRA_UID_RANGE)
                    .and_then(|d| Some(format!("{}-{}", u32_at(d, 0)?, u32_at(d, 4)?))),
            ),
            // -1 (u32::MAX) is "not set".
            u(u32a(FRA_SUPPRESS_PREFIXLEN).filter(|&v| v != u32::MAX)),
            u(u32a(FRA_GOTO)),
            Owned::opt_s(
                attrs
                    .get(&FRA_PROTOCOL)
                    .and_then(|d| d.first())
                    .map(|&p| super::route::protocol_name(p)),
            ),
        ],
        flags & FIB_RULE_INVERT != 0,
        attrs
            .get(&FRA_L3MDEV)
            .and_then(|d| d.first())
            .is_some_and(|&v| v != 0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::testing::{strings, u64s};
    use crate::rows::{Origin, read};

    /// A real rule dump taken on Linux 6.18 in the lab namespace of
    /// testdata/README.md.
    const REAL: &[u8] = include_bytes!("../../testdata/netlink/rule.nl");

    #[test]
    fn a_real_dump_reads_like_ip_rule() {
        let (batch, skipped, _) = read(
            &READER,
            REAL,
            Origin::of("b", None, "netns/x/netlink/rule.nl"),
        )
        .unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        let prio = u64s(&batch, "priority");
        let fam = strings(&batch, "family");
        let find = |p: u64, f: &str| {
            (0..prio.len())
                .find(|&i| prio[i] == Some(p) && fam[i].as_deref() == Some(f))
                .unwrap_or_else(|| panic!("no {f} rule {p}: {prio:?}"))
        };
        let local = find(0, "ipv4");
        assert_eq!(
            strings(&batch, "table_name")[local].as_deref(),
            Some("local")
        );
        let main = find(32766, "ipv4");
        assert_eq!(strings(&batch, "action")[main].as_deref(), Some("lookup"));
        assert_eq!(u64s(&batch, "table")[main], Some(254));
        let ours = find(100, "ipv4");
        assert_eq!(
            strings(&batch, "source")[ours].as_deref(),
            Some("10.77.5.0/24")
        );
        assert_eq!(u64s(&batch, "table")[ours], Some(100));
        assert_eq!(strings(&batch, "iif")[ours].as_deref(), Some("inlab-br"));
        let mark = find(200, "ipv4");
        assert_eq!(u64s(&batch, "fwmark")[mark], Some(0x42));
        assert_eq!(strings(&batch, "action")[mark].as_deref(), Some("prohibit"));
        let v6 = find(32766, "ipv6");
        assert_eq!(strings(&batch, "table_name")[v6].as_deref(), Some("main"));
    }
}
