//! Range and cross-field checks on a resolved run, so a bad value fails at `validate`, never
//! mid-run. Each check returns the key it blames, so the error can point at the line that set it.

use super::raw::{AtrSpec, MqarSpec, TaskSpec};
use super::resolve::{ResolvedIntervention, RunPoint};
use crate::model::Site;
use crate::task::{DataRng, Role, Split};

/// A failed check: (dotted key, message, help lines).
pub type Problem = (String, String, Vec<String>);

fn problem(key: &str, message: impl Into<String>) -> Problem {
    (key.to_string(), message.into(), Vec::new())
}

/// The held-out share of a generalisation split (AR and ATR).
fn check_prohibit(prohibit: Option<f64>) -> Option<Problem> {
    prohibit.filter(|f| !(0.01..=0.99).contains(f)).map(|f| {
        problem(
            "task.prohibit",
            format!("expected a share of pairs from 0.01 to 0.99, found {f}"),
        )
    })
}

/// Split sizes, common to every task: at least one test sequence and one training batch, and
/// evaluation on at most the smallest split (`dev` counts when it has any sequences).
fn check_sizes(
    train: usize,
    test: usize,
    dev: usize,
    eval: usize,
    batch_size: usize,
) -> Vec<Problem> {
    let mut out = Vec::new();
    if test == 0 {
        out.push(problem(
            "task.test_size",
            "expected at least 1 test sequence",
        ));
    }
    let limit = match dev {
        0 => test.min(train),
        d => test.min(train).min(d),
    };
    if eval == 0 || eval > limit {
        let smallest = if dev > 0 {
            "min(test_size, train_size, dev_size)"
        } else {
            "min(test_size, train_size)"
        };
        out.push(problem(
            "task.eval_examples",
            format!("expected 1 to {smallest} = {limit}, found {eval}"),
        ));
    }
    if train < batch_size {
        out.push(problem(
            "task.train_size",
            format!("expected at least one batch ({batch_size} sequences), found {train}"),
        ));
    }
    out
}

/// ATR's grammar and sizes; then a trial generation, so that a grammar that cannot produce the
/// data fails here and not mid-run.
fn check_atr(a: &AtrSpec, batch_size: usize, seed: u64) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut at_least = |key: &str, value: usize, min: usize| {
        if value < min {
            out.push(problem(
                key,
                format!("expected at least {min}, found {value}"),
            ));
        }
    };
    at_least("task.num_terminals", a.num_terminals, 1);
    at_least("task.num_nonterminals", a.num_nonterminals, 1);
    at_least("task.max_rhs_len", a.max_rhs_len, 2);
    at_least("task.max_rules_per_nt", a.max_rules_per_nt, 1);
    at_least("task.max_depth", a.max_depth, 1);
    at_least("task.max_yield", a.max_yield, crate::task::atr::MIN_YIELD);
    // Upper bounds far beyond the paper (Σ ≤ 8192, 40 nonterminals, rules of ≤ 5 symbols, depth
    // 10), so that a typo'd grammar is refused before the trial generation allocates it.
    let mut at_most = |key: &str, value: usize, max: usize| {
        if value > max {
            out.push(problem(
                key,
                format!("expected at most {max}, found {value}"),
            ));
        }
    };
    at_most("task.num_terminals", a.num_terminals, 1_000_000);
    at_most("task.num_nonterminals", a.num_nonterminals, 10_000);
    at_most("task.max_rhs_len", a.max_rhs_len, 64);
    at_most("task.max_rules_per_nt", a.max_rules_per_nt, 64);
    at_most("task.max_depth", a.max_depth, 64);
    at_most("task.max_yield", a.max_yield, 100_000);
    if let Some(f) = a.terminal_occurrence_factor
        && !(f.is_finite() && f > 0.0)
    {
        out.push(problem(
            "task.terminal_occurrence_factor",
            format!("expected a positive weight, found {f}"),
        ));
    }
    out.extend(check_prohibit(a.prohibit));
    out.extend(check_sizes(
        a.train_size,
        a.test_size,
        a.dev_size,
        a.eval_examples,
        batch_size,
    ));
    if out.is_empty() && a.rng == DataRng::Chacha {
        let cfg = a.config();
        for split in [Split::Train, Split::Test] {
            if let Err(e) = cfg.try_generate(seed, split, 8, 100_000) {
                out.push(problem("task", e));
            }
        }
    }
    out
}

/// `task.rng = "reference"` reproduces the reference's generators, so it takes only what they
/// can do; then a trial generation, as for ChaCha ATR.
fn check_reference(task: &TaskSpec, seed: u64, trial: bool) -> Vec<Problem> {
    let mut out = Vec::new();
    if u32::try_from(seed).is_err() {
        out.push(problem(
            "experiment.seeds",
            format!(
                "task.rng = \"reference\" seeds numpy's legacy generator, which takes 0 to \
                 4294967295; found {seed}"
            ),
        ));
    }
    match task {
        TaskSpec::Ar(a) if a.prohibit_split == crate::task::ProhibitSplit::Strict => {
            out.push(problem(
                "task.prohibit_split",
                "the reference's generator has only the `reference` split (its test set queries \
                 allowed pairs); `strict` needs task.rng = \"chacha\""
                    .to_string(),
            ));
        }
        TaskSpec::Atr(a) => {
            if !a.sibling_may_be_self {
                out.push(problem(
                    "task.sibling_may_be_self",
                    "the reference's generator lets a sibling target be the query itself; \
                     `false` needs task.rng = \"chacha\""
                        .to_string(),
                ));
            }
            let dev_max = if a.prohibit.is_some() { a.test_size } else { 0 };
            if a.dev_size > dev_max {
                out.push(problem(
                    "task.dev_size",
                    format!(
                        "the reference draws a dev split only with task.prohibit, and then of \
                         test_size examples: expected at most {dev_max}, found {}",
                        a.dev_size
                    ),
                ));
            }
            if out.is_empty() && trial {
                let counts = crate::task::reference::Counts { train: 8, test: 8 };
                if let Err(e) =
                    crate::task::reference::atr::generate(&a.config(), seed, counts, 100_000, None)
                {
                    out.push(problem("task", e.to_string()));
                }
            }
        }
        _ => {}
    }
    out
}

/// MQAR's sizes, with zoology's own constraints.
fn check_mqar(q: &MqarSpec, batch_size: usize) -> Vec<Problem> {
    let mut out = Vec::new();
    if q.pairs == 0 || q.pairs >= q.vocab_size / 2 {
        out.push(problem(
            "task.pairs",
            format!(
                "expected 1 to {} pairs (distinct keys from [1, vocab_size/2)), found {}",
                (q.vocab_size / 2).saturating_sub(1),
                q.pairs
            ),
        ));
    }
    if !q.seq_len.is_multiple_of(2) || q.seq_len < q.pairs.saturating_mul(4) {
        out.push(problem(
            "task.seq_len",
            format!(
                "expected an even length of at least 4·pairs = {} (context, then a slot pair per query), found {}",
                q.pairs.saturating_mul(4),
                q.seq_len
            ),
        ));
    }
    if q.vocab_size <= q.seq_len {
        out.push(problem(
            "task.vocab_size",
            format!(
                "expected more tokens than seq_len ({}), found {}",
                q.seq_len, q.vocab_size
            ),
        ));
    }
    if !(q.power_a.is_finite() && q.power_a > 0.0) {
        out.push(problem(
            "task.power_a",
            format!("expected a positive exponent, found {}", q.power_a),
        ));
    }
    out.extend(check_sizes(
        q.train_size,
        q.test_size,
        0,
        q.eval_examples,
        batch_size,
    ));
    out
}

/// The mixer's own rules for the model (in the mixer's file: [`crate::model::mixer::MixerInfo`]).
fn check_mixer(run: &RunPoint) -> Vec<Problem> {
    run.model
        .problems()
        .into_iter()
        .map(|p| (p.key.to_string(), p.message, p.help))
        .collect()
}

/// The most updates one run may take.
pub const MAX_STEPS: usize = 1_000_000_000;

/// Every problem of one run, section by section.
pub fn check_run(run: &RunPoint) -> Vec<Problem> {
    let mut out = check_model(run);
    out.extend(check_task(run));
    out.extend(check_lengths(run));
    out.extend(check_train(run));
    for (i, intervention) in run.interventions.iter().enumerate() {
        out.extend(check_intervention(run, i, intervention));
    }
    out
}

/// `[model]`: sizes, initialisation, convolutions, what the mixer needs of the width.
fn check_model(run: &RunPoint) -> Vec<Problem> {
    let mut out = Vec::new();
    let m = &run.model;
    out.extend(check_mixer(run));
    if !(1..=64).contains(&m.layers) {
        out.push(problem(
            "model.layers",
            format!("expected 1 to 64 layers, found {}", m.layers),
        ));
    }
    if !(1..=16384).contains(&m.d_model) {
        out.push(problem(
            "model.d_model",
            format!("expected a width from 1 to 16384, found {}", m.d_model),
        ));
    }
    if !(m.init_std.is_finite() && m.init_std > 0.0 && m.init_std <= 10.0) {
        out.push(problem(
            "model.init_std",
            format!(
                "expected a standard deviation in (0, 10], found {}",
                m.init_std
            ),
        ));
    }
    out
}

/// `[task]`: its sizes and, with the reference's streams, what they can draw.
fn check_task(run: &RunPoint) -> Vec<Problem> {
    let mut out = Vec::new();
    let t = &run.train;
    match &run.task {
        TaskSpec::Ar(a) => {
            if a.num_kv < 2 || a.num_kv % 2 != 0 {
                out.push(problem(
                    "task.num_kv",
                    format!(
                        "expected an even number ≥ 2 (half keys, half values), found {}",
                        a.num_kv
                    ),
                ));
            } else if a.pairs == 0 || a.pairs > a.num_kv / 2 {
                out.push(problem(
                    "task.pairs",
                    format!("expected 1 to {} pairs (keys are distinct, and num_kv = {} gives {} keys), found {}", a.num_kv / 2, a.num_kv, a.num_kv / 2, a.pairs),
                ));
            }
            out.extend(check_prohibit(a.prohibit));
            out.extend(check_sizes(
                a.train_size,
                a.test_size,
                0,
                a.eval_examples,
                t.batch_size,
            ));
        }
        TaskSpec::Atr(_) => {}
        TaskSpec::Mqar(q) => out.extend(check_mqar(q, t.batch_size)),
    }
    if let TaskSpec::Atr(a) = &run.task {
        out.extend(check_atr(a, t.batch_size, run.seed));
    }
    if run.task.rng() == DataRng::Reference {
        // The trial generation only on a task that passed every other check: the reference's
        // generators take their config as given.
        let trial = out.is_empty();
        out.extend(check_reference(&run.task, run.seed, trial));
    }
    out
}

/// Sequences against what the model can hold (position table, implicit filters).
fn check_lengths(run: &RunPoint) -> Vec<Problem> {
    let mut out = Vec::new();
    let m = &run.model;
    let seq_len = run.task.seq_len();
    if m.has_long_filters() && seq_len > m.max_positions {
        out.push(problem(
            "model.max_positions",
            format!(
                "sequences have {seq_len} tokens but the implicit long filters cover {} positions",
                m.max_positions
            ),
        ));
    }
    if m.pos_emb && seq_len > m.max_positions {
        out.push(problem(
            "model.max_positions",
            format!(
                "sequences have {seq_len} tokens but the position table has {} rows",
                m.max_positions
            ),
        ));
    }
    out
}

/// `[train]`: optimiser and bookkeeping settings.
fn check_train(run: &RunPoint) -> Vec<Problem> {
    let mut out = Vec::new();
    let t = &run.train;
    if t.batch_size == 0 {
        out.push(problem("train.batch_size", "expected at least 1"));
    }
    if t.steps == 0 {
        out.push(problem(
            "train.steps",
            "expected at least 1 update (check train.epochs / train.steps)",
        ));
    }
    // A billion updates is decades on any machine this runs on: a typo, not a plan.
    if t.steps > MAX_STEPS {
        out.push(problem(
            "train.steps",
            format!(
                "expected at most {MAX_STEPS} updates, found {} (from train.steps, or \
                 train.epochs × train_size / batch_size)",
                t.steps
            ),
        ));
    }
    if !(t.lr.is_finite() && t.lr > 0.0 && t.lr < 10.0) {
        out.push(problem(
            "train.lr",
            format!("expected a learning rate in (0, 10), found {}", t.lr),
        ));
    }
    if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
        out.push(problem(
            "train.weight_decay",
            format!("expected ≥ 0, found {}", t.weight_decay),
        ));
    }
    if t.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
        out.push(problem(
            "train.betas",
            format!("expected two values in [0, 1), found {:?}", t.betas),
        ));
    }
    if !(t.eps > 0.0 && t.eps.is_finite()) {
        out.push(problem(
            "train.eps",
            format!("expected > 0, found {}", t.eps),
        ));
    }
    if !(0.0..=1.0).contains(&t.schedule.warmup) {
        out.push(problem(
            "train.schedule.warmup",
            format!(
                "expected a fraction of steps in [0, 1], found {}",
                t.schedule.warmup
            ),
        ));
    }
    if t.eval_every == 0 {
        out.push(problem("train.eval_every", "expected at least 1"));
    }
    if t.keep_weights_every == Some(0) {
        out.push(problem("train.keep_weights_every", "expected at least 1"));
    }
    if t.checkpoint_every == 0 {
        out.push(problem("train.checkpoint_every", "expected at least 1"));
    }
    out
}

/// Intervention block `i` against the model it runs on and the data it reads.
fn check_intervention(
    run: &RunPoint,
    i: usize,
    intervention: &ResolvedIntervention,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let (m, t) = (&run.model, &run.train);
    let key = |k: &str| format!("interventions.{i}.{k}");
    let (every, layers, sites, examples) = intervention.common();
    if let Some(every) = every {
        match t.keep_weights_every {
            _ if every == 0 => out.push(problem(&key("every"), "expected at least 1")),
            Some(k) if every.is_multiple_of(k) => {}
            kept => out.push((
                key("every"),
                match kept {
                    Some(k) => format!("every = {every} needs the weights of steps the training does not keep (train.keep_weights_every = {k})"),
                    None => format!("every = {every} needs intermediate weights, but the training keeps only the final ones"),
                },
                vec![format!("set train.keep_weights_every to a divisor of {every} (this retrains), or omit `every`")],
            )),
        }
    }
    // A model without layers is reported under model.layers; say nothing more here.
    if let Some(&l) = layers.iter().find(|&&l| l >= m.layers)
        && m.layers > 0
    {
        out.push(problem(
            &key("layers"),
            format!(
                "layer {l} does not exist: the model has layers 0 to {}",
                m.layers - 1
            ),
        ));
    }
    if let Some(s) = sites.iter().find(|&&s| !m.kind().info().has_site(s, m.mlp)) {
        let valid: Vec<&str> = Site::BLOCK
            .into_iter()
            .chain(Site::INTERNAL)
            .filter(|&s| m.kind().info().has_site(s, m.mlp))
            .map(Site::name)
            .collect();
        let why = match s {
            Site::MlpInput | Site::MlpOutput => {
                "these blocks have no MLP (model.mlp = false)".to_string()
            }
            Site::AttnPattern => format!(
                "only softmax attention has an attention pattern; this model's mixer is {}",
                m.mixer.name()
            ),
            _ => format!(
                "only mamba and mamba2 have a conv_output site; this model's mixer is {}",
                m.mixer.name()
            ),
        };
        out.push((
            key("sites"),
            format!("site {s} does not exist: {why}"),
            vec![format!("valid here: {}", valid.join(", "))],
        ));
    }
    let (corrupt, roles, roles_key): (&[Role], &[Role], &str) = match intervention {
        ResolvedIntervention::Interchange(iv) => (&iv.grid.corrupt, &iv.grid.patch_at, "patch_at"),
        ResolvedIntervention::Ablation(a) => (&[Role::Key], &a.grid.ablate_at, "ablate_at"),
    };
    if let Some(r) = corrupt
        .iter()
        .find(|r| !matches!(r, Role::Key | Role::Value))
    {
        out.push(problem(
            &key("corrupt"),
            format!(
                "only key and value tokens can be corrupted, found {}",
                r.name()
            ),
        ));
    }
    for (name, empty) in [
        ("sites", sites.is_empty()),
        ("layers", layers.is_empty()),
        ("corrupt", corrupt.is_empty()),
        (roles_key, roles.is_empty()),
    ] {
        if empty {
            out.push(problem(&key(name), "expected at least one entry"));
        }
    }
    let test_size = run.task.test_size();
    if examples == 0 || examples > test_size {
        out.push(problem(
            &key("examples"),
            format!(
                "expected 1 to task.test_size = {test_size}, found {}",
                examples
            ),
        ));
    }
    out
}

/// Advice that does not stop a run.
pub fn warnings(run: &RunPoint) -> Vec<String> {
    let t = &run.train;
    let mut out = Vec::new();
    if t.eval_every > 0 && t.steps / t.eval_every > 500 {
        out.push(format!(
            "train.eval_every = {} gives {} evaluations over {} steps, which will dominate runtime; consider {}",
            t.eval_every,
            t.steps / t.eval_every,
            t.steps,
            (t.steps / 100).max(1)
        ));
    }
    out
}
