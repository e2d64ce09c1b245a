//! Text artifacts (/proc files, tool output, JSON lines) as tables.
//!
//! A [`Reader`] recognises one kind of file by its path and first bytes and
//! parses it into [`Rows`] of its table. [`readers()`](crate::readers) is the
//! one list of them: loading, `capsnap tables` and the tests iterate it.
//!
//! Every artifact table starts with the same context columns ([`CONTEXT`]:
//! bundle, host, netns); [`Rows`] fills them from the file's [`Origin`], so
//! a parser pushes only its own values. A line a parser cannot read is
//! recorded with [`Rows::skip`] and the lines around it are kept.

use crate::bundle::{Manifest, label_of_dir_name};
use crate::table::{Column, Kind, Table, schema_of};
use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    StringDictionaryBuilder, TimestampNanosecondBuilder, UInt8Builder, UInt16Builder,
    UInt32Builder, UInt64Builder,
};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, RecordBatch};
use std::fmt;
use std::sync::Arc;

/// The columns every artifact table starts with, filled from [`Origin`].
pub const CONTEXT: &[Column] = &[
    Column {
        name: "bundle",
        kind: Kind::Dict,
        nullable: false,
        doc: "bundle (or directory) the row comes from",
    },
    Column {
        name: "host",
        kind: Kind::Dict,
        nullable: true,
        doc: "node the bundle was collected on",
    },
    Column {
        name: "netns",
        kind: Kind::Dict,
        nullable: true,
        doc: "network namespace label (host, pod/NS/NAME, an ip netns name ...)",
    },
];

/// Where a file comes from: the values of the [`CONTEXT`] columns, and the
/// file's path inside its bundle or directory ('/'-separated).
#[derive(Debug, Clone)]
pub struct Origin {
    pub bundle: String,
    pub host: Option<String>,
    pub netns: Option<String>,
    pub path: String,
    /// The bundle's manifest, parsed once by the loader: namespace labels
    /// by directory and by inode, and what the `netns` and `collection`
    /// tables are read from.
    pub manifest: Option<Arc<Manifest>>,
}

impl Origin {
    /// The origin of `path` in a directory without a manifest (laid out
    /// by hand): a file under `netns/<dir>/` belongs to the namespace that
    /// [`label_of_dir_name`] gives.
    pub fn of(bundle: &str, host: Option<&str>, path: &str) -> Origin {
        Origin {
            bundle: bundle.to_owned(),
            host: host.map(str::to_owned),
            netns: netns_dir(path).map(label_of_dir_name),
            path: path.to_owned(),
            manifest: None,
        }
    }

    /// The origin of `path` in a bundle with `manifest`: its host, and the
    /// namespace the manifest records for the directory the file is under.
    pub fn in_bundle(bundle: &str, manifest: &Arc<Manifest>, path: &str) -> Origin {
        let netns = netns_dir(path).map(|dir| match manifest.label_of_dir(dir) {
            Some(label) => label.to_owned(),
            None => label_of_dir_name(dir),
        });
        Origin {
            bundle: bundle.to_owned(),
            host: manifest.host().map(str::to_owned),
            netns,
            path: path.to_owned(),
            manifest: Some(manifest.clone()),
        }
    }

    /// The file name: the last path component.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// The label of the namespace with this inode, from the manifest.
    pub fn label_of_inode(&self, inode: u64) -> Option<&str> {
        self.manifest.as_ref()?.label_of_inode(inode)
    }
}

/// The namespace directory of a bundle path (`netns/<dir>/...`).
fn netns_dir(path: &str) -> Option<&str> {
    let (dir, _) = path.strip_prefix("netns/")?.split_once('/')?;
    Some(dir)
}

/// One value of a row, in the order of the table's own columns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum V<'a> {
    Null,
    Str(&'a str),
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    /// UTC nanoseconds.
    Ts(i64),
}

impl<'a> From<&'a str> for V<'a> {
    fn from(s: &'a str) -> Self {
        V::Str(s)
    }
}

impl<'a> From<Option<&'a str>> for V<'a> {
    fn from(s: Option<&'a str>) -> Self {
        s.map_or(V::Null, V::Str)
    }
}

impl From<bool> for V<'_> {
    fn from(b: bool) -> Self {
        V::Bool(b)
    }
}

impl From<u64> for V<'_> {
    fn from(n: u64) -> Self {
        V::U64(n)
    }
}

impl From<Option<u64>> for V<'_> {
    fn from(n: Option<u64>) -> Self {
        n.map_or(V::Null, V::U64)
    }
}

impl From<i64> for V<'_> {
    fn from(n: i64) -> Self {
        V::I64(n)
    }
}

impl From<Option<i64>> for V<'_> {
    fn from(n: Option<i64>) -> Self {
        n.map_or(V::Null, V::I64)
    }
}

impl From<Option<f64>> for V<'_> {
    fn from(n: Option<f64>) -> Self {
        n.filter(|v| v.is_finite()).map_or(V::Null, V::F64)
    }
}

/// A line (or record) a parser could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// 1-based line number (or record number for non-line formats).
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            // A row refused when it was pushed, after its line was parsed.
            0 => write!(f, "a row: {}", self.reason),
            n => write!(f, "line {n}: {}", self.reason),
        }
    }
}

/// The rows of one table being built from one or more files.
pub struct Rows {
    table: &'static Table,
    origin: Origin,
    builders: Vec<Box<dyn ArrayBuilder>>,
    len: usize,
    skipped: Vec<Skipped>,
    skipped_total: usize,
    /// The copy of the same file taken when the window opened, if the
    /// bundle has one ([`read_pair`]).
    at_open: Option<Vec<u8>>,
    /// Reads another file of the same directory ([`Rows::beside`]).
    beside: Option<Beside>,
}

/// Reads the file at a path relative to the directory of the file being
/// parsed (`iptables-save.txt` beside `nft-ruleset.json`): its bytes, or
/// None when there is no such file or it cannot be read.
pub type Beside = std::sync::Arc<dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync>;

/// Skipped lines kept per file for messages; the rest are only counted.
const SKIPPED_KEPT: usize = 5;

impl Rows {
    /// Rows of `table`, whose columns must start with [`CONTEXT`].
    pub fn new(table: &'static Table, origin: Origin) -> Rows {
        debug_assert!(
            table
                .columns
                .iter()
                .zip(CONTEXT)
                .all(|(a, b)| a.name == b.name),
            "table {} must start with the context columns",
            table.name
        );
        Rows {
            table,
            origin,
            builders: table.columns.iter().map(|c| builder(c.kind)).collect(),
            len: 0,
            skipped: Vec::new(),
            skipped_total: 0,
            at_open: None,
            beside: None,
        }
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The copy of this file taken when the capture window opened (the
    /// file itself was taken when it closed), for readers that give the
    /// value at each end and the change during the window. None for files
    /// without such a copy: bundles of formats 1 and 2 made before the
    /// copies existed, files saved by hand, or a copy that failed.
    pub fn at_open(&self) -> Option<&[u8]> {
        self.at_open.as_deref()
    }

    /// Another file of the same bundle directory, at `rel` from this
    /// file's directory, for a reader whose rows depend on what that file
    /// already gives (the nft reader leaves out the tables iptables-save
    /// listed). None without such a file, or when the file is read alone
    /// (not from a bundle or directory).
    pub fn beside(&self, rel: &str) -> Option<Vec<u8>> {
        self.beside.as_ref().and_then(|f| f(rel))
    }

    /// Seconds between the two ends of the capture window, from the
    /// manifest (`window_open_ns`, `window_close_ns`): what a change during
    /// the window is divided by for a rate. None without a manifest that
    /// records them.
    pub fn window_secs(&self) -> Option<f64> {
        let m = self.origin.manifest.as_ref()?;
        let (open, close) = (m.window_open_ns, m.window_close_ns);
        (open > 0 && close > open).then(|| (close - open) as f64 / 1e9)
    }

    /// Rows appended so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one row: `values` are the table's own columns, after
    /// [`CONTEXT`]. A value of the wrong kind is a bug in the parser and
    /// panics in debug builds; in release it is stored as null.
    pub fn push(&mut self, values: &[V]) {
        let netns = self.origin.netns.take();
        self.push_in(netns.as_deref(), values);
        self.origin.netns = netns;
    }

    /// Appends one row whose namespace is `netns` rather than the file's.
    /// A row with no value (or one out of its column's range: a pid over
    /// 2^32) for a column that may not be null is skipped, not stored.
    pub fn push_in(&mut self, netns: Option<&str>, values: &[V]) {
        let own = &self.table.columns[CONTEXT.len()..];
        if let Some((c, v)) = own
            .iter()
            .zip(values.iter().copied().chain(std::iter::repeat(V::Null)))
            .find(|(c, v)| !c.nullable && !fits(c.kind, *v))
        {
            self.skip(0, format!("{} {v:?} is not a {:?}", c.name, c.kind));
            return;
        }
        debug_assert_eq!(
            values.len(),
            own.len(),
            "table {}: row has {} values for {} columns",
            self.table.name,
            values.len(),
            own.len()
        );
        let context = [
            V::Str(&self.origin.bundle),
            V::from(self.origin.host.as_deref()),
            V::from(netns),
        ];
        for (i, column) in self.table.columns.iter().enumerate() {
            let value = if i < CONTEXT.len() {
                context[i]
            } else {
                values.get(i - CONTEXT.len()).copied().unwrap_or(V::Null)
            };
            append(&mut *self.builders[i], column, value, self.table.name);
        }
        self.len += 1;
    }

    /// Records a line that could not be read.
    pub fn skip(&mut self, line: usize, reason: impl Into<String>) {
        self.skipped_total += 1;
        if self.skipped.len() < SKIPPED_KEPT {
            self.skipped.push(Skipped {
                line,
                reason: reason.into(),
            });
        }
    }

    /// The first few skipped lines, and how many were skipped in all.
    pub fn skipped(&self) -> (&[Skipped], usize) {
        (&self.skipped, self.skipped_total)
    }

    /// The rows as one record batch with the table's schema.
    pub fn finish(mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(|b| b.finish()).collect();
        RecordBatch::try_new(schema_of(self.table.columns), columns)
            .expect("builders are made from the same column list as the schema")
    }
}

/// Rows a builder has room for before it grows: small, because a table
/// is often built from many tiny files (100,000 one-line /proc/sys files
/// would otherwise cost the default 1024-row buffers each).
const FIRST_ROWS: usize = 16;

fn builder(kind: Kind) -> Box<dyn ArrayBuilder> {
    let n = FIRST_ROWS;
    match kind {
        Kind::Dict => Box::new(StringDictionaryBuilder::<Int32Type>::with_capacity(
            n,
            n,
            n * 16,
        )),
        Kind::Str => Box::new(StringBuilder::with_capacity(n, n * 16)),
        Kind::Bool => Box::new(BooleanBuilder::with_capacity(n)),
        Kind::U8 => Box::new(UInt8Builder::with_capacity(n)),
        Kind::U16 => Box::new(UInt16Builder::with_capacity(n)),
        Kind::U32 => Box::new(UInt32Builder::with_capacity(n)),
        Kind::U64 => Box::new(UInt64Builder::with_capacity(n)),
        Kind::I64 => Box::new(Int64Builder::with_capacity(n)),
        Kind::F64 => Box::new(Float64Builder::with_capacity(n)),
        Kind::Ts => Box::new(TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC")),
    }
}

/// Whether `value` is stored as a value (not a null) in a column of `kind`.
fn fits(kind: Kind, value: V) -> bool {
    let int = int_of(value);
    match kind {
        Kind::Dict | Kind::Str => matches!(value, V::Str(_)),
        Kind::Bool => matches!(value, V::Bool(_)),
        Kind::F64 => matches!(value, V::F64(_)),
        Kind::U8 => int.is_some_and(|n| u8::try_from(n).is_ok()),
        Kind::U16 => int.is_some_and(|n| u16::try_from(n).is_ok()),
        Kind::U32 => int.is_some_and(|n| u32::try_from(n).is_ok()),
        Kind::U64 => int.is_some_and(|n| u64::try_from(n).is_ok()),
        Kind::I64 | Kind::Ts => int.is_some_and(|n| i64::try_from(n).is_ok()),
    }
}

/// The integer a value holds, if it is one.
fn int_of(value: V) -> Option<i128> {
    match value {
        V::U64(n) => Some(i128::from(n)),
        V::I64(n) | V::Ts(n) => Some(i128::from(n)),
        _ => None,
    }
}

fn append(b: &mut dyn ArrayBuilder, column: &Column, value: V, table: &str) {
    macro_rules! put {
        ($ty:ty, $v:expr) => {{
            let b = b
                .as_any_mut()
                .downcast_mut::<$ty>()
                .expect("builder made for this kind");
            match $v {
                Some(v) => b.append_value(v),
                None => b.append_null(),
            }
        }};
    }
    let mismatch = || {
        debug_assert!(
            false,
            "table {table}: column {} ({:?}) got {value:?}",
            column.name, column.kind
        );
    };
    let int = |v: V| -> Option<i128> {
        let n = int_of(v);
        if n.is_none() && v != V::Null {
            mismatch();
        }
        n
    };
    match column.kind {
        Kind::Dict => {
            let b = b
                .as_any_mut()
                .downcast_mut::<StringDictionaryBuilder<Int32Type>>()
                .expect("builder made for this kind");
            match value {
                V::Str(s) => b.append_value(s),
                V::Null => b.append_null(),
                _ => {
                    mismatch();
                    b.append_null()
                }
            }
        }
        Kind::Str => {
            let s = match value {
                V::Str(s) => Some(s),
                V::Null => None,
                _ => {
                    mismatch();
                    None
                }
            };
            put!(StringBuilder, s)
        }
        Kind::Bool => {
            let v = match value {
                V::Bool(v) => Some(v),
                V::Null => None,
                _ => {
                    mismatch();
                    None
                }
            };
            put!(BooleanBuilder, v)
        }
        Kind::U8 => put!(UInt8Builder, int(value).and_then(|n| u8::try_from(n).ok())),
        Kind::U16 => put!(
            UInt16Builder,
            int(value).and_then(|n| u16::try_from(n).ok())
        ),
        Kind::U32 => put!(
            UInt32Builder,
            int(value).and_then(|n| u32::try_from(n).ok())
        ),
        Kind::U64 => put!(
            UInt64Builder,
            int(value).and_then(|n| u64::try_from(n).ok())
        ),
        Kind::I64 => put!(Int64Builder, int(value).and_then(|n| i64::try_from(n).ok())),
        Kind::F64 => {
            let v = match value {
                V::F64(v) => Some(v),
                V::Null => None,
                _ => {
                    mismatch();
                    None
                }
            };
            put!(Float64Builder, v)
        }
        Kind::Ts => put!(
            TimestampNanosecondBuilder,
            int(value).and_then(|n| i64::try_from(n).ok())
        ),
    }
}

/// Reads one kind of artifact file into rows of its table.
#[derive(Clone, Copy)]
pub struct Reader {
    /// The table the rows go to.
    pub table: &'static Table,
    /// What the reader reads, for messages and `capsnap tables`:
    /// "/proc/net/tcp, tcp6, udp, udp6, raw, raw6".
    pub what: &'static str,
    /// Whether this reader takes the file at `path` ('/'-separated, relative
    /// to the bundle or directory root) whose first bytes are `head` (up to
    /// 4 KiB). Path first where it is decisive; content for files saved by
    /// hand under any name.
    pub claims: fn(path: &str, head: &[u8]) -> bool,
    /// Files next to this one (relative to this file's directory) that
    /// hold the same rows with more detail: when one is present, this file
    /// is not read, so rows are not counted twice (a bundle holds both
    /// /proc/net/unix and the sock_diag dump).
    pub superseded_by: &'static [&'static str],
    /// Parses the whole file. An `Err` means the file is not of this kind
    /// at all; damaged lines are [`Rows::skip`]ped instead.
    pub parse: fn(input: &[u8], rows: &mut Rows) -> Result<(), String>,
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("table", &self.table.name)
            .field("what", &self.what)
            .finish()
    }
}

/// The text of a file, lossily decoded: /proc and tool output are ASCII,
/// but a path or comm may hold any bytes and must not cost the file.
pub fn text(input: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(input)
}

/// True when the last component of `path` is one of `names`.
pub fn file_name_is(path: &str, names: &[&str]) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    names.contains(&name)
}

/// True when `path` ends with `suffix` at a component boundary
/// (`proc/net/tcp` matches `x/proc/net/tcp`, not `x/proc/net/xtcp`).
pub fn path_ends_with(path: &str, suffix: &str) -> bool {
    path == suffix
        || path
            .strip_suffix(suffix)
            .is_some_and(|rest| rest.ends_with('/'))
}

/// Declares `pub const TABLE: Table` whose columns are [`CONTEXT`]
/// followed by the given ones:
/// `artifact_table!("sockstat", "one row per ...", [ ("protocol", Dict, false, "doc"), ... ]);`
#[macro_export]
macro_rules! artifact_table {
    ($name:literal, $doc:literal, [ $( ($col:literal, $kind:ident, $nullable:literal, $cdoc:literal) ),* $(,)? ]) => {
        /// The columns, context first.
        pub const COLUMNS: &[$crate::Column] = &[
            $crate::CONTEXT[0], $crate::CONTEXT[1], $crate::CONTEXT[2],
            $( $crate::Column { name: $col, kind: $crate::Kind::$kind, nullable: $nullable, doc: $cdoc } ),*
        ];
        /// The table as listed by `capsnap tables`.
        pub const TABLE: $crate::Table = $crate::Table { name: $name, doc: $doc, columns: COLUMNS };
    };
}

/// Parses `input` with `reader` into a batch; the skipped lines come back
/// with it.
pub fn read(
    reader: &Reader,
    input: &[u8],
    origin: Origin,
) -> Result<(RecordBatch, Vec<Skipped>, usize), String> {
    read_pair(reader, input, None, origin)
}

/// [`read`] of a file taken when the capture window closed, with the copy
/// of it taken when the window opened ([`Rows::at_open`]).
pub fn read_pair(
    reader: &Reader,
    input: &[u8],
    at_open: Option<&[u8]>,
    origin: Origin,
) -> Result<(RecordBatch, Vec<Skipped>, usize), String> {
    read_with(reader, input, at_open, None, origin)
}

/// [`read_pair`], with the other files of the file's directory readable
/// through `beside` ([`Rows::beside`]).
pub fn read_with(
    reader: &Reader,
    input: &[u8],
    at_open: Option<&[u8]>,
    beside: Option<Beside>,
    origin: Origin,
) -> Result<(RecordBatch, Vec<Skipped>, usize), String> {
    let mut rows = Rows::new(reader.table, origin);
    rows.at_open = at_open.map(<[u8]>::to_vec);
    rows.beside = beside;
    (reader.parse)(input, &mut rows)?;
    let skipped = rows.skipped.clone();
    let total = rows.skipped_total;
    Ok((rows.finish(), skipped, total))
}

/// An empty batch of `table`, for tables no input fed.
pub fn empty(table: &Table) -> RecordBatch {
    RecordBatch::new_empty(schema_of(table.columns))
}

/// Reading columns back in tests, whatever their encoding.
#[cfg(test)]
pub(crate) mod testing {
    use arrow_array::RecordBatch;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type};
    use arrow_schema::DataType;

    /// A string column, plain or dictionary-encoded, as owned strings.
    pub fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
        let col = batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"));
        if let Some(dict) = col.as_dictionary_opt::<Int32Type>() {
            let values = dict.values().as_string::<i32>();
            dict.keys()
                .iter()
                .map(|k| k.map(|k| values.value(k as usize).to_owned()))
                .collect()
        } else {
            col.as_string::<i32>()
                .iter()
                .map(|s| s.map(str::to_owned))
                .collect()
        }
    }

    /// The origin of `path` in a bundle whose window was `secs` long.
    pub fn in_window(path: &str, secs: u64) -> super::Origin {
        let m = crate::bundle::Manifest {
            format_version: crate::bundle::FORMAT_VERSION,
            window_open_ns: 1_000_000_000,
            window_close_ns: 1_000_000_000 + secs * 1_000_000_000,
            ..Default::default()
        };
        super::Origin::in_bundle("b", &std::sync::Arc::new(m), path)
    }

    /// A signed integer column, as i64.
    pub fn i64s(batch: &RecordBatch, name: &str) -> Vec<Option<i64>> {
        let col = batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"));
        col.as_primitive::<arrow_array::types::Int64Type>()
            .iter()
            .collect()
    }

    /// A float column.
    pub fn f64s(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
        let col = batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"));
        col.as_primitive::<arrow_array::types::Float64Type>()
            .iter()
            .collect()
    }

    /// An unsigned integer column of any width, as u64.
    pub fn u64s(batch: &RecordBatch, name: &str) -> Vec<Option<u64>> {
        let col = batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"));
        match col.data_type() {
            DataType::UInt8 => col
                .as_primitive::<UInt8Type>()
                .iter()
                .map(|v| v.map(u64::from))
                .collect(),
            DataType::UInt16 => col
                .as_primitive::<UInt16Type>()
                .iter()
                .map(|v| v.map(u64::from))
                .collect(),
            DataType::UInt32 => col
                .as_primitive::<UInt32Type>()
                .iter()
                .map(|v| v.map(u64::from))
                .collect(),
            _ => col.as_primitive::<UInt64Type>().iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    artifact_table!(
        "demo",
        "a test table",
        [
            ("name", Dict, false, "a name"),
            ("count", U64, true, "a count"),
            ("ts", Ts, true, "a time"),
        ]
    );

    #[test]
    fn rows_fill_the_context_columns_from_the_origin() {
        let origin = Origin::of(
            "b.capsnap",
            Some("node1"),
            "netns/pod%2Fdefault%2Fweb/proc/net/sockstat",
        );
        assert_eq!(origin.netns.as_deref(), Some("pod/default/web"));
        let mut rows = Rows::new(&TABLE, origin);
        rows.push(&[V::Str("a"), V::U64(7), V::Ts(5)]);
        rows.push(&[V::Str("b"), V::Null, V::Null]);
        rows.skip(3, "bad");
        assert_eq!(rows.skipped().1, 1);
        let batch = rows.finish();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.num_columns(), 6);
        let netns = arrow_array::cast::AsArray::as_dictionary::<Int32Type>(batch.column(2));
        let values = arrow_array::cast::AsArray::as_string::<i32>(netns.values());
        assert_eq!(
            values.value(netns.keys().value(0) as usize),
            "pod/default/web"
        );
    }

    #[test]
    fn a_row_without_a_value_for_a_required_column_is_skipped_10() {
        // Any parser that hands a required column nothing, or a number out
        // of its range, loses that row only (it used to panic in finish).
        let mut rows = Rows::new(
            &crate::processes::fds::TABLE,
            Origin::of("b", None, "fds.tsv"),
        );
        rows.push(&[V::U64(1), V::U64(2), V::Str("x"), V::Str("file"), V::Null]);
        rows.push(&[
            V::U64(1 << 40),
            V::U64(2),
            V::Str("x"),
            V::Str("file"),
            V::Null,
        ]);
        rows.push(&[V::U64(1), V::Null, V::Str("x"), V::Str("file"), V::Null]);
        let (skipped, total) = rows.skipped();
        assert_eq!(total, 2);
        assert_eq!(
            skipped[0].to_string(),
            "a row: pid U64(1099511627776) is not a U32"
        );
        assert_eq!(rows.finish().num_rows(), 1);
    }

    #[test]
    fn origin_of_files_outside_netns_has_no_namespace() {
        assert_eq!(Origin::of("b", None, "processes.jsonl").netns, None);
        assert_eq!(
            Origin::of("b", None, "netns/host/sysctls.txt")
                .netns
                .as_deref(),
            Some("host")
        );
        assert_eq!(
            Origin::of("b", None, "netns/host/proc/net/tcp")
                .netns
                .as_deref(),
            Some("host")
        );
    }

    #[test]
    fn path_suffixes_match_whole_components() {
        assert!(path_ends_with("x/proc/net/tcp", "proc/net/tcp"));
        assert!(path_ends_with("proc/net/tcp", "proc/net/tcp"));
        assert!(!path_ends_with("x/proc/net/xtcp", "net/tcp"));
    }
}
