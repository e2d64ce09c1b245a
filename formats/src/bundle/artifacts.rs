//! The artifact registry: every file a bundle may hold, with the collector
//! source that writes it, where it sits, and how it becomes table rows.
//!
//! This is the one list the two sides of a bundle agree through. The
//! collector writes each artifact at [`Artifact::path_in`] and reports it
//! under [`Artifact::source`]; the loader reads it with its reader; the
//! table list, `capsnap tables`, the "cannot tell: no X (why)" of a
//! detection and the robustness tests are all derived from it.
//!
//! Adding a table: write its reader (one file in `formats/src/`, declaring
//! its `TABLE` and `READER`), then add one line here per file it reads.
//! Entries are grouped by table in the order `capsnap tables` lists them.

use crate::netlink::{
    ADDR_DUMP, CONNTRACK_DUMP, CONNTRACK_STATS_DUMP, Dump, INET_DIAG_DUMP, LINK_DUMP, ROUTE_DUMP,
    RULE_DUMP,
};
use crate::rows::Reader;
use crate::table::Table;
use crate::{
    addresses, conntrack, counters, ctnetlink, dns, events, firewall, flows, inet_diag, interfaces,
    logs, packets, proc_net, processes, resets, rtnetlink, sockstat, sysctls, unix,
};
use std::sync::LazyLock;

/// Where an artifact sits in a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Once per bundle, at its path from the bundle root.
    Node,
    /// Once per network namespace, under `netns/<dir>/`.
    Netns,
    /// Never written by the collector: files saved by hand (`capsnap query
    /// DIR`), recognised by their reader's claim alone.
    Hand,
}

/// How an artifact becomes rows.
#[derive(Debug, Clone, Copy)]
pub enum Parse {
    /// Kept as captured, for people and other tools; no table reads it yet.
    Raw,
    /// A file (text, or a netlink conversation) that this reader turns
    /// into rows of its table.
    Text(&'static Reader),
    /// A packet capture: every table of [`CAPTURE_TABLES`] streams from it.
    Capture,
    /// The copy taken when the capture window opened of the artifact at
    /// the same path without the leading [`AT_OPEN`] folder (which is taken
    /// when the window closes). It feeds no table alone: the reader of that
    /// artifact gets it beside the file ([`Rows::at_open`](crate::Rows::at_open))
    /// and gives the value at each end and the change during the window.
    AtOpen,
}

/// The folder of a namespace's copies taken when the capture window
/// opened ([`Parse::AtOpen`]): `netns/<dir>/window-open/proc/net/snmp` is
/// `netns/<dir>/proc/net/snmp` as it was when the window opened.
pub const AT_OPEN: &str = "window-open/";

/// The source id of a copy taken when the window opened: its artifact's
/// id with this prefix (`open:proc_net_snmp`).
pub const AT_OPEN_SOURCE: &str = "open:";

/// One kind of file in a bundle.
#[derive(Debug, Clone, Copy)]
pub struct Artifact {
    /// Path from the bundle root ([`Scope::Node`]) or from the namespace's
    /// directory ([`Scope::Netns`]). A path ending in `/` is a folder of
    /// such files.
    pub path: &'static str,
    pub scope: Scope,
    /// The collector source that writes it, as the manifest's `sources`
    /// name it (a tool's source is `tool:` and the command it runs).
    pub source: &'static str,
    /// The command whose output it is, for a node's tool (`ip`,
    /// `conntrack`, `crictl` ...).
    pub command: Option<&'static [&'static str]>,
    /// The netlink dump it is the conversation of (rtnetlink, sock_diag,
    /// ctnetlink).
    pub netlink: Option<&'static Dump>,
    pub parse: Parse,
    /// Whether today's collector writes it. A file only older bundles hold
    /// (a tool's output that a netlink dump replaced) stays listed, with
    /// the source id it was reported under, so those bundles still read.
    pub collected: bool,
}

impl Artifact {
    /// Its path in a bundle, for a per-namespace artifact under the
    /// namespace directory `dir` (see [`Namespace::dir`](super::Namespace::dir)).
    pub fn path_in(&self, dir: Option<&str>) -> String {
        match (self.scope, dir) {
            (Scope::Netns, Some(dir)) => format!("{}/{}", super::netns_path(dir), self.path),
            _ => self.path.to_owned(),
        }
    }

    /// The tables it feeds.
    pub fn tables(&self) -> Vec<&'static Table> {
        match self.parse {
            Parse::Raw | Parse::AtOpen => Vec::new(),
            Parse::Text(reader) => vec![reader.table],
            Parse::Capture => CAPTURE_TABLES.to_vec(),
        }
    }

    /// For a per-namespace artifact under `proc/net/`: the name of the
    /// namespace's /proc/net file it is a copy of (`stat/nf_conntrack`).
    /// A bundle keeps those files as the kernel printed them, under the
    /// same name.
    pub fn proc_net_file(&self) -> Option<&'static str> {
        match self.scope {
            Scope::Netns => self.path.strip_prefix("proc/net/"),
            _ => None,
        }
    }

    /// For a copy taken when the window opened ([`Parse::AtOpen`]): the
    /// artifact it is the earlier copy of.
    pub fn taken_at_close(&self) -> Option<&'static Artifact> {
        if !matches!(self.parse, Parse::AtOpen) {
            return None;
        }
        let path = self.path.strip_prefix(AT_OPEN)?;
        ARTIFACTS
            .iter()
            .find(|a| a.path == path && a.scope == self.scope && !matches!(a.parse, Parse::AtOpen))
    }

    /// Whether `path` (a bundle path) is this artifact.
    pub fn matches(&self, path: &str) -> bool {
        let rel = match self.scope {
            Scope::Hand => return false,
            Scope::Node => path,
            Scope::Netns => match path.strip_prefix("netns/").and_then(|p| p.split_once('/')) {
                Some((_, rel)) => rel,
                None => return false,
            },
        };
        match self.path.strip_suffix('/') {
            Some(folder) => rel
                .strip_prefix(folder)
                .and_then(|r| r.strip_prefix('/'))
                .is_some_and(|r| !r.is_empty() && !r.contains('/')),
            None => rel == self.path,
        }
    }
}

/// The tables that stream from packet captures.
pub const CAPTURE_TABLES: &[&Table] =
    &[&packets::TABLE, &flows::TABLE, &dns::TABLE, &resets::TABLE];

const fn netns(path: &'static str, source: &'static str, parse: Parse) -> Artifact {
    Artifact {
        path,
        scope: Scope::Netns,
        source,
        command: None,
        netlink: None,
        parse,
        collected: true,
    }
}

const fn node(path: &'static str, source: &'static str, parse: Parse) -> Artifact {
    Artifact {
        path,
        scope: Scope::Node,
        source,
        command: None,
        netlink: None,
        parse,
        collected: true,
    }
}

/// The output of `command`, its source named `tool:` and the command.
const fn tool(
    scope: Scope,
    path: &'static str,
    source: &'static str,
    command: &'static [&'static str],
    parse: Parse,
) -> Artifact {
    Artifact {
        path,
        scope,
        source,
        command: Some(command),
        netlink: None,
        parse,
        collected: true,
    }
}

const fn hand(reader: &'static Reader) -> Artifact {
    Artifact {
        path: "",
        scope: Scope::Hand,
        source: "",
        command: None,
        netlink: None,
        parse: Parse::Text(reader),
        collected: false,
    }
}

/// The conversation of a netlink dump in each namespace.
const fn dump(
    path: &'static str,
    source: &'static str,
    dump: &'static Dump,
    parse: Parse,
) -> Artifact {
    Artifact {
        path,
        scope: Scope::Netns,
        source,
        command: None,
        netlink: Some(dump),
        parse,
        collected: true,
    }
}

/// An artifact only bundles made before capsnap read it another way hold.
const fn retired(a: Artifact) -> Artifact {
    Artifact {
        collected: false,
        ..a
    }
}

/// The copy of a per-namespace file taken when the window opened.
const fn at_open(path: &'static str, source: &'static str) -> Artifact {
    netns(path, source, Parse::AtOpen)
}

use Parse::{AtOpen, Capture, Raw, Text};

/// The packet capture of one namespace.
pub const PACKETS: Artifact = netns("packets.pcapng", "packets", Capture);
pub const PROCESSES: Artifact = node("processes.jsonl", "processes", Text(&processes::READER));
pub const FDS: Artifact = node("fds.tsv", "processes", Text(&processes::fds::READER));
pub const SYSCTLS: Artifact = netns("sysctls.txt", "sysctls", Text(&sysctls::READER));
pub const UNIX_DIAG: Artifact = netns("unix_diag.tsv", "unix_diag", Text(&unix::DIAG_READER));
/// TCP and UDP sockets by sock_diag.
pub const INET_DIAG: Artifact = dump(
    "netlink/inet_diag.nl",
    "inet_diag",
    &INET_DIAG_DUMP,
    Text(&inet_diag::READER),
);
/// The links of a namespace by rtnetlink (read again when the window opens).
pub const LINKS: Artifact = dump(
    "netlink/link.nl",
    "rtnl_link",
    &LINK_DUMP,
    Text(&rtnetlink::link::READER),
);
/// The conntrack table of a namespace by ctnetlink: both tuples of every
/// entry (the NAT translation), state, timeout, mark, zone, counters.
pub const CONNTRACK: Artifact = dump(
    "netlink/conntrack.nl",
    "ctnl_conntrack",
    &CONNTRACK_DUMP,
    Text(&ctnetlink::ENTRIES_READER),
);
/// Per-CPU conntrack statistics by ctnetlink (read again when the window
/// opens).
pub const CONNTRACK_STATS: Artifact = dump(
    "netlink/conntrack_stats.nl",
    "ctnl_stats",
    &CONNTRACK_STATS_DUMP,
    Text(&ctnetlink::STATS_READER),
);
pub const EVENTS: Artifact = node("ebpf/events.jsonl", "ebpf", Text(&events::bpftrace::READER));
/// The kernel log, every record /dev/kmsg holds, as it gives them.
pub const KERNEL_LOG: Artifact = node("kmsg.txt", "kernel_log", Text(&logs::READER));
pub const JOURNAL: Artifact = node("journal.txt", "journal", Text(&logs::READER));
pub const LOG_FILES: Artifact = node("logs/", "log_files", Text(&logs::READER));
/// What capsnap read of containerd's state on disk to name pods and
/// containers with no tool: per task, the naming annotations of its OCI
/// spec, its pid and network namespace, and the tasks it skipped, why.
pub const CONTAINERD_TASKS: Artifact =
    node("runtime/containerd-tasks.json", "containerd_state", Raw);
/// The same for CRI-O's containers.
pub const CRIO_CONTAINERS: Artifact = node("runtime/crio-containers.json", "crio_state", Raw);
/// The container runtimes' listings, read before the window to name the
/// namespaces (pods and containers).
pub const CRICTL_PODS: Artifact = tool(
    Scope::Node,
    "runtime/crictl-pods.json",
    "tool:crictl pods -o json",
    &["crictl", "pods", "-o", "json"],
    Raw,
);
pub const CRICTL_PS: Artifact = tool(
    Scope::Node,
    "runtime/crictl-ps.json",
    "tool:crictl ps -a -o json",
    &["crictl", "ps", "-a", "-o", "json"],
    Raw,
);
pub const DOCKER_PS: Artifact = tool(
    Scope::Node,
    "runtime/docker-ps.jsonl",
    "tool:docker ps -a --no-trunc --format {{json .}}",
    &["docker", "ps", "-a", "--no-trunc", "--format", "{{json .}}"],
    Raw,
);
pub const EBPF_STDERR: Artifact = node("ebpf/bpftrace.stderr", "ebpf", Raw);
pub const EBPF_SCRIPT: Artifact = node("ebpf/probes.bt", "ebpf", Raw);
pub const EBPF_CLOCK: Artifact = node("ebpf/clock.json", "ebpf", Raw);
pub const EBPF_SUMMARY: Artifact = node("ebpf/summary.json", "ebpf", Raw);
/// The iptables rules of a namespace with their counters (also taken when
/// the window opens).
pub const IPTABLES_SAVE: Artifact = tool(
    Scope::Netns,
    "iptables-save.txt",
    "tool:iptables-save -c",
    &["iptables-save", "-c"],
    Text(&firewall::READER),
);
pub const IP6TABLES_SAVE: Artifact = tool(
    Scope::Netns,
    "ip6tables-save.txt",
    "tool:ip6tables-save -c",
    &["ip6tables-save", "-c"],
    Text(&firewall::READER),
);
/// The nftables ruleset of a namespace as JSON (libnftables-json(5)), with
/// rule handles and counters (also taken when the window opens). The
/// tables iptables-nft keeps are left out by the reader: iptables-save
/// lists them already.
pub const NFT_RULESET: Artifact = tool(
    Scope::Netns,
    "nft-ruleset.json",
    "tool:nft -j list ruleset",
    &["nft", "-j", "list", "ruleset"],
    Text(&firewall::nft::READER),
);
pub const MANIFEST: Artifact = node(
    "manifest.json",
    "manifest",
    Text(&super::tables::NETNS_READER),
);

/// Every artifact, grouped by the table it feeds.
pub const ARTIFACTS: &[Artifact] = &[
    PACKETS,
    netns("proc/net/tcp", "proc_net_tcp", Text(&proc_net::READER)),
    netns("proc/net/tcp6", "proc_net_tcp6", Text(&proc_net::READER)),
    netns("proc/net/udp", "proc_net_udp", Text(&proc_net::READER)),
    netns("proc/net/udp6", "proc_net_udp6", Text(&proc_net::READER)),
    netns("proc/net/raw", "proc_net_raw", Text(&proc_net::READER)),
    netns("proc/net/raw6", "proc_net_raw6", Text(&proc_net::READER)),
    INET_DIAG,
    netns("proc/net/unix", "proc_net_unix", Text(&unix::PROC_READER)),
    UNIX_DIAG,
    PROCESSES,
    FDS,
    netns(
        "proc/net/sockstat",
        "proc_net_sockstat",
        Text(&sockstat::READER),
    ),
    netns(
        "proc/net/sockstat6",
        "proc_net_sockstat6",
        Text(&sockstat::READER),
    ),
    SYSCTLS,
    netns(
        "proc/net/snmp",
        "proc_net_snmp",
        Text(&counters::SNMP_READER),
    ),
    netns(
        "proc/net/netstat",
        "proc_net_netstat",
        Text(&counters::SNMP_READER),
    ),
    netns(
        "proc/net/snmp6",
        "proc_net_snmp6",
        Text(&counters::SNMP6_READER),
    ),
    netns(
        "proc/net/stat/nf_conntrack",
        "proc_net_stat_nf_conntrack",
        Text(&counters::NF_CONNTRACK_STAT_READER),
    ),
    CONNTRACK_STATS,
    // Before ctnetlink: the `conntrack` tool's output.
    retired(tool(
        Scope::Netns,
        "conntrack-stats.txt",
        "tool:conntrack -S",
        &["conntrack", "-S"],
        Text(&counters::CONNTRACK_STATS_READER),
    )),
    netns(
        "proc/net/nf_conntrack",
        "proc_net_nf_conntrack",
        Text(&conntrack::PROC_READER),
    ),
    CONNTRACK,
    retired(tool(
        Scope::Netns,
        "conntrack.txt",
        "tool:conntrack -L -o extended",
        &["conntrack", "-L", "-o", "extended"],
        Text(&conntrack::TOOL_READER),
    )),
    EVENTS,
    hand(&events::tools::READER),
    KERNEL_LOG,
    // Before /dev/kmsg: `dmesg -x --time-format iso`.
    retired(node("dmesg.txt", "kernel_log", Text(&logs::READER))),
    JOURNAL,
    LOG_FILES,
    netns("proc/net/dev", "proc_net_dev", Text(&interfaces::READER)),
    LINKS,
    dump(
        "netlink/addr.nl",
        "rtnl_addr",
        &ADDR_DUMP,
        Text(&rtnetlink::addr::READER),
    ),
    dump(
        "netlink/route.nl",
        "rtnl_route",
        &ROUTE_DUMP,
        Text(&rtnetlink::route::READER),
    ),
    dump(
        "netlink/rule.nl",
        "rtnl_rule",
        &RULE_DUMP,
        Text(&rtnetlink::rule::READER),
    ),
    // Before rtnetlink's address dump: `ip addr`.
    retired(tool(
        Scope::Netns,
        "ip-addr.txt",
        "tool:ip -d -s addr",
        &["ip", "-d", "-s", "addr"],
        Text(&addresses::READER),
    )),
    IPTABLES_SAVE,
    IP6TABLES_SAVE,
    NFT_RULESET,
    MANIFEST,
    node(
        "manifest.json",
        "manifest",
        Text(&super::tables::COLLECTION_READER),
    ),
    // Copies taken when the window opened, read with the file of the same
    // path taken when it closed.
    at_open("window-open/proc/net/snmp", "open:proc_net_snmp"),
    at_open("window-open/proc/net/netstat", "open:proc_net_netstat"),
    at_open("window-open/proc/net/snmp6", "open:proc_net_snmp6"),
    at_open(
        "window-open/proc/net/stat/nf_conntrack",
        "open:proc_net_stat_nf_conntrack",
    ),
    at_open("window-open/proc/net/dev", "open:proc_net_dev"),
    at_open("window-open/proc/net/sockstat", "open:proc_net_sockstat"),
    at_open("window-open/proc/net/sockstat6", "open:proc_net_sockstat6"),
    dump(
        "window-open/netlink/link.nl",
        "open:rtnl_link",
        &LINK_DUMP,
        AtOpen,
    ),
    dump(
        "window-open/netlink/conntrack_stats.nl",
        "open:ctnl_stats",
        &CONNTRACK_STATS_DUMP,
        AtOpen,
    ),
    tool(
        Scope::Netns,
        "window-open/iptables-save.txt",
        "open:tool:iptables-save -c",
        &["iptables-save", "-c"],
        AtOpen,
    ),
    tool(
        Scope::Netns,
        "window-open/ip6tables-save.txt",
        "open:tool:ip6tables-save -c",
        &["ip6tables-save", "-c"],
        AtOpen,
    ),
    tool(
        Scope::Netns,
        "window-open/nft-ruleset.json",
        "open:tool:nft -j list ruleset",
        &["nft", "-j", "list", "ruleset"],
        AtOpen,
    ),
    // Raw: kept for people and tools, read by no table yet.
    netns("proc/net/packet", "proc_net_packet", Raw),
    // `ip`'s listings, before rtnetlink's dumps replaced them.
    retired(tool(
        Scope::Netns,
        "ip-link.txt",
        "tool:ip -d -s link",
        &["ip", "-d", "-s", "link"],
        Raw,
    )),
    retired(tool(
        Scope::Netns,
        "ip-route.txt",
        "tool:ip route show table all",
        &["ip", "route", "show", "table", "all"],
        Raw,
    )),
    retired(tool(
        Scope::Netns,
        "ip6-route.txt",
        "tool:ip -6 route show table all",
        &["ip", "-6", "route", "show", "table", "all"],
        Raw,
    )),
    retired(tool(
        Scope::Netns,
        "ip-rule.txt",
        "tool:ip rule",
        &["ip", "rule"],
        Raw,
    )),
    // The same ruleset as `nft list` prints it, for people: the table
    // reads the JSON (nft-ruleset.json).
    tool(
        Scope::Netns,
        "nft-ruleset.txt",
        "tool:nft list ruleset",
        &["nft", "list", "ruleset"],
        Raw,
    ),
    EBPF_STDERR,
    EBPF_SCRIPT,
    EBPF_CLOCK,
    EBPF_SUMMARY,
    CONTAINERD_TASKS,
    CRIO_CONTAINERS,
    CRICTL_PODS,
    CRICTL_PS,
    DOCKER_PS,
];

/// The artifacts of one collector source.
pub fn of_source(source: &str) -> impl Iterator<Item = &'static Artifact> {
    ARTIFACTS.iter().filter(move |a| a.source == source)
}

/// The artifacts that feed `table`.
pub fn feeding(table: &str) -> impl Iterator<Item = &'static Artifact> {
    ARTIFACTS
        .iter()
        .filter(move |a| a.tables().iter().any(|t| t.name == table))
}

/// The artifact a bundle path is, if the registry knows it.
pub fn at(path: &str) -> Option<&'static Artifact> {
    ARTIFACTS.iter().find(|a| a.matches(path))
}

/// The copies taken when the window opened ([`Parse::AtOpen`]).
pub fn at_open_copies() -> impl Iterator<Item = &'static Artifact> {
    ARTIFACTS
        .iter()
        .filter(|a| matches!(a.parse, Parse::AtOpen))
}

/// Whether the bundle path is a copy taken when the window opened: such a
/// file is read with its later copy, never alone.
pub fn is_at_open(path: &str) -> bool {
    at(path).is_some_and(|a| matches!(a.parse, Parse::AtOpen))
}

/// The bundle path of the copy taken when the window opened of the file
/// at `path` (taken when it closed), if the registry has such a copy for
/// it: `netns/<dir>/proc/net/snmp` -> `netns/<dir>/window-open/proc/net/snmp`.
pub fn at_open_path(path: &str) -> Option<String> {
    let artifact = at(path)?;
    if !at_open_copies().any(|o| {
        o.taken_at_close()
            .is_some_and(|c| std::ptr::eq(c, artifact))
    }) {
        return None;
    }
    let rel = artifact.path;
    let base = path.strip_suffix(rel)?;
    Some(format!("{base}{AT_OPEN}{rel}"))
}

/// Every reader, once, in registry order.
pub fn readers() -> &'static [&'static Reader] {
    static READERS: LazyLock<Vec<&'static Reader>> = LazyLock::new(|| {
        let mut out: Vec<&'static Reader> = Vec::new();
        for a in ARTIFACTS {
            if let Parse::Text(r) = a.parse
                && !out.iter().any(|o| std::ptr::eq(*o, r))
            {
                out.push(r);
            }
        }
        out
    });
    &READERS
}

/// Every table, once, in registry order (the order `capsnap tables` lists).
pub fn tables() -> &'static [&'static Table] {
    static TABLES: LazyLock<Vec<&'static Table>> = LazyLock::new(|| {
        let mut out: Vec<&'static Table> = Vec::new();
        for t in ARTIFACTS.iter().flat_map(Artifact::tables) {
            if !out.iter().any(|o| o.name == t.name) {
                out.push(t);
            }
        }
        out
    });
    &TABLES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_listed_in_the_design_order() {
        let names: Vec<&str> = tables().iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                "packets",
                "flows",
                "dns",
                "resets",
                "sockets",
                "inet_sockets",
                "unix_sockets",
                "processes",
                "fds",
                "sockstat",
                "sysctls",
                "net_counters",
                "conntrack",
                "events",
                "logs",
                "interfaces",
                "addresses",
                "routes",
                "routing_rules",
                "firewall_rules",
                "netns",
                "collection",
            ]
        );
    }

    #[test]
    fn every_text_artifact_is_claimed_by_its_reader_at_its_bundle_path() {
        for a in ARTIFACTS {
            let Parse::Text(reader) = a.parse else {
                continue;
            };
            if a.scope == Scope::Hand {
                continue;
            }
            let path = a.path_in(Some("pod%2Fshop%2Fweb"));
            let path = path
                .strip_suffix('/')
                .map_or(path.clone(), |f| format!("{f}/syslog"));
            assert!(
                (reader.claims)(&path, b""),
                "{path}: not claimed by {}",
                reader.what
            );
            assert_eq!(at(&path).map(|a| a.source), Some(a.source), "{path}");
        }
    }

    #[test]
    fn every_copy_at_window_open_has_its_artifact_and_source_id() {
        let mut n = 0;
        for a in at_open_copies() {
            let close = a
                .taken_at_close()
                .unwrap_or_else(|| panic!("{}: no artifact at its path without {AT_OPEN}", a.path));
            assert!(matches!(close.parse, Parse::Text(_)), "{}", a.path);
            assert_eq!(a.source, format!("{AT_OPEN_SOURCE}{}", close.source));
            assert_eq!(a.command, close.command, "{}", a.path);
            assert_eq!(
                a.netlink.map(|d| d.requests.len()),
                close.netlink.map(|d| d.requests.len()),
                "{}",
                a.path
            );
            n += 1;
        }
        assert!(n >= 8);
        let snmp = "netns/pod%2Fx/proc/net/snmp";
        assert_eq!(
            at_open_path(snmp).as_deref(),
            Some("netns/pod%2Fx/window-open/proc/net/snmp")
        );
        assert!(is_at_open("netns/pod%2Fx/window-open/proc/net/snmp"));
        assert!(!is_at_open(snmp));
        assert_eq!(at_open_path("netns/host/proc/net/tcp"), None);
        assert_eq!(at_open_path("processes.jsonl"), None);
    }

    #[test]
    fn paths_are_unique_per_reader_and_tool_sources_name_their_command() {
        for (i, a) in ARTIFACTS.iter().enumerate() {
            for b in &ARTIFACTS[i + 1..] {
                let same_reader = match (a.parse, b.parse) {
                    (Parse::Text(x), Parse::Text(y)) => std::ptr::eq(x, y),
                    _ => true,
                };
                assert!(
                    a.scope == Scope::Hand
                        || a.path != b.path
                        || a.scope != b.scope
                        || !same_reader,
                    "{} twice",
                    a.path
                );
            }
            if let Some(argv) = a.command {
                let source = a.source.strip_prefix(AT_OPEN_SOURCE).unwrap_or(a.source);
                assert_eq!(source, format!("tool:{}", argv.join(" ")));
            }
        }
        assert!(PACKETS.matches("netns/pod%2Fx/packets.pcapng"));
        assert!(!PACKETS.matches("netns/packets.pcapng"));
        assert!(LOG_FILES.matches("logs/syslog"));
        assert!(!LOG_FILES.matches("logs/a/b"));
        assert_eq!(
            of_source("processes").map(|a| a.path).collect::<Vec<_>>(),
            ["processes.jsonl", "fds.tsv"]
        );
    }
}
