//! Executing one node: lock, status bookkeeping, and the node's work.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::AutodiffBackend;
use indicatif::ProgressBar;

use super::ExecError;
use super::device::DeviceChoice;
use crate::plan::{Node, NodeKind, PlannedRun};
use crate::spec::RunPoint;
use crate::spec::resolve::ResolvedIntervention;
use crate::store::shards::{
    ablations_frame, detail_frame, interventions_frame, metrics_frame, stack,
};
use crate::store::status::now;
use crate::store::{NodeLock, NodeState, RunSummary, Shard, Status, Store, write_atomic};
use crate::task::{Dataset, Split};
use crate::train::{
    Checkpoint, Checkpointer, Control, GroupRun, LossReads, MetricRow, Observer, RunOutcome,
    train_group,
};

/// How a node attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done,
    /// Already done before this run.
    Skipped,
    /// Another process holds the node's lock.
    Busy,
    /// Stopped by Ctrl-C after checkpointing at `step`.
    Interrupted {
        step: usize,
    },
    Failed(String),
}

/// Everything a node needs besides itself.
pub struct NodeContext<'a> {
    pub store: &'a Store,
    pub device: DeviceChoice,
    pub interrupt: Arc<AtomicBool>,
    /// Stop training at this step of the schedule (checkpointed, resumable).
    pub until_step: Option<usize>,
    pub bar: Option<ProgressBar>,
}

impl NodeContext<'_> {
    /// A line for the user: above the progress bars when they are shown, else on stderr
    /// (`--quiet` hides the bars, not the warnings).
    fn say(&self, message: String) {
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(message),
            _ => eprintln!("{message}"),
        }
    }
}

/// A node whose lock is held and whose status says it runs.
pub(super) struct Begun {
    _lock: NodeLock,
    status: Status,
    started: Instant,
    previous_wall_s: f64,
}

/// Locks `node` (waiting for another process that holds it) and marks it running; or says why
/// it need not run (done, or still busy when interrupted).
pub(super) fn begin(node: &Node, ctx: &NodeContext) -> Result<Result<Begun, Outcome>, ExecError> {
    let lock_path = ctx.store.node(&node.id).lock();
    let lock = match NodeLock::try_acquire(&lock_path)? {
        Some(lock) => lock,
        None => {
            // Another process (a second `mechlab run`, a Slurm task) runs this node: wait for
            // it rather than fail its dependents; then it is usually done and skipped.
            let message = format!(
                "waiting: {} node {} is running in another process",
                node.kind.name(),
                node.id
            );
            ctx.say(message);
            match wait_for_lock(&lock_path, &ctx.interrupt)? {
                Some(lock) => lock,
                None => return Ok(Err(Outcome::Busy)),
            }
        }
    };
    ctx.store.clean_temporaries(&node.id)?;
    let previous = ctx.store.status(&node.id)?;
    if previous.state == NodeState::Done {
        return Ok(Err(Outcome::Skipped));
    }
    ctx.store.write_spec(&node.id, &node.config)?;
    let status = Status {
        state: NodeState::Running,
        kind: node.kind.name().to_string(),
        started: Some(now()),
        backend: Some(ctx.device.backend().to_string()),
        device: Some(ctx.device.device_name()),
        mechlab_version: Some(crate::VERSION.to_string()),
        pid: Some(std::process::id()),
        step: previous.step,
        ..Status::default()
    };
    ctx.store.write_status(&node.id, &status)?;
    Ok(Ok(Begun {
        _lock: lock,
        status,
        started: Instant::now(),
        previous_wall_s: previous.wall_s.unwrap_or(0.0),
    }))
}

/// Records how the node's work ended (`Ok(Some(step))`: interrupted at `step`) and releases
/// its lock. Failures of the work are recorded and returned as `Outcome::Failed`; only store
/// errors abort.
pub(super) fn finish(
    node: &Node,
    begun: Begun,
    result: Result<Option<usize>, ExecError>,
    ctx: &NodeContext,
) -> Result<Outcome, ExecError> {
    let mut status = begun.status;
    status.pid = None;
    status.wall_s = Some(begun.started.elapsed().as_secs_f64() + begun.previous_wall_s);
    let outcome = match result {
        Ok(None) => {
            status.state = NodeState::Done;
            status.finished = Some(now());
            Outcome::Done
        }
        Ok(Some(step)) => {
            status.state = NodeState::Pending;
            status.step = Some(step as u64);
            Outcome::Interrupted { step }
        }
        Err(ExecError::Store(e)) => return Err(ExecError::Store(e)),
        Err(e) => {
            status.state = NodeState::Failed;
            status.finished = Some(now());
            status.error = Some(e.to_string());
            Outcome::Failed(e.to_string())
        }
    };
    ctx.store.write_status(&node.id, &status)?;
    Ok(outcome)
}

/// Runs `node` unless it is done or busy. Failures of the node's work are recorded in its
/// status and returned as `Outcome::Failed`; only store errors abort.
pub fn execute(
    node: &Node,
    run: Option<&PlannedRun>,
    ctx: &NodeContext,
) -> Result<Outcome, ExecError> {
    let begun = match begin(node, ctx)? {
        Ok(begun) => begun,
        Err(outcome) => return Ok(outcome),
    };
    let result = match node.kind {
        NodeKind::Dataset => run_dataset(node, run, ctx).map(|()| None),
        NodeKind::Train => match run_point(node, run) {
            Ok(run) => train_runs(&[(run, ctx)]).pop().expect("one result per run"),
            Err(e) => Err(e),
        },
        NodeKind::Evaluate => run_eval(node, run, ctx).map(|()| None),
    };
    finish(node, begun, result, ctx)
}

/// Trains the train nodes `members` as one packed group ([`crate::train::train_group`]): each
/// member keeps its own lock, status, checkpoint, files and outcome. Members that are done are
/// skipped; members busy in another process are waited for first.
pub fn execute_train_group(
    members: &[(&Node, &PlannedRun, NodeContext)],
) -> Result<Vec<Outcome>, ExecError> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; members.len()];
    let mut begun = Vec::new();
    for (i, (node, _, ctx)) in members.iter().enumerate() {
        match begin(node, ctx)? {
            Ok(b) => begun.push((i, b)),
            Err(outcome) => outcomes[i] = Some(outcome),
        }
    }
    let to_train: Vec<(&PlannedRun, &NodeContext)> = begun
        .iter()
        .map(|(i, _)| (members[*i].1, &members[*i].2))
        .collect();
    let results = if to_train.is_empty() {
        Vec::new()
    } else {
        train_runs(&to_train)
    };
    for ((i, b), result) in begun.into_iter().zip(results) {
        let (node, _, ctx) = &members[i];
        outcomes[i] = Some(finish(node, b, result, ctx)?);
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every member has an outcome"))
        .collect())
}

/// Polls for the node's lock until it is free or `interrupt` is set (then `None`).
fn wait_for_lock(
    path: &std::path::Path,
    interrupt: &AtomicBool,
) -> Result<Option<NodeLock>, ExecError> {
    loop {
        if interrupt.load(Ordering::Relaxed) {
            return Ok(None);
        }
        if let Some(lock) = NodeLock::try_acquire(path)? {
            return Ok(Some(lock));
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

fn run_point<'a>(node: &Node, run: Option<&'a PlannedRun>) -> Result<&'a PlannedRun, ExecError> {
    run.ok_or_else(|| ExecError::UnknownNode(node.id.clone()))
}

fn run_dataset(node: &Node, run: Option<&PlannedRun>, ctx: &NodeContext) -> Result<(), ExecError> {
    let point = &run_point(node, run)?.point;
    let want: Vec<(Split, usize)> = [Split::Train, Split::Test, Split::Dev]
        .into_iter()
        .map(|split| (split, point.task.size_of(split)))
        .filter(|&(split, n)| split != Split::Dev || n > 0)
        .collect();
    let data = point.task.generate_splits(point.seed, &want)?;
    for ((split, _), data) in want.iter().zip(data) {
        write_atomic(&ctx.store.node(&node.id).data(*split), &data.to_bytes())?;
    }
    Ok(())
}

/// Loads a cached split; a corrupt cache is regenerated (generation is deterministic).
fn load_split(store: &Store, run: &PlannedRun, split: Split) -> Result<Dataset, ExecError> {
    let path = store.node(&run.dataset).data(split);
    let n = run.point.task.size_of(split);
    match std::fs::read(&path) {
        Ok(bytes) => match Dataset::from_bytes(&bytes, &path.display().to_string()) {
            Ok(d) if d.len() == n => return Ok(d),
            _ => {}
        },
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(crate::store::StoreError::Io { path, source: e }.into());
        }
        Err(_) => {}
    }
    let data = run.point.task.generate(run.point.seed, split, n)?;
    write_atomic(&path, &data.to_bytes())?;
    Ok(data)
}

/// Checkpoints as one sealed file in the train node's directory. A checkpoint that fails its
/// checksum or does not parse is removed with a warning and training starts over: a corrupt
/// checkpoint is never resumed from.
struct FileCheckpoints<'a> {
    store: &'a Store,
    id: &'a str,
    warn: &'a dyn Fn(String),
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Checkpointer for FileCheckpoints<'_> {
    fn load(&mut self) -> Result<Option<Checkpoint>, BoxError> {
        let path = self.store.node(self.id).checkpoint();
        if !path.exists() {
            return Ok(None);
        }
        let parsed = self
            .store
            .read_sealed(self.id, &path)
            .map_err(BoxError::from)
            .and_then(|bytes| crate::store::checkpoint::decode(&bytes).map_err(BoxError::from));
        match parsed {
            Ok(checkpoint) => Ok(Some(checkpoint)),
            Err(e) => {
                (self.warn)(format!(
                    "{}: {e}; training starts over from step 0",
                    path.display()
                ));
                self.store.remove(self.id, &path)?;
                Ok(None)
            }
        }
    }

    fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), BoxError> {
        let path = self.store.node(self.id).checkpoint();
        self.store.write_sealed(
            self.id,
            &path,
            &crate::store::checkpoint::encode(checkpoint),
        )?;
        Ok(())
    }

    fn discard(&mut self, why: &str) {
        let path = self.store.node(self.id).checkpoint();
        (self.warn)(format!(
            "{}: {why}; training starts over from step 0",
            path.display()
        ));
        if let Err(e) = self.store.remove(self.id, &path) {
            (self.warn)(format!("{}: {e}", path.display()));
        }
    }

    fn keep_weights(&mut self, step: u64, weights: &[u8]) -> Result<(), BoxError> {
        let path = self.store.node(self.id).kept_weights(step as usize);
        self.store.write_sealed(self.id, &path, weights)?;
        Ok(())
    }
}

struct BarObserver<'a> {
    bar: Option<&'a ProgressBar>,
    interrupt: &'a AtomicBool,
}

impl Observer for BarObserver<'_> {
    fn on_step(&mut self, step: usize, _total: usize, loss: f32) -> Control {
        if let Some(bar) = self.bar {
            bar.set_position(step as u64);
            if step.is_multiple_of(10) {
                bar.set_message(format!("loss {loss:.3}"));
            }
        }
        if self.interrupt.load(Ordering::Relaxed) {
            Control::Stop
        } else {
            Control::Continue
        }
    }

    fn on_eval(&mut self, rows: &[MetricRow]) {
        if let (Some(bar), Some(acc)) = (
            self.bar,
            rows.iter()
                .find(|r| r.split == "test" && r.metric == "accuracy"),
        ) {
            bar.set_message(format!("test acc {:.1}%", 100.0 * acc.value));
        }
    }
}

/// Trains `runs` as one group on the first run's device; per run `Ok(Some(step))` when
/// interrupted.
fn train_runs(runs: &[(&PlannedRun, &NodeContext)]) -> Vec<Result<Option<usize>, ExecError>> {
    struct Train<'a, 'r>(&'a [(&'r PlannedRun, &'r NodeContext<'r>)]);
    impl super::device::OnTraining for Train<'_, '_> {
        type Output = Vec<Result<Option<usize>, ExecError>>;
        fn run<B: AutodiffBackend>(self, device: B::Device, reads: LossReads) -> Self::Output {
            train_on::<B>(self.0, &device, reads)
        }
    }
    match runs[0].1.device.train_with(Train(runs)) {
        Ok(results) => results,
        Err(e) => {
            let message = e.to_string();
            runs.iter()
                .map(|_| Err(ExecError::Device(message.clone())))
                .collect()
        }
    }
}

/// A run's training and evaluation data.
struct RunData {
    train: Dataset,
    evals: Vec<(&'static str, Dataset)>,
}

fn run_data(store: &Store, run: &PlannedRun) -> Result<RunData, ExecError> {
    let train = load_split(store, run, Split::Train)?;
    let test = load_split(store, run, Split::Test)?;
    let k = run.point.task.eval_examples();
    let mut evals = vec![("train", train.head(k)), ("test", test.head(k))];
    if run.point.task.dev_size() > 0 {
        evals.push(("dev", load_split(store, run, Split::Dev)?.head(k)));
    }
    Ok(RunData { train, evals })
}

fn train_on<B: AutodiffBackend>(
    runs: &[(&PlannedRun, &NodeContext)],
    device: &B::Device,
    reads: LossReads,
) -> Vec<Result<Option<usize>, ExecError>> {
    let mut results: Vec<Option<Result<Option<usize>, ExecError>>> =
        runs.iter().map(|_| None).collect();
    // Imported weights are loaded and evaluated, not trained.
    for (i, (run, ctx)) in runs.iter().enumerate() {
        if let Some(imported) = &run.point.imported {
            results[i] = Some(import_run::<B>(run, imported, ctx, device).map(|()| None));
        }
    }
    // Data and initial weights; a run whose setup fails fails alone.
    let mut ready = Vec::new();
    for (i, (run, ctx)) in runs.iter().enumerate() {
        if results[i].is_some() {
            continue;
        }
        let setup = run_data(ctx.store, run).and_then(|data| {
            let model = run.point.model.init::<B>(run.point.seed, device)?;
            Ok((data, model))
        });
        match setup {
            Ok((data, model)) => ready.push((i, data, model)),
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    let warns: Vec<Box<dyn Fn(String) + '_>> = ready
        .iter()
        .map(|(i, _, _)| {
            let ctx = runs[*i].1;
            Box::new(move |message: String| ctx.say(format!("warning: {message}")))
                as Box<dyn Fn(String)>
        })
        .collect();
    let mut checkpoints: Vec<FileCheckpoints> = ready
        .iter()
        .zip(&warns)
        .map(|((i, _, _), warn)| FileCheckpoints {
            store: runs[*i].1.store,
            id: &runs[*i].0.train,
            warn: warn.as_ref(),
        })
        .collect();
    let mut observers: Vec<BarObserver> = ready
        .iter()
        .map(|(i, _, _)| {
            let (run, ctx) = runs[*i];
            if let Some(bar) = &ctx.bar {
                bar.set_length(run.point.train.steps as u64);
            }
            BarObserver {
                bar: ctx.bar.as_ref(),
                interrupt: &ctx.interrupt,
            }
        })
        .collect();
    let mut order = Vec::new();
    let mut group = Vec::new();
    for (((i, data, model), ckpt), observer) in ready
        .iter()
        .zip(checkpoints.iter_mut())
        .zip(observers.iter_mut())
    {
        order.push(*i);
        group.push(GroupRun {
            model: model.clone(),
            cfg: &runs[*i].0.point.train,
            train: &data.train,
            evals: data.evals.iter().map(|(n, d)| (*n, d)).collect(),
            checkpoints: ckpt,
            observer,
            stop_at: runs[*i].1.until_step,
        });
    }
    let outcomes = if group.is_empty() {
        Vec::new()
    } else {
        train_group(group, device, reads)
    };
    for (i, outcome) in order.into_iter().zip(outcomes) {
        let (run, ctx) = runs[i];
        results[i] = Some(match outcome {
            RunOutcome::Stopped { step } => Ok(Some(step)),
            RunOutcome::Failed(e) => Err(e.into()),
            RunOutcome::Finished { model, metrics } => {
                save_final(
                    ctx.store,
                    run,
                    *model,
                    &metrics,
                    run.point.train.steps as u64,
                )
                .and_then(|()| {
                    // The final weights are in model.bin; the optimizer state is no longer
                    // needed.
                    ctx.store
                        .remove(&run.train, &ctx.store.node(&run.train).checkpoint())
                        .map_err(ExecError::from)
                })
                .map(|()| None)
            }
        });
    }
    results
        .into_iter()
        .map(|r| r.expect("every run has a result"))
        .collect()
}

/// A run of `model.weights`: the file (the content the plan hashed, else an error: a node's
/// id must describe what it holds), loaded strictly into the model, evaluated on the run's
/// evaluation sets at step 0 and saved as the train node's final weights, so the evaluation
/// nodes run on it as on a trained model.
fn import_run<B: AutodiffBackend>(
    run: &PlannedRun,
    imported: &crate::spec::resolve::Imported,
    ctx: &NodeContext,
    device: &B::Device,
) -> Result<(), ExecError> {
    let fail = |message: String| ExecError::Import {
        path: imported.path.display().to_string(),
        message,
    };
    let bytes = std::fs::read(&imported.path).map_err(|e| fail(e.to_string()))?;
    let hash = blake3::hash(&bytes).to_hex().to_string();
    if hash != imported.blake3 {
        return Err(fail(format!(
            "the file changed since the plan was made (blake3 {hash}, the plan's {}); run again \
             to plan its new content",
            imported.blake3
        )));
    }
    let tensors = crate::report::export::import::read(&bytes).map_err(|e| fail(e.to_string()))?;
    let model = run.point.model.init::<B>(run.point.seed, device)?;
    let model = crate::report::export::import::load_state_dict(
        model,
        run.point.model.kind(),
        &tensors,
        device,
    )
    .map_err(|e| fail(e.to_string()))?;
    let data = run_data(ctx.store, run)?;
    let inner = model.valid();
    let metrics: Vec<MetricRow> = data
        .evals
        .iter()
        .flat_map(|(split, d)| crate::train::evaluate(&inner, d, split, 0, device))
        .collect();
    save_final(ctx.store, run, model, &metrics, 0)
}

fn save_final<B: AutodiffBackend>(
    store: &Store,
    run: &PlannedRun,
    model: crate::model::LanguageModel<B>,
    metrics: &[MetricRow],
    steps: u64,
) -> Result<(), ExecError> {
    let last = metrics
        .iter()
        .filter(|r| r.step == steps)
        .map(|r| (format!("{}.{}", r.split, r.metric), r.value))
        .collect();
    let summary = RunSummary {
        params: model.num_params(),
        steps,
        last,
    };
    let bytes = crate::store::weights::encode(model.valid())?;
    store.write_sealed(&run.train, &store.node(&run.train).model(), &bytes)?;
    store.write_shard(
        &run.train,
        Shard::Metrics,
        &mut metrics_frame(metrics),
        &shard_metadata(&run.point),
    )?;
    store.write_run_summary(&run.train, &summary)?;
    Ok(())
}

/// Key-value metadata of a node's shards.
fn shard_metadata(point: &RunPoint) -> [(&'static str, String); 2] {
    [
        ("mechlab.version", crate::VERSION.to_string()),
        ("mechlab.run", point.name.clone()),
    ]
}

/// Runs one intervention grid on the final weights of the run's train node.
fn run_eval(node: &Node, run: Option<&PlannedRun>, ctx: &NodeContext) -> Result<(), ExecError> {
    let run = run_point(node, run)?;
    struct Eval<'a, 'c>(&'a Node, &'a PlannedRun, &'a NodeContext<'c>);
    impl super::device::OnInference for Eval<'_, '_> {
        type Output = Result<(), ExecError>;
        fn run<B: burn::tensor::backend::Backend>(self, device: B::Device) -> Self::Output {
            eval_on::<B>(self.0, self.1, self.2, &device)
        }
    }
    ctx.device.infer_with(Eval(node, run, ctx))?
}

fn eval_on<B: burn::tensor::backend::Backend>(
    node: &Node,
    run: &PlannedRun,
    ctx: &NodeContext,
    device: &B::Device,
) -> Result<(), ExecError> {
    let index = run
        .evals
        .iter()
        .position(|e| *e == node.id)
        .ok_or_else(|| ExecError::UnknownNode(node.id.clone()))?;
    let grid = &run.point.interventions[index];
    let train_status = ctx.store.status(&run.train)?;
    if train_status.state != NodeState::Done {
        return Err(ExecError::NotReady {
            node: node.id.clone(),
            dep: run.train.clone(),
            state: train_status.state.to_string(),
        });
    }
    let total = run.point.train.steps;
    // Intermediate steps first (as kept by the train node), then the final weights.
    let mut steps: Vec<usize> = grid
        .common()
        .0
        .map(|e| (1..).map(|i| i * e).take_while(|&s| s < total).collect())
        .unwrap_or_default();
    steps.push(total);
    let test = load_split(ctx.store, run, Split::Test)?;
    let task = run.point.task.config();
    let (mut frames, mut details) = (Vec::new(), Vec::new());
    for step in steps {
        let model = ctx.store.load_model::<B>(run, step, device)?;
        match grid {
            ResolvedIntervention::Interchange(g) => {
                let out = crate::interp::interchange_with(
                    &model,
                    &task,
                    &test,
                    &g.config(run.point.seed),
                    device,
                    crate::interp::PatchPath::Cached,
                );
                frames.push(interventions_frame(&out.rows, step as u64, "test"));
                if g.detail {
                    details.push(detail_frame(&out.detail, step as u64, "test"));
                }
            }
            ResolvedIntervention::Ablation(a) => {
                let rows = crate::interp::ablate(&model, &test, &a.grid, device);
                frames.push(ablations_frame(&rows, step as u64, "test"));
            }
        }
    }
    let shard_err = |source| ExecError::Shard {
        node: node.id.clone(),
        source,
    };
    let mut frame = stack(frames).map_err(shard_err)?;
    let meta = shard_metadata(&run.point);
    let shard = match grid {
        ResolvedIntervention::Interchange(_) => Shard::Interventions,
        ResolvedIntervention::Ablation(_) => Shard::Ablations,
    };
    ctx.store.write_shard(&node.id, shard, &mut frame, &meta)?;
    if !details.is_empty() {
        let mut detail = stack(details).map_err(shard_err)?;
        ctx.store
            .write_shard(&node.id, Shard::InterventionsDetail, &mut detail, &meta)?;
    }
    Ok(())
}
