//! `data show` and `data stats`, and a run on ATR with a dev split.

use crate::common::{Dir, TINY};
use crate::stdout;

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
