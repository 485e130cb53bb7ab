//! `mechlab bench`: training throughput of the reference setting (AR-32, 2 layers, batch 32) on
//! this machine, for comparison with `bench/torch_ar.py` run on the same machine.

use std::time::Instant;

use serde::Serialize;

use crate::model::{MixerKind, ModelConfig};
use crate::task::{ArConfig, ArQuery, Split};
use crate::train::{Control, NoCheckpoints, Observer, Schedule, ScheduleKind, TrainConfig};

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    #[serde(rename = "impl")]
    pub implementation: String,
    pub mixer: String,
    pub d_model: usize,
    pub batch: usize,
    pub seq_len: usize,
    pub steps: usize,
    pub seconds: f64,
    pub tokens_per_s: f64,
}

struct Timer {
    warmup: usize,
    start: Option<Instant>,
}

impl Observer for Timer {
    fn on_step(&mut self, step: usize, _total: usize, _loss: f32) -> Control {
        if step == self.warmup {
            self.start = Some(Instant::now());
        }
        Control::Continue
    }
}

/// Times `steps` training updates after `warmup` untimed ones (forward, backward, AdamW).
pub fn train_throughput(
    mixer: MixerKind,
    d_model: usize,
    batch: usize,
    warmup: usize,
    steps: usize,
) -> Result<BenchResult, crate::train::TrainError> {
    let task = reference_task();
    let total = warmup + steps;
    let data = task.generate(0, Split::Train, batch * total);
    let model = ModelConfig::paper(mixer, task.vocab_size(), d_model, 2);
    let cfg = timing_config(batch, total);
    let mut timer = Timer {
        warmup,
        start: None,
    };
    let device = Default::default();
    crate::train::train::<crate::exec::device::CpuBackend>(
        model.init(0, &device)?,
        &cfg,
        &data,
        &[],
        &Default::default(),
        &mut NoCheckpoints,
        &mut timer,
    )?;
    let seconds = timer
        .start
        .map(|s| s.elapsed().as_secs_f64())
        .unwrap_or(f64::NAN);
    let seq_len = task.seq_len();
    Ok(BenchResult {
        implementation: "mechlab-flex".into(),
        mixer: mixer.name().into(),
        d_model,
        batch,
        seq_len,
        steps,
        seconds,
        tokens_per_s: (steps * batch * seq_len) as f64 / seconds,
    })
}

/// `mechlab bench --pack N`: N runs trained as one packed group against the same N runs one
/// after another, in the same process.
#[derive(Debug, Clone, Serialize)]
pub struct PackBench {
    pub mixer: String,
    pub d_model: usize,
    pub runs: usize,
    pub batch: usize,
    pub seq_len: usize,
    /// Timed updates per run.
    pub steps: usize,
    pub packed_s: f64,
    pub sequential_s: f64,
    /// All runs' tokens over the packed group's wall time.
    pub packed_tokens_per_s: f64,
    /// All runs' tokens over the summed wall time of the runs one after another.
    pub sequential_tokens_per_s: f64,
    /// packed / sequential throughput.
    pub speedup: f64,
}

/// Times `runs` runs of the reference setting (learning rates 1e-3·(1 + r/2), seeds r, as a
/// learning-rate sweep would differ) packed, then one after another: `warmup` untimed and
/// `steps` timed updates each.
pub fn pack_throughput(
    mixer: MixerKind,
    d_model: usize,
    batch: usize,
    warmup: usize,
    steps: usize,
    runs: usize,
) -> Result<PackBench, crate::train::TrainError> {
    use crate::train::{GroupRun, LossReads, RunOutcome, train_group};
    type B = crate::exec::device::CpuBackend;
    let task = reference_task();
    let total = warmup + steps;
    let data = task.generate(0, Split::Train, batch * total);
    let model = ModelConfig::paper(mixer, task.vocab_size(), d_model, 2);
    let cfgs: Vec<TrainConfig> = (0..runs)
        .map(|r| TrainConfig {
            lr: 1e-3 * (1.0 + r as f64 / 2.0),
            ..timing_config(batch, total)
        })
        .collect();
    let device = Default::default();
    // Times one group; the first run's observer holds the clock (all runs step together).
    let time = |members: &[usize]| -> Result<f64, crate::train::TrainError> {
        let mut timers: Vec<Timer> = members
            .iter()
            .map(|_| Timer {
                warmup,
                start: None,
            })
            .collect();
        let mut checkpoints: Vec<NoCheckpoints> = members.iter().map(|_| NoCheckpoints).collect();
        let mut group = Vec::new();
        for ((&r, timer), ckpt) in members.iter().zip(&mut timers).zip(&mut checkpoints) {
            group.push(GroupRun {
                model: model.init::<B>(r as u64, &device)?,
                cfg: &cfgs[r],
                train: &data,
                evals: Vec::new(),
                checkpoints: ckpt,
                observer: timer,
                stop_at: None,
            });
        }
        for outcome in train_group(group, &device, LossReads::EveryStep) {
            if let RunOutcome::Failed(e) = outcome {
                return Err(e);
            }
        }
        Ok(timers[0]
            .start
            .map(|s| s.elapsed().as_secs_f64())
            .unwrap_or(f64::NAN))
    };
    let all: Vec<usize> = (0..runs).collect();
    let packed_s = time(&all)?;
    let mut sequential_s = 0.0;
    for r in 0..runs {
        sequential_s += time(&[r])?;
    }
    let seq_len = task.seq_len();
    let tokens = (runs * steps * batch * seq_len) as f64;
    Ok(PackBench {
        mixer: mixer.name().into(),
        d_model,
        runs,
        batch,
        seq_len,
        steps,
        packed_s,
        sequential_s,
        packed_tokens_per_s: tokens / packed_s,
        sequential_tokens_per_s: tokens / sequential_s,
        speedup: sequential_s / packed_s,
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
    mixer: MixerKind,
    d_model: usize,
    examples: usize,
) -> Result<InterventionBench, crate::model::ModelError> {
    use crate::interp::{Corruption, InterchangeConfig, PatchPath, interchange_with};
    use crate::model::Site;
    use crate::task::Role;
    let task = ArConfig {
        num_kv: 8192,
        pairs: 16,
        query: ArQuery::Key,
        prohibit: None,
    };
    let data = task.generate(0, Split::Test, examples);
    let device = Default::default();
    let model = ModelConfig::paper(mixer, task.vocab_size(), d_model, 2)
        .init::<burn::backend::Flex>(0, &device)?;
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
    // start-up, which would otherwise land on whichever path is timed first.
    let warm_up = InterchangeConfig {
        examples: examples.min(32),
        ..cfg.clone()
    };
    interchange_with(&model, &task, &data, &warm_up, &device, PatchPath::Cached);
    let time = |path| {
        let start = Instant::now();
        let rows = interchange_with(&model, &task, &data, &cfg, &device, path).rows;
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
