//! Based linear attention with a second-order Taylor feature map (the odd layers of `based`).
//!
//! Reference: Arora et al., "Simple linear attention language models balance the recall-throughput
//! tradeoff" (arXiv 2402.18668) and zoology `mixers/based.py`, as used in arXiv 2505.15105
//! (`reference/paper-setup.md` §2).
//!
//! ```text
//! u ─► proj_q, proj_k (d→8, no bias) ─► φ ─► A = φ(q)·φ(k)ᵀ, lower-triangular
//! u ─► proj_v (d→d, no bias) ───────────────► y = (A·v) / (A·1 + 1e−12) ─► proj_o (no bias)
//! φ(x) = [1, x/8^¼, vec(x xᵀ)/(√2·√8)]      (1 + 8 + 64 = 73 features)
//! ```
//! The denominator `A·1` is `φ(q_t)·Σ_{s≤t} φ(k_s)`, the normaliser of the recurrent form.
//!
//! Shape letters: b batch, s/t sequence, d model width, f feature dim (8), e expanded (73).

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Tensor, TensorData, backend::Backend};

use serde::Serialize;

use super::base_conv::{gated_kernels, long_filter_activations};
use super::init::Init;
use super::kind::{CONV_KEY, ConfigProblem, ConvKernel, MixerInfo, MixerKeys, MixerOptions};
use super::kind::{MixerShape, ModelError, configured_conv, conv_at};
use super::param_names::ParamTable;
use super::runs::linear;

/// Dimension of q and k before the feature map (reference: 8).
pub const FEATURE_DIM: usize = 8;
/// Added to the normaliser (reference: 1e-12).
pub const EPS: f32 = 1e-12;

/// Based's defaults: no positions, an MLP; a hybrid by layer (BaseConv on even layers, Taylor
/// linear attention on odd ones), nested one level deeper in the reference's state dict.
pub const INFO: MixerInfo = MixerInfo {
    default_pos_emb: false,
    default_mlp: true,
    reference_module: "sequence_mixer.mixer",
    rms_norm: false,
    internal_sites: &[],
};

/// Based's settings: `conv_kernel` configures its BaseConv layers, one kernel for all of them
/// (the reference's short kernel of 3, or `"long"` in its ablation).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BasedConfig {
    /// The kernel per layer (odd layers ignore theirs), or empty for the reference's 3. A list
    /// by layer, as the spec's value is expanded, because node ids hash it so.
    #[serde(rename = "conv_kernel", skip_serializing_if = "Vec::is_empty")]
    pub conv: Vec<ConvKernel>,
}

fn reference_kernel(_layer: usize) -> ConvKernel {
    ConvKernel::Taps(3)
}

impl BasedConfig {
    /// The kernel of layer `layer` (used on even layers).
    pub fn kernel(&self, layer: usize) -> ConvKernel {
        conv_at(&self.conv, layer, reference_kernel)
    }
}

impl MixerOptions for BasedConfig {
    fn from_keys(keys: &MixerKeys, layers: usize) -> Result<Self, Vec<ConfigProblem>> {
        keys.only("based", &[CONV_KEY])?;
        Ok(BasedConfig {
            conv: configured_conv(keys, layers, reference_kernel),
        })
    }

    fn problems(&self, shape: &MixerShape) -> Vec<ConfigProblem> {
        let mut out = gated_kernels("based", &self.conv, shape.layers);
        let kernels = &self.conv;
        if kernels.len() == shape.layers
            && !kernels.is_empty()
            && kernels.iter().step_by(2).any(|k| *k != kernels[0])
        {
            out.push(ConfigProblem::new(
                CONV_KEY,
                "based takes one kernel for its BaseConv layers, found a list that varies",
            ));
        }
        out
    }

    fn long_filters(&self, shape: &MixerShape) -> bool {
        (0..shape.layers).any(|l| matches!(self.kernel(l), ConvKernel::Long(_)))
    }

    /// Long BaseConv layers keep their d × s × s Toeplitz products for backward.
    fn activations(&self, shape: &MixerShape, _batch: f64, seq: f64) -> f64 {
        long_filter_activations(self.long_filters(shape), shape, seq)
    }
}

#[derive(Module, Debug)]
pub struct BasedAttention<B: Backend> {
    pub proj_q: Linear<B>,
    pub proj_k: Linear<B>,
    pub proj_v: Linear<B>,
    pub proj_o: Linear<B>,
}

impl<B: Backend> BasedAttention<B> {
    /// Reference init (σ = 0.02): every projection N(0, σ), no biases. The reference rescales
    /// only parameters named `out_proj`/`fc2` by 1/√(2·layers); Based's output projection is
    /// named `proj_o`, so it keeps σ.
    pub fn init(shape: &MixerShape, init: &mut Init<B>) -> Result<Self, ModelError> {
        let d_model = shape.d_model;
        let std = init.std();
        Ok(BasedAttention {
            proj_q: init.linear(d_model, FEATURE_DIM, false, std),
            proj_k: init.linear(d_model, FEATURE_DIM, false, std),
            proj_v: init.linear(d_model, d_model, false, std),
            proj_o: init.linear(d_model, d_model, false, std),
        })
    }

    /// # Shapes
    /// - `u_bsd`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, u_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        let [_, s, _] = u_bsd.dims();
        let q_bse = taylor_features(linear(&self.proj_q, u_bsd.clone()));
        let k_bse = taylor_features(linear(&self.proj_k, u_bsd.clone()));
        let v_bsd = linear(&self.proj_v, u_bsd);
        let causal_st = lower_triangular_ones::<B>(s, &q_bse.device()).unsqueeze_dim(0);
        let a_bst = q_bse.matmul(k_bse.swap_dims(1, 2)) * causal_st;
        let denom_bs1 = a_bst.clone().sum_dim(2).add_scalar(EPS);
        linear(&self.proj_o, a_bst.matmul(v_bsd) / denom_bs1)
    }
}

/// φ(x) = [1, x/f^¼, vec(x xᵀ)/(√2·√f)].
///
/// # Shapes
/// - `x_bsf`: `[b, s, f]` → `[b, s, 1 + f + f²]`
pub fn taylor_features<B: Backend>(x_bsf: Tensor<B, 3>) -> Tensor<B, 3> {
    let [b, s, f] = x_bsf.dims();
    let ones = Tensor::ones([b, s, 1], &x_bsf.device());
    let linear = x_bsf.clone().div_scalar((f as f64).sqrt().sqrt());
    let outer_bsff = x_bsf.clone().unsqueeze_dim::<4>(3) * x_bsf.unsqueeze_dim::<4>(2);
    let quadratic = outer_bsff
        .reshape([b, s, f * f])
        .div_scalar(2f64.sqrt() * (f as f64).sqrt());
    Tensor::cat(vec![ones, linear, quadratic], 2)
}

/// `[s, s]` with ones on and below the diagonal.
fn lower_triangular_ones<B: Backend>(s: usize, device: &B::Device) -> Tensor<B, 2> {
    let values: Vec<f32> = (0..s * s)
        .map(|i| if i % s <= i / s { 1.0 } else { 0.0 })
        .collect();
    Tensor::from_data(TensorData::new(values, [s, s]), device)
}

impl<B: Backend> BasedAttention<B> {
    /// Its parameters under the reference module's names below prefix `m`: `proj_{q,k,v,o}.weight` (under the hybrid's `sequence_mixer.mixer.`).
    pub fn reference_params<'a>(&'a mut self, m: &str, t: &mut ParamTable<'a, B>) {
        t.linear(&format!("{m}.proj_q"), &mut self.proj_q);
        t.linear(&format!("{m}.proj_k"), &mut self.proj_k);
        t.linear(&format!("{m}.proj_v"), &mut self.proj_v);
        t.linear(&format!("{m}.proj_o"), &mut self.proj_o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    type B = Flex;

    fn rows(t: Tensor<B, 2>) -> Vec<Vec<f32>> {
        let [_, c] = t.dims();
        let v: Vec<f32> = t.into_data().to_vec().unwrap();
        v.chunks(c).map(|r| r.to_vec()).collect()
    }

    fn matvec(x: &[f32], w: &[Vec<f32>]) -> Vec<f32> {
        (0..w[0].len())
            .map(|j| x.iter().zip(w).map(|(a, row)| a * row[j]).sum())
            .collect()
    }

    fn phi(x: &[f32]) -> Vec<f32> {
        let f = x.len() as f32;
        let mut out = vec![1.0];
        out.extend(x.iter().map(|v| v / f.sqrt().sqrt()));
        for a in x {
            for b in x {
                out.push(a * b / (2f32.sqrt() * f.sqrt()));
            }
        }
        out
    }

    /// The recurrent form: running sums of φ(k)vᵀ and φ(k), read with φ(q).
    #[test]
    fn parallel_form_matches_the_recurrent_oracle() {
        let device = Default::default();
        let mut init = Init::<B>::new(5, 0.3, &device);
        let m = BasedAttention::init(
            &MixerShape {
                d_model: 6,
                layers: 2,
                max_positions: 64,
            },
            &mut init,
        )
        .unwrap();
        let x = init.normal([1, 7, 6], 1.0);
        let y = rows(m.forward(x.clone()).reshape([7, 6]));
        let (wq, wk, wv, wo) = (
            rows(m.proj_q.weight.val()),
            rows(m.proj_k.weight.val()),
            rows(m.proj_v.weight.val()),
            rows(m.proj_o.weight.val()),
        );
        let mut state = vec![vec![0f32; 6]; 73];
        let mut norm = vec![0f32; 73];
        for (t, xt) in rows(x.reshape([7, 6])).iter().enumerate() {
            let (q, k, v) = (
                phi(&matvec(xt, &wq)),
                phi(&matvec(xt, &wk)),
                matvec(xt, &wv),
            );
            for e in 0..73 {
                norm[e] += k[e];
                for j in 0..6 {
                    state[e][j] += k[e] * v[j];
                }
            }
            let z: f32 = q.iter().zip(&norm).map(|(a, b)| a * b).sum::<f32>() + EPS;
            let num: Vec<f32> = (0..6)
                .map(|j| (0..73).map(|e| q[e] * state[e][j]).sum())
                .collect();
            let expected = matvec(&num.iter().map(|n| n / z).collect::<Vec<_>>(), &wo);
            for (a, b) in y[t].iter().zip(&expected) {
                assert!((a - b).abs() < 1e-4 * b.abs().max(1.0), "t {t}: {a} vs {b}");
            }
        }
    }
}
