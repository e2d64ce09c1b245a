//! From input arguments to table contents.
//!
//! An input is a capture file, a `.capsnap` bundle (extracted safely by
//! [`bundle`](crate::bundle)), a directory (an unpacked bundle, or any
//! sosreport-like tree of /proc files and tool output), a single saved
//! artifact (`conntrack -L` output, a bcc tool log), or a glob of these.
//! Every file of a directory goes to the capture reader or to each reader
//! of [`formats::readers()`] that claims it; the rows carry the input's
//! `bundle` name, the manifest's `host`, and the namespace label the
//! manifest records for the directory a file is in.

use crate::bundle;
use crate::error::Error;
use crate::source::{CaptureSource, InputSpec};
use datafusion::arrow::array::RecordBatch;
use formats::bundle::CAPTURE_TABLES;
use formats::{Manifest, Origin, Reader};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Text files larger than this are not read (a /proc table or a tool log
/// of that size is not something to hold in memory; captures stream).
const MAX_TEXT: u64 = 1 << 30;
/// Directories deeper than this are not walked (a bundle is 6 deep).
const MAX_DEPTH: usize = 12;
/// Bytes of a file the readers see to decide whether they take it.
const HEAD: usize = 4096;

/// Everything the inputs hold, ready to register as tables.
#[derive(Default)]
pub struct Loaded {
    pub captures: Vec<Arc<CaptureSource>>,
    /// Record batches per artifact table.
    pub batches: BTreeMap<&'static str, Vec<RecordBatch>>,
    /// The files that fed each artifact table, as `bundle:path`.
    pub fed: BTreeMap<&'static str, Vec<String>>,
    pub warnings: Vec<String>,
    /// Each input, as the `bundle` (and `host`) of its rows.
    pub bundles: Vec<BundleInfo>,
}

/// One input as its rows name it.
#[derive(Debug, Clone, Default)]
pub struct BundleInfo {
    /// The `bundle` column of its rows.
    pub name: String,
    /// The `host` column of its rows (the manifest's).
    pub host: Option<String>,
    /// Start of its collection window (the manifest's), in nanoseconds.
    pub started_ns: Option<u64>,
    /// The file or folder it was read from.
    pub path: PathBuf,
}

impl Loaded {
    /// Opens every input. An input that is missing, unreadable or unsafe
    /// fails the call with an error naming it; damage inside a file that
    /// was read is a warning.
    pub fn open(inputs: &[InputSpec]) -> Result<Loaded, Error> {
        let mut loaded = Loaded::default();
        for spec in inputs {
            for path in expand(&spec.path)? {
                let explicit = path == spec.path;
                let label = if explicit {
                    spec.label.clone()
                } else {
                    InputSpec::parse(&path.to_string_lossy()).label
                };
                loaded.input(&InputSpec { label, path })?;
            }
        }
        Ok(loaded)
    }

    fn input(&mut self, spec: &InputSpec) -> Result<(), Error> {
        let path = &spec.path;
        if path.is_dir() {
            return self.directory(path, &name_of(path), path);
        }
        let head = read_head(path)?;
        if head.starts_with(&bundle::ZSTD_MAGIC) {
            let dir = bundle::open(path)?;
            return self.directory(&dir, &name_of(path), path);
        }
        let name = name_of(path);
        if path.extension().is_some_and(|e| e == "capsnap") {
            let first: String = head.iter().take(4).map(|b| format!("{b:02x}")).collect();
            return Err(Error::Bundle {
                path: path.clone(),
                problem: format!(
                    "not a capsnap bundle: it starts with {first}, not the zstd magic 28b52ffd"
                ),
            });
        }
        if !is_capture(path, &head)
            && let Some(readers) = claimed(&name, &head)
        {
            let origin = Origin::of(&name, None, &name);
            self.artifact(path, origin, &readers);
            self.bundles.push(BundleInfo {
                name,
                path: path.clone(),
                ..BundleInfo::default()
            });
            return Ok(());
        }
        let source = CaptureSource::open(spec)?;
        self.capture(source, path.display().to_string());
        self.bundles.push(BundleInfo {
            name: path.display().to_string(),
            path: path.clone(),
            ..BundleInfo::default()
        });
        Ok(())
    }

    /// A capture feeds every capture table.
    fn capture(&mut self, source: CaptureSource, shown: String) {
        for table in CAPTURE_TABLES {
            self.fed.entry(table.name).or_default().push(shown.clone());
        }
        self.captures.push(Arc::new(source));
    }

    /// Reads every file under `root`, a bundle named `name` read from
    /// `input`.
    fn directory(&mut self, root: &Path, name: &str, input: &Path) -> Result<(), Error> {
        let manifest_path = root.join(formats::bundle::MANIFEST_NAME);
        let manifest = match std::fs::read(&manifest_path) {
            Ok(bytes) => match Manifest::parse(&bytes) {
                Ok(m) => Some(Arc::new(m)),
                Err(e) => {
                    self.warnings
                        .push(format!("{}: {e}", manifest_path.display()));
                    None
                }
            },
            Err(_) => None,
        };
        let host = manifest.as_ref().and_then(|m| m.host()).map(str::to_owned);
        self.bundles.push(BundleInfo {
            name: name.to_owned(),
            host: host.clone(),
            started_ns: manifest
                .as_ref()
                .map(|m| m.started_ns)
                .filter(|&ns| ns > 0),
            path: input.to_owned(),
        });
        let mut files = Vec::new();
        walk(root, root, 0, &mut files, &mut self.warnings);
        files.sort();
        let mut texts = Vec::new();
        for rel in files {
            let path = root.join(&rel);
            let head = match read_head(&path) {
                Ok(h) => h,
                Err(e) => {
                    self.warnings.push(e.chain());
                    continue;
                }
            };
            let origin = match &manifest {
                Some(m) => Origin::in_bundle(name, m, &rel),
                None => Origin::of(name, None, &rel),
            };
            if is_capture(&path, &head) {
                // `netns/<dir>/packets.pcapng` is the capture point of that
                // namespace; any other capture is named after its path.
                let label = origin
                    .netns
                    .clone()
                    .unwrap_or_else(|| InputSpec::parse(&rel).label);
                let spec = InputSpec {
                    label,
                    path: path.clone(),
                };
                match CaptureSource::open(&spec) {
                    Ok(source) => {
                        self.capture(
                            source.in_bundle(name, host.clone()),
                            format!("{name}:{rel}"),
                        );
                    }
                    Err(e) => self.warnings.push(e.chain()),
                }
                continue;
            }
            let Some(readers) = claimed(&rel, &head) else {
                continue;
            };
            let readers: Vec<&'static Reader> = readers
                .into_iter()
                .filter(|r| !r.superseded_by.is_some_and(|s| sibling_exists(&path, s)))
                .collect();
            if readers.is_empty() {
                continue;
            }
            texts.push((path, origin, readers));
        }
        let results: Vec<_> = texts
            .into_par_iter()
            .map(|(path, origin, readers)| parse_file(&path, origin, &readers))
            .collect();
        for r in results {
            self.absorb(r);
        }
        Ok(())
    }

    fn artifact(&mut self, path: &Path, origin: Origin, readers: &[&'static Reader]) {
        let r = parse_file(path, origin, readers);
        self.absorb(r);
    }

    fn absorb(&mut self, parsed: Parsed) {
        self.warnings.extend(parsed.warnings);
        for (table, batch, file) in parsed.batches {
            self.batches.entry(table).or_default().push(batch);
            self.fed.entry(table).or_default().push(file);
        }
    }
}

/// What one text file gave.
struct Parsed {
    batches: Vec<(&'static str, RecordBatch, String)>,
    warnings: Vec<String>,
}

fn parse_file(path: &Path, origin: Origin, readers: &[&'static Reader]) -> Parsed {
    let mut parsed = Parsed {
        batches: Vec::new(),
        warnings: Vec::new(),
    };
    let shown = format!("{}:{}", origin.bundle, origin.path);
    let bytes = match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_TEXT => {
            parsed.warnings.push(format!(
                "{shown}: {} bytes, over the {MAX_TEXT}-byte limit for text files; not read",
                m.len()
            ));
            return parsed;
        }
        _ => match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                parsed.warnings.push(format!("{shown}: cannot read: {e}"));
                return parsed;
            }
        },
    };
    for reader in readers {
        match formats::read(reader, &bytes, origin.clone()) {
            Ok((batch, skipped, total)) => {
                if total > 0 {
                    let first: Vec<String> = skipped.iter().map(ToString::to_string).collect();
                    parsed.warnings.push(format!(
                        "{shown}: {total} line(s) not read as {}; kept the rest ({})",
                        reader.what,
                        first.join("; ")
                    ));
                }
                parsed
                    .batches
                    .push((reader.table.name, batch, shown.clone()));
            }
            Err(e) => parsed
                .warnings
                .push(format!("{shown}: not read as {}: {e}", reader.what)),
        }
    }
    parsed
}

/// The readers that take the file at `rel` with first bytes `head`.
fn claimed(rel: &str, head: &[u8]) -> Option<Vec<&'static Reader>> {
    let readers: Vec<&'static Reader> = formats::readers()
        .iter()
        .copied()
        .filter(|r| (r.claims)(rel, head))
        .collect();
    (!readers.is_empty()).then_some(readers)
}

fn sibling_exists(path: &Path, rel: &str) -> bool {
    let mut p = path.parent().map(Path::to_path_buf).unwrap_or_default();
    for c in rel.split('/') {
        match c {
            ".." => {
                p.pop();
            }
            "." | "" => {}
            c => p.push(c),
        }
    }
    p.is_file()
}

/// A glob (`bundles/*.capsnap`) becomes the files it matches, sorted; a
/// plain path stays itself (and fails later if missing).
pub(crate) fn expand(path: &Path) -> Result<Vec<PathBuf>, Error> {
    let text = path.to_string_lossy();
    if path.exists() || !text.contains(['*', '?', '[']) {
        return Ok(vec![path.to_owned()]);
    }
    let mut matched: Vec<PathBuf> = glob::glob(&text)
        .map_err(|e| Error::Glob {
            pattern: text.to_string(),
            problem: e.to_string(),
        })?
        .filter_map(Result::ok)
        .collect();
    matched.sort();
    if matched.is_empty() {
        return Err(Error::Glob {
            pattern: text.to_string(),
            problem: "matches no file".into(),
        });
    }
    Ok(matched)
}

/// Walks `dir` without following symbolic links, collecting file paths
/// relative to `root` ('/'-separated).
fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<String>, warnings: &mut Vec<String>) {
    if depth > MAX_DEPTH {
        warnings.push(format!(
            "{}: deeper than {MAX_DEPTH} levels; not read",
            dir.display()
        ));
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            warnings.push(format!("{}: cannot list: {e}", dir.display()));
            return;
        }
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            walk(root, &path, depth + 1, out, warnings);
        } else if kind.is_file()
            && let Ok(rel) = path.strip_prefix(root)
            && let Some(rel) = rel.to_str()
            && !rel.ends_with(".capsnap-complete")
        {
            out.push(rel.to_owned());
        }
    }
}

fn read_head(path: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let open = |source| Error::Open {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(open)?;
    let mut head = Vec::with_capacity(HEAD);
    f.by_ref()
        .take(HEAD as u64)
        .read_to_end(&mut head)
        .map_err(open)?;
    Ok(head)
}

/// pcap (either byte order, micro or nano) or pcapng magic.
fn is_capture(path: &Path, head: &[u8]) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    matches!(ext, "pcap" | "pcapng" | "cap") || formats::is_capture(head)
}

fn name_of(path: &Path) -> String {
    std::fs::canonicalize(path)
        .ok()
        .as_deref()
        .unwrap_or(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superseded_files_look_for_their_sibling() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("netns/host/proc/net");
        std::fs::create_dir_all(&net).unwrap();
        std::fs::write(net.join("unix"), "").unwrap();
        assert!(!sibling_exists(&net.join("unix"), "../../unix_diag.tsv"));
        std::fs::write(dir.path().join("netns/host/unix_diag.tsv"), "").unwrap();
        assert!(sibling_exists(&net.join("unix"), "../../unix_diag.tsv"));
    }
}
