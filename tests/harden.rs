//! Issue #10: a root tool that never harms the node, never trusts what it
//! reads, never runs away. One test (or more) per numbered item, named
//! `..._<item>`; the unit tests next to the code carry the same suffix
//! (`cargo nextest run --workspace -E 'test(/_5$/)'` runs item 5's).
//! Tests named `_lab` run `capsnap collect` as root (the lab group runs
//! them one at a time); they say so and skip elsewhere.

mod common;

use common::capsnap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_capsnap"))
}

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples")
}

fn basic() -> String {
    samples().join("basic.pcapng").display().to_string()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn is_root() -> bool {
    // SAFETY: geteuid() cannot fail and touches no memory.
    unsafe { libc_geteuid() == 0 }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(ok.success());
}

#[test]
fn output_to_a_device_a_link_or_a_directory_is_refused_1() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(dir.path().join("target"), &link).unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    for (out, what) in [
        (PathBuf::from("/dev/full"), "is a device"),
        (PathBuf::from("/dev/null"), "is a device"),
        (PathBuf::from("/dev/stdout"), "is a symbolic link"),
        (link.clone(), "is a symbolic link"),
        (dir.path().to_owned(), "is a directory"),
        (fifo.clone(), "is a FIFO"),
    ] {
        let o = capsnap(&[
            "collect",
            "--no-packets",
            "--no-ebpf",
            "-o",
            &out.display().to_string(),
        ]);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{}: {}",
            out.display(),
            stderr(&o)
        );
        assert!(
            stderr(&o).contains(what),
            "{}: {}",
            out.display(),
            stderr(&o)
        );
    }
    assert!(
        std::fs::symlink_metadata("/dev/full")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(!dir.path().join("target").exists());
    // Nothing was staged, nothing left: the link, the FIFO, no temp file.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    // The same rule for query -o.
    let o = capsnap(&["query", &basic(), "select 1", "-o", "/dev/full"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
}

#[test]
fn collect_streams_the_bundle_to_stdout_1_lab() {
    if !is_root() {
        eprintln!("skipped: capsnap collect needs root (CI runs it as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let o = bin()
        .args([
            "collect",
            "--no-packets",
            "--no-ebpf",
            "--duration",
            "0s",
            "-o",
            "-",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(o.stdout[..4], [0x28, 0xb5, 0x2f, 0xfd], "a zstd stream");
    assert!(
        stderr(&o).contains("wrote the bundle to standard output"),
        "{}",
        stderr(&o)
    );
    // A real bundle, manifest first: query reads it from a file.
    let b = dir.path().join("s.capsnap");
    std::fs::write(&b, &o.stdout).unwrap();
    let q = capsnap(&[
        "query",
        &b.display().to_string(),
        "select count(*) > 0 from collection",
    ]);
    assert_eq!(q.status.code(), Some(0), "{}", stderr(&q));
    assert!(String::from_utf8_lossy(&q.stdout).contains("true"));
    // Staging went with the run.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

#[test]
fn the_cache_never_follows_a_planted_link_3() {
    // No HOME, no XDG_CACHE_HOME: the private dir in TMPDIR, which another
    // user made first as a link to a directory root would extract into.
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    let uid = unsafe { libc_geteuid() };
    std::os::unix::fs::symlink(&victim, tmp.path().join(format!("capsnap-{uid}"))).unwrap();
    let o = bin()
        .args([
            "query",
            &samples().join("healthy.capsnap").display().to_string(),
            "select 1",
        ])
        .env_remove("HOME")
        .env_remove("XDG_CACHE_HOME")
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not a directory (a link"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0);
    // Without the plant, the private dir is made 0700 and used.
    std::fs::remove_file(tmp.path().join(format!("capsnap-{uid}"))).unwrap();
    let o = bin()
        .args([
            "query",
            &samples().join("healthy.capsnap").display().to_string(),
            "select host from collection limit 1",
        ])
        .env_remove("HOME")
        .env_remove("XDG_CACHE_HOME")
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(tmp.path().join(format!("capsnap-{uid}")))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn a_query_that_cannot_fit_its_memory_limit_says_so_5() {
    // A cross join shown as a table must be held whole: with 1 MiB it
    // cannot, and says what to do instead.
    let o = capsnap(&[
        "query",
        "--memory-limit",
        "1M",
        &basic(),
        "select a.*, b.* from packets a, packets b, packets c",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("needs more memory than --memory-limit 1 MiB"),
        "{err}"
    );
    assert!(err.contains("--format csv"), "{err}");
    // The same as csv streams.
    let o = capsnap(&[
        "query",
        "--memory-limit",
        "1M",
        "--format",
        "csv",
        &basic(),
        "select a.frame, b.frame from packets a, packets b",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn a_text_file_over_the_memory_limit_is_not_read_5() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("netns/host/proc/net");
    std::fs::create_dir_all(&net).unwrap();
    let line = "  0: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n";
    let mut f = std::fs::File::create(net.join("tcp")).unwrap();
    writeln!(f, "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode").unwrap();
    for _ in 0..(3 << 20) / line.len() {
        f.write_all(line.as_bytes()).unwrap();
    }
    drop(f);
    let d = dir.path().display().to_string();
    let o = capsnap(&[
        "query",
        "--memory-limit",
        "4M",
        &d,
        "select count(*) from sockets",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("limit for a text file (half of --memory-limit); not read"),
        "{}",
        stderr(&o)
    );
    let o = capsnap(&["query", &d, "select count(*) from sockets"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&((3 << 20) / line.len()).to_string()));
}

#[test]
fn a_where_of_five_thousand_or_terms_runs_6() {
    let terms: Vec<String> = (0..5000).map(|i| format!("src_port = {i}")).collect();
    let sql = format!(
        "select count(*) as n from packets where {}",
        terms.join(" or ")
    );
    let o = capsnap(&["query", "--format", "csv", &basic(), &sql]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("n\n"));
}

#[test]
fn a_fifo_input_is_refused_before_any_read_7() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["in.pcap", "in.capsnap", "sockstat"] {
        let fifo = dir.path().join(name);
        mkfifo(&fifo);
        let started = Instant::now();
        let mut child = bin()
            .args(["query", &fifo.display().to_string(), "select 1"])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("{name}: capsnap blocks on a FIFO");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(2), "{name}: {err}");
        assert!(err.contains("is a FIFO"), "{name}: {err}");
    }
    // A FIFO inside a directory is skipped the same way.
    let o = capsnap(&[
        "query",
        &dir.path().display().to_string(),
        "select count(*) from sockstat",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn disk_full_during_collect_keeps_a_bundle_8_lab() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs and capturing need root (CI runs it as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let m = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    if !m.success() {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _umount = Umount(mnt.clone());
    let out = mnt.join("b.capsnap");
    let mut child = bin()
        .args([
            "collect",
            "--no-ebpf",
            "--netns",
            "host",
            "-i",
            "lo",
            "--duration",
            "4s",
            "--snaplen",
            "1500",
        ])
        .arg("-o")
        .arg(&out)
        .env("CAPSNAP_PROGRESS", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Flood lo with 1400-byte datagrams once the window opens: far more
    // than the file system holds.
    let err = BufReader::new(child.stderr.take().unwrap());
    let mut lines = err.lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("window open") {
            break;
        }
    }
    let rest =
        std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let payload = [0x5a; 1400];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        for _ in 0..200 {
            let _ = sock.send_to(&payload, to.local_addr().unwrap());
        }
        let mut buf = [0; 2048];
        to.set_nonblocking(true).unwrap();
        while to.recv(&mut buf).is_ok() {}
    }
    let status = child.wait().unwrap();
    let err = rest.join().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(out.exists(), "no bundle: {err}");
    let b = out.display().to_string();
    let o = capsnap(&[
        "query",
        "--format",
        "csv",
        &b,
        "select status, reason from collection where source = 'packets'",
    ]);
    let got = String::from_utf8_lossy(&o.stdout);
    assert!(
        got.contains("partial") && got.contains("disk space low"),
        "{got}\n{}",
        stderr(&o)
    );
    let o = capsnap(&["query", &b, "select count(*) > 1000 from packets"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("true"),
        "the capture until then is kept"
    );
    // A full disk names the path: query -o into the file system filled up.
    let filler = mnt.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=64"])
        .arg(format!("of={}", filler.display()))
        .stderr(Stdio::null())
        .status();
    let full = mnt.join("out.csv");
    let o = capsnap(&[
        "query",
        "--format",
        "csv",
        &basic(),
        "select * from packets a, packets b",
        "-o",
        &full.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&full.display().to_string()),
        "{}",
        stderr(&o)
    );
    assert!(!full.exists());
}

#[test]
fn a_failed_query_leaves_no_output_file_9() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let o = capsnap(&[
        "query",
        "--format",
        "csv",
        &basic(),
        "select 1; select no_such_column from packets",
        "-o",
        &out.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a partial or temp file is left"
    );
    let o = capsnap(&[
        "query",
        "--format",
        "csv",
        &basic(),
        "select 1 as x",
        "-o",
        &out.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "x\n1\n");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn messages_say_what_is_wrong_10() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    let o = capsnap(&["query", &a.display().to_string(), "select 1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("loop of symbolic links"),
        "{}",
        stderr(&o)
    );
    let dangling = dir.path().join("dangling.pcap");
    std::os::unix::fs::symlink(dir.path().join("gone"), &dangling).unwrap();
    let o = capsnap(&["query", &dangling.display().to_string(), "select 1"]);
    assert!(
        stderr(&o).contains("symbolic link to nothing"),
        "{}",
        stderr(&o)
    );
    let empty = dir.path().join("e.capsnap");
    std::fs::write(&empty, b"").unwrap();
    let o = capsnap(&["query", &empty.display().to_string(), "select 1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("the file is empty (0 bytes)"),
        "{}",
        stderr(&o)
    );
    for sql in ["", "  ", ";"] {
        let o = capsnap(&["query", &basic(), sql]);
        assert_eq!(o.status.code(), Some(2), "{sql:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("no SQL statement given"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn a_closed_pipe_ends_quietly_10() {
    for format in ["csv", "table", "json", "ndjson", "tsv"] {
        let mut child = bin()
            .args(["query", "--format", format, &basic()])
            .arg("select a.*, b.frame from packets a, packets b, packets c")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        drop(out);
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{format}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{format}");
    }
}

/// The fuzz targets (fuzz/, one per parser and the bundle reader) each run
/// for a few seconds on seeds from the samples and the corpus, so a
/// target that no longer builds or crashes at once fails CI; the long runs
/// are `fuzz/run.sh`. Needs the nightly toolchain and cargo-fuzz (.ci/run
/// installs it); says so and skips without them. Costs a dev-profile build
/// of formats (a few minutes cold, seconds warm) and 2 s per target.
#[test]
fn every_fuzz_target_runs_briefly_without_a_crash() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let have = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        eprintln!(
            "skipped: needs `cargo +nightly fuzz` (rustup toolchain install nightly; cargo install cargo-fuzz)"
        );
        return;
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| PathBuf::from(format!("{}-fuzz", d.to_string_lossy())))
        .unwrap_or_else(|| fuzz.join("target"));
    let build = Command::new("cargo")
        .args([
            "+nightly",
            "fuzz",
            "build",
            "--dev",
            "-s",
            "none",
            "--target-dir",
        ])
        .arg(&target_dir)
        .current_dir(&fuzz)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    assert!(build.status.success(), "fuzz build: {}", stderr(&build));
    let list = Command::new("cargo")
        .args(["+nightly", "fuzz", "list"])
        .current_dir(&fuzz)
        .output()
        .unwrap();
    let targets: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(targets.len() >= 25, "{targets:?}");
    let bins = target_dir.join("x86_64-unknown-linux-gnu/debug");
    let seeds = tempfile::tempdir().unwrap();
    let corpus = common::corpus_dir();
    let pick = |name: &str, from: &[PathBuf]| {
        let dir = seeds.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, f) in from.iter().take(40).enumerate() {
            let _ = std::fs::copy(f, dir.join(i.to_string()));
        }
        dir
    };
    let files = |dir: PathBuf| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|r| {
                r.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let captures = pick("capture", &files(corpus.join("pcap")));
    let text = pick("text", &files(corpus.join("proc/node_exporter/proc/net")));
    let events = pick("events", &files(corpus.join("ebpf/bcc")));
    let bundles = pick(
        "bundle",
        &files(samples())
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "capsnap"))
            .collect::<Vec<_>>(),
    );
    for t in &targets {
        let seed = match t.as_str() {
            "capture" | "indexer" | "decode" => &captures,
            "bundle" => &bundles,
            "joiner" | "reader_events" | "reader_tools" => &events,
            _ => &text,
        };
        let work = seeds.path().join(format!("run-{t}"));
        std::fs::create_dir_all(&work).unwrap();
        let o = Command::new(bins.join(t))
            .arg(&work)
            .arg(seed)
            .args([
                "-max_total_time=2",
                "-max_len=65536",
                "-rss_limit_mb=1024",
                "-timeout=10",
            ])
            .arg(format!("-artifact_prefix={}/", work.display()))
            .output()
            .unwrap();
        let log = stderr(&o);
        assert!(
            o.status.success(),
            "fuzz target {t} crashed:\n{}",
            log.lines()
                .filter(|l| !l.starts_with('#') && !l.starts_with("INFO"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
