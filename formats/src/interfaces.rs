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

#[rustfmt::skip]
crate::artifact_table!("interfaces", "one row per network interface of /proc/net/dev, with its counters since it was created", [
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
]);

/// Reads /proc/net/dev.
pub const READER: Reader = Reader {
    table: &TABLE,
    what: "/proc/net/dev",
    claims: |path, head| path_ends_with(path, "net/dev") || head.starts_with(b"Inter-|"),
    superseded_by: None,
    parse,
};

fn parse(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let text = text(input);
    let mut header = false;
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
            rows.skip(n + 1, format!("no `name:` in {line:?}"));
            continue;
        };
        let name = name.trim();
        let mut values = [0u64; 16];
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
            rows.skip(
                n + 1,
                format!("not `name: 16 counters` ({count} values): {line:?}"),
            );
            continue;
        }
        let mut row = Vec::with_capacity(17);
        row.push(V::Str(name));
        row.extend(values.iter().map(|&v| V::U64(v)));
        rows.push(&row);
    }
    if !header && rows.is_empty() {
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
