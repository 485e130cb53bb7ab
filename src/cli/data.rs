//! `mechlab data`: a spec's generated data, shown decoded or measured before any training.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use mechlab::task::Split;

use super::args::{SpecArgs, pick_run};
use super::choice::choice;
use super::{Context, out, say};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Print the first examples of a split, decoded, with their roles marked.
    Show {
        #[command(flatten)]
        spec: SpecArgs,
        /// The run whose data to show (default: the first run).
        #[arg(long)]
        run: Option<String>,
        #[arg(long, default_value = "test", value_parser = choice::<Split>())]
        split: Split,
        /// How many examples.
        #[arg(long, short, default_value_t = 5)]
        n: usize,
    },
    /// Statistics of a split before training anything: lengths, key→value and query→key
    /// distances (and for ATR tree depth, repeated terminals, eligible pairs), as a table and as
    /// Parquet (one row per example).
    Stats {
        #[command(flatten)]
        spec: SpecArgs,
        /// The run whose data to measure (default: the first run).
        #[arg(long)]
        run: Option<String>,
        #[arg(long, default_value = "train", value_parser = choice::<Split>())]
        split: Split,
        /// How many examples to generate.
        #[arg(long, short, default_value_t = 10_000)]
        n: usize,
        /// Where to write the per-example table (default: `<results>/<experiment>/data_stats.parquet`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(args: &Args, cx: &Context) -> Result<ExitCode> {
    match &args.what {
        What::Show {
            spec,
            run,
            split,
            n,
        } => show(spec, run.as_deref(), *split, *n),
        What::Stats {
            spec,
            run,
            split,
            n,
            out,
        } => stats(spec, cx, run.as_deref(), *split, *n, out.clone()),
    }
}

fn show(args: &SpecArgs, run: Option<&str>, split: Split, n: usize) -> Result<ExitCode> {
    let resolved = args.resolve()?;
    let point = pick_run(&resolved, run)?;
    let task = point.task.config();
    let data = point.task.generate(point.seed, split, n)?;
    say!(
        "{} data of run {} (seed {}), first {}:",
        split.name(),
        point.name,
        point.seed,
        data.len()
    );
    for i in 0..data.len() {
        say!("{i:>4}  {}", task.describe(&data, i));
    }
    Ok(ExitCode::SUCCESS)
}

fn stats(
    args: &SpecArgs,
    cx: &Context,
    run: Option<&str>,
    split: Split,
    n: usize,
    out_path: Option<PathBuf>,
) -> Result<ExitCode> {
    let resolved = args.resolve()?;
    let point = pick_run(&resolved, run)?;
    let start = std::time::Instant::now();
    let (data, extra) = point.task.generate_with_stats(point.seed, split, n)?;
    let seconds = start.elapsed().as_secs_f64();
    let mut frame = mechlab::report::data_stats_frame(&data, extra.as_deref());
    let path = out_path.unwrap_or_else(|| cx.store.experiment(&resolved.experiment).data_stats());
    mechlab::store::write_parquet(
        &path,
        &mut frame,
        &[
            ("run", point.name.clone()),
            ("split", split.name().to_string()),
            ("seed", point.seed.to_string()),
        ],
    )?;
    say!(
        "{} split of run {} (seed {}): {} sequences generated in {:.2} s ({:.0}/s)",
        split.name(),
        point.name,
        point.seed,
        data.len(),
        seconds,
        data.len() as f64 / seconds.max(1e-9)
    );
    out(&mechlab::report::data_stats::summary_table(&frame).aligned())?;
    say!("per-example table: {}", path.display());
    Ok(ExitCode::SUCCESS)
}
