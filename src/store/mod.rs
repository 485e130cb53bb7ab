//! The results store owns everything mechlab keeps on disk: where each file lives
//! ([`layout`]), the formats (status records, run summaries, Parquet shards and their schemas),
//! and how they are written (atomically, [`atomic`]) and locked ([`lock`]).
//!
//! `<results>/store/<node-id>/` holds one node's files; `<results>/<experiment>/` its experiment's
//! collected tables. `exec` writes through this module, `report` reads through it.

pub mod atomic;
pub mod layout;
pub mod lock;
pub mod parquet;
pub mod shards;
pub mod status;
pub mod summary;
pub mod weights;

use std::path::{Path, PathBuf};

use polars::prelude::DataFrame;

pub use atomic::write as write_atomic;
pub use layout::{ExperimentDir, NodeDir, Shard, SubmissionDir, Table};
pub use lock::NodeLock;
pub use parquet::{read_parquet, read_parquet_metadata, write_parquet};
pub use status::{NodeState, Status};
pub use summary::RunSummary;

/// Store-level failures: always carry the path involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: malformed status record: {source}")]
    BadStatus {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: malformed JSON: {source}")]
    BadJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: cannot read weights: {message}")]
    Weights { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: polars::error::PolarsError,
    },
}

impl StoreError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
}

/// Pretty JSON of one of the store's records.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    // The records are plain structs of numbers, strings and maps with string keys: serde_json
    // cannot fail on them, but a failure would still be reported rather than panic.
    serde_json::to_vec_pretty(value).map_err(|source| StoreError::BadJson {
        path: PathBuf::from("<record>"),
        source,
    })
}

/// The folder of node directories under the results root (experiments' tables sit beside it).
pub const STORE_DIR: &str = "store";

/// The layout of one results root.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The files of one node: `<root>/store/<id>/`.
    pub fn node(&self, id: &str) -> NodeDir {
        NodeDir::new(self.root.join(STORE_DIR).join(id))
    }

    /// Directory of one node: `<root>/store/<id>/`.
    pub fn node_dir(&self, id: &str) -> PathBuf {
        self.node(id).path().to_path_buf()
    }

    /// An experiment's collected tables: `<root>/<experiment>/`.
    pub fn experiment(&self, experiment: &str) -> ExperimentDir {
        ExperimentDir::at(self.root.join(experiment))
    }

    /// Where one `mechlab slurm` submission keeps its scripts, task list and logs: a new
    /// `<root>/.slurm/<experiment>-<unix time>[-n]`, so no submission overwrites another's.
    pub fn new_slurm_submission(&self, experiment: &str) -> SubmissionDir {
        let stamp = status::now();
        let base = self.root.join(".slurm");
        (1..)
            .map(|n| match n {
                1 => base.join(format!("{experiment}-{stamp}")),
                n => base.join(format!("{experiment}-{stamp}-{n}")),
            })
            .find(|p| !p.exists())
            .map(SubmissionDir::new)
            .expect("an endless sequence of names has an unused one")
    }

    /// The node's status, or `Pending` when it has never run.
    pub fn status(&self, id: &str) -> Result<Status, StoreError> {
        Status::read(&self.node(id).status())
    }

    pub fn write_status(&self, id: &str, status: &Status) -> Result<(), StoreError> {
        status.write(&self.node(id).status())
    }

    /// Records the configuration a node runs with beside its results.
    pub fn write_spec<T: serde::Serialize>(&self, id: &str, config: &T) -> Result<(), StoreError> {
        atomic::write(&self.node(id).spec(), &to_json(config)?)
    }

    /// A train node's summary; `None` when it has not finished.
    pub fn run_summary(&self, id: &str) -> Result<Option<RunSummary>, StoreError> {
        RunSummary::read(&self.node(id).summary())
    }

    pub fn write_run_summary(&self, id: &str, summary: &RunSummary) -> Result<(), StoreError> {
        summary.write(&self.node(id).summary())
    }

    /// Writes one of a node's shards with key-value `metadata`.
    pub fn write_shard(
        &self,
        id: &str,
        shard: Shard,
        df: &mut DataFrame,
        metadata: &[(&str, String)],
    ) -> Result<(), StoreError> {
        write_parquet(&self.node(id).shard(shard), df, metadata)
    }

    /// One of a node's shards; `None` when the node did not write it.
    pub fn read_shard(&self, id: &str, shard: Shard) -> Result<Option<DataFrame>, StoreError> {
        let path = self.node(id).shard(shard);
        if !path.exists() {
            return Ok(None);
        }
        read_parquet(&path).map(Some)
    }
}
