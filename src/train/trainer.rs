//! The training loop.
//!
//! Data order is fixed: step `i` uses rows `(i·b) mod n …` of the training set, the same every
//! epoch (reference), so a resumed run sees exactly the batches an uninterrupted one would.

use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::ElementConversion;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use super::batch::Batch;
use super::checkpoint::{Checkpoint, CheckpointHeader, Checkpointer};
use super::eval::{MetricRow, evaluate};
use super::schedule::Schedule;
use crate::model::lm::cross_entropy;
use crate::model::{LanguageModel, NoSites};
use crate::task::Dataset;

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

/// Wraps a checkpointing failure with what was being done.
fn ckpt_err<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    what: &'static str,
) -> impl FnOnce(E) -> TrainError {
    move |e| TrainError::Checkpoint {
        what,
        source: e.into(),
    }
}

/// Trains `model` (freshly initialised; replaced by the checkpoint's weights when one exists) on
/// `train`, evaluating on `eval_sets` (name, data).
pub fn train<B: AutodiffBackend>(
    mut model: LanguageModel<B>,
    cfg: &TrainConfig,
    train: &Dataset,
    eval_sets: &[(&str, &Dataset)],
    device: &B::Device,
    checkpoints: &mut dyn Checkpointer,
    observer: &mut dyn Observer,
) -> Result<TrainOutcome<B>, TrainError> {
    if train.len() < cfg.batch_size || cfg.batch_size == 0 {
        return Err(TrainError::TooLittleData {
            rows: train.len(),
            batch: cfg.batch_size,
        });
    }
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let mut optim = AdamWConfig::new()
        .with_beta_1(cfg.betas[0] as f32)
        .with_beta_2(cfg.betas[1] as f32)
        .with_epsilon(cfg.eps as f32)
        .with_weight_decay(cfg.weight_decay as f32)
        .init::<B, LanguageModel<B>>();
    let mut metrics = Vec::new();
    let mut step = 0usize;

    if let Some(ckpt) = checkpoints.load().map_err(ckpt_err("reading"))? {
        let record = recorder
            .load(ckpt.model, device)
            .map_err(ckpt_err("decoding its weights"))?;
        model = model.load_record(record);
        let record = recorder
            .load(ckpt.optimizer, device)
            .map_err(ckpt_err("decoding its optimizer state"))?;
        optim = optim.load_record(record);
        step = ckpt.header.step as usize;
        metrics = ckpt.header.metrics;
    }

    let save = |model: &LanguageModel<B>,
                optim: &_,
                step: usize,
                metrics: &[MetricRow],
                checkpoints: &mut dyn Checkpointer|
     -> Result<(), TrainError> {
        let ckpt = Checkpoint {
            header: CheckpointHeader {
                step: step as u64,
                metrics: metrics.to_vec(),
            },
            model: recorder
                .record(model.clone().into_record(), ())
                .map_err(ckpt_err("encoding the weights"))?,
            optimizer: Recorder::<B>::record(
                &recorder,
                Optimizer::<LanguageModel<B>, B>::to_record(optim),
                (),
            )
            .map_err(ckpt_err("encoding the optimizer state"))?,
        };
        checkpoints.save(&ckpt).map_err(ckpt_err("writing"))
    };

    let eval = |model: &LanguageModel<B>,
                step: usize,
                metrics: &mut Vec<MetricRow>,
                observer: &mut dyn Observer| {
        let valid = model.valid();
        let inner_device = device.clone();
        for (name, data) in eval_sets {
            let rows = evaluate(&valid, data, name, step as u64, &inner_device);
            observer.on_eval(&rows);
            metrics.extend(rows);
        }
    };

    if step == 0 && metrics.is_empty() {
        eval(&model, 0, &mut metrics, observer);
    }
    let rows_per_epoch = train.len() / cfg.batch_size * cfg.batch_size;
    while step < cfg.steps {
        let start = (step * cfg.batch_size) % rows_per_epoch;
        let batch = Batch::<B>::from_rows(train, start..start + cfg.batch_size, device);
        let r = model.residual(batch.tokens_bs, &mut NoSites);
        let loss = cross_entropy(model.logits_at(r, batch.flat_n), batch.targets_n);
        let loss_value: f32 = loss.clone().into_scalar().elem();
        if !loss_value.is_finite() {
            return Err(TrainError::Diverged {
                step,
                loss: loss_value,
            });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let lr = cfg.schedule.lr(cfg.lr, step, cfg.steps);
        model = optim.step(lr, model, grads);
        step += 1;

        if step.is_multiple_of(cfg.eval_every) || step == cfg.steps {
            eval(&model, step, &mut metrics, observer);
        }
        if cfg
            .keep_weights_every
            .is_some_and(|k| step.is_multiple_of(k))
            && step < cfg.steps
        {
            let weights = recorder
                .record(model.valid().into_record(), ())
                .map_err(ckpt_err("encoding kept weights"))?;
            checkpoints
                .keep_weights(step as u64, &weights)
                .map_err(ckpt_err("writing kept weights"))?;
        }
        let control = observer.on_step(step, cfg.steps, loss_value);
        if control == Control::Stop {
            save(&model, &optim, step, &metrics, checkpoints)?;
            return Ok(TrainOutcome::Stopped { step });
        }
        if step.is_multiple_of(cfg.checkpoint_every) && step < cfg.steps {
            save(&model, &optim, step, &metrics, checkpoints)?;
        }
    }
    Ok(TrainOutcome::Finished {
        model: Box::new(model),
        metrics,
    })
}
