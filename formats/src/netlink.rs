//! Netlink conversations as the collector keeps them: what capsnap asked
//! the kernel (rtnetlink, sock_diag dumps) and every message it answered,
//! byte for byte, so that the readers of `rtnetlink` and `inet_diag` (and
//! any fix to them) apply to bundles already made.
//!
//! A conversation file holds, for each request in turn, the request
//! message as sent (`nlmsghdr` with `NLM_F_REQUEST | NLM_F_DUMP`, then its
//! fixed body) followed by the datagrams of the reply as received: the
//! kernel's messages, 4-byte aligned (include/uapi/linux/netlink.h,
//! `NLMSG_ALIGN`), ending with `NLMSG_DONE` (its payload the dump's status)
//! or `NLMSG_ERROR` (a negative errno). A request's reply without its end
//! was cut short. Netlink is in host byte order: the files are read as
//! little-endian, the order of every machine capsnap is built for (x86_64,
//! aarch64); fields the kernel keeps in network order (ports, addresses)
//! are read as such.
//!
//! What the collector asks ([`Dump`]) is defined here, beside what reads
//! the answers, so the two cannot drift.

/// `struct nlmsghdr`: len u32, type u16, flags u16, seq u32, pid u32.
pub const NLMSG_HDRLEN: usize = 16;
pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
/// NLM_F_ROOT | NLM_F_MATCH.
pub const NLM_F_DUMP: u16 = 0x300;
/// The dump was interrupted by a change of what it walks (an address or
/// route added meanwhile): its content may be inconsistent
/// (`nl_dump_check_consistent`, include/net/netlink.h).
pub const NLM_F_DUMP_INTR: u16 = 0x10;
/// Attribute types may carry NLA_F_NESTED / NLA_F_NET_BYTEORDER in their
/// two top bits.
const NLA_TYPE_MASK: u16 = 0x3fff;
/// `struct nlattr` / `struct rtattr`: len u16, type u16.
pub const NLA_HDRLEN: usize = 4;

/// Netlink protocols (include/uapi/linux/netlink.h).
pub const NETLINK_ROUTE: i32 = 0;
pub const NETLINK_SOCK_DIAG: i32 = 4;
pub const NETLINK_NETFILTER: i32 = 12;

// include/uapi/linux/rtnetlink.h
pub const RTM_NEWLINK: u16 = 16;
pub const RTM_GETLINK: u16 = 18;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_GETADDR: u16 = 22;
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_GETROUTE: u16 = 26;
pub const RTM_NEWRULE: u16 = 32;
pub const RTM_GETRULE: u16 = 34;
// include/uapi/linux/sock_diag.h
pub const SOCK_DIAG_BY_FAMILY: u16 = 20;

/// ctnetlink's message types: the subsystem in the high byte
/// (include/uapi/linux/netfilter/nfnetlink.h `NFNL_SUBSYS_CTNETLINK` 1),
/// the message in the low one (include/uapi/linux/netfilter/nfnetlink_conntrack.h
/// `enum cntl_msg_types`).
pub const IPCTNL_MSG_CT_NEW: u16 = 0x100;
pub const IPCTNL_MSG_CT_GET: u16 = 0x101;
pub const IPCTNL_MSG_CT_GET_STATS_CPU: u16 = 0x104;

pub const AF_UNSPEC: u8 = 0;
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// One request of a dump: the message type and its fixed body (the
/// header's length, flags and sequence number are the collector's).
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub kind: u16,
    pub body: &'static [u8],
}

/// What the collector asks the kernel for one conversation artifact: the
/// netlink protocol and the dump requests, sent in turn.
#[derive(Debug, Clone, Copy)]
pub struct Dump {
    pub protocol: i32,
    pub requests: &'static [Request],
    /// The message type of the answers a reader takes.
    pub answer: u16,
}

/// `struct ifinfomsg` of family AF_UNSPEC: every link.
const IFINFOMSG_ANY: [u8; 16] = [0; 16];
/// `struct ifaddrmsg` (8 bytes) with `ifa_family` set.
const IFADDRMSG_V4: [u8; 8] = [AF_INET, 0, 0, 0, 0, 0, 0, 0];
const IFADDRMSG_V6: [u8; 8] = [AF_INET6, 0, 0, 0, 0, 0, 0, 0];
/// `struct rtmsg` (12 bytes) with `rtm_family` set: every table.
const RTMSG_V4: [u8; 12] = [AF_INET, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const RTMSG_V6: [u8; 12] = [AF_INET6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// `struct fib_rule_hdr` (12 bytes, family first).
const FIB_RULE_HDR_V4: [u8; 12] = RTMSG_V4;
const FIB_RULE_HDR_V6: [u8; 12] = RTMSG_V6;

const LINK_REQUEST: Request = Request {
    kind: RTM_GETLINK,
    body: &IFINFOMSG_ANY,
};

/// Every link (RTM_GETLINK): interfaces with their configuration and
/// counters (`netlink/link.nl`).
pub const LINK_DUMP: Dump = Dump {
    protocol: NETLINK_ROUTE,
    requests: &[LINK_REQUEST],
    answer: RTM_NEWLINK,
};

/// Every address, v4 then v6 (RTM_GETADDR), after the links that name
/// their devices, as `ip addr` asks (`netlink/addr.nl`).
pub const ADDR_DUMP: Dump = Dump {
    protocol: NETLINK_ROUTE,
    requests: &[
        LINK_REQUEST,
        Request {
            kind: RTM_GETADDR,
            body: &IFADDRMSG_V4,
        },
        Request {
            kind: RTM_GETADDR,
            body: &IFADDRMSG_V6,
        },
    ],
    answer: RTM_NEWADDR,
};

/// Every route of every table, v4 then v6 (RTM_GETROUTE), after the links
/// that name their devices, as `ip route show table all` asks
/// (`netlink/route.nl`).
pub const ROUTE_DUMP: Dump = Dump {
    protocol: NETLINK_ROUTE,
    requests: &[
        LINK_REQUEST,
        Request {
            kind: RTM_GETROUTE,
            body: &RTMSG_V4,
        },
        Request {
            kind: RTM_GETROUTE,
            body: &RTMSG_V6,
        },
    ],
    answer: RTM_NEWROUTE,
};

/// Every policy routing rule, v4 then v6 (RTM_GETRULE, `ip rule`)
/// (`netlink/rule.nl`).
pub const RULE_DUMP: Dump = Dump {
    protocol: NETLINK_ROUTE,
    requests: &[
        Request {
            kind: RTM_GETRULE,
            body: &FIB_RULE_HDR_V4,
        },
        Request {
            kind: RTM_GETRULE,
            body: &FIB_RULE_HDR_V6,
        },
    ],
    answer: RTM_NEWRULE,
};

/// `idiag_ext` bits asked of inet_diag (include/uapi/linux/inet_diag.h:
/// bit `INET_DIAG_X - 1` asks for attribute X): INET_DIAG_INFO (2,
/// tcp_info), INET_DIAG_CONG (4, congestion control name) and
/// INET_DIAG_SKMEMINFO (7, socket memory and drops). It is a u8: the
/// attributes above 8 come unasked or not at all.
pub const INET_DIAG_EXT: u8 = (1 << (2 - 1)) | (1 << (4 - 1)) | (1 << (7 - 1));

/// `struct inet_diag_req_v2` (56 bytes): family, protocol, ext, pad,
/// idiag_states (every state: the mask is of 1 << state), then an
/// `inet_diag_sockid` of zeros (a dump, not a lookup).
const fn inet_diag_req(family: u8, protocol: u8) -> [u8; 56] {
    let mut b = [0u8; 56];
    b[0] = family;
    b[1] = protocol;
    b[2] = INET_DIAG_EXT;
    b[4] = 0xff;
    b[5] = 0xff;
    b[6] = 0xff;
    b[7] = 0xff;
    b
}

const INET_DIAG_TCP4: [u8; 56] = inet_diag_req(AF_INET, IPPROTO_TCP);
const INET_DIAG_TCP6: [u8; 56] = inet_diag_req(AF_INET6, IPPROTO_TCP);
const INET_DIAG_UDP4: [u8; 56] = inet_diag_req(AF_INET, IPPROTO_UDP);
const INET_DIAG_UDP6: [u8; 56] = inet_diag_req(AF_INET6, IPPROTO_UDP);

/// Every TCP and UDP socket, v4 and v6, with tcp_info, congestion control
/// and memory (NETLINK_SOCK_DIAG, what `ss -tuiem` asks)
/// (`netlink/inet_diag.nl`).
pub const INET_DIAG_DUMP: Dump = Dump {
    protocol: NETLINK_SOCK_DIAG,
    requests: &[
        Request {
            kind: SOCK_DIAG_BY_FAMILY,
            body: &INET_DIAG_TCP4,
        },
        Request {
            kind: SOCK_DIAG_BY_FAMILY,
            body: &INET_DIAG_TCP6,
        },
        Request {
            kind: SOCK_DIAG_BY_FAMILY,
            body: &INET_DIAG_UDP4,
        },
        Request {
            kind: SOCK_DIAG_BY_FAMILY,
            body: &INET_DIAG_UDP6,
        },
    ],
    answer: SOCK_DIAG_BY_FAMILY,
};

/// `struct nfgenmsg` (include/uapi/linux/netfilter/nfnetlink.h): family,
/// version NFNETLINK_V0, res_id. AF_UNSPEC asks for every layer 3
/// protocol: ctnetlink filters by family only when one is given
/// (net/netfilter/nf_conntrack_netlink.c, `ctnetlink_needs_filter`).
const NFGENMSG_ANY: [u8; 4] = [AF_UNSPEC, 0, 0, 0];

/// Every connection tracking entry of the namespace, IPv4 and IPv6, every
/// zone (IPCTNL_MSG_CT_GET with NLM_F_DUMP over NETLINK_NETFILTER: what
/// `conntrack -L` asks; the kernel walks the table and sends the entries
/// of the socket's namespace) (`netlink/conntrack.nl`).
pub const CONNTRACK_DUMP: Dump = Dump {
    protocol: NETLINK_NETFILTER,
    requests: &[Request {
        kind: IPCTNL_MSG_CT_GET,
        body: &NFGENMSG_ANY,
    }],
    answer: IPCTNL_MSG_CT_NEW,
};

/// The per-CPU conntrack statistics (IPCTNL_MSG_CT_GET_STATS_CPU, what
/// `conntrack -S` asks): one answer per possible CPU, the CPU in the
/// nfgenmsg's res_id (`netlink/conntrack_stats.nl`).
pub const CONNTRACK_STATS_DUMP: Dump = Dump {
    protocol: NETLINK_NETFILTER,
    requests: &[Request {
        kind: IPCTNL_MSG_CT_GET_STATS_CPU,
        body: &NFGENMSG_ANY,
    }],
    answer: IPCTNL_MSG_CT_GET_STATS_CPU,
};

impl Request {
    /// The request message: header (length, type, `NLM_F_REQUEST |
    /// NLM_F_DUMP`, `seq`, port id 0) and body.
    pub fn message(&self, seq: u32) -> Vec<u8> {
        let len = NLMSG_HDRLEN + self.body.len();
        let mut m = Vec::with_capacity(align4(len));
        m.extend_from_slice(&(len as u32).to_le_bytes());
        m.extend_from_slice(&self.kind.to_le_bytes());
        m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_le_bytes());
        m.extend_from_slice(&seq.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(self.body);
        m.resize(align4(len), 0);
        m
    }
}

/// `len` rounded up to the 4-byte netlink alignment.
pub fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// One netlink message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
    /// What follows the header, within `nlmsg_len`.
    pub payload: &'a [u8],
    /// Byte offset of the message in the file.
    pub offset: usize,
}

impl Message<'_> {
    /// A request capsnap sent (the kernel never sets NLM_F_REQUEST).
    pub fn is_request(&self) -> bool {
        self.flags & NLM_F_REQUEST != 0
    }

    /// The errno of an NLMSG_ERROR (0 is an acknowledgement) or the
    /// status of an NLMSG_DONE: the payload's first i32.
    pub fn status(&self) -> Option<i32> {
        i32_at(self.payload, 0)
    }
}

/// The messages of a conversation file, in order. A header whose length
/// cannot be right ends the walk: what follows cannot be located, and
/// [`Messages::damage`] says where.
pub struct Messages<'a> {
    input: &'a [u8],
    at: usize,
    damage: Option<(usize, String)>,
}

/// The messages of `input`.
pub fn messages(input: &[u8]) -> Messages<'_> {
    Messages {
        input,
        at: 0,
        damage: None,
    }
}

impl Messages<'_> {
    /// Where the walk stopped before the end, and why.
    pub fn damage(&self) -> Option<&(usize, String)> {
        self.damage.as_ref()
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Message<'a>;

    fn next(&mut self) -> Option<Message<'a>> {
        let rest = self.input.get(self.at..)?;
        if rest.is_empty() || self.damage.is_some() {
            return None;
        }
        let Some(hdr) = rest.first_chunk::<NLMSG_HDRLEN>() else {
            self.damage = Some((self.at, format!("{} bytes, not a whole header", rest.len())));
            return None;
        };
        let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            self.damage = Some((
                self.at,
                format!(
                    "message length {len} (header {NLMSG_HDRLEN}, {} bytes left)",
                    rest.len()
                ),
            ));
            return None;
        }
        let m = Message {
            kind: u16::from_le_bytes([hdr[4], hdr[5]]),
            flags: u16::from_le_bytes([hdr[6], hdr[7]]),
            seq: u32::from_le_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]),
            pid: u32::from_le_bytes([hdr[12], hdr[13], hdr[14], hdr[15]]),
            payload: &rest[NLMSG_HDRLEN..len],
            offset: self.at,
        };
        self.at += align4(len).min(rest.len());
        Some(m)
    }
}

/// Netlink attributes (`struct nlattr`: u16 len, u16 type, data, padded to
/// 4): (type without its flag bits, data). Stops at the first header that
/// cannot be trusted.
#[derive(Clone)]
pub struct Attrs<'a>(pub &'a [u8]);

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let hdr = self.0.first_chunk::<NLA_HDRLEN>()?;
        let len = usize::from(u16::from_le_bytes([hdr[0], hdr[1]]));
        let kind = u16::from_le_bytes([hdr[2], hdr[3]]) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > self.0.len() {
            self.0 = &[];
            return None;
        }
        let data = &self.0[NLA_HDRLEN..len];
        self.0 = &self.0[align4(len).min(self.0.len())..];
        Some((kind, data))
    }
}

/// The attributes after a fixed header of `fixed` bytes, if the payload
/// holds the header.
pub fn attrs_after(payload: &[u8], fixed: usize) -> Option<Attrs<'_>> {
    if payload.len() < fixed {
        return None;
    }
    Some(Attrs(payload.get(align4(fixed)..).unwrap_or_default()))
}

pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(*b.get(at..)?.first_chunk()?))
}

/// A big-endian (network order) u16: ports.
pub fn be16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(*b.get(at..)?.first_chunk()?))
}

pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(*b.get(at..)?.first_chunk()?))
}

pub fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(*b.get(at..)?.first_chunk()?))
}

/// A big-endian u32: every ctnetlink number (the kernel puts them with
/// `nla_put_be32`).
pub fn be32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(*b.get(at..)?.first_chunk()?))
}

/// A big-endian u64: ctnetlink counters and timestamps.
pub fn be64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(*b.get(at..)?.first_chunk()?))
}

pub fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(*b.get(at..)?.first_chunk()?))
}

/// A NUL-terminated string attribute (interface names, congestion
/// algorithms), lossily decoded.
pub fn c_str(data: &[u8]) -> std::borrow::Cow<'_, str> {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end])
}

/// An address attribute of `family` as text (v4 dotted, v6 compressed);
/// None for other lengths.
pub fn address(data: &[u8]) -> Option<std::net::IpAddr> {
    match data.len() {
        4 => Some(std::net::Ipv4Addr::from(*data.first_chunk::<4>()?).into()),
        16 => Some(std::net::Ipv6Addr::from(*data.first_chunk::<16>()?).into()),
        _ => None,
    }
}

/// A 6-byte link-layer address as `aa:bb:cc:dd:ee:ff`; other lengths
/// (tunnels, infiniband) as hex bytes joined by `:`; none when empty.
pub fn link_address(data: &[u8]) -> Option<String> {
    if data.is_empty() {
        return None;
    }
    Some(
        data.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// What one message of a conversation is, with the request it answers.
#[derive(Debug)]
pub enum Turn<'a> {
    /// An answer of the type the reader takes (`Dump::answer`), to `request`.
    Answer {
        request: Message<'a>,
        message: Message<'a>,
        /// 1-based number of the message in the file, for skip reports.
        number: usize,
    },
    /// A request's reply that did not end well: an NLMSG_ERROR, a
    /// negative NLMSG_DONE status, no end at all, or an interrupted dump;
    /// with why. The answers before it were given.
    Trouble { number: usize, why: String },
}

/// Walks a conversation: every answer of type `answer` with the request
/// it answers, and every reply that did not end well. `Err` when the
/// input holds no request at all (not a conversation file).
pub fn conversation<'a>(
    input: &'a [u8],
    answer: u16,
    mut f: impl FnMut(Turn<'a>),
) -> Result<(), String> {
    let mut walk = messages(input);
    let mut current: Option<(Message<'a>, bool, bool)> = None; // (request, ended, interrupted)
    let mut seen_request = false;
    let mut number = 0usize;
    let end_of = |current: &mut Option<(Message<'a>, bool, bool)>,
                  number: usize,
                  f: &mut dyn FnMut(Turn<'a>)| {
        if let Some((req, ended, interrupted)) = current.take() {
            if !ended {
                f(Turn::Trouble {
                    number,
                    why: format!(
                        "the reply to request {} (type {}) was cut short: no NLMSG_DONE",
                        req.seq, req.kind
                    ),
                });
            } else if interrupted {
                f(Turn::Trouble {
                    number,
                    why: format!(
                        "the dump of request {} (type {}) was interrupted by a change (NLM_F_DUMP_INTR): it may miss or repeat entries",
                        req.seq, req.kind
                    ),
                });
            }
        }
    };
    for m in walk.by_ref() {
        number += 1;
        if m.is_request() {
            end_of(&mut current, number, &mut f);
            seen_request = true;
            current = Some((m, false, false));
            continue;
        }
        let Some((request, ended, interrupted)) = current.as_mut() else {
            f(Turn::Trouble {
                number,
                why: "an answer before any request".into(),
            });
            continue;
        };
        if m.seq != request.seq || *ended {
            // Not an answer to the current request (another port's
            // message would not be here; a stray one is left out).
            continue;
        }
        if m.flags & NLM_F_DUMP_INTR != 0 {
            *interrupted = true;
        }
        match m.kind {
            NLMSG_DONE => {
                *ended = true;
                if let Some(status) = m.status().filter(|&s| s < 0) {
                    f(Turn::Trouble {
                        number,
                        why: format!(
                            "the dump of request {} failed: {}",
                            request.seq,
                            errno_text(status)
                        ),
                    });
                }
            }
            NLMSG_ERROR => {
                *ended = true;
                match m.status() {
                    Some(0) => {}
                    Some(e) => f(Turn::Trouble {
                        number,
                        why: format!(
                            "request {} (type {}) refused: {}",
                            request.seq,
                            request.kind,
                            errno_text(e)
                        ),
                    }),
                    None => f(Turn::Trouble {
                        number,
                        why: "NLMSG_ERROR without an error code".into(),
                    }),
                }
            }
            NLMSG_NOOP => {}
            kind if kind == answer => f(Turn::Answer {
                request: *request,
                message: m,
                number,
            }),
            _ => {}
        }
    }
    end_of(&mut current, number, &mut f);
    if let Some((at, why)) = walk.damage() {
        f(Turn::Trouble {
            number: number + 1,
            why: format!("damaged at byte {at}: {why}; the rest of the file is lost"),
        });
    }
    if !seen_request {
        return Err("no netlink request message: not a capsnap netlink conversation".into());
    }
    Ok(())
}

/// A negative errno as its name and number, for messages.
pub fn errno_text(err: i32) -> String {
    let n = err.saturating_neg();
    match errno_name(n) {
        Some(name) => format!("{name} ({n})"),
        None => format!("errno {n}"),
    }
}

/// The Linux name of an errno (include/uapi/asm-generic/errno-base.h and
/// errno.h, the numbers of x86_64 and arm64), for the ones capsnap meets.
pub fn errno_name(n: i32) -> Option<&'static str> {
    Some(match n {
        1 => "EPERM",
        2 => "ENOENT",
        4 => "EINTR",
        5 => "EIO",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        22 => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        32 => "EPIPE",
        88 => "ENOTSOCK",
        93 => "EPROTONOSUPPORT",
        95 => "EOPNOTSUPP",
        97 => "EAFNOSUPPORT",
        98 => "EADDRINUSE",
        99 => "EADDRNOTAVAIL",
        100 => "ENETDOWN",
        101 => "ENETUNREACH",
        102 => "ENETRESET",
        103 => "ECONNABORTED",
        104 => "ECONNRESET",
        105 => "ENOBUFS",
        106 => "EISCONN",
        107 => "ENOTCONN",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        112 => "EHOSTDOWN",
        113 => "EHOSTUNREACH",
        114 => "EALREADY",
        115 => "EINPROGRESS",
        _ => return None,
    })
}

/// Builds conversation files in tests: requests and answers.
#[cfg(test)]
pub(crate) mod build {
    use super::*;

    /// A message of `kind` with `flags`, `seq` and `payload`, aligned.
    pub fn message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + payload.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_le_bytes());
        m.extend_from_slice(&kind.to_le_bytes());
        m.extend_from_slice(&flags.to_le_bytes());
        m.extend_from_slice(&seq.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(payload);
        m.resize(align4(len), 0);
        m
    }

    pub fn attr(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((NLA_HDRLEN + data.len()) as u16).to_le_bytes());
        a.extend_from_slice(&kind.to_le_bytes());
        a.extend_from_slice(data);
        a.resize(align4(a.len()), 0);
        a
    }

    pub fn done(seq: u32) -> Vec<u8> {
        message(NLMSG_DONE, NLM_F_MULTI, seq, &0i32.to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    fn turns(input: &[u8], answer: u16) -> (Vec<(u32, usize)>, Vec<String>) {
        let mut answers = Vec::new();
        let mut trouble = Vec::new();
        let r = conversation(input, answer, |t| match t {
            Turn::Answer {
                request, message, ..
            } => answers.push((request.seq, message.payload.len())),
            Turn::Trouble { why, .. } => trouble.push(why),
        });
        if let Err(e) = r {
            trouble.push(e);
        }
        (answers, trouble)
    }

    #[test]
    fn answers_are_paired_with_their_request_and_troubles_named() {
        let reqs = LINK_DUMP.requests[0].message(1);
        let mut file = reqs.clone();
        file.extend(message(RTM_NEWLINK, NLM_F_MULTI, 1, &[0; 20]));
        file.extend(message(
            RTM_NEWLINK,
            NLM_F_MULTI | NLM_F_DUMP_INTR,
            1,
            &[0; 24],
        ));
        file.extend(done(1));
        // A second request refused, a third cut short.
        file.extend(ROUTE_DUMP.requests[1].message(2));
        file.extend(message(NLMSG_ERROR, 0, 2, &(-13i32).to_le_bytes()));
        file.extend(ROUTE_DUMP.requests[2].message(3));
        file.extend(message(RTM_NEWLINK, NLM_F_MULTI, 3, &[0; 4]));
        let (answers, trouble) = turns(&file, RTM_NEWLINK);
        assert_eq!(answers, [(1, 20), (1, 24), (3, 4)]);
        assert_eq!(trouble.len(), 3, "{trouble:?}");
        assert!(trouble[0].contains("NLM_F_DUMP_INTR"));
        assert!(trouble[1].contains("EACCES (13)"));
        assert!(trouble[2].contains("cut short"));
        assert!(conversation(b"", RTM_NEWLINK, |_| {}).is_err());
    }

    #[test]
    fn requests_are_what_the_kernel_expects() {
        let m = INET_DIAG_DUMP.requests[1].message(7);
        assert_eq!(m.len(), 16 + 56);
        assert_eq!(u32_at(&m, 0), Some(72));
        assert_eq!(u16_at(&m, 4), Some(SOCK_DIAG_BY_FAMILY));
        assert_eq!(u16_at(&m, 6), Some(0x301));
        assert_eq!(&m[16..20], &[AF_INET6, IPPROTO_TCP, 0x4a, 0]);
        assert_eq!(u32_at(&m, 20), Some(u32::MAX));
        let m = RULE_DUMP.requests[0].message(1);
        assert_eq!(m.len(), 28);
    }

    #[test]
    fn every_prefix_and_damage_never_panics() {
        let mut file = ADDR_DUMP.requests[1].message(1);
        file.extend(message(
            RTM_NEWADDR,
            NLM_F_MULTI,
            1,
            &[
                [2u8, 24, 0, 0, 1, 0, 0, 0].as_slice(),
                &attr(1, &[10, 0, 0, 1]),
            ]
            .concat(),
        ));
        file.extend(done(1));
        for cut in 0..=file.len() {
            let _ = turns(&file[..cut], RTM_NEWADDR);
        }
        for i in 0..file.len() {
            let mut f = file.clone();
            f[i] ^= 0xa5;
            let _ = turns(&f, RTM_NEWADDR);
            for (_, data) in Attrs(&f) {
                let _ = data.len();
            }
        }
    }
}
