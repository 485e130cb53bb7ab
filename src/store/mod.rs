//! The results store: `results/store/<node-id>/` holds one node's resolved spec, its `status.json`,
//! checkpoints and shards. Every write goes through [`atomic::write`].

pub mod atomic;
pub mod lock;
pub mod status;

use std::path::{Path, PathBuf};

pub use atomic::write as write_atomic;
pub use lock::NodeLock;
pub use status::{NodeState, Status};

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
}

impl StoreError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
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

    /// Directory of one node: `<root>/store/<id>/`.
    pub fn node_dir(&self, id: &str) -> PathBuf {
        self.root.join(STORE_DIR).join(id)
    }

    /// Directory of an experiment's collected tables: `<root>/<experiment>/`.
    pub fn experiment_dir(&self, experiment: &str) -> PathBuf {
        self.root.join(experiment)
    }

    pub fn status_path(&self, id: &str) -> PathBuf {
        self.node_dir(id).join("status.json")
    }

    /// The node's status, or `Pending` when it has never run.
    pub fn status(&self, id: &str) -> Result<Status, StoreError> {
        Status::read(&self.status_path(id))
    }

    pub fn write_status(&self, id: &str, status: &Status) -> Result<(), StoreError> {
        status.write(&self.status_path(id))
    }
}
