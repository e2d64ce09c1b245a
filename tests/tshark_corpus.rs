//! Every capture in ../shared/corpus/pcap that tshark reads must load in
//! capsnap, and for every frame tshark decodes as IPv4/IPv6 TCP or UDP, the
//! timestamp, addresses, ports, TCP flags, seq and ack must agree with
//! tshark's. All disagreements are listed before the test fails.
//!
//! Needs tshark (installed by .ci/run). Without it the test says so and
//! skips, except under CI=true where a missing tshark is a failure.

mod common;

use common::{capsnap, corpus_dir};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// What tshark says about one frame (first occurrence of each field).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Frame {
    ts_ns: i128,
    src: String,
    dst: String,
    sport: String,
    dport: String,
    flags: Option<u32>,
    seq: String,
    ack: String,
}

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Parses "1732729516.680626000" into nanoseconds without floating point.
/// tshark prints the nanoseconds with `%09d`, so a record whose fraction
/// is out of range (tcpdump's timestamp_invalid_* files: 10^6 microseconds
/// or more) prints more than nine digits: they still count nanoseconds.
/// `None` where tshark's text is not a time at all (signed overflow).
fn epoch_ns(s: &str) -> Option<i128> {
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    if sec.starts_with('-') {
        return None;
    }
    let sec: i128 = sec.parse().ok()?;
    let frac: i128 = if frac.len() > 9 {
        frac.parse().ok()?
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    Some(sec * 1_000_000_000 + frac)
}

/// A tshark time that is an overflow artifact: not compared.
const UNREADABLE: i128 = i128::MAX;

/// Files where capsnap is right and tshark 4.0 is not, checked by hand.
const TSHARK_WRONG: &[(&str, u64, &str)] = &[
    (
        "tcpdump__bigtcp-ipv6.pcap",
        1,
        "IPv6 jumbogram (RFC 2675, Linux BIG TCP): payload length 0 with a hop-by-hop jumbo option; \
     tshark and tcpdump stop at the zero length, the TCP header is in the capture and capsnap reads it",
    ),
    (
        "tcpdump__timestamp_invalid_micro.pcap",
        3,
        "microsecond field 2147483648: tshark multiplies it by 1000 in 32 bits and shows .000000000; \
     tcpdump prints the raw .2147483648 and capsnap adds 2147.483648 s, as the field says",
    ),
];

const FIELDS: &[&str] = &[
    "frame.number",
    "frame.time_epoch",
    "frame.protocols",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "tcp.flags",
    "tcp.seq_raw",
    "tcp.ack_raw",
];

/// Frames tshark decodes as IP then TCP/UDP, by frame number; `None` when
/// tshark cannot read the file at all.
fn tshark_frames(file: &Path) -> Option<HashMap<u64, Frame>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"]).arg(file);
    // Per-fragment and absolute values: capsnap does not reassemble.
    for o in [
        "ip.defragment:FALSE",
        "ipv6.defragment:FALSE",
        "tcp.relative_sequence_numbers:FALSE",
        "tcp.desegment_tcp_streams:FALSE",
    ] {
        cmd.args(["-o", o]);
    }
    cmd.args(["-T", "fields", "-E", "occurrence=f", "-E", "separator=/t"]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("running tshark");
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() && text.trim().is_empty() {
        return None;
    }
    let mut frames = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < FIELDS.len() {
            continue;
        }
        let protos: Vec<&str> = f[2].split(':').collect();
        let Some(mut ip_at) = protos.iter().position(|p| *p == "ip" || *p == "ipv6") else {
            continue;
        };
        // tshark's IPv4 dissector hands a packet whose version nibble is 6
        // on to IPv6 without reading an IPv4 header (`ip:ipv6`, no ip.src):
        // tcpdump's LINKTYPE_IPV4_invalid.pcap. That IPv6 header is the
        // packet's, as capsnap reads it too.
        if protos[ip_at] == "ip" && protos.get(ip_at + 1) == Some(&"ipv6") && f[3].is_empty() {
            ip_at += 1;
        }
        let next = protos[ip_at + 1..]
            .iter()
            .find(|p| !p.starts_with("ipv6."))
            .copied();
        let v4 = protos[ip_at] == "ip";
        let (sport, dport) = match next {
            Some("tcp") => (f[7], f[8]),
            Some("udp") => (f[9], f[10]),
            _ => continue,
        };
        let frame = Frame {
            // Empty for pcapng simple packet blocks, which have no time.
            ts_ns: if f[1].is_empty() {
                i128::MIN
            } else {
                epoch_ns(f[1]).unwrap_or(UNREADABLE)
            },
            src: (if v4 { f[3] } else { f[5] }).to_string(),
            dst: (if v4 { f[4] } else { f[6] }).to_string(),
            sport: sport.to_string(),
            dport: dport.to_string(),
            flags: (next == Some("tcp"))
                .then(|| u32::from_str_radix(f[11].trim_start_matches("0x"), 16).ok())
                .flatten(),
            seq: if next == Some("tcp") {
                f[12].to_string()
            } else {
                String::new()
            },
            ack: if next == Some("tcp") {
                f[13].to_string()
            } else {
                String::new()
            },
        };
        if let Ok(n) = f[0].parse() {
            frames.insert(n, frame);
        }
    }
    Some(frames)
}

const SQL: &str = "select frame, cast(ts as bigint) as ts, src_ip, dst_ip, src_port, dst_port, tcp_flags, seq, ack_seq from packets order by frame";

fn capsnap_frames(file: &Path) -> Result<HashMap<u64, Frame>, String> {
    let out = capsnap(&["query", "--format", "tsv", &file.display().to_string(), SQL]);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut frames = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let frame = Frame {
            ts_ns: f[1].parse().unwrap_or(i128::MIN),
            src: f[2].to_string(),
            dst: f[3].to_string(),
            sport: f[4].to_string(),
            dport: f[5].to_string(),
            flags: f[6].parse().ok(),
            seq: f[7].to_string(),
            ack: f[8].to_string(),
        };
        frames.insert(f[0].parse().expect("frame number"), frame);
    }
    Ok(frames)
}

#[test]
fn capsnap_agrees_with_tshark_on_the_corpus() {
    if !tshark_available() {
        assert!(
            std::env::var("CI").is_err(),
            "tshark is missing on CI: .ci/run must install it"
        );
        eprintln!(
            "SKIPPED: tshark is not installed (apt-get install tshark); the corpus comparison did not run"
        );
        return;
    }
    let dir = corpus_dir().join("pcap");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus/pcap")
        .map(|e| e.unwrap().path())
        .filter(|p| !p.extension().is_some_and(|e| e == "txt" || e == "tsv"))
        .collect();
    files.sort();
    let (mut compared_files, mut compared_frames) = (0, 0);
    let mut problems = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let Some(want) = tshark_frames(file) else {
            continue;
        };
        let got = match capsnap_frames(file) {
            Ok(g) => g,
            Err(e) => {
                problems.push(format!("{name}: tshark reads it, capsnap fails: {e}"));
                continue;
            }
        };
        compared_files += 1;
        let mut numbers: Vec<_> = want.keys().copied().collect();
        numbers.sort();
        for n in numbers {
            let w = &want[&n];
            let Some(g) = got.get(&n) else {
                problems.push(format!("{name} frame {n}: missing in capsnap"));
                continue;
            };
            if TSHARK_WRONG.iter().any(|(f, n2, _)| *f == name && *n2 == n) {
                continue;
            }
            let mut g = g.clone();
            if w.ts_ns == UNREADABLE {
                g.ts_ns = UNREADABLE;
            }
            compared_frames += 1;
            if &g != w {
                problems.push(format!(
                    "{name} frame {n}:\n    tshark  {w:?}\n    capsnap {g:?}"
                ));
            }
        }
    }
    eprintln!(
        "compared {compared_frames} TCP/UDP frames in {compared_files} files with tshark; {} disagreements",
        problems.len()
    );
    assert!(
        compared_files > 150,
        "only {compared_files} corpus files compared"
    );
    assert!(
        problems.is_empty(),
        "{} disagreements with tshark:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// One DNS message as `capsnap_dns_agrees_with_tshark_on_the_corpus`
/// compares it: id, QR, first question name and type, rcode of a
/// response, answer count.
type DnsRow = (String, String, String, String, String, String);

/// Question type numbers of the names capsnap prints (IANA).
fn dns_type_number(name: &str) -> String {
    let known = [
        ("A", 1),
        ("NS", 2),
        ("CNAME", 5),
        ("SOA", 6),
        ("PTR", 12),
        ("MX", 15),
        ("TXT", 16),
        ("AAAA", 28),
        ("SRV", 33),
        ("OPT", 41),
        ("HTTPS", 65),
        ("ANY", 255),
    ];
    match known.iter().find(|(n, _)| *n == name) {
        Some((_, v)) => v.to_string(),
        None => name.trim_start_matches("TYPE").to_string(),
    }
}

fn dns_rcode_number(name: &str) -> String {
    let known = [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
        "NXRRSET", "NOTAUTH", "NOTZONE",
    ];
    match known.iter().position(|n| *n == name) {
        Some(i) => i.to_string(),
        None => name.trim_start_matches("RCODE").to_string(),
    }
}

/// What tshark's DNS dissector reads on port 53 (not the DNS it finds
/// quoted inside ICMP errors, which capsnap does not decode), by frame.
fn tshark_dns(file: &Path) -> HashMap<u64, DnsRow> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(file)
        .args([
            // capsnap reads a first fragment's question, as these show it.
            "-o",
            "ip.defragment:FALSE",
            "-o",
            "ipv6.defragment:FALSE",
            "-o",
            "tcp.desegment_tcp_streams:FALSE",
            "-Y",
            "dns && (udp.port == 53 || tcp.port == 53) && !icmp && !icmpv6",
            "-T",
            "fields",
            "-E",
            "occurrence=f",
            "-E",
            "separator=/t",
        ])
        .args(
            [
                "frame.number",
                "dns.id",
                "dns.flags.response",
                "dns.qry.name",
                "dns.qry.type",
                "dns.flags.rcode",
                "dns.count.answers",
            ]
            .iter()
            .flat_map(|f| ["-e", f]),
        )
        .output()
        .expect("running tshark");
    let mut rows = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (Some(n), true) = (f[0].parse().ok(), f.len() >= 7) else {
            continue;
        };
        let id = u16::from_str_radix(f[1].trim_start_matches("0x"), 16).unwrap_or(0);
        let name = if f[3] == "<Root>" { "." } else { f[3] };
        let response = if f[2] == "1" { "true" } else { "false" };
        rows.insert(
            n,
            (
                format!("{id} {response}"),
                name.to_string(),
                f[4].to_string(),
                if f[2] == "1" { f[5] } else { "" }.to_string(),
                f[6].to_string(),
                String::new(),
            ),
        );
    }
    rows
}

fn capsnap_dns(file: &Path) -> Result<HashMap<u64, DnsRow>, String> {
    let sql = "select frame, id, response, query_name, query_type, rcode, answers from dns order by frame";
    let out = capsnap(&["query", "--format", "tsv", &file.display().to_string(), sql]);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let mut rows = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        rows.insert(
            f[0].parse().expect("frame number"),
            (
                format!("{} {}", f[1], f[2]),
                f[3].to_string(),
                dns_type_number(f[4]),
                if f[5].is_empty() {
                    String::new()
                } else {
                    dns_rcode_number(f[5])
                },
                f[6].to_string(),
                String::new(),
            ),
        );
    }
    Ok(rows)
}

/// The `dns` table against tshark's DNS dissector, message by message, on
/// every corpus file tshark finds DNS on port 53 in: the same frames, ids,
/// question names and types, response codes and answer counts.
#[test]
fn capsnap_dns_agrees_with_tshark_on_the_corpus() {
    if !tshark_available() {
        assert!(
            std::env::var("CI").is_err(),
            "tshark is missing on CI: .ci/run must install it"
        );
        eprintln!("SKIPPED: tshark is not installed (apt-get install tshark)");
        return;
    }
    let dir = corpus_dir().join("pcap");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus/pcap")
        .map(|e| e.unwrap().path())
        .filter(|p| !p.extension().is_some_and(|e| e == "txt" || e == "tsv"))
        .collect();
    files.sort();
    let (mut compared_files, mut compared) = (0, 0);
    let mut problems = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let want = tshark_dns(file);
        if want.is_empty() {
            continue;
        }
        let got = match capsnap_dns(file) {
            Ok(g) => g,
            Err(e) => {
                problems.push(format!("{name}: capsnap fails: {e}"));
                continue;
            }
        };
        compared_files += 1;
        let mut numbers: Vec<u64> = want.keys().chain(got.keys()).copied().collect();
        numbers.sort();
        numbers.dedup();
        for n in numbers {
            compared += 1;
            if want.get(&n) != got.get(&n) {
                problems.push(format!(
                    "{name} frame {n}:\n    tshark  {:?}\n    capsnap {:?}",
                    want.get(&n),
                    got.get(&n)
                ));
            }
        }
    }
    eprintln!(
        "compared {compared} DNS messages in {compared_files} files with tshark; {} disagreements",
        problems.len()
    );
    assert!(compared_files >= 8, "only {compared_files} files with DNS");
    assert!(
        problems.is_empty(),
        "{} disagreements with tshark:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
