//! Query results as text grids: what the report's pages show is text, and
//! numbers are parsed back only where a chart needs them.

use crate::error::Error;
use datafusion::arrow::array::{Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;

/// The flows of the inputs, computed once for the whole report (each read
/// of `flows` aggregates the captures again).
pub const FLOWS: &str = "report_flows";

/// Runs `body` with [`FLOWS`] registered in `ctx`, and drops it again
/// whatever `body` returns.
pub async fn with_flows<T>(
    ctx: &SessionContext,
    body: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    ctx.sql(&format!(
        "CREATE TABLE {FLOWS} AS SELECT bundle, host, capture, netns, proto, src_ip, src_port, dst_ip, dst_port, \
         first_ts, last_ts, packets, bytes, history, conn_state FROM flows"
    ))
    .await?
    .collect()
    .await?;
    let result = body.await;
    let _ = ctx.deregister_table(FLOWS);
    result
}

/// Rows of text cells under named columns (a null is an empty cell).
#[derive(Debug, Clone, Default)]
pub struct Grid {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Grid {
    /// The text of `batches`, every column cast to text.
    pub fn of(batches: &[RecordBatch]) -> Result<Grid, Error> {
        let mut grid = Grid::default();
        for b in batches {
            let b = crate::output::plain_batch(b)?;
            if grid.columns.is_empty() {
                grid.columns = b
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
            }
            let cols: Vec<StringArray> = b
                .columns()
                .iter()
                .map(|c| {
                    let c = cast(c, &DataType::Utf8)?;
                    Ok(c.as_any()
                        .downcast_ref::<StringArray>()
                        .cloned()
                        .unwrap_or_else(|| StringArray::new_null(c.len())))
                })
                .collect::<Result<_, Error>>()?;
            for r in 0..b.num_rows() {
                grid.rows.push(
                    cols.iter()
                        .map(|c| {
                            if c.is_valid(r) {
                                c.value(r).to_owned()
                            } else {
                                String::new()
                            }
                        })
                        .collect(),
                );
            }
        }
        Ok(grid)
    }

    /// Index of column `name`.
    pub fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// Runs one query and returns its rows as text.
pub async fn grid(ctx: &SessionContext, sql: &str) -> Result<Grid, Error> {
    let df = ctx.sql(sql).await?;
    let columns: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let batches = df.collect().await?;
    let mut g = Grid::of(&batches)?;
    g.columns = columns;
    Ok(g)
}

/// An integer cell (empty or not an integer: 0).
pub fn int(cell: &str) -> i64 {
    cell.parse().unwrap_or(0)
}

/// `text` as a SQL string literal.
pub fn lit(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Nanoseconds since the epoch of an RFC 3339 UTC time as Arrow prints it
/// (`2026-11-21T23:15:42.033671795Z`, fraction and `Z` optional).
pub fn parse_ts(text: &str) -> Option<i64> {
    let t = text.trim().trim_end_matches('Z');
    let (date, time) = t.split_once(['T', ' '])?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut h = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (h.next()??, h.next()??, h.next()??);
    if !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let frac_ns: i64 = format!("{frac:0<9}").get(..9)?.parse().ok()?;
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000_000) + frac_ns)
}

/// `HH:MM:SS` (UTC) of nanoseconds since the epoch, with `digits` of the
/// fraction.
pub fn clock(ns: i64, digits: usize) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let day = secs.rem_euclid(86_400);
    let mut s = format!("{:02}:{:02}:{:02}", day / 3600, day % 3600 / 60, day % 60);
    if digits > 0 {
        let f = format!("{frac:09}");
        s.push('.');
        s.push_str(&f[..digits.min(9)]);
    }
    s
}

/// Cell text of one row by column name (empty when the column is missing).
pub fn cell<'a>(grid: &Grid, row: &'a [String], name: &str) -> &'a str {
    grid.col(name)
        .and_then(|i| row.get(i))
        .map_or("", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_back_as_arrow_prints_them() {
        let ns = 1_795_293_240_500_000_000;
        assert_eq!(parse_ts("2026-11-21T20:34:00.500000000Z"), Some(ns));
        assert_eq!(parse_ts("2026-11-21T20:34:00.5Z"), Some(ns));
        assert_eq!(parse_ts("2026-11-21T20:34:00"), Some(ns - 500_000_000));
        assert_eq!(parse_ts("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_ts("not a time"), None);
        assert_eq!(parse_ts("2026-13-01T00:00:00Z"), None);
        assert_eq!(clock(ns, 3), "20:34:00.500");
        assert_eq!(lit("it's"), "'it''s'");
    }
}
