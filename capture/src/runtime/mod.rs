//! Container runtime metadata: which pod and container a namespace belongs
//! to, by name. cgroup paths give ids and pod UIDs; the CRI runtimes' own
//! state on disk ([`state`]: containerd, CRI-O) gives pod and container
//! names with no tool; `crictl` and `docker`, when installed, add theirs.
//! What was read goes into the bundle under `runtime/`; a runtime that is
//! not on this node is reported as skipped.
//!
//! When the state on disk and `crictl` both name something, they must
//! agree: the state wins (it is what the runtime wrote when it started
//! the task, read without a socket or a client's configuration), and a
//! disagreement is said in `crictl`'s report.

pub mod state;

use crate::netns::Netns;
use crate::report::{SourceReport, Status};
use crate::tool::run_artifact;
use formats::bundle::{self, Artifact};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the CRI runtimes keep their state: the roots [`state::read`]
/// looks under.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StateRoots {
    /// containerd's `state` directory (its `--state`).
    pub containerd: PathBuf,
    /// CRI-O's storage run root (containers/storage `runroot`).
    pub crio: PathBuf,
}

impl Default for StateRoots {
    fn default() -> Self {
        StateRoots {
            containerd: PathBuf::from("/run/containerd"),
            crio: PathBuf::from("/run/containers/storage"),
        }
    }
}

/// Names known for pod UIDs and container ids.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// Pod UID -> `namespace/name`.
    pub pods: HashMap<String, String>,
    /// Pod sandbox id -> `namespace/name`.
    sandboxes: HashMap<String, String>,
    /// Container id -> (container name, pod `namespace/name` if any).
    pub containers: HashMap<String, (String, Option<String>)>,
    /// Network namespace inode -> the tasks of the runtimes' state in it:
    /// (task id, pod `namespace/name` if any).
    by_netns: HashMap<u64, Vec<(String, Option<String>)>>,
    /// Where a later listing named something otherwise than an earlier
    /// one (kept: the earlier).
    conflicts: Vec<String>,
}

/// Names `key` `value` in `map` unless it is named already; a different
/// name is a conflict (the first is kept).
fn name_once<V: PartialEq + std::fmt::Debug>(
    map: &mut HashMap<String, V>,
    what: &str,
    key: &str,
    value: V,
    conflicts: &mut Vec<String>,
) {
    match map.get(key) {
        Some(old) if *old != value => {
            conflicts.push(format!("{what} {key}: {value:?}, not {old:?}"));
        }
        Some(_) => {}
        None => {
            map.insert(key.to_owned(), value);
        }
    }
}

impl RuntimeInfo {
    /// Reads a CRI runtime's state ([`state::read`]): pods by UID and
    /// sandbox id, containers by id, and each task's network namespace.
    pub fn add_state(&mut self, state: &state::State) {
        for t in &state.tasks {
            let c = &mut self.conflicts;
            if let Some(pod) = &t.pod {
                if let Some(uid) = &t.pod_uid {
                    name_once(&mut self.pods, "pod", uid, pod.clone(), c);
                }
                let sandbox = if t.kind.as_deref() == Some("sandbox") {
                    Some(&t.id)
                } else {
                    t.sandbox_id.as_ref()
                };
                if let Some(sb) = sandbox {
                    name_once(&mut self.sandboxes, "sandbox", sb, pod.clone(), c);
                }
            }
            if let Some(name) = &t.container {
                let named = (name.clone(), t.pod.clone());
                name_once(&mut self.containers, "container", &t.id, named, c);
            }
            if let Some(ino) = t.netns_inode {
                self.by_netns
                    .entry(ino)
                    .or_default()
                    .push((t.id.clone(), t.pod.clone()));
            }
        }
    }

    /// What the listings read so far disagreed on, taken.
    pub fn take_conflicts(&mut self) -> Vec<String> {
        std::mem::take(&mut self.conflicts)
    }

    /// Reads `crictl pods -o json`.
    pub fn add_crictl_pods(&mut self, text: &str) {
        let json: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        for p in json["items"].as_array().into_iter().flatten() {
            let m = &p["metadata"];
            if let (Some(ns), Some(name)) = (m["namespace"].as_str(), m["name"].as_str()) {
                let full = format!("{ns}/{name}");
                let c = &mut self.conflicts;
                if let Some(uid) = m["uid"].as_str() {
                    name_once(&mut self.pods, "pod", uid, full.clone(), c);
                }
                if let Some(id) = p["id"].as_str() {
                    name_once(&mut self.sandboxes, "sandbox", id, full, c);
                }
            }
        }
    }

    /// Reads `crictl ps -a -o json` (after the pods, to name their pods).
    pub fn add_crictl_containers(&mut self, text: &str) {
        let json: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        for c in json["containers"].as_array().into_iter().flatten() {
            if let (Some(id), Some(name)) = (c["id"].as_str(), c["metadata"]["name"].as_str()) {
                let pod = c["podSandboxId"]
                    .as_str()
                    .and_then(|s| self.sandboxes.get(s))
                    .cloned();
                let named = (name.to_owned(), pod);
                name_once(
                    &mut self.containers,
                    "container",
                    id,
                    named,
                    &mut self.conflicts,
                );
            }
        }
    }

    /// Reads `docker ps -a --no-trunc --format '{{json .}}'` (JSON lines).
    pub fn add_docker(&mut self, lines: &str) {
        for line in lines.lines() {
            let Ok(c) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let (Some(id), Some(names)) = (c["ID"].as_str(), c["Names"].as_str()) {
                let name = names
                    .split(',')
                    .next()
                    .unwrap_or(names)
                    .trim_start_matches('/');
                self.containers
                    .entry(id.to_owned())
                    .or_insert((name.to_owned(), None));
            }
        }
    }

    /// Puts pod and container names on the namespaces, and labels a
    /// namespace that belongs to exactly one pod `pod/<namespace>/<name>`,
    /// or else one that belongs to containers outside any pod (docker)
    /// `container/<name>` (`container/<a>,<b>` for containers that share
    /// one, `--network container:a`), unless `ip netns` names it by hand
    /// (a name the CRI runtime bound it under, `cni-<uuid>`, does not count).
    pub fn annotate(&self, all: &mut [Netns]) {
        for ns in all {
            // The runtimes' tasks found in it by their pids: their ids
            // join those the cgroups gave, their pods are its pods.
            for (id, pod) in self.by_netns.get(&ns.inode).into_iter().flatten() {
                if !ns.containers.contains(id) {
                    ns.containers.push(id.clone());
                }
                if let Some(p) = pod
                    && !ns.pod_names.contains(p)
                {
                    ns.pod_names.push(p.clone());
                }
            }
            for uid in &ns.pods {
                if let Some(p) = self.pods.get(uid)
                    && !ns.pod_names.contains(p)
                {
                    ns.pod_names.push(p.clone());
                }
            }
            for id in &ns.containers {
                if let Some((name, pod)) = self.containers.get(id) {
                    if !ns.container_names.contains(name) {
                        ns.container_names.push(name.clone());
                    }
                    if let Some(p) = pod
                        && !ns.pod_names.contains(p)
                    {
                        ns.pod_names.push(p.clone());
                    }
                }
            }
            // A name the CRI runtime gave its pod's namespace says nothing:
            // the pod's name wins over it, a name given by hand does not.
            if ns.label == "host" || ns.name.as_deref().is_some_and(|n| !named_by_cri(n)) {
                continue;
            }
            if ns.pod_names.len() == 1 {
                ns.label = format!("pod/{}", ns.pod_names[0]);
            } else if ns.pod_names.is_empty() && !ns.container_names.is_empty() {
                let mut names = ns.container_names.clone();
                names.sort();
                ns.label = format!("container/{}", names.join(","));
            }
        }
    }
}

/// Whether an `ip netns` name is one a CRI runtime generated for a pod:
/// containerd's `cni-<uuid>` (`pkg/netns/netns_linux.go`), CRI-O's bare
/// `<uuid>` (`internal/config/nsmgr/nsmgr_linux.go`).
fn named_by_cri(name: &str) -> bool {
    let uuid = name.strip_prefix("cni-").unwrap_or(name);
    uuid.len() == 36
        && uuid.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// Every network namespace in use (`proc` is normally `/proc`), named by
/// the container runtimes, whose state and listings go into
/// `staging/runtime/`; with the runtimes' reports.
pub fn named_namespaces(
    staging: &Path,
    proc: &Path,
    roots: &StateRoots,
    timeout: Duration,
) -> (Vec<Netns>, Vec<SourceReport>) {
    let mut all = crate::netns::discover(proc);
    let (runtime, reports) = collect_runtime(staging, proc, roots, timeout);
    runtime.annotate(&mut all);
    (all, reports)
}

/// Reads the CRI runtimes' state under `roots` and runs the runtimes'
/// listing tools, into `root/runtime/`, and reads them all. `proc` is
/// normally `/proc`.
pub fn collect_runtime(
    root: &Path,
    proc: &Path,
    roots: &StateRoots,
    timeout: Duration,
) -> (RuntimeInfo, Vec<SourceReport>) {
    let mut info = RuntimeInfo::default();
    let mut reports = Vec::new();
    let states = [
        (
            &bundle::CONTAINERD_TASKS,
            state::Runtime::Containerd,
            &roots.containerd,
        ),
        (&bundle::CRIO_CONTAINERS, state::Runtime::Crio, &roots.crio),
    ];
    for (artifact, runtime, state_root) in states {
        let started = std::time::Instant::now();
        let mut report = SourceReport::new(artifact.source, None);
        match state::read(runtime, state_root, proc) {
            Err(e) => {
                report = report.with(Status::Skipped, format!("runtime not on this node: {e}"));
            }
            Ok(st) => {
                info.add_state(&st);
                let path = root.join(artifact.path);
                let written = path
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| {
                        let json = serde_json::to_vec_pretty(&st).map_err(std::io::Error::other)?;
                        std::fs::write(&path, json)
                    });
                match written {
                    Ok(()) => report.files.push(artifact.path.into()),
                    Err(e) => {
                        report = report.with(
                            Status::Partial,
                            format!("names used, but cannot write {}: {e}", path.display()),
                        );
                    }
                }
                if !st.skipped.is_empty() && report.status == Status::Ok {
                    let first = &st.skipped[0].reason;
                    report = report.with(
                        Status::Partial,
                        format!(
                            "{} of {} tasks not read (first: {first})",
                            st.skipped.len(),
                            st.skipped.len() + st.tasks.len()
                        ),
                    );
                }
            }
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        reports.push(report);
    }
    // crictl pods before containers, which name them.
    type Reader = fn(&mut RuntimeInfo, &str);
    let tools: [(&Artifact, Reader); 3] = [
        (&bundle::CRICTL_PODS, RuntimeInfo::add_crictl_pods),
        (&bundle::CRICTL_PS, RuntimeInfo::add_crictl_containers),
        (&bundle::DOCKER_PS, RuntimeInfo::add_docker),
    ];
    for (artifact, read) in tools {
        let path = root.join(artifact.path);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let report = SourceReport::new(artifact.source, None);
        let mut report = run_artifact(artifact, &path, artifact.path.into(), report, timeout);
        // A client installed without its runtime running (docker CLI, no
        // daemon) means this node does not use that runtime: not a failure.
        if report.status == Status::Failed {
            report.status = Status::Skipped;
            report.reason = report
                .reason
                .map(|r| format!("runtime not reachable on this node: {r}"));
        }
        if !report.files.is_empty() {
            read(
                &mut info,
                &std::fs::read_to_string(&path).unwrap_or_default(),
            );
        }
        let conflicts = info.take_conflicts();
        if !conflicts.is_empty() && report.status == Status::Ok {
            report = report.with(
                Status::Partial,
                format!(
                    "disagrees with the runtime's state on disk, whose names are kept: {}",
                    conflicts.join("; ")
                ),
            );
        }
        reports.push(report);
    }
    (info, reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
    const CID: &str = "3f1a7c0e9d2b4a5f8e6c1d0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f";

    fn ns(pods: &[&str], containers: &[&str]) -> Netns {
        Netns {
            label: "netns-4026532301".into(),
            inode: 4026532301,
            path: "/proc/42/ns/net".into(),
            pids: vec![42],
            containers: containers.iter().map(|s| s.to_string()).collect(),
            pods: pods.iter().map(|s| s.to_string()).collect(),
            ..Netns::default()
        }
    }

    #[test]
    fn crictl_output_names_pods_and_containers() {
        let pods = &format!(
            r#"{{"items":[{{"id":"sb1","metadata":{{"name":"web-7d9","uid":"{UID}","namespace":"shop","attempt":0}},"state":"SANDBOX_READY"}}]}}"#
        );
        let ps = &format!(
            r#"{{"containers":[{{"id":"{CID}","podSandboxId":"sb1","metadata":{{"name":"nginx","attempt":0}},"state":"CONTAINER_RUNNING"}}]}}"#
        );
        let mut info = RuntimeInfo::default();
        info.add_crictl_pods(pods);
        info.add_crictl_containers(ps);
        let mut all = vec![ns(&[UID], &[CID]), ns(&[], &[CID])];
        info.annotate(&mut all);
        assert_eq!(all[0].label, "pod/shop/web-7d9");
        assert_eq!(all[0].pod_names, vec!["shop/web-7d9"]);
        assert_eq!(all[0].container_names, vec!["nginx"]);
        // Known only through its container id.
        assert_eq!(all[1].label, "pod/shop/web-7d9");
    }

    #[test]
    fn runtime_state_names_the_pod_namespace_by_inode_and_wins_over_crictl() {
        let d = tempfile::tempdir().unwrap();
        let (root, proc) = (d.path().join("state"), d.path().join("proc"));
        let tasks = root.join("io.containerd.runtime.v2.task/k8s.io");
        for (id, pid, kind, name) in [
            (state::tests::SB, 4100, "sandbox", None),
            (state::tests::CT, 4200, "container", Some("nginx")),
        ] {
            let dir = tasks.join(id);
            std::fs::create_dir_all(&dir).unwrap();
            let spec = state::tests::containerd_spec(kind, name, "/proc/4100/ns/net");
            std::fs::write(dir.join("config.json"), spec).unwrap();
            std::fs::write(dir.join("init.pid"), pid.to_string()).unwrap();
            let ns = proc.join(format!("{pid}/ns"));
            std::fs::create_dir_all(&ns).unwrap();
            std::os::unix::fs::symlink("net:[4026532301]", ns.join("net")).unwrap();
        }
        let st = state::read(state::Runtime::Containerd, &root, &proc).unwrap();
        let mut info = RuntimeInfo::default();
        info.add_state(&st);
        assert!(info.take_conflicts().is_empty());
        // crictl naming the container otherwise: the state is kept.
        info.add_crictl_containers(&format!(
            r#"{{"containers":[{{"id":"{}","podSandboxId":"{}","metadata":{{"name":"web"}}}}]}}"#,
            state::tests::CT,
            state::tests::SB
        ));
        let conflicts = info.take_conflicts();
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert!(conflicts[0].contains("\"web\""), "{conflicts:?}");
        // No cgroup told the namespace its containers: the pids did.
        let mut all = vec![ns(&[], &[])];
        info.annotate(&mut all);
        assert_eq!(all[0].label, "pod/shop/web-7d9");
        assert_eq!(all[0].container_names, vec!["nginx"]);
        assert_eq!(all[0].containers, vec![state::tests::SB, state::tests::CT]);
    }

    #[test]
    fn pod_namespaces_bound_by_the_cri_runtime_are_labelled_by_pod_not_cni_name() {
        let mut info = RuntimeInfo::default();
        info.add_crictl_pods(&format!(
            r#"{{"items":[{{"id":"sb1","metadata":{{"name":"web-7d9","uid":"{UID}","namespace":"shop"}}}}]}}"#
        ));
        let mut all = Vec::new();
        for name in [
            "cni-5b4f7f3a-8c2e-1d6b-0a9f-3e2d1c0b9a87",
            "0e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b",
            "blue",
            "cni-blue",
        ] {
            let mut n = ns(&[UID], &[]);
            n.name = Some(name.into());
            n.label = name.into();
            all.push(n);
        }
        info.annotate(&mut all);
        let labels: Vec<&str> = all.iter().map(|n| n.label.as_str()).collect();
        assert_eq!(
            labels,
            ["pod/shop/web-7d9", "pod/shop/web-7d9", "blue", "cni-blue"]
        );
        assert_eq!(
            all[0].name.as_deref(),
            Some("cni-5b4f7f3a-8c2e-1d6b-0a9f-3e2d1c0b9a87")
        );
    }

    #[test]
    fn docker_names_containers() {
        let mut info = RuntimeInfo::default();
        info.add_docker(&format!(
            "{{\"ID\":\"{CID}\",\"Names\":\"uploader\",\"Image\":\"x\"}}\nnot json\n"
        ));
        let mut all = vec![ns(&[], &[CID])];
        info.annotate(&mut all);
        assert_eq!(all[0].container_names, vec!["uploader"]);
        assert_eq!(all[0].label, "container/uploader");
    }

    #[test]
    fn containers_sharing_a_namespace_are_all_named_and_ip_netns_names_win() {
        let other = CID.replace('3', "4");
        let mut info = RuntimeInfo::default();
        info.add_docker(&format!(
            "{{\"ID\":\"{CID}\",\"Names\":\"web\"}}\n{{\"ID\":\"{other}\",\"Names\":\"sidecar\"}}\n"
        ));
        let mut named = ns(&[], &[CID]);
        named.name = Some("blue".into());
        named.label = "blue".into();
        let mut all = vec![ns(&[], &[CID, &other]), named];
        info.annotate(&mut all);
        assert_eq!(all[0].label, "container/sidecar,web");
        assert_eq!(all[1].label, "blue");
    }
}
