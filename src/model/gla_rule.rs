//! Gated linear attention's recurrence (GLA's state update) from tensor operations, in the
//! chunked form of flash-linear-attention's `chunk_gla`: what every backend but the CPU runs (the
//! CPU runs the fused recurrence of [`super::gla_rule_cpu`]).
//!
//! Per head, `S_{−1} = 0` (`[dk, dv]`): `S_t = diag(exp(g_t))·S_{t−1} + k_t v_tᵀ`, `o_t = S_tᵀq_t`
//! (`g_t ≤ 0` the log-decay of each key channel; q arrives scaled). Within a chunk of `C`
//! positions starting from state `S`, with `B_t = Σ_{r≤t} g_r` the chunk's cumulative
//! log-decay (inclusive):
//! `o_t = (q_t ⊙ e^{B_t})ᵀS + Σ_{r≤t} [Σ_i q_{t,i} k_{r,i} e^{B_{t,i} − B_{r,i}}]·v_r` and the next
//! state `diag(e^{B_C})·S + Σ_r (k_r ⊙ e^{B_C − B_r}) v_rᵀ`. Every exponent is a sum of
//! log-decays over a span of positions, so it is ≤ 0: nothing overflows, however strong the
//! decay (the score's decay is taken per key channel, `[C, C, dk]`, rather than factored into
//! `q·e^{B}` and `k·e^{−B}`, whose second factor overflows for strong decays). The cost in
//! operations is `s/C` chunk steps whatever the batch and heads; `C` = [`CHUNK`].
//!
//! Shape letters: n = batch·heads (each row its own recurrence), s sequence, c chunk position,
//! m chunks, k key width, v value width.

use burn::tensor::{Tensor, TensorData, backend::Backend};

use super::ops::{heads_first, heads_last, in_chunks};

/// Positions per chunk.
pub const CHUNK: usize = 16;

/// GLA's outputs `o_t = S_tᵀq_t` per head (q arrives scaled), the heads side by side in the
/// channels as the projections write them (head `j`: channels `j·dk..(j+1)·dk`).
///
/// # Shapes
/// - `q_bsk`, `k_bsk`, `g_bsk`: `[b, s, h·dk]`, `v_bsv`: `[b, s, h·dv]` → `[b, s, h·dv]`
pub fn gla_rule<B: Backend>(
    q_bsk: Tensor<B, 3>,
    k_bsk: Tensor<B, 3>,
    v_bsv: Tensor<B, 3>,
    g_bsk: Tensor<B, 3>,
    heads: usize,
) -> Tensor<B, 3> {
    if let Some(o) = super::gla_rule_cpu::try_fused(&q_bsk, &k_bsk, &v_bsv, &g_bsk, heads) {
        return o;
    }
    let h = heads;
    let o_nsv = gla_rule_chunked(
        heads_first(q_bsk, h),
        heads_first(k_bsk, h),
        heads_first(v_bsv, h),
        heads_first(g_bsk, h),
    );
    heads_last(o_nsv, h)
}

/// [`gla_rule`] from tensor operations, chunk by chunk (the accelerators' form), on head-first
/// rows (`n = b·h`).
///
/// # Shapes
/// - `q_nsk`, `k_nsk`, `g_nsk`: `[n, s, dk]`, `v_nsv`: `[n, s, dv]` → `[n, s, dv]`
pub fn gla_rule_chunked<B: Backend>(
    q_nsk: Tensor<B, 3>,
    k_nsk: Tensor<B, 3>,
    v_nsv: Tensor<B, 3>,
    g_nsk: Tensor<B, 3>,
) -> Tensor<B, 3> {
    let [n, s, dk] = q_nsk.dims();
    let dv = v_nsv.dims()[2];
    let device = q_nsk.device();
    let c = CHUNK.min(s);
    let m = s.div_ceil(c);
    // Zero padding to whole chunks: a padded position has k = 0 and no decay (g = 0), so it
    // changes no state; its outputs are dropped.
    let (q, k, v, g) = (
        in_chunks(q_nsk, c),
        in_chunks(k_nsk, c),
        in_chunks(v_nsv, c),
        in_chunks(g_nsk, c),
    );
    let cum = g.cumsum(1);
    // Scores within a chunk: the decay from r to t per key channel, masked to r ≤ t before the
    // exponential (above the diagonal the exponent would be positive).
    let mask = lower_ones::<B>(c, &device).reshape([1, c, c, 1]);
    let span =
        (cum.clone().unsqueeze_dim::<4>(2) - cum.clone().unsqueeze_dim::<4>(1)) * mask.clone();
    let scores =
        (q.clone().unsqueeze_dim::<4>(2) * k.clone().unsqueeze_dim::<4>(1) * span.exp() * mask)
            .sum_dim(3)
            .reshape([n * m, c, c]);
    let within = scores.matmul(v.clone()).reshape([n, m, c, dv]);
    let last = cum.clone().slice([0..n * m, c - 1..c, 0..dk]);
    let q_in = (q * cum.clone().exp()).reshape([n, m, c, dk]);
    let k_out = (k * (last.clone() - cum).exp()).reshape([n, m, c, dk]);
    let decay = last.exp().reshape([n, m, dk, 1]);
    let v = v.reshape([n, m, c, dv]);
    let chunk = |t: &Tensor<B, 4>, j: usize| {
        let [_, _, rows, cols] = t.dims();
        t.clone()
            .slice([0..n, j..j + 1, 0..rows, 0..cols])
            .reshape([n, rows, cols])
    };
    let mut outs = Vec::with_capacity(m);
    let mut state: Option<Tensor<B, 3>> = None;
    for j in 0..m {
        outs.push(match &state {
            None => chunk(&within, j),
            Some(st) => chunk(&within, j) + chunk(&q_in, j).matmul(st.clone()),
        });
        if j + 1 < m {
            let step = chunk(&k_out, j).swap_dims(1, 2).matmul(chunk(&v, j));
            state = Some(match state {
                None => step,
                Some(st) => chunk(&decay, j) * st + step,
            });
        }
    }
    let o = Tensor::cat(outs, 1);
    if m * c == s {
        o
    } else {
        o.slice([0..n, 0..s, 0..dv])
    }
}

/// `[c, c]` ones on and below the diagonal.
fn lower_ones<B: Backend>(c: usize, device: &B::Device) -> Tensor<B, 2> {
    let values: Vec<f32> = (0..c * c)
        .map(|i| if i % c <= i / c { 1.0 } else { 0.0 })
        .collect();
    Tensor::from_data(TensorData::new(values, [c, c]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cpu_ops::{Ad, with_fused};
    use crate::model::init::Init;
    use burn::backend::Flex;
    use burn::tensor::activation::log_sigmoid;

    /// The recurrence, step by step in f64: the oracle.
    fn recurrence(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        g: &[f32],
        [n, s, dk, dv]: [usize; 4],
    ) -> Vec<f64> {
        let mut out = vec![0f64; n * s * dv];
        for row in 0..n {
            let mut st = vec![0f64; dk * dv];
            for t in 0..s {
                let at = row * s + t;
                for i in 0..dk {
                    let a = (g[at * dk + i] as f64).exp();
                    for j in 0..dv {
                        st[i * dv + j] =
                            a * st[i * dv + j] + k[at * dk + i] as f64 * v[at * dv + j] as f64;
                    }
                }
                for j in 0..dv {
                    out[at * dv + j] = (0..dk)
                        .map(|i| st[i * dv + j] * q[at * dk + i] as f64)
                        .sum();
                }
            }
        }
        out
    }

    fn values<B: Backend>(t: Tensor<B, 3>) -> Vec<f32> {
        t.into_data().convert::<f32>().to_vec().unwrap()
    }

    /// Log-decays as GLA makes them (`logsigmoid(x)/16`), some strong: `x` reaches −60, a
    /// decay of e^−3.75 per step, e^−60 over a chunk.
    fn log_decay<B: Backend>(init: &mut Init<B>, shape: [usize; 3]) -> Tensor<B, 3> {
        log_sigmoid(init.normal(shape, 20.0)).div_scalar(16.0)
    }

    /// Head-first rows `[b·h, s, e]` laid out as the mixer's channels, `[b, s, h·e]`.
    fn heads_last<B: Backend>(x: Tensor<B, 3>, b: usize) -> Tensor<B, 3> {
        let [n, s, e] = x.dims();
        let h = n / b;
        x.reshape([b, h, s, e])
            .swap_dims(1, 2)
            .reshape([b, s, h * e])
    }

    #[test]
    fn chunked_and_fused_forms_equal_the_recurrence() {
        let device = Default::default();
        let (b, h, dk, dv) = (3, 2, 4, 5);
        // Lengths below, at and across chunk boundaries.
        for s in [1, 5, CHUNK, CHUNK + 3, 3 * CHUNK + 1] {
            let dims = [b * h, s, dk, dv];
            let mut init = Init::<Flex>::new(s as u64, 1.0, &device);
            let q = init.normal([b * h, s, dk], 0.5);
            let k = init.normal([b * h, s, dk], 1.0);
            let v = init.normal([b * h, s, dv], 1.0);
            let g = log_decay(&mut init, [b * h, s, dk]);
            let oracle = recurrence(
                &values(q.clone()),
                &values(k.clone()),
                &values(v.clone()),
                &values(g.clone()),
                dims,
            );
            let chunked = values(gla_rule_chunked(q.clone(), k.clone(), v.clone(), g.clone()));
            // Both paths of the mixer's entry point, on its channel layout.
            let [q, k, v, g] = [q, k, v, g].map(|x| heads_last(x, b));
            let entry = |fused: bool| {
                let o = with_fused(fused, || {
                    gla_rule(q.clone(), k.clone(), v.clone(), g.clone(), h)
                });
                values(
                    o.reshape([b, s, h, dv])
                        .swap_dims(1, 2)
                        .reshape([b * h, s, dv]),
                )
            };
            let (fused, generic) = (entry(true), entry(false));
            for (name, got) in [
                ("chunked", &chunked),
                ("fused", &fused),
                ("generic", &generic),
            ] {
                for (i, (&a, &e)) in got.iter().zip(&oracle).enumerate() {
                    assert!(
                        (a as f64 - e).abs() <= 1e-5 * e.abs().max(1.0),
                        "{name} s {s} element {i}: {a} vs {e}"
                    );
                }
            }
        }
    }

    /// Gradients of the fused operation's own backward against autodiff through the chunked
    /// tensor form, for every input (the log-decay through GLA's logsigmoid), with two heads.
    #[test]
    fn fused_backward_equals_autodiff_through_the_chunked_form() {
        let device = Default::default();
        let (b, h, dk, dv) = (2, 2, 3, 4);
        for s in [1, 7, CHUNK + 5] {
            let grads = |fused: bool| {
                let mut init = Init::<Ad>::new(11, 1.0, &device);
                let raw: Vec<Tensor<Ad, 3>> = [
                    init.normal([b, s, h * dk], 0.5),
                    init.normal([b, s, h * dk], 1.0),
                    init.normal([b, s, h * dv], 1.0),
                    init.normal([b, s, h * dk], 20.0),
                ]
                .into_iter()
                .map(|t| t.require_grad())
                .collect();
                let g = log_sigmoid(raw[3].clone()).div_scalar(16.0);
                let o = with_fused(fused, || {
                    gla_rule(raw[0].clone(), raw[1].clone(), raw[2].clone(), g, h)
                });
                // A loss that weighs every output differently.
                let weights = init.normal([b, s, h * dv], 1.0);
                let g = (o * weights).sum().backward();
                raw.iter()
                    .map(|t| values(t.grad(&g).unwrap()))
                    .collect::<Vec<_>>()
            };
            let (fused, generic) = (grads(true), grads(false));
            for (which, (a, b)) in ["q", "k", "v", "g"].iter().zip(fused.iter().zip(&generic)) {
                for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
                    assert!(
                        (x - y).abs() <= 1e-5 * y.abs().max(1.0),
                        "s {s} ∂{which}[{i}]: fused {x} vs chunked {y}"
                    );
                }
            }
        }
    }
}
