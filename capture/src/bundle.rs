//! The bundle: one tar stream compressed with zstd (`tar --zstd -xf` opens
//! it anywhere), `manifest.json` first, then every raw artifact of the
//! staging directory in sorted order. It is written under a temporary name
//! and renamed only when complete, so a half-written bundle never looks
//! like a finished one.

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
/// manifest's order, each exactly as hashed. Returns the bundle's size.
pub fn write(staging: &Path, manifest: &Manifest, out: &Path) -> std::io::Result<u64> {
    let tmp = out.with_extension("capsnap.tmp");
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut zst = zstd::Encoder::new(std::io::BufWriter::new(file), 3)?;
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
        w.get_ref().sync_all()?;
        Ok::<_, std::io::Error>(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, out)?;
    Ok(std::fs::metadata(out)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        write(&staging, &manifest, &out).unwrap();
        assert!(!out.with_extension("capsnap.tmp").exists());
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
