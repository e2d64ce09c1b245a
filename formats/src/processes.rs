//! `processes.jsonl` and `fds.tsv`: the collector's process snapshot.
//!
//! processes.jsonl has one JSON object per process (see capture's
//! `ProcessRow`); fds.tsv one line per open fd, `pid fd target`, where the
//! target is the /proc/PID/fd link text (`socket:[123]`, `pipe:[9]`,
//! `anon_inode:[eventfd]`, a path).

use crate::bundle::{FDS_HEADER, ProcessRecord};
use crate::rows::{Reader, Rows, V, file_name_is, text};

crate::artifact_table!(
    "processes",
    "one row per process at collection time (netns: its namespace's label)",
    [
        (
            "pid",
            U32,
            false,
            "process id (in the node's pid namespace)"
        ),
        ("ppid", U32, true, "parent process id"),
        (
            "comm",
            Dict,
            true,
            "command name (/proc/PID/comm, 15 characters at most)"
        ),
        ("exe", Str, true, "executable path (/proc/PID/exe)"),
        (
            "cmdline",
            Str,
            true,
            "arguments joined by spaces (secrets masked when redacted)"
        ),
        ("uid", U32, true, "real user id"),
        ("start_time", Ts, true, "when the process started, UTC"),
        ("netns_inode", U64, true, "inode of its network namespace"),
        ("mntns_inode", U64, true, "inode of its mount namespace"),
        (
            "cgroup",
            Str,
            true,
            "its cgroup v2 path (or the first v1 line)"
        ),
        (
            "container_id",
            Dict,
            true,
            "container id found in its cgroup"
        ),
        (
            "pod_uid",
            Dict,
            true,
            "Kubernetes pod UID found in its cgroup"
        ),
        ("fd_count", U64, true, "open file descriptors"),
        (
            "socket_fd_count",
            U64,
            true,
            "open file descriptors that are sockets"
        ),
    ]
);

/// Reads capsnap's processes.jsonl.
pub const READER: Reader = Reader {
    table: &TABLE,
    what: "processes.jsonl (capsnap)",
    claims: |path, _| file_name_is(path, &["processes.jsonl"]),
    superseded_by: &[],
    parse,
};

fn parse(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let origin = rows.origin().clone();
    for (n, line) in text(input).lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let p: ProcessRecord = match serde_json::from_str(line) {
            Ok(p) => p,
            Err(e) => {
                rows.skip(n + 1, format!("not a process record: {e}"));
                continue;
            }
        };
        let cmdline = p.cmdline.as_ref().map(|args| args.join(" "));
        let netns = p.netns_inode.and_then(|i| origin.label_of_inode(i));
        rows.push_in(
            netns,
            &[
                V::U64(p.pid.into()),
                p.ppid.map(u64::from).into(),
                p.comm.as_deref().into(),
                p.exe.as_deref().into(),
                cmdline.as_deref().into(),
                p.uid.map(u64::from).into(),
                p.start_time_ns
                    .and_then(|t| i64::try_from(t).ok())
                    .map_or(V::Null, V::Ts),
                p.netns_inode.into(),
                p.mntns_inode.into(),
                p.cgroup.as_deref().map(unified_cgroup).into(),
                p.container_id.as_deref().into(),
                p.pod_uid.as_deref().into(),
                p.fd_count.into(),
                p.socket_fd_count.into(),
            ],
        );
    }
    Ok(())
}

/// The cgroup v2 line (`0::/path`) of /proc/PID/cgroup, else its first line.
fn unified_cgroup(text: &str) -> &str {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .or_else(|| text.lines().next())
        .unwrap_or("")
}

pub mod fds {
    //! The `fds` table.
    use super::*;

    crate::artifact_table!(
        "fds",
        "one row per open file descriptor of every process",
        [
            ("pid", U32, false, "process id"),
            ("fd", U32, false, "file descriptor number"),
            ("target", Str, false, "what /proc/PID/fd/N points to"),
            (
                "kind",
                Dict,
                false,
                "socket, pipe, anon_inode, file, memfd or other"
            ),
            (
                "inode",
                U64,
                true,
                "inode of a socket or pipe (`socket:[N]`)"
            ),
        ]
    );

    /// Reads capsnap's fds.tsv.
    pub const READER: Reader = Reader {
        table: &TABLE,
        what: "fds.tsv (capsnap)",
        claims: |path, head| {
            file_name_is(path, &["fds.tsv"]) || head.starts_with(FDS_HEADER.as_bytes())
        },
        superseded_by: &[],
        parse,
    };

    fn parse(input: &[u8], rows: &mut Rows) -> Result<(), String> {
        for (n, line) in text(input).lines().enumerate() {
            if n == 0 && line == FDS_HEADER.trim_end() || line.is_empty() {
                continue;
            }
            let mut fields = line.splitn(3, '\t');
            let (Some(pid), Some(fd), Some(target)) = (fields.next(), fields.next(), fields.next())
            else {
                rows.skip(n + 1, "expected pid, fd and target separated by tabs");
                continue;
            };
            let (Ok(pid), Ok(fd)) = (pid.parse::<u32>(), fd.parse::<u32>()) else {
                rows.skip(n + 1, format!("pid {pid:?} or fd {fd:?} is not a number"));
                continue;
            };
            let (kind, inode) = classify(target);
            rows.push(&[
                V::U64(pid.into()),
                V::U64(fd.into()),
                V::Str(target),
                V::Str(kind),
                inode.into(),
            ]);
        }
        Ok(())
    }

    /// Kind and inode of an fd link target (fs/proc/fd.c prints sockets
    /// and pipes as `type:[inode]`, anonymous inodes as `anon_inode:name`).
    pub fn classify(target: &str) -> (&'static str, Option<u64>) {
        let bracketed = |prefix: &str| {
            target
                .strip_prefix(prefix)?
                .strip_prefix(":[")?
                .strip_suffix(']')?
                .parse::<u64>()
                .ok()
        };
        if let Some(i) = bracketed("socket") {
            ("socket", Some(i))
        } else if let Some(i) = bracketed("pipe") {
            ("pipe", Some(i))
        } else if target.starts_with("anon_inode:") {
            ("anon_inode", None)
        } else if target.starts_with("/memfd:") {
            ("memfd", None)
        } else if target.starts_with('/') {
            ("file", None)
        } else {
            ("other", None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::{Origin, read};
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, UInt32Type, UInt64Type};
    use std::sync::Arc;

    #[test]
    fn processes_get_their_namespace_label_from_the_manifest() {
        let input = br#"{"pid":1,"ppid":0,"comm":"init","exe":null,"cmdline":["/sbin/init","--x"],"uid":0,"start_time_ns":5,"netns_inode":4026531833,"mntns_inode":null,"cgroup":"1:cpu:/\n0::/system.slice","container_id":null,"pod_uid":null,"fd_count":3,"socket_fd_count":1}
not json
{"pid":7,"comm":"leaky","netns_inode":99,"cmdline":[]}
"#;
        let manifest = crate::Manifest::parse(
            br#"{"format_version":2,"host":"n1","namespaces":[{"label":"host","dir":"host","inode":4026531833}]}"#,
        )
        .unwrap();
        let origin = Origin::in_bundle("b", &Arc::new(manifest), "processes.jsonl");
        let (batch, skipped, _) = read(&READER, input, origin).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(skipped[0].line, 2);
        let netns = batch
            .column_by_name("netns")
            .unwrap()
            .as_dictionary::<Int32Type>();
        assert!(netns.is_valid(0) && netns.is_null(1));
        let cmd = batch.column_by_name("cmdline").unwrap().as_string::<i32>();
        assert_eq!(cmd.value(0), "/sbin/init --x");
        let cg = batch.column_by_name("cgroup").unwrap().as_string::<i32>();
        assert_eq!(cg.value(0), "/system.slice");
        let pids: Vec<_> = batch
            .column_by_name("pid")
            .unwrap()
            .as_primitive::<UInt32Type>()
            .values()
            .to_vec();
        assert_eq!(pids, [1, 7]);
    }

    /// Found by fuzzing (issue 10): a pid over 2^32 was stored as a null in
    /// the non-nullable pid column, and building the batch panicked.
    #[test]
    fn a_pid_over_32_bits_is_a_skipped_line_not_a_panic_10() {
        let input = b"pid\tfd\ttarget\n4294967296\t3\tsocket:[1]\n7\t4\tpipe:[2]\n";
        let (batch, skipped, total) =
            read(&fds::READER, input, Origin::of("b", None, "fds.tsv")).unwrap();
        assert_eq!((batch.num_rows(), total), (1, 1));
        assert_eq!(skipped[0].line, 2);
    }

    #[test]
    fn fd_targets_give_kind_and_inode() {
        let input = b"pid\tfd\ttarget\n10\t3\tsocket:[4242]\n10\t4\tpipe:[7]\n10\t5\t/var/log/x (deleted)\nbad line\n";
        let (batch, skipped, _) =
            read(&fds::READER, input, Origin::of("b", None, "fds.tsv")).unwrap();
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(skipped.len(), 1);
        let inode: Vec<_> = batch
            .column_by_name("inode")
            .unwrap()
            .as_primitive::<UInt64Type>()
            .iter()
            .collect();
        assert_eq!(inode, [Some(4242), Some(7), None]);
        assert_eq!(fds::classify("anon_inode:[eventfd]"), ("anon_inode", None));
    }
}
