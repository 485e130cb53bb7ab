//! The one place that knows the list of sequence mixers and how each is built per layer.

use std::fmt;

use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use super::attention::Attention;
use super::base_conv::{BaseConv, BaseConvLong};
use super::based::BasedAttention;
use super::config::ModelConfig;
use super::h3::H3;
use super::hyena::Hyena;
use super::init::Init;
use super::lm::at_positions;
use super::mamba::Mamba;
use super::sites::{NoSites, Sites};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Invalid(String),
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

// One mixer per block, built once: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Mixer<B: Backend> {
    Attention(Attention<B>),
    /// A gated short convolution (`base_conv`, Based's even layers).
    BaseConv(BaseConv<B>),
    /// A gated implicit long convolution (`base_conv`, Based's `long` ablation).
    BaseConvLong(BaseConvLong<B>),
    /// Taylor linear attention (Based's odd layers).
    BasedAttention(BasedAttention<B>),
    H3(H3<B>),
    Hyena(Hyena<B>),
    Mamba(Mamba<B>),
}

impl<B: Backend> Mixer<B> {
    /// Builds the mixer of block `layer` of the model `cfg`.
    pub fn init(cfg: &ModelConfig, layer: usize, init: &mut Init<B>) -> Result<Self, ModelError> {
        let d = cfg.d_model;
        let conv = cfg.conv_for(layer);
        let gated = |conv: Option<ConvKernel>, init: &mut Init<B>| match conv {
            Some(ConvKernel::Taps(k)) if k > 0 => Ok(Mixer::BaseConv(BaseConv::init(d, k, init))),
            Some(ConvKernel::Long(_)) => Ok(Mixer::BaseConvLong(BaseConvLong::init(
                d,
                cfg.max_positions,
                init,
            ))),
            other => Err(ModelError::Invalid(format!(
                "{} needs a convolution of 1 or more taps or \"long\", found {}",
                cfg.mixer.name(),
                other.map_or("none".to_string(), |k| k.to_string())
            ))),
        };
        match cfg.mixer {
            MixerKind::Attention => Ok(Mixer::Attention(Attention::init(d, cfg.layers, init))),
            MixerKind::BaseConv => gated(conv, init),
            // Based is a hybrid by layer: BaseConv on even layers, linear attention on odd ones.
            MixerKind::Based if layer.is_multiple_of(2) => gated(conv, init),
            MixerKind::Based => Ok(Mixer::BasedAttention(BasedAttention::init(d, init))),
            MixerKind::H3 => {
                if !d.is_multiple_of(super::h3::HEAD_DIM) || cfg.max_positions < 2 {
                    return Err(ModelError::Invalid(format!(
                        "h3 needs an even d_model and max_positions ≥ 2, found {d} and {}",
                        cfg.max_positions
                    )));
                }
                Ok(Mixer::H3(H3::init(d, cfg.max_positions, init)))
            }
            MixerKind::Hyena => Ok(Mixer::Hyena(Hyena::init(
                d,
                cfg.max_positions,
                cfg.layers,
                init,
            ))),
            MixerKind::Mamba => match conv {
                Some(ConvKernel::Taps(k)) => Ok(Mixer::Mamba(Mamba::init(d, k, cfg.layers, init))),
                other => Err(ModelError::Invalid(format!(
                    "mamba needs d_conv taps (0 = no convolution), found {}",
                    other.map_or("none".to_string(), |k| k.to_string())
                ))),
            },
        }
    }

    /// `layer`'s mixer-internal sites (if this mixer has any) pass through `sites`.
    ///
    /// # Shapes
    /// - `x_bsd`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(
        &self,
        x_bsd: Tensor<B, 3>,
        layer: usize,
        sites: &mut dyn Sites<B>,
    ) -> Tensor<B, 3> {
        match self {
            Mixer::Attention(m) => m.forward_visiting(x_bsd, layer, sites),
            Mixer::BaseConv(m) => m.forward(x_bsd),
            Mixer::BaseConvLong(m) => m.forward(x_bsd),
            Mixer::BasedAttention(m) => m.forward(x_bsd),
            Mixer::H3(m) => m.forward(x_bsd),
            Mixer::Hyena(m) => m.forward(x_bsd),
            Mixer::Mamba(m) => m.forward_visiting(x_bsd, layer, sites),
        }
    }

    /// The output at one position per row, `at[r]` in row `r` (the same values as
    /// [`Self::forward`] there, to rounding). Attention computes only those queries and the long
    /// convolutions only those rows; the short-convolution mixers and Mamba, whose cost does not
    /// depend on how many outputs are read, run in full and pick them.
    ///
    /// # Shapes
    /// - `x_bsd`: `[batch, seq, d_model]`, `at`: `batch` positions → `[batch, 1, d_model]`
    pub fn forward_at(&self, x_bsd: Tensor<B, 3>, layer: usize, at: &[usize]) -> Tensor<B, 3> {
        match self {
            Mixer::Attention(m) => m.forward_at(x_bsd, at),
            Mixer::BaseConvLong(m) => m.forward_at(x_bsd, at),
            Mixer::H3(m) => m.forward_at(x_bsd, at),
            Mixer::Hyena(m) => m.forward_at(x_bsd, at),
            Mixer::BaseConv(_) | Mixer::BasedAttention(_) | Mixer::Mamba(_) => {
                at_positions(self.forward(x_bsd, layer, &mut NoSites), at)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn output_at_chosen_positions_equals_the_full_output_there_for_every_mixer() {
        let device = Default::default();
        let at = [6, 0, 3];
        for kind in MixerKind::ALL {
            let cfg = ModelConfig {
                max_positions: 16,
                ..ModelConfig::paper(kind, 26, 16, 2)
            };
            // Both layers: Based and BaseConv alternate two kinds of layer.
            for layer in 0..2 {
                let mut init = Init::<Flex>::new(7, 0.3, &device);
                let mixer = Mixer::init(&cfg, layer, &mut init).unwrap();
                let x = init.normal([3, 7, 16], 1.0);
                let full: Vec<f32> = mixer
                    .forward(x.clone(), layer, &mut NoSites)
                    .into_data()
                    .to_vec()
                    .unwrap();
                let picked: Vec<f32> = mixer
                    .forward_at(x, layer, &at)
                    .into_data()
                    .to_vec()
                    .unwrap();
                for (r, &t) in at.iter().enumerate() {
                    for c in 0..16 {
                        let (a, b) = (picked[r * 16 + c], full[(r * 7 + t) * 16 + c]);
                        assert!(
                            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                            "{kind:?} layer {layer} row {r}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}
