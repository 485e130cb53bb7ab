//! The `mechlab` command line: parse, dispatch to one function per subcommand, print errors once.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use mechlab::exec::{DeviceChoice, ExecOptions, run_graph};
use mechlab::plan::{NodeKind, RunGraph, plan};
use mechlab::spec::{LoadOptions, Resolved, load};
use mechlab::store::{NodeState, Store, Table};

// Tensor ops allocate a fresh output buffer each; the system allocator returns large ones to the
// kernel and page-faults them back in on every op, mimalloc keeps them (see README, Speed).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `println!` that treats a closed pipe (`mechlab status | head`) as a normal end, as ripgrep
/// does, instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

#[derive(Parser)]
#[command(
    name = "mechlab",
    version,
    about = "Mechanistic evaluation of sequence models from TOML specs"
)]
struct Cli {
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
    Validate(SpecArgs),
    /// Print the expanded run graph without running anything.
    Plan(SpecArgs),
    /// Run what is not done yet; rerunning resumes.
    Run(RunArgs),
    /// Submit what is not done to Slurm: an array job (a task per run), then a collect job.
    Slurm(SlurmArgs),
    /// Show done / running / failed / pending per node.
    Status(SpecArgs),
    /// Rebuild results/<experiment>/{runs,metrics}.parquet from the store.
    Collect(SpecArgs),
    /// Draw the paper's figure types from the results so far, as PNG and SVG.
    Plot {
        #[command(flatten)]
        spec: SpecArgs,
        /// Figure kinds: curves, accuracy, accuracy_lr, lr_box, scatter, attrib_layers, attrib
        /// (repeatable; default: all).
        #[arg(long = "kind")]
        kinds: Vec<String>,
        /// Attrib figures keep runs whose corruption moves the clean answer's probability by
        /// more than this (mean p_orig − mean p_corr). Default: the reference's, 0.01 for AR and
        /// MQAR, 0.1 for ATR.
        #[arg(long)]
        threshold: Option<f64>,
        /// `png`, `svg` or `both`.
        #[arg(long, default_value = "both")]
        format: String,
        /// The intervention site of the Attrib figures.
        #[arg(long, default_value = "block_input")]
        site: String,
        /// Output directory. Default: results/<experiment>/figures.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the report tables the spec declares (`[[tables]]`), from the results so far.
    Table {
        #[command(flatten)]
        spec: SpecArgs,
        /// Only this table (default: every table of the spec).
        #[arg(long)]
        name: Option<String>,
        /// `terminal`, `markdown`, `csv` or `latex`.
        #[arg(long, default_value = "terminal")]
        format: String,
    },
    /// Export a trained run's weights (safetensors, reference state-dict names).
    Export {
        #[command(subcommand)]
        what: ExportWhat,
    },
    /// Look at a spec's generated data.
    Data {
        #[command(subcommand)]
        what: DataWhat,
    },
    /// Write (or check) the JSON Schema of the spec format.
    Schema {
        /// Fail if the committed schema differs instead of writing it.
        #[arg(long)]
        check: bool,
        #[arg(long, default_value = mechlab::spec::schema::SCHEMA_PATH)]
        out: PathBuf,
    },
    /// Measure training throughput (tokens/s) of AR-32, batch 32, or the intervention grid's speed, on the CPU backend.
    Bench {
        /// The mixer to time.
        #[arg(long, default_value = "attention", value_parser = parse_mixer)]
        mixer: mechlab::model::MixerKind,
        #[arg(long, default_value_t = 64)]
        d_model: usize,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        #[arg(long, default_value_t = 50)]
        steps: usize,
        /// Instead, time the paper's intervention grid (4 sites × every layer × 5 patch roles × key
        /// and value corruption) on this many examples: cached path vs naive reruns.
        #[arg(long, value_name = "EXAMPLES")]
        interventions: Option<usize>,
    },
}

#[derive(Subcommand)]
enum DataWhat {
    /// Print the first examples of a split, decoded, with their roles marked.
    Show {
        #[command(flatten)]
        spec: SpecArgs,
        /// The run whose data to show (default: the first run).
        #[arg(long)]
        run: Option<String>,
        /// `train` or `test`.
        #[arg(long, default_value = "test")]
        split: String,
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
        /// `train`, `test` or `dev`.
        #[arg(long, default_value = "train")]
        split: String,
        /// How many examples to generate.
        #[arg(long, short, default_value_t = 10_000)]
        n: usize,
        /// Where to write the per-example table (default: `<results>/<experiment>/data_stats.parquet`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ExportWhat {
    /// Final weights of one run as safetensors, loadable into the reference PyTorch code.
    Weights {
        #[command(flatten)]
        spec: SpecArgs,
        /// The run's name (as `mechlab plan` prints it) or its train node id.
        #[arg(long)]
        run: String,
        /// Output file. Default: results/<experiment>/weights/<run>.safetensors.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A collected table (runs, metrics, interventions, interventions_detail, ablations), with
    /// the runs' parameters joined in, filtered, as Parquet or CSV.
    Table {
        #[command(flatten)]
        spec: SpecArgs,
        /// Which table.
        #[arg(long, value_enum)]
        table: Table,
        /// Keep rows where COLUMN equals VALUE (repeatable), e.g. `--filter model.mixer=based`.
        #[arg(long = "filter", value_name = "COLUMN=VALUE")]
        filters: Vec<String>,
        /// `parquet` or `csv`.
        #[arg(long, default_value = "parquet")]
        format: String,
        /// Output file. Default: results/<experiment>/export/<table>.<format>.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Args, Clone)]
struct SpecArgs {
    /// The experiment spec (TOML), or a folder: every experiment spec in it, in path order
    /// (files without an `[experiment]` table are include fragments, skipped).
    spec: PathBuf,
    /// Merge `[profile.NAME]` over the spec.
    #[arg(long)]
    profile: Option<String>,
    /// Override a key: `--set train.lr=1e-3` (repeatable; TOML values).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

#[derive(Args, Clone)]
struct RunArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// Nodes to run at once.
    #[arg(long, short, default_value_t = 1)]
    jobs: usize,
    /// `cpu`, or `cuda[:N]` in a build with `--features cuda`.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Run only this node (as a Slurm task does); repeatable.
    #[arg(long = "node")]
    nodes: Vec<String>,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
    /// Do not rebuild the tables afterwards (Slurm tasks leave that to one collect job).
    #[arg(long)]
    no_collect: bool,
}

#[derive(Args)]
struct SlurmArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// `cpu`, or `cuda[:N]` (asks each task for a GPU unless `--gpus` says otherwise).
    #[arg(long, default_value = "cpu")]
    device: String,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    let store = Store::new(&cli.results);
    match cli.command {
        Command::Validate(args) => each_spec(&args, "validate", None, validate),
        Command::Plan(args) => each_spec(&args, "plan", None, |a| print_plan(a, &store)),
        Command::Run(args) => {
            let interrupt = interrupt_flag()?;
            each_spec(&args.spec, "run", Some(&interrupt), |a| {
                let one = RunArgs {
                    spec: a.clone(),
                    ..args.clone()
                };
                run(&one, &store, interrupt.clone())
            })
        }
        Command::Slurm(args) => slurm(&args, &store, &cli.results),
        Command::Status(args) => each_spec(&args, "status", None, |a| status(a, &store)),
        Command::Collect(args) => each_spec(&args, "collect", None, |args| {
            let graph = plan(&resolve(args)?);
            let summary = mechlab::report::collect(&graph, &store)?;
            say!(
                "collected {} runs ({} done, {} metric rows, {} intervention rows) into {}",
                summary.runs,
                summary.done,
                summary.metric_rows,
                summary.intervention_rows,
                summary.tables.path().display()
            );
            Ok(ExitCode::SUCCESS)
        }),
        Command::Schema { check, out } => schema(check, &out),
        Command::Plot {
            spec,
            kinds,
            format,
            site,
            threshold,
            out,
        } => {
            let batch = spec.spec.is_dir();
            each_spec(&spec, "plot", None, |a| {
                // A folder's figures go to one subfolder per spec under --out.
                let out = match (&out, batch) {
                    (Some(o), true) => Some(o.join(a.spec.file_stem().unwrap_or_default())),
                    (o, _) => o.clone(),
                };
                plot(a, &store, &kinds, &format, &site, threshold, out)
            })
        }
        Command::Table { spec, name, format } => {
            let batch = spec.spec.is_dir();
            each_spec(&spec, "table", None, |a| {
                print_tables(a, &store, name.as_deref(), &format, batch)
            })
        }
        Command::Data {
            what:
                DataWhat::Show {
                    spec,
                    run,
                    split,
                    n,
                },
        } => show_data(&spec, run.as_deref(), &split, n),
        Command::Data {
            what:
                DataWhat::Stats {
                    spec,
                    run,
                    split,
                    n,
                    out,
                },
        } => data_stats(&spec, &store, run.as_deref(), &split, n, out),
        Command::Export {
            what: ExportWhat::Weights { spec, run, out },
        } => export_weights(&spec, &store, &run, out),
        Command::Export {
            what:
                ExportWhat::Table {
                    spec,
                    table,
                    filters,
                    format,
                    out,
                },
        } => export_table(&spec, &store, table, &filters, &format, out),
        Command::Bench {
            interventions: Some(examples),
            mixer,
            d_model,
            ..
        } => {
            let r = mechlab::bench::intervention_speed(mixer, d_model, examples)?;
            say!("{}", serde_json::to_string(&r)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            mixer,
            d_model,
            batch,
            warmup,
            steps,
            interventions: None,
        } => {
            let r = mechlab::bench::train_throughput(mixer, d_model, batch, warmup, steps)?;
            say!("{}", serde_json::to_string(&r)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs `f` on the spec, or on every experiment spec of a folder: a summary line per spec, one
/// exit code for all (failure if any failed). After Ctrl-C (`interrupt`) no further spec starts.
fn each_spec(
    args: &SpecArgs,
    what: &str,
    interrupt: Option<&Arc<AtomicBool>>,
    mut f: impl FnMut(&SpecArgs) -> Result<ExitCode>,
) -> Result<ExitCode> {
    use mechlab::spec::batch::{Found, discover};
    if !args.spec.is_dir() {
        return f(args);
    }
    let (mut ok, mut failed, mut skipped) = (0usize, 0usize, 0usize);
    for found in discover(&args.spec)? {
        if interrupt.is_some_and(|i| i.load(Ordering::SeqCst)) {
            say!("{what}: interrupted; the remaining specs were not started");
            return Ok(ExitCode::from(130));
        }
        match found {
            Found::Fragment(path) => {
                skipped += 1;
                say!(
                    "{what} {}: skipped (no [experiment]: an include fragment)",
                    path.display()
                );
            }
            Found::Experiment(path) => {
                let one = SpecArgs {
                    spec: path.clone(),
                    ..args.clone()
                };
                if what != "validate" {
                    // validate's own line names the spec; the others print more than one line.
                    say!("── {}", path.display());
                }
                match f(&one) {
                    Ok(code) if code == ExitCode::SUCCESS => ok += 1,
                    Ok(_) => {
                        failed += 1;
                        say!("{what} {}: failed", path.display());
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: {e:#}");
                        say!("{what} {}: failed", path.display());
                    }
                }
            }
        }
    }
    say!(
        "{what} {}: {ok} ok, {failed} failed, {skipped} fragments skipped",
        args.spec.display()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Ctrl-C sets the returned flag: running nodes checkpoint and stop. A second Ctrl-C exits.
fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            // Second Ctrl-C: the user wants out now; checkpoints already written stay valid.
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupt: checkpointing running nodes, then stopping (Ctrl-C again to quit now)"
        );
    })
    .context("installing the Ctrl-C handler")?;
    Ok(interrupt)
}

fn resolve(args: &SpecArgs) -> Result<Resolved> {
    let resolved = load(
        &args.spec,
        &LoadOptions {
            profile: args.profile.clone(),
            sets: args.sets.clone(),
            env: true,
        },
    )?;
    for w in &resolved.warnings {
        eprintln!("warning: {w}");
    }
    Ok(resolved)
}

fn validate(args: &SpecArgs) -> Result<ExitCode> {
    let resolved = resolve(args)?;
    let graph = plan(&resolved);
    say!(
        "{}: ok: experiment \"{}\", {} runs ({} dataset, {} train and {} evaluate nodes)",
        args.spec.display(),
        resolved.experiment,
        resolved.runs.len(),
        graph.count(NodeKind::Dataset),
        graph.count(NodeKind::Train),
        graph.count(NodeKind::Evaluate)
    );
    Ok(ExitCode::SUCCESS)
}

fn state_of(store: &Store, id: &str) -> Result<NodeState> {
    Ok(store.status(id)?.state)
}

fn print_plan(args: &SpecArgs, store: &Store) -> Result<ExitCode> {
    let resolved = resolve(args)?;
    let graph = plan(&resolved);
    say!(
        "experiment {} (spec hash {})",
        graph.experiment,
        graph.spec_hash
    );
    if let Some(d) = &resolved.description {
        say!("{d}");
    }
    for kind in [NodeKind::Dataset, NodeKind::Train, NodeKind::Evaluate] {
        let ids: Vec<_> = graph.nodes.iter().filter(|n| n.kind == kind).collect();
        let done = ids
            .iter()
            .filter(|n| state_of(store, &n.id).is_ok_and(|s| s == NodeState::Done))
            .count();
        say!("{:>8} nodes: {:>4} ({} done)", kind.name(), ids.len(), done);
    }
    say!();
    print_runs_table(&graph, store)?;
    Ok(ExitCode::SUCCESS)
}

/// One row per run: name, swept values, train node id and state.
fn print_runs_table(graph: &RunGraph, store: &Store) -> Result<()> {
    let axes: Vec<String> = graph
        .runs
        .first()
        .map(|r| r.point.axes.iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    let mut rows = vec![{
        let mut h = vec!["run".to_string()];
        h.extend(axes.iter().cloned());
        h.extend([
            "steps".into(),
            "test acc".into(),
            "train node".into(),
            "state".into(),
        ]);
        h
    }];
    for run in &graph.runs {
        let mut row = vec![run.point.name.clone()];
        for key in &axes {
            let v = run
                .point
                .axes
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone());
            row.push(match v {
                Some(serde_json::Value::String(s)) => s,
                Some(v) => v.to_string(),
                None => "-".into(),
            });
        }
        let status = store.status(&run.train)?;
        let state = match (status.state, status.step) {
            (NodeState::Pending, Some(step)) => format!("pending (checkpoint at step {step})"),
            (NodeState::Failed, _) => format!("failed: {}", status.error.unwrap_or_default()),
            (s, _) => s.to_string(),
        };
        let acc = store
            .run_summary(&run.train)
            .ok()
            .flatten()
            .and_then(|s| s.last.get("test.accuracy").copied())
            .map_or("-".to_string(), |a| format!("{:.1}%", 100.0 * a));
        row.extend([
            run.point.train.steps.to_string(),
            acc,
            run.train.clone(),
            state,
        ]);
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        say!("{}", line.join("  ").trim_end());
    }
    Ok(())
}

fn status(args: &SpecArgs, store: &Store) -> Result<ExitCode> {
    let graph = plan(&resolve(args)?);
    let mut counts = std::collections::BTreeMap::new();
    for node in &graph.nodes {
        *counts
            .entry(state_of(store, &node.id)?.to_string())
            .or_insert(0) += 1;
    }
    let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    say!(
        "experiment {}: {} nodes: {}",
        graph.experiment,
        graph.nodes.len(),
        summary.join(", ")
    );
    say!();
    print_runs_table(&graph, store)?;
    Ok(ExitCode::SUCCESS)
}

fn run(args: &RunArgs, store: &Store, interrupt: Arc<AtomicBool>) -> Result<ExitCode> {
    let device: DeviceChoice = args.device.parse()?;
    device.check_available()?;
    let resolved = resolve(&args.spec)?;
    let graph = plan(&resolved);
    for id in &args.nodes {
        if graph.node(id).is_none() {
            bail!("--node {id}: no such node in this spec's plan (see `mechlab plan`)");
        }
    }
    let opts = ExecOptions {
        jobs: args.jobs,
        device,
        quiet: args.quiet,
        only: args.nodes.clone(),
    };
    let report = run_graph(&graph, store, &opts, interrupt)?;
    let done = report.count(|o| matches!(o, mechlab::exec::node::Outcome::Done));
    let skipped = report.count(|o| matches!(o, mechlab::exec::node::Outcome::Skipped));
    let tables = if args.no_collect {
        "not collected".to_string()
    } else {
        let summary = mechlab::report::collect(&graph, store)?;
        format!("tables in {}", summary.tables.path().display())
    };
    say!(
        "{}: {} nodes ran, {} already done, {} failed; {tables}",
        graph.experiment,
        done,
        skipped,
        report.failed(),
    );
    if report.interrupted {
        eprintln!("interrupted: rerun the same command to resume");
        return Ok(ExitCode::from(130));
    }
    if report.failed() > 0 {
        eprintln!(
            "error: {} node(s) failed; see `mechlab status {}`",
            report.failed(),
            args.spec.spec.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn slurm(args: &SlurmArgs, store: &Store, results: &std::path::Path) -> Result<ExitCode> {
    use mechlab::exec::slurm::{self, SlurmOptions, shell_quote};
    let device: DeviceChoice = args.device.parse()?;
    let resolved = resolve(&args.spec)?;
    let graph = plan(&resolved);
    let tasks = slurm::tasks(&graph, store)?;
    if tasks.is_empty() {
        say!(
            "{}: every node is done; nothing to submit",
            graph.experiment
        );
        return Ok(ExitCode::SUCCESS);
    }
    // Tasks run elsewhere and later: every path they read must be absolute.
    let absolute = |p: &std::path::Path| -> Result<PathBuf> {
        std::path::absolute(p).with_context(|| format!("{}: cannot make absolute", p.display()))
    };
    let workdir = std::env::current_dir().context("reading the working directory")?;
    let exe = std::env::current_exe().context("locating the mechlab executable")?;
    let mechlab = format!(
        "{} --results {}",
        shell_quote(&exe.to_string_lossy()),
        shell_quote(&absolute(results)?.to_string_lossy())
    );
    let mut spec_args = vec![shell_quote(&absolute(&args.spec.spec)?.to_string_lossy())];
    if let Some(p) = &args.spec.profile {
        spec_args.push(format!("--profile {}", shell_quote(p)));
    }
    for s in &args.spec.sets {
        spec_args.push(format!("--set {}", shell_quote(s)));
    }
    let spec_args = spec_args.join(" ");
    let run_args = format!("{spec_args} --device {}", shell_quote(&args.device));
    let opts = SlurmOptions {
        partition: args.partition.clone(),
        account: args.account.clone(),
        time: args.time.clone(),
        cpus_per_task: args.cpus_per_task,
        mem: args.mem.clone(),
        gpus: args
            .gpus
            .unwrap_or(usize::from(matches!(device, DeviceChoice::Cuda(_)))),
        max_parallel: args.max_parallel,
        extra: args.sbatch_options.clone(),
    };

    let dir = absolute(&store.new_slurm_submission_dir(&graph.experiment))?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("{}: cannot create", logs.display()))?;
    let tasks_file = dir.join("tasks.txt");
    let lines: Vec<String> = tasks
        .iter()
        .map(|ids| {
            ids.iter()
                .map(|id| format!("--node {id}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    mechlab::store::atomic::write(&tasks_file, (lines.join("\n") + "\n").as_bytes())?;
    let name = format!("mechlab-{}", graph.experiment);
    let scripts = slurm::Scripts {
        name: &name,
        logs: &logs,
        workdir: &workdir,
        mechlab: &mechlab,
        opts: &opts,
    };
    let array = dir.join("array.sbatch");
    let script = scripts.array(tasks.len(), &tasks_file, &run_args);
    mechlab::store::atomic::write(&array, script.as_bytes())?;
    let collect = dir.join("collect.sbatch");
    mechlab::store::atomic::write(&collect, scripts.collect(&spec_args).as_bytes())?;

    // Runs may share a dataset node: count it once.
    let nodes = tasks
        .iter()
        .flatten()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if args.dry_run {
        say!(
            "{}: {} tasks ({nodes} nodes) written to {}; would submit:",
            graph.experiment,
            tasks.len(),
            dir.display()
        );
        say!("  {} --parsable {}", args.sbatch.display(), array.display());
        say!(
            "  {} --parsable --dependency=afterany:<array job> {}",
            args.sbatch.display(),
            collect.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let array_id = slurm::submit(&args.sbatch, &array, None)?;
    let collect_id = slurm::submit(&args.sbatch, &collect, Some(&array_id))?;
    say!(
        "{}: submitted array job {array_id} ({} tasks, {nodes} nodes) and collect job {collect_id}; scripts and logs in {}",
        graph.experiment,
        tasks.len(),
        dir.display()
    );
    say!("follow with `mechlab status {}`", args.spec.spec.display());
    Ok(ExitCode::SUCCESS)
}

fn schema(check: bool, out: &std::path::Path) -> Result<ExitCode> {
    let text = mechlab::spec::schema::experiment_schema();
    if check {
        let committed = std::fs::read_to_string(out)
            .with_context(|| format!("{}: cannot read", out.display()))?;
        if committed != text {
            bail!(
                "{} is stale: run `mechlab schema` and commit the result",
                out.display()
            );
        }
        say!("{}: up to date", out.display());
    } else {
        mechlab::store::write_atomic(out, text.as_bytes())?;
        say!("wrote {}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn export_weights(
    args: &SpecArgs,
    store: &Store,
    name: &str,
    out: Option<PathBuf>,
) -> Result<ExitCode> {
    let graph = plan(&resolve(args)?);
    let Some(run) = graph
        .runs
        .iter()
        .find(|r| r.point.name == name || r.train == name)
    else {
        let names: Vec<&str> = graph.runs.iter().map(|r| r.point.name.as_str()).collect();
        bail!(
            "--run {name}: no such run in this spec; runs: {}",
            names.join(", ")
        );
    };
    let state = store.status(&run.train)?.state;
    if state != NodeState::Done {
        bail!(
            "run {name} is {state}, not done: run `mechlab run {}` first",
            args.spec.display()
        );
    }
    let device = Default::default();
    let model = mechlab::exec::node::load_weights::<burn::backend::Flex>(
        store,
        run,
        run.point.train.steps,
        &device,
    )?;
    let path = out.unwrap_or_else(|| {
        store
            .experiment(&graph.experiment)
            .exported_weights(&run.point.name)
    });
    let metadata = [
        ("format", "pt".to_string()),
        ("mechlab.version", mechlab::VERSION.to_string()),
        ("mechlab.run", run.point.name.clone()),
        ("mechlab.run_id", run.train.clone()),
        ("mechlab.mixer", run.point.model.mixer.name().to_string()),
    ];
    let n =
        mechlab::report::export::export_weights(&model, run.point.model.mixer, &path, &metadata)?;
    say!("wrote {} tensors to {}", n, path.display());
    Ok(ExitCode::SUCCESS)
}

fn parse_mixer(s: &str) -> Result<mechlab::model::MixerKind, String> {
    let kind = mechlab::model::MixerKind::ALL
        .into_iter()
        .find(|k| k.name() == s)
        .ok_or_else(|| format!("unknown mixer \"{s}\""))?;
    Ok(kind)
}

fn print_tables(
    args: &SpecArgs,
    store: &Store,
    name: Option<&str>,
    format: &str,
    batch: bool,
) -> Result<ExitCode> {
    use mechlab::report::table::{Format, build_table, final_values};
    let format = match format {
        "terminal" => Format::Terminal,
        "markdown" => Format::Markdown,
        "csv" => Format::Csv,
        "latex" => Format::Latex,
        other => bail!("--format {other}: expected terminal, markdown, csv or latex"),
    };
    let resolved = resolve(args)?;
    if resolved.tables.is_empty() && batch {
        say!("{}: declares no tables", args.spec.display());
        return Ok(ExitCode::SUCCESS);
    }
    if resolved.tables.is_empty() {
        bail!(
            "{}: the spec declares no tables; add a [[tables]] block (name, rows, columns; see README.md)",
            args.spec.display()
        );
    }
    let tables: Vec<_> = match name {
        Some(n) => {
            let t: Vec<_> = resolved.tables.iter().filter(|t| t.name == n).collect();
            if t.is_empty() {
                let names: Vec<&str> = resolved.tables.iter().map(|t| t.name.as_str()).collect();
                bail!("--name {n}: no such table; tables: {}", names.join(", "));
            }
            t
        }
        None => resolved.tables.iter().collect(),
    };
    let graph = plan(&resolved);
    // Fresh tables from whatever is done so far.
    let summary = mechlab::report::collect(&graph, store)?;
    let metrics = mechlab::store::read_parquet(&summary.tables.table(Table::Metrics))?;
    for (i, spec) in tables.iter().enumerate() {
        let values = final_values(&metrics, &spec.metric, &spec.split)?;
        let table = build_table(spec, &graph, &values);
        if i > 0 && format != Format::Csv {
            say!("");
        }
        let text = table.render(format);
        // CSV: one header for all tables.
        let text = if format == Format::Csv && i > 0 {
            text.lines().skip(1).map(|l| format!("{l}\n")).collect()
        } else {
            text
        };
        say!("{}", text.trim_end());
    }
    Ok(ExitCode::SUCCESS)
}

fn plot(
    args: &SpecArgs,
    store: &Store,
    kinds: &[String],
    format: &str,
    site: &str,
    threshold: Option<f64>,
    out: Option<PathBuf>,
) -> Result<ExitCode> {
    use mechlab::report::plot::KINDS;
    let (png, svg) = match format {
        "png" => (true, false),
        "svg" => (false, true),
        "both" => (true, true),
        other => bail!("--format {other}: expected png, svg or both"),
    };
    if let Some(k) = kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
        bail!("--kind {k}: expected one of {}", KINDS.join(", "));
    }
    let kinds: Vec<&str> = if kinds.is_empty() {
        KINDS.to_vec()
    } else {
        kinds.iter().map(String::as_str).collect()
    };
    let resolved = resolve(args)?;
    let graph = plan(&resolved);
    let summary = mechlab::report::collect(&graph, store)?;
    let out = out.unwrap_or_else(|| summary.tables.figures());
    if let Some(t) = threshold
        && !t.is_finite()
    {
        bail!("--threshold {t}: expected a finite number");
    }
    let opts = mechlab::report::plot::PlotOptions {
        png,
        svg,
        site: site.to_string(),
        threshold,
    };
    for kind in kinds {
        let files = mechlab::report::plot::plot(&summary.tables, &out, kind, &opts)?;
        for f in files {
            say!("{kind}: {}", f.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn export_table(
    args: &SpecArgs,
    store: &Store,
    table: Table,
    filters: &[String],
    format: &str,
    out: Option<PathBuf>,
) -> Result<ExitCode> {
    use mechlab::report::export::tables::{filter, load_table, write_table};
    let csv = match format {
        "parquet" => false,
        "csv" => true,
        other => bail!("--format {other}: expected parquet or csv"),
    };
    let filters: Vec<(String, String)> = filters
        .iter()
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--filter {f}: expected COLUMN=VALUE"))
        })
        .collect::<Result<_>>()?;
    let resolved = resolve(args)?;
    let graph = plan(&resolved);
    let summary = mechlab::report::collect(&graph, store)?;
    let mut df = filter(load_table(&summary.tables, table)?, &filters)?;
    let path = out.unwrap_or_else(|| summary.tables.exported_table(table, format));
    write_table(&mut df, &path, csv)?;
    say!(
        "{} rows × {} columns → {}",
        df.height(),
        df.width(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The run `run` (default: the first) of the spec.
fn pick_run<'r>(resolved: &'r Resolved, run: Option<&str>) -> Result<&'r mechlab::spec::RunPoint> {
    match run {
        Some(name) => resolved
            .runs
            .iter()
            .find(|r| r.name == name)
            .with_context(|| {
                let names: Vec<&str> = resolved.runs.iter().map(|r| r.name.as_str()).collect();
                format!("--run {name}: no such run; runs: {}", names.join(", "))
            }),
        None => resolved.runs.first().context("the spec expands to no runs"),
    }
}

fn parse_split(split: &str) -> Result<mechlab::task::Split> {
    use mechlab::task::Split;
    Ok(match split {
        "train" => Split::Train,
        "test" => Split::Test,
        "dev" => Split::Dev,
        other => bail!("--split {other}: expected train, test or dev"),
    })
}

fn show_data(args: &SpecArgs, run: Option<&str>, split: &str, n: usize) -> Result<ExitCode> {
    use mechlab::task::Role;
    let resolved = resolve(args)?;
    let point = pick_run(&resolved, run)?;
    let split = parse_split(split)?;
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
        let roles = data.roles_of(i);
        let cells: Vec<String> = data.example(i)[..data.length(i)]
            .iter()
            .enumerate()
            .map(|(pos, &t)| {
                let name = task.token_name(t);
                // Roles can share a position (MQAR's first query may open the query region).
                let here: Vec<&str> = Role::ALL
                    .iter()
                    .filter(|r| roles[**r as usize] as usize == pos)
                    .map(|r| r.name())
                    .collect();
                if here.is_empty() {
                    name
                } else {
                    format!("{name}[{}]", here.join(","))
                }
            })
            .collect();
        say!("{i:>4}  {}", cells.join(" "));
    }
    Ok(ExitCode::SUCCESS)
}

fn data_stats(
    args: &SpecArgs,
    store: &Store,
    run: Option<&str>,
    split: &str,
    n: usize,
    out: Option<PathBuf>,
) -> Result<ExitCode> {
    use mechlab::task::TaskConfig;
    let resolved = resolve(args)?;
    let point = pick_run(&resolved, run)?;
    let split = parse_split(split)?;
    let start = std::time::Instant::now();
    let (data, extra) = match point.task.config() {
        TaskConfig::Atr(c) if point.task.rng() == mechlab::task::DataRng::Reference => {
            let counts = mechlab::task::reference::Counts {
                train: point.task.train_size(),
                test: point.task.test_size(),
            };
            let mut stats = Vec::new();
            let splits = mechlab::task::reference::atr::generate(
                &c,
                point.seed,
                counts,
                1_000_000,
                Some(&mut stats),
            )?;
            // The stream's statistics run train, dev, test in order; keep the split's own.
            let (skip, data) = (splits.offset(split), splits.get(split)?);
            let n = n.min(data.len());
            (data.head(n), Some(stats[skip..skip + n].to_vec()))
        }
        TaskConfig::Atr(c) => {
            let (d, s) = c
                .generate_with_stats(point.seed, split, n)
                .map_err(|e| anyhow::anyhow!(e))?;
            (d, Some(s))
        }
        _ => (point.task.generate(point.seed, split, n)?, None),
    };
    let seconds = start.elapsed().as_secs_f64();
    let frame = mechlab::report::data_stats_frame(&data, extra.as_deref());
    let path = out.unwrap_or_else(|| store.experiment(&resolved.experiment).data_stats());
    let mut frame = frame;
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
    say!(
        "{:<22} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7}",
        "statistic",
        "mean",
        "std",
        "min",
        "p50",
        "p90",
        "max"
    );
    for (name, values) in mechlab::report::data_stats_columns(&frame) {
        let mut v = values;
        v.sort_by(|a, b| a.total_cmp(b));
        let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
        let std =
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt();
        let q = |p: f64| {
            v.get(((v.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        say!(
            "{name:<22} {mean:>9.3} {std:>9.3} {:>7.2} {:>7.2} {:>7.2} {:>7.2}",
            q(0.0),
            q(0.5),
            q(0.9),
            q(1.0)
        );
    }
    say!("per-example table: {}", path.display());
    Ok(ExitCode::SUCCESS)
}
