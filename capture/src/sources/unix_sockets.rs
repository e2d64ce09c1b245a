//! Unix sockets by sock_diag (`unix_diag.tsv`): each socket with the inode
//! its path was bound to and what the path holds now, resolved through the
//! mount namespace of the process holding it ([`crate::unix_diag`]).

use crate::report::{SourceReport, Status};
use crate::source::{Context, InNetns, Phase, Scope, Source, Window, elapsed_ms};
use formats::bundle::{Artifact, UNIX_DIAG};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct UnixSockets;

impl Source for UnixSockets {
    fn name(&self) -> &'static str {
        "unix sockets"
    }

    fn scope(&self) -> Scope {
        Scope::Netns
    }

    fn phase(&self) -> Phase {
        Phase::Close
    }

    fn writes(&self) -> Vec<&'static Artifact> {
        vec![&UNIX_DIAG]
    }

    fn run(&self, cx: &Context, ns: Option<&InNetns>, _: &Window) -> Vec<SourceReport> {
        ns.map(|ns| snapshot(cx, ns)).into_iter().collect()
    }
}

fn snapshot(cx: &Context, ns: &InNetns) -> SourceReport {
    let started = Instant::now();
    if !ns.entered {
        return ns.not_entered(&UNIX_DIAG, "sock_diag answers for the caller's namespace");
    }
    let mut r = ns.report(&UNIX_DIAG);
    let dump = match crate::unix_diag::dump_unix_sockets() {
        Ok(d) => d,
        Err(e) => return r.with(Status::Failed, format!("sock_diag: {e}")),
    };
    let mut sockets = dump.sockets;
    // Bound paths are resolved in the owner's mount namespace: a socket held
    // by a process in another one (a container, also a hostNetwork pod in
    // the host's network namespace) is looked at through that process's
    // root. Picking one process for the whole network namespace would
    // resolve every host socket through some pod's root, and call them all
    // replaced.
    let owners = foreign_socket_owners(&ns.ns.pids);
    for s in &mut sockets {
        if let Some(pid) = owners.get(&s.inode) {
            s.restat_in(&PathBuf::from(format!("/proc/{pid}/root")));
        }
    }
    let written = File::create(ns.file(cx, &UNIX_DIAG)).and_then(|f| {
        let mut w = std::io::BufWriter::new(f);
        crate::unix_diag::write_tsv(&sockets, &mut w)?;
        w.flush()
    });
    r.duration_ms = elapsed_ms(started);
    match written {
        Ok(()) => {
            r.files.push(ns.rel(&UNIX_DIAG));
            if dump.skipped > 0 {
                r = r.with(
                    Status::Partial,
                    format!("{} damaged sock_diag messages skipped", dump.skipped),
                );
            }
            r
        }
        Err(e) => r.with(Status::Failed, format!("cannot write unix_diag.tsv: {e}")),
    }
}

/// The listening unix sockets bound to a path in the calling thread's
/// namespace `ns` (entered): (socket inode, path, whether the path leads
/// elsewhere now), resolved through the owner's mount namespace as the
/// snapshot does. `capsnap watch` compares readings of it.
pub fn listeners(ns: &crate::netns::Netns) -> std::io::Result<Vec<(u64, String, Option<bool>)>> {
    let mut sockets = crate::unix_diag::listening_unix_sockets()?;
    sockets.retain(|s| s.path.as_deref().is_some_and(|p| p.starts_with('/')));
    let owners = foreign_socket_owners(&ns.pids);
    Ok(sockets
        .into_iter()
        .map(|mut s| {
            if let Some(pid) = owners.get(&s.inode) {
                s.restat_in(&PathBuf::from(format!("/proc/{pid}/root")));
            }
            (s.inode, s.path.clone().unwrap_or_default(), s.replaced())
        })
        .collect())
}

/// Socket inode -> a pid holding it, for those of `pids` that live in
/// another mount namespace than capsnap (pids that vanish or whose mount
/// namespace cannot be read are left out: their sockets keep capsnap's own
/// view of the path).
fn foreign_socket_owners(pids: &[u32]) -> std::collections::HashMap<u64, u32> {
    let own_mnt = crate::netns::ns_inode(Path::new("/proc/self/ns/mnt"));
    let mut owners = std::collections::HashMap::new();
    for &pid in pids {
        let mnt = crate::netns::ns_inode(Path::new(&format!("/proc/{pid}/ns/mnt")));
        if mnt.is_none() || mnt == own_mnt {
            continue;
        }
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for e in dir.flatten() {
            let Ok(target) = std::fs::read_link(e.path()) else {
                continue;
            };
            let inode = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok());
            if let Some(inode) = inode {
                owners.entry(inode).or_insert(pid);
            }
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys;
    use std::os::fd::AsRawFd;
    use std::process::{Command, Stdio};

    /// Regression: a listener in capsnap's own mount namespace was resolved
    /// through the root of another process of its network namespace (any
    /// one in another mount namespace), and reported replaced.
    #[test]
    fn socket_owners_are_only_processes_in_another_mount_namespace() {
        if !sys::is_root() {
            eprintln!("skipped: needs root (unshare -m)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let ours = std::os::unix::net::UnixListener::bind(dir.path().join("ours.sock")).unwrap();
        let mut child = Command::new("unshare")
            .args(["-m", "python3", "-c"])
            .arg("import os, socket, time\ns = socket.socket(socket.AF_UNIX)\ns.bind(f'\\0capsnap-test-{os.getpid()}')\ns.listen()\nprint('ready', flush=True)\ntime.sleep(30)")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut ready,
        )
        .unwrap();
        assert_eq!(
            ready, "ready\n",
            "the child in its own mount namespace did not start"
        );
        let theirs: Vec<u64> = std::fs::read_dir(format!("/proc/{}/fd", child.id()))
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let t = std::fs::read_link(e.path()).ok()?;
                t.to_str()?
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .parse()
                    .ok()
            })
            .collect();
        let owners = foreign_socket_owners(&[std::process::id(), child.id()]);
        let _ = child.kill();
        let _ = child.wait();

        use std::os::unix::fs::MetadataExt;
        let our_inode = std::fs::metadata(format!("/proc/self/fd/{}", ours.as_raw_fd()))
            .unwrap()
            .ino();
        assert_eq!(owners.get(&our_inode), None);
        assert_eq!(theirs.len(), 1);
        assert_eq!(owners.get(&theirs[0]), Some(&child.id()));
    }
}
