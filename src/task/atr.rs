//! Associative treecall (ATR): recall a token's head in a sampled dependency tree.
//!
//! Reference: `reference/paper-setup.md` §1.2, and [`super::pcfg`] for the grammar.
//!
//! ```text
//! BOS t1 … tn EOS tq tp EOS          n = yield length ⇒ n + 5 tokens (right-padded with PAD)
//!  0  1      n  n+1 n+2 n+3
//!            divider query answer
//! ```
//! `tq` repeats the query token (role `key`, its position in the yield) and `tp` is its target:
//! its parent (PARENT queries) or the rightmost token with the same parent (SIBLING queries; the
//! reference lets that be the query itself, a **quirk** kept by default), role `value`. Targets
//! are drawn first, uniformly among the eligible ones, then a query among that target's eligible
//! queries. With unambiguous queries a query token must be the rightmost occurrence of its type.
//! Terminals are ids 3..3+T; three query-type ids follow (unused with one query type), so the
//! vocabulary has T + 6 rows.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::dataset::{Dataset, Role, Split, split_rng};
use super::pcfg::{Grammar, GrammarConfig, Tree};
use super::{BOS, EOS, PAD};

/// What the query asks for.
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
pub enum AtrQuery {
    /// The query token's head (the paper's ATR).
    #[default]
    Parent,
    /// The rightmost token with the same head (appendix "sibling").
    Sibling,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AtrConfig {
    pub grammar: GrammarConfig,
    /// Longest yield kept; longer samples are rejected (reference: 1024).
    pub max_yield: usize,
    pub query: AtrQuery,
    /// A query token must be the rightmost occurrence of its type (reference: on).
    pub unambiguous_queries: bool,
    /// SIBLING only: the target may be the query itself (reference quirk: true).
    pub sibling_may_be_self: bool,
    /// Share of (target terminal, query terminal) pairs held out of training and dev and
    /// queried only in test (paper §5.3: 0.2).
    pub prohibit: Option<f64>,
}

/// What `mechlab data stats` reports per example.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExampleStats {
    /// Yield length n.
    pub length: usize,
    /// Position of the target minus position of the query token in the yield (> 0 for
    /// PARENT queries: heads follow their dependents).
    pub key_value_distance: i64,
    /// From the query token's position in the yield to the repeated query after the divider.
    pub query_key_distance: usize,
    /// Nonterminal levels of the derivation.
    pub depth: usize,
    /// Share of yield tokens whose terminal type occurs more than once.
    pub repeated_share: f64,
    /// (target, query) pairs that could have been asked.
    pub eligible_pairs: usize,
}

/// Shortest yield kept (reference: 3).
pub const MIN_YIELD: usize = 3;

impl AtrConfig {
    pub fn vocab_size(&self) -> usize {
        self.grammar.num_terminals.saturating_add(6)
    }

    /// The longest sequence: the longest yield plus BOS, EOS, query, answer, EOS.
    pub fn max_seq_len(&self) -> usize {
        self.max_yield.saturating_add(5)
    }

    pub fn terminal_token(&self, t: u32) -> u32 {
        3 + t
    }

    pub fn token_name(&self, token: u32) -> String {
        let t = self.grammar.num_terminals as u32;
        match token {
            PAD => "<pad>".into(),
            BOS => "<bos>".into(),
            EOS => "<eos>".into(),
            x if x < 3 + t => format!("t{}", x - 3),
            x => format!("<query-type {}>", x - 3 - t),
        }
    }

    /// The grammar of `seed`: part of the dataset, so every split of a run shares it.
    pub fn grammar(&self, seed: u64) -> Grammar {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(4);
        Grammar::generate(self.grammar, &mut rng)
    }

    /// The prohibited (target, query) terminal pairs as a `T × T` table, drawn from its own
    /// stream (the reference draws them before the grammar).
    pub fn prohibited(&self, seed: u64, fraction: f64) -> Vec<bool> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(5);
        let t = self.grammar.num_terminals;
        (0..t * t).map(|_| rng.random::<f64>() < fraction).collect()
    }

    /// Eligible (target, query) position pairs of `tree`, grouped by target in yield order.
    pub fn candidates(&self, tree: &Tree) -> Vec<(usize, Vec<usize>)> {
        let n = tree.tokens.len();
        let unambiguous =
            |q: usize| !self.unambiguous_queries || !tree.tokens[q + 1..].contains(&tree.tokens[q]);
        let mut by_target: Vec<Vec<usize>> = vec![Vec::new(); n];
        match self.query {
            AtrQuery::Parent => {
                for q in 0..n {
                    if let Some(p) = tree.parent[q]
                        && unambiguous(q)
                    {
                        by_target[p].push(q);
                    }
                }
            }
            AtrQuery::Sibling => {
                // Each group of tokens sharing a head; the target is its rightmost member.
                let mut groups: Vec<Vec<usize>> = vec![Vec::new(); n];
                for q in 0..n {
                    if let Some(p) = tree.parent[q] {
                        groups[p].push(q);
                    }
                }
                for members in groups.iter().filter(|g| !g.is_empty()) {
                    for &q in members.iter().filter(|&&q| unambiguous(q)) {
                        // The rightmost member other than the query (or the query itself).
                        let target = members
                            .iter()
                            .rev()
                            .copied()
                            .find(|&m| self.sibling_may_be_self || m != q);
                        // As the reference: with unambiguous queries the target, too, must be
                        // the rightmost occurrence of its type.
                        if let Some(t) = target.filter(|&t| unambiguous(t)) {
                            by_target[t].push(q);
                        }
                    }
                }
            }
        }
        by_target
            .into_iter()
            .enumerate()
            .filter(|(_, qs)| !qs.is_empty())
            .collect()
    }

    /// Generates `n` sequences; the same `(self, seed, split)` always gives the same data.
    ///
    /// # Panics
    /// When a million samples in a row are rejected; `validate` runs [`AtrConfig::try_generate`]
    /// first, so a spec that gets here has already produced data.
    pub fn generate(&self, seed: u64, split: Split, n: usize) -> Dataset {
        self.try_generate(seed, split, n, 1_000_000)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`AtrConfig::try_generate`], also returning each example's statistics.
    pub fn generate_with_stats(
        &self,
        seed: u64,
        split: Split,
        n: usize,
    ) -> Result<(Dataset, Vec<ExampleStats>), String> {
        let mut stats = Vec::with_capacity(n);
        let data = self.sample_into(seed, split, n, 1_000_000, Some(&mut stats))?;
        Ok((data, stats))
    }

    /// [`AtrConfig::generate`], giving up after `max_rejections` rejected samples in a row (a
    /// grammar whose yields are all too long, or a split with no eligible query).
    pub fn try_generate(
        &self,
        seed: u64,
        split: Split,
        n: usize,
        max_rejections: usize,
    ) -> Result<Dataset, String> {
        self.sample_into(seed, split, n, max_rejections, None)
    }

    fn sample_into(
        &self,
        seed: u64,
        split: Split,
        n: usize,
        max_rejections: usize,
        mut stats: Option<&mut Vec<ExampleStats>>,
    ) -> Result<Dataset, String> {
        let grammar = self.grammar(seed);
        let mut rejections = 0usize;
        let table = self.prohibit.map(|f| self.prohibited(seed, f));
        let t = self.grammar.num_terminals;
        let mut rng = split_rng(seed, split);
        let mut rows: Vec<Vec<u32>> = Vec::with_capacity(n);
        let mut roles = Vec::with_capacity(n);
        while rows.len() < n {
            if rejections >= max_rejections {
                return Err(format!(
                    "{} split: {max_rejections} samples in a row were rejected (yield shorter than \
                     {MIN_YIELD} or longer than max_yield {}, or no eligible query); this grammar \
                     cannot produce the data asked for",
                    split.name(),
                    self.max_yield
                ));
            }
            rejections += 1;
            let Some(tree) = grammar.sample(&mut rng, self.max_yield) else {
                continue;
            };
            if tree.tokens.len() < MIN_YIELD {
                continue;
            }
            let mut candidates = self.candidates(&tree);
            if let Some(table) = &table {
                // Train and dev query allowed pairs only; test queries prohibited pairs only.
                let want_prohibited = split == Split::Test;
                for (target, queries) in &mut candidates {
                    let tt = tree.tokens[*target] as usize;
                    queries.retain(|&q| table[tt * t + tree.tokens[q] as usize] == want_prohibited);
                }
                candidates.retain(|(_, qs)| !qs.is_empty());
            }
            if candidates.is_empty() {
                continue;
            }
            rejections = 0;
            let (target, queries) = &candidates[rng.random_range(0..candidates.len())];
            let query = queries[rng.random_range(0..queries.len())];
            let len = tree.tokens.len();
            if let Some(stats) = stats.as_deref_mut() {
                let repeated = tree
                    .tokens
                    .iter()
                    .filter(|t| tree.tokens.iter().filter(|u| u == t).count() > 1)
                    .count();
                stats.push(ExampleStats {
                    length: len,
                    key_value_distance: *target as i64 - query as i64,
                    query_key_distance: len + 1 - query,
                    depth: tree.depth,
                    repeated_share: repeated as f64 / len as f64,
                    eligible_pairs: candidates.iter().map(|(_, qs)| qs.len()).sum(),
                });
            }
            let mut row = Vec::with_capacity(len + 5);
            row.push(BOS);
            row.extend(tree.tokens.iter().map(|&x| self.terminal_token(x)));
            row.push(EOS);
            row.push(self.terminal_token(tree.tokens[query]));
            row.push(self.terminal_token(tree.tokens[*target]));
            row.push(EOS);
            rows.push(row);
            roles.push(Role::positions(query + 1, *target + 1, len + 1));
        }
        Ok(Dataset::from_rows(rows, roles, self.vocab_size()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn easy() -> AtrConfig {
        AtrConfig {
            grammar: GrammarConfig::EASY,
            max_yield: 1019,
            query: AtrQuery::Parent,
            unambiguous_queries: true,
            sibling_may_be_self: true,
            prohibit: None,
        }
    }

    #[test]
    fn layout_roles_and_answers_follow_the_tree() {
        let cfg = easy();
        assert_eq!(cfg.vocab_size(), 26);
        let data = cfg.generate(7, Split::Train, 300);
        for i in 0..data.len() {
            let t = data.example(i);
            let n = data.position(i, Role::Divider) - 1;
            assert!(n >= MIN_YIELD);
            assert_eq!((t[0], t[n + 1], t[n + 4]), (BOS, EOS, EOS));
            assert!(t[n + 5..].iter().all(|&x| x == PAD), "right-padded");
            let (key, value) = (data.position(i, Role::Key), data.position(i, Role::Value));
            assert!(
                key < value && value <= n,
                "the parent follows its dependent"
            );
            assert_eq!(t[data.position(i, Role::Query)], t[key]);
            assert_eq!(t[data.position(i, Role::Answer)], t[value]);
            // Unambiguous: the query token does not occur again later in the yield.
            assert!(!t[key + 1..=n].contains(&t[key]));
        }
    }

    #[test]
    fn same_seed_same_grammar_and_data() {
        let cfg = easy();
        assert_eq!(cfg.grammar(3), cfg.grammar(3));
        assert_eq!(
            cfg.generate(3, Split::Test, 50),
            cfg.generate(3, Split::Test, 50)
        );
        assert_ne!(
            cfg.generate(3, Split::Test, 50),
            cfg.generate(4, Split::Test, 50)
        );
    }

    #[test]
    fn generalisation_split_separates_queried_pairs() {
        let cfg = AtrConfig {
            prohibit: Some(0.2),
            ..easy()
        };
        let table = cfg.prohibited(5, 0.2);
        let t = cfg.grammar.num_terminals;
        let pair = |d: &Dataset, i: usize| {
            let x = d.example(i);
            let target = (x[d.position(i, Role::Value)] - 3) as usize;
            let query = (x[d.position(i, Role::Key)] - 3) as usize;
            table[target * t + query]
        };
        for (split, prohibited) in [
            (Split::Train, false),
            (Split::Dev, false),
            (Split::Test, true),
        ] {
            let d = cfg.generate(5, split, 200);
            assert!((0..d.len()).all(|i| pair(&d, i) == prohibited), "{split:?}");
        }
    }

    #[test]
    fn sibling_targets_share_the_query_head_and_the_quirk_is_optional() {
        for may_be_self in [true, false] {
            let cfg = AtrConfig {
                query: AtrQuery::Sibling,
                sibling_may_be_self: may_be_self,
                ..easy()
            };
            let data = cfg.generate(9, Split::Train, 300);
            let selves = (0..data.len())
                .filter(|&i| data.position(i, Role::Key) == data.position(i, Role::Value))
                .count();
            if may_be_self {
                assert!(selves > 0, "the reference's quirk shows up");
            } else {
                assert_eq!(selves, 0);
            }
        }
    }

    /// Statistics for L5 Σ20 against the reference implementation. `reference/paper-setup.md`
    /// quotes mean yield ≈ 14.0, key→value ≈ 2.5, query→key ≈ 8: those are the reference's
    /// seed-42 grammar, which is atypical (its yields are longer than ~98% of grammars'; the
    /// seed-42 datasets, reproduced exactly by `task.rng = "reference"`, have mean yields of
    /// 15.0 in train and 16.0 in test). Over many grammars the reference's generator (tinylang
    /// `PCFG`, right heads, unambiguous PARENT queries, 8 seeds × 1,000 documents, run once by
    /// hand) gives a mean yield of 10.03, key→value 2.23 and query→key 6.39, and single grammars
    /// range from 8.3 to 12.3 in mean yield. mechlab's ChaCha grammars are held to those
    /// numbers: means over 8 grammar seeds × 2,000 samples within 10%, which the seed-to-seed
    /// spread of such an average allows and a wrong construction rule does not (RHS lengths up
    /// to L instead of L − 1 raise the mean yield by more than half).
    #[test]
    fn easy_statistics_match_the_reference_generator() {
        let cfg = easy();
        let mut all = Vec::new();
        for seed in 0..8 {
            let (_, stats) = cfg.generate_with_stats(seed, Split::Train, 2000).unwrap();
            all.extend(stats);
        }
        let mean =
            |f: &dyn Fn(&ExampleStats) -> f64| all.iter().map(f).sum::<f64>() / all.len() as f64;
        let length = mean(&|s| s.length as f64);
        let kv = mean(&|s| s.key_value_distance as f64);
        let qk = mean(&|s| s.query_key_distance as f64);
        assert_eq!(all.iter().map(|s| s.length).min(), Some(3));
        assert!(
            all.iter().map(|s| s.length).max().unwrap() > 60,
            "long tail"
        );
        assert!((length / 10.03 - 1.0).abs() < 0.1, "mean yield {length}");
        assert!((kv / 2.23 - 1.0).abs() < 0.1, "key→value {kv}");
        assert!((qk / 6.39 - 1.0).abs() < 0.1, "query→key {qk}");
    }
}
