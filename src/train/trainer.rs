//! What training is told (the resolved `[train]` config) and what it reports (observer,
//! outcome, errors). The loop itself is [`super::group`]; one run trains as a group of one.

use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use super::eval::MetricRow;
use super::schedule::Schedule;
use crate::model::LanguageModel;

/// Optimisation settings, resolved from a spec's `[train]` (no defaults left to fill) and
/// serialised as the `train` of a train node's hashed config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub batch_size: usize,
    /// Total optimizer updates.
    pub steps: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// AdamW β1, β2.
    pub betas: [f64; 2],
    pub eps: f64,
    #[serde(flatten)]
    pub schedule: Schedule,
    /// Evaluate every this many updates (and at step 0 and the last step).
    pub eval_every: usize,
    /// Checkpoint every this many updates (and when stopped).
    pub checkpoint_every: usize,
    /// Also keep the weights every this many updates (for interventions on intermediate steps).
    /// Absent from the serialised config when unset, so runs without it keep their ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weights_every: Option<usize>,
}

/// Whether the loop should go on; returned by the observer after every step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

/// Sees progress; decides whether to stop (Ctrl-C).
pub trait Observer {
    fn on_step(&mut self, step: usize, total: usize, loss: f32) -> Control;
    fn on_eval(&mut self, _rows: &[MetricRow]) {}
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training diverged: loss is {loss} at step {step}")]
    Diverged { step: usize, loss: f32 },
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error("training set is empty or smaller than one batch ({rows} rows, batch {batch})")]
    TooLittleData { rows: usize, batch: usize },
    /// Saving or restoring a checkpoint, or encoding kept weights, failed.
    #[error("checkpoint: {what}: {source}")]
    Checkpoint {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub enum TrainOutcome<B: AutodiffBackend> {
    /// All steps ran.
    Finished {
        model: Box<LanguageModel<B>>,
        metrics: Vec<MetricRow>,
    },
    /// The observer asked to stop; a checkpoint at `step` was saved.
    Stopped { step: usize },
}
