//! What each source of a collection ended as: the manifest's own types,
//! defined once in `formats::bundle`.

pub use formats::bundle::{SourceReport, Status};
