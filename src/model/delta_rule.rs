//! The delta rule (DeltaNet's state update) from tensor operations, in the chunked "WY" form of
//! flash-linear-attention's chunk kernel: what every backend but the CPU runs (the CPU runs the
//! fused recurrence of [`super::delta_rule_cpu`]).
//!
//! Per head, `S_{−1} = 0` (`[dk, dv]`): `u_t = β_t·(v_t − S_{t−1}ᵀk_t)`, `S_t = S_{t−1} + k_t u_tᵀ`,
//! `o_t = S_tᵀq_t`. Within a chunk of `C` positions starting from state `S`, the `u_t` solve
//! `(I + A)·U = diag(β)·(V − K·S)` with `A = tril(diag(β)·K·Kᵀ, −1)`: so with `W` and `U₀` the
//! solutions for the right-hand sides `diag(β)·K` and `diag(β)·V` (one forward substitution of
//! `C` steps for every chunk at once), `U = U₀ − W·S`, the chunk's outputs are
//! `Q·S + tril(Q·Kᵀ)·U` and the next state `S + Kᵀ·U`. The cost in operations is
//! `C + s/C` steps whatever the batch and the heads; `C` = [`CHUNK`].
//!
//! Shape letters: n = batch·heads (each row its own recurrence), s sequence, c chunk position,
//! m chunks, k key width, v value width.

use burn::tensor::{Tensor, TensorData, backend::Backend};

use super::ops::{heads_first, heads_last, in_chunks};

/// Positions per chunk.
pub const CHUNK: usize = 16;

/// The delta rule's outputs `o_t = S_tᵀq_t` per head (q arrives scaled), the heads side by
/// side in the channels as the projections write them (head `j`: channels `j·dk..(j+1)·dk`).
///
/// # Shapes
/// - `q_bsk`, `k_bsk`: `[b, s, h·dk]`, `v_bsv`: `[b, s, h·dv]`, `beta_bsh`: `[b, s, h]` →
///   `[b, s, h·dv]`
pub fn delta_rule<B: Backend>(
    q_bsk: Tensor<B, 3>,
    k_bsk: Tensor<B, 3>,
    v_bsv: Tensor<B, 3>,
    beta_bsh: Tensor<B, 3>,
) -> Tensor<B, 3> {
    if let Some(o) = super::delta_rule_cpu::try_fused(&q_bsk, &k_bsk, &v_bsv, &beta_bsh) {
        return o;
    }
    let [b, s, h] = beta_bsh.dims();
    let o_nsv = delta_rule_chunked(
        heads_first(q_bsk, h),
        heads_first(k_bsk, h),
        heads_first(v_bsv, h),
        beta_bsh.swap_dims(1, 2).reshape([b * h, s, 1]),
    );
    heads_last(o_nsv, h)
}

/// [`delta_rule`] from tensor operations, chunk by chunk (the accelerators' form), on
/// head-first rows (`n = b·h`).
///
/// # Shapes
/// - `q_nsk`, `k_nsk`: `[n, s, dk]`, `v_nsv`: `[n, s, dv]`, `beta_ns1`: `[n, s, 1]` →
///   `[n, s, dv]`
pub fn delta_rule_chunked<B: Backend>(
    q_nsk: Tensor<B, 3>,
    k_nsk: Tensor<B, 3>,
    v_nsv: Tensor<B, 3>,
    beta_ns1: Tensor<B, 3>,
) -> Tensor<B, 3> {
    let [n, s, dk] = q_nsk.dims();
    let dv = v_nsv.dims()[2];
    let device = q_nsk.device();
    let c = CHUNK.min(s);
    let m = s.div_ceil(c);
    // Zero padding to whole chunks: a padded position has β = 0 and k = 0, so it changes no
    // state; its outputs are dropped.
    let (q, k, v, beta) = (
        in_chunks(q_nsk, c),
        in_chunks(k_nsk, c),
        in_chunks(v_nsv, c),
        in_chunks(beta_ns1, c),
    );
    let strict = lower_ones::<B>(c, false, &device).unsqueeze_dim::<3>(0);
    let a_mcc = beta.clone() * k.clone().matmul(k.clone().swap_dims(1, 2)) * strict;
    // Forward substitution for both right-hand sides at once: x_t = rhs_t − A[t, <t]·X[<t].
    let rhs = Tensor::cat(vec![beta.clone() * k.clone(), beta * v], 2);
    let mut x = rhs.clone().slice([0..n * m, 0..1, 0..dk + dv]);
    for t in 1..c {
        let a_row = a_mcc.clone().slice([0..n * m, t..t + 1, 0..t]);
        let row = rhs.clone().slice([0..n * m, t..t + 1, 0..dk + dv]) - a_row.matmul(x.clone());
        x = Tensor::cat(vec![x, row], 1);
    }
    let w = x
        .clone()
        .slice([0..n * m, 0..c, 0..dk])
        .reshape([n, m, c, dk]);
    let u0 = x
        .slice([0..n * m, 0..c, dk..dk + dv])
        .reshape([n, m, c, dv]);
    let inclusive = lower_ones::<B>(c, true, &device).unsqueeze_dim::<3>(0);
    let scores = (q.clone().matmul(k.clone().swap_dims(1, 2)) * inclusive).reshape([n, m, c, c]);
    let q = q.reshape([n, m, c, dk]);
    let k = k.reshape([n, m, c, dk]);
    let chunk = |t: Tensor<B, 4>, j: usize| {
        let [_, _, rows, cols] = t.dims();
        t.slice([0..n, j..j + 1, 0..rows, 0..cols])
            .reshape([n, rows, cols])
    };
    let mut outs = Vec::with_capacity(m);
    let mut state: Option<Tensor<B, 3>> = None;
    for j in 0..m {
        let (u, o) = match &state {
            None => {
                let u = chunk(u0.clone(), j);
                (u.clone(), chunk(scores.clone(), j).matmul(u))
            }
            Some(st) => {
                let u = chunk(u0.clone(), j) - chunk(w.clone(), j).matmul(st.clone());
                let o = chunk(q.clone(), j).matmul(st.clone())
                    + chunk(scores.clone(), j).matmul(u.clone());
                (u, o)
            }
        };
        outs.push(o);
        if j + 1 < m {
            let step = chunk(k.clone(), j).swap_dims(1, 2).matmul(u);
            state = Some(match state {
                None => step,
                Some(st) => st + step,
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

/// `[c, c]` ones below the diagonal (and on it when `inclusive`).
fn lower_ones<B: Backend>(c: usize, inclusive: bool, device: &B::Device) -> Tensor<B, 2> {
    let values: Vec<f32> = (0..c * c)
        .map(|i| {
            let (row, col) = (i / c, i % c);
            if col < row || (inclusive && col == row) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [c, c]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cpu_ops::{Ad, with_fused};
    use crate::model::init::Init;
    use burn::backend::Flex;

    /// The recurrence, step by step in f64: the oracle.
    fn recurrence(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        beta: &[f32],
        [n, s, dk, dv]: [usize; 4],
    ) -> Vec<f64> {
        let mut out = vec![0f64; n * s * dv];
        for row in 0..n {
            let mut st = vec![0f64; dk * dv];
            for t in 0..s {
                let at = row * s + t;
                let kt: Vec<f64> = k[at * dk..][..dk].iter().map(|&x| x as f64).collect();
                let qt: Vec<f64> = q[at * dk..][..dk].iter().map(|&x| x as f64).collect();
                let u: Vec<f64> = (0..dv)
                    .map(|j| {
                        let sk: f64 = (0..dk).map(|i| st[i * dv + j] * kt[i]).sum();
                        beta[at] as f64 * (v[at * dv + j] as f64 - sk)
                    })
                    .collect();
                for i in 0..dk {
                    for j in 0..dv {
                        st[i * dv + j] += kt[i] * u[j];
                    }
                }
                for j in 0..dv {
                    out[at * dv + j] = (0..dk).map(|i| st[i * dv + j] * qt[i]).sum();
                }
            }
        }
        out
    }

    fn values<B: Backend>(t: Tensor<B, 3>) -> Vec<f32> {
        t.into_data().convert::<f32>().to_vec().unwrap()
    }

    /// Inputs as DeltaNet makes them: unit-norm q and k, β in (0, 1).
    fn inputs<B: Backend>(init: &mut Init<B>, [n, s, dk, dv]: [usize; 4]) -> [Tensor<B, 3>; 4] {
        let unit = |t: Tensor<B, 3>| t.clone() / t.square().sum_dim(2).sqrt();
        [
            unit(init.normal([n, s, dk], 1.0)),
            unit(init.normal([n, s, dk], 1.0)),
            init.normal([n, s, dv], 1.0),
            burn::tensor::activation::sigmoid(init.normal([n, s, 1], 2.0)),
        ]
    }

    /// Head-first rows `[b·h, s, e]` (`[b·h, s, 1]` for β) laid out as the mixer's channels,
    /// `[b, s, h·e]` (`[b, s, h]`).
    fn heads_last<B: Backend>(x: Tensor<B, 3>, b: usize) -> Tensor<B, 3> {
        let [n, s, e] = x.dims();
        let h = n / b;
        let x = x.reshape([b, h, s, e]).swap_dims(1, 2);
        if e == 1 {
            x.reshape([b, s, h])
        } else {
            x.reshape([b, s, h * e])
        }
    }

    #[test]
    fn chunked_and_fused_forms_equal_the_recurrence() {
        let device = Default::default();
        let (b, h) = (3, 2);
        // Lengths below, at and across chunk boundaries.
        for s in [1, 5, CHUNK, CHUNK + 3, 3 * CHUNK + 1] {
            let dims = [b * h, s, 4, 5];
            let mut init = Init::<Flex>::new(s as u64, 1.0, &device);
            let [q, k, v, beta] = inputs(&mut init, dims);
            let (hq, hk, hv, hb) = (
                values(q.clone()),
                values(k.clone()),
                values(v.clone()),
                values(beta.clone()),
            );
            let oracle = recurrence(&hq, &hk, &hv, &hb, dims);
            let chunked = values(delta_rule_chunked(
                q.clone(),
                k.clone(),
                v.clone(),
                beta.clone(),
            ));
            // Both paths of the mixer's entry point, on its channel layout.
            let [q, k, v, beta] = [q, k, v, beta].map(|x| heads_last(x, b));
            let entry = |fused: bool| {
                let o = with_fused(fused, || {
                    delta_rule(q.clone(), k.clone(), v.clone(), beta.clone())
                });
                values(
                    o.reshape([b, s, h, 5])
                        .swap_dims(1, 2)
                        .reshape([b * h, s, 5]),
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
    /// tensor form, for every input, with two heads.
    #[test]
    fn fused_backward_equals_autodiff_through_the_chunked_form() {
        let device = Default::default();
        let (b, h, dk, dv) = (2, 2, 3, 4);
        for s in [1, 7, CHUNK + 5] {
            let grads = |fused: bool| {
                let mut init = Init::<Ad>::new(11, 1.0, &device);
                let raw: Vec<Tensor<Ad, 3>> = [
                    init.normal([b, s, h * dk], 1.0),
                    init.normal([b, s, h * dk], 1.0),
                    init.normal([b, s, h * dv], 1.0),
                    init.normal([b, s, h], 2.0),
                ]
                .into_iter()
                .map(|t| t.require_grad())
                .collect();
                let unit = |t: Tensor<Ad, 3>| {
                    let t = t.reshape([b, s, h, dk]);
                    (t.clone() / t.square().sum_dim(3).sqrt()).reshape([b, s, h * dk])
                };
                let (q, k) = (unit(raw[0].clone()), unit(raw[1].clone()));
                let beta = burn::tensor::activation::sigmoid(raw[3].clone());
                let o = with_fused(fused, || delta_rule(q, k, raw[2].clone(), beta));
                // A loss that weighs every output differently.
                let weights = init.normal([b, s, h * dv], 1.0);
                let g = (o * weights).sum().backward();
                raw.iter()
                    .map(|t| values(t.grad(&g).unwrap()))
                    .collect::<Vec<_>>()
            };
            let (fused, generic) = (grads(true), grads(false));
            for (which, (a, b)) in ["q", "k", "v", "beta"]
                .iter()
                .zip(fused.iter().zip(&generic))
            {
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
