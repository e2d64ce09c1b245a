//! `/proc/net/sockstat` and `sockstat6`: socket counts per protocol.
//!
//! Each line is `PROTO: key value key value ...`. Which counters are per
//! namespace (net/ipv4/proc.c `sockstat_seq_show`), checked on 6.18: TCP
//! `inuse` and `tw` are per network namespace; `alloc` (every TCP socket
//! allocated, v4 and v6, from socket() on, connected or not), `orphan` and
//! `mem` (pages) are machine-wide, so a fresh namespace shows the node's
//! alloc and mem. A socket whose connection was reset but whose fd is held
//! is unhashed (in no /proc/net table, not `inuse`) yet still in `alloc`.
//! net.ipv4.tcp_mem exists only in the initial namespace.

use crate::rows::{Reader, Rows, V, file_name_is, text};

crate::artifact_table!(
    "sockstat",
    "one row per protocol line of /proc/net/sockstat and sockstat6",
    [
        (
            "protocol",
            Dict,
            false,
            "sockets, TCP, UDP, UDPLITE, RAW, FRAG, TCP6, UDP6 ..."
        ),
        (
            "inuse",
            U64,
            true,
            "sockets in use (hashed) in this namespace; for `sockets`, the `used` count"
        ),
        (
            "orphan",
            U64,
            true,
            "TCP sockets no longer attached to a file (machine-wide)"
        ),
        (
            "tw",
            U64,
            true,
            "TCP sockets in TIME_WAIT in this namespace"
        ),
        (
            "alloc",
            U64,
            true,
            "TCP sockets allocated, whatever their state (machine-wide)"
        ),
        (
            "mem",
            U64,
            true,
            "pages of memory used by the protocol (TCP: machine-wide; compare with net.ipv4.tcp_mem)"
        ),
        (
            "memory",
            U64,
            true,
            "bytes used by IP fragment reassembly (FRAG lines)"
        ),
    ]
);

/// Reads sockstat and sockstat6.
pub const READER: Reader = Reader {
    table: &TABLE,
    what: "/proc/net/sockstat, /proc/net/sockstat6",
    claims: |path, head| {
        file_name_is(path, &["sockstat", "sockstat6"])
            || head.starts_with(b"sockets: used ")
            || head.starts_with(b"TCP6: inuse ")
    },
    superseded_by: None,
    parse,
};

fn parse(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let text = text(input);
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((protocol, rest)) = line.split_once(':') else {
            rows.skip(n + 1, format!("no `PROTO:` prefix in {line:?}"));
            continue;
        };
        let mut counters = [None::<u64>; 6];
        let mut words = rest.split_whitespace();
        let mut bad = None;
        while let Some(key) = words.next() {
            let value = words.next().and_then(|v| v.parse::<u64>().ok());
            let slot = match key {
                "inuse" | "used" => 0,
                "orphan" => 1,
                "tw" => 2,
                "alloc" => 3,
                "mem" => 4,
                "memory" => 5,
                _ => continue,
            };
            match value {
                Some(v) => counters[slot] = Some(v),
                None => bad = Some(key),
            }
        }
        if let Some(key) = bad {
            rows.skip(n + 1, format!("`{key}` has no number in {line:?}"));
            continue;
        }
        let mut values = vec![V::Str(protocol.trim())];
        values.extend(counters.iter().map(|&c| V::from(c)));
        rows.push(&values);
    }
    if rows.is_empty() {
        return Err("no `PROTO: counter value` lines".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::{Origin, read};
    use arrow_array::cast::AsArray;
    use arrow_array::types::UInt64Type;

    fn column(batch: &arrow_array::RecordBatch, name: &str) -> Vec<Option<u64>> {
        batch
            .column_by_name(name)
            .unwrap()
            .as_primitive::<UInt64Type>()
            .iter()
            .collect()
    }

    #[test]
    fn reads_every_protocol_line() {
        let input = b"sockets: used 229\nTCP: inuse 38 orphan 0 tw 3 alloc 7385 mem 101\nUDP: inuse 1 mem 0\nFRAG: inuse 0 memory 0\n";
        let (batch, skipped, _) = read(
            &READER,
            input,
            Origin::of("b", None, "netns/host/proc/net/sockstat"),
        )
        .unwrap();
        assert!(skipped.is_empty());
        assert_eq!(batch.num_rows(), 4);
        assert_eq!(
            column(&batch, "inuse"),
            [Some(229), Some(38), Some(1), Some(0)]
        );
        assert_eq!(column(&batch, "alloc"), [None, Some(7385), None, None]);
        assert_eq!(column(&batch, "mem"), [None, Some(101), Some(0), None]);
        assert_eq!(column(&batch, "memory"), [None, None, None, Some(0)]);
    }

    #[test]
    fn a_damaged_line_is_skipped_and_the_rest_kept() {
        let input = b"TCP: inuse x orphan 0\nUDP: inuse 1 mem 0\n";
        let (batch, skipped, total) =
            read(&READER, input, Origin::of("b", None, "sockstat")).unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(total, 1);
        assert_eq!(skipped[0].line, 1);
    }

    #[test]
    fn corpus_samples_load() {
        let dir = crate::testing::corpus().join("proc");
        for path in [
            "capsnap-lab/node/proc/net/sockstat",
            "prometheus-procfs/proc/net/sockstat",
            "prometheus-procfs/proc/net/sockstat6",
            "node_exporter/proc/net/sockstat",
        ] {
            let bytes = std::fs::read(dir.join(path)).unwrap();
            assert!((READER.claims)(path, &bytes));
            let (batch, skipped, _) = read(&READER, &bytes, Origin::of("c", None, path)).unwrap();
            assert!(skipped.is_empty(), "{path}: {skipped:?}");
            assert!(batch.num_rows() >= 4, "{path}");
        }
    }
}
