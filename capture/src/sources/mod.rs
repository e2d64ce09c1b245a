//! The collector's sources, one file each; [`crate::source::SOURCES`]
//! lists them.

pub mod ebpf;
pub mod journal;
pub mod kernel_log;
pub mod log_files;
pub mod netlink;
pub mod packets;
pub mod proc_net;
pub mod processes;
pub mod sysctls;
pub mod tools;
pub mod unix_sockets;
pub mod window_open;
