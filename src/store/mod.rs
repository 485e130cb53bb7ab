//! The results store owns everything mechlab keeps on disk: where each file lives
//! ([`layout`]), the formats (status records, run summaries, Parquet shards and their schemas),
//! and how they are written (atomically, [`atomic`]) and locked ([`lock`]).
//!
//! `<results>/store/<node-id>/` holds one node's files; `<results>/<experiment>/` its experiment's
//! collected tables. `exec` writes through this module, `report` reads through it.

pub mod atomic;
pub mod checkpoint;
pub mod checksum;
pub mod layout;
pub mod lock;
pub mod parquet;
pub mod progress;
pub mod shards;
pub mod status;
pub mod summary;
mod tidy;
pub mod weights;

use std::path::{Path, PathBuf};

use polars::prelude::DataFrame;

pub use atomic::write as write_atomic;
pub use layout::{ExperimentDir, NodeDir, Shard, SubmissionDir, Table};
pub use lock::NodeLock;
pub use parquet::{read_parquet, read_parquet_metadata, write_parquet};
pub use progress::Progress;
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
    #[error("{path}: corrupt ({reason}); `mechlab run` on its spec recomputes the node")]
    Corrupt { path: PathBuf, reason: String },
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

/// The folder of node directories under the results root (experiments' tables sit beside it);
/// the spec refuses it as an experiment name.
pub use crate::spec::load::STORE_DIR;

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

    /// The folders of `experiment`'s Slurm submissions, oldest first.
    pub fn slurm_submissions(&self, experiment: &str) -> Vec<SubmissionDir> {
        let prefix = format!("{experiment}-");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.root.join(".slurm"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix(&prefix))
                    .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '-'))
            })
            .collect();
        dirs.sort();
        dirs.into_iter().map(SubmissionDir::new).collect()
    }

    /// The node's status: `Pending` when it has never run, or when its record is unreadable
    /// (the node is then recomputed; the record says why); `Interrupted` when it is recorded as
    /// running but no process holds its lock.
    pub fn status(&self, id: &str) -> Result<Status, StoreError> {
        let node = self.node(id);
        let mut status = match Status::read(&node.status()) {
            Ok(status) => status,
            Err(e @ StoreError::BadStatus { .. }) => Status {
                error: Some(format!("{e}; the node will be recomputed")),
                ..Status::default()
            },
            Err(e @ StoreError::Corrupt { .. }) => Status {
                error: Some(e.to_string()),
                ..Status::default()
            },
            Err(e) => return Err(e),
        };
        if status.state == NodeState::Running && NodeLock::try_acquire(&node.lock())?.is_some() {
            status.state = NodeState::Interrupted;
        }
        Ok(status)
    }

    /// Removes temporary files a crashed write left in node `id`'s directory (call with the
    /// node's lock held, so no live write is touched).
    pub fn clean_temporaries(&self, id: &str) -> Result<usize, StoreError> {
        let node = self.node(id);
        let mut removed = 0;
        for dir in [node.path().to_path_buf(), node.path().join("weights")] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if atomic::is_temporary(&entry.file_name().to_string_lossy()) {
                    let path = entry.path();
                    std::fs::remove_file(&path).map_err(StoreError::io(&path))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    pub fn write_status(&self, id: &str, status: &Status) -> Result<(), StoreError> {
        status.write(&self.node(id).status())
    }

    /// Records the configuration a node runs with beside its results.
    pub fn write_spec<T: serde::Serialize>(&self, id: &str, config: &T) -> Result<(), StoreError> {
        atomic::write(&self.node(id).spec(), &to_json(config)?)
    }

    /// Writes `bytes` to `path` inside node `id`'s directory atomically, with its checksum.
    pub fn write_sealed(&self, id: &str, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        checksum::write_sealed(&self.node(id), path, bytes)
    }

    /// The bytes at `path` inside node `id`'s directory, verified against their checksum.
    pub fn read_sealed(&self, id: &str, path: &Path) -> Result<Vec<u8>, StoreError> {
        checksum::read_sealed(&self.node(id), path)
    }

    /// Removes `path` inside node `id`'s directory (and its checksum), if present.
    pub fn remove(&self, id: &str, path: &Path) -> Result<(), StoreError> {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::Io {
                    path: path.to_path_buf(),
                    source: e,
                });
            }
        }
        checksum::forget(&self.node(id), path)
    }

    /// A train node's summary; `None` when it has not finished.
    pub fn run_summary(&self, id: &str) -> Result<Option<RunSummary>, StoreError> {
        let path = self.node(id).summary();
        if !path.exists() {
            return Ok(None);
        }
        let bytes = self.read_sealed(id, &path)?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StoreError::BadJson { path, source })
    }

    pub fn write_run_summary(&self, id: &str, summary: &RunSummary) -> Result<(), StoreError> {
        self.write_sealed(id, &self.node(id).summary(), &to_json(summary)?)
    }

    /// Writes one of a node's shards with key-value `metadata`.
    pub fn write_shard(
        &self,
        id: &str,
        shard: Shard,
        df: &mut DataFrame,
        metadata: &[(&str, String)],
    ) -> Result<(), StoreError> {
        let path = self.node(id).shard(shard);
        let bytes = parquet::encode(&path, df, metadata)?;
        self.write_sealed(id, &path, &bytes)
    }

    /// One of a node's shards, verified; `None` when the node did not write it.
    pub fn read_shard(&self, id: &str, shard: Shard) -> Result<Option<DataFrame>, StoreError> {
        let path = self.node(id).shard(shard);
        if !path.exists() {
            return Ok(None);
        }
        let bytes = self.read_sealed(id, &path)?;
        parquet::decode(&path, bytes).map(Some)
    }
}
