//! Mamba-2's recurrence: GLA's with one decay per head and B and C shared by the heads.
//!
//! Per head, `S_{−1} = 0` (`[n, p]`): `S_t = exp(g_t)·S_{t−1} + B_t v_tᵀ`, `y_t = S_tᵀC_t`, where
//! `v_t` is the head's `p` channels of `Δ·x` and `g_t = Δ_t·A ≤ 0`. On the CPU it runs as one
//! fused operation ([`super::ssd_rule_cpu`]); every other backend runs GLA's chunked tensor form
//! ([`super::gla_rule`]) with `q = C`, `k = B` and the decay written out for every head and key
//! channel — the state space dual's chunked form with per-channel decay taken as its special case.
//!
//! Shape letters: b batch, s sequence, n state width, h heads, p channels per head, i = h·p.

use burn::tensor::{Tensor, backend::Backend};

use super::gla_rule::gla_rule;

/// Mamba-2's outputs `y_t = S_tᵀC_t` per head, the heads side by side in the channels.
///
/// # Shapes
/// - `c_bsn`, `b_bsn`: `[b, s, n]`, `v_bsi`: `[b, s, h·p]`, `g_bsh`: `[b, s, h]` → `[b, s, h·p]`
pub fn ssd_rule<B: Backend>(
    c_bsn: Tensor<B, 3>,
    b_bsn: Tensor<B, 3>,
    v_bsi: Tensor<B, 3>,
    g_bsh: Tensor<B, 3>,
) -> Tensor<B, 3> {
    if let Some(y) = super::ssd_rule_cpu::try_fused(&c_bsn, &b_bsn, &v_bsi, &g_bsh) {
        return y;
    }
    let [b, s, n] = c_bsn.dims();
    let h = g_bsh.dims()[2];
    // `[b, s, w]` → `[b, s, h·w]`: the same channels for every head.
    let every_head = |t: Tensor<B, 3>| {
        let w = t.dims()[2];
        t.reshape([b, s, 1, w])
            .repeat_dim(2, h)
            .reshape([b, s, h * w])
    };
    // `[b, s, h]` → `[b, s, h·n]`: a head's decay on each of its n key channels.
    let g = g_bsh
        .reshape([b, s, h, 1])
        .repeat_dim(3, n)
        .reshape([b, s, h * n]);
    gla_rule(every_head(c_bsn), every_head(b_bsn), v_bsi, g, h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cpu_ops::{Ad, with_fused};
    use crate::model::init::Init;
    use burn::backend::Flex;
    use burn::tensor::activation::softplus;

    fn values<B: Backend>(t: Tensor<B, 3>) -> Vec<f32> {
        t.into_data().convert::<f32>().to_vec().unwrap()
    }

    /// The recurrence step by step in f64.
    fn recurrence(
        c: &[f32],
        bm: &[f32],
        v: &[f32],
        g: &[f32],
        [b, s, h, n, p]: [usize; 5],
    ) -> Vec<f64> {
        let mut out = vec![0f64; b * s * h * p];
        for bb in 0..b {
            for hh in 0..h {
                let mut st = vec![0f64; n * p];
                for t in 0..s {
                    let at = bb * s + t;
                    let a = (g[at * h + hh] as f64).exp();
                    for i in 0..n {
                        for j in 0..p {
                            st[i * p + j] = a * st[i * p + j]
                                + bm[at * n + i] as f64 * v[(at * h + hh) * p + j] as f64;
                        }
                    }
                    for j in 0..p {
                        out[(at * h + hh) * p + j] =
                            (0..n).map(|i| st[i * p + j] * c[at * n + i] as f64).sum();
                    }
                }
            }
        }
        out
    }

    /// Log-decays of Mamba-2's form `Δ·A`, `Δ = softplus(·)`, here with `A = −1.5` and the
    /// argument's σ 2: some strong (down to about −9 a step), most mild.
    fn log_decay<B: Backend>(init: &mut Init<B>, shape: [usize; 3]) -> Tensor<B, 3> {
        softplus(init.normal(shape, 2.0), 1.0).mul_scalar(-1.5)
    }

    #[test]
    fn fused_and_generic_forms_equal_the_recurrence() {
        let device = Default::default();
        // p = 13 leaves a remainder after the fused form's 8-lane sums; p = 16 does not.
        for (b, h, n, p) in [(3, 2, 5, 13), (2, 3, 4, 16)] {
            for s in [1, 5, 16, 19, 49] {
                let mut init = Init::<Flex>::new(s as u64, 1.0, &device);
                let c = init.normal([b, s, n], 0.5);
                let bm = init.normal([b, s, n], 1.0);
                let v = init.normal([b, s, h * p], 1.0);
                let g = log_decay(&mut init, [b, s, h]);
                let oracle = recurrence(
                    &values(c.clone()),
                    &values(bm.clone()),
                    &values(v.clone()),
                    &values(g.clone()),
                    [b, s, h, n, p],
                );
                for fused in [true, false] {
                    let got = values(with_fused(fused, || {
                        ssd_rule(c.clone(), bm.clone(), v.clone(), g.clone())
                    }));
                    for (i, (&a, &e)) in got.iter().zip(&oracle).enumerate() {
                        assert!(
                            (a as f64 - e).abs() <= 1e-5 * e.abs().max(1.0),
                            "fused {fused} p {p} s {s} element {i}: {a} vs {e}"
                        );
                    }
                }
            }
        }
    }

    /// Gradients of the fused operation's own backward against autodiff through the generic
    /// form, for every input (the log-decay through Mamba-2's softplus).
    #[test]
    fn fused_backward_equals_autodiff_through_the_generic_form() {
        let device = Default::default();
        let (b, h, n, p) = (2, 2, 3, 10);
        for s in [1, 7, 16, 21, 40] {
            let grads = |fused: bool| {
                let mut init = Init::<Ad>::new(11, 1.0, &device);
                let raw: Vec<Tensor<Ad, 3>> = [
                    init.normal([b, s, n], 0.5),
                    init.normal([b, s, n], 1.0),
                    init.normal([b, s, h * p], 1.0),
                    init.normal([b, s, h], 2.0),
                ]
                .into_iter()
                .map(|t| t.require_grad())
                .collect();
                let g = softplus(raw[3].clone(), 1.0).mul_scalar(-1.5);
                let y = with_fused(fused, || {
                    ssd_rule(raw[0].clone(), raw[1].clone(), raw[2].clone(), g)
                });
                // A loss that weighs every output differently.
                let weights = init.normal([b, s, h * p], 1.0);
                let g = (y * weights).sum().backward();
                raw.iter()
                    .map(|t| values(t.grad(&g).unwrap()))
                    .collect::<Vec<_>>()
            };
            let (fused, generic) = (grads(true), grads(false));
            for (which, (a, b)) in ["C", "B", "v", "g"].iter().zip(fused.iter().zip(&generic)) {
                for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
                    assert!(
                        (x - y).abs() <= 2e-5 * y.abs().max(1.0),
                        "s {s} ∂{which}[{i}]: fused {x} vs generic {y}"
                    );
                }
            }
        }
    }
}
