//! The one place that knows the list of sequence mixers.

use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use super::attention::Attention;
use super::base_conv::BaseConv;
use super::based::BasedAttention;
use super::init::Init;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "mixer \"{0}\" is not implemented yet in this version of mechlab (available: attention, based)"
    )]
    NotImplemented(&'static str),
}

/// Every mixer of the reference study. Only those with a module below can be built; the rest are
/// rejected at `validate` with a "not implemented yet" error rather than failing mid-run.
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

    /// Whether this build can construct the mixer.
    pub fn implemented(self) -> bool {
        matches!(self, MixerKind::Attention | MixerKind::Based)
    }
}

/// Based's short convolution kernel on its even layers (reference: 3).
pub const BASED_SHORT_KERNEL: usize = 3;

// One mixer per block, built once: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Mixer<B: Backend> {
    Attention(Attention<B>),
    /// A gated convolution (Based's even layers).
    BaseConv(BaseConv<B>),
    /// Taylor linear attention (Based's odd layers).
    BasedAttention(BasedAttention<B>),
}

impl<B: Backend> Mixer<B> {
    /// Builds mixer `kind` for block `layer` of a `layers`-deep model.
    pub fn init(
        kind: MixerKind,
        layer: usize,
        d_model: usize,
        layers: usize,
        init: &mut Init<B>,
    ) -> Result<Self, ModelError> {
        match kind {
            MixerKind::Attention => Ok(Mixer::Attention(Attention::init(d_model, layers, init))),
            // Based is a hybrid by layer: BaseConv on even layers, linear attention on odd ones.
            MixerKind::Based if layer.is_multiple_of(2) => Ok(Mixer::BaseConv(BaseConv::init(
                d_model,
                BASED_SHORT_KERNEL,
                init,
            ))),
            MixerKind::Based => Ok(Mixer::BasedAttention(BasedAttention::init(d_model, init))),
            other => Err(ModelError::NotImplemented(other.name())),
        }
    }

    /// # Shapes
    /// - `x_bsd`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, x_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        match self {
            Mixer::Attention(m) => m.forward(x_bsd),
            Mixer::BaseConv(m) => m.forward(x_bsd),
            Mixer::BasedAttention(m) => m.forward(x_bsd),
        }
    }
}
