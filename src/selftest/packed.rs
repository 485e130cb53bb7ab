//! Packing on the device: two runs (their own learning rate, weight decay, betas, schedule and
//! seed) trained 50 steps as one packed program against each trained alone, for one mixer. The
//! loss of every step and the final test accuracy must agree as on the CPU, where they agree to
//! 1e-5 relative (README, Packed sweeps).

use burn::tensor::backend::AutodiffBackend;

use super::SelftestError;
use super::compare::Compare;
use crate::model::{MixerKind, ModelConfig};
use crate::task::{Dataset, Split};
use crate::train::{
    Control, GroupRun, LossReads, NoCheckpoints, Observer, RunOutcome, Schedule, ScheduleKind,
    TrainConfig, train_group,
};

const STEPS: usize = 50;
const TOLERANCE: f64 = 1e-5;

struct Losses(Vec<f32>);

impl Observer for Losses {
    fn on_step(&mut self, _step: usize, _total: usize, loss: f32) -> Control {
        self.0.push(loss);
        Control::Continue
    }
}

fn config(r: usize) -> TrainConfig {
    TrainConfig {
        batch_size: 8,
        steps: STEPS,
        lr: [3e-3, 1e-3][r],
        weight_decay: [0.0, 0.1][r],
        betas: [[0.9, 0.999], [0.9, 0.98]][r],
        eps: 1e-8,
        schedule: Schedule {
            kind: [ScheduleKind::Cosine, ScheduleKind::Linear][r],
            warmup: 0.1 * r as f64,
        },
        eval_every: STEPS,
        checkpoint_every: 10 * STEPS,
        keep_weights_every: None,
    }
}

/// Per run: every step's loss, then the final test accuracy.
fn train<B: AutodiffBackend>(
    mixer: MixerKind,
    members: &[usize],
    device: &B::Device,
) -> Result<Vec<Vec<f32>>, String> {
    let task = super::tiny_ar();
    let model = ModelConfig {
        max_positions: 32,
        ..ModelConfig::fitted(mixer, task.vocab_size(), 16, 2)
    };
    let cfgs: Vec<TrainConfig> = (0..2).map(config).collect();
    let data: Vec<(Dataset, Dataset)> = members
        .iter()
        .map(|&r| {
            (
                task.generate(r as u64, Split::Train, 8 * STEPS),
                task.generate(r as u64, Split::Test, 64),
            )
        })
        .collect();
    let runs: Vec<GroupMember> = members
        .iter()
        .zip(&data)
        .map(|(&r, (train, test))| GroupMember {
            seed: r as u64 + 10,
            cfg: &cfgs[r],
            train,
            test: Some(test),
        })
        .collect();
    Ok(group_curves::<B>(&model, &runs, device)?
        .into_iter()
        .map(|(mut losses, accuracy)| {
            losses.push(accuracy);
            losses
        })
        .collect())
}

/// One run of a group trained by [`group_curves`].
pub struct GroupMember<'a> {
    /// Seed of the initial weights.
    pub seed: u64,
    pub cfg: &'a TrainConfig,
    pub train: &'a Dataset,
    /// Evaluated at the end (with `cfg.eval_every` = steps) for the final test accuracy.
    pub test: Option<&'a Dataset>,
}

/// Trains `runs` as one packed group of `model`s on `B`, reading every step's loss: per run its
/// loss curve and final test accuracy (NaN without test data). Also the wgpu tests' trainer.
pub fn group_curves<B: AutodiffBackend>(
    model: &ModelConfig,
    runs: &[GroupMember],
    device: &B::Device,
) -> Result<Vec<(Vec<f32>, f32)>, String> {
    let mut observers: Vec<Losses> = runs.iter().map(|_| Losses(Vec::new())).collect();
    let mut checkpoints: Vec<NoCheckpoints> = runs.iter().map(|_| NoCheckpoints).collect();
    let mut group = Vec::new();
    for ((run, observer), checkpoints) in runs
        .iter()
        .zip(observers.iter_mut())
        .zip(checkpoints.iter_mut())
    {
        group.push(GroupRun {
            model: model
                .init::<B>(run.seed, device)
                .map_err(|e| e.to_string())?,
            cfg: run.cfg,
            train: run.train,
            evals: run.test.map(|t| ("test", t)).into_iter().collect(),
            checkpoints,
            observer,
            stop_at: None,
        });
    }
    let outcomes = train_group(group, device, LossReads::EveryStep);
    outcomes
        .into_iter()
        .zip(observers)
        .map(|(o, losses)| match o {
            RunOutcome::Finished { metrics, .. } => {
                let accuracy = metrics
                    .iter()
                    .rfind(|m| m.split == "test" && m.metric == "accuracy")
                    .map_or(f32::NAN, |m| m.value as f32);
                Ok((losses.0, accuracy))
            }
            RunOutcome::Stopped { step } => Err(format!("stopped at step {step}")),
            RunOutcome::Failed(e) => Err(e.to_string()),
        })
        .collect()
}

pub fn check<B: AutodiffBackend>(
    mixer: &str,
    device: &B::Device,
) -> Result<Compare, SelftestError> {
    let setup = |message: String| SelftestError::Setup {
        check: format!("packed:{mixer}"),
        message,
    };
    let kind = MixerKind::ALL
        .into_iter()
        .find(|k| k.name() == mixer)
        .ok_or_else(|| setup(format!("no mixer {mixer}")))?;
    let packed = train::<B>(kind, &[0, 1], device).map_err(setup)?;
    let mut c = Compare::default();
    for (r, packed) in packed.iter().enumerate() {
        let alone = train::<B>(kind, &[r], device).map_err(setup)?;
        let (curve, accuracy) = packed.split_at(STEPS);
        let (want_curve, want_accuracy) = alone[0].split_at(STEPS);
        c.tensor(&format!("run {r} losses"), curve, want_curve, TOLERANCE);
        c.tensor(&format!("run {r} accuracy"), accuracy, want_accuracy, 0.0);
    }
    Ok(c)
}
