//! Resumable checkpoints: model weights, optimizer state, the step and the metrics so far, in one
//! blob so that a checkpoint is never half-written relative to itself.
//!
//! Layout: `u64 len | JSON header | u64 len | model record | optimizer record` (records in burn's
//! bincode format at full precision, so a resumed run continues bit-for-bit).

use serde::{Deserialize, Serialize};

use super::eval::MetricRow;

#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// Why bytes are not a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointFormatError {
    #[error("malformed checkpoint: truncated {0}")]
    Truncated(&'static str),
    #[error("malformed checkpoint: header: {0}")]
    Header(#[from] serde_json::Error),
}

impl Checkpoint {
    pub fn to_bytes(&self) -> Vec<u8> {
        // A step and rows of strings and numbers: serde_json cannot fail on them.
        let header = serde_json::to_vec(&self.header).expect("header serialises");
        let mut out =
            Vec::with_capacity(16 + header.len() + self.model.len() + self.optimizer.len());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&(self.model.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.model);
        out.extend_from_slice(&self.optimizer);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint, CheckpointFormatError> {
        use CheckpointFormatError::Truncated;
        // Lengths come from the file: checked arithmetic, so a damaged one is an error.
        let range = |at: usize, len: usize| at.checked_add(len).map(|end| at..end);
        let take_len = |at: usize, what| -> Result<usize, CheckpointFormatError> {
            range(at, 8)
                .and_then(|r| bytes.get(r))
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .map(|s| u64::from_le_bytes(s) as usize)
                .ok_or(Truncated(what))
        };
        let h = take_len(0, "header length")?;
        let header_bytes = range(8, h)
            .and_then(|r| bytes.get(r))
            .ok_or(Truncated("header"))?;
        let header = serde_json::from_slice(header_bytes)?;
        let model_start = 16 + h;
        let m = take_len(8 + h, "model length")?;
        let model_range = range(model_start, m).ok_or(Truncated("model"))?;
        let model = bytes
            .get(model_range.clone())
            .ok_or(Truncated("model"))?
            .to_vec();
        let optimizer = bytes[model_range.end..].to_vec();
        Ok(Checkpoint {
            header,
            model,
            optimizer,
        })
    }
}

/// Where the trainer keeps its checkpoints (the store implements this with atomic files).
pub trait Checkpointer {
    fn load(&mut self) -> Result<Option<Checkpoint>, Box<dyn std::error::Error + Send + Sync>>;
    fn save(
        &mut self,
        checkpoint: &Checkpoint,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;

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
