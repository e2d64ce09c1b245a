//! `/proc/net/dev`: packet and byte counters per interface of a namespace.
//!
//! Printed by `dev_seq_show` / `dev_seq_printf_stats` (net/core/net-procfs.c):
//! two header lines (`Inter-|   Receive ...` and ` face |bytes packets
//! ...`), then `%6s: %7llu %7llu ...` per device: 8 receive counters
//! (bytes packets errs drop fifo frame compressed multicast) and 8
//! transmit ones (bytes packets errs drop fifo colls carrier compressed).
//! Receive `drop` is `rx_dropped + rx_missed_errors`, receive `frame` and
//! transmit `carrier` are sums of several driver error counters.
//! Interface names cannot contain `:` or spaces (`dev_valid_name`), so the
//! first `:` ends the name; very old kernels printed no space after it.

use crate::rows::{Reader, Rows, V, path_ends_with, text};
use std::collections::HashMap;

#[rustfmt::skip]
crate::artifact_table!("interfaces", "one row per network interface of a namespace: from the rtnetlink link dump (netlink/link.nl) with MTU, state, flags and kind, or from /proc/net/dev (counters only) where the bundle has no dump; counters since the interface was created, and their change during the capture window", [
    ("name", Dict, false, "interface name (eth0, lo, veth...)"),
    ("rx_bytes", U64, false, "bytes received"),
    ("rx_packets", U64, false, "packets received"),
    ("rx_errs", U64, false, "receive errors (rx_errors)"),
    ("rx_drop", U64, false, "packets dropped on receive: rx_dropped + rx_missed_errors"),
    ("rx_fifo", U64, false, "receive FIFO/overrun errors"),
    ("rx_frame", U64, false, "length, overrun, CRC and frame errors"),
    ("rx_compressed", U64, false, "compressed packets received"),
    ("rx_multicast", U64, false, "multicast packets received"),
    ("tx_bytes", U64, false, "bytes sent"),
    ("tx_packets", U64, false, "packets sent"),
    ("tx_errs", U64, false, "transmit errors"),
    ("tx_drop", U64, false, "packets dropped on transmit"),
    ("tx_fifo", U64, false, "transmit FIFO errors"),
    ("tx_colls", U64, false, "collisions"),
    ("tx_carrier", U64, false, "carrier, aborted, window and heartbeat errors"),
    ("tx_compressed", U64, false, "compressed packets sent"),
    ("ifindex", U32, true, "interface index (ip link's number; routes.oif, addresses.ifindex and events' ifindex refer to it); null from /proc/net/dev"),
    ("mtu", U32, true, "MTU in bytes (IFLA_MTU); null from /proc/net/dev"),
    ("operstate", Dict, true, "RFC 2863 operational state (IFLA_OPERSTATE): UP, DOWN, LOWERLAYERDOWN, DORMANT, TESTING, NOTPRESENT, UNKNOWN (lo and many virtual devices); null from /proc/net/dev"),
    ("flags", Str, true, "device flags as ip link prints them, comma separated (UP,BROADCAST,RUNNING,MULTICAST,LOWER_UP,NOARP,PROMISC ...); null from /proc/net/dev"),
    ("admin_up", Bool, true, "IFF_UP: set up by an administrator (ip link set up); null from /proc/net/dev"),
    ("carrier", Bool, true, "IFLA_CARRIER: the link has carrier (the peer of a veth is up); null when not reported"),
    ("kind", Dict, true, "link kind (IFLA_INFO_KIND): veth, bridge, vxlan, vlan, bond, dummy, ipip, wireguard ...; null for physical devices and lo"),
    ("link_ifindex", U32, true, "IFLA_LINK: for a veth the peer's ifindex, for a vlan/macvlan/ipvlan its parent; in the namespace link_netnsid names, else this one"),
    ("link_netnsid", I64, true, "IFLA_LINK_NETNSID: the peer or parent lives in another namespace, known here by this id (ip link's link-netnsid); null when in this namespace"),
    ("master_ifindex", U32, true, "IFLA_MASTER: ifindex of the bridge, bond or VRF the device is enslaved to"),
    ("master", Dict, true, "name of that master device (from the same dump)"),
    ("mac", Str, true, "link-layer address (IFLA_ADDRESS), aa:bb:cc:dd:ee:ff"),
    ("qdisc", Dict, true, "root queueing discipline (IFLA_QDISC): noqueue, fq_codel, mq ..."),
    ("txqlen", U32, true, "transmit queue length (IFLA_TXQLEN)"),
    ("alias", Str, true, "interface alias (IFLA_IFALIAS)"),
    ("rx_bytes_delta", U64, true, "rx_bytes gained during the capture window (the window-open copy to the close one): the value at window open is rx_bytes - rx_bytes_delta; null when the bundle has no window-open copy (bundles made before capsnap took one), the interface did not exist then, or the counter went down (device re-created)"),
    ("rx_packets_delta", U64, true, "rx_packets gained during the window (null as for rx_bytes_delta)"),
    ("rx_errs_delta", U64, true, "rx_errs gained during the window"),
    ("rx_drop_delta", U64, true, "rx_drop gained during the window"),
    ("tx_bytes_delta", U64, true, "tx_bytes gained during the window"),
    ("tx_packets_delta", U64, true, "tx_packets gained during the window"),
    ("tx_errs_delta", U64, true, "tx_errs gained during the window"),
    ("tx_drop_delta", U64, true, "tx_drop gained during the window"),
    ("rx_bytes_per_sec", F64, true, "rx_bytes_delta per second of the window (manifest window_open_ns to window_close_ns); null when the delta or the window length is"),
    ("tx_bytes_per_sec", F64, true, "tx_bytes_delta per second of the window"),
    ("rx_packets_per_sec", F64, true, "rx_packets_delta per second of the window"),
    ("tx_packets_per_sec", F64, true, "tx_packets_delta per second of the window"),
]);

/// Reads /proc/net/dev.
pub const READER: Reader = Reader {
    table: &TABLE,
    what: "/proc/net/dev",
    claims: |path, head| path_ends_with(path, "net/dev") || head.starts_with(b"Inter-|"),
    // The link dump holds the same counters (rtnl_link_stats64, which
    // dev_seq_printf_stats prints) and the device's configuration.
    superseded_by: &["../../netlink/link.nl"],
    parse,
};

/// The 16 counters of a /proc/net/dev line, in its column order.
pub(crate) type Counters = [u64; 16];

/// Positions in [`Counters`] of the counters with a change during the
/// window: rx bytes, packets, errs, drop, tx bytes, packets, errs, drop.
const WINDOWED: [usize; 8] = [0, 1, 2, 3, 8, 9, 10, 11];

/// What one interface row holds besides the counters (rtnetlink only).
#[derive(Debug, Default, Clone)]
pub(crate) struct Link<'a> {
    pub ifindex: Option<u32>,
    pub mtu: Option<u32>,
    pub operstate: Option<&'static str>,
    pub flags: Option<String>,
    pub admin_up: Option<bool>,
    pub carrier: Option<bool>,
    pub kind: Option<&'a str>,
    pub link_ifindex: Option<u32>,
    pub link_netnsid: Option<i64>,
    pub master_ifindex: Option<u32>,
    pub master: Option<&'a str>,
    pub mac: Option<String>,
    pub qdisc: Option<&'a str>,
    pub txqlen: Option<u32>,
    pub alias: Option<&'a str>,
}

/// Appends one interface: its counters when the window closed, and the
/// change since `open` (the same interface's counters when it opened).
pub(crate) fn push(
    rows: &mut Rows,
    name: &str,
    c: &Counters,
    link: &Link,
    open: Option<&Counters>,
    secs: Option<f64>,
) {
    let mut row: Vec<V> = Vec::with_capacity(TABLE.columns.len());
    row.push(V::Str(name));
    row.extend(c.iter().map(|&v| V::U64(v)));
    let u32v = |v: Option<u32>| V::from(v.map(u64::from));
    row.extend([
        u32v(link.ifindex),
        u32v(link.mtu),
        V::from(link.operstate),
        V::from(link.flags.as_deref()),
        link.admin_up.map_or(V::Null, V::Bool),
        link.carrier.map_or(V::Null, V::Bool),
        V::from(link.kind),
        u32v(link.link_ifindex),
        V::from(link.link_netnsid),
        u32v(link.master_ifindex),
        V::from(link.master),
        V::from(link.mac.as_deref()),
        V::from(link.qdisc),
        u32v(link.txqlen),
        V::from(link.alias),
    ]);
    let delta = |i: usize| open.and_then(|o| c[i].checked_sub(o[i]));
    row.extend(WINDOWED.iter().map(|&i| V::from(delta(i))));
    // rx bytes, tx bytes, rx packets, tx packets.
    for i in [0, 8, 1, 9] {
        row.push(V::from(delta(i).zip(secs).map(|(d, s)| d as f64 / s)));
    }
    rows.push(&row);
}

fn parse(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let open: Option<HashMap<String, Counters>> = rows.at_open().map(|bytes| {
        let mut m = HashMap::new();
        let _ = walk(&text(bytes), &mut |found| {
            if let Ok((name, c)) = found {
                m.insert(name.to_owned(), c);
            }
        });
        m
    });
    let secs = rows.window_secs();
    let text = text(input);
    walk(&text, &mut |found| match found {
        Ok((name, c)) => {
            let before = open.as_ref().and_then(|m| m.get(name));
            push(rows, name, &c, &Link::default(), before, secs);
        }
        Err((line, why)) => rows.skip(line, why),
    })
}

/// Each interface line of /proc/net/dev (name and counters), or a damaged
/// line (1-based number and why); `Err` when the text is no such file.
#[allow(clippy::type_complexity)]
fn walk<'a>(
    text: &'a str,
    out: &mut dyn FnMut(Result<(&'a str, Counters), (usize, String)>),
) -> Result<(), String> {
    let mut header = false;
    let mut found = false;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.starts_with("Inter-|") || trimmed.starts_with("face |") {
            header = true;
            continue;
        }
        let Some((name, counters)) = trimmed.split_once(':') else {
            out(Err((n + 1, format!("no `name:` in {line:?}"))));
            continue;
        };
        let name = name.trim();
        let mut values: Counters = [0; 16];
        let mut count = 0;
        let mut bad = name.is_empty() || name.contains(char::is_whitespace);
        for word in counters.split_whitespace() {
            match (values.get_mut(count), word.parse::<u64>()) {
                (Some(slot), Ok(v)) if word.bytes().all(|b| b.is_ascii_digit()) => *slot = v,
                _ => bad = true,
            }
            count += 1;
        }
        if bad || count != values.len() {
            out(Err((
                n + 1,
                format!("not `name: 16 counters` ({count} values): {line:?}"),
            )));
            continue;
        }
        found = true;
        out(Ok((name, values)));
    }
    if !header && !found {
        return Err("no `Inter-|` header and no `name: counters` line".into());
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rows::{Origin, read};
    use arrow_array::RecordBatch;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, UInt64Type};

    fn names(batch: &RecordBatch) -> Vec<String> {
        let d = batch
            .column_by_name("name")
            .unwrap()
            .as_dictionary::<Int32Type>();
        let v = d.values().as_string::<i32>();
        d.keys()
            .iter()
            .map(|k| v.value(k.unwrap() as usize).to_owned())
            .collect()
    }

    fn u64s(batch: &RecordBatch, name: &str) -> Vec<u64> {
        batch
            .column_by_name(name)
            .unwrap()
            .as_primitive::<UInt64Type>()
            .values()
            .to_vec()
    }

    /// An excerpt of a real bundle's netns/host/proc/net/dev.
    pub(crate) const DEV: &[u8] = b"Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:   26373     417    0    0    0     0          0         0    26373     417    0    0    0     0       0          0
  ifb0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0: 155459675    6104    0    0    0     0          0         0   383109    3881    0    0    0     0       0          0
";

    #[test]
    fn every_interface_line_gives_sixteen_counters() {
        let (batch, skipped, _) = read(
            &READER,
            DEV,
            Origin::of("b", None, "netns/host/proc/net/dev"),
        )
        .unwrap();
        assert!(skipped.is_empty());
        assert_eq!(names(&batch), ["lo", "ifb0", "eth0"]);
        assert_eq!(u64s(&batch, "rx_bytes"), [26373, 0, 155459675]);
        assert_eq!(u64s(&batch, "tx_packets"), [417, 0, 3881]);
        assert_eq!(u64s(&batch, "tx_bytes"), [26373, 0, 383109]);
    }

    #[test]
    fn the_window_open_copy_gives_the_change_of_the_counters() {
        use crate::rows::testing::{f64s, in_window, u64s};
        let open = b"  eth0: 1000 10 0 1 0 0 0 0 500 5 0 0 0 0 0 0\n  gone: 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\n";
        let close = b"  eth0: 3000 30 2 4 0 0 0 0 900 9 0 0 0 0 0 0\n  new0: 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\n";
        let (batch, _, _) = crate::rows::read_pair(
            &READER,
            close,
            Some(open),
            in_window("netns/host/proc/net/dev", 2),
        )
        .unwrap();
        assert_eq!(names(&batch), ["eth0", "new0"]);
        assert_eq!(u64s(&batch, "rx_bytes_delta"), [Some(2000), None]);
        assert_eq!(u64s(&batch, "rx_drop_delta"), [Some(3), None]);
        assert_eq!(u64s(&batch, "tx_packets_delta"), [Some(4), None]);
        assert_eq!(f64s(&batch, "rx_bytes_per_sec"), [Some(1000.0), None]);
        assert_eq!(f64s(&batch, "tx_packets_per_sec"), [Some(2.0), None]);
        assert_eq!(u64s(&batch, "mtu"), [None, None]);
    }

    #[test]
    fn damaged_lines_are_skipped_and_old_layouts_read() {
        let input = b"Inter-|   Receive
 face |bytes
  eth0:1234 5 0 0 0 0 0 0 6789 10 0 0 0 0 0 0
  eth1: 1 2 3
  eth2: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x
 no colon here
  eth3: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16
";
        let (batch, skipped, total) =
            read(&READER, input, Origin::of("b", None, "proc/net/dev")).unwrap();
        assert_eq!(names(&batch), ["eth0", "eth3"]);
        assert_eq!(u64s(&batch, "rx_bytes"), [1234, 1]);
        assert_eq!(u64s(&batch, "tx_compressed"), [0, 16]);
        assert_eq!(u64s(&batch, "rx_drop"), [0, 4]);
        assert_eq!(total, 3);
        assert_eq!(
            skipped.iter().map(|s| s.line).collect::<Vec<_>>(),
            [4, 5, 6]
        );
        assert!(read(&READER, b"hello\n", Origin::of("b", None, "proc/net/dev")).is_err());
    }

    #[test]
    fn claims() {
        assert!((READER.claims)("netns/host/proc/net/dev", b""));
        assert!((READER.claims)("proc/26231/net/dev", b""));
        assert!((READER.claims)("ifaces.txt", b"Inter-|   Receive"));
        assert!(!(READER.claims)("proc/net/dev_snmp6/eth0", b"ifIndex 1"));
        assert!(!(READER.claims)(
            "proc/net/dev_mcast",
            b"1    lo              1     0     01005e000001"
        ));
    }

    #[test]
    fn corpus_samples_load() {
        let dir = crate::testing::corpus().join("proc/prometheus-procfs/proc");
        for (path, names_want) in [
            ("net/dev", &["vethf345468", "lo", "docker0", "eth0"][..]),
            ("26231/net/dev", &["lo", "eth0"][..]),
        ] {
            let bytes = std::fs::read(dir.join(path)).unwrap();
            assert!((READER.claims)(path, &bytes));
            let (batch, skipped, _) = read(&READER, &bytes, Origin::of("c", None, path)).unwrap();
            assert!(skipped.is_empty(), "{path}");
            assert_eq!(names(&batch), names_want);
        }
        let bytes = std::fs::read(dir.join("net/dev")).unwrap();
        let (batch, _, _) = read(&READER, &bytes, Origin::of("c", None, "net/dev")).unwrap();
        assert_eq!(u64s(&batch, "rx_bytes")[3], 874354587);
        assert_eq!(u64s(&batch, "tx_packets")[3], 732147);
    }
}
