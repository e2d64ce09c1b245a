//! Pod and container names read from the CRI runtimes' own state on disk,
//! with no tool: a node needs neither `crictl` nor a CRI socket for its
//! namespaces to be named.
//!
//! containerd (1.6, 1.7, 2.x) keeps each running task's OCI bundle at
//! `<state>/io.containerd.runtime.v2.task/<containerd namespace>/<id>/`
//! (containerd `runtime/v2/bundle.go`; the directory is the v2 runtime
//! plugin's id, unchanged in 2.x `core/runtime/v2`), holding the spec
//! (`config.json`) and the init process's pid (`init.pid`, written by the
//! runc shim: `process.InitPidFile`). Its CRI plugin puts the pod and
//! container names into the spec's annotations (`pkg/cri/annotations`, in
//! 2.x `internal/cri/annotations`). CRI-O keeps each container's spec and
//! conmon's pid file in `<runroot>/<driver>-containers/<id>/userdata/`
//! (`config.json`, `pidfile`: cri-o `server/sandbox_run_linux.go`,
//! `internal/oci/runtime_oci.go`), with the kubelet's labels
//! (`io.kubernetes.pod.name` ...) copied into the annotations.
//!
//! A task's pid gives its network namespace (`/proc/PID/ns/net`); failing
//! that, the namespace path its spec joins (a sandbox's
//! `/var/run/netns/cni-...`). What was used is kept in the bundle
//! ([`CONTAINERD_TASKS`], [`CRIO_CONTAINERS`]): only the annotations read,
//! the pid and the namespace, never the whole spec (its environment holds
//! secrets).

use crate::netns::{ns_inode, ns_inode_of_file};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where containerd's CRI plugin names things (containerd
/// `pkg/cri/annotations/annotations.go`). The pod UID is there from 1.6.11
/// and 1.7.0 on; older tasks are named without it.
pub(crate) mod containerd_keys {
    pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
    pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
    pub const SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
    pub const SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
    pub const SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";
    pub const CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
}

/// CRI-O's own keys (cri-o `internal/annotations/annotations.go`) and the
/// kubelet's labels it copies into the spec (k8s.io/kubelet
/// `pkg/types/labels.go`).
mod crio_keys {
    pub const CONTAINER_TYPE: &str = "io.kubernetes.cri-o.ContainerType";
    pub const SANDBOX_ID: &str = "io.kubernetes.cri-o.SandboxID";
    pub const POD_NAME: &str = "io.kubernetes.pod.name";
    pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
    pub const POD_UID: &str = "io.kubernetes.pod.uid";
    pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
}

/// A spec bigger than this is not read. Specs the CRI plugins write are
/// tens of KiB; the bound keeps a damaged or hostile file from costing
/// memory.
pub const MAX_SPEC_BYTES: u64 = 4 << 20;
/// Tasks read at most per runtime: more is not a node.
pub const MAX_TASKS: usize = 10_000;

/// Which runtime's layout a state root has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Containerd,
    Crio,
}

impl Runtime {
    /// The task directories under `root`: `(containerd namespace, id, dir)`.
    fn tasks(self, root: &Path) -> std::io::Result<Vec<(Option<String>, String, PathBuf)>> {
        let mut out = Vec::new();
        match self {
            Runtime::Containerd => {
                let base = root.join("io.containerd.runtime.v2.task");
                let namespaces = sorted_dirs(&base).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{}: {e}", base.display()))
                })?;
                for ns in namespaces {
                    for id in sorted_dirs(&base.join(&ns)).unwrap_or_default() {
                        let dir = base.join(&ns).join(&id);
                        out.push((Some(ns.clone()), id, dir));
                    }
                }
            }
            Runtime::Crio => {
                // One folder per storage driver: overlay-containers, vfs-containers ...
                let drivers: Vec<String> = sorted_dirs(root)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", root.display())))?
                    .into_iter()
                    .filter(|d| d.ends_with("-containers"))
                    .collect();
                if drivers.is_empty() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("{}: no <driver>-containers folder", root.display()),
                    ));
                }
                for d in drivers {
                    for id in sorted_dirs(&root.join(&d)).unwrap_or_default() {
                        let dir = root.join(&d).join(&id).join("userdata");
                        out.push((None, id, dir));
                    }
                }
            }
        }
        Ok(out)
    }

    fn pid_file(self) -> &'static str {
        match self {
            Runtime::Containerd => "init.pid",
            Runtime::Crio => "pidfile",
        }
    }
}

/// One task (containerd) or container (CRI-O) as its state names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Task {
    /// containerd's namespace (`k8s.io` for the CRI plugin's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub id: String,
    /// The bundle directory read.
    pub dir: PathBuf,
    /// The init process, from the pid file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The network namespace path the spec joins, if it names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns_path: Option<String>,
    /// The network namespace's inode: the pid's, else the spec path's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns_inode: Option<u64>,
    /// The annotations read (only the naming ones).
    pub annotations: BTreeMap<String, String>,
    /// `sandbox` or `container`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox_id: Option<String>,
    /// `namespace/name` of its pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// Its container name (none for a sandbox).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// A task directory that was not used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub dir: PathBuf,
    pub reason: String,
}

/// What one state root gave: the document kept in the bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct State {
    pub root: PathBuf,
    pub tasks: Vec<Task>,
    pub skipped: Vec<Skipped>,
}

/// The part of an OCI runtime spec read here.
#[derive(Deserialize)]
struct Spec {
    #[serde(default)]
    annotations: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    linux: Option<Linux>,
}

#[derive(Deserialize)]
struct Linux {
    #[serde(default)]
    namespaces: Option<Vec<Namespace>>,
}

#[derive(Deserialize)]
struct Namespace {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    path: Option<String>,
}

/// Reads the tasks of `runtime` under its state root. `proc` is normally
/// `/proc`. Err: the root has no tasks folder (that runtime does not run
/// here); each task that cannot be read is in [`State::skipped`].
pub fn read(runtime: Runtime, root: &Path, proc: &Path) -> std::io::Result<State> {
    let mut state = State {
        root: root.to_owned(),
        ..State::default()
    };
    let mut dirs = runtime.tasks(root)?;
    if dirs.len() > MAX_TASKS {
        state.skipped.push(Skipped {
            dir: root.to_owned(),
            reason: format!("{} tasks, only the first {MAX_TASKS} read", dirs.len()),
        });
        dirs.truncate(MAX_TASKS);
    }
    for (namespace, id, dir) in dirs {
        match read_task(runtime, namespace, id, &dir, proc) {
            Ok(t) => state.tasks.push(t),
            Err(reason) => state.skipped.push(Skipped { dir, reason }),
        }
    }
    Ok(state)
}

fn read_task(
    runtime: Runtime,
    namespace: Option<String>,
    id: String,
    dir: &Path,
    proc: &Path,
) -> Result<Task, String> {
    let spec_path = dir.join("config.json");
    let bytes = read_bounded(&spec_path, MAX_SPEC_BYTES)?;
    let spec: Spec = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: not an OCI runtime spec: {e}", spec_path.display()))?;
    let wanted: &[&str] = match runtime {
        Runtime::Containerd => &[
            containerd_keys::CONTAINER_TYPE,
            containerd_keys::SANDBOX_ID,
            containerd_keys::SANDBOX_NAME,
            containerd_keys::SANDBOX_NAMESPACE,
            containerd_keys::SANDBOX_UID,
            containerd_keys::CONTAINER_NAME,
        ],
        Runtime::Crio => &[
            crio_keys::CONTAINER_TYPE,
            crio_keys::SANDBOX_ID,
            crio_keys::POD_NAME,
            crio_keys::POD_NAMESPACE,
            crio_keys::POD_UID,
            crio_keys::CONTAINER_NAME,
        ],
    };
    let annotations: BTreeMap<String, String> = spec
        .annotations
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| wanted.contains(&k.as_str()))
        .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned())))
        .collect();
    let get = |k: &str| annotations.get(k).filter(|v| !v.is_empty()).cloned();
    let (kind, sandbox_id, pod_ns, pod_name, pod_uid, container) = match runtime {
        Runtime::Containerd => (
            get(containerd_keys::CONTAINER_TYPE),
            get(containerd_keys::SANDBOX_ID),
            get(containerd_keys::SANDBOX_NAMESPACE),
            get(containerd_keys::SANDBOX_NAME),
            get(containerd_keys::SANDBOX_UID),
            get(containerd_keys::CONTAINER_NAME),
        ),
        Runtime::Crio => (
            get(crio_keys::CONTAINER_TYPE),
            get(crio_keys::SANDBOX_ID),
            get(crio_keys::POD_NAMESPACE),
            get(crio_keys::POD_NAME),
            get(crio_keys::POD_UID),
            get(crio_keys::CONTAINER_NAME),
        ),
    };
    if kind.is_none() && pod_name.is_none() {
        return Err(format!(
            "{}: no CRI annotations (not a Kubernetes pod's task)",
            spec_path.display()
        ));
    }
    let sandbox = kind.as_deref() == Some("sandbox");
    let netns_path = spec
        .linux
        .and_then(|l| l.namespaces)
        .unwrap_or_default()
        .into_iter()
        .find(|n| n.kind == "network")
        .and_then(|n| n.path)
        .filter(|p| !p.is_empty());
    let pid = read_bounded(&dir.join(runtime.pid_file()), 32)
        .ok()
        .and_then(|b| std::str::from_utf8(&b).ok()?.trim().parse::<u32>().ok())
        .filter(|p| *p > 0);
    let netns_inode = pid
        .and_then(|p| ns_inode(&proc.join(format!("{p}/ns/net"))))
        .or_else(|| {
            let p = Path::new(netns_path.as_deref()?);
            ns_inode(p).or_else(|| ns_inode_of_file(p))
        });
    Ok(Task {
        namespace,
        id,
        dir: dir.to_owned(),
        pid,
        netns_path,
        netns_inode,
        annotations,
        kind,
        sandbox_id,
        pod: pod_ns
            .zip(pod_name)
            .map(|(ns, name)| format!("{ns}/{name}")),
        pod_uid,
        // CRI-O names a sandbox's infra container "POD": not a container
        // anyone asked for.
        container: container.filter(|_| !sandbox),
    })
}

/// The file's bytes, at most `max`: a regular file only (no fifo to block
/// on, no link followed), an error naming it otherwise.
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = f
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    if meta.len() > max {
        return Err(format!(
            "{}: {} bytes, more than the {max} read",
            path.display(),
            meta.len()
        ));
    }
    let mut bytes = Vec::new();
    f.take(max)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes)
}

/// The names of the directories in `dir`, sorted (deterministic output).
fn sorted_dirs(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out: Vec<String> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    pub(crate) const SB: &str = "aaaa000000000000000000000000000000000000000000000000000000000001";
    pub(crate) const CT: &str = "bbbb000000000000000000000000000000000000000000000000000000000002";
    pub(crate) const UID: &str = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";

    /// A fake /proc where `pid`'s network namespace is `inode`.
    fn proc_pid(proc: &Path, pid: u32, inode: u64) {
        let ns = proc.join(format!("{pid}/ns"));
        std::fs::create_dir_all(&ns).unwrap();
        symlink(format!("net:[{inode}]"), ns.join("net")).unwrap();
    }

    fn task(dir: &Path, spec: &str, pid_file: &str, pid: Option<u32>) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("config.json"), spec).unwrap();
        if let Some(p) = pid {
            std::fs::write(dir.join(pid_file), p.to_string()).unwrap();
        }
    }

    /// A spec as containerd's CRI plugin writes it (1.6.11 and later).
    pub(crate) fn containerd_spec(kind: &str, name: Option<&str>, netns: &str) -> String {
        let name = name
            .map(|n| format!(r#""io.kubernetes.cri.container-name":"{n}","#))
            .unwrap_or_default();
        format!(
            r#"{{"ociVersion":"1.0.2-dev","process":{{"env":["PASSWORD=hunter2"]}},
            "annotations":{{"io.kubernetes.cri.container-type":"{kind}",{name}
            "io.kubernetes.cri.sandbox-id":"{SB}","io.kubernetes.cri.sandbox-name":"web-7d9",
            "io.kubernetes.cri.sandbox-namespace":"shop","io.kubernetes.cri.sandbox-uid":"{UID}",
            "io.kubernetes.cri.image-name":"nginx:1"}},
            "linux":{{"namespaces":[{{"type":"pid"}},{{"type":"network","path":"{netns}"}}]}}}}"#
        )
    }

    #[test]
    fn containerd_tasks_name_their_pod_and_container_and_find_their_netns() {
        let d = tempfile::tempdir().unwrap();
        let (root, proc) = (d.path().join("state"), d.path().join("proc"));
        let tasks = root.join("io.containerd.runtime.v2.task");
        proc_pid(&proc, 4100, 4026532301);
        proc_pid(&proc, 4200, 4026532301);
        task(
            &tasks.join("k8s.io").join(SB),
            &containerd_spec("sandbox", None, "/var/run/netns/cni-1234"),
            "init.pid",
            Some(4100),
        );
        task(
            &tasks.join("k8s.io").join(CT),
            &containerd_spec("container", Some("nginx"), "/proc/4100/ns/net"),
            "init.pid",
            Some(4200),
        );
        // A task ctr ran by hand: no CRI annotations.
        task(
            &tasks.join("default/plain"),
            r#"{"ociVersion":"1.0.2"}"#,
            "init.pid",
            Some(1),
        );
        task(
            &tasks.join("k8s.io/broken"),
            "{\"annotations\":",
            "init.pid",
            None,
        );
        let state = read(Runtime::Containerd, &root, &proc).unwrap();
        assert_eq!(state.tasks.len(), 2, "{state:?}");
        let sb = &state.tasks[0];
        assert_eq!(sb.id, SB);
        assert_eq!(sb.namespace.as_deref(), Some("k8s.io"));
        assert_eq!(sb.kind.as_deref(), Some("sandbox"));
        assert_eq!(sb.pod.as_deref(), Some("shop/web-7d9"));
        assert_eq!(sb.pod_uid.as_deref(), Some(UID));
        assert_eq!(sb.container, None);
        assert_eq!(sb.pid, Some(4100));
        assert_eq!(sb.netns_inode, Some(4026532301));
        assert_eq!(sb.netns_path.as_deref(), Some("/var/run/netns/cni-1234"));
        let ct = &state.tasks[1];
        assert_eq!(ct.container.as_deref(), Some("nginx"));
        assert_eq!(ct.sandbox_id.as_deref(), Some(SB));
        assert_eq!(ct.netns_inode, Some(4026532301));
        // Only the naming annotations are kept: not the image, not the env.
        assert_eq!(ct.annotations.len(), 6);
        let json = serde_json::to_string(&state).unwrap();
        assert!(!json.contains("hunter2") && !json.contains("nginx:1"));
        let reasons: Vec<&str> = state.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].contains("no CRI annotations"), "{reasons:?}");
        assert!(
            reasons[1].contains("not an OCI runtime spec"),
            "{reasons:?}"
        );
    }

    #[test]
    fn a_task_without_a_live_pid_is_placed_by_the_netns_path_of_its_spec() {
        let d = tempfile::tempdir().unwrap();
        let (root, proc) = (d.path().join("state"), d.path().join("proc"));
        std::fs::create_dir_all(&proc).unwrap();
        // What `/var/run/netns/cni-...` reads as: an nsfs link.
        let bound = d.path().join("cni-1234");
        symlink("net:[4026532999]", &bound).unwrap();
        task(
            &root.join("io.containerd.runtime.v2.task/k8s.io").join(SB),
            &containerd_spec("sandbox", None, bound.to_str().unwrap()),
            "init.pid",
            Some(77),
        );
        let state = read(Runtime::Containerd, &root, &proc).unwrap();
        assert_eq!(state.tasks[0].netns_inode, Some(4026532999));
    }

    #[test]
    fn crio_containers_are_named_from_the_kubelet_labels_in_their_spec() {
        let d = tempfile::tempdir().unwrap();
        let (root, proc) = (d.path().join("storage"), d.path().join("proc"));
        proc_pid(&proc, 900, 4026532400);
        let spec = |kind: &str, name: &str| {
            format!(
                r#"{{"annotations":{{"io.kubernetes.cri-o.ContainerType":"{kind}",
                "io.kubernetes.cri-o.SandboxID":"{SB}","io.kubernetes.pod.name":"db-0",
                "io.kubernetes.pod.namespace":"data","io.kubernetes.pod.uid":"{UID}",
                "io.kubernetes.container.name":"{name}"}}}}"#
            )
        };
        let dirs = root.join("overlay-containers");
        task(
            &dirs.join(SB).join("userdata"),
            &spec("sandbox", "POD"),
            "pidfile",
            Some(900),
        );
        task(
            &dirs.join(CT).join("userdata"),
            &spec("container", "postgres"),
            "pidfile",
            Some(900),
        );
        let state = read(Runtime::Crio, &root, &proc).unwrap();
        assert_eq!(state.tasks.len(), 2);
        assert_eq!(
            state.tasks[0].container, None,
            "the infra container is not named"
        );
        assert_eq!(state.tasks[1].container.as_deref(), Some("postgres"));
        assert_eq!(state.tasks[1].pod.as_deref(), Some("data/db-0"));
        assert_eq!(state.tasks[1].netns_inode, Some(4026532400));
        assert!(read(Runtime::Crio, &d.path().join("none"), &proc).is_err());
    }

    #[test]
    fn big_odd_or_truncated_specs_are_skipped_with_their_reason_never_a_panic() {
        let d = tempfile::tempdir().unwrap();
        let (root, proc) = (d.path().join("state"), d.path().join("proc"));
        let tasks = root.join("io.containerd.runtime.v2.task/k8s.io");
        let big = tasks.join("big");
        std::fs::create_dir_all(&big).unwrap();
        let f = std::fs::File::create(big.join("config.json")).unwrap();
        f.set_len(MAX_SPEC_BYTES + 1).unwrap();
        let fifo = tasks.join("fifo");
        std::fs::create_dir_all(&fifo).unwrap();
        let c = std::ffi::CString::new(fifo.join("config.json").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        task(
            &tasks.join("nullish"),
            r#"{"annotations":null,"linux":null}"#,
            "init.pid",
            None,
        );
        task(
            &tasks.join("odd"),
            r#"{"annotations":{"io.kubernetes.cri.container-type":7}}"#,
            "init.pid",
            None,
        );
        let state = read(Runtime::Containerd, &root, &proc).unwrap();
        let why: Vec<String> = state.skipped.iter().map(|s| s.reason.clone()).collect();
        assert_eq!(state.tasks.len(), 0, "{why:?}");
        assert!(why[0].contains("more than the 4194304 read"), "{why:?}");
        assert!(why[1].contains("not a regular file"), "{why:?}");
        assert!(why[2].contains("no CRI annotations"), "{why:?}");
        assert!(why[3].contains("no CRI annotations"), "{why:?}");
        // Every prefix of a real spec: data or a reason.
        let spec = containerd_spec("container", Some("nginx"), "/proc/1/ns/net");
        for n in 0..spec.len() {
            std::fs::write(tasks.join("odd/config.json"), &spec[..n]).unwrap();
            let _ = read(Runtime::Containerd, &root, &proc).unwrap();
        }
    }
}
