//! The names of every file mechlab keeps: a node's files under `<results>/store/<id>/` and an
//! experiment's tables under `<results>/<experiment>/`. No other module spells a file name.

use std::path::{Path, PathBuf};

use crate::task::Split;

/// A Parquet shard a node writes into its own directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shard {
    /// Train node: `step, split, metric, value`.
    Metrics,
    /// Evaluate node (interchange grid): one row per cell.
    Interventions,
    /// Evaluate node (interchange grid with `detail = true`): one row per example.
    InterventionsDetail,
    /// Evaluate node (ablation grid): one row per cell.
    Ablations,
}

impl Shard {
    /// The shards evaluate nodes may write, in the order they are collected.
    pub const EVALUATION: [Shard; 3] = [
        Shard::Interventions,
        Shard::InterventionsDetail,
        Shard::Ablations,
    ];

    pub fn file_name(self) -> &'static str {
        self.table().file_name()
    }

    /// The experiment table this shard is collected into.
    pub fn table(self) -> Table {
        match self {
            Shard::Metrics => Table::Metrics,
            Shard::Interventions => Table::Interventions,
            Shard::InterventionsDetail => Table::InterventionsDetail,
            Shard::Ablations => Table::Ablations,
        }
    }
}

/// A collected table of one experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Runs,
    Metrics,
    Interventions,
    InterventionsDetail,
    Ablations,
    /// Metrics so far of runs that are not done, from their latest checkpoints.
    Progress,
}

impl Table {
    pub const ALL: [Table; 6] = [
        Table::Runs,
        Table::Metrics,
        Table::Interventions,
        Table::InterventionsDetail,
        Table::Ablations,
        Table::Progress,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Runs => "runs",
            Table::Metrics => "metrics",
            Table::Interventions => "interventions",
            Table::InterventionsDetail => "interventions_detail",
            Table::Ablations => "ablations",
            Table::Progress => "progress",
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            Table::Runs => "runs.parquet",
            Table::Metrics => "metrics.parquet",
            Table::Interventions => "interventions.parquet",
            Table::InterventionsDetail => "interventions_detail.parquet",
            Table::Ablations => "ablations.parquet",
            Table::Progress => "progress.parquet",
        }
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The files of one node directory.
#[derive(Debug, Clone)]
pub struct NodeDir {
    dir: PathBuf,
}

impl NodeDir {
    pub(super) fn new(dir: PathBuf) -> Self {
        NodeDir { dir }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The node's resolved configuration, as hashed into its id (for humans and audits).
    pub fn spec(&self) -> PathBuf {
        self.dir.join("spec.json")
    }

    pub fn status(&self) -> PathBuf {
        self.dir.join("status.json")
    }

    pub fn lock(&self) -> PathBuf {
        self.dir.join("lock")
    }

    /// Checksums of the files the node wrote ([`super::checksum`]).
    pub fn checksums(&self) -> PathBuf {
        self.dir.join("checksums.json")
    }

    /// Dataset node: one cached split.
    pub fn data(&self, split: Split) -> PathBuf {
        self.dir.join(format!("data-{}.bin", split.name()))
    }

    /// Train node: the resumable state (weights, optimizer, metrics so far), removed when done.
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint.bin")
    }

    /// Train node: the final weights.
    pub fn model(&self) -> PathBuf {
        self.dir.join("model.bin")
    }

    /// Train node: weights kept after `step` updates (`train.keep_weights_every`).
    pub fn kept_weights(&self, step: usize) -> PathBuf {
        self.dir.join("weights").join(format!("step-{step:08}.bin"))
    }

    /// Train node: the weights after `step` of `steps` updates (the final ones at `steps`).
    pub fn weights_at(&self, step: usize, steps: usize) -> PathBuf {
        if step == steps {
            self.model()
        } else {
            self.kept_weights(step)
        }
    }

    /// Train node: parameter count and last evaluation.
    pub fn summary(&self) -> PathBuf {
        self.dir.join("summary.json")
    }

    pub fn shard(&self, shard: Shard) -> PathBuf {
        self.dir.join(shard.file_name())
    }
}

/// The folder of one experiment's collected tables and everything derived from them.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentDir {
    dir: PathBuf,
}

impl ExperimentDir {
    /// The experiment folder at `dir` (as printed by `collect`).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        ExperimentDir { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn table(&self, table: Table) -> PathBuf {
        self.dir.join(table.file_name())
    }

    /// `mechlab data stats`' per-example table.
    pub fn data_stats(&self) -> PathBuf {
        self.dir.join("data_stats.parquet")
    }

    /// Default folder of `mechlab plot`.
    pub fn figures(&self) -> PathBuf {
        self.dir.join("figures")
    }

    /// Default file of `mechlab export weights`.
    pub fn exported_weights(&self, run: &str) -> PathBuf {
        self.dir.join("weights").join(format!("{run}.safetensors"))
    }

    /// Default file of `mechlab export table`.
    pub fn exported_table(&self, table: Table, extension: &str) -> PathBuf {
        self.dir
            .join("export")
            .join(format!("{}.{extension}", table.name()))
    }
}

/// The folder of one `mechlab slurm` submission: scripts, task list and logs.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmissionDir {
    dir: PathBuf,
}

impl SubmissionDir {
    pub(super) fn new(dir: PathBuf) -> Self {
        SubmissionDir { dir }
    }

    /// The submission folder at `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        SubmissionDir { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where Slurm writes the jobs' output.
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// One line of `--node` arguments per array task.
    pub fn tasks(&self) -> PathBuf {
        self.dir.join("tasks.txt")
    }

    pub fn array_script(&self) -> PathBuf {
        self.dir.join("array.sbatch")
    }

    pub fn collect_script(&self) -> PathBuf {
        self.dir.join("collect.sbatch")
    }

    /// The submitted job ids and which nodes each array task runs ([`crate::exec::slurm::Jobs`]).
    pub fn jobs(&self) -> PathBuf {
        self.dir.join("jobs.json")
    }
}
