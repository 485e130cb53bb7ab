//! mechlab: mechanistic evaluation of sequence-model architectures from declarative TOML specs.
//!
//! Data flows one way; each stage reads only what the stage before it produced:
//!
//! ```text
//! experiments/*.toml ─► spec ─► plan ─► exec ─► store ─► report
//!                                        │
//!                      task · model · train · interp   (the science: burn code)
//! ```
//!
//! - [`spec`]: TOML types (serde, `deny_unknown_fields`), figment layering, sweep expansion, located errors.
//! - [`plan`]: the content-addressed run graph (dataset → train → evaluate).
//! - [`exec`]: running nodes: the local scheduler (jobs, progress, Ctrl-C, locking), backend
//!   selection, and Slurm submission.
//! - [`store`]: the on-disk layout and formats: node directories under `results/store/<id>/`,
//!   status records, run summaries, shard schemas and Parquet I/O, atomic writes, locks.
//! - [`report`]: experiment tables collected from the store's shards, report tables, figures, exports.
//! - [`task`]: synthetic task generators (AR, ATR on a PCFG, MQAR) emitting tokens plus named
//!   roles, from ChaCha streams or bit-exact reimplementations of the reference's.
//! - [`model`]: the backbone, one file per mixer, named intervention sites.
//! - [`train`]: the training loop, schedules, checkpoints and evaluation.
//! - [`interp`]: interchange interventions (activation patching) and ablations on trained models.
//! - [`bench`]: training and intervention throughput, for `mechlab bench`.
//! - [`selftest`]: the numerics checked on whatever device the binary runs on, for `mechlab selftest`.
//!
//! Science modules (`task`, `model`, `train`, `interp`) never import orchestration modules
//! (`spec`, `plan`, `exec`, `store`, `report`): they take plain config structs and return plain
//! data. Orchestration imports downward along the flow above: `exec` writes through `store`,
//! `report` reads through it, and neither `exec` nor `store` imports `report`.

pub mod bench;
pub mod exec;
pub mod interp;
pub mod model;
pub mod plan;
pub mod report;
pub mod selftest;
pub mod spec;
pub mod store;
pub mod task;
pub mod train;

/// Salt mixed into every node id: bump it when a change to the code changes what a node produces,
/// so stale results are not reused. v3: the checkpoint format changed (block norms became an
/// enum of LayerNorm/RMSNorm), so v2 train nodes could not be resumed or read.
pub const CODE_SALT: &str = "mechlab-node-v3";

/// The crate version recorded in status files and Parquet metadata.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
