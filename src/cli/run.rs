//! `mechlab run`: run what is not done, locally, then collect the tables.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result, bail};

use mechlab::exec::node::Outcome;
use mechlab::exec::{DeviceChoice, ExecOptions, run_graph};
use mechlab::plan::pack::PackPolicy;

use super::args::SpecArgs;
use super::folder::each_spec;
use super::{Context, say, warn_all};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// Nodes to run at once.
    #[arg(long, short, default_value_t = 1)]
    jobs: usize,
    /// `cpu`, or `cuda[:N]` in a build with `--features cuda`.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// Run only this node (as a Slurm task does); repeatable.
    #[arg(long = "node")]
    nodes: Vec<String>,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
    /// Do not rebuild the tables afterwards (Slurm tasks leave that to one collect job).
    #[arg(long)]
    no_collect: bool,
    /// Train packable runs together as one program: `auto` (every packable group, up to 16
    /// runs), `off` (one run per program) or a number of runs per program. `plan` shows the
    /// groups.
    #[arg(long, default_value = "auto", value_name = "auto|off|N")]
    pack: PackPolicy,
    /// Train every run only up to this step of its schedule (the learning-rate schedule stays
    /// the spec's), checkpoint and stop; run again with a later step, or without, to continue.
    /// `status` and `plot --kind curves` show the runs so far.
    #[arg(long, value_name = "STEP")]
    until_step: Option<usize>,
}

pub fn run(args: &Args, cx: &Context) -> Result<ExitCode> {
    let interrupt = interrupt_flag()?;
    each_spec(&args.spec, "run", Some(&interrupt), |a| {
        one(a, args, cx, interrupt.clone())
    })
}

fn one(spec: &SpecArgs, args: &Args, cx: &Context, interrupt: Arc<AtomicBool>) -> Result<ExitCode> {
    args.device.check_available()?;
    let graph = spec.plan()?;
    for id in &args.nodes {
        if graph.node(id).is_none() {
            bail!("--node {id}: no such node in this spec's plan (see `mechlab plan`)");
        }
    }
    let opts = ExecOptions {
        jobs: args.jobs,
        device: args.device,
        quiet: args.quiet,
        only: args.nodes.clone(),
        pack: args.pack,
        until_step: args.until_step,
    };
    let report = run_graph(&graph, &cx.store, &opts, interrupt)?;
    let tables = if args.no_collect {
        "not collected".to_string()
    } else {
        let collected = mechlab::report::collect(&graph, &cx.store)?;
        warn_all(&collected.warnings);
        let dir = cx.store.experiment(&graph.experiment);
        collected.tables.write(&dir)?;
        format!("tables in {}", dir.path().display())
    };
    say!(
        "{}: {} nodes ran, {} already done, {} failed; {tables}",
        graph.experiment,
        report.count(|o| matches!(o, Outcome::Done)),
        report.count(|o| matches!(o, Outcome::Skipped)),
        report.failed(),
    );
    if report.interrupted {
        eprintln!("interrupted: rerun the same command to resume");
        return Ok(ExitCode::from(130));
    }
    let stopped = report.count(|o| matches!(o, Outcome::Interrupted { .. }));
    if let (Some(step), true) = (args.until_step, stopped > 0) {
        say!(
            "{stopped} runs stopped at step {step} (--until-step); run again with a later step, or without it, to continue"
        );
    }
    if report.failed() > 0 {
        eprintln!(
            "error: {} node(s) failed; see `mechlab status {}`",
            report.failed(),
            spec.spec.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C (or SIGTERM, as Slurm sends ahead of a time limit) sets the returned flag: running
/// nodes checkpoint and stop. A second one exits.
fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            // Second Ctrl-C: the user wants out now; checkpoints already written stay valid.
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupt (Ctrl-C or SIGTERM): checkpointing running nodes, then stopping (Ctrl-C again to quit now)"
        );
    })
    .context("installing the Ctrl-C handler")?;
    Ok(interrupt)
}
