//! `basis bench` in quick mode, so the harness never rots: it runs every group, writes a JSON
//! report with every figure, and each figure is a finite, positive measurement. No timing is
//! asserted: the figures are for people, and this machine is shared.

use crate::common;

use std::time::Duration;

use common::{clean_command, describe, run_with_timeout};
use serde_json::Value;

#[test]
fn quick_bench_measures_every_figure_beside_its_reference() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let mut cmd = clean_command();
    cmd.arg("bench").arg("--json").arg(&json);
    let out = run_with_timeout(cmd, Duration::from_secs(600));
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["mode"], "quick");
    let figures = report["figures"].as_array().unwrap();
    for group in [
        "ingest",
        "recon",
        "backfill",
        "latency",
        "files",
        "mesh",
        "resources",
    ] {
        assert!(
            figures.iter().any(|f| f["group"] == group),
            "no {group} figure in {report}"
        );
    }
    for f in figures {
        let v = f["value"].as_f64().unwrap();
        assert!(v.is_finite() && v >= 0.0, "{f}");
        if let Some(b) = f["beside"].as_f64() {
            assert!(b.is_finite() && b >= 0.0, "{f}");
        }
    }
    // Throughputs, sizes and latencies are measured, not zero; idle CPU may round to 0.
    for name in [
        "durable ingest",
        "backfill of",
        "bytes both ways",
        "node 1 -> node 2 stream, p50",
        "copies of each event a node receives",
        "CPU per event per node",
        "binary size",
    ] {
        let f = figures
            .iter()
            .find(|f| f["name"].as_str().unwrap().contains(name))
            .unwrap_or_else(|| panic!("no figure named like {name:?}"));
        assert!(f["value"].as_f64().unwrap() > 0.0, "{f}");
    }
    // The figures in the JSON are the ones printed.
    assert!(stdout.contains("durable ingest"));
}

#[test]
fn an_unknown_group_is_refused_and_the_groups_are_named() {
    let mut cmd = clean_command();
    cmd.args(["bench", "--only", "meshes"]);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    assert!(!out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no benchmark group 'meshes'") && err.contains("mesh, resources"),
        "{err}"
    );
}
