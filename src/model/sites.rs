//! Named intervention sites. A block passes each activation through [`Sites::visit`] at exactly
//! one line per site, so recording and patching need no hooks (TransformerLens-style placement).

use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

/// A residual-stream or sub-layer activation of one layer, shape `[batch, seq, d_model]`.
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
}

impl Site {
    pub const ALL: [Site; 6] = [
        Site::BlockInput,
        Site::MixerInput,
        Site::MixerOutput,
        Site::MlpInput,
        Site::MlpOutput,
        Site::BlockOutput,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Site::BlockInput => "block_input",
            Site::MixerInput => "mixer_input",
            Site::MixerOutput => "mixer_output",
            Site::MlpInput => "mlp_input",
            Site::MlpOutput => "mlp_output",
            Site::BlockOutput => "block_output",
        }
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
}

/// The plain forward pass: every site is the identity.
pub struct NoSites;

impl<B: Backend> Sites<B> for NoSites {
    #[inline]
    fn visit(&mut self, _layer: usize, _site: Site, x_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        x_bsd
    }
}
