//! The names a model is configured with: the mixers, the contract each mixer's configuration
//! type fills ([`MixerOptions`]), their convolution settings, and what goes wrong when a
//! configuration cannot be built. Below every other model module.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::sites::Site;

/// A model configuration that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The mixer's rules ([`crate::model::mixer::MixerInfo::check`]) refuse the configuration.
    #[error("{mixer}: {problems}")]
    Invalid {
        mixer: &'static str,
        problems: String,
    },
    #[error("{mixer} needs {expected}, found {found}")]
    Convolution {
        mixer: &'static str,
        expected: &'static str,
        /// The configured convolution, or `none`.
        found: String,
    },
    #[error("h3 needs an even d_model and max_positions ≥ 2, found {d_model} and {max_positions}")]
    H3Shape {
        d_model: usize,
        max_positions: usize,
    },
}

/// Every mixer of the reference study (`reference/paper-setup.md` §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MixerKind {
    /// Causal softmax attention, one head.
    Attention,
    /// Based: BaseConv and Taylor linear attention, alternating by layer.
    Based,
    /// BaseConv: gated short or implicit long convolution.
    BaseConv,
    /// H3: shift SSM + diagonal SSM.
    H3,
    /// Hyena, order 2.
    Hyena,
    /// Mamba-1 selective SSM.
    Mamba,
    /// DeltaNet: linear attention whose state is corrected by the delta rule
    /// (flash-linear-attention's layer; beyond the paper's sweeps).
    DeltaNet,
    /// GLA: gated linear attention (flash-linear-attention's layer; beyond the paper's sweeps).
    Gla,
    /// Mamba-2: the state space dual (mamba_ssm's layer; beyond the paper's sweeps).
    Mamba2,
}

impl MixerKind {
    pub const ALL: [MixerKind; 9] = [
        MixerKind::Attention,
        MixerKind::Based,
        MixerKind::BaseConv,
        MixerKind::H3,
        MixerKind::Hyena,
        MixerKind::Mamba,
        MixerKind::DeltaNet,
        MixerKind::Gla,
        MixerKind::Mamba2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MixerKind::Attention => "attention",
            MixerKind::Based => "based",
            MixerKind::BaseConv => "base_conv",
            MixerKind::H3 => "h3",
            MixerKind::Hyena => "hyena",
            MixerKind::Mamba => "mamba",
            MixerKind::DeltaNet => "delta_net",
            MixerKind::Gla => "gla",
            MixerKind::Mamba2 => "mamba2",
        }
    }
}

/// What a mixer says about itself before it is configured, in its own file: the reference's
/// defaults for the block around it and where it sits in the reference's state dict.
pub struct MixerInfo {
    /// Learned absolute positions by default (the paper: attention only).
    pub default_pos_emb: bool,
    /// An MLP after the mixer by default (the paper: every block but Mamba's).
    pub default_mlp: bool,
    /// Where a layer's mixer sits in the reference's state dict, below
    /// `backbone.layers.{l}.` (Based's hybrid wrapper nests it one level deeper).
    pub reference_module: &'static str,
    /// Its blocks' norms are RMSNorm, the first named `norm` in the reference's state dict
    /// (Mamba's blocks); otherwise LayerNorm, `norm1` and `norm2`.
    pub rms_norm: bool,
    /// The intervention sites inside the mixer ([`Site::INTERNAL`]) it passes through.
    pub internal_sites: &'static [Site],
}

impl MixerInfo {
    /// Whether a block of this mixer (with or without an MLP) has `site`.
    pub fn has_site(&self, site: Site, mlp: bool) -> bool {
        match site {
            Site::BlockInput | Site::MixerInput | Site::MixerOutput | Site::BlockOutput => true,
            Site::MlpInput | Site::MlpOutput => mlp,
            Site::AttnPattern | Site::ConvOutput => self.internal_sites.contains(&site),
        }
    }
}

/// The model's sizes every mixer is built and checked against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixerShape {
    pub d_model: usize,
    /// Blocks in the model (out-projections are initialised with σ/√(2·layers)).
    pub layers: usize,
    /// The longest sequence: implicit filters and H3's shift state cover this many positions.
    pub max_positions: usize,
}

/// The mixer settings a spec wrote under `[model]`, before a mixer takes them. Each mixer's
/// [`MixerOptions::from_keys`] takes the keys it has and refuses the others, so a key that
/// means nothing for the chosen mixer is an error, never silently ignored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MixerKeys {
    /// `model.conv_kernel`, one entry per layer (a single value is repeated by the spec).
    pub conv_kernel: Option<Vec<ConvKernel>>,
    /// `model.heads`.
    pub heads: Option<usize>,
    /// `model.d_state`.
    pub d_state: Option<usize>,
}

impl MixerKeys {
    /// For mixer `name`, which reads only the keys in `takes`: every other key the spec set is a
    /// problem (a key that means nothing for the mixer is never silently ignored).
    pub fn only(&self, name: &str, takes: &[&str]) -> Result<(), Vec<ConfigProblem>> {
        let mut out = Vec::new();
        if self.conv_kernel.is_some() && !takes.contains(&CONV_KEY) {
            out.push(
                ConfigProblem::new(CONV_KEY, format!("{name} has no configurable convolution"))
                    .help(
                        "conv_kernel applies to mamba (d_conv), based (its short convolution), \
                         base_conv (per layer), delta_net (its short convolutions) and mamba2 \
                         (d_conv)",
                    ),
            );
        }
        if self.heads.is_some() && !takes.contains(&HEADS_KEY) {
            out.push(
                ConfigProblem::new(HEADS_KEY, format!("{name} has no configurable heads"))
                    .help("heads applies to delta_net, gla and mamba2"),
            );
        }
        if self.d_state.is_some() && !takes.contains(&D_STATE_KEY) {
            out.push(
                ConfigProblem::new(D_STATE_KEY, format!("{name} has no configurable d_state"))
                    .help("d_state applies to mamba2 (mamba's is the reference's 16)"),
            );
        }
        if out.is_empty() { Ok(()) } else { Err(out) }
    }
}

/// What each mixer's configuration type says, in the mixer's own file: how it is read from the
/// spec's keys, its rules, and what the memory estimate must count for it. Its serialised form
/// is part of the model's hashed config (node ids): fields left at the reference's default are
/// left out of it, so specs that do not set them keep their ids.
pub trait MixerOptions: Sized + Default {
    /// Its settings from the keys a spec wrote; a key it has no use for is a problem.
    fn from_keys(keys: &MixerKeys, layers: usize) -> Result<Self, Vec<ConfigProblem>>;
    /// Every problem of these settings in a model of `shape`.
    fn problems(&self, shape: &MixerShape) -> Vec<ConfigProblem>;
    /// Whether some layer has implicit filters as long as `max_positions`.
    fn long_filters(&self, _shape: &MixerShape) -> bool {
        false
    }
    /// Floats per layer it keeps for backward beyond the ~40 of width `d_model` per position
    /// every block keeps (scores, Toeplitz products, state maps), for a batch of `batch`
    /// sequences of `seq` tokens.
    fn activations(&self, shape: &MixerShape, batch: f64, seq: f64) -> f64;
}

/// A model setting a mixer cannot take: the `model.` key, what is wrong, and hints. The mixer's
/// own file states the rule; `spec` only adds where the value was written.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblem {
    pub key: &'static str,
    pub message: String,
    pub help: Vec<String>,
}

impl ConfigProblem {
    pub fn new(key: &'static str, message: impl Into<String>) -> Self {
        ConfigProblem {
            key,
            message: message.into(),
            help: Vec::new(),
        }
    }

    pub fn help(mut self, hint: impl Into<String>) -> Self {
        self.help.push(hint.into());
        self
    }
}

/// The key every convolution rule is about.
pub const CONV_KEY: &str = "model.conv_kernel";

/// The key of the number of heads.
pub const HEADS_KEY: &str = "model.heads";

/// The key of a state space's state size.
pub const D_STATE_KEY: &str = "model.d_state";

/// A mixer's configured kernel per layer, or empty where it is the mixer's `default` for every
/// layer (then the serialised config leaves it out and the spec keeps its node ids).
pub fn configured_conv(
    keys: &MixerKeys,
    layers: usize,
    default: fn(usize) -> ConvKernel,
) -> Vec<ConvKernel> {
    match &keys.conv_kernel {
        Some(list)
            if list.len() != layers || list.iter().enumerate().any(|(l, k)| *k != default(l)) =>
        {
            list.clone()
        }
        _ => Vec::new(),
    }
}

/// Layer `layer`'s kernel of a configured list ([`configured_conv`]), or the mixer's default.
pub fn conv_at(list: &[ConvKernel], layer: usize, default: fn(usize) -> ConvKernel) -> ConvKernel {
    list.get(layer).copied().unwrap_or_else(|| default(layer))
}

/// For mixers that take a kernel per layer: the list has one entry per layer.
pub fn one_per_layer(kernels: &[ConvKernel], layers: usize) -> Option<ConfigProblem> {
    (kernels.len() != layers).then(|| {
        ConfigProblem::new(
            CONV_KEY,
            format!(
                "expected one kernel per layer ({layers} layers), found a list of {}",
                kernels.len()
            ),
        )
    })
}

/// A mixer's convolution: a short causal depthwise convolution of `n` taps (`0` = none, Mamba
/// only), or the implicit long convolution, written `"long"`.
///
/// Deserialised by hand so that a bad value says what is accepted (serde's untagged enums say
/// only "did not match any variant").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ConvKernel {
    Taps(usize),
    Long(LongConv),
}

/// What a convolution setting accepts, for error messages.
pub const CONV_KERNEL_EXPECTED: &str = "a number of taps (0 to 16) or \"long\"";

impl<'de> Deserialize<'de> for ConvKernel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ConvKernelVisitor)
    }
}

/// Reads a [`ConvKernel`] from an integer or the string `"long"`.
pub struct ConvKernelVisitor;

impl serde::de::Visitor<'_> for ConvKernelVisitor {
    type Value = ConvKernel;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(CONV_KERNEL_EXPECTED)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ConvKernel, E> {
        if v <= 16 {
            Ok(ConvKernel::Taps(v as usize))
        } else {
            Err(E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
        }
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ConvKernel, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::invalid_value(serde::de::Unexpected::Signed(v), &self)),
        }
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ConvKernel, E> {
        if v == "long" {
            Ok(ConvKernel::Long(LongConv::Long))
        } else {
            Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
        }
    }
}

/// The word `"long"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LongConv {
    Long,
}

impl fmt::Display for ConvKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConvKernel::Taps(n) => write!(f, "{n}"),
            ConvKernel::Long(_) => write!(f, "long"),
        }
    }
}
