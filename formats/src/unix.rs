//! Unix sockets of one network namespace: `/proc/net/unix`, and capsnap's
//! own `unix_diag.tsv` (the NETLINK_SOCK_DIAG dump written by
//! `capture::unix_diag::write_tsv`), which says more about the same
//! sockets and supersedes /proc/net/unix in a bundle.
//!
//! /proc/net/unix is printed by `unix_seq_show` (net/unix/af_unix.c):
//!
//! ```text
//! Num       RefCount Protocol Flags    Type St Inode Path
//! %pK: %08X %08X %08X %04X %02X %5lu[ path]
//! ```
//!
//! Facts this parser relies on, checked on Linux 6.18 in a fresh `ip netns`
//! (sockets made with Python, then the file read):
//! - Flags is `__SO_ACCEPTCON` (`1 << 16`, include/linux/net.h) exactly
//!   when `sk_state == TCP_LISTEN`: a listening stream or seqpacket socket
//!   shows `00010000` and St `01`.
//! - Type is `sk_type`: 1 stream, 2 dgram, 5 seqpacket.
//! - St is not `sk_state` but a socket-level state derived from it and from
//!   whether the sock still has a `struct socket` (a file):
//!   01 SS_UNCONNECTED (file, not ESTABLISHED), 02 SS_CONNECTING (no file,
//!   ESTABLISHED: the server end of a connection still waiting in a
//!   listener's accept queue; it showed inode 0 and the listener's path),
//!   03 SS_CONNECTED (file, ESTABLISHED), 04 SS_DISCONNECTING (no file, not
//!   ESTABLISHED: closed but still referenced). A datagram socket that
//!   another one connect(2)ed to shows 03 too (unix_dgram_connect sets
//!   both ends ESTABLISHED).
//! - Inode is `%5lu`, so short inodes are padded with spaces; the path
//!   follows after exactly one space and may itself contain spaces (a
//!   socket bound to "/tmp/p1k/with space" showed so). Abstract names are
//!   printed as "@" + name with every NUL as "@". Unbound sockets have no
//!   path field at all. Old kernels had no Inode column (its header lacks
//!   the word).
//!
//! One state vocabulary serves both sources; it is unix_diag's, which names
//! `sk_state` like `ss` does: `listen`, `established`, `unconnected` (and,
//! rarely, other TCP state names in lower case). From /proc/net/unix:
//! Flags ACCEPTCON gives `listen`, St 03 `established`, St 01
//! `unconnected`; the two states of socks without a file, which unix_diag
//! never lists (it skips sockets whose inode is 0), keep their kernel names
//! `connecting` (02) and `disconnecting` (04).

use crate::rows::{Reader, Rows, V, file_name_is, path_ends_with, text};

#[rustfmt::skip]
crate::artifact_table!("unix_sockets", "one row per unix socket of /proc/net/unix, or of capsnap's unix_diag.tsv (sock_diag: adds peers, queues and what the path leads to now)", [
    ("inode", U64, true, "socket inode, as in /proc/PID/fd `socket:[N]`; 0 for the server end of a connection not yet accept(2)ed; null from old kernels without the column"),
    ("type", Dict, true, "stream, dgram, seqpacket (unknown for other numbers)"),
    ("state", Dict, true, "listen, established, unconnected; from /proc/net/unix also connecting (not yet accepted) and disconnecting (closed, still referenced)"),
    ("listening", Bool, true, "whether the socket is listening (state = listen)"),
    ("path", Str, true, "bound name: a filesystem path as bound (possibly relative), or an abstract name as @name with NULs as @; null when unbound. Accepted sockets share their listener's name"),
    ("peer", U64, true, "inode of the connected peer (unix_diag only; 0 for a client whose connection waits in an accept queue)"),
    ("rqueue", U64, true, "unix_diag: for a listener, connections waiting in the accept queue; otherwise unread bytes (dgram: size of the next datagram)"),
    ("wqueue", U64, true, "unix_diag: for a listener, its backlog limit; otherwise write memory in flight (skb truesize)"),
    ("refcount", U64, true, "references held on the sock (/proc/net/unix only)"),
    ("bound_dev", U64, true, "st_dev of the socket file bind(2) created (unix_diag UNIX_DIAG_VFS)"),
    ("bound_ino", U64, true, "inode of the socket file bind(2) created, truncated to 32 bits by the kernel (UNIX_DIAG_VFS)"),
    ("path_now_dev", U64, true, "st_dev of what the path led to at collection time (stat, symlinks followed)"),
    ("path_now_ino", U64, true, "st_ino of what the path led to at collection time"),
    ("path_now_kind", Dict, true, "what the path led to at collection: socket, file, directory, fifo, char-device, block-device, symlink, unknown; null when nothing was there or it was not checked"),
    ("replaced", Bool, true, "true when the path no longer leads to this socket's file (unlinked, or re-bound by another socket); false when it does; null when unknown or not applicable (unbound, abstract, relative)"),
]);

/// Reads /proc/net/unix; a bundle's unix_diag.tsv takes its place.
pub const PROC_READER: Reader = Reader {
    table: &TABLE,
    what: "/proc/net/unix",
    claims: |path, head| file_name_is(path, &["unix"]) || is_proc_header(&first_line(head)),
    // netns/<label>/proc/net/unix -> netns/<label>/unix_diag.tsv
    superseded_by: &["../../unix_diag.tsv"],
    parse: parse_proc,
};

/// Reads capsnap's unix_diag.tsv.
pub const DIAG_READER: Reader = Reader {
    table: &TABLE,
    what: "unix_diag.tsv (capsnap's sock_diag dump of unix sockets)",
    claims: |path, head| {
        file_name_is(path, &["unix_diag.tsv"])
            || path_ends_with(path, "unix_diag.tsv")
            || head.starts_with(b"inode\tkind\tstate\tpath\t")
    },
    superseded_by: &[],
    parse: parse_diag,
};

fn first_line(head: &[u8]) -> std::borrow::Cow<'_, str> {
    let end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    String::from_utf8_lossy(head.get(..end).unwrap_or_default())
}

/// `Num       RefCount Protocol Flags    Type St Inode Path`.
fn is_proc_header(line: &str) -> bool {
    let mut w = line.split_whitespace();
    w.next() == Some("Num") && w.next() == Some("RefCount") && w.next() == Some("Protocol")
}

/// `__SO_ACCEPTCON`, include/linux/net.h.
const SO_ACCEPTCON: u64 = 1 << 16;

fn type_name(t: u64) -> &'static str {
    // include/linux/net.h `enum sock_type`.
    match t {
        1 => "stream",
        2 => "dgram",
        5 => "seqpacket",
        _ => "unknown",
    }
}

/// The St column in the shared vocabulary (see the module doc).
fn proc_state(st: u64) -> &'static str {
    match st {
        1 => "unconnected",
        2 => "connecting",
        3 => "established",
        4 => "disconnecting",
        _ => "unknown",
    }
}

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

/// The next space-separated token of `s` and what follows it (starting
/// with the separating space, so a path keeps its own spaces).
fn token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches(' ');
    if s.is_empty() {
        return None;
    }
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    Some((s.get(..end)?, s.get(end..)?))
}

fn parse_proc(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let text = text(input);
    let mut header = false;
    let mut has_inode = true;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if is_proc_header(line) {
            header = true;
            has_inode = line.split_whitespace().any(|w| w == "Inode");
            continue;
        }
        match proc_line(line, has_inode) {
            Ok(s) => {
                let listening = s.flags & SO_ACCEPTCON != 0;
                let state = if listening {
                    "listen"
                } else {
                    proc_state(s.st)
                };
                rows.push(&[
                    V::from(s.inode),
                    V::Str(type_name(s.kind)),
                    V::Str(state),
                    V::Bool(listening),
                    V::from(s.path),
                    V::Null,
                    V::Null,
                    V::Null,
                    V::U64(s.refcount),
                    V::Null,
                    V::Null,
                    V::Null,
                    V::Null,
                    V::Null,
                    V::Null,
                ]);
            }
            Err(reason) => rows.skip(n + 1, reason),
        }
    }
    if !header && rows.is_empty() {
        return Err(
            "no `Num RefCount Protocol Flags Type St Inode Path` header and no socket line".into(),
        );
    }
    Ok(())
}

struct ProcLine<'a> {
    refcount: u64,
    flags: u64,
    kind: u64,
    st: u64,
    inode: Option<u64>,
    path: Option<&'a str>,
}

fn proc_line(line: &str, has_inode: bool) -> Result<ProcLine<'_>, String> {
    let short = || format!("line ends early: {line:?}");
    let (num, rest) = token(line).ok_or_else(short)?;
    if !num.ends_with(':') {
        return Err(format!("no `address:` at the start of {line:?}"));
    }
    let mut fields = [0u64; 5];
    let mut rest = rest;
    for (i, (what, max)) in [
        ("RefCount", 8),
        ("Protocol", 8),
        ("Flags", 8),
        ("Type", 4),
        ("St", 2),
    ]
    .iter()
    .enumerate()
    {
        let (t, r) = token(rest).ok_or_else(short)?;
        fields[i] = hex(t, *max).ok_or_else(|| format!("bad {what} {t:?} in {line:?}"))?;
        rest = r;
    }
    let inode = if has_inode {
        let (t, r) = token(rest).ok_or_else(short)?;
        rest = r;
        Some(dec(t).ok_or_else(|| format!("bad Inode {t:?} in {line:?}"))?)
    } else {
        None
    };
    // The path is everything after the one space that follows the inode.
    let path = rest.strip_prefix(' ').filter(|p| !p.is_empty());
    Ok(ProcLine {
        refcount: fields[0],
        flags: fields[2],
        kind: fields[3],
        st: fields[4],
        inode,
        path,
    })
}

/// Columns of unix_diag.tsv, in the order capsnap writes them. The reader
/// finds them by the header, so columns added later do not break it.
pub const DIAG_COLUMNS: [&str; 13] = [
    "inode",
    "kind",
    "state",
    "path",
    "bound_dev",
    "bound_ino",
    "peer",
    "rqueue",
    "wqueue",
    "path_now_dev",
    "path_now_ino",
    "path_now_kind",
    "replaced",
];

fn parse_diag(input: &[u8], rows: &mut Rows) -> Result<(), String> {
    let text = text(input);
    let mut lines = text.lines().enumerate();
    let Some((_, header)) = lines.next() else {
        return Err("empty: no unix_diag.tsv header".into());
    };
    let names: Vec<&str> = header.split('\t').collect();
    let mut at = [None::<usize>; DIAG_COLUMNS.len()];
    for (slot, column) in at.iter_mut().zip(DIAG_COLUMNS) {
        *slot = names.iter().position(|n| *n == column);
    }
    if at[0].is_none() || at[1].is_none() || at[2].is_none() {
        return Err(format!(
            "not a unix_diag.tsv header (inode, kind, state ...): {header:?}"
        ));
    }
    let mut path = Vec::new();
    for (n, line) in lines {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != names.len() {
            rows.skip(
                n + 1,
                format!("{} fields for {} columns", fields.len(), names.len()),
            );
            continue;
        }
        let field = |i: usize| {
            at[i]
                .and_then(|p| fields.get(p).copied())
                .filter(|f| !f.is_empty())
        };
        // Empty means none; anything else must be a number.
        let mut bad = None;
        let mut num = |i: usize| match field(i) {
            None => None,
            Some(f) => {
                let v = dec(f);
                if v.is_none() {
                    bad = Some(DIAG_COLUMNS[i]);
                }
                v
            }
        };
        let inode = num(0);
        let bound_dev = num(4);
        let bound_ino = num(5);
        let peer = num(6);
        let rqueue = num(7);
        let wqueue = num(8);
        let path_now_dev = num(9);
        let path_now_ino = num(10);
        let replaced = match field(12) {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => {
                bad = Some("replaced");
                None
            }
        };
        if inode.is_none() && bad.is_none() {
            bad = Some("inode");
        }
        if let Some(column) = bad {
            rows.skip(n + 1, format!("bad {column} in {line:?}"));
            continue;
        }
        let state = field(2);
        path.clear();
        let path_text = field(3).map(|p| {
            unescape(p, &mut path);
            String::from_utf8_lossy(&path)
        });
        rows.push(&[
            V::from(inode),
            V::from(field(1)),
            V::from(state),
            state.map_or(V::Null, |s| V::Bool(s == "listen")),
            V::from(path_text.as_deref()),
            V::from(peer),
            V::from(rqueue),
            V::from(wqueue),
            V::Null,
            V::from(bound_dev),
            V::from(bound_ino),
            V::from(path_now_dev),
            V::from(path_now_ino),
            V::from(field(11)),
            replaced.map_or(V::Null, V::Bool),
        ]);
    }
    Ok(())
}

/// Undoes `write_tsv`'s escaping: `\\`, `\t`, `\n`, `\r` and `\xHH` (any
/// byte); a backslash followed by anything else is kept as it is.
fn unescape(field: &str, out: &mut Vec<u8>) {
    let bytes = field.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let (value, used) = match bytes.get(i + 1) {
            Some(b'\\') => (b'\\', 2),
            Some(b't') => (b'\t', 2),
            Some(b'n') => (b'\n', 2),
            Some(b'r') => (b'\r', 2),
            Some(b'x') => match bytes
                .get(i + 2..i + 4)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| hex(h, 2))
            {
                Some(v) => (v as u8, 4),
                None => (b'\\', 1),
            },
            _ => (b'\\', 1),
        };
        out.push(value);
        i += used;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rows::{Origin, read};
    use arrow_array::RecordBatch;
    use arrow_array::cast::AsArray;

    use crate::rows::testing::strings;

    use crate::rows::testing::u64s;

    fn bools(batch: &RecordBatch, name: &str) -> Vec<Option<bool>> {
        batch
            .column_by_name(name)
            .unwrap()
            .as_boolean()
            .iter()
            .collect()
    }

    fn opt(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|s| s.map(str::to_owned)).collect()
    }

    /// Taken on Linux 6.18 in a fresh netns: a stream listener on
    /// /tmp/p1k/l.sock with one connection not yet accepted (the row with
    /// inode 0), a seqpacket listener on a path with a space, an unbound
    /// dgram socket, the connected client, and an abstract dgram socket
    /// bound to "\0abs\0x".
    pub(crate) const PROC: &[u8] = b"Num       RefCount Protocol Flags    Type St Inode Path
00000000bc85b2d2: 00000003 00000000 00000000 0001 02     0 /tmp/p1k/l.sock
00000000b872ece3: 00000002 00000000 00010000 0001 01 15885169 /tmp/p1k/l.sock
0000000025236b9d: 00000002 00000000 00010000 0005 01 15885173 /tmp/p1k/with space
000000005bf28df7: 00000002 00000000 00000000 0002 01 15885172
000000005aab9965: 00000003 00000000 00000000 0001 03 15885170
0000000055b4575c: 00000002 00000000 00000000 0002 01 15885171 @abs@x
";

    /// As `write_tsv` writes it: a listener whose path was re-bound by
    /// another socket (replaced), that other listener, an accepted
    /// connection with its client, an abstract name, and a path with a tab
    /// and a byte that is not UTF-8.
    pub(crate) const DIAG: &[u8] = b"inode\tkind\tstate\tpath\tbound_dev\tbound_ino\tpeer\trqueue\twqueue\tpath_now_dev\tpath_now_ino\tpath_now_kind\treplaced
1001\tstream\tlisten\t/run/app.sock\t64768\t5001\t\t3\t128\t64768\t5002\tsocket\ttrue
1002\tstream\tlisten\t/run/app.sock\t64768\t5002\t\t0\t4096\t64768\t5002\tsocket\tfalse
1003\tstream\testablished\t/run/app.sock\t64768\t5002\t1004\t0\t0\t64768\t5002\tsocket\tfalse
1004\tstream\testablished\t\t\t\t1003\t0\t768\t\t\t\t
1005\tdgram\tunconnected\t@abs@x\t\t\t\t0\t0\t\t\t\t
1006\tseqpacket\tlisten\t/tmp/a\\tb\\xff\t64768\t5003\t\t0\t5\t\t\t\ttrue
";

    #[test]
    fn proc_lines_give_type_state_listening_and_paths_with_spaces() {
        let (batch, skipped, _) = read(
            &PROC_READER,
            PROC,
            Origin::of("b", None, "netns/host/proc/net/unix"),
        )
        .unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(
            u64s(&batch, "inode"),
            [
                Some(0),
                Some(15885169),
                Some(15885173),
                Some(15885172),
                Some(15885170),
                Some(15885171)
            ]
        );
        assert_eq!(
            strings(&batch, "type"),
            opt(&[
                Some("stream"),
                Some("stream"),
                Some("seqpacket"),
                Some("dgram"),
                Some("stream"),
                Some("dgram")
            ])
        );
        assert_eq!(
            strings(&batch, "state"),
            opt(&[
                Some("connecting"),
                Some("listen"),
                Some("listen"),
                Some("unconnected"),
                Some("established"),
                Some("unconnected")
            ])
        );
        assert_eq!(
            bools(&batch, "listening"),
            [
                Some(false),
                Some(true),
                Some(true),
                Some(false),
                Some(false),
                Some(false)
            ]
        );
        assert_eq!(
            strings(&batch, "path"),
            opt(&[
                Some("/tmp/p1k/l.sock"),
                Some("/tmp/p1k/l.sock"),
                Some("/tmp/p1k/with space"),
                None,
                None,
                Some("@abs@x")
            ])
        );
        assert_eq!(u64s(&batch, "refcount")[0], Some(3));
        assert_eq!(u64s(&batch, "peer"), [None; 6]);
        assert_eq!(bools(&batch, "replaced"), [None; 6]);
    }

    #[test]
    fn diag_rows_keep_peers_queues_and_the_replaced_verdict() {
        let (batch, skipped, _) = read(
            &DIAG_READER,
            DIAG,
            Origin::of("b", None, "netns/host/unix_diag.tsv"),
        )
        .unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(batch.num_rows(), 6);
        assert_eq!(
            bools(&batch, "listening"),
            [
                Some(true),
                Some(true),
                Some(false),
                Some(false),
                Some(false),
                Some(true)
            ]
        );
        assert_eq!(
            bools(&batch, "replaced"),
            [Some(true), Some(false), Some(false), None, None, Some(true)]
        );
        assert_eq!(
            u64s(&batch, "peer"),
            [None, None, Some(1004), Some(1003), None, None]
        );
        assert_eq!(u64s(&batch, "rqueue")[0], Some(3));
        assert_eq!(u64s(&batch, "wqueue")[0], Some(128));
        assert_eq!(u64s(&batch, "bound_ino")[0], Some(5001));
        assert_eq!(u64s(&batch, "path_now_ino")[0], Some(5002));
        assert_eq!(strings(&batch, "path_now_kind")[3], None);
        assert_eq!(
            strings(&batch, "path"),
            opt(&[
                Some("/run/app.sock"),
                Some("/run/app.sock"),
                Some("/run/app.sock"),
                None,
                Some("@abs@x"),
                Some("/tmp/a\tb\u{fffd}"),
            ])
        );
        assert_eq!(u64s(&batch, "refcount"), [None; 6]);
    }

    #[test]
    fn the_bundle_files_agree_on_type_and_state() {
        // A real bundle's netns/host/proc/net/unix and unix_diag.tsv.
        let proc = b"Num       RefCount Protocol Flags    Type St Inode Path
000000004e5734d1: 00000003 00000000 00000000 0001 03  1677
00000000609947a0: 00000003 00000000 00000000 0001 03  1678
";
        let diag = b"inode\tkind\tstate\tpath\tbound_dev\tbound_ino\tpeer\trqueue\twqueue\tpath_now_dev\tpath_now_ino\tpath_now_kind\treplaced
1677\tstream\testablished\t\t\t\t1678\t0\t0\t\t\t\t
1678\tstream\testablished\t\t\t\t1677\t0\t0\t\t\t\t
";
        let (a, _, _) = read(
            &PROC_READER,
            proc,
            Origin::of("b", None, "netns/host/proc/net/unix"),
        )
        .unwrap();
        let (b, _, _) = read(
            &DIAG_READER,
            diag,
            Origin::of("b", None, "netns/host/unix_diag.tsv"),
        )
        .unwrap();
        assert_eq!(u64s(&a, "inode"), u64s(&b, "inode"));
        for column in ["type", "state", "path"] {
            assert_eq!(strings(&a, column), strings(&b, column), "{column}");
        }
        assert_eq!(bools(&a, "listening"), bools(&b, "listening"));
        assert_eq!(u64s(&b, "peer"), [Some(1678), Some(1677)]);
    }

    #[test]
    fn damaged_lines_are_skipped() {
        let proc = b"Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001
0000000000000000: 00000002 00000000 0001000G 0001 01 10 /x
0000000000000000: 00000002 00000000 00010000 0001 01 ten /x
0000000000000000: 00000002 00000000 00010000 0001 01 11 /ok
";
        let (batch, skipped, total) =
            read(&PROC_READER, proc, Origin::of("b", None, "proc/net/unix")).unwrap();
        assert_eq!((batch.num_rows(), total), (1, 3));
        assert_eq!(
            skipped.iter().map(|s| s.line).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        let diag = b"inode\tkind\tstate\tpath\tbound_dev\tbound_ino\tpeer\trqueue\twqueue\tpath_now_dev\tpath_now_ino\tpath_now_kind\treplaced
x\tstream\tlisten\t\t\t\t\t\t\t\t\t\t
1\tstream\tlisten\t\t\t\t\t\t\t\t\t\tmaybe
2\tstream
3\tstream\tlisten\t\t\t\t\t\t\t\t\t\t
";
        let (batch, _, total) =
            read(&DIAG_READER, diag, Origin::of("b", None, "unix_diag.tsv")).unwrap();
        assert_eq!((batch.num_rows(), total), (1, 3));
        assert!(
            read(
                &DIAG_READER,
                b"hello\tworld\n",
                Origin::of("b", None, "unix_diag.tsv")
            )
            .is_err()
        );
        assert!(
            read(
                &PROC_READER,
                b"hello world\n",
                Origin::of("b", None, "proc/net/unix")
            )
            .is_err()
        );
    }

    #[test]
    fn claims_and_supersession() {
        assert!((PROC_READER.claims)("netns/pod_a_b/proc/net/unix", b""));
        assert!((PROC_READER.claims)(
            "saved.txt",
            b"Num       RefCount Protocol Flags    Type St Path\n"
        ));
        assert!(!(PROC_READER.claims)(
            "proc/net/unix_diag.tsv",
            b"inode\tkind\tstate\tpath\t"
        ));
        assert!((DIAG_READER.claims)("netns/host/unix_diag.tsv", b""));
        assert!((DIAG_READER.claims)(
            "copy.tsv",
            b"inode\tkind\tstate\tpath\tbound_dev"
        ));
        assert!(!(DIAG_READER.claims)(
            "proc/net/unix",
            b"Num       RefCount"
        ));
        assert_eq!(PROC_READER.superseded_by, ["../../unix_diag.tsv"]);
    }

    #[test]
    fn unescape_undoes_write_tsv() {
        for (field, want) in [
            ("plain", &b"plain"[..]),
            ("a\\\\b", b"a\\b"),
            ("\\t\\n\\r", b"\t\n\r"),
            ("\\x00\\x7f\\xff", b"\x00\x7f\xff"),
            ("trailing\\", b"trailing\\"),
            ("\\x4", b"\\x4"),
            ("\\q", b"\\q"),
        ] {
            let mut out = Vec::new();
            unescape(field, &mut out);
            assert_eq!(out, want, "{field:?}");
        }
    }

    #[test]
    fn corpus_samples_load() {
        let dir = crate::testing::corpus().join("proc/prometheus-procfs/proc/net");
        for (name, inode) in [("unix", Some(3442596)), ("unix_without_inode", None)] {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            let path = format!("proc/net/{name}");
            assert!((PROC_READER.claims)(&path, &bytes), "{name}");
            let (batch, skipped, _) =
                read(&PROC_READER, &bytes, Origin::of("c", None, &path)).unwrap();
            assert!(skipped.is_empty(), "{name}: {skipped:?}");
            assert_eq!(batch.num_rows(), 5, "{name}");
            assert_eq!(u64s(&batch, "inode")[0], inode, "{name}");
            assert_eq!(
                strings(&batch, "path"),
                opt(&[
                    Some("/var/run/postgresql/.s.PGSQL.5432"),
                    Some("/run/udev/control"),
                    Some("/dev/log"),
                    Some("/var/run/postgresql/.s.PGSQL.5432"),
                    None,
                ]),
                "{name}"
            );
            assert_eq!(
                strings(&batch, "state"),
                opt(&[
                    Some("listen"),
                    Some("listen"),
                    Some("unconnected"),
                    Some("established"),
                    Some("established")
                ])
            );
            assert_eq!(strings(&batch, "type")[1].as_deref(), Some("seqpacket"));
        }
    }
}
