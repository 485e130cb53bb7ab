//! Zero and mean ablation: replace one site's activation at one role's position with zeros or
//! with its mean over the examples, and measure how much the clean answer suffers.

use std::collections::BTreeMap;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};

use super::patch::{Capture, Patch};
use super::readout::to_f64;
use crate::model::ops::int_tensor;
use crate::model::{LanguageModel, Site};
use crate::task::{Dataset, Role};

/// What replaces the ablated activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AblationMode {
    /// Zeros.
    Zero,
    /// The activation's mean over the evaluated examples, at each example's position of the role.
    Mean,
}

impl AblationMode {
    pub fn name(self) -> &'static str {
        match self {
            AblationMode::Zero => "zero",
            AblationMode::Mean => "mean",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AblationConfig {
    pub layers: Vec<usize>,
    pub sites: Vec<Site>,
    pub ablate_at: Vec<Role>,
    pub examples: usize,
    pub mode: AblationMode,
}

/// Means over examples of one (layer, site, role) cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AblationRow {
    pub layer: usize,
    pub site: Site,
    pub ablated_role: Role,
    pub mode: AblationMode,
    pub n: usize,
    pub p_orig: f64,
    pub p_abl: f64,
    pub logit_orig: f64,
    pub logit_abl: f64,
    /// `p_orig − p_abl`.
    pub prob_drop: f64,
    /// `KL(p_orig ‖ p_ablated)`.
    pub kl: f64,
}

const BATCH: usize = 32;

struct Batch<B: Backend> {
    rows: std::ops::Range<usize>,
    tokens: Tensor<B, 2, burn::tensor::Int>,
    flat: Tensor<B, 1, burn::tensor::Int>,
    answers: Tensor<B, 2, burn::tensor::Int>,
}

fn batches<B: Backend>(data: &Dataset, n: usize, device: &B::Device) -> Vec<Batch<B>> {
    let s = data.seq_len;
    (0..n)
        .step_by(BATCH)
        .map(|start| {
            let rows = start..(start + BATCH).min(n);
            let b = rows.len();
            let tokens = data.tokens[rows.start * s..rows.end * s]
                .iter()
                .map(|&t| t as i64)
                .collect();
            let flat = rows
                .clone()
                .enumerate()
                .map(|(i, r)| (i * s + data.position(r, Role::Query)) as i64)
                .collect();
            let answers = rows.clone().map(|r| data.target(r) as i64).collect();
            Batch {
                tokens: int_tensor(tokens, [b, s], device),
                flat: int_tensor(flat, [b], device),
                answers: int_tensor(answers, [b, 1], device),
                rows,
            }
        })
        .collect()
}

/// Runs every (layer, site, role) ablation on the first `cfg.examples` rows of `data`.
///
/// Long on purpose (~140 lines): as [`super::interchange_with`], one batch loop whose clean
/// pass, means and readouts every cell reads.
pub fn ablate<B: Backend>(
    model: &LanguageModel<B>,
    data: &Dataset,
    cfg: &AblationConfig,
    device: &B::Device,
) -> Vec<AblationRow> {
    let n = cfg.examples.min(data.len());
    let s = data.seq_len;
    let batches = batches::<B>(data, n, device);
    let roles = cfg.ablate_at.len();

    // Mean mode: the mean activation at each role's position, per (layer, site), `[d]`.
    let mut means: BTreeMap<(usize, usize, usize), Tensor<B, 1>> = BTreeMap::new();
    if cfg.mode == AblationMode::Mean {
        for batch in &batches {
            let mut cap = Capture::default();
            model.residual(batch.tokens.clone(), &mut cap);
            for (&(layer, site), act) in &cap.acts {
                let [b, _, d] = act.dims();
                for (j, &role) in cfg.ablate_at.iter().enumerate() {
                    let idx: Vec<i64> = batch
                        .rows
                        .clone()
                        .enumerate()
                        .map(|(i, r)| (i * s + data.position(r, role)) as i64)
                        .collect();
                    let picked = act
                        .clone()
                        .reshape([b * s, d])
                        .select(0, int_tensor(idx, [b], device));
                    let sum = picked.sum_dim(0).reshape([d]).div_scalar(n as f64);
                    means
                        .entry((layer, site as usize, j))
                        .and_modify(|m| *m = m.clone() + sum.clone())
                        .or_insert(sum);
                }
            }
        }
    }

    let mut sums: BTreeMap<(usize, usize, usize), [f64; 5]> = BTreeMap::new();
    for batch in &batches {
        let b = batch.rows.len();
        let mut cap = Capture::default();
        let r = model.residual(batch.tokens.clone(), &mut cap);
        let logits = model.logits_at(r, batch.flat.clone());
        let logp = log_softmax(logits.clone(), 1);
        let p_orig = to_f64(logp.clone().gather(1, batch.answers.clone()).exp());
        let l_orig = to_f64(logits.gather(1, batch.answers.clone()));
        let stacked_logp = Tensor::cat(vec![logp.clone(); roles], 0);
        let stacked_answers = Tensor::cat(vec![batch.answers.clone(); roles], 0);
        // Row k = j·b + i is example i with role j ablated.
        let stacked_flat: Vec<i64> = (0..roles * b)
            .map(|k| (k * s + data.position(batch.rows.start + k % b, Role::Query)) as i64)
            .collect();
        let mut mask = vec![0f32; roles * b * s];
        for (j, &role) in cfg.ablate_at.iter().enumerate() {
            for i in 0..b {
                mask[(j * b + i) * s + data.position(batch.rows.start + i, role)] = 1.0;
            }
        }
        let mask_bs1 = Tensor::<B, 3>::from_data(TensorData::new(mask, [roles * b, s, 1]), device);
        for &layer in &cfg.layers {
            let r_in = Tensor::cat(vec![cap.acts[&(layer, Site::BlockInput)].clone(); roles], 0);
            for &site in &cfg.sites {
                let Some(act) = cap.acts.get(&(layer, site)) else {
                    continue;
                };
                let [_, _, d] = act.dims();
                let replacement = match cfg.mode {
                    AblationMode::Zero => Tensor::zeros([roles * b, s, d], device),
                    AblationMode::Mean => Tensor::cat(
                        (0..roles)
                            .map(|j| {
                                means[&(layer, site as usize, j)]
                                    .clone()
                                    .reshape([1, 1, d])
                                    .expand([b, s, d])
                            })
                            .collect(),
                        0,
                    ),
                };
                let mut patch = Patch {
                    layer,
                    site,
                    mask_bs1: mask_bs1.clone(),
                    clean_bsd: replacement,
                };
                let r = model.blocks_from(layer, r_in.clone(), &mut patch);
                let logits =
                    model.logits_at(r, int_tensor(stacked_flat.clone(), [roles * b], device));
                let abl_logp = log_softmax(logits.clone(), 1);
                let p_abl = to_f64(abl_logp.clone().gather(1, stacked_answers.clone()).exp());
                let l_abl = to_f64(logits.gather(1, stacked_answers.clone()));
                let kl = to_f64(
                    (stacked_logp.clone().exp() * (stacked_logp.clone() - abl_logp)).sum_dim(1),
                );
                for j in 0..roles {
                    let cell = sums.entry((layer, site as usize, j)).or_insert([0.0; 5]);
                    for i in 0..b {
                        let k = j * b + i;
                        cell[0] += p_orig[i];
                        cell[1] += p_abl[k];
                        cell[2] += l_orig[i];
                        cell[3] += l_abl[k];
                        cell[4] += kl[k];
                    }
                }
            }
        }
    }
    let k = n.max(1) as f64;
    let mut out = Vec::new();
    for &layer in &cfg.layers {
        for &site in &cfg.sites {
            for (j, &ablated_role) in cfg.ablate_at.iter().enumerate() {
                let Some(c) = sums.get(&(layer, site as usize, j)) else {
                    continue;
                };
                out.push(AblationRow {
                    layer,
                    site,
                    ablated_role,
                    mode: cfg.mode,
                    n,
                    p_orig: c[0] / k,
                    p_abl: c[1] / k,
                    logit_orig: c[2] / k,
                    logit_abl: c[3] / k,
                    prob_drop: (c[0] - c[1]) / k,
                    kl: c[4] / k,
                });
            }
        }
    }
    out
}
