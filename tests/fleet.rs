//! `capsnap export` and the dataset it writes: read by DuckDB as it is,
//! and by `capsnap query`/`detect` with the same tables and answers as
//! the bundles it came from, pruning partitions on host and date.

mod common;

use common::{build_dir, capsnap, generate_fleet, ok_stdout, sample_bundles};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The tables a dataset holds: every table of the registry
/// (`capsnap tables`), so a table added to `formats` is checked here too.
fn tables() -> Vec<&'static str> {
    formats::tables().iter().map(|t| t.name).collect()
}

fn export(inputs: &[String], to: &Path) -> String {
    let mut args = vec!["export".to_owned()];
    args.extend(inputs.iter().cloned());
    args.extend(["--to".to_owned(), to.to_string_lossy().into_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = capsnap(&args);
    assert!(
        out.status.success(),
        "export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn query_csv(inputs: &[String], sql: &str) -> String {
    let mut args = vec!["query".to_owned()];
    args.extend(inputs.iter().cloned());
    args.extend([sql.to_owned(), "--format".to_owned(), "csv".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok_stdout(&capsnap(&args), false)
}

/// CSV rows sorted (the header stays first): row order without ORDER BY
/// is the engine's.
fn sorted(csv: &str) -> Vec<String> {
    let mut lines: Vec<String> = csv.lines().map(str::to_owned).collect();
    if lines.len() > 1 {
        lines[1..].sort();
    }
    lines
}

/// A Python with the `duckdb` package: $CAPSNAP_DUCKDB_PYTHON, the venv
/// .ci/run makes in the target folder, or the system's.
fn duckdb_python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("CAPSNAP_DUCKDB_PYTHON").map(PathBuf::from),
        build_dir()
            .parent()
            .map(|t| t.join("duckdb-venv/bin/python3")),
        Some(PathBuf::from("python3")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import duckdb"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn the_kept_samples_exported_read_the_same_in_duckdb_and_capsnap() {
    let bundles = sample_bundles();
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tmp.path().join("fleet");
    export(&bundles, &dataset);
    let ds = vec![dataset.to_string_lossy().into_owned()];

    // Every table, row for row (`date` is the dataset's one extra column).
    let mut tables_with_rows = Vec::new();
    for table in tables() {
        let want = sorted(&query_csv(&bundles, &format!("select * from {table}")));
        let got = sorted(&query_csv(
            &ds,
            &format!("select * except(date) from {table}"),
        ));
        assert_eq!(got, want, "{table}: the dataset differs from the bundles");
        if want.len() > 1 {
            tables_with_rows.push(table);
        }
    }
    // The comparison above is empty for a table no sample has rows of:
    // most must have some for it to prove anything.
    assert!(
        tables_with_rows.len() + 3 >= tables().len(),
        "only {tables_with_rows:?} have rows in the samples"
    );

    // Row counts per table and host, as DuckDB reads the files.
    let Some(python) = duckdb_python() else {
        panic!(
            "no Python with duckdb: .ci/run makes $CARGO_TARGET_DIR/duckdb-venv; or set CAPSNAP_DUCKDB_PYTHON"
        );
    };
    let script = r#"
import duckdb, json, sys
root = sys.argv[1]
out = {}
for table in sys.argv[2:]:
    rel = duckdb.sql(f"select host, count(*) from read_parquet('{root}/{table}/*/*/*.parquet', hive_partitioning = true) group by host")
    out[table] = {h: n for h, n in rel.fetchall()}
types = duckdb.sql(f"select column_name, column_type from (describe select * from read_parquet('{root}/packets/*/*/*.parquet', hive_partitioning = true))").fetchall()
out["_packets_types"] = dict(types)
print(json.dumps(out))
"#;
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&dataset)
        .args(&tables_with_rows)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "duckdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let duck: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for table in &tables_with_rows {
        let csv = query_csv(
            &bundles,
            &format!("select host, count(*) as n from {table} group by host"),
        );
        let want: BTreeMap<String, u64> = csv
            .lines()
            .skip(1)
            .map(|l| {
                let (h, n) = l.rsplit_once(',').unwrap();
                (h.to_owned(), n.parse().unwrap())
            })
            .collect();
        let got: BTreeMap<String, u64> = duck[table]
            .as_object()
            .unwrap()
            .iter()
            .map(|(h, n)| (h.clone(), n.as_u64().unwrap()))
            .collect();
        assert_eq!(got, want, "{table}: rows per host in DuckDB");
    }
    let types = &duck["_packets_types"];
    assert_eq!(types["ts"], "TIMESTAMP WITH TIME ZONE", "{types}");
    assert_eq!(types["ts_nanos"], "SMALLINT", "{types}");
    // UInt64 stays unsigned (UBIGINT), UInt32 widens to BIGINT.
    assert_eq!(types["frame"], "UBIGINT", "{types}");
    assert_eq!(types["seq"], "BIGINT", "{types}");
    assert_eq!(types["date"], "DATE", "{types}");

    // The same findings, as `detect` prints them.
    let detect = |inputs: &[String]| {
        let mut args = vec!["detect", "--format", "json"];
        args.extend(inputs.iter().map(String::as_str));
        let out = capsnap(&args);
        let code = out.status.code();
        (code, ok_stdout(&out, true))
    };
    let (want_code, want) = detect(&bundles);
    let (got_code, got) = detect(&ds);
    assert_eq!(got_code, want_code);
    let want: serde_json::Value = serde_json::from_str(&want).unwrap();
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(
        got, want,
        "detect on the dataset differs from detect on the bundles"
    );
}

#[test]
fn exporting_again_replaces_a_bundles_files_and_exports_add_up() {
    let bundles = sample_bundles();
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tmp.path().join("fleet");
    let ds = vec![dataset.to_string_lossy().into_owned()];
    export(&bundles[..2], &dataset);
    export(&bundles[2..], &dataset);
    export(&bundles[..1], &dataset);
    let sql = "select count(*) as n, count(distinct bundle) as b from sockets";
    assert_eq!(query_csv(&ds, sql), query_csv(&bundles, sql));
    let records = std::fs::read_dir(dataset.join("_capsnap/bundles"))
        .unwrap()
        .count();
    assert_eq!(records, bundles.len());
    // One file per bundle and table that has rows: no second copy (a
    // bundle with no sockets rows, dns-failures, has no file).
    let with_rows = query_csv(&bundles, "select count(distinct bundle) as b from sockets");
    let files = walk(&dataset.join("sockets"));
    assert_eq!(format!("b\n{}\n", files.len()), with_rows, "{files:?}");
    assert!(
        files
            .iter()
            .all(|f| f.to_string_lossy().contains("/host=vm/date=")),
        "{files:?}"
    );
}

#[test]
fn host_and_date_filters_prune_partitions() {
    let tmp = tempfile::tempdir().unwrap();
    let gen_dir = tmp.path().join("bundles");
    generate_fleet(&gen_dir, 4);
    let bundles: Vec<String> = vec![format!("{}/*.capsnap", gen_dir.display())];
    let dataset = tmp.path().join("fleet");
    export(&bundles, &dataset);
    let ds = vec![dataset.to_string_lossy().into_owned()];
    let sql = "select host, count(*) as n from sockets where host = 'pool1-b-0001' group by host";
    assert_eq!(query_csv(&ds, sql), query_csv(&bundles, sql));
    assert!(query_csv(&ds, sql).contains("pool1-b-0001,"));
    let plan = query_csv(&ds, &format!("explain {sql}"));
    assert!(plan.contains("host=pool1-b-0001/"), "{plan}");
    assert!(!plan.contains("host=pool1-a-0000/"), "not pruned: {plan}");
    // Nodes 0 and 2 collected on the first day, 1 and 3 on the next.
    let sql = "select distinct host from sockets where date = '2026-11-22' order by host";
    assert_eq!(query_csv(&ds, sql), "host\npool1-a-0003\npool1-b-0001\n");
    let plan = query_csv(&ds, &format!("explain {sql}"));
    assert!(!plan.contains("date=2026-11-21/"), "not pruned: {plan}");
    // Detections find the planted faults the same way on both.
    let detect = |inputs: &[String]| {
        let mut args = vec!["detect", "--format", "json"];
        args.extend(inputs.iter().map(String::as_str));
        let out = capsnap(&args);
        serde_json::from_str::<serde_json::Value>(&ok_stdout(&out, true)).unwrap()
    };
    assert_eq!(detect(&ds), detect(&bundles));
}

#[test]
fn ballista_needs_a_dataset_and_says_so() {
    let bundles = sample_bundles();
    let out = capsnap(&[
        "query",
        &bundles[0],
        "select 1",
        "--engine",
        "ballista://127.0.0.1:1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("runs over an exported dataset only"), "{err}");
    assert!(err.contains("capsnap export"), "{err}");
    let out = capsnap(&["detect", &bundles[0], "--engine", "spark://x"]);
    assert_eq!(out.status.code(), Some(2));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}
