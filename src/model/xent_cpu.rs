//! The training loss's log-probability of each target, `x[t] − log Σ_j exp(x[j])`, over the whole
//! vocabulary, as one operation on the CPU backend: burn's `log_softmax` then `gather` make six
//! passes over the `[n, vocab]` logits forward and as many backward, each on one thread (`flex`
//! runs elementwise operations single-threaded), and the vocabulary (8,196 tokens for AR-32) makes
//! this one of the largest elementwise workloads of a step. Here the rows are split over rayon's
//! pool: forward one pass for the maximum and one for the exponentials (kept as the softmax),
//! backward one pass, `∂/∂x[j] = g·(1[j = t] − softmax[j])`. Other backends keep
//! `log_softmax` + `gather`.

use std::sync::Arc;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData, TensorPrimitive};
use rayon::prelude::*;

use super::cpu_ops::{Ad as A, cast, fused_enabled, view};

/// `log softmax(logits)[r, targets[r]]` for every row `r`.
///
/// # Shapes
/// - `logits_nv`: `[n, vocab]`, `targets_n`: `[n]` → `[n]`
pub fn target_log_probs<B: Backend>(
    logits_nv: Tensor<B, 2>,
    targets_n: Tensor<B, 1, Int>,
) -> Tensor<B, 1> {
    if let (true, Some(x), Some(t)) = (
        fused_enabled(),
        view::<_, Tensor<A, 2>>(&logits_nv),
        view::<_, Tensor<A, 1, Int>>(&targets_n),
    ) {
        let y = autodiff(x.clone(), ints(t.clone().into_data()));
        return cast(y).expect("B is the autodiff CPU backend");
    }
    let [n, _] = logits_nv.dims();
    log_softmax(logits_nv, 1)
        .gather(1, targets_n.reshape([n, 1]))
        .reshape([n])
}

fn ints(data: TensorData) -> Vec<usize> {
    data.convert::<i64>()
        .to_vec::<i64>()
        .expect("integer targets")
        .into_iter()
        .map(|t| t.max(0) as usize)
        .collect()
}

/// Each row's target log-probability, and the softmax of each row (for the backward pass).
fn forward(x: &[f32], v: usize, targets: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let mut probs = vec![0f32; x.len()];
    let mut out = vec![0f32; targets.len()];
    probs
        .par_chunks_mut(v)
        .zip(x.par_chunks(v))
        .zip(out.par_iter_mut().zip(targets.par_iter()))
        .for_each(|((p, row), (o, &t))| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for (p, &x) in p.iter_mut().zip(row) {
                *p = (x - max).exp();
                sum += *p;
            }
            let inv = 1.0 / sum;
            for p in p.iter_mut() {
                *p *= inv;
            }
            *o = row[t.min(v - 1)] - max - sum.ln();
        });
    (out, probs)
}

#[derive(Debug, Clone)]
struct Saved {
    probs: Arc<Vec<f32>>,
    targets: Arc<Vec<usize>>,
    vocab: usize,
}

#[derive(Debug)]
struct TargetLogProbBackward;

impl Backward<Flex, 1> for TargetLogProbBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let Saved {
            probs,
            targets,
            vocab,
        } = ops.state;
        let g = grads.consume::<Flex>(&ops.node);
        let [parent] = ops.parents;
        let Some(parent) = parent else { return };
        let g: Vec<f32> = Tensor::<Flex, 1>::from_primitive(TensorPrimitive::Float(g))
            .into_data()
            .convert::<f32>()
            .to_vec()
            .expect("f32 gradient");
        let mut gx = vec![0f32; probs.len()];
        gx.par_chunks_mut(vocab)
            .zip(probs.par_chunks(vocab))
            .zip(g.par_iter().zip(targets.par_iter()))
            .for_each(|((gx, p), (&g, &t))| {
                for (gx, &p) in gx.iter_mut().zip(p) {
                    *gx = -g * p;
                }
                gx[t.min(vocab - 1)] += g;
            });
        let n = targets.len();
        let grad =
            Tensor::<Flex, 2>::from_data(TensorData::new(gx, [n, vocab]), &Default::default())
                .into_primitive()
                .tensor();
        grads.register::<Flex>(parent.id, grad);
    }
}

fn autodiff(x: Tensor<A, 2>, targets: Vec<usize>) -> Tensor<A, 1> {
    let [n, v] = x.dims();
    let device = x.device();
    let x = x.into_primitive().tensor();
    let values: Vec<f32> =
        Tensor::<Flex, 2>::from_primitive(TensorPrimitive::Float(x.primitive.clone()))
            .into_data()
            .convert::<f32>()
            .to_vec()
            .expect("f32 logits");
    let (out, probs) = forward(&values, v, &targets);
    let y = Tensor::<Flex, 1>::from_data(TensorData::new(out, [n]), &device)
        .into_primitive()
        .tensor();
    let out = match TargetLogProbBackward
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            Saved {
                probs: Arc::new(probs),
                targets: Arc::new(targets),
                vocab: v,
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
    use crate::model::init::Init;
    use crate::model::ops::int_tensor;

    #[test]
    fn values_and_gradients_match_log_softmax_and_gather() {
        let device = Default::default();
        let mut init = Init::<A>::new(5, 1.0, &device);
        let (n, v) = (7, 3000);
        let logits = init.normal([n, v], 3.0);
        let w = init.normal([n], 1.0);
        let targets: Vec<i64> = (0..n as i64).map(|i| (i * 431 + 7) % v as i64).collect();
        let run = |fused: bool| {
            let x = logits.clone().require_grad();
            let t = int_tensor::<A, 1>(targets.clone(), [n], &device);
            let y = if fused {
                crate::model::cpu_ops::with_fused(true, || target_log_probs(x.clone(), t))
            } else {
                log_softmax(x.clone(), 1)
                    .gather(1, t.reshape([n, 1]))
                    .reshape([n])
            };
            let g = (y.clone() * w.clone()).sum().backward();
            let gx: Vec<f32> = x.grad(&g).unwrap().into_data().to_vec().unwrap();
            let y: Vec<f32> = y.into_data().to_vec().unwrap();
            (y, gx)
        };
        let ((y, g), (y_want, g_want)) = (run(true), run(false));
        for (a, b) in y.iter().zip(&y_want).chain(g.iter().zip(&g_want)) {
            assert!((a - b).abs() <= 2e-6 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}
