//! Sysctls: capsnap's `sysctls.txt`, `sysctl -a` output, and single
//! `/proc/sys/**` files saved by hand.
//!
//! capsnap writes `sysctls.txt` per namespace (capture/src/snapshot.rs,
//! `sysctls`): one `name = value` line per key it could read, the name
//! being the path under /proc/sys with `/` turned into `.`, the value the
//! file's text trimmed with tabs turned into spaces (`net.ipv4.tcp_mem =
//! 287898 383867 575796`). Keys it could not read are not written at all;
//! the manifest lists them. `sysctl -a` prints the same shape.
//!
//! A file saved from /proc/sys keeps its path (`.../proc/sys/net/netfilter/
//! nf_conntrack_max`): the name is what follows `proc/sys/`, converted the
//! way sysctl(8) does, so a `.` inside a component (an interface named
//! `eth0.100`) becomes `/` and the separators become `.`
//! (`net.ipv4.conf.eth0/100.rp_filter`). Its value is the whole file,
//! trimmed, tabs and newlines turned into spaces.

use crate::rows::{Reader, Rows, V, file_name_is, text};

#[rustfmt::skip]
crate::artifact_table!("sysctls", "one row per sysctl: capsnap's sysctls.txt, sysctl -a output, or a /proc/sys file", [
    ("name", Dict, false, "dotted sysctl name (net.ipv4.tcp_mem)"),
    ("value", Str, false, "value as text; several numbers are separated by one space (tcp_mem: min pressure max pages)"),
]);

/// Reads sysctls.txt, `sysctl -a` output and single /proc/sys files.
pub const READER: Reader = Reader {
    table: &TABLE,
    what: "sysctls.txt, sysctl -a output, /proc/sys/** files",
    claims: |path, head| {
        file_name_is(path, &["sysctls.txt"]) || sys_name(path).is_some() || looks_like_sysctls(head)
    },
    superseded_by: &[],
    parse,
};

/// The sysctl name of a file at `.../proc/sys/<name>`.
fn sys_name(path: &str) -> Option<String> {
    let (start, _) = path
        .match_indices("proc/sys/")
        .filter(|(i, _)| *i == 0 || path.get(..*i).is_some_and(|p| p.ends_with('/')))
        .last()?;
    let rest = path.get(start + "proc/sys/".len()..)?;
    if rest.is_empty() || rest.ends_with('/') {
        return None;
    }
    Some(
        rest.split('/')
            .map(|c| c.replace('.', "/"))
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// A `name = value` line whose name looks like a sysctl's.
fn key_value(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.split_once('=')?;
    let key = key.trim();
    let ok = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@+".contains(&b));
    ok.then_some((key, value.trim()))
}

/// First line `a.b = c` with a dotted lower-case name (sniffing only).
fn looks_like_sysctls(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let Some(first) = text.lines().find(|l| !l.trim().is_empty()) else {
        return false;
    };
    first.contains(" = ")
        && key_value(first).is_some_and(|(key, _)| {
            key.contains('.') && key.starts_with(|c: char| c.is_ascii_lowercase())
        })
}

fn parse(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let text = text(input);
    if let Some(name) = sys_name(&rows.origin().path) {
        let value: String = text
            .trim()
            .chars()
            .map(|c| if c == '\t' || c == '\n' { ' ' } else { c })
            .collect();
        rows.push(&[V::Str(&name), V::Str(&value)]);
        return Ok(());
    }
    let mut seen = 0usize;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        seen += 1;
        match key_value(trimmed) {
            Some((key, value)) => rows.push(&[V::Str(key), V::Str(value)]),
            // sysctl -a also prints "sysctl: permission denied on key ..."
            None => rows.skip(n + 1, format!("not `name = value`: {line:?}")),
        }
    }
    if seen > 0 && rows.is_empty() {
        return Err("no `name = value` line".into());
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rows::{Origin, read};
    use arrow_array::RecordBatch;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int32Type;

    fn pairs(batch: &RecordBatch) -> Vec<(String, String)> {
        let names = batch
            .column_by_name("name")
            .unwrap()
            .as_dictionary::<Int32Type>();
        let dict = names.values().as_string::<i32>();
        let values = batch.column_by_name("value").unwrap().as_string::<i32>();
        (0..batch.num_rows())
            .map(|i| {
                (
                    dict.value(names.keys().value(i) as usize).to_owned(),
                    values.value(i).to_owned(),
                )
            })
            .collect()
    }

    /// An excerpt of a real bundle's netns/host/sysctls.txt.
    pub(crate) const SYSCTLS: &[u8] = b"net.ipv4.tcp_mem = 287898 383867 575796
net.ipv4.tcp_tw_reuse = 2
net.ipv4.ip_local_port_range = 32768 60999
net.netfilter.nf_conntrack_max = 262144
net.netfilter.nf_conntrack_count = 0
";

    #[test]
    fn sysctls_txt_lines_become_name_value_rows() {
        let (batch, skipped, _) = read(
            &READER,
            SYSCTLS,
            Origin::of("b", None, "netns/host/sysctls.txt"),
        )
        .unwrap();
        assert!(skipped.is_empty());
        let rows = pairs(&batch);
        assert_eq!(rows.len(), 5);
        assert_eq!(
            rows[0],
            ("net.ipv4.tcp_mem".into(), "287898 383867 575796".into())
        );
        assert_eq!(
            rows[2],
            ("net.ipv4.ip_local_port_range".into(), "32768 60999".into())
        );
    }

    #[test]
    fn sysctl_a_noise_is_skipped_and_empty_values_kept() {
        let input = b"kernel.hostname = node1\nsysctl: permission denied on key 'fs.protected_regular'\nnet.core.default_qdisc = fq_codel\nkernel.domainname =\n# comment\n";
        let (batch, skipped, total) =
            read(&READER, input, Origin::of("b", None, "sysctl-a.txt")).unwrap();
        assert_eq!(total, 1);
        assert_eq!(skipped[0].line, 2);
        assert_eq!(
            pairs(&batch),
            [
                ("kernel.hostname".into(), "node1".into()),
                ("net.core.default_qdisc".into(), "fq_codel".into()),
                ("kernel.domainname".into(), String::new()),
            ]
        );
    }

    #[test]
    fn an_empty_sysctls_txt_is_no_rows_not_an_error() {
        let (batch, _, _) =
            read(&READER, b"", Origin::of("b", None, "netns/x/sysctls.txt")).unwrap();
        assert_eq!(batch.num_rows(), 0);
        assert!(
            read(
                &READER,
                b"no equals here\n",
                Origin::of("b", None, "sysctls.txt")
            )
            .is_err()
        );
    }

    #[test]
    fn proc_sys_file_names_follow_sysctl_8() {
        for (path, want) in [
            ("proc/sys/net/core/somaxconn", Some("net.core.somaxconn")),
            (
                "x/proc/sys/net/ipv4/conf/eth0.100/rp_filter",
                Some("net.ipv4.conf.eth0/100.rp_filter"),
            ),
            (
                "proc/node_exporter/proc/sys/net/netfilter/nf_conntrack_max",
                Some("net.netfilter.nf_conntrack_max"),
            ),
            ("xproc/sys/net/core/somaxconn", None),
            ("proc/sys/", None),
            ("proc/net/tcp", None),
        ] {
            assert_eq!(sys_name(path).as_deref(), want, "{path}");
        }
    }

    #[test]
    fn claims() {
        assert!((READER.claims)("netns/host/sysctls.txt", b""));
        assert!((READER.claims)("proc/sys/net/core/somaxconn", b"4096\n"));
        assert!((READER.claims)("before.txt", b"net.ipv4.tcp_mem = 1 2 3\n"));
        assert!(!(READER.claims)(
            "conntrack-stats.txt",
            b"cpu=0   \tfound=0 invalid=0\n"
        ));
        assert!(!(READER.claims)(
            "proc/net/snmp",
            b"Ip: Forwarding DefaultTTL\n"
        ));
        assert!(!(READER.claims)("notes.txt", b"Total = 5\n"));
    }

    #[test]
    fn corpus_samples_load() {
        let dir = crate::testing::corpus().join("proc");
        for (path, want) in [
            (
                "node_exporter/proc/sys/net/netfilter/nf_conntrack_max",
                ("net.netfilter.nf_conntrack_max", "65536"),
            ),
            (
                "node_exporter/proc/sys/net/netfilter/nf_conntrack_count",
                ("net.netfilter.nf_conntrack_count", "123"),
            ),
        ] {
            let bytes = std::fs::read(dir.join(path)).unwrap();
            assert!((READER.claims)(path, &bytes));
            let (batch, _, _) = read(&READER, &bytes, Origin::of("c", None, path)).unwrap();
            assert_eq!(pairs(&batch), [(want.0.to_owned(), want.1.to_owned())]);
        }
    }
}
