//! Reading a `.capsnap` bundle file: untrusted input from another machine.
//!
//! [`read`] walks the zstd-compressed tar stream once and hands every
//! member that passes the checks to a [`Sink`] (the analyzer's sink writes
//! them into its cache; the fuzzer's keeps nothing). It trusts nothing in
//! the file:
//! - `manifest.json` must come first and be small; it declares every
//!   member with its size and sha256.
//! - Each member must be a regular file or directory with a plain relative
//!   path (no `..`, no absolute path, no link or device) that the manifest
//!   declares, with the declared size; its sha256 is checked as it is
//!   passed on, and a member that fails it fails the bundle.
//! - The declared sizes bound the whole stream (decompression bombs stop
//!   at the declared size, and a bundle declaring more than
//!   [`MAX_EXTRACTED`] is refused before any member is read).
//! - Allocation follows bytes present, never a header's claim: GNU
//!   long-name and PAX records (which a tar reader would load whole into
//!   memory) are refused over [`MAX_NAME_RECORD`] bytes.
//!
//! Any violation fails the bundle with an error naming the member.

use super::{MANIFEST_NAME, Manifest};
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Component, Path};
use std::rc::Rc;

/// The zstd frame magic number: how a bundle file is recognised.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Largest manifest read (a manifest lists members and namespaces; even a
/// node with thousands of namespaces stays far below this).
pub const MAX_MANIFEST: u64 = 64 << 20;

/// Largest total a bundle may declare (the collector caps packets at
/// 256 MiB by default; this leaves room for big collections).
pub const MAX_EXTRACTED: u64 = 32 << 30;

/// Largest GNU long-name or PAX extended-header record: a path inside a
/// bundle is a few hundred bytes at most (PATH_MAX is 4096, limits.h).
pub const MAX_NAME_RECORD: u64 = 64 << 10;

/// Marks a finished extraction in the analyzer's cache: a name no member
/// may have (the manifest may not declare it).
pub const COMPLETE: &str = ".capsnap-complete";

/// Where the members of a bundle go once they pass the checks.
pub trait Sink {
    /// The manifest, once it parsed, and the bytes its members declare in
    /// all: the sink refuses when it has no room for them.
    fn manifest(&mut self, bytes: &[u8], declared: u64) -> Result<(), String>;
    /// A directory member (a plain relative path).
    fn dir(&mut self, name: &str) -> Result<(), String>;
    /// A file member about to be passed on: where its bytes go. Nothing is
    /// trusted until [`read`] returns `Ok`: a member whose checksum fails
    /// fails the whole bundle after its bytes were written.
    fn file(&mut self, name: &str, size: u64) -> Result<Box<dyn Write + '_>, String>;
}

/// Reads only the manifest's bytes (the first member), bounded by
/// [`MAX_MANIFEST`]: what identifies a bundle's contents cheaply.
pub fn manifest_bytes(input: impl Read) -> Result<Vec<u8>, String> {
    let (mut archive, _) = open(input)?;
    manifest_member(&mut entries(&mut archive)?)
}

/// Reads the whole bundle from `input` into `sink`, checking every member
/// against the manifest, and returns the manifest.
pub fn read(input: impl Read, sink: &mut dyn Sink) -> Result<Manifest, String> {
    let (mut archive, left) = open(input)?;
    let mut entries = entries(&mut archive)?;
    let bytes = manifest_member(&mut entries)?;
    let manifest = Manifest::parse(&bytes).map_err(|e| format!("{MANIFEST_NAME}: {e}"))?;
    let mut declared: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut total: u64 = 0;
    for m in &manifest.members {
        safe_relative(&m.path).map_err(|e| format!("manifest declares {:?}: {e}", m.path))?;
        if m.path == MANIFEST_NAME || m.path.rsplit('/').any(|c| c == COMPLETE) {
            return Err(format!("manifest declares a reserved name {:?}", m.path));
        }
        total = total.saturating_add(m.size);
        declared.insert(m.path.clone(), (m.size, m.sha256.to_ascii_lowercase()));
    }
    if total > MAX_EXTRACTED {
        return Err(format!(
            "manifest declares {total} bytes of members, over the {MAX_EXTRACTED} bytes capsnap extracts"
        ));
    }
    sink.manifest(&bytes, total)?;
    // From here the stream may hold the members' data plus their headers
    // (with long-name records) and the end-of-archive blocks.
    left.set(
        total.saturating_add((2 * 512 + MAX_NAME_RECORD.min(4096)) * (declared.len() as u64 + 4)),
    );
    let mut seen = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    while let Some((name, mut entry)) = next_member(&mut entries, seen)? {
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            sink.dir(&name)?;
            continue;
        }
        if !kind.is_file() {
            return Err(format!(
                "member {name:?} is a {kind:?}, not a regular file: links and devices are refused"
            ));
        }
        let Some((size, sha)) = declared.remove(&name) else {
            return Err(format!(
                "member {name:?} is not declared in {MANIFEST_NAME} (or appears twice)"
            ));
        };
        let header_size = entry
            .header()
            .size()
            .map_err(|e| format!("member {name:?}: {e}"))?;
        if header_size != size {
            return Err(format!(
                "member {name:?} is {header_size} bytes in the archive but {size} in {MANIFEST_NAME}"
            ));
        }
        let mut out = sink.file(&name, size)?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let mut limited = (&mut entry).take(size);
        loop {
            let n = limited
                .read(&mut buf)
                .map_err(|e| format!("member {name:?}: {e}"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| format!("writing {name}: {e}"))?;
            written += n as u64;
        }
        out.flush().map_err(|e| format!("writing {name}: {e}"))?;
        drop(out);
        if written != size {
            return Err(format!(
                "member {name:?} ends after {written} of its {size} bytes"
            ));
        }
        let got = hex(&hasher.finalize());
        if got != sha {
            return Err(format!(
                "member {name:?} fails its checksum: sha256 {got}, {MANIFEST_NAME} says {sha}"
            ));
        }
        seen += 1;
    }
    if let Some(missing) = declared.keys().next() {
        return Err(format!(
            "member {missing:?} is declared in {MANIFEST_NAME} but not in the archive ({} missing; {seen} present): the bundle is cut short",
            declared.len()
        ));
    }
    Ok(manifest)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

type Stream<R> = Bounded<zstd::stream::read::Decoder<'static, std::io::BufReader<R>>>;

/// The tar archive of a bundle and the bound on its decompressed size.
type Opened<R> = (tar::Archive<Stream<R>>, Rc<Cell<u64>>);

/// The tar archive of a bundle, its decompressed size bounded by `left`.
fn open<R: Read>(input: R) -> Result<Opened<R>, String> {
    let decoder =
        zstd::stream::read::Decoder::new(input).map_err(|e| format!("not a zstd stream: {e}"))?;
    // Until the manifest is read, nothing bounds the stream but the
    // manifest limit; afterwards, the declared sizes do.
    let left = Rc::new(Cell::new(MAX_MANIFEST + 4 * 512 + MAX_NAME_RECORD));
    let bounded = Bounded {
        inner: decoder,
        left: left.clone(),
    };
    Ok((tar::Archive::new(bounded), left))
}

/// The entries of the archive in raw mode: long names are applied by
/// [`next_member`], so that no record's claimed size is ever allocated.
fn entries<S: Read>(archive: &mut tar::Archive<S>) -> Result<tar::Entries<'_, S>, String> {
    Ok(archive
        .entries()
        .map_err(|e| format!("not a tar stream: {e}"))?
        .raw(true))
}

/// The first member's bytes, which must be the manifest.
fn manifest_member<S: Read>(entries: &mut tar::Entries<'_, S>) -> Result<Vec<u8>, String> {
    let Some((name, mut first)) = next_member(entries, 0)? else {
        return Err(format!("empty bundle: no {MANIFEST_NAME}"));
    };
    if name != MANIFEST_NAME {
        return Err(format!("first member is {name:?}, not {MANIFEST_NAME}"));
    }
    if !first.header().entry_type().is_file() {
        return Err(format!("{MANIFEST_NAME} is not a regular file"));
    }
    let size = first
        .header()
        .size()
        .map_err(|e| format!("{MANIFEST_NAME}: {e}"))?;
    if size > MAX_MANIFEST {
        return Err(format!(
            "{MANIFEST_NAME} is {size} bytes, over the {MAX_MANIFEST} limit"
        ));
    }
    let mut bytes = Vec::new();
    (&mut first)
        .take(size)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{MANIFEST_NAME}: {e}"))?;
    if bytes.len() as u64 != size {
        return Err(format!(
            "{MANIFEST_NAME} ends after {} of its {size} bytes",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// The next member that is not a name record, with its checked name.
fn next_member<'a, S: Read>(
    entries: &mut tar::Entries<'a, S>,
    seen: usize,
) -> Result<Option<(String, tar::Entry<'a, S>)>, String> {
    let mut long_name: Option<Vec<u8>> = None;
    for entry in entries.by_ref() {
        let mut entry =
            entry.map_err(|e| format!("damaged or cut short (after {seen} members): {e}"))?;
        let kind = entry.header().entry_type();
        if kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions()
        {
            let size = entry
                .header()
                .size()
                .map_err(|e| format!("a name record after {seen} members: {e}"))?;
            if size > MAX_NAME_RECORD {
                return Err(format!(
                    "a {kind:?} record after {seen} members claims {size} bytes, over the {MAX_NAME_RECORD}-byte limit for names"
                ));
            }
            let mut data = Vec::new();
            (&mut entry)
                .take(size)
                .read_to_end(&mut data)
                .map_err(|e| format!("a name record after {seen} members: {e}"))?;
            if kind.is_gnu_longname() {
                while data.last() == Some(&0) {
                    data.pop();
                }
                long_name = Some(data);
            } else if kind.is_pax_local_extensions() {
                for ext in tar::PaxExtensions::new(&data) {
                    let ext = ext.map_err(|e| {
                        format!("a PAX record after {seen} members is damaged: {e}")
                    })?;
                    if ext.key_bytes() == b"path" {
                        long_name = Some(ext.value_bytes().to_vec());
                    }
                }
            }
            // Long link names and global headers carry nothing a bundle
            // uses (links are refused by type).
            continue;
        }
        let raw = match long_name.take() {
            Some(n) => n,
            None => entry.header().path_bytes().into_owned(),
        };
        let name = std::str::from_utf8(&raw)
            .map_err(|_| {
                format!(
                    "member name {:?} is not UTF-8",
                    String::from_utf8_lossy(&raw)
                )
            })?
            .trim_end_matches('/')
            .to_owned();
        safe_relative(&name).map_err(|e| format!("member {name:?}: {e}"))?;
        return Ok(Some((name, entry)));
    }
    Ok(None)
}

/// A reader that fails after `left` bytes: the decompressed stream can
/// never grow past what the manifest declares (a decompression bomb stops
/// there). The bound is shared so it can be set once the manifest is read.
struct Bounded<R> {
    inner: R,
    left: Rc<Cell<u64>>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.left.get();
        if left == 0 {
            return Err(std::io::Error::other(
                "the archive holds more data than its manifest declares",
            ));
        }
        let max = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left.set(left - n as u64);
        Ok(n)
    }
}

/// A path made only of plain components: no root, `..`, `.` or empty parts.
pub fn safe_relative(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.contains('\0') || path.contains('\\') {
        return Err("path holds a NUL or backslash");
    }
    if path.contains("//") {
        return Err("path holds an empty component");
    }
    for c in Path::new(path).components() {
        match c {
            Component::Normal(_) => {}
            Component::ParentDir => return Err("path escapes with `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
            Component::CurDir => return Err("path holds `.`"),
        }
    }
    Ok(())
}
