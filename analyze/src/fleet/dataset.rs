//! Reading an exported dataset back as capsnap's tables.
//!
//! Each table is a Parquet listing table over `DIR/<table>/`, with `host`
//! and `date` as its Hive partition columns, under a view that gives the
//! table its own columns back, in their order and with their types:
//! widened integers cast back, timestamps rebuilt to the nanosecond from
//! their microseconds and `_nanos`, `host` from the path. The view adds
//! one column, `date` (the `date=` partition), last.
//!
//! A filter on `host` or `date` reaches the listing table through the view
//! as a filter on its partition columns, so only the matching folders are
//! listed and read (`where host = 'x'` lists `DIR/<table>/host=x/` only).
//! Both DataFusion in this process and Ballista's scheduler plan it so.

use super::engine::directory_url;
use super::layout::{self, BundleRecord, DatasetRecord};
use crate::error::Error;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::common::Column as ColumnRef;
use datafusion::datasource::ViewTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast, lit};
use formats::{Column, Kind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An exported dataset: its folder and the bundles in it.
#[derive(Debug)]
pub struct Dataset {
    pub root: PathBuf,
    pub bundles: Vec<BundleRecord>,
}

impl Dataset {
    /// Whether `path` is a dataset folder (it has `_capsnap/dataset.json`).
    pub fn is_dataset(path: &Path) -> bool {
        path.join(layout::META_DIR)
            .join(layout::DATASET_FILE)
            .is_file()
    }

    /// Reads the dataset's records; refuses a dataset of another layout
    /// version.
    pub fn open(root: &Path) -> Result<Dataset, Error> {
        let root = std::path::absolute(root).map_err(|source| Error::Open {
            path: root.to_owned(),
            source,
        })?;
        let err = |problem: String| Error::Dataset {
            path: root.clone(),
            problem,
        };
        let meta = root.join(layout::META_DIR);
        let record: DatasetRecord = read_json(&meta.join(layout::DATASET_FILE)).map_err(err)?;
        if record.schema_version != layout::SCHEMA_VERSION {
            return Err(err(format!(
                "dataset layout version {}; this capsnap reads version {} (export the bundles again)",
                record.schema_version,
                layout::SCHEMA_VERSION
            )));
        }
        let mut bundles = Vec::new();
        let dir = meta.join(layout::BUNDLES_DIR);
        let entries =
            std::fs::read_dir(&dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                bundles.push(read_json::<BundleRecord>(&path).map_err(err)?);
            }
        }
        bundles.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Dataset { root, bundles })
    }

    /// The files of its bundles that fed each table.
    pub fn fed(&self) -> BTreeMap<&'static str, Vec<String>> {
        let mut fed: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for (name, _) in layout::tables() {
            for b in &self.bundles {
                if let Some(files) = b.fed.get(name) {
                    fed.entry(name).or_default().extend(files.iter().cloned());
                }
            }
        }
        fed
    }

    /// What reading its bundles warned of.
    pub fn warnings(&self) -> Vec<String> {
        self.bundles
            .iter()
            .flat_map(|b| b.warnings.iter().cloned())
            .collect()
    }

    /// A provider for `table` (one of [`layout::tables()`]): the view over
    /// its Parquet files described in the module docs. With
    /// `plain_strings` (on Ballista) dictionary columns are plain strings:
    /// Ballista moves batches between stages over Arrow Flight, whose
    /// encoder turns dictionaries into their values
    /// (`DictionaryHandling::Hydrate`, arrow-flight's default), and a stage
    /// planned for a dictionary then refuses the batch.
    pub fn table(
        &self,
        name: &str,
        columns: &'static [Column],
        plain_strings: bool,
    ) -> Result<Arc<dyn TableProvider>, Error> {
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::Dataset {
            path: dir.clone(),
            problem: format!("cannot create the table folder: {e}"),
        })?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(vec![
                (layout::HOST.to_owned(), host_type(plain_strings)),
                (layout::DATE.to_owned(), DataType::Date32),
            ]);
        let listing = ListingTable::try_new(
            ListingTableConfig::new(directory_url(&dir)?)
                .with_listing_options(options)
                .with_schema(layout::stored_schema(columns)),
        )?;
        let scan = format!("{name}_parquet");
        let column = |c: &str| Expr::Column(ColumnRef::new(Some(scan.as_str()), c));
        let null_hosts = self.bundles.iter().any(|b| b.host.is_none());
        let mut exprs = Vec::with_capacity(columns.len() + 1);
        for c in columns {
            let e = match c.kind {
                _ if c.name == layout::HOST => {
                    let host = column(layout::HOST);
                    if null_hosts {
                        // Only when a bundle has no host: a plain column
                        // lets the listing take `host = 'x'` as a prefix.
                        datafusion::functions::expr_fn::nullif(host, lit(layout::NULL_PARTITION))
                    } else {
                        host
                    }
                }
                Kind::Ts => {
                    let micros = cast(column(c.name), DataType::Int64);
                    let nanos = cast(
                        column(&format!("{}{}", c.name, layout::NANOS_SUFFIX)),
                        DataType::Int64,
                    );
                    cast(micros * lit(1000i64) + nanos, c.kind.data_type())
                }
                Kind::U8 | Kind::U16 | Kind::U32 | Kind::U64 => {
                    cast(column(c.name), c.kind.data_type())
                }
                Kind::Dict if plain_strings => cast(column(c.name), DataType::Utf8),
                _ => column(c.name),
            };
            exprs.push(e.alias(c.name));
        }
        exprs.push(column(layout::DATE).alias(layout::DATE));
        let plan =
            LogicalPlanBuilder::scan(scan.as_str(), provider_as_source(Arc::new(listing)), None)?
                .project(exprs)?
                .build()?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

/// The type of the `host` partition column: the type `host` has in every
/// table.
fn host_type(plain_strings: bool) -> DataType {
    if plain_strings {
        DataType::Utf8
    } else {
        Kind::Dict.data_type()
    }
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}
