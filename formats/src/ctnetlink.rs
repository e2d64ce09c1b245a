//! Connection tracking over netlink (ctnetlink): the conversations
//! `netlink/conntrack.nl` (every entry, IPCTNL_MSG_CT_GET) and
//! `netlink/conntrack_stats.nl` (per-CPU statistics,
//! IPCTNL_MSG_CT_GET_STATS_CPU) that the collector keeps in each namespace,
//! read into the tables the `conntrack` tool's output fed before them:
//! `conntrack` and `net_counters` (group `conntrack`), same columns, same
//! meanings.
//!
//! Each answer is printed as the tool prints it (`conntrack -L -o
//! extended`, `conntrack -S`: libnetfilter_conntrack's snprintf and
//! conntrack-tools' attribute names) and read by the tool's readers, so
//! that one parser gives the rows and `raw` shows the entry in the form
//! people know. The attributes are those of
//! include/uapi/linux/netfilter/nfnetlink_conntrack.h, as
//! net/netfilter/nf_conntrack_netlink.c fills them (`ctnetlink_fill_info`,
//! `ctnetlink_ct_stat_cpu_fill_info`): every number in network byte order
//! (`nla_put_be32`/`be64`), unlike the rest of netlink. Facts that shape
//! the rows:
//! - CTA_ZONE comes only for a zone other than 0 (`ctnetlink_dump_zone_id`):
//!   as with the tool, no zone is zone 0.
//! - CTA_COUNTERS_* come only with `nf_conntrack_acct=1`, CTA_TIMESTAMP
//!   only with `nf_conntrack_timestamp=1` (its start is wall-clock
//!   nanoseconds, `ktime_get_real_ns`); `delta-time` is counted to the
//!   close of the capture window the manifest records (the dump is taken
//!   just after it), where the tool counts to the moment it prints.
//! - CTA_TIMEOUT is seconds left (`nf_ct_expires / HZ`), as /proc prints.
//! - The state of TCP, SCTP and DCCP is a number in CTA_PROTOINFO, named
//!   here as the kernel's /proc/net/nf_conntrack names it.
//! - An entry's status bits (include/uapi/linux/netfilter/nf_conntrack_common.h
//!   `enum ip_conntrack_status`) give the bracketed flags: no IPS_SEEN_REPLY
//!   is `[UNREPLIED]`, IPS_ASSURED `[ASSURED]`, IPS_OFFLOAD / IPS_HW_OFFLOAD
//!   `[OFFLOAD]` / `[HW_OFFLOAD]`.
//! - The statistics answer carries its CPU in the nfgenmsg's res_id
//!   (network order) and only the counters the kernel still keeps
//!   (found, invalid, insert, insert_failed, drop, early_drop, error,
//!   search_restart, clash_resolve, chaintoolong on 6.x).

use crate::netlink::{
    self, Attrs, IPCTNL_MSG_CT_GET, IPCTNL_MSG_CT_GET_STATS_CPU, IPCTNL_MSG_CT_NEW, Turn,
    attrs_after, be16_at, be32_at, be64_at,
};
use crate::rows::{Reader, Rows};
use crate::rtnetlink::claims_conversation;
use crate::{conntrack, counters};
use std::fmt::Write;
use std::net::IpAddr;

/// Reads `netlink/conntrack.nl` into the `conntrack` table.
pub const ENTRIES_READER: Reader = Reader {
    table: &conntrack::TABLE,
    what: "netlink/conntrack.nl (ctnetlink dump of the conntrack table)",
    claims: |path, head| claims_conversation(path, head, "conntrack.nl", IPCTNL_MSG_CT_GET, &[]),
    superseded_by: &[],
    parse: parse_entries,
};

/// Reads `netlink/conntrack_stats.nl` into `net_counters`, group
/// `conntrack`, as `conntrack -S` was read.
pub const STATS_READER: Reader = Reader {
    table: &counters::TABLE,
    what: "netlink/conntrack_stats.nl (ctnetlink per-CPU statistics)",
    claims: |path, head| {
        claims_conversation(
            path,
            head,
            "conntrack_stats.nl",
            IPCTNL_MSG_CT_GET_STATS_CPU,
            &[],
        )
    },
    superseded_by: &[],
    parse: parse_stats,
};

/// `struct nfgenmsg`: family u8, version u8, res_id be16.
const NFGENMSG_LEN: usize = 4;

// enum ctattr_type
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_STATUS: u16 = 3;
const CTA_PROTOINFO: u16 = 4;
const CTA_TIMEOUT: u16 = 7;
const CTA_MARK: u16 = 8;
const CTA_COUNTERS_ORIG: u16 = 9;
const CTA_COUNTERS_REPLY: u16 = 10;
const CTA_USE: u16 = 11;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;
const CTA_SECCTX: u16 = 19;
const CTA_TIMESTAMP: u16 = 20;
const CTA_LABELS: u16 = 22;
// enum ctattr_tuple, ctattr_ip, ctattr_l4proto
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_TUPLE_ZONE: u16 = 3;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_PROTO_ICMP_ID: u16 = 4;
const CTA_PROTO_ICMP_TYPE: u16 = 5;
const CTA_PROTO_ICMP_CODE: u16 = 6;
const CTA_PROTO_ICMPV6_ID: u16 = 7;
const CTA_PROTO_ICMPV6_TYPE: u16 = 8;
const CTA_PROTO_ICMPV6_CODE: u16 = 9;
// enum ctattr_protoinfo and its members' first attribute (the state)
const CTA_PROTOINFO_TCP: u16 = 1;
const CTA_PROTOINFO_DCCP: u16 = 2;
const CTA_PROTOINFO_SCTP: u16 = 3;
// enum ctattr_counters, ctattr_tstamp, ctattr_secctx
const CTA_COUNTERS_PACKETS: u16 = 1;
const CTA_COUNTERS_BYTES: u16 = 2;
const CTA_COUNTERS32_PACKETS: u16 = 3;
const CTA_COUNTERS32_BYTES: u16 = 4;
const CTA_TIMESTAMP_START: u16 = 1;
const CTA_SECCTX_NAME: u16 = 1;
// enum ip_conntrack_status
const IPS_SEEN_REPLY: u32 = 1 << 1;
const IPS_ASSURED: u32 = 1 << 2;
const IPS_OFFLOAD: u32 = 1 << 14;
const IPS_HW_OFFLOAD: u32 = 1 << 15;

/// `enum ctattr_stats_cpu` by attribute type, named as `conntrack -S`
/// prints them (conntrack-tools, src/conntrack.c).
const STATS_NAMES: [&str; 16] = [
    "",
    "searched",
    "found",
    "new",
    "invalid",
    "ignore",
    "delete",
    "delete_list",
    "insert",
    "insert_failed",
    "drop",
    "early_drop",
    "error",
    "search_restart",
    "clash_resolve",
    "chaintoolong",
];

fn parse_entries(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    // The tool counts delta-time to when it prints; the dump is taken as
    // the capture window closes.
    let now_ns = rows
        .origin()
        .manifest
        .as_ref()
        .map(|m| m.window_close_ns)
        .filter(|&t| t > 0);
    let mut out: Vec<Result<String, (usize, String)>> = Vec::new();
    netlink::conversation(input, IPCTNL_MSG_CT_NEW, |turn| match turn {
        Turn::Answer {
            message, number, ..
        } => out.push(
            entry_line(message.payload, now_ns)
                .map_err(|why| (number, format!("message {number}: {why}"))),
        ),
        Turn::Trouble { number, why } => out.push(Err((number, why))),
    })?;
    for (i, line) in out.into_iter().enumerate() {
        match line {
            Ok(line) => conntrack::push_line(&line, i + 1, rows),
            Err((n, why)) => rows.skip(n, why),
        }
    }
    Ok(())
}

fn parse_stats(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let mut skips = Vec::new();
    let now = stats_text(input, &mut skips)?;
    let open = rows.at_open().map(|b| stats_text(b, &mut Vec::new()));
    let open = open.and_then(Result::ok);
    for (n, why) in skips {
        rows.skip(n, why);
    }
    counters::read_conntrack_s_text(&now, open.as_deref(), rows)
}

/// The statistics conversation as `conntrack -S` prints it: `cpu=N
/// found=.. invalid=.. ...`, one line per answer; what did not go well
/// into `skips`.
fn stats_text(input: &[u8], skips: &mut Vec<(usize, String)>) -> Result<String, String> {
    let mut out = String::new();
    netlink::conversation(input, IPCTNL_MSG_CT_GET_STATS_CPU, |turn| match turn {
        Turn::Answer {
            message, number, ..
        } => {
            let Some((cpu, attrs)) =
                be16_at(message.payload, 2).zip(attrs_after(message.payload, NFGENMSG_LEN))
            else {
                skips.push((number, format!("message {number}: no nfgenmsg header")));
                return;
            };
            let _ = write!(out, "cpu={cpu:<4}\t");
            for (kind, data) in attrs {
                let name = STATS_NAMES.get(usize::from(kind)).copied().unwrap_or("");
                if let (false, Some(v)) = (name.is_empty(), be32_at(data, 0)) {
                    let _ = write!(out, "{name}={v} ");
                }
            }
            out.push('\n');
        }
        Turn::Trouble { number, why } => skips.push((number, why)),
    })?;
    Ok(out)
}

/// One direction of an entry.
#[derive(Default)]
struct Tuple {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    proto: Option<u8>,
    sport: Option<u16>,
    dport: Option<u16>,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
    icmp_id: Option<u16>,
    zone: Option<u16>,
}

fn tuple(data: &[u8]) -> Tuple {
    let mut t = Tuple::default();
    for (kind, data) in Attrs(data) {
        match kind {
            CTA_TUPLE_IP => {
                for (kind, data) in Attrs(data) {
                    match kind {
                        CTA_IP_V4_SRC | CTA_IP_V6_SRC => t.src = netlink::address(data),
                        CTA_IP_V4_DST | CTA_IP_V6_DST => t.dst = netlink::address(data),
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (kind, data) in Attrs(data) {
                    match kind {
                        CTA_PROTO_NUM => t.proto = data.first().copied(),
                        CTA_PROTO_SRC_PORT => t.sport = be16_at(data, 0),
                        CTA_PROTO_DST_PORT => t.dport = be16_at(data, 0),
                        CTA_PROTO_ICMP_ID | CTA_PROTO_ICMPV6_ID => t.icmp_id = be16_at(data, 0),
                        CTA_PROTO_ICMP_TYPE | CTA_PROTO_ICMPV6_TYPE => {
                            t.icmp_type = data.first().copied();
                        }
                        CTA_PROTO_ICMP_CODE | CTA_PROTO_ICMPV6_CODE => {
                            t.icmp_code = data.first().copied();
                        }
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_ZONE => t.zone = be16_at(data, 0),
            _ => {}
        }
    }
    t
}

/// Packets and bytes of a CTA_COUNTERS_* nest (64-bit, or the 32-bit
/// attributes of old kernels).
fn counters(data: &[u8]) -> (Option<u64>, Option<u64>) {
    let (mut packets, mut bytes) = (None, None);
    for (kind, data) in Attrs(data) {
        match kind {
            CTA_COUNTERS_PACKETS => packets = be64_at(data, 0),
            CTA_COUNTERS_BYTES => bytes = be64_at(data, 0),
            CTA_COUNTERS32_PACKETS => packets = be32_at(data, 0).map(u64::from),
            CTA_COUNTERS32_BYTES => bytes = be32_at(data, 0).map(u64::from),
            _ => {}
        }
    }
    (packets, bytes)
}

/// The layer 4 protocol as libnetfilter_conntrack names it.
fn proto_name(proto: u8) -> &'static str {
    match proto {
        1 => "icmp",
        6 => "tcp",
        17 => "udp",
        33 => "dccp",
        47 => "gre",
        58 => "icmpv6",
        132 => "sctp",
        136 => "udplite",
        _ => "unknown",
    }
}

/// The state number of CTA_PROTOINFO's member for `proto`, named as
/// /proc/net/nf_conntrack names it (`tcp_conntrack_names` of
/// nf_conntrack_proto_tcp.c, `sctp_conntrack_names`, `dccp_state_names`).
fn state_name(member: u16, state: u8) -> Option<&'static str> {
    const TCP: [&str; 10] = [
        "NONE",
        "SYN_SENT",
        "SYN_RECV",
        "ESTABLISHED",
        "FIN_WAIT",
        "CLOSE_WAIT",
        "LAST_ACK",
        "TIME_WAIT",
        "CLOSE",
        "SYN_SENT2",
    ];
    const SCTP: [&str; 10] = [
        "NONE",
        "CLOSED",
        "COOKIE_WAIT",
        "COOKIE_ECHOED",
        "ESTABLISHED",
        "SHUTDOWN_SENT",
        "SHUTDOWN_RECD",
        "SHUTDOWN_ACK_SENT",
        "HEARTBEAT_SENT",
        "HEARTBEAT_ACKED",
    ];
    const DCCP: [&str; 10] = [
        "NONE", "REQUEST", "RESPOND", "PARTOPEN", "OPEN", "CLOSEREQ", "CLOSING", "TIMEWAIT",
        "IGNORE", "INVALID",
    ];
    let names: &[&str] = match member {
        CTA_PROTOINFO_TCP => &TCP,
        CTA_PROTOINFO_SCTP => &SCTP,
        CTA_PROTOINFO_DCCP => &DCCP,
        _ => return None,
    };
    names.get(usize::from(state)).copied()
}

/// `src=.. dst=.. sport=.. dport=.. [packets=.. bytes=..] `, or the ICMP
/// type, code and id in place of the ports.
fn write_tuple(out: &mut String, t: &Tuple, proto: u8, count: (Option<u64>, Option<u64>)) {
    if let Some(a) = t.src {
        let _ = write!(out, "src={a} ");
    }
    if let Some(a) = t.dst {
        let _ = write!(out, "dst={a} ");
    }
    match proto {
        1 | 58 => {
            for (key, v) in [
                ("type", t.icmp_type.map(u16::from)),
                ("code", t.icmp_code.map(u16::from)),
                ("id", t.icmp_id),
            ] {
                if let Some(v) = v {
                    let _ = write!(out, "{key}={v} ");
                }
            }
        }
        // GRE keys travel in the port attributes.
        47 => {
            if let (Some(s), Some(d)) = (t.sport, t.dport) {
                let _ = write!(out, "srckey=0x{s:x} dstkey=0x{d:x} ");
            }
        }
        _ => {
            if let Some(p) = t.sport {
                let _ = write!(out, "sport={p} ");
            }
            if let Some(p) = t.dport {
                let _ = write!(out, "dport={p} ");
            }
        }
    }
    if let (Some(p), Some(b)) = count {
        let _ = write!(out, "packets={p} bytes={b} ");
    }
}

/// One IPCTNL_MSG_CT_NEW answer as `conntrack -L -o extended` prints it,
/// with the entry's id at the end (`-o id`).
fn entry_line(payload: &[u8], now_ns: Option<u64>) -> Result<String, String> {
    let family = *payload.first().ok_or("no nfgenmsg header")?;
    let attrs = attrs_after(payload, NFGENMSG_LEN).ok_or("no nfgenmsg header")?;
    let (mut orig, mut reply) = (None, None);
    let (mut orig_count, mut reply_count) = ((None, None), (None, None));
    let mut status = None;
    let mut state = None;
    let mut timeout = None;
    let mut mark = None;
    let mut use_count = None;
    let mut id = None;
    let mut zone = None;
    let mut secctx = None;
    let mut start_ns = None;
    let mut labels = None;
    for (kind, data) in attrs {
        match kind {
            CTA_TUPLE_ORIG => orig = Some(tuple(data)),
            CTA_TUPLE_REPLY => reply = Some(tuple(data)),
            CTA_STATUS => status = be32_at(data, 0),
            CTA_PROTOINFO => {
                for (member, data) in Attrs(data) {
                    // The state is the first attribute (type 1) of each member.
                    if let Some((_, s)) = Attrs(data).find(|(k, _)| *k == 1) {
                        state = s.first().and_then(|&s| state_name(member, s));
                    }
                }
            }
            CTA_TIMEOUT => timeout = be32_at(data, 0),
            CTA_MARK => mark = be32_at(data, 0),
            CTA_COUNTERS_ORIG => orig_count = counters(data),
            CTA_COUNTERS_REPLY => reply_count = counters(data),
            CTA_USE => use_count = be32_at(data, 0),
            CTA_ID => id = be32_at(data, 0),
            CTA_ZONE => zone = be16_at(data, 0),
            CTA_SECCTX => {
                secctx = Attrs(data)
                    .find(|(k, _)| *k == CTA_SECCTX_NAME)
                    .map(|(_, d)| netlink::c_str(d).into_owned());
            }
            CTA_TIMESTAMP => {
                start_ns = Attrs(data)
                    .find(|(k, _)| *k == CTA_TIMESTAMP_START)
                    .and_then(|(_, d)| be64_at(d, 0));
            }
            CTA_LABELS if data.iter().any(|&b| b != 0) => labels = Some(data),
            _ => {}
        }
    }
    let orig = orig.ok_or("no original tuple (CTA_TUPLE_ORIG)")?;
    let reply = reply.ok_or("no reply tuple (CTA_TUPLE_REPLY)")?;
    let proto = orig.proto.ok_or("no layer 4 protocol (CTA_PROTO_NUM)")?;
    let l3 = match family {
        netlink::AF_INET => "ipv4",
        netlink::AF_INET6 => "ipv6",
        _ => "unknown",
    };
    let mut out = String::with_capacity(256);
    let _ = write!(out, "{l3:<8} {family} {:<8} {proto} ", proto_name(proto));
    if let Some(t) = timeout {
        let _ = write!(out, "{t} ");
    }
    if let Some(s) = state {
        let _ = write!(out, "{s} ");
    }
    write_tuple(&mut out, &orig, proto, orig_count);
    if let Some(z) = orig.zone {
        let _ = write!(out, "zone-orig={z} ");
    }
    let status = status.unwrap_or(0);
    if status & IPS_SEEN_REPLY == 0 {
        out.push_str("[UNREPLIED] ");
    }
    write_tuple(&mut out, &reply, proto, reply_count);
    if let Some(z) = reply.zone {
        let _ = write!(out, "zone-reply={z} ");
    }
    if status & IPS_ASSURED != 0 {
        out.push_str("[ASSURED] ");
    }
    if status & IPS_HW_OFFLOAD != 0 {
        out.push_str("[HW_OFFLOAD] ");
    } else if status & IPS_OFFLOAD != 0 {
        out.push_str("[OFFLOAD] ");
    }
    if let Some(m) = mark {
        let _ = write!(out, "mark={m} ");
    }
    if let Some(s) = &secctx {
        let _ = write!(out, "secctx={s} ");
    }
    if let Some(z) = zone {
        let _ = write!(out, "zone={z} ");
    }
    if let (Some(start), Some(now)) = (start_ns, now_ns) {
        let _ = write!(
            out,
            "delta-time={} ",
            now.saturating_sub(start) / 1_000_000_000
        );
    }
    if let Some(u) = use_count {
        let _ = write!(out, "use={u} ");
    }
    if let Some(l) = labels {
        // A bitmap of label bits, lowest first: printed as one number.
        out.push_str("labels=0x");
        let mut started = false;
        for b in l.iter().rev() {
            if started {
                let _ = write!(out, "{b:02x}");
            } else if *b != 0 {
                let _ = write!(out, "{b:x}");
                started = true;
            }
        }
        out.push(' ');
    }
    if let Some(i) = id {
        let _ = write!(out, "id={i} ");
    }
    out.truncate(out.trim_end().len());
    Ok(out)
}

/// The entries of a conntrack conversation as `conntrack -L -o extended`
/// lines (for a live lookup: `capsnap watch` checks a flow against them).
pub fn entry_lines(input: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let _ = netlink::conversation(input, IPCTNL_MSG_CT_NEW, |turn| {
        if let Turn::Answer { message, .. } = turn
            && let Ok(line) = entry_line(message.payload, None)
        {
            out.push(line);
        }
    });
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::netlink::build::{attr, done, message};
    use crate::netlink::{CONNTRACK_DUMP, CONNTRACK_STATS_DUMP, NLM_F_MULTI};
    use crate::rows::testing::{strings, u64s};
    use crate::rows::{Origin, read};

    fn nest(kind: u16, parts: &[Vec<u8>]) -> Vec<u8> {
        attr(kind | 0x8000, &parts.concat())
    }

    fn v4_tuple(kind: u16, src: [u8; 4], dst: [u8; 4], proto: u8, sp: u16, dp: u16) -> Vec<u8> {
        nest(
            kind,
            &[
                nest(
                    CTA_TUPLE_IP,
                    &[attr(CTA_IP_V4_SRC, &src), attr(CTA_IP_V4_DST, &dst)],
                ),
                nest(
                    CTA_TUPLE_PROTO,
                    &[
                        attr(CTA_PROTO_NUM, &[proto]),
                        attr(CTA_PROTO_SRC_PORT, &sp.to_be_bytes()),
                        attr(CTA_PROTO_DST_PORT, &dp.to_be_bytes()),
                    ],
                ),
            ],
        )
    }

    /// A DNATed and masqueraded TCP entry (10.77.1.2:35894 -> 10.77.1.1:8080,
    /// served by 10.77.2.2:80, seen from 10.77.2.1), ESTABLISHED, assured,
    /// with counters, as ctnetlink sends it; then a UDP entry unreplied in
    /// zone 5.
    pub(crate) fn hand_made() -> Vec<u8> {
        let mut file = CONNTRACK_DUMP.requests[0].message(7);
        let counters = |p: u64, b: u64, kind: u16| {
            nest(
                kind,
                &[
                    attr(CTA_COUNTERS_PACKETS, &p.to_be_bytes()),
                    attr(CTA_COUNTERS_BYTES, &b.to_be_bytes()),
                ],
            )
        };
        let tcp = [
            vec![netlink::AF_INET, 0, 0, 0],
            v4_tuple(
                CTA_TUPLE_ORIG,
                [10, 77, 1, 2],
                [10, 77, 1, 1],
                6,
                35894,
                8080,
            ),
            v4_tuple(
                CTA_TUPLE_REPLY,
                [10, 77, 2, 2],
                [10, 77, 2, 1],
                6,
                80,
                35894,
            ),
            attr(CTA_STATUS, &(0x1be_u32).to_be_bytes()),
            attr(CTA_TIMEOUT, &431_998_u32.to_be_bytes()),
            attr(CTA_MARK, &0u32.to_be_bytes()),
            counters(4, 220, CTA_COUNTERS_ORIG),
            counters(3, 5183, CTA_COUNTERS_REPLY),
            attr(CTA_USE, &1u32.to_be_bytes()),
            attr(CTA_ID, &3_187_642_626_u32.to_be_bytes()),
            nest(
                CTA_PROTOINFO,
                &[nest(CTA_PROTOINFO_TCP, &[attr(1, &[3]), attr(2, &[7])])],
            ),
            nest(
                CTA_TIMESTAMP,
                &[attr(
                    CTA_TIMESTAMP_START,
                    &(1_000_000_000_u64).to_be_bytes(),
                )],
            ),
        ]
        .concat();
        file.extend(message(IPCTNL_MSG_CT_NEW, NLM_F_MULTI, 7, &tcp));
        let udp = [
            vec![netlink::AF_INET, 0, 0, 0],
            v4_tuple(
                CTA_TUPLE_ORIG,
                [10, 77, 1, 2],
                [10, 77, 2, 2],
                17,
                36362,
                5300,
            ),
            v4_tuple(
                CTA_TUPLE_REPLY,
                [10, 77, 2, 2],
                [10, 77, 2, 1],
                17,
                5300,
                36362,
            ),
            attr(CTA_STATUS, &(0x188_u32).to_be_bytes()),
            attr(CTA_TIMEOUT, &28u32.to_be_bytes()),
            attr(CTA_MARK, &0u32.to_be_bytes()),
            attr(CTA_USE, &1u32.to_be_bytes()),
            attr(CTA_ZONE, &5u16.to_be_bytes()),
        ]
        .concat();
        file.extend(message(IPCTNL_MSG_CT_NEW, NLM_F_MULTI, 7, &udp));
        file.extend(done(7));
        file
    }

    pub(crate) fn hand_made_stats() -> Vec<u8> {
        let mut file = CONNTRACK_STATS_DUMP.requests[0].message(9);
        for (cpu, invalid) in [(0u16, 3u32), (1, 4)] {
            let mut p = vec![netlink::AF_UNSPEC, 0];
            p.extend(cpu.to_be_bytes());
            for (kind, v) in [(2u16, 0u32), (4, invalid), (9, 1 - u32::from(cpu)), (13, 2)] {
                p.extend(attr(kind, &v.to_be_bytes()));
            }
            file.extend(message(IPCTNL_MSG_CT_GET_STATS_CPU, NLM_F_MULTI, 9, &p));
        }
        file.extend(done(9));
        file
    }

    #[test]
    fn entries_print_as_the_tool_prints_them_and_give_its_rows() {
        let lines = entry_lines(&hand_made());
        assert_eq!(
            lines,
            [
                "ipv4     2 tcp      6 431998 ESTABLISHED src=10.77.1.2 dst=10.77.1.1 sport=35894 dport=8080 packets=4 bytes=220 src=10.77.2.2 dst=10.77.2.1 sport=80 dport=35894 packets=3 bytes=5183 [ASSURED] mark=0 use=1 id=3187642626",
                "ipv4     2 udp      17 28 src=10.77.1.2 dst=10.77.2.2 sport=36362 dport=5300 [UNREPLIED] src=10.77.2.2 dst=10.77.2.1 sport=5300 dport=36362 mark=0 zone=5 use=1",
            ]
        );
        let (b, skipped, _) = read(
            &ENTRIES_READER,
            &hand_made(),
            Origin::of("b", None, "netns/gw/netlink/conntrack.nl"),
        )
        .unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(b.num_rows(), 2);
        assert_eq!(strings(&b, "state"), [Some("ESTABLISHED".into()), None]);
        assert_eq!(strings(&b, "reply_src")[0].as_deref(), Some("10.77.2.2"));
        assert_eq!(u64s(&b, "orig_dport")[0], Some(8080));
        assert_eq!(u64s(&b, "reply_bytes")[0], Some(5183));
        assert_eq!(u64s(&b, "zone"), [Some(0), Some(5)]);
        assert_eq!(u64s(&b, "ct_id")[0], Some(3_187_642_626));
        assert_eq!(strings(&b, "status")[1].as_deref(), Some("UNREPLIED"));
        assert_eq!(strings(&b, "netns")[0].as_deref(), Some("gw"));
        // Without a manifest there is no time to count delta-time to.
        assert_eq!(u64s(&b, "delta_time")[0], None);
    }

    #[test]
    fn stats_sum_cpus_as_conntrack_s_did() {
        let mut skips = Vec::new();
        let text = stats_text(&hand_made_stats(), &mut skips).unwrap();
        assert!(skips.is_empty());
        assert_eq!(
            text,
            "cpu=0   \tfound=0 invalid=3 insert_failed=1 search_restart=2 \ncpu=1   \tfound=0 invalid=4 insert_failed=0 search_restart=2 \n"
        );
        let (b, _, _) = read(
            &STATS_READER,
            &hand_made_stats(),
            Origin::of("b", None, "netns/host/netlink/conntrack_stats.nl"),
        )
        .unwrap();
        let names = strings(&b, "name");
        let values = crate::rows::testing::i64s(&b, "value");
        let got: Vec<(String, i64)> = names
            .into_iter()
            .zip(values)
            .map(|(n, v)| (n.unwrap(), v.unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("found".into(), 0),
                ("invalid".into(), 7),
                ("insert_failed".into(), 1),
                ("search_restart".into(), 4)
            ]
        );
        assert_eq!(strings(&b, "group")[0].as_deref(), Some("conntrack"));
    }

    #[test]
    fn claims_by_name_and_by_the_request() {
        let e = hand_made();
        let s = hand_made_stats();
        assert!((ENTRIES_READER.claims)("netns/x/netlink/conntrack.nl", b""));
        assert!((ENTRIES_READER.claims)("saved.bin", &e));
        assert!(!(ENTRIES_READER.claims)("saved.bin", &s));
        assert!((STATS_READER.claims)("saved.bin", &s));
        assert!(!(STATS_READER.claims)("netns/x/netlink/conntrack.nl", &s));
    }

    #[test]
    fn every_prefix_and_damage_never_panics() {
        for file in [hand_made(), hand_made_stats()] {
            for cut in 0..=file.len() {
                for r in [&ENTRIES_READER, &STATS_READER] {
                    let _ = read(r, &file[..cut], Origin::of("b", None, "x.nl"));
                }
            }
            for i in 0..file.len() {
                let mut f = file.clone();
                f[i] ^= 0x5a;
                for r in [&ENTRIES_READER, &STATS_READER] {
                    let _ = read(r, &f, Origin::of("b", None, "x.nl"));
                }
            }
        }
    }
}
