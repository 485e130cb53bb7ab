//! Mamba-1, the selective state space mixer (one block: `r += Mamba(RMSNorm(r))`, no MLP).
//!
//! Reference: Gu & Dao, "Mamba: Linear-time sequence modeling with selective state spaces"
//! (arXiv 2312.00752), `mamba_ssm.modules.mamba_simple.Mamba` as used in arXiv 2505.15105
//! (`reference/paper-setup.md` §2).
//!
//! ```text
//! u ─► in_proj (d → 2·d_inner, no bias) ─┬─ x ─► causal conv (k = d_conv, bias) ─► SiLU ─► x
//!                                        └─ z
//! x ─► x_proj (no bias) ─► (dt [R], B [N], C [N]);   Δ = softplus(dt_proj(dt))   (with bias)
//! h_t = exp(Δ_t·A)⊙h_{t−1} + (Δ_t·x_t)⊗B_t,  A = −exp(A_log);   y_t = h_t·C_t + D⊙x_t
//! out = out_proj(y ⊙ SiLU(z))                                              (no bias)
//! ```
//! d_inner = 2·d, N = 16, R = ⌈d/16⌉. `d_conv = 0` drops the convolution (x = SiLU(x)), as the
//! reference's `MambaWithoutConv` ablation.
//!
//! Shape letters: b batch, s sequence, d model width, i inner width, n state, r dt rank, k taps.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::{silu, softplus};
use burn::tensor::{Tensor, TensorData, backend::Backend};

use serde::Serialize;

use super::init::Init;
use super::kind::{CONV_KEY, ConfigProblem, MixerInfo, MixerKeys, MixerOptions, one_per_layer};
use super::kind::{ConvKernel, MixerShape, ModelError, configured_conv, conv_at};
use super::ops::causal_depthwise_conv_silu;
use super::param_names::{Buffer, Layout, ParamTable, Slot};
use super::runs::{linear, scale_channels};
use super::scan_cpu;
use super::selective_scan::selective_scan;
use super::sites::{NoSites, Site, Sites};

/// State size N (reference: 16).
pub const D_STATE: usize = 16;
/// d_inner = EXPAND·d_model (reference: 2).
pub const EXPAND: usize = 2;
/// Range of Δ at initialisation (reference: 0.001 to 0.1, floor 1e-4).
const DT_MIN: f64 = 1e-3;
const DT_MAX: f64 = 0.1;
const DT_FLOOR: f64 = 1e-4;

/// Mamba's defaults: RMSNorm blocks without an MLP, no positions.
pub const INFO: MixerInfo = MixerInfo {
    default_pos_emb: false,
    default_mlp: false,
    reference_module: "sequence_mixer",
    rms_norm: true,
    internal_sites: &[Site::ConvOutput],
};

/// Mamba's settings: `conv_kernel` is its `d_conv`, one for all layers (0 = no convolution, as
/// the reference's ablation; the reference's 4 by default).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MambaConfig {
    /// d_conv per layer, or empty for the reference's 4. A list by layer, as the spec's value is
    /// expanded, because node ids hash it so.
    #[serde(rename = "conv_kernel", skip_serializing_if = "Vec::is_empty")]
    pub conv: Vec<ConvKernel>,
}

fn reference_kernel(_layer: usize) -> ConvKernel {
    ConvKernel::Taps(REFERENCE_D_CONV)
}

/// The reference's d_conv.
pub const REFERENCE_D_CONV: usize = 4;

impl MambaConfig {
    /// Layer `layer`'s convolution.
    pub fn kernel(&self, layer: usize) -> ConvKernel {
        conv_at(&self.conv, layer, reference_kernel)
    }

    /// Parameters the reference's model counts but mechlab does not build: the conv1d of
    /// kernel 4 that the reference's Mamba without a convolution allocates and never uses.
    pub fn reference_only_params(&self, shape: &MixerShape) -> usize {
        let inner = EXPAND * shape.d_model;
        (0..shape.layers)
            .filter(|&l| self.kernel(l) == ConvKernel::Taps(0))
            .map(|_| inner * REFERENCE_UNUSED_CONV + inner)
            .sum()
    }
}

impl MixerOptions for MambaConfig {
    fn from_keys(keys: &MixerKeys, layers: usize) -> Result<Self, Vec<ConfigProblem>> {
        keys.only("mamba", &[CONV_KEY])?;
        Ok(MambaConfig {
            conv: configured_conv(keys, layers, reference_kernel),
        })
    }

    /// One short d_conv for all layers.
    fn problems(&self, shape: &MixerShape) -> Vec<ConfigProblem> {
        let kernels = &self.conv;
        if kernels.is_empty() {
            return Vec::new();
        }
        if let Some(p) = one_per_layer(kernels, shape.layers) {
            return vec![p];
        }
        let mut out = Vec::new();
        if kernels.iter().any(|k| matches!(k, ConvKernel::Long(_))) {
            out.push(
                ConfigProblem::new(
                    CONV_KEY,
                    "mamba's convolution is short: expected 0 (none) to 16 taps, found \"long\"",
                )
                .help("the reference's ablation uses d_conv 0, 1, 2, 3 and 4"),
            );
        }
        if kernels.windows(2).any(|w| w[0] != w[1]) {
            out.push(ConfigProblem::new(
                CONV_KEY,
                "mamba takes one d_conv for all layers, found a list that varies",
            ));
        }
        out
    }

    /// The fused scan keeps no extra activations of note.
    fn activations(&self, _shape: &MixerShape, _batch: f64, _seq: f64) -> f64 {
        0.0
    }
}

/// Depthwise causal convolution `[i, k]` with bias.
#[derive(Module, Debug)]
pub struct ConvTaps<B: Backend> {
    pub weight: Param<Tensor<B, 2>>,
    pub bias: Param<Tensor<B, 1>>,
}

#[derive(Module, Debug)]
pub struct Mamba<B: Backend> {
    pub in_proj: Linear<B>,
    /// Absent when `d_conv = 0`.
    pub conv1d: Option<ConvTaps<B>>,
    pub x_proj: Linear<B>,
    pub dt_proj: Linear<B>,
    /// `[i, n]`; A = −exp(A_log).
    pub a_log: Param<Tensor<B, 2>>,
    /// `[i]`, the skip.
    pub d: Param<Tensor<B, 1>>,
    pub out_proj: Linear<B>,
}

/// dt rank R = ⌈d/16⌉.
pub fn dt_rank(d_model: usize) -> usize {
    d_model.div_ceil(16)
}

impl<B: Backend> Mamba<B> {
    /// The reference's own init (its blocks skip the N(0, 0.02) re-initialisation of Linears):
    /// PyTorch defaults U(±1/√fan_in) for in_proj, x_proj and the convolution; dt_proj weight
    /// U(±R^−½) and bias softplus⁻¹(Δ₀) with Δ₀ log-uniform in [0.001, 0.1]; A_log = ln(1..N);
    /// D = 1; out_proj U(±1/√d_inner)/√layers.
    /// Needs a number of convolution taps (0: none).
    pub fn init(
        shape: &MixerShape,
        conv: ConvKernel,
        init: &mut Init<B>,
    ) -> Result<Self, ModelError> {
        let (d_model, layers) = (shape.d_model, shape.layers);
        let ConvKernel::Taps(d_conv) = conv else {
            return Err(ModelError::Convolution {
                mixer: "mamba",
                expected: "d_conv taps (0 = no convolution)",
                found: conv.to_string(),
            });
        };
        let i = EXPAND * d_model;
        let r = dt_rank(d_model);
        let device = init.device();
        let kaiming = |init: &mut Init<B>, d_in: usize, d_out: usize, scale: f64| Linear {
            weight: Param::from_tensor(init.uniform([d_in, d_out], scale / (d_in as f64).sqrt())),
            bias: None,
        };
        let in_proj = kaiming(init, d_model, 2 * i, 1.0);
        let conv1d = (d_conv > 0).then(|| {
            let bound = 1.0 / (d_conv as f64).sqrt();
            ConvTaps {
                weight: Param::from_tensor(init.uniform([i, d_conv], bound)),
                bias: Param::from_tensor(init.uniform([i], bound)),
            }
        });
        let x_proj = kaiming(init, i, r + 2 * D_STATE, 1.0);
        let dt_weight = init.uniform([r, i], 1.0 / (r as f64).sqrt());
        let dt_bias: Vec<f32> = init
            .uniform::<1>([i], 0.5)
            .into_data()
            .to_vec::<f32>()
            .expect("f32")
            .into_iter()
            .map(|u| {
                // u ∈ [−½, ½) → Δ₀ log-uniform in [DT_MIN, DT_MAX), then softplus⁻¹.
                let frac = u as f64 + 0.5;
                let dt = (DT_MIN.ln() + frac * (DT_MAX.ln() - DT_MIN.ln()))
                    .exp()
                    .max(DT_FLOOR);
                (dt + (-(-dt).exp_m1()).ln()) as f32
            })
            .collect();
        let dt_proj = Linear {
            weight: Param::from_tensor(dt_weight),
            bias: Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(dt_bias, [i]),
                device,
            ))),
        };
        let a_log: Vec<f32> = (0..i)
            .flat_map(|_| (1..=D_STATE).map(|n| (n as f32).ln()))
            .collect();
        let out_proj = kaiming(init, i, d_model, 1.0 / (layers as f64).sqrt());
        Ok(Mamba {
            in_proj,
            conv1d,
            x_proj,
            dt_proj,
            a_log: Param::from_tensor(Tensor::from_data(
                TensorData::new(a_log, [i, D_STATE]),
                device,
            )),
            d: Param::from_tensor(Tensor::ones([i], device)),
            out_proj,
        })
    }

    /// # Shapes
    /// - `u_bsd`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, u_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        self.forward_visiting(u_bsd, 0, &mut NoSites)
    }

    /// [`Self::forward`], passing the scan's input of `layer` through [`Site::ConvOutput`].
    pub fn forward_visiting(
        &self,
        u_bsd: Tensor<B, 3>,
        layer: usize,
        sites: &mut dyn Sites<B>,
    ) -> Tensor<B, 3> {
        let v = self.scan_inputs(u_bsd, 0, layer, sites);
        // The same scan (its inference form), handing over the states it computes anyway.
        if sites.wants_states()
            && let Some((y_bsi, states)) =
                scan_cpu::try_resumed(&v.x, &v.delta, &v.a, &v.b, &v.c, None)
        {
            sites.keep_states(layer, states);
            return self.output(y_bsi, v.x, v.z);
        }
        let y_bsi = selective_scan(v.x.clone(), v.delta, v.a, v.b, v.c);
        self.output(y_bsi, v.x, v.z)
    }

    /// [`Self::forward_visiting`] resumed mid-sequence, from what a full run cached (inference on
    /// the CPU: `None` elsewhere, see [`scan_cpu::try_resumed`]). `u_bwd` is the mixer's input
    /// over a window whose first `prefix` positions are context for the convolution only (the
    /// `d_conv − 1` positions before the window, zero where they would precede the sequence);
    /// `h0` the scan's state before the window (`[b, i, n]` on the host).
    /// Every output position equals the full run's there: the state and the convolution's
    /// context are all a position sees of what came before.
    ///
    /// # Shapes
    /// - `u_bwd`: `[batch, prefix + len, d_model]` → `[batch, len, d_model]`
    pub fn forward_resumed(
        &self,
        u_bwd: Tensor<B, 3>,
        prefix: usize,
        h0: &[f32],
        layer: usize,
        sites: &mut dyn Sites<B>,
    ) -> Option<Tensor<B, 3>> {
        let v = self.scan_inputs(u_bwd, prefix, layer, sites);
        let (y_bli, _) = scan_cpu::try_resumed(&v.x, &v.delta, &v.a, &v.b, &v.c, Some(h0))?;
        Some(self.output(y_bli, v.x, v.z))
    }

    /// The convolution's context in positions: what [`Self::forward_resumed`] needs before a
    /// window.
    pub fn conv_context(&self) -> usize {
        self.conv1d
            .as_ref()
            .map_or(0, |c| c.weight.dims()[1].saturating_sub(1))
    }

    /// `d_inner` and the state size N.
    pub fn state_dims(&self) -> [usize; 2] {
        let [_, n] = self.a_log.dims();
        [self.in_proj.weight.dims()[1] / 2, n]
    }

    /// The scan's inputs on `u_bsd` (the first `prefix` positions dropped after the
    /// convolution, whose context they are), the scan input passing through `sites`.
    fn scan_inputs(
        &self,
        u_bsd: Tensor<B, 3>,
        prefix: usize,
        layer: usize,
        sites: &mut dyn Sites<B>,
    ) -> ScanInputs<B> {
        let [b, s, _] = u_bsd.dims();
        let [i, n] = self.state_dims();
        let r = self.x_proj.weight.dims()[1] - 2 * n;
        let xz_bs2i = linear(&self.in_proj, u_bsd);
        let x_bsi = xz_bs2i.clone().slice([0..b, 0..s, 0..i]);
        let z_bsi = xz_bs2i.slice([0..b, prefix..s, i..2 * i]);
        let x_bsi = match &self.conv1d {
            Some(c) => causal_depthwise_conv_silu(x_bsi, c.weight.val(), Some(c.bias.val())),
            None => silu(x_bsi),
        };
        let s = s - prefix;
        let x_bsi = if prefix > 0 {
            x_bsi.slice([0..b, prefix..prefix + s, 0..i])
        } else {
            x_bsi
        };
        let x_bsi = sites.visit(layer, Site::ConvOutput, x_bsi);
        let dbc = linear(&self.x_proj, x_bsi.clone());
        let dt_bsr = dbc.clone().slice([0..b, 0..s, 0..r]);
        ScanInputs {
            b: dbc.clone().slice([0..b, 0..s, r..r + n]),
            c: dbc.slice([0..b, 0..s, r + n..r + 2 * n]),
            delta: softplus(linear(&self.dt_proj, dt_bsr), 1.0),
            a: self.a_log.val().exp().neg(),
            x: x_bsi,
            z: z_bsi,
        }
    }

    /// The skip, the gate and the out-projection around the scan's output.
    fn output(
        &self,
        y_bsi: Tensor<B, 3>,
        x_bsi: Tensor<B, 3>,
        z_bsi: Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        let y_bsi = y_bsi + scale_channels(x_bsi, self.d.val());
        linear(&self.out_proj, y_bsi * silu(z_bsi))
    }
}

/// What the scan reads, `[b, s, ·]` each (A as `[R·i, n]`); `z` is the gate.
struct ScanInputs<B: Backend> {
    x: Tensor<B, 3>,
    z: Tensor<B, 3>,
    delta: Tensor<B, 3>,
    a: Tensor<B, 2>,
    b: Tensor<B, 3>,
    c: Tensor<B, 3>,
}

impl<B: Backend> Mamba<B> {
    /// Its parameters under the reference module's names below prefix `m`: `in_proj`, `conv1d` (`[i,k]` → `[i,1,k]`; absent with d_conv 0), `x_proj`, `dt_proj`, `A_log`, `D`, `out_proj`.
    pub fn reference_params<'a>(&'a mut self, m: &str, t: &mut ParamTable<'a, B>) {
        t.linear(&format!("{m}.in_proj"), &mut self.in_proj);
        if let Some(c) = &mut self.conv1d {
            t.conv(&format!("{m}.conv1d"), &mut c.weight, &mut c.bias);
        }
        t.linear(&format!("{m}.x_proj"), &mut self.x_proj);
        t.linear(&format!("{m}.dt_proj"), &mut self.dt_proj);
        t.add(
            format!("{m}.A_log"),
            Slot::Matrix(&mut self.a_log),
            Layout::AsIs,
        );
        t.vector(format!("{m}.D"), &mut self.d);
        t.linear(&format!("{m}.out_proj"), &mut self.out_proj);
    }
}

/// Taps of the conv1d the reference allocates, unused, in Mamba without a convolution.
pub const REFERENCE_UNUSED_CONV: usize = 4;

impl<B: Backend> Mamba<B> {
    /// The reference's `MambaWithoutConv` keeps Mamba's default conv1d (kernel
    /// [`REFERENCE_UNUSED_CONV`]), unused: listed as zeros when this Mamba has none.
    pub fn reference_buffers(&self, m: &str) -> Vec<Buffer> {
        if self.conv1d.is_some() {
            return Vec::new();
        }
        let [_, two_inner] = self.in_proj.weight.dims();
        let inner = two_inner / 2;
        vec![
            Buffer {
                name: format!("{m}.conv1d.weight"),
                shape: vec![inner, 1, REFERENCE_UNUSED_CONV],
                values: vec![0.0; inner * REFERENCE_UNUSED_CONV],
            },
            Buffer {
                name: format!("{m}.conv1d.bias"),
                shape: vec![inner],
                values: vec![0.0; inner],
            },
        ]
    }
}
