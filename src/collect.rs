//! `capsnap collect` and `capsnap watch`: their arguments and their report
//! on the terminal. In every build, the collector build
//! (`--no-default-features`) included.

use crate::{parse_bytes, parse_duration};
use anyhow::{Result, bail};
use clap::Args;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

/// What `collect` and `watch` both take: where to look, how much of each
/// packet to keep, eBPF, tool time limits, redaction.
#[derive(Args)]
pub struct NodeArgs {
    /// Namespaces to cover besides the host: all (default), a pid, a container id,
    /// a pod UID, an `ip netns` name, or a namespace file such as /var/run/netns/NAME.
    #[arg(long, value_name = "SELECTOR")]
    netns: Vec<String>,
    /// Interfaces to capture on (default: all, in every selected namespace).
    #[arg(short, long, value_name = "IF")]
    interface: Vec<String>,
    /// Bytes kept of each packet (headers by default), except DNS, kept whole.
    #[arg(
        long,
        default_value_t = 128,
        long_help = "Bytes kept of each packet (headers by default; 0 keeps all). DNS (UDP and TCP port 53) \
        is kept whole whatever this says, so that the dns table has every question and answer."
    )]
    snaplen: u32,
    /// Time limit of each tool run (iptables-save, conntrack, ...).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    source_timeout: Duration,
    /// Do not run the eBPF probes.
    #[arg(long)]
    no_ebpf: bool,
    /// Keep command lines as they are (secrets are masked by default).
    #[arg(long)]
    no_redact: bool,
    /// containerd's state directory, where pods and containers are named from (its --state).
    #[arg(long, value_name = "DIR", default_value_os_t = capture::StateRoots::default().containerd)]
    containerd_state: PathBuf,
    /// CRI-O's storage run root, where pods and containers are named from.
    #[arg(long, value_name = "DIR", default_value_os_t = capture::StateRoots::default().crio)]
    crio_state: PathBuf,
}

impl NodeArgs {
    /// The collector's options with these set.
    fn options(self) -> capture::Options {
        capture::Options {
            selectors: self
                .netns
                .iter()
                .map(|s| capture::Selector::parse(s))
                .collect(),
            selector_args: self.netns,
            ebpf: !self.no_ebpf,
            interfaces: self.interface,
            snaplen: self.snaplen,
            source_timeout: self.source_timeout,
            redact: !self.no_redact,
            runtime_state: capture::StateRoots {
                containerd: self.containerd_state,
                crio: self.crio_state,
            },
            ..capture::Options::default()
        }
    }
}

#[derive(Args)]
pub struct CollectArgs {
    /// Length of the packet capture and eBPF window (e.g. 5s, 2m, 500ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Bundle path (default: capsnap-<host>-<UTC>.capsnap in the current
    /// directory); `-` streams it to standard output. An existing path must
    /// be a regular file of yours: devices, links and directories are refused.
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
    #[command(flatten)]
    node: NodeArgs,
    /// Stop capturing at a capture point after this many packets (0: no bound).
    #[arg(long, default_value_t = 1_000_000)]
    max_packets: u64,
    /// Cap on captured bytes across all capture points (e.g. 256M, 1G).
    #[arg(long, default_value = "256M", value_parser = parse_bytes)]
    max_bytes: u64,
    /// Do not capture packets.
    #[arg(long)]
    no_packets: bool,
}

#[derive(Args)]
pub struct WatchArgs {
    /// Directory the bundles are written into (it must exist).
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// Kept before a trigger: the bundle starts this long before it.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    keep: Duration,
    /// Captured after a trigger, before the node's snapshot is taken.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    after: Duration,
    /// How long to watch.
    #[arg(long = "for", default_value = "24h", value_parser = parse_duration)]
    run_for: Duration,
    /// Bundles written at most.
    #[arg(long, default_value_t = 10)]
    max_bundles: u32,
    /// After a bundle's trigger, other triggers are ignored this long.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    cooldown: Duration,
    /// Disk for the ring of packets and events, across capture points (in DIR's file system;
    /// memory holds 1 MiB of it).
    #[arg(long, default_value = "256M", value_parser = parse_bytes)]
    ring: u64,
    /// Bytes of bundles written at most; no bundle is started past it.
    #[arg(long, default_value = "2G", value_parser = parse_bytes)]
    max_total: u64,
    /// Triggers to fire on (repeatable; default all): host-only-rst, connect-timeout,
    /// unix-socket-replaced, log, counter, signal.
    #[arg(long = "trigger", value_name = "NAME", value_parser = parse_trigger)]
    triggers: Vec<capture::TriggerKind>,
    /// A binary name whose exec fires unix-socket-replaced (repeatable), e.g. nginx.
    #[arg(long, value_name = "NAME")]
    watch_exec: Vec<String>,
    #[command(flatten)]
    node: NodeArgs,
}

fn parse_trigger(s: &str) -> Result<capture::TriggerKind, String> {
    capture::TriggerKind::parse(s).ok_or_else(|| {
        let names: Vec<&str> = capture::TriggerKind::ALL.iter().map(|k| k.name()).collect();
        format!("{s:?} is not a trigger; one of {}", names.join(", "))
    })
}

pub fn collect(a: CollectArgs) -> Result<()> {
    let opts = capture::Options {
        duration: a.duration,
        output: a.output,
        packets: !a.no_packets,
        max_packets: a.max_packets,
        max_bytes: a.max_bytes,
        ..a.node.options()
    };
    let stop = capture::install_signal_handlers();
    let verbose = std::io::stderr().is_terminal() || std::env::var_os("CAPSNAP_PROGRESS").is_some();
    let outcome = capture::collect(&opts, stop, &|step| {
        if verbose {
            say!("capsnap: {step}");
        }
    })?;
    let not_ok: Vec<_> = outcome
        .sources
        .iter()
        .filter(|s| s.status != capture::Status::Ok && s.status != capture::Status::Skipped)
        .collect();
    for s in &not_ok {
        let ns = s
            .netns
            .as_deref()
            .map(|n| format!(" [{n}]"))
            .unwrap_or_default();
        say!(
            "capsnap: {:?}: {}{ns}: {}",
            s.status,
            s.source,
            s.reason.as_deref().unwrap_or("")
        );
    }
    let to_stdout = outcome.bundle.as_os_str() == "-";
    say!(
        "capsnap: wrote {} ({} bytes, {} sources, {} not ok)",
        if to_stdout {
            "the bundle to standard output".to_owned()
        } else {
            outcome.bundle.display().to_string()
        },
        outcome.size,
        outcome.sources.len(),
        not_ok.len()
    );
    if !to_stdout {
        use std::io::Write as _;
        // The bundle is written: a stdout that is gone is no failure.
        let _ = writeln!(std::io::stdout(), "{}", outcome.bundle.display());
    }
    Ok(())
}

pub fn watch(a: WatchArgs) -> Result<()> {
    if !a.output.is_dir() {
        bail!(
            "watch -o {}: not a directory (create it first)",
            a.output.display()
        );
    }
    if a.ring < 4 << 20 {
        bail!("--ring {}: the ring needs at least 4M", a.ring);
    }
    if a.keep.is_zero() {
        bail!("--keep must be more than 0");
    }
    let opts = capture::WatchOptions {
        dir: a.output,
        keep: a.keep,
        after: a.after,
        run_for: a.run_for,
        max_bundles: a.max_bundles,
        cooldown: a.cooldown,
        ring_bytes: usize::try_from(a.ring).unwrap_or(usize::MAX),
        max_total_bytes: a.max_total,
        triggers: a.triggers,
        watch_exec: a.watch_exec,
        collect: a.node.options(),
    };
    let stop = capture::install_signal_handlers();
    let verbose = std::io::stderr().is_terminal() || std::env::var_os("CAPSNAP_PROGRESS").is_some();
    let summary = capture::watch(
        &opts,
        stop,
        &|step| {
            if verbose {
                say!("capsnap: {step}");
            }
        },
        &mut |bundle| {
            // One line per bundle, as soon as it is there.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", bundle.display());
            let _ = out.flush();
        },
    )?;
    say!(
        "capsnap: watch ended: {} bundles written, {} triggers without a bundle",
        summary.bundles.len(),
        summary.ignored
    );
    Ok(())
}
