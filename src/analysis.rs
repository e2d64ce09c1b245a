//! The subcommands that load inputs into DataFusion: query, detect,
//! report, tables. Only in the full build (feature `analyze`).

use crate::{Found, parse_bytes};
use analyze::{Engine, Format, InputSpec, ReportFormat, Workspace};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Args)]
pub struct QueryArgs {
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
pub struct MemoryArgs {
    /// Memory the query may use (sorts, joins and aggregates spill to disk
    /// past it; what cannot fails with exit 2), e.g. 512M, 4G.
    #[arg(long, default_value = "512M", value_parser = parse_bytes, value_name = "SIZE")]
    memory_limit: u64,
}

#[derive(Args)]
pub struct DetectArgs {
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
pub struct ExportArgs {
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
pub struct ReportArgs {
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

/// What `query` will do, validated before any work starts.
pub struct QueryConfig {
    inputs: Vec<InputSpec>,
    sql: Option<String>,
    format: Format,
    output: Option<PathBuf>,
    engine: Engine,
    memory_limit: usize,
}

impl QueryConfig {
    pub fn from_args(a: QueryArgs) -> Result<QueryConfig> {
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
        let inputs = checked_inputs(&args, QUERY_HINT)?;
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

/// What `query` adds when an input does not exist: most often the SQL was
/// given first, or without quotes.
const QUERY_HINT: &str = " (inputs come first, then the SQL in quotes)";

/// The inputs as given on the command line, each checked to be there;
/// `hint` ends the message of one that does not exist.
fn checked_inputs(args: &[String], hint: &str) -> Result<Vec<InputSpec>> {
    args.iter()
        .map(|arg| {
            let input = InputSpec::parse(arg);
            check_input(arg, &input, hint)?;
            Ok(input)
        })
        .collect()
}

/// An input that is not there says why: missing, or a link that leads
/// nowhere (a loop, a dangling target), or unreadable.
fn check_input(arg: &str, input: &InputSpec, hint: &str) -> Result<()> {
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
            bail!("input {arg}: {} does not exist{hint}", input.path.display())
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
pub const SQL_STACK: usize = 512 << 20;
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

pub static PIPE_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

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
        say!("capsnap: warning: {w}");
    }
    Ok(())
}

pub fn query(config: QueryConfig) -> Result<()> {
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

pub fn detect(a: DetectArgs) -> Result<Found> {
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
    let inputs = checked_inputs(&a.inputs, "")?;
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

pub fn report(a: ReportArgs) -> Result<()> {
    let inputs = checked_inputs(&a.inputs, "")?;
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
            say!("capsnap: wrote {}", p.display());
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

pub fn export(a: ExportArgs) -> Result<()> {
    let inputs = checked_inputs(&a.inputs, "")?;
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
                say!(
                    "capsnap: exported {} ({}, {}): {rows} rows",
                    b.bundle,
                    b.host.as_deref().unwrap_or("no host"),
                    b.date
                );
            }
        },
    ))?;
    for w in &summary.warnings {
        say!("capsnap: warning: {w}");
    }
    for b in &summary.bundles {
        for w in &b.warnings {
            say!("capsnap: warning: {w}");
        }
    }
    say!(
        "capsnap: exported {} bundle(s) into {}: {} files, {} bytes, in {:.1} s",
        summary.bundles.len(),
        a.to.display(),
        summary.files,
        summary.bytes,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `capsnap tables`: the tables, or what each input holds.
pub fn tables(inputs: &[String]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if inputs.is_empty() {
        analyze::describe_tables(&mut out)?;
    } else {
        let inputs: Vec<InputSpec> = inputs.iter().map(|a| InputSpec::parse(a)).collect();
        let ws = Workspace::open(&inputs)?;
        warn(&ws)?;
        ws.describe(&mut out)?;
    }
    Ok(())
}

/// Whether the error is a reader that went away (`| head -1`).
pub fn broken_pipe(e: &anyhow::Error) -> bool {
    PIPE_CLOSED.load(std::sync::atomic::Ordering::SeqCst)
        || e.chain().any(|c| {
            c.downcast_ref::<analyze::Error>()
                .is_some_and(analyze::Error::is_broken_pipe)
        })
}
