//! Hyena of order 2: gating around one implicit long convolution.
//!
//! Reference: Poli et al., "Hyena hierarchy: towards larger convolutional language models"
//! (arXiv 2302.10866) and zoology `mixers/hyena.py`, as used in arXiv 2505.15105
//! (`reference/paper-setup.md` §2).
//!
//! ```text
//! u ─► in_proj (d → 3d) ─► causal depthwise conv (k = 3, bias) on all 3d ─► x1 | x2 | v
//! v ← v ⊙ x1
//! h = FFN(z[..s]) ⊙ exp(−t·|Δ|)      FFN: Linear(3,64)·Sin·Linear(64,64)·Sin·Linear(64,64)·Sin·Linear(64,d, no bias)
//! v ← Σ_{j≤t} h[t−j] ⊙ v[j]
//! out = out_proj(v ⊙ x2)
//! ```
//! The three Sin activations share one trainable frequency vector (init 1); the positional
//! features z are trainable; t = i/(l_max−1) and Δ = linspace(ln 10⁻²/1.5, ln 10⁻²/0.3, d) are
//! fixed, so they are recomputed rather than stored.
//!
//! The filter's `bias` exists (it is counted, initialised and exported under the reference's name)
//! but does not act: the paper builds Hyena with `bias=False`, and zoology's filter then adds
//! `v·(0·bias)`. Leaving the term out gives the same output and the same (zero) gradient for it.
//!
//! Shape letters: b batch, s sequence, d model width, c 3d channels, o filter order (64).

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Tensor, TensorData, backend::Backend};

use serde::Serialize;

use super::init::Init;
use super::kind::{ConfigProblem, MixerInfo, MixerKeys, MixerOptions, MixerShape, ModelError};
use super::long_conv::{
    causal_long_conv, causal_long_conv_at, normalised_time, positional_features,
};
use super::ops::{at_positions, causal_depthwise_conv};
use super::param_names::{Buffer, Layout, ParamTable, Slot};
use super::runs::{linear, runs_of};

/// Width of the implicit filter's FFN (reference: 64).
pub const FILTER_ORDER: usize = 64;
/// Taps of the short filter on the projections (reference: 3).
pub const SHORT_FILTER: usize = 3;

/// Hyena's defaults: no positions, an MLP.
pub const INFO: MixerInfo = MixerInfo {
    default_pos_emb: false,
    default_mlp: true,
    reference_module: "sequence_mixer",
    rms_norm: false,
    internal_sites: &[],
};

/// Hyena's settings: none; its convolutions are fixed (the short filter of [`SHORT_FILTER`]
/// taps and the implicit long filter).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HyenaConfig {}

impl MixerOptions for HyenaConfig {
    fn from_keys(keys: &MixerKeys, _layers: usize) -> Result<Self, Vec<ConfigProblem>> {
        keys.only("hyena", &[])?;
        Ok(HyenaConfig {})
    }

    fn problems(&self, _shape: &MixerShape) -> Vec<ConfigProblem> {
        Vec::new()
    }

    fn long_filters(&self, _shape: &MixerShape) -> bool {
        true
    }

    /// The d × s × s Toeplitz products of the long filter.
    fn activations(&self, shape: &MixerShape, _batch: f64, seq: f64) -> f64 {
        2.0 * shape.d_model as f64 * seq * seq
    }
}

#[derive(Module, Debug)]
pub struct Hyena<B: Backend> {
    pub in_proj: Linear<B>,
    /// `[3d, 3]`
    pub short_filter_weight: Param<Tensor<B, 2>>,
    /// `[3d]`
    pub short_filter_bias: Param<Tensor<B, 1>>,
    /// `[l_max, 3]`, trainable.
    pub pos_emb_z: Param<Tensor<B, 2>>,
    pub filter_0: Linear<B>,
    /// `[64]`, the Sin frequency shared by the filter's three activations.
    pub filter_freq: Param<Tensor<B, 1>>,
    pub filter_2: Linear<B>,
    pub filter_4: Linear<B>,
    /// Linear(64, d), no bias.
    pub filter_6: Linear<B>,
    /// `[d]`, the reference's `filter_fn.bias`: a parameter with no effect (see the module doc).
    pub filter_bias: Param<Tensor<B, 1>>,
    pub out_proj: Linear<B>,
}

impl<B: Backend> Hyena<B> {
    /// Reference init: every Linear N(0, σ) with zero bias, out_proj N(0, σ/√(2·layers)); the
    /// short filter PyTorch's Conv1d default U(±1/√3); the skip N(0, 1); frequency 1.
    pub fn init(shape: &MixerShape, init: &mut Init<B>) -> Result<Self, ModelError> {
        let (d_model, l_max, layers) = (shape.d_model, shape.max_positions, shape.layers);
        let std = init.std();
        let c = 3 * d_model;
        let bound = 1.0 / (SHORT_FILTER as f64).sqrt();
        let device = init.device();
        Ok(Hyena {
            in_proj: init.linear(d_model, c, true, std),
            short_filter_weight: Param::from_tensor(init.uniform([c, SHORT_FILTER], bound)),
            short_filter_bias: Param::from_tensor(init.uniform([c], bound)),
            pos_emb_z: Param::from_tensor(positional_features(l_max, device)),
            filter_0: init.linear(3, FILTER_ORDER, true, std),
            filter_freq: Param::from_tensor(Tensor::ones([FILTER_ORDER], device)),
            filter_2: init.linear(FILTER_ORDER, FILTER_ORDER, true, std),
            filter_4: init.linear(FILTER_ORDER, FILTER_ORDER, true, std),
            filter_6: init.linear(FILTER_ORDER, d_model, false, std),
            filter_bias: Param::from_tensor(init.normal([d_model], 1.0)),
            out_proj: init.linear(d_model, d_model, true, std / (2.0 * layers as f64).sqrt()),
        })
    }

    /// The modulated filter for the first `s` lags, per run.
    ///
    /// # Shapes
    /// → `[R, s, d_model]`
    pub fn filter(&self, s: usize) -> Tensor<B, 3> {
        let runs = runs_of(self.filter_freq.dims()[0], FILTER_ORDER);
        let l_max = self.pos_emb_z.dims()[0] / runs;
        let [_, d] = self.filter_6.weight.dims();
        let device = self.pos_emb_z.device();
        let freq_r1o = self.filter_freq.val().reshape([runs, 1, FILTER_ORDER]);
        let sin = |x: Tensor<B, 3>| (x * freq_r1o.clone()).sin();
        let z_rsf = self
            .pos_emb_z
            .val()
            .reshape([runs, l_max, 3])
            .slice([0..runs, 0..s, 0..3]);
        let h = sin(linear(&self.filter_0, z_rsf));
        let h = sin(linear(&self.filter_2, h));
        let h = sin(linear(&self.filter_4, h));
        let h_rsd = linear(&self.filter_6, h);
        let t_s1 = normalised_time::<B>(l_max, &device).slice([0..s, 0..1]);
        let modulation_sd = (t_s1 * decay_rates::<B>(d, &device).unsqueeze_dim(0)).exp();
        h_rsd * modulation_sd.unsqueeze_dim(0)
    }

    /// # Shapes
    /// - `u_bsd`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, u_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        let [_, s, _] = u_bsd.dims();
        let (v_bsd, x2_bsd) = self.gated_input(u_bsd);
        let v_bsd = causal_long_conv(v_bsd, self.filter(s));
        linear(&self.out_proj, v_bsd * x2_bsd)
    }

    /// [`Self::forward`] at one position per row, `at[r]` in row `r`: the long convolution and
    /// everything after it only there.
    ///
    /// # Shapes
    /// - `u_bsd`: `[batch, seq, d_model]`, `at`: `batch` positions → `[batch, 1, d_model]`
    pub fn forward_at(&self, u_bsd: Tensor<B, 3>, at: &[usize]) -> Tensor<B, 3> {
        let [_, s, _] = u_bsd.dims();
        let (v_bsd, x2_bsd) = self.gated_input(u_bsd);
        let v_b1d = causal_long_conv_at(v_bsd, self.filter(s), at);
        linear(&self.out_proj, v_b1d * at_positions(x2_bsd, at))
    }

    /// The long convolution's input `v ⊙ x1` and the output gate `x2`, all three from one
    /// projection through the short convolution.
    ///
    /// # Shapes
    /// - `u_bsd`: `[b, s, d]` → `[b, s, d]`, `[b, s, d]`
    fn gated_input(&self, u_bsd: Tensor<B, 3>) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let [b, s, d] = u_bsd.dims();
        let uc_bsc = causal_depthwise_conv(
            linear(&self.in_proj, u_bsd),
            self.short_filter_weight.val(),
            self.short_filter_bias.val(),
        );
        let x1_bsd = uc_bsc.clone().slice([0..b, 0..s, 0..d]);
        let x2_bsd = uc_bsc.clone().slice([0..b, 0..s, d..2 * d]);
        let v_bsd = uc_bsc.slice([0..b, 0..s, 2 * d..3 * d]) * x1_bsd;
        (v_bsd, x2_bsd)
    }
}

/// −|Δ_c| for c in 0..d, Δ = linspace(ln 10⁻²/1.5, ln 10⁻²/0.3, d): the exponential
/// modulation's decay rates, from slow to fast.
///
/// # Shapes
/// → `[d]`
fn decay_rates<B: Backend>(d: usize, device: &B::Device) -> Tensor<B, 1> {
    let (slow, fast) = ((1e-2f64).ln() / 1.5, (1e-2f64).ln() / 0.3);
    let values: Vec<f32> = (0..d)
        .map(|c| {
            let frac = if d > 1 {
                c as f64 / (d - 1) as f64
            } else {
                0.0
            };
            -(slow + frac * (fast - slow)).abs() as f32
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [d]), device)
}

impl<B: Backend> Hyena<B> {
    /// Its parameters under the reference module's names below prefix `m`: `in_proj.*`, `short_filter.*` (conv `[c,3]` → `[c,1,3]`), `filter_fn.{bias,pos_emb.z,implicit_filter.{0,1.freq,2,4,6}}`, `out_proj.*`.
    pub fn reference_params<'a>(&'a mut self, m: &str, t: &mut ParamTable<'a, B>) {
        t.linear(&format!("{m}.in_proj"), &mut self.in_proj);
        t.conv(
            &format!("{m}.short_filter"),
            &mut self.short_filter_weight,
            &mut self.short_filter_bias,
        );
        let f = format!("{m}.filter_fn");
        t.vector(format!("{f}.bias"), &mut self.filter_bias);
        t.matrix_unit(format!("{f}.pos_emb.z"), &mut self.pos_emb_z);
        t.linear(&format!("{f}.implicit_filter.0"), &mut self.filter_0);
        let [o] = self.filter_freq.dims();
        t.add(
            format!("{f}.implicit_filter.1.freq"),
            Slot::Vector(&mut self.filter_freq),
            Layout::Reshaped(vec![1, o]),
        );
        t.linear(&format!("{f}.implicit_filter.2"), &mut self.filter_2);
        t.linear(&format!("{f}.implicit_filter.4"), &mut self.filter_4);
        t.linear(&format!("{f}.implicit_filter.6"), &mut self.filter_6);
        t.linear(&format!("{m}.out_proj"), &mut self.out_proj);
    }
}

impl<B: Backend> Hyena<B> {
    /// Besides its parameters the reference's Hyena lists the Sin frequency again as
    /// `implicit_filter.3.freq` and `.5.freq` (one module used three times) and its buffers
    /// `pos_emb.t` and `modulation.deltas`.
    pub fn reference_buffers(&self, m: &str) -> Vec<Buffer> {
        let f = format!("{m}.filter_fn");
        let freq: Vec<f32> = self
            .filter_freq
            .val()
            .into_data()
            .convert::<f32>()
            .to_vec()
            .expect("float data");
        let mut out: Vec<Buffer> = [3, 5]
            .map(|i| Buffer {
                name: format!("{f}.implicit_filter.{i}.freq"),
                shape: vec![1, freq.len()],
                values: freq.clone(),
            })
            .into();
        let [l_max, _] = self.pos_emb_z.dims();
        let [_, d] = self.filter_6.weight.dims();
        out.push(Buffer {
            name: format!("{f}.pos_emb.t"),
            shape: vec![1, l_max, 1],
            values: torch_linspace(0.0, 1.0, l_max),
        });
        let target = 1e-2f64.ln();
        out.push(Buffer {
            name: format!("{f}.modulation.deltas"),
            shape: vec![1, 1, d],
            values: torch_linspace(target / 1.5, target / 0.3, d),
        });
        out
    }
}

/// `torch.linspace(start, end, steps)` in float32, as PyTorch's CPU kernel computes it: the
/// first half up from `start`, the second half down from `end`.
fn torch_linspace(start: f64, end: f64, steps: usize) -> Vec<f32> {
    let (start, end) = (start as f32, end as f32);
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f32;
    (0..steps)
        .map(|i| {
            if i < steps / 2 {
                start + step * i as f32
            } else {
                end - step * (steps - i - 1) as f32
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! A naive oracle for the implicit filter, from the reference's formulas in f64: the
    //! positional features through Linear–Sin–Linear–Sin–Linear–Sin–Linear, times the exponential
    //! modulation `exp(−|Δ_c|·t/(L−1))`, `Δ = linspace(ln 10⁻²/1.5, ln 10⁻²/0.3, d)`.

    use super::*;
    use burn::backend::Flex;

    /// PyTorch's float32 `linspace` values, printed by `torch.linspace(...).tolist()`.
    #[test]
    fn linspace_rounds_as_torch_does() {
        let target = 1e-2f64.ln();
        let d = torch_linspace(target / 1.5, target / 0.3, 8);
        // As bit patterns: the printed decimals carry more digits than an f32 holds.
        let torch: [f32; 8] = [
            0xc044_7cbd,
            0xc09a_6202,
            0xc0d2_85a6,
            0xc105_54a5,
            0xc121_6676,
            0xc13d_7848,
            0xc159_8a1a,
            0xc175_9bec,
        ]
        .map(f32::from_bits);
        assert_eq!(d, torch);
        assert_eq!(torch_linspace(0.0, 1.0, 3), [0.0, 0.5, 1.0]);
    }

    fn values<const D: usize>(t: Tensor<Flex, D>) -> Vec<f64> {
        t.into_data()
            .convert::<f64>()
            .to_vec()
            .expect("float tensor")
    }

    /// `x·W + b` for one row, burn's `[d_in, d_out]` weight layout.
    fn linear(x: &[f64], layer: &Linear<Flex>) -> Vec<f64> {
        let [d_in, d_out] = layer.weight.dims();
        let w = values(layer.weight.val());
        let b = layer
            .bias
            .as_ref()
            .map_or(vec![0.0; d_out], |b| values(b.val()));
        (0..d_out)
            .map(|o| b[o] + (0..d_in).map(|i| x[i] * w[i * d_out + o]).sum::<f64>())
            .collect()
    }

    #[test]
    fn implicit_filter_equals_the_formula() {
        let device = Default::default();
        let (d, l_max, s) = (5, 16, 11);
        let shape = MixerShape {
            d_model: d,
            layers: 2,
            max_positions: l_max,
        };
        // σ = 0.5 so that the Sin activations are far from linear, and random frequencies.
        let mut init = Init::<Flex>::new(3, 0.5, &device);
        let mut hyena = Hyena::init(&shape, &mut init).unwrap();
        hyena.filter_freq = Param::from_tensor(init.uniform([FILTER_ORDER], 2.0).add_scalar(1.0));
        let z = values(hyena.pos_emb_z.val());
        let freq = values(hyena.filter_freq.val());
        let sin =
            |x: Vec<f64>| -> Vec<f64> { x.iter().zip(&freq).map(|(v, f)| (v * f).sin()).collect() };
        let (slow, fast) = ((1e-2f64).ln() / 1.5, (1e-2f64).ln() / 0.3);
        let mut want = vec![0.0; s * d];
        for t in 0..s {
            let h = sin(linear(&z[3 * t..3 * t + 3], &hyena.filter_0));
            let h = sin(linear(&h, &hyena.filter_2));
            let h = sin(linear(&h, &hyena.filter_4));
            let h = linear(&h, &hyena.filter_6);
            for c in 0..d {
                let delta = slow + (fast - slow) * c as f64 / (d - 1) as f64;
                let time = t as f64 / (l_max - 1) as f64;
                want[t * d + c] = h[c] * (-delta.abs() * time).exp();
            }
        }
        let got = values(hyena.filter(s));
        let scale = want.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-5 * scale, "entry {i}: {g} vs {w}");
        }
    }
}
