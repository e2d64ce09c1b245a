//! Opening inputs: `[LABEL=]PATH` arguments and the capture files behind them.

use crate::error::Error;
use formats::{CaptureMeta, Chunk, Index, InterfaceMeta};
use memmap2::{Mmap, UncheckedAdvice};
use std::fs::File;
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

/// A capture file mapped into memory and indexed.
pub struct CaptureSource {
    pub path: PathBuf,
    /// Labels for every row, shared by all the batch builders.
    pub meta: Arc<CaptureMeta>,
    pub index: Index,
    map: Mmap,
}

impl std::fmt::Debug for CaptureSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureSource")
            .field("path", &self.path)
            .field("frames", &self.index.frames)
            .finish()
    }
}

/// Pages of the mapping are dropped from this process as soon as a pass is
/// past them, so memory stays bounded by the chunks in flight, not by the
/// file size (the kernel's page cache keeps them for the next pass).
const PAGE: usize = 4096;

impl CaptureSource {
    /// Maps and indexes `spec.path`. `progress` is told the bytes indexed.
    pub fn open(spec: &InputSpec, progress: &dyn Fn(u64)) -> Result<CaptureSource, Error> {
        let path = spec.path.clone();
        let file = File::open(&path).map_err(|source| Error::Open {
            path: path.clone(),
            source,
        })?;
        let len = file
            .metadata()
            .map_err(|source| Error::Open {
                path: path.clone(),
                source,
            })?
            .len();
        if len == 0 {
            return Err(Error::Capture {
                path,
                source: formats::Error::UnknownFormat {
                    magic: formats::Hex(Vec::new()),
                },
            });
        }
        // SAFETY: the map is read-only; a capture file being appended to while
        // we read is fine (we only read up to the length seen here), and one
        // truncated under us is a risk every mmap-based reader (tshark too) takes.
        let map = unsafe { Mmap::map(&file) }.map_err(|source| Error::Open {
            path: path.clone(),
            source,
        })?;
        let mut released = 0;
        let index = formats::index_with_progress(&map, &mut |at| {
            progress((at - released) as u64);
            release(&map, released, at);
            released = at;
        })
        .map_err(|source| Error::Capture {
            path: path.clone(),
            source,
        })?;
        release(&map, released, index.end);
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
            map,
        })
    }

    /// The bytes of the capture file.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Tells the kernel this process is done with a chunk's pages.
    pub fn release_chunk(&self, chunk: &Chunk) {
        release(&self.map, chunk.offset, chunk.end);
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

/// A fault maps an aligned window around the faulting page (fault-around,
/// or a whole large folio), which can reach back before a chunk's start
/// into pages already released: each release reaches this far back too,
/// or those pages would stay mapped for the rest of the run.
const FAULT_WINDOW: usize = 2 * 1024 * 1024;

fn release(map: &Mmap, from: usize, to: usize) {
    let start = from.saturating_sub(FAULT_WINDOW) / PAGE * PAGE;
    if to > start {
        // SAFETY: MADV_DONTNEED on a read-only shared file mapping only drops
        // this process's page-table entries; the next access faults the same
        // file contents back in, so no Rust reference can observe a change.
        let _ = unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, start, to - start) };
    }
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
