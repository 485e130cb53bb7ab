//! `run`: tidy tables, skipping what is done, devices.

use crate::common::{Dir, TINY};
use crate::stdout;
use mechlab::store::{read_parquet, read_parquet_metadata};
use polars::prelude::*;

#[test]
fn run_writes_tidy_tables_and_rerun_skips_done_nodes() {
    let dir = Dir::new();
    let spec = dir.write("tiny.toml", TINY);
    let out = dir.ok(&["run", "--quiet"], &spec);
    assert!(
        stdout(&out).contains("3 nodes ran, 0 already done, 0 failed"),
        "{}",
        stdout(&out)
    );

    let tables = dir.results().join("tiny");
    let runs = read_parquet(&tables.join("runs.parquet")).unwrap();
    assert_eq!(runs.height(), 2);
    let schema = runs.schema();
    for (name, dtype) in [
        ("run_id", DataType::String),
        ("experiment", DataType::String),
        ("name", DataType::String),
        ("model.mixer", DataType::String),
        ("model.d_model", DataType::Int64),
        ("train.lr", DataType::Float64),
        ("seed", DataType::Int64),
        ("params", DataType::Int64),
        ("status", DataType::String),
        ("wall_s", DataType::Float64),
        ("backend", DataType::String),
    ] {
        assert_eq!(schema.get(name), Some(&dtype), "runs column {name}");
    }
    let status_col = runs.column("status").unwrap().str().unwrap();
    let status: Vec<_> = (0..runs.height())
        .map(|i| status_col.get(i).unwrap())
        .collect();
    assert_eq!(status, ["done", "done"]);
    // vocab 20 × 16 + 1024 × 16 positions + 2 blocks + final norm.
    let params: Vec<_> = runs
        .column("params")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(params, [20 * 16 + 1024 * 16 + 2 * 3232 + 32; 2]);

    let metrics = read_parquet(&tables.join("metrics.parquet")).unwrap();
    let names: Vec<_> = metrics
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, ["run_id", "step", "split", "metric", "value"]);
    // Evaluations at steps 0, 10, 20, 30 × 2 splits × 3 metrics × 2 runs.
    assert_eq!(metrics.height(), 4 * 2 * 3 * 2);
    let meta = read_parquet_metadata(&tables.join("metrics.parquet")).unwrap();
    let get = |k: &str| {
        meta.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("mechlab.backend").as_deref(), Some("flex"));
    assert_eq!(
        get("mechlab.version").as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(get("mechlab.spec_hash").map(|h| h.len()), Some(16));

    let out = dir.ok(&["run", "--quiet"], &spec);
    assert!(
        stdout(&out).contains("0 nodes ran, 3 already done"),
        "{}",
        stdout(&out)
    );

    let out = dir.ok(&["status"], &spec);
    assert!(stdout(&out).contains("3 nodes: 3 done"), "{}", stdout(&out));

    // Another spec that includes this one and adds a learning rate reuses the dataset node and
    // the two trained runs: identical nodes from different specs are one node.
    let wider = dir.write(
        "wider.toml",
        "include = [\"tiny.toml\"]\n[experiment]\nname = \"wider\"\n[sweep.grid]\n\"train.lr\" = [1e-3, 3e-3, 1e-2]\n",
    );
    let out = dir.ok(&["run", "--quiet"], &wider);
    assert!(
        stdout(&out).contains("1 nodes ran, 3 already done"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn cuda_device_without_the_feature_is_a_clear_error() {
    if cfg!(feature = "cuda") {
        return;
    }
    let dir = Dir::new();
    let spec = dir.write("tiny.toml", TINY);
    let err = dir.fails(&["run", "--device", "cuda"], &spec);
    assert!(
        err.contains("built without CUDA support") && err.contains("--features cuda"),
        "{err}"
    );
}
