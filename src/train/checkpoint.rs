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

#[derive(Debug, thiserror::Error)]
#[error("malformed checkpoint: {0}")]
pub struct CheckpointFormatError(String);

impl Checkpoint {
    pub fn to_bytes(&self) -> Vec<u8> {
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
        let err = |m: &str| CheckpointFormatError(m.to_string());
        let take_len = |b: &[u8], at: usize| -> Result<usize, CheckpointFormatError> {
            b.get(at..at + 8)
                .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")) as usize)
                .ok_or_else(|| err("truncated length"))
        };
        let h = take_len(bytes, 0)?;
        let header_bytes = bytes.get(8..8 + h).ok_or_else(|| err("truncated header"))?;
        let header = serde_json::from_slice(header_bytes).map_err(|e| err(&e.to_string()))?;
        let m = take_len(bytes, 8 + h)?;
        let model_start = 16 + h;
        let model = bytes
            .get(model_start..model_start + m)
            .ok_or_else(|| err("truncated model"))?
            .to_vec();
        let optimizer = bytes[model_start + m..].to_vec();
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
