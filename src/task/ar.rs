//! Associative recall (AR), single query, disjoint key and value vocabularies.
//!
//! Reference: Arora et al., "Mechanistic evaluation of Transformers and state space models"
//! (arXiv 2505.15105), §1.1 of `reference/paper-setup.md`.
//!
//! ```text
//! BOS k1 v1 … kn vn EOS kq vq EOS          n pairs ⇒ 2n + 5 tokens
//!  0  1  2      2n-1 2n 2n+1 2n+2 2n+3 2n+4
//!                      divider query answer
//! ```
//! Token ids: keys `k0..` start at 3, values follow the keys; the vocabulary has one extra,
//! never-used row (8196 rows for `num_kv = 8192`) as in the reference. With `query = Value`
//! the tail is `EOS vq kq EOS` (reverse AR); the roles keep naming the pair's key and value
//! positions.

use rand::seq::index;
use rand::{Rng, SeedableRng};

use super::dataset::{Dataset, Role, Split, split_rng};
use super::{BOS, EOS};

/// AR with `num_kv` key+value tokens split evenly, and `pairs` pairs in context.
#[derive(Debug, Clone, PartialEq)]
pub struct ArConfig {
    /// Size of the key + value vocabulary (even; half keys, half values). Paper: 8192.
    pub num_kv: usize,
    /// Key-value pairs in context. Paper AR-32: 16.
    pub pairs: usize,
    /// Which side of the pair is queried.
    pub query: ArQuery,
    /// Hold out a random share of (key, value) pairs from being queried in training.
    pub prohibit: Option<Prohibit>,
}

/// A generalisation split over (key, value) pairs (reference §1.1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prohibit {
    /// Share of all (key, value) pairs that are prohibited (reference: 0.2).
    pub fraction: f64,
    pub split: ProhibitSplit,
}

/// Which pairs the test split queries.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ProhibitSplit {
    /// **Quirk reproduced**: every split queries only allowed pairs, as the reference does, so
    /// its test set is not out of distribution.
    #[default]
    Reference,
    /// Training queries allowed pairs; the test split queries only prohibited pairs.
    Strict,
}

/// What the query repeats, and so what must be recalled.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ArQuery {
    /// Query a key, answer its value (the paper's AR).
    #[default]
    Key,
    /// Query a value, answer its key ("reverse AR" in the reference).
    Value,
}

impl ArQuery {
    pub fn is_key(&self) -> bool {
        *self == ArQuery::Key
    }
}

impl ArConfig {
    pub fn num_keys(&self) -> usize {
        self.num_kv / 2
    }

    pub fn vocab_size(&self) -> usize {
        // 3 specials + keys + values + the reference's unused extra row. Saturating: a spec's
        // size may be anything until `validate` has refused it.
        self.num_kv.saturating_add(4)
    }

    pub fn seq_len(&self) -> usize {
        self.pairs.saturating_mul(2).saturating_add(5)
    }

    pub fn key_token(&self, k: usize) -> u32 {
        (3 + k) as u32
    }

    pub fn value_token(&self, v: usize) -> u32 {
        (3 + self.num_keys() + v) as u32
    }

    /// A readable name for a token: `<bos>`, `<eos>`, `k12`, `v7`.
    pub fn token_name(&self, token: u32) -> String {
        let k = self.num_keys() as u32;
        match token {
            super::PAD => "<pad>".into(),
            BOS => "<bos>".into(),
            EOS => "<eos>".into(),
            t if t < 3 + k => format!("k{}", t - 3),
            t if t < 3 + 2 * k => format!("v{}", t - 3 - k),
            t => format!("<unused {t}>"),
        }
    }

    /// The prohibited (key, value) index pairs, as a `K × K` table; drawn from the seed alone, so
    /// every split of one dataset agrees on it.
    pub fn prohibited(&self, seed: u64, fraction: f64) -> Vec<bool> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(3);
        let k = self.num_keys();
        (0..k * k).map(|_| rng.random::<f64>() < fraction).collect()
    }

    /// Generates `n` sequences; the same `(self, seed, split)` always gives the same data.
    pub fn generate(&self, seed: u64, split: Split, n: usize) -> Dataset {
        let mut rng = split_rng(seed, split);
        let len = self.seq_len();
        let keys_n = self.num_keys();
        let mut tokens = Vec::with_capacity(n * len);
        let mut roles = Vec::with_capacity(n);
        // With a prohibited set: which pairs this split may query (true = prohibited ones).
        let rule = self.prohibit.map(|p| {
            let query_prohibited = split == Split::Test && p.split == ProhibitSplit::Strict;
            (self.prohibited(seed, p.fraction), query_prohibited)
        });
        for _ in 0..n {
            let (keys, values, q) = loop {
                let keys = index::sample(&mut rng, keys_n, self.pairs);
                let values = index::sample(&mut rng, keys_n, self.pairs);
                let Some((table, want)) = &rule else {
                    let q = rng.random_range(0..self.pairs);
                    break (keys, values, q);
                };
                let eligible: Vec<usize> = (0..self.pairs)
                    .filter(|&i| table[keys.index(i) * keys_n + values.index(i)] == *want)
                    .collect();
                // No eligible pair in this sequence: draw another one.
                if !eligible.is_empty() {
                    let q = eligible[rng.random_range(0..eligible.len())];
                    break (keys, values, q);
                }
            };
            tokens.push(BOS);
            for (k, v) in keys.iter().zip(values.iter()) {
                tokens.push(self.key_token(k));
                tokens.push(self.value_token(v));
            }
            let divider = 2 * self.pairs + 1;
            tokens.push(EOS);
            let (key, value) = (
                self.key_token(keys.index(q)),
                self.value_token(values.index(q)),
            );
            match self.query {
                ArQuery::Key => tokens.extend([key, value]),
                ArQuery::Value => tokens.extend([value, key]),
            }
            tokens.push(EOS);
            roles.push(Role::positions(2 * q + 1, 2 * q + 2, divider));
        }
        Dataset {
            seq_len: len,
            vocab_size: self.vocab_size(),
            tokens,
            roles,
            supervised: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn paper() -> ArConfig {
        ArConfig {
            num_kv: 8192,
            pairs: 16,
            query: ArQuery::Key,
            prohibit: None,
        }
    }

    #[test]
    fn ar32_layout_matches_reference() {
        let cfg = paper();
        assert_eq!(cfg.vocab_size(), 8196);
        let data = cfg.generate(42, Split::Train, 200);
        assert_eq!(data.len(), 200);
        assert_eq!(data.seq_len, 37);
        for i in 0..data.len() {
            let t = data.example(i);
            let r = data.roles_of(i);
            assert_eq!(t[0], BOS);
            assert_eq!((t[33], t[36]), (EOS, EOS));
            assert_eq!(r[Role::Divider as usize], 33);
            assert_eq!(r[Role::Query as usize], 34);
            assert_eq!(r[Role::Answer as usize], 35);
            let (key_pos, value_pos) = (
                r[Role::Key as usize] as usize,
                r[Role::Value as usize] as usize,
            );
            assert_eq!(key_pos % 2, 1);
            assert_eq!(value_pos, key_pos + 1);
            // The query repeats the queried key and the answer is that key's value.
            assert_eq!(t[34], t[key_pos]);
            assert_eq!(t[35], t[value_pos]);
            let keys: HashSet<u32> = (0..16).map(|p| t[2 * p + 1]).collect();
            let values: HashSet<u32> = (0..16).map(|p| t[2 * p + 2]).collect();
            assert_eq!(keys.len(), 16, "keys are distinct");
            assert_eq!(values.len(), 16, "values are distinct");
            assert!(keys.iter().all(|&k| (3..4099).contains(&k)));
            assert!(values.iter().all(|&v| (4099..8195).contains(&v)));
        }
    }

    #[test]
    fn token_names_decode_the_layout() {
        let cfg = ArConfig {
            num_kv: 8,
            pairs: 2,
            query: ArQuery::Key,
            prohibit: None,
        };
        let names: Vec<String> = [1, 3, 7, 6, 10, 2, 11]
            .iter()
            .map(|&t| cfg.token_name(t))
            .collect();
        assert_eq!(
            names,
            ["<bos>", "k0", "v0", "k3", "v3", "<eos>", "<unused 11>"]
        );
    }

    #[test]
    fn reverse_ar_queries_the_value_and_answers_its_key() {
        let cfg = ArConfig {
            query: ArQuery::Value,
            ..paper()
        };
        let data = cfg.generate(3, Split::Train, 50);
        for i in 0..data.len() {
            let t = data.example(i);
            let (k, v) = (data.position(i, Role::Key), data.position(i, Role::Value));
            assert_eq!(t[data.position(i, Role::Query)], t[v]);
            assert_eq!(t[data.position(i, Role::Answer)], t[k]);
        }
    }

    fn queried_pair_prohibited(cfg: &ArConfig, data: &Dataset, table: &[bool], i: usize) -> bool {
        let t = data.example(i);
        let k = (t[data.position(i, Role::Key)] - 3) as usize;
        let v = (t[data.position(i, Role::Value)] - 3) as usize - cfg.num_keys();
        table[k * cfg.num_keys() + v]
    }

    #[test]
    fn prohibited_pairs_split_reference_quirk_and_strict() {
        for (split_rule, test_prohibited) in [
            (ProhibitSplit::Reference, false),
            (ProhibitSplit::Strict, true),
        ] {
            let cfg = ArConfig {
                prohibit: Some(Prohibit {
                    fraction: 0.2,
                    split: split_rule,
                }),
                ..ArConfig {
                    num_kv: 64,
                    pairs: 4,
                    query: ArQuery::Key,
                    prohibit: None,
                }
            };
            let table = cfg.prohibited(5, 0.2);
            let share = table.iter().filter(|&&p| p).count() as f64 / table.len() as f64;
            assert!((share - 0.2).abs() < 0.05, "share {share}");
            let train = cfg.generate(5, Split::Train, 300);
            let test = cfg.generate(5, Split::Test, 300);
            for i in 0..300 {
                assert!(
                    !queried_pair_prohibited(&cfg, &train, &table, i),
                    "train queries allowed pairs"
                );
                assert_eq!(
                    queried_pair_prohibited(&cfg, &test, &table, i),
                    test_prohibited,
                    "{split_rule:?}"
                );
            }
        }
    }

    #[test]
    fn generation_is_deterministic_per_seed_and_split() {
        let cfg = paper();
        let a = cfg.generate(7, Split::Train, 50);
        assert_eq!(a, cfg.generate(7, Split::Train, 50));
        assert_ne!(a.tokens, cfg.generate(8, Split::Train, 50).tokens);
        assert_ne!(a.tokens, cfg.generate(7, Split::Test, 50).tokens);
    }

    #[test]
    fn queried_pair_is_uniform_over_pairs() {
        let cfg = ArConfig {
            num_kv: 64,
            pairs: 4,
            query: ArQuery::Key,
            prohibit: None,
        };
        let data = cfg.generate(1, Split::Train, 4000);
        let mut counts = [0usize; 4];
        for i in 0..data.len() {
            counts[(data.roles_of(i)[Role::Key as usize] as usize - 1) / 2] += 1;
        }
        // Each pair expects 1000; 5 standard deviations is ±137.
        assert!(
            counts.iter().all(|&c| (863..=1137).contains(&c)),
            "{counts:?}"
        );
    }
}
