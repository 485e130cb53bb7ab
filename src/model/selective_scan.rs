//! Mamba's selective scan, `h_t = exp(Δ_t·A)⊙h_{t−1} + (Δ_t·x_t)⊗B_t`, `y_t = h_t·C_t`.
//!
//! On burn's CPU backend [`selective_scan`] is one fused operation with its own backward
//! ([`super::scan_cpu`]: 1.5–1.7× the tokens/s of Mamba training below at d_model 64). Elsewhere
//! (CUDA) it is built from tensor operations, in two forms with one signature:
//!
//! - [`selective_scan_chunked`], the training path: time-major chunks of [`CHUNK`] steps, each solved by a
//!   log-depth (Hillis–Steele) scan, with only the state between chunks carried sequentially.
//!   Each step of the recurrence is the affine map `h ↦ a_t⊙h + u_t`; two maps compose as
//!   `(a₂, u₂)∘(a₁, u₁) = (a₂a₁, a₂u₁ + u₂)`, so ⌈log₂ q⌉ rounds, each combining every position
//!   with the one `2^k` before it, give every prefix of a chunk at once.
//! - [`selective_scan_sequential`], the plain recurrence, kept as the oracle in tests.
//!
//! Only products of decays `exp(Δ·A) ≤ 1` appear (no differences of cumulative sums), so the
//! scan loses no precision against the recurrence.
//!
//! Measured (`mechlab bench --mixer mamba`, AR-32, d 64, batch 32, 2-core CPU, tokens/s): the
//! cost is allocation-bound elementwise work on `[s, b·i·n]` tensors, so fewer passes beat fewer
//! graph nodes at this length. One log-depth scan over all 37 steps: 1,925; chunks of 16: 3,454;
//! 8: 3,852; 4: 4,740; 2: 5,167; chunks of 1 (a time-major step-by-step loop): 5,447; the naive
//! `[b, s, …]` loop below: 2,444. Chunks of 1 are also the most accurate: on the
//! ill-conditioned `mamba_conv0` fixture, chunks ≥ 2 reach 1.25e-5 of the gradient scale where
//! PyTorch float32 reaches 0.4e-5 (`tests/reference_numerics.rs`). So [`CHUNK`] is 1: the
//! premise that a per-step loop under autodiff is what makes CPU ports slow does not hold here
//! once the layout is time-major; longer chunks remain available for long sequences.
//!
//! Shape letters: b batch, s sequence, q chunk, i inner channels (d_inner), n state (16),
//! r = b·i·n (one time step's state, flattened).

use burn::tensor::{Tensor, backend::Backend};

/// Steps per chunk: 1, the fastest and most accurate length measured (see above).
pub const CHUNK: usize = 1;

/// # Shapes
/// - `x_bsi`, `delta_bsi`: `[b, s, i]`; `a_in`: `[R·i, n]` (run `r` owns batch rows
///   `r·b/R..`, see [`crate::model::runs`]); `b_bsn`, `c_bsn`: `[b, s, n]`
/// - → `y`: `[b, s, i]` (without the `D·x` skip)
pub fn selective_scan<B: Backend>(
    x_bsi: Tensor<B, 3>,
    delta_bsi: Tensor<B, 3>,
    a_in: Tensor<B, 2>,
    b_bsn: Tensor<B, 3>,
    c_bsn: Tensor<B, 3>,
) -> Tensor<B, 3> {
    // The CPU backend has the scan as one fused operation with its own backward.
    if let Some(y) = super::scan_cpu::try_fused(&x_bsi, &delta_bsi, &a_in, &b_bsn, &c_bsn) {
        return y;
    }
    selective_scan_chunked(x_bsi, delta_bsi, a_in, b_bsn, c_bsn, CHUNK)
}

/// [`selective_scan`] with an explicit chunk length (tests and benchmarks).
pub fn selective_scan_chunked<B: Backend>(
    x_bsi: Tensor<B, 3>,
    delta_bsi: Tensor<B, 3>,
    a_in: Tensor<B, 2>,
    b_bsn: Tensor<B, 3>,
    c_bsn: Tensor<B, 3>,
    chunk: usize,
) -> Tensor<B, 3> {
    let [b, s, i] = x_bsi.dims();
    let [ri, n] = a_in.dims();
    // Several runs: rows r·(b/R).. of the batch use run r's A (`[R·i, n]`).
    let runs = crate::model::runs::runs_of(ri, i);
    let r = b * i * n;
    let device = x_bsi.device();
    // Time-major, `[s, b, ·]`: a chunk is a block of whole rows, so the big `[q, r]` operands
    // below are contiguous and burn-flex takes its fast elementwise paths (slicing a
    // `[b, s, …]` layout along s is strided and ~10× slower per element). Outer products are
    // K = 1 matmuls for the same reason.
    let time_major = |t: Tensor<B, 3>| t.swap_dims(0, 1);
    let delta_sbi = time_major(delta_bsi);
    let u_sbi = delta_sbi.clone() * time_major(x_bsi);
    let (b_sbn, c_sbn) = (time_major(b_bsn), time_major(c_bsn));
    // Each batch row's A, written out per row (`runs::per_run_rows`: the same operations at
    // every run count, on the backend's contiguous fast path).
    let a_rows = crate::model::runs::per_run_rows(a_in.reshape([runs * i * n]), runs, b / runs);
    let [_, rows, _] = a_rows.dims();
    let a_1bm = a_rows.reshape([1, runs * rows, i * n]);
    let ones_1n = Tensor::<B, 2>::ones([1, n], &device);
    let mut carry_1r: Option<Tensor<B, 2>> = None;
    let mut ys = Vec::with_capacity(s.div_ceil(chunk.max(1)));
    for t0 in (0..s).step_by(chunk.max(1)) {
        let q = (t0 + chunk).min(s) - t0;
        let rows = |t: &Tensor<B, 3>, w: usize| t.clone().slice([t0..t0 + q, 0..b, 0..w]);
        // a[t, (b, i, n)] = exp(Δ[t, b, i]·A[i, n])
        let delta_rep = rows(&delta_sbi, i)
            .reshape([q * b * i, 1])
            .matmul(ones_1n.clone())
            .reshape([q * b, i * n]);
        let mut a_qr = (delta_rep.reshape([q, b, i * n]) * a_1bm.clone())
            .exp()
            .reshape([q, r]);
        // h[t, (b, i, n)] = Δ[t, b, i]·x[t, b, i]·B[t, b, n], the step's input
        let mut h_qr = rows(&u_sbi, i)
            .reshape([q * b, i, 1])
            .matmul(rows(&b_sbn, n).reshape([q * b, 1, n]))
            .reshape([q, r]);
        // After round k, (a_t, h_t) composes steps t−2^k+1..t of the chunk. A round shifts by
        // `offset` rows, padding with the identity map (a = 1, h = 0).
        let mut offset = 1;
        while offset < q {
            let shift = |t: &Tensor<B, 2>, fill: f32| {
                Tensor::cat(
                    vec![
                        Tensor::full([offset, r], fill, &device),
                        t.clone().slice([0..q - offset, 0..r]),
                    ],
                    0,
                )
            };
            let h_prev = shift(&h_qr, 0.0);
            let a_prev = shift(&a_qr, 1.0);
            h_qr = h_qr + a_qr.clone() * h_prev;
            a_qr = a_qr * a_prev;
            offset *= 2;
        }
        // a now holds each step's decay since the chunk start: add the carried state.
        if let Some(carry) = carry_1r {
            h_qr = h_qr + a_qr * carry;
        }
        carry_1r = Some(h_qr.clone().slice([q - 1..q, 0..r]));
        // y[t, b, i] = Σ_n h[t, b, i, n]·C[t, b, n]
        ys.push(
            h_qr.reshape([q * b, i, n])
                .matmul(rows(&c_sbn, n).reshape([q * b, n, 1]))
                .reshape([q, b, i]),
        );
    }
    Tensor::cat(ys, 0).swap_dims(0, 1)
}

/// The recurrence one step at a time: the oracle for [`selective_scan`].
pub fn selective_scan_sequential<B: Backend>(
    x_bsi: Tensor<B, 3>,
    delta_bsi: Tensor<B, 3>,
    a_in: Tensor<B, 2>,
    b_bsn: Tensor<B, 3>,
    c_bsn: Tensor<B, 3>,
) -> Tensor<B, 3> {
    let [b, s, i] = x_bsi.dims();
    let [_, n] = a_in.dims();
    let mut h_bin = Tensor::<B, 3>::zeros([b, i, n], &x_bsi.device());
    let mut ys = Vec::with_capacity(s);
    for t in 0..s {
        let delta_bi1 = delta_bsi
            .clone()
            .slice([0..b, t..t + 1, 0..i])
            .reshape([b, i, 1]);
        let x_bi1 = x_bsi
            .clone()
            .slice([0..b, t..t + 1, 0..i])
            .reshape([b, i, 1]);
        let b_b1n = b_bsn.clone().slice([0..b, t..t + 1, 0..n]);
        let c_b1n = c_bsn.clone().slice([0..b, t..t + 1, 0..n]);
        let decay_bin = (delta_bi1.clone() * a_in.clone().unsqueeze_dim(0)).exp();
        h_bin = decay_bin * h_bin + (delta_bi1 * x_bi1) * b_b1n;
        ys.push((h_bin.clone() * c_b1n).sum_dim(2).reshape([b, 1, i]));
    }
    Tensor::cat(ys, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::init::Init;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::activation::softplus;

    type B = Autodiff<Flex>;

    fn inputs(s: usize) -> [Tensor<B, 3>; 4] {
        let device = Default::default();
        let (b, i, n) = (2, 3, 4);
        let mut init = Init::<B>::new(s as u64, 1.0, &device);
        let mut r = |shape: [usize; 3]| init.normal(shape, 1.0);
        [
            r([b, s, i]),
            softplus(r([b, s, i]), 1.0),
            r([b, s, n]),
            r([b, s, n]),
        ]
    }

    fn a() -> Tensor<B, 2> {
        let device = Default::default();
        // Decay rates from slow to fast, as Mamba's A = −(1..n).
        Tensor::<B, 1>::from_floats([-0.5, -1.0, -4.0, -16.0], &device)
            .reshape([1, 4])
            .repeat_dim(0, 3)
    }

    fn close(x: Tensor<B, 3>, y: Tensor<B, 3>) {
        let x: Vec<f32> = x.into_data().to_vec().unwrap();
        let y: Vec<f32> = y.into_data().to_vec().unwrap();
        let scale = y.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        for (p, q) in x.iter().zip(&y) {
            assert!((p - q).abs() <= 1e-5 * scale, "{p} vs {q}");
        }
    }

    #[test]
    fn chunked_scan_equals_the_recurrence_for_every_length_and_chunk() {
        // Powers of two and their neighbours exercise partial rounds and partial chunks.
        for s in [1, 2, 3, 4, 5, 8, 9, 16, 17, 37] {
            let [x, d, bm, cm] = inputs(s);
            let want = selective_scan_sequential(x.clone(), d.clone(), a(), bm.clone(), cm.clone());
            for chunk in [1, 3, 8, 64] {
                let got = selective_scan_chunked(
                    x.clone(),
                    d.clone(),
                    a(),
                    bm.clone(),
                    cm.clone(),
                    chunk,
                );
                close(got, want.clone());
            }
        }
    }

    #[test]
    fn chunked_scan_gradients_equal_the_recurrence_gradients() {
        let [x, d, bm, cm] = inputs(21);
        // `None`: the recurrence; `Some(q)`: chunks of q (the production CHUNK and log-depth
        // chunks with partial rounds and a partial last chunk).
        let grads = |chunk: Option<usize>| {
            let (x, d, bm, cm) = (
                x.clone().require_grad(),
                d.clone().require_grad(),
                bm.clone().require_grad(),
                cm.clone().require_grad(),
            );
            let y = match chunk {
                Some(q) => {
                    selective_scan_chunked(x.clone(), d.clone(), a(), bm.clone(), cm.clone(), q)
                }
                None => {
                    selective_scan_sequential(x.clone(), d.clone(), a(), bm.clone(), cm.clone())
                }
            };
            // A loss that weighs every output differently.
            let w = Tensor::<B, 3>::ones(y.dims(), &y.device()).cumsum(1);
            let g = (y * w).sum().backward();
            [x, d, bm, cm].map(|t| Tensor::<B, 3>::from_inner(t.grad(&g).unwrap()))
        };
        let want = grads(None);
        for q in [CHUNK, 3, 8, 64] {
            for (got, want) in grads(Some(q)).into_iter().zip(want.clone()) {
                close(got, want);
            }
        }
    }

    #[test]
    fn the_fused_cpu_scan_and_its_backward_equal_the_recurrence() {
        let [x, d, bm, cm] = inputs(13);
        // Two runs (batch rows 0 and 1), each with its own A, to cover the run axis too.
        let a2 = Tensor::cat(vec![a(), a().mul_scalar(0.3)], 0).require_grad();
        let grads = |fused: bool| {
            let (x, d, bm, cm, a2) = (
                x.clone().require_grad(),
                d.clone().require_grad(),
                bm.clone().require_grad(),
                cm.clone().require_grad(),
                a2.clone(),
            );
            let y = if fused {
                use super::super::cpu_ops::with_fused;
                let y = with_fused(true, || {
                    selective_scan(x.clone(), d.clone(), a2.clone(), bm.clone(), cm.clone())
                });
                assert!(
                    with_fused(true, || super::super::scan_cpu::try_fused(
                        &x, &d, &a2, &bm, &cm
                    ))
                    .is_some(),
                    "flex takes the fused path"
                );
                assert!(
                    with_fused(false, || super::super::scan_cpu::try_fused(
                        &x, &d, &a2, &bm, &cm
                    ))
                    .is_none(),
                    "MECHLAB_GENERIC_OPS takes the tensor operations"
                );
                y
            } else {
                // The recurrence per run, stacked.
                let half = |t: &Tensor<B, 3>, r: usize| t.clone().narrow(0, r, 1);
                let rows: Vec<_> = (0..2)
                    .map(|r| {
                        selective_scan_sequential(
                            half(&x, r),
                            half(&d, r),
                            a2.clone().narrow(0, 3 * r, 3),
                            half(&bm, r),
                            half(&cm, r),
                        )
                    })
                    .collect();
                Tensor::cat(rows, 0)
            };
            let w = Tensor::<B, 3>::ones(y.dims(), &y.device()).cumsum(1);
            let g = (y.clone() * w).sum().backward();
            let three = [x, d, bm, cm].map(|t| Tensor::<B, 3>::from_inner(t.grad(&g).unwrap()));
            let ga = Tensor::<B, 2>::from_inner(a2.grad(&g).unwrap());
            (y, three, ga)
        };
        let (y, g3, ga) = grads(true);
        let (y_want, g3_want, ga_want) = grads(false);
        close(y, y_want);
        for (got, want) in g3.into_iter().zip(g3_want) {
            close(got, want);
        }
        close(ga.unsqueeze_dim(0), ga_want.unsqueeze_dim(0));
    }
}
