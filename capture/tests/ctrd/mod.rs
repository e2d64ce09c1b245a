//! A containerd lab: its own containerd (own root, state, socket and
//! config, CRI plugin off) running, in containerd namespace `k8s.io`, a
//! pod's "sandbox" task and one "container" task with the annotations
//! containerd's CRI plugin writes (containerd
//! `pkg/cri/annotations/annotations.go`), from a rootfs holding
//! busybox-static. The sandbox's network namespace is bound, as the CRI
//! plugin binds it, at `/var/run/netns/cni-<uuid>`; the container joins it
//! through `/proc/<sandbox pid>/ns/net`, as the CRI plugin's specs do.
//! Used by `capture/tests/containerd_lab.rs` and the root crate's
//! `tests/containerd_lab.rs`. Everything is undone on drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SANDBOX: &str = "c7d0000000000000000000000000000000000000000000000000000000000001";
pub const CONTAINER: &str = "c7d0000000000000000000000000000000000000000000000000000000000002";
pub const POD_UID: &str = "c7d01234-4f50-6172-8394-a5b6c7d8e9f0";
/// Generated-looking, as containerd names it; `c7d0` marks it as this lab's.
pub const NETNS: &str = "cni-c7d00000-0000-4000-8000-0000000c7d01";
pub const POD: &str = "shop/web-7d9";
pub const CONTAINER_NAME: &str = "nginx";

fn sh(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", cmd])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn out(cmd: &str) -> String {
    let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

// Declared here, not through libc: the root crate, which includes this
// file too, has no libc dependency.
unsafe extern "C" {
    fn geteuid() -> u32;
}

/// Why this machine cannot run the lab, if it cannot.
pub fn missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { geteuid() } != 0 {
        return Some("not root".into());
    }
    for tool in ["containerd", "ctr", "runc", "busybox", "ip"] {
        if !sh(&format!("command -v {tool}")) {
            return Some(format!(
                "{tool} is not installed (apt-get install containerd busybox-static iproute2)"
            ));
        }
    }
    if !sh("ip netns add ctrd-probe && ip netns del ctrd-probe") {
        return Some("cannot create network namespaces".into());
    }
    None
}

pub struct Lab {
    pub dir: tempfile::TempDir,
    containerd: Option<Child>,
    /// containerd's `--state`: what capsnap is pointed at.
    pub state: PathBuf,
    pub sandbox_pid: u32,
    pub container_pid: u32,
}

impl Lab {
    fn ctr(&self, args: &str) -> String {
        out(&format!(
            "ctr -a {} -n k8s.io {args}",
            self.dir.path().join("c.sock").display()
        ))
    }

    fn annotations(kind: &str, name: Option<&str>) -> String {
        let mut a = format!(
            "--annotation io.kubernetes.cri.container-type={kind} \
             --annotation io.kubernetes.cri.sandbox-id={SANDBOX} \
             --annotation io.kubernetes.cri.sandbox-name=web-7d9 \
             --annotation io.kubernetes.cri.sandbox-namespace=shop \
             --annotation io.kubernetes.cri.sandbox-uid={POD_UID}"
        );
        if let Some(n) = name {
            a.push_str(&format!(
                " --annotation io.kubernetes.cri.container-name={n}"
            ));
        }
        a
    }

    pub fn start() -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("ctrd-lab")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path().to_owned();
        let _ = sh(&format!("ip netns del {NETNS}"));
        assert!(sh(&format!("ip netns add {NETNS}")), "ip netns add {NETNS}");
        for rootfs in ["rootfs-sandbox", "rootfs-container"] {
            let r = d.join(rootfs);
            for sub in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
                std::fs::create_dir_all(r.join(sub)).unwrap();
            }
            out(&format!(
                "cp $(command -v busybox) {0}/bin/busybox && ln -s busybox {0}/bin/sh && ln -s busybox {0}/bin/sleep",
                r.display()
            ));
        }
        std::fs::write(
            d.join("config.toml"),
            format!(
                "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{0}/c.sock\"\n",
                d.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let containerd = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .args(["--log-level", "warn"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut lab = Lab {
            state: d.join("state"),
            dir,
            containerd: Some(containerd),
            sandbox_pid: 0,
            container_pid: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !sh(&format!("ctr -a {}/c.sock version", d.display())) {
            assert!(
                Instant::now() < deadline,
                "containerd did not answer: {}",
                std::fs::read_to_string(d.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        lab.ctr(&format!(
            "run -d --rootfs --with-ns network:/var/run/netns/{NETNS} {} {} {SANDBOX} /bin/sleep 600",
            Self::annotations("sandbox", None),
            d.join("rootfs-sandbox").display()
        ));
        lab.sandbox_pid = lab.pid_of(SANDBOX);
        lab.ctr(&format!(
            "run -d --rootfs --with-ns network:/proc/{}/ns/net {} {} {CONTAINER} /bin/sleep 600",
            lab.sandbox_pid,
            Self::annotations("container", Some(CONTAINER_NAME)),
            d.join("rootfs-container").display()
        ));
        lab.container_pid = lab.pid_of(CONTAINER);
        lab
    }

    fn pid_of(&self, id: &str) -> u32 {
        let f = self
            .state
            .join("io.containerd.runtime.v2.task/k8s.io")
            .join(id)
            .join("init.pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(p) = std::fs::read_to_string(&f)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                return p;
            }
            assert!(Instant::now() < deadline, "{}: no pid", f.display());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The inode of the pod's network namespace.
    pub fn netns_inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(Path::new("/var/run/netns").join(NETNS))
            .unwrap()
            .ino()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let sock = self.dir.path().join("c.sock");
        for id in [CONTAINER, SANDBOX] {
            sh(&format!(
                "ctr -a {0} -n k8s.io t kill -s KILL {id}; sleep 0.3; ctr -a {0} -n k8s.io t rm -f {id}; ctr -a {0} -n k8s.io c rm {id}",
                sock.display()
            ));
        }
        if let Some(mut c) = self.containerd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        sh(&format!("ip netns del {NETNS}"));
        // The shims mount nothing here (--rootfs), but unmount anything left.
        sh(&format!(
            "grep -o ' {}[^ ]*' /proc/mounts | xargs -r -n1 umount -l",
            self.dir.path().display()
        ));
    }
}
