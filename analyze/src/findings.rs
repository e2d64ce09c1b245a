//! The `findings` table: what every detection reports, one row per finding
//! (and one per detection that found nothing or cannot tell). It is lazy:
//! the detections run when a query first scans it, on a SQL context of
//! their own over the same inputs, and their answer is kept for the
//! queries after it.

use crate::Inputs;
use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::{MemTable, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use std::sync::{Arc, Mutex, PoisonError};

/// The table's name.
pub const NAME: &str = "findings";

/// What `capsnap tables` says of it.
pub const DOC: &str = "findings — what `capsnap detect` reports, one row per finding (and per detection that found nothing or cannot tell); computed when a query reads it\n  \
     detection, severity, status (found, clear, cannot_tell), summary: string; evidence: the evidence rows as JSON\n";

const COLUMNS: [&str; 5] = ["detection", "severity", "status", "summary", "evidence"];

/// The `findings` table over one set of inputs.
pub struct FindingsTable {
    inputs: Arc<Inputs>,
    computed: Mutex<Option<RecordBatch>>,
}

impl std::fmt::Debug for FindingsTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FindingsTable").finish_non_exhaustive()
    }
}

impl FindingsTable {
    pub fn new(inputs: Arc<Inputs>) -> Self {
        FindingsTable {
            inputs,
            computed: Mutex::new(None),
        }
    }

    /// Runs every detection (once) and returns its rows.
    async fn rows(&self) -> Result<RecordBatch, crate::Error> {
        if let Some(b) = self.lock().as_ref() {
            return Ok(b.clone());
        }
        let ctx = self.inputs.context(false)?;
        let reports = crate::detect::run(&ctx, &self.inputs, &[]).await?;
        let objects = crate::detect::report_objects(&reports)?;
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
        let batch = RecordBatch::try_new(schema(), COLUMNS.map(text).to_vec())?;
        *self.lock() = Some(batch.clone());
        Ok(batch)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<RecordBatch>> {
        self.computed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(
        COLUMNS
            .map(|n| Field::new(n, DataType::Utf8, true))
            .to_vec(),
    ))
}

#[async_trait]
impl TableProvider for FindingsTable {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self
            .rows()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        MemTable::try_new(schema(), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}
