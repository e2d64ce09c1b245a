use std::fmt;

/// Errors from the `formats` parsers. Every variant says where in the input
/// the problem is, so the caller can name the file and the byte offset.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is not a capture file this crate knows (wrong magic number).
    #[error(
        "not a pcap or pcapng file: first bytes are {magic}; expected a pcap magic (a1b2c3d4, a1b23c4d, a1b2cd34) or a pcapng section header (0a0d0d0a)"
    )]
    UnknownFormat { magic: Hex },
    /// The file is shorter than its own file header.
    #[error("file is {len} bytes, too short for a {what} header ({need} bytes)")]
    TooShort {
        what: &'static str,
        len: usize,
        need: usize,
    },
    /// A header field holds a value no writer produces.
    #[error("damaged {what} at byte offset {offset}: {detail}")]
    Damaged {
        what: &'static str,
        offset: u64,
        detail: String,
    },
}

/// Bytes rendered as hex in error messages.
#[derive(Debug)]
pub struct Hex(pub Vec<u8>);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(empty file)");
        }
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
