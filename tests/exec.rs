//! The executor: a diverging run is marked failed with its reason and the sweep goes on.

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use common::{Dir, TINY};
use mechlab::exec::node::Outcome;
use mechlab::exec::{ExecOptions, run_graph};
use mechlab::plan::plan;
use mechlab::spec::{LoadOptions, load};
use mechlab::store::{NodeState, Store};

#[test]
fn diverging_run_fails_with_reason_and_the_sweep_continues() {
    let dir = Dir::new();
    let spec = dir.write("tiny.toml", TINY);
    let mut resolved = load(&spec, &LoadOptions::default()).unwrap();
    // A NaN learning rate cannot come from a valid spec; inject it below validation to make the
    // first run's loss NaN after one update.
    resolved.runs[0].train.lr = f64::NAN;
    let graph = plan(&resolved);
    let store = Store::new(dir.results());
    let report = run_graph(
        &graph,
        &store,
        &ExecOptions::default(),
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap();

    assert_eq!(report.failed(), 1);
    let failed = store.status(&graph.runs[0].train).unwrap();
    assert_eq!(failed.state, NodeState::Failed);
    assert!(
        failed
            .error
            .as_deref()
            .unwrap_or("")
            .contains("training diverged: loss is NaN at step 1"),
        "{failed:?}"
    );
    assert_eq!(
        store.status(&graph.runs[1].train).unwrap().state,
        NodeState::Done
    );
    assert!(report.outcomes.iter().any(|(_, _, o)| *o == Outcome::Done));

    // Failed nodes run again on the next invocation (here: fail again, deterministically).
    let again = run_graph(
        &graph,
        &store,
        &ExecOptions::default(),
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    assert_eq!(again.failed(), 1);
    assert_eq!(again.count(|o| *o == Outcome::Skipped), 2);
}
