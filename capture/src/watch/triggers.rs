//! The triggers of `capsnap watch`: cheap live signals of the detections
//! in `queries/`, each fired with the evidence that made it fire.
//!
//! | trigger | signal | detection |
//! |---|---|---|
//! | `host-only-rst` | the node sends a RST (eBPF `reset_sent` with no socket, or an outgoing RST at a capture point) on a flow its conntrack NATs, and conntrack did not see the RST close it | `host-only-rst` |
//! | `connect-timeout` | a socket goes SYN_SENT -> CLOSE after SYN retransmits (eBPF) | `connect-timeout` |
//! | `unix-socket-replaced` | a listening unix socket's path is re-bound while the listener lives (its path now leads to another file, or a second listener holds it), or an exec of a `--watch-exec` name | `unix-socket-replaced` |
//! | `log` | a kernel or journal line: "TCP: out of memory", "table full", "time wait bucket table overflow", "PLEG is not healthy" | `tcp-memory-pressure`, `conntrack-full`, `runtime-hang` |
//! | `counter` | a rise of TcpExt ListenOverflows, TCPTimeWaitOverflow, IPReversePathFilter, or conntrack drop / insert_failed, read every second | `conntrack-full` for conntrack's |
//! | `signal` | SIGUSR1 | |

use formats::bundle::Trigger;
use std::collections::HashMap;
use std::sync::mpsc::{Sender, SyncSender};

/// A kind of trigger, as `--trigger` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    HostOnlyRst,
    ConnectTimeout,
    UnixSocketReplaced,
    Log,
    Counter,
    Signal,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::HostOnlyRst,
        Kind::ConnectTimeout,
        Kind::UnixSocketReplaced,
        Kind::Log,
        Kind::Counter,
        Kind::Signal,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::HostOnlyRst => "host-only-rst",
            Kind::ConnectTimeout => "connect-timeout",
            Kind::UnixSocketReplaced => "unix-socket-replaced",
            Kind::Log => "log",
            Kind::Counter => "counter",
            Kind::Signal => "signal",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The detection the trigger stands for, when it is one.
    fn detection(self) -> Option<&'static str> {
        match self {
            Kind::HostOnlyRst | Kind::ConnectTimeout | Kind::UnixSocketReplaced => {
                Some(self.name())
            }
            Kind::Log | Kind::Counter | Kind::Signal => None,
        }
    }
}

/// A trigger that fired, before `watch` decides what to do with it.
pub fn fired(
    kind: Kind,
    detection: Option<&str>,
    netns: Option<&str>,
    evidence: Vec<String>,
) -> Trigger {
    let ts_ns = crate::sys::now_ns();
    Trigger {
        name: kind.name().to_owned(),
        detection: detection.or(kind.detection()).map(str::to_owned),
        ts_ns,
        time: formats::bundle::rfc3339(ts_ns),
        netns: netns.map(str::to_owned),
        evidence,
        keep_ms: 0,
        after_ms: 0,
    }
}

/// Log lines that fire, and the detection each stands for.
pub const LOG_LINES: &[(&str, Option<&str>)] = &[
    // net/ipv4/tcp.c tcp_out_of_resources (via tcp_check_oom).
    ("TCP: out of memory", Some("tcp-memory-pressure")),
    // net/netfilter/nf_conntrack_core.c: "nf_conntrack: table full, dropping packet".
    ("table full", Some("conntrack-full")),
    // net/ipv4/inet_timewait_sock.c (TCPTimeWaitOverflow).
    ("time wait bucket table overflow", None),
    // kubelet's pleg.go health check.
    ("PLEG is not healthy", Some("runtime-hang")),
];

/// The trigger a log line fires, if any (`source`: `kernel`, `journal`).
pub fn log_line(line: &str, source: &str) -> Option<Trigger> {
    let (_, detection) = LOG_LINES.iter().find(|(p, _)| line.contains(p))?;
    let line: String = line.trim().chars().take(300).collect();
    Some(fired(
        Kind::Log,
        *detection,
        None,
        vec![format!("{source} log: {line}")],
    ))
}

/// Counters whose rise fires, by nstat's name, and the detection each
/// stands for.
pub const COUNTERS: &[(&str, Option<&str>)] = &[
    ("TcpExtListenOverflows", None),
    ("TcpExtTCPTimeWaitOverflow", None),
    ("TcpExtIPReversePathFilter", None),
    ("nf_conntrackdrop", Some("conntrack-full")),
    ("nf_conntrackinsert_failed", Some("conntrack-full")),
];

/// Compares a namespace's counters with their last reading; the trigger
/// of the ones that rose.
#[derive(Debug, Default)]
pub struct CounterWatch {
    last: HashMap<String, i64>,
}

impl CounterWatch {
    /// Takes this second's values; the first reading only sets the base.
    pub fn update(&mut self, netns: &str, values: &[(String, i64)]) -> Option<Trigger> {
        let mut evidence = Vec::new();
        let mut detection = None;
        for (name, value) in values {
            let Some((_, det)) = COUNTERS.iter().find(|(n, _)| n == name) else {
                continue;
            };
            if let Some(before) = self.last.insert(name.clone(), *value)
                && *value > before
            {
                evidence.push(format!(
                    "{netns}: {name} +{} ({before} -> {value})",
                    value - before
                ));
                detection = detection.or(*det);
            }
        }
        (!evidence.is_empty()).then(|| fired(Kind::Counter, detection, Some(netns), evidence))
    }
}

/// A RST the node sent that may be host-only: to be checked against the
/// namespace's conntrack table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RstCandidate {
    /// Index of the namespace in the watch's list.
    pub ns: usize,
    pub src: String,
    pub sport: u16,
    pub dst: String,
    pub dport: u16,
    /// How it was seen.
    pub seen: String,
    /// When it was sent (wall-clock): the trigger's time.
    pub ts_ns: u64,
}

/// The host-only RST of `c`, if the conntrack entry `line` makes it one:
/// an entry whose reply tuple is the RST's flow (the node's NAT address
/// and port as its destination), rewritten by NAT, and not closed (a RST
/// that conntrack tracked, such as a container's own RST forwarded and
/// NATed, moves the entry to CLOSE: the node's own answer to a packet
/// conntrack found INVALID does not).
pub fn host_only_rst(c: &RstCandidate, line: &str, netns: &str) -> Option<Trigger> {
    let e = formats::parse_conntrack_entry(line).ok()?;
    let r = &e.reply;
    let ours = e.proto == "tcp"
        && r.dst == c.src
        && r.dport == Some(c.sport)
        && r.src == c.dst
        && r.sport == Some(c.dport);
    if !ours || !e.nat || e.state.as_deref() == Some("CLOSE") {
        return None;
    }
    let mut t = fired(
        Kind::HostOnlyRst,
        None,
        Some(netns),
        vec![
            format!(
                "{netns}: RST {}:{} -> {}:{} sent by the node ({})",
                c.src, c.sport, c.dst, c.dport, c.seen
            ),
            format!(
                "conntrack entry of the NATed flow, {} after the RST: {}",
                e.state.as_deref().unwrap_or("no state"),
                line.split_whitespace().collect::<Vec<_>>().join(" ")
            ),
        ],
    );
    t.ts_ns = c.ts_ns;
    t.time = formats::bundle::rfc3339(c.ts_ns);
    Some(t)
}

/// Follows eBPF records: SYN retransmits per socket until the socket
/// leaves SYN_SENT, a socket that goes to CLOSE after some, RSTs the node
/// sends without a socket, and execs of watched names.
pub struct EventWatch {
    pub kinds: Vec<Kind>,
    /// Namespace inode -> index in the watch's list, and label.
    pub namespaces: HashMap<u64, (usize, String)>,
    pub watch_exec: Vec<String>,
    pub fire: Sender<Trigger>,
    pub rst: SyncSender<RstCandidate>,
    /// SYN retransmits per socket still in SYN_SENT.
    syn_retries: HashMap<String, u32>,
    /// When each socket in SYN_SENT began its connect (CLOSE -> SYN_SENT):
    /// the fault's time, which --keep counts back from, is when the
    /// connect began, not when it gave up seconds later.
    connecting: HashMap<String, u64>,
}

/// Sockets followed at most: a connect storm must not grow the map.
const MAX_CONNECTING: usize = 65_536;

impl EventWatch {
    pub fn new(
        kinds: Vec<Kind>,
        namespaces: HashMap<u64, (usize, String)>,
        watch_exec: Vec<String>,
        fire: Sender<Trigger>,
        rst: SyncSender<RstCandidate>,
    ) -> EventWatch {
        EventWatch {
            kinds,
            namespaces,
            watch_exec,
            fire,
            rst,
            syn_retries: HashMap::new(),
            connecting: HashMap::new(),
        }
    }

    fn on(&self, k: Kind) -> bool {
        self.kinds.contains(&k)
    }

    /// Looks at one record of bpftrace's output, which happened at
    /// `ts_ns` (wall-clock time).
    pub fn record(&mut self, line: &[u8], ts_ns: u64) {
        let Some(kind) = formats::bpftrace::event_kind(line) else {
            return;
        };
        let wanted = match kind {
            "retransmit" | "tcp_state" => self.on(Kind::ConnectTimeout),
            "reset_sent" => self.on(Kind::HostOnlyRst),
            "exec" => self.on(Kind::UnixSocketReplaced) && !self.watch_exec.is_empty(),
            _ => false,
        };
        if !wanted {
            return;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
            return;
        };
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("");
        let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        // The probes see the whole node; a fault in a namespace the watch
        // does not capture would write a bundle without its packets.
        let Some(ns) = self.namespaces.get(&n("netns")) else {
            return;
        };
        let label = ns.1.clone();
        match kind {
            "retransmit" if s("state") == "SYN_SENT" => {
                if self.syn_retries.len() >= MAX_CONNECTING {
                    self.syn_retries.clear();
                }
                *self.syn_retries.entry(s("sk").to_owned()).or_default() += 1;
            }
            "tcp_state" if s("oldstate") == "CLOSE" && s("newstate") == "SYN_SENT" => {
                if self.connecting.len() >= MAX_CONNECTING {
                    self.connecting.clear();
                }
                self.connecting.insert(s("sk").to_owned(), ts_ns);
            }
            "tcp_state" if s("oldstate") == "SYN_SENT" => {
                let retries = self.syn_retries.remove(s("sk")).unwrap_or(0);
                let began = self.connecting.remove(s("sk"));
                if s("newstate") == "CLOSE" && retries > 0 {
                    let mut t = fired(
                        Kind::ConnectTimeout,
                        None,
                        Some(&label),
                        vec![format!(
                            "{label}: connect {}:{} -> {}:{} (pid {} {}) went SYN_SENT -> CLOSE after {retries} SYN retransmits",
                            s("saddr"),
                            n("sport"),
                            s("daddr"),
                            n("dport"),
                            n("pid"),
                            s("comm")
                        )],
                    );
                    if let Some(began) = began {
                        t.evidence.push(format!(
                            "the connect began at {}, {} ms before it gave up",
                            formats::bundle::rfc3339(began),
                            ts_ns.saturating_sub(began) / 1_000_000
                        ));
                        t.ts_ns = began;
                        t.time = formats::bundle::rfc3339(began);
                    }
                    let _ = self.fire.send(t);
                }
            }
            // tcp_v4_send_reset with no socket: the node itself answers.
            "reset_sent" if s("sk").trim_start_matches('0').is_empty() => {
                let _ = self.rst.try_send(RstCandidate {
                    ns: ns.0,
                    src: s("saddr").to_owned(),
                    sport: n("sport") as u16,
                    dst: s("daddr").to_owned(),
                    dport: n("dport") as u16,
                    seen: format!("eBPF reset_sent, no socket, reason {}", s("reason_name")),
                    ts_ns,
                });
            }
            "exec" => {
                let file = s("filename");
                let base = file.rsplit('/').next().unwrap_or(file);
                if self.watch_exec.iter().any(|w| w == base || w == s("comm")) {
                    let argv: Vec<&str> = v
                        .get("argv")
                        .and_then(|a| a.as_array())
                        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                        .unwrap_or_default();
                    let _ = self.fire.send(fired(
                        Kind::UnixSocketReplaced,
                        None,
                        Some(&label),
                        vec![format!(
                            "{label}: exec of watched {base}: {} by pid {} (parent {} {})",
                            argv.join(" "),
                            n("pid"),
                            n("ppid"),
                            s("pcomm")
                        )],
                    ));
                }
            }
            _ => {}
        }
    }
}

/// Follows a namespace's listening unix sockets from one reading to the
/// next.
#[derive(Debug, Default)]
pub struct UnixWatch {
    /// Listener inode -> (path, whether its path still led to it).
    last: Option<HashMap<u64, (String, Option<bool>)>>,
}

impl UnixWatch {
    /// Takes this reading: (inode, path, replaced) of every listener bound
    /// to a path. Fires when a listener whose path led to it no longer
    /// does, or when a path gets a second listener while its first lives.
    pub fn update(&mut self, netns: &str, now: &[(u64, String, Option<bool>)]) -> Option<Trigger> {
        let mut evidence = Vec::new();
        if let Some(last) = &self.last {
            for (inode, path, replaced) in now {
                match last.get(inode) {
                    Some((_, Some(false))) if *replaced == Some(true) => evidence.push(format!(
                        "{netns}: listening unix socket {path} (inode {inode}) is no longer what its path leads to: re-bound while it listens"
                    )),
                    None => {
                        let first = last
                            .iter()
                            .find(|(i, (p, _))| p == path && now.iter().any(|(n, ..)| n == *i));
                        if let Some((old, _)) = first {
                            evidence.push(format!(
                                "{netns}: {path} has a second listener (inode {inode}) while its first (inode {old}) lives"
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
        self.last = Some(now.iter().map(|(i, p, r)| (*i, (p.clone(), *r))).collect());
        (!evidence.is_empty()).then(|| fired(Kind::UnixSocketReplaced, None, Some(netns), evidence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn trigger_names_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.name()), Some(k));
        }
        assert_eq!(Kind::parse("nope"), None);
    }

    #[test]
    fn log_lines_fire_with_their_detection() {
        let t = log_line(
            "nf_conntrack: nf_conntrack: table full, dropping packet",
            "kernel",
        )
        .unwrap();
        assert_eq!(
            (t.name.as_str(), t.detection.as_deref()),
            ("log", Some("conntrack-full"))
        );
        assert!(t.evidence[0].starts_with("kernel log: nf_conntrack"));
        assert!(log_line("TCP: out of memory -- consider tuning tcp_mem", "kernel").is_some());
        assert!(
            log_line(
                "kubelet: PLEG is not healthy: pleg was last seen active",
                "journal"
            )
            .is_some()
        );
        assert!(log_line("eth0: link up", "kernel").is_none());
    }

    #[test]
    fn counters_fire_on_a_rise_only() {
        let mut w = CounterWatch::default();
        let v = |lo: i64, ins: i64| {
            vec![
                ("TcpExtListenOverflows".to_string(), lo),
                ("nf_conntrackinsert_failed".to_string(), ins),
                ("TcpExtTCPTimeouts".to_string(), 99 + lo),
            ]
        };
        assert!(
            w.update("host", &v(5, 0)).is_none(),
            "the first reading is the base"
        );
        assert!(w.update("host", &v(5, 0)).is_none());
        let t = w.update("host", &v(7, 1)).unwrap();
        assert_eq!(
            t.evidence,
            [
                "host: TcpExtListenOverflows +2 (5 -> 7)",
                "host: nf_conntrackinsert_failed +1 (0 -> 1)"
            ]
        );
        assert_eq!(t.detection.as_deref(), Some("conntrack-full"));
    }

    fn candidate() -> RstCandidate {
        RstCandidate {
            ns: 0,
            src: "10.99.52.1".into(),
            sport: 61000,
            dst: "10.99.52.2".into(),
            dport: 443,
            seen: "test".into(),
            ts_ns: 42,
        }
    }

    #[test]
    fn a_rst_is_host_only_on_a_nated_flow_conntrack_did_not_close() {
        let c = candidate();
        let line = |state: &str, nat_port: u16| {
            format!(
                "tcp      6 431999 {state} src=172.17.0.2 dst=10.99.52.2 sport=40100 dport=443 src=10.99.52.2 dst=10.99.52.1 sport=443 dport={nat_port} [ASSURED] mark=0 use=1"
            )
        };
        let t = host_only_rst(&c, &line("ESTABLISHED", 61000), "host").unwrap();
        assert_eq!(t.detection.as_deref(), Some("host-only-rst"));
        assert_eq!(t.ts_ns, 42, "the RST's time, not the check's");
        assert!(t.evidence[1].contains("sport=40100"), "{:?}", t.evidence);
        // Conntrack saw it close the flow: a forwarded RST.
        assert!(host_only_rst(&c, &line("CLOSE", 61000), "host").is_none());
        // Another flow.
        assert!(host_only_rst(&c, &line("ESTABLISHED", 61001), "host").is_none());
        // Not NATed: the node's own connection.
        let own = "tcp 6 100 ESTABLISHED src=10.99.52.1 dst=10.99.52.2 sport=61000 dport=443 src=10.99.52.2 dst=10.99.52.1 sport=443 dport=61000 use=1";
        assert!(host_only_rst(&c, own, "host").is_none());
    }

    #[test]
    fn connects_closing_after_syn_retransmits_fire_and_refused_ones_do_not() {
        let (tx, rx) = channel();
        let (rst_tx, rst_rx) = std::sync::mpsc::sync_channel(8);
        let ns = HashMap::from([(4026532001, (1, "pod".to_string()))]);
        let mut w = EventWatch::new(Kind::ALL.to_vec(), ns, vec!["nginx".into()], tx, rst_tx);
        let state = |sk: &str, old: &str, new: &str| {
            format!(
                "{{\"event\":\"tcp_state\",\"ts_ns\":1,\"pid\":7,\"netns\":4026532001,\"family\":\"ipv4\",\"saddr\":\"10.0.0.1\",\"sport\":44410,\"daddr\":\"10.0.0.2\",\"dport\":7777,\"oldstate\":\"{old}\",\"newstate\":\"{new}\",\"sk\":\"{sk}\",\"comm\":\"app\"}}"
            )
        };
        let retrans = |sk: &str| {
            format!(
                "{{\"event\":\"retransmit\",\"ts_ns\":1,\"netns\":4026532001,\"family\":\"ipv4\",\"saddr\":\"10.0.0.1\",\"sport\":44410,\"daddr\":\"10.0.0.2\",\"dport\":7777,\"state\":\"SYN_SENT\",\"sk\":\"{sk}\"}}"
            )
        };
        // Another namespace than the watched ones: nothing.
        let other = retrans("z").replace("4026532001", "4026532999");
        w.record(other.as_bytes(), 1);
        w.record(
            state("z", "SYN_SENT", "CLOSE")
                .replace("4026532001", "4026532999")
                .as_bytes(),
            1,
        );
        // Refused: no retransmit before CLOSE.
        w.record(state("a", "SYN_SENT", "CLOSE").as_bytes(), 1);
        // Connected after a retransmit: no trigger, and forgotten.
        w.record(retrans("b").as_bytes(), 1);
        w.record(state("b", "SYN_SENT", "ESTABLISHED").as_bytes(), 1);
        w.record(state("b", "ESTABLISHED", "CLOSE").as_bytes(), 1);
        assert!(rx.try_recv().is_err());
        // Timed out: the trigger's time is when the connect began.
        w.record(state("c", "CLOSE", "SYN_SENT").as_bytes(), 5_000_000_000);
        w.record(retrans("c").as_bytes(), 6_000_000_000);
        w.record(retrans("c").as_bytes(), 7_000_000_000);
        w.record(state("c", "SYN_SENT", "CLOSE").as_bytes(), 8_000_000_000);
        let t = rx.try_recv().unwrap();
        assert_eq!(t.name, "connect-timeout");
        assert_eq!(t.netns.as_deref(), Some("pod"));
        assert!(
            t.evidence[0].contains("after 2 SYN retransmits"),
            "{:?}",
            t.evidence
        );
        assert_eq!(t.ts_ns, 5_000_000_000);
        assert!(
            t.evidence[1].contains("3000 ms before it gave up"),
            "{:?}",
            t.evidence
        );
        // A RST without a socket becomes a candidate for the conntrack check.
        w.record(b"{\"event\":\"reset_sent\",\"ts_ns\":1,\"pid\":0,\"netns\":4026532001,\"family\":\"ipv4\",\"saddr\":\"10.99.52.1\",\"sport\":61000,\"daddr\":\"10.99.52.2\",\"dport\":443,\"state\":\"CLOSE\",\"reason\":2,\"reason_name\":\"NO_SOCKET\",\"sk\":\"0\",\"comm\":\"swapper/0\"}", 1);
        let c = rst_rx.try_recv().unwrap();
        assert_eq!((c.ns, c.sport, c.dport), (1, 61000, 443));
        // An exec of a watched name.
        w.record(b"{\"event\":\"exec\",\"ts_ns\":1,\"pid\":9,\"ppid\":3,\"netns\":4026532001,\"filename\":\"/usr/sbin/nginx\",\"comm\":\"nginx\",\"pcomm\":\"secagent\",\"argc\":2,\"argv\":[\"/usr/sbin/nginx\",\"-V\"]}", 1);
        let t = rx.try_recv().unwrap();
        assert_eq!(t.name, "unix-socket-replaced");
        assert!(
            t.evidence[0].contains("/usr/sbin/nginx -V by pid 9 (parent 3 secagent)"),
            "{:?}",
            t.evidence
        );
    }

    #[test]
    fn a_listener_whose_path_is_rebound_fires_once() {
        let mut w = UnixWatch::default();
        let path = "/tmp/prometheus-nginx.socket".to_string();
        assert!(
            w.update("pod", &[(10, path.clone(), Some(false))])
                .is_none()
        );
        assert!(
            w.update("pod", &[(10, path.clone(), Some(false))])
                .is_none()
        );
        // A second copy binds the path while the first listens.
        let t = w
            .update(
                "pod",
                &[
                    (10, path.clone(), Some(true)),
                    (11, path.clone(), Some(false)),
                ],
            )
            .unwrap();
        assert_eq!(t.evidence.len(), 2, "{:?}", t.evidence);
        // The second copy is gone; the first stays unreachable: no new trigger.
        assert!(w.update("pod", &[(10, path.clone(), Some(true))]).is_none());
        // Broken before the watch started: not a new fault.
        let mut w = UnixWatch::default();
        assert!(w.update("pod", &[(10, path.clone(), Some(true))]).is_none());
        assert!(w.update("pod", &[(10, path, Some(true))]).is_none());
    }
}
