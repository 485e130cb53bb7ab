//! Collects per-node shards of one experiment into its tidy tables, in memory ([`Tables`]).

use std::collections::BTreeSet;

use polars::prelude::*;
use serde_json::Value;

use super::ReportError;
use super::tables::{PARAMS_COLUMN, Tables, param};
use crate::plan::{PlannedRun, RunGraph};
use crate::store::shards::{interventions_frame, metrics_frame};
use crate::store::{NodeState, RunSummary, Shard, Status, Store, StoreError, Table};

/// Columns every runs table has, beside the swept ones (same dotted names as the spec).
const CORE_COLUMNS: [&str; 6] = [
    "task.kind",
    "model.mixer",
    "model.d_model",
    "model.layers",
    "train.lr",
    "train.steps",
];

/// An experiment's tables as collected now, and the shards left out.
#[derive(Debug, Clone)]
pub struct Collected {
    pub tables: Tables,
    /// Shards left out because they failed their checksum or are missing (`mechlab run`
    /// recomputes their nodes).
    pub warnings: Vec<String>,
}

/// What the store holds of one run's training.
struct Trained {
    status: Status,
    summary: Option<RunSummary>,
    /// Every observation, when the run is done and its shard trusted.
    metrics: Option<DataFrame>,
    /// Observations so far, from the latest checkpoint of a run not done.
    progress: Option<DataFrame>,
    /// Updates completed: the schedule's length when done, else the latest checkpoint's.
    step: Option<i64>,
}

/// The experiment's tables from the store: `runs` (one row per run of the plan, done or not),
/// `metrics` (every observation of every done run), `progress` (the same for runs not done
/// yet, from their latest checkpoints), and the evaluation nodes' tables. Reads only.
pub fn collect(graph: &RunGraph, store: &Store) -> Result<Collected, ReportError> {
    let mut warnings = Vec::new();
    let trained = graph
        .runs
        .iter()
        .map(|run| trained(run, store, &mut warnings))
        .collect::<Result<Vec<_>, _>>()?;
    let runs = runs_frame(graph, &trained)?;
    let stacked = |frames: Vec<DataFrame>, table: Table| -> Result<DataFrame, ReportError> {
        if frames.is_empty() {
            with_run_id(metrics_frame(&[]), "")
        } else {
            concat_df(&frames, table)
        }
    };
    let (mut metric_frames, mut progress_frames) = (Vec::new(), Vec::new());
    let (mut backends, mut devices) = (BTreeSet::new(), BTreeSet::new());
    for (run, t) in graph.runs.iter().zip(&trained) {
        if let Some(df) = &t.metrics {
            metric_frames.push(with_run_id(df.clone(), &run.train)?);
            backends.extend(t.status.backend.clone());
            devices.extend(t.status.device.clone());
        }
        if let Some(df) = &t.progress {
            progress_frames.push(with_run_id(df.clone(), &run.train)?);
        }
    }
    let (interventions, detail, ablations) = evaluations(graph, store, &mut warnings)?;
    let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
    let metadata = [
        ("mechlab.spec_hash", graph.spec_hash.clone()),
        ("mechlab.version", crate::VERSION.to_string()),
        ("mechlab.experiment", graph.experiment.clone()),
        ("mechlab.backend", join(&backends)),
        ("mechlab.device", join(&devices)),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec();
    Ok(Collected {
        tables: Tables {
            runs,
            metrics: stacked(metric_frames, Table::Metrics)?,
            progress: stacked(progress_frames, Table::Progress)?,
            interventions,
            detail,
            ablations,
            metadata,
        },
        warnings,
    })
}

/// One run's training as the store has it; a done run whose shard is missing or corrupt reads
/// as pending (with a warning): `mechlab run` recomputes it.
fn trained(
    run: &PlannedRun,
    store: &Store,
    warnings: &mut Vec<String>,
) -> Result<Trained, ReportError> {
    let mut status = store.status(&run.train)?;
    // An unreadable summary leaves the run's parameter count empty rather than blocking the
    // whole experiment's tables.
    let summary = store.run_summary(&run.train).ok().flatten();
    let metrics = match status.state {
        // A corrupt shard is reported by `trusted` as corrupt; only an absent one as missing.
        NodeState::Done => match store.read_shard(&run.train, Shard::Metrics) {
            Ok(None) => {
                warnings.push(format!(
                    "{}: missing, though the node is done; `mechlab run` on its spec recomputes the node",
                    store.node(&run.train).shard(Shard::Metrics).display()
                ));
                None
            }
            read => trusted(read, warnings)?,
        },
        _ => None,
    };
    if status.state == NodeState::Done && metrics.is_none() {
        status.state = NodeState::Pending;
    }
    let progress = metrics
        .is_none()
        .then(|| store.checkpointed(&run.train))
        .flatten();
    let step = match (&metrics, &progress) {
        (Some(_), _) => Some(run.point.train.steps as i64),
        (None, Some(p)) => Some(p.step as i64),
        (None, None) => status.step.map(|s| s as i64),
    };
    Ok(Trained {
        status,
        summary,
        metrics,
        progress: progress.map(|p| metrics_frame(&p.metrics)),
        step,
    })
}

/// One row per run: ids, then core and swept parameters (sorted), every parameter as JSON, then
/// outcome.
fn runs_frame(graph: &RunGraph, trained: &[Trained]) -> Result<DataFrame, ReportError> {
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
    let params: Vec<Value> = graph.runs.iter().map(|r| r.point.params()).collect();
    let n = graph.runs.len();
    let text = |f: &dyn Fn(&PlannedRun) -> &str| -> Vec<String> {
        graph.runs.iter().map(|r| f(r).to_string()).collect()
    };
    let mut columns = vec![
        Column::new("run_id".into(), text(&|r| &r.train)),
        Column::new("experiment".into(), vec![graph.experiment.as_str(); n]),
        Column::new("name".into(), text(&|r| &r.point.name)),
    ];
    for key in &param_keys {
        let values: Vec<Value> = params
            .iter()
            .map(|p| param(p, key).cloned().unwrap_or(Value::Null))
            .collect();
        columns.push(typed_column(key, &values));
    }
    let statuses = || trained.iter().map(|t| &t.status);
    columns.extend([
        Column::new(
            PARAMS_COLUMN.into(),
            params.iter().map(Value::to_string).collect::<Vec<_>>(),
        ),
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
            trained
                .iter()
                .map(|t| t.summary.as_ref().map(|s| s.params as i64))
                .collect::<Vec<_>>(),
        ),
        // The reference's own count (its Mamba ablation without a convolution still allocates one).
        Column::new(
            "reference_params".into(),
            trained
                .iter()
                .zip(&graph.runs)
                .map(|(t, r)| {
                    t.summary
                        .as_ref()
                        .map(|s| (s.params + r.point.model.reference_only_params()) as i64)
                })
                .collect::<Vec<_>>(),
        ),
        // Where the weights came from: trained here, or `model.weights` (the file, its blake3).
        Column::new(
            "origin".into(),
            graph
                .runs
                .iter()
                .map(|r| match r.point.imported {
                    None => "trained",
                    Some(_) => "imported",
                })
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "weights_file".into(),
            graph
                .runs
                .iter()
                .map(|r| {
                    r.point
                        .imported
                        .as_ref()
                        .map(|i| format!("{} (blake3 {})", i.path.display(), i.blake3))
                })
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "step".into(),
            trained.iter().map(|t| t.step).collect::<Vec<_>>(),
        ),
        Column::new(
            "status".into(),
            statuses().map(|s| s.state.to_string()).collect::<Vec<_>>(),
        ),
        Column::new(
            "wall_s".into(),
            statuses().map(|s| s.wall_s).collect::<Vec<_>>(),
        ),
        Column::new(
            "backend".into(),
            statuses().map(|s| s.backend.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "device".into(),
            statuses().map(|s| s.device.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "error".into(),
            statuses().map(|s| s.error.clone()).collect::<Vec<_>>(),
        ),
    ]);
    DataFrame::new(n, columns).map_err(|e| ReportError::Shard {
        path: "runs".into(),
        message: e.to_string(),
    })
}

/// The evaluation nodes' shards stacked: interventions (empty when none), per-example detail
/// and ablations (absent when none).
type Evaluations = (DataFrame, Option<DataFrame>, Option<DataFrame>);

fn evaluations(
    graph: &RunGraph,
    store: &Store,
    warnings: &mut Vec<String>,
) -> Result<Evaluations, ReportError> {
    let mut frames: [Vec<DataFrame>; 3] = Default::default();
    for run in &graph.runs {
        for (k, eval) in run.evals.iter().enumerate() {
            if store.status(eval)?.state != NodeState::Done {
                continue;
            }
            // Each evaluate node writes the shards of its kind.
            for (shard, frames) in Shard::EVALUATION.into_iter().zip(frames.iter_mut()) {
                if let Some(df) = trusted(store.read_shard(eval, shard), warnings)? {
                    frames.push(tag(df, &run.train, k, &store.node(eval).shard(shard))?);
                }
            }
        }
    }
    let [interventions, detail, ablations] = frames;
    let interventions = if interventions.is_empty() {
        tag(
            interventions_frame(&[], 0, "test"),
            "",
            0,
            std::path::Path::new("interventions"),
        )?
    } else {
        concat_df(&interventions, Table::Interventions)?
    };
    let optional = |frames: Vec<DataFrame>, table| {
        (!frames.is_empty())
            .then(|| concat_df(&frames, table))
            .transpose()
    };
    Ok((
        interventions,
        optional(detail, Table::InterventionsDetail)?,
        optional(ablations, Table::Ablations)?,
    ))
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
