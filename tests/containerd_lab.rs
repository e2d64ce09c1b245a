//! `capsnap collect` names a Kubernetes pod's namespace from a real
//! containerd's state on disk, with no crictl (issue 12). The lab (its own
//! containerd, a sandbox and a container task in `k8s.io` with the CRI
//! plugin's annotations, the sandbox's netns bound at
//! `/var/run/netns/cni-<uuid>`) is `capture/tests/ctrd/mod.rs`. The pod is
//! selected by name (`--netns web-7d9`) and the bundle's manifest must
//! label its namespace `pod/shop/web-7d9`, name its container, and keep
//! `runtime/containerd-tasks.json`. Needs root, containerd, ctr, runc,
//! busybox (busybox-static), ip, tar and zstd: says SKIPPED and why
//! otherwise. `CAPSNAP_COLLECTOR=<path>` collects with that build (the
//! static collector) instead of the full one, as the reproductions do.

#[path = "../capture/tests/ctrd/mod.rs"]
mod ctrd;

use std::process::Command;

fn member(bundle: &std::path::Path, name: &str) -> String {
    let o = Command::new("tar")
        .args(["-I", "zstd", "-xOf"])
        .arg(bundle)
        .arg(name)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn collect_names_a_containerd_pod_without_crictl_lab() {
    if let Some(why) = ctrd::missing().or_else(|| {
        (!Command::new("sh")
            .args(["-c", "command -v tar && command -v zstd"])
            .output()
            .is_ok_and(|o| o.status.success()))
        .then(|| "tar or zstd is not installed".to_owned())
    }) {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let lab = ctrd::Lab::start();
    let bundle = lab.dir.path().join("pod.capsnap");
    let bin = std::env::var_os("CAPSNAP_COLLECTOR")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_capsnap").into());
    let collect = Command::new(bin)
        .args(["collect", "--duration", "1s", "--no-ebpf", "--no-packets"])
        .args(["--netns", "web-7d9", "--containerd-state"])
        .arg(&lab.state)
        .arg("-o")
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        collect.status.success(),
        "collect failed: {}",
        String::from_utf8_lossy(&collect.stderr)
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&member(&bundle, "manifest.json")).unwrap();
    let label = format!("pod/{}", ctrd::POD);
    let namespaces = manifest["namespaces"].as_array().unwrap();
    let pod = namespaces
        .iter()
        .find(|n| n["label"] == label.as_str())
        .unwrap_or_else(|| panic!("no {label} in {namespaces:#?}"));
    assert_eq!(pod["inode"], lab.netns_inode());
    assert_eq!(pod["container_names"][0], ctrd::CONTAINER_NAME);
    // Selected by the pod's name: the host and the pod, nothing else.
    assert_eq!(namespaces.len(), 2, "{namespaces:#?}");
    let state = manifest["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "containerd_state")
        .unwrap();
    assert_eq!(state["status"], "ok", "{state:#}");
    let kept: serde_json::Value =
        serde_json::from_str(&member(&bundle, "runtime/containerd-tasks.json")).unwrap();
    assert_eq!(kept["tasks"][1]["container"], ctrd::CONTAINER_NAME);
}
