//! The kernel's own answers over netlink, one conversation file per dump
//! of the registry (`netlink/*.nl`): links, addresses, routes and rules
//! (rtnetlink), TCP/UDP sockets (sock_diag) and the conntrack table and
//! its statistics (ctnetlink), asked inside each namespace (a netlink
//! socket belongs to the namespace of the thread that opens it) with what
//! `formats::netlink` defines and kept byte for byte ([`crate::netlink`]).
//! The rtnetlink and sock_diag dumps need no capability; nfnetlink wants
//! CAP_NET_ADMIN for every message (net/netfilter/nfnetlink.c,
//! `nfnetlink_rcv_msg`), so without root the conntrack table is read from
//! /proc/net/nf_conntrack alone.

use crate::netlink::converse;
use crate::report::{SourceReport, Status};
use crate::source::{Context, InNetns, Phase, Scope, Source, Window, elapsed_ms};
use formats::bundle::{ARTIFACTS, Artifact, Parse};
use formats::netlink::NETLINK_NETFILTER;
use std::path::Path;
use std::time::Instant;

/// Present in a namespace once nf_conntrack is loaded: its sysctls are
/// registered per namespace (nf_conntrack_standalone.c); /proc/sys/net
/// follows the reading thread's namespace.
const NF_CONNTRACK_SYSCTL: &str = "/proc/sys/net/netfilter/nf_conntrack_max";

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
    if what.protocol == NETLINK_NETFILTER && !Path::new(NF_CONNTRACK_SYSCTL).exists() {
        // Asking ctnetlink would make nfnetlink load nf_conntrack_netlink
        // and with it nf_conntrack (`request_module`): a collector must not
        // start connection tracking on a node that does not use it.
        return ns.report(artifact).with(
            Status::Skipped,
            "kernel lacks it: nf_conntrack is not loaded (no net.netfilter.nf_conntrack_max); capsnap does not load it",
        );
    }
    let mut r = ns.report(artifact);
    let conversation = match converse(what) {
        Ok(c) => c,
        Err(e) => return r.with(Status::Failed, format!("netlink: {e}")),
    };
    if conversation.refused == what.requests.len() {
        // Nothing but refusals: no file, so that a reader falls back to
        // what stands in for it (/proc/net/nf_conntrack for conntrack).
        return r.with(Status::Failed, conversation.trouble.join("; "));
    }
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
