//! Reference initialisation, drawn from a seeded ChaCha stream so that the same seed gives the
//! same weights on every backend (burn's backend RNGs differ between CPU and CUDA).

use burn::module::Param;
use burn::nn::{Embedding, Linear};
use burn::tensor::{Tensor, TensorData, backend::Backend};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Reference: linear weights and embeddings N(0, 0.02), biases 0.
pub const REFERENCE_INIT_STD: f64 = 0.02;

/// Draws parameters in a fixed order from one ChaCha stream.
pub struct Init<'d, B: Backend> {
    rng: ChaCha8Rng,
    device: &'d B::Device,
    std: f64,
}

impl<'d, B: Backend> Init<'d, B> {
    /// `std` is the base standard deviation of weights and embeddings (reference: 0.02).
    pub fn new(seed: u64, std: f64, device: &'d B::Device) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Streams 1 and 2 belong to data generation; weights get their own stream.
        rng.set_stream(7);
        Init { rng, device, std }
    }

    /// Base standard deviation of weights and embeddings.
    pub fn std(&self) -> f64 {
        self.std
    }

    pub fn device(&self) -> &'d B::Device {
        self.device
    }

    /// Standard normal samples by Box–Muller (rand 0.9 ships no Normal distribution).
    pub fn normal<const D: usize>(&mut self, shape: [usize; D], std: f64) -> Tensor<B, D> {
        let n: usize = shape.iter().product();
        let mut values = Vec::with_capacity(n);
        while values.len() < n {
            let u1: f64 = 1.0 - self.rng.random::<f64>(); // (0, 1]: ln is finite
            let u2: f64 = self.rng.random::<f64>();
            let r = (-2.0 * u1.ln()).sqrt();
            let theta = std::f64::consts::TAU * u2;
            values.push((std * r * theta.cos()) as f32);
            if values.len() < n {
                values.push((std * r * theta.sin()) as f32);
            }
        }
        Tensor::from_data(TensorData::new(values, shape), self.device)
    }

    /// Uniform samples in `[-bound, bound)`.
    pub fn uniform<const D: usize>(&mut self, shape: [usize; D], bound: f64) -> Tensor<B, D> {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| ((self.rng.random::<f64>() * 2.0 - 1.0) * bound) as f32)
            .collect();
        Tensor::from_data(TensorData::new(values, shape), self.device)
    }

    /// `Linear(d_in, d_out)` with N(0, std) weights and zero bias (burn stores `[d_in, d_out]`).
    pub fn linear(&mut self, d_in: usize, d_out: usize, bias: bool, std: f64) -> Linear<B> {
        Linear {
            weight: Param::from_tensor(self.normal([d_in, d_out], std)),
            bias: bias.then(|| Param::from_tensor(Tensor::zeros([d_out], self.device))),
        }
    }

    pub fn embedding(&mut self, rows: usize, d: usize, std: f64) -> Embedding<B> {
        Embedding {
            weight: Param::from_tensor(self.normal([rows, d], std)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn normal_samples_have_requested_moments_and_are_seeded() {
        let device = Default::default();
        let a: Vec<f32> = Init::<Flex>::new(1, REFERENCE_INIT_STD, &device)
            .normal([20_000], 0.02)
            .into_data()
            .to_vec()
            .unwrap();
        let b: Vec<f32> = Init::<Flex>::new(1, REFERENCE_INIT_STD, &device)
            .normal([20_000], 0.02)
            .into_data()
            .to_vec()
            .unwrap();
        assert_eq!(a, b);
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64;
        // Standard error of the mean is 0.02/sqrt(20000) ≈ 1.4e-4.
        assert!(mean.abs() < 7e-4, "mean {mean}");
        assert!((var.sqrt() - 0.02).abs() < 5e-4, "std {}", var.sqrt());
    }
}
