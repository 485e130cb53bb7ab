//! Multi-query associative recall (MQAR), as in zoology (`data/multiquery_ar.py`).
//!
//! Reference: Arora, Eyuboglu et al., "Zoology: Measuring and improving recall in efficient
//! language models" (arXiv 2312.04927); `reference/paper-setup.md` §1.1.
//!
//! ```text
//! k1 v1 k2 v2 … kn vn │ x x kq x x x x kq' x …      (seq_len tokens, no BOS/EOS)
//!     context          queries at power-law gaps; x = 0, or random with random_non_queries
//! ```
//! Keys come from [1, V/2), values from [V/2, V), distinct within a sequence. Every key is
//! queried once, at position `2n + 2g` for a gap g drawn without replacement with
//! P(g) ∝ a·(g+1)^(a−1) (a = power_a; small a puts queries early); the prediction at each query
//! is supervised with the key's value, which does not appear after it. Token 0 is a filler,
//! which `random_non_queries` replaces by uniform tokens from [0, V). The roles name the query
//! that comes first: `key`/`value` its pair in the context, `divider` the first position after
//! the context, `query` the query, `answer` the position after it.

use rand::Rng;
use rand::seq::index;

use super::dataset::{Dataset, Role, Split, split_rng};

#[derive(Debug, Clone, PartialEq)]
pub struct MqarConfig {
    /// Token ids 0..V: keys from [1, V/2), values from [V/2, V). Zoology's default: 8192.
    pub vocab_size: usize,
    /// Key-value pairs in context, each queried once.
    pub pairs: usize,
    /// Tokens per sequence (even, ≥ 4·pairs).
    pub seq_len: usize,
    /// Power-law exponent of the query gaps (zoology: 0.01).
    pub power_a: f64,
    /// Replace filler zeros by random tokens (zoology: on).
    pub random_non_queries: bool,
}

impl MqarConfig {
    pub fn num_keys(&self) -> usize {
        self.vocab_size / 2 - 1
    }

    pub fn key_token(&self, k: usize) -> u32 {
        (1 + k) as u32
    }

    pub fn value_token(&self, v: usize) -> u32 {
        (self.vocab_size / 2 + v) as u32
    }

    pub fn token_name(&self, token: u32) -> String {
        let half = (self.vocab_size / 2) as u32;
        match token {
            0 => "_".into(),
            t if t < half => format!("k{}", t - 1),
            t => format!("v{}", t - half),
        }
    }

    /// Query gaps: `pairs` distinct slots of the query region, by the power law.
    fn gaps(&self, rng: &mut impl Rng) -> Vec<usize> {
        let space = (self.seq_len - 2 * self.pairs) / 2;
        let mut weights: Vec<f64> = (1..=space)
            .map(|x| self.power_a * (x as f64).powf(self.power_a - 1.0))
            .collect();
        let mut out = Vec::with_capacity(self.pairs);
        for _ in 0..self.pairs {
            let total: f64 = weights.iter().sum();
            let mut u = rng.random::<f64>() * total;
            let mut pick = weights.len() - 1;
            for (g, w) in weights.iter().enumerate() {
                if *w > 0.0 && u < *w {
                    pick = g;
                    break;
                }
                u -= w;
            }
            // Without replacement: a drawn slot cannot be drawn again.
            weights[pick] = 0.0;
            out.push(pick);
        }
        out
    }

    /// Generates `n` sequences; the same `(self, seed, split)` always gives the same data.
    pub fn generate(&self, seed: u64, split: Split, n: usize) -> Dataset {
        let mut rng = split_rng(seed, split);
        let context = 2 * self.pairs;
        let mut tokens = Vec::with_capacity(n * self.seq_len);
        let mut roles = Vec::with_capacity(n);
        let mut supervised = Vec::with_capacity(n);
        for _ in 0..n {
            let keys = index::sample(&mut rng, self.num_keys(), self.pairs);
            let values = index::sample(&mut rng, self.vocab_size - self.vocab_size / 2, self.pairs);
            let mut row = vec![0u32; self.seq_len];
            for i in 0..self.pairs {
                row[2 * i] = self.key_token(keys.index(i));
                row[2 * i + 1] = self.value_token(values.index(i));
            }
            let gaps = self.gaps(&mut rng);
            let mut queries: Vec<(u32, u32, usize)> = gaps
                .iter()
                .enumerate()
                .map(|(i, &g)| {
                    let at = context + 2 * g;
                    row[at] = self.key_token(keys.index(i));
                    (at as u32, self.value_token(values.index(i)), i)
                })
                .collect();
            if self.random_non_queries {
                let is_query: Vec<bool> = (0..self.seq_len)
                    .map(|p| queries.iter().any(|&(q, _, _)| q as usize == p))
                    .collect();
                for p in context..self.seq_len {
                    if row[p] == 0 && !is_query[p] {
                        row[p] = rng.random_range(0..self.vocab_size as u32);
                    }
                }
            }
            queries.sort_unstable();
            let (first_at, _, first_pair) = queries[0];
            let mut r = [0u32; Role::COUNT];
            r[Role::Key as usize] = (2 * first_pair) as u32;
            r[Role::Value as usize] = (2 * first_pair + 1) as u32;
            r[Role::Divider as usize] = context as u32;
            r[Role::Query as usize] = first_at;
            r[Role::Answer as usize] = (first_at + 1).min(self.seq_len as u32 - 1);
            roles.push(r);
            supervised.push(queries.iter().map(|&(at, v, _)| (at, v)).collect());
            tokens.extend(row);
        }
        Dataset {
            seq_len: self.seq_len,
            vocab_size: self.vocab_size,
            tokens,
            roles,
            supervised,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> MqarConfig {
        MqarConfig {
            vocab_size: 64,
            pairs: 4,
            seq_len: 32,
            power_a: 0.01,
            random_non_queries: true,
        }
    }

    #[test]
    fn every_key_is_queried_once_and_supervised_with_its_value() {
        let cfg = small();
        let data = cfg.generate(1, Split::Train, 200);
        for i in 0..data.len() {
            let t = data.example(i);
            let sup = data.supervision(i);
            assert_eq!(sup.len(), 4);
            for (at, target) in sup {
                assert!(
                    at >= 8 && (at - 8) % 2 == 0,
                    "queries sit at even offsets after the context"
                );
                let k = (0..4)
                    .find(|&j| t[2 * j] == t[at])
                    .expect("a query repeats a context key");
                assert_eq!(target, t[2 * k + 1], "the answer is that key's value");
                assert!(
                    t[at] >= 1 && t[at] < 32 && target >= 32,
                    "key and value ranges"
                );
            }
            assert_eq!(data.target(i), t[data.position(i, Role::Value)]);
        }
    }

    #[test]
    fn small_power_puts_queries_early() {
        let cfg = MqarConfig {
            seq_len: 200,
            random_non_queries: false,
            ..small()
        };
        let data = cfg.generate(2, Split::Train, 300);
        let mean_gap = (0..data.len())
            .flat_map(|i| data.supervision(i))
            .map(|(at, _)| (at - 8) as f64 / 2.0)
            .sum::<f64>()
            / (300.0 * 4.0);
        // Uniform gaps over 96 slots would average ≈ 47.5.
        assert!(mean_gap < 30.0, "mean gap {mean_gap}");
    }
}
