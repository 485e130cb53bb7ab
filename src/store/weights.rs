//! `model.bin` and kept weights: burn's full-precision binary record of a language model.

use std::path::Path;

use burn::module::Module;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::Backend;

use super::{Store, StoreError};
use crate::model::{LanguageModel, ModelConfig};
use crate::plan::PlannedRun;

fn recorder() -> BinBytesRecorder<FullPrecisionSettings> {
    BinBytesRecorder::<FullPrecisionSettings>::default()
}

/// The bytes of `model`'s weights.
pub fn encode<B: Backend>(model: LanguageModel<B>) -> Result<Vec<u8>, StoreError> {
    recorder()
        .record(model.into_record(), ())
        .map_err(|e| StoreError::Weights {
            path: "<model>".into(),
            message: e.to_string(),
        })
}

/// The model of `config` with the weights in `bytes` (read from `path`).
pub fn decode<B: Backend>(
    path: &Path,
    bytes: Vec<u8>,
    config: &ModelConfig,
    seed: u64,
    device: &B::Device,
) -> Result<LanguageModel<B>, StoreError> {
    let record = recorder()
        .load(bytes, device)
        .map_err(|e| StoreError::Weights {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let model = config
        .init::<B>(seed, device)
        .map_err(|e| StoreError::Weights {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(model.load_record(record))
}

impl Store {
    /// The weights of `run` after `step` updates: the final `model.bin`, or weights its train
    /// node kept (`train.keep_weights_every`).
    pub fn load_model<B: Backend>(
        &self,
        run: &PlannedRun,
        step: usize,
        device: &B::Device,
    ) -> Result<LanguageModel<B>, StoreError> {
        let path = self
            .node(&run.train)
            .weights_at(step, run.point.train.steps);
        let bytes = self.read_sealed(&run.train, &path)?;
        decode(&path, bytes, &run.point.model, run.point.seed, device)
    }
}
