//! Experiment specs: TOML in, validated run points out.
//!
//! Three layers, as ripgrep separates low- from high-level args:
//! 1. [`raw`]: serde types mirroring the TOML (`deny_unknown_fields`), documented field by field;
//!    the JSON Schema in `schemas/` is generated from them.
//! 2. [`load`]: [`layer`] merges the sources (defaults < includes < spec < profile <
//!    `MECHLAB_…` env < `--set`), serde types each section, [`sweep`] expands the grid and
//!    [`validate`] checks each run, section by section; every error is located through
//!    [`sources`] and [`locate`].
//! 3. [`resolve`]: each run's resolved configs (no defaults left): the science crates' own
//!    `ModelConfig` and `TrainConfig`, which the node ids hash directly.

pub mod batch;
pub mod error;
mod layer;
pub mod load;
pub mod locate;
mod options;
pub mod raw;
pub mod resolve;
pub mod resources;
pub mod schema;
mod sources;
pub mod sweep;
pub mod validate;

pub use error::{Issue, SpecError};
pub use load::{LoadOptions, load, profiles};
pub use resolve::{Resolved, RunPoint};
