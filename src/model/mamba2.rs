//! Mamba-2, the state space dual (one block: `r += Mamba2(RMSNorm(r))`, no MLP).
//!
//! Reference: Dao & Gu, "Transformers are SSMs" (arXiv 2405.21060); `mamba_ssm.modules.mamba2.
//! Mamba2` (mamba_ssm 2.2.4) as the paper's code names it in its mixer table (tinylang's
//! `MIXERS["mamba2"]`, `bias=False`, every other argument the library's default: d_state 128,
//! d_conv 4, expand 2, headdim 64, one group), in the block its code gives every `mamba*` mixer
//! (RMSNorm, no MLP, no positions). The paper reports no Mamba-2 result (`reference/paper-setup.md`
//! §2): its code's configs for it were removed as "not working".
//!
//! ```text
//! u ─► in_proj (d → [z: i | x: i | B: N | C: N | dt: h], no bias)
//! [x | B | C] ─► causal depthwise conv (k = d_conv, bias) ─► SiLU
//! Δ = softplus(dt + dt_bias),  A = −exp(A_log)   (one of each per head)
//! per head (x_t[h] its p = i/h channels, B and C shared by the heads), S₋₁ = 0 [N, p]:
//!   S_t = exp(Δ_t·A)·S_{t−1} + B_t (Δ_t·x_t)ᵀ,   y_t = S_tᵀC_t + D·x_t
//! out = out_proj(RMSNorm(y ⊙ silu(z)) · w)   (the norm over all i channels, ε 1e−5)
//! ```
//! i = 2·d. The recurrence is GLA's with `q = C`, `k = B`, `v = Δ·x` and the log-decay `Δ·A` on
//! every key channel: [`super::ssd_rule`] runs it (a fused operation of its own on the CPU,
//! GLA's chunked form elsewhere). d_model 16 with the reference's heads of 64 channels has no
//! reference model (mamba_ssm asserts); `model.heads` sets them.
//!
//! Shape letters: b batch, s sequence, d model width, i inner width, n state, h heads, k taps.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::{silu, softplus};
use burn::tensor::{Tensor, TensorData, backend::Backend};

use serde::Serialize;

use super::init::Init;
use super::kind::one_per_layer;
use super::kind::{CONV_KEY, ConfigProblem, ConvKernel, D_STATE_KEY, HEADS_KEY, MixerInfo};
use super::kind::{MixerKeys, MixerOptions, MixerShape, ModelError, configured_conv, conv_at};
use super::norm::NORM_EPS;
use super::ops::causal_depthwise_conv_silu;
use super::param_names::ParamTable;
use super::runs::{linear, scale_channels, shift_channels};
use super::sites::{NoSites, Site, Sites};
use super::ssd_rule::ssd_rule;

/// d_inner = EXPAND·d_model (reference: 2).
pub const EXPAND: usize = 2;
/// State size N per head (mamba_ssm's default: 128).
pub const REFERENCE_D_STATE: usize = 128;
/// Channels per head (mamba_ssm's default headdim: 64).
pub const REFERENCE_HEAD_DIM: usize = 64;
/// Taps of the convolution (reference: 4).
pub const REFERENCE_CONV: usize = 4;
/// Range of Δ at initialisation (reference: 0.001 to 0.1, floor 1e-4), and of −A (1 to 16).
const DT_MIN: f64 = 1e-3;
const DT_MAX: f64 = 0.1;
const DT_FLOOR: f64 = 1e-4;
const A_MIN: f64 = 1.0;
const A_MAX: f64 = 16.0;

/// Mamba-2's defaults: RMSNorm blocks without an MLP, no positions; its convolution's output
/// (`x`, `B`, `C` after SiLU) is an intervention site, as Mamba's is.
pub const INFO: MixerInfo = MixerInfo {
    default_pos_emb: false,
    default_mlp: false,
    reference_module: "sequence_mixer",
    rms_norm: true,
    internal_sites: &[Site::ConvOutput],
};

/// Mamba-2's settings: `conv_kernel` its d_conv per layer (1–4, the reference's 4), `heads` (a
/// divisor of d_inner; the reference's heads are 64 channels wide), `d_state` (the reference's
/// 128).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Mamba2Config {
    #[serde(rename = "conv_kernel", skip_serializing_if = "Vec::is_empty")]
    pub conv: Vec<ConvKernel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heads: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub d_state: Option<usize>,
}

fn reference_kernel(_layer: usize) -> ConvKernel {
    ConvKernel::Taps(REFERENCE_CONV)
}

impl Mamba2Config {
    pub fn kernel(&self, layer: usize) -> ConvKernel {
        conv_at(&self.conv, layer, reference_kernel)
    }

    /// Heads for a model of width `d_model`: the configured ones, or d_inner/64 (0 where 64 does
    /// not divide d_inner: no reference model).
    pub fn heads(&self, d_model: usize) -> usize {
        let inner = EXPAND * d_model;
        self.heads
            .unwrap_or(if inner.is_multiple_of(REFERENCE_HEAD_DIM) {
                inner / REFERENCE_HEAD_DIM
            } else {
                0
            })
    }

    pub fn d_state(&self) -> usize {
        self.d_state.unwrap_or(REFERENCE_D_STATE)
    }
}

impl MixerOptions for Mamba2Config {
    fn from_keys(keys: &MixerKeys, layers: usize) -> Result<Self, Vec<ConfigProblem>> {
        keys.only("mamba2", &[CONV_KEY, HEADS_KEY, D_STATE_KEY])?;
        Ok(Mamba2Config {
            conv: configured_conv(keys, layers, reference_kernel),
            // Kept as written: the reference's count depends on d_model, which keys do not know.
            heads: keys.heads,
            d_state: keys.d_state.filter(|&n| n != REFERENCE_D_STATE),
        })
    }

    fn problems(&self, shape: &MixerShape) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let inner = EXPAND * shape.d_model;
        let h = self.heads(shape.d_model);
        if h == 0 || !inner.is_multiple_of(h) {
            let found = match self.heads {
                Some(h) => format!("{h} heads do not divide it"),
                None => format!(
                    "the reference's heads of {REFERENCE_HEAD_DIM} channels do not divide it \
                     (mamba_ssm cannot build this model either)"
                ),
            };
            out.push(
                ConfigProblem::new(
                    HEADS_KEY,
                    format!("mamba2 splits d_inner = 2·d_model = {inner} into heads: {found}"),
                )
                .help(format!(
                    "set model.heads to a divisor of {inner} (e.g. {}), or d_model to a multiple \
                     of 32",
                    (inner / 8).max(1)
                )),
            );
        }
        if !(1..=256).contains(&self.d_state()) {
            out.push(ConfigProblem::new(
                D_STATE_KEY,
                format!("mamba2's d_state is 1 to 256, found {}", self.d_state()),
            ));
        }
        if !self.conv.is_empty() {
            if let Some(p) = one_per_layer(&self.conv, shape.layers) {
                out.push(p);
            } else if self
                .conv
                .iter()
                .any(|k| !matches!(k, ConvKernel::Taps(1..=4)))
            {
                out.push(
                    ConfigProblem::new(
                        CONV_KEY,
                        "mamba2's convolution takes 1 to 4 taps (mamba_ssm's causal_conv1d)",
                    )
                    .help("the reference's is 4"),
                );
            }
        }
        out
    }

    /// The fused CPU recurrence keeps an f32 state every 16 positions (`n·i` values per batch
    /// row); the chunked form a `[16, n]` decay per head and position, and its `B`/`C`/decay
    /// broadcasts to every head add `3·h·n` per position.
    fn activations(&self, shape: &MixerShape, batch: f64, seq: f64) -> f64 {
        let inner = (EXPAND * shape.d_model) as f64;
        let n = self.d_state() as f64;
        let h = self.heads(shape.d_model).max(1) as f64;
        batch * seq * (n * inner / 16.0 + 16.0 * h * n + 3.0 * h * n + 4.0 * inner)
    }
}

#[derive(Module, Debug)]
pub struct Mamba2<B: Backend> {
    /// `[d, 2i + 2n + h]`: z, x, B, C, dt.
    pub in_proj: Linear<B>,
    /// `[i + 2n, k]` and `[i + 2n]`: the depthwise convolution of x, B and C.
    pub conv_weight: Param<Tensor<B, 2>>,
    pub conv_bias: Param<Tensor<B, 1>>,
    /// `[h]` each.
    pub dt_bias: Param<Tensor<B, 1>>,
    pub a_log: Param<Tensor<B, 1>>,
    pub d: Param<Tensor<B, 1>>,
    /// `[i]`, the gated RMSNorm's weight.
    pub norm: Param<Tensor<B, 1>>,
    pub out_proj: Linear<B>,
}

impl<B: Backend> Mamba2<B> {
    /// mamba_ssm's init, then zoology's for Mamba blocks (`_init_weights`): in_proj PyTorch's
    /// default U(±1/√d); out_proj the same divided by √layers (`out_proj.weight` is rescaled);
    /// the convolution U(±1/√k); Δ log-uniform in [0.001, 0.1] (floor 1e-4) through the inverse
    /// softplus into `dt_bias`; `A_log = ln U(1, 16)`; D and the norm's weight 1.
    pub fn init(
        shape: &MixerShape,
        config: &Mamba2Config,
        layer: usize,
        init: &mut Init<B>,
    ) -> Result<Self, ModelError> {
        let (d, layers) = (shape.d_model, shape.layers);
        let inner = EXPAND * d;
        let (h, n) = (config.heads(d), config.d_state());
        let ConvKernel::Taps(k @ 1..=4) = config.kernel(layer) else {
            return Err(ModelError::Convolution {
                mixer: "mamba2",
                expected: "1 to 4 taps",
                found: config.kernel(layer).to_string(),
            });
        };
        if h == 0 || !inner.is_multiple_of(h) || n == 0 {
            return Err(ModelError::Invalid {
                mixer: "mamba2",
                problems: format!("{h} heads of d_state {n} do not split d_inner {inner}"),
            });
        }
        let device = init.device();
        let kaiming = |init: &mut Init<B>, d_in: usize, d_out: usize, scale: f64| Linear {
            weight: Param::from_tensor(init.uniform([d_in, d_out], scale / (d_in as f64).sqrt())),
            bias: None,
        };
        let in_proj = kaiming(init, d, 2 * inner + 2 * n + h, 1.0);
        let bound = 1.0 / (k as f64).sqrt();
        let conv_weight = init.uniform([inner + 2 * n, k], bound);
        let conv_bias = init.uniform([inner + 2 * n], bound);
        let unit = |init: &mut Init<B>| -> Vec<f64> {
            let u: Vec<f32> = init
                .uniform::<1>([h], 0.5)
                .into_data()
                .to_vec()
                .expect("f32");
            u.into_iter().map(|u| u as f64 + 0.5).collect()
        };
        let dt_bias: Vec<f32> = unit(init)
            .into_iter()
            .map(|frac| {
                let dt = (DT_MIN.ln() + frac * (DT_MAX.ln() - DT_MIN.ln()))
                    .exp()
                    .max(DT_FLOOR);
                (dt + (-(-dt).exp_m1()).ln()) as f32
            })
            .collect();
        let a_log: Vec<f32> = unit(init)
            .into_iter()
            .map(|frac| (A_MIN + frac * (A_MAX - A_MIN)).ln() as f32)
            .collect();
        let vector = |values: Vec<f32>| {
            let len = values.len();
            Param::from_tensor(Tensor::from_data(TensorData::new(values, [len]), device))
        };
        Ok(Mamba2 {
            in_proj,
            conv_weight: Param::from_tensor(conv_weight),
            conv_bias: Param::from_tensor(conv_bias),
            dt_bias: vector(dt_bias),
            a_log: vector(a_log),
            d: Param::from_tensor(Tensor::ones([h], device)),
            norm: Param::from_tensor(Tensor::ones([inner], device)),
            out_proj: kaiming(init, inner, d, 1.0 / (layers as f64).sqrt()),
        })
    }

    /// `(runs, inner, heads, d_state)` from the parameters' shapes.
    fn sizes(&self) -> (usize, usize, usize, usize) {
        let [rd, width] = self.in_proj.weight.dims();
        let d = self.out_proj.weight.dims()[1];
        let runs = rd / d;
        let inner = EXPAND * d;
        let h = self.dt_bias.dims()[0] / runs;
        (runs, inner, h, (width - 2 * inner - h) / 2)
    }

    /// # Shapes
    /// - `u_bsd`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, u_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        self.forward_visiting(u_bsd, 0, &mut NoSites)
    }

    /// [`Self::forward`], passing the convolution's output (x, B and C after SiLU) of `layer`
    /// through [`Site::ConvOutput`].
    pub fn forward_visiting(
        &self,
        u_bsd: Tensor<B, 3>,
        layer: usize,
        sites: &mut dyn Sites<B>,
    ) -> Tensor<B, 3> {
        let [b, s, _] = u_bsd.dims();
        let (_, inner, h, n) = self.sizes();
        let p = inner / h;
        let zxbcdt = linear(&self.in_proj, u_bsd);
        let z = zxbcdt.clone().slice([0..b, 0..s, 0..inner]);
        let xbc = zxbcdt.clone().slice([0..b, 0..s, inner..2 * inner + 2 * n]);
        let dt_raw = zxbcdt.slice([0..b, 0..s, 2 * inner + 2 * n..2 * inner + 2 * n + h]);
        let xbc =
            causal_depthwise_conv_silu(xbc, self.conv_weight.val(), Some(self.conv_bias.val()));
        let xbc = sites.visit(layer, Site::ConvOutput, xbc);
        let x = xbc.clone().slice([0..b, 0..s, 0..inner]);
        let b_bsn = xbc.clone().slice([0..b, 0..s, inner..inner + n]);
        let c_bsn = xbc.slice([0..b, 0..s, inner + n..inner + 2 * n]);
        let dt = softplus(shift_channels(dt_raw, self.dt_bias.val()), 1.0);
        let decay = scale_channels(dt.clone(), self.a_log.val().exp().neg());
        let v = (x.clone().reshape([b, s, h, p]) * dt.reshape([b, s, h, 1])).reshape([b, s, inner]);
        let y = ssd_rule(c_bsn, b_bsn, v, decay);
        self.output(y, x, z)
    }

    /// The skip `D·x`, the gated norm and the out-projection around the recurrence's output.
    fn output(
        &self,
        y_bsi: Tensor<B, 3>,
        x_bsi: Tensor<B, 3>,
        z_bsi: Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        let (runs, inner, h, _) = self.sizes();
        let p = inner / h;
        // D per head, written out over its p channels, run by run.
        let d_per_channel = self
            .d
            .val()
            .reshape([runs * h, 1])
            .repeat_dim(1, p)
            .reshape([runs * inner]);
        let y = (y_bsi + scale_channels(x_bsi, d_per_channel)) * silu(z_bsi);
        let rms = (y.clone().square().mean_dim(2) + NORM_EPS).sqrt();
        linear(&self.out_proj, scale_channels(y / rms, self.norm.val()))
    }

    /// Its parameters under the reference module's names below prefix `m`, in the module's
    /// order: `dt_bias`, `A_log`, `D`, `in_proj`, `conv1d` (`[c, k]` → `[c, 1, k]`), `norm`,
    /// `out_proj`.
    pub fn reference_params<'a>(&'a mut self, m: &str, t: &mut ParamTable<'a, B>) {
        t.vector(format!("{m}.dt_bias"), &mut self.dt_bias);
        t.vector(format!("{m}.A_log"), &mut self.a_log);
        t.vector(format!("{m}.D"), &mut self.d);
        t.linear(&format!("{m}.in_proj"), &mut self.in_proj);
        t.conv(
            &format!("{m}.conv1d"),
            &mut self.conv_weight,
            &mut self.conv_bias,
        );
        t.vector(format!("{m}.norm.weight"), &mut self.norm);
        t.linear(&format!("{m}.out_proj"), &mut self.out_proj);
    }
}
