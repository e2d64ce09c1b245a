//! `/proc/net/nf_conntrack` and `conntrack -L [-o extended]`: the
//! connection tracking table, one row per entry. The collector now reads
//! the table over ctnetlink ([`crate::ctnetlink`]), whose answers are
//! printed as the tool's lines and read here.
//!
//! Both print the same line (kernel: net/netfilter/nf_conntrack_standalone.c
//! `ct_seq_show`; tool: libnetfilter_conntrack's default snprintf):
//!
//! ```text
//! ipv4     2 tcp      6 431994 ESTABLISHED src=A dst=B sport=P dport=Q [packets=N bytes=N]
//!   [UNREPLIED] src=B' dst=A' sport=Q' dport=P' [packets=N bytes=N] [ASSURED] mark=0 [zone=0] use=2
//! ```
//!
//! The differences matter when the two are compared: the kernel prints IPv6
//! addresses fully expanded (`fd77:0001:0000:...`, printk `%pI6`) where the
//! tool compresses them, so both are normalised here to the compressed form
//! the other tables use; the kernel always prints `zone=` while the tool
//! prints it only for a non-default zone (ctnetlink sends no CTA_ZONE for
//! zone 0), so a missing zone is 0; plain `conntrack -L` has no leading
//! `ipv4 2`; an offloaded entry has no timeout in older kernels; `use=`
//! counts the dump's own reference in /proc (2 where the tool says 1).
//! Counters (`packets=`, `bytes=`) appear only with `nf_conntrack_acct=1`,
//! `delta-time=` only with `nf_conntrack_timestamp=1`.

use crate::rows::{Reader, Rows, V, file_name_is, path_ends_with, text};
use std::net::IpAddr;

crate::artifact_table!(
    "conntrack",
    "one row per connection tracking entry (ctnetlink: netlink/conntrack.nl; /proc/net/nf_conntrack; conntrack -L in older bundles)",
    [
        ("l3", Dict, false, "ipv4 or ipv6"),
        (
            "proto",
            Dict,
            false,
            "layer 4 protocol name: tcp, udp, icmp, icmpv6, sctp, gre, unknown ..."
        ),
        ("proto_num", U8, true, "layer 4 protocol number"),
        (
            "timeout",
            U64,
            true,
            "seconds until the entry expires (null when not printed, e.g. offloaded)"
        ),
        (
            "state",
            Dict,
            true,
            "protocol state (TCP: SYN_SENT, ESTABLISHED, TIME_WAIT ...; null for stateless protocols)"
        ),
        (
            "orig_src",
            Str,
            false,
            "original direction: source address (the connection's initiator)"
        ),
        (
            "orig_dst",
            Str,
            false,
            "original direction: destination address (as the initiator addressed it, before DNAT)"
        ),
        ("orig_sport", U16, true, "original direction: source port"),
        (
            "orig_dport",
            U16,
            true,
            "original direction: destination port"
        ),
        (
            "orig_packets",
            U64,
            true,
            "packets seen in the original direction (needs nf_conntrack_acct)"
        ),
        (
            "orig_bytes",
            U64,
            true,
            "bytes seen in the original direction (needs nf_conntrack_acct)"
        ),
        (
            "reply_src",
            Str,
            false,
            "reply direction: source address (the real responder, after DNAT)"
        ),
        (
            "reply_dst",
            Str,
            false,
            "reply direction: destination address (the initiator as seen after SNAT/masquerade)"
        ),
        ("reply_sport", U16, true, "reply direction: source port"),
        (
            "reply_dport",
            U16,
            true,
            "reply direction: destination port"
        ),
        (
            "reply_packets",
            U64,
            true,
            "packets seen in the reply direction"
        ),
        (
            "reply_bytes",
            U64,
            true,
            "bytes seen in the reply direction"
        ),
        (
            "unreplied",
            Bool,
            false,
            "[UNREPLIED]: no packet seen in the reply direction yet"
        ),
        (
            "assured",
            Bool,
            false,
            "[ASSURED]: traffic seen both ways, not dropped first when the table is full"
        ),
        (
            "offload",
            Bool,
            false,
            "[OFFLOAD] or [HW_OFFLOAD]: handled by a flowtable"
        ),
        (
            "status",
            Str,
            true,
            "all bracketed flags as printed, space separated (UNREPLIED ASSURED ...)"
        ),
        ("mark", U32, true, "connection mark (ct mark)"),
        (
            "zone",
            U16,
            false,
            "conntrack zone (0 when not printed: the tool prints only non-default zones)"
        ),
        ("use", U32, true, "reference count"),
        (
            "icmp_type",
            U8,
            true,
            "ICMP/ICMPv6 type of the original direction"
        ),
        (
            "icmp_code",
            U8,
            true,
            "ICMP/ICMPv6 code of the original direction"
        ),
        ("icmp_id", U16, true, "ICMP/ICMPv6 echo identifier"),
        (
            "nat",
            Bool,
            false,
            "the reply tuple is not the mirror of the original: the connection is NATed (DNAT, SNAT or masquerade)"
        ),
        ("secctx", Str, true, "security context (secctx=)"),
        ("labels", Str, true, "connection labels (labels=)"),
        (
            "delta_time",
            U64,
            true,
            "seconds since the entry was created (delta-time=, needs nf_conntrack_timestamp)"
        ),
        ("ct_id", U64, true, "conntrack id (id=, conntrack -o id)"),
        ("raw", Str, false, "the line as printed"),
    ]
);

/// Reads the kernel's table, unless the bundle also holds the ctnetlink
/// dump (`netlink/conntrack.nl`, [`crate::ctnetlink`]) or, in bundles made
/// before it, the tool's dump of the same namespace.
pub const PROC_READER: Reader = Reader {
    table: &TABLE,
    what: "/proc/net/nf_conntrack",
    claims: |path, _head| {
        // proc/net/stat/nf_conntrack has the same file name: per-CPU counters.
        file_name_is(path, &["nf_conntrack"]) && !path_ends_with(path, "stat/nf_conntrack")
    },
    superseded_by: &["../../netlink/conntrack.nl", "../../conntrack.txt"],
    parse,
};

/// Reads `conntrack -L` output (bundles made before the ctnetlink dump:
/// `netns/<label>/conntrack.txt`, from `conntrack -L -o extended`), and
/// either format saved by hand.
pub const TOOL_READER: Reader = Reader {
    table: &TABLE,
    what: "conntrack -L [-o extended] output (conntrack.txt)",
    claims: |path, head| {
        // Every reader that claims a file reads it: the kernel's file, whose
        // lines look the same, is PROC_READER's.
        file_name_is(path, &["conntrack.txt"])
            || (!file_name_is(path, &["nf_conntrack"]) && looks_like_entries(head))
    },
    superseded_by: &["netlink/conntrack.nl"],
    parse,
};

/// True when the first non-blank line of `head` is a conntrack entry.
fn looks_like_entries(head: &[u8]) -> bool {
    let text = text(head);
    let Some(line) = text.lines().find(|l| !l.trim().is_empty()) else {
        return false;
    };
    let mut words = line.split_whitespace();
    let first = words.next().unwrap_or("");
    let known_start = matches!(first, "ipv4" | "ipv6")
        || (matches!(
            first,
            "tcp" | "udp" | "udplite" | "icmp" | "icmpv6" | "sctp" | "dccp" | "gre" | "unknown"
        ) && words.next().is_some_and(|n| n.parse::<u8>().is_ok()));
    known_start && line.contains(" src=") && line.contains(" dst=")
}

/// One entry line (the tool's, the kernel's, or one the ctnetlink reader
/// printed in the tool's form) as a row; a line that is not an entry is
/// skipped as line or message `number`.
pub(crate) fn push_line(line: &str, number: usize, rows: &mut Rows) {
    match Entry::parse(line) {
        Ok(e) => e.push(line, rows),
        Err(why) => rows.skip(number, why),
    }
}

fn parse(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let text = text(input);
    let mut lines = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            continue;
        }
        // The tool's summary goes to stderr, but a file saved with 2>&1
        // carries it: "conntrack v1.4.7 (conntrack-tools): 18 flow entries
        // have been shown."
        if line.starts_with("conntrack v") {
            continue;
        }
        lines += 1;
        push_line(line, n + 1, rows);
    }
    if lines > 0 && rows.is_empty() {
        return Err("no line is a conntrack entry (`ipv4 2 tcp 6 ... src=... dst=...`)".into());
    }
    Ok(())
}

/// One direction's tuple and counters.
#[derive(Debug, Default, Clone, PartialEq)]
struct Tuple {
    src: Option<String>,
    dst: Option<String>,
    sport: Option<u16>,
    dport: Option<u16>,
    packets: Option<u64>,
    bytes: Option<u64>,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
    icmp_id: Option<u16>,
}

#[derive(Debug, Default, PartialEq)]
struct Entry<'a> {
    l3: Option<&'a str>,
    proto: &'a str,
    proto_num: Option<u8>,
    timeout: Option<u64>,
    state: Option<&'a str>,
    orig: Tuple,
    reply: Tuple,
    flags: Vec<&'a str>,
    mark: Option<u32>,
    zone: Option<u16>,
    use_count: Option<u32>,
    secctx: Option<&'a str>,
    labels: Option<&'a str>,
    delta_time: Option<u64>,
    id: Option<u64>,
}

/// The canonical text of an address: IPv6 compressed, as the tool and the
/// other tables print it.
fn address(s: &str) -> String {
    s.parse::<IpAddr>()
        .map_or_else(|_| s.to_owned(), |a| a.to_string())
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("`{key}={value}` is not a number in range"))
}

impl<'a> Entry<'a> {
    fn parse(line: &'a str) -> Result<Entry<'a>, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut e = Entry::default();
        let mut i = 0;
        if let Some(&l3 @ ("ipv4" | "ipv6")) = words.first() {
            e.l3 = Some(l3);
            // The layer 3 number (2, 10) says nothing more than the name.
            i = 2;
        }
        e.proto = words
            .get(i)
            .copied()
            .filter(|p| !p.contains('='))
            .ok_or("no protocol name at the start of the line")?;
        e.proto_num = Some(
            words
                .get(i + 1)
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("no protocol number after `{}`", e.proto))?,
        );
        i += 2;
        // Then: [timeout] [STATE] and the key=value / [FLAG] words.
        if let Some(t) = words.get(i).and_then(|w| w.parse::<u64>().ok()) {
            e.timeout = Some(t);
            i += 1;
        }
        if let Some(w) = words.get(i)
            && !w.contains('=')
            && !w.starts_with('[')
        {
            e.state = Some(w);
            i += 1;
        }
        // Which tuple the next key belongs to: 0 none yet, 1 original, 2 reply.
        let mut dir = 0;
        let mut rest = words.get(i..).unwrap_or(&[]).iter();
        while let Some(&w) = rest.next() {
            if let Some(flag) = w.strip_prefix('[') {
                // `[start=Sat Nov 21 ...]` (conntrack -o timestamp) holds spaces.
                let mut flag = flag;
                if !flag.ends_with(']') {
                    for &more in rest.by_ref() {
                        if more.ends_with(']') {
                            break;
                        }
                    }
                    flag = "";
                }
                let flag = flag.trim_end_matches(']');
                if !flag.is_empty() && !flag.contains('=') {
                    e.flags.push(flag);
                }
                continue;
            }
            let Some((key, value)) = w.split_once('=') else {
                return Err(format!("unexpected word `{w}`"));
            };
            if key == "src" {
                dir += 1;
                if dir > 2 {
                    return Err("more than two `src=` tuples".into());
                }
            }
            let t = match dir {
                1 => &mut e.orig,
                2 => &mut e.reply,
                _ => {
                    // Keys before the first tuple are not printed by any
                    // known version; tolerate them.
                    &mut e.orig
                }
            };
            match key {
                "src" => t.src = Some(address(value)),
                "dst" => t.dst = Some(address(value)),
                "sport" => t.sport = Some(number(key, value)?),
                "dport" => t.dport = Some(number(key, value)?),
                "packets" => t.packets = Some(number(key, value)?),
                "bytes" => t.bytes = Some(number(key, value)?),
                "type" => t.icmp_type = Some(number(key, value)?),
                "code" => t.icmp_code = Some(number(key, value)?),
                "id" if dir > 0 && t.icmp_type.is_some() && t.icmp_id.is_none() => {
                    t.icmp_id = Some(number(key, value)?)
                }
                "id" => e.id = Some(number(key, value)?),
                "mark" => e.mark = Some(number(key, value)?),
                "zone" => e.zone = Some(number(key, value)?),
                "zone-orig" if e.zone.is_none() => e.zone = Some(number(key, value)?),
                "use" => e.use_count = Some(number(key, value)?),
                "secctx" => e.secctx = Some(value),
                "labels" => e.labels = Some(value),
                "delta-time" => e.delta_time = Some(number(key, value)?),
                // srckey/dstkey (gre), zone-reply, timestamps...: kept in `raw`.
                _ => {}
            }
        }
        if e.orig.src.is_none() || e.orig.dst.is_none() {
            return Err("no original tuple (`src=... dst=...`)".into());
        }
        if e.reply.src.is_none() || e.reply.dst.is_none() {
            return Err("no reply tuple (second `src=... dst=...`)".into());
        }
        Ok(e)
    }

    /// Whether the reply tuple differs from the mirrored original: the
    /// kernel rewrote an address or port on the way (nf_nat).
    fn nat(&self) -> bool {
        let (o, r) = (&self.orig, &self.reply);
        r.src != o.dst
            || r.dst != o.src
            || r.sport != o.dport
            || r.dport != o.sport
            || r.icmp_id != o.icmp_id
    }

    fn push(&self, line: &str, rows: &mut Rows) {
        let l3 = self.l3.unwrap_or_else(|| {
            if self.orig.src.as_deref().is_some_and(|a| a.contains(':')) {
                "ipv6"
            } else {
                "ipv4"
            }
        });
        let status = self.flags.join(" ");
        let has = |f: &str| self.flags.contains(&f);
        let (o, r) = (&self.orig, &self.reply);
        let u = |n: Option<u16>| V::from(n.map(u64::from));
        rows.push(&[
            V::Str(l3),
            V::Str(self.proto),
            V::from(self.proto_num.map(u64::from)),
            V::from(self.timeout),
            V::from(self.state),
            V::from(o.src.as_deref()),
            V::from(o.dst.as_deref()),
            u(o.sport),
            u(o.dport),
            V::from(o.packets),
            V::from(o.bytes),
            V::from(r.src.as_deref()),
            V::from(r.dst.as_deref()),
            u(r.sport),
            u(r.dport),
            V::from(r.packets),
            V::from(r.bytes),
            V::Bool(has("UNREPLIED")),
            V::Bool(has("ASSURED")),
            V::Bool(has("OFFLOAD") || has("HW_OFFLOAD")),
            if status.is_empty() {
                V::Null
            } else {
                V::Str(&status)
            },
            V::from(self.mark.map(u64::from)),
            V::U64(u64::from(self.zone.unwrap_or(0))),
            V::from(self.use_count.map(u64::from)),
            V::from(o.icmp_type.map(u64::from)),
            V::from(o.icmp_code.map(u64::from)),
            u(o.icmp_id),
            V::Bool(self.nat()),
            V::from(self.secctx),
            V::from(self.labels),
            V::from(self.delta_time),
            V::from(self.id),
            V::Str(line),
        ]);
    }
}

/// One tuple of a conntrack entry: source and destination, with ports
/// for protocols that have them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtTuple {
    pub src: String,
    pub dst: String,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

/// A conntrack entry as [`parse_entry`] reads it, for a live lookup
/// (`capsnap watch` checks one flow against the ctnetlink dump).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtEntry {
    pub proto: String,
    pub state: Option<String>,
    pub orig: CtTuple,
    pub reply: CtTuple,
    /// The reply tuple is not the mirrored original: NAT rewrote the flow.
    pub nat: bool,
}

/// One line of `conntrack -L` or /proc/net/nf_conntrack, read as the
/// `conntrack` table reads it.
pub fn parse_entry(line: &str) -> Result<CtEntry, String> {
    let e = Entry::parse(line.trim())?;
    let tuple = |t: &Tuple| CtTuple {
        src: t.src.clone().unwrap_or_default(),
        dst: t.dst.clone().unwrap_or_default(),
        sport: t.sport,
        dport: t.dport,
    };
    Ok(CtEntry {
        proto: e.proto.to_owned(),
        state: e.state.map(str::to_owned),
        orig: tuple(&e.orig),
        reply: tuple(&e.reply),
        nat: e.nat(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::{Origin, read};
    use arrow_array::RecordBatch;
    use arrow_array::cast::AsArray;

    use crate::rows::testing::strings as strs;

    #[test]
    fn one_entry_reads_as_a_lookup_sees_it() {
        let e = parse_entry("tcp      6 431999 ESTABLISHED src=172.17.0.2 dst=10.99.52.2 sport=40100 dport=443 src=10.99.52.2 dst=10.99.52.1 sport=443 dport=61000 [ASSURED] mark=0 use=1").unwrap();
        assert_eq!(e.state.as_deref(), Some("ESTABLISHED"));
        assert!(e.nat);
        assert_eq!(
            e.reply,
            CtTuple {
                src: "10.99.52.2".into(),
                dst: "10.99.52.1".into(),
                sport: Some(443),
                dport: Some(61000)
            }
        );
        assert!(parse_entry("conntrack v1.4.7 (conntrack-tools): 1 flow entries").is_err());
    }

    use crate::rows::testing::u64s;

    fn bools(batch: &RecordBatch, name: &str) -> Vec<bool> {
        batch
            .column_by_name(name)
            .unwrap()
            .as_boolean()
            .iter()
            .map(|b| b.unwrap())
            .collect()
    }

    fn one(reader: &Reader, input: &str) -> RecordBatch {
        let (batch, skipped, _) = read(
            reader,
            input.as_bytes(),
            Origin::of("b", None, "netns/gw/conntrack.txt"),
        )
        .unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        batch
    }

    /// Lines of `conntrack -L -o extended` and /proc/net/nf_conntrack taken
    /// from a capsnap bundle of a NAT gateway namespace (DNAT 10.77.1.1:8080
    /// -> 10.77.2.2:80, masquerade to 10.77.2.1), with acct and timestamps on.
    const TOOL: &str = "\
ipv4     2 tcp      6 431998 ESTABLISHED src=10.77.1.2 dst=10.77.1.1 sport=35894 dport=8080 packets=4 bytes=220 src=10.77.2.2 dst=10.77.2.1 sport=80 dport=35894 packets=3 bytes=5183 [ASSURED] mark=0 delta-time=21 use=1
ipv4     2 udp      17 20 src=10.77.1.2 dst=10.77.2.2 sport=60586 dport=54 packets=1 bytes=29 [UNREPLIED] src=10.77.2.2 dst=10.77.2.1 sport=54 dport=60586 packets=0 bytes=0 mark=0 delta-time=9 use=1
ipv4     2 icmp     1 21 src=10.77.1.2 dst=10.77.2.2 type=8 code=0 id=4660 packets=6 bytes=168 src=10.77.2.2 dst=10.77.2.1 type=0 code=0 id=4660 packets=6 bytes=168 mark=0 delta-time=11 use=1
ipv4     2 udp      17 28 src=10.77.1.2 dst=10.77.2.2 sport=36362 dport=5300 packets=1 bytes=29 [UNREPLIED] src=10.77.2.2 dst=10.77.2.1 sport=5300 dport=36362 packets=0 bytes=0 mark=0 zone=5 delta-time=1 use=1
ipv6     10 icmpv6   58 28 src=fd77:1::2 dst=fd77:2::2 type=128 code=0 id=85 packets=1 bytes=48 src=fd77:2::2 dst=fd77:2::1 type=129 code=0 id=85 packets=1 bytes=48 mark=0 delta-time=1 use=1
ipv4     2 tcp      6 113 SYN_SENT src=10.77.1.2 dst=10.77.2.99 sport=48862 dport=80 packets=1 bytes=60 [UNREPLIED] src=10.77.2.99 dst=10.77.2.1 sport=80 dport=48862 packets=0 bytes=0 mark=0 delta-time=6 use=1
";

    const PROC: &str = "\
ipv6     10 tcp      6 4 CLOSE src=fd77:0001:0000:0000:0000:0000:0000:0002 dst=fd77:0002:0000:0000:0000:0000:0000:0002 sport=60758 dport=80 packets=5 bytes=371 src=fd77:0002:0000:0000:0000:0000:0000:0002 dst=fd77:0002:0000:0000:0000:0000:0000:0001 sport=80 dport=60758 packets=4 bytes=5315 [ASSURED] mark=0 zone=0 delta-time=5 use=2
ipv4     2 tcp      6 116 TIME_WAIT src=172.30.53.2 dst=10.99.53.2 sport=37952 dport=7777 src=10.99.53.2 dst=172.30.53.2 sport=7777 dport=37952 [ASSURED] mark=0 zone=0 use=2
";

    #[test]
    fn reads_tuples_counters_and_flags_of_the_tool_output() {
        let b = one(&TOOL_READER, TOOL);
        assert_eq!(b.num_rows(), 6);
        assert_eq!(strs(&b, "l3")[4].as_deref(), Some("ipv6"));
        assert_eq!(
            strs(&b, "proto").iter().flatten().collect::<Vec<_>>(),
            ["tcp", "udp", "icmp", "udp", "icmpv6", "tcp"]
        );
        assert_eq!(u64s(&b, "proto_num")[4], Some(58));
        assert_eq!(u64s(&b, "timeout")[0], Some(431998));
        assert_eq!(
            strs(&b, "state"),
            [
                Some("ESTABLISHED".into()),
                None,
                None,
                None,
                None,
                Some("SYN_SENT".into())
            ]
        );
        assert_eq!(strs(&b, "orig_dst")[0].as_deref(), Some("10.77.1.1"));
        assert_eq!(strs(&b, "reply_src")[0].as_deref(), Some("10.77.2.2"));
        assert_eq!(u64s(&b, "orig_dport")[0], Some(8080));
        assert_eq!(u64s(&b, "reply_sport")[0], Some(80));
        assert_eq!(u64s(&b, "orig_bytes")[0], Some(220));
        assert_eq!(u64s(&b, "reply_bytes")[0], Some(5183));
        assert_eq!(
            bools(&b, "unreplied"),
            [false, true, false, true, false, true]
        );
        assert_eq!(
            bools(&b, "assured"),
            [true, false, false, false, false, false]
        );
        assert_eq!(strs(&b, "status")[1].as_deref(), Some("UNREPLIED"));
        assert_eq!(strs(&b, "status")[2], None);
        // The tool prints only non-default zones.
        assert_eq!(
            u64s(&b, "zone"),
            [Some(0), Some(0), Some(0), Some(5), Some(0), Some(0)]
        );
        assert_eq!(u64s(&b, "icmp_type")[2..5], [Some(8), None, Some(128)]);
        assert_eq!(u64s(&b, "icmp_id")[2], Some(4660));
        assert_eq!(u64s(&b, "orig_sport")[2], None);
        assert_eq!(u64s(&b, "delta_time")[0], Some(21));
        assert_eq!(u64s(&b, "use")[0], Some(1));
        assert_eq!(u64s(&b, "ct_id")[0], None);
        // DNAT + masquerade, masquerade only (x3: udp, icmp, icmpv6), SYN_SENT masqueraded.
        assert_eq!(bools(&b, "nat"), [true, true, true, true, true, true]);
        assert!(
            strs(&b, "raw")[0]
                .as_deref()
                .unwrap()
                .starts_with("ipv4     2 tcp")
        );
    }

    #[test]
    fn proc_ipv6_addresses_are_compressed_like_the_tools() {
        let b = one(&PROC_READER, PROC);
        assert_eq!(strs(&b, "orig_src")[0].as_deref(), Some("fd77:1::2"));
        assert_eq!(strs(&b, "reply_dst")[0].as_deref(), Some("fd77:2::1"));
        assert_eq!(u64s(&b, "use"), [Some(2), Some(2)]);
        assert_eq!(strs(&b, "state")[1].as_deref(), Some("TIME_WAIT"));
        // Mirror tuple: not NATed.
        assert_eq!(bools(&b, "nat"), [true, false]);
        assert_eq!(u64s(&b, "orig_packets")[1], None);
    }

    #[test]
    fn variants_of_the_line() {
        let cases: &[(&str, &str, &str)] = &[
            // plain `conntrack -L`: no l3 prefix.
            (
                "tcp      6 117 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 mark=0 use=1",
                "l3",
                "ipv4",
            ),
            (
                "tcp      6 117 SYN_SENT src=fd::1 dst=fd::2 sport=1 dport=2 [UNREPLIED] src=fd::2 dst=fd::1 sport=2 dport=1 mark=0 use=1",
                "l3",
                "ipv6",
            ),
            // Offloaded entry as older kernels print it: no timeout.
            (
                "ipv4     2 tcp      6 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 [OFFLOAD] mark=0 zone=0 use=3",
                "status",
                "OFFLOAD",
            ),
            (
                "ipv4     2 tcp      6 300 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 [HW_OFFLOAD] mark=7 secctx=system_u:object_r:unlabeled_t:s0 zone=3 use=2",
                "secctx",
                "system_u:object_r:unlabeled_t:s0",
            ),
            (
                "ipv4     2 udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 mark=0 labels=0x1 use=1 id=3187642626",
                "labels",
                "0x1",
            ),
            (
                "ipv4     2 tcp      6 30 LAST_ACK src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 [ASSURED] [start=Sat Nov 21 22:18:45 2026] mark=0 use=1",
                "status",
                "ASSURED",
            ),
            (
                "ipv4     2 unknown  2 579 src=10.0.0.1 dst=224.0.0.1 src=224.0.0.1 dst=10.0.0.1 mark=0 use=2",
                "proto",
                "unknown",
            ),
        ];
        for (line, column, want) in cases {
            let b = one(&TOOL_READER, line);
            assert_eq!(b.num_rows(), 1, "{line}");
            assert_eq!(strs(&b, column)[0].as_deref(), Some(*want), "{line}");
        }
        let b = one(&TOOL_READER, cases[2].0);
        assert_eq!(u64s(&b, "timeout"), [None]);
        assert_eq!(bools(&b, "offload"), [true]);
        assert_eq!(bools(&b, "nat"), [false]);
        let b = one(&TOOL_READER, cases[3].0);
        assert_eq!(u64s(&b, "zone"), [Some(3)]);
        assert_eq!(u64s(&b, "mark"), [Some(7)]);
        let b = one(&TOOL_READER, cases[4].0);
        assert_eq!(u64s(&b, "ct_id"), [Some(3187642626)]);
        assert_eq!(strs(&b, "state"), [None]);
    }

    #[test]
    fn claims_by_name_and_content_but_not_the_stat_file() {
        assert!((PROC_READER.claims)(
            "netns/host/proc/net/nf_conntrack",
            b""
        ));
        assert!(!(PROC_READER.claims)(
            "netns/host/proc/net/stat/nf_conntrack",
            b""
        ));
        assert!((TOOL_READER.claims)("netns/host/conntrack.txt", b""));
        assert!(!(TOOL_READER.claims)(
            "netns/host/conntrack-stats.txt",
            b"cpu=0 found=0 invalid=12"
        ));
        assert!((TOOL_READER.claims)("saved/ct.log", TOOL.as_bytes()));
        assert!(!(TOOL_READER.claims)(
            "netns/host/proc/net/nf_conntrack",
            TOOL.as_bytes()
        ));
        assert!(!(TOOL_READER.claims)(
            "x/proc/net/stat/nf_conntrack",
            b"entries  searched found new invalid\n"
        ));
        assert!(!(TOOL_READER.claims)(
            "x",
            b"tcp 0 0 127.0.0.1:22 0.0.0.0:* LISTEN\n"
        ));
    }

    #[test]
    fn empty_dump_is_zero_rows_and_garbage_is_not_conntrack() {
        let (b, _, _) = read(
            &TOOL_READER,
            b"",
            Origin::of("b", None, "netns/host/conntrack.txt"),
        )
        .unwrap();
        assert_eq!(b.num_rows(), 0);
        assert!(
            read(
                &TOOL_READER,
                b"hello world\n",
                Origin::of("b", None, "conntrack.txt")
            )
            .is_err()
        );
        let input = format!(
            "{TOOL}ipv4 2 tcp 6 10 CLOSE src=1.2.3.4 dst=5.6.7.8 sport=99999 dport=1\nconntrack v1.4.7 (conntrack-tools): 7 flow entries have been shown.\n"
        );
        let (b, skipped, total) = read(
            &TOOL_READER,
            input.as_bytes(),
            Origin::of("b", None, "conntrack.txt"),
        )
        .unwrap();
        assert_eq!(b.num_rows(), 6);
        assert_eq!(total, 1);
        assert_eq!(skipped[0].line, 7);
        assert!(
            skipped[0].reason.contains("sport=99999"),
            "{}",
            skipped[0].reason
        );
    }

    #[test]
    fn corpus_samples_load() {
        let dir = crate::testing::corpus().join("proc/capsnap-lab/node");
        for (path, reader, use_count) in [
            ("proc/net/nf_conntrack", &PROC_READER, 2),
            ("conntrack-L-extended.txt", &TOOL_READER, 1),
        ] {
            let bytes = std::fs::read(dir.join(path)).unwrap();
            assert!((reader.claims)(path, &bytes), "{path}");
            let (b, skipped, _) = read(reader, &bytes, Origin::of("c", None, path)).unwrap();
            assert!(skipped.is_empty(), "{path}: {skipped:?}");
            assert_eq!(b.num_rows(), 1);
            assert_eq!(strs(&b, "reply_dst")[0].as_deref(), Some("10.230.0.1"));
            assert_eq!(
                bools(&b, "nat"),
                [true],
                "{path}: masqueraded to 10.230.0.1"
            );
            assert_eq!(u64s(&b, "use"), [Some(use_count)]);
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "[ -~\n\\[\\]=]{0,300}") {
            let _ = read(&TOOL_READER, s.as_bytes(), Origin::of("b", None, "conntrack.txt"));
        }

        #[test]
        fn every_prefix_never_panics(cut in 0usize..2000) {
            let cut = cut.min(TOOL.len());
            let _ = read(&TOOL_READER, &TOOL.as_bytes()[..cut], Origin::of("b", None, "conntrack.txt"));
        }
    }
}
