//! H3 ("Hungry Hungry Hippos"): a shift SSM on the keys, then a diagonal SSM on the key-value
//! outer product of each head, read out by the queries.
//!
//! Reference: Fu et al., "Hungry Hungry Hippos" (arXiv 2212.14052) and zoology `mixers/h3/`, as
//! configured in arXiv 2505.15105 (`reference/paper-setup.md` §2): head dim 2, state size
//! N = l_max (which makes the shift SSM a full-length learned filter).
//!
//! ```text
//! q, k, v = Linear(d, d) with bias
//! k ← shift_filter ∗ k + D_k ⊙ k            shift_filter[c, t] = Σ_n B[c, n]·C[c, n + t]
//! kv[h, i, j] = k[2h + i]·v[2h + j]          per head h, 2×2
//! y[h, i, j] = K[h] ∗ kv[h, i, j] + D[h]·kv[h, i, j]
//! out[j·H + h] = Σ_i q[2h + i]·y[h, i, j]    (note the (j, h) channel order of the reference)
//! return output_linear(out)
//! ```
//! `∗` is the causal convolution along time. K is the S4D-Lin kernel with bilinear
//! discretisation, for each head h and mode m < N/2 (A = −exp(inv_A_real) + i·A_imag):
//! `dA = (1 + Δ·A/2)/(1 − Δ·A/2)`, `C' = B·C·Δ/(1 − Δ·A/2)`, `K[h, t] = 2·Re Σ_m C'_m·dA_m^t`.
//! burn has no complex dtype, so the complex numbers are carried as real/imaginary pairs and
//! `dA^t = exp(t·ln|dA|)·(cos tθ + i·sin tθ)` with θ = arg dA.
//!
//! Shape letters: b batch, s/t sequence, d model width, h heads (d/2), m modes (N/2), n state.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use serde::Serialize;

use super::init::Init;
use super::kind::{ConfigProblem, MixerInfo, MixerKeys, MixerOptions, MixerShape, ModelError};
use super::long_conv::{causal_long_conv, causal_long_conv_at};
use super::ops::at_positions;
use super::param_names::{Layout, ParamTable, Slot};
use super::runs::{linear, runs_of, scale_channels};

/// Channels per head (reference configuration: 2).
pub const HEAD_DIM: usize = 2;
/// Range of the diagonal SSM's step Δ at initialisation (log-uniform).
const DT_MIN: f64 = 1e-3;
const DT_MAX: f64 = 0.1;

/// H3's defaults: no positions, an MLP.
pub const INFO: MixerInfo = MixerInfo {
    default_pos_emb: false,
    default_mlp: true,
    reference_module: "sequence_mixer",
    rms_norm: false,
    internal_sites: &[],
};

/// H3's settings: none (heads of [`HEAD_DIM`] channels, no convolution to choose).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct H3Config {}

impl MixerOptions for H3Config {
    fn from_keys(keys: &MixerKeys, _layers: usize) -> Result<Self, Vec<ConfigProblem>> {
        keys.only("h3", &[])?;
        Ok(H3Config {})
    }

    /// An even width; a shift-SSM state of `max_positions` entries, at least 2.
    fn problems(&self, cfg: &MixerShape) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        if !cfg.d_model.is_multiple_of(HEAD_DIM) {
            out.push(ConfigProblem::new(
                "model.d_model",
                format!(
                    "h3 has heads of {HEAD_DIM} channels: expected an even width, found {}",
                    cfg.d_model
                ),
            ));
        }
        if cfg.max_positions < 2 {
            out.push(ConfigProblem::new(
            "model.max_positions",
            format!(
                "h3's shift SSM has a state of max_positions entries: expected at least 2, found {}",
                cfg.max_positions
            ),
        ));
        }
        out
    }

    /// The shift maps, d × s × max_positions.
    fn activations(&self, shape: &MixerShape, _batch: f64, seq: f64) -> f64 {
        shape.d_model as f64 * seq * shape.max_positions as f64
    }
}

#[derive(Module, Debug)]
pub struct H3<B: Backend> {
    pub q_proj: Linear<B>,
    pub k_proj: Linear<B>,
    pub v_proj: Linear<B>,
    /// Shift SSM input map `[d, N]` (init: e₀, trainable).
    pub shift_b: Param<Tensor<B, 2>>,
    /// Shift SSM output map `[d, N]`.
    pub shift_c: Param<Tensor<B, 2>>,
    /// `[d]`, the shift SSM's skip.
    pub ssm_k_d: Param<Tensor<B, 1>>,
    /// `[h]`, ln Δ of the diagonal SSM.
    pub log_dt: Param<Tensor<B, 1>>,
    /// `[h, m, 2]` (real, imaginary).
    pub ssm_b: Param<Tensor<B, 3>>,
    /// `[h, m, 2]` (real, imaginary).
    pub ssm_c: Param<Tensor<B, 3>>,
    /// `[h, m]`; Re A = −exp(inv_a_real).
    pub inv_a_real: Param<Tensor<B, 2>>,
    /// `[h, m]`
    pub a_imag: Param<Tensor<B, 2>>,
    /// `[h]`, the diagonal SSM's skip.
    pub d: Param<Tensor<B, 1>>,
    pub output_linear: Linear<B>,
}

impl<B: Backend> H3<B> {
    /// Reference init: projections N(0, σ) with zero bias (`output_linear` is not an
    /// `out_proj`, so it is not rescaled); skips N(0, 1); shift C U(±1/√N) (PyTorch's kaiming
    /// default); S4D-Lin: Re A = −½, Im A = π·m, B = 1, C complex normal, Δ log-uniform in
    /// [0.001, 0.1].
    /// Needs an even width (heads of [`HEAD_DIM`] channels) and a state of at least 2.
    pub fn init(shape: &MixerShape, init: &mut Init<B>) -> Result<Self, ModelError> {
        let (d_model, state) = (shape.d_model, shape.max_positions);
        if !d_model.is_multiple_of(HEAD_DIM) || state < 2 {
            return Err(ModelError::H3Shape {
                d_model,
                max_positions: state,
            });
        }
        let std = init.std();
        let h = d_model / HEAD_DIM;
        let m = state / 2;
        let device = init.device();
        let tensor2 = |values: Vec<f32>, shape: [usize; 2]| {
            Param::from_tensor(Tensor::<B, 2>::from_data(
                TensorData::new(values, shape),
                device,
            ))
        };
        let q_proj = init.linear(d_model, d_model, true, std);
        let k_proj = init.linear(d_model, d_model, true, std);
        let v_proj = init.linear(d_model, d_model, true, std);
        let shift_b = tensor2(
            (0..d_model * state)
                .map(|i| if i % state == 0 { 1.0 } else { 0.0 })
                .collect(),
            [d_model, state],
        );
        let shift_c =
            Param::from_tensor(init.uniform([d_model, state], 1.0 / (state as f64).sqrt()));
        let ssm_k_d = Param::from_tensor(init.normal([d_model], 1.0));
        let log_dt = Param::from_tensor(
            init.uniform::<1>([h], 0.5)
                .add_scalar(0.5)
                .mul_scalar(DT_MAX.ln() - DT_MIN.ln())
                .add_scalar(DT_MIN.ln()),
        );
        let ones_zeros: Vec<f32> = (0..h * m).flat_map(|_| [1.0, 0.0]).collect();
        let ssm_b = Param::from_tensor(Tensor::from_data(
            TensorData::new(ones_zeros, [h, m, 2]),
            device,
        ));
        let ssm_c = Param::from_tensor(init.normal([h, m, 2], std::f64::consts::FRAC_1_SQRT_2));
        let inv_a_real = tensor2(vec![0.5f32.ln(); h * m], [h, m]);
        let a_imag = tensor2(
            (0..h * m)
                .map(|i| std::f32::consts::PI * (i % m) as f32)
                .collect(),
            [h, m],
        );
        let d = Param::from_tensor(init.normal([h], 1.0));
        let output_linear = init.linear(d_model, d_model, true, std);
        Ok(H3 {
            q_proj,
            k_proj,
            v_proj,
            shift_b,
            shift_c,
            ssm_k_d,
            log_dt,
            ssm_b,
            ssm_c,
            inv_a_real,
            a_imag,
            d,
            output_linear,
        })
    }

    /// The shift SSM's filter, `f[t, c] = Σ_{n+t<N} B[c, n]·C[c, n + t]`, per run.
    ///
    /// # Shapes
    /// → `[R, s, d]`
    pub fn shift_filter(&self, s: usize) -> Tensor<B, 3> {
        let [rd, n] = self.shift_b.dims();
        let runs = runs_of(rd, self.q_proj.weight.dims()[1]);
        let device = self.shift_b.device();
        // C padded with s zeros so that n + t ≥ N reads zero.
        let c_pad = Tensor::cat(vec![self.shift_c.val(), Tensor::zeros([rd, s], &device)], 1);
        let idx: Vec<i64> = (0..s * n).map(|i| ((i / n) + (i % n)) as i64).collect();
        let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [s * n]), &device);
        let c_dsn = c_pad.select(1, idx).reshape([rd, s, n]);
        (c_dsn * self.shift_b.val().unsqueeze_dim::<3>(1))
            .sum_dim(2)
            .reshape([runs, rd / runs, s])
            .swap_dims(1, 2)
    }

    /// The diagonal SSM's kernel `K[h, t] = 2·Re Σ_m C'_m·dA_m^t`, per run (every parameter of
    /// the kernel is per head, so the runs' heads are computed as `R·h` heads).
    ///
    /// # Shapes
    /// → `[R, s, h]`
    pub fn ssm_kernel(&self, s: usize) -> Tensor<B, 3> {
        let runs = runs_of(
            self.a_imag.dims()[0],
            self.q_proj.weight.dims()[1] / HEAD_DIM,
        );
        let [h, m] = self.a_imag.dims();
        let device = self.a_imag.device();
        let part = |t: Tensor<B, 3>, k: usize| t.slice([0..h, 0..m, k..k + 1]).reshape([h, m]);
        let dt_h1 = self.log_dt.val().exp().reshape([h, 1]);
        let a = self.inv_a_real.val().exp().neg() * dt_h1.clone(); // Re(Δ·A)
        let w = self.a_imag.val() * dt_h1.clone(); // Im(Δ·A)
        // Bilinear: dA = num/den, num = 1 + ΔA/2, den = 1 − ΔA/2.
        let (nr, ni) = (
            a.clone().div_scalar(2.0).add_scalar(1.0),
            w.clone().div_scalar(2.0),
        );
        let (dr, di) = (a.div_scalar(-2.0).add_scalar(1.0), w.div_scalar(-2.0));
        let den2 = dr.clone().powi_scalar(2) + di.clone().powi_scalar(2);
        let log_mag = ((nr.clone().powi_scalar(2) + ni.clone().powi_scalar(2)).log()
            - den2.clone().log())
        .div_scalar(2.0);
        let theta = ni.atan2(nr) - di.clone().atan2(dr.clone());
        // C' = B·C·Δ/den = B·C·conj(den)·Δ/|den|².
        let (br, bi) = (part(self.ssm_b.val(), 0), part(self.ssm_b.val(), 1));
        let (cr, ci) = (part(self.ssm_c.val(), 0), part(self.ssm_c.val(), 1));
        let bc_r = br.clone() * cr.clone() - bi.clone() * ci.clone();
        let bc_i = br * ci + bi * cr;
        let scale = dt_h1 / den2;
        let cp_r = (bc_r.clone() * dr.clone() + bc_i.clone() * di.clone()) * scale.clone();
        let cp_i = (bc_i * dr - bc_r * di) * scale;
        let t_11s = Tensor::<B, 1, Int>::arange(0..s as i64, &device)
            .float()
            .reshape([1, 1, s]);
        let phase = theta.unsqueeze_dim::<3>(2) * t_11s.clone();
        let mag = (log_mag.unsqueeze_dim::<3>(2) * t_11s).exp();
        let k_hms = mag
            * (cp_r.unsqueeze_dim::<3>(2) * phase.clone().cos()
                - cp_i.unsqueeze_dim::<3>(2) * phase.sin());
        k_hms
            .sum_dim(1)
            .reshape([runs, h / runs, s])
            .mul_scalar(2.0)
            .swap_dims(1, 2)
    }

    /// # Shapes
    /// - `u_bsd`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, u_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        let [_, s, _] = u_bsd.dims();
        let q_bsd = linear(&self.q_proj, u_bsd.clone());
        let (kv_bsc, skip_c, kernel_rsc) = self.kv(u_bsd);
        let y_bsc = causal_long_conv(kv_bsc.clone(), kernel_rsc) + scale_channels(kv_bsc, skip_c);
        self.readout(y_bsc, q_bsd, s)
    }

    /// [`Self::forward`] at one position per row, `at[r]` in row `r`: the diagonal SSM's
    /// convolution and everything after it only there.
    ///
    /// # Shapes
    /// - `u_bsd`: `[batch, seq, d_model]`, `at`: `batch` positions → `[batch, 1, d_model]`
    pub fn forward_at(&self, u_bsd: Tensor<B, 3>, at: &[usize]) -> Tensor<B, 3> {
        let q_b1d = linear(&self.q_proj, at_positions(u_bsd.clone(), at));
        let (kv_bsc, skip_c, kernel_rsc) = self.kv(u_bsd);
        let y_b1c = causal_long_conv_at(kv_bsc.clone(), kernel_rsc, at)
            + scale_channels(at_positions(kv_bsc, at), skip_c);
        self.readout(y_b1c, q_b1d, 1)
    }

    /// The shift-SSM'd keys times values, per head outer product, with the diagonal SSM's skip
    /// weights and kernel per channel.
    ///
    /// # Shapes
    /// - `u_bsd`: `[R·b, s, d]` → `[R·b, s, c]`, `[R·c]`, `[R, s, c]` with `c = h·HEAD_DIM²`
    fn kv(&self, u_bsd: Tensor<B, 3>) -> (Tensor<B, 3>, Tensor<B, 1>, Tensor<B, 3>) {
        let [b, s, d] = u_bsd.dims();
        let h = d / HEAD_DIM;
        let c = h * HEAD_DIM * HEAD_DIM;
        let k_bsd = linear(&self.k_proj, u_bsd.clone());
        let v_bsd = linear(&self.v_proj, u_bsd);
        let k_bsd = causal_long_conv(k_bsd.clone(), self.shift_filter(s))
            + scale_channels(k_bsd, self.ssm_k_d.val());
        // kv[b, s, h, i, j] = k[2h + i]·v[2h + j], flattened to channel 4h + 2i + j.
        let kv_bsc = (k_bsd.reshape([b, s, h, HEAD_DIM, 1])
            * v_bsd.reshape([b, s, h, 1, HEAD_DIM]))
        .reshape([b, s, c]);
        // Each head's value repeated over its HEAD_DIM² channels.
        let skip_c = {
            let [rh] = self.d.dims();
            self.d
                .val()
                .reshape([rh, 1])
                .repeat_dim(1, HEAD_DIM * HEAD_DIM)
                .reshape([rh * HEAD_DIM * HEAD_DIM])
        };
        let kernel_rsc = {
            let k_rsh = self.ssm_kernel(s);
            let [runs, _, _] = k_rsh.dims();
            k_rsh
                .reshape([runs, s, h, 1])
                .repeat_dim(3, HEAD_DIM * HEAD_DIM)
                .reshape([runs, s, c])
        };
        (kv_bsc, skip_c, kernel_rsc)
    }

    /// Queries read the SSM output, per head, then the output projection.
    ///
    /// # Shapes
    /// - `y_btc`: `[b, t, c]`, `q_btd`: `[b, t, d]`, `t` → `[b, t, d]`
    fn readout(&self, y_btc: Tensor<B, 3>, q_btd: Tensor<B, 3>, t: usize) -> Tensor<B, 3> {
        let [b, _, d] = q_btd.dims();
        let h = d / HEAD_DIM;
        let out = (y_btc.reshape([b, t, h, HEAD_DIM, HEAD_DIM])
            * q_btd.reshape([b, t, h, HEAD_DIM, 1]))
        .sum_dim(3)
        .reshape([b, t, h, HEAD_DIM])
        .swap_dims(2, 3)
        .reshape([b, t, d]);
        linear(&self.output_linear, out)
    }
}

impl<B: Backend> H3<B> {
    /// Its parameters under the reference module's names below prefix `m`: `{q,k,v}_proj.*`, `ssm_k_kernel.kernel.{B,C}` (C `[d,N]` → `[1,d,N]`), `ssm_k_D`, `kernel.kernel.{log_dt,C,B,inv_A_real,A_imag}` (C `[h,m,2]` → `[1,h,m,2]`), `D`, `output_linear.*`.
    pub fn reference_params<'a>(&'a mut self, m: &str, t: &mut ParamTable<'a, B>) {
        t.linear(&format!("{m}.q_proj"), &mut self.q_proj);
        t.linear(&format!("{m}.k_proj"), &mut self.k_proj);
        t.linear(&format!("{m}.v_proj"), &mut self.v_proj);
        let s = format!("{m}.ssm_k_kernel.kernel");
        t.add(
            format!("{s}.B"),
            Slot::Matrix(&mut self.shift_b),
            Layout::AsIs,
        );
        t.matrix_unit(format!("{s}.C"), &mut self.shift_c);
        t.vector(format!("{m}.ssm_k_D"), &mut self.ssm_k_d);
        let k = format!("{m}.kernel.kernel");
        t.vector(format!("{k}.log_dt"), &mut self.log_dt);
        let [hh, mm, two] = self.ssm_c.dims();
        t.add(
            format!("{k}.C"),
            Slot::Cube(&mut self.ssm_c),
            Layout::Reshaped(vec![1, hh, mm, two]),
        );
        t.add(format!("{k}.B"), Slot::Cube(&mut self.ssm_b), Layout::AsIs);
        t.add(
            format!("{k}.inv_A_real"),
            Slot::Matrix(&mut self.inv_a_real),
            Layout::AsIs,
        );
        t.add(
            format!("{k}.A_imag"),
            Slot::Matrix(&mut self.a_imag),
            Layout::AsIs,
        );
        t.vector(format!("{m}.D"), &mut self.d);
        t.linear(&format!("{m}.output_linear"), &mut self.output_linear);
    }
}

#[cfg(test)]
mod tests {
    //! Naive oracles for the two kernels, written from their formulas in f64 with explicit
    //! complex arithmetic and powers by repeated multiplication (no closed form shared with the
    //! fast path).

    use super::*;
    use burn::backend::Flex;

    type C = (f64, f64);

    fn mul(a: C, b: C) -> C {
        (a.0 * b.0 - a.1 * b.1, a.0 * b.1 + a.1 * b.0)
    }

    fn div(a: C, b: C) -> C {
        let n = b.0 * b.0 + b.1 * b.1;
        ((a.0 * b.0 + a.1 * b.1) / n, (a.1 * b.0 - a.0 * b.1) / n)
    }

    fn values<const D: usize>(t: Tensor<Flex, D>) -> Vec<f64> {
        t.into_data()
            .convert::<f64>()
            .to_vec()
            .expect("float tensor")
    }

    /// An H3 of width 6 (3 heads), state 8, with every kernel parameter random (the reference
    /// initialises B = 1 and the shift maps to e₀, which would hide index mistakes).
    fn random_h3() -> H3<Flex> {
        let device = Default::default();
        let shape = MixerShape {
            d_model: 6,
            layers: 2,
            max_positions: 8,
        };
        let mut init = Init::<Flex>::new(11, 0.02, &device);
        let mut h3 = H3::init(&shape, &mut init).unwrap();
        let [h, m] = h3.a_imag.dims();
        let [d, n] = h3.shift_b.dims();
        h3.shift_b = Param::from_tensor(init.normal([d, n], 1.0));
        h3.shift_c = Param::from_tensor(init.normal([d, n], 1.0));
        h3.ssm_b = Param::from_tensor(init.normal([h, m, 2], 1.0));
        h3.ssm_c = Param::from_tensor(init.normal([h, m, 2], 1.0));
        h3.log_dt = Param::from_tensor(init.uniform([h], 2.0).sub_scalar(3.0));
        h3.inv_a_real = Param::from_tensor(init.normal([h, m], 0.5));
        h3
    }

    fn assert_close(got: &[f64], want: &[f64]) {
        let scale = want.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-5 * scale, "entry {i}: {g} vs {w}");
        }
    }

    #[test]
    fn diagonal_ssm_kernel_equals_the_bilinear_recurrence() {
        let h3 = random_h3();
        let s = 7;
        let [h, m] = h3.a_imag.dims();
        let (log_dt, a_re, a_im) = (
            values(h3.log_dt.val()),
            values(h3.inv_a_real.val()),
            values(h3.a_imag.val()),
        );
        let (b, c) = (values(h3.ssm_b.val()), values(h3.ssm_c.val()));
        // K[t, h] = 2·Re Σ_m C'·dA^t with dA = (1 + ΔA/2)/(1 − ΔA/2), C' = B·C·Δ/(1 − ΔA/2).
        let mut want = vec![0.0; s * h];
        for hh in 0..h {
            let dt = log_dt[hh].exp();
            for mm in 0..m {
                let k = hh * m + mm;
                let dta = (-a_re[k].exp() * dt, a_im[k] * dt);
                let half = (dta.0 / 2.0, dta.1 / 2.0);
                let da = div((1.0 + half.0, half.1), (1.0 - half.0, -half.1));
                let bc = mul((b[2 * k], b[2 * k + 1]), (c[2 * k], c[2 * k + 1]));
                let mut term = div((bc.0 * dt, bc.1 * dt), (1.0 - half.0, -half.1));
                for t in 0..s {
                    want[t * h + hh] += 2.0 * term.0;
                    term = mul(term, da);
                }
            }
        }
        assert_close(&values(h3.ssm_kernel(s)), &want);
    }

    #[test]
    fn shift_filter_is_the_sum_over_the_shifted_state() {
        let h3 = random_h3();
        let [d, n] = h3.shift_b.dims();
        let (b, c) = (values(h3.shift_b.val()), values(h3.shift_c.val()));
        // Longer than the state, so lags ≥ N (all zero) are covered too.
        let s = n + 3;
        let mut want = vec![0.0; s * d];
        for t in 0..s {
            for ch in 0..d {
                want[t * d + ch] = (0..n)
                    .filter(|k| k + t < n)
                    .map(|k| b[ch * n + k] * c[ch * n + k + t])
                    .sum();
            }
        }
        assert_close(&values(h3.shift_filter(s)), &want);
    }
}
