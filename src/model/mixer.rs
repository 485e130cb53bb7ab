//! The one place that knows the list of sequence mixers: each mixer's configuration
//! ([`MixerConfig`], one variant per mixer, its type in the mixer's file), which module each
//! layer builds, and where each mixer's description of itself ([`MixerInfo`]) is found.

use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};
use serde::Serialize;

use super::attention::{Attention, AttentionConfig};
use super::base_conv::{BaseConv, BaseConvConfig, BaseConvLong};
use super::based::{BasedAttention, BasedConfig};
use super::delta_net::{DeltaNet, DeltaNetConfig};
use super::gla::{Gla, GlaConfig};
use super::h3::{H3, H3Config};
use super::hyena::{Hyena, HyenaConfig};
use super::init::Init;
use super::kind::{ConfigProblem, ConvKernel, MixerInfo, MixerKeys, MixerKind, MixerOptions};
use super::kind::{MixerShape, ModelError};
use super::mamba::{Mamba, MambaConfig};
use super::mamba2::{Mamba2, Mamba2Config};
use super::ops::at_positions;
use super::param_names::{Buffer, ParamTable};
use super::sites::{NoSites, Sites};

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
            MixerKind::DeltaNet => &super::delta_net::INFO,
            MixerKind::Gla => &super::gla::INFO,
            MixerKind::Mamba2 => &super::mamba2::INFO,
        }
    }

    /// The mixer with the spec's `keys` (its own type reads them: [`MixerOptions::from_keys`]).
    pub fn configure(
        self,
        keys: &MixerKeys,
        layers: usize,
    ) -> Result<MixerConfig, Vec<ConfigProblem>> {
        Ok(match self {
            MixerKind::Attention => {
                MixerConfig::Attention(AttentionConfig::from_keys(keys, layers)?)
            }
            MixerKind::Based => MixerConfig::Based(BasedConfig::from_keys(keys, layers)?),
            MixerKind::BaseConv => MixerConfig::BaseConv(BaseConvConfig::from_keys(keys, layers)?),
            MixerKind::H3 => MixerConfig::H3(H3Config::from_keys(keys, layers)?),
            MixerKind::Hyena => MixerConfig::Hyena(HyenaConfig::from_keys(keys, layers)?),
            MixerKind::Mamba => MixerConfig::Mamba(MambaConfig::from_keys(keys, layers)?),
            MixerKind::DeltaNet => MixerConfig::DeltaNet(DeltaNetConfig::from_keys(keys, layers)?),
            MixerKind::Gla => MixerConfig::Gla(GlaConfig::from_keys(keys, layers)?),
            MixerKind::Mamba2 => MixerConfig::Mamba2(Mamba2Config::from_keys(keys, layers)?),
        })
    }

    /// The mixer as the reference configures it.
    pub fn reference(self) -> MixerConfig {
        match self {
            MixerKind::Attention => MixerConfig::Attention(Default::default()),
            MixerKind::Based => MixerConfig::Based(Default::default()),
            MixerKind::BaseConv => MixerConfig::BaseConv(Default::default()),
            MixerKind::H3 => MixerConfig::H3(Default::default()),
            MixerKind::Hyena => MixerConfig::Hyena(Default::default()),
            MixerKind::Mamba => MixerConfig::Mamba(Default::default()),
            MixerKind::DeltaNet => MixerConfig::DeltaNet(Default::default()),
            MixerKind::Gla => MixerConfig::Gla(Default::default()),
            MixerKind::Mamba2 => MixerConfig::Mamba2(Default::default()),
        }
    }
}

/// A mixer and its own settings. Serialised flat into the model's config, `mixer = "<name>"`
/// beside the mixer's keys, exactly as the spec writes them (and as node ids hash them).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "mixer", rename_all = "snake_case")]
pub enum MixerConfig {
    Attention(AttentionConfig),
    Based(BasedConfig),
    BaseConv(BaseConvConfig),
    H3(H3Config),
    Hyena(HyenaConfig),
    Mamba(MambaConfig),
    DeltaNet(DeltaNetConfig),
    Gla(GlaConfig),
    Mamba2(Mamba2Config),
}

/// `$body` with `$c` bound to the variant's own configuration, whichever mixer it is.
macro_rules! with_options {
    ($config:expr, $c:ident => $body:expr) => {
        match $config {
            MixerConfig::Attention($c) => $body,
            MixerConfig::Based($c) => $body,
            MixerConfig::BaseConv($c) => $body,
            MixerConfig::H3($c) => $body,
            MixerConfig::Hyena($c) => $body,
            MixerConfig::Mamba($c) => $body,
            MixerConfig::DeltaNet($c) => $body,
            MixerConfig::Gla($c) => $body,
            MixerConfig::Mamba2($c) => $body,
        }
    };
}

impl MixerConfig {
    pub fn kind(&self) -> MixerKind {
        match self {
            MixerConfig::Attention(_) => MixerKind::Attention,
            MixerConfig::Based(_) => MixerKind::Based,
            MixerConfig::BaseConv(_) => MixerKind::BaseConv,
            MixerConfig::H3(_) => MixerKind::H3,
            MixerConfig::Hyena(_) => MixerKind::Hyena,
            MixerConfig::Mamba(_) => MixerKind::Mamba,
            MixerConfig::DeltaNet(_) => MixerKind::DeltaNet,
            MixerConfig::Gla(_) => MixerKind::Gla,
            MixerConfig::Mamba2(_) => MixerKind::Mamba2,
        }
    }

    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// Every problem of these settings in a model of `shape` (the mixer's own rules).
    pub fn problems(&self, shape: &MixerShape) -> Vec<ConfigProblem> {
        with_options!(self, c => c.problems(shape))
    }

    /// Whether some layer has implicit filters as long as `max_positions`.
    pub fn long_filters(&self, shape: &MixerShape) -> bool {
        with_options!(self, c => c.long_filters(shape))
    }

    /// Floats per layer kept for backward beyond what every block keeps.
    pub fn activations(&self, shape: &MixerShape, batch: f64, seq: f64) -> f64 {
        with_options!(self, c => c.activations(shape, batch, seq))
    }

    /// Parameters the reference's model counts but mechlab does not build (Mamba without a
    /// convolution: the reference allocates one anyway).
    pub fn reference_only_params(&self, shape: &MixerShape) -> usize {
        match self {
            MixerConfig::Mamba(c) => c.reference_only_params(shape),
            _ => 0,
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
    DeltaNet(DeltaNet<B>),
    Gla(Gla<B>),
    Mamba2(Mamba2<B>),
}

impl<B: Backend> Mixer<B> {
    /// Builds the mixer of block `layer` of a model of `shape`.
    pub fn init(
        config: &MixerConfig,
        shape: &MixerShape,
        layer: usize,
        init: &mut Init<B>,
    ) -> Result<Self, ModelError> {
        // BaseConv layers are short or long by their kernel.
        let gated = |kernel: ConvKernel, init: &mut Init<B>| match kernel {
            ConvKernel::Long(_) => BaseConvLong::init(shape, init).map(Mixer::BaseConvLong),
            ConvKernel::Taps(k) => BaseConv::init(shape, k, init).map(Mixer::BaseConv),
        };
        match config {
            MixerConfig::Attention(_) => Attention::init(shape, init).map(Mixer::Attention),
            MixerConfig::BaseConv(c) => gated(c.kernel(layer), init),
            // Based is a hybrid by layer: BaseConv on even layers, linear attention on odd ones.
            MixerConfig::Based(c) if layer.is_multiple_of(2) => gated(c.kernel(layer), init),
            MixerConfig::Based(_) => BasedAttention::init(shape, init).map(Mixer::BasedAttention),
            MixerConfig::H3(_) => H3::init(shape, init).map(Mixer::H3),
            MixerConfig::Hyena(_) => Hyena::init(shape, init).map(Mixer::Hyena),
            MixerConfig::Mamba(c) => Mamba::init(shape, c.kernel(layer), init).map(Mixer::Mamba),
            MixerConfig::DeltaNet(c) => DeltaNet::init(shape, c, layer, init).map(Mixer::DeltaNet),
            MixerConfig::Gla(c) => Gla::init(shape, c, init).map(Mixer::Gla),
            MixerConfig::Mamba2(c) => Mamba2::init(shape, c, layer, init).map(Mixer::Mamba2),
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
            Mixer::DeltaNet(x) => x.reference_params(m, t),
            Mixer::Gla(x) => x.reference_params(m, t),
            Mixer::Mamba2(x) => x.reference_params(m, t),
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
            Mixer::DeltaNet(m) => m.forward_visiting(x_bsd, layer, sites),
            Mixer::Gla(m) => m.forward_visiting(x_bsd, layer, sites),
            Mixer::Mamba2(m) => m.forward_visiting(x_bsd, layer, sites),
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
            Mixer::BaseConv(_)
            | Mixer::BasedAttention(_)
            | Mixer::Mamba(_)
            | Mixer::DeltaNet(_)
            | Mixer::Gla(_)
            | Mixer::Mamba2(_) => at_positions(self.forward(x_bsd, layer, &mut NoSites), at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;
    use burn::backend::Flex;

    #[test]
    fn output_at_chosen_positions_equals_the_full_output_there_for_every_mixer() {
        let device = Default::default();
        let at = [6, 0, 3];
        for kind in MixerKind::ALL {
            let cfg = ModelConfig {
                max_positions: 16,
                ..ModelConfig::fitted(kind, 26, 16, 2)
            };
            // Both layers: Based and BaseConv alternate two kinds of layer.
            for layer in 0..2 {
                let mut init = Init::<Flex>::new(7, 0.3, &device);
                let mixer = Mixer::init(&cfg.mixer, &cfg.shape(), layer, &mut init).unwrap();
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
