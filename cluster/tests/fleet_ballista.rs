//! `--engine ballista://`: the local Ballista cluster of bench/ballista.sh
//! (a scheduler and two executors, separate processes) gives the same
//! findings for every detection, and the same fleet query answers, as
//! DataFusion in this process, over a dataset of the kept samples and a few
//! generated nodes.
//!
//! It lives in this package so that `cargo nextest run --workspace`
//! builds the scheduler and executor binaries it starts (Cargo builds a
//! package's binaries for its own integration tests only); `capsnap` and
//! the fleet generator are built by the same command, in the same folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The folder the binaries under test were built in (`target/debug`).
fn build_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_capsnap-ballista-scheduler"))
        .parent()
        .expect("the binary is in a folder")
        .to_owned()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cluster/ is in the repository")
        .to_owned()
}

fn capsnap(args: &[&str]) -> Output {
    let bin = build_dir().join("capsnap");
    assert!(
        bin.is_file(),
        "{} is missing: cargo nextest run --workspace builds it",
        bin.display()
    );
    // A Ballista job can hang without an error reaching the client (the
    // scheduler only logs it: see analyze/src/fleet/engine.rs on the
    // adaptive planner): a bounded run fails instead of hanging CI, and
    // shows what the cluster logged.
    let out = Command::new("timeout")
        .arg(CAPSNAP_TIMEOUT)
        .arg(bin)
        .args(args)
        .output()
        .expect("running capsnap under timeout(1)");
    assert_ne!(
        out.status.code(),
        Some(124),
        "capsnap {args:?} did not finish in {CAPSNAP_TIMEOUT}: a Ballista job hung; the cluster logged:\n{}",
        cluster_errors()
    );
    out
}

/// The folder of the running cluster's logs.
static CLUSTER_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The WARN and ERROR lines of the cluster's logs (the executors log
/// through cluster/src/lib.rs).
fn cluster_errors() -> String {
    let Some(dir) = CLUSTER_DIR.get() else {
        return "(no cluster)".into();
    };
    let mut out = String::new();
    for log in ["scheduler.log", "executor1.log", "executor2.log"] {
        let text = std::fs::read_to_string(dir.join(log)).unwrap_or_default();
        for line in text
            .lines()
            .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
        {
            out.push_str(&format!(
                "{log}: {}\n",
                line.chars().take(2000).collect::<String>()
            ));
        }
    }
    out
}

/// Longest a capsnap run may take here.
const CAPSNAP_TIMEOUT: &str = "300s";

/// stdout of a run that must succeed (exit 0, or 1 for `detect` finding
/// something when `found_ok`).
fn ok_stdout(out: &Output, found_ok: bool) -> String {
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || (found_ok && code == 1),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The kept sample bundles.
fn sample_bundles() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo().join("samples"))
        .expect("samples/")
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "capsnap").then(|| p.to_string_lossy().into_owned())
        })
        .collect();
    v.sort();
    assert!(v.len() >= 6, "samples/ lost its bundles: {v:?}");
    v
}

/// Writes `nodes` generated node bundles into `dir` (examples/gen_fleet.rs).
fn generate_fleet(dir: &Path, nodes: usize) {
    let generator = build_dir().join("examples/gen_fleet");
    assert!(
        generator.is_file(),
        "{} is missing: cargo nextest run --workspace builds the examples",
        generator.display()
    );
    let out = Command::new(&generator)
        .arg(dir)
        .arg(nodes.to_string())
        .output()
        .expect("running gen_fleet");
    assert!(
        out.status.success(),
        "gen_fleet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The scheduler's port (the executors take the next four): not
/// Ballista's default, so a cluster someone left up is not used by
/// mistake, and different for concurrent runs of this test.
fn port() -> u16 {
    20_000 + (std::process::id() % 2_000) as u16 * 5
}

/// The cluster, stopped when dropped (also when the test fails).
struct Cluster {
    dir: PathBuf,
}

fn script() -> PathBuf {
    repo().join("bench/ballista.sh")
}

impl Cluster {
    fn up(dir: &Path) -> Cluster {
        let cluster = Cluster {
            dir: dir.to_owned(),
        };
        let _ = CLUSTER_DIR.set(dir.to_owned());
        let out = cluster.script("up");
        assert!(
            out.status.success(),
            "bench/ballista.sh up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    fn script(&self, action: &str) -> std::process::Output {
        Command::new("bash")
            .arg(script())
            .arg(action)
            .env("BALLISTA_PORT", port().to_string())
            .env("BALLISTA_DIR", &self.dir)
            .env("BALLISTA_BIN", build_dir())
            .output()
            .expect("running bench/ballista.sh")
    }

    fn engine(&self) -> String {
        format!("ballista://127.0.0.1:{}", port())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.script("down");
    }
}

fn run(args: &[&str], found_ok: bool) -> String {
    ok_stdout(&capsnap(args), found_ok)
}

#[test]
fn detect_and_a_fleet_query_on_ballista_match_local() {
    let tmp = tempfile::tempdir().unwrap();
    let generated = tmp.path().join("bundles");
    generate_fleet(&generated, 4);
    let dataset = tmp.path().join("fleet");
    let mut export = vec!["export".to_owned()];
    export.extend(sample_bundles());
    export.push(format!("{}/*.capsnap", generated.display()));
    export.extend(["--to".to_owned(), dataset.to_string_lossy().into_owned()]);
    let export: Vec<&str> = export.iter().map(String::as_str).collect();
    run(&export, false);
    let ds = dataset.to_string_lossy().into_owned();

    let cluster = Cluster::up(&tmp.path().join("cluster"));
    let engine = cluster.engine();

    let fleet_query = "select s.host, count(*) filter (where s.state = 'TIME_WAIT') as time_wait, \
         max(c.count_now) as conntrack, max(c.max_entries) as conntrack_max \
         from sockets s join (select host, \
           max(case when name = 'net.netfilter.nf_conntrack_count' then cast(value as bigint) end) as count_now, \
           max(case when name = 'net.netfilter.nf_conntrack_max' then cast(value as bigint) end) as max_entries \
           from sysctls where netns = 'host' group by host) c on c.host = s.host \
         group by s.host order by time_wait desc, s.host";
    let local = run(&["query", &ds, fleet_query, "--format", "csv"], false);
    let remote = run(
        &[
            "query",
            &ds,
            fleet_query,
            "--format",
            "csv",
            "--engine",
            &engine,
        ],
        false,
    );
    assert_eq!(remote, local);
    assert!(local.lines().count() > 4, "{local}");

    let pruned = "select host, count(*) as n from conntrack where host = 'pool1-b-0001' and date = '2026-11-22' group by host";
    assert_eq!(
        run(
            &["query", &ds, pruned, "--format", "csv", "--engine", &engine],
            false
        ),
        run(&["query", &ds, pruned, "--format", "csv"], false)
    );

    // A table with no files under the filter is an EmptyExec; beside a
    // real scan in a UNION below a shuffle its tasks once reported
    // different operator counts and the job hung (see
    // cluster/src/lib.rs, MetricsBearingLeaves).
    let empty_branch = "select netns, count(*) as n from (select netns, inode from sockets \
         union all select netns, inode from inet_sockets where host = 'no-such-host') \
         group by netns order by netns";
    assert_eq!(
        run(
            &[
                "query",
                &ds,
                empty_branch,
                "--format",
                "csv",
                "--engine",
                &engine
            ],
            false
        ),
        run(&["query", &ds, empty_branch, "--format", "csv"], false)
    );

    // Every detection (`detect --list`) gives the local findings, each
    // run alone so a difference names its detection; then all of them in
    // one run, as a user runs `detect`.
    let list = run(&["detect", "--list"], false);
    let ids: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(ids.len() >= 13, "{list}");
    let mut found = Vec::new();
    for id in &ids {
        let args = ["detect", &ds, "--only", id, "--format", "json"];
        let local = run(&args, true);
        let mut remote = args.to_vec();
        remote.extend(["--engine", &engine]);
        let remote = run(&remote, true);
        let local: serde_json::Value = serde_json::from_str(&local).unwrap();
        let remote: serde_json::Value = serde_json::from_str(&remote).unwrap();
        assert_eq!(remote, local, "{id} on Ballista differs from local");
        if local
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["status"] == "found")
        {
            found.push(*id);
        }
    }
    // The comparison proves something only where there is something to
    // find: the samples' and the planted faults.
    for id in [
        "conntrack-full",
        "host-only-rst",
        "socket-leak",
        "unix-socket-replaced",
        "time-wait-overflow",
    ] {
        assert!(
            found.contains(&id),
            "{id}: the fault is not found ({found:?})"
        );
    }
    let all = |extra: &[&str]| {
        let mut args = vec!["detect", ds.as_str(), "--format", "json"];
        args.extend(extra);
        let out = capsnap(&args);
        (out.status.code(), ok_stdout(&out, true))
    };
    assert_eq!(all(&["--engine", &engine]), all(&[]));

    // The steps' scratch files went with the run.
    let scratch = dataset.join("_capsnap/scratch");
    assert!(
        !scratch.exists() || std::fs::read_dir(&scratch).unwrap().next().is_none(),
        "scratch left behind"
    );
    drop(cluster);
}
