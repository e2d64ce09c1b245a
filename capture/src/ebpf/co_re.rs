//! The probes as compiled CO-RE programs (`capture/ebpf/probes.bpf.c`,
//! built into `probes.bpf.o` by `capture/ebpf/build.sh` and embedded
//! here), loaded with aya against the running kernel's BTF, their records
//! read from one BPF ring buffer and written as the same `events.jsonl`
//! lines, field for field, as the bpftrace probes print
//! (`capture/bpftrace/*.bt`), so that one reader serves both.
//!
//! What differs from bpftrace, and why it does not show in the lines:
//! - The clock: the programs stamp `bpf_ktime_get_boot_ns()`, which is
//!   CLOCK_BOOTTIME, so the `start` line pairs it with wall-clock time from
//!   one `clock_gettime` reading each (no sentinel syscall is needed: the
//!   programs are attached when aya's `attach` returns).
//! - Rate limits are applied here, per second of wall-clock time with the
//!   same limits and `suppressed` lines as the bpftrace probes' counters.
//! - Lost events are exact: a record the ring has no room for is counted
//!   by the program in the per-CPU `lost` map, and a run the kernel skipped
//!   (another BPF program was running on that CPU) in the program's
//!   `recursion_misses` (fdinfo, 5.12+); every increase of either is
//!   written as bpftrace's `Lost N events` line, which the summary counts.
//! - Strings (comm, file names, argv) are written as bpftrace prints them,
//!   unescaped, so that the reader (formats::bpftrace), which takes them
//!   verbatim, reads both paths alike.

use super::OnRecord;
use super::clock::{Clocks, StartLine};
use super::probes::Checked;
use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::TracePoint;
use aya::{Ebpf, EbpfLoader};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The compiled programs (`capture/ebpf/probes.bpf.o`), 8-byte aligned as
/// the ELF parser wants them.
pub(super) static OBJECT: &[u8] = aya::include_bytes_aligned!("../../ebpf/probes.bpf.o");

/// Where the kernel publishes its BTF (CONFIG_DEBUG_INFO_BTF, 5.4+): the
/// types the CO-RE relocations are resolved against.
pub(super) const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// How often the ring is polled when idle, and the stop flag looked at.
const POLL_MS: i32 = 100;

// Record kinds and layouts of probes.bpf.c (its static asserts pin the
// sizes; the offsets below follow its struct definitions).
const K_EXEC: u32 = 1;
const K_TCP_STATE: u32 = 2;
const K_RETRANSMIT: u32 = 3;
const K_RETRANSMIT_SYNACK: u32 = 4;
const K_RESET_RECEIVED: u32 = 5;
const K_RESET_SENT: u32 = 6;
const K_DROP: u32 = 7;
const K_CONNECT_ERROR: u32 = 8;
const NET_EVENT_LEN: usize = 120;
const EXEC_EVENT_LEN: usize = 392;
const STRLEN: usize = formats::bpftrace::STRLEN;

/// Where the lines go: the events file, or a streamed session's callback.
pub(super) enum Sink {
    File(BufWriter<File>),
    Stream(OnRecord),
}

impl Sink {
    fn put(&mut self, line: &[u8]) -> io::Result<()> {
        match self {
            Sink::File(f) => f.write_all(line).and_then(|()| f.write_all(b"\n")),
            Sink::Stream(each) => {
                each(line);
                Ok(())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::File(f) => f.flush(),
            Sink::Stream(_) => Ok(()),
        }
    }
}

/// The attached programs, read by a thread of their own until stopped.
#[derive(Debug)]
pub(super) struct Running {
    halt: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl Running {
    /// Detaches the programs after the ring is drained and the `stop` line
    /// written; `Err` says what went wrong while reading. Idempotent.
    pub(super) fn stop(&mut self) -> Option<Result<(), String>> {
        let thread = self.thread.take()?;
        self.halt.store(true, Ordering::Relaxed);
        Some(
            thread
                .join()
                .unwrap_or_else(|_| Err("the ring reader panicked".to_string())),
        )
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// What a started CO-RE session hands back.
pub(super) struct Started {
    pub(super) running: Running,
    pub(super) start: StartLine,
    /// Probes left out: by the tracepoint check, or whose program did not
    /// load or attach.
    pub(super) omitted: Vec<String>,
}

/// Why the CO-RE path cannot run here, before trying it.
pub(super) fn unavailable() -> Option<String> {
    if !Path::new(KERNEL_BTF).is_file() {
        return Some(format!(
            "the kernel has no BTF ({KERNEL_BTF} missing: CONFIG_DEBUG_INFO_BTF)"
        ));
    }
    None
}

/// Loads and attaches the programs of the probes `checked` keeps, on a
/// thread that then reads the ring into `sink` until [`Running::stop`].
/// `Err` gives the sink back with the reason, for the bpftrace fallback.
pub(super) fn start(checked: Checked, sink: Sink) -> Result<Started, (String, Sink)> {
    let (tx, rx) = mpsc::channel();
    let halt = Arc::new(AtomicBool::new(false));
    let flag = halt.clone();
    let thread = std::thread::Builder::new()
        .name("capsnap-ebpf".to_string())
        .spawn(move || run(checked, sink, &tx, &flag));
    let thread = match thread {
        Ok(t) => t,
        Err(e) => {
            // The sink went with the closure that never ran: nothing to
            // give back but the reason.
            return Err((format!("cannot start the ring reader: {e}"), dead_sink()));
        }
    };
    match rx.recv() {
        Ok(Ok((start, omitted))) => Ok(Started {
            running: Running {
                halt,
                thread: Some(thread),
            },
            start,
            omitted,
        }),
        Ok(Err((reason, sink))) => {
            let _ = thread.join();
            Err((reason, sink))
        }
        Err(_) => {
            let _ = thread.join();
            Err((
                "the ring reader ended before attaching".to_string(),
                dead_sink(),
            ))
        }
    }
}

/// A sink for when the real one was lost with a thread.
fn dead_sink() -> Sink {
    Sink::Stream(Box::new(|_| {}))
}

type Ready = Result<(StartLine, Vec<String>), (String, Sink)>;

/// The thread: load, attach, say so on `ready`, then read until `halt`.
fn run(
    checked: Checked,
    mut sink: Sink,
    ready: &mpsc::Sender<Ready>,
    halt: &AtomicBool,
) -> Result<(), String> {
    let (mut bpf, mut omitted) = match load(&checked) {
        Ok(loaded) => loaded,
        Err(e) => {
            let _ = ready.send(Err((e, sink)));
            return Ok(());
        }
    };
    let maps = bpf
        .take_map("events")
        .ok_or_else(|| "probes.bpf.o has no map `events`".to_string())
        .and_then(|m| RingBuf::try_from(m).map_err(|e| format!("map `events`: {e}")))
        .and_then(|ring| {
            let lost = bpf
                .take_map("lost")
                .ok_or_else(|| "probes.bpf.o has no map `lost`".to_string())?;
            let lost = PerCpuArray::<MapData, u64>::try_from(lost)
                .map_err(|e| format!("map `lost`: {e}"))?;
            Ok((ring, lost))
        });
    let (mut ring, lost) = match maps {
        Ok(m) => m,
        Err(e) => {
            let _ = ready.send(Err((e, sink)));
            return Ok(());
        }
    };

    let clocks = Clocks::now();
    let start = StartLine {
        ts_ns: clocks.boottime,
        realtime_ns: clocks.realtime,
        monotonic_ns: clocks.monotonic,
        boottime_ns: clocks.boottime,
    };
    let start_line = format!(
        "{{\"event\":\"start\",\"ts_ns\":{},\"realtime_ns\":{},\"monotonic_ns\":{},\"boottime_ns\":{},\"schema\":1,\"capsnap_pid\":{},\"loader\":\"core\"}}",
        start.ts_ns,
        start.realtime_ns,
        start.monotonic_ns,
        start.boottime_ns,
        std::process::id()
    );
    if let Err(e) = sink.put(start_line.as_bytes()).and_then(|()| sink.flush()) {
        let _ = ready.send(Err((format!("cannot write the start line: {e}"), sink)));
        return Ok(());
    }
    omitted.sort();
    let _ = ready.send(Ok((start, omitted)));

    let mut fmt = Formatter::new(&checked);
    let mut limits = Limits::new(&checked);
    let mut out = Out { sink, error: None };
    let mut lost_seen = 0u64;
    let programs: Vec<i32> = bpf
        .programs()
        .filter_map(|(_, p)| p.fd().ok())
        .map(|fd| fd.as_fd().as_raw_fd())
        .collect();
    let mut missed_seen = recursion_misses(&programs);
    let mut second = Instant::now();
    loop {
        let halting = halt.load(Ordering::Relaxed);
        if !halting {
            let mut pfd = libc::pollfd {
                fd: ring.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; a failure (EINTR) only ends the wait.
            unsafe { libc::poll(&mut pfd, 1, POLL_MS) };
        }
        while let Some(item) = ring.next() {
            let mut lines = Vec::new();
            fmt.lines(&item, &mut lines);
            drop(item);
            for (counter, line) in lines {
                if limits.admit(counter) {
                    out.put(&line);
                }
            }
        }
        // Records the ring had no room for, as bpftrace reports its own.
        let lost_now = lost
            .get(&0, 0)
            .map(|v| v.iter().sum::<u64>())
            .unwrap_or(lost_seen);
        if lost_now > lost_seen {
            out.put(format!("Lost {} events", lost_now - lost_seen).as_bytes());
            lost_seen = lost_now;
        }
        if halting || second.elapsed() >= Duration::from_secs(1) {
            // Runs the kernel skipped because another BPF program was
            // running on that CPU (trace_call_bpf, kernel/trace/bpf_trace.c,
            // counts them in the program's recursion_misses): lost too.
            let missed = recursion_misses(&programs);
            if missed > missed_seen {
                out.put(format!("Lost {} events", missed - missed_seen).as_bytes());
                missed_seen = missed;
            }
            for line in limits.roll() {
                out.put(line.as_bytes());
            }
            second = Instant::now();
        }
        if halting {
            break;
        }
        out.flush();
    }
    out.put(
        format!(
            "{{\"event\":\"stop\",\"ts_ns\":{}}}",
            Clocks::now().boottime
        )
        .as_bytes(),
    );
    out.flush();
    // Dropping `bpf` detaches the programs.
    drop(bpf);
    out.error.map_or(Ok(()), Err)
}

/// The sum of the `recursion_misses` of programs `fds`, from their
/// /proc/self/fdinfo (5.12+; 0 where the kernel does not say).
fn recursion_misses(fds: &[i32]) -> u64 {
    fds.iter()
        .filter_map(|fd| std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok())
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("recursion_misses:"))
                .and_then(|n| n.trim().parse::<u64>().ok())
        })
        .sum()
}

/// The sink and the first error writing to it (later lines are dropped).
struct Out {
    sink: Sink,
    error: Option<String>,
}

impl Out {
    fn put(&mut self, line: &[u8]) {
        if self.error.is_none()
            && let Err(e) = self.sink.put(line)
        {
            self.error = Some(format!("cannot write an event: {e}"));
        }
    }

    fn flush(&mut self) {
        if self.error.is_none()
            && let Err(e) = self.sink.flush()
        {
            self.error = Some(format!("cannot write an event: {e}"));
        }
    }
}

/// Loads the object and attaches the programs of the probes `checked`
/// keeps; the probes whose programs failed are in the list returned.
fn load(checked: &Checked) -> Result<(Ebpf, Vec<String>), String> {
    raise_memlock();
    let drop_min = u32::try_from(checked.drop_min).unwrap_or(u32::MAX);
    let mut bpf = EbpfLoader::new()
        .override_global("drop_min", &drop_min, true)
        .load(OBJECT)
        .map_err(|e| format!("cannot load probes.bpf.o: {}", chain(&e)))?;
    let mut omitted = checked.omitted.clone();
    let mut attached = 0;
    for (probe, _) in &checked.included {
        let mut failed = None;
        for (name, tracepoint) in probe.programs {
            let Some((category, event)) = tracepoint.split_once(':') else {
                continue;
            };
            let result = match bpf.program_mut(name) {
                None => Err(format!("probes.bpf.o has no program {name}")),
                Some(p) => match <&mut TracePoint>::try_from(p) {
                    Err(e) => Err(format!("{name}: {}", chain(&e))),
                    Ok(tp) => tp
                        .load()
                        .and_then(|()| tp.attach(category, event))
                        .map(|_| ())
                        .map_err(|e| format!("{name}: {}", chain(&e))),
                },
            };
            if let Err(e) = result {
                failed = Some(e);
                break;
            }
        }
        match failed {
            None => attached += 1,
            Some(e) => omitted.push(format!(
                "no {} events: CO-RE program did not load: {e}",
                probe.events
            )),
        }
    }
    if attached == 0 {
        return Err(format!("no CO-RE program attached: {}", omitted.join("; ")));
    }
    Ok((bpf, omitted))
}

/// An error and its sources, one after the other (aya's verifier log is
/// in a source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    if s.len() > 600 {
        let mut end = 600;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK (later ones to
/// the memory cgroup): the 8 MB ring would not fit the usual 8 MB limit
/// with the rest. Best effort; failure shows as a load error.
fn raise_memlock() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid struct.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
}

/// A rate-limit counter and its key (the reason of a drop, else 0).
type Counter = (&'static str, i64);

/// The per-second rate limits of the bpftrace probes ([`Probe`]'s
/// `counter` and `limit`), applied to the lines as they are read. Drops
/// are limited per reason (issue 9): on a busy node a flood of one reason
/// (PACKET_SOCK_ERROR from a capture's own socket whose buffer is full,
/// 120,000 in one lab run) used to use up the limit and hide the rest.
///
/// [`Probe`]: super::probes::Probe
struct Limits {
    /// counter -> its limit a second.
    limits: Vec<(&'static str, u32)>,
    /// (counter, key) -> lines counted this second.
    counts: Vec<(Counter, u64)>,
    /// Whether the last counted line was let through.
    last_admitted: bool,
}

impl Limits {
    fn new(checked: &Checked) -> Limits {
        let mut limits: Vec<(&'static str, u32)> = Vec::new();
        for (p, _) in &checked.included {
            if !limits.iter().any(|(c, _)| *c == p.counter) {
                limits.push((p.counter, p.limit));
            }
        }
        Limits {
            limits,
            counts: Vec::new(),
            last_admitted: true,
        }
    }

    /// Counts a line of `counter` (with its key); whether it is within the
    /// limit. A line counted by no counter (`connect`, which rides on its
    /// `tcp_state`) is let through when its `tcp_state` was.
    fn admit(&mut self, counter: Option<Counter>) -> bool {
        let Some(key) = counter else {
            return self.last_admitted;
        };
        let Some(&(_, limit)) = self.limits.iter().find(|(n, _)| *n == key.0) else {
            return true;
        };
        let n = match self.counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => n,
            None => {
                self.counts.push((key, 0));
                &mut self.counts.last_mut().expect("pushed").1
            }
        };
        *n += 1;
        self.last_admitted = *n <= u64::from(limit);
        self.last_admitted
    }

    /// The `suppressed` lines of the second that ends (one per counter,
    /// its keys summed), and a new second.
    fn roll(&mut self) -> Vec<String> {
        let now = Clocks::now().boottime;
        let mut out = Vec::new();
        for &(counter, limit) in &self.limits {
            let over: u64 = self
                .counts
                .iter()
                .filter(|((c, _), _)| *c == counter)
                .map(|(_, n)| n.saturating_sub(u64::from(limit)))
                .sum();
            if over > 0 {
                out.push(format!(
                    "{{\"event\":\"suppressed\",\"ts_ns\":{now},\"kind\":\"{}\",\"count\":{over}}}",
                    counter.trim_start_matches("n_"),
                ));
            }
        }
        self.counts.clear();
        out
    }
}

/// Turns ring records into the bpftrace probes' lines.
struct Formatter {
    tcp_states: HashMap<i64, &'static str>,
    drop_names: HashMap<i64, String>,
    rst_names: HashMap<i64, String>,
    ksyms: Option<Ksyms>,
}

/// Little-endian reads at fixed offsets of a record (BPF runs in the
/// host's byte order, and capsnap is built for x86_64).
struct Rec<'a>(&'a [u8]);

impl Rec<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut b = [0u8; N];
        if let Some(s) = self.0.get(at..at + N) {
            b.copy_from_slice(s);
        }
        b
    }
    fn u16(&self, at: usize) -> u16 {
        u16::from_ne_bytes(self.bytes(at))
    }
    fn u32(&self, at: usize) -> u32 {
        u32::from_ne_bytes(self.bytes(at))
    }
    fn i32(&self, at: usize) -> i32 {
        i32::from_ne_bytes(self.bytes(at))
    }
    fn u64(&self, at: usize) -> u64 {
        u64::from_ne_bytes(self.bytes(at))
    }
    fn i64(&self, at: usize) -> i64 {
        i64::from_ne_bytes(self.bytes(at))
    }
    /// A NUL-terminated string of at most `len` bytes, cut as bpftrace
    /// cuts it (at `STRLEN - 1` bytes), raw.
    fn str(&self, at: usize, len: usize) -> &[u8] {
        let s = self.0.get(at..at + len).unwrap_or(&[]);
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        &s[..end.min(STRLEN - 1)]
    }
}

// Offsets of struct net_event (probes.bpf.c), after the 24-byte header.
const N_SK: usize = 24;
const N_LOCATION: usize = 32;
const N_SADDR: usize = 40;
const N_DADDR: usize = 56;
const N_FAMILY: usize = 72;
const N_SPORT: usize = 74;
const N_DPORT: usize = 76;
const N_IP_PROTO: usize = 78;
const N_A: usize = 80;
const N_B: usize = 84;
const N_IFINDEX: usize = 88;
const N_ETHERTYPE: usize = 92;
const N_RET: usize = 96;
const N_COMM: usize = 104;
// struct exec_event.
const E_OLD_PID: usize = 24;
const E_PPID: usize = 28;
const E_UID: usize = 32;
const E_ARGC: usize = 36;
const E_COMM: usize = 40;
const E_PCOMM: usize = 56;
const E_FILENAME: usize = 72;
const E_ARGV: usize = 136;

/// A line being built: JSON text with raw strings, as bpftrace prints.
struct Line(Vec<u8>);

impl Line {
    fn new(kind: &str, ts_ns: u64) -> Line {
        Line(format!("{{\"event\":\"{kind}\",\"ts_ns\":{ts_ns}").into_bytes())
    }
    fn num(mut self, key: &str, v: impl std::fmt::Display) -> Line {
        self.0
            .extend_from_slice(format!(",\"{key}\":{v}").as_bytes());
        self
    }
    fn text(mut self, key: &str, v: &[u8]) -> Line {
        self.0
            .extend_from_slice(format!(",\"{key}\":\"").as_bytes());
        self.0.extend_from_slice(v);
        self.0.push(b'"');
        self
    }
    fn done(mut self) -> Vec<u8> {
        self.0.push(b'}');
        self.0
    }
}

impl Formatter {
    fn new(checked: &Checked) -> Formatter {
        Formatter {
            tcp_states: formats::TCP_STATES
                .iter()
                .map(|&(v, n)| (i64::from(v), n))
                .collect(),
            drop_names: checked.drop_names.iter().cloned().collect(),
            rst_names: checked.rst_names.iter().cloned().collect(),
            ksyms: None,
        }
    }

    fn state(&self, v: i64) -> &[u8] {
        self.tcp_states.get(&v).map_or(b"", |s| s.as_bytes())
    }

    /// The lines of one record, each with the rate-limit counter it counts
    /// against (and, for drops, the reason: each has its own limit).
    fn lines(&mut self, rec: &[u8], out: &mut Vec<(Option<Counter>, Vec<u8>)>) {
        let r = Rec(rec);
        let (ts, kind, pid, netns) = (r.u64(0), r.u32(8), r.u32(12), r.u32(16));
        if kind == K_EXEC {
            if rec.len() < EXEC_EVENT_LEN {
                return;
            }
            let mut l = Line::new("exec", ts)
                .num("pid", pid)
                .num("old_pid", r.u32(E_OLD_PID))
                .num("ppid", r.u32(E_PPID))
                .num("uid", r.u32(E_UID))
                .num("netns", netns)
                .num("argc", r.u32(E_ARGC))
                .text("comm", r.str(E_COMM, 16))
                .text("pcomm", r.str(E_PCOMM, 16))
                .text("filename", r.str(E_FILENAME, STRLEN));
            l.0.extend_from_slice(b",\"argv\":[");
            for i in 0..4 {
                if i > 0 {
                    l.0.push(b',');
                }
                l.0.push(b'"');
                l.0.extend_from_slice(r.str(E_ARGV + i * STRLEN, STRLEN));
                l.0.push(b'"');
            }
            l.0.push(b']');
            out.push((Some(("n_exec", 0)), l.done()));
            return;
        }
        if rec.len() < NET_EVENT_LEN {
            return;
        }
        let family = r.u16(N_FAMILY);
        let addr = |at: usize| -> Vec<u8> {
            if family == 2 {
                Ipv4Addr::from(r.bytes::<4>(at)).to_string().into_bytes()
            } else {
                Ipv6Addr::from(r.bytes::<16>(at)).to_string().into_bytes()
            }
        };
        let fam: &[u8] = if family == 2 { b"ipv4" } else { b"ipv6" };
        let sk = format!("{:x}", r.u64(N_SK));
        let (sport, dport) = (r.u16(N_SPORT), r.u16(N_DPORT));
        let comm = r.str(N_COMM, 16);
        let (a, b) = (i64::from(r.i32(N_A)), i64::from(r.i32(N_B)));
        let tuple = |l: Line| {
            l.text("family", fam)
                .text("saddr", &addr(N_SADDR))
                .num("sport", sport)
                .text("daddr", &addr(N_DADDR))
                .num("dport", dport)
        };
        match kind {
            K_TCP_STATE => {
                let l = tuple(
                    Line::new("tcp_state", ts)
                        .num("pid", pid)
                        .num("netns", netns),
                )
                .text("oldstate", self.state(a))
                .text("newstate", self.state(b))
                .text("sk", sk.as_bytes())
                .text("comm", comm);
                out.push((Some(("n_tcp_state", 0)), l.done()));
                // CLOSE -> SYN_SENT is a connect (tcp_state.bt).
                if a == 7 && b == 2 {
                    let l = tuple(Line::new("connect", ts).num("pid", pid).num("netns", netns))
                        .text("sk", sk.as_bytes())
                        .text("comm", comm);
                    out.push((None, l.done()));
                }
            }
            K_RETRANSMIT | K_RETRANSMIT_SYNACK => {
                let state: &[u8] = if kind == K_RETRANSMIT {
                    self.state(a)
                } else {
                    b"SYN_RECV"
                };
                let l = tuple(Line::new("retransmit", ts).num("netns", netns))
                    .text("state", state)
                    .text("sk", sk.as_bytes());
                out.push((Some(("n_retransmit", 0)), l.done()));
            }
            K_RESET_RECEIVED => {
                let l = tuple(
                    Line::new("reset_received", ts)
                        .num("pid", pid)
                        .num("netns", netns),
                )
                .text("state", self.state(a))
                .text("sk", sk.as_bytes())
                .text("comm", comm);
                out.push((Some(("n_reset_received", 0)), l.done()));
            }
            K_RESET_SENT => {
                let reason_name = self.rst_names.get(&b).map_or("", String::as_str);
                let l = tuple(
                    Line::new("reset_sent", ts)
                        .num("pid", pid)
                        .num("netns", netns),
                )
                .text("state", self.state(a))
                .num("reason", b)
                .text("reason_name", reason_name.as_bytes())
                .text("sk", sk.as_bytes())
                .text("comm", comm);
                out.push((Some(("n_reset_sent", 0)), l.done()));
            }
            K_DROP => {
                let reason_name = self.drop_names.get(&a).map_or("", String::as_str);
                let location = self
                    .ksyms
                    .get_or_insert_with(Ksyms::read)
                    .name(r.u64(N_LOCATION));
                let l = Line::new("drop", ts)
                    .num("netns", netns)
                    .num("ifindex", r.i32(N_IFINDEX))
                    .num("reason", a)
                    .text("reason_name", reason_name.as_bytes())
                    .text("location", location.as_bytes());
                let l = if family == 2 || family == 10 {
                    l.text("family", fam)
                        .num("ip_proto", r.u16(N_IP_PROTO))
                        .text("saddr", &addr(N_SADDR))
                        .num("sport", sport)
                        .text("daddr", &addr(N_DADDR))
                        .num("dport", dport)
                } else {
                    l.num("ethertype", r.u32(N_ETHERTYPE))
                };
                out.push((Some(("n_drop", a)), l.done()));
            }
            K_CONNECT_ERROR => {
                let l = Line::new("connect_error", ts)
                    .num("pid", pid)
                    .num("netns", netns)
                    .text("family", fam)
                    .text("daddr", &addr(N_DADDR))
                    .num("dport", dport)
                    .num("ret", r.i64(N_RET))
                    .text("comm", comm);
                out.push((Some(("n_connect_error", 0)), l.done()));
            }
            _ => {}
        }
    }
}

/// Kernel text symbols (`/proc/kallsyms`), for a drop's `location` as
/// bpftrace's `ksym()` prints it: the name of the function holding the
/// address, or the address in hex when none does (kallsyms hidden from
/// the reader: kptr_restrict, or not root).
struct Ksyms(Vec<(u64, String)>);

impl Ksyms {
    fn read() -> Ksyms {
        let text = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        Ksyms::parse(&text)
    }

    fn parse(text: &str) -> Ksyms {
        let mut syms: Vec<(u64, String)> = text
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let addr = u64::from_str_radix(f.next()?, 16).ok()?;
                let kind = f.next()?;
                let name = f.next()?;
                (addr != 0 && matches!(kind, "t" | "T" | "w" | "W"))
                    .then(|| (addr, name.to_string()))
            })
            .collect();
        syms.sort_unstable();
        Ksyms(syms)
    }

    fn name(&self, addr: u64) -> String {
        let i = self.0.partition_point(|(a, _)| *a <= addr);
        match i.checked_sub(1).and_then(|i| self.0.get(i)) {
            Some((_, name)) => name.clone(),
            None => format!("0x{addr:x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net_record(kind: u32, f: impl FnOnce(&mut [u8])) -> Vec<u8> {
        let mut r = vec![0u8; NET_EVENT_LEN];
        r[0..8].copy_from_slice(&1234u64.to_ne_bytes());
        r[8..12].copy_from_slice(&kind.to_ne_bytes());
        r[12..16].copy_from_slice(&77u32.to_ne_bytes());
        r[16..20].copy_from_slice(&4026531840u32.to_ne_bytes());
        f(&mut r);
        r
    }

    fn formatter() -> Formatter {
        let checked = Checked {
            drop_names: vec![(3, "NO_SOCKET".to_string())],
            rst_names: vec![(1, "NO_SOCKET".to_string())],
            ..Checked::default()
        };
        let mut f = Formatter::new(&checked);
        f.ksyms = Some(Ksyms::parse(
            "ffffffff81000000 T _stext\nffffffff81001000 t tcp_v4_rcv\nffffffff81002000 d data\n",
        ));
        f
    }

    fn text(lines: &[(Option<Counter>, Vec<u8>)]) -> Vec<String> {
        lines
            .iter()
            .map(|(_, l)| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    #[test]
    fn records_become_the_bpftrace_lines() {
        let mut f = formatter();
        let mut out = Vec::new();
        let state = net_record(K_TCP_STATE, |r| {
            r[N_SK..N_SK + 8].copy_from_slice(&0xffff_8880_0abc_u64.to_ne_bytes());
            r[N_SADDR..N_SADDR + 4].copy_from_slice(&[10, 0, 0, 1]);
            r[N_DADDR..N_DADDR + 4].copy_from_slice(&[10, 0, 0, 2]);
            r[N_FAMILY..N_FAMILY + 2].copy_from_slice(&2u16.to_ne_bytes());
            r[N_DPORT..N_DPORT + 2].copy_from_slice(&8080u16.to_ne_bytes());
            r[N_A..N_A + 4].copy_from_slice(&7i32.to_ne_bytes());
            r[N_B..N_B + 4].copy_from_slice(&2i32.to_ne_bytes());
            r[N_COMM..N_COMM + 4].copy_from_slice(b"curl");
        });
        f.lines(&state, &mut out);
        assert_eq!(
            text(&out),
            vec![
                "{\"event\":\"tcp_state\",\"ts_ns\":1234,\"pid\":77,\"netns\":4026531840,\"family\":\"ipv4\",\"saddr\":\"10.0.0.1\",\"sport\":0,\"daddr\":\"10.0.0.2\",\"dport\":8080,\"oldstate\":\"CLOSE\",\"newstate\":\"SYN_SENT\",\"sk\":\"ffff88800abc\",\"comm\":\"curl\"}",
                "{\"event\":\"connect\",\"ts_ns\":1234,\"pid\":77,\"netns\":4026531840,\"family\":\"ipv4\",\"saddr\":\"10.0.0.1\",\"sport\":0,\"daddr\":\"10.0.0.2\",\"dport\":8080,\"sk\":\"ffff88800abc\",\"comm\":\"curl\"}",
            ]
        );
        assert_eq!(out[0].0, Some(("n_tcp_state", 0)));
        assert_eq!(out[1].0, None, "connect rides on its tcp_state");

        out.clear();
        let drop = net_record(K_DROP, |r| {
            r[N_A..N_A + 4].copy_from_slice(&3i32.to_ne_bytes());
            r[N_LOCATION..N_LOCATION + 8].copy_from_slice(&0xffff_ffff_8100_1234u64.to_ne_bytes());
            r[N_FAMILY..N_FAMILY + 2].copy_from_slice(&10u16.to_ne_bytes());
            r[N_IP_PROTO..N_IP_PROTO + 2].copy_from_slice(&6u16.to_ne_bytes());
            r[N_DADDR + 15] = 1;
            r[N_IFINDEX..N_IFINDEX + 4].copy_from_slice(&1i32.to_ne_bytes());
        });
        f.lines(&drop, &mut out);
        assert_eq!(
            text(&out),
            vec![
                "{\"event\":\"drop\",\"ts_ns\":1234,\"netns\":4026531840,\"ifindex\":1,\"reason\":3,\"reason_name\":\"NO_SOCKET\",\"location\":\"tcp_v4_rcv\",\"family\":\"ipv6\",\"ip_proto\":6,\"saddr\":\"::\",\"sport\":0,\"daddr\":\"::1\",\"dport\":0}"
            ]
        );

        out.clear();
        let refused = net_record(K_CONNECT_ERROR, |r| {
            r[N_FAMILY..N_FAMILY + 2].copy_from_slice(&2u16.to_ne_bytes());
            r[N_DADDR..N_DADDR + 4].copy_from_slice(&[127, 0, 0, 1]);
            r[N_DPORT..N_DPORT + 2].copy_from_slice(&9u16.to_ne_bytes());
            r[N_RET..N_RET + 8].copy_from_slice(&(-111i64).to_ne_bytes());
            // A quote in a comm is written raw, as bpftrace does.
            r[N_COMM..N_COMM + 3].copy_from_slice(b"a\"b");
        });
        f.lines(&refused, &mut out);
        assert_eq!(
            text(&out),
            vec![
                "{\"event\":\"connect_error\",\"ts_ns\":1234,\"pid\":77,\"netns\":4026531840,\"family\":\"ipv4\",\"daddr\":\"127.0.0.1\",\"dport\":9,\"ret\":-111,\"comm\":\"a\"b\"}"
            ]
        );

        // Short records (a layout mismatch) give nothing, never a panic.
        out.clear();
        f.lines(&refused[..50], &mut out);
        f.lines(&[], &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn exec_record() {
        let mut r = vec![0u8; EXEC_EVENT_LEN];
        r[8..12].copy_from_slice(&K_EXEC.to_ne_bytes());
        r[12..16].copy_from_slice(&5u32.to_ne_bytes());
        r[E_ARGC..E_ARGC + 4].copy_from_slice(&6u32.to_ne_bytes());
        r[E_COMM..E_COMM + 4].copy_from_slice(b"true");
        r[E_FILENAME..E_FILENAME + 9].copy_from_slice(b"/bin/true");
        r[E_ARGV..E_ARGV + 9].copy_from_slice(b"/bin/true");
        // A full 64-byte argument is cut at 63, as BPFTRACE_STRLEN cuts it.
        r[E_ARGV + STRLEN..E_ARGV + 2 * STRLEN].fill(b'x');
        let mut out = Vec::new();
        formatter().lines(&r, &mut out);
        let x63 = "x".repeat(63);
        assert_eq!(
            text(&out),
            vec![format!(
                "{{\"event\":\"exec\",\"ts_ns\":0,\"pid\":5,\"old_pid\":0,\"ppid\":0,\"uid\":0,\"netns\":0,\"argc\":6,\"comm\":\"true\",\"pcomm\":\"\",\"filename\":\"/bin/true\",\"argv\":[\"/bin/true\",\"{x63}\",\"\",\"\"]}}"
            )]
        );
    }

    #[test]
    fn rate_limits_as_the_bpftrace_counters() {
        let checked = super::super::probes::Checked {
            included: super::super::probes::PROBES
                .iter()
                .map(|p| (p, String::new()))
                .collect(),
            ..Checked::default()
        };
        let mut limits = Limits::new(&checked);
        let admitted = (0..1005)
            .filter(|_| limits.admit(Some(("n_exec", 0))))
            .count();
        assert_eq!(admitted, 1000);
        assert!(
            !limits.admit(None),
            "a connect after a suppressed tcp_state"
        );
        let rolled = limits.roll();
        assert_eq!(rolled.len(), 1, "{rolled:?}");
        assert!(
            rolled[0].contains("\"kind\":\"exec\",\"count\":5"),
            "{rolled:?}"
        );
        assert!(limits.admit(Some(("n_exec", 0))), "a new second");
        assert!(limits.roll().is_empty());
    }

    #[test]
    fn each_drop_reason_has_its_own_limit_9() {
        let checked = super::super::probes::Checked {
            included: super::super::probes::PROBES
                .iter()
                .map(|p| (p, String::new()))
                .collect(),
            ..Checked::default()
        };
        let mut limits = Limits::new(&checked);
        // A flood of one reason, then another reason in the same second.
        let flood = (0..5000)
            .filter(|_| limits.admit(Some(("n_drop", 77))))
            .count();
        let other = (0..10)
            .filter(|_| limits.admit(Some(("n_drop", 5))))
            .count();
        assert_eq!((flood, other), (1000, 10));
        let rolled = limits.roll();
        assert!(
            rolled[0].contains("\"kind\":\"drop\",\"count\":4000"),
            "{rolled:?}"
        );
    }

    /// The committed object is what `capture/ebpf/build.sh` makes of the
    /// committed sources: a change to probes.bpf.c or kernel.h without a
    /// rebuild fails here (CI installs clang, see .ci/run).
    #[test]
    fn committed_object_is_current() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ebpf");
        let tool = |name: &str| crate::sys::find_executable(name).is_some();
        if !tool("clang") || !tool("llvm-strip") {
            println!(
                "SKIPPED: clang or llvm-strip not installed (apt-get install clang llvm libbpf-dev)"
            );
            return;
        }
        if !Path::new("/usr/include/bpf/bpf_helpers.h").is_file() {
            println!("SKIPPED: libbpf's bpf_helpers.h not installed (apt-get install libbpf-dev)");
            return;
        }
        let version = std::process::Command::new("clang")
            .arg("--version")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default();
        let built_with =
            std::fs::read_to_string(dir.join("probes.bpf.o.clang")).unwrap_or_default();
        if version.trim() != built_with.trim() {
            println!(
                "SKIPPED: the object was built with {:?}, this machine has {version:?}: \
                 other compilers give other bytes",
                built_with.trim()
            );
            return;
        }
        let out = tempfile::tempdir().expect("tempdir");
        let rebuilt = out.path().join("probes.bpf.o");
        let status = std::process::Command::new(dir.join("build.sh"))
            .arg(&rebuilt)
            .status()
            .expect("run build.sh");
        assert!(status.success(), "capture/ebpf/build.sh failed: {status}");
        let rebuilt = std::fs::read(&rebuilt).expect("rebuilt object");
        assert!(
            rebuilt == OBJECT,
            "capture/ebpf/probes.bpf.o is not what its sources build: run capture/ebpf/build.sh and commit the object"
        );
    }

    #[test]
    fn kernel_symbols() {
        let k = Ksyms::parse("ffffffff81000000 T _stext\nffffffff81001000 t tcp_v4_rcv [x]\nzz\n");
        assert_eq!(k.name(0xffff_ffff_8100_1000), "tcp_v4_rcv");
        assert_eq!(k.name(0xffff_ffff_8100_0fff), "_stext");
        assert_eq!(k.name(0x10), "0x10");
        assert_eq!(Ksyms::parse("").name(0x10), "0x10");
    }
}
