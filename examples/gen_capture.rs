//! Writes a large, realistic classic pcap for the benchmarks: Ethernet /
//! IPv4 / TCP connections interleaved a thousand at a time, each a
//! handshake, a request, a response of mixed-size segments with ACKs, and a
//! FIN close; some are reset by the server mid-transfer and some hit a
//! closed port and are refused. Prints the number of packets, of RSTs and of
//! flows, so benchmark answers can be checked.
//!
//! With `--tcp-options`, every segment carries the options Linux sends:
//! MSS, SACK-permitted, timestamps and window scale on SYNs, timestamps on
//! the rest (for benchmarks of option decoding).
//!
//! cargo run --release --example gen_capture -- OUT.pcap [PACKETS] [--tcp-options]

use std::io::{BufWriter, Write};

/// Small deterministic generator (xorshift64*), so every run writes the
/// same file.
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

struct Flow {
    client: [u8; 4],
    server: [u8; 4],
    cport: u16,
    sport: u16,
    cseq: u32,
    sseq: u32,
    /// Remaining steps: (from client?, flags, payload length).
    steps: Vec<(bool, u8, u16)>,
    next: usize,
}

fn flow(rng: &mut Rng, id: u64) -> Flow {
    let client = [10, 1, (id >> 8) as u8, id as u8];
    let server = [10, 2, 0, 1 + rng.below(50) as u8];
    let mut steps = vec![(true, SYN, 0)];
    let kind = rng.below(100);
    if kind < 2 {
        // Closed port: refused.
        steps.push((false, RST | ACK, 0));
    } else {
        steps.extend([
            (false, SYN | ACK, 0),
            (true, ACK, 0),
            (true, PSH | ACK, 200 + rng.below(400) as u16),
        ]);
        // Response segments: full-sized and smaller ones, about 500 bytes a
        // packet over the whole file, as on a busy API node.
        let segments = 20 + rng.below(200);
        for i in 0..segments {
            let len = if rng.below(10) < 3 {
                1448
            } else {
                100 + rng.below(500) as u16
            };
            steps.push((false, ACK, len));
            if i % 2 == 1 {
                steps.push((true, ACK, 0));
            }
            if kind < 6 && i == segments / 2 {
                // Server resets mid-transfer.
                steps.push((false, RST, 0));
                break;
            }
        }
        if kind >= 6 {
            steps.extend([
                (false, PSH | ACK, 300),
                (true, FIN | ACK, 0),
                (false, FIN | ACK, 0),
                (true, ACK, 0),
            ]);
        }
    }
    Flow {
        client,
        server,
        cport: 1024 + rng.below(60000) as u16,
        sport: [80, 443, 8080, 5432][rng.below(4) as usize],
        cseq: rng.next() as u32,
        sseq: rng.next() as u32,
        steps,
        next: 0,
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

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .expect("usage: gen_capture OUT.pcap [PACKETS] [--tcp-options]");
    let target: u64 = args
        .next()
        .map(|n| n.parse().expect("PACKETS is a number"))
        .unwrap_or(3_000_000);
    let with_options = args.next().is_some_and(|a| a == "--tcp-options");
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&out)?);
    // Classic pcap, microseconds, Ethernet, snaplen 65535.
    w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&4u16.to_le_bytes())?;
    w.write_all(&[0; 8])?;
    w.write_all(&65535u32.to_le_bytes())?;
    w.write_all(&1u32.to_le_bytes())?;

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut active: Vec<Flow> = Vec::new();
    let (mut packets, mut rsts, mut flows, mut ts_us) =
        (0u64, 0u64, 0u64, 1_700_000_000_000_000u64);
    let mut frame = vec![0u8; 14 + 20 + 40 + 1448];
    // Ethernet header: fixed MACs, IPv4.
    frame[..14].copy_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    while packets < target {
        while active.len() < 1000 {
            active.push(flow(&mut rng, flows));
            flows += 1;
        }
        let i = rng.below(active.len() as u64) as usize;
        let f = &mut active[i];
        let (from_client, flags, len) = f.steps[f.next];
        f.next += 1;
        let (src, dst, sp, dp) = if from_client {
            (f.client, f.server, f.cport, f.sport)
        } else {
            (f.server, f.client, f.sport, f.cport)
        };
        let (seq, ack) = if from_client {
            (f.cseq, f.sseq)
        } else {
            (f.sseq, f.cseq)
        };
        // Options as Linux sends them: MSS, SACK-permitted, TSval/TSecr,
        // NOP, window scale on a SYN; NOP, NOP, TSval/TSecr on the rest.
        let tsval = (ts_us / 1000) as u32;
        let mut options = [0u8; 20];
        let optlen = match (with_options, flags & SYN != 0) {
            (false, _) => 0,
            (true, true) => {
                options[..4].copy_from_slice(&[2, 4, 0x05, 0xb4]);
                options[4..8].copy_from_slice(&[4, 2, 8, 10]);
                options[8..12].copy_from_slice(&tsval.to_be_bytes());
                options[12..16].copy_from_slice(&tsval.wrapping_sub(7).to_be_bytes());
                options[16..].copy_from_slice(&[1, 3, 3, 7]);
                20
            }
            (true, false) => {
                options[..4].copy_from_slice(&[1, 1, 8, 10]);
                options[4..8].copy_from_slice(&tsval.to_be_bytes());
                options[8..12].copy_from_slice(&tsval.wrapping_sub(7).to_be_bytes());
                12
            }
        };
        let ip = &mut frame[14..34];
        ip.copy_from_slice(&[
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ]);
        ip[2..4].copy_from_slice(&(40 + optlen + len).to_be_bytes());
        ip[4..6].copy_from_slice(&(packets as u16).to_be_bytes());
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        let sum = checksum(ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let tcp = &mut frame[34..54];
        tcp[0..2].copy_from_slice(&sp.to_be_bytes());
        tcp[2..4].copy_from_slice(&dp.to_be_bytes());
        tcp[4..8].copy_from_slice(&seq.to_be_bytes());
        tcp[8..12].copy_from_slice(&(if flags & ACK != 0 { ack } else { 0 }).to_be_bytes());
        tcp[12] = ((20 + optlen as u8) / 4) << 4;
        tcp[13] = flags;
        tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
        let advance = u32::from(len) + u32::from(flags & (SYN | FIN) != 0);
        if from_client {
            f.cseq = f.cseq.wrapping_add(advance);
        } else {
            f.sseq = f.sseq.wrapping_add(advance);
        }
        let header = 54 + usize::from(optlen);
        frame[54..header].copy_from_slice(&options[..usize::from(optlen)]);
        let caplen = header as u32 + u32::from(len);
        ts_us += 1 + rng.below(20);
        w.write_all(&((ts_us / 1_000_000) as u32).to_le_bytes())?;
        w.write_all(&((ts_us % 1_000_000) as u32).to_le_bytes())?;
        w.write_all(&caplen.to_le_bytes())?;
        w.write_all(&caplen.to_le_bytes())?;
        w.write_all(&frame[..caplen as usize])?;
        packets += 1;
        rsts += u64::from(flags & RST != 0);
        if f.next == f.steps.len() {
            active.swap_remove(i);
        }
    }
    w.flush()?;
    println!("{out}: {packets} packets, {rsts} with RST, {flows} flows started");
    Ok(())
}
