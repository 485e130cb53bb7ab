//! Runs between start and finish. A train node that is not done keeps its step and its metrics so
//! far in its latest checkpoint; reading them lets a user watch a long CPU run (or one stopped
//! with `--until-step`) in `status` and in the curves figure before it is done, without touching
//! the tables of finished runs. Only the checkpoint's header is decoded, not its weights.

use super::Store;
use crate::train::MetricRow;

/// What a train node's latest checkpoint says.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Updates completed.
    pub step: u64,
    pub metrics: Vec<MetricRow>,
}

impl Progress {
    /// The last evaluation's value of `split`.`metric`, with its step.
    pub fn last(&self, split: &str, metric: &str) -> Option<(u64, f64)> {
        self.metrics
            .iter()
            .filter(|r| r.split == split && r.metric == metric)
            .max_by_key(|r| r.step)
            .map(|r| (r.step, r.value))
    }
}

impl Store {
    /// The latest checkpoint of train node `id`; `None` when it has none, or when the checkpoint
    /// fails its checksum or does not parse (a view never trusts a damaged file; `run` discards
    /// it, and a checkpoint replaced while it is read verifies again on the next look).
    pub fn checkpointed(&self, id: &str) -> Option<Progress> {
        let path = self.node(id).checkpoint();
        if !path.exists() {
            return None;
        }
        let bytes = self.read_sealed(id, &path).ok()?;
        let header = super::checkpoint::decode_header(&bytes).ok()?;
        Some(Progress {
            step: header.step,
            metrics: header.metrics,
        })
    }
}
