//! Pure parsers: bytes in, Arrow record batches out.
//!
//! Data flow for a capture file: [`index`] walks the file once, learning its
//! sections and interfaces and cutting it into [`Chunk`]s at record
//! boundaries; each chunk's [`Frame`]s are decoded ([`decode()`]) and appended
//! to a [`PacketBuilder`] (the `packets` table, projected columns only) or
//! counted into a [`FlowTable`] (the `flows` table). Chunks are independent,
//! so callers decode them in parallel.
//!
//! Nothing here touches the file system or panics on bad bytes: damage is
//! reported with its byte offset and everything readable around it is kept.
//! [`TABLES`] is the one list of the tables this crate can build.
//!
//! Text artifacts (/proc files, tool output, JSON lines from the collector)
//! go through [`READERS`]: each [`Reader`] claims files by path and first
//! bytes and appends [`Rows`] to its table, whose first columns are the
//! [`CONTEXT`] (bundle, host, netns) taken from the file's [`Origin`].

mod capfile;
mod decode;
mod error;
mod flows;
mod manifest;
mod packets;
mod processes;
mod rows;
mod sockstat;
mod table;

pub use capfile::{
    Chunk, Damage, Direction, Frame, Frames, Index, Interface, Layout, index, index_with_progress,
};
pub use decode::{Addr, Headers, L3, Tcp, decode, link, tcp_flag};
pub use error::{Error, Hex};
pub use flows::FlowTable;
pub use packets::{CaptureMeta, InterfaceMeta, PacketBuilder};
pub use manifest::{Manifest, Member};
pub use rows::{CONTEXT, Origin, Reader, Rows, Skipped, V, empty, read};
pub use table::{Column, Kind, Table};

/// Every table this crate defines, in the order `capsnap tables` lists them.
pub const TABLES: &[Table] = &[
    packets::TABLE,
    flows::TABLE,
    sockstat::TABLE,
    processes::TABLE,
    processes::fds::TABLE,
    manifest::TABLE,
    manifest::collection::TABLE,
];

/// Every reader of text artifacts, tried in this order on each file of a
/// bundle or directory; every reader that claims a file reads it (the
/// manifest feeds both `netns` and `collection`).
pub const READERS: &[Reader] = &[
    sockstat::READER,
    processes::READER,
    processes::fds::READER,
    manifest::NETNS_READER,
    manifest::collection::READER,
];

/// The `packets` table.
pub const PACKETS: Table = packets::TABLE;
/// The `flows` table.
pub const FLOWS: Table = flows::TABLE;
