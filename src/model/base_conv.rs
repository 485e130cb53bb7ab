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

use super::init::Init;
use super::lm::at_positions;
use super::long_conv::{causal_long_conv, causal_long_conv_at, positional_features};

/// Width of the implicit filter's hidden layer (reference: 16).
pub const FILTER_HIDDEN: usize = 16;

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
    pub fn init(d_model: usize, kernel: usize, init: &mut Init<B>) -> Self {
        let bound = 1.0 / (kernel as f64).sqrt();
        BaseConv {
            projection: init.linear(d_model, d_model, true, init.std()),
            conv_weight: Param::from_tensor(init.uniform([d_model, kernel], bound)),
            conv_bias: Param::from_tensor(init.uniform([d_model], bound)),
        }
    }

    /// # Shapes
    /// - `u_bsd`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, u_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        let conv_bsd =
            causal_depthwise_conv(u_bsd.clone(), self.conv_weight.val(), self.conv_bias.val());
        conv_bsd * self.projection.forward(u_bsd.clone()) + u_bsd
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
    pub fn init(d_model: usize, l_max: usize, init: &mut Init<B>) -> Self {
        let std = init.std();
        BaseConvLong {
            projection: init.linear(d_model, d_model, true, std),
            pos_emb_z: Param::from_tensor(positional_features(l_max, init.device()))
                .set_require_grad(false),
            mlp_0: init.linear(3, FILTER_HIDDEN, true, std),
            mlp_2: init.linear(FILTER_HIDDEN, d_model, true, std),
        }
    }

    /// The filter taps for the first `s` lags.
    ///
    /// # Shapes
    /// → `[s, d_model]`
    pub fn filter(&self, s: usize) -> Tensor<B, 2> {
        let z_sf = self.pos_emb_z.val().slice([0..s, 0..3]);
        self.mlp_2.forward(relu(self.mlp_0.forward(z_sf)))
    }

    /// # Shapes
    /// - `u_bsd`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, u_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        let [_, s, _] = u_bsd.dims();
        let conv_bsd = causal_long_conv(u_bsd.clone(), self.filter(s)) + u_bsd.clone();
        conv_bsd * self.projection.forward(u_bsd.clone()) + u_bsd
    }

    /// [`Self::forward`] at one position per row, `at[r]` in row `r`.
    ///
    /// # Shapes
    /// - `u_bsd`: `[batch, seq, d_model]`, `at`: `batch` positions → `[batch, 1, d_model]`
    pub fn forward_at(&self, u_bsd: Tensor<B, 3>, at: &[usize]) -> Tensor<B, 3> {
        let [_, s, _] = u_bsd.dims();
        let u_b1d = at_positions(u_bsd.clone(), at);
        let conv_b1d = causal_long_conv_at(u_bsd, self.filter(s), at) + u_b1d.clone();
        conv_b1d * self.projection.forward(u_b1d.clone()) + u_b1d
    }
}

/// `y[t] = Σ_j w[j]·u[t − (k−1) + j] + bias`, with `u` zero before the start: PyTorch's
/// `Conv1d(padding = k − 1)` truncated to the first `s` outputs (cross-correlation order).
///
/// # Shapes
/// - `u_bsd`: `[b, s, d]`, `w_dk`: `[d, k]`, `bias_d`: `[d]` → `[b, s, d]`
pub fn causal_depthwise_conv<B: Backend>(
    u_bsd: Tensor<B, 3>,
    w_dk: Tensor<B, 2>,
    bias_d: Tensor<B, 1>,
) -> Tensor<B, 3> {
    let [b, s, d] = u_bsd.dims();
    let [_, k] = w_dk.dims();
    let padded = if k > 1 {
        Tensor::cat(
            vec![Tensor::zeros([b, k - 1, d], &u_bsd.device()), u_bsd],
            1,
        )
    } else {
        u_bsd
    };
    let mut y_bsd = bias_d.reshape([1, 1, d]).expand([b, s, d]);
    for j in 0..k {
        let tap_11d = w_dk.clone().slice([0..d, j..j + 1]).reshape([1, 1, d]);
        y_bsd = y_bsd + padded.clone().slice([0..b, j..j + s, 0..d]) * tap_11d;
    }
    y_bsd
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    #[test]
    fn causal_conv_matches_the_formula() {
        let device = Default::default();
        // b = 1, s = 4, d = 2; channel 0 is 1,2,3,4 and channel 1 is 10,20,30,40.
        let u = Tensor::<Flex, 3>::from_data(
            TensorData::new(vec![1., 10., 2., 20., 3., 30., 4., 40.], [1, 4, 2]),
            &device,
        );
        let w = Tensor::<Flex, 2>::from_data(
            TensorData::new(vec![1., 2., 3., 0.5, 0., -1.], [2, 3]),
            &device,
        );
        let bias = Tensor::<Flex, 1>::from_data(TensorData::new(vec![0.1, 0.2], [2]), &device);
        let y: Vec<f32> = causal_depthwise_conv(u, w, bias)
            .into_data()
            .to_vec()
            .unwrap();
        // Channel 0: y[t] = 1·u[t−2] + 2·u[t−1] + 3·u[t] + 0.1.
        let c0 = [3.1, 2. + 6. + 0.1, 1. + 4. + 9. + 0.1, 2. + 6. + 12. + 0.1];
        // Channel 1: y[t] = 0.5·u[t−2] + 0·u[t−1] − 1·u[t] + 0.2.
        let c1 = [-10. + 0.2, -20. + 0.2, 5. - 30. + 0.2, 10. - 40. + 0.2];
        for t in 0..4 {
            assert!(
                (y[2 * t] - c0[t]).abs() < 1e-5,
                "t {t}: {} vs {}",
                y[2 * t],
                c0[t]
            );
            assert!(
                (y[2 * t + 1] - c1[t]).abs() < 1e-5,
                "t {t}: {} vs {}",
                y[2 * t + 1],
                c1[t]
            );
        }
    }
}
