//! The command line: the subcommands and their dispatch. Arguments shared by several commands
//! are in [`args`], choices are parsed one way ([`choice`]), and each command's arguments and
//! body are in its own file. A new subcommand is one file here and one line in [`dispatch`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use mechlab::store::Store;

mod args;
mod bench;
mod choice;
mod collect;
mod data;
mod export;
mod folder;
mod plan;
mod plot;
mod run;
mod schema;
mod selftest;
mod slurm;
mod status;
mod table;
mod validate;

/// `println!` that returns write errors (a closed pipe ends the command quietly, see `main`)
/// instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?;
    }};
}
pub(crate) use say;

#[derive(Parser)]
#[command(
    name = "mechlab",
    version,
    about = "Mechanistic evaluation of sequence models from TOML specs"
)]
pub struct Cli {
    /// Results root (node store and collected tables).
    #[arg(
        long,
        global = true,
        env = "MECHLAB_RESULTS",
        default_value = "results"
    )]
    results: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a spec: every error with file:line, key and what was expected.
    Validate(args::SpecArgs),
    /// Print the expanded run graph without running anything.
    Plan(args::SpecArgs),
    /// Run what is not done yet; rerunning resumes.
    Run(run::Args),
    /// Submit what is not done to Slurm: an array job (a task per run), then a collect job.
    Slurm(slurm::Args),
    /// Show done / running / interrupted / failed / pending per node.
    Status(status::Args),
    /// Rebuild results/<experiment>/{runs,metrics}.parquet from the store.
    Collect(args::SpecArgs),
    /// Draw the paper's figure types from the results so far, as PNG and SVG.
    Plot(plot::Args),
    /// Print the report tables the spec declares (`[[tables]]`), from the results so far.
    Table(table::Args),
    /// Export a trained run's weights (safetensors, reference state-dict names).
    Export(export::Args),
    /// Look at a spec's generated data.
    Data(data::Args),
    /// Write (or check) the JSON Schema of the spec format.
    Schema(schema::Args),
    /// Check the numerics on a device: the PyTorch fixtures through every mixer, the scan, the
    /// generic operations, packing; one JSON line per check.
    Selftest(selftest::Args),
    /// Measure training throughput (tokens/s) of AR-32, batch 32, or the intervention grid's speed.
    Bench(bench::Args),
}

/// What every command may use besides its own arguments.
pub struct Context {
    /// `--results`.
    pub results: PathBuf,
    pub store: Store,
}

pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    let cx = Context {
        store: Store::new(&cli.results),
        results: cli.results,
    };
    match cli.command {
        Command::Validate(a) => validate::run(&a),
        Command::Plan(a) => plan::run(&a, &cx),
        Command::Run(a) => run::run(&a, &cx),
        Command::Slurm(a) => slurm::run(&a, &cx),
        Command::Status(a) => status::run(&a, &cx),
        Command::Collect(a) => collect::run(&a, &cx),
        Command::Plot(a) => plot::run(&a, &cx),
        Command::Table(a) => table::run(&a, &cx),
        Command::Export(a) => export::run(&a, &cx),
        Command::Data(a) => data::run(&a, &cx),
        Command::Schema(a) => schema::run(&a),
        Command::Selftest(a) => selftest::run(&a),
        Command::Bench(a) => bench::run(&a),
    }
}

/// Writes `text` to stdout as is.
fn out(text: &str) -> Result<()> {
    use std::io::Write as _;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

fn warn_all(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}
