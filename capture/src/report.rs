//! What each source of a collection ended as, for the bundle manifest.

use serde::Serialize;

/// How a source ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// One source of a collection (a file, a tool run, a capture point).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceReport {
    /// What was collected, e.g. `proc_net_tcp`, `packets`, `ebpf`.
    pub source: String,
    /// Namespace label (`host`, `netns-4026532xxx`, `pod/ns/name`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    pub status: Status,
    /// Why it is not `ok`: permission, tool missing, kernel lacks it, timed out...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Bundle-relative paths of the files this source wrote.
    pub files: Vec<String>,
    pub duration_ms: u64,
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
        }
    }

    /// Marks the report with `status` and the reason.
    pub fn with(mut self, status: Status, reason: impl Into<String>) -> Self {
        self.status = status;
        self.reason = Some(reason.into());
        self
    }
}
