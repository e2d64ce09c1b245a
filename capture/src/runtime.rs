//! Container runtime metadata: which pod and container a namespace belongs
//! to, by name. cgroup paths give ids and pod UIDs; `crictl` (CRI runtimes:
//! containerd, CRI-O) and `docker` give the names people search by. Their
//! raw JSON goes into the bundle under `runtime/`; a runtime that is not
//! installed is reported as skipped.

use crate::netns::Netns;
use crate::report::{SourceReport, Status};
use crate::tool::run_artifact;
use formats::bundle::{self, Artifact};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// Names known for pod UIDs and container ids.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// Pod UID -> `namespace/name`.
    pub pods: HashMap<String, String>,
    /// Pod sandbox id -> `namespace/name`.
    sandboxes: HashMap<String, String>,
    /// Container id -> (container name, pod `namespace/name` if any).
    pub containers: HashMap<String, (String, Option<String>)>,
}

impl RuntimeInfo {
    /// Reads `crictl pods -o json`.
    pub fn add_crictl_pods(&mut self, text: &str) {
        let json: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        for p in json["items"].as_array().into_iter().flatten() {
            let m = &p["metadata"];
            if let (Some(ns), Some(name)) = (m["namespace"].as_str(), m["name"].as_str()) {
                let full = format!("{ns}/{name}");
                if let Some(uid) = m["uid"].as_str() {
                    self.pods.insert(uid.to_owned(), full.clone());
                }
                if let Some(id) = p["id"].as_str() {
                    self.sandboxes.insert(id.to_owned(), full);
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
                self.containers
                    .insert(id.to_owned(), (name.to_owned(), pod));
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
    /// one, `--network container:a`), unless `ip netns` already names it.
    pub fn annotate(&self, all: &mut [Netns]) {
        for ns in all {
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
            if ns.label == "host" || ns.name.is_some() {
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

/// Runs the runtimes' listing tools into `root/runtime/` and reads them.
pub fn collect_runtime(root: &Path, timeout: Duration) -> (RuntimeInfo, Vec<SourceReport>) {
    let mut info = RuntimeInfo::default();
    let mut reports = Vec::new();
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
