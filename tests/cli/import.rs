//! `model.weights`: a state dict in the reference's names becomes a run (loaded, evaluated,
//! intervened on) instead of a trained one.

use crate::common::{Dir, INTERCHANGE_BLOCK};

/// A spec of one run of `mixer` on TINY's task, optionally importing `weights`.
fn spec(name: &str, mixer: &str, weights: Option<&str>) -> String {
    let mut weights = weights.map_or(String::new(), |w| format!("weights = \"{w}\"\n"));
    if mixer == "mamba2" {
        // mamba_ssm's 64-wide heads do not fit d_model 16: 4 heads of 8, 16-wide states.
        weights.push_str("heads = 4\nd_state = 16\n");
    }
    format!(
        r#"
[experiment]
name = "{name}"
seeds = [1]

[task]
kind = "ar"
num_kv = 16
pairs = 2
train_size = 256
test_size = 64
eval_examples = 32

[model]
mixer = "{mixer}"
d_model = 16
{weights}
[train]
batch_size = 16
steps = 30
lr = 3e-3
eval_every = 10
checkpoint_every = 10
{INTERCHANGE_BLOCK}"#
    )
}

/// A collected table of the experiment of `spec`, exported as CSV to `out` and read back.
fn exported(dir: &Dir, spec: &std::path::Path, table: &str, out: &str) -> String {
    let path = dir.path().join(out);
    dir.ok(
        &[
            "export",
            "table",
            "--table",
            table,
            "--format",
            "csv",
            "--out",
            path.to_str().unwrap(),
        ],
        spec,
    );
    std::fs::read_to_string(&path).unwrap()
}

/// `split,metric → value` of the run's last evaluation, from an exported CSV of its metrics.
fn final_metrics(dir: &Dir, spec: &std::path::Path, out: &str) -> Vec<(String, f64)> {
    let text = exported(dir, spec, "metrics", out);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (step, split, metric, value) = (col("step"), col("split"), col("metric"), col("value"));
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let last = rows
        .iter()
        .map(|r| r[step].parse::<u64>().unwrap())
        .max()
        .unwrap();
    let mut out: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r[step].parse::<u64>().unwrap() == last)
        .map(|r| {
            (
                format!("{},{}", r[split], r[metric]),
                r[value].parse().unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Export → import gives back the model: for every mixer, the imported run's evaluation at step
/// 0 is the trained run's final evaluation (same weights, same data), and its intervention grid
/// runs on it.
#[test]
fn exported_weights_imported_evaluate_exactly_as_the_trained_run() {
    for mixer in [
        "attention",
        "based",
        "base_conv",
        "h3",
        "hyena",
        "mamba",
        "delta_net",
        "gla",
        "mamba2",
    ] {
        let dir = Dir::new();
        let trained = dir.write("trained.toml", &spec("trained", mixer, None));
        dir.ok(&["run", "-q"], &trained);
        dir.ok(
            &["export", "weights", "--run", "s1", "--out", "w.safetensors"],
            &trained,
        );
        let imported = dir.write(
            "imported.toml",
            &spec("imported", mixer, Some("w.safetensors")),
        );
        dir.ok(&["run", "-q"], &imported);
        let status = crate::stdout(&dir.ok(&["status"], &imported));
        assert!(status.contains("imported"), "{status}");
        let (a, b) = (
            final_metrics(&dir, &trained, "a.csv"),
            final_metrics(&dir, &imported, "b.csv"),
        );
        assert_eq!(a.len(), b.len(), "{mixer}");
        for ((ka, va), (kb, vb)) in a.iter().zip(&b) {
            assert_eq!(ka, kb);
            assert!(
                (va - vb).abs() <= 1e-6 * va.abs().max(1.0),
                "{mixer} {ka}: {va} vs {vb}"
            );
        }
        let text = exported(&dir, &imported, "runs", "runs.csv");
        assert!(text.contains("imported"), "{text}");
        assert!(text.contains("w.safetensors (blake3 "), "{text}");
        let iv = exported(&dir, &imported, "interventions", "iv.csv");
        assert!(iv.lines().count() > 1, "{mixer}");
    }
}

/// A dict that does not fit is refused at validate, with the key's place and every mismatch;
/// nothing runs.
#[test]
fn a_dict_that_does_not_fit_is_refused_with_every_mismatch() {
    let dir = Dir::new();
    let trained = dir.write("trained.toml", &spec("trained", "mamba", None));
    dir.ok(&["run", "-q"], &trained);
    dir.ok(
        &["export", "weights", "--run", "s1", "--out", "w.safetensors"],
        &trained,
    );
    let wrong = dir.write("wrong.toml", &spec("wrong", "hyena", Some("w.safetensors")));
    let err = dir.fails(&["validate"], &wrong);
    assert!(err.contains("wrong.toml:"), "{err}");
    assert!(err.contains("model.weights"), "{err}");
    assert!(err.contains("does not fit the model"), "{err}");
    assert!(err.contains("its names are a mamba model's"), "{err}");
    assert!(err.contains("missing"), "{err}");
    let missing = dir.write(
        "missing.toml",
        &spec("missing", "mamba", Some("nope.safetensors")),
    );
    let err = dir.fails(&["validate"], &missing);
    assert!(
        err.contains("cannot read") && err.contains("nope.safetensors"),
        "{err}"
    );
    dir.write("garbage.safetensors", "not a safetensors file");
    let garbage = dir.write(
        "garbage.toml",
        &spec("garbage", "mamba", Some("garbage.safetensors")),
    );
    let err = dir.fails(&["validate"], &garbage);
    assert!(err.contains("safetensors"), "{err}");
}

/// A dict written by flash-linear-attention's own DeltaNet module (in zoology's LM names) runs
/// as a mechlab run: loaded, evaluated, intervened on.
#[test]
fn a_dict_written_by_the_reference_module_becomes_a_run() {
    let dir = Dir::new();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/import/delta_net_fla.safetensors"
    );
    let spec = dir.write("fla.toml", &spec("fla", "delta_net", Some(fixture)));
    dir.ok(&["run", "-q"], &spec);
    let metrics = final_metrics(&dir, &spec, "m.csv");
    assert_eq!(metrics.len(), 6, "{metrics:?}");
    let iv = exported(&dir, &spec, "interventions", "iv.csv");
    assert!(iv.lines().count() > 1);
}
