//! What the scheduler and executor binaries of capsnap's local Ballista
//! cluster share: a logger.
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

#[cfg(test)]
mod tests {
    use super::*;
    use log::LevelFilter;

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
