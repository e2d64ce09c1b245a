//! The bundle contract: the one definition of what `capsnap collect`
//! writes and what every reader reads.
//!
//! A bundle is one tar stream compressed with zstd (`tar --zstd -xf` opens
//! it anywhere), or a directory with the same layout:
//! - `manifest.json` first ([`Manifest`]): format version, host, kernel,
//!   window, options, the namespaces covered with the directory of each,
//!   every source with its status and reason, and the size and sha256 of
//!   every other member.
//! - Per network namespace, `netns/<dir>/...` where `<dir>` is the
//!   namespace's [`Namespace::dir`] (an escaped form of its label, recorded
//!   in the manifest so every label reads back exactly).
//! - Per node, the files at the bundle root (`processes.jsonl`, `fds.tsv`,
//!   `ebpf/`, `kmsg.txt` ...).
//!
//! [`ARTIFACTS`] lists every file with the source that writes it and the
//! reader that reads it; the collector writes through it and the loader,
//! `capsnap tables` and the detections' "cannot tell" read through it.

mod artifacts;
mod manifest;
pub mod reader;
mod records;
pub(crate) mod tables;

pub use artifacts::{
    ARTIFACTS, AT_OPEN, AT_OPEN_SOURCE, Artifact, CAPTURE_TABLES, CONTAINERD_TASKS, CRICTL_PODS,
    CRICTL_PS, CRIO_CONTAINERS, DOCKER_PS, EBPF_CLOCK, EBPF_SCRIPT, EBPF_STDERR, EBPF_SUMMARY,
    EVENTS, FDS, INET_DIAG, IP6TABLES_SAVE, IPTABLES_SAVE, JOURNAL, KERNEL_LOG, LINKS, LOG_FILES,
    MANIFEST, NFT_RULESET, PACKETS, PROCESSES, Parse, SYSCTLS, Scope, UNIX_DIAG, at,
    at_open_copies, at_open_path, feeding, is_at_open, of_source, readers, tables,
};
pub use manifest::{
    EbpfPath, FORMAT_VERSION, Manifest, Member, Namespace, OLDEST_READABLE, PacketCounts,
    SourceReport, Status, Trigger, assign_dirs, dir_name, label_of_dir_name, netns_path,
};
pub use records::{FDS_HEADER, ProcessRecord};

/// The manifest's name; it is always the first member.
pub const MANIFEST_NAME: &str = "manifest.json";

/// (year, month, day, hour, minute, second) of a UTC time.
fn civil(ns: u64) -> (i64, u32, u32, u32, u32, u32) {
    let secs = (ns / 1_000_000_000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// RFC 3339 UTC with nanoseconds, as the manifest writes times.
pub fn rfc3339(ns: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(ns);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:09}Z",
        ns % 1_000_000_000
    )
}

/// Default bundle name: `capsnap-<host>-<UTC>.capsnap`.
pub fn default_name(host: &str, ns: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(ns);
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("capsnap-{host}-{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z.capsnap")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        // 2026-11-21T20:34:00.5Z
        let ns = 1_795_293_240_500_000_000;
        assert_eq!(rfc3339(ns), "2026-11-21T20:34:00.500000000Z");
        assert_eq!(
            default_name("node 1", ns),
            "capsnap-node_1-20261121T203400Z.capsnap"
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
    }
}
