//! Mamba-2's recurrence (the state space dual's scan) on the CPU backend as one operation with
//! its own backward: what [`super::ssd_rule`] runs on `flex` in training (`Autodiff<Flex>`) and
//! inference (`Flex`); other backends, and `MECHLAB_GENERIC_OPS=1`, run GLA's chunked tensor form
//! with B, C and the decay written out per head.
//!
//! Why not GLA's fused operation, which computes the same thing: Mamba-2's decay is one scalar
//! per head and step and its B and C are shared by the heads (one group), so GLA's operation
//! would read `h` copies of B and C and take `n` exponentials per head and step where one does
//! (the copies alone were 10% of a step at d_model 64). Here every row of a state is updated
//! with one decay, B and C are read once per step, and their gradients are summed over the heads
//! in place.
//!
//! Forward, per head in time order, `S_{−1} = 0` (`[n, p]`), `a_t = exp(g_t)`:
//! `S_t = a_t·S_{t−1} + B_t v_tᵀ`, `y_t = S_tᵀC_t`. Backward, in reverse time with
//! `G = ∂L/∂S_t`: `G += C_t y'_tᵀ`, `C'_t += S_t y'_t`, `B'_t += G v_t`, `v'_t = GᵀB_t`,
//! `g'_t = a_t·Σ G∘S_{t−1}`, then `G ← a_t·G`. The forward pass keeps the state before every
//! [`SPAN`]-th position only; the backward pass recomputes a span's states from it.
//!
//! Precision: f32 throughout, as mamba_ssm's kernels accumulate (GLA's and the delta rule's
//! fused operations accumulate in f64; here nothing cancels — decays ≤ 1, no subtraction — and
//! f32 doubles the SIMD lanes). The sums over a state row (`S_t y'`, `G v`, `Σ G∘S`) run in
//! [`LANES`] fixed partial sums, so the result is the same bits with or without AVX2 (chosen at
//! run time) and whatever the thread count; the fixtures' 1e-5 holds (`ssd_rule`'s tests check
//! both forms against an f64 recurrence).
//!
//! Shape letters: b batch, s sequence, h heads, n state width (B and C), p channels per head.

use std::sync::Arc;

use rayon::prelude::*;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};

use super::cpu_ops::{Ad as A, cast, fused_enabled, host, view_all};

/// Positions between the states the forward pass keeps for the backward pass.
pub const SPAN: usize = 16;

/// Partial sums of a reduction over a state row: 8 f32 lanes, one AVX2 register.
pub const LANES: usize = 8;

/// Mamba-2's recurrence on `flex` (training or inference) as one fused operation, or `None`
/// for any other backend (and with the fused operations off, see [`super::cpu_ops`]).
///
/// # Shapes
/// As [`super::ssd_rule::ssd_rule`].
pub fn try_fused<B: Backend>(
    c_bsn: &Tensor<B, 3>,
    b_bsn: &Tensor<B, 3>,
    v_bsi: &Tensor<B, 3>,
    g_bsh: &Tensor<B, 3>,
) -> Option<Tensor<B, 3>> {
    if !fused_enabled() {
        return None;
    }
    if let Some([c, b, v, g]) = view_all::<_, Tensor<A, 3>, 4>([c_bsn, b_bsn, v_bsi, g_bsh]) {
        return cast(rule_autodiff(c.clone(), b.clone(), v.clone(), g.clone()));
    }
    let [c, b, v, g] = view_all::<_, Tensor<Flex, 3>, 4>([c_bsn, b_bsn, v_bsi, g_bsh])?;
    let dims = Dims::of(c.dims(), v.dims(), g.dims());
    let inputs = Inputs::read(c.clone(), b.clone(), v.clone(), g.clone());
    // Inference keeps no state: nothing runs backwards.
    let (y, _) = forward(&dims, &inputs, dims.s + 1);
    cast(dims.tensor(y, dims.h * dims.p, &c.device()))
}

/// Sizes of one call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    s: usize,
    h: usize,
    n: usize,
    p: usize,
}

impl Dims {
    fn of([b, s, n]: [usize; 3], [_, _, i]: [usize; 3], [_, _, h]: [usize; 3]) -> Self {
        Dims {
            b,
            s,
            h,
            n,
            p: i / h,
        }
    }

    fn tensor(
        &self,
        values: Vec<f32>,
        width: usize,
        device: &burn::tensor::Device<Flex>,
    ) -> Tensor<Flex, 3> {
        Tensor::from_data(TensorData::new(values, [self.b, self.s, width]), device)
    }

    /// States kept per batch row when one is kept after every `every`-th position (at least
    /// one slot, so that every row gets its chunk of the buffer).
    fn kept_per_row(&self, every: usize) -> usize {
        (self.h * (self.s / every) * self.n * self.p).max(1)
    }
}

#[derive(Debug)]
struct Inputs {
    c: Vec<f32>,
    b: Vec<f32>,
    v: Vec<f32>,
    /// The decays `exp(g)` `[b, s, h]` (taken in f64, rounded once).
    a: Vec<f32>,
}

impl Inputs {
    fn read(
        c: Tensor<Flex, 3>,
        b: Tensor<Flex, 3>,
        v: Tensor<Flex, 3>,
        g: Tensor<Flex, 3>,
    ) -> Self {
        Inputs {
            c: host(c),
            b: host(b),
            v: host(v),
            a: host(g).iter().map(|&g| (g as f64).exp() as f32).collect(),
        }
    }
}

/// `y [b, s, h·p]` and the states after every `every`-th position (`[b, h, s/every, n, p]`).
/// Batch rows run in parallel, each writing only its own outputs, so the result does not depend
/// on the thread count.
fn forward(d: &Dims, x: &Inputs, every: usize) -> (Vec<f32>, Vec<f32>) {
    let Dims { b, s, h, p, .. } = *d;
    let mut y = vec![0f32; b * s * h * p];
    let per_row = d.kept_per_row(every);
    let mut kept = vec![0f32; b * per_row];
    y.par_chunks_mut(s * h * p)
        .zip(kept.par_chunks_mut(per_row))
        .enumerate()
        .for_each(|(row, (y_row, kept_row))| forward_row(d, x, row, every, y_row, kept_row));
    (y, kept)
}

/// Runs [`forward_row_body`] compiled for AVX2 when the CPU has it (the same bits either way).
fn forward_row(d: &Dims, x: &Inputs, row: usize, every: usize, y: &mut [f32], kept: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { forward_row_avx2(d, x, row, every, y, kept) };
    }
    forward_row_body(d, x, row, every, y, kept)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn forward_row_avx2(
    d: &Dims,
    x: &Inputs,
    row: usize,
    every: usize,
    y: &mut [f32],
    kept: &mut [f32],
) {
    forward_row_body(d, x, row, every, y, kept)
}

#[inline(always)]
fn forward_row_body(
    d: &Dims,
    x: &Inputs,
    row: usize,
    every: usize,
    y_row: &mut [f32],
    kept_row: &mut [f32],
) {
    let Dims { s, h, n, p, .. } = *d;
    let n_kept = s / every;
    let mut state = vec![0f32; n * p];
    for hh in 0..h {
        state.fill(0.0);
        for t in 0..s {
            let y = &mut y_row[(t * h + hh) * p..][..p];
            step(d, x, (row * s + t, hh), &mut state, Some(y));
            if (t + 1) % every == 0 {
                let slot = hh * n_kept + (t + 1) / every - 1;
                kept_row[slot * n * p..][..n * p].copy_from_slice(&state);
            }
        }
    }
}

/// One position `(row·s + t, head)`: `S = a·S + B vᵀ`, then `y += SᵀC` into `y` when given
/// (zero on entry).
#[inline(always)]
fn step(d: &Dims, x: &Inputs, (at, hh): (usize, usize), state: &mut [f32], y: Option<&mut [f32]>) {
    let (n, p, h) = (d.n, d.p, d.h);
    let (c, b) = (&x.c[at * n..][..n], &x.b[at * n..][..n]);
    let v = &x.v[(at * h + hh) * p..][..p];
    let a = x.a[at * h + hh];
    match y {
        Some(y) => {
            for ((row, &bi), &ci) in state.chunks_exact_mut(p).zip(b).zip(c) {
                for ((sij, &vj), yj) in row.iter_mut().zip(v).zip(y.iter_mut()) {
                    *sij = a * *sij + bi * vj;
                    *yj += ci * *sij;
                }
            }
        }
        None => {
            for (row, &bi) in state.chunks_exact_mut(p).zip(b) {
                for (sij, &vj) in row.iter_mut().zip(v) {
                    *sij = a * *sij + bi * vj;
                }
            }
        }
    }
}

/// The sum of the partial sums, in a fixed order.
#[inline(always)]
fn total(x: [f32; LANES]) -> f32 {
    ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7]))
}

/// Gradients with respect to C, B, v and g, from the states kept every [`SPAN`] positions.
fn backward(d: &Dims, x: &Inputs, kept: &[f32], gy: &[f32]) -> [Vec<f32>; 4] {
    let Dims { b, s, h, n, p } = *d;
    let mut gc = vec![0f32; b * s * n];
    let mut gb = vec![0f32; b * s * n];
    let mut gv = vec![0f32; b * s * h * p];
    let mut gg = vec![0f32; b * s * h];
    let per_row = d.kept_per_row(SPAN);
    gc.par_chunks_mut(s * n)
        .zip(gb.par_chunks_mut(s * n))
        .zip(gv.par_chunks_mut(s * h * p))
        .zip(gg.par_chunks_mut(s * h))
        .enumerate()
        // Scratch buffers per worker, not per row: a span of states is half a megabyte at
        // Mamba-2's sizes, and fresh pages cost the kernel's zeroing each time.
        .for_each_init(
            || Scratch::new(d),
            |scratch, (row, (((gc, gb), gv), gg))| {
                let out = RowGrads { gc, gb, gv, gg };
                let kept = &kept[row * per_row..][..per_row];
                backward_row(d, x, kept, gy, row, out, scratch)
            },
        );
    [gc, gb, gv, gg]
}

/// One batch row's gradients (`[s, n]`, `[s, n]`, `[s, h·p]`, `[s, h]`).
struct RowGrads<'a> {
    gc: &'a mut [f32],
    gb: &'a mut [f32],
    gv: &'a mut [f32],
    gg: &'a mut [f32],
}

/// A worker's buffers for [`backward_row_body`]: zero and running gradient states `[n, p]`, and
/// a span's recomputed states `[SPAN, n, p]`.
struct Scratch {
    zero: Vec<f32>,
    g: Vec<f32>,
    span: Vec<f32>,
}

impl Scratch {
    fn new(d: &Dims) -> Self {
        let state = d.n * d.p;
        Scratch {
            zero: vec![0f32; state],
            g: vec![0f32; state],
            span: vec![0f32; SPAN * state],
        }
    }
}

/// Runs [`backward_row_body`] compiled for AVX2 when the CPU has it (the same bits either way).
fn backward_row(
    d: &Dims,
    x: &Inputs,
    kept: &[f32],
    gy: &[f32],
    row: usize,
    out: RowGrads,
    scratch: &mut Scratch,
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { backward_row_avx2(d, x, kept, gy, row, out, scratch) };
    }
    backward_row_body(d, x, kept, gy, row, out, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn backward_row_avx2(
    d: &Dims,
    x: &Inputs,
    kept: &[f32],
    gy: &[f32],
    row: usize,
    out: RowGrads,
    scratch: &mut Scratch,
) {
    backward_row_body(d, x, kept, gy, row, out, scratch)
}

// The lane loops index several blocks at once, one statement per operation, which is what the
// compiler turns into one vector instruction each.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn backward_row_body(
    d: &Dims,
    x: &Inputs,
    kept: &[f32],
    gy: &[f32],
    row: usize,
    out: RowGrads,
    scratch: &mut Scratch,
) {
    let Dims { s, h, n, p, .. } = *d;
    let RowGrads { gc, gb, gv, gg } = out;
    let n_kept = s / SPAN;
    let Scratch { zero, g, span } = scratch;
    for hh in 0..h {
        g.fill(0.0);
        for t in (0..s).rev() {
            let (c0, c1) = (t / SPAN * SPAN, (t / SPAN * SPAN + SPAN).min(s));
            let before_span = if c0 == 0 {
                &zero[..]
            } else {
                &kept[(hh * n_kept + c0 / SPAN - 1) * n * p..][..n * p]
            };
            if t == c1 - 1 {
                let mut state = before_span.to_vec();
                for (r, tt) in (c0..c1).enumerate() {
                    step(d, x, (row * s + tt, hh), &mut state, None);
                    span[r * n * p..][..n * p].copy_from_slice(&state);
                }
            }
            let s_t = &span[(t - c0) * n * p..][..n * p];
            let s_prev = if t > c0 {
                &span[(t - c0 - 1) * n * p..][..n * p]
            } else {
                before_span
            };
            let at = row * s + t;
            let (c_t, b_t) = (&x.c[at * n..][..n], &x.b[at * n..][..n]);
            let v = &x.v[(at * h + hh) * p..][..p];
            let a = x.a[at * h + hh];
            let dy = &gy[(at * h + hh) * p..][..p];
            let dv = &mut gv[(t * h + hh) * p..][..p];
            let (gc_t, gb_t) = (&mut gc[t * n..][..n], &mut gb[t * n..][..n]);
            let mut da = [0f32; LANES];
            for i in 0..n {
                let gi = &mut g[i * p..][..p];
                let (sti, spi) = (&s_t[i * p..][..p], &s_prev[i * p..][..p]);
                let (ci, bi) = (c_t[i], b_t[i]);
                let (mut dc, mut db) = ([0f32; LANES], [0f32; LANES]);
                // G += C y'ᵀ;  C' += S_t y';  B' += G v;  v' += Gᵀ B;  g' += Σ G∘S_{t−1};
                // then the gradient for S_{t−1}. One statement per operation over a whole
                // block of lanes, so that each compiles to one vector instruction.
                let whole = p / LANES * LANES;
                for ((((gi8, st8), sp8), (dy8, v8)), dv8) in gi[..whole]
                    .chunks_exact_mut(LANES)
                    .zip(sti[..whole].chunks_exact(LANES))
                    .zip(spi[..whole].chunks_exact(LANES))
                    .zip(
                        dy[..whole]
                            .chunks_exact(LANES)
                            .zip(v[..whole].chunks_exact(LANES)),
                    )
                    .zip(dv[..whole].chunks_exact_mut(LANES))
                {
                    let gi8: &mut [f32; LANES] = gi8.try_into().expect("a block of lanes");
                    let dv8: &mut [f32; LANES] = dv8.try_into().expect("a block of lanes");
                    let [st8, sp8, dy8, v8]: [&[f32; LANES]; 4] =
                        [st8, sp8, dy8, v8].map(|x| x.try_into().expect("a block of lanes"));
                    // Local copies: with G and v' in registers the compiler need not assume
                    // the two blocks overlap (it scalarised the loop when they were slices).
                    let (mut gl, mut dvl) = (*gi8, *dv8);
                    for l in 0..LANES {
                        dc[l] += st8[l] * dy8[l];
                    }
                    for l in 0..LANES {
                        gl[l] += ci * dy8[l];
                    }
                    for l in 0..LANES {
                        db[l] += gl[l] * v8[l];
                    }
                    for l in 0..LANES {
                        dvl[l] += gl[l] * bi;
                    }
                    for l in 0..LANES {
                        da[l] += gl[l] * sp8[l];
                    }
                    for l in 0..LANES {
                        gl[l] *= a;
                    }
                    (*gi8, *dv8) = (gl, dvl);
                }
                // The remainder, lane by lane in the same order.
                for j in whole..p {
                    let l = j - whole;
                    dc[l] += sti[j] * dy[j];
                    gi[j] += ci * dy[j];
                    db[l] += gi[j] * v[j];
                    dv[j] += gi[j] * bi;
                    da[l] += gi[j] * spi[j];
                    gi[j] *= a;
                }
                gc_t[i] += total(dc);
                gb_t[i] += total(db);
            }
            gg[t * h + hh] = a * total(da);
        }
    }
}

/// What the backward pass needs: the inputs and the kept states.
#[derive(Debug, Clone)]
struct Saved {
    dims: Dims,
    inputs: Arc<Inputs>,
    kept: Arc<Vec<f32>>,
}

#[derive(Debug)]
struct RuleBackward;

impl Backward<Flex, 4> for RuleBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let Saved { dims, inputs, kept } = ops.state;
        let gy = grads.consume::<Flex>(&ops.node);
        let gy = host(Tensor::<Flex, 3>::from_primitive(TensorPrimitive::Float(
            gy,
        )));
        let [gc, gb, gv, gg] = backward(&dims, &inputs, &kept, &gy);
        let device = Default::default();
        let results = [
            dims.tensor(gc, dims.n, &device),
            dims.tensor(gb, dims.n, &device),
            dims.tensor(gv, dims.h * dims.p, &device),
            dims.tensor(gg, dims.h, &device),
        ];
        for (parent, grad) in ops.parents.into_iter().zip(results) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, grad.into_primitive().tensor());
            }
        }
    }
}

fn rule_autodiff(
    c: Tensor<A, 3>,
    b: Tensor<A, 3>,
    v: Tensor<A, 3>,
    g: Tensor<A, 3>,
) -> Tensor<A, 3> {
    let dims = Dims::of(c.dims(), v.dims(), g.dims());
    let device = c.device();
    let inputs = Inputs::read(
        c.clone().inner(),
        b.clone().inner(),
        v.clone().inner(),
        g.clone().inner(),
    );
    let [c, b, v, g] = [c, b, v, g].map(|t| t.into_primitive().tensor());
    let (y, kept) = forward(&dims, &inputs, SPAN);
    let y = dims
        .tensor(y, dims.h * dims.p, &device)
        .into_primitive()
        .tensor();
    let nodes = [
        c.node.clone(),
        b.node.clone(),
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
                kept: Arc::new(kept),
            },
            y,
        ),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 build and the plain build of both passes give the same bits (the reductions'
    /// partial sums are fixed in the source, not by the vector width).
    #[test]
    fn with_and_without_avx2_the_same_bits() {
        let (b, s, h, n, p) = (2, 2 * SPAN + 3, 2, 5, 13);
        let d = Dims { b, s, h, n, p };
        let wave =
            |len: usize, f: f32| -> Vec<f32> { (0..len).map(|i| (i as f32 * f).sin()).collect() };
        let x = Inputs {
            c: wave(b * s * n, 0.7),
            b: wave(b * s * n, 1.3),
            v: wave(b * s * h * p, 0.37),
            a: wave(b * s * h, 0.11)
                .iter()
                .map(|w| 0.6 + 0.4 * w.abs())
                .collect(),
        };
        let (y, kept) = forward(&d, &x, SPAN);
        let gy = wave(y.len(), 0.53);
        let grads = backward(&d, &x, &kept, &gy);
        // The plain build, called directly.
        let per_row = d.kept_per_row(SPAN);
        for row in 0..b {
            let mut y_row = vec![0f32; s * h * p];
            let mut kept_row = vec![0f32; per_row];
            forward_row_body(&d, &x, row, SPAN, &mut y_row, &mut kept_row);
            assert_eq!(y_row, y[row * s * h * p..][..s * h * p]);
            assert_eq!(kept_row, kept[row * per_row..][..per_row]);
            let (mut gc, mut gb, mut gv, mut gg) = (
                vec![0f32; s * n],
                vec![0f32; s * n],
                vec![0f32; s * h * p],
                vec![0f32; s * h],
            );
            let out = RowGrads {
                gc: &mut gc,
                gb: &mut gb,
                gv: &mut gv,
                gg: &mut gg,
            };
            backward_row_body(&d, &x, &kept_row, &gy, row, out, &mut Scratch::new(&d));
            for (mine, all, width) in [
                (&gc, &grads[0], s * n),
                (&gb, &grads[1], s * n),
                (&gv, &grads[2], s * h * p),
                (&gg, &grads[3], s * h),
            ] {
                assert_eq!(mine[..], all[row * width..][..width]);
            }
        }
    }
}
