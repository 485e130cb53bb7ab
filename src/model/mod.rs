//! The model zoo: a shared backbone (tied embedding, optional learned positions, pre-LN blocks,
//! final LayerNorm) and one file per sequence mixer.
//!
//! Every forward pass takes a [`Sites`] visitor, through which each named intervention site
//! passes exactly once; [`NoSites`] is the zero-cost default.

pub mod attention;
pub mod base_conv;
pub mod based;
pub mod block;
pub mod config;
pub mod h3;
pub mod hyena;
pub mod init;
pub mod lm;
pub mod long_conv;
pub mod mamba;
pub mod mixer;
pub mod mlp;
pub mod norm;
pub mod selective_scan;
pub mod sites;

pub use config::ModelConfig;
pub use lm::LanguageModel;
pub use mixer::{ConvKernel, MixerKind};
pub use sites::{NoSites, Site, Sites};
