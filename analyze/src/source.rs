//! Opening inputs: `[LABEL=]PATH` arguments and the capture files behind them.

use crate::error::Error;
use formats::{CaptureMeta, Chunk, Index, InterfaceMeta};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One input argument: a path and the capture-point label its rows get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    pub label: String,
    pub path: PathBuf,
}

impl InputSpec {
    /// Parses `LABEL=PATH` or `PATH`. Without a label, the file name without
    /// its capture extension is used (`node.pcap` -> `node`). A `=` is read
    /// as a label separator only when the text before it is not a path that
    /// exists, so files with `=` in their name still open.
    pub fn parse(arg: &str) -> InputSpec {
        if let Some((label, path)) = arg.split_once('=')
            && !label.is_empty()
            && !Path::new(arg).exists()
        {
            return InputSpec {
                label: label.to_owned(),
                path: PathBuf::from(path),
            };
        }
        let path = PathBuf::from(arg);
        InputSpec {
            label: default_label(&path),
            path,
        }
    }

    /// True when the argument names an input (an existing path, or a label
    /// followed by one) rather than SQL text.
    pub fn looks_like_input(arg: &str) -> bool {
        let spec = InputSpec::parse(arg);
        spec.path.exists()
    }
}

fn default_label(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    for ext in [".pcapng.gz", ".pcap.gz", ".pcapng", ".pcap", ".cap"] {
        if let Some(stem) = name.strip_suffix(ext)
            && !stem.is_empty()
        {
            return stem.to_owned();
        }
    }
    name
}

/// A capture file, indexed. Its bytes are read with positional reads
/// into buffers the size of a chunk, not mapped: a mapping costs a page
/// fault and a cache miss for every few packets, and its pages must be
/// released again to keep memory bounded, where a read copies the bytes
/// sequentially into a buffer that stays in the CPU cache.
pub struct CaptureSource {
    pub path: PathBuf,
    /// Labels for every row, shared by all the batch builders.
    pub meta: Arc<CaptureMeta>,
    pub index: Index,
    file: File,
}

impl std::fmt::Debug for CaptureSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureSource")
            .field("path", &self.path)
            .field("frames", &self.index.frames)
            .finish()
    }
}

/// Bytes read at a time by the index pass (and so the size of most chunks,
/// since each read ends one): small enough to stay in the CPU cache.
const READ_BYTES: usize = 1024 * 1024;

impl CaptureSource {
    /// Opens and indexes `spec.path`. `progress` is told the bytes indexed.
    pub fn open(spec: &InputSpec, progress: &dyn Fn(u64)) -> Result<CaptureSource, Error> {
        let path = spec.path.clone();
        let open_error = |source| Error::Open {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(open_error)?;
        let len = file.metadata().map_err(open_error)?.len() as usize;
        if len == 0 {
            return Err(Error::Capture {
                path,
                source: formats::Error::UnknownFormat {
                    magic: formats::Hex(Vec::new()),
                },
            });
        }
        // Only the length seen here is read: a capture still being written
        // is indexed as it was when opened.
        let mut buf = vec![0; READ_BYTES.min(len)];
        read_at(&file, &path, &mut buf, 0)?;
        let mut indexer = formats::Indexer::new(&buf, len).map_err(|source| Error::Capture {
            path: path.clone(),
            source,
        })?;
        // `buf[..filled]` holds the file's bytes from `start`.
        let (mut start, mut filled) = (0, buf.len());
        loop {
            let from = indexer.position() - start;
            let used = indexer.feed(&buf[from..filled]);
            progress(used as u64);
            if indexer.is_done() {
                break;
            }
            // Keep the record the buffer ended in, then read what follows.
            let kept = from + used;
            buf.copy_within(kept..filled, 0);
            start += kept;
            filled -= kept;
            let want = READ_BYTES.max(indexer.need()).min(len - start);
            buf.resize(want.max(filled), 0);
            read_at(&file, &path, &mut buf[filled..want], start + filled)?;
            filled = want;
        }
        let index = indexer.finish();
        let interfaces = index.interfaces.iter().map(InterfaceMeta::of).collect();
        let meta = Arc::new(CaptureMeta {
            bundle: path.display().to_string(),
            host: None,
            capture: spec.label.clone(),
            interfaces,
        });
        Ok(CaptureSource {
            path,
            meta,
            index,
            file,
        })
    }

    /// Reads the bytes of `chunk` into `buf` (reused between calls).
    pub fn read_chunk<'b>(&self, chunk: &Chunk, buf: &'b mut Vec<u8>) -> Result<&'b [u8], Error> {
        buf.resize(chunk.end - chunk.offset, 0);
        read_at(&self.file, &self.path, buf, chunk.offset)?;
        Ok(buf)
    }

    /// Damage found while indexing, as warnings naming the file.
    pub fn warnings(&self) -> impl Iterator<Item = String> + '_ {
        self.index.damage.iter().map(|d| {
            format!(
                "{}: at byte offset {}: {}",
                self.path.display(),
                d.offset,
                d.message
            )
        })
    }
}

/// Fills `buf` from `offset` of `file`.
fn read_at(file: &File, path: &Path, buf: &mut [u8], offset: usize) -> Result<(), Error> {
    file.read_exact_at(buf, offset as u64)
        .map_err(|source| Error::Read {
            path: path.to_owned(),
            offset: offset as u64,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_argument_or_file_name() {
        let cases = [
            ("host=/tmp/x.pcap", "host", "/tmp/x.pcap"),
            ("pod/web=a.pcapng", "pod/web", "a.pcapng"),
            ("/var/tmp/node.pcap", "node", "/var/tmp/node.pcap"),
            ("dump.pcapng", "dump", "dump.pcapng"),
            ("trace", "trace", "trace"),
        ];
        for (arg, label, path) in cases {
            assert_eq!(
                InputSpec::parse(arg),
                InputSpec {
                    label: label.into(),
                    path: path.into()
                },
                "{arg}"
            );
        }
    }
}
