//! Synthetic tasks. A generator emits token sequences plus the positions of named roles
//! (`key`, `value`, `divider`, `query`, `answer`); interventions and the loss address roles,
//! never raw indices.

pub mod ar;
pub mod dataset;

pub use ar::{ArConfig, ArQuery, Prohibit, ProhibitSplit};
pub use dataset::{Dataset, DatasetError, Role, Split};

/// Reserved token ids shared by every task (reference: PAD 0, BOS 1, EOS 2).
pub const PAD: u32 = 0;
pub const BOS: u32 = 1;
pub const EOS: u32 = 2;

/// A task's configuration, as the science code sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskConfig {
    Ar(ArConfig),
}

impl TaskConfig {
    /// Rows of the embedding table this task needs.
    pub fn vocab_size(&self) -> usize {
        match self {
            TaskConfig::Ar(c) => c.vocab_size(),
        }
    }

    /// Generates `n` examples of `split`, deterministic in `(self, seed, split)`.
    pub fn generate(&self, seed: u64, split: Split, n: usize) -> Dataset {
        match self {
            TaskConfig::Ar(c) => c.generate(seed, split, n),
        }
    }
}
