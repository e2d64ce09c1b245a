//! Inputs in, SQL answers out.
//!
//! [`Workspace::open`] resolves every input ([`load`]): capture files (each
//! with a capture-point label; a file is indexed as it is first read),
//! `.capsnap` bundles (extracted safely into the cache, [`bundle`]),
//! directories and globs of them, and text artifacts, which the
//! [`formats::READERS`] turn into record batches. It registers the tables of
//! [`formats::TABLES`] in a DataFusion `SessionContext`: the capture tables
//! stream from the files ([`scan`]), decoded in parallel, projected columns
//! only; the artifact tables are in memory. [`Workspace::run`] plans SQL
//! there and [`output::write_stream`] writes the answer in the format asked
//! for; [`Workspace::detect`] runs the canned detections of `queries/`
//! ([`detect`]). [`repl`] is the interactive prompt.

mod bundle;
mod detect;
mod error;
mod load;
mod output;
mod repl;
mod scan;
mod source;

pub use detect::{DETECTIONS, Detection, Finding, Outcome, Report, Severity, write_reports};
pub use error::Error;
pub use output::{Format, write_stream};
pub use repl::interactive;
pub use source::{CaptureSource, InputSpec};

use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use scan::{CaptureProvider, CaptureTable};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;

/// Opened inputs and the SQL context their tables live in.
pub struct Workspace {
    pub ctx: SessionContext,
    pub sources: Arc<Vec<Arc<CaptureSource>>>,
    /// The files that fed each artifact table (`bundle:path`); a table
    /// missing here had no input at all, which detections report as
    /// "cannot tell".
    pub fed: BTreeMap<&'static str, Vec<String>>,
    /// Bundles and directories opened: name and host.
    pub bundles: Vec<(String, Option<String>)>,
    progress: ProgressBar,
    /// Problems in artifact files (lines not read, files not recognised).
    warnings: Vec<String>,
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
    pub fn open(inputs: &[InputSpec]) -> Result<Workspace, Error> {
        if inputs.is_empty() {
            return Err(Error::NoInput);
        }
        let loaded = load::Loaded::open(inputs)?;
        Workspace::register(loaded)
    }

    /// A workspace with every table and no rows (tests plan queries here).
    pub fn empty() -> Result<Workspace, Error> {
        Workspace::register(load::Loaded::default())
    }

    fn register(loaded: load::Loaded) -> Result<Workspace, Error> {
        let warnings = loaded.warnings;
        let sources = Arc::new(loaded.captures);
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        let progress = progress_bar(0);
        for (name, table) in [
            (formats::PACKETS.name, CaptureTable::Packets),
            (formats::FLOWS.name, CaptureTable::Flows),
        ] {
            ctx.register_table(
                name,
                Arc::new(CaptureProvider::new(
                    table,
                    sources.clone(),
                    progress.clone(),
                )),
            )?;
        }
        let mut batches = loaded.batches;
        for table in formats::TABLES {
            if table.name == formats::PACKETS.name || table.name == formats::FLOWS.name {
                continue;
            }
            let parts = batches
                .remove(table.name)
                .unwrap_or_else(|| vec![formats::empty(table)]);
            let schema = formats::schema_of(table.columns);
            ctx.register_table(
                table.name,
                Arc::new(MemTable::try_new(schema, vec![parts])?),
            )?;
        }
        Ok(Workspace {
            ctx,
            sources,
            fed: loaded.fed,
            bundles: loaded.bundles,
            progress,
            warnings,
        })
    }

    /// Problems found in the inputs that did not stop them from loading.
    /// They are known once a file has been read to its end: this reads
    /// what no query has yet.
    pub fn warnings(&self) -> Result<Vec<String>, Error> {
        let mut all = self.warnings.clone();
        for s in self.sources.iter() {
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
        if sql.to_ascii_lowercase().contains("findings") {
            self.register_findings().await?;
        }
        let statements = datafusion::sql::parser::DFParser::parse_sql(sql)?;
        for statement in statements {
            let plan = self.ctx.state().statement_to_plan(statement).await?;
            let df = self.ctx.execute_logical_plan(plan).await?;
            let total: u64 = self.sources.iter().map(|s| s.len()).sum();
            self.progress.reset();
            self.progress.set_length(total);
            self.progress.set_message("reading");
            let stream = df.execute_stream().await?;
            let progress = self.progress.clone();
            let written = write_stream(format, stream, out, &mut move || {
                progress.finish_and_clear()
            })
            .await;
            self.progress.finish_and_clear();
            rows += written?;
        }
        Ok(rows)
    }

    /// Writes the tables, their columns, types and meaning.
    pub fn describe(&self, out: &mut dyn Write) -> Result<(), Error> {
        describe_tables(out)?;
        for s in self.sources.iter() {
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

/// Writes every table capsnap knows, with column types and docs.
pub fn describe_tables(out: &mut dyn Write) -> Result<(), Error> {
    for table in formats::TABLES {
        writeln!(out, "{} — {}", table.name, table.doc)?;
        let from: Vec<&str> = formats::READERS
            .iter()
            .filter(|r| r.table.name == table.name)
            .map(|r| r.what)
            .collect();
        if !from.is_empty() {
            writeln!(out, "  from: {}", from.join("; "))?;
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
    writeln!(
        out,
        "findings — what `capsnap detect` reports, one row per finding (and per detection that found nothing or cannot tell); computed when a query names it\n  \
         detection, severity, status (found, clear, cannot_tell), summary: string; evidence: the evidence rows as JSON\n"
    )?;
    Ok(())
}
