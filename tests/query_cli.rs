//! `capsnap query` and `capsnap tables` driven as a user would, on the
//! real capture shipped in samples/ (see samples/make-basic-capture.sh):
//! one served HTTP request to port 80, one connect refused on port 81, one
//! connect to port 82 whose SYNs were dropped.

mod common;

use common::capsnap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn sample() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("samples/basic.pcapng")
        .display()
        .to_string()
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn counts_rsts_in_the_sample() {
    let out = capsnap(&[
        "query",
        "--format",
        "csv",
        &sample(),
        "select count(*) as n from packets where rst",
    ]);
    assert_eq!(stdout(&out), "n\n1\n");
}

#[test]
fn flows_name_each_connection_outcome() {
    let sql = "select dst_port, conn_state, history, syn_retries, orig_packets, resp_packets from flows where proto = 'tcp' order by dst_port";
    let out = capsnap(&["query", "--format", "csv", &sample(), sql]);
    assert_eq!(
        stdout(&out),
        "dst_port,conn_state,history,syn_retries,orig_packets,resp_packets\n\
         80,SF,ShADadfF,0,6,6\n\
         81,REJ,Sr,0,1,1\n\
         82,S0,S,3,4,0\n"
    );
}

#[test]
fn labelled_inputs_become_capture_points() {
    let s = sample();
    let sql = "select capture, count(*) as n from packets where src_ip = '10.77.0.1' and syn group by capture order by capture";
    let out = capsnap(&[
        "query",
        "--format",
        "csv",
        &format!("host={s}"),
        &format!("pod/web={s}"),
        sql,
    ]);
    assert_eq!(stdout(&out), "capture,n\nhost,6\npod/web,6\n");
}

#[test]
fn default_label_is_the_file_stem() {
    let out = capsnap(&[
        "query",
        "--format",
        "csv",
        &sample(),
        "select distinct capture, ifname from packets",
    ]);
    assert_eq!(stdout(&out), "capture,ifname\nbasic,veth-c\n");
}

#[test]
fn empty_result_still_prints_the_header() {
    let sql = "select frame, src_ip from packets where dst_port = 9";
    assert_eq!(
        stdout(&capsnap(&["query", "--format", "csv", &sample(), sql])),
        "frame,src_ip\n"
    );
    let table = stdout(&capsnap(&["query", &sample(), sql]));
    assert!(table.contains("| frame | src_ip |"), "{table}");
    assert_eq!(
        stdout(&capsnap(&["query", "--format", "json", &sample(), sql])).trim(),
        "[]"
    );
}

#[test]
fn json_ndjson_and_parquet_outputs() {
    let sql = "select frame, ts, rst, capture from packets where rst";
    let json: serde_json::Value = serde_json::from_str(&stdout(&capsnap(&[
        "query",
        "--format",
        "json",
        &sample(),
        sql,
    ])))
    .unwrap();
    assert_eq!(json[0]["rst"], true);
    assert_eq!(json[0]["capture"], "basic");
    assert!(json[0]["ts"].as_str().unwrap().starts_with("20"), "{json}");
    let nd = stdout(&capsnap(&[
        "query",
        "--format",
        "ndjson",
        &sample(),
        "select frame from packets where syn limit 3",
    ]));
    assert_eq!(nd.lines().count(), 3);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.parquet");
    let out = capsnap(&[
        "query",
        "--format",
        "parquet",
        "-o",
        &file.display().to_string(),
        &sample(),
        sql,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&file).unwrap();
    assert!(
        bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"),
        "not a parquet file"
    );
}

#[test]
fn sql_from_a_file_and_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("q.sql");
    std::fs::write(&f, "select count(*) as n from packets where fin;").unwrap();
    let out = capsnap(&[
        "query",
        "--format",
        "csv",
        "-f",
        &f.display().to_string(),
        &sample(),
    ]);
    assert_eq!(stdout(&out), "n\n2\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_capsnap"))
        .args(["query", "--format", "csv", &sample()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"select count(*) as n from packets where rst;")
        .unwrap();
    assert_eq!(stdout(&child.wait_with_output().unwrap()), "n\n1\n");
}

#[test]
fn file_cut_in_a_record_keeps_complete_packets_and_warns_with_offset() {
    let full = std::fs::read(sample()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcapng");
    // Cut the last enhanced packet block (type 6) in half; the sample is
    // little-endian pcapng: type (4 bytes), total length (4 bytes), ...
    let (mut at, mut last_epb) = (0, None);
    while at + 8 <= full.len() {
        let kind = u32::from_le_bytes(full[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(full[at + 4..at + 8].try_into().unwrap()) as usize;
        if kind == 6 {
            last_epb = Some((at, len));
        }
        at += len;
    }
    let (at, len) = last_epb.expect("sample has packets");
    std::fs::write(&cut, &full[..at + len / 2]).unwrap();
    let all = stdout(&capsnap(&[
        "query",
        "--format",
        "csv",
        &sample(),
        "select count(*) as n from packets",
    ]));
    let out = capsnap(&[
        "query",
        "--format",
        "csv",
        &cut.display().to_string(),
        "select count(*) as n from packets",
    ]);
    let n_all: u64 = all.lines().nth(1).unwrap().parse().unwrap();
    assert_eq!(stdout(&out), format!("n\n{}\n", n_all - 1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning")
            && err.contains("cut.pcapng")
            && err.contains("byte offset")
            && err.contains("middle of a block"),
        "{err}"
    );
}

#[test]
fn corrupt_file_fails_with_its_name_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("notes.pcap");
    std::fs::write(&bad, b"this is not a capture file at all").unwrap();
    let out = capsnap(&["query", &bad.display().to_string(), "select 1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("capsnap: ")
            && err.contains("notes.pcap")
            && err.contains("not a pcap or pcapng file"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(
        err.matches("not a pcap or pcapng file").count(),
        1,
        "cause printed twice: {err}"
    );
}

#[test]
fn missing_input_and_bad_sql_exit_2() {
    let out = capsnap(&["query", "/nonexistent/x.pcap", "select 1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "/nonexistent/x.pcap does not exist (inputs come first, then the SQL in quotes)"
        ),
        "{err}"
    );
    // The hint about the SQL is query's alone: the other commands take no SQL.
    for command in ["detect", "report", "export"] {
        let mut args = vec![command, "/nonexistent/x.pcap"];
        if command == "export" {
            args.extend(["--to", "/nonexistent/dataset"]);
        }
        let out = capsnap(&args);
        assert_eq!(out.status.code(), Some(2), "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("/nonexistent/x.pcap does not exist"),
            "{command}: {err}"
        );
        assert!(!err.contains("SQL"), "{command}: {err}");
    }
    let out = capsnap(&["query", &sample(), "select nope from packets"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("No field named nope").count(), 1, "{err}");
}

#[test]
fn closed_pipe_exits_quietly() {
    // Enough rows that capsnap is still writing when `head` goes away.
    let sql = "select a.frame, b.frame, c.frame from packets a, packets b, packets c";
    let out = Command::new("bash")
        .args([
            "-c",
            "set -o pipefail; \"$0\" query --format csv \"$1\" \"$2\" | head -c 100 >/dev/null",
            env!("CARGO_BIN_EXE_capsnap"),
            &sample(),
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tables_lists_columns_and_types() {
    let out = stdout(&capsnap(&["tables"]));
    for want in [
        "packets — one row per captured frame",
        "flows — ",
        "rst",
        "Boolean",
        "conn_state",
        "Timestamp",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let out = stdout(&capsnap(&["tables", &sample()]));
    assert!(out.contains("(capture basic)"), "{out}");
}

/// A packets scan under a join builds rows only for frames the join's
/// dynamic filter lets through (and a filter it was given): the result
/// must be the same as the plain filter's, frame for frame.
#[test]
fn a_join_on_packets_gives_the_rows_of_a_plain_filter() {
    let sql = "create table f as select src_ip, src_port, dst_ip, dst_port from flows where dst_port in (81, 82); \
               select p.frame, p.src_port, p.dst_port, p.tcp_flags from packets p \
               join f on least(p.src_port, p.dst_port) = least(f.src_port, f.dst_port) \
                     and greatest(p.src_port, p.dst_port) = greatest(f.src_port, f.dst_port) \
               where p.proto = 'tcp' order by p.frame";
    let plain = "select frame, src_port, dst_port, tcp_flags from packets \
                 where proto = 'tcp' and (src_port in (81, 82) or dst_port in (81, 82)) order by frame";
    let joined = stdout(&capsnap(&["query", "--format", "csv", &sample(), sql]));
    let want = stdout(&capsnap(&["query", "--format", "csv", &sample(), plain]));
    // The first statement prints an empty result; the second the rows.
    assert!(joined.ends_with(&want), "join:\n{joined}\nplain:\n{want}");
    assert_eq!(want.lines().count(), 1 + 6, "{want}");
}

/// The join's dynamic filter reaches the packets scan (it was computed
/// only once the scan listed its filters as its expressions): a join on
/// `capture` skips the capture file the other side does not name, and the
/// join's probe side gets the frames of one file, not of both.
#[test]
fn a_join_on_capture_reads_only_the_capture_it_names() {
    let one = stdout(&capsnap(&[
        "query",
        "--format",
        "csv",
        &format!("a={}", sample()),
        "select count(*) from packets",
    ]));
    let frames: u64 = one.lines().nth(1).unwrap().parse().unwrap();
    let sql = "explain analyze select count(*) from packets p \
               join (select 'b' as capture) f on p.capture = f.capture";
    let plan = stdout(&capsnap(&[
        "query",
        "--format",
        "csv",
        &format!("a={}", sample()),
        &format!("b={}", sample()),
        sql,
    ]));
    let join = plan
        .split("HashJoinExec")
        .nth(1)
        .unwrap_or_else(|| panic!("no hash join: {plan}"));
    let probed = join
        .split(" input_rows=")
        .nth(1)
        .and_then(|s| s.split([',', ']']).next())
        .unwrap_or_else(|| panic!("no input_rows: {join}"));
    assert_eq!(probed.trim(), frames.to_string(), "{plan}");
}

/// `resets` is built in the flows pass, its chunks decoded by several
/// threads: every RST's provoking packet must be what a plain query over
/// `packets` finds (the last packet its receiver sent in the flow before
/// it, not an RST), also where that packet is in an earlier chunk (2 MiB)
/// than the RST. A generated NAT capture of 60,000 packets spans four.
#[test]
fn resets_name_the_packet_a_plain_query_over_packets_finds() {
    let generator = common::build_dir().join("examples/gen_nat_pair");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(&generator)
        .arg(dir.path())
        .arg("60000")
        .output()
        .expect("running gen_nat_pair (built with the tests)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let node = format!("host={}", dir.path().join("node.pcap").display());
    let rows = |sql: &str| {
        let out = capsnap(&["query", "--format", "csv", &node, sql]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let from_resets = rows(
        "select frame, src_ip, src_port, prev_frame, prev_seq, prev_tcp_flags from resets order by frame",
    );
    let from_packets = rows(
        "select r.frame, r.src_ip, r.src_port, p.frame as prev_frame, p.seq as prev_seq, p.tcp_flags as prev_tcp_flags
         from packets r
         left join (select r.frame as rst, max(p.frame) as prev
                    from packets r join packets p
                      on p.proto = 'tcp' and not p.rst and p.frame < r.frame
                     and p.src_ip = r.dst_ip and p.src_port = r.dst_port
                     and p.dst_ip = r.src_ip and p.dst_port = r.src_port
                    where r.proto = 'tcp' and r.rst group by r.frame) m on m.rst = r.frame
         left join packets p on p.frame = m.prev
         where r.proto = 'tcp' and r.rst order by r.frame",
    );
    let rsts = from_resets.lines().count() - 1;
    assert!(rsts > 20, "the generator wrote RSTs: {from_resets}");
    let provoked = from_resets.lines().filter(|l| !l.ends_with(",,")).count() - 1;
    assert!(
        provoked > rsts / 2,
        "most RSTs answer a packet: {from_resets}"
    );
    assert_eq!(from_resets, from_packets);
}

/// A stderr that is gone (`2>&1 | head -1` after head exited) loses the
/// warnings, not the run: the query's rows still come out and the exit
/// code is the query's, not a panic's 101.
#[test]
fn a_closed_stderr_does_not_end_the_run() {
    let dir = tempfile::tempdir().unwrap();
    // Cut inside the last record: read with a warning on stderr.
    let whole = std::fs::read(sample()).unwrap();
    let cut = dir.path().join("cut.pcapng");
    std::fs::write(&cut, &whole[..whole.len() - 7]).unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_capsnap"))
        .args(["query", "--format", "csv"])
        .arg(&cut)
        .arg("select count(*) as n from packets")
        .stderr(writer)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("n\n"),
        "{out:?}"
    );
}
