//! The `capsnap` command: parses arguments, hands them to the library
//! crates, reports errors as `capsnap: ...` with exit code 2.

use analyze::{Engine, Format, InputSpec, ReportFormat, Workspace};
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
    #[command(flatten)]
    memory: MemoryArgs,
}

#[derive(Args)]
struct MemoryArgs {
    /// Memory the query may use (sorts, joins and aggregates spill to disk
    /// past it; what cannot fails with exit 2), e.g. 512M, 4G.
    #[arg(long, default_value = "512M", value_parser = parse_bytes, value_name = "SIZE")]
    memory_limit: u64,
}

#[derive(Args)]
struct ExportArgs {
    /// Inputs: bundles, directories, globs, [LABEL=]capture files.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<String>,
    /// The dataset folder (created if missing; exports add to it).
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    #[command(flatten)]
    memory: MemoryArgs,
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
    #[command(flatten)]
    memory: MemoryArgs,
}

#[derive(Args)]
struct ReportArgs {
    /// Inputs: bundles, directories, globs, [LABEL=]capture files.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<String>,
    /// Page format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    format: ReportFormat,
    /// Write the page to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    memory: MemoryArgs,
}

#[derive(Args)]
struct CollectArgs {
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

/// What `query` will do, validated before any work starts.
struct QueryConfig {
    inputs: Vec<InputSpec>,
    sql: Option<String>,
    format: Format,
    output: Option<PathBuf>,
    engine: Engine,
    memory_limit: usize,
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
            check_input(arg, input)?;
        }
        Ok(QueryConfig {
            inputs,
            sql,
            format,
            output: a.output,
            engine: a.engine,
            memory_limit: usize::try_from(a.memory.memory_limit).unwrap_or(usize::MAX),
        })
    }
}

/// An input that is not there says why: missing, or a link that leads
/// nowhere (a loop, a dangling target), or unreadable.
fn check_input(arg: &str, input: &InputSpec) -> Result<()> {
    let glob = input.path.to_string_lossy().contains(['*', '?', '[']);
    match std::fs::metadata(&input.path) {
        Ok(_) => Ok(()),
        Err(_) if glob => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(&input.path).is_ok() {
                bail!(
                    "input {arg}: {} is a symbolic link to nothing (its target does not exist)",
                    input.path.display()
                );
            }
            bail!(
                "input {arg}: {} does not exist (inputs come first, then the SQL in quotes)",
                input.path.display()
            )
        }
        // ELOOP (asm-generic/errno.h): "Too many levels of symbolic links".
        Err(e) if e.raw_os_error() == Some(40) => bail!(
            "input {arg}: {} is a loop of symbolic links (a link that leads back to itself)",
            input.path.display()
        ),
        Err(e) => Err(e).with_context(|| format!("input {arg}: {}", input.path.display())),
    }
}

/// Stack of the threads that plan and run SQL: DataFusion walks an
/// expression tree recursively, and a WHERE with thousands of OR terms is
/// a tree thousands deep (8 MiB, the main thread's default, overflows
/// near 5,000 terms in a debug build). Only the pages touched are used.
const SQL_STACK: usize = 512 << 20;
/// Stack of the runtime's threads, which evaluate the planned expressions
/// (as deep as the SQL, but with smaller frames than the planner's).
const EXEC_STACK: usize = 64 << 20;

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(EXEC_STACK)
        .enable_all()
        .build()?)
}

/// The output of `query -o FILE`: written under a name unique to this run
/// and renamed over FILE only once complete, so a failed query leaves
/// neither a partial file nor a temporary one; an existing FILE that is
/// not a regular file is refused before the query runs.
struct OutputFile {
    path: PathBuf,
    tmp: PathBuf,
    done: bool,
}

impl OutputFile {
    fn create(path: &std::path::Path) -> Result<(OutputFile, std::fs::File)> {
        if let Ok(m) = std::fs::symlink_metadata(path)
            && !m.file_type().is_file()
        {
            bail!(
                "output {}: exists and is not a regular file (a link, directory, device or FIFO): refusing to replace it",
                path.display()
            );
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".into());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let tmp = dir.join(format!(".{name}.tmp-{}-{nanos}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        Ok((
            OutputFile {
                path: path.to_owned(),
                tmp,
                done: false,
            },
            file,
        ))
    }

    fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Standard output, noting when its reader went away (`| head -1`): the
/// error that follows, whatever wraps it (a CSV or JSON writer's message),
/// then ends the run quietly with exit 0.
struct Stdout {
    inner: std::io::BufWriter<std::io::Stdout>,
}

static PIPE_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).inspect_err(note_pipe)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().inspect_err(note_pipe)
    }
}

fn note_pipe(e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        PIPE_CLOSED.store(true, std::sync::atomic::Ordering::SeqCst);
    }
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
    let mut file = None;
    let mut out: Box<dyn Write + Send> = match &config.output {
        Some(p) => {
            let (output, f) = OutputFile::create(p)?;
            file = Some(output);
            Box::new(std::io::BufWriter::new(f))
        }
        None => {
            if config.format.is_binary() && std::io::stdout().is_terminal() {
                bail!(analyze::Error::BinaryToTerminal);
            }
            Box::new(Stdout {
                inner: std::io::BufWriter::with_capacity(1 << 16, std::io::stdout()),
            })
        }
    };
    let rt = runtime()?;
    let ran = rt.block_on(async {
        let ws = Workspace::open_on(&config.inputs, config.memory_limit, &config.engine)?;
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
        out.flush()?;
        anyhow::Ok(())
    });
    match (&file, ran) {
        (Some(f), Err(e))
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some()
                    || c.downcast_ref::<analyze::Error>().is_some_and(|a| {
                        matches!(
                            a,
                            analyze::Error::Output(_)
                                | analyze::Error::Arrow(_)
                                | analyze::Error::Parquet(_)
                        )
                    })
            }) =>
        {
            Err(e).with_context(|| format!("writing {}", f.path.display()))
        }
        (_, Err(e)) => Err(e),
        (_, Ok(())) => {
            drop(out);
            match file {
                Some(f) => f.commit(),
                None => Ok(()),
            }
        }
    }
}

/// Whether detect found something (exit code 1).
struct Found(bool);

fn detect(a: DetectArgs) -> Result<Found> {
    let mut out = Stdout {
        inner: std::io::BufWriter::new(std::io::stdout()),
    };
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
    for (arg, input) in a.inputs.iter().zip(&inputs) {
        check_input(arg, input)?;
    }
    let memory_limit = usize::try_from(a.memory.memory_limit).unwrap_or(usize::MAX);
    let rt = runtime()?;
    let reports = rt.block_on(async {
        let ws = Workspace::open_on(&inputs, memory_limit, &a.engine)?;
        let reports = ws.detect(&a.only).await?;
        warn(&ws)?;
        anyhow::Ok(reports)
    })?;
    let found = analyze::write_reports(&reports, format, &mut out)?;
    if format == Format::Table {
        writeln!(
            out,
            "\nthe page for the ticket (timeline, flow diagrams, namespaces): {}",
            analyze::report_command(&a.inputs)
        )?;
    }
    out.flush()?;
    Ok(Found(found))
}

fn report(a: ReportArgs) -> Result<()> {
    let inputs: Vec<InputSpec> = a.inputs.iter().map(|a| InputSpec::parse(a)).collect();
    for (arg, input) in a.inputs.iter().zip(&inputs) {
        check_input(arg, input)?;
    }
    let memory_limit = usize::try_from(a.memory.memory_limit).unwrap_or(usize::MAX);
    let rt = runtime()?;
    let page = rt.block_on(async {
        let ws = Workspace::open_with(&inputs, memory_limit)?;
        let page = ws.report(&a.inputs, a.format).await?;
        warn(&ws)?;
        anyhow::Ok(page)
    })?;
    match &a.output {
        Some(p) => {
            let (output, mut f) = OutputFile::create(p)?;
            f.write_all(page.as_bytes())
                .and_then(|()| f.flush())
                .with_context(|| format!("writing {}", p.display()))?;
            drop(f);
            output.commit()?;
            eprintln!("capsnap: wrote {}", p.display());
        }
        None => {
            let mut out = Stdout {
                inner: std::io::BufWriter::new(std::io::stdout()),
            };
            out.write_all(page.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(())
}

fn export(a: ExportArgs) -> Result<()> {
    let inputs: Vec<InputSpec> = a.inputs.iter().map(|a| InputSpec::parse(a)).collect();
    let started = std::time::Instant::now();
    let rt = runtime()?;
    let verbose = std::io::stderr().is_terminal() || std::env::var_os("CAPSNAP_PROGRESS").is_some();
    let memory_limit = usize::try_from(a.memory.memory_limit).unwrap_or(usize::MAX);
    let summary = rt.block_on(analyze::fleet::export(
        &inputs,
        &a.to,
        memory_limit,
        &mut |b| {
            if verbose {
                let rows: u64 = b.rows.values().sum();
                eprintln!(
                    "capsnap: exported {} ({}, {}): {rows} rows",
                    b.bundle,
                    b.host.as_deref().unwrap_or("no host"),
                    b.date
                );
            }
        },
    ))?;
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
        Command::Report(args) => report(args).map(|()| Found(false)),
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
    // Everything runs on a thread with a big stack (see SQL_STACK): SQL is
    // planned on the thread that calls block_on.
    let ran = std::thread::Builder::new()
        .name("capsnap".into())
        .stack_size(SQL_STACK)
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
        Err(_) if PIPE_CLOSED.load(std::sync::atomic::Ordering::SeqCst) => ExitCode::SUCCESS,
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
