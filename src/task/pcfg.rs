//! The random probabilistic context-free grammar with heads behind associative treecall (ATR).
//!
//! Reference: `reference/paper-setup.md` §1.2. Construction, all drawn from one seeded stream:
//! each nonterminal gets a maximum depth uniform in 1..=max_depth and may only use nonterminals
//! of strictly larger maximum depth (so every derivation terminates); it has 1..=max_rules_per_nt
//! rules, each with a right-hand side of 1..=max_rhs_len−1 symbols drawn with replacement from
//! {allowed nonterminals} ∪ {terminals} (or, with a terminal occurrence factor f, from the allowed
//! nonterminals at weight 1 each and one TERMINAL placeholder at weight f, replaced by a uniform
//! terminal); rule probabilities and each nonterminal's head distribution over terminals are
//! Dirichlet(1). The start symbol is uniform.
//!
//! Sampling expands depth first; expanding a nonterminal emits its rule's children and then its
//! **head** terminal, after all of them (heads on the right). The head is the parent of the
//! constituent's direct terminal children and of the heads of its sub-constituents, so a yield is
//! a dependency tree.

use rand::Rng;

/// Grammar hyperparameters (paper: 40 nonterminals, 20 or 8192 terminals, RHS ≤ 5 or 10,
/// ≤ 5 rules, depth ≤ 10).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrammarConfig {
    pub num_nonterminals: usize,
    pub num_terminals: usize,
    pub max_rhs_len: usize,
    pub max_rules_per_nt: usize,
    pub max_depth: usize,
    /// Weight of the TERMINAL placeholder against 1 per allowed nonterminal; `None` draws
    /// uniformly over allowed nonterminals and all terminals.
    pub terminal_occurrence_factor: Option<f64>,
}

impl GrammarConfig {
    /// The paper's "easy" grammar, L5 Σ20 (also the spec's defaults).
    pub const EASY: GrammarConfig = GrammarConfig {
        num_nonterminals: 40,
        num_terminals: 20,
        max_rhs_len: 5,
        max_rules_per_nt: 5,
        max_depth: 10,
        terminal_occurrence_factor: None,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symbol {
    Terminal(u32),
    Nonterminal(u32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub rhs: Vec<Symbol>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Nonterminal {
    pub max_depth: usize,
    pub rules: Vec<Rule>,
    /// Cumulative rule probabilities (last = 1).
    rule_cdf: Vec<f64>,
    /// Cumulative head probabilities over terminals (last = 1).
    head_cdf: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Grammar {
    pub config: GrammarConfig,
    pub nonterminals: Vec<Nonterminal>,
}

/// A sampled yield: terminals in order, each one's parent position (`None` for the root's head)
/// and the derivation's depth (nonterminal levels; the start symbol alone is depth 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    pub tokens: Vec<u32>,
    pub parent: Vec<Option<usize>>,
    pub depth: usize,
}

/// Dirichlet(1) as a CDF: normalised Exp(1) draws.
fn dirichlet_cdf(rng: &mut impl Rng, n: usize) -> Vec<f64> {
    let draws: Vec<f64> = (0..n).map(|_| -(1.0 - rng.random::<f64>()).ln()).collect();
    let total: f64 = draws.iter().sum();
    let mut acc = 0.0;
    let mut cdf: Vec<f64> = draws
        .iter()
        .map(|d| {
            acc += d / total;
            acc
        })
        .collect();
    if let Some(last) = cdf.last_mut() {
        *last = 1.0;
    }
    cdf
}

fn pick(rng: &mut impl Rng, cdf: &[f64]) -> usize {
    let u = rng.random::<f64>();
    cdf.partition_point(|&c| c <= u).min(cdf.len() - 1)
}

impl Grammar {
    /// Draws a grammar from `rng`.
    pub fn generate(config: GrammarConfig, rng: &mut impl Rng) -> Grammar {
        let n = config.num_nonterminals;
        let t = config.num_terminals;
        let depths: Vec<usize> = (0..n)
            .map(|_| rng.random_range(1..=config.max_depth))
            .collect();
        let nonterminals = (0..n)
            .map(|i| {
                let allowed: Vec<u32> = (0..n)
                    .filter(|&j| depths[j] > depths[i])
                    .map(|j| j as u32)
                    .collect();
                let rules: Vec<Rule> = (0..rng.random_range(1..=config.max_rules_per_nt))
                    .map(|_| {
                        let len = rng.random_range(1..=config.max_rhs_len.saturating_sub(1).max(1));
                        let rhs = (0..len)
                            .map(|_| match config.terminal_occurrence_factor {
                                None => {
                                    let k = rng.random_range(0..allowed.len() + t);
                                    match allowed.get(k) {
                                        Some(&nt) => Symbol::Nonterminal(nt),
                                        None => Symbol::Terminal((k - allowed.len()) as u32),
                                    }
                                }
                                Some(f) => {
                                    let u = rng.random::<f64>() * (allowed.len() as f64 + f);
                                    match allowed.get(u as usize) {
                                        Some(&nt) if u < allowed.len() as f64 => {
                                            Symbol::Nonterminal(nt)
                                        }
                                        _ => Symbol::Terminal(rng.random_range(0..t) as u32),
                                    }
                                }
                            })
                            .collect();
                        Rule { rhs }
                    })
                    .collect();
                let rule_cdf = dirichlet_cdf(rng, rules.len());
                let head_cdf = dirichlet_cdf(rng, t);
                Nonterminal {
                    max_depth: depths[i],
                    rules,
                    rule_cdf,
                    head_cdf,
                }
            })
            .collect();
        Grammar {
            config,
            nonterminals,
        }
    }

    /// Samples one derivation from a uniform start symbol. Stops early (returning `None`) once
    /// the yield exceeds `max_len` terminals, so rejected samples cost little.
    pub fn sample(&self, rng: &mut impl Rng, max_len: usize) -> Option<Tree> {
        let start = rng.random_range(0..self.nonterminals.len());
        let mut tree = Tree {
            tokens: Vec::new(),
            parent: Vec::new(),
            depth: 0,
        };
        self.expand(start, 1, rng, &mut tree, max_len)?;
        Some(tree)
    }

    /// Expands nonterminal `nt` at `depth`; returns the position of its head.
    fn expand(
        &self,
        nt: usize,
        depth: usize,
        rng: &mut impl Rng,
        tree: &mut Tree,
        max_len: usize,
    ) -> Option<usize> {
        tree.depth = tree.depth.max(depth);
        let node = &self.nonterminals[nt];
        let rule = &node.rules[pick(rng, &node.rule_cdf)];
        let mut children = Vec::with_capacity(rule.rhs.len());
        for symbol in &rule.rhs {
            let position = match *symbol {
                Symbol::Terminal(t) => {
                    tree.tokens.push(t);
                    tree.parent.push(None);
                    tree.tokens.len() - 1
                }
                Symbol::Nonterminal(child) => {
                    self.expand(child as usize, depth + 1, rng, tree, max_len)?
                }
            };
            children.push(position);
            if tree.tokens.len() > max_len {
                return None;
            }
        }
        tree.tokens.push(pick(rng, &node.head_cdf) as u32);
        tree.parent.push(None);
        let head = tree.tokens.len() - 1;
        for c in children {
            tree.parent[c] = Some(head);
        }
        (tree.tokens.len() <= max_len).then_some(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn grammar_respects_its_construction_rules() {
        let g = Grammar::generate(GrammarConfig::EASY, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(g.nonterminals.len(), 40);
        for nt in &g.nonterminals {
            assert!((1..=10).contains(&nt.max_depth));
            assert!((1..=5).contains(&nt.rules.len()));
            for r in &nt.rules {
                assert!((1..=4).contains(&r.rhs.len()));
                for s in &r.rhs {
                    match s {
                        Symbol::Nonterminal(j) => {
                            assert!(g.nonterminals[*j as usize].max_depth > nt.max_depth)
                        }
                        Symbol::Terminal(t) => assert!(*t < 20),
                    }
                }
            }
        }
    }

    #[test]
    fn every_token_but_the_root_head_has_a_later_parent() {
        let g = Grammar::generate(GrammarConfig::EASY, &mut ChaCha8Rng::seed_from_u64(4));
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..200 {
            let Some(tree) = g.sample(&mut rng, 1024) else {
                continue;
            };
            let n = tree.tokens.len();
            assert_eq!(tree.parent[n - 1], None, "the root's head is last");
            for (i, p) in tree.parent[..n - 1].iter().enumerate() {
                let p = p.expect("only the root's head lacks a parent");
                assert!(p > i, "heads follow their dependents");
            }
        }
    }
}
