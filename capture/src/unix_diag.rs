//! Unix sockets through sock_diag. (Being written: see the helper task.)

/// One unix socket of the current network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixSocket {
    pub inode: u64,
}

/// Unix sockets of the calling thread's network namespace.
pub fn unix_sockets() -> std::io::Result<Vec<UnixSocket>> {
    unimplemented!("being written")
}
