//! `mechlab slurm`: submit what is not done as an array job plus a collect job, or cancel them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};

use mechlab::exec::DeviceChoice;
use mechlab::exec::slurm::{Invocation, SlurmOptions, Submission};
use mechlab::plan::pack::PackPolicy;

use super::args::SpecArgs;
use super::{Context, say};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// `cpu`, or `cuda[:N]` (asks each task for a GPU unless `--gpus` says otherwise).
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// Slurm partition; default: the cluster's.
    #[arg(long)]
    partition: Option<String>,
    /// Account charged; default: yours.
    #[arg(long)]
    account: Option<String>,
    /// Wall-clock limit per task (`4:00:00`); default: the partition's.
    #[arg(long)]
    time: Option<String>,
    /// CPUs per task (burn's thread pool uses them all).
    #[arg(long, default_value_t = 2)]
    cpus_per_task: usize,
    /// Memory per task (`8G`); default: the partition's.
    #[arg(long)]
    mem: Option<String>,
    /// GPUs per task; default 1 with `--device cuda`, else 0.
    #[arg(long)]
    gpus: Option<usize>,
    /// At most this many tasks at once (the array's `%N`).
    #[arg(long)]
    max_parallel: Option<usize>,
    /// A further `#SBATCH` option, verbatim (`--sbatch-option=--qos=high`); repeatable.
    #[arg(
        long = "sbatch-option",
        value_name = "OPTION",
        allow_hyphen_values = true
    )]
    sbatch_options: Vec<String>,
    /// The sbatch program.
    #[arg(long, env = "MECHLAB_SBATCH", default_value = "sbatch")]
    sbatch: PathBuf,
    /// Write the scripts and print what would be submitted, without submitting.
    #[arg(long)]
    dry_run: bool,
    /// One task per packed group of runs (`auto`, the default), per group of at most N runs,
    /// or per run (`off`); each task trains its group as one program.
    #[arg(long, default_value = "auto", value_name = "auto|off|N")]
    pack: PackPolicy,
    /// Instead, cancel this spec's jobs that are still queued or running.
    #[arg(long, conflicts_with = "dry_run")]
    cancel: bool,
    /// The scancel program (with `--cancel`).
    #[arg(long, env = "MECHLAB_SCANCEL", default_value = "scancel")]
    scancel: PathBuf,
}

pub fn run(args: &Args, cx: &Context) -> Result<ExitCode> {
    let gpus = args
        .gpus
        .unwrap_or(usize::from(matches!(args.device, DeviceChoice::Cuda(_))));
    if !args.cancel {
        // The tasks run this very binary: a device it was not built for fails every task.
        args.device.check_available()?;
        check_gpu_index(args.device, gpus)?;
    }
    let graph = args.spec.plan()?;
    if args.cancel {
        let ids = mechlab::exec::slurm::cancel(&cx.store, &graph.experiment, &args.scancel)?;
        if ids.is_empty() {
            say!(
                "{}: no submission recorded; nothing to cancel",
                graph.experiment
            );
        } else {
            say!(
                "{}: asked Slurm to cancel jobs {}",
                graph.experiment,
                ids.join(", ")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let call = Invocation {
        spec: args.spec.spec.clone(),
        profile: args.spec.profile.clone(),
        sets: args.spec.sets.clone(),
        device: args.device.device_name(),
        results: cx.results.clone(),
    };
    let opts = SlurmOptions {
        partition: args.partition.clone(),
        account: args.account.clone(),
        time: args.time.clone(),
        cpus_per_task: args.cpus_per_task,
        mem: args.mem.clone(),
        gpus,
        max_parallel: args.max_parallel,
        extra: args.sbatch_options.clone(),
        pack: args.pack,
    };
    let submitted = mechlab::exec::slurm::submit_graph(
        &graph,
        &cx.store,
        &call,
        &opts,
        &args.sbatch,
        args.dry_run,
    )?;
    match submitted {
        None => say!(
            "{}: every node is done; nothing to submit",
            graph.experiment
        ),
        Some(s) => report(&s, args, &graph.experiment)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Slurm gives each task its own GPUs, numbered from 0 in the task (`CUDA_VISIBLE_DEVICES`), so
/// `cuda:N` names the task's N-th GPU and must be one it asked for.
fn check_gpu_index(device: DeviceChoice, gpus: usize) -> Result<()> {
    match device {
        DeviceChoice::Cuda(n) if gpus == 0 => bail!(
            "--device cuda:{n} with --gpus 0: the tasks would have no GPU (drop --gpus 0, or use --device cpu)"
        ),
        DeviceChoice::Cuda(n) if n >= gpus => bail!(
            "--device cuda:{n}: each task gets {gpus} GPU(s), numbered from 0 within the task by Slurm; use --device cuda (the task's first GPU) or ask for more with --gpus"
        ),
        _ => Ok(()),
    }
}

fn report(s: &Submission, args: &Args, experiment: &str) -> Result<()> {
    let plural = if s.tasks == 1 { "" } else { "s" };
    match &s.job_ids {
        None => {
            say!(
                "{experiment}: {} task{plural} ({} nodes) written to {}; would submit:",
                s.tasks,
                s.nodes,
                s.dir.display()
            );
            say!(
                "  {} --parsable {}",
                args.sbatch.display(),
                s.array.display()
            );
            say!(
                "  {} --parsable --dependency=afterany:<array job> {}",
                args.sbatch.display(),
                s.collect.display()
            );
        }
        Some((array, collect)) => {
            say!(
                "{experiment}: submitted array job {array} ({} task{plural}, {} nodes) and collect job {collect}; scripts and logs in {}",
                s.tasks,
                s.nodes,
                s.dir.display()
            );
            say!("follow with `mechlab status {}`", args.spec.spec.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_index_must_be_one_of_the_tasks_own() {
        assert!(check_gpu_index(DeviceChoice::Cuda(0), 1).is_ok());
        assert!(check_gpu_index(DeviceChoice::Cuda(1), 2).is_ok());
        assert!(check_gpu_index(DeviceChoice::Cpu, 0).is_ok());
        let e = check_gpu_index(DeviceChoice::Cuda(1), 1).unwrap_err();
        assert!(
            e.to_string().contains("numbered from 0 within the task"),
            "{e}"
        );
        let e = check_gpu_index(DeviceChoice::Cuda(0), 0).unwrap_err();
        assert!(e.to_string().contains("no GPU"), "{e}");
    }
}
