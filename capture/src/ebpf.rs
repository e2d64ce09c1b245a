//! eBPF events through bpftrace. (Being written: see the helper task.)

use crate::report::SourceReport;
use std::path::Path;
use std::time::Duration;

/// How to run the probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EbpfOptions {
    /// bpftrace executable name or path.
    pub bpftrace: String,
    /// How long to wait for the probes to attach before giving up.
    pub attach_timeout: Duration,
}

/// A running bpftrace; stopping it (or dropping it) ends the child.
#[derive(Debug)]
pub struct EbpfSession {}

/// Starts the probes, writing JSON lines to `out_dir/ebpf/events.jsonl`,
/// and returns once they are attached. `Err` is the report of why not.
pub fn start_bpftrace(opts: &EbpfOptions, out_dir: &Path) -> Result<EbpfSession, SourceReport> {
    let _ = (opts, out_dir);
    unimplemented!("being written")
}

impl EbpfSession {
    /// Stops bpftrace and reports what was collected.
    pub fn stop(self) -> SourceReport {
        unimplemented!("being written")
    }
}
