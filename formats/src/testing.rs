//! Helpers for tests, not part of the API: where the shared corpus is (for
//! this crate's tests), and reading a capture back into owned frames (for
//! the writer's tests here and the collector's tests in `capture`, which
//! check what they wrote with the reader the analyzer uses).

use crate::{Direction, Index, index};

/// A [`Frame`](crate::Frame) that owns its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub number: u64,
    pub ts_ns: Option<i64>,
    pub interface: u32,
    pub data: Vec<u8>,
    pub wire_len: u32,
    pub direction: Option<Direction>,
}

/// Reads a capture back with this crate's reader, as the analyzer will.
///
/// # Panics
///
/// When `bytes` are not a capture: this is for tests.
pub fn read_back(bytes: &[u8]) -> (Index, Vec<Owned>) {
    let ix = index(bytes).expect("pcapng parses");
    let frames = ix
        .chunks
        .iter()
        .flat_map(|c| ix.frames(bytes, c))
        .map(|f| Owned {
            number: f.number,
            ts_ns: f.ts_ns,
            interface: f.interface,
            data: f.data.to_vec(),
            wire_len: f.wire_len,
            direction: f.direction,
        })
        .collect();
    (ix, frames)
}

/// The corpus of real-world files: `$CAPSNAP_CORPUS`, or `../shared/corpus`
/// beside the repository (as the integration tests find it).
#[cfg(test)]
pub(crate) fn corpus() -> std::path::PathBuf {
    std::env::var_os("CAPSNAP_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
        })
}

/// The value at `row` of a string (plain or dictionary-encoded) or
/// unsigned integer column as text, None for a null: for the tests of
/// crates that reach Arrow only through `formats`.
pub fn value_string(col: &dyn arrow_array::Array, row: usize) -> Option<String> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type};
    use arrow_schema::DataType;
    if col.is_null(row) {
        return None;
    }
    Some(match col.data_type() {
        DataType::Utf8 => col.as_string::<i32>().value(row).to_owned(),
        DataType::Dictionary(_, _) => {
            let d = col.as_dictionary::<Int32Type>();
            let k = d.keys().value(row) as usize;
            d.values().as_string::<i32>().value(k).to_owned()
        }
        DataType::UInt8 => col.as_primitive::<UInt8Type>().value(row).to_string(),
        DataType::UInt16 => col.as_primitive::<UInt16Type>().value(row).to_string(),
        DataType::UInt32 => col.as_primitive::<UInt32Type>().value(row).to_string(),
        DataType::UInt64 => col.as_primitive::<UInt64Type>().value(row).to_string(),
        other => format!("<{other}>"),
    })
}
