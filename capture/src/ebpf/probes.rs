//! The probes: which tracepoint each reads and with which fields
//! ([`PROBES`]), and the one script assembled from those this kernel can
//! take ([`plan`]), checked against the tracepoint `format` files under
//! tracefs so that bpftrace never gets a script that does not compile.

use super::clock::Clocks;
use std::fs;
use std::path::Path;

/// One probe file and what it needs from the kernel.
pub(super) struct Probe {
    /// Event kinds it prints, for the report.
    events: &'static str,
    /// `group:name` under tracefs `events/`.
    tracepoint: &'static str,
    /// Declarations it reads from the tracepoint's format, as the last word
    /// of the `field:` line (`saddr[28]`, `reason`): the shapes of these
    /// tracepoints changed between kernels (tcp_send_reset stores sockaddrs
    /// since 6.x, kfree_skb has had a reason since 5.17).
    fields: &'static [&'static str],
    /// Other tracepoints its source attaches to, with the fields it reads
    /// there: all must be there or the probe is left out.
    also: &'static [(&'static str, &'static [&'static str])],
    /// Maps of its own (besides the counter), cleared at the end so that
    /// bpftrace prints nothing of them into the events file.
    maps: &'static [&'static str],
    /// Its rate-limit counter (a bpftrace map, reset every second).
    counter: &'static str,
    /// Lines per second before the rest are only counted.
    limit: u32,
    source: &'static str,
}

/// Address fields shared by the TCP tracepoints (TP_STORE_ADDRS in
/// include/trace/events/tcp.h).
const TCP_ADDRS: [&str; 5] = [
    "family",
    "saddr[4]",
    "daddr[4]",
    "saddr_v6[16]",
    "daddr_v6[16]",
];

pub(super) const PROBES: &[Probe] = &[
    Probe {
        events: "exec",
        tracepoint: "sched:sched_process_exec",
        fields: &["filename", "old_pid"],
        also: &[],
        maps: &[],
        counter: "n_exec",
        limit: 1000,
        source: include_str!("../../bpftrace/exec.bt"),
    },
    Probe {
        events: "tcp_state, connect",
        tracepoint: "sock:inet_sock_set_state",
        fields: &[
            "skaddr",
            "oldstate",
            "newstate",
            "sport",
            "dport",
            "protocol",
            TCP_ADDRS[0],
            TCP_ADDRS[1],
            TCP_ADDRS[2],
            TCP_ADDRS[3],
            TCP_ADDRS[4],
        ],
        also: &[],
        maps: &[],
        counter: "n_tcp_state",
        limit: 2000,
        source: include_str!("../../bpftrace/tcp_state.bt"),
    },
    Probe {
        events: "retransmit",
        tracepoint: "tcp:tcp_retransmit_skb",
        fields: &[
            "skaddr",
            "state",
            "sport",
            "dport",
            TCP_ADDRS[0],
            TCP_ADDRS[1],
            TCP_ADDRS[2],
            TCP_ADDRS[3],
            TCP_ADDRS[4],
        ],
        also: &[],
        maps: &[],
        counter: "n_retransmit",
        limit: 1000,
        source: include_str!("../../bpftrace/retransmit.bt"),
    },
    Probe {
        events: "retransmit (SYN-ACK)",
        tracepoint: "tcp:tcp_retransmit_synack",
        fields: &[
            "skaddr",
            "sport",
            "dport",
            TCP_ADDRS[0],
            TCP_ADDRS[1],
            TCP_ADDRS[2],
            TCP_ADDRS[3],
            TCP_ADDRS[4],
        ],
        also: &[],
        maps: &[],
        counter: "n_retransmit",
        limit: 1000,
        source: include_str!("../../bpftrace/retransmit_synack.bt"),
    },
    Probe {
        events: "reset_received",
        tracepoint: "tcp:tcp_receive_reset",
        fields: &[
            "skaddr",
            "sport",
            "dport",
            TCP_ADDRS[0],
            TCP_ADDRS[1],
            TCP_ADDRS[2],
            TCP_ADDRS[3],
            TCP_ADDRS[4],
        ],
        also: &[],
        maps: &[],
        counter: "n_reset_received",
        limit: 1000,
        source: include_str!("../../bpftrace/reset_received.bt"),
    },
    Probe {
        events: "reset_sent",
        tracepoint: "tcp:tcp_send_reset",
        fields: &[
            "skbaddr",
            "skaddr",
            "state",
            "reason",
            "saddr[28]",
            "daddr[28]",
        ],
        also: &[],
        maps: &[],
        counter: "n_reset_sent",
        limit: 1000,
        source: include_str!("../../bpftrace/reset_sent.bt"),
    },
    Probe {
        events: "drop",
        tracepoint: "skb:kfree_skb",
        fields: &["skbaddr", "location", "protocol", "reason"],
        also: &[],
        maps: &[],
        counter: "n_drop",
        limit: 1000,
        source: include_str!("../../bpftrace/drop.bt"),
    },
    Probe {
        events: "connect_error",
        tracepoint: "syscalls:sys_exit_connect",
        fields: &["ret"],
        also: &[("syscalls:sys_enter_connect", &["uservaddr"])],
        maps: &["connect_addr"],
        counter: "n_connect_error",
        limit: 1000,
        source: include_str!("../../bpftrace/connect_error.bt"),
    },
];

/// The attach sentinel; comes last in the script (see `start.bt`).
const START_TRACEPOINT: &str = "syscalls:sys_enter_prctl";
const START_FIELDS: &[&str] = &["option", "arg2", "arg3", "arg4", "arg5"];
const START_SOURCE: &str = include_str!("../../bpftrace/start.bt");
/// The prctl() option that triggers `start.bt`. No kernel defines it, so the
/// call fails with EINVAL after the tracepoint fired (kernel/sys.c
/// SYSCALL_DEFINE5(prctl) default case).
pub(super) const START_MAGIC: libc::c_int = 0x6361_7073; // "caps"

/// A random number to tell our start sentinel from anyone else's; kept
/// below 2^53 so that bpftrace and JSON readers take it as is.
pub(super) fn nonce() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    let mut v = u64::from_ne_bytes(buf);
    if n != buf.len() as isize {
        let c = Clocks::now();
        v = c.realtime ^ (u64::from(std::process::id()) << 32) ^ c.monotonic.rotate_left(17);
    }
    (v & ((1 << 53) - 1)).max(1)
}

/// The script to run and the probes it leaves out.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) script: String,
    pub(super) omitted: Vec<String>,
}

/// Assembles the script from the probes this kernel's tracepoints can take.
pub(super) fn plan(tracefs: &Path, nonce: u64) -> Result<Plan, String> {
    let format = |tp: &str| -> Option<String> {
        let (group, name) = tp.split_once(':')?;
        fs::read_to_string(tracefs.join("events").join(group).join(name).join("format")).ok()
    };
    let start_format = format(START_TRACEPOINT).ok_or_else(|| {
        format!(
            "kernel lacks it: no tracepoint {START_TRACEPOINT} (syscall tracepoints, \
             CONFIG_FTRACE_SYSCALLS), needed to know when the probes are attached"
        )
    })?;
    if let Err(missing) = check_fields(&start_format, START_FIELDS) {
        return Err(format!(
            "kernel lacks it: {START_TRACEPOINT} has no field {missing}"
        ));
    }

    let mut omitted = Vec::new();
    let mut included: Vec<(&Probe, String)> = Vec::new();
    let mut drop_names = Vec::new();
    let mut rst_names = Vec::new();
    for probe in PROBES {
        let Some(fmt) = format(probe.tracepoint) else {
            omitted.push(format!(
                "no {} events: kernel lacks tracepoint {}",
                probe.events, probe.tracepoint
            ));
            continue;
        };
        if let Err(missing) = check_fields(&fmt, probe.fields) {
            omitted.push(format!(
                "no {} events: this kernel's {} has no field {missing}",
                probe.events, probe.tracepoint
            ));
            continue;
        }
        let lacking = probe.also.iter().find_map(|(tp, fields)| match format(tp) {
            None => Some(format!("kernel lacks tracepoint {tp}")),
            Some(f) => check_fields(&f, fields)
                .err()
                .map(|m| format!("this kernel's {tp} has no field {m}")),
        });
        if let Some(why) = lacking {
            omitted.push(format!("no {} events: {why}", probe.events));
            continue;
        }
        let mut source = probe.source.replace("__LIMIT__", &probe.limit.to_string());
        if probe.tracepoint == "skb:kfree_skb" {
            drop_names = symbolic(&fmt, "reason");
            let Some(&(not_specified, _)) = drop_names.iter().find(|(_, n)| n == "NOT_SPECIFIED")
            else {
                omitted.push(
                    "no drop events: skb:kfree_skb's format does not name \
                     SKB_DROP_REASON_NOT_SPECIFIED"
                        .to_string(),
                );
                continue;
            };
            source = source.replace("__DROP_MIN__", &not_specified.to_string());
        }
        if probe.tracepoint == "tcp:tcp_send_reset" {
            rst_names = symbolic(&fmt, "reason");
        }
        included.push((probe, source));
    }
    if included.is_empty() {
        return Err(format!("kernel lacks it: {}", omitted.join("; ")));
    }

    let mut s = String::new();
    s.push_str("// Generated by capsnap from capture/bpftrace/*.bt for this kernel.\n\n");
    s.push_str("BEGIN\n{\n");
    let mut names = |map: &str, table: &[(i64, String)]| {
        for (value, name) in table {
            s.push_str(&format!("  @{map}[{value}] = \"{name}\";\n"));
        }
    };
    let states: Vec<(i64, String)> = formats::TCP_STATES
        .iter()
        .map(|&(v, n)| (i64::from(v), n.to_string()))
        .collect();
    names("tcp_state_name", &states);
    let mut maps = vec!["tcp_state_name"];
    let uses = |tp: &str| included.iter().any(|(p, _)| p.tracepoint == tp);
    if uses("skb:kfree_skb") {
        names("drop_reason_name", &drop_names);
        maps.push("drop_reason_name");
    }
    if uses("tcp:tcp_send_reset") {
        if rst_names.is_empty() {
            // The map must be assigned somewhere or bpftrace rejects the read.
            rst_names.push((-1, "?".to_string()));
        }
        names("rst_reason_name", &rst_names);
        maps.push("rst_reason_name");
    }
    s.push_str("}\n\n");

    let mut counters: Vec<(&str, &str, u32)> = Vec::new();
    for (probe, source) in &included {
        s.push_str(source);
        s.push('\n');
        if !counters.iter().any(|(c, _, _)| *c == probe.counter) {
            let kind = probe.counter.trim_start_matches("n_");
            counters.push((probe.counter, kind, probe.limit));
        }
    }
    let suppressed = |s: &mut String| {
        for (counter, kind, limit) in &counters {
            s.push_str(&format!(
                r#"  if (@{counter} > {limit}) {{
    printf("{{\"event\":\"suppressed\",\"ts_ns\":%llu,\"kind\":\"{kind}\",\"count\":%llu}}\n", nsecs, @{counter} - {limit});
  }}
"#
            ));
        }
    };
    // Rate limits: the counters restart every second; what went over is
    // reported as a `suppressed` line. Not atomic across CPUs: approximate.
    s.push_str("// Rate limits (see each probe's counter).\ninterval:s:1\n{\n");
    suppressed(&mut s);
    for (counter, _, _) in &counters {
        s.push_str(&format!("  @{counter} = 0;\n"));
    }
    s.push_str("}\n\n");
    // One END only: bpftrace 0.17 runs a single END block. The maps are
    // cleared so that bpftrace prints no map contents into the events file
    // at exit (it still prints an empty line per map).
    s.push_str("END\n{\n");
    suppressed(&mut s);
    s.push_str(r#"  printf("{\"event\":\"stop\",\"ts_ns\":%llu}\n", nsecs);"#);
    s.push('\n');
    for map in maps
        .iter()
        .copied()
        .chain(included.iter().flat_map(|(p, _)| p.maps.iter().copied()))
        .chain(counters.iter().map(|(c, _, _)| *c))
    {
        s.push_str(&format!("  clear(@{map});\n"));
    }
    s.push_str("  clear(@capsnap_started);\n}\n\n");
    s.push_str(
        &START_SOURCE
            .replace("__MAGIC__", &format!("{START_MAGIC:#x}"))
            .replace("__NONCE__", &nonce.to_string()),
    );
    Ok(Plan { script: s, omitted })
}

/// Checks that every wanted declaration is in a tracepoint `format` file;
/// `Err` names the first missing one.
fn check_fields<'a>(format: &str, wanted: &[&'a str]) -> Result<(), &'a str> {
    let declared: Vec<&str> = format
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("field:"))
        .filter_map(|l| l.split(';').next())
        .filter_map(|decl| decl.split_whitespace().last())
        .collect();
    match wanted.iter().find(|w| !declared.contains(w)) {
        Some(missing) => Err(*missing),
        None => Ok(()),
    }
}

/// The numeric names of `field` from the `__print_symbolic(REC->field, ...)`
/// of a tracepoint's `print fmt`: how this kernel spells its enum values
/// (the drop reasons of include/net/dropreason-core.h move between kernels).
/// Entries whose value is a C name rather than a number are skipped, and so
/// are names that are not plain identifiers (they go into the script).
fn symbolic(format: &str, field: &str) -> Vec<(i64, String)> {
    let key = format!("__print_symbolic(REC->{field},");
    let Some(at) = format.find(&key) else {
        return Vec::new();
    };
    let mut rest = &format[at + key.len()..];
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start();
        let Some(entry) = rest.strip_prefix('{') else {
            break;
        };
        let Some(end) = entry.find('}') else { break };
        let (inner, after) = (&entry[..end], &entry[end + 1..]);
        if let Some((value, name)) = inner.split_once(',') {
            let name = name.trim().trim_matches('"');
            let plain =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if let (Ok(v), true) = (value.trim().parse::<i64>(), plain) {
                out.push((v, name.to_string()));
            }
        }
        rest = after.trim_start();
        match rest.strip_prefix(',') {
            Some(r) => rest = r,
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KFREE_SKB: &str = "name: kfree_skb
ID: 2310
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:void * location;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned short protocol;\toffset:32;\tsize:2;\tsigned:0;
\tfield:enum skb_drop_reason reason;\toffset:36;\tsize:4;\tsigned:0;

print fmt: \"skbaddr=%p protocol=%u location=%pS reason: %s\", REC->skbaddr, REC->protocol, \
REC->location, __print_symbolic(REC->reason, { 2, \"NOT_SPECIFIED\" }, { 3, \"NO_SOCKET\" }, \
{ 4, \"SOCKET_CLOSE\" }, { 128, \"MAX\" })
";

    const TCP_SEND_RESET: &str = "format:
\tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;
\tfield:int state;\toffset:24;\tsize:4;\tsigned:1;
\tfield:enum sk_rst_reason reason;\toffset:28;\tsize:4;\tsigned:0;
\tfield:__u8 saddr[28];\toffset:32;\tsize:28;\tsigned:0;
\tfield:__u8 daddr[28];\toffset:60;\tsize:28;\tsigned:0;

print fmt: \"state=%s reason=%s\", REC->state ? __print_symbolic(REC->state, \
{ TCP_ESTABLISHED, \"TCP_ESTABLISHED\" }) : \"UNKNOWN\", __print_symbolic(REC->reason, \
{ 0, \"NOT_SPECIFIED\" }, { 1, \"NO_SOCKET\" })
";

    /// Before 6.x, tcp_send_reset had port and address fields of its own.
    const TCP_SEND_RESET_5_10: &str = "format:
\tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;
\tfield:int state;\toffset:24;\tsize:4;\tsigned:1;
\tfield:__u16 sport;\toffset:28;\tsize:2;\tsigned:0;
\tfield:__u16 dport;\toffset:30;\tsize:2;\tsigned:0;
\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;
\tfield:__u8 daddr[4];\toffset:36;\tsize:4;\tsigned:0;
";

    const PRCTL: &str = "format:
\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int option;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned long arg2;\toffset:24;\tsize:8;\tsigned:0;
\tfield:unsigned long arg3;\toffset:32;\tsize:8;\tsigned:0;
\tfield:unsigned long arg4;\toffset:40;\tsize:8;\tsigned:0;
\tfield:unsigned long arg5;\toffset:48;\tsize:8;\tsigned:0;
";

    #[test]
    fn field_declarations() {
        let cases: &[(&str, &[&str], Result<(), &str>)] = &[
            (
                KFREE_SKB,
                &["skbaddr", "location", "protocol", "reason"],
                Ok(()),
            ),
            (KFREE_SKB, &["reason", "rx_sk"], Err("rx_sk")),
            (TCP_SEND_RESET, &["saddr[28]", "reason"], Ok(())),
            (TCP_SEND_RESET_5_10, &["saddr[28]"], Err("saddr[28]")),
            (TCP_SEND_RESET_5_10, &["saddr[4]", "sport"], Ok(())),
            ("", &["x"], Err("x")),
        ];
        for (format, wanted, expected) in cases {
            assert_eq!(check_fields(format, wanted), *expected, "{wanted:?}");
        }
    }

    #[test]
    fn symbolic_names_of_a_field() {
        let names = symbolic(KFREE_SKB, "reason");
        assert_eq!(
            names,
            vec![
                (2, "NOT_SPECIFIED".to_string()),
                (3, "NO_SOCKET".to_string()),
                (4, "SOCKET_CLOSE".to_string()),
                (128, "MAX".to_string()),
            ]
        );
        // Symbolic C names (not numbers) are skipped, the next table is read.
        assert_eq!(symbolic(TCP_SEND_RESET, "state"), vec![]);
        assert_eq!(
            symbolic(TCP_SEND_RESET, "reason"),
            vec![
                (0, "NOT_SPECIFIED".to_string()),
                (1, "NO_SOCKET".to_string())
            ]
        );
        assert_eq!(symbolic(KFREE_SKB, "nope"), vec![]);
        // Truncated text gives what it can, never a panic.
        for cut in 0..KFREE_SKB.len() {
            if KFREE_SKB.is_char_boundary(cut) {
                let _ = symbolic(&KFREE_SKB[..cut], "reason");
            }
        }
    }

    /// A fake tracefs with the given `group:name` -> format files.
    fn fake_tracefs(formats: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (tp, text) in formats {
            let (group, name) = tp.split_once(':').expect("group:name");
            let d = dir.path().join("events").join(group).join(name);
            fs::create_dir_all(&d).expect("mkdir");
            fs::write(d.join("format"), text).expect("write format");
        }
        dir
    }

    #[test]
    fn plan_leaves_out_probes_this_kernel_cannot_take() {
        let tracefs = fake_tracefs(&[
            (START_TRACEPOINT, PRCTL),
            ("skb:kfree_skb", KFREE_SKB),
            ("tcp:tcp_send_reset", TCP_SEND_RESET_5_10),
        ]);
        let plan = plan(tracefs.path(), 4242).expect("a plan");
        assert!(
            plan.script
                .contains("tracepoint:skb:kfree_skb\n/args->reason > 2/"),
            "{}",
            plan.script
        );
        assert!(
            plan.script
                .contains("@drop_reason_name[3] = \"NO_SOCKET\";")
        );
        assert!(
            !plan.script.contains("tcp_send_reset"),
            "old shape left out"
        );
        assert!(!plan.script.contains("@rst_reason_name"));
        for placeholder in ["__LIMIT__", "__DROP_MIN__", "__NONCE__", "__MAGIC__"] {
            assert!(
                !plan.script.contains(placeholder),
                "{placeholder} left in the script"
            );
        }
        assert!(plan.script.contains("args->arg3 == 4242"));
        // The sentinel is the last probe, the counters are reset and cleared.
        let sentinel = plan
            .script
            .find("tracepoint:syscalls:sys_enter_prctl")
            .expect("sentinel");
        assert!(plan.script.rfind("tracepoint:").unwrap() == sentinel);
        assert!(plan.script.contains("  @n_drop = 0;\n"));
        assert!(plan.script.contains("  clear(@n_drop);\n"));
        assert!(!plan.script.contains("n_exec"));
        let omitted = plan.omitted.join("\n");
        assert!(omitted.contains(
            "no reset_sent events: this kernel's tcp:tcp_send_reset has no field reason"
        ));
        assert!(
            omitted.contains("no exec events: kernel lacks tracepoint sched:sched_process_exec")
        );
    }

    #[test]
    fn connect_errors_need_both_connect_tracepoints() {
        const EXIT: &str = "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;\n";
        const ENTER: &str = "\tfield:int fd;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:struct sockaddr * uservaddr;\toffset:24;\tsize:8;\tsigned:0;\n";
        let tracefs = fake_tracefs(&[
            (START_TRACEPOINT, PRCTL),
            ("syscalls:sys_exit_connect", EXIT),
        ]);
        let p = plan(tracefs.path(), 1).expect_err("nothing else to probe");
        assert!(
            p.contains(
                "no connect_error events: kernel lacks tracepoint syscalls:sys_enter_connect"
            ),
            "{p}"
        );
        let tracefs = fake_tracefs(&[
            (START_TRACEPOINT, PRCTL),
            ("syscalls:sys_exit_connect", EXIT),
            ("syscalls:sys_enter_connect", ENTER),
        ]);
        let p = plan(tracefs.path(), 1).expect("a plan");
        assert!(p.script.contains("tracepoint:syscalls:sys_exit_connect\n"));
        assert!(p.script.contains("@n_connect_error <= 1000"));
        // The destinations kept between the two halves are not printed at exit.
        assert!(p.script.contains("  clear(@connect_addr);\n"));
    }

    #[test]
    fn plan_needs_the_start_sentinel() {
        let tracefs = fake_tracefs(&[("skb:kfree_skb", KFREE_SKB)]);
        let err = plan(tracefs.path(), 1).expect_err("no sys_enter_prctl");
        assert!(err.contains("CONFIG_FTRACE_SYSCALLS"), "{err}");
        let tracefs = fake_tracefs(&[(START_TRACEPOINT, PRCTL)]);
        let err = plan(tracefs.path(), 1).expect_err("no probe at all");
        assert!(err.starts_with("kernel lacks it"), "{err}");
    }
}
