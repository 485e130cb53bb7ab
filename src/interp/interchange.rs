//! Interchange interventions over a grid of (corrupted role, layer, site, patch role).
//!
//! For each example and corrupted role `c`: run the clean input and the input with the token at
//! `c` corrupted, caching every site; then, for each layer `l`, site `s` and patch role `p`, run
//! the corrupted input with the site's activation at `p` overwritten with the clean one. The
//! cached path (`pruned.rs`) computes only the patched runs that can differ from the clean or
//! corrupted ones, from the patched site onward, in batches across patch roles. Read at `query`:
//! `p_orig, p_corr, p_rest` (probability of the clean answer), the same as logits, and
//! `KL(p_corr ‖ p_patched)`. Attribution is a ratio of means,
//! `(E[p_rest] − E[p_corr]) / (E[p_orig] − E[p_corr])`.

use std::collections::{BTreeMap, HashMap};

use burn::tensor::{Tensor, TensorData, backend::Backend};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::corrupt::{Corruption, corrupt_token};
use super::patch::{Capture, Patch};
use super::pruned::{Cell, CellOut, kl_rows, pruned_cell};
use super::readout::{Readout, readout};
use crate::model::ops::int_tensor;
use crate::model::{LanguageModel, Site};
use crate::task::{Dataset, Role, TaskConfig};

/// One intervention grid, resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterchangeConfig {
    pub layers: Vec<usize>,
    pub sites: Vec<Site>,
    pub corrupt: Vec<Role>,
    pub patch_at: Vec<Role>,
    /// The first `examples` rows of the data are used.
    pub examples: usize,
    pub corruption: Corruption,
    /// Seed of the corruption draws: the run's, so not part of a serialised (hashed) grid.
    #[serde(skip)]
    pub seed: u64,
}

/// Means over examples of one grid cell; sums are kept so groups can be re-aggregated
/// (`attrib` of a group = ratio of its pooled means, from `n`-weighted means).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterchangeRow {
    pub layer: usize,
    pub site: Site,
    pub corrupted_role: Role,
    pub patch_role: Role,
    pub n: usize,
    pub p_orig: f64,
    pub p_corr: f64,
    pub p_rest: f64,
    pub logit_orig: f64,
    pub logit_corr: f64,
    pub logit_rest: f64,
    pub prob_diff: f64,
    pub logit_diff: f64,
    pub kl: f64,
    pub attrib: f64,
}

/// For one example and corrupted role: the grid cell whose patch restored the most probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetailRow {
    /// Row of the data (0-based).
    pub example: usize,
    pub corrupted_role: Role,
    pub p_orig: f64,
    pub p_corr: f64,
    pub best_layer: usize,
    pub best_site: Site,
    pub best_patch_role: Role,
    /// `p_rest − p_corr` at the best cell.
    pub best_prob_diff: f64,
}

/// Grid means and per-example detail.
#[derive(Debug, Clone, PartialEq)]
pub struct InterchangeOutput {
    pub rows: Vec<InterchangeRow>,
    pub detail: Vec<DetailRow>,
}

#[derive(Default, Clone, Copy)]
struct Sums {
    n: usize,
    p_orig: f64,
    p_corr: f64,
    p_rest: f64,
    l_orig: f64,
    l_corr: f64,
    l_rest: f64,
    kl: f64,
}

const BATCH: usize = 32;

/// How patched runs are computed; both give the same numbers (to float rounding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchPath {
    /// From the cached clean and corrupted activations, computing only what a patch can change
    /// (`pruned.rs` lists the rules).
    Cached,
    /// Rerun the whole model once per (layer, site, patch role): the simple oracle.
    Naive,
}

/// Runs the grid on the first `cfg.examples` rows of `data`.
pub fn interchange<B: Backend>(
    model: &LanguageModel<B>,
    task: &TaskConfig,
    data: &Dataset,
    cfg: &InterchangeConfig,
    device: &B::Device,
) -> Vec<InterchangeRow> {
    interchange_with(model, task, data, cfg, device, PatchPath::Cached).rows
}

/// [`interchange`] with an explicit [`PatchPath`].
///
/// Long on purpose (~210 lines): one batch loop whose clean and corrupted passes, captured
/// activations and readouts every cell of the grid reads; split, each piece would take the
/// batch's tensors and caches as a dozen arguments. Its phases are commented in order.
pub fn interchange_with<B: Backend>(
    model: &LanguageModel<B>,
    task: &TaskConfig,
    data: &Dataset,
    cfg: &InterchangeConfig,
    device: &B::Device,
    path: PatchPath,
) -> InterchangeOutput {
    let n = cfg.examples.min(data.len());
    let s = data.seq_len;
    let p = cfg.patch_at.len();
    let mut sums: BTreeMap<(usize, usize, usize, usize), Sums> = BTreeMap::new();
    let mut detail: Vec<DetailRow> = Vec::new();
    // One RNG per corrupted role, so adding a role does not change another role's draws.
    let mut rngs: Vec<ChaCha8Rng> = cfg
        .corrupt
        .iter()
        .map(|&role| {
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
            rng.set_stream(100 + role as u64);
            rng
        })
        .collect();

    let mut start = 0;
    while start < n {
        let end = (start + BATCH).min(n);
        let b = end - start;
        let rows: Vec<usize> = (start..end).collect();
        let clean: Vec<u32> = data.tokens[start * s..end * s].to_vec();
        let queries: Vec<usize> = rows
            .iter()
            .map(|&i| data.position(i, Role::Query))
            .collect();
        let answers: Vec<i64> = rows.iter().map(|&i| data.target(i) as i64).collect();
        let answers_b1 = int_tensor::<B, 2>(answers.clone(), [b, 1], device);
        let to_tensor = |tokens: &[u32]| {
            int_tensor::<B, 2>(tokens.iter().map(|&t| t as i64).collect(), [b, s], device)
        };
        // positions[j][i]: where patch role j sits in example i.
        let positions: Vec<Vec<usize>> = cfg
            .patch_at
            .iter()
            .map(|&role| rows.iter().map(|&row| data.position(row, role)).collect())
            .collect();
        // The naive path's masks: row j·b + i is 1 at the position of patch role j in example i.
        let mask_bs1 = (path == PatchPath::Naive).then(|| {
            let mut mask = vec![0f32; p * b * s];
            for (j, pos) in positions.iter().enumerate() {
                for (i, &t) in pos.iter().enumerate() {
                    mask[(j * b + i) * s + t] = 1.0;
                }
            }
            Tensor::<B, 3>::from_data(TensorData::new(mask, [p * b, s, 1]), device)
        });

        let mut clean_cap = Capture::default();
        let r = model.residual(to_tensor(&clean), &mut clean_cap);
        let orig = readout(model, r, &queries, &answers_b1, device);

        for (ci, &role) in cfg.corrupt.iter().enumerate() {
            let mut corrupted = clean.clone();
            for (i, &row) in rows.iter().enumerate() {
                let pos = data.position(row, role);
                corrupted[i * s + pos] = corrupt_token(
                    task,
                    role,
                    corrupted[i * s + pos],
                    cfg.corruption,
                    &mut rngs[ci],
                );
            }
            // Recurrent mixers' states too, which the cached path resumes from.
            let mut corr_cap = Capture {
                states: (path == PatchPath::Cached).then(HashMap::new),
                ..Capture::default()
            };
            let r = model.residual(to_tensor(&corrupted), &mut corr_cap);
            let corr = readout(model, r, &queries, &answers_b1, device);
            let kl_orig = kl_rows(corr.logp_nv.clone(), orig.logp_nv.clone());
            let first_detail = detail.len();
            detail.extend(rows.iter().enumerate().map(|(i, &row)| DetailRow {
                example: row,
                corrupted_role: role,
                p_orig: orig.p[i],
                p_corr: corr.p[i],
                best_layer: 0,
                best_site: Site::BlockInput,
                best_patch_role: cfg.patch_at[0],
                best_prob_diff: f64::NEG_INFINITY,
            }));

            // A block's output is the next block's input: patching either is the same run.
            let mut done: HashMap<(usize, Site), CellOut> = HashMap::new();
            for &layer in &cfg.layers {
                for &site in &cfg.sites {
                    let same_run = if site == Site::BlockOutput && layer + 1 < model.layers.len() {
                        (layer + 1, Site::BlockInput)
                    } else {
                        (layer, site)
                    };
                    let (Some(clean_act), Some(corr_act)) = (
                        clean_cap.acts.get(&(layer, site)),
                        corr_cap.acts.get(&(layer, site)),
                    ) else {
                        continue; // validation rejects sites a block does not have
                    };
                    let rest = match path {
                        PatchPath::Cached if done.contains_key(&same_run) => {
                            done[&same_run].clone()
                        }
                        PatchPath::Cached => pruned_cell(
                            model,
                            &Cell {
                                layer,
                                site,
                                clean_act,
                                corr_act,
                                corr_cap: &corr_cap,
                                positions: &positions,
                                queries: &queries,
                                answers: &answers,
                                orig: &orig,
                                corr: &corr,
                                kl_orig: &kl_orig,
                            },
                            device,
                        ),
                        PatchPath::Naive => {
                            let parts: Vec<Readout<B>> = (0..p)
                                .map(|j| {
                                    let mut patch = Patch {
                                        layer,
                                        site,
                                        mask_bs1: mask_bs1.clone().expect("naive masks").slice([
                                            j * b..(j + 1) * b,
                                            0..s,
                                            0..1,
                                        ]),
                                        clean_bsd: clean_act.clone(),
                                    };
                                    let r = model.residual(to_tensor(&corrupted), &mut patch);
                                    readout(model, r, &queries, &answers_b1, device)
                                })
                                .collect();
                            let logp_nv =
                                Tensor::cat(parts.iter().map(|r| r.logp_nv.clone()).collect(), 0);
                            CellOut {
                                p: parts.iter().flat_map(|r| r.p.iter().copied()).collect(),
                                logit: parts.iter().flat_map(|r| r.logit.iter().copied()).collect(),
                                kl: kl_rows(Tensor::cat(vec![corr.logp_nv.clone(); p], 0), logp_nv),
                            }
                        }
                    };
                    if path == PatchPath::Cached && !done.contains_key(&same_run) {
                        done.insert(same_run, rest.clone());
                    }
                    for j in 0..p {
                        let cell = sums.entry((ci, layer, site as usize, j)).or_default();
                        for i in 0..b {
                            let k = j * b + i;
                            let best = &mut detail[first_detail + i];
                            if rest.p[k] - corr.p[i] > best.best_prob_diff {
                                best.best_prob_diff = rest.p[k] - corr.p[i];
                                best.best_layer = layer;
                                best.best_site = site;
                                best.best_patch_role = cfg.patch_at[j];
                            }
                            cell.n += 1;
                            cell.p_orig += orig.p[i];
                            cell.p_corr += corr.p[i];
                            cell.p_rest += rest.p[k];
                            cell.l_orig += orig.logit[i];
                            cell.l_corr += corr.logit[i];
                            cell.l_rest += rest.logit[k];
                            cell.kl += rest.kl[k];
                        }
                    }
                }
            }
        }
        start = end;
    }
    let mut out = Vec::new();
    for (ci, &corrupted_role) in cfg.corrupt.iter().enumerate() {
        for &layer in &cfg.layers {
            for &site in &cfg.sites {
                for (j, &patch_role) in cfg.patch_at.iter().enumerate() {
                    let Some(c) = sums.get(&(ci, layer, site as usize, j)) else {
                        continue;
                    };
                    let k = c.n.max(1) as f64;
                    let (p_orig, p_corr, p_rest) = (c.p_orig / k, c.p_corr / k, c.p_rest / k);
                    out.push(InterchangeRow {
                        layer,
                        site,
                        corrupted_role,
                        patch_role,
                        n: c.n,
                        p_orig,
                        p_corr,
                        p_rest,
                        logit_orig: c.l_orig / k,
                        logit_corr: c.l_corr / k,
                        logit_rest: c.l_rest / k,
                        prob_diff: p_rest - p_corr,
                        logit_diff: (c.l_rest - c.l_corr) / k,
                        kl: c.kl / k,
                        attrib: (p_rest - p_corr) / (p_orig - p_corr),
                    });
                }
            }
        }
    }
    InterchangeOutput { rows: out, detail }
}
