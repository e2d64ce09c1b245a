//! Query results written as table, CSV, TSV, JSON, NDJSON or Parquet.

use crate::error::Error;
use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::pretty::pretty_format_batches_with_schema;
use datafusion::arrow::{csv, json};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::parquet::arrow::ArrowWriter;
use futures::StreamExt;
use std::io::Write;
use std::sync::Arc;

/// Output formats of `capsnap query` (and, for the text ones, `detect`):
/// the one list, whose names clap parses and `--help` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// A table for reading.
    #[default]
    Table,
    Csv,
    Tsv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// Apache Parquet (binary: use --output or redirect).
    Parquet,
}

impl Format {
    pub fn is_binary(self) -> bool {
        self == Format::Parquet
    }
}

impl std::fmt::Display for Format {
    /// The name `--format` takes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = clap::ValueEnum::to_possible_value(self).expect("no format is hidden");
        f.write_str(value.get_name())
    }
}

/// Text formats cannot show dictionary-encoded columns everywhere: unpack
/// them to plain strings first (Parquet keeps them as they are).
fn plain_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Dictionary(_, v) => {
                    Field::new(f.name(), v.as_ref().clone(), f.is_nullable())
                }
                _ => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    ))
}

/// A batch with dictionary columns unpacked to plain strings.
pub(crate) fn plain_batch(batch: &RecordBatch) -> Result<RecordBatch, Error> {
    plain(batch, &plain_schema(&batch.schema()))
}

fn plain(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, Error> {
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
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Writes every batch of `stream` to `out` in `format`, one writer for all
/// formats. Returns the number of rows. An empty result still prints its
/// header in table, CSV and TSV form. `before_output` runs once, just
/// before the first byte is written (callers clear progress displays).
pub async fn write_stream(
    format: Format,
    mut stream: SendableRecordBatchStream,
    out: &mut (dyn Write + Send),
    held: MemoryReservation,
    before_output: &mut (dyn FnMut() + Send),
) -> Result<usize, Error> {
    let schema = stream.schema();
    let text_schema = plain_schema(&schema);
    let mut rows = 0;
    match format {
        Format::Table => {
            // Column widths need every row; the table form is for reading.
            let mut batches = Vec::new();
            while let Some(b) = stream.next().await {
                let b = b?;
                rows += b.num_rows();
                let b = plain(&b, &text_schema)?;
                // What is held for the table counts against the query's
                // memory pool: a result too big to show says so.
                held.try_grow(b.get_array_memory_size())?;
                batches.push(b);
            }
            before_output();
            writeln!(
                out,
                "{}",
                pretty_format_batches_with_schema(text_schema, &batches)?
            )?;
        }
        Format::Csv | Format::Tsv => {
            before_output();
            let delimiter = if format == Format::Csv { b',' } else { b'\t' };
            let mut w = csv::WriterBuilder::new()
                .with_header(true)
                .with_delimiter(delimiter)
                .build(&mut *out);
            let mut wrote = false;
            while let Some(b) = stream.next().await {
                let b = b?;
                rows += b.num_rows();
                w.write(&plain(&b, &text_schema)?)?;
                wrote = true;
            }
            drop(w);
            if !wrote {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                writeln!(
                    out,
                    "{}",
                    names.join(if format == Format::Csv { "," } else { "\t" })
                )?;
            }
        }
        Format::Json => {
            before_output();
            // The array writer prints `[]` for no rows too.
            rows = write_json(json::ArrayWriter::new(&mut *out), &mut stream, &text_schema).await?;
            writeln!(out)?;
        }
        Format::Ndjson => {
            before_output();
            rows = write_json(
                json::LineDelimitedWriter::new(&mut *out),
                &mut stream,
                &text_schema,
            )
            .await?;
        }
        Format::Parquet => {
            before_output();
            let mut w = ArrowWriter::try_new(&mut *out, schema, None)?;
            while let Some(b) = stream.next().await {
                let b = b?;
                rows += b.num_rows();
                w.write(&b)?;
            }
            w.close()?;
        }
    }
    out.flush()?;
    Ok(rows)
}

async fn write_json<W: Write, F: json::writer::JsonFormat>(
    mut w: json::Writer<W, F>,
    stream: &mut SendableRecordBatchStream,
    text_schema: &SchemaRef,
) -> Result<usize, Error> {
    let mut rows = 0;
    while let Some(b) = stream.next().await {
        let b = b?;
        rows += b.num_rows();
        w.write(&plain(&b, text_schema)?)?;
    }
    w.finish()?;
    Ok(rows)
}
