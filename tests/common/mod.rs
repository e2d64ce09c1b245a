//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The real binary under test.
pub fn capsnap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capsnap"))
        .args(args)
        .output()
        .expect("running capsnap")
}

/// ../shared/corpus beside the repository (or $CAPSNAP_CORPUS).
pub fn corpus_dir() -> PathBuf {
    std::env::var_os("CAPSNAP_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"))
}

/// The folder the binary under test was built in (`target/debug`).
pub fn build_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_capsnap"))
        .parent()
        .expect("the binary is in a folder")
        .to_owned()
}

/// Writes `nodes` generated node bundles into `dir` with the fleet
/// generator (examples/gen_fleet.rs, built with the tests).
pub fn generate_fleet(dir: &std::path::Path, nodes: usize) {
    let generator = build_dir().join("examples/gen_fleet");
    assert!(
        generator.is_file(),
        "{} is missing: build the examples with the tests (cargo nextest run --workspace builds them)",
        generator.display()
    );
    let out = Command::new(&generator)
        .arg(dir)
        .arg(nodes.to_string())
        .output()
        .expect("running gen_fleet");
    assert!(
        out.status.success(),
        "gen_fleet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The kept sample bundles.
pub fn sample_bundles() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples");
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .expect("samples/")
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "capsnap").then(|| p.to_string_lossy().into_owned())
        })
        .collect();
    v.sort();
    assert!(v.len() >= 6, "samples/ lost its bundles: {v:?}");
    v
}

/// stdout of a run that must succeed (exit 0, or 1 for `detect` finding
/// something when `found_ok`).
pub fn ok_stdout(out: &Output, found_ok: bool) -> String {
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || (found_ok && code == 1),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
