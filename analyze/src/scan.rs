//! Capture files as streaming DataFusion tables.
//!
//! `packets` is scanned in partitions of whole chunks, decoded in parallel,
//! building only the projected columns, a batch at a time: memory follows
//! the batch size, not the file size. `flows` and `dns` aggregate each
//! capture with rayon over its chunks, both in the same pass, and emit one
//! batch per capture; the pass runs once per capture and run
//! ([`CaptureSource::aggregates`]): every detection reading `flows` or
//! `dns` after the first reads the kept batches.

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
use formats::{CaptureMeta, DnsTable, FlowTable, PacketBuilder};
use indicatif::ProgressBar;
use rayon::prelude::*;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError};

/// Files smaller than this are read in one partition, so that small
/// captures list their frames in file order even without ORDER BY.
const SMALL_INPUT: u64 = 16 * 1024 * 1024;

/// How each table of [`formats::bundle::CAPTURE_TABLES`] is built from
/// the frames of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureTable {
    Packets,
    Flows,
    Dns,
}

impl CaptureTable {
    const ALL: [CaptureTable; 3] = [
        CaptureTable::Packets,
        CaptureTable::Flows,
        CaptureTable::Dns,
    ];

    /// The table this builds.
    pub fn table(self) -> &'static formats::Table {
        match self {
            CaptureTable::Packets => &formats::PACKETS,
            CaptureTable::Flows => &formats::FLOWS,
            CaptureTable::Dns => &formats::DNS,
        }
    }

    /// The builder of `table`, if it is a capture table.
    pub fn of(table: &formats::Table) -> Option<CaptureTable> {
        Self::ALL.into_iter().find(|k| k.table().name == table.name)
    }
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
        self.table.table().schema()
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
                let total: u64 = self.sources.iter().map(|s| s.len()).sum();
                // With a LIMIT and no filter, read from the start in one
                // partition: the first frames, and no more than needed.
                if limit.is_some() || total < SMALL_INPUT {
                    1
                } else {
                    config.target_partitions().max(1)
                }
            }
            CaptureTable::Flows | CaptureTable::Dns => self.sources.len(),
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(parts.max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Arc::new(CaptureExec {
            table: self.table,
            sources: self.sources.clone(),
            parts,
            runs: Mutex::new(Run::new(self.sources.len(), parts)),
            projection: projection.cloned(),
            schema,
            limit,
            batch_size,
            properties,
            progress: self.progress.clone(),
        }))
    }
}

/// One execution of a packets scan: its partitions take chunks from
/// shared cursors, one per source (the chunks of that source taken so far),
/// so they share the work whatever its speed, and each chunk is read once.
#[derive(Debug)]
struct Run {
    cursors: Arc<Vec<AtomicUsize>>,
    /// Partitions started in this run: a partition started again begins
    /// the next run.
    started: Vec<bool>,
}

impl Run {
    fn new(sources: usize, parts: usize) -> Run {
        Run {
            cursors: Arc::new((0..sources).map(|_| AtomicUsize::new(0)).collect()),
            started: vec![false; parts],
        }
    }
}

#[derive(Debug)]
struct CaptureExec {
    table: CaptureTable,
    sources: Arc<Vec<Arc<CaptureSource>>>,
    parts: usize,
    runs: Mutex<Run>,
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
            self.parts,
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
        match self.table {
            CaptureTable::Packets => {
                let cursors = {
                    let mut run = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
                    if run.started.get(partition).copied().unwrap_or(true) {
                        *run = Run::new(self.sources.len(), self.parts);
                    }
                    if let Some(s) = run.started.get_mut(partition) {
                        *s = true;
                    }
                    run.cursors.clone()
                };
                let scan = PacketScan {
                    sources: self.sources.clone(),
                    cursors,
                    source: 0,
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
            table @ (CaptureTable::Flows | CaptureTable::Dns) => {
                let sources = self.sources.clone();
                let projection = self.projection.clone();
                let progress = self.progress.clone();
                let fut = async move {
                    let batches = tokio::task::spawn_blocking(move || {
                        sources
                            .get(partition)
                            .map(|src| {
                                let all = src.aggregates(|| aggregate(src, &progress))?;
                                let batch = match table {
                                    CaptureTable::Dns => all.dns.clone(),
                                    _ => all.flows.clone(),
                                };
                                Ok(match &projection {
                                    Some(p) => batch.project(p)?,
                                    None => batch,
                                })
                            })
                            .into_iter()
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

/// The tables one pass over a capture builds: one batch each.
#[derive(Debug)]
pub struct Aggregates {
    pub flows: RecordBatch,
    pub dns: RecordBatch,
}

/// Aggregates the flows and DNS messages of one capture in one pass, its
/// chunks in parallel.
fn aggregate(src: &CaptureSource, progress: &ProgressBar) -> Result<Aggregates> {
    let next = AtomicUsize::new(0);
    let (flows, dns) = (0..rayon::current_num_threads())
        .into_par_iter()
        .map(|_| {
            let (mut flows, mut dns, mut h, mut buf) = (
                FlowTable::default(),
                DnsTable::default(),
                formats::Headers::default(),
                Vec::new(),
            );
            while let Some(piece) = src.next_piece(&next, &mut buf)? {
                let described = &piece.described;
                for chunk in &piece.chunks {
                    let bytes = &buf[chunk.offset - piece.base..chunk.end - piece.base];
                    for frame in described.index.chunk_frames(bytes, chunk) {
                        let link = described.meta.interfaces[frame.interface as usize].link_type;
                        formats::decode(link, frame.data, &mut h);
                        flows.add(&frame, &h);
                        dns.add(&frame, &h);
                    }
                    progress.inc(bytes.len() as u64);
                }
            }
            Ok::<_, crate::Error>((flows, dns))
        })
        .try_reduce(
            || (FlowTable::default(), DnsTable::default()),
            |(mut fa, mut da), (fb, db)| {
                fa.merge(fb);
                da.merge(db);
                Ok((fa, da))
            },
        )
        .map_err(external)?;
    let meta = src.described().map_err(external)?.meta.clone();
    Ok(Aggregates {
        flows: flows.finish(&meta),
        dns: dns.finish(&meta),
    })
}

fn external(e: crate::Error) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::External(Box::new(e))
}

/// Decodes the chunks a partition takes into batches of the projected
/// columns.
struct PacketScan {
    sources: Arc<Vec<Arc<CaptureSource>>>,
    /// Chunks of each source taken by the partitions of this run.
    cursors: Arc<Vec<AtomicUsize>>,
    /// The source being read.
    source: usize,
    projection: Option<Vec<usize>>,
    batch_size: usize,
    /// Rows still wanted (LIMIT).
    left: usize,
    pending: VecDeque<RecordBatch>,
    /// Rows are labelled from the description their chunks were read with.
    builder: Option<(Arc<CaptureMeta>, PacketBuilder)>,
    /// The chunks being decoded, reused from piece to piece.
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
            let Some(src) = self.sources.get(self.source) else {
                // Flush what is left of the last source.
                let (_, mut b) = self.builder.take()?;
                return (!b.is_empty()).then(|| Ok(b.finish()));
            };
            let piece = match src.next_piece(&self.cursors[self.source], &mut self.buf) {
                Ok(Some(piece)) => piece,
                Ok(None) => {
                    self.source += 1;
                    continue;
                }
                Err(e) => return Some(Err(external(e))),
            };
            let described = &piece.described;
            // Another source, or interfaces described since, need a
            // builder with their own labels.
            if self
                .builder
                .as_ref()
                .is_none_or(|(meta, _)| !Arc::ptr_eq(meta, &described.meta))
            {
                if let Some((_, mut old)) = self.builder.take()
                    && !old.is_empty()
                {
                    self.pending.push_back(old.finish());
                }
                self.builder = Some((
                    described.meta.clone(),
                    PacketBuilder::new(described.meta.clone(), self.projection.as_deref()),
                ));
            }
            let (_, builder) = self.builder.as_mut().expect("set above");
            for chunk in &piece.chunks {
                let bytes = &self.buf[chunk.offset - piece.base..chunk.end - piece.base];
                for frame in described.index.chunk_frames(bytes, chunk) {
                    builder.append(&frame);
                    self.left -= 1;
                    if builder.len() >= self.batch_size || self.left == 0 {
                        self.pending.push_back(builder.finish());
                    }
                    if self.left == 0 {
                        break;
                    }
                }
                self.progress.inc(bytes.len() as u64);
                if self.left == 0 {
                    break;
                }
            }
        }
    }
}
