use std::path::PathBuf;

/// Errors from opening inputs and running queries.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Capture {
        path: PathBuf,
        source: formats::Error,
    },
    #[error(
        "no input given: name one or more capture files, e.g. `capsnap query node.pcap \"select count(*) from packets\"`"
    )]
    NoInput,
    #[error("{0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
    #[error("writing output: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("writing parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    #[error("parquet is binary: write it to a file with --output FILE or redirect stdout")]
    BinaryToTerminal,
}

impl Error {
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
