//! An experiment's collected tables in memory: what [`super::collect`] builds from the store,
//! what every report view (tables, figures, exports) reads, and what `mechlab collect` and
//! `mechlab run` write as Parquet. Views never touch the store or the files.

use polars::prelude::*;
use serde_json::Value;

use super::ReportError;
use crate::spec::sweep::get_dotted;
use crate::store::{ExperimentDir, Table, read_parquet, read_parquet_metadata, write_parquet};

/// The column of `runs` holding each run's parameters ([`crate::spec::RunPoint::params`]) as
/// JSON: any dotted key can be read back, swept or not.
pub const PARAMS_COLUMN: &str = "config";

/// An experiment's tables.
#[derive(Debug, Clone)]
pub struct Tables {
    /// One row per run of the plan, done or not: ids, core and swept parameters, all
    /// parameters as JSON ([`PARAMS_COLUMN`]), outcome.
    pub runs: DataFrame,
    /// One row per observation of every done run.
    pub metrics: DataFrame,
    /// The same rows for runs not done yet, from their latest checkpoints.
    pub progress: DataFrame,
    /// Interchange intervention cells (empty when the spec has none).
    pub interventions: DataFrame,
    /// Per-example interchange rows, when an intervention block asked for them.
    pub detail: Option<DataFrame>,
    /// Ablation cells, when the spec has ablation blocks.
    pub ablations: Option<DataFrame>,
    /// Key-value metadata every file carries (spec hash, mechlab version, backend, device).
    pub metadata: Vec<(String, String)>,
}

impl Tables {
    /// Table `which`, if this experiment has it.
    pub fn get(&self, which: Table) -> Option<&DataFrame> {
        match which {
            Table::Runs => Some(&self.runs),
            Table::Metrics => Some(&self.metrics),
            Table::Progress => Some(&self.progress),
            Table::Interventions => Some(&self.interventions),
            Table::InterventionsDetail => self.detail.as_ref(),
            Table::Ablations => self.ablations.as_ref(),
        }
    }

    /// Runs whose status is `done`.
    pub fn done(&self) -> usize {
        self.runs
            .column("status")
            .ok()
            .and_then(|c| c.str().ok().cloned())
            .map(|s| s.iter().filter(|v| *v == Some("done")).count())
            .unwrap_or(0)
    }

    /// Each run's id and parameters, in the order of `runs`.
    pub fn run_params(&self) -> Result<Vec<(String, Value)>, ReportError> {
        let ids = super::cells::text(&self.runs, "run_id")?;
        let params = super::cells::text(&self.runs, PARAMS_COLUMN)?;
        ids.into_iter()
            .zip(params)
            .map(|(id, json)| {
                let value = serde_json::from_str(&json).map_err(|e| ReportError::Shard {
                    path: format!("runs table, run {id}"),
                    message: format!("column {PARAMS_COLUMN}: {e}"),
                })?;
                Ok((id, value))
            })
            .collect()
    }

    /// Writes every table to `dir` (atomically, file by file), each with [`Tables::metadata`].
    pub fn write(&self, dir: &ExperimentDir) -> Result<(), ReportError> {
        let metadata: Vec<(&str, String)> = self
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        for which in Table::ALL {
            if let Some(df) = self.get(which) {
                write_parquet(&dir.table(which), &mut df.clone(), &metadata)?;
            }
        }
        Ok(())
    }

    /// The tables `write` wrote to `dir`. Tables collected by earlier versions may lack
    /// `progress` (read as empty) and the parameters column.
    pub fn read(dir: &ExperimentDir) -> Result<Tables, ReportError> {
        let optional = |which: Table| -> Result<Option<DataFrame>, ReportError> {
            let path = dir.table(which);
            Ok(if path.exists() {
                Some(read_parquet(&path)?)
            } else {
                None
            })
        };
        let runs_path = dir.table(Table::Runs);
        let metrics = read_parquet(&dir.table(Table::Metrics))?;
        Ok(Tables {
            runs: read_parquet(&runs_path)?,
            progress: optional(Table::Progress)?.unwrap_or_else(|| metrics.clear()),
            metrics,
            interventions: read_parquet(&dir.table(Table::Interventions))?,
            detail: optional(Table::InterventionsDetail)?,
            ablations: optional(Table::Ablations)?,
            metadata: read_parquet_metadata(&runs_path)?,
        })
    }
}

/// The value of dotted `key` in a run's parameters (`seed`, a swept value as written, or the
/// resolved configuration's).
pub fn param<'v>(params: &'v Value, key: &str) -> Option<&'v Value> {
    get_dotted(params, key)
}
