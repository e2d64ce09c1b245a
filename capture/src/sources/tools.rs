//! The node's own tools, run inside each namespace: the netfilter rules
//! (`iptables-save` and `ip6tables-save`, read into `firewall_rules`, also
//! when the window opens; `nft`), optional extras: without them that table
//! is empty and says why. Every per-namespace tool artifact the registry still
//! collects runs the command its source id names; a tool that is not
//! installed is skipped ("tool missing"), one that fails or hangs is
//! reported. Links, addresses, routes, rules and conntrack, which `ip`
//! and `conntrack` gave before, are read over netlink
//! ([`super::netlink`]).

use crate::report::SourceReport;
use crate::source::{Context, InNetns, Phase, Scope, Source, Window};
use crate::tool::run_artifact;
use formats::bundle::{ARTIFACTS, Artifact, Scope as Layout};

pub struct Tools;

impl Source for Tools {
    fn name(&self) -> &'static str {
        "tools"
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
            // The copies at window open are the window-open source's.
            .filter(|a| {
                a.scope == Layout::Netns
                    && a.command.is_some()
                    && a.collected
                    && a.taken_at_close().is_none()
            })
            .collect()
    }

    fn run(&self, cx: &Context, ns: Option<&InNetns>, _: &Window) -> Vec<SourceReport> {
        let Some(ns) = ns else { return Vec::new() };
        self.writes()
            .into_iter()
            .map(|a| {
                if !ns.entered {
                    return ns.not_entered(a, "the tool must run inside the namespace");
                }
                run_artifact(
                    a,
                    &ns.file(cx, a),
                    ns.rel(a),
                    ns.report(a),
                    cx.opts.source_timeout,
                )
            })
            .collect()
    }
}
