//! Canned detections: one `queries/<id>.sql` each, run by `capsnap detect`.
//!
//! A detection file starts with a comment header (`-- id:`, `title:`,
//! `severity:`, `requires:`, `why:`, `action:`; a `--` line without a key
//! continues the field above), then SQL: optional `CREATE TABLE <id>_x AS`
//! steps (DataFusion inlines CTEs at every reference, so a big detection
//! keeps its small intermediate results as tables, dropped afterwards),
//! then the query whose rows are the evidence. Each row it returns is
//! evidence; its `finding` column names the fault in one line, and rows
//! sharing a `finding` are one finding. A row whose `cannot_tell` column is
//! set says why the detection could not decide (an input it needs is
//! missing) instead of giving an all-clear. Columns starting with `_` (sort
//! keys) are not shown. A blank line ends the header. Tables named in `requires:`
//! that no input fed make the whole detection "cannot tell" before it runs.

use crate::error::Error;
use crate::{Inputs, Workspace};
use datafusion::arrow::array::{Array, RecordBatch, StringArray, UInt32Array};
use datafusion::arrow::compute::{cast, take_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use std::sync::LazyLock;

/// Every `queries/*.sql` file, as (file name, text): found at build time
/// (analyze/build.rs), so a new detection is one new file.
const SOURCES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/detections.rs"));

/// Every detection, parsed from [`SOURCES`], worst first (then by id): the
/// order they run and are reported in.
pub static DETECTIONS: LazyLock<Vec<Detection>> = LazyLock::new(|| {
    let mut all: Vec<Detection> = SOURCES
        .iter()
        .map(|(file, text)| {
            Detection::parse(file, text).unwrap_or_else(|e| panic!("queries/{file}: {e}"))
        })
        .collect();
    all.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.id.cmp(&b.id)));
    all
});

/// The fields of a detection header; any other `--` line continues the
/// field above it (so prose may contain colons).
const HEADER_KEYS: &[&str] = &["id", "title", "severity", "requires", "why", "action"];

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
}

impl Severity {
    fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// One canned detection.
#[derive(Debug, Clone)]
pub struct Detection {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    /// Tables it cannot decide without.
    pub requires: Vec<String>,
    pub why: String,
    pub action: String,
    pub sql: String,
}

impl Detection {
    /// Reads a detection file; the error names the header field at fault.
    pub fn parse(file: &str, text: &str) -> Result<Detection, String> {
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut body = String::new();
        let mut in_header = true;
        for line in text.lines() {
            // A blank line ends the header: comments after it are the SQL's.
            if in_header && line.trim().is_empty() {
                in_header = false;
                continue;
            }
            if in_header && let Some(c) = line.strip_prefix("--") {
                let c = c.trim();
                match c.split_once(':') {
                    Some((k, v)) if HEADER_KEYS.contains(&k) => {
                        fields.push((k.to_owned(), v.trim().to_owned()));
                    }
                    _ => match fields.last_mut() {
                        Some((_, v)) if !c.is_empty() => {
                            v.push(' ');
                            v.push_str(c);
                        }
                        _ => {}
                    },
                }
                continue;
            }
            in_header = false;
            body.push_str(line);
            body.push('\n');
        }
        let get = |k: &str| {
            fields
                .iter()
                .find(|(f, _)| f == k)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| format!("header has no `-- {k}:` line"))
        };
        let id = get("id")?;
        if file.strip_suffix(".sql") != Some(id.as_str()) {
            return Err(format!("id {id:?} does not match the file name"));
        }
        let severity = get("severity")?;
        Ok(Detection {
            id,
            title: get("title")?,
            severity: Severity::parse(&severity)
                .ok_or_else(|| format!("severity {severity:?} is not info, low, medium or high"))?,
            requires: get("requires")?
                .split(',')
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
            why: get("why")?,
            action: get("action")?,
            sql: body.trim().to_owned(),
        })
    }
}

/// Why `table` has no input: the collector's own reason for every source
/// that would have fed it (from the artifact registry), else which files
/// would have.
fn why_missing(table: &str, collection: &[(String, String)]) -> String {
    let feeding: Vec<&formats::bundle::Artifact> = formats::bundle::feeding(table).collect();
    let reasons: Vec<&str> = collection
        .iter()
        .filter(|(source, _)| feeding.iter().any(|a| a.source == source))
        .map(|(_, text)| text.as_str())
        .collect();
    if !reasons.is_empty() {
        return reasons.join("; ");
    }
    let mut files: Vec<String> = Vec::new();
    for a in &feeding {
        let what = match a.parse {
            formats::bundle::Parse::Capture => "a packet capture".to_owned(),
            formats::bundle::Parse::Text(r) => r.what.to_owned(),
            formats::bundle::Parse::Raw | formats::bundle::Parse::AtOpen => continue,
        };
        if !files.contains(&what) {
            files.push(what);
        }
    }
    format!("no input holds {}", files.join(" or "))
}

/// What one detection concluded.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing found, with every input it needs present.
    Clear,
    /// Faults found, each with its evidence rows.
    Found(Vec<Finding>),
    /// It could not decide: why (the inputs that are missing).
    CannotTell(Vec<String>),
}

/// One fault and the rows that prove it.
#[derive(Debug)]
pub struct Finding {
    pub summary: String,
    /// Evidence rows, without the `finding` and `cannot_tell` columns.
    pub evidence: RecordBatch,
}

/// A detection's result.
#[derive(Debug)]
pub struct Report {
    pub detection: &'static Detection,
    pub outcome: Outcome,
}

impl Workspace {
    /// Runs every detection (or those whose id is in `only`).
    pub async fn detect(&self, only: &[String]) -> Result<Vec<Report>, Error> {
        run(&self.ctx, &self.inputs, only).await
    }

    /// The evidence query of `d` on these inputs (its schema and rows).
    pub async fn detection_rows(
        &self,
        d: &Detection,
    ) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
        detection_rows(&self.ctx, d).await
    }
}

/// Runs every detection (or those whose id is in `only`) in `ctx`, whose
/// tables are those of `inputs`. Detections are independent: as many run
/// at once as there are CPUs (on small inputs their cost is planning,
/// which is single-threaded), and they are reported in their fixed order.
pub(crate) async fn run(
    ctx: &SessionContext,
    inputs: &Inputs,
    only: &[String],
) -> Result<Vec<Report>, Error> {
    let collection = collection_reasons(ctx).await?;
    let runs: Vec<_> = DETECTIONS
        .iter()
        .filter(|d| only.is_empty() || only.contains(&d.id))
        .enumerate()
        .map(|(i, d)| report(i, ctx.clone(), d, missing_inputs(d, inputs, &collection)))
        .collect();
    // Unordered, so a slow detection does not hold a finished one's slot.
    let parallel = std::thread::available_parallelism().map_or(1, usize::from);
    let mut reports: Vec<(usize, Report)> = futures::stream::iter(runs)
        .buffer_unordered(parallel)
        .try_collect()
        .await?;
    reports.sort_by_key(|(i, _)| *i);
    Ok(reports.into_iter().map(|(_, r)| r).collect())
}

/// What `d` concludes in `ctx` (or that it cannot tell, because of
/// `missing` inputs), with its place `order` in the report. It runs as a
/// task of its own, so detections plan on all the runtime's threads; a
/// panic there is resumed as the caller's panic.
async fn report(
    order: usize,
    ctx: SessionContext,
    d: &'static Detection,
    missing: Vec<String>,
) -> Result<(usize, Report), Error> {
    let outcome = if missing.is_empty() {
        match tokio::spawn(async move { run_detection(&ctx, d).await }).await {
            Ok(outcome) => outcome?,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    } else {
        Outcome::CannotTell(missing)
    };
    Ok((
        order,
        Report {
            detection: d,
            outcome,
        },
    ))
}

/// Why `d` cannot run on `inputs`: each table it requires that no input
/// fed (`a | b` in `requires:` means either will do), with the reason.
fn missing_inputs(d: &Detection, inputs: &Inputs, collection: &[(String, String)]) -> Vec<String> {
    d.requires
        .iter()
        .filter(|need| !need.split('|').any(|t| inputs.has(t.trim())))
        .map(|need| {
            let why: Vec<String> = need
                .split('|')
                .map(|t| format!("no {} ({})", t.trim(), why_missing(t.trim(), collection)))
                .collect();
            why.join(" and ")
        })
        .collect()
}

/// `source: status: reason` of every source the collector did not take in
/// full, from the manifests of the inputs.
async fn collection_reasons(ctx: &SessionContext) -> Result<Vec<(String, String)>, Error> {
    let batches = ctx
        .sql(
            "select source, concat(source, ': ', status, coalesce(concat(': ', reason), '')) \
              from collection where status <> 'ok'",
        )
        .await?
        .collect()
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        let col = |i: usize| cast(b.column(i), &DataType::Utf8);
        let (source, text) = (col(0)?, col(1)?);
        let source = source.as_any().downcast_ref::<StringArray>();
        let text = text.as_any().downcast_ref::<StringArray>();
        if let (Some(source), Some(text)) = (source, text) {
            for i in 0..b.num_rows() {
                out.push((source.value(i).to_owned(), text.value(i).to_owned()));
            }
        }
    }
    Ok(out)
}

/// Runs a detection's statements: `CREATE TABLE` steps (tables made here
/// are dropped afterwards, whatever happens), then the final query, whose
/// schema and rows come back. Only the detection's own steps are dropped,
/// so detections may run side by side in one context.
async fn detection_rows(
    ctx: &SessionContext,
    d: &Detection,
) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    let mut statements = crate::sql::Statements::parse(&d.sql).map_err(|e| d.failed(e))?;
    let result = async {
        while let Some(next) = statements.next(ctx).await {
            let (df, last) = next?;
            let schema = df.schema().inner().clone();
            let rows = df.collect().await?;
            if last {
                return Ok((schema, rows));
            }
        }
        unreachable!("the last statement returns")
    }
    .await;
    for name in statements.created() {
        let _ = ctx.deregister_table(name.as_str());
    }
    result.map_err(|e: Error| d.failed(e))
}

impl Detection {
    /// `e`, as the error of this detection.
    fn failed(&self, e: Error) -> Error {
        Error::Detection {
            id: self.id.clone(),
            source: Box::new(e),
        }
    }
}

async fn run_detection(ctx: &SessionContext, d: &Detection) -> Result<Outcome, Error> {
    let (_, batches) = detection_rows(ctx, d).await?;
    let mut findings: Vec<(String, Vec<(usize, u32)>)> = Vec::new();
    let mut cannot = Vec::new();
    for (b, batch) in batches.iter().enumerate() {
        let text = |name: &str| -> Option<StringArray> {
            let col = batch.column_by_name(name)?;
            let col = cast(col, &DataType::Utf8).ok()?;
            col.as_any().downcast_ref::<StringArray>().cloned()
        };
        let finding = text("finding");
        let cannot_tell = text("cannot_tell");
        for row in 0..batch.num_rows() {
            if let Some(c) = &cannot_tell
                && c.is_valid(row)
            {
                cannot.push(c.value(row).to_owned());
                continue;
            }
            let summary = finding
                .as_ref()
                .filter(|f| f.is_valid(row))
                .map_or_else(|| d.title.clone(), |f| f.value(row).to_owned());
            match findings.iter_mut().find(|(s, _)| *s == summary) {
                Some((_, rows)) => rows.push((b, row as u32)),
                None => findings.push((summary, vec![(b, row as u32)])),
            }
        }
    }
    if !cannot.is_empty() && findings.is_empty() {
        cannot.dedup();
        return Ok(Outcome::CannotTell(cannot));
    }
    if findings.is_empty() {
        return Ok(Outcome::Clear);
    }
    let mut out = Vec::new();
    for (summary, rows) in findings {
        let mut parts = Vec::new();
        for (b, batch) in batches.iter().enumerate() {
            let idx: Vec<u32> = rows
                .iter()
                .filter(|(rb, _)| *rb == b)
                .map(|(_, r)| *r)
                .collect();
            if idx.is_empty() {
                continue;
            }
            let keep: Vec<usize> = batch
                .schema()
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| {
                    f.name() != "finding" && f.name() != "cannot_tell" && !f.name().starts_with('_')
                })
                .map(|(i, _)| i)
                .collect();
            let picked = take_record_batch(batch, &UInt32Array::from(idx))?;
            parts.push(picked.project(&keep)?);
        }
        let schema = parts[0].schema();
        let evidence = datafusion::arrow::compute::concat_batches(&schema, &parts)?;
        out.push(Finding { summary, evidence });
    }
    Ok(Outcome::Found(out))
}

/// Writes reports as a readable list (`Format::Table`) or as JSON (one
/// object per finding, and one per detection that found nothing or could
/// not tell), NDJSON the same one per line. Returns whether anything was
/// found.
pub fn write_reports(
    reports: &[Report],
    format: crate::Format,
    out: &mut dyn std::io::Write,
) -> Result<bool, Error> {
    use crate::Format;
    let found = reports
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Found(_)));
    match format {
        Format::Json | Format::Ndjson => {
            let objects = report_objects(reports)?;
            if format == Format::Json {
                serde_json::to_writer_pretty(&mut *out, &objects).map_err(std::io::Error::from)?;
                writeln!(out)?;
            } else {
                for o in &objects {
                    serde_json::to_writer(&mut *out, o).map_err(std::io::Error::from)?;
                    writeln!(out)?;
                }
            }
        }
        _ => {
            let mut clear = Vec::new();
            for r in reports {
                let d = r.detection;
                match &r.outcome {
                    Outcome::Clear => clear.push(d.id.as_str()),
                    Outcome::CannotTell(why) => {
                        writeln!(out, "? {} [{}] {}", d.id, d.severity.name(), d.title)?;
                        for w in why {
                            writeln!(out, "  cannot tell: {w}")?;
                        }
                        writeln!(out)?;
                    }
                    Outcome::Found(findings) => {
                        writeln!(out, "! {} [{}] {}", d.id, d.severity.name(), d.title)?;
                        for f in findings {
                            writeln!(out, "  * {}", f.summary)?;
                            let plain = crate::output::plain_batch(&f.evidence)?;
                            let table =
                                datafusion::arrow::util::pretty::pretty_format_batches(&[plain])?;
                            for line in table.to_string().lines() {
                                writeln!(out, "    {line}")?;
                            }
                        }
                        writeln!(out, "  why: {}", d.why)?;
                        writeln!(out, "  what to do: {}", d.action)?;
                        writeln!(out)?;
                    }
                }
            }
            if !clear.is_empty() {
                writeln!(out, "nothing found by: {}", clear.join(", "))?;
            }
        }
    }
    out.flush()?;
    Ok(found)
}

/// One JSON object per finding, and one per detection that found nothing
/// (`clear`) or could not tell: what `--format json` prints and what the
/// `findings` table holds.
pub(crate) fn report_objects(reports: &[Report]) -> Result<Vec<serde_json::Value>, Error> {
    let mut objects = Vec::new();
    for r in reports {
        let d = r.detection;
        let base = |status: &str| {
            serde_json::json!({
                "detection": d.id, "title": d.title, "severity": d.severity.name(),
                "status": status, "why": d.why, "action": d.action,
            })
        };
        match &r.outcome {
            Outcome::Clear => objects.push(base("clear")),
            Outcome::CannotTell(why) => {
                let mut o = base("cannot_tell");
                o["summary"] = format!("cannot tell: {}", why.join("; ")).into();
                o["missing"] = why.clone().into();
                objects.push(o);
            }
            Outcome::Found(findings) => {
                for f in findings {
                    let mut o = base("found");
                    o["summary"] = f.summary.clone().into();
                    o["evidence"] = rows_as_json(&f.evidence)?;
                    objects.push(o);
                }
            }
        }
    }
    Ok(objects)
}

fn rows_as_json(batch: &RecordBatch) -> Result<serde_json::Value, Error> {
    let plain = crate::output::plain_batch(batch)?;
    let mut w = datafusion::arrow::json::ArrayWriter::new(Vec::new());
    w.write(&plain)?;
    w.finish()?;
    let bytes = w.into_inner();
    if bytes.is_empty() {
        return Ok(serde_json::Value::Array(Vec::new()));
    }
    serde_json::from_slice(&bytes).map_err(|e| Error::Output(std::io::Error::from(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_file_is_registered() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../queries");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = SOURCES.iter().map(|(f, _)| f.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed, "queries/ and detect::SOURCES disagree");
        assert_eq!(DETECTIONS.len(), SOURCES.len());
    }

    #[test]
    fn header_fields_are_required_and_continue_over_lines() {
        let d = Detection::parse(
            "x.sql",
            "-- id: x\n-- title: T\n-- severity: high\n-- requires: packets, conntrack\n-- why: one\n--   two: three\n-- action: do\nselect 1 as finding\n",
        )
        .unwrap();
        assert_eq!(d.why, "one two: three");
        assert_eq!(d.requires, ["packets", "conntrack"]);
        assert_eq!(d.sql, "select 1 as finding");
        let e = Detection::parse("y.sql", "-- id: x\n").unwrap_err();
        assert!(e.contains("file name"), "{e}");
        let e =
            Detection::parse("x.sql", "-- id: x\n-- title: T\n-- severity: dire\n").unwrap_err();
        assert!(e.contains("dire"), "{e}");
    }

    fn table_names(ctx: &SessionContext) -> std::collections::BTreeSet<String> {
        ctx.catalog("datafusion")
            .and_then(|c| c.schema("public"))
            .map(|s| s.table_names().into_iter().collect())
            .unwrap_or_default()
    }

    #[test]
    fn every_detection_plans_against_the_real_schemas() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let ws = Workspace::empty().unwrap();
        let before = table_names(&ws.ctx);
        for d in DETECTIONS.iter() {
            for t in d.requires.iter().flat_map(|n| n.split('|')) {
                assert!(
                    formats::tables().iter().any(|k| k.name == t.trim()),
                    "{}: requires unknown table {t}",
                    d.id
                );
            }
            rt.block_on(async {
                let (schema, _) = ws
                    .detection_rows(d)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {}", d.id, e.chain()));
                assert!(
                    schema.fields().iter().any(|f| f.name() == "finding"),
                    "{}: no `finding` column",
                    d.id
                );
            });
            // Its step tables are gone again, and nothing else.
            assert_eq!(table_names(&ws.ctx), before, "{}", d.id);
        }
    }

    /// Detections run side by side in one context: each drops only the
    /// tables it made, and a table someone else made under one of their
    /// step names survives (that detection fails, naming itself).
    #[test]
    fn detections_side_by_side_drop_only_their_own_steps() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .build()
            .unwrap();
        let ws = Workspace::empty().unwrap();
        let (taken, step) = DETECTIONS
            .iter()
            .find_map(|d| {
                let sql = d.sql.to_ascii_lowercase();
                let at = sql.find("create table ")? + "create table ".len();
                Some((d, sql[at..].split_whitespace().next()?.to_owned()))
            })
            .expect("a detection with a CREATE TABLE step");
        rt.block_on(
            ws.ctx
                .sql(&format!("create table {step} as select 1 as mine")),
        )
        .unwrap();
        let before = table_names(&ws.ctx);
        for _ in 0..3 {
            let tasks: Vec<_> = DETECTIONS
                .iter()
                .map(|d| {
                    let ctx = ws.ctx.clone();
                    rt.spawn(async move { (d, detection_rows(&ctx, d).await) })
                })
                .collect();
            for task in tasks {
                let (d, rows) = rt.block_on(task).unwrap();
                if d.id == taken.id {
                    let e = rows.unwrap_err().chain();
                    assert!(e.contains(&d.id) && e.contains(&step), "{e}");
                } else {
                    rows.unwrap_or_else(|e| panic!("{}: {}", d.id, e.chain()));
                }
            }
            assert_eq!(table_names(&ws.ctx), before);
        }
        let mine = rt.block_on(async {
            ws.ctx
                .sql(&format!("select mine from {step}"))
                .await?
                .collect()
                .await
        });
        assert_eq!(mine.unwrap()[0].num_rows(), 1);
    }
}
