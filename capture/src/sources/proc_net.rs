//! The namespace's /proc/net files, copied as the kernel printed them:
//! every per-namespace artifact of the registry under `proc/net/`
//! (sockets, sockstat, snmp/netstat counters, interfaces, conntrack). A
//! file the kernel lacks (nf_conntrack without its module) is skipped.
//!
//! They are read through /proc/thread-self/net, which follows the reading
//! thread's namespace. Without the privilege to enter the namespace, the
//! same files are read through /proc/PID/net of a process living in it.

use crate::report::SourceReport;
use crate::source::{Context, InNetns, Phase, Scope, Source, Window, copy_file};
use formats::bundle::{ARTIFACTS, Artifact};
use std::path::PathBuf;

pub struct ProcNet;

impl Source for ProcNet {
    fn name(&self) -> &'static str {
        "/proc/net"
    }

    fn scope(&self) -> Scope {
        Scope::Netns
    }

    fn phase(&self) -> Phase {
        Phase::Close
    }

    fn writes(&self) -> Vec<&'static Artifact> {
        ARTIFACTS
            .iter()
            .filter(|a| a.proc_net_file().is_some())
            .collect()
    }

    fn run(&self, cx: &Context, ns: Option<&InNetns>, _: &Window) -> Vec<SourceReport> {
        let Some(ns) = ns else { return Vec::new() };
        let files: Vec<(&Artifact, &str)> = self
            .writes()
            .into_iter()
            .filter_map(|a| Some((a, a.proc_net_file()?)))
            .collect();
        copy(cx, ns, &files)
    }
}

/// Copies the namespace's /proc/net files: each (artifact, name under
/// /proc/net) to the artifact's path, one report each.
pub fn copy(cx: &Context, ns: &InNetns, files: &[(&Artifact, &str)]) -> Vec<SourceReport> {
    let dir = if ns.entered {
        PathBuf::from("/proc/thread-self/net")
    } else if !ns.gone
        && let Some(pid) = ns.ns.pids.first()
    {
        cx.proc.join(format!("{pid}/net"))
    } else {
        let why = "no process in it to read /proc/PID/net from";
        return files.iter().map(|(a, _)| ns.not_entered(a, why)).collect();
    };
    files
        .iter()
        .map(|(a, name)| copy_file(&dir.join(name), &ns.file(cx, a), ns.rel(a), ns.report(a)))
        .collect()
}
