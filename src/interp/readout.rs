//! What an intervention reads at the query position of each row, shared by the full and the
//! pruned (cached) patched runs.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::model::LanguageModel;
use crate::model::ops::int_tensor;

/// What is read at the query position of each row: the full log-distribution stays on the
/// device; only the answer's probability and logit come back.
pub(super) struct Readout<B: Backend> {
    pub(super) logp_nv: Tensor<B, 2>,
    pub(super) p: Vec<f64>,
    pub(super) logit: Vec<f64>,
}

pub(super) fn to_f64<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec().expect("float data")
}

pub(super) fn readout<B: Backend>(
    model: &LanguageModel<B>,
    r_bsd: Tensor<B, 3>,
    queries: &[usize],
    answers_n1: &Tensor<B, 2, Int>,
    device: &B::Device,
) -> Readout<B> {
    let [_, s, _] = r_bsd.dims();
    let flat: Vec<i64> = queries
        .iter()
        .enumerate()
        .map(|(i, &q)| (i * s + q) as i64)
        .collect();
    let logits_nv = model.logits_at(r_bsd, int_tensor(flat, [queries.len()], device));
    let logp_nv = log_softmax(logits_nv.clone(), 1);
    Readout {
        p: to_f64(logp_nv.clone().gather(1, answers_n1.clone()).exp()),
        logit: to_f64(logits_nv.gather(1, answers_n1.clone())),
        logp_nv,
    }
}
