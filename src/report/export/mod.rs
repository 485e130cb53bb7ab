//! Exports for use outside mechlab.

pub mod import;
pub mod names;
pub mod safetensors;
pub mod tables;

pub use safetensors::{export_weights, param_entries, state_dict};
