//! `manifest.json`: what a bundle holds and how its collection went.
//!
//! Two tables come from it: `netns` (the namespaces covered, with their
//! containers and pods) and `collection` (every source with its status and
//! reason). [`Manifest::parse`] gives the loader what it needs before any
//! other file: host, namespace labels and the declared members, whose sizes
//! and checksums bound and verify the extraction of an untrusted bundle.

use crate::rows::{Reader, Rows, V};
use serde_json::Value;
use std::collections::BTreeMap;

/// The facts of a manifest the loader needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub format_version: u64,
    pub host: Option<String>,
    pub started_ns: Option<u64>,
    pub finished_ns: Option<u64>,
    /// Namespace labels by inode.
    pub netns_labels: BTreeMap<u64, String>,
    /// Declared members: path, size, sha256 (hex).
    pub members: Vec<Member>,
}

/// One declared file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

impl Manifest {
    /// Reads a manifest; an error says what is missing or malformed.
    pub fn parse(input: &[u8]) -> Result<Manifest, String> {
        let m: Value = serde_json::from_slice(input).map_err(|e| format!("not JSON: {e}"))?;
        let format_version = m["format_version"]
            .as_u64()
            .ok_or("no format_version: not a capsnap manifest")?;
        let netns_labels = m["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| Some((n["inode"].as_u64()?, n["label"].as_str()?.to_owned())))
            .collect();
        let members = m["members"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                let member = || {
                    Some(Member {
                        path: f["path"].as_str()?.to_owned(),
                        size: f["size"].as_u64()?,
                        sha256: f["sha256"].as_str()?.to_owned(),
                    })
                };
                member().ok_or_else(|| format!("member without path, size or sha256: {f}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Manifest {
            format_version,
            host: m["host"].as_str().map(str::to_owned),
            started_ns: m["started_ns"].as_u64(),
            finished_ns: m["finished_ns"].as_u64(),
            netns_labels,
            members,
        })
    }
}

fn claims(path: &str, _head: &[u8]) -> bool {
    path == "manifest.json"
}

fn json(input: &[u8]) -> Result<Value, String> {
    let m: Value = serde_json::from_slice(input).map_err(|e| format!("not JSON: {e}"))?;
    if m["format_version"].as_u64().is_none() {
        return Err("no format_version: not a capsnap manifest".into());
    }
    Ok(m)
}

fn strings(v: &Value) -> String {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(",")
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
    superseded_by: None,
    parse: parse_netns,
};

fn parse_netns(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let m = json(input)?;
    for (i, n) in m["namespaces"].as_array().into_iter().flatten().enumerate() {
        let Some(label) = n["label"].as_str() else {
            rows.skip(i + 1, "namespace without a label");
            continue;
        };
        rows.push_in(
            Some(label),
            &[
                n["inode"].as_u64().into(),
                n["path"].as_str().into(),
                n["name"].as_str().into(),
                n["pids"].as_array().map(|p| p.len() as u64).into(),
                V::Str(&strings(&n["containers"])),
                V::Str(&strings(&n["pods"])),
                V::Str(&strings(&n["container_names"])),
                V::Str(&strings(&n["pod_names"])),
            ],
        );
    }
    Ok(())
}

pub mod collection {
    //! The `collection` table.
    use super::*;

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
        ]
    );

    /// The `collection` table from the manifest.
    pub const READER: Reader = Reader {
        table: &TABLE,
        what: "manifest.json sources",
        claims,
        superseded_by: None,
        parse,
    };

    fn parse(input: &[u8], rows: &mut Rows) -> Result<(), String> {
        let m = json(input)?;
        let ts = |k: &str| m[k].as_i64().map_or(V::Null, V::Ts);
        for (i, s) in m["sources"].as_array().into_iter().flatten().enumerate() {
            let (Some(source), Some(status)) = (s["source"].as_str(), s["status"].as_str()) else {
                rows.skip(i + 1, "source without a name or status");
                continue;
            };
            rows.push_in(
                s["netns"].as_str(),
                &[
                    V::Str(source),
                    V::Str(status),
                    s["reason"].as_str().into(),
                    V::Str(&strings(&s["files"])),
                    s["duration_ms"].as_u64().into(),
                    ts("started_ns"),
                    ts("finished_ns"),
                    m["kernel"].as_str().into(),
                    m["capsnap_version"].as_str().into(),
                ],
            );
        }
        Ok(())
    }
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
    fn manifest_facts_for_the_loader() {
        let m = Manifest::parse(SAMPLE).unwrap();
        assert_eq!(m.host.as_deref(), Some("vm"));
        assert_eq!(m.netns_labels[&4026532001], "pod/default/web");
        assert_eq!(
            m.members,
            [Member {
                path: "dmesg.txt".into(),
                size: 3,
                sha256: "ab".into()
            }]
        );
        assert!(
            Manifest::parse(b"{}")
                .unwrap_err()
                .contains("format_version")
        );
        assert!(Manifest::parse(b"[").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn namespaces_and_sources_become_rows() {
        let (netns, _, _) = read(
            &NETNS_READER,
            SAMPLE,
            Origin::of("b", Some("vm"), "manifest.json"),
        )
        .unwrap();
        assert_eq!(netns.num_rows(), 2);
        let (sources, _, _) = read(
            &collection::READER,
            SAMPLE,
            Origin::of("b", Some("vm"), "manifest.json"),
        )
        .unwrap();
        assert_eq!(sources.num_rows(), 2);
        let reason =
            arrow_array::cast::AsArray::as_string::<i32>(sources.column_by_name("reason").unwrap());
        assert_eq!(reason.value(0), "tool missing: bpftrace");
        assert!(reason.is_null(1));
    }
}
