//! The local scheduler: dataset nodes first (cheap, shared), then train nodes, `jobs` at a time.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::ExecError;
use super::device::DeviceChoice;
use super::node::{NodeContext, Outcome, execute, execute_train_group};
use super::progress::Progress;
use crate::plan::pack::{PackPolicy, train_groups};
use crate::plan::{Node, NodeKind, PlannedRun, RunGraph};
use crate::store::{NodeState, Status, Store};

#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Nodes run at once (each node also uses burn's thread pool).
    pub jobs: usize,
    pub device: DeviceChoice,
    /// No progress bars.
    pub quiet: bool,
    /// Only these node ids (e.g. one Slurm task); all when empty.
    pub only: Vec<String>,
    /// Which train nodes train together ([`crate::plan::pack`]).
    pub pack: PackPolicy,
    /// Train every run only up to this step of its schedule, then checkpoint and stop it
    /// (resumable, like an interrupt; its evaluate nodes wait for the rest).
    pub until_step: Option<usize>,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            jobs: 1,
            device: DeviceChoice::Cpu,
            quiet: true,
            only: Vec::new(),
            pack: PackPolicy::Auto,
            until_step: None,
        }
    }
}

/// What happened to each node.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub outcomes: Vec<(String, NodeKind, Outcome)>,
    pub interrupted: bool,
}

impl RunReport {
    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.outcomes.iter().filter(|(_, _, o)| f(o)).count()
    }

    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_)))
    }
}

/// Runs every node of `graph` that is not done. A failed node is recorded and the sweep goes on;
/// setting `interrupt` stops running nodes at their next step (after a checkpoint).
///
/// Long on purpose (~150 lines): the scheduler's queue, its worker threads (one scope) and the
/// outcome bookkeeping they share.
pub fn run_graph(
    graph: &RunGraph,
    store: &Store,
    opts: &ExecOptions,
    interrupt: Arc<AtomicBool>,
) -> Result<RunReport, ExecError> {
    opts.device.check_available()?;
    let selected: Vec<_> = graph
        .nodes
        .iter()
        .filter(|n| opts.only.is_empty() || opts.only.contains(&n.id))
        .collect();
    let progress = Progress::new(selected.len(), opts.quiet);
    // A done node whose files fail their checksums (or are gone) is recomputed, not trusted.
    for node in &selected {
        if store.status(&node.id)?.state != NodeState::Done {
            continue;
        }
        let problems = crate::store::checksum::problems(store, node);
        if problems.is_empty() {
            continue;
        }
        let files: Vec<String> = problems
            .iter()
            .map(|(path, check)| format!("{} ({check:?})", path.display()))
            .collect();
        progress.println(format!(
            "recomputing {} node {}: {}",
            node.kind.name(),
            node.id,
            files.join(", ")
        ));
        for (path, _) in &problems {
            store.remove(&node.id, path)?;
        }
        store.write_status(
            &node.id,
            &Status {
                kind: node.kind.name().to_string(),
                error: Some(format!("recomputing: {}", files.join(", "))),
                ..Status::default()
            },
        )?;
    }
    let report = Mutex::new(RunReport::default());
    let first_error: Mutex<Option<ExecError>> = Mutex::new(None);
    let run_of = |id: &str| -> Option<&PlannedRun> {
        graph
            .runs
            .iter()
            .find(|r| r.train == id || r.dataset == id || r.evals.iter().any(|e| e == id))
    };

    // Under `until_step` a run stopped short of its schedule is not ready for its evaluate
    // nodes: they wait for a later run rather than fail.
    let trained = |node: &Node| {
        run_of(&node.id).is_some_and(|r| {
            store
                .status(&r.train)
                .is_ok_and(|s| s.state == NodeState::Done)
        })
    };
    let train_items = train_items(graph, &selected, opts.pack);
    for kind in [NodeKind::Dataset, NodeKind::Train, NodeKind::Evaluate] {
        // Work items: one node each, except train nodes, which come in packed groups.
        let items: Vec<Vec<&Node>> = if kind == NodeKind::Train {
            train_items.clone()
        } else {
            selected
                .iter()
                .filter(|n| n.kind == kind)
                .filter(|n| kind != NodeKind::Evaluate || opts.until_step.is_none() || trained(n))
                .map(|n| vec![*n])
                .collect()
        };
        let queue: Mutex<VecDeque<Vec<&Node>>> = Mutex::new(items.into_iter().collect());
        std::thread::scope(|scope| {
            for _ in 0..opts.jobs.max(1) {
                scope.spawn(|| {
                    loop {
                        if interrupt.load(Ordering::Relaxed)
                            || first_error.lock().expect("lock").is_some()
                        {
                            return;
                        }
                        let Some(item) = queue.lock().expect("lock").pop_front() else {
                            return;
                        };
                        let name_of = |node: &Node| {
                            run_of(&node.id)
                                .map(|r| r.point.name.clone())
                                .unwrap_or_else(|| node.id.clone())
                        };
                        let context = |node: &Node| NodeContext {
                            store,
                            device: opts.device,
                            interrupt: interrupt.clone(),
                            until_step: opts.until_step,
                            bar: (node.kind == NodeKind::Train)
                                .then(|| progress.node_bar(&name_of(node), 0)),
                        };
                        let result = if kind == NodeKind::Train {
                            let members: Vec<_> = item
                                .iter()
                                .filter_map(|n| run_of(&n.id).map(|r| (*n, r, context(n))))
                                .collect();
                            let result = execute_train_group(&members);
                            for (_, _, ctx) in &members {
                                if let Some(bar) = &ctx.bar {
                                    bar.finish_and_clear();
                                }
                            }
                            result.map(|outcomes| {
                                members.iter().map(|(n, _, _)| *n).zip(outcomes).collect()
                            })
                        } else {
                            let node = item[0];
                            let ctx = context(node);
                            execute(node, run_of(&node.id), &ctx).map(|o| vec![(node, o)])
                        };
                        progress.overall.inc(item.len() as u64);
                        match result {
                            Ok(outcomes) => {
                                for (node, outcome) in outcomes {
                                    report_outcome(&progress, node, &name_of(node), &outcome);
                                    report.lock().expect("lock").outcomes.push((
                                        node.id.clone(),
                                        node.kind,
                                        outcome,
                                    ));
                                }
                            }
                            Err(e) => {
                                first_error.lock().expect("lock").get_or_insert(e);
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.lock().expect("lock").take() {
            return Err(e);
        }
    }
    progress.overall.finish_and_clear();
    let mut report = report.into_inner().expect("lock");
    report.interrupted = interrupt.load(Ordering::Relaxed);
    Ok(report)
}

/// The selected train nodes in packed groups ([`train_groups`]), in plan order.
fn train_items<'g>(
    graph: &'g RunGraph,
    selected: &[&'g Node],
    pack: PackPolicy,
) -> Vec<Vec<&'g Node>> {
    let chosen: std::collections::HashSet<&str> = selected
        .iter()
        .filter(|n| n.kind == NodeKind::Train)
        .map(|n| n.id.as_str())
        .collect();
    let node_of = |id: &str| graph.nodes.iter().find(|n| n.id == id);
    train_groups(graph, pack)
        .into_iter()
        .map(|group| {
            group
                .into_iter()
                .filter(|&i| chosen.contains(graph.runs[i].train.as_str()))
                .filter_map(|i| node_of(&graph.runs[i].train))
                .collect::<Vec<_>>()
        })
        .filter(|g| !g.is_empty())
        .collect()
}

/// One line for the user about a node that did not simply finish or skip.
fn report_outcome(progress: &Progress, node: &Node, name: &str, outcome: &Outcome) {
    let label = format!("{} {} ({})", node.kind.name(), name, node.id);
    match outcome {
        Outcome::Failed(e) => progress.println(format!("failed: {label}: {e}")),
        Outcome::Busy => progress.println(format!("busy: {label} is running in another process")),
        Outcome::Interrupted { step } => {
            progress.println(format!("stopped: {label} at step {step}; rerun to resume"))
        }
        Outcome::Done if node.kind == NodeKind::Train => progress.println(format!("done: {label}")),
        _ => {}
    }
}
