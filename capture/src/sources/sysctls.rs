//! The sysctls that explain the incidents capsnap is for, read inside the
//! namespace (most of net.* is per network namespace and follows the
//! reading thread; tcp_mem and nf_conntrack_max are global) into
//! `sysctls.txt`, `key = value` per line as `sysctl -a` prints them: the
//! keys of [`KEYS`], then those of [`PER_DEVICE`] for every interface of
//! the namespace (`all`, `default` and each device), since the value that
//! applies to a packet is the device's combined with `all` (rp_filter:
//! the maximum of the two, Documentation/networking/ip-sysctl.rst).

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

/// Per-interface keys, under `net/ipv4/conf/<dev>/` and
/// `net/ipv6/conf/<dev>/`: what decides whether a device drops, answers or
/// forwards a packet (rp_filter and martians, ARP behaviour, redirects,
/// IPv6 on or off). A key a kernel lacks is left out without a warning.
const PER_DEVICE: &[(&str, &[&str])] = &[
    (
        "net/ipv4/conf",
        &[
            "rp_filter",
            "forwarding",
            "accept_local",
            "log_martians",
            "src_valid_mark",
            "route_localnet",
            "proxy_arp",
            "arp_ignore",
            "arp_announce",
            "arp_filter",
            "accept_redirects",
            "send_redirects",
        ],
    ),
    (
        "net/ipv6/conf",
        &[
            "disable_ipv6",
            "forwarding",
            "mtu",
            "accept_ra",
            "accept_dad",
        ],
    ),
];

/// `key = value` lines of [`PER_DEVICE`] for every device under `root`
/// (/proc/sys), devices sorted (all and default with them).
fn per_device(root: &Path) -> String {
    let mut text = String::new();
    for (dir, keys) in PER_DEVICE {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut devs: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        devs.sort();
        for dev in devs {
            for key in *keys {
                if let Ok(v) = std::fs::read_to_string(root.join(dir).join(&dev).join(key)) {
                    // A device name may hold a dot (vlan eth0.100); sysctl
                    // prints it with a slash there (sysctl(8)), as here.
                    text.push_str(&format!(
                        "{}.{}.{key} = {}\n",
                        dir.replace('/', "."),
                        dev.replace('.', "/"),
                        v.trim().replace('\t', " ")
                    ));
                }
            }
        }
    }
    text
}

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
    text.push_str(&per_device(Path::new("/proc/sys")));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_device_gets_its_own_keys() {
        let root = tempfile::tempdir().unwrap();
        for dev in ["all", "eth0", "eth0.100"] {
            let d = root.path().join("net/ipv4/conf").join(dev);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("rp_filter"), "1\n").unwrap();
        }
        std::fs::write(root.path().join("net/ipv4/conf/eth0/log_martians"), "0\n").unwrap();
        assert_eq!(
            per_device(root.path()),
            "net.ipv4.conf.all.rp_filter = 1\n\
             net.ipv4.conf.eth0.rp_filter = 1\n\
             net.ipv4.conf.eth0.log_martians = 0\n\
             net.ipv4.conf.eth0/100.rp_filter = 1\n"
        );
    }
}
