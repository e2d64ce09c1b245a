//! Inputs in, SQL answers out.
//!
//! [`Workspace::open`] resolves every input ([`load`]): capture files (each
//! with a capture-point label; a file is indexed as it is first read),
//! `.capsnap` bundles (extracted safely into the cache, [`bundle`]),
//! directories and globs of them, and text artifacts, which the readers of
//! [`formats::readers()`] turn into record batches. Every table of
//! [`formats::tables()`] gets a provider: the capture tables stream from
//! the files ([`scan`]), decoded in parallel, projected columns only; the
//! artifact tables are in memory; `findings` runs the detections when a
//! query first reads it ([`findings`]). SQL, however it arrives, runs
//! through [`sql::for_each_statement`]; [`output::write_stream`] writes
//! the answer in the format asked for, and [`Workspace::detect`] runs the
//! canned detections of `queries/` ([`detect`]). [`repl`] is the
//! interactive prompt. [`Workspace::report`] draws the page a ticket
//! reader reads: findings, timeline, namespaces and flows ([`report`]).
//!
//! The fleet ([`fleet`]): [`fleet::export`] writes the tables of many
//! inputs into one Parquet dataset; a dataset given as the input is read
//! back as the same tables (Parquet listing tables under views), and
//! [`Engine`] runs the SQL over it here or on an Apache Ballista cluster.

mod bundle;
mod detect;
mod error;
mod findings;
pub mod fleet;
mod load;
mod output;
mod repl;
mod report;
mod scan;
mod source;
mod sql;

pub use detect::{DETECTIONS, Detection, Finding, Outcome, Report, Severity, write_reports};
pub use error::Error;
pub use fleet::{Dataset, Engine};
pub use output::{Format, write_stream};
pub use repl::interactive;
pub use report::{ReportFormat, command_for as report_command};
pub use source::{CaptureSource, InputSpec};

use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{FairSpillPool, MemoryConsumer, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use scan::{CaptureProvider, CaptureTable};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;

/// What the inputs hold: a provider for every table, and which files fed
/// each. Shared by every SQL context made over the inputs.
/// The default of `--memory-limit`: what DataFusion's operators (sorts,
/// joins, aggregates) and a result held for the table form may use
/// before they spill to disk or the query fails saying so. It fits a
/// small VM or a node's spare memory.
pub const DEFAULT_MEMORY_LIMIT: usize = 512 << 20;

pub(crate) struct Inputs {
    pub captures: Arc<Vec<Arc<CaptureSource>>>,
    /// The memory pool (and spill files) every query of these inputs uses.
    runtime: Arc<RuntimeEnv>,
    memory_limit: usize,
    /// The files that fed each table (`bundle:path`); a table missing
    /// here had no input at all, which detections report as "cannot tell".
    pub fed: BTreeMap<&'static str, Vec<String>>,
    /// Problems in artifact files (lines not read, files not recognised).
    pub warnings: Vec<String>,
    providers: Vec<(&'static str, Arc<dyn TableProvider>)>,
    /// Where SQL over them runs.
    engine: Engine,
    /// The dataset folder, when the input is an exported dataset.
    dataset: Option<std::path::PathBuf>,
}

impl Inputs {
    /// A SQL context holding every table of the inputs, `findings` too
    /// when `findings` is set (the detections themselves run without it).
    /// On Ballista, `findings` (computed in this process) is not there:
    /// `capsnap detect --engine` runs the detections themselves.
    fn context(self: &Arc<Self>, findings: bool) -> Result<SessionContext, Error> {
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = self
            .engine
            .context(config, self.runtime.clone(), self.dataset.as_deref())?;
        for (name, provider) in &self.providers {
            ctx.register_table(*name, provider.clone())?;
        }
        if findings && self.engine.is_local() {
            ctx.register_table(
                findings::NAME,
                Arc::new(findings::FindingsTable::new(self.clone())),
            )?;
        }
        Ok(ctx)
    }

    /// Whether any input fed `table`.
    /// A query that ran out of its memory pool says so, with the limit.
    pub(crate) fn memory(&self, e: Error) -> Error {
        fn exhausted(e: &Error) -> bool {
            match e {
                Error::Query(q) => matches!(q.find_root(), DataFusionError::ResourcesExhausted(_)),
                Error::Detection { source, .. } => exhausted(source),
                _ => false,
            }
        }
        let exhausted = exhausted(&e);
        if exhausted {
            Error::MemoryLimit {
                limit: self.memory_limit,
                detail: e.chain(),
            }
        } else {
            e
        }
    }

    pub fn has(&self, table: &str) -> bool {
        self.fed.get(table).is_some_and(|f| !f.is_empty())
    }
}

/// Opened inputs and the SQL context their tables live in.
pub struct Workspace {
    pub ctx: SessionContext,
    inputs: Arc<Inputs>,
    progress: ProgressBar,
}

/// The memory pool every query of a workspace uses: a fair pool, so
/// operators that can spill (sort, hash aggregate, hash join) share it and
/// spill to the OS temp dir; tracking names the largest consumers when it
/// runs out.
fn runtime(memory_limit: usize) -> Result<Arc<RuntimeEnv>, Error> {
    let pool = TrackConsumersPool::new(
        FairSpillPool::new(memory_limit),
        std::num::NonZeroUsize::new(3).expect("3 is not zero"),
    );
    Ok(RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(pool))
        .build_arc()?)
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

impl Workspace {
    /// Opens every input and registers its tables. A file that cannot be
    /// read fails the whole call with an error naming it.
    /// Uses the default memory limit.
    pub fn open(inputs: &[InputSpec]) -> Result<Workspace, Error> {
        Workspace::open_with(inputs, DEFAULT_MEMORY_LIMIT)
    }

    /// [`Workspace::open`] with queries (and the text tables held in
    /// memory) bounded by `memory_limit` bytes.
    pub fn open_with(inputs: &[InputSpec], memory_limit: usize) -> Result<Workspace, Error> {
        Workspace::open_on(inputs, memory_limit, &Engine::Local)
    }

    /// [`Workspace::open_with`] for SQL run by `engine`. An exported
    /// dataset ([`fleet`]) must be the only input; Ballista runs over one
    /// only.
    pub fn open_on(
        inputs: &[InputSpec],
        memory_limit: usize,
        engine: &Engine,
    ) -> Result<Workspace, Error> {
        if inputs.is_empty() {
            return Err(Error::NoInput);
        }
        if let Some(spec) = inputs.iter().find(|s| Dataset::is_dataset(&s.path)) {
            if inputs.len() > 1 {
                return Err(Error::DatasetNotAlone {
                    path: spec.path.clone(),
                });
            }
            return Workspace::over_dataset(Dataset::open(&spec.path)?, memory_limit, engine);
        }
        if !engine.is_local() {
            return Err(Error::EngineNeedsDataset {
                engine: engine.to_string(),
            });
        }
        let loaded = load::Loaded::open(inputs, memory_limit)?;
        Workspace::register(loaded, memory_limit)
    }

    /// Every table of an exported dataset, read from its Parquet files.
    fn over_dataset(
        dataset: Dataset,
        memory_limit: usize,
        engine: &Engine,
    ) -> Result<Workspace, Error> {
        let mut providers: Vec<(&'static str, Arc<dyn TableProvider>)> = Vec::new();
        for table in formats::tables() {
            providers.push((
                table.name,
                dataset.table(table.name, table.columns, !engine.is_local())?,
            ));
        }
        Workspace::with_inputs(
            Inputs {
                captures: Arc::new(Vec::new()),
                runtime: runtime(memory_limit)?,
                memory_limit,
                fed: dataset.fed(),
                warnings: dataset.warnings(),
                providers,
                engine: engine.clone(),
                dataset: Some(dataset.root.clone()),
            },
            progress_bar(0),
        )
    }

    /// A workspace with every table and no rows (tests plan queries here).
    pub fn empty() -> Result<Workspace, Error> {
        Workspace::register(load::Loaded::default(), DEFAULT_MEMORY_LIMIT)
    }

    pub(crate) fn register(loaded: load::Loaded, memory_limit: usize) -> Result<Workspace, Error> {
        let runtime = runtime(memory_limit)?;
        let captures = Arc::new(loaded.captures);
        let progress = progress_bar(0);
        let mut batches = loaded.batches;
        let mut providers: Vec<(&'static str, Arc<dyn TableProvider>)> = Vec::new();
        for table in formats::tables() {
            let provider: Arc<dyn TableProvider> = match CaptureTable::of(table) {
                Some(kind) => Arc::new(CaptureProvider::new(
                    kind,
                    captures.clone(),
                    progress.clone(),
                )),
                None => {
                    let parts = batches
                        .remove(table.name)
                        .unwrap_or_else(|| vec![formats::empty(table)]);
                    Arc::new(MemTable::try_new(table.schema(), vec![parts])?)
                }
            };
            providers.push((table.name, provider));
        }
        Workspace::with_inputs(
            Inputs {
                captures,
                runtime,
                memory_limit,
                fed: loaded.fed,
                warnings: loaded.warnings,
                providers,
                engine: Engine::Local,
                dataset: None,
            },
            progress,
        )
    }

    fn with_inputs(inputs: Inputs, progress: ProgressBar) -> Result<Workspace, Error> {
        let inputs = Arc::new(inputs);
        Ok(Workspace {
            ctx: inputs.context(true)?,
            inputs,
            progress,
        })
    }

    /// Problems found in the inputs that did not stop them from loading.
    /// They are known once a file has been read to its end: this reads
    /// what no query has yet.
    pub fn warnings(&self) -> Result<Vec<String>, Error> {
        let mut all = self.inputs.warnings.clone();
        for s in self.inputs.captures.iter() {
            all.extend(s.warnings()?);
        }
        Ok(all)
    }

    /// Runs every statement in `sql`, writing each result to `out`.
    pub async fn run(
        &self,
        sql: &str,
        format: Format,
        out: &mut (dyn Write + Send),
    ) -> Result<usize, Error> {
        let mut rows = 0;
        let total: u64 = self.inputs.captures.iter().map(|s| s.len()).sum();
        let mut statements = sql::Statements::parse(sql)?;
        while let Some(next) = statements.next(&self.ctx).await {
            let (df, _last) = next.map_err(|e| self.memory(e))?;
            self.progress.reset();
            self.progress.set_length(total);
            self.progress.set_message("reading");
            let stream = df
                .execute_stream()
                .await
                .map_err(|e| self.memory(e.into()))?;
            let progress = self.progress.clone();
            let held = MemoryConsumer::new("result held for --format table")
                .register(&self.inputs.runtime.memory_pool);
            let written = write_stream(format, stream, out, held, &mut move || {
                progress.finish_and_clear()
            })
            .await;
            self.progress.finish_and_clear();
            rows += written.map_err(|e| self.memory(e))?;
        }
        Ok(rows)
    }

    /// Writes the tables, their columns, types and meaning.
    /// A query that ran out of its memory pool says so, with the limit.
    pub(crate) fn memory(&self, e: Error) -> Error {
        self.inputs.memory(e)
    }

    pub fn describe(&self, out: &mut dyn Write) -> Result<(), Error> {
        describe_tables(out)?;
        for s in self.inputs.captures.iter() {
            let described = s.described()?;
            writeln!(
                out,
                "input {} (capture {}): {} packets, {} interfaces",
                s.path.display(),
                described.meta.capture,
                s.index()?.frames,
                described.index.interfaces.len()
            )?;
        }
        Ok(())
    }
}

/// Writes every table capsnap knows, with column types and docs, and the
/// files that feed it.
pub fn describe_tables(out: &mut dyn Write) -> Result<(), Error> {
    use formats::bundle::{Parse, Scope};
    for table in formats::tables() {
        writeln!(out, "{} — {}", table.name, table.doc)?;
        let mut in_bundle: Vec<String> = Vec::new();
        let mut by_hand: Vec<&str> = Vec::new();
        for a in formats::bundle::feeding(table.name) {
            match a.scope {
                Scope::Node => in_bundle.push(a.path.to_owned()),
                Scope::Netns => in_bundle.push(format!("netns/*/{}", a.path)),
                Scope::Hand => {}
            }
            if let Parse::Text(r) = a.parse
                && !by_hand.contains(&r.what)
            {
                by_hand.push(r.what);
            }
        }
        in_bundle.dedup();
        if !in_bundle.is_empty() {
            writeln!(out, "  in a bundle: {}", in_bundle.join(", "))?;
        }
        if CaptureTable::of(table).is_some() {
            writeln!(out, "  from: pcap and pcapng files")?;
        } else if !by_hand.is_empty() {
            writeln!(out, "  from: {}", by_hand.join("; "))?;
        }
        for c in table.columns {
            let ty = match c.kind {
                formats::Kind::Dict => "string".to_string(),
                k => k.data_type().to_string(),
            };
            writeln!(out, "  {:<20} {:<28} {}", c.name, ty, c.doc)?;
        }
        writeln!(out)?;
    }
    writeln!(out, "{}", findings::DOC)?;
    Ok(())
}
