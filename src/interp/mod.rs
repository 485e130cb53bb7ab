//! Causal interventions on trained models. Interchange interventions (activation patching):
//! corrupt one input token, restore the clean activation at one layer / site / position, and
//! measure how much of the clean answer comes back (reference §4).
//!
//! Knows nothing of files or specs; the orchestration layer turns rows into Parquet.

pub mod ablation;
pub mod corrupt;
pub mod interchange;
pub mod patch;
mod pruned;
mod readout;

pub use ablation::{AblationConfig, AblationMode, AblationRow, ablate};
pub use corrupt::Corruption;
pub use interchange::{
    DetailRow, InterchangeConfig, InterchangeOutput, InterchangeRow, PatchPath, interchange,
    interchange_with,
};
pub use patch::{Capture, Patch};
