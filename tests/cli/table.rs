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
