//! `/proc/net/{tcp,tcp6,udp,udp6,raw,raw6,udplite,udplite6,icmp,icmp6}`:
//! the inet sockets of one network namespace.
//!
//! One line per socket, printed by `get_tcp4_sock`, `get_timewait4_sock`
//! and `get_openreq4` (net/ipv4/tcp_ipv4.c), `get_tcp6_sock` & co.
//! (net/ipv6/tcp_ipv6.c), `udp4_format_sock` (net/ipv4/udp.c),
//! `raw_sock_seq_show` (net/ipv4/raw.c), `ping_v4_format_sock`
//! (net/ipv4/ping.c) and `__ip6_dgram_sock_seq_show`
//! (net/ipv6/datagram.c):
//!
//! ```text
//! sl: LOCAL:PORT REMOTE:PORT st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ref pointer [drops | tcp extras]
//! ```
//!
//! Facts this parser relies on, checked on Linux 6.18 (x86_64) in a fresh
//! `ip netns`:
//! - An address is the in-memory `__be32` printed as a host-order integer
//!   with `%08X`, so on little-endian machines `127.0.0.1` reads `0100007F`;
//!   IPv6 is four such words (`s6_addr32[0..3]`), `::1` reads
//!   `00000000000000000000000001000000` and a v4-mapped address
//!   `0000000000000000FFFF00000100007F` (shown here as `::ffff:127.0.0.1`).
//!   Files from big-endian machines (s390x) would decode byte-swapped: the
//!   file does not say which it was.
//! - Ports are `ntohs`'ed before printing: `1F90` is port 8080. A raw
//!   socket's local port is its IP protocol (`inet_num`: 0001 for ICMP).
//! - `st` is `sk_state`, a TCP state number (include/net/tcp_states.h) for
//!   every protocol: an unconnected UDP socket shows `07` (CLOSE), a
//!   connected one `01` (ESTABLISHED); raw sockets show `07`.
//! - `tm->when` is `jiffies_delta_to_clock_t(expires - jiffies)`: clock
//!   ticks of USER_HZ (100 per second), not jiffies. A fresh TIME_WAIT
//!   socket showed `03:0000175B` (5979 ticks = 59.8 s of the 60 s
//!   TIME_WAIT) on a kernel built with CONFIG_HZ=250; `getconf CLK_TCK`
//!   says 100. The column is therefore converted to milliseconds.
//! - `tr` is 1 for the retransmit, loss-probe and reordering timers, 4 for
//!   the zero-window probe timer, 2 for keepalive (`sk_timer`), 3 for
//!   TIME_WAIT sockets and 0 when none is pending (`get_tcp4_sock`);
//!   `get_openreq4` always prints 1.
//! - tx_queue, rx_queue, tr, tm->when and retrnsmt are hex; uid, timeout,
//!   inode, ref and drops are decimal. TIME_WAIT and SYN_RECV lines end
//!   after the pointer (inode 0); only the datagram tables (udp, raw, icmp)
//!   have the `drops` column, and only their header names it.
//! - For TCP the header's `timeout` is `icsk_probes_out` (unanswered
//!   keepalive or zero-window probes), `retrnsmt` is `icsk_retransmits`
//!   (for a SYN_RECV request: its SYN-ACK retransmissions); both are 0 for
//!   the datagram protocols.
//! - The IPv6 tables' header says `remote_address`, the IPv4 ones
//!   `rem_address`: a file saved under another name is recognised by its
//!   header, and its family by that word or by the address length.

use crate::rows::{Reader, Rows, V, file_name_is, text};
use crate::tcp_state::tcp_state_name;
use std::net::{Ipv4Addr, Ipv6Addr};

#[rustfmt::skip]
crate::artifact_table!("sockets", "one row per inet socket of /proc/net/{tcp,tcp6,udp,udp6,raw,raw6,udplite,udplite6,icmp,icmp6}", [
    ("protocol", Dict, false, "tcp, tcp6, udp, udp6, raw, raw6, udplite, udplite6, icmp, icmp6 (ping sockets): the table the row comes from"),
    ("local_address", Str, false, "local address as text (10.0.0.1, fe80::1, ::ffff:10.0.0.1 for v4-mapped); 0.0.0.0 / :: when bound to any"),
    ("local_port", U16, false, "local port; for raw sockets the IP protocol number"),
    ("remote_address", Str, false, "peer address as text; 0.0.0.0 / :: when not connected"),
    ("remote_port", U16, false, "peer port; 0 when not connected"),
    ("state", Dict, false, "sk_state by its TCP name (ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN, CLOSING, NEW_SYN_RECV, BOUND_INACTIVE); UDP: CLOSE = unconnected, ESTABLISHED = connected"),
    ("tx_queue", U64, false, "TCP: bytes sent and not yet acknowledged (write_seq - snd_una); datagram: bytes of send buffer in use (sk_wmem_alloc)"),
    ("rx_queue", U64, false, "TCP LISTEN: connections waiting in the accept queue; other TCP: bytes received and not yet read; datagram: receive buffer in use (skb truesize, above the payload)"),
    ("timer", Dict, false, "pending timer: off, on (retransmit, loss probe, reordering; also SYN_RECV requests), keepalive, timewait, probe (zero window)"),
    ("timer_expires_ms", U64, false, "milliseconds until the timer fires (0 when off or overdue); the file gives USER_HZ ticks, read as 1/100 s"),
    ("retransmits", U64, false, "TCP: unrecovered retransmissions of the current segment (icsk_retransmits); SYN_RECV: SYN-ACKs retransmitted"),
    ("uid", U32, false, "owner uid of the socket (of the listener for SYN_RECV requests; 0 for TIME_WAIT)"),
    ("timeout", U64, false, "TCP: unanswered keepalive or zero-window probes (icsk_probes_out; the header calls it timeout); 0 otherwise"),
    ("inode", U64, false, "socket inode, as in /proc/PID/fd `socket:[N]`; 0 for TIME_WAIT and SYN_RECV entries, which have no file"),
    ("refcount", U64, true, "references held on the sock"),
    ("drops", U64, true, "datagrams dropped on receive (sk_drops): udp, raw and icmp tables only"),
]);

/// File names of the tables this reader takes (the last path component).
const NAMES: &[&str] = &[
    "tcp", "tcp6", "udp", "udp6", "raw", "raw6", "udplite", "udplite6", "icmp", "icmp6",
];

/// Reads the inet socket tables of /proc/net.
pub const READER: Reader = Reader {
    table: &TABLE,
    what: "/proc/net/tcp, tcp6, udp, udp6, raw, raw6, udplite, udplite6, icmp, icmp6",
    claims: |path, head| file_name_is(path, NAMES) || is_header(&first_line(head)),
    superseded_by: &[],
    parse,
};

/// The first line of `head`, lossily decoded; a partial line counts.
fn first_line(head: &[u8]) -> std::borrow::Cow<'_, str> {
    let end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    String::from_utf8_lossy(head.get(..end).unwrap_or_default())
}

/// `  sl  local_address rem_address ...` (IPv4) or `... remote_address ...`.
fn is_header(line: &str) -> bool {
    let mut words = line.split_whitespace();
    words.next() == Some("sl")
        && words.next() == Some("local_address")
        && matches!(words.next(), Some("rem_address" | "remote_address"))
}

/// Which table a file is, from its name when it is a kernel name, else from
/// words in its name (`udp_broken`) and what its header and lines show.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Base {
    Tcp,
    Udp,
    UdpLite,
    Raw,
    Icmp,
}

fn protocol(base: Base, v6: bool) -> &'static str {
    match (base, v6) {
        (Base::Tcp, false) => "tcp",
        (Base::Tcp, true) => "tcp6",
        (Base::Udp, false) => "udp",
        (Base::Udp, true) => "udp6",
        (Base::UdpLite, false) => "udplite",
        (Base::UdpLite, true) => "udplite6",
        (Base::Raw, false) => "raw",
        (Base::Raw, true) => "raw6",
        (Base::Icmp, false) => "icmp",
        (Base::Icmp, true) => "icmp6",
    }
}

/// The base protocol and, when the name says it, the family.
fn from_name(name: &str) -> (Option<Base>, Option<bool>) {
    let base = if name.contains("udplite") {
        Some(Base::UdpLite)
    } else if name.contains("udp") {
        Some(Base::Udp)
    } else if name.contains("raw") {
        Some(Base::Raw)
    } else if name.contains("icmp") || name.contains("ping") {
        Some(Base::Icmp)
    } else if name.contains("tcp") {
        Some(Base::Tcp)
    } else {
        None
    };
    // Only the kernel's own names say the family for sure.
    let v6 = NAMES.contains(&name).then(|| name.ends_with('6'));
    (base, v6)
}

fn parse(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let text = text(input);
    let (named_base, named_v6) = from_name(rows.origin().file_name());
    let mut header: Option<(bool, bool)> = None; // (has drops, says v6)
    let mut lines_seen = 0usize;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        lines_seen += 1;
        if is_header(line) {
            header = Some((
                line.split_whitespace().any(|w| w == "drops"),
                line.split_whitespace().any(|w| w == "remote_address"),
            ));
            continue;
        }
        let has_drops = header.is_some_and(|h| h.0);
        let sock = match parse_line(line, has_drops) {
            Ok(sock) => sock,
            Err(reason) => {
                rows.skip(n + 1, reason);
                continue;
            }
        };
        let base = named_base.unwrap_or(match header {
            Some((true, _)) => Base::Udp,
            _ => Base::Tcp,
        });
        let v6 = named_v6
            .or(header.map(|h| h.1))
            .unwrap_or(sock.local.is_ipv6());
        let local = sock.local.to_string();
        let remote = sock.remote.to_string();
        let state = state_name(sock.state);
        let timer = timer_name(sock.timer);
        rows.push(&[
            V::Str(protocol(base, v6)),
            V::Str(&local),
            V::U64(sock.local_port.into()),
            V::Str(&remote),
            V::U64(sock.remote_port.into()),
            V::Str(&state),
            V::U64(sock.tx_queue),
            V::U64(sock.rx_queue),
            V::Str(&timer),
            V::U64(sock.expires_ticks.saturating_mul(1000 / USER_HZ)),
            V::U64(sock.retransmits),
            V::U64(sock.uid.into()),
            V::U64(sock.timeout),
            V::U64(sock.inode),
            V::from(sock.refcount),
            V::from(sock.drops),
        ]);
    }
    if header.is_none() && rows.is_empty() {
        return Err(if lines_seen == 0 {
            "empty: no `sl local_address ...` header".into()
        } else {
            "no `sl local_address ...` header and no socket line".into()
        });
    }
    Ok(())
}

/// Clock ticks per second of `tm->when` (USER_HZ; include/asm-generic/param.h).
const USER_HZ: u64 = 100;

/// One line of a socket table.
#[derive(Debug, PartialEq)]
struct Sock {
    local: std::net::IpAddr,
    local_port: u16,
    remote: std::net::IpAddr,
    remote_port: u16,
    state: u8,
    tx_queue: u64,
    rx_queue: u64,
    timer: u8,
    expires_ticks: u64,
    retransmits: u64,
    uid: u32,
    timeout: u64,
    inode: u64,
    refcount: Option<u64>,
    drops: Option<u64>,
}

fn parse_line(line: &str, has_drops: bool) -> Result<Sock, String> {
    let mut w = line.split_whitespace();
    let mut next = |what: &str| {
        w.next()
            .ok_or_else(|| format!("line ends before {what}: {line:?}"))
    };
    let sl = next("sl")?;
    if !sl.ends_with(':') {
        return Err(format!("no `N:` slot number at the start of {line:?}"));
    }
    let (local, local_port) = endpoint(next("local_address")?)?;
    let (remote, remote_port) = endpoint(next("rem_address")?)?;
    let state = hex(next("st")?, 2).ok_or_else(|| format!("bad state in {line:?}"))?;
    let (tx, rx) = pair(next("tx_queue:rx_queue")?)
        .ok_or_else(|| format!("bad tx_queue:rx_queue in {line:?}"))?;
    let (timer, expires) =
        pair(next("tr:tm->when")?).ok_or_else(|| format!("bad tr:tm->when in {line:?}"))?;
    let retransmits =
        hex(next("retrnsmt")?, 16).ok_or_else(|| format!("bad retrnsmt in {line:?}"))?;
    let uid = dec(next("uid")?)
        .and_then(|u| u32::try_from(u).ok())
        .ok_or_else(|| format!("bad uid in {line:?}"))?;
    let timeout = dec(next("timeout")?).ok_or_else(|| format!("bad timeout in {line:?}"))?;
    let inode = dec(next("inode")?).ok_or_else(|| format!("bad inode in {line:?}"))?;
    let refcount = w.next().and_then(dec);
    let _pointer = w.next();
    let drops = if has_drops {
        w.next().and_then(dec)
    } else {
        None
    };
    Ok(Sock {
        local,
        local_port,
        remote,
        remote_port,
        state: u8::try_from(state).map_err(|_| format!("state out of range in {line:?}"))?,
        tx_queue: tx,
        rx_queue: rx,
        timer: u8::try_from(timer).map_err(|_| format!("timer out of range in {line:?}"))?,
        expires_ticks: expires,
        retransmits,
        uid,
        timeout,
        inode,
        refcount,
        drops,
    })
}

/// Hex digits only (`from_str_radix` would also take a sign), at most
/// `max` of them.
fn hex(s: &str, max: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

fn dec(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `HEX:HEX`, as in `tx_queue:rx_queue` and `tr:tm->when`.
fn pair(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once(':')?;
    Some((hex(a, 16)?, hex(b, 16)?))
}

/// `ADDR:PORT` with the address in the kernel's hex (see the module doc).
fn endpoint(s: &str) -> Result<(std::net::IpAddr, u16), String> {
    let bad = || format!("bad address {s:?}");
    let (addr, port) = s.split_once(':').ok_or_else(bad)?;
    let port = hex(port, 4)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(bad)?;
    Ok((address(addr).ok_or_else(bad)?, port))
}

/// Decodes 8 hex digits (IPv4) or 32 (IPv6): each 8-digit word is a
/// network-order `__be32` printed as a little-endian host integer.
fn address(hex_text: &str) -> Option<std::net::IpAddr> {
    if !hex_text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = hex_text.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(w, 16).ok()?.to_le_bytes())
    };
    match hex_text.len() {
        8 => Some(Ipv4Addr::from(word(0)?).into()),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(i)?);
            }
            Some(Ipv6Addr::from(bytes).into())
        }
        _ => None,
    }
}

/// `st` by its name in [`TCP_STATES`](crate::tcp_state::TCP_STATES); a
/// number the kernel does not define keeps its value.
fn state_name(state: u8) -> std::borrow::Cow<'static, str> {
    match tcp_state_name(state) {
        Some(name) => name.into(),
        None => format!("UNKNOWN_{state:02X}").into(),
    }
}

/// The `tr` field (see the module doc).
fn timer_name(timer: u8) -> std::borrow::Cow<'static, str> {
    let name = match timer {
        0 => "off",
        1 => "on",
        2 => "keepalive",
        3 => "timewait",
        4 => "probe",
        other => return format!("unknown_{other}").into(),
    };
    name.into()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rows::{Origin, read};
    use arrow_array::RecordBatch;
    use arrow_array::cast::AsArray;
    use arrow_array::types::UInt16Type;

    use crate::rows::testing::strings;

    use crate::rows::testing::u64s;

    fn ports(batch: &RecordBatch, name: &str) -> Vec<Option<u16>> {
        batch
            .column_by_name(name)
            .unwrap()
            .as_primitive::<UInt16Type>()
            .iter()
            .collect()
    }

    fn s(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|s| Some((*s).to_owned())).collect()
    }

    /// Taken on Linux 6.18 in a fresh netns: a listener on 127.0.0.1:8080,
    /// both ends of a connection to it, and the TIME_WAIT end of a second
    /// one closed 0.2 s before.
    pub(crate) const TCP: &[u8] = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 15885147 1 0000000018ea8cd7 100 0 0 10 0                  
   1: 0100007F:EC50 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 15885148 2 000000003ba2f1d3 20 0 0 10 -1                  
   2: 0100007F:EC52 0100007F:1F90 06 00000000:00000000 03:0000175B 00000000     0        0 0 3 00000000b23f63d4                                      
   3: 0100007F:1F90 0100007F:EC50 01 00000000:00000000 00:00000000 00000000     0        0 15885149 1 00000000c1eea011 20 0 0 10 -1                  
";

    /// Same netns: an unconnected UDP socket on 127.0.0.1:5353 holding one
    /// 10-byte datagram (0x340 bytes of truesize), and a connected one.
    pub(crate) const UDP: &[u8] = b"   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            
 8700: 0100007F:14E9 00000000:0000 07 00000000:00000340 00:00000000 00000000     0        0 15885142 2 0000000019f28ba9 0      
15165: 0100007F:EE2A 0100007F:14E9 01 00000000:00000000 00:00000000 00000000     0        0 15885143 2 000000005a8dae73 0      
";

    /// Same netns: udp6 on ::1 and a v4-mapped connected socket.
    pub(crate) const UDP6: &[u8] = b"  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 2513: 0000000000000000FFFF00000100007F:BCBE 0000000000000000FFFF00000100007F:14E9 01 00000000:00000000 00:00000000 00000000     0        0 15885145 2 00000000e09b7b1f 0
 8701: 00000000000000000000000001000000:14EA 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 15885144 2 000000002afbc2b6 0
";

    fn read_as(path: &str, input: &[u8]) -> (RecordBatch, Vec<crate::Skipped>, usize) {
        read(&READER, input, Origin::of("b", None, path)).unwrap()
    }

    #[test]
    fn tcp_lines_give_addresses_states_and_timers() {
        let (batch, skipped, _) = read_as("netns/host/proc/net/tcp", TCP);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(batch.num_rows(), 4);
        assert_eq!(strings(&batch, "protocol"), s(&["tcp"; 4]));
        assert_eq!(strings(&batch, "local_address"), s(&["127.0.0.1"; 4]));
        assert_eq!(
            ports(&batch, "local_port"),
            [Some(8080), Some(60496), Some(60498), Some(8080)]
        );
        assert_eq!(
            ports(&batch, "remote_port"),
            [Some(0), Some(8080), Some(8080), Some(60496)]
        );
        assert_eq!(
            strings(&batch, "state"),
            s(&["LISTEN", "ESTABLISHED", "TIME_WAIT", "ESTABLISHED"])
        );
        assert_eq!(
            strings(&batch, "timer"),
            s(&["off", "off", "timewait", "off"])
        );
        assert_eq!(
            u64s(&batch, "timer_expires_ms"),
            [Some(0), Some(0), Some(59_790), Some(0)]
        );
        assert_eq!(
            u64s(&batch, "inode"),
            [Some(15885147), Some(15885148), Some(0), Some(15885149)]
        );
        assert_eq!(
            u64s(&batch, "refcount"),
            [Some(1), Some(2), Some(3), Some(1)]
        );
        // TCP has no drops column: the numbers after the pointer are rto etc.
        assert_eq!(u64s(&batch, "drops"), [None; 4]);
    }

    #[test]
    fn udp_states_queues_and_drops() {
        let (batch, skipped, _) = read_as("proc/net/udp", UDP);
        assert!(skipped.is_empty());
        assert_eq!(strings(&batch, "state"), s(&["CLOSE", "ESTABLISHED"]));
        assert_eq!(u64s(&batch, "rx_queue"), [Some(0x340), Some(0)]);
        assert_eq!(u64s(&batch, "drops"), [Some(0), Some(0)]);
        assert_eq!(
            strings(&batch, "remote_address"),
            s(&["0.0.0.0", "127.0.0.1"])
        );
        assert_eq!(ports(&batch, "local_port"), [Some(5353), Some(60970)]);
    }

    #[test]
    fn ipv6_words_are_little_endian_and_v4_mapped_shown_dotted() {
        let (batch, _, _) = read_as("proc/net/udp6", UDP6);
        assert_eq!(strings(&batch, "protocol"), s(&["udp6", "udp6"]));
        assert_eq!(
            strings(&batch, "local_address"),
            s(&["::ffff:127.0.0.1", "::1"])
        );
        assert_eq!(
            strings(&batch, "remote_address"),
            s(&["::ffff:127.0.0.1", "::"])
        );
    }

    #[test]
    fn addresses_decode_table() {
        for (hex_text, want) in [
            ("0100007F", "127.0.0.1"),
            ("0500000A", "10.0.0.5"),
            ("020200C0", "192.0.2.2"),
            ("FEA9FEA9", "169.254.169.254"),
            ("00000000", "0.0.0.0"),
            (
                "000080FE00000000FFADE15609667CFE",
                "fe80::56e1:adff:fe7c:6609",
            ),
            ("00000000000000000000000001000000", "::1"),
            ("0000000000000000FFFF00000100007F", "::ffff:127.0.0.1"),
            ("B80D0120000000000000000001000000", "2001:db8::1"),
        ] {
            assert_eq!(
                address(hex_text).map(|a| a.to_string()).as_deref(),
                Some(want),
                "{hex_text}"
            );
        }
        for bad in [
            "",
            "0100007",
            "+100007F",
            "0100007G",
            "0100007F00",
            "é0000000",
        ] {
            assert_eq!(address(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_short_line_is_skipped_and_the_rest_kept() {
        let input = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0000000000000000
   2: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  notauid  0 77 1 0000000000000000
   3: 0100007Z:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0000000000000000
";
        let (batch, skipped, total) = read_as("proc/net/tcp", input);
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(total, 3);
        assert_eq!(
            skipped.iter().map(|s| s.line).collect::<Vec<_>>(),
            [2, 4, 5]
        );
        assert_eq!(u64s(&batch, "inode"), [Some(77)]);
    }

    #[test]
    fn files_under_other_names_are_recognised_by_header_and_address_length() {
        let head =
            b"  sl  local_address                         remote_address                        st";
        assert!((READER.claims)("saved/sockets-before.txt", head));
        assert!((READER.claims)("netns/x/proc/net/udplite6", b""));
        assert!(!(READER.claims)(
            "proc/net/tcp_metrics",
            b"sl  something else"
        ));
        assert!(!(READER.claims)(
            "proc/net/unix",
            b"Num       RefCount Protocol"
        ));
        // A TCP table with the IPv6 header saved as "after.txt".
        let mut tcp6 = b"  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n".to_vec();
        tcp6.extend_from_slice(b"   0: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 15885163 1 00000000ca0d356c 100 0 0 10 0\n");
        let (batch, _, _) = read_as("after.txt", &tcp6);
        assert_eq!(strings(&batch, "protocol"), s(&["tcp6"]));
        // A UDP table (the header names drops) with IPv4 addresses.
        let (batch, _, _) = read_as("sockets.txt", UDP);
        assert_eq!(strings(&batch, "protocol"), s(&["udp", "udp"]));
        // Lines without a header: the family comes from the address length.
        let (batch, _, _) = read_as(
            "raw-copy",
            &UDP6[UDP6.iter().position(|&b| b == b'\n').unwrap() + 1..],
        );
        assert_eq!(strings(&batch, "protocol"), s(&["raw6", "raw6"]));
    }

    #[test]
    fn not_a_socket_table_is_an_error() {
        assert!(read(&READER, b"", Origin::of("b", None, "proc/net/tcp")).is_err());
        assert!(
            read(
                &READER,
                b"hello world\n",
                Origin::of("b", None, "proc/net/tcp")
            )
            .is_err()
        );
    }

    #[test]
    fn unknown_state_and_timer_numbers_keep_their_value() {
        assert_eq!(state_name(0x0E), "UNKNOWN_0E");
        assert_eq!(timer_name(9), "unknown_9");
        assert_eq!(state_name(12), "NEW_SYN_RECV");
    }

    /// A real bundle (capsnap on a VM): the host's tcp table with a listener
    /// and TIME_WAIT connections to 1.1.1.1 and 169.254.169.254.
    #[test]
    fn bundle_tcp_excerpt() {
        let input = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1681 1 00000000d400a8fd 100 0 0 10 0                      
   1: 020200C0:B736 01010101:01BB 06 00000000:00000000 03:0000088E 00000000     0        0 0 3 0000000027f3e58c                                      
   4: 020200C0:8680 FEA9FEA9:0050 06 00000000:00000000 03:00000926 00000000     0        0 0 3 000000004b9f76eb                                      
";
        let (batch, skipped, _) = read_as("netns/host/proc/net/tcp", input);
        assert!(skipped.is_empty());
        assert_eq!(
            strings(&batch, "remote_address"),
            s(&["0.0.0.0", "1.1.1.1", "169.254.169.254"])
        );
        assert_eq!(
            ports(&batch, "local_port"),
            [Some(2024), Some(46902), Some(34432)]
        );
        assert_eq!(ports(&batch, "remote_port"), [Some(0), Some(443), Some(80)]);
        assert_eq!(
            u64s(&batch, "timer_expires_ms"),
            [Some(0), Some(21_900), Some(23_420)]
        );
        // Empty tables of the same bundle: a header alone is fine.
        let (batch, skipped, _) = read_as("netns/host/proc/net/raw6", b"  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n");
        assert_eq!((batch.num_rows(), skipped.len()), (0, 0));
    }

    #[test]
    fn corpus_samples_load() {
        let dir = crate::testing::corpus().join("proc");
        for (path, rows, skipped, protocol) in [
            ("prometheus-procfs/proc/net/tcp", 3, 0, "tcp"),
            ("prometheus-procfs/proc/net/tcp6", 2, 0, "tcp6"),
            // procfs' udp fixture is a copy of its tcp one (tcp header, no drops).
            ("prometheus-procfs/proc/net/udp", 3, 0, "udp"),
            ("prometheus-procfs/proc/net/udp6", 2, 0, "udp6"),
            ("prometheus-procfs/proc/net/udp_broken", 0, 1, "udp"),
            ("node_exporter/proc/net/udp", 1, 0, "udp"),
        ] {
            let bytes = std::fs::read(dir.join(path)).unwrap();
            assert!((READER.claims)(path, &bytes), "{path}");
            let (batch, skip, total) = read_as(path, &bytes);
            assert_eq!(
                (batch.num_rows(), total),
                (rows, skipped),
                "{path}: {skip:?}"
            );
            if rows > 0 {
                assert_eq!(
                    strings(&batch, "protocol")[0].as_deref(),
                    Some(protocol),
                    "{path}"
                );
            }
        }
        let bytes = std::fs::read(dir.join("prometheus-procfs/proc/net/tcp")).unwrap();
        let (batch, _, _) = read_as("proc/net/tcp", &bytes);
        assert_eq!(
            strings(&batch, "local_address")[0].as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(u64s(&batch, "tx_queue"), [Some(0), Some(1), Some(1)]);
        assert_eq!(u64s(&batch, "rx_queue"), [Some(1), Some(0), Some(1)]);
        let bytes = std::fs::read(dir.join("prometheus-procfs/proc/net/tcp6")).unwrap();
        let (batch, _, _) = read_as("proc/net/tcp6", &bytes);
        assert_eq!(
            strings(&batch, "local_address")[1].as_deref(),
            Some("fe80::56e1:adff:fe7c:6609")
        );
        assert_eq!(ports(&batch, "local_port"), [Some(5355), Some(51073)]);
        assert_eq!(
            batch
                .column_by_name("uid")
                .unwrap()
                .as_primitive::<arrow_array::types::UInt32Type>()
                .value(1),
            1000
        );
    }
}
