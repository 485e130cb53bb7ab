//! Causal softmax attention, one head.
//!
//! Reference: zoology `mixers/attention.py` as used by Arora et al. (arXiv 2505.15105), §2 of
//! `reference/paper-setup.md`.
//!
//! ```text
//! x ─► Wqkv (no bias) ─► q, k, v ─► softmax(q·kᵀ/√d + M)·v ─► out_proj (bias) ─► y
//! ```
//! **Quirk reproduced:** the causal mask `M` adds −10000 above the diagonal instead of −∞, so a
//! future position keeps a tiny (≈e^−10000 ≈ 0 in fp32) weight. It is numerically identical in
//! fp32 for scores of ordinary size.
//!
//! Shape letters: b batch, s/t sequence positions, d model width.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::softmax;
use burn::tensor::{Tensor, TensorData, backend::Backend};

use serde::Serialize;

use super::init::Init;
use super::kind::{ConfigProblem, MixerInfo, MixerKeys, MixerOptions, MixerShape, ModelError};
use super::ops::at_positions;
use super::param_names::ParamTable;
use super::runs::linear;
use super::sites::{NoSites, Site, Sites};

/// The reference's additive causal mask value.
pub const MASK_VALUE: f32 = -10_000.0;

/// Attention's defaults: learned positions (the paper's only mixer with them) and an MLP.
pub const INFO: MixerInfo = MixerInfo {
    default_pos_emb: true,
    default_mlp: true,
    reference_module: "sequence_mixer",
    rms_norm: false,
    internal_sites: &[Site::AttnPattern],
};

/// Attention's settings: none (one head, as the paper's), and no convolution to choose.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AttentionConfig {}

impl MixerOptions for AttentionConfig {
    fn from_keys(keys: &MixerKeys, _layers: usize) -> Result<Self, Vec<ConfigProblem>> {
        keys.only("attention", &[])?;
        Ok(AttentionConfig {})
    }

    fn problems(&self, _shape: &MixerShape) -> Vec<ConfigProblem> {
        Vec::new()
    }

    /// The s × s scores, three copies.
    fn activations(&self, _shape: &MixerShape, batch: f64, seq: f64) -> f64 {
        3.0 * batch * seq * seq
    }
}

#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    pub wqkv: Linear<B>,
    pub out_proj: Linear<B>,
}

impl<B: Backend> Attention<B> {
    /// Reference init (σ = 0.02): Wqkv N(0, σ); out_proj N(0, σ/√(2·layers)), bias 0.
    pub fn init(shape: &MixerShape, init: &mut Init<B>) -> Result<Self, ModelError> {
        let MixerShape {
            d_model, layers, ..
        } = *shape;
        Ok(Attention {
            wqkv: init.linear(d_model, 3 * d_model, false, init.std()),
            out_proj: init.linear(
                d_model,
                d_model,
                true,
                init.std() / (2.0 * layers as f64).sqrt(),
            ),
        })
    }

    /// # Shapes
    /// - `x_bsd`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, x_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        self.forward_visiting(x_bsd, 0, &mut NoSites)
    }

    /// [`Self::forward`], passing the attention pattern of `layer` through
    /// [`Site::AttnPattern`].
    pub fn forward_visiting(
        &self,
        x_bsd: Tensor<B, 3>,
        layer: usize,
        sites: &mut dyn Sites<B>,
    ) -> Tensor<B, 3> {
        let [_, s, d] = x_bsd.dims();
        let qkv_bs3d = linear(&self.wqkv, x_bsd);
        let mut parts = qkv_bs3d.chunk(3, 2);
        let v_bsd = parts.pop().expect("v");
        let k_bsd = parts.pop().expect("k");
        let q_bsd = parts.pop().expect("q");
        let scores_bst = q_bsd
            .matmul(k_bsd.swap_dims(1, 2))
            .mul_scalar(1.0 / (d as f64).sqrt());
        let scores_bst = scores_bst + causal_bias::<B>(s, &v_bsd.device()).unsqueeze_dim(0);
        let pattern_bst = sites.visit(layer, Site::AttnPattern, softmax(scores_bst, 2));
        let y_bsd = pattern_bst.matmul(v_bsd);
        linear(&self.out_proj, y_bsd)
    }

    /// The output at one position per row, `at[r]` in row `r`: one query against all keys
    /// instead of every query, which is what a readout from the last layer needs.
    ///
    /// # Shapes
    /// - `x_bsd`: `[batch, seq, d_model]`, `at`: `batch` positions → `[batch, 1, d_model]`
    pub fn forward_at(&self, x_bsd: Tensor<B, 3>, at: &[usize]) -> Tensor<B, 3> {
        let [b, s, d] = x_bsd.dims();
        let device = x_bsd.device();
        let qkv_bs3d = linear(&self.wqkv, x_bsd);
        let mut parts = qkv_bs3d.chunk(3, 2);
        let v_bsd = parts.pop().expect("v");
        let k_bsd = parts.pop().expect("k");
        let q_b1d = at_positions(parts.pop().expect("q"), at);
        let scores_b1t = q_b1d
            .matmul(k_bsd.swap_dims(1, 2))
            .mul_scalar(1.0 / (d as f64).sqrt());
        let bias: Vec<f32> = (0..b * s)
            .map(|i| if i % s > at[i / s] { MASK_VALUE } else { 0.0 })
            .collect();
        let bias_b1t = Tensor::from_data(TensorData::new(bias, [b, 1, s]), &device);
        let y_b1d = softmax(scores_b1t + bias_b1t, 2).matmul(v_bsd);
        linear(&self.out_proj, y_b1d)
    }
}

/// `[s, s]` additive mask: 0 on and below the diagonal, −10000 above it.
pub fn causal_bias<B: Backend>(s: usize, device: &B::Device) -> Tensor<B, 2> {
    let values: Vec<f32> = (0..s * s)
        .map(|i| if i % s > i / s { MASK_VALUE } else { 0.0 })
        .collect();
    Tensor::from_data(TensorData::new(values, [s, s]), device)
}

impl<B: Backend> Attention<B> {
    /// Its parameters under the reference module's names below prefix `m`: `sequence_mixer.Wqkv.weight`, `.out_proj.{weight,bias}` (Linear transposed).
    pub fn reference_params<'a>(&'a mut self, m: &str, t: &mut ParamTable<'a, B>) {
        t.linear(&format!("{m}.Wqkv"), &mut self.wqkv);
        t.linear(&format!("{m}.out_proj"), &mut self.out_proj);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(d_model: usize, layers: usize) -> MixerShape {
        MixerShape {
            d_model,
            layers,
            max_positions: 64,
        }
    }
    use burn::backend::Flex;

    type B = Flex;

    /// Plain-loop attention on `Vec`s, the oracle for the tensor version.
    fn attention_naive(
        x: &[Vec<f32>],
        wqkv: &[Vec<f32>],
        wo: &[Vec<f32>],
        bo: &[f32],
    ) -> Vec<Vec<f32>> {
        let d = x[0].len();
        let proj = |row: &[f32], w: &[Vec<f32>], off: usize| -> Vec<f32> {
            (0..d)
                .map(|j| (0..d).map(|i| row[i] * w[i][off + j]).sum())
                .collect()
        };
        let q: Vec<_> = x.iter().map(|r| proj(r, wqkv, 0)).collect();
        let k: Vec<_> = x.iter().map(|r| proj(r, wqkv, d)).collect();
        let v: Vec<_> = x.iter().map(|r| proj(r, wqkv, 2 * d)).collect();
        (0..x.len())
            .map(|t| {
                let scores: Vec<f32> = (0..=t)
                    .map(|s| {
                        q[t].iter().zip(&k[s]).map(|(a, b)| a * b).sum::<f32>() / (d as f32).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f32::MIN, f32::max);
                let exp: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
                let z: f32 = exp.iter().sum();
                let y: Vec<f32> = (0..d)
                    .map(|j| (0..=t).map(|s| exp[s] / z * v[s][j]).sum())
                    .collect();
                (0..d)
                    .map(|j| bo[j] + (0..d).map(|i| y[i] * wo[i][j]).sum::<f32>())
                    .collect()
            })
            .collect()
    }

    fn rows(t: Tensor<B, 2>) -> Vec<Vec<f32>> {
        let [_, c] = t.dims();
        let v: Vec<f32> = t.into_data().to_vec().unwrap();
        v.chunks(c).map(|r| r.to_vec()).collect()
    }

    #[test]
    fn forward_matches_naive_causal_softmax() {
        let device = Default::default();
        let mut init = Init::<B>::new(3, 0.02, &device);
        let mut attn = Attention::init(&shape(8, 2), &mut init).unwrap();
        // Non-zero bias, so the bias path is exercised too.
        attn.out_proj.bias = Some(burn::module::Param::from_tensor(init.normal([8], 0.5)));
        let x = init.normal([1, 6, 8], 1.0);
        let y = attn.forward(x.clone()).reshape([6, 8]);
        let expected = attention_naive(
            &rows(x.reshape([6, 8])),
            &rows(attn.wqkv.weight.val()),
            &rows(attn.out_proj.weight.val()),
            &attn
                .out_proj
                .bias
                .as_ref()
                .unwrap()
                .val()
                .into_data()
                .to_vec::<f32>()
                .unwrap(),
        );
        for (a, b) in rows(y).iter().flatten().zip(expected.iter().flatten()) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn output_at_chosen_positions_equals_the_full_output_there() {
        let device = Default::default();
        let mut init = Init::<B>::new(5, 0.3, &device);
        let attn = Attention::init(&shape(8, 2), &mut init).unwrap();
        let x = init.normal([3, 6, 8], 1.0);
        let at = [5, 0, 3];
        let full = rows(attn.forward(x.clone()).reshape([18, 8]));
        let picked = rows(attn.forward_at(x, &at).reshape([3, 8]));
        for (r, &t) in at.iter().enumerate() {
            for (a, b) in picked[r].iter().zip(&full[r * 6 + t]) {
                assert!((a - b).abs() < 1e-6, "row {r}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn output_at_t_ignores_later_positions() {
        let device = Default::default();
        let mut init = Init::<B>::new(4, 0.02, &device);
        let attn = Attention::init(&shape(8, 2), &mut init).unwrap();
        let x = init.normal([1, 5, 8], 1.0);
        let mut x2 = x.clone();
        x2 = x2.slice_assign([0..1, 4..5, 0..8], init.normal([1, 1, 8], 1.0));
        let a: Vec<f32> = attn
            .forward(x)
            .slice([0..1, 0..4, 0..8])
            .into_data()
            .to_vec()
            .unwrap();
        let b: Vec<f32> = attn
            .forward(x2)
            .slice([0..1, 0..4, 0..8])
            .into_data()
            .to_vec()
            .unwrap();
        assert_eq!(a, b);
    }
}
