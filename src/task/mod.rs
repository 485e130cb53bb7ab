//! Synthetic tasks. A generator emits token sequences plus the positions of named roles
//! (`key`, `value`, `divider`, `query`, `answer`); interventions and the loss address roles,
//! never raw indices.

pub mod ar;
pub mod atr;
pub mod dataset;
pub mod mqar;
pub mod pcfg;
pub mod reference;

pub use ar::{ArConfig, ArQuery, Prohibit, ProhibitSplit};
pub use atr::{AtrConfig, AtrQuery};
pub use dataset::{Dataset, DatasetError, Role, Split};
pub use mqar::MqarConfig;

/// Reserved token ids shared by every task (reference: PAD 0, BOS 1, EOS 2).
pub const PAD: u32 = 0;
pub const BOS: u32 = 1;
pub const EOS: u32 = 2;

/// Which random streams draw a task's data.
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
pub enum DataRng {
    /// mechlab's own: ChaCha8, one independent stream per split.
    #[default]
    Chacha,
    /// The reference's: numpy's legacy `RandomState` and CPython's `random`, seeded with the run
    /// seed and called in the reference generators' order through train, dev and test; seed 42
    /// gives the paper's datasets token for token (see [`reference`]).
    Reference,
}

/// A task's configuration, as the science code sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskConfig {
    Ar(ArConfig),
    Atr(AtrConfig),
    Mqar(MqarConfig),
}

impl TaskConfig {
    /// Rows of the embedding table this task needs.
    pub fn vocab_size(&self) -> usize {
        match self {
            TaskConfig::Ar(c) => c.vocab_size(),
            TaskConfig::Atr(c) => c.vocab_size(),
            TaskConfig::Mqar(c) => c.vocab_size,
        }
    }

    /// The token range `(first, count)` a corrupted `role` draws from: the key range (the
    /// reference's choice for every role), or with `own_range` the role's own range (AR values
    /// for `value` and `answer`). ATR has one range, the terminals.
    pub fn corruption_range(&self, role: Role, own_range: bool) -> (u32, usize) {
        match self {
            TaskConfig::Ar(c) if own_range && matches!(role, Role::Value | Role::Answer) => {
                (c.value_token(0), c.num_keys())
            }
            TaskConfig::Ar(c) => (c.key_token(0), c.num_keys()),
            TaskConfig::Atr(c) => (c.terminal_token(0), c.grammar.num_terminals),
            TaskConfig::Mqar(c) if own_range && matches!(role, Role::Value | Role::Answer) => {
                (c.value_token(0), c.vocab_size - c.vocab_size / 2)
            }
            TaskConfig::Mqar(c) => (c.key_token(0), c.num_keys()),
        }
    }

    /// A readable name for a token.
    pub fn token_name(&self, token: u32) -> String {
        match self {
            TaskConfig::Ar(c) => c.token_name(token),
            TaskConfig::Atr(c) => c.token_name(token),
            TaskConfig::Mqar(c) => c.token_name(token),
        }
    }

    /// Example `i` of `data` as text: each token's name, with the roles at its position in
    /// brackets (`k3[key]`); roles can share a position (MQAR's first query may open the query
    /// region).
    pub fn describe(&self, data: &Dataset, i: usize) -> String {
        let roles = data.roles_of(i);
        let cells: Vec<String> = data.example(i)[..data.length(i)]
            .iter()
            .enumerate()
            .map(|(pos, &t)| {
                let name = self.token_name(t);
                let here: Vec<&str> = Role::ALL
                    .iter()
                    .filter(|r| roles[**r as usize] as usize == pos)
                    .map(|r| r.name())
                    .collect();
                if here.is_empty() {
                    name
                } else {
                    format!("{name}[{}]", here.join(","))
                }
            })
            .collect();
        cells.join(" ")
    }

    /// Generates `n` examples of `split`, deterministic in `(self, seed, split)`.
    pub fn generate(&self, seed: u64, split: Split, n: usize) -> Dataset {
        match self {
            TaskConfig::Ar(c) => c.generate(seed, split, n),
            TaskConfig::Atr(c) => c.generate(seed, split, n),
            TaskConfig::Mqar(c) => c.generate(seed, split, n),
        }
    }
}
