//! Writes a node-side and a container-side capture of the same NATed
//! traffic, with a known set of host-only RSTs, for the `host-only-rst`
//! benchmark (bench/detect.sh).
//!
//! - `node.pcap`: the node's uplink, after MASQUERADE: the containers'
//!   connections leave from the node address 10.99.0.1 with their source
//!   port kept (port-preserving NAT, for every flow: without a conntrack
//!   dump that is the only mapping the detection can make), next to the
//!   node's own connections.
//! - `pod.pcap`: the container bridge, before NAT: the same connections
//!   from 172.17.0.2-41, not the node's own.
//! - `truth.tsv`: the node-side endpoints of every flow the detection must
//!   report: a container upload to which the remote sent an ACK beyond
//!   anything sent (conntrack INVALID, so not un-NATed: node side only) and
//!   the node's stack answered with an RST (node side only), where the
//!   container-side capture has packets of the flow.
//!
//! Around them, flows it must stay silent on: downloads and uploads closed
//! by FIN; connections refused, reset by the remote or aborted by the
//! container (the RST is on both sides); the node's own connections,
//! including some the node resets itself (RST on the node side only, but
//! the flow is not the container's). The captures start while the first
//! thousand flows are already under way, as any capture of a busy node
//! does, and the container-side one 50 ms after the node-side one (two
//! captures never start at the same instant): those flows have no
//! handshake, and the first packet each file has of them, which decides
//! the originator in `flows`, may come from either end. Frames are cut at
//! 128 bytes, the snap length `capsnap collect` uses.
//!
//! The xorshift generator and the checksum are copied from gen_capture.rs
//! (examples cannot share a module without a helper crate; twenty lines
//! are cheaper than one).
//!
//! cargo run --release --example gen_nat_pair -- OUT_DIR [PACKETS]
//!
//! PACKETS (default 2000000) is the size of node.pcap; pod.pcap has a few
//! percent fewer (the node's own connections are not in it).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Small deterministic generator (xorshift64*), so every run writes the
/// same files.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

const NODE_IP: [u8; 4] = [10, 99, 0, 1];
/// Snap length of `capsnap collect` captures.
const SNAPLEN: u32 = 128;
/// Flows interleaved at any time.
const ACTIVE: usize = 1000;
/// How much later than the node-side capture the container-side one starts.
const POD_LATE_US: u64 = 50_000;

/// What a step sends and which capture sees it.
#[derive(Clone, Copy, PartialEq)]
enum Step {
    /// A packet seen on both sides: (from the local end?, flags, payload).
    Both(bool, u8, u16),
    /// From the remote, seen on the node only: an ACK 64 MiB beyond what
    /// the local end sent ("ACK is over upper bound" in conntrack's
    /// tcp_in_window, net/netfilter/nf_conntrack_proto_tcp.c), so INVALID
    /// and delivered to the node's own stack.
    BogusAck,
    /// The node's answer to it (tcp_v4_send_reset: no socket owns the NAT
    /// port; RST without ACK, seq = the segment's ack): node side only.
    HostRst,
}

/// The kinds of flow, for the summary line.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Clean,
    Refused,
    RemoteReset,
    LocalReset,
    HostOnlyRst,
}

struct Flow {
    /// Container address, or None for the node's own connection.
    pod: Option<[u8; 4]>,
    remote: [u8; 4],
    lport: u16,
    rport: u16,
    lseq: u32,
    rseq: u32,
    bogus_ack: u32,
    kind: Kind,
    steps: Vec<Step>,
    next: usize,
    /// Whether an RST of this flow reached node.pcap yet.
    reset_written: bool,
    /// Whether pod.pcap has a packet of it yet.
    pod_seen: bool,
    /// Its line in the truth, once its host-only RST is in node.pcap.
    truth: Option<usize>,
}

/// A request/response exchange, or an upload, after the handshake;
/// `cut` (when given) is called at the middle of the transfer and decides
/// what happens there; it returns false to end the flow at that point.
fn transfer(
    rng: &mut Rng,
    steps: &mut Vec<Step>,
    upload: bool,
    cut: &mut dyn FnMut(&mut Rng, &mut Vec<Step>) -> bool,
) -> bool {
    let segments = 20 + rng.below(160);
    steps.push(Step::Both(true, PSH | ACK, 150 + rng.below(400) as u16));
    for i in 0..segments {
        let len = if rng.below(10) < 4 {
            1448
        } else {
            100 + rng.below(900) as u16
        };
        // Uploads: the local end sends, the remote ACKs every other one.
        steps.push(Step::Both(upload, ACK, len));
        if i % 2 == 1 {
            steps.push(Step::Both(!upload, ACK, 0));
        }
        if i == segments / 2 && !cut(rng, steps) {
            return false;
        }
    }
    steps.push(Step::Both(false, PSH | ACK, 40 + rng.below(200) as u16));
    true
}

fn close(steps: &mut Vec<Step>) {
    steps.extend([
        Step::Both(true, FIN | ACK, 0),
        Step::Both(false, FIN | ACK, 0),
        Step::Both(true, ACK, 0),
    ]);
}

fn new_flow(rng: &mut Rng, used: &mut HashSet<(u16, [u8; 4], u16)>) -> Flow {
    // One flow in twenty is the node's own (kubelet, node exporters, ...).
    let pod = (rng.below(20) != 0).then(|| [172, 17, 0, 2 + rng.below(40) as u8]);
    // MASQUERADE keeps the source port only while the node-side tuple is
    // free; every flow here keeps it, so node-side tuples are unique.
    let (remote, lport, rport) = loop {
        let remote = [198, 51, 100 + rng.below(3) as u8, 1 + rng.below(200) as u8];
        let lport = 32768 + rng.below(28232) as u16;
        let rport = [443, 80, 5432, 6379, 9092][rng.below(5) as usize];
        if used.insert((lport, remote, rport)) {
            break (remote, lport, rport);
        }
    };
    let roll = rng.below(1000);
    // Of the containers' flows: 0.7% host-only RST, 1% refused, 3% reset by
    // the remote, 1% aborted by the container. Of the node's own: 5% reset
    // by the node itself after a bogus ACK (node side only, not the
    // container's), 3% reset by the remote.
    let kind = match (pod.is_some(), roll) {
        (true, 0..7) => Kind::HostOnlyRst,
        (true, 7..17) => Kind::Refused,
        (true, 17..47) => Kind::RemoteReset,
        (true, 47..57) => Kind::LocalReset,
        (false, 0..50) => Kind::HostOnlyRst,
        (false, 50..80) => Kind::RemoteReset,
        _ => Kind::Clean,
    };
    let mut steps = vec![Step::Both(true, SYN, 0)];
    if kind == Kind::Refused {
        steps.push(Step::Both(false, RST | ACK, 0));
    } else {
        steps.extend([Step::Both(false, SYN | ACK, 0), Step::Both(true, ACK, 0)]);
        let upload = kind == Kind::HostOnlyRst || rng.below(4) == 0;
        let closes = transfer(rng, &mut steps, upload, &mut |rng, steps| match kind {
            Kind::RemoteReset => {
                steps.push(Step::Both(false, RST, 0));
                false
            }
            Kind::LocalReset => {
                steps.push(Step::Both(true, RST | ACK, 0));
                false
            }
            Kind::HostOnlyRst => {
                // One to three bogus ACKs, each answered by the node.
                for _ in 0..1 + rng.below(3) {
                    steps.extend([Step::BogusAck, Step::HostRst]);
                }
                // The RST's seq is far outside the remote's window, so the
                // remote drops it (RFC 5961 section 3.2) and the upload goes
                // on; or the upload stalls after a few retransmissions.
                if rng.below(2) == 0 {
                    true
                } else {
                    for _ in 0..2 + rng.below(4) {
                        steps.push(Step::Both(true, ACK, 1448));
                    }
                    false
                }
            }
            _ => true,
        });
        if closes {
            close(&mut steps);
        }
    }
    Flow {
        pod,
        remote,
        lport,
        rport,
        lseq: rng.next() as u32,
        rseq: rng.next() as u32,
        bogus_ack: 0,
        kind,
        steps,
        next: 0,
        reset_written: false,
        pod_seen: false,
        truth: None,
    }
}

fn checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One classic pcap file (microseconds, Ethernet) being written.
struct Pcap {
    w: BufWriter<File>,
    packets: u64,
    rsts: u64,
    frame: Vec<u8>,
}

/// One TCP segment as a capture sees it.
struct Segment {
    ts_us: u64,
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    len: u16,
    ttl: u8,
}

impl Pcap {
    fn create(path: &Path, macs: [u8; 12]) -> std::io::Result<Pcap> {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
        w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        w.write_all(&2u16.to_le_bytes())?;
        w.write_all(&4u16.to_le_bytes())?;
        w.write_all(&[0; 8])?;
        w.write_all(&SNAPLEN.to_le_bytes())?;
        w.write_all(&1u32.to_le_bytes())?;
        let mut frame = vec![0u8; SNAPLEN as usize];
        frame[..12].copy_from_slice(&macs);
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        Ok(Pcap {
            w,
            packets: 0,
            rsts: 0,
            frame,
        })
    }

    /// Writes `s`; `outbound` picks the MAC order.
    fn write(&mut self, s: &Segment, outbound: bool) -> std::io::Result<()> {
        if !outbound {
            let (a, b) = self.frame[..12].split_at_mut(6);
            a.swap_with_slice(b);
        }
        let ip = &mut self.frame[14..34];
        ip.copy_from_slice(&[
            0x45, 0, 0, 0, 0, 0, 0x40, 0, s.ttl, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ]);
        ip[2..4].copy_from_slice(&(40 + s.len).to_be_bytes());
        ip[4..6].copy_from_slice(&(self.packets as u16).to_be_bytes());
        ip[12..16].copy_from_slice(&s.src);
        ip[16..20].copy_from_slice(&s.dst);
        let sum = checksum(ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let tcp = &mut self.frame[34..54];
        tcp[0..2].copy_from_slice(&s.sport.to_be_bytes());
        tcp[2..4].copy_from_slice(&s.dport.to_be_bytes());
        tcp[4..8].copy_from_slice(&s.seq.to_be_bytes());
        tcp[8..12].copy_from_slice(&(if s.flags & ACK != 0 { s.ack } else { 0 }).to_be_bytes());
        tcp[12] = 0x50;
        tcp[13] = s.flags;
        tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
        let wire = 54 + u32::from(s.len);
        let caplen = wire.min(SNAPLEN);
        self.w
            .write_all(&((s.ts_us / 1_000_000) as u32).to_le_bytes())?;
        self.w
            .write_all(&((s.ts_us % 1_000_000) as u32).to_le_bytes())?;
        self.w.write_all(&caplen.to_le_bytes())?;
        self.w.write_all(&wire.to_le_bytes())?;
        self.w.write_all(&self.frame[..caplen as usize])?;
        if !outbound {
            let (a, b) = self.frame[..12].split_at_mut(6);
            a.swap_with_slice(b);
        }
        self.packets += 1;
        self.rsts += u64::from(s.flags & RST != 0);
        Ok(())
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: gen_nat_pair OUT_DIR [PACKETS]");
    let target: u64 = args
        .next()
        .map(|n| n.parse().expect("PACKETS is a number"))
        .unwrap_or(2_000_000);
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir)?;
    let node_mac = [0x02, 0, 0, 0, 0, 0x01];
    let gateway_mac = [0x02, 0, 0, 0, 0, 0xfe];
    let pod_mac = [0x02, 0x42, 0xac, 0x11, 0, 0x02];
    let bridge_mac = [0x02, 0x42, 0xac, 0x11, 0, 0x01];
    let mut node = Pcap::create(&dir.join("node.pcap"), concat(gateway_mac, node_mac))?;
    let mut pod = Pcap::create(&dir.join("pod.pcap"), concat(bridge_mac, pod_mac))?;

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut used = HashSet::new();
    let mut active: Vec<Flow> = Vec::new();
    let mut started = 0u64;
    let mut ts_us = 1_700_000_000_000_000u64;
    let pod_start = ts_us + POD_LATE_US;
    // Per kind, per side: flows whose RST reached node.pcap.
    let mut reset = [[0u64; 2]; 5];
    // Host-only RST flows of containers: node-side line, whether pod.pcap
    // has any packet of the flow.
    let mut truth: Vec<(String, bool)> = Vec::new();
    // The flows under way when the capture starts: skip part of each
    // (never past its first RST or bogus ACK, so every flow keeps its kind).
    for _ in 0..ACTIVE {
        let mut f = new_flow(&mut rng, &mut used);
        let special = f
            .steps
            .iter()
            .position(|s| !matches!(s, Step::Both(_, flags, _) if flags & RST == 0))
            .unwrap_or(f.steps.len() - 1);
        for _ in 0..rng.below(special.max(1) as u64) {
            // Skipped segments still move the sequence numbers.
            if let Step::Both(local, flags, len) = f.steps[f.next] {
                let adv = u32::from(len) + u32::from(flags & (SYN | FIN) != 0);
                let seq = if local { &mut f.lseq } else { &mut f.rseq };
                *seq = seq.wrapping_add(adv);
            }
            f.next += 1;
        }
        active.push(f);
        started += 1;
    }
    while node.packets < target {
        while active.len() < ACTIVE {
            active.push(new_flow(&mut rng, &mut used));
            started += 1;
        }
        let i = rng.below(active.len() as u64) as usize;
        let f = &mut active[i];
        let step = f.steps[f.next];
        f.next += 1;
        ts_us += 2 + rng.below(20);
        let (local, flags, len, on_pod) = match step {
            Step::Both(local, flags, len) => (local, flags, len, f.pod.is_some()),
            Step::BogusAck => {
                f.bogus_ack = f.lseq.wrapping_add(1 << 26);
                (false, ACK, 0, false)
            }
            Step::HostRst => (true, RST, 0, false),
        };
        let (seq, ack) = match step {
            Step::BogusAck => (f.rseq, f.bogus_ack),
            Step::HostRst => (f.bogus_ack, 0),
            _ if local => (f.lseq, f.rseq),
            _ => (f.rseq, f.lseq),
        };
        // The node sees a container's packet a microsecond after the
        // bridge does, and the remote's a microsecond before.
        let seg = |addr: [u8; 4], ts_us: u64, ttl: u8| Segment {
            ts_us,
            src: if local { addr } else { f.remote },
            dst: if local { f.remote } else { addr },
            sport: if local { f.lport } else { f.rport },
            dport: if local { f.rport } else { f.lport },
            seq,
            ack,
            flags,
            len,
            ttl,
        };
        let forwarded = f.pod.is_some();
        let (node_ts, pod_ts) = if local {
            (ts_us + 1, ts_us)
        } else {
            (ts_us, ts_us + 1)
        };
        let node_ttl = match (local, forwarded) {
            (true, true) => 63,
            (true, false) => 64,
            (false, _) => 52,
        };
        node.write(&seg(NODE_IP, node_ts, node_ttl), local)?;
        if on_pod
            && pod_ts >= pod_start
            && let Some(addr) = f.pod
        {
            pod.write(&seg(addr, pod_ts, if local { 64 } else { 51 }), local)?;
            f.pod_seen = true;
            if let Some(t) = f.truth {
                truth[t].1 = true;
            }
        }
        if flags & RST != 0 && !f.reset_written {
            f.reset_written = true;
            reset[f.kind as usize][usize::from(forwarded)] += 1;
            if step == Step::HostRst
                && let Some(addr) = f.pod
            {
                let line = format!(
                    "{}\t{}\t{}\t{}\t{}",
                    ip(NODE_IP),
                    f.lport,
                    ip(f.remote),
                    f.rport,
                    ip(addr)
                );
                f.truth = Some(truth.len());
                truth.push((line, f.pod_seen));
            }
        }
        if let Step::Both(_, flags, len) = step {
            let adv = u32::from(len) + u32::from(flags & (SYN | FIN) != 0);
            let seq = if local { &mut f.lseq } else { &mut f.rseq };
            *seq = seq.wrapping_add(adv);
        }
        if f.next == f.steps.len() {
            active.swap_remove(i);
        }
    }
    node.w.flush()?;
    pod.w.flush()?;
    let mut out = BufWriter::new(File::create(dir.join("truth.tsv"))?);
    writeln!(
        out,
        "node_ip\tnode_port\tremote_ip\tremote_port\tcontainer_ip"
    )?;
    for (line, _) in truth.iter().filter(|(_, seen)| *seen) {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    let unseen = truth.iter().filter(|(_, seen)| !seen).count();
    let [_, refused, remote, local, host_only] = reset;
    println!(
        "node.pcap: {} packets, {} with RST; pod.pcap: {} packets, {} with RST; {started} flows \
         started ({} under way at the start). Flows with an RST in node.pcap: \
         host-only {} (truth.tsv) + {unseen} pod.pcap has no packet of + {} of the node's own; \
         refused {}, reset by the remote {}, aborted by the container {} (RST on both sides)",
        node.packets,
        node.rsts,
        pod.packets,
        pod.rsts,
        ACTIVE,
        host_only[1] - unseen as u64,
        host_only[0] + remote[0] + refused[0] + local[0],
        refused[1],
        remote[1],
        local[1],
    );
    assert_eq!(truth.len() as u64, host_only[1]);
    Ok(())
}

fn concat(a: [u8; 6], b: [u8; 6]) -> [u8; 12] {
    let mut m = [0; 12];
    m[..6].copy_from_slice(&a);
    m[6..].copy_from_slice(&b);
    m
}

fn ip(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}
