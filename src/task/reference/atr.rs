//! tinylang's `PCFG` generator on numpy's legacy stream (`reference/paper-setup.md` §1.2),
//! heads on the right, one query type (PARENT or SIBLING), targets drawn first.
//!
//! Stream order: the prohibited `T × T` table (`np.random.rand(T, T)`, only with `prohibit`);
//! per nonterminal its maximum depth; per nonterminal its rule count and, per rule, its length
//! then its symbols (`choice` over allowed nonterminals + terminals, or with `p` over allowed
//! nonterminals + one TERMINAL placeholder); the placeholders' terminals; every nonterminal's
//! rule probabilities (Dirichlet(1)); every nonterminal's head distribution (Dirichlet(1)). Then
//! per example: the start symbol, and per expansion its rule then its head; rejected samples
//! (yield < 3, yield reaching `max_yield` before it ends, no eligible query) keep consuming
//! the stream, and the kept one draws its target, then its query among the target's.

use super::numpy::{Cdf, RandomState};
use super::pyset::set_order;
use super::{Counts, ReferenceError, Splits, numpy_seed};
use crate::task::atr::{AtrConfig, AtrQuery, ExampleStats, MIN_YIELD};
use crate::task::dataset::{Dataset, Role, Split};
use crate::task::pcfg::Symbol;
use crate::task::{BOS, EOS};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Sym {
    T(u32),
    N(usize),
    /// A terminal still to be drawn (`terminal_occurrence_factor` grammars).
    Placeholder,
}

/// A symbol on the expansion stack or in the yield, as the reference's `Node`.
#[derive(Debug, Clone, Copy)]
struct Node {
    sym: Sym,
    id: usize,
    head_id: Option<usize>,
    depth: usize,
}

/// The grammar as the reference draws it.
#[derive(Debug, Clone, PartialEq)]
pub struct Grammar {
    pub max_depths: Vec<usize>,
    /// Per nonterminal, its rules' right-hand sides.
    pub rules: Vec<Vec<Vec<Symbol>>>,
    pub rule_probs: Vec<Vec<f64>>,
    pub head_probs: Vec<Vec<f64>>,
    rule_cdf: Vec<Cdf>,
    head_cdf: Vec<Cdf>,
    start_cdf: Cdf,
}

/// Everything drawn before the first example: the prohibited table and the grammar.
pub struct Setup {
    pub prohibited: Option<Vec<bool>>,
    pub grammar: Grammar,
}

fn setup(c: &AtrConfig, np: &mut RandomState) -> Setup {
    let g = &c.grammar;
    let (nn, t) = (g.num_nonterminals, g.num_terminals);
    let prohibited: Option<Vec<bool>> = c
        .prohibit
        .map(|f| (0..t * t).map(|_| np.random_sample() < f).collect());
    let max_depths: Vec<usize> = if g.max_depth > 0 {
        (0..nn).map(|_| np.randint(1, g.max_depth + 1)).collect()
    } else {
        vec![0; nn]
    };
    let mut rules: Vec<Vec<Vec<Sym>>> = Vec::with_capacity(nn);
    for nt in 0..nn {
        let num_rules = np.randint(1, g.max_rules_per_nt + 1);
        let allowed: Vec<usize> = (0..nn)
            .filter(|&x| g.max_depth == 0 || max_depths[x] > max_depths[nt])
            .collect();
        let a = allowed.len();
        let mut nt_rules = Vec::with_capacity(num_rules);
        match g.terminal_occurrence_factor {
            Some(f) => {
                // `np.ones(a + 1)` with the last weight f, divided by its (exactly summed) total.
                let total = a as f64 + f;
                let mut w = vec![1.0 / total; a + 1];
                w[a] = f / total;
                let cdf = Cdf::new(&w);
                for _ in 0..num_rules {
                    let len = np.randint(1, g.max_rhs_len);
                    let rhs = (0..len)
                        .map(|_| match np.choice_p(&cdf) {
                            i if i < a => Sym::N(allowed[i]),
                            _ => Sym::Placeholder,
                        })
                        .collect();
                    nt_rules.push(rhs);
                }
            }
            None => {
                for _ in 0..num_rules {
                    let len = np.randint(1, g.max_rhs_len);
                    let rhs = (0..len)
                        .map(|_| match np.randint(0, a + t) {
                            i if i < a => Sym::N(allowed[i]),
                            i => Sym::T((i - a) as u32),
                        })
                        .collect();
                    nt_rules.push(rhs);
                }
            }
        }
        rules.push(nt_rules);
    }
    for rhs in rules.iter_mut().flatten() {
        for s in rhs.iter_mut().filter(|s| **s == Sym::Placeholder) {
            *s = Sym::T(np.randint(0, t) as u32);
        }
    }
    let rule_probs: Vec<Vec<f64>> = rules.iter().map(|r| np.dirichlet_ones(r.len())).collect();
    let head_probs: Vec<Vec<f64>> = (0..nn).map(|_| np.dirichlet_ones(t)).collect();
    let grammar = Grammar {
        max_depths,
        rules: rules
            .iter()
            .map(|rs| {
                rs.iter()
                    .map(|rhs| {
                        rhs.iter()
                            .map(|s| match *s {
                                Sym::T(x) => Symbol::Terminal(x),
                                Sym::N(n) => Symbol::Nonterminal(n as u32),
                                Sym::Placeholder => unreachable!("placeholders were replaced"),
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect(),
        rule_cdf: rule_probs.iter().map(|p| Cdf::new(p)).collect(),
        head_cdf: head_probs.iter().map(|p| Cdf::new(p)).collect(),
        start_cdf: Cdf::new(&vec![1.0 / nn as f64; nn]),
        rule_probs,
        head_probs,
    };
    Setup {
        prohibited,
        grammar,
    }
}

impl Grammar {
    /// One yield, or `None` where the reference raises (the yield reached `max_len` with
    /// symbols still to expand).
    fn sample(&self, np: &mut RandomState, max_len: usize) -> Option<Vec<Node>> {
        let start = np.choice_p(&self.start_cdf);
        let mut stack = vec![Node {
            sym: Sym::N(start),
            id: 0,
            head_id: None,
            depth: 0,
        }];
        let mut next_id = 1;
        let mut out = Vec::new();
        while let Some(node) = stack.pop() {
            if out.len() >= max_len {
                return None;
            }
            let Sym::N(nt) = node.sym else {
                out.push(node);
                continue;
            };
            let this_head = next_id;
            next_id += 1;
            let rhs = &self.rules[nt][np.choice_p(&self.rule_cdf[nt])];
            let head = np.choice_p(&self.head_cdf[nt]);
            stack.push(Node {
                sym: Sym::T(head as u32),
                id: this_head,
                head_id: node.head_id,
                depth: node.depth + 1,
            });
            for s in rhs.iter().rev() {
                stack.push(Node {
                    sym: match *s {
                        Symbol::Terminal(x) => Sym::T(x),
                        Symbol::Nonterminal(n) => Sym::N(n as usize),
                    },
                    id: next_id,
                    head_id: Some(this_head),
                    depth: node.depth + 1,
                });
                next_id += 1;
            }
        }
        Some(out)
    }
}

fn label(n: &Node) -> u32 {
    match n.sym {
        Sym::T(x) => x,
        _ => unreachable!("a yield holds terminals only"),
    }
}

/// The reference's `get_eligible_pairs` for one query type: (query, target) position pairs.
fn eligible_pairs(
    c: &AtrConfig,
    yield_: &[Node],
    prohibited: Option<&[bool]>,
    split: Split,
) -> Vec<(usize, usize)> {
    let n = yield_.len();
    let t = c.grammar.num_terminals;
    let allowed = |target: usize, query: usize| match prohibited {
        None => true,
        Some(table) => {
            let p = table[label(&yield_[target]) as usize * t + label(&yield_[query]) as usize];
            if split == Split::Test { p } else { !p }
        }
    };
    let mut pairs = Vec::new();
    match c.query {
        AtrQuery::Parent => {
            for target in 0..n {
                for query in 0..n {
                    if allowed(target, query) && yield_[query].head_id == Some(yield_[target].id) {
                        pairs.push((query, target));
                    }
                }
            }
        }
        AtrQuery::Sibling => {
            let mut rightmost: Vec<usize> = (0..n).collect();
            for target in 0..n {
                for query in 0..n {
                    if allowed(target, query)
                        && query != target
                        && yield_[query].head_id == yield_[target].head_id
                    {
                        rightmost[query] = rightmost[query].max(target);
                    }
                }
            }
            pairs = rightmost.into_iter().enumerate().collect();
        }
    }
    if c.unambiguous_queries {
        let mut last = std::collections::HashMap::new();
        for (i, node) in yield_.iter().enumerate() {
            last.insert(label(node), i);
        }
        let is_last = |i: usize| last[&label(&yield_[i])] == i;
        pairs.retain(|&(q, tg)| is_last(q) && (c.query == AtrQuery::Parent || is_last(tg)));
    }
    pairs
}

/// The stream's splits, with each example's statistics when `stats` is given (train, then
/// dev, then test, in stream order).
pub fn generate(
    c: &AtrConfig,
    seed: u64,
    counts: Counts,
    max_rejections: usize,
    mut stats: Option<&mut Vec<ExampleStats>>,
) -> Result<Splits, ReferenceError> {
    let mut np = RandomState::new(numpy_seed(seed)?);
    let Setup {
        prohibited,
        grammar,
    } = setup(c, &mut np);
    let prohibited = prohibited.filter(|t| t.contains(&true));
    let mut draw = |split: Split, n: usize| -> Result<Dataset, ReferenceError> {
        let mut rows = Vec::with_capacity(n);
        let mut roles = Vec::with_capacity(n);
        while rows.len() < n {
            let mut rejections = 0usize;
            let (yield_, pairs) = loop {
                if rejections >= max_rejections {
                    return Err(ReferenceError::Generation(format!(
                        "{} split: {max_rejections} samples in a row were rejected; this grammar \
                         cannot produce the data asked for",
                        split.name()
                    )));
                }
                rejections += 1;
                let Some(y) = grammar.sample(&mut np, c.max_yield) else {
                    continue;
                };
                if y.len() < MIN_YIELD || y.len() > c.max_yield {
                    continue;
                }
                let pairs = eligible_pairs(c, &y, prohibited.as_deref(), split);
                if !pairs.is_empty() {
                    break (y, pairs);
                }
            };
            let targets = set_order(&pairs.iter().map(|&(_, t)| t).collect::<Vec<_>>());
            let target = targets[np.randint(0, targets.len())];
            let queries: Vec<usize> = pairs
                .iter()
                .filter(|&&(_, t)| t == target)
                .map(|&(q, _)| q)
                .collect();
            let query = queries[np.randint(0, queries.len())];
            let len = yield_.len();
            let terminal = |i: usize| label(&yield_[i]) + 3;
            let mut row = Vec::with_capacity(len + 5);
            row.push(BOS);
            row.extend((0..len).map(terminal));
            row.extend([EOS, terminal(query), terminal(target), EOS]);
            if let Some(stats) = stats.as_deref_mut() {
                let labels: Vec<u32> = yield_.iter().map(label).collect();
                let repeated = labels
                    .iter()
                    .filter(|l| labels.iter().filter(|m| m == l).count() > 1)
                    .count();
                stats.push(ExampleStats {
                    length: len,
                    key_value_distance: target as i64 - query as i64,
                    query_key_distance: len + 1 - query,
                    depth: yield_.iter().map(|n| n.depth).max().unwrap_or(0),
                    repeated_share: repeated as f64 / len as f64,
                    eligible_pairs: pairs.len(),
                });
            }
            rows.push(row);
            roles.push(Role::positions(query + 1, target + 1, len + 1));
        }
        Ok(Dataset::from_rows(rows, roles, c.vocab_size()))
    };
    let train = draw(Split::Train, counts.train)?;
    let dev = match prohibited {
        Some(_) => Some(draw(Split::Dev, counts.test)?),
        None => None,
    };
    let test = draw(Split::Test, counts.test)?;
    Ok(Splits { train, dev, test })
}

/// The grammar of `seed` as the reference draws it (for `data stats` and the fixtures' check).
pub fn grammar(c: &AtrConfig, seed: u64) -> Result<Grammar, ReferenceError> {
    let mut np = RandomState::new(numpy_seed(seed)?);
    Ok(setup(c, &mut np).grammar)
}
