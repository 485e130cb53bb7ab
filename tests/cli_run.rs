//! The real binary end to end: plan, run, rerun (skips), status, and the collected Parquet tables.

mod common;

use common::{Dir, TINY};
use mechlab::store::{read_parquet, read_parquet_metadata};
use polars::prelude::*;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn validate_and_plan_show_the_expanded_graph() {
    let dir = Dir::new();
    let spec = dir.write("tiny.toml", TINY);
    let out = dir.ok(&["validate"], &spec);
    assert!(
        stdout(&out).contains("2 runs (1 dataset, 2 train and 0 evaluate nodes)"),
        "{}",
        stdout(&out)
    );

    let out = dir.ok(&["plan"], &spec);
    let text = stdout(&out);
    assert!(text.contains("dataset nodes:    1 (0 done)"), "{text}");
    assert!(text.contains("train nodes:    2 (0 done)"), "{text}");
    assert!(text.contains("lr1e-3-s1"), "{text}");
    assert!(text.contains("lr3e-3-s1"), "{text}");
    assert!(text.contains("train.lr"), "{text}");
}

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

#[test]
fn committed_schema_is_up_to_date() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/experiment.schema.json"
    ))
    .expect("schemas/experiment.schema.json exists");
    assert_eq!(
        committed,
        mechlab::spec::schema::experiment_schema(),
        "schema is stale: run `cargo run -- schema` and commit it"
    );
}

#[test]
fn adding_interventions_evaluates_without_retraining() {
    let dir = Dir::new();
    let spec = dir.write("tiny.toml", TINY);
    dir.ok(&["run", "--quiet"], &spec);
    let probed = dir.write(
        "probed.toml",
        r#"include = ["tiny.toml"]

[[interventions]]
kind = "interchange"
sites = ["block_input", "mixer_output"]
corrupt = ["key"]
patch_at = ["key", "value", "query"]
examples = 16
detail = true

[[interventions]]
kind = "ablation"
mode = "mean"
sites = ["mixer_output"]
ablate_at = ["value", "answer"]
examples = 16
"#,
    );
    let out = dir.ok(&["run", "--quiet"], &probed);
    // Four evaluation nodes ran (two blocks × two runs); the dataset and both trained models were
    // reused.
    assert!(
        stdout(&out).contains("4 nodes ran, 3 already done"),
        "{}",
        stdout(&out)
    );
    let ablations = read_parquet(&dir.results().join("tiny").join("ablations.parquet")).unwrap();
    // 2 runs × 2 layers × 1 site × 2 roles; ablating after the query changes nothing.
    assert_eq!(ablations.height(), 8);
    let (roles, drops) = (
        ablations.column("ablated_role").unwrap().str().unwrap(),
        ablations.column("prob_drop").unwrap().f64().unwrap(),
    );
    for i in 0..8 {
        if roles.get(i) == Some("answer") {
            assert!(drops.get(i).unwrap().abs() < 1e-6);
        }
    }

    let table = read_parquet(&dir.results().join("tiny").join("interventions.parquet")).unwrap();
    // 2 runs × 1 corrupted role × 2 layers × 2 sites × 3 patch roles.
    assert_eq!(table.height(), 24);
    let names: Vec<_> = table
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        names,
        [
            "run_id",
            "intervention",
            "step",
            "split",
            "layer",
            "site",
            "corrupted_role",
            "patch_role",
            "n",
            "p_orig",
            "p_corr",
            "p_rest",
            "logit_orig",
            "logit_corr",
            "logit_rest",
            "prob_diff",
            "logit_diff",
            "kl",
            "attrib"
        ]
    );
    let n = table.column("n").unwrap().i64().unwrap();
    assert!((0..n.len()).all(|i| n.get(i) == Some(16)));
    // Restoring the corrupted key's own position at the model input restores the answer fully.
    let restored = table
        .lazy()
        .filter(
            col("layer")
                .eq(lit(0))
                .and(col("site").eq(lit("block_input")))
                .and(col("patch_role").eq(lit("key"))),
        )
        .collect()
        .unwrap();
    assert_eq!(restored.height(), 2);
    let detail = read_parquet(
        &dir.results()
            .join("tiny")
            .join("interventions_detail.parquet"),
    )
    .unwrap();
    // 2 runs × 16 examples × 1 corrupted role.
    assert_eq!(detail.height(), 32);
    assert_eq!(detail.schema().get("best_site"), Some(&DataType::String));
    let orig = restored.column("p_orig").unwrap().f64().unwrap();
    let rest = restored.column("p_rest").unwrap().f64().unwrap();
    for i in 0..2 {
        assert!((orig.get(i).unwrap() - rest.get(i).unwrap()).abs() < 1e-6);
    }
}

#[test]
fn interventions_every_n_steps_read_the_kept_weights() {
    let dir = Dir::new();
    let text = TINY.replace(
        "checkpoint_every = 10",
        "checkpoint_every = 10\nkeep_weights_every = 10",
    ) + "\n[[interventions]]\nkind = \"interchange\"\nevery = 20\nsites = [\"block_output\"]\nlayers = [0]\ncorrupt = [\"value\"]\npatch_at = [\"value\"]\nexamples = 8\n";
    let spec = dir.write("tiny.toml", &text);
    dir.ok(&["run", "--quiet"], &spec);
    let table = read_parquet(&dir.results().join("tiny").join("interventions.parquet")).unwrap();
    let steps = table.column("step").unwrap().i64().unwrap();
    let mut steps: Vec<i64> = (0..steps.len()).map(|i| steps.get(i).unwrap()).collect();
    steps.sort();
    // Two runs, each evaluated at step 20 (kept weights) and 30 (final weights).
    assert_eq!(steps, [20, 20, 30, 30]);
}

#[test]
fn export_weights_writes_safetensors_with_reference_names() {
    let dir = Dir::new();
    let spec = dir.write("tiny.toml", TINY);
    // A run that is not done cannot be exported.
    let err = dir.fails(&["export", "weights", "--run", "lr1e-3-s1"], &spec);
    assert!(err.contains("not done"), "{err}");

    dir.ok(&["run", "--quiet"], &spec);
    dir.ok(&["export", "weights", "--run", "lr1e-3-s1"], &spec);
    let bytes = std::fs::read(dir.results().join("tiny/weights/lr1e-3-s1.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(
        header["backbone.embeddings.word_embeddings.weight"]["shape"],
        serde_json::json!([20, 16])
    );
    assert_eq!(
        header["backbone.layers.1.state_mixer.fc1.weight"]["shape"],
        serde_json::json!([64, 16])
    );
    assert_eq!(header["__metadata__"]["mechlab.run"], "lr1e-3-s1");
    // Every tensor's bytes are in the file: the last offset is the data length.
    let end = header
        .as_object()
        .unwrap()
        .values()
        .filter_map(|v| v["data_offsets"][1].as_u64())
        .max()
        .unwrap() as usize;
    assert_eq!(bytes.len(), 8 + n + end);
}

#[test]
fn data_show_prints_decoded_examples_with_roles() {
    let dir = Dir::new();
    let spec = dir.write("tiny.toml", TINY);
    let out = dir.ok(&["data", "show", "-n", "3"], &spec);
    let text = stdout(&out);
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{text}");
    for row in rows {
        // BOS, 2 pairs, divider, query, answer, EOS; each role marked once.
        assert_eq!(row.split_whitespace().count(), 1 + 9, "{row}");
        for role in ["[key]", "[value]", "[divider]", "[query]", "[answer]"] {
            assert_eq!(row.matches(role).count(), 1, "{row}");
        }
    }
}

const ATR: &str = r#"
[experiment]
name = "atr"
seeds = [3]

[task]
kind = "atr"
train_size = 512
test_size = 64
dev_size = 64
eval_examples = 32

[model]
d_model = 16
mixer = "mamba"

[train]
batch_size = 16
steps = 20
eval_every = 10

# Default sites: the ones a Mamba block has (no MLP).
[[interventions]]
kind = "interchange"
corrupt = ["key"]
patch_at = ["key", "query"]
examples = 16

[[interventions]]
kind = "interchange"
sites = ["conv_output"]
layers = [0]
examples = 16
"#;

/// The distinct values of a string column of a Parquet table, sorted.
fn distinct(table: &std::path::Path, column: &str) -> Vec<String> {
    let df = mechlab::store::read_parquet(table).unwrap();
    let values = df.column(column).unwrap().str().unwrap().clone();
    let set: std::collections::BTreeSet<&str> = values.iter().flatten().collect();
    set.into_iter().map(str::to_string).collect()
}

#[test]
fn atr_data_show_stats_and_a_run_with_a_dev_split() {
    let dir = Dir::new();
    let spec = dir.write("atr.toml", ATR);
    // Examples have their own lengths: no padding is printed, every role is marked once.
    let text = stdout(&dir.ok(&["data", "show", "-n", "4", "--split", "dev"], &spec));
    for row in text.lines().skip(1) {
        assert!(!row.contains("<pad>"), "{row}");
        for role in ["[key]", "[value]", "[divider]", "[query]", "[answer]"] {
            assert_eq!(row.matches(role).count(), 1, "{row}");
        }
    }
    let text = stdout(&dir.ok(&["data", "stats", "-n", "3000"], &spec));
    for stat in [
        "yield_length",
        "key_value_distance",
        "query_key_distance",
        "depth",
        "eligible_pairs",
    ] {
        assert!(text.contains(stat), "{text}");
    }
    let table = dir.results().join("atr/data_stats.parquet");
    assert!(table.exists(), "{text}");
    dir.ok(&["run", "-q"], &spec);
    assert_eq!(
        distinct(&dir.results().join("atr/metrics.parquet"), "split"),
        ["dev", "test", "train"],
        "evaluation on named splits"
    );
    assert_eq!(
        distinct(&dir.results().join("atr/interventions.parquet"), "site"),
        [
            "block_input",
            "block_output",
            "conv_output",
            "mixer_input",
            "mixer_output"
        ]
    );
}

#[test]
fn mqar_trains_on_every_query_and_intervenes_on_the_first() {
    let dir = Dir::new();
    let spec = dir.write(
        "mqar.toml",
        r#"
[experiment]
name = "mqar"
seeds = [1]

[task]
kind = "mqar"
vocab_size = 64
pairs = 4
seq_len = 32
train_size = 256
test_size = 64
eval_examples = 32

[model]
d_model = 16
mixer = "based"

[train]
batch_size = 16
steps = 20
eval_every = 10

[[interventions]]
kind = "interchange"
sites = ["block_input"]
corrupt = ["key"]
patch_at = ["key", "value", "query"]
examples = 32
"#,
    );
    let text = stdout(&dir.ok(&["data", "show", "-n", "2"], &spec));
    assert!(
        text.contains("query]") && text.contains("[value]"),
        "{text}"
    );
    dir.ok(&["run", "-q"], &spec);
    let rows =
        mechlab::store::read_parquet(&dir.results().join("mqar/interventions.parquet")).unwrap();
    assert_eq!(rows.height(), 2 * 3, "2 layers × 3 patch roles");
}

#[test]
fn table_picks_the_best_lr_per_cell_and_averages_seeds() {
    let dir = Dir::new();
    let text = TINY.replace("seeds = [1]", "seeds = [1, 2]")
        + r#"
[[tables]]
name = "best"
rows = "model.mixer"
columns = "model.d_model"
best_of = "train.lr"

[[tables]]
name = "by_lr"
rows = "train.lr"
columns = "model.d_model"
"#;
    let spec = dir.write("tiny.toml", &text);
    // Before anything ran: every cell is missing, and the table says so.
    let out = stdout(&dir.ok(&["table", "--name", "best"], &spec));
    assert!(
        out.contains("—") && out.contains("4 runs not done yet"),
        "{out}"
    );
    dir.ok(&["run", "-q"], &spec);
    let csv = stdout(&dir.ok(&["table", "--format", "csv"], &spec));
    // Recompute from metrics.parquet: final test accuracy per run, mean over seeds per lr.
    let metrics =
        mechlab::store::read_parquet(&dir.results().join("tiny/metrics.parquet")).unwrap();
    let runs = mechlab::store::read_parquet(&dir.results().join("tiny/runs.parquet")).unwrap();
    let finals = mechlab::report::table::final_values(&metrics, "accuracy", "test").unwrap();
    let ids = runs.column("run_id").unwrap().str().unwrap().clone();
    let lrs = runs.column("train.lr").unwrap().f64().unwrap().clone();
    let mut by_lr: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for i in 0..runs.height() {
        by_lr
            .entry(lrs.get(i).unwrap().to_string())
            .or_default()
            .push(finals[ids.get(i).unwrap()]);
    }
    let mean = |v: &Vec<f64>| 100.0 * v.iter().sum::<f64>() / v.len() as f64;
    let (best_lr, best) = by_lr.iter().map(|(lr, v)| (lr.clone(), mean(v))).fold(
        (String::new(), f64::MIN),
        |a, b| if b.1 > a.1 { b } else { a },
    );
    let best_row = csv.lines().find(|l| l.starts_with("best,")).unwrap();
    let cells: Vec<&str> = best_row.split(',').collect();
    assert!(
        (cells[3].parse::<f64>().unwrap() - best).abs() < 1e-9,
        "{best_row}"
    );
    assert_eq!(cells[5], "2", "two seeds: {best_row}");
    assert_eq!(
        cells[6].parse::<f64>().unwrap().to_string(),
        best_lr,
        "{best_row}"
    );
    assert_eq!(
        csv.lines().filter(|l| l.starts_with("by_lr,")).count(),
        2,
        "{csv}"
    );
}

#[test]
fn every_paper_spec_validates_at_full_size_and_with_the_cpu_profile() {
    let dir = Dir::new();
    let paper = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/paper");
    let mut specs: Vec<_> = std::fs::read_dir(&paper)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_stem().unwrap().to_str().unwrap();
            // Included bases, not experiments.
            !["common", "ar_base", "pcfg_base"].contains(&name)
        })
        .collect();
    specs.sort();
    // One spec per configuration folder of the reference.
    assert_eq!(specs.len(), 20, "{specs:?}");
    for spec in &specs {
        let full = stdout(&dir.ok(&["validate"], spec));
        let cpu = stdout(&dir.ok(&["validate", "--profile", "cpu"], spec));
        let runs = |text: &str| -> usize {
            text.split(", ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(
            runs(&cpu) * 5 <= runs(&full),
            "{}: cpu profile {cpu} vs {full}",
            spec.display()
        );
    }
}

#[test]
fn export_table_joins_run_parameters_and_filters() {
    let dir = Dir::new();
    let spec = dir.write("tiny.toml", TINY);
    dir.ok(&["run", "-q"], &spec);
    let out = dir.path().join("metrics.csv");
    dir.ok(
        &[
            "export",
            "table",
            "--table",
            "metrics",
            "--filter",
            "train.lr=1e-3",
            "--format",
            "csv",
            "--out",
            out.to_str().unwrap(),
        ],
        &spec,
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let lr = header
        .iter()
        .position(|c| *c == "train.lr")
        .expect("joined run columns");
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r.split(',').nth(lr) == Some("0.001")),
        "{text}"
    );
    // An unknown column is an error that lists the columns.
    let err = dir.fails(
        &["export", "table", "--table", "metrics", "--filter", "lrr=1"],
        &spec,
    );
    assert!(err.contains("no column \"lrr\""), "{err}");
}

#[test]
fn plot_draws_every_figure_kind_as_png_and_svg() {
    let dir = Dir::new();
    let text = TINY.to_string()
        + r#"
[[interventions]]
kind = "interchange"
sites = ["block_input"]
corrupt = ["key"]
patch_at = ["key", "value", "query"]
examples = 16
"#;
    let spec = dir.write("tiny.toml", &text);
    dir.ok(&["run", "-q"], &spec);
    let out = stdout(&dir.ok(&["plot"], &spec));
    let figures = dir.results().join("tiny/figures");
    for kind in mechlab::report::plot::Kind::ALL.map(|k| k.name()) {
        let png = std::fs::read(figures.join(format!("{kind}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{kind}");
        let svg = std::fs::read_to_string(figures.join(format!("{kind}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{kind}");
        assert!(out.contains(&format!("{kind}.svg")), "{out}");
    }
    // Axis labels a reader needs without the spec.
    let curves = std::fs::read_to_string(figures.join("curves.svg")).unwrap();
    assert!(curves.contains("training step") && curves.contains("test accuracy (%)"));
    let attrib = std::fs::read_to_string(figures.join("attrib.svg")).unwrap();
    assert!(attrib.contains("layer 1") && attrib.contains("value"));
    // The Attrib figures say what they filtered, with the AR default threshold.
    let scatter = std::fs::read_to_string(figures.join("scatter.svg")).unwrap();
    assert!(
        scatter.contains("mean p_orig − p_corr &gt; 0.01")
            || scatter.contains("mean p_orig − p_corr > 0.01"),
        "{scatter}"
    );
    // A threshold no run passes leaves every heatmap panel grey, with the reason.
    dir.ok(&["plot", "--kind", "attrib", "--threshold", "2"], &spec);
    let attrib = std::fs::read_to_string(figures.join("attrib.svg")).unwrap();
    assert!(attrib.contains("corrupting changes nothing"), "{attrib}");
    let err = dir.fails(&["plot", "--kind", "attrib", "--threshold", "nan"], &spec);
    assert!(err.contains("--threshold"), "{err}");
}
