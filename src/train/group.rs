//! Training a group of runs as one program: their models stacked along the run axis
//! ([`crate::model::runs`]), one forward and backward pass per step for all of them, and
//! [`PackedAdamW`] with each run's own learning rate and optimizer settings.
//!
//! Everything a user sees stays per run: each run has its own data order, checkpoint, kept
//! weights, evaluations and outcome. A run whose loss is not finite fails alone and leaves the
//! group; the others go on. Runs resumed from checkpoints at different steps train in separate
//! groups, one after another. A group of one is how a single run trains.
//!
//! Data order is fixed: step `i` of a run uses rows `(i·b) mod n …` of its training set, the
//! same every epoch (reference), so a resumed run sees exactly the batches an uninterrupted one
//! would.

use burn::module::{AutodiffModule, Module};
use burn::optim::GradientsParams;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use super::adamw::{AdamWSettings, PackedAdamW};
use super::batch::GroupBatch;
use super::checkpoint::{Checkpoint, CheckpointHeader, Checkpointer};
use super::eval::{MetricRow, evaluate};
use super::trainer::{Control, Observer, TrainConfig, TrainError, TrainOutcome};
use crate::model::{LanguageModel, NoSites, runs};
use crate::task::Dataset;

/// One run of a group, as the caller hands it over.
pub struct GroupRun<'a, B: AutodiffBackend> {
    /// Freshly initialised; replaced by the checkpoint's weights when one exists.
    pub model: LanguageModel<B>,
    pub cfg: &'a TrainConfig,
    pub train: &'a Dataset,
    /// (split name, data) evaluated every `eval_every` steps.
    pub evals: Vec<(&'a str, &'a Dataset)>,
    pub checkpoints: &'a mut dyn Checkpointer,
    pub observer: &'a mut dyn Observer,
    /// Train only up to this step of the schedule, then checkpoint and stop (resumable); a run
    /// already there does not train. The schedule stays the full `cfg.steps`.
    pub stop_at: Option<usize>,
}

/// How one run of a group ended.
pub enum RunOutcome<B: AutodiffBackend> {
    Finished {
        model: Box<LanguageModel<B>>,
        metrics: Vec<MetricRow>,
    },
    /// An observer asked to stop, or the run reached its `stop_at`; a checkpoint at `step` was
    /// saved.
    Stopped {
        step: usize,
    },
    Failed(TrainError),
}

/// How often the loss leaves the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossReads {
    /// Every step: divergence is caught at its step (CPU, where reading costs nothing).
    EveryStep,
    /// Only at evaluations and checkpoints: a GPU then never waits for the host in between; a
    /// diverged run is caught at the next read.
    AtEvaluations,
}

/// A run between setup and its outcome.
struct Slot<'a, B: AutodiffBackend> {
    index: usize,
    cfg: &'a TrainConfig,
    train: &'a Dataset,
    evals: Vec<(&'a str, &'a Dataset)>,
    checkpoints: &'a mut dyn Checkpointer,
    observer: &'a mut dyn Observer,
    stop_at: Option<usize>,
    model: Option<LanguageModel<B>>,
    optimizer: Option<Vec<u8>>,
    step: usize,
    metrics: Vec<MetricRow>,
    last_loss: f32,
}

fn ckpt_err<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    what: &'static str,
) -> impl FnOnce(E) -> TrainError {
    move |e| TrainError::Checkpoint {
        what,
        source: e.into(),
    }
}

/// Trains every run of `runs`, packed where they are at the same step, and returns each run's
/// outcome in the order given. The runs must have equal model shapes, batch sizes and step
/// counts (the planner's packing rule); they may differ in everything else.
pub fn train_group<B: AutodiffBackend>(
    runs: Vec<GroupRun<'_, B>>,
    device: &B::Device,
    reads: LossReads,
) -> Vec<RunOutcome<B>> {
    let count = runs.len();
    let mut outcomes: Vec<Option<RunOutcome<B>>> = (0..count).map(|_| None).collect();
    let mut slots = Vec::with_capacity(count);
    for (index, run) in runs.into_iter().enumerate() {
        match restore(index, run, device) {
            Ok(slot)
                if slot.stop_at.is_some_and(|at| slot.step >= at) && slot.step < slot.cfg.steps =>
            {
                outcomes[index] = Some(RunOutcome::Stopped { step: slot.step });
            }
            Ok(slot) => slots.push(slot),
            Err(e) => outcomes[index] = Some(RunOutcome::Failed(e)),
        }
    }
    // Runs resumed at different steps cannot share a step: one group per starting step (and per
    // step count and batch size, which the planner's rule already makes equal, and per stop).
    let key = |s: &Slot<B>| (s.step, s.cfg.steps, s.cfg.batch_size, s.stop_at);
    slots.sort_by_key(|s| (key(s), s.index));
    let mut rest = slots;
    while !rest.is_empty() {
        let first = key(&rest[0]);
        let split_at = rest
            .iter()
            .position(|s| key(s) != first)
            .unwrap_or(rest.len());
        let later = rest.split_off(split_at);
        for (index, outcome) in train_packed(rest, device, reads) {
            outcomes[index] = Some(outcome);
        }
        rest = later;
    }
    outcomes
        .into_iter()
        .map(|o| o.expect("every run has an outcome"))
        .collect()
}

/// Checks a run's data and loads its checkpoint, if any.
fn restore<'a, B: AutodiffBackend>(
    index: usize,
    run: GroupRun<'a, B>,
    device: &B::Device,
) -> Result<Slot<'a, B>, TrainError> {
    let cfg = run.cfg;
    if run.train.len() < cfg.batch_size || cfg.batch_size == 0 {
        return Err(TrainError::TooLittleData {
            rows: run.train.len(),
            batch: cfg.batch_size,
        });
    }
    let mut slot = Slot {
        index,
        cfg,
        train: run.train,
        evals: run.evals,
        checkpoints: run.checkpoints,
        observer: run.observer,
        stop_at: run.stop_at,
        model: Some(run.model),
        optimizer: None,
        step: 0,
        metrics: Vec::new(),
        last_loss: f32::NAN,
    };
    if let Some(ckpt) = slot.checkpoints.load().map_err(ckpt_err("reading"))? {
        if !ckpt.optimizer.starts_with(super::adamw::MAGIC) {
            // Written by a mechlab before packed training (burn's optimizer record): its weights
            // cannot be continued exactly, so the run starts over rather than drift.
            slot.checkpoints
                .discard("its optimizer state is from an older mechlab");
            return Ok(slot);
        }
        let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
        let record = recorder
            .load(ckpt.model, device)
            .map_err(ckpt_err("decoding its weights"))?;
        slot.model = slot.model.take().map(|m| m.load_record(record));
        slot.optimizer = Some(ckpt.optimizer);
        slot.step = ckpt.header.step as usize;
        slot.metrics = ckpt.header.metrics;
    }
    Ok(slot)
}

fn settings(cfg: &TrainConfig) -> AdamWSettings {
    AdamWSettings {
        betas: cfg.betas,
        eps: cfg.eps,
        weight_decay: cfg.weight_decay,
    }
}

/// Trains runs that start at the same step as one stacked model.
///
/// Long on purpose (~190 lines): the step loop owns the stacked model, the packed optimizer,
/// every run's slot (schedule, observer, checkpoints) and the group's membership as runs
/// finish, diverge or stop; each phase of a step is commented where it happens.
fn train_packed<B: AutodiffBackend>(
    mut slots: Vec<Slot<'_, B>>,
    device: &B::Device,
    reads: LossReads,
) -> Vec<(usize, RunOutcome<B>)> {
    let mut done: Vec<(usize, RunOutcome<B>)> = Vec::new();
    let models: Vec<LanguageModel<B>> = slots
        .iter_mut()
        .map(|s| s.model.take().expect("restored model"))
        .collect();
    let mut model = runs::stack(models);
    let all_settings: Vec<AdamWSettings> = slots.iter().map(|s| settings(s.cfg)).collect();
    let mut optim = if slots.iter().all(|s| s.optimizer.is_some()) {
        let states: Vec<Vec<u8>> = slots
            .iter_mut()
            .map(|s| s.optimizer.take().expect("checked"))
            .collect();
        match PackedAdamW::from_run_states(all_settings, &states, device) {
            Ok(o) => o,
            Err(e) => {
                return slots
                    .into_iter()
                    .map(|s| {
                        let err = TrainError::Checkpoint {
                            what: "restoring its optimizer state",
                            source: Box::new(Message(e.to_string())),
                        };
                        (s.index, RunOutcome::Failed(err))
                    })
                    .collect();
            }
        }
    } else {
        PackedAdamW::new(all_settings)
    };

    let mut step = slots[0].step;
    for (r, slot) in slots.iter_mut().enumerate() {
        if step == 0 && slot.metrics.is_empty() {
            evaluate_run(&model, r, slot, 0, device);
        }
    }
    let total = slots[0].cfg.steps;
    while step < total && !slots.is_empty() {
        let parts: Vec<(&Dataset, std::ops::Range<usize>)> = slots
            .iter()
            .map(|s| {
                let b = s.cfg.batch_size;
                let per_epoch = s.train.len() / b * b;
                let start = (step * b) % per_epoch;
                (s.train, start..start + b)
            })
            .collect();
        let batch = GroupBatch::<B>::from_runs(&parts, device);
        let (loss, per_run) = group_loss(&model, batch);
        let will_eval = |s: &Slot<B>| {
            let next = step + 1;
            next.is_multiple_of(s.cfg.eval_every)
                || next == total
                || next.is_multiple_of(s.cfg.checkpoint_every)
        };
        let read = reads == LossReads::EveryStep || step == 0 || slots.iter().any(will_eval);
        // Kept when not read: a stop after this step must not checkpoint a diverged run as good.
        let mut unread = None;
        if !read {
            unread = Some(per_run);
        } else {
            let values: Vec<f32> = per_run
                .into_data()
                .convert::<f32>()
                .to_vec()
                .unwrap_or_default();
            let failed: Vec<usize> = (0..slots.len())
                .filter(|&r| !values.get(r).is_some_and(|v| v.is_finite()))
                .collect();
            for (r, v) in values.iter().enumerate() {
                slots[r].last_loss = *v;
            }
            if !failed.is_empty() {
                // Drop the diverged runs and redo this step without them.
                for &r in failed.iter().rev() {
                    let slot = slots.remove(r);
                    let loss = values.get(r).copied().unwrap_or(f32::NAN);
                    done.push((
                        slot.index,
                        RunOutcome::Failed(TrainError::Diverged { step, loss }),
                    ));
                    if slots.is_empty() {
                        break;
                    }
                    let keep = runs::split(&model, slots.len() + 1);
                    model = runs::stack(
                        keep.into_iter()
                            .enumerate()
                            .filter(|&(i, _)| i != r)
                            .map(|(_, m)| m)
                            .collect(),
                    );
                    optim = optim.without_run(r);
                }
                if slots.is_empty() {
                    break;
                }
                continue;
            }
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let lrs: Vec<f64> = slots
            .iter()
            .map(|s| s.cfg.schedule.lr(s.cfg.lr, step, s.cfg.steps))
            .collect();
        model = optim.step(model, &grads, &lrs);
        step += 1;

        let runs_now = slots.len();
        // The group shares its stop (part of the grouping key).
        let mut stop = slots[0].stop_at == Some(step) && step < total;
        for (r, slot) in slots.iter_mut().enumerate() {
            if step.is_multiple_of(slot.cfg.eval_every) || step == total {
                evaluate_run(&model, r, slot, step, device);
            }
            if slot
                .cfg
                .keep_weights_every
                .is_some_and(|k| step.is_multiple_of(k))
                && step < total
            {
                let kept = runs::pick(&model.valid(), r, runs_now);
                let result = encode(kept.into_record()).and_then(|w| {
                    slot.checkpoints
                        .keep_weights(step as u64, &w)
                        .map_err(ckpt_err("writing kept weights"))
                });
                if let Err(e) = result {
                    return fail_all(done, slots, e);
                }
            }
            stop |= slot.observer.on_step(step, total, slot.last_loss) == Control::Stop;
        }
        let due = |s: &Slot<B>| step.is_multiple_of(s.cfg.checkpoint_every) && step < total;
        // Only a stop can come after an unread step (evaluations and checkpoints are read).
        let losses = match unread {
            Some(per_run) if stop => per_run.into_data().convert::<f32>().to_vec().ok(),
            _ => None,
        };
        let diverged = |r: usize| {
            losses
                .as_ref()
                .map(|l| l.get(r).copied().unwrap_or(f32::NAN))
                .filter(|v| !v.is_finite())
        };
        if stop || slots.iter().any(due) {
            for (r, slot) in slots.iter_mut().enumerate() {
                if (stop || due(slot))
                    && diverged(r).is_none()
                    && let Err(e) = save(&model, &optim, r, runs_now, slot, step)
                {
                    return fail_all(done, slots, e);
                }
            }
        }
        if stop {
            done.extend(slots.into_iter().enumerate().map(|(r, s)| {
                let outcome = match diverged(r) {
                    Some(loss) => RunOutcome::Failed(TrainError::Diverged {
                        step: step - 1,
                        loss,
                    }),
                    None => RunOutcome::Stopped { step },
                };
                (s.index, outcome)
            }));
            return done;
        }
    }
    let runs_now = slots.len();
    for (r, slot) in slots.into_iter().enumerate() {
        done.push((
            slot.index,
            RunOutcome::Finished {
                model: Box::new(runs::pick(&model, r, runs_now)),
                metrics: slot.metrics,
            },
        ));
    }
    done
}

/// A failure that ends every run still in the group (a checkpoint could not be written).
fn fail_all<B: AutodiffBackend>(
    mut done: Vec<(usize, RunOutcome<B>)>,
    slots: Vec<Slot<'_, B>>,
    e: TrainError,
) -> Vec<(usize, RunOutcome<B>)> {
    // Every run of the group reports the one failure as it was (not wrapped once more).
    let (what, message) = match &e {
        TrainError::Checkpoint { what, source } => (*what, source.to_string()),
        other => ("saving the group", other.to_string()),
    };
    done.extend(slots.into_iter().map(|s| {
        let err = TrainError::Checkpoint {
            what,
            source: Box::new(Message(message.clone())),
        };
        (s.index, RunOutcome::Failed(err))
    }));
    done
}

/// An error carried as its message (one failure reported for several runs).
#[derive(Debug)]
struct Message(String);

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

fn encode<R: burn::record::Record<B>, B: burn::tensor::backend::Backend>(
    record: R,
) -> Result<Vec<u8>, TrainError> {
    BinBytesRecorder::<FullPrecisionSettings>::default()
        .record(record, ())
        .map_err(ckpt_err("encoding the weights"))
}

/// Saves run `r`'s checkpoint: its weights, its share of the optimizer state, its metrics.
fn save<B: AutodiffBackend>(
    model: &LanguageModel<B>,
    optim: &PackedAdamW<B::InnerBackend>,
    r: usize,
    runs_now: usize,
    slot: &mut Slot<'_, B>,
    step: usize,
) -> Result<(), TrainError> {
    let weights = encode(runs::pick(model, r, runs_now).into_record())?;
    let ckpt = Checkpoint {
        header: CheckpointHeader {
            step: step as u64,
            metrics: slot.metrics.clone(),
        },
        model: weights,
        optimizer: optim.run_state(r),
    };
    slot.checkpoints.save(&ckpt).map_err(ckpt_err("writing"))
}

/// Evaluates run `r` of the stacked model on its evaluation sets.
fn evaluate_run<B: AutodiffBackend>(
    model: &LanguageModel<B>,
    r: usize,
    slot: &mut Slot<'_, B>,
    step: usize,
    device: &B::Device,
) {
    let valid = model.valid();
    let runs_now = valid.runs();
    let single = if runs_now == 1 {
        valid
    } else {
        runs::pick(&valid, r, runs_now)
    };
    for (name, data) in &slot.evals {
        let rows = evaluate(&single, data, name, step as u64, device);
        slot.observer.on_eval(&rows);
        slot.metrics.extend(rows);
    }
}

/// The sum of the runs' mean cross-entropies (each run's gradient is its own mean's), and each
/// run's mean.
///
/// # Shapes
/// → `[1]`, `[R]`
pub fn group_loss<B: AutodiffBackend>(
    model: &LanguageModel<B>,
    batch: GroupBatch<B>,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let [runs, n] = batch.weights_rn.dims();
    let r = model.residual(batch.tokens_bs, &mut NoSites);
    let logits = model.logits_at(r, batch.flat_n);
    let picked =
        crate::model::xent_cpu::target_log_probs(logits, batch.targets_n).reshape([runs, n]);
    let per_run = (picked * batch.weights_rn).sum_dim(1).neg().reshape([runs]);
    (per_run.clone().sum(), per_run)
}

/// Trains `model` (freshly initialised; replaced by the checkpoint's weights when one exists) on
/// `train`, evaluating on `eval_sets` (name, data): a group of one ([`train_group`]).
pub fn train<B: AutodiffBackend>(
    model: LanguageModel<B>,
    cfg: &TrainConfig,
    train: &Dataset,
    eval_sets: &[(&str, &Dataset)],
    device: &B::Device,
    checkpoints: &mut dyn Checkpointer,
    observer: &mut dyn Observer,
) -> Result<TrainOutcome<B>, TrainError> {
    let run = GroupRun {
        model,
        cfg,
        train,
        evals: eval_sets.to_vec(),
        checkpoints,
        observer,
        stop_at: None,
    };
    match train_group(vec![run], device, LossReads::EveryStep).pop() {
        Some(RunOutcome::Finished { model, metrics }) => {
            Ok(TrainOutcome::Finished { model, metrics })
        }
        Some(RunOutcome::Stopped { step }) => Ok(TrainOutcome::Stopped { step }),
        Some(RunOutcome::Failed(e)) => Err(e),
        None => unreachable!("a group of one has one outcome"),
    }
}

#[cfg(test)]
mod tests {
    //! A run trained inside a group against the same run trained alone, for every mixer; order
    //! within a group; a diverging run; resuming a stopped group.

    use super::*;
    use crate::model::{MixerKind, ModelConfig};
    use crate::task::{ArConfig, ArQuery, Split};
    use crate::train::{Schedule, ScheduleKind};
    use burn::backend::{Autodiff, Flex};

    type A = Autodiff<Flex>;

    /// Every loss it is shown, and stops at `stop_at`.
    #[derive(Default)]
    struct Record {
        losses: Vec<f32>,
        stop_at: Option<usize>,
    }

    impl Observer for Record {
        fn on_step(&mut self, step: usize, _total: usize, loss: f32) -> Control {
            self.losses.push(loss);
            if self.stop_at == Some(step) {
                Control::Stop
            } else {
                Control::Continue
            }
        }
    }

    /// Keeps the last checkpoint in memory (the store's byte format is tested beside it); notes
    /// discards.
    #[derive(Default)]
    struct Memory(Option<Checkpoint>, Vec<String>);

    impl Checkpointer for Memory {
        fn discard(&mut self, why: &str) {
            self.0 = None;
            self.1.push(why.to_string());
        }

        fn load(&mut self) -> Result<Option<Checkpoint>, Box<dyn std::error::Error + Send + Sync>> {
            Ok(self.0.clone())
        }
        fn save(
            &mut self,
            checkpoint: &Checkpoint,
        ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            self.0 = Some(checkpoint.clone());
            Ok(())
        }
    }

    const STEPS: usize = 200;

    fn task() -> ArConfig {
        ArConfig {
            num_kv: 16,
            pairs: 4,
            query: ArQuery::Key,
            prohibit: None,
        }
    }

    /// Run `r` of the test group: its own learning rate, weight decay, warm-up, betas and seed.
    fn config(r: usize) -> TrainConfig {
        TrainConfig {
            batch_size: 8,
            steps: STEPS,
            lr: [3e-3, 1e-3, 1e-2, 5e-3][r],
            weight_decay: [0.0, 0.1, 0.0, 0.05][r],
            betas: [[0.9, 0.999], [0.9, 0.98], [0.85, 0.999], [0.9, 0.99]][r],
            eps: 1e-8,
            schedule: Schedule {
                kind: [ScheduleKind::Cosine, ScheduleKind::Linear][r % 2],
                warmup: 0.1 * (r % 2) as f64,
            },
            eval_every: 100,
            checkpoint_every: 1_000,
            keep_weights_every: None,
        }
    }

    struct Trained {
        losses: Vec<f32>,
        metrics: Vec<MetricRow>,
    }

    /// Trains runs `members` (indices into the test runs) as one group, reading every loss.
    fn train(
        mixer: MixerKind,
        members: &[usize],
        cfgs: &[TrainConfig],
        memories: &mut [Memory],
        stop_at: Option<usize>,
    ) -> Vec<Result<Trained, String>> {
        train_with(
            mixer,
            members,
            cfgs,
            memories,
            stop_at,
            LossReads::EveryStep,
        )
    }

    fn train_with(
        mixer: MixerKind,
        members: &[usize],
        cfgs: &[TrainConfig],
        memories: &mut [Memory],
        stop_at: Option<usize>,
        reads: LossReads,
    ) -> Vec<Result<Trained, String>> {
        let device = Default::default();
        let task = task();
        let model = ModelConfig {
            max_positions: 32,
            ..ModelConfig::fitted(mixer, task.vocab_size(), 16, 2)
        };
        let data: Vec<Dataset> = members
            .iter()
            .map(|&r| task.generate(r as u64, Split::Train, 8 * 25))
            .collect();
        let test: Vec<Dataset> = members
            .iter()
            .map(|&r| task.generate(r as u64, Split::Test, 64))
            .collect();
        let mut observers: Vec<Record> = members
            .iter()
            .map(|_| Record {
                losses: Vec::new(),
                stop_at,
            })
            .collect();
        let group: Vec<GroupRun<A>> = members
            .iter()
            .zip(&data)
            .zip(&test)
            .zip(observers.iter_mut())
            .zip(memories.iter_mut())
            .map(|((((&r, train), test), observer), memory)| GroupRun {
                model: model.init::<A>(r as u64 + 10, &device).unwrap(),
                cfg: &cfgs[r],
                train,
                evals: vec![("test", test)],
                checkpoints: memory as &mut dyn Checkpointer,
                observer,
                stop_at: None,
            })
            .collect();
        let outcomes = train_group(group, &device, reads);
        outcomes
            .into_iter()
            .zip(observers)
            .map(|(o, rec)| match o {
                RunOutcome::Finished { metrics, .. } => Ok(Trained {
                    losses: rec.losses,
                    metrics,
                }),
                RunOutcome::Stopped { step } => Err(format!("stopped at {step}")),
                RunOutcome::Failed(e) => Err(e.to_string()),
            })
            .collect()
    }

    fn memories(n: usize) -> Vec<Memory> {
        (0..n).map(|_| Memory::default()).collect()
    }

    /// Largest relative difference between two loss curves.
    fn max_rel(a: &[f32], b: &[f32]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| ((x - y).abs() / y.abs().max(1e-6)) as f64)
            .fold(0.0, f64::max)
    }

    fn accuracy(t: &Trained) -> f64 {
        t.metrics
            .iter()
            .rfind(|m| m.metric == "accuracy")
            .map(|m| m.value)
            .unwrap()
    }

    /// The tolerance the README states: 1e-5 relative in the loss over the first 200 steps.
    const TOLERANCE: f64 = 1e-5;

    #[test]
    fn a_run_in_a_group_trains_as_alone_for_every_mixer() {
        let cfgs: Vec<TrainConfig> = (0..3).map(config).collect();
        for mixer in MixerKind::ALL {
            let packed = train(mixer, &[0, 1, 2], &cfgs, &mut memories(3), None);
            for (r, p) in packed.iter().enumerate() {
                let alone = train(mixer, &[r], &cfgs, &mut memories(1), None).remove(0);
                let (p, a) = (p.as_ref().unwrap(), alone.as_ref().unwrap());
                let diff = max_rel(&p.losses, &a.losses);
                eprintln!("{mixer:?} run {r}: largest relative loss difference {diff:e}");
                assert!(
                    diff <= TOLERANCE,
                    "{mixer:?} run {r}: loss differs by {diff:e}"
                );
                assert_eq!(accuracy(p), accuracy(a), "{mixer:?} run {r}");
            }
            // The group learns (a test that fails if updates were lost): the mean loss of the last
            // 20 steps is well under that of the first 20.
            let l = &packed[0].as_ref().unwrap().losses;
            let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len() as f32;
            let (first, last) = (mean(&l[..20]), mean(&l[STEPS - 20..]));
            assert!(last < 0.8 * first, "{mixer:?}: {first} → {last}");
        }
    }

    #[test]
    fn a_checkpoint_of_an_older_mechlab_is_discarded_and_the_run_starts_over() {
        let cfgs: Vec<TrainConfig> = (0..1).map(config).collect();
        let fresh = train(MixerKind::Attention, &[0], &cfgs, &mut memories(1), None);
        // Stop at 40, then replace the optimizer state by what burn's optimizer record would be.
        let mut saved = memories(1);
        let _ = train(MixerKind::Attention, &[0], &cfgs, &mut saved, Some(40));
        let ckpt = saved[0].0.as_mut().unwrap();
        ckpt.optimizer = b"burn record bytes".to_vec();
        let again = train(MixerKind::Attention, &[0], &cfgs, &mut saved, None);
        assert_eq!(saved[0].1.len(), 1, "{:?}", saved[0].1);
        assert!(saved[0].1[0].contains("older mechlab"), "{:?}", saved[0].1);
        let (a, b) = (fresh[0].as_ref().unwrap(), again[0].as_ref().unwrap());
        assert_eq!(a.losses, b.losses, "trained again from step 0");
        assert_eq!(a.metrics, b.metrics);
    }

    #[test]
    fn the_order_of_runs_in_a_group_changes_nothing() {
        let cfgs: Vec<TrainConfig> = (0..3).map(config).collect();
        let a = train(MixerKind::Based, &[0, 1, 2], &cfgs, &mut memories(3), None);
        let b = train(MixerKind::Based, &[2, 0, 1], &cfgs, &mut memories(3), None);
        for (i, j) in [(0, 1), (1, 2), (2, 0)] {
            let (x, y) = (a[i].as_ref().unwrap(), b[j].as_ref().unwrap());
            assert_eq!(x.losses, y.losses, "run {i}");
            assert_eq!(x.metrics, y.metrics, "run {i}");
        }
    }

    #[test]
    fn a_diverging_run_fails_alone_and_the_others_finish_as_alone() {
        let mut cfgs: Vec<TrainConfig> = (0..3).map(config).collect();
        cfgs[1].lr = 1e30;
        cfgs[1].schedule.warmup = 0.0;
        let packed = train(
            MixerKind::Attention,
            &[0, 1, 2],
            &cfgs,
            &mut memories(3),
            None,
        );
        let err = packed[1].as_ref().err().expect("run 1 diverges");
        assert!(err.contains("training diverged"), "{err}");
        for r in [0, 2] {
            let alone = train(MixerKind::Attention, &[r], &cfgs, &mut memories(1), None).remove(0);
            let diff = max_rel(
                &packed[r].as_ref().unwrap().losses,
                &alone.as_ref().unwrap().losses,
            );
            assert!(diff <= TOLERANCE, "run {r}: {diff:e}");
        }
    }

    /// The accelerators' mode: the loss leaves the device only at evaluations and checkpoints.
    #[test]
    fn reading_losses_at_evaluations_catches_divergence_and_never_checkpoints_it_as_a_stop() {
        let mut cfgs: Vec<TrainConfig> = (0..3).map(config).collect();
        cfgs[1].lr = 1e30;
        cfgs[1].schedule.warmup = 0.0;
        let every = train(
            MixerKind::Attention,
            &[0, 1, 2],
            &cfgs,
            &mut memories(3),
            None,
        );
        let at_evals = |stop, saved: &mut [Memory]| {
            train_with(
                MixerKind::Attention,
                &[0, 1, 2],
                &cfgs,
                saved,
                stop,
                LossReads::AtEvaluations,
            )
        };
        // Caught at the next read (the evaluation at step 100); the others train as before.
        let whole = at_evals(None, &mut memories(3));
        let err = whole[1].as_ref().err().expect("run 1 diverges");
        assert!(err.contains("training diverged"), "{err}");
        for r in [0, 2] {
            let (a, b) = (whole[r].as_ref().unwrap(), every[r].as_ref().unwrap());
            assert_eq!(a.metrics, b.metrics, "run {r}");
        }
        // A stop at step 30 (no evaluation, no checkpoint due): the diverged run fails and
        // leaves no checkpoint; the others stop with theirs.
        let mut saved = memories(3);
        let stopped = at_evals(Some(30), &mut saved);
        for r in [0, 2] {
            assert_eq!(stopped[r].as_ref().err().unwrap(), "stopped at 30");
            assert!(saved[r].0.is_some(), "run {r} checkpointed");
        }
        let err = stopped[1].as_ref().err().unwrap();
        assert!(err.contains("training diverged"), "{err}");
        assert!(saved[1].0.is_none(), "a diverged run is never checkpointed");
    }

    #[test]
    fn a_stopped_group_resumes_every_run_from_its_checkpoint() {
        let cfgs: Vec<TrainConfig> = (0..3).map(config).collect();
        let whole = train(MixerKind::Mamba, &[0, 1, 2], &cfgs, &mut memories(3), None);
        let mut saved = memories(3);
        let stopped = train(MixerKind::Mamba, &[0, 1, 2], &cfgs, &mut saved, Some(70));
        assert!(
            stopped
                .iter()
                .all(|s| s.as_ref().is_err_and(|e| e == "stopped at 70"))
        );
        // Run 2 also trains 20 steps more alone before the group resumes: runs at different
        // steps train in separate groups.
        let mut one = vec![std::mem::take(&mut saved[2])];
        let _ = train(MixerKind::Mamba, &[2], &cfgs, &mut one, Some(90));
        saved[2] = std::mem::take(&mut one[0]);
        let resumed = train(MixerKind::Mamba, &[0, 1, 2], &cfgs, &mut saved, None);
        for r in 0..3 {
            let (w, x) = (whole[r].as_ref().unwrap(), resumed[r].as_ref().unwrap());
            let tail = &w.losses[w.losses.len() - x.losses.len()..];
            let diff = max_rel(tail, &x.losses);
            assert!(diff <= TOLERANCE, "run {r}: {diff:e}");
            assert_eq!(w.metrics.len(), x.metrics.len(), "run {r}");
        }
    }
}
