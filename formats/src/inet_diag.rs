//! Inet sockets by sock_diag (`netlink/inet_diag.nl`): every TCP and UDP
//! socket, IPv4 and IPv6, with what /proc/net/tcp cannot say: the accept
//! queue against the backlog of listeners, tcp_info (RTT, congestion
//! window, retransmissions, path MTU, bytes acknowledged ...), the
//! congestion control and the socket's memory and drops. What `ss -tuiem`
//! shows, as the `inet_sockets` table (`sockets` stays the /proc view).
//!
//! Each answer is a `struct inet_diag_msg` (72 bytes,
//! include/uapi/linux/inet_diag.h: family, state, timer, retrans u8; an
//! `inet_diag_sockid` of sport and dport in network order, src and dst as
//! four 32-bit words in network order, the bound interface u32 and a
//! cookie of two u32; then expires, rqueue, wqueue, uid, inode u32) and
//! attributes: INET_DIAG_INFO (2, tcp_info), INET_DIAG_CONG (4),
//! INET_DIAG_SKMEMINFO (7), INET_DIAG_SHUTDOWN (8, always sent). The
//! protocol is the request's (`sdiag_protocol`): the message does not
//! carry it. Facts checked on Linux 6.18:
//! - For a LISTEN socket `idiag_rqueue` is the accept queue
//!   (`sk_ack_backlog`) and `idiag_wqueue` the backlog given to listen(2),
//!   capped at net.core.somaxconn (`sk_max_ack_backlog`,
//!   net/ipv4/tcp_diag.c `tcp_diag_get_info`); otherwise bytes not yet
//!   read and not yet acknowledged.
//! - `struct tcp_info` grows with kernels (104 bytes in 3.x, 232 in 6.1's
//!   headers, 248 on 6.18 with total_rto*): the kernel sends its own size
//!   and only the fields inside what it sent are read; a field it did not
//!   send is null, never zero.
//! - TIME_WAIT and SYN_RECV entries (`inet_twsk_diag_fill`,
//!   `inet_req_diag_fill`) have no attributes and no inode.
//! - Nothing here needs a capability; INET_DIAG_MARK and CLASS_ID would
//!   need CAP_NET_ADMIN and are not asked.

use crate::netlink::{
    self, AF_INET, AF_INET6, SOCK_DIAG_BY_FAMILY, Turn, attrs_after, be16_at, c_str, u32_at, u64_at,
};
use crate::rows::{Reader, Rows, V};
use crate::rtnetlink::claims_conversation;
use crate::tcp_state::tcp_state_name;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[rustfmt::skip]
crate::artifact_table!("inet_sockets", "one row per TCP or UDP socket, IPv4 and IPv6, from sock_diag (netlink/inet_diag.nl): queues and backlog of listeners, tcp_info, congestion control, memory and drops (what ss -tuiem shows). Join to processes through fds on (bundle, inode) and to `sockets` on (bundle, netns, inode)", [
    ("protocol", Dict, false, "tcp or udp (the request's protocol)"),
    ("family", Dict, false, "ipv4 or ipv6"),
    ("state", Dict, false, "TCP state name (LISTEN, ESTABLISHED, SYN_SENT, SYN_RECV, TIME_WAIT ...); UDP: CLOSE = unconnected, ESTABLISHED = connected"),
    ("local_address", Str, false, "local address (0.0.0.0 / :: when bound to any; v4-mapped shown as ::ffff:a.b.c.d)"),
    ("local_port", U16, false, "local port"),
    ("remote_address", Str, false, "peer address (0.0.0.0 / :: when not connected)"),
    ("remote_port", U16, false, "peer port (0 when not connected)"),
    ("inode", U64, false, "socket inode, as in /proc/PID/fd `socket:[N]` (fds.inode); 0 for TIME_WAIT and SYN_RECV entries, which have no file"),
    ("uid", U32, false, "owner uid"),
    ("cookie", Str, false, "the kernel's socket cookie (hex): one socket across dumps"),
    ("bound_ifindex", U32, true, "interface the socket is bound to (SO_BINDTODEVICE); null when none"),
    ("rqueue", U32, false, "LISTEN: connections in the accept queue, waiting for accept(2) (sk_ack_backlog); otherwise bytes received and not read (TCP) or receive memory (UDP)"),
    ("wqueue", U32, false, "LISTEN: the backlog, the most the accept queue holds (listen(2)'s argument capped at net.core.somaxconn); otherwise bytes sent and not acknowledged (TCP) or send memory (UDP)"),
    ("accept_queue", U32, true, "LISTEN sockets only: rqueue, the connections waiting for accept(2)"),
    ("backlog", U32, true, "LISTEN sockets only: wqueue, the accept queue's limit; accept_queue above it means SYNs are dropped (TcpExtListenOverflows)"),
    ("timer", Dict, false, "pending timer: off, on (retransmit, SYN-ACK for SYN_RECV), keepalive, timewait, probe (zero window)"),
    ("timer_expires_ms", U64, false, "milliseconds until it fires"),
    ("retransmits", U8, false, "unrecovered retransmissions of the current segment (icsk_retransmits; SYN_RECV: SYN-ACKs sent again)"),
    ("shutdown", Dict, true, "directions shut down: rd, wr, rdwr (INET_DIAG_SHUTDOWN); null when not reported"),
    ("congestion", Dict, true, "congestion control (cubic, bbr, reno ...): TCP sockets with state"),
    ("ca_state", Dict, true, "tcp_info: congestion state: open, disorder, cwr, recovery, loss"),
    ("options", Str, true, "tcp_info: negotiated options: ts, sack, wscale, ecn, ecnseen, syn_data, usec_ts"),
    ("snd_wscale", U8, true, "tcp_info: send window scale"),
    ("rcv_wscale", U8, true, "tcp_info: receive window scale"),
    ("backoff", U8, true, "tcp_info: RTO backoff exponent (icsk_backoff)"),
    ("probes", U8, true, "tcp_info: unanswered zero-window or keepalive probes"),
    ("rto_us", U32, true, "tcp_info: retransmission timeout, microseconds"),
    ("ato_us", U32, true, "tcp_info: delayed-ACK timeout, microseconds"),
    ("snd_mss", U32, true, "tcp_info: send MSS (path MTU minus headers and options)"),
    ("rcv_mss", U32, true, "tcp_info: MSS estimated from received segments"),
    ("unacked", U32, true, "tcp_info: segments sent and not acknowledged (packets_out)"),
    ("sacked", U32, true, "tcp_info: segments SACKed (listeners: the backlog)"),
    ("lost", U32, true, "tcp_info: segments considered lost"),
    ("retrans", U32, true, "tcp_info: retransmitted segments in flight"),
    ("last_data_sent_ms", U32, true, "tcp_info: milliseconds since data was last sent"),
    ("last_data_recv_ms", U32, true, "tcp_info: milliseconds since data was last received"),
    ("last_ack_recv_ms", U32, true, "tcp_info: milliseconds since an ACK was last received"),
    ("pmtu", U32, true, "tcp_info: path MTU the socket uses (icsk_pmtu_cookie): below the interface MTU after an ICMP fragmentation-needed / packet-too-big was taken"),
    ("rcv_ssthresh", U32, true, "tcp_info: receive window clamp"),
    ("rtt_us", U32, true, "tcp_info: smoothed RTT, microseconds"),
    ("rttvar_us", U32, true, "tcp_info: RTT variation, microseconds"),
    ("snd_ssthresh", U32, true, "tcp_info: slow start threshold, segments (2147483647: not set)"),
    ("snd_cwnd", U32, true, "tcp_info: congestion window, segments"),
    ("advmss", U32, true, "tcp_info: advertised MSS"),
    ("reordering", U32, true, "tcp_info: reordering metric"),
    ("rcv_rtt_us", U32, true, "tcp_info: RTT estimated by the receiver, microseconds"),
    ("rcv_space", U32, true, "tcp_info: receive buffer space estimate"),
    ("total_retrans", U32, true, "tcp_info: segments retransmitted over the connection's life"),
    ("pacing_rate", U64, true, "tcp_info: pacing rate, bytes per second"),
    ("bytes_acked", U64, true, "tcp_info: bytes sent and acknowledged (RFC 4898 tcpEStatsAppHCThruOctetsAcked)"),
    ("bytes_received", U64, true, "tcp_info: bytes received (tcpEStatsAppHCThruOctetsReceived)"),
    ("segs_out", U32, true, "tcp_info: segments sent"),
    ("segs_in", U32, true, "tcp_info: segments received"),
    ("notsent_bytes", U32, true, "tcp_info: bytes written and not yet sent"),
    ("min_rtt_us", U32, true, "tcp_info: lowest RTT seen, microseconds"),
    ("data_segs_in", U32, true, "tcp_info: segments received with data"),
    ("data_segs_out", U32, true, "tcp_info: segments sent with data"),
    ("delivery_rate", U64, true, "tcp_info: delivery rate, bytes per second"),
    ("busy_time_us", U64, true, "tcp_info: time busy sending, microseconds"),
    ("rwnd_limited_us", U64, true, "tcp_info: time limited by the peer's receive window"),
    ("sndbuf_limited_us", U64, true, "tcp_info: time limited by the send buffer"),
    ("delivered", U32, true, "tcp_info: segments delivered (acknowledged, SACKed included)"),
    ("delivered_ce", U32, true, "tcp_info: of those, ECN CE-marked"),
    ("bytes_sent", U64, true, "tcp_info: bytes sent, retransmissions included"),
    ("bytes_retrans", U64, true, "tcp_info: bytes retransmitted"),
    ("dsack_dups", U32, true, "tcp_info: duplicate segments reported by DSACK"),
    ("reord_seen", U32, true, "tcp_info: reorderings seen"),
    ("rcv_ooopack", U32, true, "tcp_info: out-of-order segments received"),
    ("snd_wnd", U32, true, "tcp_info: the peer's receive window, bytes"),
    ("rcv_wnd", U32, true, "tcp_info: our advertised receive window, bytes"),
    ("rehash", U32, true, "tcp_info: rehash attempts after timeouts (PLB)"),
    ("total_rto", U32, true, "tcp_info: RTO timeouts, SYN and SYN-ACK ones included (6.7 on)"),
    ("total_rto_recoveries", U32, true, "tcp_info: RTO recoveries (6.7 on)"),
    ("total_rto_time_ms", U32, true, "tcp_info: milliseconds spent in RTO recoveries (6.7 on)"),
    ("rmem_alloc", U32, true, "SKMEMINFO: receive memory in use, bytes"),
    ("rcvbuf", U32, true, "SKMEMINFO: receive buffer size (SO_RCVBUF)"),
    ("wmem_alloc", U32, true, "SKMEMINFO: send memory in flight"),
    ("sndbuf", U32, true, "SKMEMINFO: send buffer size (SO_SNDBUF)"),
    ("wmem_queued", U32, true, "SKMEMINFO: send memory queued"),
    ("backlog_bytes", U32, true, "SKMEMINFO: bytes in the socket backlog (received while the socket was locked)"),
    ("drops", U32, true, "SKMEMINFO: packets dropped by the socket (sk_drops: receive buffer full, filters)"),
]);

/// Reads `netlink/inet_diag.nl`.
pub const READER: Reader = Reader {
    table: &TABLE,
    what: "netlink/inet_diag.nl (sock_diag inet dump)",
    claims: |path, head| {
        claims_conversation(
            path,
            head,
            "inet_diag.nl",
            SOCK_DIAG_BY_FAMILY,
            &[AF_INET, AF_INET6],
        )
    },
    superseded_by: &[],
    parse,
};

/// `struct inet_diag_msg`.
const MSG_LEN: usize = 72;
const INET_DIAG_INFO: u16 = 2;
const INET_DIAG_CONG: u16 = 4;
const INET_DIAG_SKMEMINFO: u16 = 7;
const INET_DIAG_SHUTDOWN: u16 = 8;
const TCP_LISTEN: u8 = 10;

fn timer_name(t: u8) -> String {
    match t {
        0 => "off",
        1 => "on",
        2 => "keepalive",
        3 => "timewait",
        4 => "probe",
        n => return n.to_string(),
    }
    .into()
}

/// An address of `inet_diag_sockid` (16 bytes in network order; IPv4 in
/// the first four).
fn sock_addr(family: u8, b: &[u8]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(Ipv4Addr::from(*b.first_chunk::<4>()?).into()),
        _ => {
            let a = Ipv6Addr::from(*b.first_chunk::<16>()?);
            Some(a.into())
        }
    }
}

/// TCPI_OPT_* (include/uapi/linux/tcp.h).
fn options_text(o: u8) -> String {
    let names: [(u8, &str); 7] = [
        (1, "ts"),
        (2, "sack"),
        (4, "wscale"),
        (8, "ecn"),
        (16, "ecnseen"),
        (32, "syn_data"),
        (64, "usec_ts"),
    ];
    names
        .iter()
        .filter(|(b, _)| o & b != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

fn ca_state(s: u8) -> String {
    match s {
        0 => "open",
        1 => "disorder",
        2 => "cwr",
        3 => "recovery",
        4 => "loss",
        n => return n.to_string(),
    }
    .into()
}

/// tcp_info fields read as (offset, width in bytes), in the table's order
/// after `probes` (struct tcp_info of include/uapi/linux/tcp.h; each is
/// read only when the kernel's struct reaches that far).
const TCP_INFO: &[(usize, usize)] = &[
    (8, 4),   // rto
    (12, 4),  // ato
    (16, 4),  // snd_mss
    (20, 4),  // rcv_mss
    (24, 4),  // unacked
    (28, 4),  // sacked
    (32, 4),  // lost
    (36, 4),  // retrans
    (44, 4),  // last_data_sent
    (52, 4),  // last_data_recv
    (56, 4),  // last_ack_recv
    (60, 4),  // pmtu
    (64, 4),  // rcv_ssthresh
    (68, 4),  // rtt
    (72, 4),  // rttvar
    (76, 4),  // snd_ssthresh
    (80, 4),  // snd_cwnd
    (84, 4),  // advmss
    (88, 4),  // reordering
    (92, 4),  // rcv_rtt
    (96, 4),  // rcv_space
    (100, 4), // total_retrans
    (104, 8), // pacing_rate
    (120, 8), // bytes_acked
    (128, 8), // bytes_received
    (136, 4), // segs_out
    (140, 4), // segs_in
    (144, 4), // notsent_bytes
    (148, 4), // min_rtt
    (152, 4), // data_segs_in
    (156, 4), // data_segs_out
    (160, 8), // delivery_rate
    (168, 8), // busy_time
    (176, 8), // rwnd_limited
    (184, 8), // sndbuf_limited
    (192, 4), // delivered
    (196, 4), // delivered_ce
    (200, 8), // bytes_sent
    (208, 8), // bytes_retrans
    (216, 4), // dsack_dups
    (220, 4), // reord_seen
    (224, 4), // rcv_ooopack
    (228, 4), // snd_wnd
    (232, 4), // rcv_wnd
    (236, 4), // rehash
    (240, 2), // total_rto
    (242, 2), // total_rto_recoveries
    (244, 4), // total_rto_time
];

/// SKMEMINFO fields (u32 indexes of `SK_MEMINFO_*`, linux/sock_diag.h):
/// rmem_alloc 0, rcvbuf 1, wmem_alloc 2, sndbuf 3, wmem_queued 5,
/// backlog 7, drops 8.
const SKMEMINFO: [usize; 7] = [0, 1, 2, 3, 5, 7, 8];

fn parse(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let mut out: Vec<Result<Vec<Val>, (usize, String)>> = Vec::new();
    netlink::conversation(input, SOCK_DIAG_BY_FAMILY, |turn| match turn {
        Turn::Answer {
            request,
            message,
            number,
        } => {
            let protocol = request.payload.get(1).copied().unwrap_or(0);
            out.push(read_socket(protocol, message.payload).map_err(|why| (number, why)));
        }
        Turn::Trouble { number, why } => out.push(Err((number, why))),
    })?;
    for row in out {
        match row {
            Ok(values) => {
                let row: Vec<V> = values.iter().map(Val::v).collect();
                rows.push(&row);
            }
            Err((n, why)) => rows.skip(n, why),
        }
    }
    Ok(())
}

/// A value of a row, owned.
enum Val {
    Null,
    S(String),
    U(u64),
}

impl Val {
    fn v(&self) -> V<'_> {
        match self {
            Val::Null => V::Null,
            Val::S(s) => V::Str(s),
            Val::U(n) => V::U64(*n),
        }
    }
}

fn opt<T: Into<u64>>(v: Option<T>) -> Val {
    v.map_or(Val::Null, |n| Val::U(n.into()))
}

fn read_socket(protocol: u8, p: &[u8]) -> Result<Vec<Val>, String> {
    if p.len() < MSG_LEN {
        return Err(format!("{} bytes, not an inet_diag_msg", p.len()));
    }
    let (family, state, timer, retrans) = (p[0], p[1], p[2], p[3]);
    if family != AF_INET && family != AF_INET6 {
        return Err(format!("family {family}: not an inet socket"));
    }
    let u = |at| u32_at(p, at).unwrap_or(0);
    let (rqueue, wqueue) = (u(56), u(60));
    let listen = state == TCP_LISTEN;
    let local = sock_addr(family, &p[8..24]).ok_or("short address")?;
    let remote = sock_addr(family, &p[24..40]).ok_or("short address")?;
    let cookie = (u64::from(u(48)) << 32) | u64::from(u(44));
    let mut info: Option<&[u8]> = None;
    let (mut cong, mut mem, mut shutdown) = (None, None, None);
    if let Some(attrs) = attrs_after(p, MSG_LEN) {
        for (kind, data) in attrs {
            match kind {
                INET_DIAG_INFO => info = Some(data),
                INET_DIAG_CONG => cong = Some(c_str(data).into_owned()),
                INET_DIAG_SKMEMINFO => mem = Some(data),
                INET_DIAG_SHUTDOWN => shutdown = data.first().copied(),
                _ => {}
            }
        }
    }
    let proto = match protocol {
        netlink::IPPROTO_TCP => "tcp".to_owned(),
        netlink::IPPROTO_UDP => "udp".to_owned(),
        n => n.to_string(),
    };
    let mut row = vec![
        Val::S(proto),
        Val::S(if family == AF_INET { "ipv4" } else { "ipv6" }.into()),
        Val::S(tcp_state_name(state).map_or_else(|| state.to_string(), str::to_owned)),
        Val::S(local.to_string()),
        Val::U(u64::from(be16_at(p, 4).unwrap_or(0))),
        Val::S(remote.to_string()),
        Val::U(u64::from(be16_at(p, 6).unwrap_or(0))),
        Val::U(u64::from(u(68))),
        Val::U(u64::from(u(64))),
        Val::S(format!("{cookie:x}")),
        opt(Some(u(40)).filter(|&i| i != 0)),
        Val::U(u64::from(rqueue)),
        Val::U(u64::from(wqueue)),
        opt(listen.then_some(rqueue)),
        opt(listen.then_some(wqueue)),
        Val::S(timer_name(timer)),
        Val::U(u64::from(u(52))),
        Val::U(u64::from(retrans)),
        match shutdown {
            Some(0) => Val::S("none".into()),
            Some(1) => Val::S("rd".into()),
            Some(2) => Val::S("wr".into()),
            Some(3) => Val::S("rdwr".into()),
            Some(n) => Val::S(n.to_string()),
            None => Val::Null,
        },
        cong.map_or(Val::Null, Val::S),
    ];
    // tcp_info: the header bytes, then the table of fields.
    let byte = |at: usize| info.and_then(|i| i.get(at).copied());
    row.push(byte(1).map_or(Val::Null, |s| Val::S(ca_state(s))));
    row.push(byte(5).map_or(Val::Null, |o| Val::S(options_text(o))));
    row.push(opt(byte(6).map(|w| w & 0xf)));
    row.push(opt(byte(6).map(|w| w >> 4)));
    row.push(opt(byte(4)));
    row.push(opt(byte(3)));
    for &(at, width) in TCP_INFO {
        let v = info.and_then(|i| match width {
            2 => netlink::u16_at(i, at).map(u64::from),
            4 => u32_at(i, at).map(u64::from),
            _ => u64_at(i, at),
        });
        row.push(opt(v));
    }
    for i in SKMEMINFO {
        row.push(opt(mem.and_then(|m| u32_at(m, i * 4))));
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::INET_DIAG_DUMP;
    use crate::rows::testing::{strings, u64s};
    use crate::rows::{Origin, read};

    /// A real inet_diag dump taken on Linux 6.18 in the lab namespace of
    /// formats/testdata/make-netlink.sh: a listener on 10.77.0.1:7000 with
    /// backlog 3 that never accepts and 5 clients (4 fit the queue, the
    /// 5th retransmits its SYN), an established pair on 10.77.0.1:7001
    /// that moved 100000 bytes each way, a UDP socket on :5353.
    const REAL: &[u8] = include_bytes!("../testdata/netlink/inet_diag.nl");

    #[test]
    fn a_real_dump_reads_like_ss() {
        let (batch, skipped, _) = read(
            &READER,
            REAL,
            Origin::of("b", None, "netns/x/netlink/inet_diag.nl"),
        )
        .unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        let state = strings(&batch, "state");
        let lport = u64s(&batch, "local_port");
        let rport = u64s(&batch, "remote_port");
        let find = |s: &str, port: u64| {
            (0..state.len())
                .find(|&i| state[i].as_deref() == Some(s) && (lport[i] == Some(port) || port == 0))
                .unwrap_or_else(|| panic!("no {s} socket on {port}"))
        };
        let l = find("LISTEN", 7000);
        assert_eq!(
            strings(&batch, "local_address")[l].as_deref(),
            Some("10.77.0.1")
        );
        assert_eq!(u64s(&batch, "backlog")[l], Some(3));
        assert_eq!(u64s(&batch, "accept_queue")[l], Some(4), "backlog + 1 fit");
        assert!(u64s(&batch, "inode")[l].unwrap() > 0);
        // The SYNs that found the queue full were dropped by the listener
        // (ss: skmem d3); tcp_info's unacked of a listener is its queue.
        assert_eq!(u64s(&batch, "drops")[l], Some(3));
        assert_eq!(u64s(&batch, "unacked")[l], Some(4));
        // The fifth client still retransmits its SYN.
        let syn = find("SYN_SENT", 0);
        assert_eq!(rport[syn], Some(7000));
        assert_eq!(u64s(&batch, "total_retrans")[syn], Some(2));
        assert_eq!(strings(&batch, "timer")[syn].as_deref(), Some("on"));
        let e = find("ESTABLISHED", 7001);
        assert_eq!(strings(&batch, "protocol")[e].as_deref(), Some("tcp"));
        assert_eq!(u64s(&batch, "backlog")[e], None);
        assert!(u64s(&batch, "rtt_us")[e].is_some());
        // lo's MTU is 65536, but an IP packet is at most 65535 bytes.
        assert_eq!(u64s(&batch, "pmtu")[e], Some(65535));
        // This machine's net.ipv4.tcp_congestion_control.
        assert_eq!(strings(&batch, "congestion")[e].as_deref(), Some("bbr"));
        let lp = (0..state.len()).find(|&i| rport[i] == Some(7001)).unwrap();
        assert_eq!(u64s(&batch, "bytes_acked")[lp], Some(100_001));
        let udp = find("CLOSE", 5353);
        assert_eq!(strings(&batch, "protocol")[udp].as_deref(), Some("udp"));
        assert_eq!(u64s(&batch, "rtt_us")[udp], None);
        assert!(u64s(&batch, "rcvbuf")[udp].is_some());
    }

    #[test]
    fn a_short_tcp_info_gives_nulls_not_zeros() {
        let mut msg = vec![AF_INET, 1, 0, 0];
        msg.extend_from_slice(&8080u16.to_be_bytes());
        msg.extend_from_slice(&40000u16.to_be_bytes());
        msg.extend_from_slice(&[10, 0, 0, 1]);
        msg.extend_from_slice(&[0; 12]);
        msg.extend_from_slice(&[10, 0, 0, 2]);
        msg.extend_from_slice(&[0; 12]);
        msg.extend_from_slice(&[0; 8 + 20]);
        msg.extend_from_slice(&7u32.to_le_bytes()); // inode
        let mut info = vec![0u8; 104];
        info[68..72].copy_from_slice(&1234u32.to_le_bytes());
        msg.extend(crate::netlink::build::attr(INET_DIAG_INFO, &info));
        let row = read_socket(6, &msg).unwrap();
        let at = |name: &str| TABLE.columns.iter().position(|c| c.name == name).unwrap() - 3;
        assert!(matches!(row[at("rtt_us")], Val::U(1234)));
        assert!(matches!(row[at("total_retrans")], Val::U(0)));
        assert!(
            matches!(row[at("pacing_rate")], Val::Null),
            "past 104 bytes"
        );
        assert!(matches!(row[at("inode")], Val::U(7)));
        assert!(matches!(row[at("remote_port")], Val::U(40000)));
        assert!(matches!(&row[at("remote_address")], Val::S(a) if a == "10.0.0.2"));
    }

    #[test]
    fn a_request_of_another_family_is_not_claimed() {
        let unix = [
            28u32.to_le_bytes().as_slice(),
            &20u16.to_le_bytes(),
            &0x301u16.to_le_bytes(),
            &[0; 8],
            &[1, 0, 0, 0],
        ]
        .concat();
        assert!(!(READER.claims)("dump.bin", &unix));
        let inet = INET_DIAG_DUMP.requests[0].message(1);
        assert!((READER.claims)("dump.bin", &inet));
        assert!((READER.claims)("netns/x/netlink/inet_diag.nl", b""));
        assert!(!(READER.claims)("netns/x/netlink/link.nl", &inet));
    }
}
