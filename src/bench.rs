//! `mechlab bench`: training throughput of the reference setting (AR-32, 2 layers, batch 32) on
//! a device of this machine, for comparison with `bench/torch_ar.py` run on the same machine;
//! on cubecl's runtimes also the kernel launches per training step ([`launches`]).

use std::time::Instant;

use serde::Serialize;

use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::exec::DeviceChoice;
use crate::exec::device::{OnInference, OnTraining};
use crate::model::{MixerKind, ModelConfig};
use crate::task::{ArConfig, ArQuery, Split};
use crate::train::{
    Control, LossReads, NoCheckpoints, Observer, Schedule, ScheduleKind, TrainConfig,
};

pub mod launches;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Device(#[from] crate::exec::ExecError),
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    #[serde(rename = "impl")]
    pub implementation: String,
    pub device: String,
    pub mixer: String,
    pub d_model: usize,
    pub batch: usize,
    pub seq_len: usize,
    pub steps: usize,
    /// The untimed first steps: on an accelerator, kernel compilation and autotuning.
    pub warmup_s: f64,
    pub seconds: f64,
    pub tokens_per_s: f64,
    /// Kernel launches per timed training step, where the runtime counts them (cubecl's).
    pub launches_per_step: Option<f64>,
}

/// The clock of a benchmark: the device is synchronised before the clock starts and stops, so
/// queued kernels are counted where they run.
struct Timer<'a> {
    warmup: usize,
    total: usize,
    sync: &'a dyn Fn(),
    created: Instant,
    warmup_s: f64,
    start: Option<Instant>,
    seconds: f64,
    launches: [u64; 2],
}

impl<'a> Timer<'a> {
    fn new(warmup: usize, total: usize, sync: &'a dyn Fn()) -> Self {
        Timer {
            warmup,
            total,
            sync,
            created: Instant::now(),
            warmup_s: f64::NAN,
            start: None,
            seconds: f64::NAN,
            launches: [0; 2],
        }
    }
}

impl Observer for Timer<'_> {
    fn on_step(&mut self, step: usize, _total: usize, _loss: f32) -> Control {
        if step == self.warmup {
            (self.sync)();
            self.warmup_s = self.created.elapsed().as_secs_f64();
            self.launches[0] = launches::settled();
            self.start = Some(Instant::now());
        }
        if step == self.total {
            (self.sync)();
            self.seconds = self.start.map_or(f64::NAN, |s| s.elapsed().as_secs_f64());
            self.launches[1] = launches::settled();
        }
        Control::Continue
    }
}

impl Timer<'_> {
    fn launches_per_step(&self, steps: usize) -> Option<f64> {
        launches::counting().then(|| (self.launches[1] - self.launches[0]) as f64 / steps as f64)
    }
}

/// Synchronises `device`'s queue (a no-op on the CPU).
fn syncer<B: burn::tensor::backend::Backend>(device: &B::Device) -> impl Fn() + '_ {
    move || {
        // A failed sync shows up as the next operation's error; timing goes on.
        let _ = B::sync(device);
    }
}

/// Times `steps` training updates after `warmup` untimed ones (forward, backward, AdamW).
pub fn train_throughput(
    device: DeviceChoice,
    mixer: MixerKind,
    d_model: usize,
    batch: usize,
    warmup: usize,
    steps: usize,
) -> Result<BenchResult, BenchError> {
    struct Bench(MixerKind, usize, usize, usize, usize, DeviceChoice);
    impl OnTraining for Bench {
        type Output = Result<BenchResult, BenchError>;
        fn run<B: AutodiffBackend>(self, dev: B::Device, _: LossReads) -> Self::Output {
            let Bench(mixer, d_model, batch, warmup, steps, choice) = self;
            let task = reference_task();
            let total = warmup + steps;
            let data = task.generate(0, Split::Train, batch * total);
            let model = ModelConfig::fitted(mixer, task.vocab_size(), d_model, 2);
            let cfg = timing_config(batch, total);
            let sync = syncer::<B>(&dev);
            let mut timer = Timer::new(warmup, total, &sync);
            crate::train::train::<B>(
                model.init(0, &dev)?,
                &cfg,
                &data,
                &[],
                &dev,
                &mut NoCheckpoints,
                &mut timer,
            )?;
            let seq_len = task.seq_len();
            Ok(BenchResult {
                implementation: format!("mechlab-{}", choice.backend()),
                device: choice.device_name(),
                mixer: mixer.name().into(),
                d_model,
                batch,
                seq_len,
                steps,
                warmup_s: timer.warmup_s,
                seconds: timer.seconds,
                tokens_per_s: (steps * batch * seq_len) as f64 / timer.seconds,
                launches_per_step: timer.launches_per_step(steps),
            })
        }
    }
    launches::start(device);
    device.train_with(Bench(mixer, d_model, batch, warmup, steps, device))?
}

/// `mechlab bench --pack N`: N runs trained as one packed group against the same N runs one
/// after another, in the same process.
#[derive(Debug, Clone, Serialize)]
pub struct PackBench {
    pub device: String,
    pub mixer: String,
    pub d_model: usize,
    pub runs: usize,
    pub batch: usize,
    pub seq_len: usize,
    /// Timed updates per run.
    pub steps: usize,
    /// The packed group's untimed first steps (kernel compilation, autotuning).
    pub warmup_s: f64,
    pub packed_s: f64,
    pub sequential_s: f64,
    /// All runs' tokens over the packed group's wall time.
    pub packed_tokens_per_s: f64,
    /// All runs' tokens over the summed wall time of the runs one after another.
    pub sequential_tokens_per_s: f64,
    /// packed / sequential throughput.
    pub speedup: f64,
    /// Kernel launches per timed step of the packed group, where the runtime counts them.
    pub packed_launches_per_step: Option<f64>,
    /// Kernel launches per timed step of one run alone.
    pub single_launches_per_step: Option<f64>,
}

/// Times `runs` runs of the reference setting (learning rates 1e-3·(1 + r/2), seeds r, as a
/// learning-rate sweep would differ) packed, then one after another: `warmup` untimed and
/// `steps` timed updates each.
pub fn pack_throughput(
    device: DeviceChoice,
    mixer: MixerKind,
    d_model: usize,
    batch: usize,
    warmup: usize,
    steps: usize,
    runs: usize,
) -> Result<PackBench, BenchError> {
    struct Bench(MixerKind, usize, usize, usize, usize, usize, DeviceChoice);
    impl OnTraining for Bench {
        type Output = Result<PackBench, BenchError>;
        fn run<B: AutodiffBackend>(self, dev: B::Device, reads: LossReads) -> Self::Output {
            let Bench(mixer, d_model, batch, warmup, steps, runs, choice) = self;
            pack_on::<B>(
                &dev, reads, mixer, d_model, batch, warmup, steps, runs, choice,
            )
        }
    }
    launches::start(device);
    device.train_with(Bench(mixer, d_model, batch, warmup, steps, runs, device))?
}

#[allow(clippy::too_many_arguments)]
fn pack_on<B: AutodiffBackend>(
    device: &B::Device,
    reads: LossReads,
    mixer: MixerKind,
    d_model: usize,
    batch: usize,
    warmup: usize,
    steps: usize,
    runs: usize,
    choice: DeviceChoice,
) -> Result<PackBench, BenchError> {
    use crate::train::{GroupRun, RunOutcome, train_group};
    let task = reference_task();
    let total = warmup + steps;
    let data = task.generate(0, Split::Train, batch * total);
    let model = ModelConfig::fitted(mixer, task.vocab_size(), d_model, 2);
    let cfgs: Vec<TrainConfig> = (0..runs)
        .map(|r| TrainConfig {
            lr: 1e-3 * (1.0 + r as f64 / 2.0),
            ..timing_config(batch, total)
        })
        .collect();
    let sync = syncer::<B>(device);
    // Times one group; the first run's observer holds the clock (all runs step together).
    let time = |members: &[usize]| -> Result<(f64, f64, Option<f64>), BenchError> {
        let mut timers: Vec<Timer> = members
            .iter()
            .map(|_| Timer::new(warmup, total, &sync))
            .collect();
        let mut checkpoints: Vec<NoCheckpoints> = members.iter().map(|_| NoCheckpoints).collect();
        let mut group = Vec::new();
        for ((&r, timer), ckpt) in members.iter().zip(&mut timers).zip(&mut checkpoints) {
            group.push(GroupRun {
                model: model.init::<B>(r as u64, device)?,
                cfg: &cfgs[r],
                train: &data,
                evals: Vec::new(),
                checkpoints: ckpt,
                observer: timer,
                stop_at: None,
            });
        }
        for outcome in train_group(group, device, reads) {
            if let RunOutcome::Failed(e) = outcome {
                return Err(e.into());
            }
        }
        let t = &timers[0];
        Ok((t.seconds, t.warmup_s, t.launches_per_step(steps)))
    };
    let all: Vec<usize> = (0..runs).collect();
    let (packed_s, warmup_s, packed_launches) = time(&all)?;
    let mut sequential_s = 0.0;
    let mut single_launches = None;
    for r in 0..runs {
        let (s, _, l) = time(&[r])?;
        sequential_s += s;
        single_launches = single_launches.or(l);
    }
    let seq_len = task.seq_len();
    let tokens = (runs * steps * batch * seq_len) as f64;
    Ok(PackBench {
        device: choice.device_name(),
        mixer: mixer.name().into(),
        d_model,
        runs,
        batch,
        seq_len,
        steps,
        warmup_s,
        packed_s,
        sequential_s,
        packed_tokens_per_s: tokens / packed_s,
        sequential_tokens_per_s: tokens / sequential_s,
        speedup: sequential_s / packed_s,
        packed_launches_per_step: packed_launches,
        single_launches_per_step: single_launches,
    })
}

/// AR-32 as the paper trains it: 8,192 key/value tokens, 16 pairs.
fn reference_task() -> ArConfig {
    ArConfig {
        num_kv: 8192,
        pairs: 16,
        query: ArQuery::Key,
        prohibit: None,
    }
}

/// Constant learning rate, no evaluation or checkpoint inside the timed window.
fn timing_config(batch: usize, total: usize) -> TrainConfig {
    TrainConfig {
        batch_size: batch,
        steps: total,
        lr: 1e-3,
        weight_decay: 0.0,
        betas: [0.9, 0.999],
        eps: 1e-8,
        schedule: Schedule {
            kind: ScheduleKind::Constant,
            warmup: 0.0,
        },
        eval_every: usize::MAX,
        checkpoint_every: usize::MAX,
        keep_weights_every: None,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct InterventionBench {
    pub mixer: MixerKind,
    pub d_model: usize,
    pub examples: usize,
    pub cells: usize,
    pub cached_s: f64,
    pub naive_s: f64,
    /// naive / cached: how many times faster the cached, stacked path is.
    pub speedup: f64,
}

/// Times the paper's intervention grid (4 sites × 2 layers × 5 patch roles × key and value
/// corruption) on AR-32 with the cached path and the naive full-rerun path; the model is freshly
/// initialised (the work done does not depend on what it learned).
pub fn intervention_speed(
    device: DeviceChoice,
    mixer: MixerKind,
    d_model: usize,
    examples: usize,
) -> Result<InterventionBench, BenchError> {
    struct Bench(MixerKind, usize, usize);
    impl OnInference for Bench {
        type Output = Result<InterventionBench, BenchError>;
        fn run<B: Backend>(self, dev: B::Device) -> Self::Output {
            let Bench(mixer, d_model, examples) = self;
            interventions_on::<B>(&dev, mixer, d_model, examples)
        }
    }
    device.infer_with(Bench(mixer, d_model, examples))?
}

fn interventions_on<B: Backend>(
    device: &B::Device,
    mixer: MixerKind,
    d_model: usize,
    examples: usize,
) -> Result<InterventionBench, BenchError> {
    use crate::interp::{Corruption, InterchangeConfig, PatchPath, interchange_with};
    use crate::model::Site;
    use crate::task::Role;
    let task = reference_task();
    let data = task.generate(0, Split::Test, examples);
    let model = ModelConfig::fitted(mixer, task.vocab_size(), d_model, 2).init::<B>(0, device)?;
    let cfg = InterchangeConfig {
        layers: vec![0, 1],
        sites: vec![
            Site::BlockInput,
            Site::BlockOutput,
            Site::MixerInput,
            Site::MixerOutput,
        ],
        corrupt: vec![Role::Key, Role::Value],
        patch_at: Role::ALL.to_vec(),
        examples,
        corruption: Corruption::Reference,
        seed: 0,
    };
    let task = crate::task::TaskConfig::Ar(task.clone());
    // Untimed, one batch: the first forward passes of a process pay for page faults and thread
    // start-up (and on an accelerator kernel compilation), which would otherwise land on
    // whichever path is timed first.
    let warm_up = InterchangeConfig {
        examples: examples.min(32),
        ..cfg.clone()
    };
    interchange_with(&model, &task, &data, &warm_up, device, PatchPath::Cached);
    interchange_with(&model, &task, &data, &warm_up, device, PatchPath::Naive);
    let time = |path| {
        let _ = B::sync(device);
        let start = Instant::now();
        let rows = interchange_with(&model, &task, &data, &cfg, device, path).rows;
        let _ = B::sync(device);
        (start.elapsed().as_secs_f64(), rows.len())
    };
    let (cached_s, cells) = time(PatchPath::Cached);
    let (naive_s, _) = time(PatchPath::Naive);
    Ok(InterventionBench {
        mixer,
        d_model,
        examples,
        cells,
        cached_s,
        naive_s,
        speedup: naive_s / cached_s,
    })
}
