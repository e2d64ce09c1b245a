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
use std::collections::HashMap;

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
        (
            "inuse_open",
            U64,
            true,
            "inuse when the capture window opened (the bundle's window-open/ copy; the other columns are read when it closed); null when the bundle has no such copy (bundles made before capsnap took one, files saved by hand) or the line lacks the counter"
        ),
        ("orphan_open", U64, true, "orphan when the window opened"),
        ("tw_open", U64, true, "tw when the window opened"),
        ("alloc_open", U64, true, "alloc when the window opened"),
        ("mem_open", U64, true, "mem when the window opened"),
        ("memory_open", U64, true, "memory when the window opened"),
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
    superseded_by: &[],
    parse,
};

/// The counters of a line: inuse (or used), orphan, tw, alloc, mem, memory.
type Counters = [Option<u64>; 6];

fn parse(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let open: Option<HashMap<String, Counters>> = rows.at_open().map(|bytes| {
        let mut m = HashMap::new();
        walk(&text(bytes), &mut |found| {
            if let Ok((protocol, c)) = found {
                m.insert(protocol.to_owned(), c);
            }
        });
        m
    });
    let text = text(input);
    let mut found = false;
    walk(&text, &mut |line| match line {
        Ok((protocol, counters)) => {
            found = true;
            let before = open.as_ref().and_then(|m| m.get(protocol));
            let mut values = vec![V::Str(protocol)];
            values.extend(counters.iter().map(|&c| V::from(c)));
            values.extend((0..6).map(|i| V::from(before.and_then(|b| b[i]))));
            rows.push(&values);
        }
        Err((line, why)) => rows.skip(line, why),
    });
    if !found {
        return Err("no `PROTO: counter value` lines".into());
    }
    Ok(())
}

/// Each `PROTO: key value ...` line, or a damaged one (1-based, why).
#[allow(clippy::type_complexity)]
fn walk<'a>(text: &'a str, out: &mut dyn FnMut(Result<(&'a str, Counters), (usize, String)>)) {
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((protocol, rest)) = line.split_once(':') else {
            out(Err((n + 1, format!("no `PROTO:` prefix in {line:?}"))));
            continue;
        };
        let mut counters: Counters = [None; 6];
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
        match bad {
            Some(key) => out(Err((n + 1, format!("`{key}` has no number in {line:?}")))),
            None => out(Ok((protocol.trim(), counters))),
        }
    }
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
    fn the_window_open_copy_gives_each_counter_then() {
        let open = b"sockets: used 200\nTCP: inuse 30 orphan 0 tw 100 alloc 40 mem 9\n";
        let close = b"sockets: used 229\nTCP: inuse 38 orphan 0 tw 3 alloc 7385 mem 101\nUDP: inuse 1 mem 0\n";
        let (batch, _, _) = crate::rows::read_pair(
            &READER,
            close,
            Some(open),
            Origin::of("b", None, "netns/host/proc/net/sockstat"),
        )
        .unwrap();
        assert_eq!(column(&batch, "tw"), [None, Some(3), None]);
        assert_eq!(column(&batch, "tw_open"), [None, Some(100), None]);
        assert_eq!(column(&batch, "inuse_open"), [Some(200), Some(30), None]);
        assert_eq!(column(&batch, "alloc_open"), [None, Some(40), None]);
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
