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
