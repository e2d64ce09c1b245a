//! `--check`: every variant over the same files, frame by frame.

use crate::{Walk, pp};
use capsnap_formats::{Frame, Headers};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Disagreements of one kind in one file: how many, and the first.
struct Diff {
    count: u64,
    frame: u64,
    ours: String,
    theirs: String,
}

#[derive(Default)]
struct Report {
    /// (file, what) -> disagreement.
    diffs: BTreeMap<(String, String), Diff>,
    files: u64,
    frames: u64,
}

impl Report {
    fn note(&mut self, file: &str, what: &str, frame: u64, ours: String, theirs: String) {
        self.diffs
            .entry((file.to_owned(), what.to_owned()))
            .and_modify(|d| d.count += 1)
            .or_insert(Diff {
                count: 1,
                frame,
                ours,
                theirs,
            });
    }
}

fn files(args: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for a in args {
        let p = Path::new(a);
        if p.is_dir() {
            let mut v: Vec<_> = std::fs::read_dir(p)
                .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            v.sort();
            out.extend(v.into_iter().filter(|p| p.is_file()));
        } else {
            out.push(p.to_owned());
        }
    }
    out
}

pub fn run(args: &[String]) -> i32 {
    let mut r = Report::default();
    for path in files(args) {
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let Ok(d) = std::fs::read(&path) else {
            continue;
        };
        r.files += 1;
        check_file(&name, &d, &mut r);
    }
    let mut by_what: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for ((file, what), d) in &r.diffs {
        println!(
            "{file}\t{what}\t{} frames\tfirst frame {}\tours {}\tother {}",
            d.count, d.frame, d.ours, d.theirs
        );
        let e = by_what.entry(what).or_default();
        e.0 += 1;
        e.1 += d.count;
    }
    println!("-- {} files, {} frames (ours)", r.files, r.frames);
    for (what, (files, frames)) in by_what {
        println!("{what}: {frames} frames in {files} files");
    }
    if r.diffs.is_empty() {
        println!("all variants agree");
    }
    0
}

fn check_file(name: &str, d: &[u8], r: &mut Report) {
    let ours = capsnap_formats::index(d);
    let pp = pp::Pp::new(&d[..d.len().min(24)], d.len());
    let (ix, mut pp) = match (ours, pp) {
        (Ok(ix), Ok(pp)) => (ix, pp),
        (Ok(ix), Err(e)) => {
            r.note(
                name,
                "walker: file refused",
                0,
                format!("{} frames", ix.frames),
                e,
            );
            return;
        }
        (Err(e), Ok(_)) => {
            r.note(
                name,
                "walker: file refused",
                0,
                e.to_string(),
                "read".into(),
            );
            return;
        }
        (Err(_), Err(_)) => return,
    };
    // pcap-parser's walk of the whole file, fed in one piece.
    let pos = pp.position();
    if pos < d.len() {
        pp.feed(&d[pos..]);
    }
    let desc = pp.describe();
    let mut theirs: Vec<Frame> = Vec::new();
    for c in &pp.take_chunks() {
        let (s, e) = pp::Pp::span(c);
        pp::Pp::frames(&desc, &d[s..e], c, |f| theirs.push(*f));
    }
    let mine: Vec<Frame> = ix.chunks.iter().flat_map(|c| ix.frames(d, c)).collect();
    r.frames += mine.len() as u64;
    if mine.len() != theirs.len() {
        let why = pp
            .damage
            .first()
            .map_or(String::new(), |(at, w)| format!(" (stopped at {at}: {w})"));
        r.note(
            name,
            "walker: frame count",
            0,
            mine.len().to_string(),
            format!("{}{why}", theirs.len()),
        );
    }
    for (a, b) in mine.iter().zip(&theirs) {
        let fields: [(&str, String, String); 7] = [
            ("number", a.number.to_string(), b.number.to_string()),
            ("ts_ns", format!("{:?}", a.ts_ns), format!("{:?}", b.ts_ns)),
            (
                "interface",
                a.interface.to_string(),
                b.interface.to_string(),
            ),
            ("wire_len", a.wire_len.to_string(), b.wire_len.to_string()),
            (
                "direction",
                format!("{:?}", a.direction),
                format!("{:?}", b.direction),
            ),
            (
                "comment",
                format!("{:?}", a.comment),
                format!("{:?}", b.comment),
            ),
            (
                "data",
                format!("{} bytes", a.data.len()),
                format!("{} bytes", b.data.len()),
            ),
        ];
        for (what, x, y) in fields {
            let differ = if what == "data" {
                a.data != b.data
            } else {
                x != y
            };
            if differ {
                r.note(name, &format!("walker: {what}"), a.number, x, y);
            }
        }
    }
    // Decoders over our frames.
    let (mut h1, mut h2) = (Headers::default(), Headers::default());
    for f in &mine {
        let link = ix.interfaces[f.interface as usize].link_type;
        capsnap_formats::decode(link, f.data, &mut h1);
        crate::ep::decode(link, f.data, &mut h2);
        if h1 == h2 {
            continue;
        }
        r.note(
            name,
            "decoder: frames differing",
            f.number,
            String::new(),
            String::new(),
        );
        let t1 = h1.tcp.unwrap_or_default();
        let t2 = h2.tcp.unwrap_or_default();
        let fields: [(&str, String, String); 24] = [
            ("l3", format!("{:?}", h1.l3), format!("{:?}", h2.l3)),
            ("vlan", format!("{:?}", h1.vlan), format!("{:?}", h2.vlan)),
            (
                "direction",
                format!("{:?}", h1.direction),
                format!("{:?}", h2.direction),
            ),
            (
                "src",
                format!("{:?}", h1.src.map(|a| a.to_string())),
                format!("{:?}", h2.src.map(|a| a.to_string())),
            ),
            (
                "dst",
                format!("{:?}", h1.dst.map(|a| a.to_string())),
                format!("{:?}", h2.dst.map(|a| a.to_string())),
            ),
            (
                "ip_proto",
                format!("{:?}", h1.ip_proto),
                format!("{:?}", h2.ip_proto),
            ),
            ("ttl", format!("{:?}", h1.ttl), format!("{:?}", h2.ttl)),
            (
                "ip_id",
                format!("{:?}", h1.ip_id),
                format!("{:?}", h2.ip_id),
            ),
            (
                "fragment",
                format!("{:?}", h1.fragment),
                format!("{:?}", h2.fragment),
            ),
            (
                "src_port",
                format!("{:?}", h1.src_port),
                format!("{:?}", h2.src_port),
            ),
            (
                "dst_port",
                format!("{:?}", h1.dst_port),
                format!("{:?}", h2.dst_port),
            ),
            (
                "tcp (present)",
                h1.tcp.is_some().to_string(),
                h2.tcp.is_some().to_string(),
            ),
            (
                "tcp flags",
                format!("{:#x}", t1.flags),
                format!("{:#x}", t2.flags),
            ),
            ("tcp seq", t1.seq.to_string(), t2.seq.to_string()),
            ("tcp ack", t1.ack.to_string(), t2.ack.to_string()),
            ("tcp window", t1.window.to_string(), t2.window.to_string()),
            (
                "tcp mss",
                format!("{:?}", t1.options.mss),
                format!("{:?}", t2.options.mss),
            ),
            (
                "tcp wscale",
                format!("{:?}", t1.options.wscale),
                format!("{:?}", t2.options.wscale),
            ),
            (
                "tcp sack_permitted",
                t1.options.sack_permitted.to_string(),
                t2.options.sack_permitted.to_string(),
            ),
            (
                "tcp sack_blocks",
                t1.options.sack_blocks.to_string(),
                t2.options.sack_blocks.to_string(),
            ),
            (
                "tcp timestamps",
                format!("{:?}", t1.options.timestamps),
                format!("{:?}", t2.options.timestamps),
            ),
            (
                "payload_len",
                format!("{:?}", h1.payload_len),
                format!("{:?}", h2.payload_len),
            ),
            (
                "icmp_type",
                format!("{:?}", h1.icmp_type),
                format!("{:?}", h2.icmp_type),
            ),
            (
                "icmp_code",
                format!("{:?}", h1.icmp_code),
                format!("{:?}", h2.icmp_code),
            ),
        ];
        for (what, x, y) in fields {
            if x != y {
                r.note(name, &format!("decoder: {what}"), f.number, x, y);
            }
        }
    }
}

pub fn dump_options(args: &[String]) -> i32 {
    let [path] = args else {
        eprintln!("usage: decode_bench --dump-options FILE");
        return 2;
    };
    let Ok(d) = std::fs::read(path) else {
        eprintln!("decode_bench: cannot read {path}");
        return 2;
    };
    let Ok(ix) = capsnap_formats::index(&d) else {
        return 0;
    };
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let mut h = Headers::default();
    for c in &ix.chunks {
        for f in ix.frames(&d, c) {
            let link = ix.interfaces[f.interface as usize].link_type;
            capsnap_formats::decode(link, f.data, &mut h);
            let Some(t) = h.tcp else { continue };
            let o = t.options;
            println!(
                "{}\t{}\t{}\t{}\t{}\t{}",
                f.number,
                opt(o.mss.map(|v| v.to_string())),
                opt(o.wscale.map(|v| v.to_string())),
                if o.sack_permitted { "1" } else { "-" },
                opt(o.timestamps.map(|t| t.0.to_string())),
                opt(o.timestamps.map(|t| t.1.to_string())),
            );
        }
    }
    0
}

pub fn to_pcapng(args: &[String]) -> i32 {
    use capsnap_formats::pcapng::{EpbFlags, Writer};
    let [input, output] = args else {
        eprintln!("usage: decode_bench --to-pcapng IN OUT");
        return 2;
    };
    let d = match std::fs::read(input) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("decode_bench: {input}: {e}");
            return 2;
        }
    };
    let ix = match capsnap_formats::index(&d) {
        Ok(ix) => ix,
        Err(e) => {
            eprintln!("decode_bench: {input}: {e}");
            return 2;
        }
    };
    let write = || -> std::io::Result<()> {
        let file = std::fs::File::create(output)?;
        let out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut w = Writer::new(out, "decode_bench", None)?;
        let mut ids = Vec::new();
        for iface in &ix.interfaces {
            ids.push(w.interface(iface.link_type, iface.snaplen, "eth0", "netns=host")?);
        }
        for c in &ix.chunks {
            for f in ix.frames(&d, c) {
                let ts = f.ts_ns.unwrap_or(0).max(0) as u64;
                let flags = EpbFlags(EpbFlags::INBOUND);
                w.packet(ids[f.interface as usize], ts, f.data, f.wire_len, flags)?;
            }
        }
        w.into_inner().map(drop)
    };
    match write() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("decode_bench: {output}: {e}");
            2
        }
    }
}
