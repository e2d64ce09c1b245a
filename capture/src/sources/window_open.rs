//! The copies taken when the capture window opens of what is read again
//! when it closes (`window-open/` in each namespace: snmp, netstat, snmp6
//! and nf_conntrack counters, /proc/net/dev, sockstat, the link dump), so that the
//! readers give the value at each end and the change during the window.
//! Each copy is made the way its later copy is (a /proc/net file copied,
//! a netlink dump, a tool run), by the code of the source that makes that
//! one.

use crate::report::{SourceReport, Status};
use crate::source::{Context, InNetns, Phase, Scope, Source, Window};
use crate::sources::{netlink, proc_net};
use crate::tool::run_artifact;
use formats::bundle::{Artifact, at_open_copies};

pub struct WindowOpen;

impl Source for WindowOpen {
    fn name(&self) -> &'static str {
        "counters at window open"
    }

    fn scope(&self) -> Scope {
        Scope::Netns
    }

    fn phase(&self) -> Phase {
        Phase::Open
    }

    fn writes(&self) -> Vec<&'static Artifact> {
        at_open_copies().collect()
    }

    fn run(&self, cx: &Context, ns: Option<&InNetns>, _: &Window) -> Vec<SourceReport> {
        let Some(ns) = ns else { return Vec::new() };
        let mut files = Vec::new();
        let mut reports = Vec::new();
        for copy in self.writes() {
            let Some(later) = copy.taken_at_close() else {
                continue;
            };
            if let Some(name) = later.proc_net_file() {
                files.push((copy, name));
            } else if copy.netlink.is_some() {
                reports.push(netlink::dump(cx, ns, copy));
            } else if later.command.is_some() {
                reports.push(if ns.entered {
                    run_artifact(
                        copy,
                        &ns.file(cx, copy),
                        ns.rel(copy),
                        ns.report(copy),
                        cx.opts.source_timeout,
                    )
                } else {
                    ns.not_entered(copy, "the tool must run inside the namespace")
                });
            } else {
                reports.push(
                    ns.report(copy)
                        .with(Status::Failed, "capsnap does not know how to copy it"),
                );
            }
        }
        let mut out = proc_net::copy(cx, ns, &files);
        out.extend(reports);
        out
    }
}
