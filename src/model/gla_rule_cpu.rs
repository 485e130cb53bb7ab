//! Gated linear attention's recurrence on the CPU backend as one operation with its own backward:
//! plain loops over host memory, each batch row on rayon's pool, instead of the chunked tensor
//! form of [`super::gla_rule`] (a few dozen operations per layer, among them a `[C, C, dk]`
//! decay tensor per chunk, each recorded by autodiff). Like [`super::delta_rule_cpu`], it runs
//! for burn's `flex` backend in training (`Autodiff<Flex>`) and inference (`Flex`); other
//! backends, and `MECHLAB_GENERIC_OPS=1`, keep the tensor form.
//!
//! Forward, per head in time order, `S_{−1} = 0` (`[dk, dv]`), `a_t = exp(g_t)`:
//! `S_t = diag(a_t)·S_{t−1} + k_t v_tᵀ`, `o_t = S_tᵀq_t` — flash-linear-attention's
//! `naive_recurrent_gla` (q arrives scaled). Backward runs the adjoint in reverse time with
//! `G = ∂L/∂S_t` (from `o_t` and from `S_{t+1}`):
//! `G += q_t o'_tᵀ`, `q'_t = S_t o'_t`, `k'_t = G v_t`, `v'_t = Gᵀk_t`,
//! `g'_{t,i} = a_{t,i}·Σ_j G_ij S_{t−1,ij}`, then `G ← diag(a_t)·G` for `S_{t−1}`.
//! The forward pass keeps the state before every [`SPAN`]-th position only; the backward pass
//! recomputes a span's states from it (one more forward step per position) before walking the
//! span backwards. Keeping every state would cost `b·h·s·dk·dv` f64 values — 9.7 MB per layer
//! for GLA at d_model 64, batch 32, AR-32's 37 positions, and several times that for wider
//! heads.
//!
//! Both passes accumulate in f64 (inputs and outputs stay f32), as the delta rule's do.
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

/// Positions between the states the forward pass keeps for the backward pass.
pub const SPAN: usize = 16;

/// GLA's recurrence on `flex` (training or inference) as one fused operation, or `None` for
/// any other backend (and with the fused operations off, see [`super::cpu_ops`]).
///
/// # Shapes
/// As [`super::gla_rule::gla_rule`].
pub fn try_fused<B: Backend>(
    q_bsk: &Tensor<B, 3>,
    k_bsk: &Tensor<B, 3>,
    v_bsv: &Tensor<B, 3>,
    g_bsk: &Tensor<B, 3>,
    heads: usize,
) -> Option<Tensor<B, 3>> {
    if !fused_enabled() {
        return None;
    }
    if let Some([q, k, v, g]) = view_all::<_, Tensor<A, 3>, 4>([q_bsk, k_bsk, v_bsv, g_bsk]) {
        return cast(rule_autodiff(
            q.clone(),
            k.clone(),
            v.clone(),
            g.clone(),
            heads,
        ));
    }
    // Inference: the same forward from zero states.
    try_resumed(q_bsk, k_bsk, v_bsv, g_bsk, heads, None).map(|(o, _)| o)
}

/// The recurrence (inference, on `flex`) resumed from the states `s0` (`[b, h, dk, dv]` on the
/// host, zero when `None`), returning `o` and every state `[b, s, h, dk, dv]` on the host
/// (rounded to f32): the path of intervention grids that restart GLA mid-sequence from a cached
/// state. `None` on any other backend, under autodiff, or with the fused operations off.
///
/// # Shapes
/// As [`super::gla_rule::gla_rule`].
pub fn try_resumed<B: Backend>(
    q_bsk: &Tensor<B, 3>,
    k_bsk: &Tensor<B, 3>,
    v_bsv: &Tensor<B, 3>,
    g_bsk: &Tensor<B, 3>,
    heads: usize,
    s0: Option<&[f32]>,
) -> Option<(Tensor<B, 3>, Vec<f32>)> {
    if !fused_enabled() {
        return None;
    }
    let [q, k, v, g] = view_all::<_, Tensor<Flex, 3>, 4>([q_bsk, k_bsk, v_bsv, g_bsk])?;
    let dims = Dims::of(q.dims(), v.dims(), heads);
    if s0.is_some_and(|s0| s0.len() != dims.b * dims.h * dims.state()) {
        return None;
    }
    let inputs = Inputs::read(q.clone(), k.clone(), v.clone(), g.clone());
    let (o, states) = forward_from(&dims, &inputs, s0, 1);
    let kept = dims.kept_states(&states);
    Some((cast(dims.tensor(o, dims.v, &q.device()))?, kept))
}

#[derive(Debug)]
struct Inputs {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// The decays `exp(g)` of the log-decays `g`, `[b, s, h·k]` like the keys: taken once, as
    /// the backward pass reads them twice (recomputing a span, then walking it back).
    a: Vec<f64>,
}

impl Inputs {
    fn read(
        q: Tensor<Flex, 3>,
        k: Tensor<Flex, 3>,
        v: Tensor<Flex, 3>,
        g: Tensor<Flex, 3>,
    ) -> Self {
        Inputs {
            q: host(q),
            k: host(k),
            v: host(v),
            a: host(g).par_iter().map(|&g| (g as f64).exp()).collect(),
        }
    }
}

/// `o [b, s, h·v]` and the states `S_t` after every `every`-th position (f64,
/// `[b, h, s/every, k, v]`: every state when `every` is 1) from the states `s0` (`[b, h, k, v]`)
/// before the first position, zero when `None`. Batch rows run in parallel, each writing only
/// its own outputs, so the result does not depend on the thread count.
fn forward_from(d: &Dims, x: &Inputs, s0: Option<&[f32]>, every: usize) -> (Vec<f32>, Vec<f64>) {
    let Dims { b, s, h, k, v } = *d;
    let kept = s / every;
    let mut o = vec![0f32; b * s * h * v];
    // At least one slot per batch row, so that every row gets its chunk when none is kept.
    let per_row = (h * kept * k * v).max(1);
    let mut states = vec![0f64; b * per_row];
    o.par_chunks_mut(s * h * v)
        .zip(states.par_chunks_mut(per_row))
        .enumerate()
        .for_each(|(bb, (o_row, st_row))| {
            let mut state = vec![0f64; k * v];
            let mut acc = vec![0f64; v];
            for hh in 0..h {
                d.initial_state(s0, bb, hh, &mut state);
                for t in 0..s {
                    let at = (bb * s + t) * h + hh;
                    step(d, x, at, &mut state, Some(&mut acc));
                    for (oj, a) in o_row[(t * h + hh) * v..][..v].iter_mut().zip(&acc) {
                        *oj = *a as f32;
                    }
                    if (t + 1) % every == 0 {
                        let slot = hh * kept + (t + 1) / every - 1;
                        st_row[slot * k * v..][..k * v].copy_from_slice(&state);
                    }
                }
            }
        });
    (o, states)
}

/// One position `at` (`(batch row·s + t)·h + head`): `S = diag(a)·S + k vᵀ`, then `o = Sᵀq`
/// into `out` when given.
fn step(d: &Dims, x: &Inputs, at: usize, state: &mut [f64], mut out: Option<&mut Vec<f64>>) {
    let (k, v) = (d.k, d.v);
    let (kt, qt, gt) = (
        &x.k[at * k..][..k],
        &x.q[at * k..][..k],
        &x.a[at * k..][..k],
    );
    let vt = &x.v[at * v..][..v];
    if let Some(acc) = out.as_deref_mut() {
        acc.iter_mut().for_each(|a| *a = 0.0);
    }
    for i in 0..k {
        let (ai, ki, qi) = (gt[i], kt[i] as f64, qt[i] as f64);
        let row_i = &mut state[i * v..][..v];
        match out.as_deref_mut() {
            Some(acc) => {
                for ((sij, &vj), oj) in row_i.iter_mut().zip(vt).zip(acc.iter_mut()) {
                    *sij = ai * *sij + ki * vj as f64;
                    *oj += qi * *sij;
                }
            }
            None => {
                for (sij, &vj) in row_i.iter_mut().zip(vt) {
                    *sij = ai * *sij + ki * vj as f64;
                }
            }
        }
    }
}

/// Gradients of `Σ o'·o` with respect to q, k, v and g (accumulated in f64 like the forward),
/// from the states kept every [`SPAN`] positions.
fn backward(d: &Dims, x: &Inputs, kept: &[f64], go: &[f32]) -> [Vec<f32>; 4] {
    let Dims { b, s, h, k, v } = *d;
    let mut gq = vec![0f32; b * s * h * k];
    let mut gk = vec![0f32; b * s * h * k];
    let mut gv = vec![0f32; b * s * h * v];
    let mut gg = vec![0f32; b * s * h * k];
    gq.par_chunks_mut(s * h * k)
        .zip(gk.par_chunks_mut(s * h * k))
        .zip(gv.par_chunks_mut(s * h * v))
        .zip(gg.par_chunks_mut(s * h * k))
        .enumerate()
        .for_each(|(bb, (((gq_row, gk_row), gv_row), gg_row))| {
            let n_kept = s / SPAN;
            let zero = vec![0f64; k * v];
            let mut g = vec![0f64; k * v];
            let mut gvt = vec![0f64; v];
            // A span's states, recomputed from the one kept before it.
            let mut span = vec![0f64; SPAN * k * v];
            for hh in 0..h {
                g.iter_mut().for_each(|x| *x = 0.0);
                for t in (0..s).rev() {
                    let (c0, c1) = (t / SPAN * SPAN, (t / SPAN * SPAN + SPAN).min(s));
                    if t == c1 - 1 {
                        let mut state = if c0 == 0 {
                            zero.clone()
                        } else {
                            let slot = (bb * h + hh) * n_kept + c0 / SPAN - 1;
                            kept[slot * k * v..][..k * v].to_vec()
                        };
                        for (r, tt) in (c0..c1).enumerate() {
                            step(d, x, (bb * s + tt) * h + hh, &mut state, None);
                            span[r * k * v..][..k * v].copy_from_slice(&state);
                        }
                    }
                    let s_t = &span[(t - c0) * k * v..][..k * v];
                    let before;
                    let s_prev = if t > c0 {
                        &span[(t - c0 - 1) * k * v..][..k * v]
                    } else if c0 == 0 {
                        &zero[..]
                    } else {
                        let slot = (bb * h + hh) * n_kept + c0 / SPAN - 1;
                        before = &kept[slot * k * v..][..k * v];
                        before
                    };
                    let at = (bb * s + t) * h + hh;
                    let local = t * h + hh;
                    let (qt, kt, lt) = (
                        &x.q[at * k..][..k],
                        &x.k[at * k..][..k],
                        &x.a[at * k..][..k],
                    );
                    let vt = &x.v[at * v..][..v];
                    let got = &go[at * v..][..v];
                    gvt.iter_mut().for_each(|x| *x = 0.0);
                    for i in 0..k {
                        let gi = &mut g[i * v..][..v];
                        let (qi, ki) = (qt[i] as f64, kt[i] as f64);
                        let ai = lt[i];
                        // G += q o'ᵀ;  q' = S_t o';  k' = G v;  v' += Gᵀk;  g' = a·Σ G∘S_{t−1}
                        let (mut dq, mut dk, mut da) = (0f64, 0f64, 0f64);
                        for ((((gij, &oj), &sij), &pij), (&vj, gvj)) in gi
                            .iter_mut()
                            .zip(got)
                            .zip(&s_t[i * v..][..v])
                            .zip(&s_prev[i * v..][..v])
                            .zip(vt.iter().zip(gvt.iter_mut()))
                        {
                            let oj = oj as f64;
                            *gij += qi * oj;
                            dq += sij * oj;
                            dk += *gij * vj as f64;
                            *gvj += *gij * ki;
                            da += *gij * pij;
                            // The gradient for S_{t−1}.
                            *gij *= ai;
                        }
                        gq_row[local * k + i] = dq as f32;
                        gk_row[local * k + i] = dk as f32;
                        gg_row[local * k + i] = (ai * da) as f32;
                    }
                    for (out, &x) in gv_row[local * v..][..v].iter_mut().zip(&gvt) {
                        *out = x as f32;
                    }
                }
            }
        });
    [gq, gk, gv, gg]
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
        let [gq, gk, gv, gg] = backward(&dims, &inputs, &states, &go);
        let device = Default::default();
        let results = [
            dims.tensor(gq, dims.k, &device),
            dims.tensor(gk, dims.k, &device),
            dims.tensor(gv, dims.v, &device),
            dims.tensor(gg, dims.k, &device),
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
    g: Tensor<A, 3>,
    heads: usize,
) -> Tensor<A, 3> {
    let dims = Dims::of(q.dims(), v.dims(), heads);
    let device = q.device();
    let inputs = Inputs::read(
        q.clone().inner(),
        k.clone().inner(),
        v.clone().inner(),
        g.clone().inner(),
    );
    let [q, k, v, g] = [q, k, v, g].map(|t| t.into_primitive().tensor());
    let (o, states) = forward_from(&dims, &inputs, None, SPAN);
    let o = dims.tensor(o, dims.v, &device).into_primitive().tensor();
    let nodes = [
        q.node.clone(),
        k.node.clone(),
        v.node.clone(),
        g.node.clone(),
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
