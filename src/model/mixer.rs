//! The one place that knows the list of sequence mixers and which one each layer builds.

use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use super::attention::Attention;
use super::base_conv::{BaseConv, BaseConvLong};
use super::based::BasedAttention;
use super::config::ModelConfig;
use super::h3::H3;
use super::hyena::Hyena;
use super::init::Init;
use super::kind::{ConvKernel, MixerKind, ModelError};
use super::mamba::Mamba;
use super::ops::at_positions;
use super::sites::{NoSites, Sites};

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
