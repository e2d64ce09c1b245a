//! `manifest.json`: the one definition of what a bundle declares, written
//! by the collector and read by every reader with the same types.
//!
//! Compatibility rule: a reader accepts every format from
//! [`OLDEST_READABLE`] to [`FORMAT_VERSION`]. Adding an optional field or a
//! new artifact does not change the version (fields default when absent, and
//! unknown fields are ignored); a change that an older reader would
//! misread does, and the reader then refuses the bundle naming both
//! versions instead of guessing.
//!
//! - Format 1 wrote a namespace's files under `netns/<label with '/' as
//!   '_'>/` and did not record the directory: `pod/shop/web` became
//!   `pod_shop_web` in every table read from files, but stayed
//!   `pod/shop/web` in the tables read from the manifest.
//! - Format 2 records each namespace's directory ([`Namespace::dir`]), an
//!   escaped form of the label ([`dir_name`]), so any label (with `/`,
//!   spaces or unicode) reads back exactly.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The bundle format this build writes.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest bundle format this build reads.
pub const OLDEST_READABLE: u32 = 1;

/// `manifest.json`: what was collected, how it went, and every member.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    #[serde(default)]
    pub capsnap_version: String,
    #[serde(default)]
    pub host: String,
    /// `uname`: system, release, machine.
    #[serde(default)]
    pub kernel: String,
    #[serde(default)]
    pub boot_id: String,
    /// When the node booted, nanoseconds since the epoch (the wall clock
    /// minus CLOCK_BOOTTIME at collection, as dmesg computes it): what the
    /// kernel log's timestamps since boot are added to. 0 in bundles made
    /// before capsnap recorded it.
    #[serde(default)]
    pub boot_ns: u64,
    /// Collection window, UTC, RFC 3339 and nanoseconds since the epoch.
    #[serde(default)]
    pub started: String,
    #[serde(default)]
    pub finished: String,
    #[serde(default)]
    pub started_ns: u64,
    #[serde(default)]
    pub finished_ns: u64,
    /// When the capture window opened and closed (nanoseconds since the
    /// epoch): the copies under `window-open/` were taken just before the
    /// first, the snapshots just after the second. 0 in bundles made before
    /// capsnap recorded them.
    #[serde(default)]
    pub window_open_ns: u64,
    #[serde(default)]
    pub window_close_ns: u64,
    /// Whether the collector ran as root (what it could see depends on it).
    #[serde(default)]
    pub root: bool,
    /// The options the collection ran with.
    #[serde(default)]
    pub options: serde_json::Value,
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
    #[serde(default)]
    pub sources: Vec<SourceReport>,
    /// Every other file of the bundle, in the order the archive holds them.
    #[serde(default)]
    pub members: Vec<Member>,
    /// For a bundle `capsnap watch` wrote: the trigger that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// How the eBPF events (`ebpf/events.jsonl`) were collected; `None`
    /// when no probes ran, and in bundles made before capsnap said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebpf: Option<EbpfPath>,
}

/// Which path ran the eBPF probes. Both write the same events with the
/// same fields; what differs is what the node needs (bpftrace and its LLVM,
/// or only a kernel with BTF) and how losses are counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EbpfPath {
    /// `core`: the CO-RE programs compiled into capsnap, read through a BPF
    /// ring buffer; `bpftrace`: the bpftrace fallback.
    pub loader: String,
    /// Why not `core`, when bpftrace ran (no BTF, the programs did not load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

/// What made `capsnap watch` write a bundle: a live signal of a detection
/// (or a log line, a counter, a signal), when, and the evidence it saw.
/// The bundle's window runs from `keep` before `ts_ns` to `after` past it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    /// The trigger's name as `--trigger` spells it: `host-only-rst`,
    /// `connect-timeout`, `unix-socket-replaced`, `log`, `counter`, `signal`.
    pub name: String,
    /// The detection it is a live signal of (`queries/<id>.sql`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<String>,
    /// When the fault it saw happened (for `connect-timeout`, when the
    /// connect began; else when it fired): nanoseconds since the epoch and
    /// RFC 3339. The bundle holds `keep_ms` before it.
    pub ts_ns: u64,
    #[serde(default)]
    pub time: String,
    /// The namespace it fired in, for a per-namespace signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// What it saw, one line per fact (a packet, an event, a log line, a
    /// counter's delta).
    #[serde(default)]
    pub evidence: Vec<String>,
    /// The window asked for around it (`--keep`, `--after`).
    #[serde(default)]
    pub keep_ms: u64,
    #[serde(default)]
    pub after_ms: u64,
}

/// One network namespace the bundle covers and what lives in it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// Label used in table rows: `host` for the namespace the collector ran
    /// in, `pod/<namespace>/<name>` for a pod, the container's name, the
    /// `ip netns` name, else `netns-<inode>`.
    pub label: String,
    /// Directory of its files under `netns/` (format 2 on; see
    /// [`Manifest::dir_of`] for format 1).
    #[serde(default)]
    pub dir: String,
    /// Inode of the namespace (what `readlink /proc/PID/ns/net` shows).
    #[serde(default)]
    pub inode: u64,
    /// A file that entered it: `/proc/self/ns/net`, `/var/run/netns/NAME`
    /// or `/proc/PID/ns/net` of its first process.
    #[serde(default)]
    pub path: PathBuf,
    /// Processes in it (sorted).
    #[serde(default)]
    pub pids: Vec<u32>,
    /// Container ids seen in the cgroups of those processes.
    #[serde(default)]
    pub containers: Vec<String>,
    /// Kubernetes pod UIDs seen in those cgroups.
    #[serde(default)]
    pub pods: Vec<String>,
    /// `ip netns` name, if the namespace is bound under /var/run/netns.
    #[serde(default)]
    pub name: Option<String>,
    /// Pods (`namespace/name`) and containers by name, from the runtimes.
    #[serde(default)]
    pub pod_names: Vec<String>,
    #[serde(default)]
    pub container_names: Vec<String>,
}

/// How a source of the collection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Everything asked for was collected.
    Ok,
    /// Some of it was collected; `reason` says what is missing.
    Partial,
    /// Not attempted: not asked for, or not applicable here.
    Skipped,
    /// Attempted and nothing usable came out.
    Failed,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Partial => "partial",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
        }
    }
}

/// One source of a collection (a file, a tool run, a capture point).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceReport {
    /// The source id, as the artifact registry names it
    /// ([`Artifact::source`](crate::bundle::Artifact::source)): `proc_net_tcp`,
    /// `packets`, `ebpf`, `tool:conntrack -L -o extended` ...
    pub source: String,
    /// Namespace label, for a per-namespace source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    pub status: Status,
    /// Why it is not `ok`: permission, tool missing, kernel lacks it, timed out...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Bundle paths of the files this source wrote.
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub duration_ms: u64,
    /// For a capture point: how many packets it received and wrote, and
    /// how many were dropped where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets: Option<Box<PacketCounts>>,
}

/// The packet counts of one capture point, exact: every packet the
/// kernel's packet socket accepted is either dropped by the kernel (its
/// ring was full) or delivered to capsnap, and every packet delivered is
/// either written or dropped by capsnap (a size bound, a write error, a
/// full disk, a full `watch` ring). So `received = kernel_dropped +
/// written + capsnap_dropped`. The same counts are in the capture's pcapng
/// interface statistics block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketCounts {
    pub received: u64,
    pub kernel_dropped: u64,
    pub written: u64,
    pub capsnap_dropped: u64,
}

impl SourceReport {
    pub fn new(source: impl Into<String>, netns: Option<String>) -> Self {
        SourceReport {
            source: source.into(),
            netns,
            status: Status::Ok,
            reason: None,
            files: Vec::new(),
            duration_ms: 0,
            packets: None,
        }
    }

    /// Marks the report with `status` and the reason.
    pub fn with(mut self, status: Status, reason: impl Into<String>) -> Self {
        self.status = status;
        self.reason = Some(reason.into());
        self
    }
}

/// One declared file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub path: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

impl Manifest {
    /// Reads a manifest; the error says what is missing or malformed.
    pub fn parse(input: &[u8]) -> Result<Manifest, String> {
        let value: serde_json::Value =
            serde_json::from_slice(input).map_err(|e| format!("not JSON: {e}"))?;
        let version = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or("no format_version: not a capsnap manifest")?;
        if !(u64::from(OLDEST_READABLE)..=u64::from(FORMAT_VERSION)).contains(&version) {
            return Err(format!(
                "bundle format {version}: this capsnap reads formats {OLDEST_READABLE} to {FORMAT_VERSION} (a newer capsnap made it?)"
            ));
        }
        let mut m: Manifest = serde_json::from_value(value).map_err(|e| e.to_string())?;
        for ns in &mut m.namespaces {
            if m.format_version < 2 {
                ns.dir = v1_dir_name(&ns.label);
            } else if !is_dir_name(&ns.dir) {
                return Err(format!(
                    "namespace {:?} has directory {:?}, not one plain path component",
                    ns.label, ns.dir
                ));
            }
        }
        Ok(m)
    }

    /// The manifest as written into a bundle.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a manifest is plain data")
    }

    /// The host name, if the manifest has one.
    pub fn host(&self) -> Option<&str> {
        (!self.host.is_empty()).then_some(self.host.as_str())
    }

    /// The label of the namespace whose files are under `netns/<dir>/`.
    pub fn label_of_dir(&self, dir: &str) -> Option<&str> {
        let ns = self.namespaces.iter().find(|n| n.dir == dir)?;
        Some(&ns.label)
    }

    /// The label of the namespace with this inode.
    pub fn label_of_inode(&self, inode: u64) -> Option<&str> {
        let ns = self.namespaces.iter().find(|n| n.inode == inode)?;
        Some(&ns.label)
    }
}

/// Bundle path of a namespace's directory: `netns/<dir>`.
pub fn netns_path(dir: &str) -> String {
    format!("netns/{dir}")
}

/// Longest directory name [`dir_name`] gives before [`assign_dirs`] makes
/// it unique (file names are at most 255 bytes).
const MAX_DIR: usize = 200;

/// A directory name for a namespace label: the label with every byte
/// other than ASCII letters, digits, `-`, `_` and `.` written as `%XX`
/// (so `pod/shop/web` is `pod%2Fshop%2Fweb`, and `.` or `..` cannot
/// arise), cut to [`MAX_DIR`] bytes. Readable in `tar -t`, and decoded
/// back by [`label_of_dir_name`] when a directory has no manifest.
pub fn dir_name(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for b in label.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && label.len() > 2) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
        if out.len() >= MAX_DIR {
            break;
        }
    }
    if out.is_empty() {
        // No label gives a lone `%` (a `%` of a label is written `%25`).
        out.push('%');
    }
    out
}

/// Gives every namespace a directory name of its own: [`dir_name`] of its
/// label, with `~2`, `~3` ... added where two labels give the same name
/// (only labels cut at [`MAX_DIR`] can).
pub fn assign_dirs(namespaces: &mut [Namespace]) {
    let mut taken = std::collections::HashSet::new();
    for ns in namespaces {
        let base = dir_name(&ns.label);
        let mut dir = base.clone();
        let mut n = 1;
        while !taken.insert(dir.clone()) {
            n += 1;
            dir = format!("{base}~{n}");
        }
        ns.dir = dir;
    }
}

/// The label a directory name stands for when there is no manifest to say
/// (a directory laid out by hand like a bundle): `%XX` escapes decoded.
pub fn label_of_dir_name(dir: &str) -> String {
    if dir == "%" {
        return String::new();
    }
    let bytes = dir.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Format 1's directory for a label (`/` replaced by `_`).
fn v1_dir_name(label: &str) -> String {
    label.replace('/', "_")
}

/// One plain path component.
fn is_dir_name(dir: &str) -> bool {
    !dir.is_empty() && dir != "." && dir != ".." && !dir.contains(['/', '\\', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &[u8] = br#"{"format_version":1,"capsnap_version":"0.1.0","host":"vm","kernel":"Linux 6.18","started_ns":10,"finished_ns":20,
      "namespaces":[{"label":"host","inode":4026531833,"path":"/proc/self/ns/net","pids":[1,2],"containers":[],"pods":[],"name":null,"pod_names":[],"container_names":[]},
                    {"label":"pod/default/web","inode":4026532001,"path":"/proc/9/ns/net","pids":[9],"containers":["abc"],"pods":["u1"],"name":null,"pod_names":["default/web"],"container_names":["web"]}],
      "sources":[{"source":"ebpf","status":"skipped","reason":"tool missing: bpftrace","files":[],"duration_ms":0},
                 {"source":"proc_net","netns":"host","status":"ok","files":["netns/host/proc/net/tcp"],"duration_ms":3}],
      "members":[{"path":"dmesg.txt","size":3,"sha256":"ab"}]}"#;

    #[test]
    fn format_1_manifests_read_with_their_directory_rule() {
        let m = Manifest::parse(V1).unwrap();
        assert_eq!(m.host(), Some("vm"));
        assert_eq!(m.label_of_inode(4026532001), Some("pod/default/web"));
        assert_eq!(m.label_of_dir("pod_default_web"), Some("pod/default/web"));
        assert_eq!(m.label_of_dir("host"), Some("host"));
        assert_eq!(m.sources[0].status, Status::Skipped);
        assert_eq!(
            m.members,
            [Member {
                path: "dmesg.txt".into(),
                size: 3,
                sha256: "ab".into()
            }]
        );
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let cases: &[(&[u8], &str)] = &[
            (b"[", "not JSON"),
            (b"{}", "no format_version"),
            (br#"{"format_version":99}"#, "bundle format 99"),
            (br#"{"format_version":0}"#, "bundle format 0"),
            (
                br#"{"format_version":2,"members":[{"path":"x","size":"big","sha256":"00"}]}"#,
                "invalid type",
            ),
            (
                br#"{"format_version":2,"namespaces":[{"label":"a","dir":"../x"}]}"#,
                "not one plain path component",
            ),
        ];
        for (input, want) in cases {
            let e = Manifest::parse(input).unwrap_err();
            assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn labels_round_trip_through_their_directory() {
        let labels = [
            "host",
            "pod/shop/web",
            "pod/shop/web app",
            "ctr 1",
            "netns-4026532001",
            "café/ünïcode",
            "100%",
            ".",
            "..",
            "a.b",
            "",
        ];
        let mut namespaces: Vec<Namespace> = labels
            .iter()
            .map(|l| Namespace {
                label: (*l).to_owned(),
                inode: 1,
                ..Namespace::default()
            })
            .collect();
        assign_dirs(&mut namespaces);
        let mut m = Manifest {
            format_version: FORMAT_VERSION,
            namespaces,
            ..Manifest::default()
        };
        m = Manifest::parse(&m.to_json()).unwrap();
        for ns in &m.namespaces {
            assert!(is_dir_name(&ns.dir), "{:?} -> {:?}", ns.label, ns.dir);
            assert_eq!(m.label_of_dir(&ns.dir), Some(ns.label.as_str()));
            assert_eq!(label_of_dir_name(&ns.dir), ns.label, "{:?}", ns.dir);
        }
        assert_eq!(dir_name("pod/shop/web"), "pod%2Fshop%2Fweb");
        assert_eq!(dir_name("host"), "host");
    }

    #[test]
    fn long_labels_get_distinct_directories() {
        let long = "x".repeat(300);
        let mut namespaces: Vec<Namespace> = ["a", "b"]
            .iter()
            .map(|s| Namespace {
                label: format!("{long}{s}"),
                ..Namespace::default()
            })
            .collect();
        assign_dirs(&mut namespaces);
        assert_ne!(namespaces[0].dir, namespaces[1].dir);
        assert!(namespaces.iter().all(|n| n.dir.len() < 255));
    }
}
