//! Generated datasets: fixed-length token rows plus role positions, and their on-disk cache.
//!
//! Cache format (`data-<split>.bin`, little-endian):
//! ```text
//! magic "MLDS" | version u32 | n u64 | seq_len u32 | vocab_size u32 | roles u32
//! tokens  u32 × n·seq_len
//! roles   u32 × n·roles          (positions, in `Role` order)
//! blake3  32 bytes of everything above
//! ```
//! A file whose checksum, magic or sizes do not match is reported as corrupt, and callers
//! regenerate it.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Named token positions of an example. Interventions and the loss address these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// In-context position of the queried key.
    Key = 0,
    /// In-context position of the queried key's value.
    Value = 1,
    /// The EOS separating context from query.
    Divider = 2,
    /// The repeated key, where the prediction is read.
    Query = 3,
    /// The supervised answer token.
    Answer = 4,
}

impl Role {
    pub const COUNT: usize = 5;

    /// The role positions of an example laid out `… key … value … EOS query answer EOS`: the
    /// query and answer follow the divider.
    pub fn positions(key: usize, value: usize, divider: usize) -> [u32; Role::COUNT] {
        let mut r = [0u32; Role::COUNT];
        r[Role::Key as usize] = key as u32;
        r[Role::Value as usize] = value as u32;
        r[Role::Divider as usize] = divider as u32;
        r[Role::Query as usize] = (divider + 1) as u32;
        r[Role::Answer as usize] = (divider + 2) as u32;
        r
    }
    pub const ALL: [Role; Role::COUNT] = [
        Role::Key,
        Role::Value,
        Role::Divider,
        Role::Query,
        Role::Answer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Key => "key",
            Role::Value => "value",
            Role::Divider => "divider",
            Role::Query => "query",
            Role::Answer => "answer",
        }
    }
}

/// Which sample of a task: each split draws from its own RNG stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Test,
    /// Held-out data from the training distribution (differs from `test` only in generalisation
    /// splits, where test queries prohibited pairs).
    Dev,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Test, Split::Dev];

    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
            Split::Dev => "dev",
        }
    }
}

/// The RNG of one split: ChaCha8 seeded by the run seed, one stream per split.
pub fn split_rng(seed: u64, split: Split) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(match split {
        Split::Train => 1,
        Split::Test => 2,
        Split::Dev => 6,
    });
    rng
}

/// `n` examples of `seq_len` tokens each, row-major, with role positions per example.
///
/// Supervision: by default one prediction per example, at `query`, of the token at `answer`.
/// Tasks with several supervised positions per example (MQAR) list them in `supervised` as
/// (position, target) pairs, one list per example; the roles then name the first query.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub seq_len: usize,
    pub vocab_size: usize,
    pub tokens: Vec<u32>,
    pub roles: Vec<[u32; Role::COUNT]>,
    /// Empty, or one list per example.
    pub supervised: Vec<Vec<(u32, u32)>>,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: corrupt dataset cache ({reason}); delete it or rerun to regenerate")]
    Corrupt { path: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

const MAGIC: &[u8; 4] = b"MLDS";
/// 2: a supervision section follows the roles (per example: a count, then position/target
/// pairs). Caches of an older version are regenerated.
const FORMAT_VERSION: u32 = 2;
const HEADER: usize = 4 + 4 + 8 + 4 + 4 + 4;

impl Dataset {
    pub fn len(&self) -> usize {
        self.roles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
    }

    pub fn example(&self, i: usize) -> &[u32] {
        &self.tokens[i * self.seq_len..(i + 1) * self.seq_len]
    }

    pub fn roles_of(&self, i: usize) -> &[u32; Role::COUNT] {
        &self.roles[i]
    }

    pub fn position(&self, i: usize, role: Role) -> usize {
        self.roles[i][role as usize] as usize
    }

    /// Examples of different lengths, right-padded with PAD to the longest. Every mixer is
    /// causal, so padding after an example cannot change anything at its real positions; batches
    /// are cut to their longest example ([`Dataset::length`]).
    pub fn from_rows(
        rows: Vec<Vec<u32>>,
        roles: Vec<[u32; Role::COUNT]>,
        vocab_size: usize,
    ) -> Self {
        let seq_len = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut tokens = Vec::with_capacity(rows.len() * seq_len);
        for row in &rows {
            tokens.extend_from_slice(row);
            tokens.resize(tokens.len() + seq_len - row.len(), super::PAD);
        }
        Dataset {
            seq_len,
            vocab_size,
            tokens,
            roles,
            supervised: Vec::new(),
        }
    }

    /// Tokens of example `i` before its padding: through the token after the answer (AR, ATR:
    /// the final EOS) or after the last supervised position.
    pub fn length(&self, i: usize) -> usize {
        // Past the last listed supervised position and the answer (no allocation: batching calls
        // this for every row).
        let last = self
            .supervised
            .get(i)
            .into_iter()
            .flatten()
            .map(|&(p, _)| p as usize + 1)
            .max()
            .unwrap_or(0)
            .max(self.position(i, Role::Answer));
        (last + 2).min(self.seq_len)
    }

    /// The (position, target) pairs supervised in example `i`: the listed ones, or the
    /// prediction at `query` of the token at `answer`.
    pub fn supervision(&self, i: usize) -> Vec<(usize, u32)> {
        match self.supervised.get(i) {
            Some(list) => list.iter().map(|&(p, t)| (p as usize, t)).collect(),
            None => vec![(
                self.position(i, Role::Query),
                self.example(i)[self.position(i, Role::Answer)],
            )],
        }
    }

    /// The target of the prediction at `query` in example `i` (what interventions measure).
    pub fn target(&self, i: usize) -> u32 {
        let query = self.position(i, Role::Query);
        self.supervision(i)
            .into_iter()
            .find(|&(p, _)| p == query)
            .map_or_else(
                || self.example(i)[self.position(i, Role::Answer)],
                |(_, t)| t,
            )
    }

    /// The first `n` examples (the reference evaluates the first 320 of its test set), cut to
    /// the longest of them.
    pub fn head(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        let s = (0..n).map(|i| self.length(i)).max().unwrap_or(0);
        let tokens = (0..n)
            .flat_map(|i| self.example(i)[..s].iter().copied())
            .collect();
        Dataset {
            seq_len: s,
            vocab_size: self.vocab_size,
            tokens,
            roles: self.roles[..n].to_vec(),
            supervised: self.supervised.iter().take(n).cloned().collect(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + 4 * (self.tokens.len() + 5 * self.len()) + 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.seq_len as u32).to_le_bytes());
        out.extend_from_slice(&(self.vocab_size as u32).to_le_bytes());
        out.extend_from_slice(&(Role::COUNT as u32).to_le_bytes());
        for t in &self.tokens {
            out.extend_from_slice(&t.to_le_bytes());
        }
        for r in self.roles.iter().flatten() {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend_from_slice(&(self.supervised.len() as u64).to_le_bytes());
        for list in &self.supervised {
            out.extend_from_slice(&(list.len() as u32).to_le_bytes());
            for &(p, t) in list {
                out.extend_from_slice(&p.to_le_bytes());
                out.extend_from_slice(&t.to_le_bytes());
            }
        }
        let hash = blake3::hash(&out);
        out.extend_from_slice(hash.as_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8], path: &str) -> Result<Dataset, DatasetError> {
        let corrupt = |reason: &str| DatasetError::Corrupt {
            path: path.to_string(),
            reason: reason.to_string(),
        };
        if bytes.len() < HEADER + 32 {
            return Err(corrupt("file too short"));
        }
        let (body, hash) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(body).as_bytes() != hash {
            return Err(corrupt("checksum mismatch"));
        }
        if &body[..4] != MAGIC {
            return Err(corrupt("not a mechlab dataset"));
        }
        let u32_at = |o: usize| u32::from_le_bytes(body[o..o + 4].try_into().expect("4 bytes"));
        if u32_at(4) != FORMAT_VERSION {
            return Err(corrupt("unknown format version"));
        }
        let n = u64::from_le_bytes(body[8..16].try_into().expect("8 bytes")) as usize;
        let seq_len = u32_at(16) as usize;
        let vocab_size = u32_at(20) as usize;
        if u32_at(24) as usize != Role::COUNT {
            return Err(corrupt("unexpected role count"));
        }
        // Sizes come from the file: checked arithmetic, so a damaged header is an error.
        let fixed = n
            .checked_mul(seq_len + Role::COUNT)
            .and_then(|words| words.checked_mul(4))
            .and_then(|bytes| bytes.checked_add(HEADER))
            .ok_or_else(|| corrupt("size does not match header"))?;
        if body.len() < fixed.saturating_add(8) || !(body.len() - fixed).is_multiple_of(4) {
            return Err(corrupt("size does not match header"));
        }
        let words: Vec<u32> = body[HEADER..]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        let (tokens, rest) = words.split_at(n * seq_len);
        let (role_words, rest) = rest.split_at(n * Role::COUNT);
        let roles = role_words
            .chunks_exact(Role::COUNT)
            .map(|c| c.try_into().expect("role row"))
            .collect();
        let lists = rest[0] as usize | ((rest[1] as usize) << 32);
        let mut rest = &rest[2..];
        let mut supervised = Vec::with_capacity(lists.min(n));
        for _ in 0..lists {
            let (&count, tail) = rest
                .split_first()
                .ok_or_else(|| corrupt("truncated supervision"))?;
            let count = count as usize;
            if tail.len() < 2 * count {
                return Err(corrupt("truncated supervision"));
            }
            supervised.push(
                tail[..2 * count]
                    .chunks_exact(2)
                    .map(|c| (c[0], c[1]))
                    .collect(),
            );
            rest = &tail[2 * count..];
        }
        if !rest.is_empty() || (lists != 0 && lists != n) {
            return Err(corrupt("size does not match header"));
        }
        Ok(Dataset {
            seq_len,
            vocab_size,
            tokens: tokens.to_vec(),
            roles,
            supervised,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{ArConfig, ArQuery};

    #[test]
    fn cache_round_trips_and_detects_corruption() {
        let data = ArConfig {
            num_kv: 64,
            pairs: 4,
            query: ArQuery::Key,
            prohibit: None,
        }
        .generate(3, Split::Test, 20);
        let mut bytes = data.to_bytes();
        assert_eq!(Dataset::from_bytes(&bytes, "x").unwrap(), data);
        bytes[HEADER + 5] ^= 1;
        let err = Dataset::from_bytes(&bytes, "x").unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        assert!(Dataset::from_bytes(&bytes[..10], "x").is_err());
    }
}
