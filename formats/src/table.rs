//! What every table of this crate is made of: named, typed, documented
//! columns.

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::Arc;

/// A table: its SQL name, what one row is, and its columns.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub doc: &'static str,
    pub columns: &'static [Column],
}

impl Table {
    pub fn schema(&self) -> SchemaRef {
        schema_of(self.columns)
    }
}

/// The kinds of Arrow column this crate builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Dictionary-encoded string (low cardinality: labels, names, states).
    Dict,
    Str,
    Bool,
    U8,
    U16,
    U32,
    U64,
    I64,
    /// 64-bit float: rates (`per_sec` columns) and other derived figures.
    F64,
    /// UTC timestamp in nanoseconds.
    Ts,
}

impl Kind {
    pub fn data_type(self) -> DataType {
        match self {
            Kind::Dict => DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            Kind::Str => DataType::Utf8,
            Kind::Bool => DataType::Boolean,
            Kind::U8 => DataType::UInt8,
            Kind::U16 => DataType::UInt16,
            Kind::U32 => DataType::UInt32,
            Kind::U64 => DataType::UInt64,
            Kind::I64 => DataType::Int64,
            Kind::F64 => DataType::Float64,
            Kind::Ts => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        }
    }
}

/// One column of a table: its name, type, whether it is always set, and
/// what it means (shown by `capsnap tables`).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub nullable: bool,
    pub doc: &'static str,
}

/// A column, for tables whose column list is a `const` (flows, dns).
pub const fn col(name: &'static str, kind: Kind, nullable: bool, doc: &'static str) -> Column {
    Column {
        name,
        kind,
        nullable,
        doc,
    }
}

/// Builds an Arrow schema from a column list.
pub fn schema_of(columns: &[Column]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(c.name, c.kind.data_type(), c.nullable))
            .collect::<Vec<_>>(),
    ))
}
