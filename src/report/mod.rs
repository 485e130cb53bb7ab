//! Tidy tables with polars: per-node shards are collected into `results/<experiment>/`
//! `runs.parquet` and `metrics.parquet`, each carrying key-value metadata (spec hash, mechlab
//! version, backend, device).

pub mod collect;
pub mod data_stats;
pub mod export;
pub mod parquet;
pub mod plot;
pub mod published;
pub mod table;

pub use collect::{CollectSummary, collect};
pub use data_stats::{data_stats_columns, data_stats_frame};
pub use parquet::{
    ablations_frame, detail_frame, interventions_frame, metrics_frame, read_parquet,
    read_parquet_metadata, write_parquet,
};

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
}
