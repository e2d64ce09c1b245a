//! Unix sockets of one network namespace, read through NETLINK_SOCK_DIAG.
//!
//! Why sock_diag and not only /proc/net/unix: the evidence for incident 1
//! (DESIGN.md: a second daemon unlinked and re-bound a listener's path) is
//! that a listening socket's path now leads to another file. /proc/net/unix
//! prints the path but not which file the socket was bound to; unix_diag does.
//! `UNIX_DIAG_VFS` carries the inode and device of the socket file bind(2)
//! created (net/unix/diag.c, `sk_diag_dump_vfs`, read from
//! `unix_sk(sk)->path`, which the socket holds for its whole life, also after
//! the path is unlinked). Comparing it with a stat of the path now tells
//! whether a client that connects to the path still reaches this socket
//! ([`UnixSocket::replaced`]). The dump also gives the peer inode of connected
//! sockets and, for listeners, the accept queue (`UNIX_DIAG_RQLEN`).
//!
//! The dump covers the network namespace of the calling *thread*: the netlink
//! socket is created in it and `unix_diag_dump` keeps only sockets with
//! `net_eq(sock_net(sk), net)`; the collector enters each namespace with
//! setns(2) on a thread of its own. Paths, however, are resolved in the mount
//! namespace of capsnap itself: see [`UnixSocket::restat_in`].

use std::borrow::Cow;
use std::ffi::{CString, OsStr};
use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Write};
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::netlink;
use formats::netlink::{Attrs, NETLINK_SOCK_DIAG, Request, SOCK_DIAG_BY_FAMILY, messages};

// linux/unix_diag.h
const UNIX_DIAG_REQ_LEN: usize = 24;
const UNIX_DIAG_MSG_LEN: usize = 16;
const UDIAG_SHOW_NAME: u32 = 0x01;
const UDIAG_SHOW_VFS: u32 = 0x02;
const UDIAG_SHOW_PEER: u32 = 0x04;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
// The attribute enum starts at 0 with UNIX_DIAG_NAME: there is no
// UNIX_DIAG_NONE, despite the header's own comment asking for one.
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_VFS: u16 = 1;
const UNIX_DIAG_PEER: u16 = 2;
const UNIX_DIAG_RQLEN: u16 = 4;

/// `struct unix_diag_req` asking for every unix socket in `states`, a
/// mask of 1 << sk_state (`udiag_states`).
const fn unix_diag_req(states: u32) -> [u8; UNIX_DIAG_REQ_LEN] {
    let mut b = [0u8; UNIX_DIAG_REQ_LEN];
    b[0] = libc::AF_UNIX as u8; // sdiag_family; sdiag_protocol and pad stay 0
    let states = states.to_le_bytes();
    b[4] = states[0];
    b[5] = states[1];
    b[6] = states[2];
    b[7] = states[3];
    // udiag_ino 0: a dump, not a lookup of one socket.
    let show =
        (UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN).to_le_bytes();
    b[12] = show[0];
    b[13] = show[1];
    b[14] = show[2];
    b[15] = show[3];
    // udiag_cookie: INET_DIAG_NOCOOKIE, i.e. "do not check".
    let mut i = 16;
    while i < 24 {
        b[i] = 0xff;
        i += 1;
    }
    b
}

const UNIX_DIAG_REQ: [u8; UNIX_DIAG_REQ_LEN] = unix_diag_req(u32::MAX);
const UNIX_REQUEST: Request = Request {
    kind: SOCK_DIAG_BY_FAMILY,
    body: &UNIX_DIAG_REQ,
};
/// include/net/tcp_states.h TCP_LISTEN, which unix sockets use too: the
/// kernel leaves the other states out, so this dump stays cheap enough to
/// repeat every few seconds (`capsnap watch`).
const LISTENING_REQ: [u8; UNIX_DIAG_REQ_LEN] = unix_diag_req(1 << 10);
const LISTENING_REQUEST: Request = Request {
    kind: SOCK_DIAG_BY_FAMILY,
    body: &LISTENING_REQ,
};

/// One unix socket of the current network namespace, as unix_diag reports
/// it, plus what its path leads to at collection time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixSocket {
    /// Inode of the socket in sockfs: the `socket:[N]` of /proc/PID/fd and
    /// the `Inode` column of /proc/net/unix. unix_diag carries it as u32.
    pub inode: u64,
    /// "stream", "dgram", "seqpacket" (or "unknown").
    pub kind: &'static str,
    /// Socket state. The kernel keeps TCP state numbers in `sk_state` of unix
    /// sockets (include/net/tcp_states.h): 1 ESTABLISHED "established",
    /// 2 SYN_SENT "connecting", 7 CLOSE "unconnected", 10 LISTEN "listen";
    /// any other TCP number gets its ss name in lower case.
    pub state: &'static str,
    /// Bound name: a filesystem path (possibly relative: it is kept as given
    /// to bind(2)), or an abstract name shown as "@" + rest with every NUL as
    /// "@", like ss and /proc/net/unix do. None if unbound. Accepted sockets
    /// share their listener's name and bound file (so count listeners per
    /// path with `state == "listen"`). Bytes that are not UTF-8 are replaced
    /// here (U+FFFD) but kept exactly for the stat and in [`write_tsv`].
    pub path: Option<String>,
    /// Device of the filesystem the socket file was created on at bind time
    /// (UNIX_DIAG_VFS), converted from the kernel's internal dev_t encoding
    /// (`MAJOR << 20 | MINOR`, include/linux/kdev_t.h) to the one stat(2)
    /// reports, so it compares directly with `path_now_dev`.
    pub bound_dev: Option<u32>,
    /// Inode of the socket file created at bind time (UNIX_DIAG_VFS). The
    /// kernel truncates `i_ino` to 32 bits here.
    pub bound_ino: Option<u32>,
    /// Inode of the connected peer socket (UNIX_DIAG_PEER). `Some(0)` for a
    /// client whose connection still waits in a listener's accept queue: the
    /// server end has no inode until accept(2), and unix_diag_dump skips
    /// sockets without one, so that end is not listed at all.
    pub peer: Option<u64>,
    /// UNIX_DIAG_RQLEN (net/unix/diag.c, `sk_diag_show_rqlen`): for a
    /// listener, connections waiting in the accept queue; otherwise unread
    /// bytes (stream, seqpacket) or the size of the next datagram (dgram).
    pub rqueue: Option<u32>,
    /// UNIX_DIAG_RQLEN: for a listener, the backlog limit given to listen(2)
    /// (capped at net.core.somaxconn); otherwise the socket's write memory
    /// in flight (`sk_wmem_alloc`: sent, not yet read by the peer, counted
    /// in skb truesize, so above the payload bytes).
    pub wqueue: Option<u32>,
    /// st_dev of what the path leads to now (stat(2), symlinks followed).
    pub path_now_dev: Option<u64>,
    /// st_ino of what the path leads to now.
    pub path_now_ino: Option<u64>,
    /// Type of what the path leads to now: "socket", "file", "directory",
    /// "fifo", "char-device", "block-device", "symlink" or "unknown". None
    /// if nothing is there, for names that are not absolute paths, or when
    /// the stat failed for another reason (see [`UnixSocket::replaced`]).
    pub path_now_kind: Option<&'static str>,
    /// The name exactly as bound: abstract names with their leading NUL,
    /// filesystem paths without the terminating NUL.
    name: Vec<u8>,
    path_check: PathCheck,
}

/// What the stat of a socket's path found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathCheck {
    /// Unbound, abstract, or a relative path (relative to the binder's
    /// working directory at bind time, which is not known).
    NotApplicable,
    /// A filesystem path not stat'ed yet.
    Unchecked,
    Found,
    /// ENOENT or ENOTDIR: nothing at the path now.
    Missing,
    /// Another error (permission, symlink loop, root unreachable): unknown.
    Failed,
}

impl UnixSocket {
    /// Whether the socket's path no longer leads to the socket file it was
    /// bound to: `Some(true)` when the path is gone, holds another kind of
    /// file, or a socket file with another inode (incident 1: the path was
    /// unlinked and re-bound; this socket is unreachable by path while it
    /// still runs). `Some(false)` when the path leads to the bound file.
    /// `None` when it does not apply or is unknown: unbound, abstract or
    /// relative names, no UNIX_DIAG_VFS, or a stat that failed otherwise.
    ///
    /// Only inodes are compared (the bound one is truncated to 32 bits by
    /// the kernel, so the stat'ed one is too): overlayfs may report an st_dev
    /// other than the superblock's for the very same file.
    ///
    /// The answer is only as good as the mount namespace the path was
    /// resolved in: see [`UnixSocket::restat_in`].
    pub fn replaced(&self) -> Option<bool> {
        match self.path_check {
            PathCheck::Missing => Some(true),
            PathCheck::Found => {
                if self.path_now_kind != Some("socket") {
                    return Some(true);
                }
                let bound = self.bound_ino?;
                let now = self.path_now_ino?;
                // Truncation intended: UNIX_DIAG_VFS carries i_ino as u32.
                Some(now as u32 != bound)
            }
            PathCheck::NotApplicable | PathCheck::Unchecked | PathCheck::Failed => None,
        }
    }

    /// Redoes the stat of the path as seen from `root`, e.g.
    /// `/proc/PID/root` of a process owning the socket.
    ///
    /// [`unix_sockets`] stats paths in capsnap's own mount namespace, but a
    /// container has its own: a socket bound at /tmp/x.sock inside one is
    /// not at /tmp/x.sock on the host, and would look replaced (or match an
    /// unrelated host file). For sockets of processes in another mount
    /// namespace the collector must call this with that process's root.
    ///
    /// The lookup uses openat2(2) with RESOLVE_IN_ROOT so that absolute
    /// symlinks inside the container (/var/run -> /run is common) resolve
    /// under `root`, not on the host. Where openat2 is missing (before Linux
    /// 5.6) or refused by seccomp, it falls back to a plain stat of
    /// `root` + path, in which such symlinks escape to the host.
    pub fn restat_in(&mut self, root: &Path) {
        self.restat(Some(root));
    }

    fn restat(&mut self, root: Option<&Path>) {
        self.path_now_dev = None;
        self.path_now_ino = None;
        self.path_now_kind = None;
        if !self.name.starts_with(b"/") {
            self.path_check = PathCheck::NotApplicable;
            return;
        }
        let found = match root {
            None => std::fs::metadata(OsStr::from_bytes(&self.name)),
            Some(root) => stat_in_root(root, &self.name),
        };
        self.path_check = match found {
            Ok(m) => {
                self.path_now_dev = Some(m.dev());
                self.path_now_ino = Some(m.ino());
                self.path_now_kind = Some(file_kind(&m));
                PathCheck::Found
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                PathCheck::Missing
            }
            Err(_) => PathCheck::Failed,
        };
    }

    /// Parses one unix_diag_msg and its attributes (the payload of one
    /// SOCK_DIAG_BY_FAMILY message). None if the fixed part is short or not
    /// AF_UNIX; a malformed attribute is skipped, and attributes after a
    /// broken attribute header are lost, the socket is kept.
    fn from_diag(payload: &[u8]) -> Option<UnixSocket> {
        let msg: &[u8; UNIX_DIAG_MSG_LEN] = payload.first_chunk()?;
        if msg[0] != libc::AF_UNIX as u8 {
            return None;
        }
        let mut s = UnixSocket {
            inode: u64::from(u32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]])),
            kind: kind_name(msg[1]),
            state: state_name(msg[2]),
            path: None,
            bound_dev: None,
            bound_ino: None,
            peer: None,
            rqueue: None,
            wqueue: None,
            path_now_dev: None,
            path_now_ino: None,
            path_now_kind: None,
            name: Vec::new(),
            path_check: PathCheck::NotApplicable,
        };
        for (kind, data) in Attrs(&payload[UNIX_DIAG_MSG_LEN..]) {
            match kind {
                UNIX_DIAG_NAME if !data.is_empty() => {
                    // sk_diag_dump_name puts addr->len - sizeof(short) bytes
                    // of sun_path: for a filesystem path that includes the
                    // NUL unix_mkname_bsd appended; abstract names are exact.
                    let name = if data[0] == 0 {
                        data
                    } else {
                        data.split(|&b| b == 0).next().unwrap_or(data)
                    };
                    s.name = name.to_vec();
                }
                UNIX_DIAG_VFS => {
                    if let Some(v) = data.first_chunk::<8>() {
                        s.bound_ino = Some(u32::from_ne_bytes([v[0], v[1], v[2], v[3]]));
                        let dev = u32::from_ne_bytes([v[4], v[5], v[6], v[7]]);
                        s.bound_dev = Some(kernel_dev_to_user(dev));
                    }
                }
                UNIX_DIAG_PEER => {
                    if let Some(v) = data.first_chunk::<4>() {
                        s.peer = Some(u64::from(u32::from_ne_bytes(*v)));
                    }
                }
                UNIX_DIAG_RQLEN => {
                    if let Some(v) = data.first_chunk::<8>() {
                        s.rqueue = Some(u32::from_ne_bytes([v[0], v[1], v[2], v[3]]));
                        s.wqueue = Some(u32::from_ne_bytes([v[4], v[5], v[6], v[7]]));
                    }
                }
                _ => {}
            }
        }
        s.path = shown_name(&s.name).map(|n| String::from_utf8_lossy(&n).into_owned());
        if s.name.starts_with(b"/") {
            s.path_check = PathCheck::Unchecked;
        }
        Some(s)
    }
}

/// Unix sockets of the calling thread's network namespace, sorted by inode,
/// each path stat'ed in capsnap's mount namespace (see
/// [`UnixSocket::restat_in`] for sockets of containers).
///
/// The stats can block on a hung network filesystem holding a socket path:
/// run this on a thread the collector can abandon.
///
/// # Errors
/// When the netlink socket cannot be opened, the kernel refuses the dump
/// (ENOENT: no unix_diag in this kernel), or it does not answer in time.
pub fn unix_sockets() -> io::Result<Vec<UnixSocket>> {
    dump_unix_sockets().map(|d| d.sockets)
}

/// A unix_diag dump with the count of messages that could not be parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnixDump {
    pub sockets: Vec<UnixSocket>,
    /// Damaged messages skipped (a short unix_diag_msg, a broken netlink
    /// header that hides the rest of its datagram). The kernel never sends
    /// them; a non-zero count means the source is partial.
    pub skipped: usize,
}

/// Like [`unix_sockets`], also counting what was skipped.
pub fn dump_unix_sockets() -> io::Result<UnixDump> {
    dump_with_buffer(&UNIX_REQUEST, netlink::RECV_BUF_LEN)
}

/// The listening unix sockets of the calling thread's namespace, each path
/// stat'ed as [`unix_sockets`] does.
pub fn listening_unix_sockets() -> io::Result<Vec<UnixSocket>> {
    dump_with_buffer(&LISTENING_REQUEST, netlink::RECV_BUF_LEN).map(|d| d.sockets)
}

fn dump_with_buffer(request: &Request, len: usize) -> io::Result<UnixDump> {
    let seq = netlink::next_seq();
    let reply = netlink::request_with_buffer(NETLINK_SOCK_DIAG, request, seq, len)?;
    if let Some(err) = reply.error {
        return Err(kernel_error(err));
    }
    let mut dump = parse_reply(&reply.bytes, seq);
    // The dump walks hash slots across recv calls with no consistency
    // check (unix_diag_dump remembers slot and index in cb->args, and sets
    // no NLM_F_DUMP_INTR): sockets created, closed or bound meanwhile shift
    // it, so one can be listed twice (or missed). Duplicates are dropped
    // here.
    dump.sockets.sort_by_key(|s| s.inode);
    dump.sockets.dedup_by_key(|s| s.inode);
    for s in &mut dump.sockets {
        s.restat(None);
    }
    Ok(dump)
}

/// The sockets of a reply's datagrams (messages of request `seq`).
fn parse_reply(bytes: &[u8], seq: u32) -> UnixDump {
    let mut dump = UnixDump::default();
    let mut walk = messages(bytes);
    for m in walk.by_ref() {
        if m.seq != seq || m.kind != SOCK_DIAG_BY_FAMILY {
            continue;
        }
        match UnixSocket::from_diag(m.payload) {
            Some(s) => dump.sockets.push(s),
            None => dump.skipped += 1,
        }
    }
    if walk.damage().is_some() {
        // The next message cannot be located: the rest is lost.
        dump.skipped += 1;
    }
    dump
}

fn kernel_error(err: i32) -> io::Error {
    let e = io::Error::from_raw_os_error(err.saturating_neg());
    if err == -libc::ENOENT {
        // sock_diag answers ENOENT when no handler is registered for the
        // family (net/core/sock_diag.c, __sock_diag_cmd).
        io::Error::new(
            e.kind(),
            format!(
                "the kernel has no unix_diag (CONFIG_UNIX_DIAG, module unix_diag not loadable): {e}"
            ),
        )
    } else {
        io::Error::new(
            e.kind(),
            format!("unix_diag dump refused by the kernel: {e}"),
        )
    }
}

/// include/net/tcp_states.h, named as described on [`UnixSocket::state`].
fn state_name(state: u8) -> &'static str {
    match state {
        1 => "established",
        2 => "connecting",
        3 => "syn-recv",
        4 => "fin-wait-1",
        5 => "fin-wait-2",
        6 => "time-wait",
        7 => "unconnected",
        8 => "close-wait",
        9 => "last-ack",
        10 => "listen",
        11 => "closing",
        12 => "new-syn-recv",
        _ => "unknown",
    }
}

fn kind_name(kind: u8) -> &'static str {
    match i32::from(kind) {
        libc::SOCK_STREAM => "stream",
        libc::SOCK_DGRAM => "dgram",
        libc::SOCK_SEQPACKET => "seqpacket",
        _ => "unknown",
    }
}

/// Kernel-internal dev_t (include/linux/kdev_t.h: 12-bit major above a
/// 20-bit minor) to the encoding stat(2) returns (`new_encode_dev`, equal to
/// glibc's makedev for such numbers).
fn kernel_dev_to_user(dev: u32) -> u32 {
    let major = dev >> 20;
    let minor = dev & 0xf_ffff;
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

fn file_kind(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_socket() {
        "socket"
    } else if t.is_file() {
        "file"
    } else if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_char_device() {
        "char-device"
    } else if t.is_block_device() {
        "block-device"
    } else {
        "unknown"
    }
}

/// stat of `path` (absolute) with `root` as "/", see [`UnixSocket::restat_in`].
/// Errors opening `root` itself carry no OS error code, so that they read as
/// "unknown" rather than "path missing".
fn stat_in_root(root: &Path, path: &[u8]) -> io::Result<Metadata> {
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(root)
        .map_err(|e| io::Error::other(format!("opening root {}: {e}", root.display())))?;
    let c_path = CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: open_how is plain old data; all zeroes is a valid value.
    let mut how: libc::open_how = unsafe { mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT;
    // SAFETY: dir is open, c_path is NUL-terminated, how is valid for its size.
    let raw = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c_path.as_ptr(),
            &raw const how,
            mem::size_of::<libc::open_how>(),
        )
    };
    if raw >= 0 {
        // SAFETY: raw is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
        return File::from(fd).metadata();
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOSYS | libc::EPERM | libc::E2BIG) => {
            let rel = path.strip_prefix(b"/").unwrap_or(path);
            std::fs::metadata(root.join(OsStr::from_bytes(rel)))
        }
        _ => Err(e),
    }
}

/// The name as shown: abstract names as "@" + rest with NULs as "@".
fn shown_name(name: &[u8]) -> Option<Cow<'_, [u8]>> {
    match name.first() {
        None => None,
        Some(0) => Some(Cow::Owned(
            name.iter()
                .map(|&b| if b == 0 { b'@' } else { b })
                .collect(),
        )),
        Some(_) => Some(Cow::Borrowed(name)),
    }
}

/// Columns of the unix_diag.tsv bundle artifact, in order: the list the
/// `unix_sockets` reader of `formats` reads back.
pub const TSV_COLUMNS: [&str; 13] = formats::UNIX_DIAG_COLUMNS;

/// Writes the `unix_diag.tsv` bundle artifact: a header line of
/// [`TSV_COLUMNS`], then one line per socket, fields separated by one tab,
/// lines ended by `\n`. An empty field is "none" (not applicable or unknown).
///
/// - `inode` (u64): sockfs inode, as in `socket:[N]` and /proc/net/unix.
/// - `kind`: stream, dgram, seqpacket or unknown.
/// - `state`: established, connecting, unconnected, listen (other TCP state
///   numbers by their ss names, or unknown); see [`UnixSocket::state`].
/// - `path`: bound name. Filesystem paths as bound (possibly relative);
///   abstract names as "@" + name with NULs as "@" (as ss shows them; a
///   relative path starting with "@" looks the same). Escaped: `\\` for a
///   backslash, `\t`, `\n`, `\r`, and `\xHH` (two lower-case hex digits) for
///   any other control byte, DEL, and each byte that is not valid UTF-8;
///   nothing else starts with a backslash.
/// - `bound_dev` (u32, stat(2) st_dev encoding) and `bound_ino` (u32, the
///   kernel's truncation of the inode): the socket file created at bind time.
/// - `peer` (u64): inode of the connected peer socket.
/// - `rqueue`, `wqueue` (u32): for listeners the accept queue length and the
///   backlog limit; for others unread bytes in and out.
/// - `path_now_dev`, `path_now_ino` (u64), `path_now_kind`: stat of the path
///   at collection (socket, file, directory, fifo, char-device, block-device,
///   symlink, unknown); empty if nothing is there or it was not stat'ed.
/// - `replaced`: true, false or empty: [`UnixSocket::replaced`] as decided
///   at collection, in the mount namespace the path was stat'ed in.
pub fn write_tsv(sockets: &[UnixSocket], out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "{}", TSV_COLUMNS.join("\t"))?;
    let mut path = String::new();
    for s in sockets {
        path.clear();
        if let Some(name) = shown_name(&s.name) {
            escape_field(&name, &mut path);
        }
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            s.inode,
            s.kind,
            s.state,
            path,
            Field(s.bound_dev),
            Field(s.bound_ino),
            Field(s.peer),
            Field(s.rqueue),
            Field(s.wqueue),
            Field(s.path_now_dev),
            Field(s.path_now_ino),
            Field(s.path_now_kind),
            Field(s.replaced()),
        )?;
    }
    Ok(())
}

/// An optional TSV field: empty for None.
struct Field<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for Field<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => Ok(()),
        }
    }
}

/// The escaping documented on [`write_tsv`].
fn escape_field(bytes: &[u8], out: &mut String) {
    use std::fmt::Write as _;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c if c.is_ascii_control() => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
    use std::path::PathBuf;

    /// The sockfs inode of a socket: fstat of its descriptor.
    fn sock_ino(fd: &impl std::os::fd::AsFd) -> u64 {
        let owned = fd.as_fd().try_clone_to_owned().expect("dup");
        File::from(owned).metadata().expect("fstat").ino()
    }

    fn find(all: &[UnixSocket], inode: u64) -> &UnixSocket {
        all.iter()
            .find(|s| s.inode == inode)
            .unwrap_or_else(|| panic!("socket {inode} missing from the unix_diag dump"))
    }

    #[test]
    fn listener_is_found_with_its_bound_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let file = std::fs::metadata(&path).unwrap();

        let all = unix_sockets().unwrap();
        let s = find(&all, sock_ino(&listener));
        assert_eq!(s.kind, "stream");
        assert_eq!(s.state, "listen");
        assert_eq!(s.path.as_deref(), path.to_str());
        assert_eq!(s.bound_ino, Some(file.ino() as u32));
        assert_eq!(s.bound_dev.map(u64::from), Some(file.dev()));
        assert_eq!(s.path_now_ino, Some(file.ino()));
        assert_eq!(s.path_now_dev, Some(file.dev()));
        assert_eq!(s.path_now_kind, Some("socket"));
        assert_eq!(s.peer, None);
        assert_eq!(s.rqueue, Some(0));
        assert_eq!(s.replaced(), Some(false));
    }

    #[test]
    fn incident_1_rebound_path_marks_old_listener_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prometheus-nginx.socket");
        let old = UnixListener::bind(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let new = UnixListener::bind(&path).unwrap();

        let all = unix_sockets().unwrap();
        let old = find(&all, sock_ino(&old));
        let new = find(&all, sock_ino(&new));
        for s in [old, new] {
            assert_eq!(s.state, "listen");
            assert_eq!(s.path.as_deref(), path.to_str());
        }
        assert_ne!(old.bound_ino, new.bound_ino);
        assert_eq!(new.path_now_ino.map(|i| i as u32), new.bound_ino);
        assert_eq!(old.replaced(), Some(true));
        assert_eq!(new.replaced(), Some(false));
    }

    #[test]
    fn unlinked_path_marks_listener_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::fs::remove_file(&path).unwrap();

        let all = unix_sockets().unwrap();
        let s = find(&all, sock_ino(&listener));
        assert!(s.bound_ino.is_some());
        assert_eq!(s.path_now_kind, None);
        assert_eq!(s.replaced(), Some(true));
    }

    #[test]
    fn abstract_name_is_shown_with_at_and_not_checked() {
        let name = format!(
            "capsnap-test-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        );
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixListener::bind_addr(&addr).unwrap();

        let all = unix_sockets().unwrap();
        let s = find(&all, sock_ino(&listener));
        assert_eq!(s.path, Some(format!("@{name}")));
        assert_eq!(s.bound_ino, None);
        assert_eq!(s.path_now_kind, None);
        assert_eq!(s.replaced(), None);
    }

    #[test]
    fn connected_pair_points_at_each_other() {
        let (a, b) = UnixStream::pair().unwrap();
        let (ia, ib) = (sock_ino(&a), sock_ino(&b));

        let all = unix_sockets().unwrap();
        let (sa, sb) = (find(&all, ia), find(&all, ib));
        assert_eq!(sa.peer, Some(ib));
        assert_eq!(sb.peer, Some(ia));
        for s in [sa, sb] {
            assert_eq!(s.kind, "stream");
            assert_eq!(s.state, "established");
            assert_eq!(s.path, None);
            assert_eq!(s.replaced(), None);
        }
    }

    #[test]
    fn listener_queue_is_pending_connections_and_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sock");
        let listener = UnixListener::bind(&path).unwrap();
        // listen(2) again only changes the backlog (unix_listen).
        // SAFETY: plain syscall on a descriptor we own.
        assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 7) }, 0);
        let client = UnixStream::connect(&path).unwrap();

        let all = unix_sockets().unwrap();
        let s = find(&all, sock_ino(&listener));
        assert_eq!(s.rqueue, Some(1));
        assert_eq!(s.wqueue, Some(7));
        // The server end waiting in the accept queue has no inode yet: it is
        // not listed, and the client's peer reads 0.
        let client = find(&all, sock_ino(&client));
        assert_eq!(client.state, "established");
        assert_eq!(client.peer, Some(0));
        let same_path = all.iter().filter(|x| x.path.as_deref() == path.to_str());
        assert_eq!(same_path.count(), 1, "only the listener carries the path");
    }

    #[test]
    fn truncated_datagram_restarts_the_dump_and_multipart_replies_are_complete() {
        let pairs: Vec<_> = (0..150).map(|_| UnixStream::pair().unwrap()).collect();
        // 64 bytes cannot hold one datagram: the dump restarts with a buffer
        // the size MSG_TRUNC reported, and then spans many datagrams.
        let dump = dump_with_buffer(&UNIX_REQUEST, 64).unwrap();
        assert_eq!(dump.skipped, 0);
        for (a, b) in &pairs {
            assert_eq!(find(&dump.sockets, sock_ino(a)).peer, Some(sock_ino(b)));
        }
        assert!(dump.sockets.windows(2).all(|w| w[0].inode < w[1].inode));
    }

    /// Reverses the escaping documented on write_tsv.
    fn unescape(field: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut bytes = field.bytes();
        while let Some(b) = bytes.next() {
            if b != b'\\' {
                out.push(b);
                continue;
            }
            match bytes.next() {
                Some(b'\\') => out.push(b'\\'),
                Some(b't') => out.push(b'\t'),
                Some(b'n') => out.push(b'\n'),
                Some(b'r') => out.push(b'\r'),
                Some(b'x') => {
                    let hex = [bytes.next().unwrap(), bytes.next().unwrap()];
                    let hex = std::str::from_utf8(&hex).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                }
                other => panic!("bad escape {other:?} in {field:?}"),
            }
        }
        out
    }

    #[test]
    fn tsv_round_trips_header_and_escaped_paths() {
        let dir = tempfile::tempdir().unwrap();
        let odd: PathBuf = dir.path().join("a\tb\nc\\d\r\x01.sock");
        let non_utf8 = dir.path().join(OsStr::from_bytes(b"caf\xe9.sock"));
        let l1 = UnixListener::bind(&odd).unwrap();
        let l2 = UnixListener::bind(&non_utf8).unwrap();
        let all = unix_sockets().unwrap();
        let sockets = [
            find(&all, sock_ino(&l1)).clone(),
            find(&all, sock_ino(&l2)).clone(),
        ];
        // The exact bytes were stat'ed, not the lossy String.
        assert_eq!(sockets[1].replaced(), Some(false));
        assert!(
            sockets[1]
                .path
                .as_deref()
                .unwrap()
                .ends_with("caf\u{fffd}.sock")
        );

        let mut out = Vec::new();
        write_tsv(&sockets, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "inode\tkind\tstate\tpath\tbound_dev\tbound_ino\tpeer\trqueue\twqueue\t\
             path_now_dev\tpath_now_ino\tpath_now_kind\treplaced"
        );
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split('\t').collect()).collect();
        assert_eq!(rows.len(), 2);
        for (row, (s, path)) in rows.iter().zip(sockets.iter().zip([&odd, &non_utf8])) {
            assert_eq!(row.len(), TSV_COLUMNS.len());
            assert_eq!(row[0], s.inode.to_string());
            assert_eq!(&row[1..3], ["stream", "listen"]);
            assert_eq!(unescape(row[3]), path.as_os_str().as_bytes());
            assert_eq!(row[5], s.bound_ino.unwrap().to_string());
            assert_eq!(row[6], "", "no peer is an empty field");
            assert_eq!(row[11], "socket");
            assert_eq!(row[12], "false");
        }
        assert!(
            rows[0][3].ends_with("/a\\tb\\nc\\\\d\\r\\x01.sock"),
            "{}",
            rows[0][3]
        );
        assert!(rows[1][3].ends_with("/caf\\xe9.sock"), "{}", rows[1][3]);
    }

    #[test]
    fn restat_in_resolves_absolute_symlinks_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let all = unix_sockets().unwrap();
        let mut s = find(&all, sock_ino(&listener)).clone();

        // A fake container root where the socket's directory is an absolute
        // symlink to /real, holding a hard link to the socket file.
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("real")).unwrap();
        std::fs::hard_link(&path, root.path().join("real/c.sock")).unwrap();
        let inside = root.path().join(dir.path().strip_prefix("/").unwrap());
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("/real", &inside).unwrap();
        s.restat_in(root.path());
        assert_eq!(s.path_now_kind, Some("socket"));
        assert_eq!(s.replaced(), Some(false));

        // Another socket file there: replaced, as seen from that root.
        std::fs::remove_file(root.path().join("real/c.sock")).unwrap();
        let _other = UnixListener::bind(root.path().join("real/c.sock")).unwrap();
        s.restat_in(root.path());
        assert_eq!(s.replaced(), Some(true));

        // Nothing there.
        std::fs::remove_file(root.path().join("real/c.sock")).unwrap();
        s.restat_in(root.path());
        assert_eq!(s.replaced(), Some(true));

        // A root that is gone (the process exited) is unknown, not "gone".
        s.restat_in(&root.path().join("no-such-root"));
        assert_eq!(s.replaced(), None);
    }

    // --- the parser over hand-made bytes ---

    use formats::netlink::{NLA_HDRLEN, NLMSG_DONE, NLMSG_HDRLEN, align4};

    const SEQ: u32 = 0x6361_7073;

    fn nlmsg(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0x2u16.to_ne_bytes()); // NLM_F_MULTI
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m.resize(align4(m.len()), 0);
        m
    }

    fn attr(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((NLA_HDRLEN + data.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(data);
        a.resize(align4(a.len()), 0);
        a
    }

    fn diag_msg(kind: u8, state: u8, ino: u32, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut p = vec![libc::AF_UNIX as u8, kind, state, 0];
        p.extend_from_slice(&ino.to_ne_bytes());
        p.extend_from_slice(&[0xaa; 8]); // cookie
        for a in attrs {
            p.extend_from_slice(a);
        }
        p
    }

    fn pair(a: u32, b: u32) -> Vec<u8> {
        [a.to_ne_bytes(), b.to_ne_bytes()].concat()
    }

    /// A listener on /run/x.sock, a connected abstract socket, DONE.
    fn sample_reply() -> Vec<u8> {
        let listener = diag_msg(
            1,
            10,
            1001,
            &[
                attr(UNIX_DIAG_NAME, b"/run/x.sock\0"),
                // dev 8:1 in the kernel's encoding.
                attr(UNIX_DIAG_VFS, &pair(77, (8 << 20) | 1)),
                attr(UNIX_DIAG_RQLEN, &pair(3, 128)),
                attr(6, &[0]), // UNIX_DIAG_SHUTDOWN, always sent
            ],
        );
        let connected = diag_msg(
            2,
            1,
            1002,
            &[
                attr(UNIX_DIAG_NAME, b"\0ab\0"),
                attr(UNIX_DIAG_PEER, &1003u32.to_ne_bytes()),
                attr(UNIX_DIAG_RQLEN, &pair(0, 0)),
            ],
        );
        [
            nlmsg(SOCK_DIAG_BY_FAMILY, SEQ, &listener),
            nlmsg(SOCK_DIAG_BY_FAMILY, SEQ, &connected),
            nlmsg(NLMSG_DONE, SEQ, &0i32.to_ne_bytes()),
        ]
        .concat()
    }

    #[test]
    fn parses_a_hand_made_reply() {
        let dump = parse_reply(&sample_reply(), SEQ);
        assert_eq!(dump.skipped, 0);
        let [l, c] = &dump.sockets[..] else {
            panic!("{:?}", dump.sockets)
        };
        assert_eq!((l.inode, l.kind, l.state), (1001, "stream", "listen"));
        assert_eq!(l.path.as_deref(), Some("/run/x.sock"));
        assert_eq!(l.name, b"/run/x.sock");
        assert_eq!(l.bound_ino, Some(77));
        // 8:1 as stat(2) reports it (makedev(8, 1) = 0x801).
        assert_eq!(l.bound_dev, Some(0x801));
        assert_eq!((l.rqueue, l.wqueue), (Some(3), Some(128)));
        assert_eq!(l.path_check, PathCheck::Unchecked);
        assert_eq!(l.replaced(), None, "not stat'ed yet");
        assert_eq!((c.inode, c.kind, c.state), (1002, "dgram", "established"));
        assert_eq!(c.path.as_deref(), Some("@ab@"));
        assert_eq!(c.peer, Some(1003));
        assert_eq!(c.path_check, PathCheck::NotApplicable);
    }

    #[test]
    fn kernel_dev_encoding_matches_makedev() {
        for (major, minor) in [
            (0, 0),
            (8, 1),
            (0, 42),
            (259, 3),
            (0xfff, 0xf_ffff),
            (253, 0x12345),
        ] {
            assert_eq!(
                u64::from(kernel_dev_to_user((major << 20) | minor)),
                libc::makedev(major, minor),
                "{major}:{minor}"
            );
        }
    }

    #[test]
    fn every_prefix_of_a_reply_parses_without_panic() {
        let reply = sample_reply();
        for end in 0..reply.len() {
            let dump = parse_reply(&reply[..end], SEQ);
            assert!(dump.sockets.len() <= 2, "prefix {end}");
        }
        // Every prefix of one message's payload, as if its nlmsg_len were short.
        let msg = &reply[NLMSG_HDRLEN..];
        for end in 0..msg.len() {
            let s = UnixSocket::from_diag(&msg[..end]);
            assert_eq!(
                s.is_some(),
                end >= UNIX_DIAG_MSG_LEN,
                "payload prefix {end}"
            );
        }
    }

    #[test]
    fn malformed_attributes_are_skipped() {
        let cases: [(&str, Vec<u8>); 4] = [
            ("short VFS payload", attr(UNIX_DIAG_VFS, &[1, 2, 3, 4])),
            ("short PEER payload", attr(UNIX_DIAG_PEER, &[1, 2])),
            ("rta_len below the header", vec![2, 0, 1, 0, 9, 9, 9, 9]),
            (
                "rta_len past the end",
                [200u16.to_ne_bytes(), 1u16.to_ne_bytes()].concat(),
            ),
        ];
        for (what, bad) in cases {
            let payload = diag_msg(1, 7, 5, &[attr(UNIX_DIAG_RQLEN, &pair(1, 2)), bad.clone()]);
            let s = UnixSocket::from_diag(&payload).unwrap_or_else(|| panic!("{what}"));
            assert_eq!((s.inode, s.state), (5, "unconnected"), "{what}");
            assert_eq!(
                s.rqueue,
                Some(1),
                "{what}: the good attribute before is kept"
            );
            assert_eq!((s.bound_ino, s.peer), (None, None), "{what}");
        }
    }

    #[test]
    fn errors_and_foreign_messages() {
        // The kernel's errors say what they are; ENOENT is a missing module.
        let e = kernel_error(-libc::EPERM);
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            kernel_error(-libc::ENOENT)
                .to_string()
                .contains("CONFIG_UNIX_DIAG")
        );
        // Another request's answer is ignored.
        let other = [
            nlmsg(SOCK_DIAG_BY_FAMILY, SEQ + 1, &diag_msg(1, 10, 9, &[])),
            nlmsg(NLMSG_DONE, SEQ + 1, &0i32.to_ne_bytes()),
        ]
        .concat();
        let dump = parse_reply(&other, SEQ);
        assert!(dump.sockets.is_empty());
        // A broken netlink header loses the rest of the datagram, counted.
        let mut broken = nlmsg(SOCK_DIAG_BY_FAMILY, SEQ, &diag_msg(1, 10, 9, &[]));
        broken[0..4].copy_from_slice(&4u32.to_ne_bytes());
        let dump = parse_reply(&broken, SEQ);
        assert_eq!(dump.skipped, 1);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let reply = sample_reply();
        for _ in 0..20_000 {
            // Mutations of a valid reply reach deeper than pure noise.
            let mut buf = reply.clone();
            for _ in 0..(next() % 8) {
                let at = (next() as usize) % buf.len();
                buf[at] = next() as u8;
            }
            buf.truncate((next() as usize) % (buf.len() + 1));
            let dump = parse_reply(&buf, SEQ);
            for s in &dump.sockets {
                let mut tsv = Vec::new();
                write_tsv(std::slice::from_ref(s), &mut tsv).unwrap();
            }
        }
    }
}
