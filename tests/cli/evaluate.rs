//! Evaluate nodes: intervention grids on trained weights, final or kept.

use crate::common::{Dir, TINY};
use crate::stdout;
use mechlab::store::read_parquet;
use polars::prelude::*;

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
