use std::path::PathBuf;

/// Errors from opening inputs and running queries. A message never
/// repeats its cause: callers print the chain (`{err:#}`, or
/// [`Error::chain`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open {path}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An input that is not a regular file or directory, refused before
    /// any read.
    #[error("{path} is {what}: capsnap reads regular files and directories only")]
    NotRegular { path: PathBuf, what: &'static str },
    #[error("reading {path} at byte offset {offset}")]
    Read {
        path: PathBuf,
        offset: u64,
        source: std::io::Error,
    },
    #[error("{path}")]
    Capture {
        path: PathBuf,
        source: formats::Error,
    },
    /// A bundle that cannot be opened safely: what is wrong, naming the member.
    #[error("bundle {path}: {problem}")]
    Bundle { path: PathBuf, problem: String },
    /// An exported dataset that cannot be read or written.
    #[error("dataset {path}: {problem}")]
    Dataset { path: PathBuf, problem: String },
    #[error(
        "--engine {engine} runs over an exported dataset only (its executors read the Parquet files; bundles, directories and captures are read in this process): `capsnap export INPUT... --to DIR`, then give DIR"
    )]
    EngineNeedsDataset { engine: String },
    #[error(
        "{path} is an exported dataset: give it alone (export the other inputs into it with `capsnap export INPUT... --to {path}`)"
    )]
    DatasetNotAlone { path: PathBuf },
    #[error("detection {id}")]
    Detection { id: String, source: Box<Error> },
    #[error("input {pattern}: {problem}")]
    Glob { pattern: String, problem: String },
    #[error(
        "no input given: name captures, bundles or directories, e.g. `capsnap query node.pcap \"select count(*) from packets\"`"
    )]
    NoInput,
    /// DataFusion's message already carries its inner errors, so it is not
    /// exposed as a `source` (that would print them twice).
    #[error("{0}")]
    Query(datafusion::error::DataFusionError),
    #[error("writing output")]
    Output(#[from] std::io::Error),
    #[error("writing output")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("writing parquet")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    #[error("parquet is binary: write it to a file with --output FILE or redirect stdout")]
    BinaryToTerminal,
    #[error("no SQL statement given")]
    NoStatement,
    /// The report's template or a chart could not be drawn.
    #[error("rendering the report: {0}")]
    Render(String),
    /// The query needs more memory than the pool allows, even spilling.
    #[error(
        "the query needs more memory than --memory-limit {} MiB allows (sorts, joins and aggregates spill to disk; what cannot spill, or a result held for --format table, must fit): add filters or LIMIT, use --format csv or ndjson (they stream), or raise --memory-limit. {detail}",
        limit >> 20
    )]
    MemoryLimit { limit: usize, detail: String },
    /// A SQL expression nested deeper than capsnap plans.
    #[error("the SQL is nested too deeply ({0}): split long OR/AND chains, e.g. use IN (...)")]
    TooDeep(String),
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Error::Query(e)
    }
}

impl Error {
    /// The message followed by every cause, `: `-separated.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }

    /// The reader of our output went away (`capsnap query ... | head`).
    pub fn is_broken_pipe(&self) -> bool {
        let io = match self {
            Error::Output(e) => Some(e),
            Error::Arrow(datafusion::arrow::error::ArrowError::IoError(_, e)) => Some(e),
            _ => None,
        };
        io.is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}
