//! What `plan` and `status` show: node counts by kind and state, and one row per run read from
//! the store (swept values, steps, last test accuracy, train node, state).

use std::collections::BTreeMap;

use super::ReportError;
use super::text::TextTable;
use crate::plan::{NodeKind, RunGraph};
use crate::store::{NodeState, Store};

/// Nodes of one kind in the plan and how many of them are done.
#[derive(Debug, Clone, PartialEq)]
pub struct KindCount {
    pub kind: NodeKind,
    pub total: usize,
    pub done: usize,
}

/// Per node kind (dataset, train, evaluate): how many, how many done. An unreadable status
/// counts as not done.
pub fn kind_counts(graph: &RunGraph, store: &Store) -> Vec<KindCount> {
    [NodeKind::Dataset, NodeKind::Train, NodeKind::Evaluate]
        .into_iter()
        .map(|kind| {
            let nodes: Vec<_> = graph.nodes.iter().filter(|n| n.kind == kind).collect();
            let done = nodes
                .iter()
                .filter(|n| {
                    store
                        .status(&n.id)
                        .is_ok_and(|s| s.state == NodeState::Done)
                })
                .count();
            KindCount {
                kind,
                total: nodes.len(),
                done,
            }
        })
        .collect()
}

/// How many nodes are in each state, by state name.
pub fn state_counts(
    graph: &RunGraph,
    store: &Store,
) -> Result<BTreeMap<String, usize>, ReportError> {
    let mut counts = BTreeMap::new();
    for node in &graph.nodes {
        *counts
            .entry(store.status(&node.id)?.state.to_string())
            .or_insert(0) += 1;
    }
    Ok(counts)
}

/// One row per run: name, swept values, steps, last test accuracy (of a run not done: at its
/// latest checkpoint, with the step), train node id and state;
/// a node that is not done but in the Slurm queue shows its Slurm state (`queued`: node id →
/// state, from [`crate::exec::slurm::queued`]).
pub fn runs_table(
    graph: &RunGraph,
    store: &Store,
    queued: &BTreeMap<String, String>,
) -> Result<TextTable, ReportError> {
    let axes: Vec<String> = graph
        .runs
        .first()
        .map(|r| r.point.axes.iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    let mut header = vec!["run".to_string()];
    header.extend(axes.iter().cloned());
    header.extend(["steps", "test acc", "train node", "state"].map(String::from));
    let mut table = TextTable::new(header);
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
        // A run not done shows its latest checkpoint: where it is and its last test accuracy.
        let progress = (status.state != NodeState::Done)
            .then(|| store.checkpointed(&run.train))
            .flatten();
        let checkpoint_step = progress.as_ref().map(|p| p.step).or(status.step);
        let state = match (status.state, checkpoint_step) {
            (s, _) if s != NodeState::Done && queued.contains_key(&run.train) => {
                format!("slurm: {}", queued[&run.train])
            }
            (NodeState::Pending | NodeState::Running, Some(step)) => {
                format!("{} (checkpoint at step {step})", status.state)
            }
            (NodeState::Failed, _) => format!("failed: {}", status.error.unwrap_or_default()),
            (s, _) => s.to_string(),
        };
        let acc = match &progress {
            Some(p) => p
                .last("test", "accuracy")
                .map(|(step, a)| format!("{:.1}% (step {step})", 100.0 * a)),
            None => store
                .run_summary(&run.train)
                .ok()
                .flatten()
                .and_then(|s| s.last.get("test.accuracy").copied())
                .map(|a| format!("{:.1}%", 100.0 * a)),
        }
        .unwrap_or_else(|| "-".to_string());
        // An imported run is not trained: its weights come from `model.weights`.
        let steps = match run.point.imported {
            Some(_) => "imported".to_string(),
            None => run.point.train.steps.to_string(),
        };
        row.extend([steps, acc, run.train.clone(), state]);
        table.push(row);
    }
    Ok(table)
}
