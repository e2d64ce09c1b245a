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
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterPushdownPhase, FilterPushdownPropagation, PushedDown,
};
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
    Resets,
}

impl CaptureTable {
    const ALL: [CaptureTable; 4] = [
        CaptureTable::Packets,
        CaptureTable::Flows,
        CaptureTable::Dns,
        CaptureTable::Resets,
    ];

    /// The table this builds.
    pub fn table(self) -> &'static formats::Table {
        match self {
            CaptureTable::Packets => &formats::PACKETS,
            CaptureTable::Flows => &formats::FLOWS,
            CaptureTable::Dns => &formats::DNS,
            CaptureTable::Resets => &formats::RESETS,
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
            CaptureTable::Flows | CaptureTable::Dns | CaptureTable::Resets => self.sources.len(),
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
            filters: Vec::new(),
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
    /// Predicates over the output its parents apply anyway (a filter, a
    /// hash join's dynamic filter of the keys it holds): a packets scan
    /// uses them to build whole rows only for frames that may pass.
    filters: Vec<Arc<dyn PhysicalExpr>>,
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
            "CaptureExec: table={:?}, files={}, partitions={}, limit={:?}, filters={}",
            self.table,
            self.sources.len(),
            self.parts,
            self.limit,
            self.filters.len()
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

    /// The pushed filters: a hash join computes its dynamic filter only
    /// when a node of its probe side lists it here.
    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        datafusion::physical_plan::apply_expression_roots(&self.filters, f)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    /// Takes the filters its parents push down (a packets scan only) but
    /// reports none as applied: they stay where they are, and the scan uses
    /// them to skip building rows that cannot pass. A hash join's dynamic
    /// filter comes this way: once the join has read its small side (the
    /// flows a detection found), it holds their keys, and the scan builds
    /// full rows only for those flows' packets.
    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &datafusion::config::ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        let pushed: Vec<Arc<dyn PhysicalExpr>> = child_pushdown_result
            .parent_filters
            .into_iter()
            .map(|f| f.filter)
            .collect();
        let verdicts = vec![PushedDown::No; pushed.len()];
        if self.table != CaptureTable::Packets || pushed.is_empty() {
            return Ok(FilterPushdownPropagation {
                filters: verdicts,
                updated_node: None,
            });
        }
        let mut filters = self.filters.clone();
        filters.extend(pushed);
        let node = CaptureExec {
            table: self.table,
            sources: self.sources.clone(),
            parts: self.parts,
            runs: Mutex::new(Run::new(self.sources.len(), self.parts)),
            projection: self.projection.clone(),
            filters,
            schema: self.schema.clone(),
            limit: self.limit,
            batch_size: self.batch_size,
            properties: self.properties.clone(),
            progress: self.progress.clone(),
        };
        Ok(FilterPushdownPropagation {
            filters: verdicts,
            updated_node: Some(Arc::new(node)),
        })
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
                    prefilter: Prefilter::new(&self.filters, self.projection.as_deref()),
                    filters: self.filters.clone(),
                    checked: false,
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
            table @ (CaptureTable::Flows | CaptureTable::Dns | CaptureTable::Resets) => {
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
                                    CaptureTable::Resets => all.resets.clone(),
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
    pub resets: RecordBatch,
}

/// Aggregates the flows, DNS messages and RSTs of one capture in one pass,
/// its chunks in parallel.
fn aggregate(src: &CaptureSource, progress: &ProgressBar) -> Result<Aggregates> {
    let next = AtomicUsize::new(0);
    let (mut flows, dns) = (0..rayon::current_num_threads())
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
                    flows.begin_chunk(chunk.first_frame);
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
    settle_resets(src, &mut flows).map_err(external)?;
    let meta = src.described().map_err(external)?.meta.clone();
    Ok(Aggregates {
        resets: flows.take_resets(&meta),
        flows: flows.finish(&meta),
        dns: dns.finish(&meta),
    })
}

/// Finds the provoking packet of the RSTs whose packet is in an earlier
/// chunk than theirs (see `formats::FlowTable::open_resets`): reads the
/// chunks before them, backwards, each once, until every one has found its
/// packet or passed the first packet its receiver sent. Nearly always the
/// chunk just before the RST's, and only for the few RSTs near a chunk's
/// start.
fn settle_resets(src: &CaptureSource, flows: &mut FlowTable) -> Result<(), crate::Error> {
    let open = flows.open_resets();
    let Some(last) = open.iter().map(|o| o.rst_frame).max() else {
        return Ok(());
    };
    let firsts = src.chunk_first_frames();
    if firsts.is_empty() {
        return Ok(());
    }
    let chunk_of = |frame: u64| firsts.partition_point(|&f| f <= frame).saturating_sub(1);
    let (mut h, mut buf) = (formats::Headers::default(), Vec::new());
    let mut left = open;
    let mut k = chunk_of(last);
    loop {
        let first = firsts[k];
        // Only chunks at or below an open RST's own are read.
        if left.iter().any(|o| o.rst_frame >= first) {
            // The pass found every chunk; were one missing, its RSTs would
            // keep the packet found so far.
            let Some(piece) = src.chunk(k, &mut buf)? else {
                return Ok(());
            };
            let described = &piece.described;
            for chunk in &piece.chunks {
                let bytes = &buf[chunk.offset - piece.base..chunk.end - piece.base];
                for frame in described.index.chunk_frames(bytes, chunk) {
                    let link = described.meta.interfaces[frame.interface as usize].link_type;
                    formats::decode(link, frame.data, &mut h);
                    flows.offer(&frame, &h);
                }
            }
            flows.chunk_offered(first);
            left = flows.still_open();
        }
        if left.is_empty() || k == 0 {
            return Ok(());
        }
        k -= 1;
    }
}

fn external(e: crate::Error) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::External(Box::new(e))
}

/// The filters a packets scan was given, evaluated on the few columns
/// they read before the other columns of a row are built.
struct Prefilter {
    filters: Vec<Arc<dyn PhysicalExpr>>,
    /// The `packets` columns the filters read (indices into the table).
    keys: Vec<usize>,
    /// For each output column: its position among `keys`, if a key.
    slots: Vec<Option<usize>>,
    /// The output schema with every field nullable: the columns the
    /// filters do not read are all-null placeholders.
    schema: SchemaRef,
}

impl Prefilter {
    /// `None` when there is nothing to gain: no filters, or filters that
    /// read every projected column.
    fn new(filters: &[Arc<dyn PhysicalExpr>], projection: Option<&[usize]>) -> Option<Prefilter> {
        if filters.is_empty() {
            return None;
        }
        let all: Vec<usize> = (0..formats::PACKETS.columns.len()).collect();
        let projection = projection.unwrap_or(&all);
        let mut read: Vec<usize> = filters
            .iter()
            .flat_map(datafusion::physical_expr::utils::collect_columns)
            .map(|c| c.index())
            .collect();
        read.sort_unstable();
        read.dedup();
        if read.len() >= projection.len() || read.iter().any(|&i| i >= projection.len()) {
            return None;
        }
        let keys: Vec<usize> = read.iter().map(|&i| projection[i]).collect();
        let slots = (0..projection.len())
            .map(|i| read.iter().position(|&r| r == i))
            .collect();
        let full = formats::PACKETS.schema();
        let fields: Vec<_> = projection
            .iter()
            .map(|&i| full.field(i).clone().with_nullable(true))
            .collect();
        Some(Prefilter {
            filters: filters.to_vec(),
            keys,
            slots,
            schema: Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
        })
    }

    /// Which of the frames whose key columns are `keys` may pass.
    fn passing(&self, keys: &RecordBatch) -> Result<Vec<bool>> {
        use datafusion::arrow::array::{Array, AsArray, new_null_array};
        let rows = keys.num_rows();
        let columns = self
            .slots
            .iter()
            .zip(self.schema.fields())
            .map(|(slot, f)| match slot {
                Some(k) => keys.column(*k).clone(),
                None => new_null_array(f.data_type(), rows),
            })
            .collect();
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        let mut pass = vec![true; rows];
        for f in &self.filters {
            // A dynamic filter is read as it is now; one that reads a
            // column not built here is left to the parent alone (it would
            // see only nulls).
            let current =
                datafusion::physical_expr_common::physical_expr::snapshot_physical_expr(f.clone())?;
            let built = datafusion::physical_expr::utils::collect_columns(&current)
                .iter()
                .all(|c| self.slots.get(c.index()).is_some_and(Option::is_some));
            if !built {
                continue;
            }
            let verdict = current.evaluate(&batch)?.into_array(rows)?;
            let Some(verdict) = verdict.as_boolean_opt() else {
                continue;
            };
            for (i, p) in pass.iter_mut().enumerate() {
                *p &= verdict.is_valid(i) && verdict.value(i);
            }
        }
        Ok(pass)
    }
}

/// Whether the filters a packets scan was given rule out every row of
/// `src`: the conjuncts that read only the columns constant over a file
/// (`bundle`, `host`, `capture`), evaluated on its values. A hash join on
/// `capture` (host-only-rst's packets step) thereby skips the capture
/// files its other side does not name without decoding them. Conjuncts
/// reading any other column are not evaluated (with those columns null,
/// `x IS NOT NULL` would wrongly be false).
fn rules_out(
    filters: &[Arc<dyn PhysicalExpr>],
    projection: Option<&[usize]>,
    src: &CaptureSource,
) -> Result<bool> {
    use datafusion::arrow::array::{Array, AsArray, StringArray, new_null_array};
    use datafusion::arrow::compute::cast;
    use datafusion::physical_expr::split_conjunction;
    use datafusion::physical_expr::utils::collect_columns;
    use datafusion::physical_expr_common::physical_expr::snapshot_physical_expr;
    if filters.is_empty() {
        return Ok(false);
    }
    let all: Vec<usize> = (0..formats::PACKETS.columns.len()).collect();
    let projection = projection.unwrap_or(&all);
    let (bundle, host, capture) = src.constants();
    let constant = |i: usize| -> Option<Option<&str>> {
        match projection.get(i).map(|&t| formats::PACKETS.columns[t].name) {
            Some("bundle") => Some(Some(bundle)),
            Some("host") => Some(host),
            Some("capture") => Some(Some(capture)),
            _ => None,
        }
    };
    let full = formats::PACKETS.schema();
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (i, &t) in projection.iter().enumerate() {
        let field = full.field(t).clone().with_nullable(true);
        columns.push(match constant(i) {
            Some(value) => cast(&StringArray::from(vec![value]), field.data_type())?,
            None => new_null_array(field.data_type(), 1),
        });
        fields.push(field);
    }
    let batch = RecordBatch::try_new(
        Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
        columns,
    )?;
    for f in filters {
        let current = snapshot_physical_expr(f.clone())?;
        for conjunct in split_conjunction(&current) {
            let cols = collect_columns(conjunct);
            if cols.is_empty() || !cols.iter().all(|c| constant(c.index()).is_some()) {
                continue;
            }
            let verdict = conjunct.evaluate(&batch)?.into_array(1)?;
            if let Some(v) = verdict.as_boolean_opt()
                && v.is_valid(0)
                && !v.value(0)
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Decodes the chunks a partition takes into batches of the projected
/// columns.
struct PacketScan {
    sources: Arc<Vec<Arc<CaptureSource>>>,
    /// Chunks of each source taken by the partitions of this run.
    cursors: Arc<Vec<AtomicUsize>>,
    /// The source being read.
    source: usize,
    prefilter: Option<Prefilter>,
    /// The filters the scan was given, to rule out whole files.
    filters: Vec<Arc<dyn PhysicalExpr>>,
    /// Whether the source being read was checked against them.
    checked: bool,
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
            if !self.checked {
                self.checked = true;
                match rules_out(&self.filters, self.projection.as_deref(), src) {
                    Ok(true) => {
                        self.source += 1;
                        self.checked = false;
                        continue;
                    }
                    Ok(false) => {}
                    Err(e) => return Some(Err(e)),
                }
            }
            let piece = match src.next_piece(&self.cursors[self.source], &mut self.buf) {
                Ok(Some(piece)) => piece,
                Ok(None) => {
                    self.source += 1;
                    self.checked = false;
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
                // The filters' columns of the whole chunk first; then whole
                // rows only for the frames that may pass them.
                let pass = match &self.prefilter {
                    Some(pre) => {
                        let mut keys = PacketBuilder::new(described.meta.clone(), Some(&pre.keys));
                        for frame in described.index.chunk_frames(bytes, chunk) {
                            keys.append(&frame);
                        }
                        match pre.passing(&keys.finish()) {
                            Ok(p) => Some(p),
                            Err(e) => return Some(Err(e)),
                        }
                    }
                    None => None,
                };
                for (i, frame) in described.index.chunk_frames(bytes, chunk).enumerate() {
                    if pass
                        .as_ref()
                        .is_some_and(|p| !p.get(i).copied().unwrap_or(true))
                    {
                        continue;
                    }
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
