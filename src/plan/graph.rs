//! Expansion of a resolved spec into nodes. Identical nodes (same config and deps) from
//! different runs or specs collapse into one: two learning rates share one dataset node.

use serde::Serialize;
use serde_json::{Value, json};

use super::id::node_id;
use crate::spec::{Resolved, RunPoint};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// Generates and caches a task's train and test splits for one seed.
    Dataset,
    /// Trains (with periodic evaluation) one model on one dataset.
    Train,
    /// Runs one intervention grid on a trained model's final weights.
    Evaluate,
}

impl NodeKind {
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::Dataset => "dataset",
            NodeKind::Train => "train",
            NodeKind::Evaluate => "evaluate",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub id: String,
    pub kind: NodeKind,
    pub deps: Vec<String>,
    /// The canonical resolved config the id is hashed from (saved as the node's `spec.json`).
    pub config: Value,
}

/// One run of the experiment and the nodes that produce it.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    pub point: RunPoint,
    pub dataset: String,
    pub train: String,
    /// One evaluation node per intervention block, in spec order.
    pub evals: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RunGraph {
    pub experiment: String,
    pub spec_hash: String,
    /// Unique nodes, dependencies before dependents.
    pub nodes: Vec<Node>,
    pub runs: Vec<PlannedRun>,
}

impl RunGraph {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn count(&self, kind: NodeKind) -> usize {
        self.nodes.iter().filter(|n| n.kind == kind).count()
    }
}

pub fn dataset_config(run: &RunPoint) -> Value {
    json!({ "task": run.task, "seed": run.seed })
}

/// What a train node's id hashes. An imported run (`model.weights`) hashes the file's content in
/// place of the optimisation, which it does not use: the same weights under another path, or
/// with other `[train]` settings, are the same node.
pub fn train_config(run: &RunPoint) -> Value {
    match &run.imported {
        None => json!({
            "model": run.model, "train": run.train, "seed": run.seed,
            "eval_examples": run.task.eval_examples(),
        }),
        Some(imported) => json!({
            "model": run.model, "import": { "blake3": imported.blake3 }, "seed": run.seed,
            "eval_examples": run.task.eval_examples(),
        }),
    }
}

pub fn plan(resolved: &Resolved) -> RunGraph {
    let mut nodes: Vec<Node> = Vec::new();
    let mut push = |node: Node| {
        if !nodes.iter().any(|n| n.id == node.id) {
            nodes.push(node);
        }
    };
    let mut runs = Vec::new();
    for point in &resolved.runs {
        let dconf = dataset_config(point);
        let dataset = node_id("dataset", &dconf, &[]);
        push(Node {
            id: dataset.clone(),
            kind: NodeKind::Dataset,
            deps: Vec::new(),
            config: dconf,
        });
        let tconf = train_config(point);
        let train = node_id("train", &tconf, std::slice::from_ref(&dataset));
        push(Node {
            id: train.clone(),
            kind: NodeKind::Train,
            deps: vec![dataset.clone()],
            config: tconf,
        });
        let mut evals = Vec::new();
        for iv in &point.interventions {
            // `{"interchange": …, "seed": …}` or `{"ablation": …, "seed": …}`.
            let mut econf = serde_json::to_value(iv).expect("interventions serialise");
            econf["seed"] = json!(point.seed);
            let id = node_id("evaluate", &econf, &[train.clone(), dataset.clone()]);
            push(Node {
                id: id.clone(),
                kind: NodeKind::Evaluate,
                deps: vec![train.clone(), dataset.clone()],
                config: econf,
            });
            evals.push(id);
        }
        runs.push(PlannedRun {
            point: point.clone(),
            dataset,
            train,
            evals,
        });
    }
    // Stable sort keeps first-seen order within a kind; datasets, then trains, then evaluations.
    nodes.sort_by_key(|n| n.kind);
    RunGraph {
        experiment: resolved.experiment.clone(),
        spec_hash: resolved.spec_hash.clone(),
        nodes,
        runs,
    }
}
