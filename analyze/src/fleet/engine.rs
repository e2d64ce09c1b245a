//! Where SQL runs: in this process (DataFusion), or on an Apache Ballista
//! cluster (`--engine ballista://HOST:PORT`).
//!
//! Ballista ships logical plans to its scheduler, which plans stages for
//! its executors: every table a query reads must be one they can open
//! themselves. An exported dataset is (Parquet listing tables under one
//! folder); the in-memory tables and capture scans of bundles and capture
//! files are not, so Ballista runs over a dataset only.
//!
//! A detection's `CREATE TABLE x AS` steps would become in-memory tables
//! in this process, which Ballista cannot ship either. On Ballista, [`Steps`]
//! runs each step's query on the cluster and keeps its rows as Parquet
//! under the dataset's `_capsnap/scratch/` (a folder the executors read,
//! as they read the dataset), registered as a listing table under the
//! step's name: the later statements read it there. The folder goes when
//! the SQL context does.

use super::layout;
use crate::error::Error;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::CreateMemoryTable;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where queries and detections run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Engine {
    /// DataFusion in this process.
    #[default]
    Local,
    /// An Apache Ballista scheduler, as `http://HOST:PORT`.
    Ballista { scheduler: String },
}

/// Ballista's scheduler port when the URL names none.
const DEFAULT_PORT: u16 = 50050;

impl Engine {
    /// `local`, or `ballista://HOST[:PORT]` (also `df://`, Ballista's own
    /// scheme).
    pub fn parse(s: &str) -> Result<Engine, String> {
        if s == "local" {
            return Ok(Engine::Local);
        }
        let rest = s
            .strip_prefix("ballista://")
            .or_else(|| s.strip_prefix("df://"))
            .ok_or_else(|| {
                format!(
                    "engine {s:?}: say `local` or `ballista://HOST:PORT` (a Ballista scheduler)"
                )
            })?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("engine {s:?}: port {p:?} is not a number"))?,
            ),
            _ => (rest, DEFAULT_PORT),
        };
        if host.is_empty() || host.contains('/') {
            return Err(format!("engine {s:?}: no scheduler host"));
        }
        Ok(Engine::Ballista {
            scheduler: format!("http://{host}:{port}"),
        })
    }

    pub fn is_local(&self) -> bool {
        matches!(self, Engine::Local)
    }

    /// A SQL context on this engine. On Ballista, `dataset` is the folder
    /// whose `_capsnap/scratch/` keeps the detections' steps.
    pub(crate) fn context(
        &self,
        config: SessionConfig,
        runtime: Arc<RuntimeEnv>,
        dataset: Option<&Path>,
    ) -> Result<SessionContext, Error> {
        match self {
            Engine::Local => Ok(SessionContext::new_with_config_rt(config, runtime)),
            Engine::Ballista { scheduler } => {
                use ballista_core::extension::{SessionConfigExt, SessionStateExt};
                use datafusion::execution::session_state::SessionStateBuilder;
                let dataset = dataset.ok_or_else(|| Error::EngineNeedsDataset {
                    engine: scheduler.clone(),
                })?;
                let steps = Arc::new(Steps::new(dataset)?);
                // Ballista 55's adaptive planner (AQE, on by default)
                // re-plans the stages left as earlier ones finish, and two
                // of its faults hang jobs without an error reaching us:
                // - its `ExchangeExec` drops the constants its input knows
                //   per partition, so re-planning a final
                //   `SortPreservingMergeExec` over a UNION whose branches
                //   each carry a literal sort key (`1 AS _order`,
                //   host-only-rst's evidence) fails DataFusion's
                //   SanityCheckPlan; the scheduler only logs it ("Failed
                //   to update task statuses") and the job waits for ever;
                // - socket-leak and tcp-memory-pressure are re-planned
                //   without end: thousands of new stages a minute, every
                //   task succeeding, the job never done (and still running
                //   after the client has gone).
                // The static planner cuts the plan DataFusion optimised
                // here into stages once: every detection gives the local
                // answer (cluster/tests/fleet_ballista.rs).
                let config = config
                    .upgrade_for_ballista()
                    .with_ballista_adaptive_query_planner(false)
                    .with_extension(steps);
                let state = SessionStateBuilder::new()
                    .with_default_features()
                    .with_config(config)
                    .with_runtime_env(runtime)
                    .build()
                    .upgrade_for_ballista(scheduler.clone())?;
                Ok(SessionContext::new_with_state(state))
            }
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Engine::Local => f.write_str("local"),
            Engine::Ballista { scheduler } => write!(
                f,
                "ballista://{}",
                scheduler.strip_prefix("http://").unwrap_or(scheduler)
            ),
        }
    }
}

/// Keeps the `CREATE TABLE x AS` steps run on Ballista as Parquet that the
/// executors read (see the module docs). Found by the statement runner in
/// the session's config ([`crate::sql`]).
#[derive(Debug)]
pub struct Steps {
    dir: PathBuf,
    made: AtomicUsize,
}

impl Steps {
    fn new(dataset: &Path) -> Result<Steps, Error> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = dataset
            .join(layout::META_DIR)
            .join("scratch")
            .join(format!("{}-{nanos}", std::process::id()));
        Ok(Steps {
            dir,
            made: AtomicUsize::new(0),
        })
    }

    /// Runs `step`'s query on the cluster, writes its rows under the
    /// scratch folder and registers them as the table it names.
    pub(crate) async fn materialize(
        &self,
        ctx: &SessionContext,
        step: &CreateMemoryTable,
    ) -> Result<(), Error> {
        let n = self.made.fetch_add(1, Ordering::Relaxed);
        let dir = self
            .dir
            .join(format!("{n}-{}", layout::escape(step.name.table())));
        std::fs::create_dir_all(&dir).map_err(|e| Error::Dataset {
            path: dir.clone(),
            problem: format!("cannot create the folder for step {}: {e}", step.name),
        })?;
        let df = DataFrame::new(ctx.state(), step.input.as_ref().clone());
        let schema = df.schema().inner().clone();
        let mut stream = df.execute_stream().await?;
        let path = dir.join("part-0.parquet");
        let file = std::fs::File::create(&path).map_err(|source| Error::Open {
            path: path.clone(),
            source,
        })?;
        let mut w = ArrowWriter::try_new(file, schema.clone(), None)?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            // The cluster's batches may differ from the plan in field
            // nullability, and in dictionary encoding: a dictionary column
            // (`host`, the partition) comes back from the executors as
            // plain strings. The file takes the plan's schema.
            let columns = batch
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(c, f)| {
                    if c.data_type() == f.data_type() {
                        Ok(c.clone())
                    } else {
                        cast(c, f.data_type())
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            w.write(&RecordBatch::try_new(schema.clone(), columns)?)?;
        }
        w.close()?;
        let table = ListingTable::try_new(
            ListingTableConfig::new(directory_url(&dir)?)
                .with_listing_options(
                    ListingOptions::new(Arc::new(ParquetFormat::default()))
                        .with_file_extension(".parquet"),
                )
                .with_schema(schema),
        )?;
        ctx.register_table(step.name.clone(), Arc::new(table))?;
        Ok(())
    }
}

impl Drop for Steps {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        // The scratch folder itself, when no other run uses it.
        if let Some(parent) = self.dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// The listing URL of a local folder (absolute, ending in `/` so it is
/// listed as a folder).
pub(crate) fn directory_url(dir: &Path) -> Result<ListingTableUrl, Error> {
    let abs = std::path::absolute(dir).map_err(|source| Error::Open {
        path: dir.to_owned(),
        source,
    })?;
    let mut text = abs.to_string_lossy().into_owned();
    if !text.ends_with('/') {
        text.push('/');
    }
    Ok(ListingTableUrl::parse(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_parse_from_their_urls() {
        let cases = [
            ("local", Ok(Engine::Local)),
            (
                "ballista://localhost:50050",
                Ok(Engine::Ballista {
                    scheduler: "http://localhost:50050".into(),
                }),
            ),
            (
                "ballista://10.0.0.1",
                Ok(Engine::Ballista {
                    scheduler: "http://10.0.0.1:50050".into(),
                }),
            ),
            (
                "df://sched:123/",
                Ok(Engine::Ballista {
                    scheduler: "http://sched:123".into(),
                }),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Engine::parse(text), want, "{text}");
        }
        for bad in ["spark://x", "ballista://", "ballista://h:port"] {
            assert!(Engine::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Engine::parse("ballista://h:7").unwrap().to_string(),
            "ballista://h:7"
        );
    }
}
