//! DeltaNet: linear attention whose state is corrected by the delta rule, in every layer.
//!
//! Reference: Yang et al., "Parallelizing linear transformers with the delta rule over sequence
//! length" (arXiv 2406.06484); flash-linear-attention's `fla.layers.DeltaNet` (commit d30c0833,
//! the version the paper's zoology fork copies as `zoology/mixers/delta_net.py`) with the
//! settings of zoology's `add_delta_net`: 2 heads, short convolutions of 4, β, no output gate.
//! (The reference's code has no DeltaNet config; `reference/paper-setup.md` §2.)
//!
//! ```text
//! u ─► q_proj, k_proj, v_proj (d→d, no bias) ─► causal depthwise conv (k = 4, no bias) ─► SiLU
//!      heads: q[t, h, i] = q[t, h·dh + i];  q, k ← x/√(Σx² + 1e−6) per head;  q ← q/√dh
//! u ─► b_proj (d→H, no bias) ─► β = sigmoid
//! per head, S₋₁ = 0 [dh, dh]:  u_t = β_t·(v_t − S_{t−1}ᵀk_t),  S_t = S_{t−1} + k_t u_tᵀ,  o_t = S_tᵀq_t
//! o ─► RMSNorm over each head's dh values (one weight [dh] shared by the heads, ε 1e−5)
//!   ─► o_proj (d→d, no bias)
//! ```
//! The block around it is the paper's standard block (LayerNorms, MLP), no positions (zoology's
//! `add_delta_net` sets no position embeddings).
//!
//! Shape letters: b batch, s sequence, d model width, h heads, e head width (dh), n = b·h.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Tensor, backend::Backend};

use serde::Serialize;

use super::delta_rule::{CHUNK, delta_rule};
use super::delta_rule_cpu::try_resumed;
use super::init::Init;
use super::kind::{CONV_KEY, ConfigProblem, ConvKernel, HEADS_KEY, MixerInfo, MixerKeys};
use super::kind::{MixerOptions, MixerShape, ModelError, configured_conv, conv_at, one_per_layer};
use super::norm::per_head_rms_norm;
use super::ops::causal_depthwise_conv_silu;
use super::param_names::ParamTable;
use super::runs::linear;
use super::sites::{NoSites, Sites};

/// Heads (zoology's `add_delta_net`: 2).
pub const REFERENCE_HEADS: usize = 2;
/// Taps of the short convolutions (reference: 4).
pub const REFERENCE_CONV: usize = 4;
/// Inside the square root of the q/k normalisation (flash-linear-attention's `l2norm`: 1e-6).
pub const L2_EPS: f64 = 1e-6;

/// DeltaNet's defaults: no positions, an MLP, LayerNorm blocks.
pub const INFO: MixerInfo = MixerInfo {
    default_pos_emb: false,
    default_mlp: true,
    reference_module: "sequence_mixer",
    rms_norm: false,
    internal_sites: &[],
};

/// DeltaNet's settings: `conv_kernel` is the width of its three short convolutions per layer
/// (1–16; the reference's 4), `heads` the number of heads (the reference's 2).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeltaNetConfig {
    /// Taps per layer, or empty for the reference's 4 everywhere.
    #[serde(rename = "conv_kernel", skip_serializing_if = "Vec::is_empty")]
    pub conv: Vec<ConvKernel>,
    /// Heads, or `None` for the reference's 2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heads: Option<usize>,
}

fn reference_kernel(_layer: usize) -> ConvKernel {
    ConvKernel::Taps(REFERENCE_CONV)
}

impl DeltaNetConfig {
    /// Layer `layer`'s convolution.
    pub fn kernel(&self, layer: usize) -> ConvKernel {
        conv_at(&self.conv, layer, reference_kernel)
    }

    pub fn heads(&self) -> usize {
        self.heads.unwrap_or(REFERENCE_HEADS)
    }
}

impl MixerOptions for DeltaNetConfig {
    fn from_keys(keys: &MixerKeys, layers: usize) -> Result<Self, Vec<ConfigProblem>> {
        keys.only("delta_net", &[CONV_KEY, HEADS_KEY])?;
        Ok(DeltaNetConfig {
            conv: configured_conv(keys, layers, reference_kernel),
            heads: keys.heads.filter(|&h| h != REFERENCE_HEADS),
        })
    }

    fn problems(&self, shape: &MixerShape) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let h = self.heads();
        if h == 0 || !shape.d_model.is_multiple_of(h) {
            out.push(
                ConfigProblem::new(
                    HEADS_KEY,
                    format!(
                        "delta_net splits d_model {} into {h} heads: expected a divisor of it",
                        shape.d_model
                    ),
                )
                .help("the reference uses 2 heads"),
            );
        }
        if !self.conv.is_empty() {
            if let Some(p) = one_per_layer(&self.conv, shape.layers) {
                out.push(p);
            } else if self
                .conv
                .iter()
                .any(|k| !matches!(k, ConvKernel::Taps(1..)))
            {
                out.push(
                    ConfigProblem::new(
                        CONV_KEY,
                        "delta_net's short convolutions take 1 to 16 taps, found 0 or \"long\"",
                    )
                    .help(
                        "flash-linear-attention calls the short convolution crucial and warns \
                         against turning it off; the reference's is 4",
                    ),
                );
            }
        }
        out
    }

    /// The fused CPU rule keeps every state (`dh` f64 values, two floats each, per channel and
    /// position); the chunked form keeps about two `CHUNK`-wide score rows per head and position.
    fn activations(&self, shape: &MixerShape, batch: f64, seq: f64) -> f64 {
        let h = self.heads().max(1) as f64;
        let d = shape.d_model as f64;
        batch * seq * (2.0 * d * d / h + 2.0 * h * CHUNK as f64)
    }
}

#[derive(Module, Debug)]
pub struct DeltaNet<B: Backend> {
    pub q_proj: Linear<B>,
    pub k_proj: Linear<B>,
    pub v_proj: Linear<B>,
    /// `[d, h]`: β per head.
    pub b_proj: Linear<B>,
    /// Depthwise causal convolutions `[d, k]`, no bias.
    pub q_conv1d: Param<Tensor<B, 2>>,
    pub k_conv1d: Param<Tensor<B, 2>>,
    pub v_conv1d: Param<Tensor<B, 2>>,
    /// `[dh]`, the output RMSNorm's weight, shared by the heads.
    pub o_norm: Param<Tensor<B, 1>>,
    pub o_proj: Linear<B>,
}

impl<B: Backend> DeltaNet<B> {
    /// zoology's init: every Linear N(0, σ) (σ = 0.02; `o_proj` is not named `out_proj`, so
    /// it keeps σ), the short convolutions PyTorch's Conv1d default U(±1/√k), the norm's
    /// weight 1.
    pub fn init(
        shape: &MixerShape,
        config: &DeltaNetConfig,
        layer: usize,
        init: &mut Init<B>,
    ) -> Result<Self, ModelError> {
        let d = shape.d_model;
        let h = config.heads();
        let ConvKernel::Taps(k @ 1..) = config.kernel(layer) else {
            return Err(ModelError::Convolution {
                mixer: "delta_net",
                expected: "1 to 16 taps",
                found: config.kernel(layer).to_string(),
            });
        };
        if h == 0 || !d.is_multiple_of(h) {
            return Err(ModelError::Invalid {
                mixer: "delta_net",
                problems: format!("{h} heads do not divide d_model {d}"),
            });
        }
        let std = init.std();
        let bound = 1.0 / (k as f64).sqrt();
        Ok(DeltaNet {
            q_proj: init.linear(d, d, false, std),
            k_proj: init.linear(d, d, false, std),
            v_proj: init.linear(d, d, false, std),
            b_proj: init.linear(d, h, false, std),
            q_conv1d: Param::from_tensor(init.uniform([d, k], bound)),
            k_conv1d: Param::from_tensor(init.uniform([d, k], bound)),
            v_conv1d: Param::from_tensor(init.uniform([d, k], bound)),
            o_norm: Param::from_tensor(Tensor::ones([d / h], init.device())),
            o_proj: init.linear(d, d, false, std),
        })
    }

    fn heads(&self) -> usize {
        self.b_proj.weight.dims()[1]
    }

    /// # Shapes
    /// - `u_bsd`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, u_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        self.forward_visiting(u_bsd, 0, &mut NoSites)
    }

    /// [`Self::forward`], handing `sites` the rule's states when it wants them (for interventions
    /// that resume mid-sequence; the fused CPU rule computes them anyway).
    pub fn forward_visiting(
        &self,
        u_bsd: Tensor<B, 3>,
        layer: usize,
        sites: &mut dyn Sites<B>,
    ) -> Tensor<B, 3> {
        let x = self.rule_inputs(u_bsd, 0);
        if sites.wants_states()
            && let Some((o, states)) = try_resumed(&x.q, &x.k, &x.v, &x.beta, None)
        {
            sites.keep_states(layer, states);
            return self.output(o);
        }
        self.output(delta_rule(x.q, x.k, x.v, x.beta))
    }

    /// [`Self::forward`] resumed mid-sequence (inference on the CPU: `None` elsewhere, see
    /// [`try_resumed`]). `u_bwd` is the mixer's input over a window whose first `prefix`
    /// positions are context for the convolutions only (zero where they would precede the
    /// sequence); `s0` the rule's states before the window (`[b, h, dh, dh]` on the host).
    ///
    /// # Shapes
    /// - `u_bwd`: `[batch, prefix + len, d_model]` → `[batch, len, d_model]`
    pub fn forward_resumed(
        &self,
        u_bwd: Tensor<B, 3>,
        prefix: usize,
        s0: &[f32],
    ) -> Option<Tensor<B, 3>> {
        let x = self.rule_inputs(u_bwd, prefix);
        let (o, _) = try_resumed(&x.q, &x.k, &x.v, &x.beta, Some(s0))?;
        Some(self.output(o))
    }

    /// The convolutions' context in positions: what [`Self::forward_resumed`] needs before a
    /// window.
    pub fn conv_context(&self) -> usize {
        self.q_conv1d.dims()[1].saturating_sub(1)
    }

    /// Floats of one position's state (all heads).
    pub fn state_len(&self) -> usize {
        let (d, h) = (self.q_proj.weight.dims()[1], self.heads());
        h * (d / h) * (d / h)
    }

    /// q (normalised, scaled), k (normalised), v and β on `u_bsd`, the first `prefix` positions
    /// dropped after the convolutions, whose context they are.
    fn rule_inputs(&self, u_bsd: Tensor<B, 3>, prefix: usize) -> RuleInputs<B> {
        let [b, all, d] = u_bsd.dims();
        let s = all - prefix;
        let h = self.heads();
        let e = d / h;
        let window = |x: Tensor<B, 3>| {
            let [_, _, w] = x.dims();
            if prefix > 0 {
                x.slice([0..b, prefix..all, 0..w])
            } else {
                x
            }
        };
        let branch = |proj: &Linear<B>, conv: &Param<Tensor<B, 2>>| {
            window(causal_depthwise_conv_silu(
                linear(proj, u_bsd.clone()),
                conv.val(),
                None,
            ))
        };
        // Per-head statistics on a `[b, s, h, e]` view of the channels: no head is moved.
        let unit = |x: Tensor<B, 3>| {
            let x = x.reshape([b, s, h, e]);
            (x.clone() / (x.square().sum_dim(3) + L2_EPS).sqrt()).reshape([b, s, d])
        };
        RuleInputs {
            q: unit(branch(&self.q_proj, &self.q_conv1d)).div_scalar((e as f64).sqrt()),
            k: unit(branch(&self.k_proj, &self.k_conv1d)),
            v: branch(&self.v_proj, &self.v_conv1d),
            beta: sigmoid(window(linear(&self.b_proj, u_bsd.clone()))),
        }
    }

    /// The per-head norm and the out-projection after the rule.
    fn output(&self, o_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        let normed = per_head_rms_norm(o_bsd, self.heads(), self.o_norm.val());
        linear(&self.o_proj, normed)
    }

    /// Its parameters under the reference module's names below prefix `m`, in the module's
    /// order: `{q,k,v,b}_proj`, `{q,k,v}_conv1d` (`[d,k]` → `[d,1,k]`), `o_norm`, `o_proj`.
    pub fn reference_params<'a>(&'a mut self, m: &str, t: &mut ParamTable<'a, B>) {
        t.linear(&format!("{m}.q_proj"), &mut self.q_proj);
        t.linear(&format!("{m}.k_proj"), &mut self.k_proj);
        t.linear(&format!("{m}.v_proj"), &mut self.v_proj);
        t.linear(&format!("{m}.b_proj"), &mut self.b_proj);
        t.conv_weight(format!("{m}.q_conv1d.weight"), &mut self.q_conv1d);
        t.conv_weight(format!("{m}.k_conv1d.weight"), &mut self.k_conv1d);
        t.conv_weight(format!("{m}.v_conv1d.weight"), &mut self.v_conv1d);
        t.vector(format!("{m}.o_norm.weight"), &mut self.o_norm);
        t.linear(&format!("{m}.o_proj"), &mut self.o_proj);
    }
}

/// What the rule reads, `[b, s, ·]` each.
struct RuleInputs<B: Backend> {
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    beta: Tensor<B, 3>,
}
