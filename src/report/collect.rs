//! Collects per-node shards of one experiment into its tidy tables.

use std::collections::BTreeSet;

use polars::prelude::*;
use serde_json::{Value, json};

use super::ReportError;
use crate::plan::RunGraph;
use crate::spec::sweep::get_dotted;
use crate::store::shards::{interventions_frame, metrics_frame};
use crate::store::{ExperimentDir, NodeState, Shard, Store, StoreError, Table, write_parquet};

/// Columns every runs table has, beside the swept ones (same dotted names as the spec).
const CORE_COLUMNS: [&str; 6] = [
    "task.kind",
    "model.mixer",
    "model.d_model",
    "model.layers",
    "train.lr",
    "train.steps",
];

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectSummary {
    pub runs: usize,
    pub done: usize,
    pub metric_rows: usize,
    pub intervention_rows: usize,
    /// Where the tables are.
    pub tables: ExperimentDir,
    /// Shards left out because they failed their checksum or are missing (`mechlab run`
    /// recomputes their nodes).
    pub warnings: Vec<String>,
}

/// Writes `runs.parquet` (one row per run, every run of the plan, done or not),
/// `metrics.parquet` (one row per observation of every done run) and `progress.parquet` (the
/// same rows for runs not done yet, from their latest checkpoints).
pub fn collect(graph: &RunGraph, store: &Store) -> Result<CollectSummary, ReportError> {
    let mut statuses = Vec::new();
    let mut summaries = Vec::new();
    let mut metric_frames = Vec::new();
    let mut progress_frames = Vec::new();
    let mut steps_done: Vec<Option<i64>> = Vec::new();
    let mut backends = BTreeSet::new();
    let mut devices = BTreeSet::new();
    let mut warnings = Vec::new();
    for run in &graph.runs {
        let mut status = store.status(&run.train)?;
        // An unreadable summary leaves the run's parameter count empty rather than blocking the
        // whole experiment's tables.
        let summary = store.run_summary(&run.train).ok().flatten();
        let shard = store.node(&run.train).shard(Shard::Metrics);
        let df = match status.state {
            // A corrupt shard is reported by `trusted` as corrupt; only an absent one as missing.
            NodeState::Done => match store.read_shard(&run.train, Shard::Metrics) {
                Ok(None) => {
                    warnings.push(format!(
                        "{}: missing, though the node is done; `mechlab run` on its spec recomputes the node",
                        shard.display()
                    ));
                    None
                }
                read => trusted(read, &mut warnings)?,
            },
            _ => None,
        };
        if status.state == NodeState::Done && df.is_none() {
            // Shown as not done: `mechlab run` recomputes it.
            status.state = NodeState::Pending;
        }
        let progress = (df.is_none())
            .then(|| super::progress::checkpointed(store, &run.train))
            .flatten();
        steps_done.push(if df.is_some() {
            Some(run.point.train.steps as i64)
        } else {
            progress
                .as_ref()
                .map(|p| p.step as i64)
                .or(status.step.map(|s| s as i64))
        });
        if let Some(p) = progress {
            progress_frames.push(with_run_id(metrics_frame(&p.metrics), &run.train)?);
        }
        if let Some(df) = df {
            metric_frames.push(with_run_id(df, &run.train)?);
            backends.extend(status.backend.clone());
            devices.extend(status.device.clone());
        }
        statuses.push(status);
        summaries.push(summary);
    }

    // Column order: ids, then core and swept parameters (sorted), then outcome.
    let mut param_keys: BTreeSet<String> = CORE_COLUMNS.iter().map(|s| s.to_string()).collect();
    for run in &graph.runs {
        param_keys.extend(
            run.point
                .axes
                .iter()
                .map(|(k, _)| k.clone())
                .filter(|k| k != "seed"),
        );
    }
    let n = graph.runs.len();
    let mut columns = vec![
        Column::new(
            "run_id".into(),
            graph
                .runs
                .iter()
                .map(|r| r.train.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new("experiment".into(), vec![graph.experiment.as_str(); n]),
        Column::new(
            "name".into(),
            graph
                .runs
                .iter()
                .map(|r| r.point.name.as_str())
                .collect::<Vec<_>>(),
        ),
    ];
    for key in &param_keys {
        let values: Vec<Value> = graph
            .runs
            .iter()
            .map(|r| {
                let resolved =
                    json!({"task": r.point.task, "model": r.point.model, "train": r.point.train});
                r.point
                    .axes
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
                    .or_else(|| get_dotted(&resolved, key).cloned())
                    .unwrap_or(Value::Null)
            })
            .collect();
        columns.push(typed_column(key, &values));
    }
    columns.extend([
        Column::new(
            "seed".into(),
            graph
                .runs
                .iter()
                .map(|r| r.point.seed as i64)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "params".into(),
            summaries
                .iter()
                .map(|s| s.as_ref().map(|s| s.params as i64))
                .collect::<Vec<_>>(),
        ),
        // The reference's own count (its Mamba ablation without a convolution still allocates one).
        Column::new(
            "reference_params".into(),
            summaries
                .iter()
                .zip(&graph.runs)
                .map(|(s, r)| {
                    s.as_ref()
                        .map(|s| (s.params + r.point.model.reference_only_params()) as i64)
                })
                .collect::<Vec<_>>(),
        ),
        // Updates completed: the schedule's length when done, else the latest checkpoint's.
        Column::new("step".into(), steps_done),
        Column::new(
            "status".into(),
            statuses
                .iter()
                .map(|s| s.state.to_string())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "wall_s".into(),
            statuses.iter().map(|s| s.wall_s).collect::<Vec<_>>(),
        ),
        Column::new(
            "backend".into(),
            statuses
                .iter()
                .map(|s| s.backend.clone())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "device".into(),
            statuses
                .iter()
                .map(|s| s.device.clone())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "error".into(),
            statuses.iter().map(|s| s.error.clone()).collect::<Vec<_>>(),
        ),
    ]);
    let mut runs = DataFrame::new(n, columns).map_err(|e| ReportError::Shard {
        path: "runs".into(),
        message: e.to_string(),
    })?;

    let empty_metrics = || with_run_id(metrics_frame(&[]), "");
    let mut metrics = if metric_frames.is_empty() {
        empty_metrics()?
    } else {
        concat_df(&metric_frames, Table::Metrics)?
    };
    let mut progress = if progress_frames.is_empty() {
        empty_metrics()?
    } else {
        concat_df(&progress_frames, Table::Progress)?
    };

    let mut intervention_frames = Vec::new();
    let mut detail_frames = Vec::new();
    let mut ablation_frames = Vec::new();
    for run in &graph.runs {
        for (k, eval) in run.evals.iter().enumerate() {
            if store.status(eval)?.state != NodeState::Done {
                continue;
            }
            // Each evaluate node writes the shards of its kind.
            for (shard, frames) in Shard::EVALUATION.into_iter().zip([
                &mut intervention_frames,
                &mut detail_frames,
                &mut ablation_frames,
            ]) {
                if let Some(df) = trusted(store.read_shard(eval, shard), &mut warnings)? {
                    frames.push(tag(df, &run.train, k, &store.node(eval).shard(shard))?);
                }
            }
        }
    }
    let mut interventions = if intervention_frames.is_empty() {
        tag(
            interventions_frame(&[], 0, "test"),
            "",
            0,
            std::path::Path::new("interventions"),
        )?
    } else {
        concat_df(&intervention_frames, Table::Interventions)?
    };

    let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
    let metadata = [
        ("mechlab.spec_hash", graph.spec_hash.clone()),
        ("mechlab.version", crate::VERSION.to_string()),
        ("mechlab.experiment", graph.experiment.clone()),
        ("mechlab.backend", join(&backends)),
        ("mechlab.device", join(&devices)),
    ];
    let tables = store.experiment(&graph.experiment);
    write_parquet(&tables.table(Table::Runs), &mut runs, &metadata)?;
    write_parquet(&tables.table(Table::Metrics), &mut metrics, &metadata)?;
    write_parquet(&tables.table(Table::Progress), &mut progress, &metadata)?;
    write_parquet(
        &tables.table(Table::Interventions),
        &mut interventions,
        &metadata,
    )?;
    if !ablation_frames.is_empty() {
        write_parquet(
            &tables.table(Table::Ablations),
            &mut concat_df(&ablation_frames, Table::Ablations)?,
            &metadata,
        )?;
    }
    if !detail_frames.is_empty() {
        write_parquet(
            &tables.table(Table::InterventionsDetail),
            &mut concat_df(&detail_frames, Table::InterventionsDetail)?,
            &metadata,
        )?;
    }
    Ok(CollectSummary {
        runs: n,
        done: statuses
            .iter()
            .filter(|s| s.state == NodeState::Done)
            .count(),
        metric_rows: metrics.height(),
        intervention_rows: interventions.height(),
        tables,
        warnings,
    })
}

/// `df` with a first column `run_id` (every row `id`).
fn with_run_id(mut df: DataFrame, id: &str) -> Result<DataFrame, ReportError> {
    let n = df.height();
    let column = Column::new_scalar("run_id".into(), Scalar::from(PlSmallStr::from(id)), n);
    df.insert_column(0, column)
        .map_err(|e| ReportError::Shard {
            path: format!("run {id}"),
            message: e.to_string(),
        })?;
    Ok(df)
}

/// A shard read from the store, or `None` with a warning when it fails its checksum: one damaged
/// node never blocks an experiment's tables.
fn trusted(
    read: Result<Option<DataFrame>, StoreError>,
    warnings: &mut Vec<String>,
) -> Result<Option<DataFrame>, ReportError> {
    match read {
        Ok(df) => Ok(df),
        Err(e @ (StoreError::Corrupt { .. } | StoreError::Parquet { .. })) => {
            warnings.push(e.to_string());
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Prepends `run_id` and `intervention` (the block's index in the spec) to an evaluation shard.
fn tag(
    mut df: DataFrame,
    run_id: &str,
    block: usize,
    path: &std::path::Path,
) -> Result<DataFrame, ReportError> {
    let n = df.height();
    let err = |e: PolarsError| ReportError::Shard {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    df.insert_column(0, Column::new("intervention".into(), vec![block as i64; n]))
        .map_err(err)?;
    df.insert_column(0, Column::new("run_id".into(), vec![run_id; n]))
        .map_err(err)?;
    Ok(df)
}

/// The shards stacked; shards of different schemas (written by another mechlab version, or
/// damaged) are an error naming the table, not a panic.
fn concat_df(frames: &[DataFrame], table: Table) -> Result<DataFrame, ReportError> {
    let mut out = frames[0].clone();
    for f in &frames[1..] {
        out.vstack_mut(f).map_err(|e| ReportError::Shard {
            path: format!("{} shards", table.name()),
            message: format!("shards of different schemas: {e}"),
        })?;
    }
    out.rechunk_mut();
    Ok(out)
}

/// One typed column from JSON values: Boolean, Int64, Float64, else String; nulls kept.
fn typed_column(name: &str, values: &[Value]) -> Column {
    let present = values.iter().filter(|v| !v.is_null());
    let name: PlSmallStr = name.into();
    if present.clone().all(Value::is_boolean) {
        Column::new(name, values.iter().map(Value::as_bool).collect::<Vec<_>>())
    } else if present.clone().all(|v| v.is_i64() || v.is_u64()) {
        Column::new(name, values.iter().map(Value::as_i64).collect::<Vec<_>>())
    } else if present.clone().all(Value::is_number) {
        Column::new(name, values.iter().map(Value::as_f64).collect::<Vec<_>>())
    } else {
        Column::new(
            name,
            values
                .iter()
                .map(|v| match v {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                })
                .collect::<Vec<_>>(),
        )
    }
}
