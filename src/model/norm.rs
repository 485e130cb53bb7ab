//! The two pre-norms of the zoo: LayerNorm (standard blocks) and RMSNorm (Mamba blocks).

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, RmsNorm, RmsNormConfig};
use burn::tensor::{Tensor, backend::Backend};

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

    pub fn forward(&self, x_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        match self {
            Norm::Layer(n) => n.forward(x_bsd),
            Norm::Rms(n) => n.forward(x_bsd),
        }
    }
}
