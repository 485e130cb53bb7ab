//! Training: AdamW (per run, [`adamw`]) with warmup + decay, packed groups of runs ([`group`]), evaluation every N steps, resumable checkpoints.
//! Knows nothing of files or specs: checkpoints go through the [`Checkpointer`] trait and
//! progress through [`Observer`].

pub mod adamw;
pub mod batch;
pub mod checkpoint;
pub mod eval;
pub mod group;
pub mod schedule;
pub mod trainer;

pub use checkpoint::{Checkpoint, Checkpointer, NoCheckpoints};
pub use eval::{MetricRow, evaluate};
pub use group::{GroupRun, LossReads, RunOutcome, train, train_group};
pub use schedule::{Schedule, ScheduleKind};
pub use trainer::{Control, Observer, TrainConfig, TrainError, TrainOutcome};
