//! The checkpoint file: model weights, optimizer state, the step and the metrics so far, in one
//! blob so that a checkpoint is never half-written relative to itself.
//!
//! Layout: `u64 len | JSON header | u64 len | model record | optimizer record` (records in burn's
//! bincode format at full precision, so a resumed run continues bit-for-bit).

use serde::{Deserialize, Serialize};

use crate::train::{Checkpoint, MetricRow, checkpoint::CheckpointHeader};

/// The header as written: the step, and every metric with its value's exact bits.
#[derive(Serialize, Deserialize)]
struct Header {
    /// Updates completed.
    step: u64,
    /// Stored with each value's bits: serde_json's default float parsing can come back 1 ULP
    /// off, and a resumed run must report exactly what an uninterrupted one does.
    #[serde(with = "exact_rows")]
    metrics: Vec<MetricRow>,
}

impl From<&CheckpointHeader> for Header {
    fn from(h: &CheckpointHeader) -> Self {
        Header {
            step: h.step,
            metrics: h.metrics.clone(),
        }
    }
}

impl From<Header> for CheckpointHeader {
    fn from(h: Header) -> Self {
        CheckpointHeader {
            step: h.step,
            metrics: h.metrics,
        }
    }
}

/// [`MetricRow`]s with `value` as its IEEE-754 bits (`value_bits`); checkpoints written before
/// carry `value` as a JSON number, still read.
mod exact_rows {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::MetricRow;

    #[derive(Serialize, Deserialize)]
    struct Wire {
        step: u64,
        split: String,
        metric: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value_bits: Option<u64>,
    }

    pub fn serialize<S: Serializer>(rows: &[MetricRow], s: S) -> Result<S::Ok, S::Error> {
        let wire: Vec<Wire> = rows
            .iter()
            .map(|r| Wire {
                step: r.step,
                split: r.split.clone(),
                metric: r.metric.clone(),
                value: None,
                value_bits: Some(r.value.to_bits()),
            })
            .collect();
        wire.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<MetricRow>, D::Error> {
        Vec::<Wire>::deserialize(d)?
            .into_iter()
            .map(|w| {
                let value = match (w.value_bits, w.value) {
                    (Some(bits), _) => f64::from_bits(bits),
                    (None, Some(v)) => v,
                    (None, None) => {
                        return Err(serde::de::Error::missing_field("value_bits"));
                    }
                };
                Ok(MetricRow {
                    step: w.step,
                    split: w.split,
                    metric: w.metric,
                    value,
                })
            })
            .collect()
    }
}

/// Why bytes are not a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointFormatError {
    #[error("malformed checkpoint: truncated {0}")]
    Truncated(&'static str),
    #[error("malformed checkpoint: header: {0}")]
    Header(#[from] serde_json::Error),
}

/// The file's bytes for `checkpoint`.
pub fn encode(checkpoint: &Checkpoint) -> Vec<u8> {
    // A step and rows of strings and numbers: serde_json cannot fail on them.
    let header = serde_json::to_vec(&Header::from(&checkpoint.header)).expect("header serialises");
    let mut out =
        Vec::with_capacity(16 + header.len() + checkpoint.model.len() + checkpoint.optimizer.len());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&(checkpoint.model.len() as u64).to_le_bytes());
    out.extend_from_slice(&checkpoint.model);
    out.extend_from_slice(&checkpoint.optimizer);
    out
}

/// Only the header (step and metrics so far), without copying the weights: what `status`
/// and `collect` show of a run that is not done.
pub fn decode_header(bytes: &[u8]) -> Result<CheckpointHeader, CheckpointFormatError> {
    use CheckpointFormatError::Truncated;
    let len = bytes
        .get(..8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(|s| u64::from_le_bytes(s) as usize)
        .ok_or(Truncated("header length"))?;
    let header = 8usize
        .checked_add(len)
        .and_then(|end| bytes.get(8..end))
        .ok_or(Truncated("header"))?;
    Ok(serde_json::from_slice::<Header>(header)?.into())
}

/// The checkpoint in a file's `bytes`; lengths are checked, so a damaged file is an error.
pub fn decode(bytes: &[u8]) -> Result<Checkpoint, CheckpointFormatError> {
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
    let header = serde_json::from_slice::<Header>(header_bytes)?.into();
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn metric_values_survive_a_checkpoint_bit_for_bit() {
        // Random doubles across magnitudes: with plain JSON numbers some come back 1 ULP off.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let metrics: Vec<MetricRow> = (0..5000)
            .map(|i| MetricRow {
                step: i,
                split: "test".into(),
                metric: "loss".into(),
                value: rng.random::<f64>() * 10f64.powi(rng.random_range(-8..8)),
            })
            .collect();
        let checkpoint = Checkpoint {
            header: CheckpointHeader {
                step: 3,
                metrics: metrics.clone(),
            },
            model: vec![1, 2, 3],
            optimizer: vec![4, 5],
        };
        let back = decode(&encode(&checkpoint)).unwrap();
        for (a, b) in metrics.iter().zip(&back.header.metrics) {
            assert_eq!(
                a.value.to_bits(),
                b.value.to_bits(),
                "{} vs {}",
                a.value,
                b.value
            );
        }
        assert_eq!((back.model, back.optimizer), (vec![1, 2, 3], vec![4, 5]));
    }

    #[test]
    fn damaged_lengths_are_errors_not_panics() {
        let checkpoint = Checkpoint {
            header: CheckpointHeader {
                step: 1,
                metrics: Vec::new(),
            },
            model: vec![9; 16],
            optimizer: vec![8; 4],
        };
        let bytes = encode(&checkpoint);
        for cut in 0..bytes.len() {
            let _ = decode(&bytes[..cut]);
            let _ = decode_header(&bytes[..cut]);
        }
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
        assert!(decode_header(&huge).is_err());
    }

    #[test]
    fn the_header_alone_reads_what_the_whole_checkpoint_does() {
        let row = |step| MetricRow {
            step,
            split: "test".into(),
            metric: "accuracy".into(),
            value: 0.25 + step as f64 / 1000.0,
        };
        let checkpoint = Checkpoint {
            header: CheckpointHeader {
                step: 40,
                metrics: vec![row(0), row(20), row(40)],
            },
            model: vec![7; 100],
            optimizer: vec![6; 50],
        };
        let header = decode_header(&encode(&checkpoint)).unwrap();
        assert_eq!(header.step, 40);
        assert_eq!(header.metrics, checkpoint.header.metrics);
    }
}
