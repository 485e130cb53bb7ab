//! Resumable checkpoints as the trainer sees them: the step, the metrics so far, and the model
//! and optimizer records (burn's bincode at full precision, so a resumed run continues
//! bit-for-bit). Where they are kept is the [`Checkpointer`]'s business; the bytes on disk are
//! the store's format (`store::checkpoint`).

use super::eval::MetricRow;

#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointHeader {
    /// Updates completed.
    pub step: u64,
    pub metrics: Vec<MetricRow>,
}

#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub header: CheckpointHeader,
    pub model: Vec<u8>,
    pub optimizer: Vec<u8>,
}

/// Where the trainer keeps its checkpoints (the store implements this with atomic files).
pub trait Checkpointer {
    fn load(&mut self) -> Result<Option<Checkpoint>, Box<dyn std::error::Error + Send + Sync>>;
    fn save(
        &mut self,
        checkpoint: &Checkpoint,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;

    /// Drops a checkpoint that cannot be resumed (saying `why`); training starts over.
    fn discard(&mut self, _why: &str) {}

    /// Keeps the weights (a burn record, without optimizer state) of `step` for later analysis.
    fn keep_weights(
        &mut self,
        _step: u64,
        _weights: &[u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(())
    }
}

/// Keeps nothing: a run that stops starts over.
pub struct NoCheckpoints;

impl Checkpointer for NoCheckpoints {
    fn load(&mut self) -> Result<Option<Checkpoint>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(None)
    }

    fn save(&mut self, _: &Checkpoint) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(())
    }
}
