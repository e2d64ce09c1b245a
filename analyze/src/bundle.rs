//! Opening a `.capsnap` bundle: untrusted input from another machine.
//!
//! A bundle is extracted once into capsnap's cache
//! (`$XDG_CACHE_HOME/capsnap/bundles/<key>/`, else `~/.cache/...`, else the
//! temp dir) and read from there as a directory; opening it again reuses
//! the extraction. Extraction trusts nothing in the file:
//! - `manifest.json` must come first and be small; it declares every
//!   member with its size and sha256.
//! - Each member must be a regular file or directory with a plain relative
//!   path (no `..`, no absolute path, no link or device) that the manifest
//!   declares, with the declared size; its sha256 is checked as it is
//!   written. Nothing is written outside the extraction directory.
//! - The declared sizes bound the whole extraction (decompression bombs
//!   stop at the declared size, and a bundle declaring more than
//!   [`MAX_EXTRACTED`] or more than the free space is refused).
//!
//! Any violation fails the bundle with an error naming the member.

use crate::error::Error;
use formats::Manifest;
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

/// The zstd frame magic number: how a bundle file is recognised.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Largest manifest read (a manifest lists members and namespaces; even a
/// node with thousands of namespaces stays far below this).
const MAX_MANIFEST: u64 = 64 << 20;

/// Largest total a bundle may declare (the collector caps packets at
/// 256 MiB by default; this leaves room for big collections).
pub const MAX_EXTRACTED: u64 = 32 << 30;

/// Extracts `path` (if not already) and returns the directory holding it.
pub fn open(path: &Path) -> Result<PathBuf, Error> {
    let err = |problem: String| Error::Bundle {
        path: path.to_owned(),
        problem,
    };
    let meta = std::fs::metadata(path).map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })?;
    let cache = cache_dir().ok_or_else(|| err("no cache directory to extract into".into()))?;
    let key = cache_key(path, &meta);
    let dir = cache.join(&key);
    if dir.join(COMPLETE).exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&cache)
        .map_err(|e| err(format!("cannot create {}: {e}", cache.display())))?;
    let staging = cache.join(format!("{key}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir(&staging)
        .map_err(|e| err(format!("cannot create {}: {e}", staging.display())))?;
    let result = File::open(path)
        .map_err(|e| format!("cannot read: {e}"))
        .and_then(|f| extract(f, &staging));
    match result {
        Ok(()) => {
            File::create(staging.join(COMPLETE))
                .map_err(|e| err(format!("cannot write cache: {e}")))?;
            // Another capsnap may have finished the same bundle meanwhile:
            // its copy is as good as ours.
            if std::fs::rename(&staging, &dir).is_err() {
                let _ = std::fs::remove_dir_all(&staging);
            }
            Ok(dir)
        }
        Err(problem) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(err(problem))
        }
    }
}

/// Marks a finished extraction (a dot file no bundle member can be:
/// members are declared in the manifest, and this name is refused there).
const COMPLETE: &str = ".capsnap-complete";

fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    Some(base.join("capsnap").join("bundles"))
}

/// Identifies one bundle file's contents cheaply: path, size and mtime
/// (members are verified against the manifest's checksums on extraction).
fn cache_key(path: &Path, meta: &std::fs::Metadata) -> String {
    let full = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let mut h = Sha256::new();
    h.update(full.as_os_str().as_encoded_bytes());
    h.update(meta.len().to_le_bytes());
    h.update(mtime.to_le_bytes());
    hex(&h.finalize()[..12])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Extracts the tar+zstd stream `input` into `into`.
fn extract(input: impl Read, into: &Path) -> Result<(), String> {
    let decoder =
        zstd::stream::read::Decoder::new(input).map_err(|e| format!("not a zstd stream: {e}"))?;
    // Until the manifest is read, nothing bounds the stream but the
    // manifest limit; afterwards, the declared sizes do.
    let left = Rc::new(Cell::new(MAX_MANIFEST + 4096));
    let bounded = Bounded {
        inner: decoder,
        left: left.clone(),
    };
    let mut archive = tar::Archive::new(bounded);
    let mut entries = archive
        .entries()
        .map_err(|e| format!("not a tar stream: {e}"))?;
    let manifest = {
        let mut first = entries
            .next()
            .ok_or("empty bundle: no manifest.json")?
            .map_err(|e| format!("damaged or cut short (reading manifest.json): {e}"))?;
        let name = entry_path(&first)?;
        if name != "manifest.json" {
            return Err(format!("first member is {name:?}, not manifest.json"));
        }
        let size = first
            .header()
            .size()
            .map_err(|e| format!("manifest.json: {e}"))?;
        if size > MAX_MANIFEST {
            return Err(format!(
                "manifest.json is {size} bytes, over the {MAX_MANIFEST} limit"
            ));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        first
            .read_to_end(&mut bytes)
            .map_err(|e| format!("manifest.json: {e}"))?;
        let manifest = Manifest::parse(&bytes).map_err(|e| format!("manifest.json: {e}"))?;
        std::fs::write(into.join("manifest.json"), &bytes)
            .map_err(|e| format!("writing manifest.json: {e}"))?;
        manifest
    };
    let mut declared: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut total: u64 = 0;
    for m in &manifest.members {
        safe_relative(&m.path).map_err(|e| format!("manifest declares {:?}: {e}", m.path))?;
        if m.path == "manifest.json" || m.path.rsplit('/').any(|c| c == COMPLETE) {
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
    if let Some(free) = free_space(into)
        && total > free
    {
        return Err(format!(
            "manifest declares {total} bytes of members; only {free} bytes are free in {}",
            into.display()
        ));
    }
    // From here the stream may hold the members' data plus their headers
    // (with long-name extensions) and the end-of-archive blocks.
    left.set(total.saturating_add(4096 * (declared.len() as u64 + 4)));
    let mut seen = 0usize;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| format!("damaged or cut short (after {seen} members): {e}"))?;
        let name = entry_path(&entry)?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            safe_relative(&name).map_err(|e| format!("member {name:?}: {e}"))?;
            std::fs::create_dir_all(into.join(&name)).map_err(|e| format!("{name}: {e}"))?;
            continue;
        }
        if !kind.is_file() {
            return Err(format!(
                "member {name:?} is a {kind:?}, not a regular file: links and devices are refused"
            ));
        }
        let Some((size, sha)) = declared.remove(&name) else {
            return Err(format!(
                "member {name:?} is not declared in manifest.json (or appears twice)"
            ));
        };
        let header_size = entry
            .header()
            .size()
            .map_err(|e| format!("member {name:?}: {e}"))?;
        if header_size != size {
            return Err(format!(
                "member {name:?} is {header_size} bytes in the archive but {size} in manifest.json"
            ));
        }
        let target = into.join(&name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{name}: {e}"))?;
        }
        let mut out = File::create(&target).map_err(|e| format!("{name}: {e}"))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
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
        if written != size {
            return Err(format!(
                "member {name:?} ends after {written} of its {size} bytes"
            ));
        }
        let got = hex(&hasher.finalize());
        if got != sha {
            return Err(format!(
                "member {name:?} fails its checksum: sha256 {got}, manifest.json says {sha}"
            ));
        }
        seen += 1;
    }
    if let Some(missing) = declared.keys().next() {
        return Err(format!(
            "member {missing:?} is declared in manifest.json but not in the archive ({} missing; {seen} present): the bundle is cut short",
            declared.len()
        ));
    }
    Ok(())
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

fn entry_path<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String, String> {
    let path = entry
        .path()
        .map_err(|e| format!("member with an unreadable name: {e}"))?;
    let name = path
        .to_str()
        .ok_or_else(|| format!("member name {path:?} is not UTF-8"))?
        .trim_end_matches('/')
        .to_owned();
    safe_relative(&name).map_err(|e| format!("member {name:?}: {e}"))?;
    Ok(name)
}

/// A path made only of plain components: no root, `..`, `.` or empty parts.
fn safe_relative(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.contains('\0') || path.contains('\\') {
        return Err("path holds a NUL or backslash");
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

/// Bytes available to an unprivileged writer on the file system of `dir`.
fn free_space(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` is written by the call
    // before it is read (only when it returns 0).
    let st = unsafe {
        if libc::statvfs(c.as_ptr(), st.as_mut_ptr()) != 0 {
            return None;
        }
        st.assume_init()
    };
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member of a test archive: name, type and contents.
    struct M<'a>(&'a str, tar::EntryType, &'a [u8]);

    fn sha(data: &[u8]) -> String {
        hex(&Sha256::digest(data))
    }

    fn manifest(members: &[(&str, &[u8])]) -> Vec<u8> {
        let members: Vec<_> = members
            .iter()
            .map(|(p, d)| serde_json::json!({"path": p, "size": d.len(), "sha256": sha(d)}))
            .collect();
        serde_json::to_vec(
            &serde_json::json!({"format_version": 1, "host": "n1", "members": members}),
        )
        .unwrap()
    }

    /// Writes members with raw names (tar::Builder would refuse `..`).
    fn archive(members: &[M]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for M(name, kind, data) in members {
            let mut h = tar::Header::new_old();
            let raw = &mut h.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if kind.is_symlink() {
                h.set_link_name("/etc/passwd").unwrap();
            }
            h.set_cksum();
            tar.append(&h, *data).unwrap();
        }
        zstd::encode_all(&tar.into_inner().unwrap()[..], 3).unwrap()
    }

    fn try_extract(members: &[M]) -> (Result<(), String>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let into = dir.path().join("x");
        std::fs::create_dir(&into).unwrap();
        (extract(&archive(members)[..], &into), dir)
    }

    const F: tar::EntryType = tar::EntryType::Regular;

    #[test]
    fn a_valid_bundle_extracts_and_verifies() {
        let m = manifest(&[("netns/host/proc/net/sockstat", b"TCP: inuse 1\n")]);
        let (r, dir) = try_extract(&[
            M("manifest.json", F, &m),
            M("netns/host/proc/net/sockstat", F, b"TCP: inuse 1\n"),
        ]);
        r.unwrap();
        let got = std::fs::read(dir.path().join("x/netns/host/proc/net/sockstat")).unwrap();
        assert_eq!(got, b"TCP: inuse 1\n");
    }

    #[test]
    fn unsafe_members_are_refused_by_name() {
        let evil = b"owned";
        let cases: &[(&[M], &str)] = &[
            (&[M("x.txt", F, b"")], "not manifest.json"),
            (&[M("manifest.json", F, &manifest(&[("../escape", evil)])), M("../escape", F, evil)], "escapes"),
            (&[M("manifest.json", F, &manifest(&[("/tmp/abs", evil)])), M("/tmp/abs", F, evil)], "absolute"),
            (&[M("manifest.json", F, &manifest(&[])), M("link", tar::EntryType::Symlink, b"")], "links and devices are refused"),
            (&[M("manifest.json", F, &manifest(&[])), M("extra.txt", F, evil)], "not declared"),
            (&[M("manifest.json", F, &manifest(&[("a.txt", b"good")])), M("a.txt", F, b"evil")], "fails its checksum"),
            (&[M("manifest.json", F, &manifest(&[("a.txt", b"good")])), M("a.txt", F, b"longer")], "6 bytes in the archive but 4"),
            (&[M("manifest.json", F, &manifest(&[("a.txt", b"good")]))], "cut short"),
            (&[M("manifest.json", F, b"{\"format_version\":1,\"members\":[{\"path\":\"big\",\"size\":99999999999999,\"sha256\":\"00\"}]}")], "over the"),
        ];
        for (members, want) in cases {
            let (r, dir) = try_extract(members);
            let err = r.expect_err(want);
            assert!(err.contains(want), "{err:?} should say {want:?}");
            assert!(!dir.path().join("escape").exists() && !Path::new("/tmp/abs").exists());
        }
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_declared_size() {
        // The manifest declares one 4-byte file; before it, the archive
        // carries a 64 MiB GNU long-name record (compressing to a few KiB),
        // which a tar reader would load into memory.
        let m = manifest(&[("a.txt", b"good")]);
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(m.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "manifest.json", &m[..]).unwrap();
        let zeros = vec![b'a'; 64 << 20];
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(zeros.len() as u64);
        h.set_cksum();
        tar.append(&h, &zeros[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "a.txt", &b"good"[..]).unwrap();
        let bytes = zstd::encode_all(&tar.into_inner().unwrap()[..], 3).unwrap();
        assert!(bytes.len() < 1 << 20);
        let dir = tempfile::tempdir().unwrap();
        let err = extract(&bytes[..], dir.path()).unwrap_err();
        assert!(
            err.contains("more data than its manifest declares"),
            "{err}"
        );
    }
}
