//! Mamba's selective scan on the CPU backend as one operation with its own backward: plain loops
//! over host memory instead of ~12 tensor operations per time step, each recorded by autodiff and
//! replayed backward. burn's autodiff lets an operation bring its own gradient
//! ([`Backward`]); this is that operation for burn's `flex` CPU backend, in training
//! (`Autodiff<Flex>`) and inference (`Flex`). Other backends keep the tensor-op scan of
//! [`super::selective_scan`] (on a GPU the host loops would cost a round trip).
//!
//! Forward, per batch row, channel `i` and state `n`, in time order:
//! `h_t = exp(Δ_t·A)⊙h_{t−1} + Δ_t·x_t·B_t`, `y_t = Σ_n h_t·C_t` — the recurrence itself, the
//! form [`super::selective_scan::selective_scan_sequential`] is the oracle of. Backward runs the
//! adjoint recurrence in reverse time: with `g_t = ∂L/∂h_t` (from `y_t` and from `h_{t+1}`),
//! `∂L/∂C_t = Σ_i g_y·h_t`, `∂L/∂h_{t−1} = g_t⊙exp(Δ_t·A)`, and the decay's and the input's
//! gradients give `∂L/∂Δ_t`, `∂L/∂A`, `∂L/∂x_t`, `∂L/∂B_t`. The states `h_t` are kept from the
//! forward pass (`b·s·i·n` floats: 9.7 MB per layer for AR-32 at d_model 64, batch 32). Batch
//! rows run in parallel on rayon's pool (the pool burn's CPU backend uses).
//!
//! Shape letters: b batch, s sequence, i inner channels, n state; `R` runs own the batch rows in
//! equal blocks ([`super::runs`]).

use rayon::prelude::*;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};

use super::cpu_ops::{Ad as A, cast, fused_enabled, host, view};

/// The scan on `flex` (training or inference) as one fused operation, or `None` for any other
/// backend (and with the fused operations off, see [`super::cpu_ops`]).
///
/// # Shapes
/// As [`super::selective_scan::selective_scan`].
pub fn try_fused<B: Backend>(
    x_bsi: &Tensor<B, 3>,
    delta_bsi: &Tensor<B, 3>,
    a_in: &Tensor<B, 2>,
    b_bsn: &Tensor<B, 3>,
    c_bsn: &Tensor<B, 3>,
) -> Option<Tensor<B, 3>> {
    if !fused_enabled() {
        return None;
    }
    if let (Some(x), Some(d), Some(a), Some(b), Some(c)) = (
        view::<_, Tensor<A, 3>>(x_bsi),
        view::<_, Tensor<A, 3>>(delta_bsi),
        view::<_, Tensor<A, 2>>(a_in),
        view::<_, Tensor<A, 3>>(b_bsn),
        view::<_, Tensor<A, 3>>(c_bsn),
    ) {
        let y = scan_autodiff(x.clone(), d.clone(), a.clone(), b.clone(), c.clone());
        return cast(y);
    }
    // Inference: the same forward from a zero state.
    try_resumed(x_bsi, delta_bsi, a_in, b_bsn, c_bsn, None).map(|(y, _)| y)
}

/// The scan (inference, on `flex`) resumed from the states `h0` (`[b, i, n]` on the host, zero
/// when `None`), returning `y` and every state `h [b, s, i, n]` on the host: the path of
/// intervention grids that restart Mamba mid-sequence from a cached state. `None` on any other
/// backend, under autodiff, or with the fused operations off.
///
/// # Shapes
/// As [`super::selective_scan::selective_scan`].
pub fn try_resumed<B: Backend>(
    x_bsi: &Tensor<B, 3>,
    delta_bsi: &Tensor<B, 3>,
    a_in: &Tensor<B, 2>,
    b_bsn: &Tensor<B, 3>,
    c_bsn: &Tensor<B, 3>,
    h0: Option<&[f32]>,
) -> Option<(Tensor<B, 3>, Vec<f32>)> {
    if !fused_enabled() {
        return None;
    }
    let (Some(x), Some(d), Some(a), Some(b), Some(c)) = (
        view::<_, Tensor<Flex, 3>>(x_bsi),
        view::<_, Tensor<Flex, 3>>(delta_bsi),
        view::<_, Tensor<Flex, 2>>(a_in),
        view::<_, Tensor<Flex, 3>>(b_bsn),
        view::<_, Tensor<Flex, 3>>(c_bsn),
    ) else {
        return None;
    };
    let device = x.device();
    let dims = Dims::of(x.dims(), a.dims());
    if h0.is_some_and(|h0| h0.len() != dims.b * dims.i * dims.n) {
        return None;
    }
    let inputs = Inputs::read(x.clone(), d.clone(), a.clone(), b.clone(), c.clone());
    let (y, hs) = forward(&dims, &inputs, h0);
    let y = Tensor::<Flex, 3>::from_data(TensorData::new(y, [dims.b, dims.s, dims.i]), &device);
    Some((cast(y)?, hs))
}

/// Whether [`try_resumed`] runs for backend `B` (the CPU backend, fused operations on).
pub fn resumable<B: Backend>() -> bool {
    fused_enabled() && std::any::TypeId::of::<B>() == std::any::TypeId::of::<Flex>()
}

#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    s: usize,
    i: usize,
    n: usize,
    /// Batch rows per run.
    rows_per_run: usize,
}

impl Dims {
    fn of([b, s, i]: [usize; 3], [ri, n]: [usize; 2]) -> Self {
        let runs = super::runs::runs_of(ri, i);
        Dims {
            b,
            s,
            i,
            n,
            rows_per_run: b / runs,
        }
    }
}

#[derive(Debug, Clone)]
struct Inputs {
    x: Vec<f32>,
    delta: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

impl Inputs {
    fn read(
        x: Tensor<Flex, 3>,
        delta: Tensor<Flex, 3>,
        a: Tensor<Flex, 2>,
        b: Tensor<Flex, 3>,
        c: Tensor<Flex, 3>,
    ) -> Self {
        Inputs {
            x: host(x),
            delta: host(delta),
            a: host(a),
            b: host(b),
            c: host(c),
        }
    }
}

/// `y [b, s, i]` and every state `h [b, s, i, n]`, from the states `h0 [b, i, n]` before the
/// first position (zero when `None`). Batch rows run in parallel on rayon's pool (each writes
/// only its own rows, so the result does not depend on the thread count).
fn forward(d: &Dims, v: &Inputs, h0: Option<&[f32]>) -> (Vec<f32>, Vec<f32>) {
    let Dims { b, s, i, n, .. } = *d;
    let mut y = vec![0f32; b * s * i];
    let mut hs = vec![0f32; b * s * i * n];
    y.par_chunks_mut(s * i)
        .zip(hs.par_chunks_mut(s * i * n))
        .enumerate()
        .for_each(|(bb, (y_row, h_row))| {
            let a_run = &v.a[(bb / d.rows_per_run) * i * n..][..i * n];
            for ii in 0..i {
                let a_row = &a_run[ii * n..][..n];
                let mut h = match h0 {
                    Some(h0) => h0[(bb * i + ii) * n..][..n].to_vec(),
                    None => vec![0f32; n],
                };
                for t in 0..s {
                    let bsi = (bb * s + t) * i + ii;
                    let (dt, xt) = (v.delta[bsi], v.x[bsi]);
                    let bt = &v.b[(bb * s + t) * n..][..n];
                    let ct = &v.c[(bb * s + t) * n..][..n];
                    let mut acc = 0f32;
                    for k in 0..n {
                        h[k] = (dt * a_row[k]).exp() * h[k] + dt * xt * bt[k];
                        acc += h[k] * ct[k];
                    }
                    y_row[t * i + ii] = acc;
                    h_row[(t * i + ii) * n..][..n].copy_from_slice(&h);
                }
            }
        });
    (y, hs)
}

/// Gradients of `Σ gy·y` with respect to x, Δ, A, B and C. Batch rows run in parallel; A's
/// gradient, which sums over rows, is reduced in row order afterwards (deterministic).
fn backward(d: &Dims, v: &Inputs, hs: &[f32], gy: &[f32]) -> [Vec<f32>; 5] {
    let Dims { b, s, i, n, .. } = *d;
    let mut gx = vec![0f32; b * s * i];
    let mut gdelta = vec![0f32; b * s * i];
    let mut gb = vec![0f32; b * s * n];
    let mut gc = vec![0f32; b * s * n];
    let ga_rows: Vec<Vec<f32>> = gx
        .par_chunks_mut(s * i)
        .zip(gdelta.par_chunks_mut(s * i))
        .zip(gb.par_chunks_mut(s * n))
        .zip(gc.par_chunks_mut(s * n))
        .enumerate()
        .map(|(bb, (((gx_row, gd_row), gb_row), gc_row))| {
            let a_run = &v.a[(bb / d.rows_per_run) * i * n..][..i * n];
            let h_row = &hs[bb * s * i * n..][..s * i * n];
            let mut ga = vec![0f32; i * n];
            for ii in 0..i {
                let a_row = &a_run[ii * n..][..n];
                // ∂L/∂h_t carried back from h_{t+1}.
                let mut gh = vec![0f32; n];
                for t in (0..s).rev() {
                    let bsi = (bb * s + t) * i + ii;
                    let (dt, xt, g) = (v.delta[bsi], v.x[bsi], gy[bsi]);
                    let (bt, ct) = (&v.b[(bb * s + t) * n..][..n], &v.c[(bb * s + t) * n..][..n]);
                    let h_t = &h_row[(t * i + ii) * n..][..n];
                    let (mut g_dt, mut g_x) = (0f32, 0f32);
                    for k in 0..n {
                        let decay = (dt * a_row[k]).exp();
                        let h_prev = if t > 0 {
                            h_row[((t - 1) * i + ii) * n + k]
                        } else {
                            0.0
                        };
                        let gh_k = gh[k] + g * ct[k];
                        gc_row[t * n + k] += g * h_t[k];
                        // h_t = decay·h_{t−1} + Δ·x·B
                        let g_decay = gh_k * h_prev * decay;
                        g_dt += g_decay * a_row[k] + gh_k * xt * bt[k];
                        ga[ii * n + k] += g_decay * dt;
                        g_x += gh_k * dt * bt[k];
                        gb_row[t * n + k] += gh_k * dt * xt;
                        gh[k] = gh_k * decay;
                    }
                    gd_row[t * i + ii] = g_dt;
                    gx_row[t * i + ii] = g_x;
                }
            }
            ga
        })
        .collect();
    let mut ga = vec![0f32; v.a.len()];
    for (bb, row) in ga_rows.iter().enumerate() {
        let run = bb / d.rows_per_run;
        for (acc, g) in ga[run * i * n..][..i * n].iter_mut().zip(row) {
            *acc += g;
        }
    }
    [gx, gdelta, ga, gb, gc]
}

/// What the backward pass needs: the inputs and every state.
#[derive(Debug, Clone)]
struct Saved {
    dims: Dims,
    inputs: std::sync::Arc<Inputs>,
    hs: std::sync::Arc<Vec<f32>>,
}

#[derive(Debug)]
struct ScanBackward;

impl Backward<Flex, 5> for ScanBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, 5>, grads: &mut Gradients, _: &mut Checkpointer) {
        let Saved { dims, inputs, hs } = ops.state;
        let gy_primitive = grads.consume::<Flex>(&ops.node);
        let device = Default::default();
        let gy = host(Tensor::<Flex, 3>::from_primitive(TensorPrimitive::Float(
            gy_primitive,
        )));
        let [gx, gdelta, ga, gb, gc] = backward(&dims, &inputs, &hs, &gy);
        let Dims { b, s, i, n, .. } = dims;
        let ri = inputs.a.len() / n;
        let shaped3 = |v: Vec<f32>, shape: [usize; 3]| {
            Tensor::<Flex, 3>::from_data(TensorData::new(v, shape), &device)
                .into_primitive()
                .tensor()
        };
        let results = [
            shaped3(gx, [b, s, i]),
            shaped3(gdelta, [b, s, i]),
            Tensor::<Flex, 2>::from_data(TensorData::new(ga, [ri, n]), &device)
                .into_primitive()
                .tensor(),
            shaped3(gb, [b, s, n]),
            shaped3(gc, [b, s, n]),
        ];
        for (parent, grad) in ops.parents.into_iter().zip(results) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

fn scan_autodiff(
    x: Tensor<A, 3>,
    delta: Tensor<A, 3>,
    a: Tensor<A, 2>,
    b: Tensor<A, 3>,
    c: Tensor<A, 3>,
) -> Tensor<A, 3> {
    let dims = Dims::of(x.dims(), a.dims());
    let device = x.device();
    let inputs = Inputs::read(
        x.clone().inner(),
        delta.clone().inner(),
        a.clone().inner(),
        b.clone().inner(),
        c.clone().inner(),
    );
    let [x, delta, b, c] = [x, delta, b, c].map(|t| t.into_primitive().tensor());
    let a = a.into_primitive().tensor();
    let (y, hs) = forward(&dims, &inputs, None);
    let y = Tensor::<Flex, 3>::from_data(TensorData::new(y, [dims.b, dims.s, dims.i]), &device)
        .into_primitive()
        .tensor();
    let nodes = [
        x.node.clone(),
        delta.node.clone(),
        a.node.clone(),
        b.node.clone(),
        c.node.clone(),
    ];
    let out = match ScanBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            Saved {
                dims,
                inputs: std::sync::Arc::new(inputs),
                hs: std::sync::Arc::new(hs),
            },
            y,
        ),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}
