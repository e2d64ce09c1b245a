//! The sysctls that explain the incidents capsnap is for, read inside the
//! namespace (most of net.* is per network namespace and follows the
//! reading thread; tcp_mem and nf_conntrack_max are global) into
//! `sysctls.txt`, `key = value` per line as `sysctl -a` prints them.

use crate::report::{SourceReport, Status};
use crate::source::{Context, InNetns, Phase, Scope, Source, Window, elapsed_ms};
use formats::bundle::{Artifact, SYSCTLS};
use std::path::Path;
use std::time::Instant;

pub struct Sysctls;

impl Source for Sysctls {
    fn name(&self) -> &'static str {
        "sysctls"
    }

    fn scope(&self) -> Scope {
        Scope::Netns
    }

    fn phase(&self) -> Phase {
        Phase::Close
    }

    fn writes(&self) -> Vec<&'static Artifact> {
        vec![&SYSCTLS]
    }

    fn run(&self, cx: &Context, ns: Option<&InNetns>, _: &Window) -> Vec<SourceReport> {
        ns.map(|ns| snapshot(cx, ns)).into_iter().collect()
    }
}

/// Sysctls that explain the incidents capsnap is for (under /proc/sys/).
/// Most are per network namespace; tcp_mem and nf_conntrack_max are global.
const KEYS: &[&str] = &[
    "net/ipv4/tcp_mem",
    "net/ipv4/tcp_rmem",
    "net/ipv4/tcp_wmem",
    "net/ipv4/tcp_max_orphans",
    "net/ipv4/tcp_max_tw_buckets",
    "net/ipv4/tcp_fin_timeout",
    "net/ipv4/tcp_tw_reuse",
    "net/ipv4/tcp_syn_retries",
    "net/ipv4/tcp_synack_retries",
    "net/ipv4/tcp_retries2",
    "net/ipv4/tcp_syncookies",
    "net/ipv4/tcp_max_syn_backlog",
    "net/ipv4/ip_local_port_range",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/rp_filter",
    "net/core/somaxconn",
    "net/core/netdev_max_backlog",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_count",
    "net/netfilter/nf_conntrack_buckets",
    "net/netfilter/nf_conntrack_tcp_be_liberal",
    "net/netfilter/nf_conntrack_tcp_loose",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_time_wait",
    "net/netfilter/nf_conntrack_tcp_timeout_fin_wait",
    "net/netfilter/nf_conntrack_log_invalid",
];

fn snapshot(cx: &Context, ns: &InNetns) -> SourceReport {
    let started = Instant::now();
    if !ns.entered {
        return ns.not_entered(&SYSCTLS, "sysctls follow the reader's namespace");
    }
    let mut r = ns.report(&SYSCTLS);
    let mut text = String::new();
    let mut missing = Vec::new();
    for key in KEYS {
        match std::fs::read_to_string(Path::new("/proc/sys").join(key)) {
            Ok(v) => text.push_str(&format!(
                "{} = {}\n",
                key.replace('/', "."),
                v.trim().replace('\t', " ")
            )),
            Err(_) => missing.push(key.replace('/', ".")),
        }
    }
    if let Err(e) = std::fs::write(ns.file(cx, &SYSCTLS), text) {
        return r.with(Status::Failed, format!("cannot write: {e}"));
    }
    r.files.push(ns.rel(&SYSCTLS));
    r.duration_ms = elapsed_ms(started);
    if !missing.is_empty() {
        r = r.with(
            Status::Partial,
            format!(
                "not present on this kernel or namespace: {}",
                missing.join(", ")
            ),
        );
    }
    r
}
