//! The `capsnap` command: parses arguments, hands them to the library
//! crates, reports errors as `capsnap: ...` with exit code 2.
//!
//! The collector build (`cargo build --release --no-default-features`) has
//! `collect` and `watch` only: the subcommands that query, and DataFusion with them,
//! come with the default feature `analyze`.

/// A line on stderr, as `eprintln!` writes it, except that a stderr that
/// is gone (`capsnap collect 2>&1 | head -1`, once head has exited) drops
/// the line instead of panicking: a collection must not be lost to its
/// progress messages.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

#[cfg(feature = "analyze")]
mod analysis;
mod collect;

#[cfg(feature = "analyze")]
use analysis::{DetectArgs, ExportArgs, QueryArgs, QueryConfig, ReportArgs};
use anyhow::Result;
use clap::{Parser, Subcommand};
use collect::{CollectArgs, WatchArgs};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "capsnap",
    version,
    about = "Offline capture and post-mortem analyzer for Linux and Kubernetes nodes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Snapshot this node into one bundle (packets, sockets, conntrack, eBPF events...).
    #[command(
        long_about = "Snapshot this node into one bundle file for a network or socket post-mortem.\n\n\
        Run as root on the sick node; everything is bounded in time and size, and a source that\n\
        fails is recorded in the bundle's manifest instead of stopping the run:\n  \
        sudo capsnap collect --duration 60s\n  \
        sudo capsnap collect --netns /var/run/netns/web --no-ebpf -o /tmp/web.capsnap\n\n\
        Ctrl-C ends the capture window early and still writes a valid bundle."
    )]
    Collect(CollectArgs),
    /// Keep the last minutes of packets and eBPF events; write a bundle when a trigger fires.
    #[command(
        long_about = "Leave capsnap running on a node with an intermittent fault: it keeps the last --keep of\n\
        packets (every capture point) and eBPF events in a bounded ring, reads cheap counters every\n\
        second, and when a trigger fires writes an ordinary bundle into DIR (the --keep before the\n\
        trigger, the --after following it, then the node's snapshot), printing its path on stdout:\n  \
        sudo capsnap watch -o /var/tmp/capsnap --keep 60s --for 24h\n  \
        sudo capsnap watch -o /var/tmp/capsnap --trigger host-only-rst --trigger signal\n\n\
        Triggers (all on by default): host-only-rst (the node RSTs a NATed flow), connect-timeout\n\
        (SYN_SENT -> CLOSE after SYN retransmits), unix-socket-replaced (a listening unix socket's\n\
        path re-bound while it listens, or an exec of a --watch-exec name), log (\"TCP: out of\n\
        memory\", \"table full\", \"time wait bucket table overflow\", \"PLEG is not healthy\"), counter\n\
        (ListenOverflows, TCPTimeWaitOverflow, IPReversePathFilter, conntrack drop/insert_failed\n\
        rise), signal (kill -USR1). The manifest records the trigger and its evidence. Runs until\n\
        --for ends or SIGINT/SIGTERM; probes and work files never outlive it."
    )]
    Watch(WatchArgs),
    #[cfg(feature = "analyze")]
    /// Run SQL over bundles, directories and capture files.
    #[command(
        long_about = "Run SQL over bundles, directories of artifacts and capture files.\n\n\
        Inputs are .capsnap bundles (or their unpacked directories), directories of /proc files and\n\
        tool output taken by hand, single such files, globs, and pcap/pcapng files, each capture\n\
        optionally labelled with its capture point:\n  \
        capsnap query x.capsnap \"select pid, comm, socket_fd_count from processes order by 3 desc limit 5\"\n  \
        capsnap query 'bundles/*.capsnap' \"select host, protocol, inuse, alloc from sockstat\"\n  \
        capsnap query host=node.pcap pod/web=web.pcapng \"select capture, count(*) from packets where rst group by capture\"\n\n\
        `capsnap tables` lists the tables. Without SQL (and without -f), an interactive prompt opens;\n\
        SQL piped on stdin is run as is."
    )]
    Query(QueryArgs),
    #[cfg(feature = "analyze")]
    /// Run the canned detections: name the fault and show the rows that prove it.
    #[command(
        long_about = "Run the canned detections (queries/*.sql) over bundles, directories or captures.\n\n\
        Prints each finding with its evidence rows, why it matters and what to do; a detection whose\n\
        inputs are missing says \"cannot tell\" instead of giving an all-clear.\n  \
        capsnap detect capsnap-node1-20261121T101500Z.capsnap\n  \
        capsnap detect host=node.pcap pod/web=web.pcap --format json\n\n\
        Exit code: 0 nothing found, 1 something found, 2 error."
    )]
    Detect(DetectArgs),
    #[cfg(feature = "analyze")]
    /// Write every table of the inputs into one Parquet dataset (hive-style, by host and date).
    #[command(
        long_about = "Write every table of every input (packets, flows and findings too) into one Parquet dataset:\n  \
        DIR/<table>/host=<host>/date=<YYYY-MM-DD>/<bundle>.parquet, and DIR/_capsnap/ with the dataset's\n  \
        layout version and one record per bundle exported.\n\n\
        Exporting a bundle again replaces its files; many exports add to one dataset. DataFusion, DuckDB\n\
        and Spark read it as it is; capsnap query/detect read it with the bundles' own tables, pruning\n\
        partitions on host and date, here or on a Ballista cluster (--engine ballista://HOST:PORT):\n  \
        capsnap export 'bundles/*.capsnap' --to fleet/\n  \
        capsnap query fleet/ \"select host, count(*) from sockets where state = 'TIME_WAIT' group by host\"\n  \
        capsnap detect fleet/ --engine ballista://localhost:50050"
    )]
    Export(ExportArgs),
    #[cfg(feature = "analyze")]
    /// Write one page for the ticket: findings, evidence, timeline, namespaces, flows.
    #[command(
        long_about = "Write one page for the people who read the ticket: what was collected, the findings\n\
        worst first with their evidence and what to do, a timeline of the window per capture point,\n\
        each namespace, a ladder diagram of every evidence flow, and the counters.\n\n\
        HTML is one self-contained file (no network, opens offline and as a mail attachment);\n\
        markdown is for pasting into the ticket:\n  \
        capsnap report capsnap-node1-20261121T101500Z.capsnap -o report.html\n  \
        capsnap report host=node.pcap pod/web=web.pcap --format markdown"
    )]
    Report(ReportArgs),
    #[cfg(feature = "analyze")]
    /// List the tables with their columns, types and meaning.
    #[command(
        long_about = "List the tables with their columns, types and meaning.\n\n\
        With inputs, also tells what each input holds:\n  capsnap tables node.pcap"
    )]
    Tables {
        /// Inputs to describe ([LABEL=]FILE).
        inputs: Vec<String>,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 5s, 2m or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unit must be ms, s, m or h")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 256M or 1G"))?;
    let mult = match unit
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(format!("{s:?}: unit must be K, M or G")),
    };
    Ok(n * mult)
}

/// Whether detect found something (exit code 1).
struct Found(bool);

fn run(cli: Cli) -> Result<Found> {
    match cli.command {
        Command::Collect(args) => collect::collect(args).map(|()| Found(false)),
        Command::Watch(args) => collect::watch(args).map(|()| Found(false)),
        #[cfg(feature = "analyze")]
        Command::Query(args) => {
            analysis::query(QueryConfig::from_args(args)?).map(|()| Found(false))
        }
        #[cfg(feature = "analyze")]
        Command::Detect(args) => analysis::detect(args),
        #[cfg(feature = "analyze")]
        Command::Export(args) => analysis::export(args).map(|()| Found(false)),
        #[cfg(feature = "analyze")]
        Command::Report(args) => analysis::report(args).map(|()| Found(false)),
        #[cfg(feature = "analyze")]
        Command::Tables { inputs } => analysis::tables(&inputs).map(|()| Found(false)),
    }
}

/// Stack of the thread everything runs on: SQL is planned on the thread
/// that calls block_on (see `analysis::SQL_STACK`).
#[cfg(feature = "analyze")]
const MAIN_STACK: usize = analysis::SQL_STACK;
#[cfg(not(feature = "analyze"))]
const MAIN_STACK: usize = 8 << 20;

/// A reader of standard output that went away (`| head -1`) ends the run
/// quietly, whatever error it surfaced as.
fn broken_pipe(e: &anyhow::Error) -> bool {
    #[cfg(feature = "analyze")]
    if analysis::broken_pipe(e) {
        return true;
    }
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ran = std::thread::Builder::new()
        .name("capsnap".into())
        .stack_size(MAIN_STACK)
        .spawn(move || run(cli))
        .map_err(anyhow::Error::from)
        .and_then(|h| {
            h.join().unwrap_or_else(|_| {
                Err(anyhow::anyhow!(
                    "internal error (a panic): please report it"
                ))
            })
        });
    match ran {
        Ok(Found(false)) => ExitCode::SUCCESS,
        Ok(Found(true)) => ExitCode::from(1),
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            say!("capsnap: {e:#}");
            ExitCode::from(2)
        }
    }
}
