//! Mamba's selective scan, `h_t = exp(Δ_t·A)⊙h_{t−1} + (Δ_t·x_t)⊗B_t`, `y_t = h_t·C_t`,
//! in two forms with one signature:
//!
//! - [`selective_scan`], the training path: chunks of [`CHUNK`] steps in closed form. Within a
//!   chunk, with `S_t = Σ_{r≤t} Δ_r·A` (the log-decay from the chunk start),
//!   `h_t = Σ_{j≤t} exp(S_t − S_j)·(Δ_j x_j)⊗B_j + exp(S_t)·h_start`; only the state between
//!   chunks is carried sequentially. A per-timestep loop under autodiff records ~6 graph nodes
//!   per step on small tensors, which is what makes naive CPU ports slow; the chunked form
//!   records ~15 per chunk.
//! - [`selective_scan_sequential`], the plain recurrence, kept as the oracle in tests.
//!
//! `S_t − S_j ≤ 0` for `j ≤ t` (Δ > 0, A < 0), so every exponential is at most 1; the entries
//! above the diagonal are masked *before* the exponential, where they could overflow.
//!
//! Shape letters: b batch, s/t/j sequence, q chunk, i inner channels (d_inner), n state (16).

use burn::tensor::{Bool, Tensor, backend::Backend};

/// Steps per chunk. The decay matrix of a chunk is `[b, i, n, q, q]`: 16 keeps it ≈ 17 MB at
/// d_model 64, batch 32 (`mechlab bench --mixer mamba` measures the choice).
pub const CHUNK: usize = 16;

/// # Shapes
/// - `x_bsi`, `delta_bsi`: `[b, s, i]`; `a_in`: `[i, n]`; `b_bsn`, `c_bsn`: `[b, s, n]`
/// - → `y`: `[b, s, i]` (without the `D·x` skip)
pub fn selective_scan<B: Backend>(
    x_bsi: Tensor<B, 3>,
    delta_bsi: Tensor<B, 3>,
    a_in: Tensor<B, 2>,
    b_bsn: Tensor<B, 3>,
    c_bsn: Tensor<B, 3>,
) -> Tensor<B, 3> {
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
    let [_, n] = a_in.dims();
    let device = x_bsi.device();
    let a_11in = a_in.reshape([1, 1, i, n]);
    let u_bsi = delta_bsi.clone() * x_bsi;
    let mut h_bin: Option<Tensor<B, 3>> = None;
    let mut ys = Vec::with_capacity(s.div_ceil(chunk));
    for t0 in (0..s).step_by(chunk.max(1)) {
        let t1 = (t0 + chunk).min(s);
        let q = t1 - t0;
        let delta_bqi = delta_bsi.clone().slice([0..b, t0..t1, 0..i]);
        // S[b, i, n, t] = Σ_{r≤t} Δ_r·A, the log-decay from the chunk start (≤ 0).
        let s_binq = (delta_bqi.unsqueeze_dim::<4>(3) * a_11in.clone())
            .cumsum(1)
            .permute([0, 2, 3, 1]);
        // burn's `tril_mask` is true *outside* the lower triangle: at j > t.
        let above_qq: Tensor<B, 2, Bool> = Tensor::<B, 2, Bool>::tril_mask([q, q], 0, &device);
        let decay_binqq = (s_binq.clone().unsqueeze_dim::<5>(4)
            - s_binq.clone().unsqueeze_dim::<5>(3))
        .mask_fill(
            above_qq.reshape([1, 1, 1, q, q]).expand([b, i, n, q, q]),
            f32::NEG_INFINITY,
        )
        .exp();
        // Bu[b, i, n, j] = Δ_j·x_j·B_j
        let bu_binq = (u_bsi
            .clone()
            .slice([0..b, t0..t1, 0..i])
            .unsqueeze_dim::<4>(3)
            * b_bsn
                .clone()
                .slice([0..b, t0..t1, 0..n])
                .unsqueeze_dim::<4>(2))
        .permute([0, 2, 3, 1]);
        let mut h_binq = (decay_binqq * bu_binq.unsqueeze_dim::<5>(3))
            .sum_dim(4)
            .squeeze_dim::<4>(4);
        if let Some(h0_bin) = h_bin {
            h_binq = h_binq + s_binq.exp() * h0_bin.unsqueeze_dim::<4>(3);
        }
        h_bin = Some(
            h_binq
                .clone()
                .slice([0..b, 0..i, 0..n, q - 1..q])
                .squeeze_dim::<3>(3),
        );
        // y[b, t, i] = Σ_n h[b, i, n, t]·C[b, t, n]
        let c_bq1n = c_bsn
            .clone()
            .slice([0..b, t0..t1, 0..n])
            .unsqueeze_dim::<4>(2);
        ys.push(
            (h_binq.permute([0, 3, 1, 2]) * c_bq1n)
                .sum_dim(3)
                .squeeze_dim::<3>(3),
        );
    }
    Tensor::cat(ys, 1)
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
    fn chunked_scan_equals_the_recurrence_for_every_chunk_length() {
        for s in [1, 5, 16, 37] {
            let [x, d, bm, cm] = inputs(s);
            let want = selective_scan_sequential(x.clone(), d.clone(), a(), bm.clone(), cm.clone());
            for chunk in [1, 3, 8, 16, 64] {
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
        let grads = |chunked: bool| {
            let (x, d, bm, cm) = (
                x.clone().require_grad(),
                d.clone().require_grad(),
                bm.clone().require_grad(),
                cm.clone().require_grad(),
            );
            let y = if chunked {
                selective_scan_chunked(x.clone(), d.clone(), a(), bm.clone(), cm.clone(), 8)
            } else {
                selective_scan_sequential(x.clone(), d.clone(), a(), bm.clone(), cm.clone())
            };
            // A loss that weighs every output differently.
            let w = Tensor::<B, 3>::ones(y.dims(), &y.device()).cumsum(1);
            let g = (y * w).sum().backward();
            [x, d, bm, cm].map(|t| Tensor::<B, 3>::from_inner(t.grad(&g).unwrap()))
        };
        let (c, r) = (grads(true), grads(false));
        for (gc, gr) in c.into_iter().zip(r) {
            close(gc, gr);
        }
    }
}
