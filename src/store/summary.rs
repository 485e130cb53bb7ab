//! `summary.json`: what a done train node reports about its run without reading its shards.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{StoreError, atomic};

/// Per-run facts written by the train node beside its metrics shard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub params: usize,
    pub steps: u64,
    /// Last evaluation, keyed `split.metric` (e.g. `test.accuracy`).
    #[serde(default)]
    pub last: BTreeMap<String, f64>,
}

impl RunSummary {
    /// The summary at `path`; `None` when there is none yet.
    pub fn read(path: &Path) -> Result<Option<RunSummary>, StoreError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| StoreError::BadJson {
                        path: path.to_path_buf(),
                        source,
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io {
                path: path.to_path_buf(),
                source: e,
            }),
        }
    }

    pub fn write(&self, path: &Path) -> Result<(), StoreError> {
        atomic::write(path, &super::to_json(self)?)
    }
}
