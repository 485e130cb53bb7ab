//! `mechlab bench`: training throughput, packed against one-at-a-time, or the intervention
//! grid's speed; one JSON line each.

use std::process::ExitCode;

use anyhow::Result;

use mechlab::exec::DeviceChoice;
use mechlab::model::MixerKind;

use super::choice::choice;
use super::say;

#[derive(clap::Args)]
pub struct Args {
    /// `cpu`, `cuda[:N]` or `wgpu`, as the binary was built. On cubecl's runtimes the kernel
    /// launches per training step are counted too.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// The mixer to time.
    #[arg(long, default_value = "attention", value_parser = choice::<MixerKind>())]
    mixer: MixerKind,
    #[arg(long, default_value_t = 64)]
    d_model: usize,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Untimed first steps (on an accelerator they compile and autotune the kernels; reported
    /// apart as `warmup_s`).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    warmup: u64,
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    steps: u64,
    /// Instead, time the paper's intervention grid (4 sites × every layer × 5 patch roles × key
    /// and value corruption) on this many examples: cached path vs naive reruns.
    #[arg(long, value_name = "EXAMPLES", conflicts_with = "pack")]
    interventions: Option<usize>,
    /// Instead, train this many runs (learning rates 1e-3·(1 + r/2), seeds r) as one packed
    /// group and then one after another in this process: one JSON line with both
    /// throughputs and their ratio.
    #[arg(long, value_name = "RUNS", value_parser = clap::value_parser!(u64).range(1..=64))]
    pack: Option<u64>,
}

pub fn run(a: &Args) -> Result<ExitCode> {
    let (warmup, steps) = (a.warmup as usize, a.steps as usize);
    let line = if let Some(examples) = a.interventions {
        serde_json::to_string(&mechlab::bench::intervention_speed(
            a.device, a.mixer, a.d_model, examples,
        )?)?
    } else if let Some(runs) = a.pack {
        serde_json::to_string(&mechlab::bench::pack_throughput(
            a.device,
            a.mixer,
            a.d_model,
            a.batch,
            warmup,
            steps,
            runs as usize,
        )?)?
    } else {
        serde_json::to_string(&mechlab::bench::train_throughput(
            a.device, a.mixer, a.d_model, a.batch, warmup, steps,
        )?)?
    };
    say!("{line}");
    Ok(ExitCode::SUCCESS)
}
