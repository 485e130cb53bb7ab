//! Experiment specs: TOML in, validated run points out.
//!
//! Three layers, as ripgrep separates low- from high-level args:
//! 1. [`raw`]: serde types mirroring the TOML (`deny_unknown_fields`), documented field by field;
//!    the JSON Schema in `schemas/` is generated from them.
//! 2. [`load`]: figment layering (defaults < includes < spec < profile < `MECHLAB_…` env <
//!    `--set`), then [`sweep`] expansion and [`validate`] checks, all errors located by [`locate`].
//! 3. [`resolve`]: per-run resolved configs (no defaults left) from which node ids are hashed and
//!    the science configs are built.

pub mod batch;
pub mod error;
pub mod load;
pub mod locate;
pub mod raw;
pub mod resolve;
pub mod schema;
pub mod sweep;
pub mod validate;

pub use error::{Issue, SpecError};
pub use load::{LoadOptions, load};
pub use resolve::{Resolved, RunPoint};
