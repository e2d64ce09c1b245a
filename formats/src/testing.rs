//! Helpers for this crate's tests.

/// The corpus of real-world files: `$CAPSNAP_CORPUS`, or `../shared/corpus`
/// beside the repository (as the integration tests find it).
pub(crate) fn corpus() -> std::path::PathBuf {
    std::env::var_os("CAPSNAP_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
        })
}
