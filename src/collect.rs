//! `capsnap collect`: its arguments and its report on the terminal. In
//! every build, the collector build (`--no-default-features`) included.

use crate::{parse_bytes, parse_duration};
use anyhow::Result;
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Namespaces to cover besides the host: all (default), a pid, a container id,
    /// a pod UID, an `ip netns` name, or a namespace file such as /var/run/netns/NAME.
    #[arg(long, value_name = "SELECTOR")]
    netns: Vec<String>,
    /// Interfaces to capture on (default: all, in every selected namespace).
    #[arg(short, long, value_name = "IF")]
    interface: Vec<String>,
    /// Bytes kept of each packet (headers by default).
    #[arg(long, default_value_t = 128)]
    snaplen: u32,
    /// Stop capturing at a capture point after this many packets.
    #[arg(long, default_value_t = 1_000_000)]
    max_packets: u64,
    /// Cap on captured bytes across all capture points (e.g. 256M, 1G).
    #[arg(long, default_value = "256M", value_parser = parse_bytes)]
    max_bytes: u64,
    /// Time limit of each tool run (iptables-save, conntrack, ...).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    source_timeout: Duration,
    /// Do not capture packets.
    #[arg(long)]
    no_packets: bool,
    /// Do not run the eBPF probes.
    #[arg(long)]
    no_ebpf: bool,
    /// Keep command lines as they are (secrets are masked by default).
    #[arg(long)]
    no_redact: bool,
}

pub fn collect(a: CollectArgs) -> Result<()> {
    let opts = capture::Options {
        duration: a.duration,
        output: a.output,
        selectors: a
            .netns
            .iter()
            .map(|s| capture::Selector::parse(s))
            .collect(),
        selector_args: a.netns,
        packets: !a.no_packets,
        ebpf: !a.no_ebpf,
        interfaces: a.interface,
        snaplen: a.snaplen,
        max_packets: a.max_packets,
        max_bytes: a.max_bytes,
        source_timeout: a.source_timeout,
        redact: !a.no_redact,
        ..capture::Options::default()
    };
    let stop = capture::install_signal_handlers();
    let verbose = std::io::stderr().is_terminal() || std::env::var_os("CAPSNAP_PROGRESS").is_some();
    let outcome = capture::collect(&opts, stop, &|step| {
        if verbose {
            eprintln!("capsnap: {step}");
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
        eprintln!(
            "capsnap: {:?}: {}{ns}: {}",
            s.status,
            s.source,
            s.reason.as_deref().unwrap_or("")
        );
    }
    let to_stdout = outcome.bundle.as_os_str() == "-";
    eprintln!(
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
        println!("{}", outcome.bundle.display());
    }
    Ok(())
}
