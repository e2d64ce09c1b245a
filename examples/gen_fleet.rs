//! Writes a fleet of node bundles, as `capsnap collect` writes them, for
//! measuring the fleet workflow without a fleet (bench/fleet.sh) and for
//! the fleet tests.
//!
//! Each node of a pool spread over three zones gets a host namespace and
//! three pods, each with its /proc/net tables (listeners, established
//! connections, TIME_WAIT), sockstat, snmp and netstat counters,
//! nf_conntrack statistics per CPU, a `conntrack -L` dump and sysctls; the
//! node has processes with their fds, eBPF events (TCP state changes,
//! connects, retransmits), kernel and journal lines, and a little traffic
//! in a pcapng capture (a few HTTP-like connections, with nanosecond
//! timestamps). Collections start on two consecutive days.
//!
//! Faults are planted by node number, so a fleet query finds them:
//! - every 10th node of zone b: the conntrack table full (count at
//!   nf_conntrack_max, insert_failed and drop counters, "table full,
//!   dropping packet" in the kernel log): `conntrack-full`;
//! - zone c: TIME_WAIT piling up (thousands of sockets);
//! - node 7 and every 40th after it: a process leaking sockets (fds that
//!   no /proc/net table knows, sockstat alloc far above inuse):
//!   `socket-leak`;
//! - node 11 and every 25th after it: 8% of TCP segments retransmitted:
//!   `retransmission-storm`;
//! - node 5 and every 50th after it: connects ending SYN_SENT -> CLOSE
//!   after SYN retransmits: `connect-timeout`;
//! - node 13 and every 66th after it: a `runc` stuck for minutes and
//!   kubelet's PLEG lines: `runtime-hang`.
//!
//! cargo run --example gen_fleet -- OUT_DIR [NODES] [SCALE]
//!
//! NODES defaults to 200; SCALE (default 1) multiplies the sockets,
//! conntrack entries and packets of every node.

use capture::{FORMAT_VERSION, Manifest};
use formats::bundle::{Namespace, SourceReport, assign_dirs};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Small deterministic generator (xorshift64*), so every run writes the
/// same fleet.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// 2026-11-21T08:00:00Z.
const DAY0_NS: u64 = 1_795_248_000_000_000_000;
const DAY_NS: u64 = 86_400_000_000_000;
/// The node's monotonic clock at the start of the collection (eBPF
/// timestamps are monotonic; clock.json maps them to wall time).
const MONO0_NS: u64 = 3_600_000_000_000;
const WINDOW_NS: u64 = 5_000_000_000;

/// One node's plan.
struct Node {
    index: usize,
    host: String,
    zone: char,
    started_ns: u64,
    scale: u64,
    rng: Rng,
    conntrack_full: bool,
    time_wait: bool,
    socket_leak: bool,
    retrans_storm: bool,
    connect_timeout: bool,
    runtime_hang: bool,
}

impl Node {
    fn new(index: usize, scale: u64) -> Node {
        let zone = ['a', 'b', 'c'][index % 3];
        Node {
            index,
            host: format!("pool1-{zone}-{index:04}"),
            zone,
            started_ns: DAY0_NS + (index as u64 % 2) * DAY_NS + index as u64 * 7_000_000_123,
            scale,
            rng: Rng(0x9e37_79b9_7f4a_7c15 ^ (index as u64 + 1).wrapping_mul(0x1000_0000_01b3)),
            conntrack_full: zone == 'b' && index % 10 == 1,
            time_wait: zone == 'c',
            socket_leak: index % 40 == 7,
            retrans_storm: index % 25 == 11,
            connect_timeout: index % 50 == 5,
            runtime_hang: index % 66 == 13,
        }
    }

    fn node_ip(&self) -> [u8; 4] {
        [
            10,
            0,
            (self.index / 250) as u8,
            (self.index % 250 + 2) as u8,
        ]
    }

    fn pod_ip(&self, pod: usize) -> [u8; 4] {
        [10, 244, (self.index % 250) as u8, (pod + 2) as u8]
    }
}

fn ip(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

/// /proc/net/tcp's address form: the IPv4 address as a little-endian hex
/// word, then the port.
fn proc_addr(a: [u8; 4], port: u16) -> String {
    format!("{:08X}:{port:04X}", u32::from_le_bytes(a))
}

const TCP_HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     \n";

/// A namespace's TCP table: listeners, established connections and
/// TIME_WAIT sockets. Returns the table, the socket inodes (for fds), and
/// the (inuse, tw) counts.
fn tcp_table(
    n: &mut Node,
    local: [u8; 4],
    inode0: u64,
    listen: &[u16],
) -> (String, Vec<u64>, u64, u64) {
    let mut out = String::from(TCP_HEADER);
    let mut inodes = Vec::new();
    let mut sl = 0;
    let mut inuse = 0;
    let mut tw = 0;
    let mut line = |out: &mut String,
                    local: String,
                    remote: String,
                    st: u8,
                    inode: u64,
                    timer: &str| {
        let _ = writeln!(
            out,
            "{sl:4}: {local} {remote} {st:02X} 00000000:00000000 {timer} 00000000     0        0 {inode} 1 0000000000000000 20 4 30 10 -1"
        );
        sl += 1;
    };
    for (i, port) in listen.iter().enumerate() {
        let inode = inode0 + i as u64;
        line(
            &mut out,
            proc_addr([0, 0, 0, 0], *port),
            proc_addr([0, 0, 0, 0], 0),
            0x0A,
            inode,
            "00:00000000",
        );
        inodes.push(inode);
        inuse += 1;
    }
    let established = (20 + n.rng.below(40)) * n.scale;
    for i in 0..established {
        let inode = inode0 + 100 + i;
        let peer = [10, 0, n.rng.below(4) as u8, 2 + n.rng.below(200) as u8];
        let lport = 32768 + n.rng.below(28000) as u16;
        line(
            &mut out,
            proc_addr(local, lport),
            proc_addr(peer, [443, 8080, 6443][i as usize % 3]),
            0x01,
            inode,
            "02:000000C8",
        );
        inodes.push(inode);
        inuse += 1;
    }
    let time_wait = if n.time_wait {
        3000 + n.rng.below(3000)
    } else {
        20 + n.rng.below(180)
    } * n.scale;
    for _ in 0..time_wait {
        let peer = [10, 0, n.rng.below(4) as u8, 2 + n.rng.below(200) as u8];
        let lport = 32768 + n.rng.below(28000) as u16;
        line(
            &mut out,
            proc_addr(local, lport),
            proc_addr(peer, 8080),
            0x06,
            0,
            "03:00001770",
        );
        tw += 1;
    }
    (out, inodes, inuse, tw)
}

fn sysctls(n: &Node, max: u64, count: u64) -> String {
    format!(
        "net.ipv4.tcp_max_tw_buckets = 262144\nnet.ipv4.tcp_fin_timeout = 60\nnet.ipv4.tcp_tw_reuse = 2\n\
         net.ipv4.tcp_syn_retries = 6\nnet.ipv4.ip_local_port_range = 32768 60999\nnet.ipv4.ip_forward = 1\n\
         net.ipv4.tcp_mem = 188319 251092 376638\nnet.core.somaxconn = 4096\n\
         net.netfilter.nf_conntrack_max = {max}\nnet.netfilter.nf_conntrack_count = {count}\n\
         net.netfilter.nf_conntrack_buckets = {}\nnet.netfilter.nf_conntrack_tcp_be_liberal = 0\n\
         net.netfilter.nf_conntrack_tcp_timeout_time_wait = 120\n# zone {}\n",
        max / 4,
        n.zone
    )
}

/// `conntrack -L -o extended` lines and the per-CPU statistics.
fn conntrack(n: &mut Node, entries: u64, local: [u8; 4]) -> String {
    let mut out = String::new();
    for i in 0..entries {
        let peer = [10, 0, n.rng.below(4) as u8, 2 + n.rng.below(200) as u8];
        let sport = 32768 + (i % 28000) as u16;
        let (state, flags) = match n.rng.below(10) {
            0..=5 => ("ESTABLISHED", "[ASSURED] "),
            6..=8 => ("TIME_WAIT", "[ASSURED] "),
            _ => ("SYN_SENT", "[UNREPLIED] "),
        };
        let _ = writeln!(
            out,
            "ipv4     2 tcp      6 {} {state} src={} dst={} sport={sport} dport=8080 src={} dst={} sport=8080 dport={sport} {flags}mark=0 use=1",
            60 + n.rng.below(400000),
            ip(local),
            ip(peer),
            ip(peer),
            ip(local),
        );
    }
    out
}

fn nf_conntrack_stat(
    entries: u64,
    insert_failed: u64,
    drop: u64,
    early_drop: u64,
    invalid: u64,
) -> String {
    let mut out = String::from(
        "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n",
    );
    for cpu in 0..2u64 {
        let half = |v: u64| if cpu == 0 { v / 2 } else { v - v / 2 };
        let _ = writeln!(
            out,
            "{entries:08x}  00000000 00000000 00000000 {:08x} 00000000 00000000 00000000 00000000 {:08x} {:08x} {:08x} 00000000  00000000 00000000 00000000 00000000",
            half(invalid),
            half(insert_failed),
            half(drop),
            half(early_drop)
        );
    }
    out
}

fn snmp(out_segs: u64, retrans: u64) -> String {
    format!(
        "Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams InUnknownProtos InDiscards InDelivers OutRequests OutDiscards OutNoRoutes ReasmTimeout ReasmReqds ReasmOKs ReasmFails FragOKs FragFails FragCreates OutTransmits\n\
         Ip: 1 64 {0} 0 0 0 0 0 {0} {1} 0 0 0 0 0 0 0 0 0 {1}\n\
         Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n\
         Tcp: 1 200 120000 -1 {2} {3} 3 1 40 {0} {1} {4} 0 12 0\n\
         Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n\
         Udp: 1200 3 0 1210 0 0 0 0 0\n",
        out_segs + out_segs / 9,
        out_segs,
        out_segs / 300,
        out_segs / 500,
        retrans
    )
}

fn netstat(tw: u64) -> String {
    format!(
        "TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts PruneCalled TW TWRecycled TWKilled ListenOverflows ListenDrops TCPTimeouts\n\
         TcpExt: 0 0 0 0 0 {tw} 0 0 0 0 4\n"
    )
}

fn dev(n: &mut Node, names: &[&str]) -> String {
    let mut out = String::from(
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n",
    );
    for name in names {
        let (rb, rp, tb, tp) = (
            n.rng.below(1 << 32),
            n.rng.below(1 << 22),
            n.rng.below(1 << 32),
            n.rng.below(1 << 22),
        );
        let _ = writeln!(
            out,
            "{name:>6}: {rb} {rp} 0 {} 0 0 0 0 {tb} {tp} 0 0 0 0 0 0",
            n.rng.below(3)
        );
    }
    out
}

/// A capture of a few HTTP-like connections from the node to its pods.
fn packets(n: &mut Node, path: &Path) -> std::io::Result<()> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut w = formats::pcapng::Writer::new(file, "capsnap gen_fleet", Some("Linux"))?;
    let eth0 = w.interface(1, 128, "eth0", "netns=host")?;
    let mut ts = n.started_ns + 1_000_000;
    let flows = 8 * n.scale;
    let client = n.node_ip();
    for f in 0..flows {
        let server = n.pod_ip((f % 3) as usize);
        let sport = 40000 + (f % 20000) as u16;
        let mut seq_c = n.rng.next() as u32;
        let mut seq_s = n.rng.next() as u32;
        let exchange: [(bool, u8, usize); 7] = [
            (true, 0x02, 0),    // SYN
            (false, 0x12, 0),   // SYN-ACK
            (true, 0x10, 0),    // ACK
            (true, 0x18, 180),  // request
            (false, 0x18, 900), // response
            (true, 0x11, 0),    // FIN-ACK
            (false, 0x11, 0),   // FIN-ACK
        ];
        for (from_client, flags, payload) in exchange {
            ts += 20_000 + n.rng.below(400_000);
            let (src, dst, sp, dp, seq, ack) = if from_client {
                (client, server, sport, 8080, seq_c, seq_s)
            } else {
                (server, client, 8080, sport, seq_s, seq_c)
            };
            let frame = tcp_frame(src, dst, sp, dp, seq, ack, flags, payload);
            let keep = frame.len().min(128);
            w.packet(
                eth0,
                ts,
                &frame[..keep],
                frame.len() as u32,
                formats::pcapng::EpbFlags(0),
            )?;
            let advance = payload as u32 + u32::from(flags & 0x03 != 0);
            if from_client {
                seq_c = seq_c.wrapping_add(advance);
            } else {
                seq_s = seq_s.wrapping_add(advance);
            }
        }
    }
    w.into_inner()?.flush()
}

#[allow(clippy::too_many_arguments)]
fn tcp_frame(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: usize,
) -> Vec<u8> {
    let mut f = Vec::with_capacity(54 + payload);
    f.extend([0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let total = (40 + payload) as u16;
    f.extend([0x45, 0]);
    f.extend(total.to_be_bytes());
    f.extend([0, 1, 0x40, 0, 64, 6, 0, 0]);
    f.extend(src);
    f.extend(dst);
    f.extend(sport.to_be_bytes());
    f.extend(dport.to_be_bytes());
    f.extend(seq.to_be_bytes());
    f.extend(ack.to_be_bytes());
    f.extend([0x50, flags]);
    f.extend(64240u16.to_be_bytes());
    f.extend([0, 0, 0, 0]);
    f.resize(54 + payload, 0x61);
    f
}

#[allow(clippy::too_many_arguments)]
fn process(
    pid: u32,
    ppid: u32,
    comm: &str,
    cmdline: &[&str],
    start_ns: u64,
    netns: u64,
    fds: u64,
    sockets: u64,
) -> String {
    let mut line = serde_json::json!({
        "pid": pid, "ppid": ppid, "comm": comm, "exe": format!("/usr/bin/{comm}"),
        "cmdline": cmdline, "uid": 0, "start_time_ns": start_ns, "netns_inode": netns,
        "mntns_inode": 4026531832u64, "cgroup": "0::/system.slice", "container_id": null,
        "pod_uid": null, "fd_count": fds, "socket_fd_count": sockets,
    })
    .to_string();
    line.push('\n');
    line
}

/// Writes node `n`'s staging directory and returns its manifest.
fn stage(n: &mut Node, dir: &Path) -> std::io::Result<Manifest> {
    let pods = ["pod/shop/web", "pod/shop/api", "pod/kube-system/coredns"];
    let mut namespaces = vec![Namespace {
        label: "host".into(),
        inode: 4026531840,
        path: "/proc/self/ns/net".into(),
        pids: vec![1],
        ..Namespace::default()
    }];
    for (i, p) in pods.iter().enumerate() {
        namespaces.push(Namespace {
            label: format!("{p}-{:04}", n.index),
            inode: 4026532200 + i as u64,
            path: format!("/proc/{}/ns/net", 2000 + i).into(),
            pids: vec![2000 + i as u32],
            pod_names: vec![format!("{}-{:04}", p.trim_start_matches("pod/"), n.index)],
            ..Namespace::default()
        });
    }
    assign_dirs(&mut namespaces);
    let mut sources = Vec::new();
    let write = |rel: &str, text: &str| -> std::io::Result<()> {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent"))?;
        std::fs::write(path, text)
    };
    let mut processes = String::new();
    let mut fds = String::from(formats::bundle::FDS_HEADER);
    for (i, ns) in namespaces.iter().enumerate() {
        let base = format!("netns/{}", ns.dir);
        let local = if i == 0 { n.node_ip() } else { n.pod_ip(i - 1) };
        let listen: &[u16] = if i == 0 { &[22, 10250, 9100] } else { &[8080] };
        let (tcp, inodes, inuse, tw) = tcp_table(n, local, 100_000 * (i as u64 + 1), listen);
        write(&format!("{base}/proc/net/tcp"), &tcp)?;
        write(&format!("{base}/proc/net/tcp6"), TCP_HEADER)?;
        let leaked = if n.socket_leak && i == 0 {
            3000 * n.scale
        } else {
            0
        };
        let alloc = inuse + tw + leaked + 3;
        write(
            &format!("{base}/proc/net/sockstat"),
            &format!(
                "sockets: used {}\nTCP: inuse {inuse} orphan 0 tw {tw} alloc {alloc} mem {}\nUDP: inuse 2 mem 1\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n",
                alloc + 10,
                alloc / 2 + 40
            ),
        )?;
        let out_segs = 200_000 + n.rng.below(800_000);
        let retrans = if n.retrans_storm && i == 0 {
            out_segs * 8 / 100
        } else {
            out_segs / 2000
        };
        write(&format!("{base}/proc/net/snmp"), &snmp(out_segs, retrans))?;
        write(&format!("{base}/proc/net/netstat"), &netstat(tw * 3))?;
        // nf_conntrack_max is the node's; the count is per namespace.
        let max = if n.conntrack_full { 32_768 } else { 262_144 };
        let entries = if i != 0 {
            0
        } else if n.conntrack_full {
            32_700
        } else {
            (200 + n.rng.below(1300)) * n.scale
        };
        let (insert_failed, drop) = if n.conntrack_full && i == 0 {
            (300 + n.rng.below(500), 2000 + n.rng.below(4000))
        } else {
            (0, 0)
        };
        write(
            &format!("{base}/proc/net/stat/nf_conntrack"),
            &nf_conntrack_stat(entries, insert_failed, drop, 0, n.rng.below(20)),
        )?;
        write(&format!("{base}/sysctls.txt"), &sysctls(n, max, entries))?;
        if i == 0 {
            write(
                &format!("{base}/conntrack.txt"),
                &conntrack(n, entries, local),
            )?;
        }
        let names: Vec<&str> = if i == 0 {
            vec!["lo", "eth0", "cni0"]
        } else {
            vec!["lo", "eth0"]
        };
        write(&format!("{base}/proc/net/dev"), &dev(n, &names))?;
        write(
            &format!("{base}/proc/net/unix"),
            "Num       RefCount Protocol Flags    Type St Inode Path\n",
        )?;
        for (source, file) in [
            ("proc_net_tcp", "proc/net/tcp"),
            ("proc_net_tcp6", "proc/net/tcp6"),
            ("proc_net_sockstat", "proc/net/sockstat"),
            ("proc_net_snmp", "proc/net/snmp"),
            ("proc_net_netstat", "proc/net/netstat"),
            ("proc_net_stat_nf_conntrack", "proc/net/stat/nf_conntrack"),
            ("sysctls", "sysctls.txt"),
            ("proc_net_dev", "proc/net/dev"),
            ("proc_net_unix", "proc/net/unix"),
        ] {
            let mut s = SourceReport::new(source, Some(ns.label.clone()));
            s.files.push(format!("{base}/{file}"));
            sources.push(s);
        }
        // One process per namespace holds its sockets.
        let (pid, comm) = if i == 0 {
            (900, "kubelet")
        } else {
            (2000 + i as u32, ["web", "api", "coredns"][i - 1])
        };
        processes.push_str(&process(
            pid,
            1,
            comm,
            &[comm],
            n.started_ns - 86_400_000_000_000,
            ns.inode,
            inodes.len() as u64 + 3,
            inodes.len() as u64,
        ));
        for (fd, inode) in inodes.iter().enumerate() {
            let _ = writeln!(fds, "{pid}\t{}\tsocket:[{inode}]", fd + 3);
        }
    }
    {
        let mut s = SourceReport::new("tool:conntrack -L -o extended", Some("host".into()));
        s.files
            .push(format!("netns/{}/conntrack.txt", namespaces[0].dir));
        sources.push(s);
    }
    processes.insert_str(
        0,
        &process(
            1,
            0,
            "systemd",
            &["/sbin/init"],
            n.started_ns - 90_000_000_000_000,
            4026531840,
            80,
            12,
        ),
    );
    if n.socket_leak {
        let pid = 4242;
        processes.push_str(&process(
            pid,
            1,
            "leaky-agent",
            &["leaky-agent", "--poll", "1s"],
            n.started_ns - 3_600_000_000_000,
            4026531840,
            3010 * n.scale,
            3000 * n.scale,
        ));
        for fd in 0..3000 * n.scale {
            let _ = writeln!(fds, "{pid}\t{}\tsocket:[{}]", fd + 10, 9_000_000 + fd);
        }
    }
    if n.runtime_hang {
        processes.push_str(&process(
            5150,
            5100,
            "runc",
            &[
                "runc",
                "--systemd-cgroup",
                "create",
                "--bundle",
                "/run/containerd/x",
            ],
            n.started_ns - 240_000_000_000,
            4026531840,
            6,
            1,
        ));
    }
    write("processes.jsonl", &processes)?;
    write("fds.tsv", &fds)?;
    let mut s = SourceReport::new("processes", None);
    s.files = vec!["processes.jsonl".into(), "fds.tsv".into()];
    sources.push(s);

    // eBPF events: connections opening and closing, and the faults'.
    let mut events = String::new();
    // Every record starts its line with `{"event":"` (formats::events::
    // RECORD_START), as the probes print it; serde_json orders keys by name.
    let ev = |events: &mut String, mut v: serde_json::Value| {
        let event = v
            .as_object_mut()
            .and_then(|o| o.remove("event"))
            .and_then(|e| e.as_str().map(str::to_owned))
            .unwrap_or_default();
        let rest = v.to_string();
        let rest = rest.trim_start_matches('{');
        let sep = if rest == "}" { "" } else { "," };
        let _ = writeln!(events, "{{\"event\":\"{event}\"{sep}{rest}");
    };
    ev(
        &mut events,
        serde_json::json!({"event":"start","ts_ns":MONO0_NS,"realtime_ns":n.started_ns,"monotonic_ns":MONO0_NS,"boottime_ns":MONO0_NS,"schema":1,"capsnap_pid":4000}),
    );
    let mut t = MONO0_NS;
    for c in 0..30 * n.scale {
        t += 1_000_000 + n.rng.below(100_000_000);
        let sport = 40000 + c as u16;
        let (saddr, daddr) = (ip(n.node_ip()), ip(n.pod_ip((c % 3) as usize)));
        for (old, new) in [
            ("CLOSE", "SYN_SENT"),
            ("SYN_SENT", "ESTABLISHED"),
            ("ESTABLISHED", "FIN_WAIT1"),
            ("FIN_WAIT1", "FIN_WAIT2"),
            ("FIN_WAIT2", "CLOSE"),
        ] {
            t += n.rng.below(2_000_000);
            ev(
                &mut events,
                serde_json::json!({"event":"tcp_state","ts_ns":t,"pid":900,"netns":4026531840u64,"family":"ipv4","saddr":saddr,"sport":sport,"daddr":daddr,"dport":8080,"oldstate":old,"newstate":new,"sk":format!("ffff8882{c:08x}"),"comm":"kubelet"}),
            );
        }
    }
    if n.connect_timeout {
        for k in 0..3u16 {
            let sport = 51000 + k;
            t += 10_000_000;
            let (saddr, daddr) = (ip(n.pod_ip(0)), "10.96.0.10".to_string());
            ev(
                &mut events,
                serde_json::json!({"event":"tcp_state","ts_ns":t,"pid":2001,"netns":4026532200u64,"family":"ipv4","saddr":saddr,"sport":0,"daddr":daddr,"dport":5432,"oldstate":"CLOSE","newstate":"SYN_SENT","sk":"ffff8882deadbeef","comm":"web"}),
            );
            for r in 0..3u64 {
                ev(
                    &mut events,
                    serde_json::json!({"event":"retransmit","ts_ns":t + (1 << r) * 1_000_000_000,"netns":4026532200u64,"family":"ipv4","saddr":saddr,"sport":sport,"daddr":daddr,"dport":5432,"state":"SYN_SENT","sk":"ffff8882deadbeef"}),
                );
            }
            ev(
                &mut events,
                serde_json::json!({"event":"tcp_state","ts_ns":t + 4_500_000_000u64,"pid":2001,"netns":4026532200u64,"family":"ipv4","saddr":saddr,"sport":sport,"daddr":daddr,"dport":5432,"oldstate":"SYN_SENT","newstate":"CLOSE","sk":"ffff8882deadbeef","comm":"web"}),
            );
        }
    }
    ev(
        &mut events,
        serde_json::json!({"event":"stop","ts_ns":MONO0_NS + WINDOW_NS}),
    );
    write("ebpf/events.jsonl", &events)?;
    write(
        "ebpf/clock.json",
        &serde_json::json!({"ts_ns":MONO0_NS,"realtime_ns":n.started_ns,"monotonic_ns":MONO0_NS,"boottime_ns":MONO0_NS,"ts_clock":"either","wall_clock":"realtime_ns + (event ts_ns - ts_ns)"}).to_string(),
    )?;
    let mut s = SourceReport::new("ebpf", None);
    s.files = vec!["ebpf/events.jsonl".into(), "ebpf/clock.json".into()];
    sources.push(s);

    // Logs.
    let stamp = |ns: u64| {
        let t = formats::bundle::rfc3339(ns);
        format!("{},{}+00:00", &t[..19], &t[20..26])
    };
    let mut dmesg = String::new();
    let _ = writeln!(
        dmesg,
        "kern  :info  : {} eth0: link becomes ready",
        stamp(n.started_ns - 80_000_000_000_000)
    );
    if n.conntrack_full {
        for k in 0..20 {
            let _ = writeln!(
                dmesg,
                "kern  :warn  : {} nf_conntrack: nf_conntrack: table full, dropping packet",
                stamp(n.started_ns - 60_000_000_000 + k * 1_000_000_000)
            );
        }
    }
    if n.socket_leak {
        let _ = writeln!(
            dmesg,
            "kern  :warn  : {} TCP: out of memory -- consider tuning tcp_mem",
            stamp(n.started_ns - 5_000_000_000)
        );
    }
    write("dmesg.txt", &dmesg)?;
    let mut s = SourceReport::new("kernel_log", None);
    s.files = vec!["dmesg.txt".into()];
    sources.push(s);
    if n.runtime_hang {
        let mut lines = String::new();
        let hms = |ns: u64| formats::bundle::rfc3339(ns)[11..19].to_owned();
        for k in 0..5u64 {
            let at = n.started_ns - 200_000_000_000 + k * 30_000_000_000;
            let day = 21 + n.index % 2;
            let _ = writeln!(
                lines,
                "Nov {day} {} {} kubelet[900]: E1121 {}.000000     900 kubelet.go:2034] \"Skipping pod synchronization\" err=\"PLEG is not healthy: pleg was last seen active 3m0s ago; threshold is 3m0s\"",
                hms(at),
                n.host,
                hms(at)
            );
        }
        write("logs/messages", &lines)?;
        let mut s = SourceReport::new("log_files", None);
        s.files = vec!["logs/messages".into()];
        sources.push(s);
    }

    packets(
        n,
        &dir.join(format!("netns/{}/packets.pcapng", namespaces[0].dir)),
    )?;
    let mut s = SourceReport::new("packets", Some("host".into()));
    s.files = vec![format!("netns/{}/packets.pcapng", namespaces[0].dir)];
    sources.push(s);
    sources.push(SourceReport::new("journal", None).with(
        formats::bundle::Status::Skipped,
        "tool missing: journalctl is not installed",
    ));

    Ok(Manifest {
        format_version: FORMAT_VERSION,
        capsnap_version: env!("CARGO_PKG_VERSION").into(),
        host: n.host.clone(),
        kernel: "Linux 6.8.0-45-generic x86_64".into(),
        boot_id: format!("00000000-0000-4000-8000-{:012x}", n.index),
        // The generated kernel log has times of its own: no boot time.
        boot_ns: 0,
        started: formats::bundle::rfc3339(n.started_ns),
        finished: formats::bundle::rfc3339(n.started_ns + WINDOW_NS),
        started_ns: n.started_ns,
        finished_ns: n.started_ns + WINDOW_NS,
        // No `window-open/` copies are generated: 0 says so (counters'
        // value_open and delta stay null, as in bundles made before them).
        window_open_ns: 0,
        window_close_ns: 0,
        root: true,
        options: serde_json::json!({"generated_by": "examples/gen_fleet.rs"}),
        namespaces,
        sources,
        members: Vec::new(),
        trigger: None,
        ebpf: None,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first().map(PathBuf::from) else {
        eprintln!("usage: gen_fleet OUT_DIR [NODES] [SCALE]");
        std::process::exit(2);
    };
    let nodes: usize = args.get(1).map_or(Ok(200), |s| s.parse())?;
    let scale: u64 = args.get(2).map_or(Ok(1), |s| s.parse())?;
    std::fs::create_dir_all(&out)?;
    let mut bytes = 0;
    for index in 0..nodes {
        let mut node = Node::new(index, scale);
        let staging = out.join(format!(".staging-{index}"));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging)?;
        let mut manifest = stage(&mut node, &staging)?;
        manifest.members = capture::bundle_members(&staging)?;
        let name = formats::bundle::default_name(&node.host, node.started_ns);
        let file = std::fs::File::create(out.join(name))?;
        bytes += capture::write_bundle(&staging, &manifest, file)?;
        std::fs::remove_dir_all(&staging)?;
    }
    eprintln!(
        "gen_fleet: {nodes} bundles, {bytes} bytes in {}",
        out.display()
    );
    Ok(())
}
