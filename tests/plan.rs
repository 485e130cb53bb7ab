//! The run graph: node ids are content addresses, so a refactor that changes what a node's
//! config serialises to would silently orphan every stored result. These ids were computed by
//! mechlab before the config types were unified (and equal what it has computed since); change
//! them only together with `CODE_SALT`, when a node's output really changes.

use std::path::Path;

use mechlab::plan::{NodeKind, plan};
use mechlab::spec::{LoadOptions, load};

fn graph(spec: &str) -> mechlab::plan::RunGraph {
    let opts = LoadOptions {
        env: false,
        ..LoadOptions::default()
    };
    plan(&load(Path::new(spec), &opts).unwrap())
}

#[test]
fn train_node_ids_are_stable() {
    for (spec, run, id) in [
        (
            "experiments/quickstart.toml",
            "attention-lr1e-3-s42",
            "6c6bb7276f5a7d75",
        ),
        (
            "experiments/quickstart.toml",
            "based-lr3e-3-s42",
            "85cb96db0489e922",
        ),
        (
            "experiments/paper/ar_32.toml",
            "d16-attention-lr3e-5-s42",
            "227480f985872c09",
        ),
        (
            "experiments/paper/pcfg_easy.toml",
            "d16-attention-lr1e-4-s42",
            "96ea7d8e5b2b88f2",
        ),
    ] {
        let g = graph(spec);
        let planned = g.runs.iter().find(|r| r.point.name == run).unwrap();
        assert_eq!(planned.train, id, "{spec}: {run}");
    }
}

#[test]
fn identical_nodes_collapse_and_dependencies_come_first() {
    let g = graph("experiments/quickstart.toml");
    // Four runs (two mixers × two learning rates) share one dataset node.
    assert_eq!(g.runs.len(), 4);
    assert_eq!(g.count(NodeKind::Dataset), 1);
    assert_eq!(g.count(NodeKind::Train), 4);
    let position = |id: &str| g.nodes.iter().position(|n| n.id == id).unwrap();
    for node in &g.nodes {
        for dep in &node.deps {
            assert!(
                position(dep) < position(&node.id),
                "{} before {dep}",
                node.id
            );
        }
    }
}

#[test]
fn packed_groups_share_a_step_shape_and_cover_every_train_node_once() {
    use mechlab::plan::pack::{PackPolicy, train_groups, train_groups_within};
    let g = graph("experiments/paper/ar_32.toml");
    let shape = |i: usize| {
        let p = &g.runs[i].point;
        (
            p.model.mixer.name(),
            p.model.d_model,
            p.train.steps,
            p.train.batch_size,
        )
    };
    let trains: std::collections::BTreeSet<&str> =
        g.runs.iter().map(|r| r.train.as_str()).collect();
    for policy in [PackPolicy::Auto, PackPolicy::Limit(2), PackPolicy::Off] {
        let groups = train_groups(&g, policy);
        let mut seen = std::collections::BTreeSet::new();
        for group in &groups {
            assert!(
                group.iter().all(|&i| shape(i) == shape(group[0])),
                "{policy:?}"
            );
            for &i in group {
                assert!(seen.insert(g.runs[i].train.as_str()), "{policy:?}: twice");
            }
            let cap = match policy {
                PackPolicy::Off => 1,
                PackPolicy::Limit(k) => k,
                PackPolicy::Auto => 16,
            };
            assert!(group.len() <= cap, "{policy:?}: {}", group.len());
        }
        assert_eq!(seen, trains, "{policy:?}");
    }
    // Auto: one group per (mixer, width), the learning rates together.
    let auto = train_groups(&g, PackPolicy::Auto);
    let shapes: std::collections::BTreeSet<_> = (0..g.runs.len()).map(shape).collect();
    assert_eq!(auto.len(), shapes.len());
    // A memory bound splits groups evenly: room for 2 runs (half the memory for 4).
    let per_run = mechlab::spec::resources::estimate(&g.runs[0].point).total();
    let within = train_groups_within(&g, PackPolicy::Auto, Some((4.0 * per_run) as u64 + 1));
    let first: Vec<_> = within
        .iter()
        .filter(|grp| shape(grp[0]) == shape(0))
        .collect();
    assert!(
        first.len() > 1 && first.iter().all(|grp| grp.len() <= 2),
        "{first:?}"
    );
}

/// Evaluate nodes too: an interchange block (with detail) and an ablation block, each resolved
/// for the run's model; these ids equal what mechlab computed before the resolved blocks were
/// made of `interp`'s own grid types (the spec hash, which covers them, did not change).
#[test]
fn evaluate_node_ids_are_stable() {
    let g = graph("tests/fixtures/pin_interventions.toml");
    assert_eq!(g.spec_hash, "22246efa539821a5");
    let evals = &g.runs[0].evals;
    assert_eq!(evals, &["b2d0f44c12df8bfd", "0eda94571eddcb65"]);
}
