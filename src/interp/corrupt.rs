//! Corrupting one role's token.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::task::{Role, TaskConfig};

/// Where a corrupted token is drawn from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Corruption {
    /// **Quirk reproduced** (reference §4): a random *key* token different from the original,
    /// whatever the role, so corrupting `value` inserts a key.
    #[default]
    Reference,
    /// A random token of the corrupted role's own range (a value for `value`).
    OwnRange,
}

/// A token different from `original`, uniform over the range `corruption` picks for `role`.
pub fn corrupt_token(
    task: &TaskConfig,
    role: Role,
    original: u32,
    corruption: Corruption,
    rng: &mut impl Rng,
) -> u32 {
    let (first, k) = task.corruption_range(role, corruption == Corruption::OwnRange);
    let in_range = (first..first + k as u32).contains(&original);
    // Draw from the range minus the original (when it lies in the range).
    let n = k as u32 - in_range as u32;
    let draw = rng.random_range(0..n);
    let token = first + draw;
    if in_range && token >= original {
        token + 1
    } else {
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{ArConfig, ArQuery};
    use rand::SeedableRng;

    #[test]
    fn corrupted_token_differs_and_stays_in_its_range() {
        let task = TaskConfig::Ar(ArConfig {
            num_kv: 8,
            pairs: 2,
            query: ArQuery::Key,
            prohibit: None,
        });
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..400 {
            let key = corrupt_token(&task, Role::Key, 4, Corruption::Reference, &mut rng);
            assert!(key != 4 && (3..7).contains(&key));
            seen.insert(key);
            // The reference quirk: a value position receives a key.
            let quirk = corrupt_token(&task, Role::Value, 8, Corruption::Reference, &mut rng);
            assert!((3..7).contains(&quirk));
            let own = corrupt_token(&task, Role::Value, 8, Corruption::OwnRange, &mut rng);
            assert!(own != 8 && (7..11).contains(&own));
        }
        assert_eq!(seen.len(), 3, "all other keys are drawn");
    }
}
