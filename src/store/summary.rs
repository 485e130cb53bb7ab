//! `summary.json`: what a done train node reports about its run without reading its shards.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Per-run facts written by the train node beside its metrics shard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub params: usize,
    pub steps: u64,
    /// Last evaluation, keyed `split.metric` (e.g. `test.accuracy`).
    #[serde(default)]
    pub last: BTreeMap<String, f64>,
}
