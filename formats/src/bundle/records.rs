//! Records the collector writes and a reader reads back: one type each,
//! so the field names are written down once.

use serde::{Deserialize, Serialize};

/// One line of `processes.jsonl`: a process at collection time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub pid: u32,
    #[serde(default)]
    pub ppid: Option<u32>,
    #[serde(default)]
    pub comm: Option<String>,
    #[serde(default)]
    pub exe: Option<String>,
    /// Arguments (secrets masked when the collection redacted them).
    #[serde(default)]
    pub cmdline: Option<Vec<String>>,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub start_time_ns: Option<u64>,
    #[serde(default)]
    pub netns_inode: Option<u64>,
    #[serde(default)]
    pub mntns_inode: Option<u64>,
    /// /proc/PID/cgroup as read.
    #[serde(default)]
    pub cgroup: Option<String>,
    #[serde(default)]
    pub container_id: Option<String>,
    #[serde(default)]
    pub pod_uid: Option<String>,
    #[serde(default)]
    pub fd_count: Option<u64>,
    #[serde(default)]
    pub socket_fd_count: Option<u64>,
}

/// The first line of `fds.tsv`; each line after it is `pid fd target`,
/// tab-separated, target as /proc/PID/fd/N reads.
pub const FDS_HEADER: &str = "pid\tfd\ttarget\n";
