//! The Kubernetes naming path against a real containerd, with no crictl
//! (issue 12): a pod's namespace is labelled `pod/<namespace>/<name>` and
//! its container named, from containerd's state on disk alone. Needs root,
//! containerd, ctr, runc, busybox (busybox-static) and ip: says SKIPPED and
//! why otherwise. See `ctrd/mod.rs` for the lab.

mod ctrd;

use capsnap_capture as capture;

use capture::{StateRoots, named_namespaces};
use std::path::Path;
use std::time::Duration;

#[test]
fn pod_named_from_containerd_state_without_crictl_lab() {
    if let Some(why) = ctrd::missing() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let lab = ctrd::Lab::start();
    let staging = lab.dir.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let roots = StateRoots {
        containerd: lab.state.clone(),
        crio: lab.dir.path().join("no-crio"),
    };
    let (all, reports) =
        named_namespaces(&staging, Path::new("/proc"), &roots, Duration::from_secs(5));
    let inode = lab.netns_inode();
    let pod = all
        .iter()
        .find(|n| n.inode == inode)
        .unwrap_or_else(|| panic!("the pod's namespace {inode} not found: {all:#?}"));
    assert_eq!(pod.label, format!("pod/{}", ctrd::POD), "{pod:#?}");
    assert_eq!(pod.name.as_deref(), Some(ctrd::NETNS));
    assert_eq!(pod.pod_names, vec![ctrd::POD.to_owned()]);
    assert_eq!(pod.container_names, vec![ctrd::CONTAINER_NAME.to_owned()]);
    assert!(
        pod.containers.contains(&ctrd::CONTAINER.to_owned()),
        "{pod:#?}"
    );
    assert!(pod.pids.contains(&lab.sandbox_pid) && pod.pids.contains(&lab.container_pid));

    let report = reports
        .iter()
        .find(|r| r.source == "containerd_state")
        .unwrap();
    assert_eq!(report.status, capture::Status::Ok, "{report:?}");
    assert_eq!(report.files, ["runtime/containerd-tasks.json"]);
    let kept: serde_json::Value = serde_json::from_slice(
        &std::fs::read(staging.join("runtime/containerd-tasks.json")).unwrap(),
    )
    .unwrap();
    let tasks = kept["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2, "{kept:#}");
    assert_eq!(tasks[0]["id"], ctrd::SANDBOX);
    assert_eq!(tasks[0]["pid"], lab.sandbox_pid);
    assert_eq!(tasks[0]["netns_inode"], inode);
    assert_eq!(
        tasks[0]["netns_path"],
        format!("/var/run/netns/{}", ctrd::NETNS)
    );
    assert_eq!(tasks[1]["container"], ctrd::CONTAINER_NAME);
    assert_eq!(tasks[1]["pod_uid"], ctrd::POD_UID);
    let crio = reports.iter().find(|r| r.source == "crio_state").unwrap();
    assert_eq!(crio.status, capture::Status::Skipped, "{crio:?}");
}
