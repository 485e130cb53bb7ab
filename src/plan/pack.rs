//! Which train nodes train together as one packed program ([`crate::train::train_group`]).
//!
//! Runs pack when everything that fixes the shape of a step agrees: the model's shape (mixer,
//! width, depth, convolutions, positions, MLP, vocabulary, position table), the batch size, the
//! step count and the task (so the sequences have the same layout). They may differ in learning
//! rate, schedule and warm-up, AdamW betas, ε and weight decay, initialisation σ, evaluation and
//! checkpoint intervals, and seed (initial weights and data). Packing never changes a node's id
//! or files: it only decides which nodes share a process.

use std::collections::BTreeMap;

use super::graph::{PlannedRun, RunGraph};

/// How train nodes are grouped (`mechlab run --pack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PackPolicy {
    /// One run per program.
    Off,
    /// Every packable run of a group together, up to [`AUTO_LIMIT`].
    #[default]
    Auto,
    /// At most this many runs per program.
    Limit(usize),
}

/// Runs per group under `--pack auto`: beyond this a step's activations grow without a further
/// gain on CPU (the per-op overhead is already shared).
pub const AUTO_LIMIT: usize = 16;

impl std::str::FromStr for PackPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(PackPolicy::Off),
            "auto" => Ok(PackPolicy::Auto),
            n => match n.parse::<usize>() {
                Ok(0) | Err(_) => Err(format!(
                    "expected auto, off or a number of runs (1 or more), found {n:?}"
                )),
                Ok(1) => Ok(PackPolicy::Off),
                Ok(k) => Ok(PackPolicy::Limit(k)),
            },
        }
    }
}

impl PackPolicy {
    fn limit(self) -> usize {
        match self {
            PackPolicy::Off => 1,
            PackPolicy::Auto => AUTO_LIMIT,
            PackPolicy::Limit(k) => k.max(1),
        }
    }
}

/// What must agree for two runs to share a step, as canonical JSON.
pub fn pack_key(run: &PlannedRun) -> String {
    let p = &run.point;
    let m = &p.model;
    serde_json::json!({
        // The mixer and all its settings (kernels, heads), as node ids hash them.
        "mixer": m.mixer,
        "d_model": m.d_model,
        "layers": m.layers,
        "pos_emb": m.pos_emb,
        "max_positions": m.max_positions,
        "mlp": m.mlp,
        "vocab_size": m.vocab_size,
        "batch_size": p.train.batch_size,
        "steps": p.train.steps,
        "task": p.task,
        // Imported runs are loaded, not trained: each is a group of its own.
        "import": p.imported.as_ref().map(|i| &i.blake3),
    })
    .to_string()
}

/// The train nodes of `graph` in groups (indices into `graph.runs`, one entry per distinct train
/// node), in plan order: first-seen key first, runs within a group in plan order. A group holds
/// at most as many runs as half this machine's memory fits by `spec::resources::estimate` (each
/// run alone passed `validate`'s check against all of it).
pub fn train_groups(graph: &RunGraph, policy: PackPolicy) -> Vec<Vec<usize>> {
    let memory = crate::spec::resources::machine_memory();
    train_groups_within(graph, policy, memory)
}

/// [`train_groups`] with the memory a group may use (`None`: no bound).
pub fn train_groups_within(
    graph: &RunGraph,
    policy: PackPolicy,
    memory: Option<u64>,
) -> Vec<Vec<usize>> {
    let mut seen = std::collections::HashSet::new();
    let mut by_key: BTreeMap<usize, (String, Vec<usize>)> = BTreeMap::new();
    let mut first_of: std::collections::HashMap<String, usize> = Default::default();
    for (i, run) in graph.runs.iter().enumerate() {
        if !seen.insert(run.train.as_str()) {
            continue;
        }
        let key = pack_key(run);
        let first = *first_of.entry(key.clone()).or_insert(i);
        by_key
            .entry(first)
            .or_insert_with(|| (key, Vec::new()))
            .1
            .push(i);
    }
    by_key
        .into_values()
        .flat_map(|(_, members)| {
            let per_run = crate::spec::resources::estimate(&graph.runs[members[0]].point).total();
            let fits = memory.map_or(usize::MAX, |m| {
                ((m as f64 / 2.0) / per_run.max(1.0)).floor().max(1.0) as usize
            });
            let limit = policy.limit().min(fits);
            // Even sizes: 7 runs with a limit of 5 pack as 4 + 3, not 5 + 2.
            let parts = members.len().div_ceil(limit);
            let size = members.len().div_ceil(parts.max(1)).max(1);
            members
                .chunks(size)
                .map(<[usize]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_refuse_nonsense() {
        assert_eq!("auto".parse::<PackPolicy>(), Ok(PackPolicy::Auto));
        assert_eq!("off".parse::<PackPolicy>(), Ok(PackPolicy::Off));
        assert_eq!("1".parse::<PackPolicy>(), Ok(PackPolicy::Off));
        assert_eq!("5".parse::<PackPolicy>(), Ok(PackPolicy::Limit(5)));
        for bad in ["0", "-2", "many", ""] {
            let err = bad.parse::<PackPolicy>().unwrap_err();
            assert!(err.contains("expected auto, off or a number"), "{err}");
        }
    }
}
