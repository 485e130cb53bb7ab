//! What a model is, before it is built: mixer, sizes, positions, MLP, initialisation and
//! convolutions, with the reference's defaults in one place ([`MixerKind`]'s `default_*`).

use serde::Serialize;

use super::kind::{ConvKernel, MixerKind};

/// Everything needed to build a model. Resolved from a spec's `[model]` (defaults filled) and
/// serialised as the `model` of a train node's hashed config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelConfig {
    /// Fixed by the task. Not serialised: the train node's id already depends on the dataset node,
    /// whose config fixes the task and so the vocabulary.
    #[serde(skip)]
    pub vocab_size: usize,
    pub d_model: usize,
    pub layers: usize,
    pub mixer: MixerKind,
    /// Learned absolute position embedding (paper: on for attention, off elsewhere).
    pub pos_emb: bool,
    /// Rows of the position table (reference: 1024).
    pub max_positions: usize,
    /// MLP after each mixer (reference: on, except in Mamba blocks).
    pub mlp: bool,
    /// Base σ of weights and embeddings (reference: 0.02; out-projections get σ/√(2·layers)).
    pub init_std: f64,
    /// Convolution per layer for mixers with a choice (Mamba's d_conv, Based's short kernel,
    /// BaseConv's per-layer kernels); empty = the reference's ([`MixerKind::default_conv`]),
    /// and then absent from the serialised config, so specs that leave it out keep their ids.
    #[serde(rename = "conv_kernel", skip_serializing_if = "Vec::is_empty")]
    pub conv: Vec<ConvKernel>,
}

impl ModelConfig {
    /// The paper's model for `mixer`: learned positions only for attention, an MLP in every block
    /// except Mamba's, 1024 positions, σ = 0.02.
    pub fn paper(mixer: MixerKind, vocab_size: usize, d_model: usize, layers: usize) -> Self {
        ModelConfig {
            vocab_size,
            d_model,
            layers,
            mixer,
            pos_emb: mixer.default_pos_emb(),
            max_positions: 1024,
            mlp: mixer.default_mlp(),
            init_std: super::init::REFERENCE_INIT_STD,
            conv: Vec::new(),
        }
    }

    /// The convolution of block `layer`: the configured one, or the reference's.
    pub fn conv_for(&self, layer: usize) -> Option<ConvKernel> {
        self.conv
            .get(layer)
            .copied()
            .or_else(|| self.mixer.default_conv(layer))
    }

    /// What the mixer of block `layer` is built from.
    pub fn mixer_shape(&self, layer: usize) -> MixerShape {
        MixerShape {
            d_model: self.d_model,
            layers: self.layers,
            max_positions: self.max_positions,
            conv: self.conv_for(layer),
        }
    }
}

/// What every mixer's constructor is given (one shape for all): the model's width, depth and
/// longest sequence, and the layer's convolution where the mixer has a choice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixerShape {
    pub d_model: usize,
    /// Blocks in the model (out-projections are initialised with σ/√(2·layers)).
    pub layers: usize,
    /// The longest sequence: implicit filters and H3's shift state cover this many positions.
    pub max_positions: usize,
    /// [`ModelConfig::conv_for`] of this layer.
    pub conv: Option<ConvKernel>,
}
