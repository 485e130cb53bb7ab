//! Per-example statistics of generated data, for `mechlab data stats`.

use polars::prelude::*;

use crate::task::atr::ExampleStats;
use crate::task::{Dataset, Role};

/// One row per example: `length` (tokens before padding), `key_value_distance`,
/// `query_key_distance`, and for ATR `yield_length`, `depth`, `repeated_share`,
/// `eligible_pairs`.
pub fn data_stats_frame(data: &Dataset, atr: Option<&[ExampleStats]>) -> DataFrame {
    let n = data.len();
    let pos = |i: usize, r: Role| data.position(i, r) as i64;
    let mut columns = vec![
        Column::new(
            "length".into(),
            (0..n).map(|i| data.length(i) as i64).collect::<Vec<_>>(),
        ),
        Column::new(
            "key_value_distance".into(),
            (0..n)
                .map(|i| pos(i, Role::Value) - pos(i, Role::Key))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "query_key_distance".into(),
            (0..n)
                .map(|i| pos(i, Role::Query) - pos(i, Role::Key))
                .collect::<Vec<_>>(),
        ),
    ];
    if let Some(stats) = atr {
        columns.extend([
            Column::new(
                "yield_length".into(),
                stats.iter().map(|s| s.length as i64).collect::<Vec<_>>(),
            ),
            Column::new(
                "depth".into(),
                stats.iter().map(|s| s.depth as i64).collect::<Vec<_>>(),
            ),
            Column::new(
                "repeated_share".into(),
                stats.iter().map(|s| s.repeated_share).collect::<Vec<_>>(),
            ),
            Column::new(
                "eligible_pairs".into(),
                stats
                    .iter()
                    .map(|s| s.eligible_pairs as i64)
                    .collect::<Vec<_>>(),
            ),
        ]);
    }
    DataFrame::new(n, columns).expect("columns have equal length")
}

/// Every column of a stats frame as `f64`s, for summaries.
pub fn data_stats_columns(frame: &DataFrame) -> Vec<(String, Vec<f64>)> {
    frame
        .columns()
        .iter()
        .map(|c| {
            let values = c
                .cast(&DataType::Float64)
                .ok()
                .and_then(|c| c.f64().ok().map(|ca| ca.into_no_null_iter().collect()))
                .unwrap_or_default();
            (c.name().to_string(), values)
        })
        .collect()
}

/// Mean, standard deviation and quantiles (min, median, 90th percentile, max) of every column
/// of a stats frame, one row per statistic.
pub fn summary_table(frame: &DataFrame) -> super::text::TextTable {
    let mut table =
        super::text::TextTable::new(["statistic", "mean", "std", "min", "p50", "p90", "max"])
            .numbers_from(1);
    for (name, mut v) in data_stats_columns(frame) {
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len().max(1) as f64;
        let mean = v.iter().sum::<f64>() / n;
        let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        // Nearest-rank quantile on the sorted values; NaN for an empty split.
        let q = |p: f64| {
            v.get(((v.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        table.push(vec![
            name,
            format!("{mean:.3}"),
            format!("{std:.3}"),
            format!("{:.2}", q(0.0)),
            format!("{:.2}", q(0.5)),
            format!("{:.2}", q(0.9)),
            format!("{:.2}", q(1.0)),
        ]);
    }
    table
}
