//! Tidy tables with polars: the per-node shards the store holds are collected into an
//! experiment's tables (runs, metrics, interventions, ablations), each carrying key-value
//! metadata (spec hash, mechlab version, backend, device); report tables, figures and exports
//! are built from those.

pub mod cells;
pub mod collect;
pub mod data_stats;
pub mod export;
pub mod plot;
pub mod published;
pub mod runs;
pub mod table;
pub mod tables;
pub mod text;

pub use collect::{Collected, collect};
pub use data_stats::{data_stats_columns, data_stats_frame};
pub use tables::Tables;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Polars {
        path: String,
        #[source]
        source: polars::error::PolarsError,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{path}: {message}")]
    Shard { path: String, message: String },
    #[error("--run {name}: no such run in this spec; runs: {runs}")]
    NoSuchRun { name: String, runs: String },
    #[error("run {name} is {state}, not done: run it first (`mechlab run SPEC`)")]
    NotDone { name: String, state: String },
    #[error(
        "the spec declares no tables; add a [[tables]] block (name, rows, columns; see README.md)"
    )]
    NoTables,
    #[error("--name {name}: no such table; tables: {tables}")]
    NoSuchTable { name: String, tables: String },
    #[error("table source {path}: {source}")]
    Source {
        path: std::path::PathBuf,
        #[source]
        source: Box<crate::spec::SpecError>,
    },
}
