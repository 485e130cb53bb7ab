//! `table`: the report tables a spec declares.

use crate::common::{Dir, TINY};
use crate::stdout;

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

/// A tables-only file composes one table from two experiments, each through its own filter, as
/// the paper takes attention from one experiment and the other mixers from another.
#[test]
fn a_table_composed_from_several_experiments_takes_each_runs_through_its_filter() {
    let dir = Dir::new();
    // Experiment `pe`: attention and based with positions; `nope`: both without.
    for (name, pos) in [("pe", "true"), ("nope", "false")] {
        let text = TINY
            .replace("name = \"tiny\"", &format!("name = \"{name}\""))
            .replace("d_model = 16", &format!("d_model = 16\npos_emb = {pos}"))
            .replace(
                "\"train.lr\" = [1e-3, 3e-3]",
                "\"train.lr\" = [3e-3]\n\"model.mixer\" = [\"attention\", \"based\"]",
            )
            + "\n[[interventions]]\nkind = \"interchange\"\nsites = [\"block_input\"]\nexamples = 16\n";
        dir.write(&format!("{name}.toml"), &text);
    }
    let tables = dir.write(
        "tables.toml",
        r#"
[[tables]]
name = "composed"
rows = "model.mixer"
columns = "model.d_model"
best_of = "train.lr"
sources = [
  { spec = "pe.toml", filter = { "model.mixer" = "attention" } },
  { spec = "nope.toml", filter = { "model.mixer" = ["based"] } },
]

[[tables]]
name = "attrib"
rows = "model.mixer"
columns = "model.d_model"
best_of = "train.lr"
attrib = { layer = 0, patch = "key" }
sources = [{ spec = "nope.toml" }]
"#,
    );
    let out = stdout(&dir.ok(&["validate"], &tables));
    assert!(out.contains("ok: 2 tables over 2 source specs"), "{out}");
    // Nothing ran yet: two cells, both missing.
    let out = stdout(&dir.ok(&["table", "--name", "composed"], &tables));
    assert!(out.contains("2 runs not done yet"), "{out}");
    // Only `nope` ran: based has a value, attention (from `pe`) is still missing.
    dir.ok(&["run", "-q"], &dir.path().join("nope.toml"));
    let csv = stdout(&dir.ok(&["table", "--format", "csv", "--name", "composed"], &tables));
    // Restoring the corrupted key at its own position at layer 0's input restores the answer
    // exactly: Attrib 1 in every cell, shown as a fraction, not a percentage.
    let attrib = stdout(&dir.ok(&["table", "--format", "csv", "--name", "attrib"], &tables));
    for line in attrib.lines().skip(1) {
        let value: f64 = line.split(',').nth(3).unwrap().parse().unwrap();
        assert!((value - 1.0).abs() < 1e-9, "{attrib}");
    }
    assert_eq!(attrib.lines().count(), 3, "{attrib}");
    let cell = |mixer: &str| -> String {
        csv.lines()
            .find(|l| l.starts_with(&format!("composed,{mixer},")))
            .unwrap_or_else(|| panic!("no {mixer} row: {csv}"))
            .split(',')
            .nth(3)
            .unwrap()
            .to_string()
    };
    assert_eq!(cell("attention"), "", "{csv}");
    let based_nope = cell("based");
    assert!(!based_nope.is_empty(), "{csv}");
    // After `pe` ran too, attention comes from `pe`, and based still from `nope`.
    dir.ok(&["run", "-q"], &dir.path().join("pe.toml"));
    let csv = stdout(&dir.ok(&["table", "--format", "csv", "--name", "composed"], &tables));
    assert!(!cell_of(&csv, "attention").is_empty(), "{csv}");
    assert_eq!(cell_of(&csv, "based"), based_nope, "{csv}");
    assert_eq!(
        csv.lines().count(),
        3,
        "one header, one row per mixer: {csv}"
    );
    // A folder run skips the tables-only file; `table` on the folder prints it.
    let out = stdout(&dir.ok(&["table"], dir.path()));
    assert!(out.contains("composed"), "{out}");
}

fn cell_of(csv: &str, mixer: &str) -> String {
    csv.lines()
        .find(|l| l.starts_with(&format!("composed,{mixer},")))
        .and_then(|l| l.split(',').nth(3))
        .unwrap_or_default()
        .to_string()
}

/// Every file under `dir` with its bytes and modification time.
fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>, std::time::SystemTime)> {
    let mut files: Vec<_> = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let modified = e.metadata().unwrap().modified().unwrap();
            (
                e.path().to_path_buf(),
                std::fs::read(e.path()).unwrap(),
                modified,
            )
        })
        .collect();
    files.sort();
    files
}

/// `table`, `plot` and `export table` read the results collected in memory: they never
/// rewrite the experiment's collected tables (only `collect` and `run` write them), and what
/// `collect` wrote reads back as the tables the views were built from.
#[test]
fn views_never_rewrite_the_collected_tables() {
    let dir = Dir::new();
    let text = TINY.to_string()
        + r#"
[[tables]]
name = "best"
rows = "model.mixer"
columns = "model.d_model"
best_of = "train.lr"
"#;
    let spec = dir.write("tiny.toml", &text);
    dir.ok(&["run", "-q"], &spec);
    let tables_dir = dir.results().join("tiny");
    let before = snapshot(&tables_dir);
    std::thread::sleep(std::time::Duration::from_millis(20));
    dir.ok(&["table"], &spec);
    let figures = dir.path().join("figures");
    let out = figures.to_str().unwrap();
    dir.ok(&["plot", "--kind", "curves", "--out", out], &spec);
    let export = dir.path().join("metrics.csv");
    let export = export.to_str().unwrap();
    dir.ok(
        &[
            "export", "table", "--table", "metrics", "--format", "csv", "--out", export,
        ],
        &spec,
    );
    assert_eq!(snapshot(&tables_dir), before, "a view rewrote the tables");

    // The files read back as the tables collected in memory, every parameter included.
    let resolved = mechlab::spec::load(
        &spec,
        &mechlab::spec::LoadOptions {
            max_memory: Some(u64::MAX),
            ..Default::default()
        },
    )
    .unwrap();
    let graph = mechlab::plan::plan(&resolved);
    let store = mechlab::store::Store::new(dir.results());
    let collected = mechlab::report::collect(&graph, &store).unwrap().tables;
    let read = mechlab::report::Tables::read(&store.experiment("tiny")).unwrap();
    assert!(read.runs.equals_missing(&collected.runs));
    assert!(read.metrics.equals_missing(&collected.metrics));
    assert!(read.interventions.equals_missing(&collected.interventions));
    let params = read.run_params().unwrap();
    assert_eq!(params.len(), 2);
    for ((id, p), run) in params.iter().zip(&graph.runs) {
        assert_eq!(id, &run.train);
        assert_eq!(p, &run.point.params());
        assert_eq!(p["train"]["lr"], run.point.train.lr);
    }
}
