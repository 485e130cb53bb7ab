//! The short causal depthwise convolution (Mamba's, Mamba-2's, DeltaNet's, BaseConv's and
//! Hyena's) on the CPU backend as one operation with its own backward.
//!
//! The tensor form ([`super::ops`]) runs time-major — a swap of the batch and time axes, a
//! zero-padded copy, one product and one sum per tap — and hands back a `[b, s, d]` view of a
//! `[s, b, d]` buffer, so every operation after it (SiLU, the slices into x, B and C, the host
//! copies of the fused recurrences) walks strided memory: at Mamba-2's 384 channels (d_model 64)
//! those strided walks were a fifth of a training step. Here a batch row's output is written in
//! place, contiguous, in one pass.
//!
//! Per channel `c` and position `t`: `y_t = bias + Σ_j w_j·u_{t+j−(k−1)}` (zero before the
//! first position), the taps summed in the tensor form's order (bias first, then tap 0 to
//! k−1), so the values are the tensor form's bit for bit. The backward pass: `u'_t =
//! Σ_j w_j·y'_{t+(k−1)−j}`, `w'_j = Σ_{rows, t} y'_t·u_{t+j−(k−1)}`, `bias' = Σ y'`; the sums over
//! batch rows are taken per row in parallel and then added in row order, so they do not depend
//! on the thread count, and each run's (packed runs: `w` is `[R·d, k]`, run `r` owns batch rows
//! `r·b..(r+1)·b`) only over its own rows, as when it runs alone.
//!
//! Shape letters: r runs, b batch rows (all runs), s sequence, d channels, k taps.

use std::sync::Arc;

use rayon::prelude::*;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};

use super::cpu_ops::{Ad as A, cast, fused_enabled, host, view};

/// The convolution on `flex` (training or inference) as one fused operation, or `None` for any
/// other backend (and with the fused operations off, see [`super::cpu_ops`]).
///
/// # Shapes
/// - `u_bsd`: `[R·b, s, d]`, `w_dk`: `[R·d, k]`, `bias_d`: `[R·d]` → `[R·b, s, d]`
pub fn try_fused<B: Backend>(
    u_bsd: &Tensor<B, 3>,
    w_dk: &Tensor<B, 2>,
    bias_d: Option<&Tensor<B, 1>>,
    silu: bool,
) -> Option<Tensor<B, 3>> {
    if !fused_enabled() {
        return None;
    }
    if let (Some(u), Some(w)) = (
        view::<_, Tensor<A, 3>>(u_bsd),
        view::<_, Tensor<A, 2>>(w_dk),
    ) {
        let bias = match bias_d {
            Some(b) => Some(view::<_, Tensor<A, 1>>(b)?.clone()),
            None => None,
        };
        return cast(conv_autodiff(u.clone(), w.clone(), bias, silu));
    }
    let (Some(u), Some(w)) = (
        view::<_, Tensor<Flex, 3>>(u_bsd),
        view::<_, Tensor<Flex, 2>>(w_dk),
    ) else {
        return None;
    };
    let bias = match bias_d {
        Some(b) => Some(host(view::<_, Tensor<Flex, 1>>(b)?.clone())),
        None => None,
    };
    let dims = Dims::of(u.dims(), w.dims());
    let u_host = host(u.clone());
    let mut y = forward(
        &dims,
        &u_host,
        &taps(&dims, &host(w.clone())),
        bias.as_deref(),
    );
    if silu {
        y.par_iter_mut().for_each(|x| *x = silu_f32(*x));
    }
    cast(Tensor::<Flex, 3>::from_data(
        TensorData::new(y, u.dims()),
        &u.device(),
    ))
}

#[derive(Debug, Clone, Copy)]
struct Dims {
    /// Batch rows of all runs, and of one run.
    rows: usize,
    per_run: usize,
    s: usize,
    d: usize,
    k: usize,
}

impl Dims {
    fn of([rows, s, d]: [usize; 3], [rd, k]: [usize; 2]) -> Self {
        let runs = super::runs::runs_of(rd, d);
        Dims {
            rows,
            per_run: rows / runs,
            s,
            d,
            k,
        }
    }
}

/// `flex`'s logistic function, expression for expression (`burn_flex::ops::activation`), so that
/// the fused SiLU's values are burn's `silu` (`x·sigmoid(x)`) bit for bit.
#[inline]
fn sigmoid_f32(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[inline]
fn silu_f32(x: f32) -> f32 {
    x * sigmoid_f32(x)
}

/// SiLU's gradient as burn's autodiff takes it through `x·sigmoid(x)`: the product's `g·s` plus
/// the logistic function's `((g·x)·s)·(1 − s)`.
#[inline]
fn silu_backward_f32(x: f32, g: f32) -> f32 {
    let s = sigmoid_f32(x);
    g * s + g * x * s * (1.0 - s)
}

/// The weights `[R·d, k]` tap-major, `[R, k, d]`: a tap's weights for a run's channels side by
/// side, as a time step reads them.
fn taps(dims: &Dims, w: &[f32]) -> Vec<f32> {
    let Dims { d, k, .. } = *dims;
    let runs = w.len() / (d * k);
    let mut out = vec![0f32; w.len()];
    for r in 0..runs {
        for c in 0..d {
            for j in 0..k {
                out[(r * k + j) * d + c] = w[(r * d + c) * k + j];
            }
        }
    }
    out
}

/// `y [rows, s, d]`, batch rows in parallel.
fn forward(dims: &Dims, u: &[f32], taps: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let Dims {
        per_run, s, d, k, ..
    } = *dims;
    let mut y = vec![0f32; u.len()];
    y.par_chunks_mut(s * d)
        .enumerate()
        .for_each(|(row, y_row)| {
            let r = row / per_run;
            let u_row = &u[row * s * d..][..s * d];
            let w = &taps[r * k * d..][..k * d];
            for (t, y_t) in y_row.chunks_exact_mut(d).enumerate() {
                match bias {
                    Some(b) => y_t.copy_from_slice(&b[r * d..][..d]),
                    None => y_t.fill(0.0),
                }
                for j in 0..k {
                    // The tap's input position t + j − (k − 1), when it is not in the zero padding.
                    let Some(at) = (t + j).checked_sub(k - 1) else {
                        continue;
                    };
                    let (w_j, u_at) = (&w[j * d..][..d], &u_row[at * d..][..d]);
                    for ((y, &w), &u) in y_t.iter_mut().zip(w_j).zip(u_at) {
                        *y += w * u;
                    }
                }
            }
        });
    y
}

/// Gradients with respect to u (`[rows, s, d]`), the weights (`[R·d, k]`) and the bias (`[R·d]`).
fn backward(dims: &Dims, u: &[f32], taps: &[f32], gy: &[f32]) -> [Vec<f32>; 3] {
    let Dims {
        rows,
        per_run,
        s,
        d,
        k,
    } = *dims;
    let runs = rows / per_run;
    let mut gu = vec![0f32; u.len()];
    // Per batch row: the weights' gradients tap-major `[k, d]`, then the bias's `[d]`.
    let mut partial = vec![0f32; rows * (k + 1) * d];
    gu.par_chunks_mut(s * d)
        .zip(partial.par_chunks_mut((k + 1) * d))
        .enumerate()
        .for_each(|(row, (gu_row, part))| {
            let r = row / per_run;
            let (u_row, gy_row) = (&u[row * s * d..][..s * d], &gy[row * s * d..][..s * d]);
            let w = &taps[r * k * d..][..k * d];
            let (gw, gb) = part.split_at_mut(k * d);
            for t in 0..s {
                let gy_t = &gy_row[t * d..][..d];
                for (b, &g) in gb.iter_mut().zip(gy_t) {
                    *b += g;
                }
                for j in 0..k {
                    let Some(at) = (t + j).checked_sub(k - 1) else {
                        continue;
                    };
                    let u_at = &u_row[at * d..][..d];
                    for (gw, (&g, &u)) in gw[j * d..][..d].iter_mut().zip(gy_t.iter().zip(u_at)) {
                        *gw += g * u;
                    }
                    let (w_j, gu_at) = (&w[j * d..][..d], &mut gu_row[at * d..][..d]);
                    for (gu, (&w, &g)) in gu_at.iter_mut().zip(w_j.iter().zip(gy_t)) {
                        *gu += w * g;
                    }
                }
            }
        });
    // Each run's sums over its own rows, in row order; the weights' back to `[R·d, k]`.
    let mut gw = vec![0f32; runs * d * k];
    let mut gb = vec![0f32; runs * d];
    for r in 0..runs {
        let mut sum = vec![0f32; (k + 1) * d];
        for part in
            partial[r * per_run * (k + 1) * d..][..per_run * (k + 1) * d].chunks_exact((k + 1) * d)
        {
            for (a, &x) in sum.iter_mut().zip(part) {
                *a += x;
            }
        }
        for c in 0..d {
            for j in 0..k {
                gw[(r * d + c) * k + j] = sum[j * d + c];
            }
            gb[r * d + c] = sum[k * d + c];
        }
    }
    [gu, gw, gb]
}

/// What the backward pass needs.
#[derive(Debug, Clone)]
struct Saved {
    dims: Dims,
    /// The convolution's output before the SiLU, when one follows.
    pre_silu: Option<Arc<Vec<f32>>>,
    u: Arc<Vec<f32>>,
    taps: Arc<Vec<f32>>,
    w_dims: [usize; 2],
}

/// With `N` parents: u and w (2), and the bias (3).
#[derive(Debug)]
struct ConvBackward<const N: usize>;

impl<const N: usize> Backward<Flex, N> for ConvBackward<N> {
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let Saved {
            dims,
            pre_silu,
            u,
            taps,
            w_dims,
        } = ops.state;
        let gy = grads.consume::<Flex>(&ops.node);
        let gy = host(Tensor::<Flex, 3>::from_primitive(TensorPrimitive::Float(
            gy,
        )));
        let gy = match pre_silu {
            Some(pre) => pre
                .par_iter()
                .zip(gy.par_iter())
                .map(|(&x, &g)| silu_backward_f32(x, g))
                .collect(),
            None => gy,
        };
        let [gu, gw, gb] = backward(&dims, &u, &taps, &gy);
        let device = Default::default();
        let results = [
            Tensor::<Flex, 3>::from_data(TensorData::new(gu, [dims.rows, dims.s, dims.d]), &device)
                .into_primitive()
                .tensor(),
            Tensor::<Flex, 2>::from_data(TensorData::new(gw, w_dims), &device)
                .into_primitive()
                .tensor(),
            Tensor::<Flex, 1>::from_data(TensorData::new(gb, [w_dims[0]]), &device)
                .into_primitive()
                .tensor(),
        ];
        for (parent, grad) in ops.parents.into_iter().zip(results) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

fn conv_autodiff(
    u: Tensor<A, 3>,
    w: Tensor<A, 2>,
    bias: Option<Tensor<A, 1>>,
    silu: bool,
) -> Tensor<A, 3> {
    let dims = Dims::of(u.dims(), w.dims());
    let w_dims = w.dims();
    let device = u.device();
    let u_host = host(u.clone().inner());
    let taps = taps(&dims, &host(w.clone().inner()));
    let bias_host = bias.as_ref().map(|b| host(b.clone().inner()));
    let pre = forward(&dims, &u_host, &taps, bias_host.as_deref());
    let (y, pre_silu) = if silu {
        let y = pre.par_iter().map(|&x| silu_f32(x)).collect();
        (y, Some(Arc::new(pre)))
    } else {
        (pre, None)
    };
    let y = Tensor::<Flex, 3>::from_data(TensorData::new(y, [dims.rows, dims.s, dims.d]), &device)
        .into_primitive()
        .tensor();
    let saved = Saved {
        dims,
        pre_silu,
        u: Arc::new(u_host),
        taps: Arc::new(taps),
        w_dims,
    };
    let u = u.into_primitive().tensor();
    let w = w.into_primitive().tensor();
    // burn does not name its node type, so each arity spells out its own `prepare`.
    macro_rules! finish {
        ($op:expr, $nodes:expr) => {
            match $op
                .prepare::<NoCheckpointing>($nodes)
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish(saved, y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        };
    }
    let out = match bias {
        Some(b) => {
            let b = b.into_primitive().tensor();
            finish!(ConvBackward::<3>, [u.node, w.node, b.node])
        }
        None => finish!(ConvBackward::<2>, [u.node, w.node]),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cpu_ops::with_fused;
    use crate::model::init::Init;
    use crate::model::ops::{causal_depthwise_conv, causal_depthwise_conv_silu};

    fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().convert::<f32>().to_vec().unwrap()
    }

    /// Values bit for bit the tensor form's (and burn's SiLU's), and gradients (u, w, bias)
    /// within f32 rounding (the tensor form sums the weights' gradients in another order): with
    /// a bias and no SiLU (BaseConv's, Hyena's), with both (Mamba's, Mamba-2's), SiLU without a
    /// bias (DeltaNet's), for one run and three packed runs, sequences shorter and longer than
    /// the taps.
    #[test]
    fn fused_equals_the_tensor_form() {
        let device = Default::default();
        for (runs, b, d) in [(1, 3, 5), (3, 2, 4)] {
            for k in 1..=4 {
                for s in [1, 2, 9] {
                    for (biased, with_silu) in [(true, false), (true, true), (false, true)] {
                        let run = |fused: bool| {
                            let mut init = Init::<A>::new(7, 1.0, &device);
                            let u = init.normal([runs * b, s, d], 1.0).require_grad();
                            let w = init.normal([runs * d, k], 1.0).require_grad();
                            let bias = init.normal([runs * d], 1.0).require_grad();
                            let weights = init.normal([runs * b, s, d], 1.0);
                            let y = with_fused(fused, || {
                                let b = biased.then(|| bias.clone());
                                if with_silu {
                                    causal_depthwise_conv_silu(u.clone(), w.clone(), b)
                                } else {
                                    causal_depthwise_conv(u.clone(), w.clone(), bias.clone())
                                }
                            });
                            let grads = (y.clone() * weights).sum().backward();
                            let mut out = vec![values(y), values(u.grad(&grads).unwrap())];
                            out.push(values(w.grad(&grads).unwrap()));
                            if biased {
                                out.push(values(bias.grad(&grads).unwrap()));
                            } else {
                                assert!(bias.grad(&grads).is_none());
                            }
                            out
                        };
                        let (fused, generic) = (run(true), run(false));
                        assert_eq!(
                            fused[0], generic[0],
                            "values, runs {runs} k {k} s {s} silu {with_silu}"
                        );
                        for (name, (a, e)) in ["u", "w", "bias"]
                            .iter()
                            .zip(fused[1..].iter().zip(&generic[1..]))
                        {
                            for (i, (&a, &e)) in a.iter().zip(e).enumerate() {
                                assert!(
                                    (a - e).abs() <= 1e-5 * e.abs().max(1.0),
                                    "∂{name}[{i}] runs {runs} k {k} s {s} bias {biased} \
                                     silu {with_silu}: {a} vs {e}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// Packed runs get their own weights' gradients bit for bit as when each runs alone.
    #[test]
    fn packed_runs_equal_runs_alone() {
        let device = Default::default();
        let (runs, b, s, d, k) = (3, 2, 7, 4, 3);
        let mut init = Init::<A>::new(3, 1.0, &device);
        let u = init.normal([runs * b, s, d], 1.0);
        let w = init.normal([runs * d, k], 1.0);
        let bias = init.normal([runs * d], 1.0);
        let weights = init.normal([runs * b, s, d], 1.0);
        let grads = |u: Tensor<A, 3>, w: Tensor<A, 2>, bias: Tensor<A, 1>, g: Tensor<A, 3>| {
            let (u, w, bias) = (u.require_grad(), w.require_grad(), bias.require_grad());
            let y = causal_depthwise_conv(u.clone(), w.clone(), bias.clone());
            let grads = (y.clone() * g).sum().backward();
            [
                values(y),
                values(u.grad(&grads).unwrap()),
                values(w.grad(&grads).unwrap()),
                values(bias.grad(&grads).unwrap()),
            ]
        };
        let packed = with_fused(true, || {
            grads(u.clone(), w.clone(), bias.clone(), weights.clone())
        });
        for r in 0..runs {
            let alone = with_fused(true, || {
                grads(
                    u.clone().slice([r * b..(r + 1) * b, 0..s, 0..d]),
                    w.clone().slice([r * d..(r + 1) * d, 0..k]),
                    bias.clone().slice(r * d..(r + 1) * d),
                    weights.clone().slice([r * b..(r + 1) * b, 0..s, 0..d]),
                )
            });
            for (i, per) in [b * s * d, b * s * d, d * k, d].into_iter().enumerate() {
                assert_eq!(
                    packed[i][r * per..][..per],
                    alone[i][..],
                    "output {i}, run {r}"
                );
            }
        }
    }
}
