//! Exports for use outside mechlab.

pub mod import;
pub mod names;
pub mod safetensors;

pub use safetensors::{export_weights, state_dict};
