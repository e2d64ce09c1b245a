//! AF_PACKET capture in one or more network namespaces at once, written as
//! pcapng. (Being written: see the helper task.)

use crate::report::SourceReport;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Where to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureTarget {
    /// Capture point label, e.g. `host`, `pod/default/web`, `netns-4026532301`.
    pub label: String,
    /// A namespace file (`/proc/PID/ns/net`, `/var/run/netns/NAME`); `None`
    /// is the namespace capsnap runs in.
    pub netns: Option<PathBuf>,
    /// Interface names to capture on; empty means all of the namespace's.
    pub interfaces: Vec<String>,
    /// File name for the pcapng inside the output directory.
    pub file: String,
}

/// Bounds of a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureOptions {
    pub duration: Duration,
    /// Stop a target after this many packets.
    pub max_packets: u64,
    /// Stop a target after this many bytes written.
    pub max_bytes: u64,
    /// Bytes kept of each packet.
    pub snaplen: u32,
}

/// Captures on every target at the same time until `duration` passes,
/// `stop` becomes true or a bound is hit. One report per target.
pub fn capture_packets(targets: &[CaptureTarget], opts: &CaptureOptions, stop: &AtomicBool, out_dir: &Path) -> Vec<SourceReport> {
    let _ = (targets, opts, stop, out_dir);
    unimplemented!("being written")
}
