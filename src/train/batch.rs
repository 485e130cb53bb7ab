//! Turns dataset rows into tensors: tokens, and the flat positions and targets of supervision.

use burn::tensor::{Int, Tensor, backend::Backend};

use crate::model::lm::int_tensor;
use crate::task::{Dataset, Role};

/// One batch: tokens `[b, s]`, supervised flat positions `b·s + t` `[n]` and their targets `[n]`.
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
            let query = data.position(row, Role::Query);
            flat.push((i * s + query) as i64);
            targets.push(data.example(row)[data.position(row, Role::Answer)] as i64);
        }
        Batch {
            tokens_bs: int_tensor(tokens, [b, s], device),
            flat_n: int_tensor(flat, [b], device),
            targets_n: int_tensor(targets.clone(), [b], device),
            targets,
        }
    }
}
