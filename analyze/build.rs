//! Finds the detections: every `queries/*.sql` file becomes an entry of
//! `detect::SOURCES`, so adding a detection is adding one file.

use std::path::Path;

fn main() {
    // Read at run time, not with env!(): a build script binary is reused
    // by another clone sharing the target directory (CI's does), and a path
    // baked in at its compile time would read that other clone's queries.
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest_dir).join("../queries");
    println!("cargo::rerun-if-changed={}", dir.display());
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let path = e.path().canonicalize().ok()?;
            name.ends_with(".sql")
                .then(|| (name, path.to_string_lossy().into_owned()))
        })
        .collect();
    files.sort();
    let mut out = String::from("&[\n");
    for (name, path) in &files {
        out.push_str(&format!("    ({name:?}, include_str!({path:?})),\n"));
    }
    out.push_str("]\n");
    let target =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("detections.rs");
    std::fs::write(&target, out).unwrap_or_else(|e| panic!("writing {}: {e}", target.display()));
}
