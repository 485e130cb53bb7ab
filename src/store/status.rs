//! `status.json`: the lifecycle record of one node.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{StoreError, atomic};

/// Where a node is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Never started, or interrupted (a checkpoint may exist; the next run resumes from it).
    #[default]
    Pending,
    Running,
    Done,
    Failed,
    /// Recorded as running, but no process holds the node: it was killed (kill -9, a lost
    /// machine). Never written, only observed; the next run resumes it from its checkpoint.
    Interrupted,
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeState::Pending => "pending",
            NodeState::Running => "running",
            NodeState::Done => "done",
            NodeState::Failed => "failed",
            NodeState::Interrupted => "interrupted",
        })
    }
}

/// The content of `status.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub state: NodeState,
    /// Node kind (`dataset`, `train`, …), for humans reading the store.
    #[serde(default)]
    pub kind: String,
    /// Unix seconds.
    #[serde(default)]
    pub started: Option<u64>,
    #[serde(default)]
    pub finished: Option<u64>,
    /// Wall-clock seconds of the last attempt.
    #[serde(default)]
    pub wall_s: Option<f64>,
    /// Last completed training step (for progress and resume reports).
    #[serde(default)]
    pub step: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
    /// Backend and device actually used, e.g. `flex` / `cpu`.
    #[serde(default)]
    pub backend: Option<String>,
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub mechlab_version: Option<String>,
    /// Process id of the runner while `running`.
    #[serde(default)]
    pub pid: Option<u32>,
}

impl Status {
    pub fn read(path: &Path) -> Result<Status, StoreError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::BadStatus {
                path: path.to_path_buf(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Status::default()),
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

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_status_reads_as_pending_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        assert_eq!(Status::read(&path).unwrap().state, NodeState::Pending);
        let status = Status {
            state: NodeState::Failed,
            error: Some("loss is NaN at step 12".into()),
            ..Status::default()
        };
        status.write(&path).unwrap();
        assert_eq!(Status::read(&path).unwrap(), status);
    }
}
