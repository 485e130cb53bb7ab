//! DeltaNet's delta rule on the CPU backend as one operation with its own backward: plain loops
//! over host memory, each (batch row, head) on rayon's pool, instead of the chunked tensor form
//! of [`super::delta_rule`] (a few hundred small operations per layer, each recorded by autodiff).
//! Like [`super::scan_cpu`], it runs for burn's `flex` backend in training (`Autodiff<Flex>`) and
//! inference (`Flex`); other backends, and `MECHLAB_GENERIC_OPS=1`, keep the tensor form.
//!
//! Forward, per head in time order, `S_{−1} = 0` (`[dk, dv]`):
//! `u_t = β_t·(v_t − S_{t−1}ᵀk_t)`, `S_t = S_{t−1} + k_t u_tᵀ`, `o_t = S_tᵀq_t` — the recurrence of
//! flash-linear-attention's `delta_rule_recurrence` (q arrives scaled). Backward runs the adjoint
//! in reverse time with `G = ∂L/∂S_t` (from `o_t` and from `S_{t+1}`):
//! `G += q_t o'_tᵀ`, `q'_t = S_t o'_t`, `u'_t = Gᵀk_t`, `k'_t = G u_t − β_t S_{t−1}u'_t`,
//! `v'_t = β_t u'_t`, `β'_t = u'_t·(v_t − S_{t−1}ᵀk_t)`, then `G −= β_t k_t u'_tᵀ` for `S_{t−1}`.
//! The states `S_t` are kept from the forward pass (`b·h·s·dk·dv` f64 values: 19 MB per layer at
//! d_model 64, two heads, batch 32, AR-32's 37 positions).
//!
//! Both passes accumulate in f64 (inputs and outputs stay f32). Where keys repeat with β near 1,
//! `v − Sᵀk` cancels and f32 rounding inside the rule is amplified: on the PyTorch fixture an
//! f32 loop is 8.9e-6 of a gradient's scale off the exact answer (the same loop in PyTorch:
//! 8.7e-6), the f64 one 2.3e-6, closer than PyTorch's own f32.
//!
//! Shape letters: b batch, s sequence, h heads, k key width and v value width of all heads
//! (`h·dk`, `h·dv`: head `j` owns channels `j·dk..(j+1)·dk`), as the projections write them, so
//! no head is transposed out.

use std::sync::Arc;

use rayon::prelude::*;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};

use super::cpu_ops::{Ad as A, cast, fused_enabled, host, view_all};
use super::rule_cpu::Dims;

/// The delta rule on `flex` (training or inference) as one fused operation, or `None` for any
/// other backend (and with the fused operations off, see [`super::cpu_ops`]).
///
/// # Shapes
/// As [`super::delta_rule::delta_rule`].
pub fn try_fused<B: Backend>(
    q_bsk: &Tensor<B, 3>,
    k_bsk: &Tensor<B, 3>,
    v_bsv: &Tensor<B, 3>,
    beta_bsh: &Tensor<B, 3>,
) -> Option<Tensor<B, 3>> {
    if !fused_enabled() {
        return None;
    }
    if let Some([q, k, v, b]) = view_all::<_, Tensor<A, 3>, 4>([q_bsk, k_bsk, v_bsv, beta_bsh]) {
        return cast(rule_autodiff(q.clone(), k.clone(), v.clone(), b.clone()));
    }
    // Inference: the same forward from zero states.
    try_resumed(q_bsk, k_bsk, v_bsv, beta_bsh, None).map(|(o, _)| o)
}

/// The rule (inference, on `flex`) resumed from the states `s0` (`[b, h, dk, dv]` on the host,
/// zero when `None`), returning `o` and every state `[b, s, h, dk, dv]` on the host (rounded to
/// f32): the path of intervention grids that restart DeltaNet mid-sequence from a cached state.
/// `None` on any other backend, under autodiff, or with the fused operations off.
///
/// # Shapes
/// As [`super::delta_rule::delta_rule`].
pub fn try_resumed<B: Backend>(
    q_bsk: &Tensor<B, 3>,
    k_bsk: &Tensor<B, 3>,
    v_bsv: &Tensor<B, 3>,
    beta_bsh: &Tensor<B, 3>,
    s0: Option<&[f32]>,
) -> Option<(Tensor<B, 3>, Vec<f32>)> {
    if !fused_enabled() {
        return None;
    }
    let [q, k, v, b] = view_all::<_, Tensor<Flex, 3>, 4>([q_bsk, k_bsk, v_bsv, beta_bsh])?;
    let dims = Dims::of(q.dims(), v.dims(), b.dims()[2]);
    if s0.is_some_and(|s0| s0.len() != dims.b * dims.h * dims.state()) {
        return None;
    }
    let inputs = Inputs::read(q.clone(), k.clone(), v.clone(), b.clone());
    let (o, states) = forward_from(&dims, &inputs, s0);
    let kept = dims.kept_states(&states);
    Some((cast(dims.tensor(o, dims.v, &q.device()))?, kept))
}

#[derive(Debug)]
struct Inputs {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    beta: Vec<f32>,
}

impl Inputs {
    fn read(
        q: Tensor<Flex, 3>,
        k: Tensor<Flex, 3>,
        v: Tensor<Flex, 3>,
        b: Tensor<Flex, 3>,
    ) -> Self {
        Inputs {
            q: host(q),
            k: host(k),
            v: host(v),
            beta: host(b),
        }
    }
}

/// `o [b, s, h·v]` and every state `S_t` (f64, `[b, h, s, k, v]`). Batch rows run in parallel,
/// each writing only its own outputs, so the result does not depend on the thread count.
fn forward(d: &Dims, x: &Inputs) -> (Vec<f32>, Vec<f64>) {
    forward_from(d, x, None)
}

/// [`forward`] from the states `s0` (`[b, h, k, v]`) before the first position, zero when `None`.
fn forward_from(d: &Dims, x: &Inputs, s0: Option<&[f32]>) -> (Vec<f32>, Vec<f64>) {
    let Dims { b, s, h, k, v } = *d;
    let mut o = vec![0f32; b * s * h * v];
    let mut states = vec![0f64; b * h * s * k * v];
    o.par_chunks_mut(s * h * v)
        .zip(states.par_chunks_mut(h * s * k * v))
        .enumerate()
        .for_each(|(bb, (o_row, st_row))| {
            let mut state = vec![0f64; k * v];
            let mut u = vec![0f64; v];
            let mut acc = vec![0f64; v];
            for hh in 0..h {
                d.initial_state(s0, bb, hh, &mut state);
                for t in 0..s {
                    let at = (bb * s + t) * h + hh;
                    let (kt, qt) = (&x.k[at * k..][..k], &x.q[at * k..][..k]);
                    let (vt, bt) = (&x.v[at * v..][..v], x.beta[at] as f64);
                    // u = β·(v − Sᵀk)
                    for (uj, &vj) in u.iter_mut().zip(vt) {
                        *uj = vj as f64;
                    }
                    for (i, &ki) in kt.iter().enumerate() {
                        let ki = ki as f64;
                        for (uj, sij) in u.iter_mut().zip(&state[i * v..][..v]) {
                            *uj -= ki * sij;
                        }
                    }
                    u.iter_mut().for_each(|uj| *uj *= bt);
                    // S += k uᵀ, then o = Sᵀq
                    acc.iter_mut().for_each(|a| *a = 0.0);
                    for i in 0..k {
                        let (ki, qi) = (kt[i] as f64, qt[i] as f64);
                        let row_i = &mut state[i * v..][..v];
                        for ((sij, uj), oj) in row_i.iter_mut().zip(&u).zip(acc.iter_mut()) {
                            *sij += ki * uj;
                            *oj += qi * *sij;
                        }
                    }
                    for (oj, a) in o_row[(t * h + hh) * v..][..v].iter_mut().zip(&acc) {
                        *oj = *a as f32;
                    }
                    st_row[(hh * s + t) * k * v..][..k * v].copy_from_slice(&state);
                }
            }
        });
    (o, states)
}

/// Gradients of `Σ o'·o` with respect to q, k, v and β (accumulated in f64 like the forward).
fn backward(d: &Dims, x: &Inputs, states: &[f64], go: &[f32]) -> [Vec<f32>; 4] {
    let Dims { b, s, h, k, v } = *d;
    let mut gq = vec![0f32; b * s * h * k];
    let mut gk = vec![0f32; b * s * h * k];
    let mut gv = vec![0f32; b * s * h * v];
    let mut gb = vec![0f32; b * s * h];
    gq.par_chunks_mut(s * h * k)
        .zip(gk.par_chunks_mut(s * h * k))
        .zip(gv.par_chunks_mut(s * h * v))
        .zip(gb.par_chunks_mut(s * h))
        .enumerate()
        .for_each(|(bb, (((gq_row, gk_row), gv_row), gb_row))| {
            let zero = vec![0f64; k * v];
            let mut g = vec![0f64; k * v];
            let (mut r, mut gu) = (vec![0f64; v], vec![0f64; v]);
            for hh in 0..h {
                let st_head = &states[(bb * h + hh) * s * k * v..][..s * k * v];
                g.iter_mut().for_each(|x| *x = 0.0);
                for t in (0..s).rev() {
                    let at = (bb * s + t) * h + hh;
                    let local = t * h + hh;
                    let (qt, kt) = (&x.q[at * k..][..k], &x.k[at * k..][..k]);
                    let (vt, bt) = (&x.v[at * v..][..v], x.beta[at] as f64);
                    let got = &go[at * v..][..v];
                    let s_t = &st_head[t * k * v..][..k * v];
                    let s_prev = if t > 0 {
                        &st_head[(t - 1) * k * v..][..k * v]
                    } else {
                        &zero[..]
                    };
                    // G += q o'ᵀ;  q' = S_t o'
                    for i in 0..k {
                        let gi = &mut g[i * v..][..v];
                        let qi = qt[i] as f64;
                        let mut acc = 0f64;
                        for ((gij, &oj), &sij) in gi.iter_mut().zip(got).zip(&s_t[i * v..][..v]) {
                            *gij += qi * oj as f64;
                            acc += sij * oj as f64;
                        }
                        gq_row[local * k + i] = acc as f32;
                    }
                    // r = v − S_{t−1}ᵀk (u = β·r);  u' = Gᵀk
                    for ((rj, guj), &vj) in r.iter_mut().zip(gu.iter_mut()).zip(vt) {
                        *rj = vj as f64;
                        *guj = 0.0;
                    }
                    for (i, &ki) in kt.iter().enumerate() {
                        let ki = ki as f64;
                        for ((rj, guj), (&pij, &gij)) in r
                            .iter_mut()
                            .zip(gu.iter_mut())
                            .zip(s_prev[i * v..][..v].iter().zip(&g[i * v..][..v]))
                        {
                            *rj -= ki * pij;
                            *guj += ki * gij;
                        }
                    }
                    gb_row[local] = gu.iter().zip(&r).map(|(a, b)| a * b).sum::<f64>() as f32;
                    for (gvj, &guj) in gv_row[local * v..][..v].iter_mut().zip(&gu) {
                        *gvj = (bt * guj) as f32;
                    }
                    // k' = G u − β·S_{t−1}u';  then G −= β k u'ᵀ (the gradient for S_{t−1})
                    for (i, &ki) in kt.iter().enumerate() {
                        let gi = &mut g[i * v..][..v];
                        let mut acc = 0f64;
                        for (((gij, &rj), &pij), &guj) in
                            gi.iter_mut().zip(&r).zip(&s_prev[i * v..][..v]).zip(&gu)
                        {
                            acc += *gij * bt * rj - bt * pij * guj;
                            *gij -= bt * ki as f64 * guj;
                        }
                        gk_row[local * k + i] = acc as f32;
                    }
                }
            }
        });
    [gq, gk, gv, gb]
}

/// What the backward pass needs: the inputs and every state.
#[derive(Debug, Clone)]
struct Saved {
    dims: Dims,
    inputs: Arc<Inputs>,
    states: Arc<Vec<f64>>,
}

#[derive(Debug)]
struct RuleBackward;

impl Backward<Flex, 4> for RuleBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let Saved {
            dims,
            inputs,
            states,
        } = ops.state;
        let go = grads.consume::<Flex>(&ops.node);
        let go = host(Tensor::<Flex, 3>::from_primitive(TensorPrimitive::Float(
            go,
        )));
        let [gq, gk, gv, gb] = backward(&dims, &inputs, &states, &go);
        let device = Default::default();
        let results = [
            dims.tensor(gq, dims.k, &device),
            dims.tensor(gk, dims.k, &device),
            dims.tensor(gv, dims.v, &device),
            dims.tensor(gb, 1, &device),
        ];
        for (parent, grad) in ops.parents.into_iter().zip(results) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, grad.into_primitive().tensor());
            }
        }
    }
}

fn rule_autodiff(
    q: Tensor<A, 3>,
    k: Tensor<A, 3>,
    v: Tensor<A, 3>,
    beta: Tensor<A, 3>,
) -> Tensor<A, 3> {
    let dims = Dims::of(q.dims(), v.dims(), beta.dims()[2]);
    let device = q.device();
    let inputs = Inputs::read(
        q.clone().inner(),
        k.clone().inner(),
        v.clone().inner(),
        beta.clone().inner(),
    );
    let [q, k, v, beta] = [q, k, v, beta].map(|t| t.into_primitive().tensor());
    let (o, states) = forward(&dims, &inputs);
    let o = dims.tensor(o, dims.v, &device).into_primitive().tensor();
    let nodes = [
        q.node.clone(),
        k.node.clone(),
        v.node.clone(),
        beta.node.clone(),
    ];
    let out = match RuleBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            Saved {
                dims,
                inputs: Arc::new(inputs),
                states: Arc::new(states),
            },
            o,
        ),
        OpsKind::UnTracked(prep) => prep.finish(o),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}
