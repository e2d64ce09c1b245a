//! The `capsnap` command: parses arguments, hands them to the library
//! crates, reports errors as `capsnap: ...` with exit code 2.

use analyze::{Engine, Format, InputSpec, Workspace};
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
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

#[derive(Args)]
struct QueryArgs {
    /// Inputs (bundles, directories, globs, [LABEL=]FILE...), then the SQL to run.
    #[arg(required = true, value_name = "[LABEL=]FILE... SQL")]
    args: Vec<String>,
    /// Read the SQL from this file instead of the last argument.
    #[arg(short = 'f', long = "file", value_name = "SQL_FILE")]
    sql_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Write the result to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Where the SQL runs: local, or ballista://HOST:PORT (over an exported dataset).
    #[arg(long, value_name = "ENGINE", default_value = "local", value_parser = Engine::parse)]
    engine: Engine,
}

#[derive(Args)]
struct ExportArgs {
    /// Inputs: bundles, directories, globs, [LABEL=]capture files.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<String>,
    /// The dataset folder (created if missing; exports add to it).
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
}

#[derive(Args)]
struct DetectArgs {
    /// Inputs: bundles, directories, globs, [LABEL=]capture files.
    #[arg(required_unless_present = "list", value_name = "INPUT")]
    inputs: Vec<String>,
    /// Output: table (a readable list), json or ndjson (one object per finding).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Run only these detections (by id; repeatable).
    #[arg(long = "only", value_name = "ID")]
    only: Vec<String>,
    /// List the detections and exit.
    #[arg(long)]
    list: bool,
    /// Where the detections run: local, or ballista://HOST:PORT (over an exported dataset).
    #[arg(long, value_name = "ENGINE", default_value = "local", value_parser = Engine::parse)]
    engine: Engine,
}

#[derive(Args)]
struct CollectArgs {
    /// Length of the packet capture and eBPF window (e.g. 5s, 2m, 500ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Bundle path (default: capsnap-<host>-<UTC>.capsnap in the current directory).
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

fn collect(a: CollectArgs) -> Result<()> {
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
    eprintln!(
        "capsnap: wrote {} ({} bytes, {} sources, {} not ok)",
        outcome.bundle.display(),
        outcome.size,
        outcome.sources.len(),
        not_ok.len()
    );
    println!("{}", outcome.bundle.display());
    Ok(())
}

/// What `query` will do, validated before any work starts.
struct QueryConfig {
    inputs: Vec<InputSpec>,
    sql: Option<String>,
    format: Format,
    output: Option<PathBuf>,
    engine: Engine,
}

impl QueryConfig {
    fn from_args(a: QueryArgs) -> Result<QueryConfig> {
        let format = a.format;
        let mut args = a.args;
        let sql = match a.sql_file {
            Some(f) => Some(
                std::fs::read_to_string(&f)
                    .with_context(|| format!("reading SQL file {}", f.display()))?,
            ),
            None if args.last().is_some_and(|l| !InputSpec::looks_like_input(l))
                && args.len() > 1 =>
            {
                args.pop()
            }
            None => None,
        };
        let inputs: Vec<InputSpec> = args.iter().map(|a| InputSpec::parse(a)).collect();
        for (arg, input) in args.iter().zip(&inputs) {
            let glob = input.path.to_string_lossy().contains(['*', '?', '[']);
            if !input.path.exists() && !glob {
                bail!(
                    "input {arg}: {} does not exist (inputs come first, then the SQL in quotes)",
                    input.path.display()
                );
            }
        }
        Ok(QueryConfig {
            inputs,
            sql,
            format,
            output: a.output,
            engine: a.engine,
        })
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Prints the damage found in the inputs. A file is read as a query first
/// needs it, so this comes after the answer (and reads what no query did).
fn warn(ws: &Workspace) -> Result<()> {
    for w in ws.warnings()? {
        eprintln!("capsnap: warning: {w}");
    }
    Ok(())
}

fn query(config: QueryConfig) -> Result<()> {
    let mut out: Box<dyn Write + Send> = match &config.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => {
            if config.format.is_binary() && std::io::stdout().is_terminal() {
                bail!(analyze::Error::BinaryToTerminal);
            }
            Box::new(std::io::BufWriter::with_capacity(
                1 << 16,
                std::io::stdout(),
            ))
        }
    };
    let rt = runtime()?;
    rt.block_on(async {
        let ws = Workspace::open_on(&config.inputs, &config.engine)?;
        match &config.sql {
            Some(sql) => {
                ws.run(sql, config.format, &mut *out).await?;
                warn(&ws)?;
            }
            None => {
                warn(&ws)?;
                analyze::interactive(&ws, config.format, &mut *out).await?
            }
        }
        anyhow::Ok(())
    })
}

/// Whether detect found something (exit code 1).
struct Found(bool);

fn detect(a: DetectArgs) -> Result<Found> {
    let mut out = std::io::stdout().lock();
    if a.list {
        for d in analyze::DETECTIONS.iter() {
            writeln!(out, "{:<24} {:<7} {}", d.id, d.severity.name(), d.title)?;
        }
        return Ok(Found(false));
    }
    for id in &a.only {
        if !analyze::DETECTIONS.iter().any(|d| &d.id == id) {
            bail!("--only {id}: no such detection (capsnap detect --list shows them)");
        }
    }
    let format = a.format;
    if !matches!(format, Format::Table | Format::Json | Format::Ndjson) {
        bail!("detect --format {format}: findings are written as table, json or ndjson");
    }
    let inputs: Vec<InputSpec> = a.inputs.iter().map(|a| InputSpec::parse(a)).collect();
    let rt = runtime()?;
    let reports = rt.block_on(async {
        let ws = Workspace::open_on(&inputs, &a.engine)?;
        let reports = ws.detect(&a.only).await?;
        warn(&ws)?;
        anyhow::Ok(reports)
    })?;
    Ok(Found(analyze::write_reports(&reports, format, &mut out)?))
}

fn export(a: ExportArgs) -> Result<()> {
    let inputs: Vec<InputSpec> = a.inputs.iter().map(|a| InputSpec::parse(a)).collect();
    let started = std::time::Instant::now();
    let rt = runtime()?;
    let verbose = std::io::stderr().is_terminal() || std::env::var_os("CAPSNAP_PROGRESS").is_some();
    let summary = rt.block_on(analyze::fleet::export(&inputs, &a.to, &mut |b| {
        if verbose {
            let rows: u64 = b.rows.values().sum();
            eprintln!("capsnap: exported {} ({}, {}): {rows} rows", b.bundle, b.host.as_deref().unwrap_or("no host"), b.date);
        }
    }))?;
    for w in &summary.warnings {
        eprintln!("capsnap: warning: {w}");
    }
    for b in &summary.bundles {
        for w in &b.warnings {
            eprintln!("capsnap: warning: {w}");
        }
    }
    eprintln!(
        "capsnap: exported {} bundle(s) into {}: {} files, {} bytes, in {:.1} s",
        summary.bundles.len(),
        a.to.display(),
        summary.files,
        summary.bytes,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run(cli: Cli) -> Result<Found> {
    match cli.command {
        Command::Collect(args) => collect(args).map(|()| Found(false)),
        Command::Query(args) => query(QueryConfig::from_args(args)?).map(|()| Found(false)),
        Command::Detect(args) => detect(args),
        Command::Export(args) => export(args).map(|()| Found(false)),
        Command::Tables { inputs } => {
            let mut out = std::io::stdout().lock();
            if inputs.is_empty() {
                analyze::describe_tables(&mut out)?;
            } else {
                let inputs: Vec<InputSpec> = inputs.iter().map(|a| InputSpec::parse(a)).collect();
                let ws = Workspace::open(&inputs)?;
                warn(&ws)?;
                ws.describe(&mut out)?;
            }
            Ok(Found(false))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Found(false)) => ExitCode::SUCCESS,
        Ok(Found(true)) => ExitCode::from(1),
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<analyze::Error>()
                    .is_some_and(analyze::Error::is_broken_pipe)
                    || c.downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("capsnap: {e:#}");
            ExitCode::from(2)
        }
    }
}
