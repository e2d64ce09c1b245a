//! The bundle: one tar stream compressed with zstd (`tar --zstd -xf` opens
//! it anywhere), `manifest.json` first, then every raw artifact of the
//! staging directory in sorted order. It is written under a temporary name
//! unique to the run and renamed only when complete, so a half-written
//! bundle never looks like a finished one, and never over something that
//! is not a regular file of ours ([`Target::check`]); or it is streamed to
//! standard output once staged (the manifest, which comes first, holds
//! every member's size and hash).

pub use formats::bundle::{FORMAT_VERSION, Manifest, Member};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

fn files_under(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let ty = e.file_type()?;
        if ty.is_dir() {
            files_under(&e.path(), &rel, out)?;
        } else if ty.is_file() {
            out.push((rel, e.path()));
        }
    }
    Ok(())
}

fn sha256_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0; 1 << 16];
    let mut size = 0;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((
        size,
        h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
    ))
}

/// Lists and hashes every file under `staging` (for the manifest).
pub fn members(staging: &Path) -> std::io::Result<Vec<Member>> {
    let mut files = Vec::new();
    files_under(staging, "", &mut files)?;
    files
        .into_iter()
        .map(|(rel, path)| {
            let (size, sha256) = sha256_file(&path)?;
            Ok(Member {
                path: rel,
                size,
                sha256,
            })
        })
        .collect()
}

fn append(
    tar: &mut tar::Builder<impl Write>,
    rel: &str,
    data: &mut dyn Read,
    size: u64,
    mtime: u64,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, rel, data)
}

/// Writes the bundle to `out`: manifest first, then the members in the
/// manifest's order, each exactly as hashed. Returns the bytes written.
pub fn write(staging: &Path, manifest: &Manifest, out: impl Write) -> std::io::Result<u64> {
    let mut counted = Counted { inner: out, n: 0 };
    {
        let mut zst = zstd::Encoder::new(std::io::BufWriter::new(&mut counted), 3)?;
        {
            let mut tar = tar::Builder::new(&mut zst);
            let mtime = manifest.finished_ns / 1_000_000_000;
            let json = manifest.to_json();
            append(
                &mut tar,
                formats::bundle::MANIFEST_NAME,
                &mut json.as_slice(),
                json.len() as u64,
                mtime,
            )?;
            for m in &manifest.members {
                let mut f = std::fs::File::open(staging.join(&m.path))?.take(m.size);
                append(&mut tar, &m.path, &mut f, m.size, mtime)?;
            }
            tar.finish()?;
        }
        let mut w = zst.finish()?;
        w.flush()?;
    }
    Ok(counted.n)
}

/// Counts the bytes written through it.
struct Counted<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Where a bundle goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Streamed to standard output (`-o -`).
    Stdout,
    /// A file; `existed` when it was there (a regular file of ours) when
    /// the collection started, so replacing it is what was asked for.
    File { path: PathBuf, existed: bool },
}

impl Target {
    /// Checks `path` before anything is collected: an existing target that
    /// is not a regular file we own (a device, a link, a directory, a FIFO,
    /// another user's file) is refused, never replaced.
    pub fn check(path: &Path) -> Result<Target, String> {
        if path.as_os_str() == "-" {
            return Ok(Target::Stdout);
        }
        let existed = match std::fs::symlink_metadata(path) {
            Ok(m) => {
                refuse_unless_ours(path, &m)?;
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(Target::File {
            path: path.to_owned(),
            existed,
        })
    }

    /// The directory the bundle (and so its staging) goes in.
    pub fn dir(&self) -> PathBuf {
        match self {
            Target::Stdout => PathBuf::from("."),
            Target::File { path, .. } => path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_owned(),
        }
    }
}

fn refuse_unless_ours(path: &Path, m: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let t = m.file_type();
    let what = if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if !t.is_file() {
        "not a regular file"
    } else {
        // SAFETY: geteuid() cannot fail and touches no memory.
        let uid = unsafe { libc::geteuid() };
        if m.uid() != uid {
            return Err(format!(
                "{} belongs to uid {}, not to us (uid {uid}): refusing to replace it; choose another -o",
                path.display(),
                m.uid()
            ));
        }
        return Ok(());
    };
    Err(format!(
        "{} is {what}: refusing to replace it (-o takes a new or regular file; -o - writes to standard output)",
        path.display()
    ))
}

/// Writes the bundle to `target`; returns where it went and its size. A
/// file is written under a name no other run uses (created O_EXCL) and
/// then renamed into place: over the target only when it is still the
/// regular file of ours it was at the start, else only if nothing took
/// the name meanwhile (another collect with the same default name in the
/// same second): then the bundle keeps its own name with the pid added.
pub fn write_to(
    staging: &Path,
    manifest: &Manifest,
    target: &Target,
) -> std::io::Result<(PathBuf, u64)> {
    let (path, existed) = match target {
        Target::Stdout => {
            let stdout = std::io::stdout();
            let n = write(staging, manifest, stdout.lock())?;
            return Ok((PathBuf::from("-"), n));
        }
        Target::File { path, existed } => (path, *existed),
    };
    let dir = target.dir();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".into());
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        crate::sys::now_ns()
    ));
    let result = (|| {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        let n = write(staging, manifest, std::io::BufWriter::new(&file))?;
        file.sync_all()?;
        Ok::<_, std::io::Error>(n)
    })();
    let n = match result {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let placed = if existed {
        match std::fs::symlink_metadata(path) {
            Ok(m) => refuse_unless_ours(path, &m)
                .map_err(std::io::Error::other)
                .and_then(|()| std::fs::rename(&tmp, path))
                .map(|()| path.clone()),
            Err(_) => rename_noreplace(&tmp, path).map(|()| path.clone()),
        }
    } else {
        match rename_noreplace(&tmp, path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let stem = name.strip_suffix(".capsnap").unwrap_or(&name);
                let other = dir.join(format!("{stem}-{}.capsnap", std::process::id()));
                rename_noreplace(&tmp, &other).map(|()| other)
            }
            r => r.map(|()| path.clone()),
        }
    };
    match placed {
        Ok(p) => Ok((p, n)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// rename(2) that fails with AlreadyExists instead of replacing `to`
/// (renameat2 RENAME_NOREPLACE, Linux 3.15; a file system without it falls
/// back to link + unlink, which fails the same way).
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::other(format!("{} holds a NUL", p.display())))
    };
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: both are NUL-terminated paths; AT_FDCWD resolves them as
    // rename(2) would. The raw system call, not libc's wrapper: musl (the
    // static collector build) has none.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
        std::fs::hard_link(from, to)?;
        return std::fs::remove_file(from);
    }
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged() -> (tempfile::TempDir, PathBuf, Manifest) {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("s");
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::write(staging.join("fds.tsv"), "pid\tfd\ttarget\n").unwrap();
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            host: "h".into(),
            members: members(&staging).unwrap(),
            ..Manifest::default()
        };
        (dir, staging, manifest)
    }

    #[test]
    fn two_collects_with_one_output_keep_both_bundles_2() {
        let (dir, staging, manifest) = staged();
        let out = dir.path().join("b.capsnap");
        // Both checked the name before either wrote: neither saw a file.
        let (a, b) = (Target::check(&out).unwrap(), Target::check(&out).unwrap());
        let (first, _) = write_to(&staging, &manifest, &a).unwrap();
        let (second, _) = write_to(&staging, &manifest, &b).unwrap();
        assert_eq!(first, out);
        assert_ne!(second, out, "the second bundle replaced the first");
        for p in [&first, &second] {
            let bytes = std::fs::read(p).unwrap();
            let mut ar = tar::Archive::new(zstd::Decoder::new(&bytes[..]).unwrap());
            assert_eq!(ar.entries().unwrap().count(), 2, "{}", p.display());
        }
        // Temp names are unique per run and none is left.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
        // Replacing our own regular file is what -o asks for.
        let again = Target::check(&out).unwrap();
        assert_eq!(write_to(&staging, &manifest, &again).unwrap().0, out);
    }

    #[test]
    fn a_target_swapped_for_a_link_meanwhile_is_not_replaced_1() {
        let (dir, staging, manifest) = staged();
        let out = dir.path().join("b.capsnap");
        std::fs::write(&out, b"old").unwrap();
        let target = Target::check(&out).unwrap();
        std::fs::remove_file(&out).unwrap();
        std::os::unix::fs::symlink("/dev/null", &out).unwrap();
        let err = write_to(&staging, &manifest, &target).unwrap_err();
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
        assert!(
            std::fs::symlink_metadata(&out)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "a temp file is left"
        );
    }

    #[test]
    fn bundle_opens_with_tar_and_has_manifest_first() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("s");
        std::fs::create_dir_all(staging.join("netns/host")).unwrap();
        std::fs::write(staging.join("netns/host/sockstat"), "TCP: inuse 1\n").unwrap();
        std::fs::write(staging.join("fds.tsv"), "pid\tfd\ttarget\n").unwrap();
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            host: "h".into(),
            finished_ns: 1,
            members: members(&staging).unwrap(),
            ..Manifest::default()
        };
        assert_eq!(
            manifest
                .members
                .iter()
                .map(|m| m.path.as_str())
                .collect::<Vec<_>>(),
            vec!["fds.tsv", "netns/host/sockstat"]
        );
        let out = dir.path().join("b.capsnap");
        let target = Target::check(&out).unwrap();
        write_to(&staging, &manifest, &target).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "no temporary file is left: {left:?}");
        let mut ar =
            tar::Archive::new(zstd::Decoder::new(std::fs::File::open(&out).unwrap()).unwrap());
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            vec!["manifest.json", "fds.tsv", "netns/host/sockstat"]
        );
        let status = std::process::Command::new("tar")
            .args(["--zstd", "-tf"])
            .arg(&out)
            .output();
        if let Ok(o) = status
            && o.status.success()
        {
            assert!(String::from_utf8_lossy(&o.stdout).starts_with("manifest.json"));
        }
    }
}
