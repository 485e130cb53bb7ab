//! The run graph: content-addressed nodes (dataset → train → one evaluate node per intervention
//! block) expanded from a resolved spec.

pub mod graph;
pub mod id;
pub mod pack;

pub use graph::{Node, NodeKind, PlannedRun, RunGraph, plan};
pub use id::node_id;
