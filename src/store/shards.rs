//! The schemas of the per-node shards: one tidy row per observation, one column per field of
//! the rows the science modules return ([`super::tidy`]: the row struct is the schema).

use polars::prelude::*;

use super::tidy::tidy;
use crate::interp::{AblationMode, AblationRow, DetailRow, InterchangeRow};
use crate::model::Site;
use crate::task::Role;
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
    let schema = MetricRow {
        step: 0,
        split: String::new(),
        metric: String::new(),
        value: 0.0,
    };
    tidy(rows, &schema)
}

/// `step` and `split` columns (constant over the shard) before the rows' own.
fn tagged(step: u64, split: &str, mut df: DataFrame) -> DataFrame {
    let n = df.height();
    for (i, column) in [
        Column::new("step".into(), vec![step as i64; n]),
        Column::new("split".into(), vec![split; n]),
    ]
    .into_iter()
    .enumerate()
    {
        df.insert_column(i, column)
            .expect("a fresh column of the frame's height");
    }
    df
}

/// One row per grid cell of an interchange intervention, tagged with the training `step` the
/// weights come from and the data `split`.
pub fn interventions_frame(rows: &[InterchangeRow], step: u64, split: &str) -> DataFrame {
    let schema = InterchangeRow {
        layer: 0,
        site: Site::BlockInput,
        corrupted_role: Role::Key,
        patch_role: Role::Key,
        n: 0,
        p_orig: 0.0,
        p_corr: 0.0,
        p_rest: 0.0,
        logit_orig: 0.0,
        logit_corr: 0.0,
        logit_rest: 0.0,
        prob_diff: 0.0,
        logit_diff: 0.0,
        kl: 0.0,
        attrib: 0.0,
    };
    tagged(step, split, tidy(rows, &schema))
}

/// One row per example and corrupted role: the grid cell that restored the most probability.
pub fn detail_frame(rows: &[DetailRow], step: u64, split: &str) -> DataFrame {
    let schema = DetailRow {
        example: 0,
        corrupted_role: Role::Key,
        p_orig: 0.0,
        p_corr: 0.0,
        best_layer: 0,
        best_site: Site::BlockInput,
        best_patch_role: Role::Key,
        best_prob_diff: 0.0,
    };
    tagged(step, split, tidy(rows, &schema))
}

/// One row per (layer, site, ablated role) of an ablation grid.
pub fn ablations_frame(rows: &[AblationRow], step: u64, split: &str) -> DataFrame {
    let schema = AblationRow {
        layer: 0,
        site: Site::BlockInput,
        ablated_role: Role::Key,
        mode: AblationMode::Zero,
        n: 0,
        p_orig: 0.0,
        p_abl: 0.0,
        logit_orig: 0.0,
        logit_abl: 0.0,
        prob_drop: 0.0,
        kl: 0.0,
    };
    tagged(step, split, tidy(rows, &schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(df: &DataFrame) -> Vec<(String, DataType)> {
        df.columns()
            .iter()
            .map(|c| (c.name().to_string(), c.dtype().clone()))
            .collect()
    }

    /// The Parquet schema users read (README, "Where results go"), pinned: a renamed or retyped
    /// field of a row struct changes the tables, and must change this test with them.
    #[test]
    fn shard_columns_are_the_row_fields_in_order() {
        let (i, f, s) = (DataType::Int64, DataType::Float64, DataType::String);
        let named = |cols: &[(&str, &DataType)]| -> Vec<(String, DataType)> {
            cols.iter()
                .map(|(n, t)| (n.to_string(), (*t).clone()))
                .collect()
        };
        let rows = [MetricRow {
            step: 7,
            split: "test".into(),
            metric: "accuracy".into(),
            value: 0.5,
        }];
        let m = metrics_frame(&rows);
        assert_eq!(
            schema(&m),
            named(&[("step", &i), ("split", &s), ("metric", &s), ("value", &f)])
        );
        assert_eq!(schema(&metrics_frame(&[])), schema(&m));
        assert_eq!(metrics_frame(&[]).height(), 0);
        let row = InterchangeRow {
            layer: 1,
            site: Site::MixerOutput,
            corrupted_role: Role::Key,
            patch_role: Role::Query,
            n: 3,
            p_orig: 0.9,
            p_corr: 0.1,
            p_rest: 0.5,
            logit_orig: 2.0,
            logit_corr: -1.0,
            logit_rest: 0.5,
            prob_diff: 0.4,
            logit_diff: 1.5,
            kl: 0.2,
            attrib: 0.5,
        };
        let df = interventions_frame(std::slice::from_ref(&row), 10, "test");
        let mut want = vec![("step", &i), ("split", &s), ("layer", &i), ("site", &s)];
        want.extend([("corrupted_role", &s), ("patch_role", &s), ("n", &i)]);
        for c in [
            "p_orig",
            "p_corr",
            "p_rest",
            "logit_orig",
            "logit_corr",
            "logit_rest",
            "prob_diff",
            "logit_diff",
            "kl",
            "attrib",
        ] {
            want.push((c, &f));
        }
        assert_eq!(schema(&df), named(&want));
        assert_eq!(schema(&interventions_frame(&[], 0, "test")), named(&want));
        // Enum values as their names (the same words the spec and the CLI use).
        let text = |c: &str| {
            df.column(c)
                .unwrap()
                .str()
                .unwrap()
                .get(0)
                .unwrap()
                .to_string()
        };
        assert_eq!(text("site"), Site::MixerOutput.name());
        assert_eq!(text("patch_role"), Role::Query.name());
        for site in Site::ALL {
            let one = InterchangeRow {
                site,
                ..row.clone()
            };
            let df = interventions_frame(&[one], 0, "test");
            let got = df
                .column("site")
                .unwrap()
                .str()
                .unwrap()
                .get(0)
                .unwrap()
                .to_string();
            assert_eq!(got, site.name());
        }
        for mode in [AblationMode::Zero, AblationMode::Mean] {
            let row = AblationRow {
                layer: 0,
                site: Site::BlockInput,
                ablated_role: Role::Value,
                mode,
                n: 1,
                p_orig: 0.0,
                p_abl: 0.0,
                logit_orig: 0.0,
                logit_abl: 0.0,
                prob_drop: 0.0,
                kl: 0.0,
            };
            let df = ablations_frame(&[row], 0, "test");
            let got = df
                .column("mode")
                .unwrap()
                .str()
                .unwrap()
                .get(0)
                .unwrap()
                .to_string();
            assert_eq!(got, mode.name());
        }
    }
}
