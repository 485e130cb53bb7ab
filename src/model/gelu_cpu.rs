//! The MLP's exact GELU on the CPU backend, on every core. burn's `flex` runs elementwise
//! operations on one thread (only its matrix products use the pool), and GELU — an `erf` per
//! element forward, an `erf` and an `exp` backward — is one of the costliest of them (15% of an
//! attention step at d_model 64). This is the same formula per element as `flex`'s own
//! (`0.5·x·(1 + erf(x/√2))`, gradient `g·(Φ(x) + x·φ(x))`, `erf` from the same `libm`), so the
//! values are bit for bit `flex`'s; the elements are split over rayon's pool.
//!
//! Other backends get [`gelu_exact`], built from `erf`, and not burn's `gelu`: burn 0.21's default
//! `gelu_backward` (which every cubecl backend inherits; `flex` overrides it) is the derivative of
//! GELU's tanh approximation, off from the exact gradient by up to 7e-4 of its scale — found by
//! `mechlab selftest --device wgpu` (the `generic_ops` check), and enough to take every mixer
//! with an MLP outside the PyTorch fixtures' 1e-5.

use std::sync::Arc;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::ops::unary::erf_f32;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensorOps;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use rayon::prelude::*;

use super::cpu_ops::{Ad as A, cast, fused_enabled, host, view};

/// Elements per parallel task: below this a split costs more than it saves.
const GRAIN: usize = 16 * 1024;

/// GELU, on all cores for the CPU backend; exact everywhere.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if !fused_enabled() {
        return gelu_exact(x);
    }
    if let Some(t) = view::<_, Tensor<A, D>>(&x) {
        return cast(gelu_autodiff(t.clone())).expect("B is Autodiff<Flex>");
    }
    if let Some(t) = view::<_, Tensor<Flex, D>>(&x) {
        let dims = t.dims();
        let y = forward(&host(t.clone()));
        return cast(Tensor::<Flex, D>::from_data(
            TensorData::new(y, dims),
            &t.device(),
        ))
        .expect("B is Flex");
    }
    gelu_exact(x)
}

/// `0.5·x·(1 + erf(x/√2))` from tensor operations, so that autodiff differentiates the exact
/// function (`erf`'s own backward is exact).
pub fn gelu_exact<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let s = core::f32::consts::FRAC_1_SQRT_2;
    x.clone()
        .mul(x.mul_scalar(s).erf().add_scalar(1.0))
        .mul_scalar(0.5)
}

fn forward(x: &[f32]) -> Vec<f32> {
    let s = core::f32::consts::SQRT_2;
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(GRAIN)
        .zip(x.par_chunks(GRAIN))
        .for_each(|(y, x)| {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = 0.5 * x * (1.0 + erf_f32(x / s));
            }
        });
    y
}

fn backward(x: &[f32], g: &[f32]) -> Vec<f32> {
    let s = core::f32::consts::SQRT_2;
    let inv_sqrt_2pi: f32 = 1.0 / (2.0 * core::f32::consts::PI).sqrt();
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(GRAIN)
        .zip(x.par_chunks(GRAIN).zip(g.par_chunks(GRAIN)))
        .for_each(|(out, (x, g))| {
            for ((o, &x), &g) in out.iter_mut().zip(x).zip(g) {
                let cdf = 0.5 * (1.0 + erf_f32(x / s));
                let pdf = inv_sqrt_2pi * (-0.5 * x * x).exp();
                *o = g * (cdf + x * pdf);
            }
        });
    out
}

/// The input, kept for the backward pass, and its shape.
#[derive(Debug, Clone)]
struct Saved {
    x: Arc<Vec<f32>>,
    dims: Vec<usize>,
}

#[derive(Debug)]
struct GeluBackward;

impl Backward<Flex, 1> for GeluBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let Saved { x, dims } = ops.state;
        let g = grads.consume::<Flex>(&ops.node);
        let [parent] = ops.parents;
        let Some(parent) = parent else { return };
        let n = x.len();
        let flat = <Flex as FloatTensorOps<Flex>>::float_reshape(g, [n].into());
        let g = host(Tensor::<Flex, 1>::from_primitive(TensorPrimitive::Float(
            flat,
        )));
        let gx = backward(&x, &g);
        let grad = Tensor::<Flex, 1>::from_data(TensorData::new(gx, [n]), &Default::default())
            .into_primitive()
            .tensor();
        let grad = <Flex as FloatTensorOps<Flex>>::float_reshape(grad, dims.into());
        grads.register::<Flex>(parent.id, grad);
    }
}

fn gelu_autodiff<const D: usize>(x: Tensor<A, D>) -> Tensor<A, D> {
    let dims = x.dims();
    let device = x.device();
    let x = x.into_primitive().tensor();
    let values = host(Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(
        x.primitive.clone(),
    )));
    let y = Tensor::<Flex, D>::from_data(TensorData::new(forward(&values), dims), &device)
        .into_primitive()
        .tensor();
    let out = match GeluBackward
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            Saved {
                x: Arc::new(values),
                dims: dims.to_vec(),
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
    use crate::model::cpu_ops::with_fused;
    use crate::model::init::Init;
    use burn::tensor::activation::gelu as burn_gelu;

    #[test]
    fn values_and_gradients_are_burns_bit_for_bit() {
        let device = Default::default();
        let mut init = Init::<A>::new(3, 1.0, &device);
        // More elements than one grain, so the split is exercised.
        let x = init.normal([5, 7, 1000], 2.0);
        let w = init.normal([5, 7, 1000], 1.0);
        let run = |fused: bool| {
            let x = x.clone().require_grad();
            let y = if fused {
                with_fused(true, || gelu(x.clone()))
            } else {
                burn_gelu(x.clone())
            };
            let grads = (y.clone() * w.clone()).sum().backward();
            let gx: Vec<f32> = x.grad(&grads).unwrap().into_data().to_vec().unwrap();
            let y: Vec<f32> = y.into_data().to_vec().unwrap();
            (y, gx)
        };
        assert_eq!(run(true), run(false));
        // The exact composition other backends run: the same function and gradient, to float32
        // rounding (burn's own `gelu_backward` is the tanh approximation's and misses this).
        let composed = |x: Tensor<A, 3>| {
            let x = x.require_grad();
            let y = gelu_exact(x.clone());
            let grads = (y.clone() * w.clone()).sum().backward();
            let gx: Vec<f32> = x.grad(&grads).unwrap().into_data().to_vec().unwrap();
            (y.into_data().to_vec::<f32>().unwrap(), gx)
        };
        let ((y, g), (y_want, g_want)) = (composed(x.clone()), run(true));
        for (a, b) in y.iter().zip(&y_want).chain(g.iter().zip(&g_want)) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
        }
        // Inference (no autodiff) too.
        let xi = Tensor::<Flex, 3>::from_data(x.clone().into_data(), &device);
        assert_eq!(
            with_fused(true, || gelu(xi.clone()))
                .into_data()
                .to_vec::<f32>()
                .unwrap(),
            burn_gelu(xi).into_data().to_vec::<f32>().unwrap()
        );
    }
}
