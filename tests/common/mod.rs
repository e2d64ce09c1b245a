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
