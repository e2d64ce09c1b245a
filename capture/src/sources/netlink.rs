//! The kernel's own answers over netlink, one conversation file per dump
//! of the registry (`netlink/*.nl`): links, addresses, routes and rules
//! (rtnetlink) and TCP/UDP sockets (sock_diag), asked inside each
//! namespace (a netlink socket belongs to the namespace of the thread that
//! opens it) with what `formats::netlink` defines and kept byte for byte
//! ([`crate::netlink`]). None of these dumps needs a capability.

use crate::netlink::converse;
use crate::report::{SourceReport, Status};
use crate::source::{Context, InNetns, Phase, Scope, Source, Window, elapsed_ms};
use formats::bundle::{ARTIFACTS, Artifact, Parse};
use std::time::Instant;

pub struct Netlink;

impl Source for Netlink {
    fn name(&self) -> &'static str {
        "netlink dumps"
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
            .filter(|a| a.netlink.is_some() && !matches!(a.parse, Parse::AtOpen))
            .collect()
    }

    fn run(&self, cx: &Context, ns: Option<&InNetns>, _: &Window) -> Vec<SourceReport> {
        let Some(ns) = ns else { return Vec::new() };
        self.writes().into_iter().map(|a| dump(cx, ns, a)).collect()
    }
}

/// Runs the dump of `artifact` in the namespace and writes its
/// conversation; the report says what the kernel refused.
pub fn dump(cx: &Context, ns: &InNetns, artifact: &Artifact) -> SourceReport {
    let started = Instant::now();
    let Some(what) = artifact.netlink else {
        return ns
            .report(artifact)
            .with(Status::Failed, "not a netlink dump");
    };
    if !ns.entered {
        return ns.not_entered(artifact, "netlink answers for the caller's namespace");
    }
    let mut r = ns.report(artifact);
    let conversation = match converse(what) {
        Ok(c) => c,
        Err(e) => return r.with(Status::Failed, format!("netlink: {e}")),
    };
    if let Err(e) = std::fs::write(ns.file(cx, artifact), &conversation.bytes) {
        return r.with(Status::Failed, format!("cannot write: {e}"));
    }
    r.files.push(ns.rel(artifact));
    r.duration_ms = elapsed_ms(started);
    if !conversation.trouble.is_empty() {
        r = r.with(Status::Partial, conversation.trouble.join("; "));
    }
    r
}
