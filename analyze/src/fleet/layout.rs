//! The dataset contract: where `capsnap export` puts each file, what the
//! `_capsnap/` records say, and how each column kind is stored. The writer
//! ([`super::export`]) and the reader ([`super::dataset`]) use this one
//! definition.
//!
//! ```text
//! DIR/_capsnap/dataset.json                    schema version, stored columns per table
//! DIR/_capsnap/bundles/<bundle id>.json        one record per exported bundle
//! DIR/<table>/host=<host>/date=<YYYY-MM-DD>/<bundle id>.parquet
//! ```
//!
//! Column types are the ones DataFusion, DuckDB and Spark all read as they
//! are ([`stored_type`]): timestamps in microseconds, adjusted to UTC
//! (Spark reads no nanosecond timestamps), with the nanoseconds below the
//! microsecond kept in a `<column>_nanos` column beside them so capsnap
//! reads every time back exactly; UInt8/16/32 widened to the next signed
//! type, UInt64 kept unsigned (Parquet `INTEGER(64, false)`: DataFusion
//! reads it as UInt64, DuckDB as UBIGINT, Spark 3.2+ as DECIMAL(20,0)).
//! No signed type holds it, and its top values are the kernel's "none"
//! sentinels (`~0ULL` as `tcp_info.tcpi_pacing_rate` when pacing is off,
//! include/uapi/linux/tcp.h), which a NULL would turn into "unknown".
//! `host` is not stored in the files: it is the
//! `host=` partition of the path, so a filter on it prunes whole folders.

use formats::{Column, Kind, Table};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The dataset layout this build writes and reads. A dataset of another
/// version is refused, naming both.
pub const SCHEMA_VERSION: u32 = 1;

/// The dataset's own records, beside the tables (a name no table has: a
/// leading `_` is hidden from DataFusion, DuckDB and Spark listings).
pub const META_DIR: &str = "_capsnap";
/// `_capsnap/dataset.json`: [`DatasetRecord`].
pub const DATASET_FILE: &str = "dataset.json";
/// `_capsnap/bundles/`: one [`BundleRecord`] per bundle.
pub const BUNDLES_DIR: &str = "bundles";

/// The partition columns, in path order.
pub const HOST: &str = "host";
pub const DATE: &str = "date";
/// The `host=` value of a bundle that names no host (Hive's, read as NULL
/// by Spark; capsnap reads it as NULL too).
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";
/// Suffix of the column holding a timestamp's nanoseconds below the
/// microsecond (0 to 999).
pub const NANOS_SUFFIX: &str = "_nanos";

/// Rows per Parquet row group: large enough for scans to read long runs,
/// small enough that a time filter skips most of a big capture.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// `_capsnap/dataset.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetRecord {
    pub schema_version: u32,
    /// capsnap that created the dataset.
    pub capsnap_version: String,
    /// What the layout is, for someone reading the folder.
    pub layout: String,
    /// The stored columns of every table, as `name: type`.
    pub tables: std::collections::BTreeMap<String, Vec<String>>,
}

/// `_capsnap/bundles/<id>.json`: one exported bundle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BundleRecord {
    /// File name of its Parquet files (without `.parquet`).
    pub id: String,
    /// The `bundle` column of its rows.
    pub bundle: String,
    /// The `host` column of its rows (the manifest's), if any.
    pub host: Option<String>,
    /// Its `date=` partition: the UTC day its collection started.
    pub date: String,
    /// Where it was exported from.
    pub source: String,
    /// When, RFC 3339 UTC.
    pub exported: String,
    pub capsnap_version: String,
    /// Rows written per table (tables with no rows have no file).
    pub rows: std::collections::BTreeMap<String, u64>,
    /// The files of the bundle that fed each table (`bundle:path`): what
    /// decides "cannot tell: no X", as on the bundle itself.
    pub fed: std::collections::BTreeMap<String, Vec<String>>,
    /// Problems found reading it.
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl BundleRecord {
    /// The Parquet file of `table` for this bundle, relative to the dataset.
    pub fn file(&self, table: &str) -> PathBuf {
        partition_dir(Path::new(""), table, self.host.as_deref(), &self.date)
            .join(format!("{}.parquet", self.id))
    }
}

/// `DIR/<table>/host=<host>/date=<date>`.
pub fn partition_dir(root: &Path, table: &str, host: Option<&str>, date: &str) -> PathBuf {
    root.join(table)
        .join(format!(
            "{HOST}={}",
            host.map_or(NULL_PARTITION.into(), escape)
        ))
        .join(format!("{DATE}={date}"))
}

/// A partition value or file name as Hive writes it: bytes other than
/// ASCII letters, digits, `-`, `_` and `.` as `%XX` (DataFusion and Spark
/// decode them), and a leading `_` or `.` too (readers skip such files).
/// Host names need none of it.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, b) in value.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'-' || (i > 0 && (b == b'_' || b == b'.')) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The file name (without `.parquet`) of a bundle's files: its name
/// without `.capsnap`, escaped.
pub fn bundle_id(bundle: &str) -> String {
    escape(bundle.strip_suffix(".capsnap").unwrap_or(bundle))
}

/// How a column of `kind` is stored.
pub fn stored_type(kind: Kind) -> datafusion::arrow::datatypes::DataType {
    use datafusion::arrow::datatypes::{DataType, TimeUnit};
    match kind {
        Kind::U8 => DataType::Int16,
        Kind::U16 => DataType::Int32,
        Kind::U32 => DataType::Int64,
        Kind::Ts => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        k => k.data_type(),
    }
}

/// One stored column: its name, its type, and where its value comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredColumn {
    pub name: String,
    pub data_type: datafusion::arrow::datatypes::DataType,
    pub nullable: bool,
    /// The table column it stores, and whether it holds that column's
    /// nanoseconds below the microsecond.
    pub of: &'static str,
    pub nanos: bool,
}

/// The columns of `table` as its Parquet files hold them: every column but
/// `host` (the partition), each timestamp followed by its `_nanos`.
pub fn stored_columns(columns: &'static [Column]) -> Vec<StoredColumn> {
    use datafusion::arrow::datatypes::DataType;
    let mut out = Vec::new();
    for c in columns.iter().filter(|c| c.name != HOST) {
        out.push(StoredColumn {
            name: c.name.to_owned(),
            data_type: stored_type(c.kind),
            nullable: c.nullable,
            of: c.name,
            nanos: false,
        });
        if c.kind == Kind::Ts {
            out.push(StoredColumn {
                name: format!("{}{NANOS_SUFFIX}", c.name),
                data_type: DataType::Int16,
                nullable: true,
                of: c.name,
                nanos: true,
            });
        }
    }
    out
}

/// The Arrow schema of the stored columns.
pub fn stored_schema(columns: &'static [Column]) -> datafusion::arrow::datatypes::SchemaRef {
    use datafusion::arrow::datatypes::{Field, Schema};
    std::sync::Arc::new(Schema::new(
        stored_columns(columns)
            .into_iter()
            .map(|c| Field::new(c.name, c.data_type, c.nullable))
            .collect::<Vec<_>>(),
    ))
}

/// The column rows are sorted by in each file: the table's first
/// timestamp (`ts`, `first_ts`, `start_time` ...), if it has one.
pub fn sort_column(columns: &[Column]) -> Option<&'static str> {
    columns.iter().find(|c| c.kind == Kind::Ts).map(|c| c.name)
}

/// The tables a dataset holds: every table of [`formats::tables()`] and
/// `findings`.
pub fn tables() -> Vec<(&'static str, &'static [Column])> {
    let mut out: Vec<(&'static str, &'static [Column])> = formats::tables()
        .iter()
        .map(|t: &&Table| (t.name, t.columns))
        .collect();
    out.push((crate::findings::NAME, FINDINGS_COLUMNS));
    out
}

/// `findings` as exported: what `capsnap detect` said of each bundle, one
/// row per finding (and per detection that found nothing or cannot tell).
pub const FINDINGS_COLUMNS: &[Column] = &[
    Column {
        name: "bundle",
        kind: Kind::Dict,
        nullable: false,
        doc: "bundle the detections ran on",
    },
    Column {
        name: "host",
        kind: Kind::Dict,
        nullable: true,
        doc: "its host",
    },
    Column {
        name: "detection",
        kind: Kind::Str,
        nullable: true,
        doc: "detection id",
    },
    Column {
        name: "severity",
        kind: Kind::Str,
        nullable: true,
        doc: "info, low, medium or high",
    },
    Column {
        name: "status",
        kind: Kind::Str,
        nullable: true,
        doc: "found, clear or cannot_tell",
    },
    Column {
        name: "summary",
        kind: Kind::Str,
        nullable: true,
        doc: "the finding in one line",
    },
    Column {
        name: "evidence",
        kind: Kind::Str,
        nullable: true,
        doc: "the evidence rows as JSON",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_escape_like_hive() {
        assert_eq!(escape("node-1.example"), "node-1.example");
        assert_eq!(escape("a b/c=d"), "a%20b%2Fc%3Dd");
        assert_eq!(escape("_x"), "%5Fx");
        assert_eq!(escape(".."), "%2E.");
        assert_eq!(
            bundle_id("capsnap-n1-20261121T101500Z.capsnap"),
            "capsnap-n1-20261121T101500Z"
        );
        let r = BundleRecord {
            id: "b".into(),
            bundle: "b.capsnap".into(),
            host: None,
            date: "2026-11-21".into(),
            source: String::new(),
            exported: String::new(),
            capsnap_version: String::new(),
            rows: Default::default(),
            fed: Default::default(),
            warnings: Vec::new(),
        };
        assert_eq!(
            r.file("sockets"),
            Path::new("sockets/host=__HIVE_DEFAULT_PARTITION__/date=2026-11-21/b.parquet")
        );
    }

    #[test]
    fn stored_columns_leave_host_to_the_path_and_split_timestamps() {
        // (UInt64 is stored as it is: every reader has it; the narrower
        // unsigned types are widened.)
        let cols = stored_columns(formats::tables()[0].columns);
        let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        assert!(!names.contains(&"host"));
        let ts = names.iter().position(|n| *n == "ts").unwrap();
        assert_eq!(names[ts + 1], "ts_nanos");
        assert!(cols.iter().all(|c| !matches!(
            c.data_type,
            datafusion::arrow::datatypes::DataType::UInt8
                | datafusion::arrow::datatypes::DataType::UInt16
                | datafusion::arrow::datatypes::DataType::UInt32
        )));
    }
}
