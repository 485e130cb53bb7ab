//! `mechlab bench`: training throughput of the reference setting (AR-32, 2 layers, batch 32) on
//! this machine, for comparison with `bench/torch_ar.py` run on the same machine.

use std::time::Instant;

use serde::Serialize;

use crate::model::{MixerKind, ModelConfig};
use crate::task::{ArConfig, Split};
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
    let task = ArConfig {
        num_kv: 8192,
        pairs: 16,
    };
    let total = warmup + steps;
    let data = task.generate(0, Split::Train, batch * total);
    let model = ModelConfig {
        vocab_size: task.vocab_size(),
        d_model,
        layers: 2,
        mixer,
        pos_emb: mixer == MixerKind::Attention,
        max_positions: 1024,
        mlp: mixer != MixerKind::Mamba,
        init_std: crate::model::init::REFERENCE_INIT_STD,
    };
    let cfg = TrainConfig {
        batch_size: batch,
        steps: total,
        lr: 1e-3,
        weight_decay: 0.0,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        schedule: Schedule {
            kind: ScheduleKind::Constant,
            warmup: 0.0,
        },
        // No evaluation inside the timed window.
        eval_every: usize::MAX,
        checkpoint_every: usize::MAX,
        seed: 0,
    };
    let mut timer = Timer {
        warmup,
        start: None,
    };
    crate::train::train::<crate::exec::device::CpuBackend>(
        &model,
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
