//! The fleet: many bundles as one Parquet dataset, queried here or on an
//! Apache Ballista cluster.
//!
//! [`export()`] writes every table of every input into a Hive-style
//! dataset ([`layout`]: one folder per table, `host=` and `date=`
//! partitions, one file per bundle, `_capsnap/` records); [`Dataset`]
//! reads it back as capsnap's own tables, pruning partitions on `host`
//! and `date`; [`Engine`] says where the SQL runs, and on Ballista keeps
//! the detections' `CREATE TABLE` steps where the executors read them.

mod dataset;
mod engine;
mod export;
pub mod layout;

pub use dataset::Dataset;
pub use engine::{Engine, Steps};
pub use export::{Summary, export};
pub use layout::BundleRecord;
