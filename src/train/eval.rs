//! Evaluation: accuracy (argmax over the full vocabulary), probability of the gold token, loss.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use super::batch::Batch;
use crate::model::{LanguageModel, NoSites};
use crate::task::Dataset;

/// One tidy observation: (step, split, metric) → value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    pub step: u64,
    pub split: String,
    pub metric: String,
    pub value: f64,
}

const EVAL_BATCH: usize = 64;

/// Metrics of `model` on every example of `data`, as rows tagged with `step` and `split`.
pub fn evaluate<B: Backend>(
    model: &LanguageModel<B>,
    data: &Dataset,
    split: &str,
    step: u64,
    device: &B::Device,
) -> Vec<MetricRow> {
    let (mut correct, mut prob, mut nll, mut n) = (0usize, 0f64, 0f64, 0usize);
    let mut start = 0;
    while start < data.len() {
        let end = (start + EVAL_BATCH).min(data.len());
        let batch = Batch::<B>::from_rows(data, start..end, device);
        let r = model.residual(batch.tokens_bs, &mut NoSites);
        let logp = log_softmax(model.logits_at(r, batch.flat_n), 1);
        let [rows, vocab] = logp.dims();
        let logp: Vec<f32> = logp
            .into_data()
            .convert::<f32>()
            .to_vec()
            .expect("f32 logits");
        for (i, &target) in batch.targets.iter().enumerate().take(rows) {
            let row = &logp[i * vocab..(i + 1) * vocab];
            // First maximal index, as torch.argmax.
            let argmax = row
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (j, &x)| {
                    if x > best.1 { (j, x) } else { best }
                })
                .0;
            correct += (argmax as i64 == target) as usize;
            let lp = row[target as usize] as f64;
            prob += lp.exp();
            nll -= lp;
            n += 1;
        }
        start = end;
    }
    let n = n.max(1) as f64;
    [
        ("accuracy", correct as f64 / n),
        ("gold_prob", prob / n),
        ("loss", nll / n),
    ]
    .into_iter()
    .map(|(metric, value)| MetricRow {
        step,
        split: split.to_string(),
        metric: metric.to_string(),
        value,
    })
    .collect()
}
