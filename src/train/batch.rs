//! Turns dataset rows into tensors: tokens, and the flat positions and targets of supervision.

use burn::tensor::{Int, Tensor, backend::Backend};

use crate::model::ops::int_tensor;
use crate::task::Dataset;

/// One batch: tokens `[b, s]`, supervised flat positions `b·s + t` `[n]` and their targets `[n]`
/// (n = b for single-query tasks; MQAR supervises every query).
pub struct Batch<B: Backend> {
    pub tokens_bs: Tensor<B, 2, Int>,
    pub flat_n: Tensor<B, 1, Int>,
    pub targets_n: Tensor<B, 1, Int>,
    /// Targets on the host, for accuracy without a device round trip.
    pub targets: Vec<i64>,
}

impl<B: Backend> Batch<B> {
    /// Rows `rows` of `data`, cut to the longest of them (variable-length tasks pad to the
    /// dataset's longest example); the prediction at `query` is supervised with the token at
    /// `answer`.
    pub fn from_rows(data: &Dataset, rows: std::ops::Range<usize>, device: &B::Device) -> Self {
        let b = rows.len();
        let s = rows.clone().map(|r| data.length(r)).max().unwrap_or(0);
        let tokens: Vec<i64> = rows
            .clone()
            .flat_map(|r| data.example(r)[..s].iter().map(|&t| t as i64))
            .collect();
        let mut flat = Vec::with_capacity(b);
        let mut targets = Vec::with_capacity(b);
        for (i, row) in rows.enumerate() {
            for (position, target) in data.supervision(row) {
                flat.push((i * s + position) as i64);
                targets.push(target as i64);
            }
        }
        let n = flat.len();
        Batch {
            tokens_bs: int_tensor(tokens, [b, s], device),
            flat_n: int_tensor(flat, [n], device),
            targets_n: int_tensor(targets.clone(), [n], device),
            targets,
        }
    }
}

/// One batch of every run of a packed group ([`crate::model::runs`]): run `r`'s rows are rows
/// `r·b..(r+1)·b` of the tokens, and its supervised entries are entries `r·n..(r+1)·n` of
/// `flat_n`/`targets_n`, weighted by `1/n_r` in `weights_rn` (a run with fewer than `n`
/// supervised positions repeats its first one with weight 0), so that `Σ weights·logp` over a
/// row of `[R, n]` is that run's mean.
pub struct GroupBatch<B: Backend> {
    pub tokens_bs: Tensor<B, 2, Int>,
    pub flat_n: Tensor<B, 1, Int>,
    pub targets_n: Tensor<B, 1, Int>,
    pub weights_rn: Tensor<B, 2>,
}

impl<B: Backend> GroupBatch<B> {
    /// Rows `rows` of each run's data. Every run's rows are cut to the longest row of the whole
    /// group: padding after an example cannot change a causal model's outputs before it.
    pub fn from_runs(parts: &[(&Dataset, std::ops::Range<usize>)], device: &B::Device) -> Self {
        let runs = parts.len();
        let b = parts.first().map_or(0, |(_, r)| r.len());
        let s = parts
            .iter()
            .flat_map(|(data, rows)| rows.clone().map(|r| data.length(r)))
            .max()
            .unwrap_or(0);
        let mut tokens = Vec::with_capacity(runs * b * s);
        let mut supervised: Vec<Vec<(i64, i64)>> = Vec::with_capacity(runs);
        for (run, (data, rows)) in parts.iter().enumerate() {
            let mut entries = Vec::new();
            for (i, row) in rows.clone().enumerate() {
                let example = data.example(row);
                let take = s.min(example.len());
                tokens.extend(example[..take].iter().map(|&t| t as i64));
                tokens.extend(std::iter::repeat_n(crate::task::PAD as i64, s - take));
                for (position, target) in data.supervision(row) {
                    entries.push((((run * b + i) * s + position) as i64, target as i64));
                }
            }
            supervised.push(entries);
        }
        let n = supervised.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let (mut flat, mut targets, mut weights) = (Vec::new(), Vec::new(), Vec::new());
        for (run, entries) in supervised.iter().enumerate() {
            let real = entries.len();
            let filler = entries
                .first()
                .copied()
                .unwrap_or((((run * b) * s) as i64, 0));
            for j in 0..n {
                let (f, t) = entries.get(j).copied().unwrap_or(filler);
                flat.push(f);
                targets.push(t);
                weights.push(if j < real { 1.0 / real as f32 } else { 0.0 });
            }
        }
        GroupBatch {
            tokens_bs: int_tensor(tokens, [runs * b, s], device),
            flat_n: int_tensor(flat, [runs * n], device),
            targets_n: int_tensor(targets, [runs * n], device),
            weights_rn: Tensor::from_data(
                burn::tensor::TensorData::new(weights, [runs, n]),
                device,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{MqarConfig, Split};
    use burn::backend::Flex;

    #[test]
    fn mqar_batches_supervise_every_query() {
        let data = MqarConfig {
            vocab_size: 64,
            pairs: 4,
            seq_len: 32,
            power_a: 0.01,
            random_non_queries: true,
        }
        .generate(0, Split::Train, 6);
        let batch = Batch::<Flex>::from_rows(&data, 2..5, &Default::default());
        assert_eq!(batch.targets.len(), 3 * 4);
        let flat: Vec<i64> = batch.flat_n.into_data().convert::<i64>().to_vec().unwrap();
        for (j, (&f, &t)) in flat.iter().zip(&batch.targets).enumerate() {
            let (row, pos) = (2 + f as usize / 32, f as usize % 32);
            assert!(
                data.supervision(row).contains(&(pos, t as u32)),
                "entry {j}"
            );
        }
    }
}
