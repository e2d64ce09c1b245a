//! Opening a `.capsnap` bundle: untrusted input from another machine.
//!
//! A bundle is read by [`formats::bundle::reader`] (which checks every
//! member against the manifest's size and sha256 as it goes) into
//! capsnap's cache, and read from there as a directory; opening it again
//! reuses the extraction.
//!
//! The cache lives only where the user owns it: `$XDG_CACHE_HOME/capsnap/`
//! or `~/.cache/capsnap/`, else a private directory `capsnap-<uid>` in the
//! temp dir. Every use checks, without following links, that each cache
//! directory is a directory owned by us that nobody else may write to (and
//! the temp-dir fallback that nobody else may even read): another local
//! user can neither plant a link that root then extracts through nor a
//! forged extraction that root then trusts.
//!
//! An extraction is named by what it holds: a hash of the manifest's bytes
//! (which hold every member's sha256), the file's size and mtime. A bundle
//! whose contents change gets a new manifest, so a new extraction, whatever
//! its mtime says; the members of an extraction were each verified against
//! that manifest when it was made. Extractions interrupted (SIGKILL) leave
//! `<key>.tmp-<pid>`; the next run removes those of dead processes.

use crate::error::Error;
use formats::bundle::reader::{self, COMPLETE, Sink, hex};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub use formats::bundle::reader::ZSTD_MAGIC;

/// Extracts `path` (if not already) and returns the directory holding it.
pub fn open(path: &Path) -> Result<PathBuf, Error> {
    let err = |problem: String| Error::Bundle {
        path: path.to_owned(),
        problem,
    };
    let file = crate::load::open_regular(path)?;
    let meta = file.metadata().map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })?;
    let manifest = reader::manifest_bytes(std::io::BufReader::new(&file)).map_err(err)?;
    let cache = cache_dir().map_err(err)?;
    sweep(&cache);
    let key = cache_key(&manifest, &meta);
    let dir = cache.join(&key);
    if std::fs::symlink_metadata(dir.join(COMPLETE)).is_ok_and(|m| m.is_file()) {
        return Ok(dir);
    }
    let staging = cache.join(format!("{key}{TMP}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(|e| err(format!("cannot create {}: {e}", staging.display())))?;
    let mut sink = DirSink { into: &staging };
    let result = (&file)
        .seek(std::io::SeekFrom::Start(0))
        .map_err(|e| format!("cannot read: {e}"))
        .and_then(|_| reader::read(std::io::BufReader::new(&file), &mut sink));
    match result {
        Ok(_) => {
            File::create(staging.join(COMPLETE))
                .map_err(|e| err(format!("cannot write {}: {e}", staging.display())))?;
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

/// The infix of an extraction in progress: `<key>.tmp-<pid>`.
const TMP: &str = ".tmp-";

/// Writes the members into a fresh directory of the private cache.
struct DirSink<'a> {
    into: &'a Path,
}

impl Sink for DirSink<'_> {
    fn manifest(&mut self, bytes: &[u8], declared: u64) -> Result<(), String> {
        if let Some(free) = free_space(self.into)
            && declared > free
        {
            return Err(format!(
                "manifest declares {declared} bytes of members; only {free} bytes are free in {}",
                self.into.display()
            ));
        }
        std::fs::write(self.into.join(formats::bundle::MANIFEST_NAME), bytes)
            .map_err(|e| format!("writing {}: {e}", self.into.display()))
    }

    fn dir(&mut self, name: &str) -> Result<(), String> {
        std::fs::create_dir_all(self.into.join(name)).map_err(|e| format!("{name}: {e}"))
    }

    fn file(&mut self, name: &str, _size: u64) -> Result<Box<dyn Write + '_>, String> {
        let target = self.into.join(name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{name}: {e}"))?;
        }
        // create_new: a member appears once (the reader refuses a second),
        // so an existing file here is something else; O_NOFOLLOW too.
        let out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&target)
            .map_err(|e| format!("{name}: {e}"))?;
        Ok(Box::new(std::io::BufWriter::with_capacity(1 << 16, out)))
    }
}

/// The cache of extractions, created if needed and checked on every use.
fn cache_dir() -> Result<PathBuf, String> {
    let env = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    // SAFETY: geteuid() cannot fail and touches no memory.
    let uid = unsafe { libc::geteuid() };
    let (base, private) = cache_base(
        env("XDG_CACHE_HOME"),
        env("HOME"),
        &std::env::temp_dir(),
        uid,
    );
    prepare(&base, private, uid)
}

/// Where the cache is: `$XDG_CACHE_HOME/capsnap`, `~/.cache/capsnap`, or
/// (private: true) `capsnap-<uid>` in the shared temp dir. Relative
/// values are ignored, as the XDG base directory spec says.
fn cache_base(
    xdg: Option<PathBuf>,
    home: Option<PathBuf>,
    tmp: &Path,
    uid: u32,
) -> (PathBuf, bool) {
    let absolute = |p: Option<PathBuf>| p.filter(|p| p.is_absolute());
    match absolute(xdg).or_else(|| absolute(home).map(|h| h.join(".cache"))) {
        Some(dir) => (dir.join("capsnap"), false),
        // No home: a directory of our own in the shared temp dir, which
        // anyone could have made first; `owned` refuses it then.
        None => (tmp.join(format!("capsnap-{uid}")), true),
    }
}

/// Creates `base/bundles` (mode 0700) as needed and checks `base` and
/// `base/bundles`; returns the latter.
fn prepare(base: &Path, private: bool, uid: u32) -> Result<PathBuf, String> {
    if !private && let Some(parent) = base.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let bundles = base.join("bundles");
    for dir in [base, &bundles] {
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create the cache {}: {e}", dir.display())),
        }
        owned(dir, uid, if private { 0o077 } else { 0o022 })?;
    }
    Ok(bundles)
}

/// Checks that `dir` itself (not what a link points to) is a directory
/// owned by `uid` with none of the `forbidden` mode bits.
fn owned(dir: &Path, uid: u32, forbidden: u32) -> Result<(), String> {
    let m = std::fs::symlink_metadata(dir).map_err(|e| format!("cache {}: {e}", dir.display()))?;
    if !m.file_type().is_dir() {
        return Err(format!(
            "cache {} is not a directory (a link or file someone else may have put there): remove it or set XDG_CACHE_HOME",
            dir.display()
        ));
    }
    if m.uid() != uid {
        return Err(format!(
            "cache {} belongs to uid {}, not to us (uid {uid}): remove it or set XDG_CACHE_HOME",
            dir.display(),
            m.uid()
        ));
    }
    if m.mode() & forbidden != 0 {
        return Err(format!(
            "cache {} has mode {:o}: others may write to it; run chmod go-w (or go-rwx) on it or set XDG_CACHE_HOME",
            dir.display(),
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Removes extractions left by processes that no longer run (a SIGKILL
/// during extraction: no /proc/<pid>), and only directories of our own.
/// A pid reused since only delays the removal to a later run.
fn sweep(cache: &Path) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    // SAFETY: geteuid() cannot fail and touches no memory.
    let uid = unsafe { libc::geteuid() };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.rsplit_once(TMP))
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists()
            && e.metadata().is_ok_and(|m| m.is_dir() && m.uid() == uid)
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Identifies one bundle's contents: the manifest's bytes (every member's
/// sha256 is in it), the file's size and mtime.
fn cache_key(manifest: &[u8], meta: &std::fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let mut h = Sha256::new();
    h.update(Sha256::digest(manifest));
    h.update(meta.len().to_le_bytes());
    h.update(mtime.to_le_bytes());
    hex(&h.finalize()[..16])
}

/// Bytes available to an unprivileged writer on the file system of `dir`.
pub(crate) fn free_space(dir: &Path) -> Option<u64> {
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

    fn extract(input: &[u8], into: &Path) -> Result<(), String> {
        reader::read(input, &mut DirSink { into }).map(|_| ())
    }

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

    fn uid() -> u32 {
        // SAFETY: geteuid() cannot fail and touches no memory.
        unsafe { libc::geteuid() }
    }

    #[test]
    fn the_cache_is_never_a_shared_temp_dir_3() {
        let tmp = Path::new("/tmp");
        let (base, private) = cache_base(None, None, tmp, 1000);
        assert_eq!((base, private), (tmp.join("capsnap-1000"), true));
        // A relative HOME is ignored like a missing one.
        assert!(cache_base(None, Some("rel".into()), tmp, 1000).1);
        let (base, private) = cache_base(None, Some("/home/u".into()), tmp, 1000);
        assert_eq!(
            (base, private),
            (PathBuf::from("/home/u/.cache/capsnap"), false)
        );
        let (base, _) = cache_base(Some("/x".into()), Some("/home/u".into()), tmp, 1000);
        assert_eq!(base, PathBuf::from("/x/capsnap"));
    }

    #[test]
    fn a_planted_link_or_open_cache_dir_is_refused_3() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // Another user's trick: the private dir is a link to where root
        // would then extract.
        let target = dir.path().join("elsewhere");
        std::fs::create_dir(&target).unwrap();
        let planted = dir.path().join("capsnap-0");
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        let err = prepare(&planted, true, uid()).unwrap_err();
        assert!(err.contains("is not a directory (a link"), "{err}");
        assert!(!target.join("bundles").exists());
        // A directory others may write to (where a forged extraction and
        // its completion marker could be put).
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = prepare(&open, true, uid()).unwrap_err();
        assert!(err.contains("has mode 777"), "{err}");
        // Not ours.
        let err = prepare(&dir.path().join("mine"), true, uid() + 1).unwrap_err();
        assert!(err.contains("not to us"), "{err}");
        // Ours, made here: 0700.
        let made = prepare(&dir.path().join("new"), true, uid()).unwrap();
        let mode = std::fs::metadata(&made).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_changed_bundle_with_its_mtime_restored_gets_a_new_key_3() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("b");
        std::fs::write(&f, b"x").unwrap();
        let meta = std::fs::metadata(&f).unwrap();
        // Same size, same mtime, another manifest (members' hashes differ).
        let a = cache_key(&manifest(&[("a.txt", b"good")]), &meta);
        let b = cache_key(&manifest(&[("a.txt", b"evil")]), &meta);
        assert_ne!(a, b);
        assert_eq!(a, cache_key(&manifest(&[("a.txt", b"good")]), &meta));
    }

    #[test]
    fn extractions_of_dead_processes_are_removed_9() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.path().join(format!("abc{TMP}{dead}"));
        let live = dir.path().join(format!("abc{TMP}{}", std::process::id()));
        for d in [&stale, &live] {
            std::fs::create_dir_all(d.join("netns/host")).unwrap();
            std::fs::write(d.join("netns/host/x"), b"1").unwrap();
        }
        sweep(dir.path());
        assert!(!stale.exists(), "the dead pid's extraction stays");
        assert!(live.exists(), "a running extraction was removed");
    }

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
    fn a_long_name_record_is_refused_by_its_claimed_size_5() {
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
        assert!(err.contains("over the 65536-byte limit for names"), "{err}");
    }
}
