//! The names a model is configured with: the mixers, their convolution settings, and what goes
//! wrong when a configuration cannot be built. Below every other model module.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A model configuration that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
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
}

impl MixerKind {
    pub const ALL: [MixerKind; 6] = [
        MixerKind::Attention,
        MixerKind::Based,
        MixerKind::BaseConv,
        MixerKind::H3,
        MixerKind::Hyena,
        MixerKind::Mamba,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MixerKind::Attention => "attention",
            MixerKind::Based => "based",
            MixerKind::BaseConv => "base_conv",
            MixerKind::H3 => "h3",
            MixerKind::Hyena => "hyena",
            MixerKind::Mamba => "mamba",
        }
    }

    /// Mamba blocks use RMSNorm and, by default, no MLP.
    pub fn is_mamba(self) -> bool {
        self == MixerKind::Mamba
    }

    /// The reference's default for learned absolute positions: attention only.
    pub fn default_pos_emb(self) -> bool {
        self == MixerKind::Attention
    }

    /// The reference's default for an MLP after the mixer: every block but Mamba's.
    pub fn default_mlp(self) -> bool {
        self != MixerKind::Mamba
    }

    /// The reference's convolution for `layer`, where the mixer has a choice: Mamba's d_conv 4,
    /// Based's short kernel 3, BaseConv's [3, long, 3, long, …] by layer. `None` for mixers
    /// whose convolutions are fixed.
    pub fn default_conv(self, layer: usize) -> Option<ConvKernel> {
        match self {
            MixerKind::Mamba => Some(ConvKernel::Taps(4)),
            MixerKind::Based => Some(ConvKernel::Taps(3)),
            MixerKind::BaseConv if layer.is_multiple_of(2) => Some(ConvKernel::Taps(3)),
            MixerKind::BaseConv => Some(ConvKernel::Long(LongConv::Long)),
            _ => None,
        }
    }
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
