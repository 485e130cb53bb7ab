//! GLA: gated linear attention, in every layer.
//!
//! Reference: Yang et al., "Gated linear attention transformers with hardware-efficient training"
//! (arXiv 2312.06635); flash-linear-attention's `fla.layers.GatedLinearAttention` (commit
//! d30c0833, the version zoology copies as `zoology/mixers/gla.py`, byte-identical in the
//! paper's fork) with the settings of zoology's `add_gla`: 2 heads, no short convolutions, and
//! fla's defaults for the rest (`expand_k` 0.5, `expand_v` 1, a low-rank gate of 16 with
//! `gate_logit_normalizer` 16, the output gated by swish through a per-head RMSNorm).
//! (The reference's code has no GLA config; `reference/paper-setup.md` §2.)
//!
//! ```text
//! u ─► q_proj, k_proj (d→d/2), v_proj (d→d), no bias;  heads: q[t, h, i] = q[t, h·dk + i]
//! u ─► gk_proj.0 (d→16, no bias) ─► gk_proj.1 (16→d/2, bias) ─► g = logsigmoid(·)/16
//! per head, S₋₁ = 0 [dk, dv]:  S_t = diag(exp g_t)·S_{t−1} + k_t v_tᵀ,  o_t = S_tᵀq_t/√dk
//! o ─► RMSNorm over each head's dv values (one weight [dv] shared by the heads, ε 1e−5)
//!   ─► · silu(g_proj(u)) (d→d, no bias) ─► o_proj (d→d, no bias)
//! ```
//! dk = d/(2h), dv = d/h. The block around it is the paper's standard block (LayerNorms, MLP),
//! no positions (zoology's `add_gla` sets none).
//!
//! Shape letters: b batch, s sequence, d model width, h heads.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::{log_sigmoid, silu};
use burn::tensor::{Tensor, backend::Backend};

use serde::Serialize;

use super::gla_rule::{CHUNK, gla_rule};
use super::gla_rule_cpu::try_resumed;
use super::init::Init;
use super::kind::ModelError;
use super::kind::{ConfigProblem, HEADS_KEY, MixerInfo, MixerKeys, MixerOptions, MixerShape};
use super::norm::per_head_rms_norm;
use super::param_names::ParamTable;
use super::runs::linear;
use super::sites::{NoSites, Sites};

/// Heads (zoology's `add_gla`: 2).
pub const REFERENCE_HEADS: usize = 2;
/// The gate's low rank (fla's `gate_low_rank_dim`).
pub const GATE_RANK: usize = 16;
/// What the gate's log-sigmoid is divided by (fla's `gate_logit_normalizer`).
pub const GATE_NORMALISER: f64 = 16.0;

/// GLA's defaults: no positions, an MLP, LayerNorm blocks.
pub const INFO: MixerInfo = MixerInfo {
    default_pos_emb: false,
    default_mlp: true,
    reference_module: "sequence_mixer",
    rms_norm: false,
    internal_sites: &[],
};

/// GLA's settings: `heads` (the reference's 2).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GlaConfig {
    /// Heads, or `None` for the reference's 2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heads: Option<usize>,
}

impl GlaConfig {
    pub fn heads(&self) -> usize {
        self.heads.unwrap_or(REFERENCE_HEADS)
    }
}

/// Whether `h` heads split d_model's key half (d/2) and its values (d) evenly.
fn splits(d: usize, h: usize) -> bool {
    h > 0 && d.is_multiple_of(2) && (d / 2).is_multiple_of(h)
}

impl MixerOptions for GlaConfig {
    fn from_keys(keys: &MixerKeys, _layers: usize) -> Result<Self, Vec<ConfigProblem>> {
        keys.only("gla", &[HEADS_KEY])?;
        Ok(GlaConfig {
            heads: keys.heads.filter(|&h| h != REFERENCE_HEADS),
        })
    }

    fn problems(&self, shape: &MixerShape) -> Vec<ConfigProblem> {
        let (d, h) = (shape.d_model, self.heads());
        if splits(d, h) {
            return Vec::new();
        }
        vec![
            ConfigProblem::new(
                HEADS_KEY,
                format!(
                    "gla splits its keys (d_model/2 = {}) into {h} heads: expected an even \
                     d_model and a divisor of d_model/2",
                    d as f64 / 2.0
                ),
            )
            .help("the reference uses 2 heads (expand_k 0.5)"),
        ]
    }

    /// The fused CPU recurrence keeps every state (`dk·dv` f64 values, two floats each, per
    /// head and position); the chunked form a `[CHUNK, dk]` decay per head, position and key.
    fn activations(&self, shape: &MixerShape, batch: f64, seq: f64) -> f64 {
        let h = self.heads().max(1) as f64;
        let d = shape.d_model as f64;
        batch * seq * (d * d / h + 2.0 * d / 2.0 * CHUNK as f64)
    }
}

#[derive(Module, Debug)]
pub struct Gla<B: Backend> {
    /// `[d, d/2]`
    pub q_proj: Linear<B>,
    /// `[d, d/2]`
    pub k_proj: Linear<B>,
    pub v_proj: Linear<B>,
    /// The output gate's projection.
    pub g_proj: Linear<B>,
    /// `[d, 16]`, no bias, then `[16, d/2]` with bias: the decay's low-rank projection.
    pub gk_down: Linear<B>,
    pub gk_up: Linear<B>,
    pub o_proj: Linear<B>,
    /// `[dv]`, the gated RMSNorm's weight, shared by the heads.
    pub g_norm: Param<Tensor<B, 1>>,
}

impl<B: Backend> Gla<B> {
    /// zoology's init: every Linear N(0, σ) with zero bias (σ = 0.02; `o_proj` is not named
    /// `out_proj`, so it keeps σ), the norm's weight 1.
    pub fn init(
        shape: &MixerShape,
        config: &GlaConfig,
        init: &mut Init<B>,
    ) -> Result<Self, ModelError> {
        let (d, h) = (shape.d_model, config.heads());
        if !splits(d, h) {
            return Err(ModelError::Invalid {
                mixer: "gla",
                problems: format!("{h} heads do not divide d_model/2 = {}", d as f64 / 2.0),
            });
        }
        let std = init.std();
        Ok(Gla {
            q_proj: init.linear(d, d / 2, false, std),
            k_proj: init.linear(d, d / 2, false, std),
            v_proj: init.linear(d, d, false, std),
            g_proj: init.linear(d, d, false, std),
            gk_down: init.linear(d, GATE_RANK, false, std),
            gk_up: init.linear(GATE_RANK, d / 2, true, std),
            o_proj: init.linear(d, d, false, std),
            g_norm: Param::from_tensor(Tensor::ones([d / h], init.device())),
        })
    }

    /// Heads: the values' width over one head's (the norm's weight holds one head's per run).
    fn heads(&self) -> usize {
        let [rows, d] = self.v_proj.weight.dims();
        let runs = rows / d;
        d / (self.g_norm.dims()[0] / runs)
    }

    /// # Shapes
    /// - `u_bsd`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, u_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        self.forward_visiting(u_bsd, 0, &mut NoSites)
    }

    /// [`Self::forward`], handing `sites` the recurrence's states when it wants them (for
    /// interventions that resume mid-sequence; the fused CPU recurrence computes them anyway).
    pub fn forward_visiting(
        &self,
        u_bsd: Tensor<B, 3>,
        layer: usize,
        sites: &mut dyn Sites<B>,
    ) -> Tensor<B, 3> {
        let h = self.heads();
        let x = self.rule_inputs(u_bsd.clone());
        if sites.wants_states()
            && let Some((o, states)) = try_resumed(&x.q, &x.k, &x.v, &x.g, h, None)
        {
            sites.keep_states(layer, states);
            return self.output(o, u_bsd);
        }
        self.output(gla_rule(x.q, x.k, x.v, x.g, h), u_bsd)
    }

    /// [`Self::forward`] resumed mid-sequence (inference on the CPU: `None` elsewhere, see
    /// [`try_resumed`]). GLA has no convolution, so `prefix` (context positions before the
    /// window) is always 0; `s0` the recurrence's states before the window (`[b, h, dk, dv]` on
    /// the host).
    ///
    /// # Shapes
    /// - `u_bwd`: `[batch, prefix + len, d_model]` → `[batch, len, d_model]`
    pub fn forward_resumed(
        &self,
        u_bwd: Tensor<B, 3>,
        prefix: usize,
        s0: &[f32],
    ) -> Option<Tensor<B, 3>> {
        let [b, all, d] = u_bwd.dims();
        let u = if prefix > 0 {
            u_bwd.slice([0..b, prefix..all, 0..d])
        } else {
            u_bwd
        };
        let x = self.rule_inputs(u.clone());
        let (o, _) = try_resumed(&x.q, &x.k, &x.v, &x.g, self.heads(), Some(s0))?;
        Some(self.output(o, u))
    }

    /// Floats of one position's state (all heads).
    pub fn state_len(&self) -> usize {
        let d = self.v_proj.weight.dims()[1];
        let h = self.heads();
        h * (d / 2 / h) * (d / h)
    }

    /// q (scaled), k, v and the log-decays g on `u_bsd`.
    fn rule_inputs(&self, u_bsd: Tensor<B, 3>) -> RuleInputs<B> {
        let dk = self.q_proj.weight.dims()[1] / self.heads();
        let gate = linear(&self.gk_up, linear(&self.gk_down, u_bsd.clone()));
        RuleInputs {
            q: linear(&self.q_proj, u_bsd.clone()).div_scalar((dk as f64).sqrt()),
            k: linear(&self.k_proj, u_bsd.clone()),
            v: linear(&self.v_proj, u_bsd),
            g: log_sigmoid(gate).div_scalar(GATE_NORMALISER),
        }
    }

    /// The per-head norm gated by `silu(g_proj(u))` and the out-projection after the
    /// recurrence.
    fn output(&self, o_bsd: Tensor<B, 3>, u_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        let normed = per_head_rms_norm(o_bsd, self.heads(), self.g_norm.val());
        linear(&self.o_proj, normed * silu(linear(&self.g_proj, u_bsd)))
    }

    /// Its parameters under the reference module's names below prefix `m`, in the module's
    /// order: `{q,k,v,g}_proj`, `gk_proj.0`, `gk_proj.1`, `o_proj`, `g_norm_swish_gate`.
    pub fn reference_params<'a>(&'a mut self, m: &str, t: &mut ParamTable<'a, B>) {
        t.linear(&format!("{m}.q_proj"), &mut self.q_proj);
        t.linear(&format!("{m}.k_proj"), &mut self.k_proj);
        t.linear(&format!("{m}.v_proj"), &mut self.v_proj);
        t.linear(&format!("{m}.g_proj"), &mut self.g_proj);
        t.linear(&format!("{m}.gk_proj.0"), &mut self.gk_down);
        t.linear(&format!("{m}.gk_proj.1"), &mut self.gk_up);
        t.linear(&format!("{m}.o_proj"), &mut self.o_proj);
        t.vector(format!("{m}.g_norm_swish_gate.weight"), &mut self.g_norm);
    }
}

/// What the recurrence reads, `[b, s, ·]` each.
struct RuleInputs<B: Backend> {
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    g: Tensor<B, 3>,
}
