//! The `events` table: eBPF events from capsnap's own probes
//! (`ebpf/events.jsonl`, read by `bpftrace`) and from the text output of
//! the usual tracing tools (bcc, bpftrace's tools, perf-tools) saved by
//! hand (read by `tools`). Both fill the same [`Event`] row.
//!
//! This file holds the table, the row and the helpers both readers use to
//! fill it: addresses as the other tables print them, the family of an
//! address, milliseconds as microseconds. TCP state names come from the
//! crate's one table (`tcp_state`).

pub mod bpftrace;
pub(crate) mod tools;

use crate::rows::{Rows, V};
use std::net::IpAddr;

crate::artifact_table!(
    "events",
    "one row per eBPF event: capsnap's probes (ebpf/events.jsonl) or bcc/bpftrace/perf-tools output",
    [
        (
            "ts",
            Ts,
            true,
            "UTC time of the event (capsnap events; null for tools, which print a time of day at most)"
        ),
        (
            "time_text",
            Str,
            true,
            "the time as the tool printed it: HH:MM:SS[.us], or `<n>s` since the tool started (TIME(s) columns)"
        ),
        (
            "ktime_ns",
            U64,
            true,
            "kernel clock of the event (bpftrace nsecs; capsnap events): orders events across CPUs"
        ),
        (
            "event",
            Dict,
            false,
            "exec, tcp_state, connect, connect_error (a connect(2) that failed at once: ret, reason), accept, close, listen, retransmit, reset_sent, reset_received, drop, oom_kill, dns, suppressed, lost"
        ),
        (
            "tool",
            Dict,
            false,
            "what recorded it: capsnap-bpftrace, bcc-tcpretrans, bpftrace-tcplife, perf-tools-execsnoop ..."
        ),
        (
            "pid",
            U32,
            true,
            "process id (often the interrupted task for softirq events: 0 or unrelated)"
        ),
        ("ppid", U32, true, "parent process id"),
        ("uid", U32, true, "user id"),
        (
            "comm",
            Dict,
            true,
            "task name (exec: the new program; oom_kill: the victim)"
        ),
        ("pcomm", Dict, true, "parent task name"),
        ("netns_inode", U64, true, "network namespace inode number"),
        (
            "ifindex",
            U32,
            true,
            "drop: index of the interface the packet came in on or was leaving by (interfaces.ifindex in the same netns)"
        ),
        ("family", U8, true, "4 or 6"),
        (
            "saddr",
            Str,
            true,
            "local address for socket events (connect, accept, tcp_state, retransmit, resets), packet source for drops"
        ),
        ("sport", U16, true, "port of saddr"),
        (
            "daddr",
            Str,
            true,
            "remote address for socket events, packet destination for drops"
        ),
        ("dport", U16, true, "port of daddr"),
        (
            "state",
            Dict,
            true,
            "TCP state the socket was in (retransmit, reset, drop), as in /proc: ESTABLISHED, SYN_SENT ..."
        ),
        (
            "old_state",
            Dict,
            true,
            "tcp_state: state before the change"
        ),
        ("new_state", Dict, true, "tcp_state: state after the change"),
        (
            "reason",
            Dict,
            true,
            "drop reason (SKB_DROP_REASON_*, without the prefix), reset reason, or the errno of a connect_error (EADDRNOTAVAIL, ETIMEDOUT, ECONNREFUSED ...)"
        ),
        ("filename", Str, true, "exec: the file executed"),
        (
            "argv",
            Str,
            true,
            "exec: the arguments, space separated (capsnap keeps argv[0..3], tools up to 20)"
        ),
        (
            "ret",
            I64,
            true,
            "return code, a negative errno on failure (connect_error: connect(2); execsnoop: exec())"
        ),
        (
            "duration_us",
            U64,
            true,
            "how long, in microseconds: connect latency (tcpconnlat), lookup (gethostlatency), session lifetime (tcplife), time in old_state (tcpstates)"
        ),
        ("tx_kb", U64, true, "KiB sent by the session (tcplife)"),
        ("rx_kb", U64, true, "KiB received by the session (tcplife)"),
        (
            "sk",
            Str,
            true,
            "kernel socket address (hex): ties the events of one socket together"
        ),
        (
            "stack",
            Str,
            true,
            "kernel stack, innermost frame first, frames joined by ` <- ` (drop location for capsnap)"
        ),
        ("detail", Str, true, "anything else, as key=value pairs"),
    ]
);

/// One row before it is pushed: tools attach stack lines after the event.
#[derive(Debug, Default, Clone, PartialEq)]
struct Event {
    ts: Option<i64>,
    time_text: Option<String>,
    ktime_ns: Option<u64>,
    event: String,
    tool: String,
    pid: Option<u64>,
    ppid: Option<u64>,
    uid: Option<u64>,
    comm: Option<String>,
    pcomm: Option<String>,
    netns_inode: Option<u64>,
    ifindex: Option<u32>,
    family: Option<u8>,
    saddr: Option<String>,
    sport: Option<u16>,
    daddr: Option<String>,
    dport: Option<u16>,
    state: Option<String>,
    old_state: Option<String>,
    new_state: Option<String>,
    reason: Option<String>,
    filename: Option<String>,
    argv: Option<String>,
    ret: Option<i64>,
    duration_us: Option<u64>,
    tx_kb: Option<u64>,
    rx_kb: Option<u64>,
    sk: Option<String>,
    stack: Vec<String>,
    detail: Vec<String>,
}

impl Event {
    fn push(&self, rows: &mut Rows) {
        fn s(v: &Option<String>) -> V<'_> {
            V::from(v.as_deref())
        }
        let stack = self.stack.join(" <- ");
        let detail = self.detail.join(" ");
        let family = self.family.or_else(|| family_of(self.saddr.as_deref()));
        // The namespace column names the namespace the event happened in
        // (by the manifest's inode -> label map), not the file's: events
        // are recorded machine-wide into one file.
        let netns = match self
            .netns_inode
            .and_then(|i| rows.origin().label_of_inode(i))
        {
            Some(label) => Some(label.to_owned()),
            None => rows.origin().netns.clone(),
        };
        rows.push_in(
            netns.as_deref(),
            &[
                self.ts.map_or(V::Null, V::Ts),
                s(&self.time_text),
                V::from(self.ktime_ns),
                V::Str(&self.event),
                V::Str(&self.tool),
                V::from(self.pid),
                V::from(self.ppid),
                V::from(self.uid),
                s(&self.comm),
                s(&self.pcomm),
                V::from(self.netns_inode),
                V::from(self.ifindex.map(u64::from)),
                V::from(family.map(u64::from)),
                s(&self.saddr),
                V::from(self.sport.map(u64::from)),
                s(&self.daddr),
                V::from(self.dport.map(u64::from)),
                s(&self.state),
                s(&self.old_state),
                s(&self.new_state),
                s(&self.reason),
                s(&self.filename),
                s(&self.argv),
                V::from(self.ret),
                V::from(self.duration_us),
                V::from(self.tx_kb),
                V::from(self.rx_kb),
                s(&self.sk),
                if stack.is_empty() {
                    V::Null
                } else {
                    V::Str(&stack)
                },
                if detail.is_empty() {
                    V::Null
                } else {
                    V::Str(&detail)
                },
            ],
        );
    }
}

fn family_of(addr: Option<&str>) -> Option<u8> {
    match addr?.parse::<IpAddr>().ok()? {
        IpAddr::V4(_) => Some(4),
        IpAddr::V6(_) => Some(6),
    }
}

/// An address as the other tables print it (IPv6 compressed), without the
/// brackets some tools put around IPv6; left as printed when it is not an
/// address (bcc's first tcpconnect printed `...fe8203ac`).
fn address(s: &str) -> String {
    let s = s.trim_start_matches('[').trim_end_matches(']');
    s.parse::<IpAddr>()
        .map_or_else(|_| s.to_owned(), |a| a.to_string())
}

/// Milliseconds as printed (`0.23`, `3059`) in microseconds.
fn ms_to_us(s: &str) -> Option<u64> {
    let ms: f64 = s.trim().parse().ok()?;
    (ms.is_finite() && ms >= 0.0).then(|| (ms * 1000.0).round() as u64)
}

/// Column readers the tests of `bpftrace` and `tools` share.
#[cfg(test)]
pub(crate) mod testing {
    use crate::rows::{Origin, Reader, read};
    use arrow_array::RecordBatch;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{
        Int64Type, TimestampNanosecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
    };

    pub use crate::rows::testing::strings as strs;

    pub fn str_at(batch: &RecordBatch, name: &str, row: usize) -> Option<String> {
        strs(batch, name).get(row).cloned().flatten()
    }

    pub fn nums(batch: &RecordBatch, name: &str) -> Vec<Option<i128>> {
        let col = batch.column_by_name(name).unwrap();
        match col.data_type() {
            arrow_schema::DataType::UInt8 => col
                .as_primitive::<UInt8Type>()
                .iter()
                .map(|v| v.map(i128::from))
                .collect(),
            arrow_schema::DataType::UInt16 => col
                .as_primitive::<UInt16Type>()
                .iter()
                .map(|v| v.map(i128::from))
                .collect(),
            arrow_schema::DataType::UInt32 => col
                .as_primitive::<UInt32Type>()
                .iter()
                .map(|v| v.map(i128::from))
                .collect(),
            arrow_schema::DataType::UInt64 => col
                .as_primitive::<UInt64Type>()
                .iter()
                .map(|v| v.map(i128::from))
                .collect(),
            arrow_schema::DataType::Int64 => col
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.map(i128::from))
                .collect(),
            _ => col
                .as_primitive::<TimestampNanosecondType>()
                .iter()
                .map(|v| v.map(i128::from))
                .collect(),
        }
    }

    pub fn num_at(batch: &RecordBatch, name: &str, row: usize) -> Option<i128> {
        nums(batch, name).get(row).copied().flatten()
    }

    pub fn read_ok(reader: &Reader, input: &str, path: &str) -> (RecordBatch, usize) {
        let (batch, _, skipped) =
            read(reader, input.as_bytes(), Origin::of("b", None, path)).unwrap();
        (batch, skipped)
    }
}
