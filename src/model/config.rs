//! What a model is, before it is built: mixer, sizes, positions, MLP, initialisation and
//! convolutions, with the reference's defaults in one place ([`MixerKind`]'s `default_*`).

use burn::nn::LayerNormConfig;
use burn::tensor::backend::Backend;
use serde::Serialize;

use super::block::Block;
use super::init::Init;
use super::lm::LanguageModel;
use super::mixer::{ConvKernel, MixerKind, ModelError};
use super::norm::NORM_EPS;

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

    /// Parameters the reference's model counts but mechlab does not build: the conv1d of
    /// kernel 4 that the reference's Mamba without a convolution allocates and never uses.
    pub fn reference_only_params(&self) -> usize {
        if self.mixer != MixerKind::Mamba {
            return 0;
        }
        let inner = super::mamba::EXPAND * self.d_model;
        (0..self.layers)
            .filter(|&l| self.conv_for(l) == Some(ConvKernel::Taps(0)))
            .map(|_| inner * 4 + inner)
            .sum()
    }

    /// Builds the model with reference initialisation drawn from `seed`.
    pub fn init<B: Backend>(
        &self,
        seed: u64,
        device: &B::Device,
    ) -> Result<LanguageModel<B>, ModelError> {
        let mut init = Init::<B>::new(seed, self.init_std, device);
        let word_embeddings = init.embedding(self.vocab_size, self.d_model, self.init_std);
        let position_embeddings = self
            .pos_emb
            .then(|| init.embedding(self.max_positions, self.d_model, self.init_std));
        let layers = (0..self.layers)
            .map(|l| Block::init(l, self, &mut init))
            .collect::<Result<Vec<_>, _>>()?;
        let ln_f = LayerNormConfig::new(self.d_model)
            .with_epsilon(NORM_EPS)
            .init(device);
        Ok(LanguageModel {
            word_embeddings,
            position_embeddings,
            layers,
            ln_f,
        })
    }
}
