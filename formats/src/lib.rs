//! Pure parsers: bytes in, Arrow record batches out.
//!
//! Data flow for a capture file: [`index`] (or an [`Indexer`] fed the file
//! piece by piece) walks the file once, learning its sections and interfaces
//! and cutting it into [`Chunk`]s at record boundaries; each chunk's [`Frame`]s are decoded ([`decode()`]) and appended
//! to a [`PacketBuilder`] (the `packets` table, projected columns only) or
//! counted into a [`FlowTable`] (the `flows` table). Chunks are independent,
//! so callers decode them in parallel.
//!
//! Nothing here touches the file system or panics on bad bytes: damage is
//! reported with its byte offset and everything readable around it is kept.
//! [`TABLES`] is the one list of the tables this crate can build.

mod capfile;
mod decode;
mod error;
mod flows;
mod packets;
mod table;

pub use capfile::{
    Chunk, Damage, Direction, Frame, Frames, Index, Indexer, Interface, Layout, index,
};
pub use decode::{Addr, Headers, L3, Tcp, decode, link, tcp_flag};
pub use error::{Error, Hex};
pub use flows::FlowTable;
pub use packets::{CaptureMeta, InterfaceMeta, PacketBuilder};
pub use table::{Column, Kind, Table};

/// Every table this crate defines, in the order `capsnap tables` lists them.
pub const TABLES: &[Table] = &[packets::TABLE, flows::TABLE];

/// The `packets` table.
pub const PACKETS: Table = packets::TABLE;
/// The `flows` table.
pub const FLOWS: Table = flows::TABLE;
