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
/// of that size is not something to hold in memory; captures stream);
/// lower with a lower memory limit: a file may take half of it.
const MAX_TEXT: u64 = 1 << 30;
/// Small batches (one per file: 100,000 one-line /proc/sys files) are
/// merged into batches of about this many rows, so that per-batch overhead
/// does not grow with the number of files.
const MERGE_ROWS: usize = 8192;
/// Files parsed in parallel at once (their results are held until merged).
const GROUP_FILES: usize = 512;
/// Directories deeper than this are not walked (a bundle is 6 deep).
const MAX_DEPTH: usize = 12;
/// Bytes of a file the readers see to decide whether they take it.
const HEAD: usize = 4096;

/// Everything the inputs hold, ready to register as tables.
#[derive(Default)]
pub struct Loaded {
    /// What text files and their tables may hold in memory at once.
    budget: u64,
    /// What the text tables hold so far.
    held: u64,
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
    pub fn open(inputs: &[InputSpec], memory_limit: usize) -> Result<Loaded, Error> {
        let mut loaded = Loaded {
            budget: memory_limit as u64,
            ..Loaded::default()
        };
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
        loaded.merge_small_batches();
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
            if head.is_empty() {
                return Err(Error::Bundle {
                    path: path.clone(),
                    problem: "the file is empty (0 bytes): not a capsnap bundle (cut short while copying?)".into(),
                });
            }
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
            started_ns: manifest.as_ref().map(|m| m.started_ns).filter(|&ns| ns > 0),
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
            // A copy taken when the window opened is read with its later
            // copy, never alone.
            if formats::bundle::is_at_open(&rel) {
                continue;
            }
            let Some(readers) = claimed(&rel, &head) else {
                continue;
            };
            let readers: Vec<&'static Reader> = readers
                .into_iter()
                .filter(|r| !r.superseded_by.iter().any(|s| sibling_exists(&path, s)))
                .collect();
            if readers.is_empty() {
                continue;
            }
            let at_open = formats::bundle::at_open_path(&rel)
                .map(|rel| (root.join(&rel), rel))
                .filter(|(p, _)| p.is_file());
            texts.push((path, at_open, origin, readers));
        }
        // Files are parsed in parallel in groups whose bytes fit a quarter
        // of the budget, so that what is read at once stays bounded.
        let max_text = self.max_text();
        let mut texts = texts.into_iter().peekable();
        while texts.peek().is_some() {
            let mut group = Vec::new();
            let mut bytes = 0u64;
            while let Some(next) = texts.peek() {
                let len = std::fs::metadata(&next.0).map_or(0, |m| m.len());
                if !group.is_empty()
                    && (bytes + len > self.budget / 4 || group.len() >= GROUP_FILES)
                {
                    break;
                }
                bytes += len;
                group.extend(texts.next());
            }
            let results: Vec<_> = group
                .into_par_iter()
                .map(|(path, at_open, origin, readers)| {
                    parse_file(&path, at_open.as_ref(), origin, &readers, max_text)
                })
                .collect();
            for r in results {
                self.absorb(r);
            }
        }
        Ok(())
    }

    /// The largest text file read: half the memory budget, at most MAX_TEXT.
    fn max_text(&self) -> u64 {
        MAX_TEXT.min(self.budget / 2).max(1 << 20)
    }

    /// Merges each table's small batches (a file each) into bigger ones.
    fn merge_small_batches(&mut self) {
        for batches in self.batches.values_mut() {
            if batches.len() < 64 {
                continue;
            }
            let Some(schema) = batches.first().map(|b| b.schema()) else {
                continue;
            };
            let mut merged = Vec::new();
            let mut run: Vec<RecordBatch> = Vec::new();
            let mut rows = 0;
            for b in batches.drain(..) {
                rows += b.num_rows();
                run.push(b);
                if rows >= MERGE_ROWS {
                    merged.extend(concat(&schema, &mut run));
                    rows = 0;
                }
            }
            merged.extend(concat(&schema, &mut run));
            *batches = merged;
        }
    }

    fn artifact(&mut self, path: &Path, origin: Origin, readers: &[&'static Reader]) {
        let r = parse_file(path, None, origin, readers, self.max_text());
        self.absorb(r);
    }

    fn absorb(&mut self, parsed: Parsed) {
        self.warnings.extend(parsed.warnings);
        for (table, batch, file) in parsed.batches {
            // Text tables live in memory for the whole run: past the
            // budget, further files are left out, each with a warning.
            let size = batch.get_array_memory_size() as u64;
            if self.held + size > self.budget {
                self.warnings.push(format!(
                    "{file}: not loaded: the text tables would hold more than --memory-limit {} MiB ({} MiB so far); raise --memory-limit or query fewer inputs",
                    self.budget >> 20,
                    self.held >> 20
                ));
                continue;
            }
            self.held += size;
            let batches = self.batches.entry(table).or_default();
            batches.push(batch);
            merge_tail(batches);
            self.fed.entry(table).or_default().push(file);
        }
    }
}

/// Merges the small batches at the end of `batches` into one once there
/// are many of them (one batch per tiny file would otherwise cost its
/// buffers' minimum sizes and a header each).
fn merge_tail(batches: &mut Vec<RecordBatch>) {
    let small = batches
        .iter()
        .rev()
        .take_while(|b| b.num_rows() < MERGE_ROWS)
        .count();
    if small < 256 {
        return;
    }
    let at = batches.len() - small;
    let Some(schema) = batches.get(at).map(|b| b.schema()) else {
        return;
    };
    let mut run = batches.split_off(at);
    batches.extend(concat(&schema, &mut run));
}

/// What one text file gave.
struct Parsed {
    batches: Vec<(&'static str, RecordBatch, String)>,
    warnings: Vec<String>,
}

/// Concatenates `run` into one batch (emptying it).
fn concat(
    schema: &datafusion::arrow::datatypes::SchemaRef,
    run: &mut Vec<RecordBatch>,
) -> Vec<RecordBatch> {
    if run.is_empty() {
        return Vec::new();
    }
    match datafusion::arrow::compute::concat_batches(schema, run.iter()) {
        Ok(b) => {
            run.clear();
            vec![b]
        }
        Err(_) => std::mem::take(run),
    }
}

/// Parses the file at `path` with each of `readers`, with the copy of it
/// taken when the capture window opened (`at_open`: its path and its
/// bundle path) when the bundle has one.
fn parse_file(
    path: &Path,
    at_open: Option<&(PathBuf, String)>,
    origin: Origin,
    readers: &[&'static Reader],
    max_text: u64,
) -> Parsed {
    let mut parsed = Parsed {
        batches: Vec::new(),
        warnings: Vec::new(),
    };
    let shown = format!("{}:{}", origin.bundle, origin.path);
    let Some(bytes) = read_text(path, &shown, max_text, &mut parsed.warnings) else {
        return parsed;
    };
    let open = at_open.and_then(|(p, rel)| {
        let shown = format!("{}:{rel}", origin.bundle);
        read_text(p, &shown, max_text, &mut parsed.warnings)
    });
    // A reader may read other files of the same directory (the nft reader
    // leaves out what iptables-save listed), bounded like this one.
    let dir = path.to_owned();
    let beside: formats::Beside =
        Arc::new(move |rel: &str| read_bounded(&sibling(&dir, rel), max_text).ok().flatten());
    for reader in readers {
        match formats::read_with(
            reader,
            &bytes,
            open.as_deref(),
            Some(beside.clone()),
            origin.clone(),
        ) {
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

/// The bytes of a text file, or a warning naming it (`shown`) and why not.
fn read_text(path: &Path, shown: &str, max: u64, warnings: &mut Vec<String>) -> Option<Vec<u8>> {
    match read_bounded(path, max) {
        Ok(Some(b)) => Some(b),
        Ok(None) => {
            warnings.push(format!(
                "{shown}: over the {max}-byte limit for a text file (half of --memory-limit); not read"
            ));
            None
        }
        Err(e) => {
            warnings.push(format!("{shown}: {}", e.chain()));
            None
        }
    }
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
    sibling(path, rel).is_file()
}

/// The path of `rel` (`..` allowed) from the directory of `path`.
fn sibling(path: &Path, rel: &str) -> PathBuf {
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
    p
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

/// Opens `path` for reading only if it is a regular file: a FIFO, socket
/// or device is refused by type before anything is read (opening a FIFO
/// without O_NONBLOCK would wait for a writer forever; a device may never
/// end).
pub(crate) fn open_regular(path: &Path) -> Result<std::fs::File, Error> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let open = |source| Error::Open {
        path: path.to_owned(),
        source,
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(open)?;
    let kind = f.metadata().map_err(open)?.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(Error::NotRegular {
            path: path.to_owned(),
            what,
        });
    }
    Ok(f)
}

/// The bytes of the regular file `path`, or `None` when it holds more than
/// `max` (read up to max + 1: the size a stat gave may have grown since).
fn read_bounded(path: &Path, max: u64) -> Result<Option<Vec<u8>>, Error> {
    use std::io::Read;
    let f = open_regular(path)?;
    let len = f.metadata().map_or(0, |m| m.len());
    if len > max {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(len as usize);
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Read {
            path: path.to_owned(),
            offset: bytes.len() as u64,
            source,
        })?;
    Ok((bytes.len() as u64 <= max).then_some(bytes))
}

fn read_head(path: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let open = |source| Error::Open {
        path: path.to_owned(),
        source,
    };
    let mut f = open_regular(path)?;
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
