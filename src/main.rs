//! The `mechlab` command line: parse, dispatch to one function per subcommand, print errors once.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use mechlab::exec::node::Outcome;
use mechlab::exec::slurm::{Invocation, SlurmOptions};
use mechlab::exec::{DeviceChoice, ExecOptions, run_graph};
use mechlab::model::MixerKind;
use mechlab::plan::pack::PackPolicy;
use mechlab::plan::{NodeKind, RunGraph, plan};
use mechlab::report::export::tables::FileFormat;
use mechlab::report::plot::{ImageFormat, Kind as PlotKind, PlotOptions};
use mechlab::report::table::Format as TableFormat;
use mechlab::spec::{LoadOptions, Resolved, RunPoint, load};
use mechlab::store::{Store, Table};
use mechlab::task::Split;

// Tensor ops allocate a fresh output buffer each; the system allocator returns large ones to the
// kernel and page-faults them back in on every op, mimalloc keeps them (see README, Speed).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `println!` that returns write errors (a closed pipe ends the command quietly, see `main`)
/// instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?;
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
    /// Show done / running / interrupted / failed / pending per node.
    Status {
        #[command(flatten)]
        spec: SpecArgs,
        /// Also check every file of every node against its checksum (exit 1 on any problem).
        #[arg(long)]
        verify: bool,
    },
    /// Rebuild results/<experiment>/{runs,metrics}.parquet from the store.
    Collect(SpecArgs),
    /// Draw the paper's figure types from the results so far, as PNG and SVG.
    Plot {
        #[command(flatten)]
        spec: SpecArgs,
        /// Figure kinds (repeatable; default: all).
        #[arg(long = "kind", value_enum)]
        kinds: Vec<PlotKind>,
        /// Attrib figures keep runs whose corruption moves the clean answer's probability by
        /// more than this (mean p_orig − mean p_corr). Default: the reference's, 0.01 for AR and
        /// MQAR, 0.1 for ATR.
        #[arg(long, value_parser = parse_finite)]
        threshold: Option<f64>,
        #[arg(long, value_enum, default_value_t = ImageFormat::Both)]
        format: ImageFormat,
        /// The intervention site of the Attrib figures.
        #[arg(long, default_value = "block_input", value_parser = parse_site)]
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
        #[arg(long, value_enum, default_value_t = TableFormat::Terminal)]
        format: TableFormat,
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
        mixer: MixerKind,
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
        #[arg(long, value_name = "EXAMPLES", conflicts_with = "pack")]
        interventions: Option<usize>,
        /// Instead, train this many runs (learning rates 1e-3·(1 + r/2), seeds r) as one packed
        /// group and then one after another in this process: one JSON line with both
        /// throughputs and their ratio.
        #[arg(long, value_name = "RUNS", value_parser = clap::value_parser!(u64).range(1..=64))]
        pack: Option<u64>,
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
        #[arg(long, value_enum, default_value_t = Split::Test)]
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
        #[arg(long, value_enum, default_value_t = Split::Train)]
        split: Split,
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
        #[arg(long = "filter", value_name = "COLUMN=VALUE", value_parser = parse_filter)]
        filters: Vec<(String, String)>,
        #[arg(long, value_enum, default_value_t = FileFormat::Parquet)]
        format: FileFormat,
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
    /// Refuse runs estimated to need more memory than this (`64G`, `512M`); default: this
    /// machine's memory.
    #[arg(
        long,
        value_name = "SIZE",
        env = "MECHLAB_MAX_MEMORY",
        value_parser = mechlab::spec::resources::parse_size
    )]
    max_memory: Option<u64>,
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

#[derive(Args)]
struct SlurmArgs {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        // `mechlab status | head`: a closed pipe is a normal end, as for ripgrep.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
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
                run(a, &args, &store, interrupt.clone())
            })
        }
        Command::Slurm(args) => slurm(&args, &store, &cli.results),
        Command::Status { spec, verify } => {
            each_spec(&spec, "status", None, |a| status(a, &store, verify))
        }
        Command::Collect(args) => each_spec(&args, "collect", None, |args| {
            let graph = plan(&resolve(args)?);
            let s = mechlab::report::collect(&graph, &store)?;
            warn_all(&s.warnings);
            say!(
                "collected {} runs ({} done, {} metric rows, {} intervention rows) into {}",
                s.runs,
                s.done,
                s.metric_rows,
                s.intervention_rows,
                s.tables.path().display()
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
            let opts = PlotOptions {
                format,
                site,
                threshold,
            };
            each_spec(&spec, "plot", None, |a| {
                // A folder's figures go to one subfolder per spec under --out.
                let out = match (&out, batch) {
                    (Some(o), true) => Some(o.join(a.spec.file_stem().unwrap_or_default())),
                    (o, _) => o.clone(),
                };
                let graph = plan(&resolve(a)?);
                for (kind, files) in
                    mechlab::report::plot::plot_experiment(&graph, &store, &kinds, out, &opts)?
                {
                    for f in files {
                        say!("{}: {}", kind.name(), f.display());
                    }
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Table { spec, name, format } => {
            let batch = spec.spec.is_dir();
            each_spec(&spec, "table", None, |a| {
                use mechlab::spec::batch::{Found, classify, load_tables_file};
                let tables = if let Found::Tables(path) = classify(&a.spec) {
                    let specs = load_tables_file(&path)?;
                    let base = path.parent().unwrap_or(std::path::Path::new("."));
                    mechlab::report::table::compose(
                        &specs,
                        base,
                        None,
                        &store,
                        name.as_deref(),
                        &load_options(a),
                    )
                } else {
                    let resolved = resolve(a)?;
                    if resolved.tables.is_empty() && batch {
                        say!("{}: declares no tables", a.spec.display());
                        return Ok(ExitCode::SUCCESS);
                    }
                    let graph = plan(&resolved);
                    mechlab::report::table::spec_tables(
                        &resolved,
                        &graph,
                        &store,
                        name.as_deref(),
                        &load_options(a),
                    )
                }
                .with_context(|| a.spec.display().to_string())?;
                out(&mechlab::report::table::render_all(&tables, format))?;
                Ok(ExitCode::SUCCESS)
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
        } => show_data(&spec, run.as_deref(), split, n),
        Command::Data {
            what:
                DataWhat::Stats {
                    spec,
                    run,
                    split,
                    n,
                    out,
                },
        } => data_stats(&spec, &store, run.as_deref(), split, n, out),
        Command::Export {
            what: ExportWhat::Weights { spec, run, out },
        } => {
            let graph = plan(&resolve(&spec)?);
            let (n, path) = mechlab::report::export::export_run_weights(&graph, &store, &run, out)
                .with_context(|| spec.spec.display().to_string())?;
            say!("wrote {} tensors to {}", n, path.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Export {
            what:
                ExportWhat::Table {
                    spec,
                    table,
                    filters,
                    format,
                    out,
                },
        } => {
            let graph = plan(&resolve(&spec)?);
            let (df, path) = mechlab::report::export::tables::export_table(
                &graph, &store, table, &filters, format, out,
            )?;
            say!(
                "{} rows × {} columns → {}",
                df.height(),
                df.width(),
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
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
            pack: Some(runs),
            ..
        } => {
            let r = mechlab::bench::pack_throughput(
                mixer,
                d_model,
                batch,
                warmup,
                steps,
                runs as usize,
            )?;
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
            pack: None,
        } => {
            let r = mechlab::bench::train_throughput(mixer, d_model, batch, warmup, steps)?;
            say!("{}", serde_json::to_string(&r)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes `text` to stdout as is.
fn out(text: &str) -> Result<()> {
    use std::io::Write as _;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// Runs `f` on the spec, or on every experiment spec of a folder: a summary line per spec, one
/// exit code for all (failure if any failed). After Ctrl-C (`interrupt`) no further spec starts.
fn each_spec(
    args: &SpecArgs,
    what: &str,
    interrupt: Option<&Arc<AtomicBool>>,
    mut f: impl FnMut(&SpecArgs) -> Result<ExitCode>,
) -> Result<ExitCode> {
    use mechlab::spec::batch::{Found, classify, discover};
    // `validate` and `table` read tables-only files; the other commands have nothing to do there.
    let takes_tables = matches!(what, "validate" | "table");
    if !args.spec.is_dir() {
        if !takes_tables && matches!(classify(&args.spec), Found::Tables(_)) {
            say!(
                "{}: declares only tables (composed from other specs): use `mechlab table`",
                args.spec.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        return f(args);
    }
    let (mut ok, mut failed, mut skipped) = (0usize, 0usize, 0usize);
    for found in discover(&args.spec)? {
        if interrupt.is_some_and(|i| i.load(Ordering::SeqCst)) {
            say!("{what}: interrupted; the remaining specs were not started");
            return Ok(ExitCode::from(130));
        }
        match found {
            Found::Tables(path) if !takes_tables => {
                skipped += 1;
                say!("{what} {}: skipped (tables only)", path.display());
            }
            Found::Fragment(path) => {
                skipped += 1;
                say!(
                    "{what} {}: skipped (no [experiment]: an include fragment)",
                    path.display()
                );
            }
            Found::Experiment(path) | Found::Tables(path) => {
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
        "{what} {}: {ok} ok, {failed} failed, {skipped} skipped (fragments or tables only)",
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

fn load_options(args: &SpecArgs) -> LoadOptions {
    LoadOptions {
        profile: args.profile.clone(),
        sets: args.sets.clone(),
        env: true,
        max_memory: args.max_memory,
    }
}

fn resolve(args: &SpecArgs) -> Result<Resolved> {
    let resolved = load(&args.spec, &load_options(args))?;
    for w in &resolved.warnings {
        eprintln!("warning: {w}");
    }
    Ok(resolved)
}

fn validate(args: &SpecArgs) -> Result<ExitCode> {
    use mechlab::spec::batch::{Found, classify, load_tables_file};
    if let Found::Tables(path) = classify(&args.spec) {
        // A tables-only file: its tables parse and every source spec loads.
        let tables = load_tables_file(&path)?;
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        let mut sources: Vec<PathBuf> = tables
            .iter()
            .flat_map(|t| t.sources.iter().map(|s| base.join(&s.spec)))
            .collect();
        sources.sort();
        sources.dedup();
        for source in &sources {
            load(source, &load_options(args))
                .with_context(|| format!("{}: a table source", path.display()))?;
        }
        say!(
            "{}: ok: {} tables over {} source specs",
            path.display(),
            tables.len(),
            sources.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
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
    for c in mechlab::report::runs::kind_counts(&graph, store) {
        say!(
            "{:>8} nodes: {:>4} ({} done)",
            c.kind.name(),
            c.total,
            c.done
        );
    }
    print_groups(&graph)?;
    say!();
    print_runs(&graph, store)
}

/// The packed training groups `run` forms by default (`--pack auto`).
fn print_groups(graph: &RunGraph) -> Result<()> {
    let groups = mechlab::plan::pack::train_groups(graph, PackPolicy::Auto);
    let packed = groups.iter().filter(|g| g.len() > 1).count();
    if packed == 0 {
        return Ok(());
    }
    say!(
        "packed training (--pack auto): {} programs for {} train nodes",
        groups.len(),
        groups.iter().map(Vec::len).sum::<usize>()
    );
    for (i, group) in groups.iter().enumerate().filter(|(_, g)| g.len() > 1) {
        let names: Vec<&str> = group
            .iter()
            .map(|&r| graph.runs[r].point.name.as_str())
            .collect();
        say!(
            "  group {} ({} runs): {}",
            i + 1,
            group.len(),
            names.join(", ")
        );
    }
    Ok(())
}

fn print_runs(graph: &RunGraph, store: &Store) -> Result<ExitCode> {
    let queued = mechlab::exec::slurm::queued(store, &graph.experiment);
    if !queued.is_empty() {
        say!("{} nodes in the Slurm queue", queued.len());
    }
    out(&mechlab::report::runs::runs_table(graph, store, &queued)?.aligned())?;
    Ok(ExitCode::SUCCESS)
}

fn warn_all(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

fn status(args: &SpecArgs, store: &Store, verify: bool) -> Result<ExitCode> {
    let graph = plan(&resolve(args)?);
    if verify {
        return verify_files(&graph, store);
    }
    let counts = mechlab::report::runs::state_counts(&graph, store)?;
    let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    say!(
        "experiment {}: {} nodes: {}",
        graph.experiment,
        graph.nodes.len(),
        summary.join(", ")
    );
    say!();
    print_runs(&graph, store)
}

/// `status --verify`: every done node's files against their checksums.
fn verify_files(graph: &RunGraph, store: &Store) -> Result<ExitCode> {
    use mechlab::store::NodeState;
    let (mut checked, mut bad) = (0usize, 0usize);
    for node in &graph.nodes {
        let status = store.status(&node.id)?;
        if let Some(e) = status
            .error
            .as_ref()
            .filter(|_| status.state == NodeState::Pending)
        {
            say!("{} {}: {e}", node.kind.name(), node.id);
        }
        if status.state != NodeState::Done {
            continue;
        }
        checked += 1;
        let problems = mechlab::store::checksum::problems(store, node);
        if !problems.is_empty() {
            bad += 1;
        }
        for (path, check) in problems {
            say!(
                "{} {}: {}: {check:?}",
                node.kind.name(),
                node.id,
                path.display()
            );
        }
    }
    if bad > 0 {
        say!(
            "{}: {bad} of {checked} done nodes have files that fail verification; `mechlab run` recomputes them",
            graph.experiment
        );
        return Ok(ExitCode::FAILURE);
    }
    say!(
        "{}: the files of all {checked} done nodes verify",
        graph.experiment
    );
    Ok(ExitCode::SUCCESS)
}

fn run(
    spec: &SpecArgs,
    args: &RunArgs,
    store: &Store,
    interrupt: Arc<AtomicBool>,
) -> Result<ExitCode> {
    args.device.check_available()?;
    let graph = plan(&resolve(spec)?);
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
    let report = run_graph(&graph, store, &opts, interrupt)?;
    let tables = if args.no_collect {
        "not collected".to_string()
    } else {
        let summary = mechlab::report::collect(&graph, store)?;
        warn_all(&summary.warnings);
        format!("tables in {}", summary.tables.path().display())
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

fn slurm(args: &SlurmArgs, store: &Store, results: &std::path::Path) -> Result<ExitCode> {
    let graph = plan(&resolve(&args.spec)?);
    if args.cancel {
        let ids = mechlab::exec::slurm::cancel(store, &graph.experiment, &args.scancel)?;
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
        results: results.to_path_buf(),
    };
    let opts = SlurmOptions {
        partition: args.partition.clone(),
        account: args.account.clone(),
        time: args.time.clone(),
        cpus_per_task: args.cpus_per_task,
        mem: args.mem.clone(),
        gpus: args
            .gpus
            .unwrap_or(usize::from(matches!(args.device, DeviceChoice::Cuda(_)))),
        max_parallel: args.max_parallel,
        extra: args.sbatch_options.clone(),
        pack: args.pack,
    };
    let submitted = mechlab::exec::slurm::submit_graph(
        &graph,
        store,
        &call,
        &opts,
        &args.sbatch,
        args.dry_run,
    )?;
    let Some(s) = submitted else {
        say!(
            "{}: every node is done; nothing to submit",
            graph.experiment
        );
        return Ok(ExitCode::SUCCESS);
    };
    match &s.job_ids {
        None => {
            say!(
                "{}: {} task{} ({} nodes) written to {}; would submit:",
                graph.experiment,
                s.tasks,
                if s.tasks == 1 { "" } else { "s" },
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
                "{}: submitted array job {array} ({} task{}, {} nodes) and collect job {collect}; scripts and logs in {}",
                graph.experiment,
                s.tasks,
                if s.tasks == 1 { "" } else { "s" },
                s.nodes,
                s.dir.display()
            );
            say!("follow with `mechlab status {}`", args.spec.spec.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn schema(check: bool, path: &std::path::Path) -> Result<ExitCode> {
    let text = mechlab::spec::schema::experiment_schema();
    if check {
        let committed = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        if committed != text {
            bail!(
                "{} is stale: run `mechlab schema` and commit the result",
                path.display()
            );
        }
        say!("{}: up to date", path.display());
    } else {
        mechlab::store::write_atomic(path, text.as_bytes())?;
        say!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_mixer(s: &str) -> Result<MixerKind, String> {
    MixerKind::ALL
        .into_iter()
        .find(|k| k.name() == s)
        .ok_or_else(|| {
            let names: Vec<&str> = MixerKind::ALL.iter().map(|k| k.name()).collect();
            format!("expected one of {}", names.join(", "))
        })
}

fn parse_site(s: &str) -> Result<String, String> {
    use mechlab::model::Site;
    let names: Vec<&str> = Site::BLOCK
        .iter()
        .chain(&Site::INTERNAL)
        .map(|s| s.name())
        .collect();
    if names.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!("expected one of {}", names.join(", ")))
    }
}

fn parse_finite(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err("expected a finite number".into()),
    }
}

fn parse_filter(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| "expected COLUMN=VALUE".into())
}

/// The run `run` (default: the first) of the spec.
fn pick_run<'r>(resolved: &'r Resolved, run: Option<&str>) -> Result<&'r RunPoint> {
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

fn show_data(args: &SpecArgs, run: Option<&str>, split: Split, n: usize) -> Result<ExitCode> {
    let resolved = resolve(args)?;
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

fn data_stats(
    args: &SpecArgs,
    store: &Store,
    run: Option<&str>,
    split: Split,
    n: usize,
    out_path: Option<PathBuf>,
) -> Result<ExitCode> {
    let resolved = resolve(args)?;
    let point = pick_run(&resolved, run)?;
    let start = std::time::Instant::now();
    let (data, extra) = point.task.generate_with_stats(point.seed, split, n)?;
    let seconds = start.elapsed().as_secs_f64();
    let mut frame = mechlab::report::data_stats_frame(&data, extra.as_deref());
    let path = out_path.unwrap_or_else(|| store.experiment(&resolved.experiment).data_stats());
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
