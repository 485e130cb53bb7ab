//! Long causal convolutions, shared by BaseConv's implicit filter, Hyena and H3:
//! `y[t, c] = Σ_{s≤t} h[t−s, c]·u[s, c]` with a filter as long as the sequence.
//!
//! The reference computes these with an FFT of length 2L. burn 0.21's `rfft` has no autodiff
//! (its backward is `todo!()`), so mechlab multiplies by the causal Toeplitz matrix of each
//! channel instead: exact for every length, O(L²·d) per sequence, which at the paper's lengths
//! (37 tokens for AR-32, ATR mostly under 100) costs less than one MLP.
//!
//! Shape letters: b batch, s/t sequence, d channels, f positional features (3).

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

/// `y[b, t, c] = Σ_{j≤t} h[t−j, c]·u[b, j, c]`, each run's rows with its own filter
/// ([`super::runs`]).
///
/// # Shapes
/// - `u_bsd`: `[R·b, s, d]`, `h_rsd`: `[R, s, d]` (filter taps by lag) → `[R·b, s, d]`
pub fn causal_long_conv<B: Backend>(u_bsd: Tensor<B, 3>, h_rsd: Tensor<B, 3>) -> Tensor<B, 3> {
    let [rb, s, d] = u_bsd.dims();
    let [runs, _, _] = h_rsd.dims();
    let b = rb / runs;
    let device = u_bsd.device();
    // Row s of the padded filter is zero: entries above the diagonal gather it.
    let h_pad = Tensor::cat(vec![h_rsd, Tensor::zeros([runs, 1, d], &device)], 1);
    let toeplitz_rdts = h_pad
        .select(1, toeplitz_lags::<B>(s, &device))
        .reshape([runs, s, s, d])
        .permute([0, 3, 1, 2]);
    let u_rdsb = u_bsd.reshape([runs, b, s, d]).permute([0, 3, 2, 1]);
    toeplitz_rdts
        .matmul(u_rdsb)
        .permute([0, 3, 2, 1])
        .reshape([rb, s, d])
}

/// Lag `t − j` of entry `(t, j)` of an `s × s` causal Toeplitz matrix, `s` above the diagonal.
fn toeplitz_lags<B: Backend>(s: usize, device: &B::Device) -> Tensor<B, 1, Int> {
    let lags: Vec<i64> = (0..s * s)
        .map(|i| {
            let (t, j) = (i / s, i % s);
            if j <= t { (t - j) as i64 } else { s as i64 }
        })
        .collect();
    Tensor::from_data(TensorData::new(lags, [s * s]), device)
}

/// [`causal_long_conv`] at one position per row, `at[r]` in row `r`: one Toeplitz row each,
/// O(s·d) per row instead of O(s²·d). One run (interventions read single models).
///
/// # Shapes
/// - `u_bsd`: `[b, s, d]`, `h_rsd`: `[1, s, d]`, `at`: `b` positions → `[b, 1, d]`
pub fn causal_long_conv_at<B: Backend>(
    u_bsd: Tensor<B, 3>,
    h_rsd: Tensor<B, 3>,
    at: &[usize],
) -> Tensor<B, 3> {
    let [b, s, d] = u_bsd.dims();
    let device = u_bsd.device();
    let h_sd = h_rsd.reshape([s, d]);
    let h_pad = Tensor::cat(vec![h_sd, Tensor::zeros([1, d], &device)], 0);
    let lags: Vec<i64> = (0..b * s)
        .map(|i| {
            let (t, j) = (at[i / s], i % s);
            if j <= t { (t - j) as i64 } else { s as i64 }
        })
        .collect();
    let lags = Tensor::<B, 1, Int>::from_data(TensorData::new(lags, [b * s]), &device);
    (h_pad.select(0, lags).reshape([b, s, d]) * u_bsd).sum_dim(1)
}

/// The implicit filters' positional features for `l_max` positions:
/// `z[i] = [i/(l_max−1), cos(2π·10⁻⁴·i/l_max), −sin(2π·10⁻⁴·i/l_max)]` (one complex band at
/// frequency 10⁻⁴, as the reference's `PositionalEmbedding` with 3 features).
///
/// # Shapes
/// → `[l_max, 3]`
pub fn positional_features<B: Backend>(l_max: usize, device: &B::Device) -> Tensor<B, 2> {
    let denom = (l_max.max(2) - 1) as f64;
    let values: Vec<f32> = (0..l_max)
        .flat_map(|i| {
            let w = std::f64::consts::TAU * 1e-4 * i as f64 / l_max as f64;
            [(i as f64 / denom) as f32, w.cos() as f32, -w.sin() as f32]
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [l_max, 3]), device)
}

/// `t[i] = i/(l_max−1)`, the normalised time of Hyena's exponential modulation.
///
/// # Shapes
/// → `[l_max, 1]`
pub fn normalised_time<B: Backend>(l_max: usize, device: &B::Device) -> Tensor<B, 2> {
    let denom = (l_max.max(2) - 1) as f64;
    let values: Vec<f32> = (0..l_max).map(|i| (i as f64 / denom) as f32).collect();
    Tensor::from_data(TensorData::new(values, [l_max, 1]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn toeplitz_product_is_the_causal_convolution() {
        let device = Default::default();
        let (b, s, d) = (2, 5, 3);
        let u: Vec<f32> = (0..b * s * d)
            .map(|i| ((i * 37 % 11) as f32) - 5.0)
            .collect();
        let h: Vec<f32> = (0..s * d)
            .map(|i| ((i * 13 % 7) as f32) * 0.5 - 1.0)
            .collect();
        let y: Vec<f32> = causal_long_conv(
            Tensor::<Flex, 3>::from_data(TensorData::new(u.clone(), [b, s, d]), &device),
            Tensor::<Flex, 3>::from_data(TensorData::new(h.clone(), [1, s, d]), &device),
        )
        .into_data()
        .to_vec()
        .unwrap();
        for bi in 0..b {
            for t in 0..s {
                for c in 0..d {
                    let want: f32 = (0..=t)
                        .map(|j| h[(t - j) * d + c] * u[(bi * s + j) * d + c])
                        .sum();
                    let got = y[(bi * s + t) * d + c];
                    assert!(
                        (got - want).abs() < 1e-5,
                        "b{bi} t{t} c{c}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn positional_features_follow_the_formula() {
        let z: Vec<f32> = positional_features::<Flex>(1024, &Default::default())
            .into_data()
            .to_vec()
            .unwrap();
        assert_eq!(&z[..3], &[0.0, 1.0, -0.0]);
        let last = &z[3 * 1023..];
        assert!((last[0] - 1.0).abs() < 1e-7);
        let w = std::f64::consts::TAU * 1e-4 * 1023.0 / 1024.0;
        assert!((last[1] as f64 - w.cos()).abs() < 1e-7);
        assert!((last[2] as f64 + w.sin()).abs() < 1e-7);
    }
}
