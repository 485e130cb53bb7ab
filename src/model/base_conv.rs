//! BaseConv: a gated convolution, `y = conv(u) ⊙ Linear(u) + u`.
//!
//! Reference: Arora et al., "Zoology: Measuring and improving recall in efficient language models"
//! (arXiv 2312.04927) and zoology `mixers/base_conv.py`, as used in arXiv 2505.15105
//! (`reference/paper-setup.md` §2).
//!
//! ```text
//! u ─┬─► causal depthwise conv (kernel k, bias) ─┐
//!    ├─► projection Linear(d, d)  ───────────────⊙──► (+ u) ─► y
//!    └────────────────────────────────────────────────┘
//! ```
//! The convolution is either short (kernel k, [`BaseConv`]) or an implicit long convolution
//! ([`BaseConvLong`]): a filter as long as the sequence, produced by a small MLP from positional
//! features, plus a skip of its input:
//!
//! ```text
//! h = Linear(16, d)(ReLU(Linear(3, 16)(z[..s])))        z: positional features, fixed
//! conv(u)[t] = Σ_{j≤t} h[t−j] ⊙ u[j] + u[t]
//! ```
//! The reference sets the kernel per layer: `base_conv` uses [3, long, 3, long]; Based uses 3.
//!
//! Shape letters: b batch, s sequence, d model width, k kernel size, f features (3), e hidden (16).

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::relu;
use burn::tensor::{Tensor, backend::Backend};

use serde::Serialize;

use super::init::Init;
use super::kind::{CONV_KEY, ConfigProblem, LongConv, MixerInfo, MixerKeys, MixerOptions};
use super::kind::{ConvKernel, MixerShape, ModelError, configured_conv, conv_at, one_per_layer};
use super::long_conv::{causal_long_conv, causal_long_conv_at, positional_features};
use super::ops::{at_positions, causal_depthwise_conv};
use super::param_names::ParamTable;
use super::runs::{linear, runs_of};

/// Width of the implicit filter's hidden layer (reference: 16).
pub const FILTER_HIDDEN: usize = 16;

/// BaseConv's defaults: no positions, an MLP.
pub const INFO: MixerInfo = MixerInfo {
    default_pos_emb: false,
    default_mlp: true,
    reference_module: "sequence_mixer",
    rms_norm: false,
    internal_sites: &[],
};

/// BaseConv's settings: `conv_kernel` per layer, a gated short convolution of 1 to 16 taps or
/// `"long"`, the implicit filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BaseConvConfig {
    /// The kernel per layer, or empty for the reference's ([`reference_kernel`]). A list by
    /// layer, as the spec's value is expanded, because node ids hash it so.
    #[serde(rename = "conv_kernel", skip_serializing_if = "Vec::is_empty")]
    pub conv: Vec<ConvKernel>,
}

/// The reference's `[3, long, 3, long, …]`.
pub fn reference_kernel(layer: usize) -> ConvKernel {
    if layer.is_multiple_of(2) {
        ConvKernel::Taps(3)
    } else {
        ConvKernel::Long(LongConv::Long)
    }
}

impl BaseConvConfig {
    /// Layer `layer`'s kernel.
    pub fn kernel(&self, layer: usize) -> ConvKernel {
        conv_at(&self.conv, layer, reference_kernel)
    }
}

impl MixerOptions for BaseConvConfig {
    fn from_keys(keys: &MixerKeys, layers: usize) -> Result<Self, Vec<ConfigProblem>> {
        keys.only("base_conv", &[CONV_KEY])?;
        Ok(BaseConvConfig {
            conv: configured_conv(keys, layers, reference_kernel),
        })
    }

    fn problems(&self, shape: &MixerShape) -> Vec<ConfigProblem> {
        gated_kernels("base_conv", &self.conv, shape.layers)
    }

    fn long_filters(&self, shape: &MixerShape) -> bool {
        (0..shape.layers).any(|l| matches!(self.kernel(l), ConvKernel::Long(_)))
    }

    /// Long layers keep their d × s × s Toeplitz products for backward.
    fn activations(&self, shape: &MixerShape, _batch: f64, seq: f64) -> f64 {
        long_filter_activations(self.long_filters(shape), shape, seq)
    }
}

/// The rules of a gated convolution's kernels, per layer (BaseConv's, Based's BaseConv layers):
/// one per layer, each at least one tap.
pub fn gated_kernels(name: &str, kernels: &[ConvKernel], layers: usize) -> Vec<ConfigProblem> {
    if kernels.is_empty() {
        return Vec::new();
    }
    if let Some(p) = one_per_layer(kernels, layers) {
        return vec![p];
    }
    kernels
        .iter()
        .find(|k| **k == ConvKernel::Taps(0))
        .map(|k| {
            ConfigProblem::new(
                CONV_KEY,
                format!("{name} gates a convolution: expected 1 to 16 taps or \"long\", found {k}"),
            )
        })
        .into_iter()
        .collect()
}

/// What long implicit filters keep for backward: d × s × s Toeplitz products (two).
pub fn long_filter_activations(long: bool, shape: &MixerShape, seq: f64) -> f64 {
    if long {
        2.0 * shape.d_model as f64 * seq * seq
    } else {
        0.0
    }
}

#[derive(Module, Debug)]
pub struct BaseConv<B: Backend> {
    pub projection: Linear<B>,
    /// Depthwise causal convolution weights `[d, k]` (PyTorch stores `[d, 1, k]`).
    pub conv_weight: Param<Tensor<B, 2>>,
    /// `[d]`
    pub conv_bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> BaseConv<B> {
    /// Projection: reference N(0, σ), bias 0. Convolution: PyTorch's `Conv1d` default,
    /// U(−1/√k, 1/√k) for weights and bias (fan-in of a depthwise kernel is k).
    /// Needs a kernel of at least one tap.
    pub fn init(shape: &MixerShape, kernel: usize, init: &mut Init<B>) -> Result<Self, ModelError> {
        if kernel == 0 {
            return Err(ModelError::Convolution {
                mixer: "base_conv",
                expected: "a convolution of 1 or more taps or \"long\"",
                found: kernel.to_string(),
            });
        }
        let d_model = shape.d_model;
        let bound = 1.0 / (kernel as f64).sqrt();
        Ok(BaseConv {
            projection: init.linear(d_model, d_model, true, init.std()),
            conv_weight: Param::from_tensor(init.uniform([d_model, kernel], bound)),
            conv_bias: Param::from_tensor(init.uniform([d_model], bound)),
        })
    }

    /// # Shapes
    /// - `u_bsd`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, u_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        let conv_bsd =
            causal_depthwise_conv(u_bsd.clone(), self.conv_weight.val(), self.conv_bias.val());
        conv_bsd * linear(&self.projection, u_bsd.clone()) + u_bsd
    }
}

/// BaseConv with the implicit long convolution.
#[derive(Module, Debug)]
pub struct BaseConvLong<B: Backend> {
    pub projection: Linear<B>,
    /// Positional features `[l_max, 3]`. A parameter of the reference (and of its parameter
    /// count) that is never trained: `require_grad` is off.
    pub pos_emb_z: Param<Tensor<B, 2>>,
    /// Linear(3, 16), then ReLU.
    pub mlp_0: Linear<B>,
    /// Linear(16, d).
    pub mlp_2: Linear<B>,
}

impl<B: Backend> BaseConvLong<B> {
    /// Reference init: every Linear N(0, σ) with zero bias (the reference re-initialises all
    /// Linears of a standard block, the filter MLP included).
    pub fn init(shape: &MixerShape, init: &mut Init<B>) -> Result<Self, ModelError> {
        let (d_model, l_max) = (shape.d_model, shape.max_positions);
        let std = init.std();
        Ok(BaseConvLong {
            projection: init.linear(d_model, d_model, true, std),
            pos_emb_z: Param::from_tensor(positional_features(l_max, init.device()))
                .set_require_grad(false),
            mlp_0: init.linear(3, FILTER_HIDDEN, true, std),
            mlp_2: init.linear(FILTER_HIDDEN, d_model, true, std),
        })
    }

    /// The filter taps for the first `s` lags, per run.
    ///
    /// # Shapes
    /// → `[R, s, d_model]`
    pub fn filter(&self, s: usize) -> Tensor<B, 3> {
        let runs = runs_of(self.mlp_0.weight.dims()[0], 3);
        let [rl, _] = self.pos_emb_z.dims();
        let z_rsf = self
            .pos_emb_z
            .val()
            .reshape([runs, rl / runs, 3])
            .slice([0..runs, 0..s, 0..3]);
        linear(&self.mlp_2, relu(linear(&self.mlp_0, z_rsf)))
    }

    /// # Shapes
    /// - `u_bsd`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, u_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        let [_, s, _] = u_bsd.dims();
        let conv_bsd = causal_long_conv(u_bsd.clone(), self.filter(s)) + u_bsd.clone();
        conv_bsd * linear(&self.projection, u_bsd.clone()) + u_bsd
    }

    /// [`Self::forward`] at one position per row, `at[r]` in row `r`.
    ///
    /// # Shapes
    /// - `u_bsd`: `[batch, seq, d_model]`, `at`: `batch` positions → `[batch, 1, d_model]`
    pub fn forward_at(&self, u_bsd: Tensor<B, 3>, at: &[usize]) -> Tensor<B, 3> {
        let [_, s, _] = u_bsd.dims();
        let u_b1d = at_positions(u_bsd.clone(), at);
        let conv_b1d = causal_long_conv_at(u_bsd, self.filter(s), at) + u_b1d.clone();
        conv_b1d * linear(&self.projection, u_b1d.clone()) + u_b1d
    }
}

impl<B: Backend> BaseConv<B> {
    /// Its parameters under the reference module's names below prefix `m`: `projection.*`, `conv.conv.{weight,bias}` (conv `[d,k]` → `[d,1,k]`).
    pub fn reference_params<'a>(&'a mut self, m: &str, t: &mut ParamTable<'a, B>) {
        t.linear(&format!("{m}.projection"), &mut self.projection);
        t.conv(
            &format!("{m}.conv.conv"),
            &mut self.conv_weight,
            &mut self.conv_bias,
        );
    }
}

impl<B: Backend> BaseConvLong<B> {
    /// Its parameters under the reference module's names below prefix `m`: `projection.*`, `conv.pos_emb.z` (`[L,3]` → `[1,L,3]`), `conv.mlp.{0,2}.*`.
    pub fn reference_params<'a>(&'a mut self, m: &str, t: &mut ParamTable<'a, B>) {
        t.linear(&format!("{m}.projection"), &mut self.projection);
        t.matrix_unit(format!("{m}.conv.pos_emb.z"), &mut self.pos_emb_z);
        t.linear(&format!("{m}.conv.mlp.0"), &mut self.mlp_0);
        t.linear(&format!("{m}.conv.mlp.2"), &mut self.mlp_2);
    }
}
