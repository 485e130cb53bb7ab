//! The schemas of the per-node shards: one tidy row per observation, built from the rows the
//! science modules return.

use polars::prelude::*;

use crate::interp::{AblationRow, DetailRow, InterchangeRow};
use crate::train::MetricRow;

/// The frames of one shard (one per evaluated step) stacked into one.
pub fn stack(frames: Vec<DataFrame>) -> PolarsResult<DataFrame> {
    let mut frames = frames.into_iter();
    let Some(mut out) = frames.next() else {
        return Ok(DataFrame::empty());
    };
    for f in frames {
        out.vstack_mut(&f)?;
    }
    out.rechunk_mut();
    Ok(out)
}

/// `step: i64, split: str, metric: str, value: f64`, one row per observation.
pub fn metrics_frame(rows: &[MetricRow]) -> DataFrame {
    DataFrame::new_infer_height(vec![
        Column::new(
            "step".into(),
            rows.iter().map(|r| r.step as i64).collect::<Vec<_>>(),
        ),
        Column::new(
            "split".into(),
            rows.iter().map(|r| r.split.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "metric".into(),
            rows.iter().map(|r| r.metric.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "value".into(),
            rows.iter().map(|r| r.value).collect::<Vec<_>>(),
        ),
    ])
    .expect("columns have equal length")
}

/// `step` and `split` columns (constant over the shard) followed by `columns`.
fn tagged(step: u64, split: &str, n: usize, columns: Vec<Column>) -> PolarsResult<DataFrame> {
    let mut all = vec![
        Column::new("step".into(), vec![step as i64; n]),
        Column::new("split".into(), vec![split; n]),
    ];
    all.extend(columns);
    DataFrame::new_infer_height(all)
}

/// One row per grid cell of an interchange intervention, tagged with the training `step` the
/// weights come from and the data `split`.
pub fn interventions_frame(rows: &[InterchangeRow], step: u64, split: &str) -> DataFrame {
    let f = |get: fn(&InterchangeRow) -> f64| rows.iter().map(get).collect::<Vec<f64>>();
    tagged(
        step,
        split,
        rows.len(),
        vec![
            Column::new(
                "layer".into(),
                rows.iter().map(|r| r.layer as i64).collect::<Vec<_>>(),
            ),
            Column::new(
                "site".into(),
                rows.iter().map(|r| r.site.name()).collect::<Vec<_>>(),
            ),
            Column::new(
                "corrupted_role".into(),
                rows.iter()
                    .map(|r| r.corrupted_role.name())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "patch_role".into(),
                rows.iter().map(|r| r.patch_role.name()).collect::<Vec<_>>(),
            ),
            Column::new(
                "n".into(),
                rows.iter().map(|r| r.n as i64).collect::<Vec<_>>(),
            ),
            Column::new("p_orig".into(), f(|r| r.p_orig)),
            Column::new("p_corr".into(), f(|r| r.p_corr)),
            Column::new("p_rest".into(), f(|r| r.p_rest)),
            Column::new("logit_orig".into(), f(|r| r.logit_orig)),
            Column::new("logit_corr".into(), f(|r| r.logit_corr)),
            Column::new("logit_rest".into(), f(|r| r.logit_rest)),
            Column::new("prob_diff".into(), f(|r| r.prob_diff)),
            Column::new("logit_diff".into(), f(|r| r.logit_diff)),
            Column::new("kl".into(), f(|r| r.kl)),
            Column::new("attrib".into(), f(|r| r.attrib)),
        ],
    )
    .expect("columns have equal length")
}

/// One row per example and corrupted role: the grid cell that restored the most probability.
pub fn detail_frame(rows: &[DetailRow], step: u64, split: &str) -> DataFrame {
    tagged(
        step,
        split,
        rows.len(),
        vec![
            Column::new(
                "example".into(),
                rows.iter().map(|r| r.example as i64).collect::<Vec<_>>(),
            ),
            Column::new(
                "corrupted_role".into(),
                rows.iter()
                    .map(|r| r.corrupted_role.name())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "p_orig".into(),
                rows.iter().map(|r| r.p_orig).collect::<Vec<_>>(),
            ),
            Column::new(
                "p_corr".into(),
                rows.iter().map(|r| r.p_corr).collect::<Vec<_>>(),
            ),
            Column::new(
                "best_layer".into(),
                rows.iter().map(|r| r.best_layer as i64).collect::<Vec<_>>(),
            ),
            Column::new(
                "best_site".into(),
                rows.iter().map(|r| r.best_site.name()).collect::<Vec<_>>(),
            ),
            Column::new(
                "best_patch_role".into(),
                rows.iter()
                    .map(|r| r.best_patch_role.name())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "best_prob_diff".into(),
                rows.iter().map(|r| r.best_prob_diff).collect::<Vec<_>>(),
            ),
        ],
    )
    .expect("columns have equal length")
}

/// One row per (layer, site, ablated role) of an ablation grid.
pub fn ablations_frame(rows: &[AblationRow], step: u64, split: &str) -> DataFrame {
    let f = |get: fn(&AblationRow) -> f64| rows.iter().map(get).collect::<Vec<f64>>();
    tagged(
        step,
        split,
        rows.len(),
        vec![
            Column::new(
                "layer".into(),
                rows.iter().map(|r| r.layer as i64).collect::<Vec<_>>(),
            ),
            Column::new(
                "site".into(),
                rows.iter().map(|r| r.site.name()).collect::<Vec<_>>(),
            ),
            Column::new(
                "ablated_role".into(),
                rows.iter()
                    .map(|r| r.ablated_role.name())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "mode".into(),
                rows.iter().map(|r| r.mode.name()).collect::<Vec<_>>(),
            ),
            Column::new(
                "n".into(),
                rows.iter().map(|r| r.n as i64).collect::<Vec<_>>(),
            ),
            Column::new("p_orig".into(), f(|r| r.p_orig)),
            Column::new("p_abl".into(), f(|r| r.p_abl)),
            Column::new("logit_orig".into(), f(|r| r.logit_orig)),
            Column::new("logit_abl".into(), f(|r| r.logit_abl)),
            Column::new("prob_drop".into(), f(|r| r.prob_drop)),
            Column::new("kl".into(), f(|r| r.kl)),
        ],
    )
    .expect("columns have equal length")
}
