//! What the scheduler and executor binaries of capsnap's local Ballista
//! cluster share: a logger, and the scheduler's plan fix-up
//! ([`MetricsBearingLeaves`]).
//!
//! Ballista reports through the `log` facade (a task that failed, a job
//! that was cancelled, an executor lost), and its own binaries install a
//! `tracing` subscriber for it; without a logger all of it is dropped and a
//! stuck job leaves no trace. This one writes to stderr (the cluster
//! script sends it to `executorN.log` / `scheduler.log`), needs no crate
//! beyond `log`, and takes its filter from `RUST_LOG` as Ballista's
//! binaries do.

use std::io::Write;

/// Installs the logger. `RUST_LOG` is a comma-separated list of `LEVEL`
/// (the default) and `target=LEVEL` entries, the longest matching target
/// prefix winning (`info,ballista_executor=debug`); unset, `info`.
pub fn init_logging(program: &'static str) {
    let spec = std::env::var("RUST_LOG").unwrap_or_default();
    let logger = Logger::parse(program, &spec);
    let max = logger
        .rules
        .iter()
        .map(|(_, l)| *l)
        .chain([logger.default])
        .max()
        .unwrap_or(log::LevelFilter::Info);
    // `set_logger` with a leaked box rather than `set_boxed_logger`: the
    // latter needs log's `std` feature, and turning a feature of `log` on
    // would rebuild every crate that uses it, DataFusion included.
    if log::set_logger(Box::leak(Box::new(logger))).is_ok() {
        log::set_max_level(max);
    }
}

struct Logger {
    program: &'static str,
    default: log::LevelFilter,
    /// `(target prefix, level)`, longest prefix first.
    rules: Vec<(String, log::LevelFilter)>,
}

impl Logger {
    fn parse(program: &'static str, spec: &str) -> Logger {
        let mut default = log::LevelFilter::Info;
        let mut rules = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match entry.split_once('=') {
                Some((target, level)) => {
                    if let Ok(level) = level.trim().parse() {
                        rules.push((target.trim().replace('-', "_"), level));
                    }
                }
                None => {
                    if let Ok(level) = entry.parse() {
                        default = level;
                    }
                }
            }
        }
        rules.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
        Logger {
            program,
            default,
            rules,
        }
    }

    fn level_for(&self, target: &str) -> log::LevelFilter {
        self.rules
            .iter()
            .find(|(prefix, _)| {
                target == prefix
                    || target
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.starts_with("::"))
            })
            .map_or(self.default, |(_, l)| *l)
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= self.level_for(metadata.target())
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        // One write per line, so lines of concurrent tasks do not interleave.
        let line = format!(
            "{}.{:03} {:<5} {} {}: {}\n",
            now.as_secs(),
            now.subsec_millis(),
            record.level(),
            self.program,
            record.target(),
            record.args()
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// A physical optimizer rule for the scheduler: every `EmptyExec` and
/// `PlaceholderRowExec` becomes the same rows from a `DataSourceExec` over
/// memory.
///
/// Why: before it ships a stage to an executor, Ballista 55's scheduler
/// restricts the plan to the task's partitions
/// (ballista-scheduler `state/task_builder.rs`): under a `UnionExec`, a
/// branch that owns none of them and is an `EmptyExec` or
/// `PlaceholderRowExec` is swapped for a 0-partition `DataSourceExec`. Those
/// two report no metrics and a `DataSourceExec` does, so the tasks of one
/// stage report different numbers of operator metrics, the scheduler
/// refuses the second ("task metrics array size 9 does not equal with the
/// stage metrics array size 8"), only logs it, and the job never ends. A
/// table of the dataset with no files is an `EmptyExec` (over 200
/// generated nodes, `inet_sockets` in socket-leak and tcp-memory-pressure
/// hung so). With the leaves already `DataSourceExec`s, every task's plan
/// has the same operators.
#[derive(Debug, Default)]
pub struct MetricsBearingLeaves;

impl datafusion::physical_optimizer::PhysicalOptimizerRule for MetricsBearingLeaves {
    fn optimize(
        &self,
        plan: std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>,
        _config: &datafusion::config::ConfigOptions,
    ) -> datafusion::common::Result<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>
    {
        use datafusion::arrow::array::{RecordBatch, RecordBatchOptions, new_null_array};
        use datafusion::common::tree_node::{Transformed, TreeNode};
        use datafusion::datasource::memory::MemorySourceConfig;
        use datafusion::physical_plan::ExecutionPlanProperties;
        use datafusion::physical_plan::empty::EmptyExec;
        use datafusion::physical_plan::placeholder_row::PlaceholderRowExec;
        plan.transform_up(|p| {
            let rows = if p.is::<EmptyExec>() {
                0
            } else if p.is::<PlaceholderRowExec>() {
                // One row of NULLs per partition, as PlaceholderRowExec
                // makes it (datafusion-physical-plan `placeholder_row.rs`).
                1
            } else {
                return Ok(Transformed::no(p));
            };
            let schema = p.schema();
            let partition: Vec<RecordBatch> = if rows == 0 {
                Vec::new()
            } else {
                let columns = schema
                    .fields()
                    .iter()
                    .map(|f| new_null_array(f.data_type(), rows))
                    .collect();
                vec![RecordBatch::try_new_with_options(
                    schema.clone(),
                    columns,
                    &RecordBatchOptions::new().with_row_count(Some(rows)),
                )?]
            };
            let partitions = vec![partition; p.output_partitioning().partition_count()];
            Ok(Transformed::yes(
                MemorySourceConfig::try_new_exec(&partitions, schema, None)? as _,
            ))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "capsnap_metrics_bearing_leaves"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::LevelFilter;

    /// An empty table scanned beside a real one (a UNION, as a detection
    /// reads `sockets` and `inet_sockets`): the empty leaf becomes a
    /// DataSourceExec with the same schema, partitions and (no) rows.
    #[test]
    fn empty_and_placeholder_leaves_become_memory_scans() {
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::physical_optimizer::PhysicalOptimizerRule;
        use datafusion::physical_plan::ExecutionPlan;
        use datafusion::physical_plan::empty::EmptyExec;
        use datafusion::physical_plan::placeholder_row::PlaceholderRowExec;
        use datafusion::physical_plan::union::UnionExec;
        use std::sync::Arc;
        let schema = Arc::new(Schema::new(vec![Field::new(
            "inode",
            DataType::UInt64,
            true,
        )]));
        let plan: Arc<dyn ExecutionPlan> = UnionExec::try_new(vec![
            Arc::new(EmptyExec::new(schema.clone()).with_partitions(2)),
            Arc::new(PlaceholderRowExec::new(schema.clone())),
        ])
        .unwrap();
        let out = MetricsBearingLeaves
            .optimize(plan, &Default::default())
            .unwrap();
        let shown = datafusion::physical_plan::displayable(out.as_ref())
            .indent(false)
            .to_string();
        assert!(
            !shown.contains("EmptyExec") && !shown.contains("PlaceholderRow"),
            "{shown}"
        );
        assert_eq!(out.schema(), schema);
        assert_eq!(
            datafusion::physical_plan::ExecutionPlanProperties::output_partitioning(&out)
                .partition_count(),
            3
        );
        // Every leaf reports metrics, whatever partitions a task keeps.
        for leaf in out.children() {
            assert!(
                leaf.children().is_empty() && leaf.metrics().is_some(),
                "{shown}"
            );
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let batches = rt
            .block_on(datafusion::physical_plan::collect(
                out.clone(),
                Arc::new(datafusion::execution::TaskContext::default()),
            ))
            .unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 1, "the placeholder's one row of NULLs, nothing else");
    }

    #[test]
    fn rust_log_entries_pick_the_longest_target() {
        let l = Logger::parse(
            "t",
            "warn, ballista_executor=debug,ballista_executor::flight_service=off,x=bogus",
        );
        assert_eq!(l.level_for("datafusion::physical_plan"), LevelFilter::Warn);
        assert_eq!(
            l.level_for("ballista_executor::execution_loop"),
            LevelFilter::Debug
        );
        assert_eq!(
            l.level_for("ballista_executor::flight_service"),
            LevelFilter::Off
        );
        assert_eq!(l.level_for("ballista_executorx"), LevelFilter::Warn);
        assert_eq!(l.level_for("x"), LevelFilter::Warn);
        assert_eq!(Logger::parse("t", "").default, LevelFilter::Info);
    }
}
