//! Mamba's selective scan as the backend runs it (the fused CPU operation on `flex`, tensor
//! operations elsewhere) against the plain recurrence, one step at a time, on the same backend:
//! values and the gradients of x, Δ, A, B and C, for two packed runs each with its own A.

use burn::tensor::activation::softplus;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};

use super::compare::{Compare, host};
use crate::model::init::Init;
use crate::model::selective_scan::{selective_scan, selective_scan_sequential};

/// Float32 against float32 through different association orders: 1e-5 of the scale, as the
/// scan's unit tests.
const TOLERANCE: f64 = 1e-5;

/// Runs (batch rows, one each), steps, inner channels, state size.
const R: usize = 2;
const S: usize = 13;
const I: usize = 3;
const N: usize = 4;

pub fn check<B: AutodiffBackend>(device: &B::Device) -> Compare {
    let mut init = Init::<B>::new(13, 1.0, device);
    let x = init.normal([R, S, I], 1.0);
    let delta = softplus(init.normal([R, S, I], 1.0), 1.0);
    let b = init.normal([R, S, N], 1.0);
    let c = init.normal([R, S, N], 1.0);
    // Decay rates from slow to fast (Mamba's A = −(1..n)), the second run's 0.3 times the first's.
    let rates: Vec<f32> = (0..R * I)
        .flat_map(|row| {
            let run = if row < I { 1.0 } else { 0.3 };
            [-0.5f32, -1.0, -4.0, -16.0].map(|v| v * run)
        })
        .collect();
    let a = Tensor::<B, 2>::from_data(TensorData::new(rates, [R * I, N]), device);

    let run = |recurrence: bool| {
        let [x, delta, b, c] = [&x, &delta, &b, &c].map(|t| t.clone().require_grad());
        let a = a.clone().require_grad();
        let y = if recurrence {
            let row = |t: &Tensor<B, 3>, r: usize| t.clone().narrow(0, r, 1);
            Tensor::cat(
                (0..R)
                    .map(|r| {
                        selective_scan_sequential(
                            row(&x, r),
                            row(&delta, r),
                            a.clone().narrow(0, r * I, I),
                            row(&b, r),
                            row(&c, r),
                        )
                    })
                    .collect(),
                0,
            )
        } else {
            selective_scan(x.clone(), delta.clone(), a.clone(), b.clone(), c.clone())
        };
        // A loss that weighs every output differently.
        let w = Tensor::<B, 3>::ones(y.dims(), &y.device()).cumsum(1);
        let g = (y.clone() * w).sum().backward();
        let grad3 = |t: &Tensor<B, 3>| t.grad(&g).map(host).unwrap_or_default();
        let grads = [
            grad3(&x),
            grad3(&delta),
            a.grad(&g).map(host).unwrap_or_default(),
            grad3(&b),
            grad3(&c),
        ];
        (host(y), grads)
    };
    let (y, grads) = run(false);
    let (y_want, grads_want) = run(true);
    let mut cmp = Compare::default();
    cmp.tensor("y", &y, &y_want, TOLERANCE);
    for ((name, got), want) in ["dx", "ddelta", "dA", "dB", "dC"]
        .into_iter()
        .zip(grads)
        .zip(grads_want)
    {
        cmp.tensor(name, &got, &want, TOLERANCE);
    }
    cmp
}
