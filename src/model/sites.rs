//! Named intervention sites. A block passes each activation through [`Sites::visit`] at exactly
//! one line per site, so recording and patching need no hooks (TransformerLens-style placement).
//! Mixer-internal sites are visited the same way inside the mixers that have them.

use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

/// An activation of one layer, shape `[batch, seq, width]`: `d_model` wide for the block sites;
/// the mixer-internal sites have their own width, with positions on the second axis as everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Site {
    /// Residual stream entering the block (before the first norm).
    BlockInput,
    /// Normalised input to the sequence mixer.
    MixerInput,
    /// Mixer output, before the residual add.
    MixerOutput,
    /// Normalised input to the MLP (absent in Mamba blocks).
    MlpInput,
    /// MLP output, before the residual add (absent in Mamba blocks).
    MlpOutput,
    /// Residual stream leaving the block.
    BlockOutput,
    /// Attention weights after the softmax, `[batch, query position, key position]` (attention
    /// mixers only). Restoring it at a position restores where that position attends, not what it
    /// reads there.
    AttnPattern,
    /// Mamba's x branch as it enters the selective scan: after the causal convolution and SiLU
    /// (`d_conv = 0`: SiLU only), `[batch, seq, d_inner]` (Mamba mixers only).
    ConvOutput,
}

impl Site {
    /// The sites every block has (the `mlp_*` ones only with an MLP), in visiting order.
    pub const BLOCK: [Site; 6] = [
        Site::BlockInput,
        Site::MixerInput,
        Site::MixerOutput,
        Site::MlpInput,
        Site::MlpOutput,
        Site::BlockOutput,
    ];

    /// Sites inside a sequence mixer, each in the mixers whose [`super::kind::MixerInfo`] lists it.
    pub const INTERNAL: [Site; 2] = [Site::AttnPattern, Site::ConvOutput];

    /// Every site: the block's, then the mixer-internal ones.
    pub const ALL: [Site; 8] = {
        let mut all = [Site::BlockInput; 8];
        let mut i = 0;
        while i < all.len() {
            all[i] = if i < 6 {
                Site::BLOCK[i]
            } else {
                Site::INTERNAL[i - 6]
            };
            i += 1;
        }
        all
    };

    pub fn name(self) -> &'static str {
        match self {
            Site::BlockInput => "block_input",
            Site::MixerInput => "mixer_input",
            Site::MixerOutput => "mixer_output",
            Site::MlpInput => "mlp_input",
            Site::MlpOutput => "mlp_output",
            Site::BlockOutput => "block_output",
            Site::AttnPattern => "attn_pattern",
            Site::ConvOutput => "conv_output",
        }
    }

    /// Sites inside a sequence mixer (as opposed to the residual-stream and sub-layer sites).
    pub fn is_mixer_internal(self) -> bool {
        matches!(self, Site::AttnPattern | Site::ConvOutput)
    }

    /// Sites after the mixer, where the block acts on each position alone.
    pub fn is_after_mixer(self) -> bool {
        matches!(
            self,
            Site::MixerOutput | Site::MlpInput | Site::MlpOutput | Site::BlockOutput
        )
    }
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Sees (and may replace) every site activation during a forward pass.
pub trait Sites<B: Backend> {
    fn visit(&mut self, layer: usize, site: Site, x_bsd: Tensor<B, 3>) -> Tensor<B, 3>;

    /// Whether recurrent mixers should hand over their states through [`Self::keep_states`]
    /// (where they can at no extra cost: Mamba's fused CPU scan).
    fn wants_states(&self) -> bool {
        false
    }

    /// The recurrent state after every position of `layer` (Mamba: `[b, s, i, n]`, host).
    fn keep_states(&mut self, _layer: usize, _states: Vec<f32>) {}
}

/// The plain forward pass: every site is the identity.
pub struct NoSites;

impl<B: Backend> Sites<B> for NoSites {
    #[inline]
    fn visit(&mut self, _layer: usize, _site: Site, x_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        x_bsd
    }
}
