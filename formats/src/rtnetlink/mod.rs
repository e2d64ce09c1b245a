//! rtnetlink dumps (NETLINK_ROUTE) as tables: links (`interfaces`),
//! addresses (`addresses`), routes of every table (`routes`) and policy
//! routing rules (`routing_rules`), each read from the conversation file
//! the collector kept ([`crate::netlink`]): `netlink/link.nl`, `addr.nl`,
//! `route.nl`, `rule.nl` in each namespace.
//!
//! The address and route conversations start with a link dump, as
//! `ip addr` and `ip route` do, so that their rows name their devices
//! without a join. Facts checked on Linux 6.18 are noted where they are
//! used.

pub mod addr;
pub mod link;
pub mod route;
pub mod rule;

use crate::netlink::{self, Attrs, RTM_NEWLINK, Turn};
use crate::rows::file_name_is;
use std::collections::HashMap;

/// The conversation files of this module, `inet_diag` and `ctnetlink`, by name.
const FILES: &[&str] = &[
    "link.nl",
    "addr.nl",
    "route.nl",
    "rule.nl",
    "inet_diag.nl",
    "conntrack.nl",
    "conntrack_stats.nl",
];

/// Whether a reader of conversations whose requests are of type `kind`
/// (and `family` for sock_diag, 0 for any) takes the file at `path` with
/// first bytes `head`: by its name when it is one of capsnap's, else by
/// the requests in its head (`kind` other than RTM_GETLINK must be among
/// them; for links, only link requests may be).
pub(crate) fn claims_conversation(
    path: &str,
    head: &[u8],
    name: &str,
    kind: u16,
    families: &[u8],
) -> bool {
    if file_name_is(path, FILES) {
        return file_name_is(path, &[name]);
    }
    let requests: Vec<(u16, u8)> = netlink::messages(head)
        .filter(|m| m.is_request())
        .map(|m| (m.kind, m.payload.first().copied().unwrap_or(0)))
        .collect();
    let ours = |(k, f): &(u16, u8)| *k == kind && (families.is_empty() || families.contains(f));
    if kind == netlink::RTM_GETLINK {
        !requests.is_empty() && requests.iter().all(ours)
    } else {
        requests.iter().any(ours)
    }
}

/// Interface names by ifindex, from the link answers of a conversation
/// (an address or route file holds the links first).
pub(crate) fn link_names(input: &[u8]) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    let _ = netlink::conversation(input, RTM_NEWLINK, |turn| {
        if let Turn::Answer { message, .. } = turn
            && let Some(index) = netlink::u32_at(message.payload, 4)
            && let Some(attrs) = netlink::attrs_after(message.payload, 16)
        {
            for (kind, data) in attrs {
                if kind == link::IFLA_IFNAME {
                    names.insert(index, netlink::c_str(data).into_owned());
                }
            }
        }
    });
    names
}

/// rtnetlink's scope of an address or route (include/uapi/linux/rtnetlink.h
/// `enum rt_scope_t`), named as `ip` names it.
pub(crate) fn scope_name(scope: u8) -> String {
    match scope {
        0 => "global".into(),
        200 => "site".into(),
        253 => "link".into(),
        254 => "host".into(),
        255 => "nowhere".into(),
        n => n.to_string(),
    }
}

/// A routing table by its number, named as `ip` names the reserved ones
/// (RT_TABLE_* of rtnetlink.h); others by number.
pub(crate) fn table_name(table: u32) -> String {
    match table {
        0 => "unspec".into(),
        252 => "compat".into(),
        253 => "default".into(),
        254 => "main".into(),
        255 => "local".into(),
        n => n.to_string(),
    }
}

/// "ipv4" or "ipv6" for AF_INET / AF_INET6, else the family number.
pub(crate) fn family_name(family: u8) -> String {
    match family {
        netlink::AF_INET => "ipv4".into(),
        netlink::AF_INET6 => "ipv6".into(),
        n => n.to_string(),
    }
}

/// A prefix as text: `10.0.0.0/24`, a host `10.0.0.1/32`; none when the
/// attribute is missing and the length 0 (the default route's "default"
/// is the caller's).
pub(crate) fn prefix(data: Option<&[u8]>, len: u8) -> Option<String> {
    let addr = netlink::address(data?)?;
    Some(format!("{addr}/{len}"))
}

/// The attributes of a message as (type, data) pairs, for readers that
/// look several up.
pub(crate) fn attr_map(attrs: Attrs<'_>) -> HashMap<u16, &[u8]> {
    let mut m = HashMap::new();
    for (k, d) in attrs {
        m.entry(k).or_insert(d);
    }
    m
}
