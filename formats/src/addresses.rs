//! `ip addr` output (capsnap runs `ip -d -s addr` per namespace into
//! `ip-addr.txt`): one row per address, and one per interface without any,
//! so interfaces and their addresses read back together.
//!
//! iproute2 prints (ip/ipaddress.c, `print_linkinfo` and
//! `print_addrinfo`) one block per interface: a header line
//! `IDX: NAME[@LINK]: <FLAGS> mtu N ... [master M] state S ...`, a
//! `link/TYPE MAC brd ... [link-netns NS|link-netnsid N] ...` line, with
//! `-d` a line starting with the link kind (`veth`, `bridge`, `vxlan`
//! ...), then `inet|inet6 ADDR/PREFIX [brd B] scope SCOPE ...` lines, each
//! followed by `valid_lft` and, with `-s`, `RX:`/`TX:` counter lines.

use crate::rows::{Reader, Rows, V, file_name_is, text};

#[rustfmt::skip]
crate::artifact_table!("addresses", "one row per address of an interface, and one per interface without an address: from the rtnetlink dump (netlink/addr.nl) or, in bundles without it, `ip addr` output (ip-addr.txt)", [
    ("ifindex", U32, false, "interface index"),
    ("ifname", Dict, false, "interface name"),
    ("link", Str, true, "what follows the name's `@`: the peer's index (if3) of a veth in another namespace, or the lower device of a VLAN"),
    ("flags", Str, true, "interface flags as printed (BROADCAST,MULTICAST,UP,LOWER_UP)"),
    ("mtu", U32, true, "MTU"),
    ("state", Dict, true, "operational state: UP, DOWN, UNKNOWN ..."),
    ("master", Str, true, "bridge or bond the interface is enslaved to"),
    ("mac", Str, true, "link-layer address"),
    ("link_netns", Str, true, "namespace of a veth's peer (link-netns name or link-netnsid number)"),
    ("kind", Dict, true, "link kind from `ip -d`: veth, bridge, vxlan, ipvlan ..."),
    ("family", Dict, true, "inet or inet6; null for an interface without an address"),
    ("address", Str, true, "the address"),
    ("prefix_len", U8, true, "prefix length"),
    ("scope", Dict, true, "scope: global, link, host"),
    ("peer", Str, true, "the other end of a point-to-point link (IFA_ADDRESS when it differs from IFA_LOCAL); netlink only"),
    ("broadcast", Str, true, "IPv4 broadcast address (IFA_BROADCAST); netlink only"),
    ("label", Dict, true, "IPv4 label (IFA_LABEL: eth0, eth0:1 ...); netlink only"),
    ("address_flags", Str, true, "address flags, comma separated: secondary (v4) / temporary (v6), nodad, optimistic, dadfailed, deprecated, tentative, permanent, mngtmpaddr, noprefixroute ...; netlink only"),
    ("valid_lft_s", U64, true, "seconds the address stays valid (IFA_CACHEINFO); null for forever"),
    ("preferred_lft_s", U64, true, "seconds it stays preferred; null for forever"),
]);

/// Reads `ip addr` output.
pub const READER: Reader = Reader {
    table: &TABLE,
    what: "ip addr output (ip-addr.txt)",
    claims: |path, head| file_name_is(path, &["ip-addr.txt"]) || looks_like_ip_addr(head),
    // The rtnetlink dump holds the same rows and more.
    superseded_by: &["netlink/addr.nl"],
    parse,
};

/// `1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 ...` as the first line and an
/// `inet` line (`ip link` prints the same headers and no addresses).
fn looks_like_ip_addr(head: &[u8]) -> bool {
    let text = text(head);
    let first = text.lines().next().unwrap_or("");
    header(first).is_some()
        && first.contains(" mtu ")
        && text.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("inet ") || l.starts_with("inet6 ")
        })
}

/// One interface block's header.
#[derive(Default)]
struct Iface<'a> {
    index: u64,
    name: &'a str,
    link: Option<&'a str>,
    flags: Option<&'a str>,
    mtu: Option<u64>,
    state: Option<&'a str>,
    master: Option<&'a str>,
    mac: Option<&'a str>,
    link_netns: Option<&'a str>,
    kind: Option<&'a str>,
    /// The line after `link/` was seen (the next one may name the kind).
    after_link: bool,
    addresses: usize,
}

/// `IDX: NAME[@LINK]: <FLAGS> rest`.
fn header(line: &str) -> Option<Iface<'_>> {
    let (idx, rest) = line.split_once(": ")?;
    let index: u64 = idx.trim().parse().ok()?;
    if line.starts_with(char::is_whitespace) {
        return None;
    }
    let (name, rest) = rest.split_once(": ")?;
    let (name, link) = match name.split_once('@') {
        Some((n, l)) => (n, Some(l)),
        None => (name, None),
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let flags = rest
        .strip_prefix('<')
        .and_then(|r| r.split_once('>'))
        .map(|(f, _)| f);
    let words: Vec<&str> = rest.split_whitespace().collect();
    let after = |key: &str| words.windows(2).find(|w| w[0] == key).map(|w| w[1]);
    Some(Iface {
        index,
        name,
        link,
        flags,
        mtu: after("mtu").and_then(|m| m.parse().ok()),
        state: after("state"),
        master: after("master"),
        ..Iface::default()
    })
}

fn push_iface(
    rows: &mut Rows,
    i: &Iface,
    family: Option<&str>,
    addr: Option<(&str, Option<u64>, Option<&str>)>,
) {
    let (address, prefix, scope) = addr.map_or((None, None, None), |(a, p, s)| (Some(a), p, s));
    rows.push(&[
        V::U64(i.index),
        V::Str(i.name),
        i.link.into(),
        i.flags.into(),
        i.mtu.map_or(V::Null, V::U64),
        i.state.into(),
        i.master.into(),
        i.mac.into(),
        i.link_netns.into(),
        i.kind.into(),
        family.into(),
        address.into(),
        prefix.map_or(V::Null, V::U64),
        scope.into(),
        V::Null,
        V::Null,
        V::Null,
        V::Null,
        V::Null,
        V::Null,
    ]);
}

fn parse(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let text = text(input);
    let mut current: Option<Iface> = None;
    let mut seen = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            if let Some(i) = current.take()
                && i.addresses == 0
            {
                push_iface(rows, &i, None, None);
            }
            match header(line) {
                Some(i) => {
                    seen = true;
                    current = Some(i);
                }
                None => rows.skip(n + 1, format!("not an `IDX: NAME: <FLAGS>` line: {line:?}")),
            }
            continue;
        }
        let Some(i) = current.as_mut() else {
            rows.skip(n + 1, "indented line before any interface");
            continue;
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = words.first().copied() else {
            continue;
        };
        if first.starts_with("link/") {
            i.mac = words.get(1).copied().filter(|m| m.contains(':'));
            i.link_netns = words
                .windows(2)
                .find(|w| w[0] == "link-netns" || w[0] == "link-netnsid")
                .map(|w| w[1]);
            i.after_link = true;
            continue;
        }
        if first == "inet" || first == "inet6" {
            i.after_link = false;
            let Some((addr, prefix)) = words.get(1).map(|a| match a.split_once('/') {
                Some((a, p)) => (a, p.parse::<u64>().ok()),
                None => (*a, None),
            }) else {
                rows.skip(n + 1, format!("{first} without an address"));
                continue;
            };
            let scope = words.windows(2).find(|w| w[0] == "scope").map(|w| w[1]);
            i.addresses += 1;
            push_iface(rows, i, Some(first), Some((addr, prefix, scope)));
            continue;
        }
        if i.after_link {
            // `ip -d`: the line after link/ starts with the link kind,
            // unless it goes straight to the queue numbers.
            i.after_link = false;
            if first.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !first.starts_with("numtxqueues")
                && !first.starts_with("altname")
                && first != "RX:"
            {
                i.kind = Some(first);
            }
        }
    }
    if let Some(i) = current.take()
        && i.addresses == 0
    {
        push_iface(rows, &i, None, None);
    }
    if !seen {
        return Err("no `IDX: NAME: <FLAGS> mtu N` line".into());
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rows::{Origin, read, testing::strings};

    /// An excerpt of a real bundle's netns/host/ip-addr.txt (`ip -d -s addr`).
    pub(crate) const IP_ADDR: &[u8] = b"1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00 promiscuity 0  allmulti 0 minmtu 0 maxmtu 0 numtxqueues 1 numrxqueues 1 gso_max_size 65536
    inet 127.0.0.1/8 scope host lo
       valid_lft forever preferred_lft forever
    inet6 ::1/128 scope host noprefixroute
       valid_lft forever preferred_lft forever
    RX:  bytes packets errors dropped  missed   mcast
             0       0      0       0       0       0
    TX:  bytes packets errors dropped carrier collsns
             0       0      0       0       0       0
3: cs-hr-veth0@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master cs-hr-br0 state UP group default qlen 1000
    link/ether 82:13:3c:14:ee:53 brd ff:ff:ff:ff:ff:ff link-netns cs-hr-ctr promiscuity 1  allmulti 1 minmtu 68 maxmtu 65535
    veth
    bridge_slave state forwarding priority 32 cost 2 hairpin off
    RX:  bytes packets errors dropped  missed   mcast
       7485172     462      0       0       0       0
4: cs-hr-up@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default qlen 1000
    link/ether 72:8e:15:f8:c1:fd brd ff:ff:ff:ff:ff:ff link-netns cs-hr-remote promiscuity 1  allmulti 0 minmtu 68 maxmtu 65535
    veth numtxqueues 2 numrxqueues 2 gso_max_size 65536 gso_max_segs 65535
    inet 10.99.52.1/24 scope global cs-hr-up
       valid_lft forever preferred_lft forever
";

    #[test]
    fn addresses_and_bare_interfaces_become_rows() {
        let (b, skipped, _) = read(
            &READER,
            IP_ADDR,
            Origin::of("b", Some("h"), "netns/host/ip-addr.txt"),
        )
        .unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        let some = |v: &[&str]| v.iter().map(|s| Some((*s).to_owned())).collect::<Vec<_>>();
        assert_eq!(
            strings(&b, "ifname"),
            some(&["lo", "lo", "cs-hr-veth0", "cs-hr-up"])
        );
        assert_eq!(
            strings(&b, "address"),
            [
                Some("127.0.0.1".into()),
                Some("::1".into()),
                None,
                Some("10.99.52.1".into())
            ]
        );
        assert_eq!(
            strings(&b, "kind"),
            [None, None, Some("veth".into()), Some("veth".into())]
        );
        assert_eq!(strings(&b, "master")[2].as_deref(), Some("cs-hr-br0"));
        assert_eq!(
            strings(&b, "link_netns")[3].as_deref(),
            Some("cs-hr-remote")
        );
        assert_eq!(strings(&b, "link")[2].as_deref(), Some("if2"));
        assert_eq!(strings(&b, "state")[0].as_deref(), Some("UNKNOWN"));
        assert!((READER.claims)("x/ip-addr.txt", b""));
        assert!((READER.claims)("saved", IP_ADDR));
        assert!(!(READER.claims)("saved", b"net.ipv4.tcp_mem = 1 2 3\n"));
        // `ip link` output: the same headers, no addresses.
        assert!(!(READER.claims)(
            "netns/host/ip-link.txt",
            b"1: lo: <LOOPBACK,UP> mtu 65536 qdisc noqueue\n    link/loopback 00:00:00:00:00:00\n"
        ));
        assert!(read(&READER, b"garbage\n", Origin::of("b", None, "ip-addr.txt")).is_err());
    }
}
