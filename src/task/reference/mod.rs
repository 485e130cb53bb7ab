//! The reference's own random streams, for `task.rng = "reference"`.
//!
//! The paper's datasets were drawn by tinylang's generators after `np.random.seed(42)` and
//! `random.seed(42)`: numpy's legacy `RandomState` (MT19937) and CPython's `random` (MT19937,
//! seeded differently), called in a fixed order — train set, then dev set (only when pairs are
//! prohibited), then test set, all from one stream. These modules reimplement those streams and
//! the generators' call order bit for bit, so seed 42 gives the reference's AR-32 and ATR
//! datasets token for token, grammar included (`tests/reference_data.rs` checks every split of
//! the paper's datasets against `tests/fixtures/reference_data.json`, which
//! `tests/reference/make_data_fixtures.py` makes by running the reference's generators).
//!
//! One stream through all splits means a split depends on the sizes of the splits before it:
//! [`Counts`] names them. mechlab's own generators (ChaCha, one stream per split) stay the default.

pub mod ar;
pub mod atr;
pub mod mt19937;
pub mod numpy;
pub mod pyset;
pub mod python;

use super::dataset::{Dataset, Split};

/// How many examples the reference draws for each split, in stream order. `dev` is drawn only
/// when pairs are prohibited, and then with the test set's size (the reference's one
/// `eval_set_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub train: usize,
    pub test: usize,
}

/// The splits of one stream; `dev` is `None` where the reference draws none.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits {
    pub train: Dataset,
    pub dev: Option<Dataset>,
    pub test: Dataset,
}

impl Splits {
    /// The dataset of `split`; dev exists only where the reference draws one.
    pub fn get(&self, split: Split) -> Result<&Dataset, ReferenceError> {
        match split {
            Split::Train => Ok(&self.train),
            Split::Test => Ok(&self.test),
            Split::Dev => self.dev.as_ref().ok_or_else(|| {
                ReferenceError::Generation(
                    "the reference draws a dev split only when pairs are prohibited \
                     (task.prohibit)"
                        .into(),
                )
            }),
        }
    }

    /// Examples drawn before `split` in the stream (train, then dev, then test).
    pub fn offset(&self, split: Split) -> usize {
        let dev = self.dev.as_ref().map_or(0, Dataset::len);
        match split {
            Split::Train => 0,
            Split::Dev => self.train.len(),
            Split::Test => self.train.len() + dev,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReferenceError {
    #[error(
        "seed {0} does not fit numpy's legacy seeding (0 ≤ seed < 2^32), which task.rng = \
         \"reference\" reproduces"
    )]
    Seed(u64),
    #[error("{0}")]
    Generation(String),
}

/// numpy's seed: the reference calls `np.random.seed(seed)`, which takes `0..2^32`.
fn numpy_seed(seed: u64) -> Result<u32, ReferenceError> {
    u32::try_from(seed).map_err(|_| ReferenceError::Seed(seed))
}
