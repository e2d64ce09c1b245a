//! The two tables read from `manifest.json`: `netns` (the namespaces
//! covered, with their containers and pods) and `collection` (every source
//! with its status and reason). Inside a bundle the loader has parsed the
//! manifest once already and hands it over in the [`Origin`](crate::Origin);
//! a manifest given alone is parsed here.

use super::Manifest;
use crate::rows::{Reader, Rows, V};
use std::sync::Arc;

fn claims(path: &str, _head: &[u8]) -> bool {
    path == "manifest.json" || path.ends_with("/manifest.json")
}

/// The manifest of `input`: the one the loader parsed, else `input` parsed.
fn manifest(input: &[u8], rows: &Rows) -> Result<Arc<Manifest>, String> {
    match &rows.origin().manifest {
        Some(m) => Ok(m.clone()),
        None => Manifest::parse(input).map(Arc::new),
    }
}

fn joined(v: &[String]) -> String {
    v.join(",")
}

crate::artifact_table!(
    "netns",
    "one row per network namespace the bundle covers (netns: its label)",
    [
        (
            "inode",
            U64,
            true,
            "namespace inode (readlink /proc/PID/ns/net)"
        ),
        ("path", Str, true, "file that entered it when collecting"),
        ("name", Str, true, "ip netns name"),
        ("process_count", U64, true, "processes in it"),
        ("containers", Str, true, "container ids, comma separated"),
        ("pods", Str, true, "pod UIDs, comma separated"),
        (
            "container_names",
            Str,
            true,
            "container names from the runtime"
        ),
        (
            "pod_names",
            Str,
            true,
            "pods as namespace/name from the runtime"
        ),
    ]
);

/// The `netns` table from the manifest.
pub const NETNS_READER: Reader = Reader {
    table: &TABLE,
    what: "manifest.json namespaces",
    claims,
    superseded_by: &[],
    parse: parse_netns,
};

fn parse_netns(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let m = manifest(input, rows)?;
    for n in &m.namespaces {
        let path = n.path.to_string_lossy();
        rows.push_in(
            Some(&n.label),
            &[
                V::U64(n.inode),
                V::Str(&path),
                n.name.as_deref().into(),
                V::U64(n.pids.len() as u64),
                V::Str(&joined(&n.containers)),
                V::Str(&joined(&n.pods)),
                V::Str(&joined(&n.container_names)),
                V::Str(&joined(&n.pod_names)),
            ],
        );
    }
    Ok(())
}

pub mod collection {
    //! The `collection` table.
    crate::artifact_table!(
        "collection",
        "one row per source of the collection: what was and was not collected, and why",
        [
            (
                "source",
                Dict,
                false,
                "what was collected: proc_net_tcp, packets, ebpf, tool:conntrack ..."
            ),
            ("status", Dict, false, "ok, partial, skipped or failed"),
            (
                "reason",
                Str,
                true,
                "why it is not ok: permission, tool missing, kernel lacks it, timed out"
            ),
            ("files", Str, true, "bundle files it wrote, comma separated"),
            ("duration_ms", U64, true, "time it took"),
            ("started", Ts, true, "start of the collection window"),
            ("finished", Ts, true, "end of the collection window"),
            ("kernel", Str, true, "kernel of the node"),
            ("capsnap_version", Str, true, "capsnap that collected"),
            (
                "packets_received",
                U64,
                true,
                "capture point: packets the kernel's packet socket accepted"
            ),
            (
                "packets_kernel_dropped",
                U64,
                true,
                "capture point: dropped by the kernel (capture ring full)"
            ),
            (
                "packets_written",
                U64,
                true,
                "capture point: written to the capture"
            ),
            (
                "packets_capsnap_dropped",
                U64,
                true,
                "capture point: delivered to capsnap but not written (size bound, disk, watch ring)"
            ),
            (
                "trigger",
                Str,
                true,
                "bundle written by capsnap watch: the trigger, its time and evidence"
            ),
        ]
    );
}

/// The `collection` table from the manifest.
pub const COLLECTION_READER: Reader = Reader {
    table: &collection::TABLE,
    what: "manifest.json sources",
    claims,
    superseded_by: &[],
    parse: parse_collection,
};

fn parse_collection(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let m = manifest(input, rows)?;
    let ts = |ns: u64| {
        i64::try_from(ns)
            .ok()
            .filter(|&n| n > 0)
            .map_or(V::Null, V::Ts)
    };
    let trigger = m.trigger.as_ref().map(|t| {
        let netns = t
            .netns
            .as_deref()
            .map(|n| format!(" in {n}"))
            .unwrap_or_default();
        format!("{} at {}{netns}: {}", t.name, t.time, t.evidence.join("; "))
    });
    for s in &m.sources {
        let count = |f: fn(&super::PacketCounts) -> u64| {
            s.packets.as_ref().map_or(V::Null, |p| V::U64(f(p)))
        };
        rows.push_in(
            s.netns.as_deref(),
            &[
                V::Str(&s.source),
                V::Str(s.status.name()),
                s.reason.as_deref().into(),
                V::Str(&joined(&s.files)),
                V::U64(s.duration_ms),
                ts(m.started_ns),
                ts(m.finished_ns),
                non_empty(&m.kernel),
                non_empty(&m.capsnap_version),
                count(|p| p.received),
                count(|p| p.kernel_dropped),
                count(|p| p.written),
                count(|p| p.capsnap_dropped),
                trigger.as_deref().into(),
            ],
        );
    }
    Ok(())
}

fn non_empty(s: &str) -> V<'_> {
    if s.is_empty() { V::Null } else { V::Str(s) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::{Origin, read};
    use arrow_array::Array;

    const SAMPLE: &[u8] = br#"{"format_version":1,"capsnap_version":"0.1.0","host":"vm","kernel":"Linux 6.18","started_ns":10,"finished_ns":20,
      "namespaces":[{"label":"host","inode":4026531833,"path":"/proc/self/ns/net","pids":[1,2],"containers":[],"pods":[],"name":null,"pod_names":[],"container_names":[]},
                    {"label":"pod/default/web","inode":4026532001,"path":"/proc/9/ns/net","pids":[9],"containers":["abc"],"pods":["u1"],"name":null,"pod_names":["default/web"],"container_names":["web"]}],
      "sources":[{"source":"ebpf","status":"skipped","reason":"tool missing: bpftrace","files":[],"duration_ms":0},
                 {"source":"proc_net","netns":"host","status":"ok","files":["netns/host/proc/net/tcp"],"duration_ms":3}],
      "members":[{"path":"dmesg.txt","size":3,"sha256":"ab"}]}"#;

    #[test]
    fn namespaces_and_sources_become_rows() {
        let (netns, _, _) = read(
            &NETNS_READER,
            SAMPLE,
            Origin::of("b", Some("vm"), "manifest.json"),
        )
        .unwrap();
        assert_eq!(netns.num_rows(), 2);
        assert_eq!(
            crate::rows::testing::strings(&netns, "netns"),
            [Some("host".into()), Some("pod/default/web".into())]
        );
        let (sources, _, _) = read(
            &COLLECTION_READER,
            SAMPLE,
            Origin::of("b", Some("vm"), "manifest.json"),
        )
        .unwrap();
        assert_eq!(sources.num_rows(), 2);
        let reason =
            arrow_array::cast::AsArray::as_string::<i32>(sources.column_by_name("reason").unwrap());
        assert_eq!(reason.value(0), "tool missing: bpftrace");
        assert!(reason.is_null(1));
        assert!(
            read(&NETNS_READER, b"{}", Origin::of("b", None, "manifest.json"))
                .unwrap_err()
                .contains("format_version")
        );
    }
}
