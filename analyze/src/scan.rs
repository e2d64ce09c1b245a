//! Capture files as streaming DataFusion tables.
//!
//! `packets` is scanned in partitions of whole chunks, decoded in parallel,
//! building only the projected columns, a batch at a time: memory follows
//! the batch size, not the file size. `flows` aggregates each capture with
//! rayon over its chunks and emits one batch per capture.

use crate::source::CaptureSource;
use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use formats::{FlowTable, PacketBuilder};
use indicatif::ProgressBar;
use rayon::prelude::*;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

/// Files smaller than this are read in one partition, so that small
/// captures list their frames in file order even without ORDER BY.
const SMALL_INPUT: usize = 16 * 1024 * 1024;

/// Which of the capture tables a provider serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureTable {
    Packets,
    Flows,
}

/// A capture table over one or more capture files.
#[derive(Debug)]
pub struct CaptureProvider {
    table: CaptureTable,
    sources: Arc<Vec<Arc<CaptureSource>>>,
    progress: ProgressBar,
}

impl CaptureProvider {
    pub fn new(
        table: CaptureTable,
        sources: Arc<Vec<Arc<CaptureSource>>>,
        progress: ProgressBar,
    ) -> Self {
        CaptureProvider {
            table,
            sources,
            progress,
        }
    }
}

#[async_trait]
impl TableProvider for CaptureProvider {
    fn schema(&self) -> SchemaRef {
        match self.table {
            CaptureTable::Packets => formats::PACKETS.schema(),
            CaptureTable::Flows => formats::FLOWS.schema(),
        }
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let config = state.config();
        let batch_size = config.batch_size();
        let full = self.schema();
        let schema = match projection {
            Some(p) => Arc::new(full.project(p)?),
            None => full,
        };
        let parts = match self.table {
            CaptureTable::Packets => {
                // With a LIMIT and no filter, read from the start in one
                // partition: the first frames, and no more than needed.
                let want = if limit.is_some() {
                    1
                } else {
                    config.target_partitions()
                };
                partition_chunks(&self.sources, want)
            }
            CaptureTable::Flows => (0..self.sources.len())
                .map(|s| {
                    vec![Work {
                        source: s,
                        chunks: 0..self.sources[s].index.chunks.len(),
                    }]
                })
                .collect(),
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(parts.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Arc::new(CaptureExec {
            table: self.table,
            sources: self.sources.clone(),
            parts: Arc::new(parts),
            projection: projection.cloned(),
            schema,
            limit,
            batch_size,
            properties,
            progress: self.progress.clone(),
        }))
    }
}

/// A run of chunks of one source.
#[derive(Debug, Clone)]
struct Work {
    source: usize,
    chunks: std::ops::Range<usize>,
}

/// Splits all chunks of all sources into about `want` partitions of
/// similar byte size, each a list of consecutive chunk runs.
fn partition_chunks(sources: &[Arc<CaptureSource>], want: usize) -> Vec<Vec<Work>> {
    let total: usize = sources
        .iter()
        .flat_map(|s| &s.index.chunks)
        .map(|c| c.end - c.offset)
        .sum();
    let want = if total < SMALL_INPUT { 1 } else { want.max(1) };
    let per_part = total.div_ceil(want).max(1);
    let mut parts: Vec<Vec<Work>> = vec![Vec::new()];
    let mut filled = 0;
    for (s, src) in sources.iter().enumerate() {
        for (c, chunk) in src.index.chunks.iter().enumerate() {
            if filled >= per_part && parts.len() < want {
                parts.push(Vec::new());
                filled = 0;
            }
            let part = parts.last_mut().expect("starts with one partition");
            match part.last_mut() {
                Some(w) if w.source == s && w.chunks.end == c => w.chunks.end = c + 1,
                _ => part.push(Work {
                    source: s,
                    chunks: c..c + 1,
                }),
            }
            filled += chunk.end - chunk.offset;
        }
    }
    parts
}

#[derive(Debug)]
struct CaptureExec {
    table: CaptureTable,
    sources: Arc<Vec<Arc<CaptureSource>>>,
    parts: Arc<Vec<Vec<Work>>>,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    limit: Option<usize>,
    batch_size: usize,
    properties: Arc<PlanProperties>,
    progress: ProgressBar,
}

impl DisplayAs for CaptureExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "CaptureExec: table={:?}, files={}, partitions={}, limit={:?}",
            self.table,
            self.sources.len(),
            self.parts.len(),
            self.limit
        )
    }
}

impl ExecutionPlan for CaptureExec {
    fn name(&self) -> &str {
        "CaptureExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let work = self.parts.get(partition).cloned().unwrap_or_default();
        match self.table {
            CaptureTable::Packets => {
                let scan = PacketScan {
                    sources: self.sources.clone(),
                    work: work.into(),
                    projection: self.projection.clone(),
                    batch_size: self.batch_size,
                    left: self.limit.unwrap_or(usize::MAX),
                    pending: VecDeque::new(),
                    builder: None,
                    buf: Vec::new(),
                    progress: self.progress.clone(),
                };
                Ok(Box::pin(RecordBatchStreamAdapter::new(
                    self.schema.clone(),
                    futures::stream::iter(scan),
                )))
            }
            CaptureTable::Flows => {
                let sources = self.sources.clone();
                let projection = self.projection.clone();
                let progress = self.progress.clone();
                let fut = async move {
                    let batches = tokio::task::spawn_blocking(move || {
                        work.iter()
                            .map(|w| {
                                let batch = flows_of(&sources[w.source], &progress)?;
                                Ok(match &projection {
                                    Some(p) => batch.project(p)?,
                                    None => batch,
                                })
                            })
                            .collect::<Result<Vec<_>>>()
                    })
                    .await
                    .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))??;
                    Ok::<_, datafusion::error::DataFusionError>(futures::stream::iter(
                        batches.into_iter().map(Ok),
                    ))
                };
                use futures::TryStreamExt;
                let stream = futures::stream::once(fut).try_flatten();
                Ok(Box::pin(RecordBatchStreamAdapter::new(
                    self.schema.clone(),
                    stream,
                )))
            }
        }
    }
}

/// Aggregates the flows of one capture, its chunks in parallel.
fn flows_of(src: &CaptureSource, progress: &ProgressBar) -> Result<RecordBatch> {
    let table = src
        .index
        .chunks
        .par_iter()
        .try_fold(
            || {
                (
                    FlowTable::default(),
                    formats::Headers::default(),
                    Vec::new(),
                )
            },
            |(mut table, mut h, mut buf), chunk| {
                let bytes = src.read_chunk(chunk, &mut buf)?;
                for frame in src.index.chunk_frames(bytes, chunk) {
                    let link = src.meta.interfaces[frame.interface as usize].link_type;
                    formats::decode(link, frame.data, &mut h);
                    table.add(&frame, &h);
                }
                progress.inc((chunk.end - chunk.offset) as u64);
                Ok::<_, crate::Error>((table, h, buf))
            },
        )
        .map(|r| r.map(|(t, _, _)| t))
        .try_reduce(FlowTable::default, |mut a, b| {
            a.merge(b);
            Ok(a)
        })
        .map_err(external)?;
    Ok(table.finish(&src.meta))
}

fn external(e: crate::Error) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::External(Box::new(e))
}

/// Decodes one partition's chunks into batches of the projected columns.
struct PacketScan {
    sources: Arc<Vec<Arc<CaptureSource>>>,
    work: VecDeque<Work>,
    projection: Option<Vec<usize>>,
    batch_size: usize,
    /// Rows still wanted (LIMIT).
    left: usize,
    pending: VecDeque<RecordBatch>,
    builder: Option<(usize, PacketBuilder)>,
    /// The chunk being decoded, reused from chunk to chunk.
    buf: Vec<u8>,
    progress: ProgressBar,
}

impl Iterator for PacketScan {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(batch) = self.pending.pop_front() {
                return Some(Ok(batch));
            }
            if self.left == 0 {
                return None;
            }
            let Some(w) = self.work.front_mut() else {
                // Flush what is left of the last source.
                let (_, mut b) = self.builder.take()?;
                return (!b.is_empty()).then(|| Ok(b.finish()));
            };
            let s = w.source;
            let c = w.chunks.start;
            w.chunks.start += 1;
            if w.chunks.is_empty() {
                self.work.pop_front();
            }
            let src = self.sources[s].clone();
            // A new source needs a builder with its own labels.
            if self.builder.as_ref().is_none_or(|(bs, _)| *bs != s) {
                if let Some((_, mut old)) = self.builder.take()
                    && !old.is_empty()
                {
                    self.pending.push_back(old.finish());
                }
                self.builder = Some((
                    s,
                    PacketBuilder::new(src.meta.clone(), self.projection.as_deref()),
                ));
            }
            let (_, builder) = self.builder.as_mut().expect("set above");
            let chunk = &src.index.chunks[c];
            let bytes = match src.read_chunk(chunk, &mut self.buf) {
                Ok(bytes) => bytes,
                Err(e) => return Some(Err(external(e))),
            };
            for frame in src.index.chunk_frames(bytes, chunk) {
                builder.append(&frame);
                self.left -= 1;
                if builder.len() >= self.batch_size || self.left == 0 {
                    self.pending.push_back(builder.finish());
                }
                if self.left == 0 {
                    break;
                }
            }
            self.progress.inc((chunk.end - chunk.offset) as u64);
        }
    }
}
