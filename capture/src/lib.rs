//! The Linux collector behind `capsnap collect`: the only crate that
//! touches the live system.
//!
//! Data flow: find the network namespaces in use (through /proc/*/ns/net)
//! and the processes, containers and pods in each ([`netns`]); in every
//! selected namespace at once, capture packets (AF_PACKET, written as
//! pcapng) and snapshot /proc/net, sysctls, unix sockets (sock_diag),
//! netfilter rules and conntrack; beside them run the bpftrace probes; then
//! write every raw artifact and a manifest (each source with its status and
//! reason) into one tar+zstd bundle ([`collect()`]). Every source is bounded
//! in time and reports instead of failing the run. [`watch()`] runs the
//! same sources for hours, keeping the last minutes in a ring, and writes a
//! bundle when a trigger fires.

mod bundle;
mod collect;
mod ebpf;
mod netlink;
mod netns;
mod packets;
mod redact;
mod report;
mod runtime;
mod source;
mod sources;
mod space;
mod sys;
mod tool;
mod unix_diag;
mod watch;

pub use bundle::{
    FORMAT_VERSION, Manifest, Member, members as bundle_members, write as write_bundle,
};
pub use collect::{Error, Options, Outcome, collect, install_signal_handlers};
pub use ebpf::{EbpfOptions, EbpfSession, Loader, start_bpftrace};
pub use netns::{Netns, Selector};
pub use packets::{CaptureOptions, CaptureTarget, capture_packets};
pub use report::{SourceReport, Status};
pub use runtime::{StateRoots, named_namespaces};
pub use space::DiskBudget;
pub use unix_diag::{UnixSocket, unix_sockets};
pub use watch::{Summary as WatchSummary, TriggerKind, WatchOptions, watch};
