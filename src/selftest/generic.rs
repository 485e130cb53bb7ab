//! The tensor-operation paths every accelerator takes, against the fused operations the CPU
//! runs in their place (`model::cpu_ops`): GELU, the loss's target log-probabilities and the
//! selective scan, values and input gradients, on the same inputs. On the CPU itself the
//! generic side runs with the fused operations turned off, so the check means the same there.

use burn::tensor::activation::softplus;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};

use super::compare::{Compare, host};
use crate::exec::device::CpuBackend;
use crate::model::cpu_ops::with_fused;
use crate::model::gelu_cpu::gelu;
use crate::model::init::Init;
use crate::model::selective_scan::selective_scan;
use crate::model::xent_cpu::target_log_probs;

/// Different association orders in float32: 1e-5 of the scale, as the fused operations' tests.
const TOLERANCE: f64 = 1e-5;

/// Values and input gradients of the three operations on backend `B`.
fn outputs<B: AutodiffBackend>(device: &B::Device) -> Vec<(&'static str, Vec<f32>)> {
    let mut init = Init::<B>::new(7, 1.0, device);
    let mut out = Vec::new();

    let x = init.normal([4, 37, 64], 2.0).require_grad();
    let w = init.normal([4, 37, 64], 1.0);
    let y = gelu(x.clone());
    let g = (y.clone() * w).sum().backward();
    out.push(("gelu", host(y)));
    out.push(("gelu.dx", x.grad(&g).map(host).unwrap_or_default()));

    let (n, v) = (64, 300);
    let logits = init.normal([n, v], 3.0).require_grad();
    let w = init.normal([n], 1.0);
    let targets: Vec<i64> = (0..n as i64).map(|i| (i * 131 + 7) % v as i64).collect();
    let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(targets, [n]), device);
    let y = target_log_probs(logits.clone(), targets);
    let g = (y.clone() * w).sum().backward();
    out.push(("log_probs", host(y)));
    out.push((
        "log_probs.dx",
        logits.grad(&g).map(host).unwrap_or_default(),
    ));

    let (b, s, i, state) = (4, 37, 8, 16);
    let x = init.normal([b, s, i], 1.0).require_grad();
    let delta = softplus(init.normal([b, s, i], 1.0), 1.0).require_grad();
    let a = init.normal([i, state], 1.0).abs().neg().require_grad();
    let bm = init.normal([b, s, state], 1.0).require_grad();
    let cm = init.normal([b, s, state], 1.0).require_grad();
    let y = selective_scan(x.clone(), delta.clone(), a.clone(), bm.clone(), cm.clone());
    let w = Tensor::<B, 3>::ones(y.dims(), device).cumsum(1);
    let g = (y.clone() * w).sum().backward();
    out.push(("scan", host(y)));
    for (name, t) in [
        ("scan.dx", &x),
        ("scan.ddelta", &delta),
        ("scan.dB", &bm),
        ("scan.dC", &cm),
    ] {
        out.push((name, t.grad(&g).map(host).unwrap_or_default()));
    }
    out.push(("scan.dA", a.grad(&g).map(host).unwrap_or_default()));
    out
}

pub fn check<B: AutodiffBackend>(device: &B::Device) -> Compare {
    let ours = with_fused(false, || outputs::<B>(device));
    let fused = with_fused(true, || outputs::<CpuBackend>(&Default::default()));
    let mut c = Compare::default();
    for ((name, got), (_, want)) in ours.iter().zip(&fused) {
        c.tensor(name, got, want, TOLERANCE);
    }
    c
}
