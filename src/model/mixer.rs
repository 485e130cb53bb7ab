//! The one place that knows the list of sequence mixers: which one each layer builds, and where
//! each mixer's own description of itself ([`MixerInfo`], in its file) is found.

use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use super::attention::Attention;
use super::base_conv::{BaseConv, BaseConvLong};
use super::based::BasedAttention;
use super::config::ModelConfig;
use super::h3::H3;
use super::hyena::Hyena;
use super::init::Init;
use super::kind::{ConfigProblem, ConvKernel, MixerKind, ModelError};
use super::mamba::Mamba;
use super::ops::at_positions;
use super::param_names::{Buffer, ParamTable};
use super::sites::{NoSites, Sites};

/// What a mixer says about itself beside its forward pass, in its own file: the reference's
/// defaults, the rules a configuration must follow (the spec reports them with their place), and
/// what the memory estimate must count for it.
pub struct MixerInfo {
    /// Learned absolute positions by default (the paper: attention only).
    pub default_pos_emb: bool,
    /// An MLP after the mixer by default (the paper: every block but Mamba's).
    pub default_mlp: bool,
    /// The reference's `conv_kernel` of a layer, where the mixer has a choice.
    pub default_conv: fn(layer: usize) -> Option<ConvKernel>,
    /// Every problem of `cfg` for this mixer.
    pub check: fn(cfg: &ModelConfig) -> Vec<ConfigProblem>,
    /// Whether some layer has implicit filters as long as `max_positions`.
    pub long_filters: fn(cfg: &ModelConfig) -> bool,
    /// Where a layer's mixer sits in the reference's state dict, below
    /// `backbone.layers.{l}.` (Based's hybrid wrapper nests it one level deeper).
    pub reference_module: &'static str,
    /// Floats per layer it keeps for backward beyond the ~40 of width `d_model` per position
    /// every block keeps (scores, Toeplitz products, state maps), for a batch of `batch`
    /// sequences of `seq` tokens.
    pub activations: fn(cfg: &ModelConfig, batch: f64, seq: f64) -> f64,
}

impl MixerKind {
    /// The mixer's description of itself.
    pub fn info(self) -> &'static MixerInfo {
        match self {
            MixerKind::Attention => &super::attention::INFO,
            MixerKind::Based => &super::based::INFO,
            MixerKind::BaseConv => &super::base_conv::INFO,
            MixerKind::H3 => &super::h3::INFO,
            MixerKind::Hyena => &super::hyena::INFO,
            MixerKind::Mamba => &super::mamba::INFO,
        }
    }
}

impl ModelConfig {
    /// Every problem of this configuration for its mixer.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        (self.mixer.info().check)(self)
    }

    /// Whether some layer has implicit filters as long as `max_positions`.
    pub fn has_long_filters(&self) -> bool {
        (self.mixer.info().long_filters)(self)
    }
}

/// For mixers whose layers may take `"long"`: whether one does.
pub fn some_layer_long(cfg: &ModelConfig) -> bool {
    (0..cfg.layers).any(|l| matches!(cfg.conv_for(l), Some(ConvKernel::Long(_))))
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
        let shape = cfg.mixer_shape(layer);
        // BaseConv layers are short or long by their kernel.
        let gated = |init: &mut Init<B>| match shape.conv {
            Some(ConvKernel::Long(_)) => BaseConvLong::init(&shape, init).map(Mixer::BaseConvLong),
            _ => BaseConv::init(&shape, init).map(Mixer::BaseConv),
        };
        match cfg.mixer {
            MixerKind::Attention => Attention::init(&shape, init).map(Mixer::Attention),
            MixerKind::BaseConv => gated(init),
            // Based is a hybrid by layer: BaseConv on even layers, linear attention on odd ones.
            MixerKind::Based if layer.is_multiple_of(2) => gated(init),
            MixerKind::Based => BasedAttention::init(&shape, init).map(Mixer::BasedAttention),
            MixerKind::H3 => H3::init(&shape, init).map(Mixer::H3),
            MixerKind::Hyena => Hyena::init(&shape, init).map(Mixer::Hyena),
            MixerKind::Mamba => Mamba::init(&shape, init).map(Mixer::Mamba),
        }
    }

    /// Its parameters under the reference module's names below prefix `m` (each mixer's list is
    /// in its file).
    pub fn reference_params<'a>(&'a mut self, m: &str, t: &mut ParamTable<'a, B>) {
        match self {
            Mixer::Attention(x) => x.reference_params(m, t),
            Mixer::BaseConv(x) => x.reference_params(m, t),
            Mixer::BaseConvLong(x) => x.reference_params(m, t),
            Mixer::BasedAttention(x) => x.reference_params(m, t),
            Mixer::H3(x) => x.reference_params(m, t),
            Mixer::Hyena(x) => x.reference_params(m, t),
            Mixer::Mamba(x) => x.reference_params(m, t),
        }
    }

    /// What the reference's module lists in its state dict besides its parameters, below `m`.
    pub fn reference_buffers(&self, m: &str) -> Vec<Buffer> {
        match self {
            Mixer::Hyena(x) => x.reference_buffers(m),
            Mixer::Mamba(x) => x.reference_buffers(m),
            _ => Vec::new(),
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
