//! Tensor operations the mixers share: picking positions out of a sequence, and the causal
//! depthwise convolution (BaseConv, Hyena, Mamba).

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

/// Rows at flat positions `b·seq + t` of a `[batch, seq, width]` tensor, as `[n, 1, width]`.
pub fn gather_positions<B: Backend>(
    x_bsw: Tensor<B, 3>,
    flat_n: Tensor<B, 1, Int>,
) -> Tensor<B, 3> {
    let [b, s, w] = x_bsw.dims();
    let [n] = flat_n.dims();
    x_bsw
        .reshape([b * s, w])
        .select(0, flat_n)
        .reshape([n, 1, w])
}

/// One position per row, `at[r]` of row `r`, as `[batch, 1, width]`.
pub fn at_positions<B: Backend>(x_bsw: Tensor<B, 3>, at: &[usize]) -> Tensor<B, 3> {
    let [b, s, _] = x_bsw.dims();
    let device = x_bsw.device();
    let flat = (0..b).map(|r| (r * s + at[r]) as i64).collect();
    gather_positions(x_bsw, int_tensor(flat, [b], &device))
}

/// Builds an `Int` tensor from `u32` data.
pub fn int_tensor<B: Backend, const D: usize>(
    values: Vec<i64>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// `y[t] = Σ_j w[j]·u[t − (k−1) + j] + bias`, with `u` zero before the start: PyTorch's
/// `Conv1d(padding = k − 1)` truncated to the first `s` outputs (cross-correlation order). With
/// several runs ([`super::runs`]), run `r`'s rows use run `r`'s taps. On the CPU one fused
/// operation ([`super::conv_cpu`], the same values bit for bit).
///
/// # Shapes
/// - `u_bsd`: `[R·b, s, d]`, `w_dk`: `[R·d, k]`, `bias_d`: `[R·d]` → `[R·b, s, d]`
pub fn causal_depthwise_conv<B: Backend>(
    u_bsd: Tensor<B, 3>,
    w_dk: Tensor<B, 2>,
    bias_d: Tensor<B, 1>,
) -> Tensor<B, 3> {
    let [_, _, d] = u_bsd.dims();
    let [rd, _] = w_dk.dims();
    causal_depthwise_conv_runs(u_bsd, w_dk, Some(bias_d), super::runs::runs_of(rd, d))
}

/// `silu(causal_depthwise_conv(u, w, bias))` (bias optional): Mamba's, Mamba-2's and DeltaNet's
/// convolutions. On the CPU one fused operation (the same values bit for bit).
///
/// # Shapes
/// - `u_bsd`: `[R·b, s, d]`, `w_dk`: `[R·d, k]`, `bias_d`: `[R·d]` → `[R·b, s, d]`
pub fn causal_depthwise_conv_silu<B: Backend>(
    u_bsd: Tensor<B, 3>,
    w_dk: Tensor<B, 2>,
    bias_d: Option<Tensor<B, 1>>,
) -> Tensor<B, 3> {
    if let Some(y) = super::conv_cpu::try_fused(&u_bsd, &w_dk, bias_d.as_ref(), true) {
        return y;
    }
    let [_, _, d] = u_bsd.dims();
    let [rd, _] = w_dk.dims();
    let runs = super::runs::runs_of(rd, d);
    burn::tensor::activation::silu(causal_depthwise_conv_runs(u_bsd, w_dk, bias_d, runs))
}

/// [`causal_depthwise_conv`], time-major: a time slice of `[s, R·b·d]` is contiguous, and each
/// run's taps are written out over its rows (`runs::per_run_rows`, then over time), so every
/// product and sum runs on the backend's contiguous fast path — the same operations at every run
/// count.
fn causal_depthwise_conv_runs<B: Backend>(
    u_bsd: Tensor<B, 3>,
    w_dk: Tensor<B, 2>,
    bias_d: Option<Tensor<B, 1>>,
    runs: usize,
) -> Tensor<B, 3> {
    if let Some(y) = super::conv_cpu::try_fused(&u_bsd, &w_dk, bias_d.as_ref(), false) {
        return y;
    }
    let [rb, s, d] = u_bsd.dims();
    let [rd, k] = w_dk.dims();
    let device = u_bsd.device();
    let width = rb * d;
    let u_sw = u_bsd.swap_dims(0, 1).reshape([s, width]);
    let padded = if k > 1 {
        Tensor::cat(vec![Tensor::zeros([k - 1, width], &device), u_sw], 0)
    } else {
        u_sw
    };
    let ones_s1 = Tensor::<B, 2>::ones([s, 1], &device);
    let over_time = |v_rd: Tensor<B, 1>| {
        let row = super::runs::written_rows(v_rd, runs, rb / runs).reshape([1, width]);
        ones_s1.clone().matmul(row)
    };
    let mut y_sw = bias_d.map(over_time);
    for j in 0..k {
        let tap = w_dk.clone().slice([0..rd, j..j + 1]).reshape([rd]);
        let term = over_time(tap) * padded.clone().slice([j..j + s, 0..width]);
        y_sw = Some(match y_sw {
            Some(y) => y + term,
            None => term,
        });
    }
    let y_sw = y_sw.expect("a convolution has at least one tap");
    y_sw.reshape([s, rb, d]).swap_dims(0, 1)
}

/// The heads laid side by side in the channels (head `j`: channels `j·e..(j+1)·e`) as rows of
/// their own, for the linear-attention mixers' tensor forms.
///
/// # Shapes
/// - `x_bsc`: `[b, s, h·e]` → `[b·h, s, e]`
pub fn heads_first<B: Backend>(x_bsc: Tensor<B, 3>, h: usize) -> Tensor<B, 3> {
    let [b, s, c] = x_bsc.dims();
    x_bsc
        .reshape([b, s, h, c / h])
        .swap_dims(1, 2)
        .reshape([b * h, s, c / h])
}

/// [`heads_first`] undone: `[b·h, s, e]` → `[b, s, h·e]`.
pub fn heads_last<B: Backend>(x_nse: Tensor<B, 3>, h: usize) -> Tensor<B, 3> {
    let [n, s, e] = x_nse.dims();
    x_nse
        .reshape([n / h, h, s, e])
        .swap_dims(1, 2)
        .reshape([n / h, s, h * e])
}

/// Rows cut into chunks of `c` positions, the last zero-padded: `[n, s, w]` → `[n·m, c, w]`
/// with `m = ⌈s/c⌉` (the chunked recurrences pad with positions that change no state).
pub fn in_chunks<B: Backend>(x_nsw: Tensor<B, 3>, c: usize) -> Tensor<B, 3> {
    let [n, s, w] = x_nsw.dims();
    let m = s.div_ceil(c);
    let x = if m * c == s {
        x_nsw
    } else {
        let device = x_nsw.device();
        Tensor::cat(vec![x_nsw, Tensor::zeros([n, m * c - s, w], &device)], 1)
    };
    x.reshape([n * m, c, w])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn causal_conv_matches_the_formula() {
        let device = Default::default();
        // b = 1, s = 4, d = 2; channel 0 is 1,2,3,4 and channel 1 is 10,20,30,40.
        let u = Tensor::<Flex, 3>::from_data(
            TensorData::new(vec![1., 10., 2., 20., 3., 30., 4., 40.], [1, 4, 2]),
            &device,
        );
        let w = Tensor::<Flex, 2>::from_data(
            TensorData::new(vec![1., 2., 3., 0.5, 0., -1.], [2, 3]),
            &device,
        );
        let bias = Tensor::<Flex, 1>::from_data(TensorData::new(vec![0.1, 0.2], [2]), &device);
        let y: Vec<f32> = causal_depthwise_conv(u, w, bias)
            .into_data()
            .to_vec()
            .unwrap();
        // Channel 0: y[t] = 1·u[t−2] + 2·u[t−1] + 3·u[t] + 0.1.
        let c0 = [3.1, 2. + 6. + 0.1, 1. + 4. + 9. + 0.1, 2. + 6. + 12. + 0.1];
        // Channel 1: y[t] = 0.5·u[t−2] + 0·u[t−1] − 1·u[t] + 0.2.
        let c1 = [-10. + 0.2, -20. + 0.2, 5. - 30. + 0.2, 10. - 40. + 0.2];
        for t in 0..4 {
            assert!(
                (y[2 * t] - c0[t]).abs() < 1e-5,
                "t {t}: {} vs {}",
                y[2 * t],
                c0[t]
            );
            assert!(
                (y[2 * t + 1] - c1[t]).abs() < 1e-5,
                "t {t}: {} vs {}",
                y[2 * t + 1],
                c1[t]
            );
        }
    }
}
