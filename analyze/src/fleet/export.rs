//! `capsnap export`: every table of every input written into one Parquet
//! dataset (layout and types: [`super::layout`]).
//!
//! Inputs are exported one at a time (a bundle's tables are in memory
//! only while it is written): its tables are read as `capsnap query`
//! reads them, sorted by time, converted to the stored types and written
//! to a temporary file renamed into place; then `findings` (what `detect`
//! says of it); then its record in `_capsnap/bundles/`. A bundle exported
//! again replaces its files: those its previous record lists and the new
//! export does not write are removed, so the dataset never holds two
//! copies of a bundle.

use super::layout::{self, BundleRecord, DatasetRecord, StoredColumn};
use crate::error::Error;
use crate::load::{BundleInfo, Loaded};
use crate::source::InputSpec;
use crate::{Workspace, detect};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int16Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimestampNanosecondType};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::SortingColumn;
use datafusion::parquet::file::properties::WriterProperties;
use formats::Column;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What one export did.
#[derive(Debug, Default)]
pub struct Summary {
    /// The bundles written, in input order.
    pub bundles: Vec<BundleRecord>,
    /// Bytes of Parquet written.
    pub bytes: u64,
    /// Files written.
    pub files: usize,
    pub warnings: Vec<String>,
}

/// Exports every input into the dataset at `to` (created if missing).
/// Each bundle is read, and its queries run, within `memory_limit` bytes
/// (as `capsnap query --memory-limit`). `progress` is told of each bundle
/// as it is done.
pub async fn export(
    inputs: &[InputSpec],
    to: &Path,
    memory_limit: usize,
    progress: &mut (dyn FnMut(&BundleRecord) + Send),
) -> Result<Summary, Error> {
    if inputs.is_empty() {
        return Err(Error::NoInput);
    }
    prepare(to)?;
    let mut summary = Summary::default();
    for spec in inputs {
        for path in crate::load::expand(&spec.path)? {
            if super::Dataset::is_dataset(&path) {
                return Err(Error::Dataset {
                    path,
                    problem: "is an exported dataset already: export its bundles instead".into(),
                });
            }
            let label = if path == spec.path {
                spec.label.clone()
            } else {
                InputSpec::parse(&path.to_string_lossy()).label
            };
            let loaded = Loaded::open(&[InputSpec { label, path }], memory_limit)?;
            let record = export_one(loaded, to, memory_limit, &mut summary).await?;
            progress(&record);
            summary.bundles.push(record);
        }
    }
    Ok(summary)
}

/// Creates the dataset's folders and `dataset.json`, or checks that an
/// existing dataset has this build's layout.
fn prepare(root: &Path) -> Result<(), Error> {
    let err = |problem: String| Error::Dataset {
        path: root.to_owned(),
        problem,
    };
    let meta = root.join(layout::META_DIR);
    std::fs::create_dir_all(meta.join(layout::BUNDLES_DIR))
        .map_err(|e| err(format!("cannot create {}: {e}", meta.display())))?;
    let file = meta.join(layout::DATASET_FILE);
    if file.exists() {
        let record: DatasetRecord = super::dataset::read_json(&file).map_err(err)?;
        if record.schema_version != layout::SCHEMA_VERSION {
            return Err(err(format!(
                "dataset layout version {}; this capsnap writes version {}: export into a new folder",
                record.schema_version,
                layout::SCHEMA_VERSION
            )));
        }
    }
    let record = DatasetRecord {
        schema_version: layout::SCHEMA_VERSION,
        capsnap_version: env!("CARGO_PKG_VERSION").into(),
        layout: "<table>/host=<host>/date=<YYYY-MM-DD>/<bundle id>.parquet; host is the partition, not a file column; \
                 timestamps are microseconds UTC with <column>_nanos the nanoseconds below; UInt8/16/32 widened to the next signed type, UInt64 kept (Parquet INTEGER(64, false))"
            .into(),
        tables: layout::tables()
            .into_iter()
            .map(|(name, columns)| {
                let cols = layout::stored_columns(columns)
                    .into_iter()
                    .map(|c| format!("{}: {}", c.name, c.data_type))
                    .collect();
                (name.to_owned(), cols)
            })
            .collect(),
    };
    write_atomically(
        &file,
        &serde_json::to_vec_pretty(&record).map_err(std::io::Error::from)?,
    )?;
    for (name, _) in layout::tables() {
        std::fs::create_dir_all(root.join(name))
            .map_err(|e| err(format!("cannot create the {name} folder: {e}")))?;
    }
    Ok(())
}

async fn export_one(
    loaded: Loaded,
    root: &Path,
    memory_limit: usize,
    summary: &mut Summary,
) -> Result<BundleRecord, Error> {
    let info: BundleInfo = match loaded.bundles.as_slice() {
        [one] => one.clone(),
        _ => unreachable!("one input is one bundle"),
    };
    let fed: BTreeMap<String, Vec<String>> = loaded
        .fed
        .iter()
        .map(|(t, files)| ((*t).to_owned(), files.clone()))
        .collect();
    let ws = Workspace::register(loaded, memory_limit)?;
    let warnings = ws.warnings()?;
    let date = match info.started_ns {
        Some(ns) => day_of(ns),
        None => first_day(&ws, &info.path).await?,
    };
    let mut record = BundleRecord {
        id: layout::bundle_id(&info.name),
        bundle: info.name.clone(),
        host: info.host.clone(),
        date,
        source: std::path::absolute(&info.path)
            .unwrap_or_else(|_| info.path.clone())
            .display()
            .to_string(),
        exported: formats::bundle::rfc3339(now_ns()),
        capsnap_version: env!("CARGO_PKG_VERSION").into(),
        rows: BTreeMap::new(),
        fed,
        warnings: Vec::new(),
    };
    for table in formats::tables() {
        let sql = match layout::sort_column(table.columns) {
            Some(ts) => format!(
                "select * from \"{}\" order by \"{ts}\" nulls first",
                table.name
            ),
            None => format!("select * from \"{}\"", table.name),
        };
        let stream = ws.ctx.sql(&sql).await?.execute_stream().await?;
        let rows = write_table(root, &record, table.name, table.columns, stream, summary).await?;
        record.rows.insert(table.name.to_owned(), rows);
    }
    let reports = ws.detect(&[]).await?;
    let findings = findings_batch(&record, &detect::report_objects(&reports)?)?;
    let stream = datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
        findings.schema(),
        futures::stream::iter([Ok(findings)]),
    );
    let rows = write_table(
        root,
        &record,
        crate::findings::NAME,
        layout::FINDINGS_COLUMNS,
        Box::pin(stream),
        summary,
    )
    .await?;
    record.rows.insert(crate::findings::NAME.to_owned(), rows);
    record.warnings = warnings;
    replace_record(root, &record)?;
    Ok(record)
}

/// Writes one table of one bundle; returns its rows. No rows, no file.
async fn write_table(
    root: &Path,
    record: &BundleRecord,
    table: &str,
    columns: &'static [Column],
    mut stream: datafusion::execution::SendableRecordBatchStream,
    summary: &mut Summary,
) -> Result<u64, Error> {
    let stored = layout::stored_columns(columns);
    let schema = layout::stored_schema(columns);
    let path = root.join(record.file(table));
    let dir = path.parent().expect("a partition folder");
    std::fs::create_dir_all(dir).map_err(|e| Error::Dataset {
        path: dir.to_owned(),
        problem: format!("cannot create the partition folder: {e}"),
    })?;
    let tmp = path.with_extension(format!("parquet.tmp-{}", std::process::id()));
    let mut sorting = Vec::new();
    if let Some(ts) = layout::sort_column(columns) {
        let idx = stored.iter().position(|c| c.name == ts).expect("stored");
        sorting.push(SortingColumn {
            column_idx: idx as i32,
            descending: false,
            nulls_first: true,
        });
    }
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(layout::ROW_GROUP_ROWS))
        .set_sorting_columns((!sorting.is_empty()).then_some(sorting))
        .build();
    let mut writer: Option<ArrowWriter<std::fs::File>> = None;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        let converted = to_stored(&batch, &stored, schema.clone())?;
        if writer.is_none() {
            let file = std::fs::File::create(&tmp).map_err(|source| Error::Open {
                path: tmp.clone(),
                source,
            })?;
            writer = Some(ArrowWriter::try_new(
                file,
                schema.clone(),
                Some(props.clone()),
            )?);
        }
        if let Some(w) = writer.as_mut() {
            w.write(&converted)?;
        }
        rows += batch.num_rows() as u64;
    }
    match writer {
        Some(w) => {
            w.close()?;
            std::fs::rename(&tmp, &path).map_err(|source| Error::Open {
                path: path.clone(),
                source,
            })?;
            summary.files += 1;
            summary.bytes += std::fs::metadata(&path).map_or(0, |m| m.len());
        }
        None => {
            // A previous export of the bundle may have left rows here.
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(rows)
}

/// A batch of a table converted to its stored columns.
fn to_stored(
    batch: &RecordBatch,
    stored: &[StoredColumn],
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> Result<RecordBatch, Error> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(stored.len());
    for c in stored {
        let source = batch
            .column_by_name(c.of)
            .unwrap_or_else(|| panic!("the table has its column {}", c.of));
        let array: ArrayRef = match source.data_type() {
            DataType::Timestamp(_, _) => {
                let ns = cast(
                    source,
                    &DataType::Timestamp(
                        datafusion::arrow::datatypes::TimeUnit::Nanosecond,
                        Some("UTC".into()),
                    ),
                )?;
                let ns = ns.as_primitive::<TimestampNanosecondType>();
                if c.nanos {
                    Arc::new(Int16Array::from_iter(
                        ns.iter().map(|v| v.map(|v| v.rem_euclid(1000) as i16)),
                    ))
                } else {
                    Arc::new(
                        TimestampMicrosecondArray::from_iter(
                            ns.iter().map(|v| v.map(|v| v.div_euclid(1000))),
                        )
                        .with_timezone("UTC"),
                    )
                }
            }
            t if t == &c.data_type => source.clone(),
            // Widening (UInt32 to Int64 ...): every value fits.
            _ => cast(source, &c.data_type)?,
        };
        columns.push(array);
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// `findings` rows of one bundle, from detect's report objects.
fn findings_batch(
    record: &BundleRecord,
    objects: &[serde_json::Value],
) -> Result<RecordBatch, Error> {
    use datafusion::arrow::array::StringDictionaryBuilder;
    use datafusion::arrow::datatypes::Int32Type;
    let mut bundle = StringDictionaryBuilder::<Int32Type>::new();
    let mut host = StringDictionaryBuilder::<Int32Type>::new();
    for _ in objects {
        bundle.append_value(&record.bundle);
        host.append_option(record.host.as_deref());
    }
    let text = |k: &str| -> ArrayRef {
        Arc::new(StringArray::from(
            objects
                .iter()
                .map(|o| match &o[k] {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s.clone()),
                    v => Some(v.to_string()),
                })
                .collect::<Vec<_>>(),
        ))
    };
    let mut columns: Vec<ArrayRef> = vec![Arc::new(bundle.finish()), Arc::new(host.finish())];
    for c in &layout::FINDINGS_COLUMNS[2..] {
        columns.push(text(c.name));
    }
    Ok(RecordBatch::try_new(
        formats::schema_of(layout::FINDINGS_COLUMNS),
        columns,
    )?)
}

/// Writes the bundle's record, and removes the files its previous export
/// wrote that this one did not.
fn replace_record(root: &Path, record: &BundleRecord) -> Result<(), Error> {
    let path = root
        .join(layout::META_DIR)
        .join(layout::BUNDLES_DIR)
        .join(format!("{}.json", record.id));
    if let Ok(old) = super::dataset::read_json::<BundleRecord>(&path) {
        for (table, rows) in &old.rows {
            let new_rows = record.rows.get(table).copied().unwrap_or(0);
            if *rows > 0 && (old.file(table) != record.file(table) || new_rows == 0) {
                let _ = std::fs::remove_file(root.join(old.file(table)));
            }
        }
    }
    let bytes = serde_json::to_vec_pretty(record).map_err(std::io::Error::from)?;
    write_atomically(&path, &bytes)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp: PathBuf = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })
}

/// `YYYY-MM-DD` of a UTC time.
fn day_of(ns: u64) -> String {
    formats::bundle::rfc3339(ns)[..10].to_owned()
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The day of an input with no manifest: of its first packet, else of the
/// file's modification time.
async fn first_day(ws: &Workspace, path: &Path) -> Result<String, Error> {
    let batches = ws
        .ctx
        .sql("select cast(min(ts) as bigint) from packets")
        .await?
        .collect()
        .await?;
    let first = batches
        .first()
        .filter(|b| b.num_rows() > 0)
        .map(|b| b.column(0).as_primitive::<Int64Type>())
        .filter(|a| a.is_valid(0))
        .map(|a| a.value(0));
    if let Some(ns) = first.and_then(|ns| u64::try_from(ns).ok()) {
        return Ok(day_of(ns));
    }
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    Ok(day_of(mtime))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{TimestampNanosecondArray, UInt64Array};
    use formats::Kind;

    const COLUMNS: &[Column] = &[
        Column {
            name: "host",
            kind: Kind::Dict,
            nullable: true,
            doc: "",
        },
        Column {
            name: "ts",
            kind: Kind::Ts,
            nullable: true,
            doc: "",
        },
        Column {
            name: "n",
            kind: Kind::U64,
            nullable: true,
            doc: "",
        },
    ];

    /// Times before 1970 and below the microsecond split so that
    /// micros * 1000 + nanos is the time again; a UInt64 keeps its top
    /// value (the kernel's `~0` sentinel), not NULL.
    #[test]
    fn timestamps_split_exactly_and_u64_sentinels_stay() {
        let host: ArrayRef = Arc::new(
            vec![Some("h"), None, Some("h")]
                .into_iter()
                .collect::<datafusion::arrow::array::DictionaryArray<datafusion::arrow::datatypes::Int32Type>>(),
        );
        let ts: ArrayRef = Arc::new(
            TimestampNanosecondArray::from(vec![Some(-1), Some(1_795_303_009_341_378_101), None])
                .with_timezone("UTC"),
        );
        let n: ArrayRef = Arc::new(UInt64Array::from(vec![Some(u64::MAX), Some(5), None]));
        let batch = RecordBatch::try_new(formats::schema_of(COLUMNS), vec![host, ts, n]).unwrap();
        let stored = layout::stored_columns(COLUMNS);
        let out = to_stored(&batch, &stored, layout::stored_schema(COLUMNS)).unwrap();
        let names: Vec<String> = out
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["ts", "ts_nanos", "n"]);
        let micros = out
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
        let nanos = out
            .column(1)
            .as_primitive::<datafusion::arrow::datatypes::Int16Type>();
        assert_eq!((micros.value(0), nanos.value(0)), (-1, 999));
        assert_eq!(
            (micros.value(1), nanos.value(1)),
            (1_795_303_009_341_378, 101)
        );
        assert!(micros.is_null(2) && nanos.is_null(2));
        let n = out
            .column(2)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap();
        assert_eq!((n.value(0), n.value(1)), (u64::MAX, 5));
        assert!(n.is_null(2));
    }
}
