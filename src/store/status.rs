//! `status.json`: the lifecycle record of one node.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{StoreError, atomic, to_json};

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
    /// BLAKE3 of the record's bytes as written without this field: a record that still parses
    /// after a flipped digit or a torn write is noticed. Records written before checksums were
    /// added have none and are read as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

impl Status {
    pub fn read(path: &Path) -> Result<Status, StoreError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let mut status: Status =
                    serde_json::from_slice(&bytes).map_err(|source| StoreError::BadStatus {
                        path: path.to_path_buf(),
                        source,
                    })?;
                if let Some(recorded) = status.checksum.take()
                    && !sealed_by(&bytes, &recorded)
                {
                    return Err(StoreError::Corrupt {
                        path: path.to_path_buf(),
                        reason: "the status record fails its checksum".into(),
                    });
                }
                Ok(status)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Status::default()),
            Err(e) => Err(StoreError::Io {
                path: path.to_path_buf(),
                source: e,
            }),
        }
    }

    pub fn write(&self, path: &Path) -> Result<(), StoreError> {
        let bare = to_json(&Status {
            checksum: None,
            ..self.clone()
        })?;
        atomic::write(path, &seal(bare))
    }
}

/// The record's text with its checksum as the last field: the blake3 of the exact bytes written
/// without it (not of a re-serialisation: serde_json's float parsing need not round-trip).
fn seal(mut bare: Vec<u8>) -> Vec<u8> {
    let hex = blake3::hash(&bare).to_hex();
    // Pretty JSON ends with "\n}".
    bare.truncate(bare.len().saturating_sub(2));
    bare.extend_from_slice(format!(",\n  \"checksum\": \"{hex}\"\n}}").as_bytes());
    bare
}

/// Whether `text` is a record [`seal`] wrote with checksum `recorded`.
fn sealed_by(text: &[u8], recorded: &str) -> bool {
    let suffix = format!(",\n  \"checksum\": \"{recorded}\"\n}}");
    let Some(head) = text.strip_suffix(suffix.as_bytes()) else {
        return false;
    };
    let bare = [head, b"\n}"].concat();
    blake3::hash(&bare).to_hex().as_str() == recorded
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

    #[test]
    fn a_record_that_parses_but_was_changed_fails_its_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let status = Status {
            state: NodeState::Done,
            step: Some(120),
            // A float serde_json's default parser does not read back bit for bit.
            wall_s: Some(1.0 / 3.0 * 1e-7 + 0.1 + 0.2),
            ..Status::default()
        };
        status.write(&path).unwrap();
        assert_eq!(Status::read(&path).unwrap(), status);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"checksum\""), "{text}");
        std::fs::write(&path, text.replace("120", "129")).unwrap();
        let err = Status::read(&path).unwrap_err().to_string();
        assert!(err.contains("fails its checksum"), "{err}");
        // A record without a checksum (an older mechlab's, or written by hand) is read as is.
        std::fs::write(&path, r#"{"state": "done", "kind": "train", "step": 7}"#).unwrap();
        assert_eq!(Status::read(&path).unwrap().step, Some(7));
    }
}
