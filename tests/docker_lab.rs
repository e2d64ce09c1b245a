//! `capsnap collect` against real Docker containers (issue 12).
//!
//! dockerd is started by hand (its own data root, exec root, pid file,
//! socket and empty config under a temp dir) inside a network namespace
//! of its own, the lab's "node": its docker0, its NAT rules and its
//! ip_forward are that namespace's, and an "outside" namespace behind a
//! veth plays the world. An image is made with `docker import` from a
//! directory holding busybox-static. Two containers run: `ctnl-web`
//! serves HTTP on its bridge address, `ctnl-client` fetches from the
//! outside server in a loop (container -> outside, masqueraded on
//! docker0's way out); the node fetches from ctnl-web (node -> container).
//! capsnap collects in the node with the two containers selected by name.
//!
//! The bundle must label each container's namespace `container/<name>`
//! (not `netns-<inode>`), in the manifest, in its capture point and in the
//! tables; hold the container's packets in its capture; and show the
//! docker0 NAT path in the node's conntrack table (ctnetlink).
//!
//! The host is left as found: dockerd changes nothing outside its
//! namespace here, but the host's iptables rules, forwarding sysctls and
//! links are saved first and compared (and restored) after, even when the
//! test fails. Needs root, dockerd and docker (Debian's docker.io),
//! busybox (busybox-static), ip, python3, tar with zstd: the test says
//! SKIPPED and why when the machine lacks them.

mod common;

use common::capsnap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

fn must(cmd: &str) {
    out(cmd);
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Why this machine cannot run the lab, if it cannot.
fn lab_missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        return Some("not root".into());
    }
    for tool in [
        "dockerd", "docker", "busybox", "ip", "nsenter", "python3", "tar", "zstd",
    ] {
        if !sh(&format!("command -v {tool}")) {
            return Some(format!(
                "{tool} is not installed (apt-get install docker.io busybox-static)"
            ));
        }
    }
    if !sh("ip netns add ctnl-probe && ip netns del ctnl-probe") {
        return Some("cannot create network namespaces".into());
    }
    None
}

const NODE: &str = "ctnl-dock";
const OUTSIDE: &str = "ctnl-out";
const NODE_IP: &str = "10.98.7.1";
const OUTSIDE_IP: &str = "10.98.7.2";

/// What dockerd may change on a host, as it was before the lab.
struct HostState {
    iptables: String,
    ip6tables: String,
    sysctls: Vec<(String, String)>,
    links: String,
}

const HOST_SYSCTLS: &[&str] = &[
    "net/ipv4/ip_forward",
    "net/ipv6/conf/all/forwarding",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
];

impl HostState {
    fn read() -> HostState {
        let save = |cmd: &str| {
            // Counters change with every packet: rules only.
            Command::new(cmd)
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .filter(|l| !l.starts_with('#'))
                        .map(|l| l.split(" [").next().unwrap_or(l))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default()
        };
        HostState {
            iptables: save("iptables-save"),
            ip6tables: save("ip6tables-save"),
            sysctls: HOST_SYSCTLS
                .iter()
                .map(|k| {
                    let v = std::fs::read_to_string(format!("/proc/sys/{k}")).unwrap_or_default();
                    ((*k).to_owned(), v.trim().to_owned())
                })
                .collect(),
            links: link_names(),
        }
    }

    /// Puts back what differs; says what it had to.
    fn restore(&self, saved_to: &Path) -> Vec<String> {
        let now = HostState::read();
        let mut fixed = Vec::new();
        for (cmd, before, after, file) in [
            ("iptables", &self.iptables, &now.iptables, "iptables.save"),
            (
                "ip6tables",
                &self.ip6tables,
                &now.ip6tables,
                "ip6tables.save",
            ),
        ] {
            if before != after {
                // iptables-restore flushes only the tables it is given: a
                // table docker created (nat) is flushed by hand first.
                for table in ["filter", "nat", "mangle", "raw"] {
                    sh(&format!("{cmd} -t {table} -F && {cmd} -t {table} -X"));
                }
                for chain in ["INPUT", "FORWARD", "OUTPUT"] {
                    sh(&format!("{cmd} -P {chain} ACCEPT"));
                }
                sh(&format!(
                    "{cmd}-restore < {}",
                    saved_to.join(file).display()
                ));
                fixed.push(format!("{cmd} rules"));
            }
        }
        for ((key, before), (_, after)) in self.sysctls.iter().zip(&now.sysctls) {
            if before != after && !before.is_empty() {
                let _ = std::fs::write(format!("/proc/sys/{key}"), before);
                fixed.push(format!("{key} {after} -> {before}"));
            }
        }
        if !self.links.contains(" docker0 ") && now.links.contains(" docker0 ") {
            sh("ip link del docker0");
            fixed.push("docker0 on the host".into());
        }
        fixed
    }
}

fn link_names() -> String {
    let names = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut out = String::from(" ");
    for l in names.lines() {
        if let Some(name) = l.split(": ").nth(1) {
            out.push_str(name.split('@').next().unwrap_or(name));
            out.push(' ');
        }
    }
    out
}

/// The lab: namespaces, dockerd, containers; all undone on drop.
struct DockerLab {
    dir: tempfile::TempDir,
    dockerd: Option<Child>,
    children: Vec<Child>,
    host: HostState,
}

impl DockerLab {
    fn sock(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    fn docker(&self, args: &str) -> String {
        out(&format!("docker -H {} {args}", self.sock()))
    }

    fn start() -> DockerLab {
        let dir = tempfile::Builder::new()
            .prefix("ctnl-docker")
            .tempdir_in("/tmp")
            .unwrap();
        let host = HostState::read();
        // The rules as iptables-restore takes them, counters and all.
        must(&format!(
            "iptables-save > {0}/iptables.save; ip6tables-save > {0}/ip6tables.save",
            dir.path().display()
        ));
        let mut lab = DockerLab {
            dir,
            dockerd: None,
            children: Vec::new(),
            host,
        };
        lab.teardown_namespaces();
        for cmd in [
            format!("ip netns add {NODE} && ip netns add {OUTSIDE}"),
            format!("ip link add ctnl-do netns {NODE} type veth peer name ctnl-od netns {OUTSIDE}"),
            format!(
                "ip -n {NODE} addr add {NODE_IP}/24 dev ctnl-do && ip -n {NODE} link set ctnl-do up && ip -n {NODE} link set lo up"
            ),
            format!(
                "ip -n {OUTSIDE} addr add {OUTSIDE_IP}/24 dev ctnl-od && ip -n {OUTSIDE} link set ctnl-od up && ip -n {OUTSIDE} link set lo up"
            ),
        ] {
            must(&cmd);
        }
        let d = lab.dir.path().to_owned();
        std::fs::write(d.join("daemon.json"), "{}").unwrap();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        // nsenter, not `ip netns exec`: that one mounts a new /sys for the
        // namespace, hiding the cgroup hierarchies dockerd needs ("Devices
        // cgroup isn't mounted").
        let dockerd = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{NODE}"))
            .arg("dockerd")
            .arg(format!("--data-root={}", d.join("data").display()))
            .arg(format!("--exec-root={}", d.join("exec").display()))
            .arg(format!("--pidfile={}", d.join("docker.pid").display()))
            .arg(format!("--config-file={}", d.join("daemon.json").display()))
            .arg(format!("--host={}", lab.sock()))
            .args(["--userland-proxy=false", "--log-level=warn"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        lab.dockerd = Some(dockerd);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !sh(&format!("docker -H {} version", lab.sock())) {
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within 60 s:\n{}",
                std::fs::read_to_string(d.join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        lab
    }

    fn spawn(&mut self, ns: &str, argv: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    fn teardown_namespaces(&self) {
        for n in [NODE, OUTSIDE] {
            sh(&format!(
                "ip netns pids {n} 2>/dev/null | xargs -r kill -9; ip netns del {n} 2>/dev/null"
            ));
        }
    }

    /// Processes whose command line names the lab's directory (dockerd's
    /// containerd and shims), by pid.
    fn leftovers(&self) -> Vec<u32> {
        let needle = self.dir.path().display().to_string();
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
            })
            .collect()
    }
}

impl Drop for DockerLab {
    fn drop(&mut self) {
        sh(&format!(
            "docker -H {} rm -f ctnl-web ctnl-client",
            self.sock()
        ));
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(mut d) = self.dockerd.take() {
            // SIGTERM: dockerd stops its containers and its containerd.
            sh(&format!("kill -TERM {}", d.id()));
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && d.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        for pid in self.leftovers() {
            sh(&format!("kill -9 {pid}"));
        }
        self.teardown_namespaces();
        let fixed = self.host.restore(self.dir.path());
        if !fixed.is_empty() {
            eprintln!("restored on the host: {}", fixed.join(", "));
        }
    }
}

fn query_csv(args: &[&str]) -> String {
    let out = capsnap(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn docker_containers_are_named_captured_and_natted_lab() {
    if let Some(why) = lab_missing() {
        eprintln!("SKIPPED: {why}: the docker lab needs root, dockerd and network namespaces");
        return;
    }
    let mut lab = DockerLab::start();
    let d = lab.dir.path().to_owned();
    // The outside world's server.
    let www = d.join("outside-www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "outside\n").unwrap();
    let www = www.display().to_string();
    lab.spawn(
        OUTSIDE,
        &[
            "python3",
            "-m",
            "http.server",
            "8080",
            "--bind",
            OUTSIDE_IP,
            "--directory",
            &www,
        ],
    );
    // An image of busybox-static alone.
    let img = d.join("image");
    std::fs::create_dir_all(img.join("bin")).unwrap();
    std::fs::create_dir_all(img.join("www")).unwrap();
    std::fs::copy("/bin/busybox", img.join("bin/busybox")).unwrap();
    std::fs::write(img.join("www/index.html"), "ctnl-web\n").unwrap();
    must(&format!(
        "tar -C {} -c . | docker -H {} import - ctnl-busybox:lab",
        img.display(),
        lab.sock()
    ));
    lab.docker("run -d --name ctnl-web ctnl-busybox:lab /bin/busybox httpd -f -p 8080 -h /www");
    lab.docker(&format!(
        "run -d --name ctnl-client ctnl-busybox:lab /bin/busybox sh -c \
         'while true; do /bin/busybox wget -q -O /dev/null http://{OUTSIDE_IP}:8080/; sleep 0.3; done'"
    ));
    let ip_of = |name: &str| {
        lab.docker(&format!(
            "inspect -f '{{{{range .NetworkSettings.Networks}}}}{{{{.IPAddress}}}}{{{{end}}}}' {name}"
        ))
        .trim()
        .to_owned()
    };
    let (web_ip, client_ip) = (ip_of("ctnl-web"), ip_of("ctnl-client"));
    assert!(web_ip.starts_with("172."), "{web_ip}");
    // The node fetches from the container on its bridge address.
    let fetch = format!(
        "while true; do busybox wget -q -O /dev/null http://{web_ip}:8080/; sleep 0.3; done"
    );
    lab.spawn(NODE, &["sh", "-c", &fetch]);
    std::thread::sleep(Duration::from_millis(1500));

    let bundle = d.join("docker.capsnap");
    let collect = Command::new("ip")
        .args(["netns", "exec", NODE])
        .arg(env!("CARGO_BIN_EXE_capsnap"))
        .args(["collect", "--duration", "3s", "--no-ebpf"])
        .args(["--netns", "ctnl-web", "--netns", "ctnl-client", "-o"])
        .arg(&bundle)
        .env("DOCKER_HOST", lab.sock())
        .output()
        .unwrap();
    assert!(
        collect.status.success(),
        "collect failed: {}",
        String::from_utf8_lossy(&collect.stderr)
    );
    let b = bundle.display().to_string();
    let q = |sql: &str| query_csv(&["query", "--format", "csv", &b, sql]);

    // The namespaces are named after their containers, in the manifest
    // and back out of the bundle.
    let labels = q("select netns, container_names from netns order by netns");
    assert!(
        labels.contains("container/ctnl-client,ctnl-client")
            && labels.contains("container/ctnl-web,ctnl-web"),
        "{labels}"
    );
    assert!(!labels.contains("netns-"), "{labels}");
    // Capture points: the container's capture is named after it and holds
    // its own packets (the node's fetches to it, its answers).
    let web_dir = formats::bundle::dir_name("container/ctnl-web");
    let pcap = unpack_member(&bundle, &format!("netns/{web_dir}/packets.pcapng"), &d);
    let in_pcap = query_csv(&[
        "query",
        "--format",
        "csv",
        &pcap.display().to_string(),
        &format!(
            "select distinct netns, src_ip, dst_port from packets \
             where dst_ip = '{web_ip}' and dst_port = 8080 and syn"
        ),
    ]);
    assert!(
        in_pcap.contains(&format!("container/ctnl-web,{NODE_IP},8080"))
            || in_pcap.contains("container/ctnl-web,172."),
        "the container's capture lacks the node's connections to it:\n{in_pcap}"
    );
    let per_point = q(&format!(
        "select capture, netns, count(*) > 0 from packets \
         where (src_ip = '{client_ip}' or dst_ip = '{client_ip}') group by capture, netns order by capture"
    ));
    assert!(
        per_point.contains("container/ctnl-client,container/ctnl-client,true"),
        "no capture point named after ctnl-client with its packets:\n{per_point}"
    );
    // docker0's NAT: the client's connections to the outside leave the
    // node masqueraded to its address.
    let nat = q(&format!(
        "select count(*) > 0 from conntrack where netns = 'host' and nat \
         and orig_src = '{client_ip}' and orig_dst = '{OUTSIDE_IP}' and orig_dport = 8080 \
         and reply_src = '{OUTSIDE_IP}' and reply_dst = '{NODE_IP}'"
    ));
    assert!(nat.ends_with("true\n"), "no docker0 NAT entry:\n{nat}");
    // The label in the tables read from the container's namespace.
    let socks = q("select netns, state from inet_sockets \
         where netns = 'container/ctnl-web' and local_port = 8080 and state = 'LISTEN'");
    assert!(
        socks.contains("container/ctnl-web,LISTEN"),
        "ctnl-web's listener by its label:\n{socks}"
    );
    let procs =
        q("select distinct netns from processes where container_id is not null order by netns");
    assert!(
        procs.contains("container/ctnl-web") && procs.contains("container/ctnl-client"),
        "the containers' processes by their namespace's label:\n{procs}"
    );
}

/// Extracts one member of a bundle into `dir` and returns its path.
fn unpack_member(bundle: &Path, member: &str, dir: &Path) -> PathBuf {
    let x = dir.join("x");
    std::fs::create_dir_all(&x).unwrap();
    must(&format!(
        "tar --zstd -xf {} -C {} '{member}'",
        bundle.display(),
        x.display()
    ));
    x.join(member)
}
