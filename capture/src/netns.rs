//! Network namespaces in use, found through /proc/*/ns/net, each tied to the
//! processes, containers and pods living in it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One network namespace and what lives in it: the manifest's record,
/// filled in by [`discover`] and the runtimes.
pub use formats::bundle::Namespace as Netns;

/// The inode of a namespace link such as /proc/PID/ns/net or ns/mnt
/// (`net:[4026531993]` -> 4026531993).
pub fn ns_inode(path: &Path) -> Option<u64> {
    let link = std::fs::read_link(path).ok()?;
    let s = link.to_str()?;
    s[s.find(":[")? + 2..].strip_suffix(']')?.parse().ok()
}

/// Container id and pod UID from a /proc/PID/cgroup file, for the layouts
/// of docker, containerd (CRI), CRI-O and Kubernetes' kubepods slices, with
/// both the cgroupfs and the systemd cgroup drivers.
pub fn container_of(cgroup: &str) -> (Option<String>, Option<String>) {
    let mut container = None;
    let mut pod = None;
    for line in cgroup.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or("");
        for part in path.split('/') {
            // systemd driver: kubepods-besteffort-pod<uid with _>.slice
            if let Some(i) = part.rfind("pod")
                && (part.starts_with("kubepods") || i == 0)
            {
                let uid = part[i + 3..].trim_end_matches(".slice").replace('_', "-");
                if uid.len() == 36 {
                    pod = Some(uid);
                }
            }
            let id = part
                .strip_suffix(".scope")
                .map(|p| p.rsplit('-').next().unwrap_or(p))
                .unwrap_or(part);
            if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                container = Some(id.to_owned());
            }
        }
    }
    (container, pod)
}

/// Finds every network namespace in use. `proc` is normally `/proc`.
pub fn discover(proc: &Path) -> Vec<Netns> {
    let own = ns_inode(&proc.join("self/ns/net"));
    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/var/run/netns") {
        for e in dir.flatten() {
            if let (Some(ino), Some(name)) = (ns_inode_of_file(&e.path()), e.file_name().to_str()) {
                names.insert(ino, name.to_owned());
            }
        }
    }
    let mut by_inode: BTreeMap<u64, Netns> = BTreeMap::new();
    let pids = std::fs::read_dir(proc)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok());
    for pid in pids {
        // Processes vanish mid-scan: that is normal, skip them.
        let Some(inode) = ns_inode(&proc.join(format!("{pid}/ns/net"))) else {
            continue;
        };
        let ns = by_inode.entry(inode).or_insert_with(|| Netns {
            label: String::new(),
            inode,
            path: proc.join(format!("{pid}/ns/net")),
            pids: Vec::new(),
            containers: Vec::new(),
            pods: Vec::new(),
            name: names.get(&inode).cloned(),
            ..Netns::default()
        });
        ns.pids.push(pid);
        if let Ok(cg) = std::fs::read_to_string(proc.join(format!("{pid}/cgroup"))) {
            let (c, p) = container_of(&cg);
            if let Some(c) = c
                && !ns.containers.contains(&c)
            {
                ns.containers.push(c);
            }
            if let Some(p) = p
                && !ns.pods.contains(&p)
            {
                ns.pods.push(p);
            }
        }
    }
    // Namespaces bound by `ip netns add` with no process in them yet.
    for (ino, name) in &names {
        by_inode.entry(*ino).or_insert_with(|| Netns {
            label: String::new(),
            inode: *ino,
            path: PathBuf::from("/var/run/netns").join(name),
            pids: Vec::new(),
            containers: Vec::new(),
            pods: Vec::new(),
            name: Some(name.clone()),
            ..Netns::default()
        });
    }
    let mut all: Vec<Netns> = by_inode.into_values().collect();
    for ns in &mut all {
        ns.pids.sort_unstable();
        if Some(ns.inode) == own {
            ns.label = "host".into();
            ns.path = proc.join("self/ns/net");
        } else if let Some(name) = &ns.name {
            ns.label = name.clone();
            ns.path = PathBuf::from("/var/run/netns").join(name);
        } else {
            ns.label = format!("netns-{}", ns.inode);
        }
    }
    // Host first, then by label: deterministic order.
    all.sort_by(|a, b| (a.label != "host", &a.label).cmp(&(b.label != "host", &b.label)));
    all
}

/// Inode of a bound namespace file (a bind mount of nsfs: stat gives it).
pub(crate) fn ns_inode_of_file(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    // An unmounted placeholder file under /var/run/netns has a tmpfs inode;
    // only nsfs inodes are in the 0xF0000000 range proc_ns uses.
    (m.ino() >= 0xF000_0000).then_some(m.ino())
}

/// How `--netns` picks namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Every namespace in use.
    All,
    /// The one holding this pid.
    Pid(u32),
    /// A namespace file such as /var/run/netns/NAME or /proc/PID/ns/net.
    Path(PathBuf),
    /// A container id (or a prefix of at least 6 hex digits) or name, a pod
    /// UID, `namespace/name` or name, or an `ip netns` name / label.
    Name(String),
}

impl std::fmt::Display for Selector {
    /// The selector as the user wrote it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::All => f.write_str("all"),
            Selector::Pid(pid) => write!(f, "{pid}"),
            Selector::Path(p) => write!(f, "{}", p.display()),
            Selector::Name(n) => f.write_str(n),
        }
    }
}

impl Selector {
    /// Parses a `--netns` value: `all`, a pid, a path, or a name.
    pub fn parse(s: &str) -> Selector {
        if s == "all" {
            Selector::All
        } else if let Ok(pid) = s.parse() {
            Selector::Pid(pid)
        } else if s.starts_with('/') {
            Selector::Path(PathBuf::from(s))
        } else {
            Selector::Name(s.to_owned())
        }
    }

    fn matches(&self, ns: &Netns, proc: &Path) -> bool {
        match self {
            Selector::All => true,
            Selector::Pid(pid) => ns_inode(&proc.join(format!("{pid}/ns/net"))) == Some(ns.inode),
            Selector::Path(p) => ns_inode(p).or_else(|| ns_inode_of_file(p)) == Some(ns.inode),
            Selector::Name(n) => {
                ns.label == *n
                    || ns.name.as_deref() == Some(n)
                    || ns.pods.iter().any(|p| p == n)
                    || ns
                        .pod_names
                        .iter()
                        .any(|p| p == n || p.rsplit('/').next() == Some(n.as_str()))
                    || ns.container_names.iter().any(|c| c == n)
                    || (n.len() >= 6 && ns.containers.iter().any(|c| c.starts_with(n.as_str())))
            }
        }
    }
}

/// The namespaces to collect: the host always, plus those any selector
/// picks (with no selector, all of them). Selectors that match nothing are
/// returned so the caller can report them.
pub fn select<'a>(
    all: &[Netns],
    selectors: &'a [Selector],
    proc: &Path,
) -> (Vec<Netns>, Vec<&'a Selector>) {
    let unmatched = selectors
        .iter()
        .filter(|s| !all.iter().any(|ns| s.matches(ns, proc)))
        .collect();
    let chosen = all
        .iter()
        .filter(|ns| {
            ns.label == "host"
                || selectors.is_empty()
                || selectors.iter().any(|s| s.matches(ns, proc))
        })
        .cloned()
        .collect();
    (chosen, unmatched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_and_pod_from_cgroup_layouts() {
        let id = "3f1a7c0e9d2b4a5f8e6c1d0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f";
        let uid = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
        let cases = [
            (
                format!("0::/system.slice/docker-{id}.scope"),
                Some(id),
                None,
            ),
            (format!("12:pids:/docker/{id}"), Some(id), None),
            (
                format!(
                    "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{id}.scope",
                    uid.replace('-', "_")
                ),
                Some(id),
                Some(uid),
            ),
            (
                format!("0::/kubepods/burstable/pod{uid}/{id}"),
                Some(id),
                Some(uid),
            ),
            (
                "0::/user.slice/user-0.slice/session-1.scope".to_string(),
                None,
                None,
            ),
        ];
        for (cg, want_c, want_p) in cases {
            let (c, p) = container_of(&cg);
            assert_eq!((c.as_deref(), p.as_deref()), (want_c, want_p), "{cg}");
        }
    }

    #[test]
    fn discovers_own_namespace_as_host_with_this_process() {
        let all = discover(Path::new("/proc"));
        let host = all
            .iter()
            .find(|n| n.label == "host")
            .expect("host namespace");
        assert!(host.pids.contains(&std::process::id()));
        assert_eq!(Some(host.inode), ns_inode(Path::new("/proc/self/ns/net")));
        assert_eq!(all[0].label, "host");
    }

    #[test]
    fn selectors_parse() {
        assert_eq!(Selector::parse("all"), Selector::All);
        assert_eq!(Selector::parse("1234"), Selector::Pid(1234));
        assert_eq!(
            Selector::parse("/var/run/netns/x"),
            Selector::Path("/var/run/netns/x".into())
        );
        assert_eq!(Selector::parse("web"), Selector::Name("web".into()));
        for text in ["all", "1234", "/var/run/netns/x", "shop/web"] {
            assert_eq!(Selector::parse(text).to_string(), text);
        }
    }
}
