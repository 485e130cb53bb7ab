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
        err.contains("built without the cuda feature") && err.contains("--features cuda"),
        "{err}"
    );
}

/// Metric values of a results table in (run, step, split, metric) order.
fn sorted_metrics(path: &std::path::Path) -> Vec<(String, i64, String, String, f64)> {
    let m = read_parquet(path).unwrap();
    let col = |name: &str| m.column(name).unwrap().clone();
    let (run, step, split, metric, value) = (
        col("run_id"),
        col("step"),
        col("split"),
        col("metric"),
        col("value"),
    );
    let mut rows: Vec<_> = (0..m.height())
        .map(|i| {
            (
                run.str().unwrap().get(i).unwrap().to_string(),
                step.i64().unwrap().get(i).unwrap(),
                split.str().unwrap().get(i).unwrap().to_string(),
                metric.str().unwrap().get(i).unwrap().to_string(),
                value.f64().unwrap().get(i).unwrap(),
            )
        })
        .collect();
    rows.sort_by(|a, b| (&a.0, a.1, &a.2, &a.3).cmp(&(&b.0, b.1, &b.2, &b.3)));
    rows
}

#[test]
fn packed_runs_write_exactly_what_one_run_at_a_time_writes() {
    let (packed, alone) = (Dir::new(), Dir::new());
    let (spec_p, spec_a) = (
        packed.write("tiny.toml", TINY),
        alone.write("tiny.toml", TINY),
    );
    let plan = stdout(&packed.ok(&["plan"], &spec_p));
    assert!(
        plan.contains("packed training (--pack auto): 1 programs for 2 train nodes"),
        "{plan}"
    );
    packed.ok(&["run", "--quiet"], &spec_p);
    alone.ok(&["run", "--quiet", "--pack", "off"], &spec_a);
    let table = |d: &Dir| d.results().join("tiny").join("metrics.parquet");
    let (p, a) = (
        sorted_metrics(&table(&packed)),
        sorted_metrics(&table(&alone)),
    );
    assert_eq!(p.len(), 4 * 2 * 3 * 2);
    // Same node ids, same values to the bit: attention trains identically in a group.
    assert_eq!(p, a);

    let err = packed.fails(&["run", "--pack", "0"], &spec_p);
    assert!(err.contains("expected auto, off or a number"), "{err}");
}

#[test]
fn bench_pack_prints_both_throughputs() {
    let dir = Dir::new();
    let out = dir
        .mechlab()
        .args([
            "bench",
            "--pack",
            "2",
            "--d-model",
            "16",
            "--steps",
            "2",
            "--warmup",
            "1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    for key in [
        "mixer",
        "d_model",
        "runs",
        "packed_tokens_per_s",
        "sequential_tokens_per_s",
        "speedup",
    ] {
        assert!(line.get(key).is_some(), "{key} in {line}");
    }
    assert_eq!(line["runs"], 2);
    assert!(line["packed_tokens_per_s"].as_f64().unwrap() > 0.0);
}

/// `--until-step`: every run trains to that step of its (unchanged) schedule and stops
/// resumably; `status` and `progress.parquet` show the runs so far; evaluate nodes wait rather
/// than fail; continuing in stages ends bit-identical to one uninterrupted run.
#[test]
fn until_step_stops_every_run_resumably_and_shows_its_progress() {
    use crate::guarantees::{metrics, observations, slow_spec};
    let probed = format!(
        "{}\n[[interventions]]\nkind = \"interchange\"\nsites = [\"block_input\"]\ncorrupt = [\"key\"]\npatch_at = [\"value\", \"query\"]\nexamples = 8\n",
        slow_spec()
    );
    let reference = Dir::new();
    let spec = reference.write("tiny.toml", &probed);
    reference.ok(&["run", "-q"], &spec);
    let want = metrics(&reference, "tiny");

    let dir = Dir::new();
    let spec = dir.write("tiny.toml", &probed);
    let out = dir.ok(&["run", "-q", "--until-step", "100"], &spec);
    assert!(
        stdout(&out).contains("2 runs stopped at step 100 (--until-step)"),
        "{}",
        stdout(&out)
    );
    let status = stdout(&dir.ok(&["status"], &spec));
    assert_eq!(
        status.matches("pending (checkpoint at step 100)").count(),
        2,
        "{status}"
    );
    assert_eq!(status.matches("(step 100)").count(), 2, "{status}");
    let progress = observations(&dir, "tiny", "progress.parquet");
    assert!(metrics(&dir, "tiny").is_empty());
    // The observations so far are exactly the reference's first ones.
    let head: Vec<_> = want.iter().filter(|r| r.1 <= 100).cloned().collect();
    assert_eq!(progress, head);
    let steps = |d: &Dir| -> Vec<Option<i64>> {
        let runs = read_parquet(&d.results().join("tiny").join("runs.parquet")).unwrap();
        runs.column("step").unwrap().i64().unwrap().iter().collect()
    };
    assert_eq!(steps(&dir), vec![Some(100), Some(100)]);

    // A run already past the step does not train.
    dir.ok(&["run", "-q", "--until-step", "50"], &spec);
    assert_eq!(steps(&dir), vec![Some(100), Some(100)]);

    dir.ok(&["run", "-q", "--until-step", "200"], &spec);
    dir.ok(&["run", "-q"], &spec);
    assert_eq!(metrics(&dir, "tiny"), want);
    assert!(observations(&dir, "tiny", "progress.parquet").is_empty());
    assert_eq!(steps(&dir), vec![Some(300), Some(300)]);
    let status = stdout(&dir.ok(&["status"], &spec));
    assert!(!status.contains("checkpoint at step"), "{status}");
}

/// `MECHLAB_GENERIC_OPS=1` reaches the binary and is recorded: the CPU then runs the tensor
/// operations of the accelerators, and its results are not the fused path's.
#[test]
fn generic_ops_are_recorded_as_the_backend() {
    let dir = Dir::new();
    let spec = dir.write("tiny.toml", &TINY.replace("steps = 30", "steps = 5"));
    let out = dir
        .mechlab()
        .env("MECHLAB_GENERIC_OPS", "1")
        .args(["run", "-q"])
        .arg(&spec)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let statuses: Vec<String> = std::fs::read_dir(dir.results().join("store"))
        .unwrap()
        .flatten()
        .filter_map(|n| std::fs::read_to_string(n.path().join("status.json")).ok())
        .filter(|s| s.contains("\"train\""))
        .collect();
    assert!(!statuses.is_empty());
    for s in statuses {
        assert!(s.contains("flex (generic ops)"), "{s}");
    }
}
