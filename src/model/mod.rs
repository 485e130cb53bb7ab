//! The model zoo: a shared backbone (tied embedding, optional learned positions, pre-LN blocks,
//! final LayerNorm) and one file per sequence mixer.
//!
//! Every forward pass takes a [`Sites`] visitor, through which each named intervention site
//! passes exactly once; [`NoSites`] is the zero-cost default.
//!
//! Modules import downward only:
//! `sites` → `kind`, `init`, `runs`, `norm`, `ops`, `long_conv`, `selective_scan`, `delta_rule`,
//! `gla_rule` (their fused CPU forms share `rule_cpu`), `mlp` →
//! one file per mixer (`attention`, `base_conv`, `based`, `h3`, `hyena`, `mamba`, `mamba2`,
//! `delta_net`, `gla`: each its
//! settings type, a [`kind::MixerOptions`], and its module, built by `init(&MixerShape, …)`) →
//! `mixer` (the [`mixer::MixerConfig`] of every mixer, which module a layer gets) → `config` →
//! `block` → `lm`.

pub mod attention;
pub mod base_conv;
pub mod based;
pub mod block;
pub mod config;
pub mod conv_cpu;
pub mod cpu_ops;
pub mod delta_net;
pub mod delta_rule;
pub mod delta_rule_cpu;
pub mod gelu_cpu;
pub mod gla;
pub mod gla_rule;
pub mod gla_rule_cpu;
pub mod h3;
pub mod hyena;
pub mod init;
pub mod kind;
pub mod lm;
pub mod long_conv;
pub mod mamba;
pub mod mamba2;
pub mod mixer;
pub mod mlp;
pub mod norm;
pub mod ops;
pub mod param_names;
pub mod rule_cpu;
pub mod runs;
pub mod scan_cpu;
pub mod selective_scan;
pub mod sites;
pub mod ssd_rule;
pub mod ssd_rule_cpu;
pub mod xent_cpu;

pub use config::ModelConfig;
pub use kind::{ConvKernel, MixerKeys, MixerKind, ModelError};
pub use lm::LanguageModel;
pub use mixer::MixerConfig;
pub use sites::{NoSites, Site, Sites};
