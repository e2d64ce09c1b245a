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

/// The collector build (`--no-default-features`, static with musl), as the
/// README tells an engineer to make it, or why it cannot be made here.
pub fn collector_build() -> Result<PathBuf, String> {
    const TARGET: &str = "x86_64-unknown-linux-musl";
    let libdir = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .map_err(|e| format!("rustc: {e}"))?;
    let libdir = String::from_utf8_lossy(&libdir.stdout).trim().to_owned();
    let has_std = std::fs::read_dir(&libdir).is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
    });
    if !has_std {
        return Err(format!(
            "the Rust target {TARGET} is not installed (rustup target add {TARGET})"
        ));
    }
    if !Command::new("sh")
        .args(["-c", "command -v musl-gcc"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Err(
            "musl-gcc is missing (apt-get install musl-tools; zstd's C code needs it)".into(),
        );
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--release",
            "--no-default-features",
            "--target",
            TARGET,
        ])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cargo: {e}"))?;
    assert!(
        out.status.success(),
        "the collector build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target_dir.join(TARGET).join("release/capsnap"))
}
