//! The two pre-norms of the zoo: LayerNorm (standard blocks) and RMSNorm (Mamba blocks).

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, RmsNorm, RmsNormConfig};
use burn::tensor::{Tensor, backend::Backend};

use super::runs::{runs_of, scale_channels, shift_channels};

/// Reference epsilon of both norms.
pub const NORM_EPS: f64 = 1e-5;

#[derive(Module, Debug)]
pub enum Norm<B: Backend> {
    /// `(x − mean)/√(var + ε)·γ + β`
    Layer(LayerNorm<B>),
    /// `x/√(mean(x²) + ε)·γ`
    Rms(RmsNorm<B>),
}

impl<B: Backend> Norm<B> {
    pub fn layer(d_model: usize, device: &B::Device) -> Self {
        Norm::Layer(
            LayerNormConfig::new(d_model)
                .with_epsilon(NORM_EPS)
                .init(device),
        )
    }

    pub fn rms(d_model: usize, device: &B::Device) -> Self {
        Norm::Rms(
            RmsNormConfig::new(d_model)
                .with_epsilon(NORM_EPS)
                .init(device),
        )
    }

    /// Each run's rows normalised with that run's γ (and β): `[R·b, s, d]` → `[R·b, s, d]`.
    pub fn forward(&self, x_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        match self {
            Norm::Layer(n) => layer_norm(n, x_bsd),
            Norm::Rms(n) => {
                let [_, _, d] = x_bsd.dims();
                if runs_of(n.gamma.dims()[0], d) == 1 && !B::ad_enabled(&x_bsd.device()) {
                    return n.forward(x_bsd);
                }
                // burn's RmsNorm, operation for operation, with γ per run.
                let rms = (x_bsd.clone().square().mean_dim(2) + NORM_EPS).sqrt();
                scale_channels(x_bsd / rms, n.gamma.val())
            }
        }
    }
}

/// RMSNorm over each head's `e` channels of `[R·b, s, h·e]` activations, one weight `[R·e]`
/// shared by the heads (flash-linear-attention's per-head output norms: DeltaNet's, GLA's).
pub fn per_head_rms_norm<B: Backend>(
    x_bsd: Tensor<B, 3>,
    h: usize,
    weight: Tensor<B, 1>,
) -> Tensor<B, 3> {
    let [b, s, d] = x_bsd.dims();
    let e = d / h;
    let x = x_bsd.reshape([b, s, h, e]);
    let rms = (x.clone().square().mean_dim(3) + NORM_EPS).sqrt();
    // Each batch row's positions and heads as rows, so that the norm's weight meets its run.
    scale_channels((x / rms).reshape([b, s * h, e]), weight).reshape([b, s, d])
}

/// LayerNorm with each run's γ and β. In inference one run is burn's own (the backend's fused
/// kernel where it has one). Training always runs burn's reference decomposition with γ and β
/// laid out per run, whatever the number of runs: the same operations on the same shapes per
/// run, so that a run trained in a group computes exactly what it computes alone.
///
/// # Shapes
/// - `x_bsd`: `[R·b, s, d]` → `[R·b, s, d]`
pub fn layer_norm<B: Backend>(norm: &LayerNorm<B>, x_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
    let [_, _, d] = x_bsd.dims();
    let runs = runs_of(norm.gamma.dims()[0], d);
    if runs == 1 && !B::ad_enabled(&x_bsd.device()) {
        return norm.forward(x_bsd);
    }
    let mean = x_bsd.clone().mean_dim(2);
    let centered = x_bsd - mean;
    let var = (centered.clone() * centered.clone()).mean_dim(2);
    let normalised = centered / (var + NORM_EPS).sqrt();
    let y = scale_channels(normalised, norm.gamma.val());
    match &norm.beta {
        Some(beta) => shift_channels(y, beta.val()),
        None => y,
    }
}
