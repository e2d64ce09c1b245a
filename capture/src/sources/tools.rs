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

#[cfg(test)]
mod tests {
    use crate::{Options, Selector, collect};
    use formats::bundle::reader::{Sink, read};
    use formats::bundle::{IPTABLES_SAVE, NFT_RULESET, Parse, Status, at_open_path, of_source};
    use std::collections::HashMap;
    use std::io::Write;
    use std::process::Command;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    /// The members of a bundle, kept in memory.
    #[derive(Default)]
    struct Files(HashMap<String, Vec<u8>>);

    impl Sink for Files {
        fn manifest(&mut self, _: &[u8], _: u64) -> Result<(), String> {
            Ok(())
        }
        fn dir(&mut self, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn file(&mut self, name: &str, _: u64) -> Result<Box<dyn Write + '_>, String> {
            Ok(Box::new(self.0.entry(name.to_owned()).or_default()))
        }
    }

    fn run(argv: &[&str]) -> Result<(), String> {
        let out = Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .map_err(|e| format!("{}: {e}", argv[0]))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{argv:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// A namespace removed when the test ends, however it ends.
    struct Netns(String);

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = run(&["ip", "netns", "del", &self.0]);
        }
    }

    const RULES: &str = "table inet nftlab {
        chain output {
            type filter hook output priority filter; policy accept;
            ip daddr 10.77.0.2 udp dport 9 counter drop
            ip daddr 10.77.0.3 accept
        }
    }";

    /// Issue 9: on nodes whose rules nftables keeps natively (kube-proxy's
    /// nftables mode, firewalld, a hand-written `table inet filter`),
    /// firewall_rules missed every rule. A namespace with an nft table and
    /// an iptables-nft rule is collected; datagrams dropped by the nft rule
    /// inside the window show as its delta, and iptables-nft's own table
    /// comes once, from iptables-save.
    #[test]
    fn nft_rules_are_collected_with_counts_at_both_ends_lab() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return eprintln!("SKIPPED: needs root (ip netns, nft)");
        }
        if run(&["nft", "--version"]).is_err() {
            return eprintln!("SKIPPED: nft is not installed (apt-get install nftables)");
        }
        let name = format!("nftlab{}", std::process::id());
        let _ = run(&["ip", "netns", "del", &name]);
        if let Err(why) = run(&["ip", "netns", "add", &name]) {
            return eprintln!("SKIPPED: cannot make a namespace: {why}");
        }
        let ns = Netns(name.clone());
        let exec = |argv: &[&str]| {
            let mut all = vec!["ip", "netns", "exec", &ns.0];
            all.extend_from_slice(argv);
            run(&all)
        };
        // A veth pair (the dummy driver is not in every kernel): the
        // output hook counts a datagram before any neighbour is resolved.
        exec(&[
            "ip", "link", "add", "nftlab0", "type", "veth", "peer", "name", "nftlab1",
        ])
        .unwrap();
        exec(&["ip", "link", "set", "nftlab1", "up"]).unwrap();
        exec(&["ip", "addr", "add", "10.77.0.1/24", "dev", "nftlab0"]).unwrap();
        exec(&["ip", "link", "set", "nftlab0", "up"]).unwrap();
        exec(&["nft", RULES]).unwrap();
        let iptables = exec(&["iptables", "-A", "OUTPUT", "-d", "10.77.0.4", "-j", "DROP"]).is_ok();

        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("b.capsnap");
        let opts = Options {
            duration: Duration::from_secs(2),
            output: Some(bundle.clone()),
            selectors: vec![Selector::Name(name.clone())],
            selector_args: vec![name.clone()],
            packets: false,
            ebpf: false,
            ..Options::default()
        };
        let stop = AtomicBool::new(false);
        // Five datagrams into the drop rule once the window is open.
        let progress = |line: &str| {
            if line.starts_with("window open") {
                exec(&[
                    "bash",
                    "-c",
                    "for i in 1 2 3 4 5; do echo x >/dev/udp/10.77.0.2/9; done 2>/dev/null; true",
                ])
                .unwrap();
            }
        };
        collect(&opts, &stop, &progress).unwrap();

        let mut files = Files::default();
        let manifest = read(std::fs::File::open(&bundle).unwrap(), &mut files).unwrap();
        let ours = manifest
            .namespaces
            .iter()
            .find(|n| n.name.as_deref() == Some(name.as_str()) || n.label == name)
            .unwrap_or_else(|| panic!("{name} not in {:?}", manifest.namespaces));
        for source in ["tool:nft -j list ruleset", "open:tool:nft -j list ruleset"] {
            let report = manifest
                .sources
                .iter()
                .find(|s| s.source == source && s.netns.as_deref() == Some(ours.label.as_str()))
                .unwrap_or_else(|| panic!("no report of {source}"));
            assert_eq!(report.status, Status::Ok, "{source}: {:?}", report.reason);
        }
        assert!(of_source("tool:nft -j list ruleset").count() == 1);
        let path = NFT_RULESET.path_in(Some(&ours.dir));
        let open = at_open_path(&path).unwrap();
        let dir_of = path.rsplit_once('/').unwrap().0.to_owned();
        let beside_files = files.0.clone();
        let beside: formats::Beside = std::sync::Arc::new(move |rel: &str| {
            beside_files.get(&format!("{dir_of}/{rel}")).cloned()
        });
        let Parse::Text(reader) = NFT_RULESET.parse else {
            unreachable!("the nft ruleset is read as text")
        };
        let origin = formats::Origin::in_bundle("b", &std::sync::Arc::new(manifest.clone()), &path);
        let (b, skipped, _) = formats::read_with(
            reader,
            &files.0[&path],
            files.0.get(&open).map(Vec::as_slice),
            Some(beside),
            origin,
        )
        .unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        let col = |name: &str| {
            let c = b.column_by_name(name).unwrap();
            (0..b.num_rows())
                .map(|i| formats::testing::value_string(c.as_ref(), i))
                .collect::<Vec<_>>()
        };
        let (table, rule, target, delta, packets_open) = (
            col("table"),
            col("rule"),
            col("target"),
            col("packets_delta"),
            col("packets_open"),
        );
        let drop = (0..b.num_rows())
            .find(|&i| rule[i].as_deref() == Some("ip daddr 10.77.0.2 udp dport 9 counter drop"))
            .unwrap_or_else(|| panic!("no drop rule in {rule:?}"));
        assert_eq!(table[drop].as_deref(), Some("nftlab"));
        assert_eq!(target[drop].as_deref(), Some("DROP"));
        assert_eq!(packets_open[drop].as_deref(), Some("0"));
        assert_eq!(delta[drop].as_deref(), Some("5"));
        // No counter statement: no count at all.
        let accept = rule
            .iter()
            .position(|r| r.as_deref() == Some("ip daddr 10.77.0.3 accept"))
            .unwrap();
        assert_eq!(delta[accept], None);
        // iptables-nft's `ip filter` is iptables-save's to list.
        if iptables {
            assert!(
                files
                    .0
                    .contains_key(&IPTABLES_SAVE.path_in(Some(&ours.dir)))
            );
            assert!(
                !table.iter().any(|t| t.as_deref() == Some("filter")),
                "{table:?}"
            );
        }
    }
}
