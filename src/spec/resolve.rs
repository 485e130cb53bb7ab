//! Resolved run configs: every default filled, ready to hash and to build science configs from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::raw::{ArSpec, ConvChoice, InterventionSpec, Layers, ModelSpec, TaskSpec, TrainSpec};
use crate::interp::{AblationConfig, InterchangeConfig};
use crate::model::Site;
use crate::model::kind::ConfigProblem;
use crate::model::{MixerKeys, ModelConfig};
use crate::task::atr::ExampleStats;
use crate::task::reference::{self, Counts, ReferenceError};
use crate::task::{ArConfig, DataRng, Dataset, Prohibit, Split, TaskConfig};
use crate::train::{Schedule, TrainConfig};

/// Epochs when neither `train.epochs` nor `train.steps` is set (paper AR: 16).
pub const DEFAULT_EPOCHS: usize = 16;

/// An interchange block resolved for one run's model: the grid `interp` runs (`"all"` expanded),
/// when, and whether per-example rows are kept. Serialised flat, as the evaluate node's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedInterchange {
    pub every: Option<usize>,
    /// The grid; its corruption seed is the run's, set when it runs.
    #[serde(flatten)]
    pub grid: InterchangeConfig,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub detail: bool,
}

/// An ablation block resolved for one run's model: the grid `interp` runs, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedAblation {
    pub every: Option<usize>,
    #[serde(flatten)]
    pub grid: AblationConfig,
}

/// One `[[interventions]]` block, resolved; serialises as `{"interchange": …}` or
/// `{"ablation": …}` (the evaluate node's config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolvedIntervention {
    Interchange(ResolvedInterchange),
    Ablation(ResolvedAblation),
}

impl ResolvedIntervention {
    /// The fields every kind shares: (every, layers, sites, examples).
    pub fn common(&self) -> (Option<usize>, &[usize], &[Site], usize) {
        match self {
            ResolvedIntervention::Interchange(i) => {
                (i.every, &i.grid.layers, &i.grid.sites, i.grid.examples)
            }
            ResolvedIntervention::Ablation(a) => {
                (a.every, &a.grid.layers, &a.grid.sites, a.grid.examples)
            }
        }
    }
}

/// The listed sites, or every block site this model has.
fn expand_sites(sites: &Option<Vec<Site>>, model: &ModelConfig) -> Vec<Site> {
    match sites {
        Some(s) => s.clone(),
        None => Site::BLOCK
            .into_iter()
            .filter(|&s| model.kind().info().has_site(s, model.mlp))
            .collect(),
    }
}

fn expand_layers(layers: &Layers, model: &ModelConfig) -> Vec<usize> {
    match layers {
        Layers::Named(_) => (0..model.layers).collect(),
        Layers::List(l) => l.clone(),
    }
}

pub fn resolve_intervention(spec: &InterventionSpec, model: &ModelConfig) -> ResolvedIntervention {
    match spec {
        InterventionSpec::Ablation(a) => ResolvedIntervention::Ablation(ResolvedAblation {
            every: a.every,
            grid: AblationConfig {
                mode: a.mode,
                layers: expand_layers(&a.layers, model),
                sites: expand_sites(&a.sites, model),
                ablate_at: a.ablate_at.clone(),
                examples: a.examples,
            },
        }),
        InterventionSpec::Interchange(i) => {
            ResolvedIntervention::Interchange(ResolvedInterchange {
                every: i.every,
                grid: InterchangeConfig {
                    layers: expand_layers(&i.layers, model),
                    sites: expand_sites(&i.sites, model),
                    corrupt: i.corrupt.clone(),
                    patch_at: i.patch_at.clone(),
                    examples: i.examples,
                    corruption: i.corruption,
                    seed: 0,
                },
                detail: i.detail,
            })
        }
    }
}

impl ResolvedInterchange {
    /// The grid with the corruption draws of the run's `seed`.
    pub fn config(&self, seed: u64) -> InterchangeConfig {
        InterchangeConfig {
            seed,
            ..self.grid.clone()
        }
    }
}

/// One run of an experiment: a point of the sweep with one seed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunPoint {
    /// Readable name from the swept values, e.g. `attention-d64-lr3e-4-s42`.
    pub name: String,
    pub seed: u64,
    /// Swept parameters of this run (dotted key → value), `seed` last.
    pub axes: Vec<(String, serde_json::Value)>,
    pub task: TaskSpec,
    /// What the train node builds (resolved: the mixer's defaults filled in).
    pub model: ModelConfig,
    /// How the train node optimises it.
    pub train: TrainConfig,
    /// Intervention grids run on this run's final weights.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interventions: Vec<ResolvedIntervention>,
    /// Weights trained elsewhere (`model.weights`), loaded instead of training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported: Option<Imported>,
}

/// A state dict a run evaluates instead of training its own weights.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Imported {
    /// The file, as resolved from the spec (relative to the file that named it).
    pub path: std::path::PathBuf,
    /// blake3 of its bytes: the train node's id hashes the content, not the path.
    pub blake3: String,
}

impl RunPoint {
    /// Every parameter of the run by dotted key, as tables and filters name them: its resolved
    /// `task`, `model` and `train`, each swept key with the value the spec gave it (`train.epochs`
    /// stays as written, not as the steps it resolved to), and `seed`.
    pub fn params(&self) -> serde_json::Value {
        let mut all = serde_json::json!({
            "task": self.task,
            "model": self.model,
            "train": self.train,
        });
        for (key, value) in &self.axes {
            super::sweep::set_dotted(&mut all, key, value.clone());
        }
        super::sweep::set_dotted(&mut all, "seed", serde_json::json!(self.seed));
        all
    }
}

/// A whole expanded spec.
#[derive(Debug, Clone, Serialize)]
pub struct Resolved {
    pub experiment: String,
    pub description: Option<String>,
    /// The spec file this came from.
    pub source: std::path::PathBuf,
    /// blake3 of the canonical JSON of `runs`: changes whenever any run changes.
    pub spec_hash: String,
    pub runs: Vec<RunPoint>,
    /// Report tables (not part of any run, so not of `spec_hash`).
    #[serde(default)]
    pub tables: Vec<super::raw::TableSpec>,
    #[serde(skip)]
    pub warnings: Vec<String>,
}

impl ArSpec {
    pub fn config(&self) -> ArConfig {
        ArConfig {
            num_kv: self.num_kv,
            pairs: self.pairs,
            query: self.query,
            prohibit: self.prohibit.map(|fraction| Prohibit {
                fraction,
                split: self.prohibit_split,
            }),
        }
    }
}

impl TaskSpec {
    pub fn config(&self) -> TaskConfig {
        match self {
            TaskSpec::Ar(a) => TaskConfig::Ar(a.config()),
            TaskSpec::Atr(a) => TaskConfig::Atr(a.config()),
            TaskSpec::Mqar(a) => TaskConfig::Mqar(a.config()),
        }
    }

    pub fn train_size(&self) -> usize {
        match self {
            TaskSpec::Ar(a) => a.train_size,
            TaskSpec::Atr(a) => a.train_size,
            TaskSpec::Mqar(a) => a.train_size,
        }
    }

    pub fn test_size(&self) -> usize {
        match self {
            TaskSpec::Ar(a) => a.test_size,
            TaskSpec::Atr(a) => a.test_size,
            TaskSpec::Mqar(a) => a.test_size,
        }
    }

    /// Held-out sequences from the training distribution (0: no dev split).
    pub fn dev_size(&self) -> usize {
        match self {
            TaskSpec::Ar(_) | TaskSpec::Mqar(_) => 0,
            TaskSpec::Atr(a) => a.dev_size,
        }
    }

    /// Sequences of `split`.
    pub fn size_of(&self, split: Split) -> usize {
        match split {
            Split::Train => self.train_size(),
            Split::Test => self.test_size(),
            Split::Dev => self.dev_size(),
        }
    }

    pub fn eval_examples(&self) -> usize {
        match self {
            TaskSpec::Ar(a) => a.eval_examples,
            TaskSpec::Atr(a) => a.eval_examples,
            TaskSpec::Mqar(a) => a.eval_examples,
        }
    }

    /// What decides this task's test sequences for a given seed, as `task.KEY` → value: every
    /// field but `eval_examples` and, where each split draws from a stream of its own (`chacha`),
    /// the other splits' sizes. With `rng = "reference"` the test sequences come after the
    /// training (and dev) ones in one stream, so those sizes decide them too.
    pub fn test_set_fields(&self) -> BTreeMap<String, serde_json::Value> {
        let serde_json::Value::Object(fields) =
            serde_json::to_value(self).expect("a task spec serialises")
        else {
            unreachable!("a task spec is a table")
        };
        let drop: &[&str] = match self.rng() {
            DataRng::Chacha => &["eval_examples", "train_size", "dev_size"],
            DataRng::Reference => &["eval_examples"],
        };
        fields
            .into_iter()
            .filter(|(k, _)| !drop.contains(&k.as_str()))
            .map(|(k, v)| (format!("task.{k}"), v))
            .collect()
    }

    /// The random streams drawing this task's data.
    pub fn rng(&self) -> DataRng {
        match self {
            TaskSpec::Ar(a) => a.rng,
            TaskSpec::Atr(a) => a.rng,
            TaskSpec::Mqar(_) => DataRng::Chacha,
        }
    }

    /// `n` examples of `split` (the first `n` of the split, with `rng = "reference"`).
    pub fn generate(&self, seed: u64, split: Split, n: usize) -> Result<Dataset, ReferenceError> {
        let mut all = self.generate_splits(seed, &[(split, n)])?;
        Ok(all.remove(0))
    }

    /// Several splits at once: with `rng = "reference"`, one pass through the stream they share.
    pub fn generate_splits(
        &self,
        seed: u64,
        want: &[(Split, usize)],
    ) -> Result<Vec<Dataset>, ReferenceError> {
        if self.rng() == DataRng::Chacha {
            let task = self.config();
            return Ok(want
                .iter()
                .map(|&(split, n)| task.generate(seed, split, n))
                .collect());
        }
        let counts = Counts {
            train: self.train_size(),
            test: self.test_size(),
        };
        let splits = match self.config() {
            TaskConfig::Ar(c) => reference::ar::generate(&c, seed, counts)?,
            TaskConfig::Atr(c) => reference::atr::generate(&c, seed, counts, 1_000_000, None)?,
            TaskConfig::Mqar(_) => unreachable!("MQAR has no reference streams (rng() is ChaCha)"),
        };
        want.iter()
            .map(|&(split, n)| {
                let data = splits.get(split)?;
                if n > data.len() {
                    return Err(ReferenceError::Generation(format!(
                        "{} split: {n} examples asked, the reference's stream has {}",
                        split.name(),
                        data.len()
                    )));
                }
                Ok(data.head(n))
            })
            .collect()
    }

    /// `n` examples of `split` and, for ATR, each example's statistics (yield, depth, repeated
    /// terminals, eligible pairs), from the spec's random stream.
    pub fn generate_with_stats(
        &self,
        seed: u64,
        split: Split,
        n: usize,
    ) -> Result<(Dataset, Option<Vec<ExampleStats>>), ReferenceError> {
        match self.config() {
            TaskConfig::Atr(c) if self.rng() == DataRng::Reference => {
                let counts = Counts {
                    train: self.train_size(),
                    test: self.test_size(),
                };
                let mut stats = Vec::new();
                let splits =
                    reference::atr::generate(&c, seed, counts, 1_000_000, Some(&mut stats))?;
                // The stream's statistics run train, dev, test in order; keep the split's own.
                let (skip, data) = (splits.offset(split), splits.get(split)?);
                let n = n.min(data.len());
                Ok((data.head(n), Some(stats[skip..skip + n].to_vec())))
            }
            TaskConfig::Atr(c) => {
                let (data, stats) = c
                    .generate_with_stats(seed, split, n)
                    .map_err(ReferenceError::Generation)?;
                Ok((data, Some(stats)))
            }
            _ => Ok((self.generate(seed, split, n)?, None)),
        }
    }

    /// The longest sequence the task can produce.
    pub fn seq_len(&self) -> usize {
        match self {
            TaskSpec::Ar(a) => a.config().seq_len(),
            TaskSpec::Atr(a) => a.config().max_seq_len(),
            TaskSpec::Mqar(a) => a.seq_len,
        }
    }
}

/// The model of a spec's `[model]` for a task of `vocab_size` tokens, the mixer's defaults
/// ([`crate::model::kind::MixerInfo`]) filled in and its own keys read by the mixer
/// ([`crate::model::MixerKind::configure`]); a key the mixer has no use for is a problem.
pub fn resolve_model(m: &ModelSpec, vocab_size: usize) -> Result<ModelConfig, Vec<ConfigProblem>> {
    let keys = MixerKeys {
        conv_kernel: m.conv_kernel.as_ref().map(|c| match c {
            ConvChoice::All(k) => vec![*k; m.layers],
            ConvChoice::PerLayer(list) => list.clone(),
        }),
        heads: m.heads,
        d_state: m.d_state,
    };
    let info = m.mixer.info();
    Ok(ModelConfig {
        vocab_size,
        mixer: m.mixer.configure(&keys, m.layers)?,
        layers: m.layers,
        d_model: m.d_model,
        pos_emb: m.pos_emb.unwrap_or(info.default_pos_emb),
        mlp: m.mlp.unwrap_or(info.default_mlp),
        max_positions: m.max_positions,
        init_std: m.init_std,
    })
}

/// The optimisation of a spec's `[train]`: `steps` from `epochs` over `train_size` sequences
/// when not given.
pub fn resolve_train(t: &TrainSpec, train_size: usize) -> TrainConfig {
    let steps_per_epoch = train_size / t.batch_size.max(1);
    TrainConfig {
        batch_size: t.batch_size,
        // Saturating: `validate` refuses what is too large to run, with the number.
        steps: t.steps.unwrap_or(
            t.epochs
                .unwrap_or(DEFAULT_EPOCHS)
                .saturating_mul(steps_per_epoch),
        ),
        lr: t.lr,
        weight_decay: t.weight_decay,
        betas: t.betas,
        eps: t.eps,
        schedule: Schedule {
            kind: t.schedule.kind,
            warmup: t.schedule.warmup,
        },
        eval_every: t.eval_every,
        checkpoint_every: t.checkpoint_every,
        keep_weights_every: t.keep_weights_every,
    }
}

/// Short label of a swept value for run names: `d64`, `lr3e-4`, `L2`, or the bare value for
/// categorical choices such as the mixer.
pub fn label(key: &str, value: &serde_json::Value) -> String {
    let leaf = key.rsplit('.').next().unwrap_or(key);
    let v = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) if n.is_f64() => fmt_float(n.as_f64().unwrap_or(f64::NAN)),
        other => other.to_string().replace(['[', ']', '"', ' '], ""),
    };
    match leaf {
        "mixer" | "kind" => v,
        "d_model" => format!("d{v}"),
        "layers" => format!("L{v}"),
        _ if matches!(value, serde_json::Value::Bool(_)) => {
            if value == &serde_json::Value::Bool(true) {
                leaf.to_string()
            } else {
                format!("no_{leaf}")
            }
        }
        _ => format!("{leaf}{v}"),
    }
}

/// `3e-4`, `0.1`, `1e-3`, `2.5`: short and unambiguous.
pub fn fmt_float(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-2 || x.abs() >= 1e5) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_are_short_and_readable() {
        assert_eq!(label("model.mixer", &json!("attention")), "attention");
        assert_eq!(label("model.d_model", &json!(64)), "d64");
        assert_eq!(label("train.lr", &json!(3e-4)), "lr3e-4");
        assert_eq!(label("train.lr", &json!(0.1)), "lr0.1");
        assert_eq!(label("model.pos_emb", &json!(false)), "no_pos_emb");
    }
}
