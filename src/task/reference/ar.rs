//! tinylang's `AR` generator on the reference's streams (`reference/paper-setup.md` §1.1).
//!
//! Per example: `random.randint(n//2, n//2)` pairs (a draw even with one choice), keys and
//! values each `np.random.choice(K, n, replace=False)` (a full permutation of K), then the
//! queried pair by `random.choice` over the pairs that are not prohibited. With `prohibit`, the
//! `K × K` table `np.random.rand(K, K) < fraction` is drawn first, and a dev set follows train.

use super::numpy::RandomState;
use super::python::PyRandom;
use super::{Counts, ReferenceError, Splits, numpy_seed};
use crate::task::ar::{ArConfig, ArQuery};
use crate::task::dataset::{Dataset, Role};
use crate::task::{BOS, EOS};

pub fn generate(c: &ArConfig, seed: u64, counts: Counts) -> Result<Splits, ReferenceError> {
    let mut np = RandomState::new(numpy_seed(seed)?);
    let mut py = PyRandom::new(seed);
    let k = c.num_keys();
    let table: Option<Vec<bool>> = c.prohibit.map(|p| {
        (0..k * k)
            .map(|_| np.random_sample() < p.fraction)
            .collect()
    });
    let has_dev = table.as_ref().is_some_and(|t| t.contains(&true));
    let mut draw = |n: usize| -> Result<Dataset, ReferenceError> {
        let mut tokens = Vec::with_capacity(n * c.seq_len());
        let mut roles = Vec::with_capacity(n);
        for _ in 0..n {
            let pairs = py.randint(c.pairs, c.pairs);
            let keys = np.choice_distinct(k, pairs);
            let values = np.choice_distinct(k, pairs);
            let eligible: Vec<usize> = (0..pairs)
                .filter(|&i| table.as_ref().is_none_or(|t| !t[keys[i] * k + values[i]]))
                .collect();
            if eligible.is_empty() {
                // The reference's `random.choice([])` raises here.
                return Err(ReferenceError::Generation(format!(
                    "every one of the {pairs} pairs of a sequence is prohibited; the reference \
                     generator fails here too"
                )));
            }
            let q = eligible[py.randbelow(eligible.len())];
            tokens.push(BOS);
            for i in 0..pairs {
                tokens.push(c.key_token(keys[i]));
                tokens.push(c.value_token(values[i]));
            }
            tokens.push(EOS);
            let (key, value) = (c.key_token(keys[q]), c.value_token(values[q]));
            match c.query {
                ArQuery::Key => tokens.extend([key, value, EOS]),
                ArQuery::Value => tokens.extend([value, key, EOS]),
            }
            let divider = 2 * pairs + 1;
            roles.push(Role::positions(2 * q + 1, 2 * q + 2, divider));
        }
        Ok(Dataset {
            seq_len: c.seq_len(),
            vocab_size: c.vocab_size(),
            tokens,
            roles,
            supervised: Vec::new(),
        })
    };
    let train = draw(counts.train)?;
    let dev = if has_dev {
        Some(draw(counts.test)?)
    } else {
        None
    };
    let test = draw(counts.test)?;
    Ok(Splits { train, dev, test })
}
