//! `capsnap query` over bundles, globs of bundles, directories of
//! hand-taken artifacts, and damaged or hostile bundles.

mod common;

use common::{capsnap, corpus_dir};
use std::path::Path;

fn samples(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_glob_of_bundles_is_one_set_of_tables_with_bundle_and_host() {
    let out = capsnap(&[
        "query",
        &samples("*.capsnap"),
        "select bundle, count(distinct host) as hosts, count(*) as processes from processes group by bundle order by bundle",
        "--format",
        "csv",
    ]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "bundle,hosts,processes");
    let bundles: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    // Every kept sample, whichever samples/ holds.
    let mut kept: Vec<String> = std::fs::read_dir(samples(""))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".capsnap"))
        .collect();
    kept.sort();
    assert!(kept.len() >= 6, "{kept:?}");
    assert_eq!(bundles, kept);
    assert!(
        lines[1..].iter().all(|l| l.split(',').nth(1) == Some("1")),
        "{text}"
    );
}

#[test]
fn bundle_captures_are_capture_points_named_after_their_namespace() {
    let out = capsnap(&[
        "query",
        &samples("host-only-rst.capsnap"),
        "select capture, count(*) filter (where rst) as rsts from packets group by capture order by capture",
        "--format",
        "csv",
    ]);
    let text = stdout(&out);
    assert_eq!(text, "capture,rsts\ncs-hr-ctr,0\nhost,1\n");
}

#[test]
fn a_directory_of_hand_taken_files_becomes_tables() {
    // The corpus holds /proc files and conntrack, bcc and bpftrace output
    // saved by others: each lands in its table, the rest is ignored.
    let dir = corpus_dir();
    let out = capsnap(&[
        "query",
        dir.join("proc").to_str().unwrap(),
        dir.join("ebpf").to_str().unwrap(),
        "select 'sockets' as t, count(*) as n from sockets union all \
         select 'conntrack', count(*) from conntrack union all \
         select 'sockstat', count(*) from sockstat union all \
         select 'events', count(*) from events union all \
         select 'net_counters', count(*) from net_counters order by t",
        "--format",
        "csv",
    ]);
    let text = stdout(&out);
    for line in text.lines().skip(1) {
        let (table, n) = line.split_once(',').unwrap();
        let n: u64 = n.parse().unwrap();
        assert!(n > 0, "{table} is empty:\n{text}");
    }
}

#[test]
fn a_hostile_bundle_is_refused_naming_the_member() {
    // manifest.json first, then a member that climbs out of the extraction
    // directory: written as raw tar bytes, compressed with the zstd CLI.
    let dir = tempfile::tempdir().unwrap();
    let manifest =
        br#"{"format_version":1,"host":"x","members":[{"path":"../evil","size":1,"sha256":"00"}]}"#;
    let mut tar = Vec::new();
    for (name, data) in [("manifest.json", &manifest[..]), ("../evil", b"x")] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        tar.extend_from_slice(&h);
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.resize(tar.len() + 1024, 0);
    let raw = dir.path().join("x.tar");
    std::fs::write(&raw, &tar).unwrap();
    let bundle = dir.path().join("x.capsnap");
    let z = std::process::Command::new("zstd")
        .args(["-q", "-o"])
        .arg(&bundle)
        .arg(&raw)
        .status();
    if !z.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: the zstd command is not installed");
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_capsnap"))
        .args(["query", bundle.to_str().unwrap(), "select 1"])
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("x.capsnap") && err.contains("\"../evil\"") && err.contains("escapes"),
        "{err}"
    );
    assert!(!dir.path().join("cache/capsnap/evil").exists());
    assert!(!dir.path().join("cache/capsnap/bundles/evil").exists());
}
