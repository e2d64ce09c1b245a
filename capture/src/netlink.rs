//! Netlink conversations with the kernel, for every source that reads it
//! that way (rtnetlink dumps, inet and unix sock_diag, ctnetlink): a socket in the
//! calling thread's network namespace, each request sent in turn, every
//! datagram of the reply kept as received. What is asked
//! ([`formats::netlink::Dump`]) and how the answers read are defined in
//! `formats`; this is only the talking.
//!
//! Each dump gets a socket of its own; replies are read until the
//! request's NLMSG_DONE or NLMSG_ERROR. A datagram larger than the buffer
//! (seen through MSG_TRUNC) restarts that request with a buffer of its
//! size, and a dump the kernel marks interrupted (NLM_F_DUMP_INTR: a link,
//! address or route changed while it walked) is asked again, a few times.

use formats::netlink::{
    Dump, NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, Request, errno_text, messages,
};
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Receive buffer. The kernel sizes dump skbs after the largest buffer the
/// reader has offered, capped near 32 KiB (net/netlink/af_netlink.c,
/// `max_recvmsg_len`), so one such buffer takes every datagram; a larger
/// datagram (seen through MSG_TRUNC) restarts the request with a larger
/// buffer.
pub const RECV_BUF_LEN: usize = 32 * 1024;
/// Attempts of one request: a truncated datagram or an interrupted dump
/// restarts it.
const MAX_ATTEMPTS: usize = 3;
/// The kernel answers at once; these only bound a collector run if it ever
/// does not.
const RECV_TIMEOUT: Duration = Duration::from_secs(5);
const DUMP_DEADLINE: Duration = Duration::from_secs(30);

/// Sequence numbers of capsnap's requests, unique in the process: a reply
/// carries its request's.
static SEQ: AtomicU32 = AtomicU32::new(0x6361_0000);

/// The reply to one request.
#[derive(Debug, Default)]
pub struct Reply {
    /// Its datagrams, concatenated as received (only the kernel's, only
    /// for this request's socket).
    pub bytes: Vec<u8>,
    /// The negative errno of an NLMSG_ERROR, or of a failed NLMSG_DONE.
    pub error: Option<i32>,
    /// The last attempt was still marked NLM_F_DUMP_INTR.
    pub interrupted: bool,
}

/// A whole conversation: each request as sent, then its reply.
#[derive(Debug, Default)]
pub struct Conversation {
    pub bytes: Vec<u8>,
    /// What did not go well, per request (refused, interrupted): the
    /// report's reason. The file holds the kernel's own error messages too.
    pub trouble: Vec<String>,
    /// Requests the kernel refused outright.
    pub refused: usize,
}

/// Runs every request of `dump` in turn.
///
/// # Errors
/// When the socket cannot be opened or the kernel does not answer in
/// time; a request the kernel refuses is in [`Conversation::trouble`].
pub fn converse(dump: &Dump) -> io::Result<Conversation> {
    let mut out = Conversation::default();
    for req in dump.requests {
        let mut seq = next_seq();
        let mut reply = request_with_buffer(dump.protocol, req, seq, RECV_BUF_LEN)?;
        if reply.error == Some(-libc::EAGAIN) {
            // nfnetlink loads a subsystem's module on first use
            // (nf_conntrack_netlink) and answers EAGAIN: asked again, it
            // answers (net/netfilter/nfnetlink.c, `nfnetlink_rcv_msg`).
            seq = next_seq();
            reply = request_with_buffer(dump.protocol, req, seq, RECV_BUF_LEN)?;
        }
        out.bytes.extend(req.message(seq));
        out.bytes.extend(&reply.bytes);
        if let Some(e) = reply.error {
            out.refused += 1;
            // nfnetlink wants CAP_NET_ADMIN for every message.
            let permission = if e == -libc::EPERM || e == -libc::EACCES {
                "permission: "
            } else {
                ""
            };
            out.trouble.push(format!(
                "{permission}request of type {} refused: {}",
                req.kind,
                errno_text(e)
            ));
        }
        if reply.interrupted {
            out.trouble.push(format!(
                "the dump of type {} kept changing while read (NLM_F_DUMP_INTR {MAX_ATTEMPTS} times)",
                req.kind
            ));
        }
    }
    Ok(out)
}

/// A sequence number no other request of this process has.
pub fn next_seq() -> u32 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// Sends one request of `protocol` with sequence number `seq` and reads
/// its whole reply, starting with a receive buffer of `len` bytes.
///
/// # Errors
/// As [`converse`].
pub fn request_with_buffer(
    protocol: i32,
    req: &Request,
    seq: u32,
    len: usize,
) -> io::Result<Reply> {
    let mut buf = vec![0u8; len.max(16)];
    let mut last = Reply::default();
    for _ in 0..MAX_ATTEMPTS {
        match attempt(protocol, req, seq, &mut buf)? {
            Attempt::Done(reply) if reply.interrupted => last = reply,
            Attempt::Done(reply) => return Ok(reply),
            Attempt::Truncated(len) => buf.resize(len.next_multiple_of(4096), 0),
        }
    }
    if last.bytes.is_empty() && last.error.is_none() && !last.interrupted {
        return Err(io::Error::other(format!(
            "netlink replies kept outgrowing the receive buffer ({} bytes)",
            buf.len()
        )));
    }
    Ok(last)
}

enum Attempt {
    Done(Reply),
    /// A datagram of this length did not fit: the request must be redone.
    Truncated(usize),
}

fn attempt(protocol: i32, req: &Request, seq: u32, buf: &mut [u8]) -> io::Result<Attempt> {
    let started = Instant::now();
    let fd = socket(protocol)?;
    let msg = req.message(seq);
    // SAFETY: sockaddr_nl is plain old data; all zeroes is a valid value.
    let mut kernel: libc::sockaddr_nl = unsafe { mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: the buffer and address are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&raw const kernel).cast(),
            mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("sending a netlink request: {e}"),
        ));
    }
    let mut reply = Reply::default();
    loop {
        if started.elapsed() > DUMP_DEADLINE {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("netlink dump not finished after {DUMP_DEADLINE:?}"),
            ));
        }
        // SAFETY: as above.
        let mut from: libc::sockaddr_nl = unsafe { mem::zeroed() };
        let mut from_len = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: buf and from are valid for writes of the lengths given.
        // MSG_TRUNC makes netlink return the datagram's full length.
        let n = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
                (&raw mut from).cast(),
                &mut from_len,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no netlink answer within {RECV_TIMEOUT:?}"),
                    ));
                }
                _ => return Err(io::Error::new(e.kind(), format!("reading netlink: {e}"))),
            }
        }
        let n = n as usize;
        if n > buf.len() {
            return Ok(Attempt::Truncated(n));
        }
        // Any process may unicast to our port id; replies come from the kernel.
        if from.nl_pid != 0 {
            continue;
        }
        let datagram = &buf[..n];
        let mut ended = false;
        for m in messages(datagram).filter(|m| m.seq == seq) {
            if m.flags & NLM_F_DUMP_INTR != 0 {
                reply.interrupted = true;
            }
            match m.kind {
                NLMSG_DONE => {
                    ended = true;
                    reply.error = m.status().filter(|&s| s < 0);
                }
                NLMSG_ERROR => match m.status() {
                    Some(0) => {} // an acknowledgement
                    Some(e) => {
                        ended = true;
                        reply.error = Some(e);
                    }
                    None => {
                        ended = true;
                        reply.error = Some(-libc::EBADMSG);
                    }
                },
                _ => {}
            }
        }
        reply.bytes.extend_from_slice(datagram);
        if ended {
            return Ok(Attempt::Done(reply));
        }
    }
}

/// A netlink socket of `protocol` in the calling thread's namespace.
fn socket(protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the result is checked.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if raw < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("opening a netlink socket (protocol {protocol}): {e}"),
        ));
    }
    // SAFETY: raw is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let tv = libc::timeval {
        // Whatever width the C library gives time_t (musl's changes).
        tv_sec: RECV_TIMEOUT.as_secs().try_into().unwrap_or(1),
        tv_usec: 0,
    };
    // SAFETY: tv is a valid timeval for the length given.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use formats::netlink::{
        INET_DIAG_DUMP, LINK_DUMP, NETLINK_ROUTE, RTM_NEWLINK, Turn, conversation,
    };

    #[test]
    fn a_link_dump_names_lo_and_ends() {
        let c = converse(&LINK_DUMP).unwrap();
        assert!(c.trouble.is_empty(), "{:?}", c.trouble);
        let mut names = Vec::new();
        conversation(&c.bytes, RTM_NEWLINK, |t| {
            if let Turn::Answer { message, .. } = t {
                names.push(message.payload.len());
            }
            if let Turn::Trouble { why, .. } = t {
                panic!("{why}");
            }
        })
        .unwrap();
        assert!(!names.is_empty());
    }

    #[test]
    fn a_tiny_buffer_restarts_the_request_with_the_size_the_kernel_said() {
        let req = LINK_DUMP.requests[0];
        let reply = request_with_buffer(NETLINK_ROUTE, &req, 99, 64).unwrap();
        assert_eq!(reply.error, None);
        assert!(reply.bytes.len() > 64);
        assert!(messages(&reply.bytes).any(|m| m.kind == NLMSG_DONE));
    }

    #[test]
    fn a_refused_request_is_kept_with_its_error() {
        // A request the kernel rejects: RTM_GETLINK over sock_diag has no
        // handler (sock_diag knows only SOCK_DIAG_BY_FAMILY and friends).
        let bad = Request {
            kind: 18,
            body: &[0; 16],
        };
        let reply = request_with_buffer(
            formats::netlink::NETLINK_SOCK_DIAG,
            &bad,
            next_seq(),
            RECV_BUF_LEN,
        )
        .unwrap();
        assert!(reply.error.is_some_and(|e| e < 0), "{reply:?}");
        let _ = INET_DIAG_DUMP;
    }
}
