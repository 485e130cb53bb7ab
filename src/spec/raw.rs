//! The spec as written in TOML. Every field is documented here; the JSON Schema
//! (`schemas/experiment.schema.json`) is generated from these docs.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::interp::{AblationMode, Corruption};
use crate::model::kind::{CONV_KERNEL_EXPECTED, ConvKernelVisitor};
use crate::model::{ConvKernel, MixerKind, Site};
use crate::task::{ArQuery, AtrQuery, ProhibitSplit, Role};
use crate::train::ScheduleKind;

/// A mechlab experiment spec.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    /// Base specs merged underneath this one (paths relative to this file); later entries win.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    pub experiment: ExperimentSpec,
    pub task: TaskSpec,
    #[serde(default)]
    pub model: ModelSpec,
    #[serde(default)]
    pub train: TrainSpec,
    #[serde(default)]
    pub sweep: SweepSpec,
    /// Named override sets chosen with `--profile NAME`, e.g. `[profile.quick.train] steps = 100`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profile: BTreeMap<String, serde_json::Value>,
    /// Interventions run on every trained model of the experiment. Adding or changing them never
    /// retrains: they are evaluation nodes reading the train nodes' final weights.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interventions: Vec<InterventionSpec>,
    /// Report tables built from collected results by `mechlab table`; they never change what runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableSpec>,
}

/// A report table: one cell per (row value, column value), from each run's final metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// Name, chosen with `mechlab table --name`. Letters, digits, `_`, `-`.
    pub name: String,
    /// A caption. Default: built from the other fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The metric of `metrics.parquet`, at each run's final step. Default: `accuracy`.
    #[serde(default = "d_metric")]
    pub metric: String,
    /// The split it was measured on. Default: `test`.
    #[serde(default = "d_split")]
    pub split: String,
    /// The dotted key whose values make the rows, e.g. `model.mixer`.
    pub rows: String,
    /// The dotted key whose values make the columns, e.g. `model.d_model`.
    pub columns: String,
    /// Per cell, keep only the runs of the best value of this key (by mean final metric over
    /// seeds), e.g. `train.lr`: the paper's "best learning rate per cell". Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_of: Option<String>,
    /// `max` (default) or `min`: which value of the metric is best.
    #[serde(default, skip_serializing_if = "is_default")]
    pub best: BestIs,
    /// Only runs whose key equals the value (or one of a list of values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub filter: BTreeMap<String, serde_json::Value>,
    /// Show values ×100. Default: true for `accuracy`, false otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<bool>,
    /// A published table to print beside each cell (`ar_32` or `pcfg_easy`: the paper's
    /// accuracy tables, in %, by mixer × d_model). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    /// Build the table from the runs of other specs instead of this one's, each with its own
    /// filter (as the paper takes attention from one experiment and the other mixers from
    /// another). Paths are relative to the declaring file. Default: this spec's runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceSpec>,
    /// Show Attrib instead of the metric: per cell the runs of the best `best_of` value are
    /// still chosen by `metric` (the paper's Attrib tables take the run of the best learning
    /// rate by accuracy), and the cell is their Attrib at this interchange cell, at the last
    /// intervention step. Needs `[[interventions]]` on the runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attrib: Option<AttribSpec>,
}

/// One cell of the interchange grid: Attrib when `corrupted` is corrupted and the clean
/// activation is restored at (`layer`, `site`, `patch`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttribSpec {
    pub layer: usize,
    /// Default: `block_input`.
    #[serde(default = "d_attrib_site")]
    pub site: crate::model::Site,
    /// The position restored, e.g. `value` (≈ 1 there with `key` corrupted: induction).
    pub patch: Role,
    /// Default: `key`.
    #[serde(default = "d_attrib_corrupted")]
    pub corrupted: Role,
}

fn d_attrib_site() -> crate::model::Site {
    crate::model::Site::BlockInput
}

fn d_attrib_corrupted() -> Role {
    Role::Key
}

/// One experiment a table takes runs from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// The experiment spec, relative to the file that declares the table.
    pub spec: String,
    /// Only its runs whose key equals the value (or one of a list of values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub filter: BTreeMap<String, serde_json::Value>,
}

/// A file of tables only (no `[experiment]`): tables composed from other specs' results, e.g.
/// `experiments/paper/tables.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TablesFile {
    pub tables: Vec<TableSpec>,
}

/// Which end of a metric is best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BestIs {
    #[default]
    Max,
    Min,
}

fn d_metric() -> String {
    "accuracy".into()
}
fn d_split() -> String {
    "test".into()
}

/// One intervention grid, chosen by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InterventionSpec {
    /// Interchange intervention (activation patching), reference §4.
    Interchange(InterchangeSpec),
    /// Zero or mean ablation of one site at one role's position.
    Ablation(AblationSpec),
}

/// Replace a site's activation at a role's position with zeros or its mean over the examples,
/// and read how much the clean answer's probability drops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AblationSpec {
    /// `zero` or `mean`.
    pub mode: AblationMode,
    /// Also run every this many steps (needs `train.keep_weights_every`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<usize>,
    /// Sites per layer. Default: every residual-stream and sub-layer site the block has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sites: Option<Vec<Site>>,
    /// `"all"` (default) or a list of 0-based layer indices.
    #[serde(default)]
    pub layers: Layers,
    /// Roles whose position is ablated, one at a time. Default: all five roles.
    #[serde(default = "d_patch_at")]
    pub ablate_at: Vec<Role>,
    /// Examples, from the start of the test set. Default: 320.
    #[serde(default = "d_examples")]
    pub examples: usize,
}

/// Corrupt one role's token, restore the clean activation at (layer, site, patch role), read the
/// clean answer's probability at `query`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InterchangeSpec {
    /// Also run every this many steps during training (needs `train.keep_weights_every`); omit
    /// it to run on the final weights only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<usize>,
    /// Sites per layer: block_input, mixer_input, mixer_output, mlp_input, mlp_output,
    /// block_output, and the mixer-internal attn_pattern (attention) and conv_output (Mamba).
    /// Default: every residual-stream and sub-layer site the block has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sites: Option<Vec<Site>>,
    /// Layers to patch: `"all"` (default) or a list of 0-based layer indices.
    #[serde(default)]
    pub layers: Layers,
    /// Roles whose token is corrupted, one at a time: `key` and/or `value`. Default: both.
    #[serde(default = "d_corrupt")]
    pub corrupt: Vec<Role>,
    /// Roles at which the clean activation is restored. Default: all five roles.
    #[serde(default = "d_patch_at")]
    pub patch_at: Vec<Role>,
    /// Examples, from the start of the test set. Paper: 320.
    #[serde(default = "d_examples")]
    pub examples: usize,
    /// `reference` (default; the reference's quirk: a random different *key* token, whatever the
    /// role) or `own_range` (a random different token of the role's own range).
    #[serde(default)]
    pub corruption: Corruption,
    /// Also write `interventions_detail.parquet`: per example and corrupted role, the (layer, site,
    /// patch role) whose patch restored the most probability. Default: false.
    #[serde(default)]
    pub detail: bool,
}

/// `"all"` or a list of layer indices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Layers {
    Named(AllLayers),
    List(Vec<usize>),
}

/// The word `"all"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AllLayers {
    All,
}

impl Default for Layers {
    fn default() -> Self {
        Layers::Named(AllLayers::All)
    }
}

fn d_corrupt() -> Vec<Role> {
    vec![Role::Key, Role::Value]
}
fn d_patch_at() -> Vec<Role> {
    Role::ALL.to_vec()
}
fn d_examples() -> usize {
    320
}

/// The experiment's identity.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    /// Name; collected tables go to `results/<name>/`. Letters, digits, `_`, `-`, `.`.
    pub name: String,
    /// Free text shown by `mechlab plan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Seeds, an axis of the sweep: each seed draws its own data and initial weights.
    /// Default: `[42]` (the reference's only seed).
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
}

fn default_seeds() -> Vec<u64> {
    vec![42]
}

/// The synthetic task, chosen by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskSpec {
    /// Associative recall: `BOS k1 v1 … kn vn EOS kq vq EOS`, only `vq` supervised.
    Ar(ArSpec),
    /// Associative treecall: `BOS t1 … tn EOS tq tp EOS` over a random PCFG with heads; only
    /// `tp` (the query token's parent or sibling) supervised.
    Atr(AtrSpec),
    /// Multi-query associative recall (zoology): every context key queried once after the
    /// context, at power-law gaps; every query supervised.
    Mqar(MqarSpec),
}

impl TaskSpec {
    /// Every `task.kind`.
    pub const KINDS: [&'static str; 3] = ["ar", "atr", "mqar"];
}

/// Multi-query associative recall (zoology `multiquery_ar`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MqarSpec {
    /// Token ids 0..V: keys from [1, V/2), values from [V/2, V). Zoology: 8192.
    #[serde(default = "d_mqar_vocab")]
    pub vocab_size: usize,
    /// Key-value pairs in context, each queried once. Zoology: 4 to 64.
    #[serde(default = "d_mqar_pairs")]
    pub pairs: usize,
    /// Tokens per sequence (even, at least 4·pairs). Zoology: 64 to 512.
    #[serde(default = "d_mqar_seq_len")]
    pub seq_len: usize,
    /// Power-law exponent of the gaps before queries (1 = uniform). Zoology: 0.01.
    #[serde(default = "d_power_a")]
    pub power_a: f64,
    /// Fill the non-query positions after the context with random tokens. Zoology: true.
    #[serde(default = "d_true")]
    pub random_non_queries: bool,
    /// Training sequences.
    #[serde(default = "d_train_size")]
    pub train_size: usize,
    /// Test sequences generated.
    #[serde(default = "d_test_size")]
    pub test_size: usize,
    /// Examples evaluated, from the start of the test set (and of the training set).
    #[serde(default = "d_eval_examples")]
    pub eval_examples: usize,
}

fn d_mqar_vocab() -> usize {
    8192
}
fn d_mqar_pairs() -> usize {
    8
}
fn d_mqar_seq_len() -> usize {
    64
}
fn d_power_a() -> f64 {
    0.01
}

impl MqarSpec {
    pub fn config(&self) -> crate::task::MqarConfig {
        crate::task::MqarConfig {
            vocab_size: self.vocab_size,
            pairs: self.pairs,
            seq_len: self.seq_len,
            power_a: self.power_a,
            random_non_queries: self.random_non_queries,
        }
    }
}

/// Associative treecall (reference §1.2). Paper settings: `easy` (max_rhs_len 5, 20
/// terminals), `medium` (10, 20), `easy_8192` (5, 8192, terminal_occurrence_factor 20).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AtrSpec {
    /// Terminal types T (vocabulary T + 6). Paper: 20 or 8192.
    #[serde(default = "d_num_terminals")]
    pub num_terminals: usize,
    /// Nonterminals of the grammar. Paper: 40.
    #[serde(default = "d_num_nonterminals")]
    pub num_nonterminals: usize,
    /// Right-hand sides have 1 to max_rhs_len − 1 symbols. Paper: 5 (easy) or 10 (medium).
    #[serde(default = "d_max_rhs_len")]
    pub max_rhs_len: usize,
    /// Rules per nonterminal: 1 to this. Paper: 5.
    #[serde(default = "d_max_rules")]
    pub max_rules_per_nt: usize,
    /// Nonterminal maximum depths are drawn from 1 to this. Paper: 10.
    #[serde(default = "d_max_depth")]
    pub max_depth: usize,
    /// Weight of "a terminal" against 1 per allowed nonterminal when drawing right-hand sides;
    /// omit to draw uniformly over nonterminals and terminals. Paper: 20 for 8192 terminals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_occurrence_factor: Option<f64>,
    /// Longest yield kept (sequences are 5 tokens longer). Default 1019, so that every sequence
    /// fits the reference's 1024 positions (the reference caps yields at 1024).
    #[serde(default = "d_max_yield")]
    pub max_yield: usize,
    /// `parent` (default) or `sibling`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub query: AtrQuery,
    /// A query token must be the rightmost occurrence of its type. Default: true (reference).
    #[serde(default = "d_true")]
    pub unambiguous_queries: bool,
    /// `sibling` only: may the target be the query itself? Default: true (the reference's quirk).
    #[serde(default = "d_true")]
    pub sibling_may_be_self: bool,
    /// Share of (target terminal, query terminal) pairs that train and dev never query and test
    /// queries exclusively (paper §5.3: 0.2). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prohibit: Option<f64>,
    /// Training sequences. Paper: 100032.
    #[serde(default = "d_train_size")]
    pub train_size: usize,
    /// Test sequences generated. Paper: 1024.
    #[serde(default = "d_test_size")]
    pub test_size: usize,
    /// Dev sequences (training distribution, held out), evaluated as split `dev`. Default: 0.
    #[serde(default)]
    pub dev_size: usize,
    /// Examples evaluated per split, from the start of each. Paper: 320.
    #[serde(default = "d_eval_examples")]
    pub eval_examples: usize,
    /// Random streams drawing the data: `chacha` (default; mechlab's own, one stream per split)
    /// or `reference` (the reference generators' numpy and CPython streams and call order: seed 42
    /// reproduces the paper's datasets token for token, grammar included).
    #[serde(default, skip_serializing_if = "is_default")]
    pub rng: crate::task::DataRng,
}

fn d_num_terminals() -> usize {
    crate::task::pcfg::GrammarConfig::EASY.num_terminals
}
fn d_num_nonterminals() -> usize {
    crate::task::pcfg::GrammarConfig::EASY.num_nonterminals
}
fn d_max_rhs_len() -> usize {
    crate::task::pcfg::GrammarConfig::EASY.max_rhs_len
}
fn d_max_rules() -> usize {
    crate::task::pcfg::GrammarConfig::EASY.max_rules_per_nt
}
fn d_max_depth() -> usize {
    crate::task::pcfg::GrammarConfig::EASY.max_depth
}
fn d_max_yield() -> usize {
    1019
}
fn d_true() -> bool {
    true
}

impl AtrSpec {
    pub fn config(&self) -> crate::task::AtrConfig {
        crate::task::AtrConfig {
            grammar: crate::task::pcfg::GrammarConfig {
                num_nonterminals: self.num_nonterminals,
                num_terminals: self.num_terminals,
                max_rhs_len: self.max_rhs_len,
                max_rules_per_nt: self.max_rules_per_nt,
                max_depth: self.max_depth,
                terminal_occurrence_factor: self.terminal_occurrence_factor,
            },
            max_yield: self.max_yield,
            query: self.query,
            unambiguous_queries: self.unambiguous_queries,
            sibling_may_be_self: self.sibling_may_be_self,
            prohibit: self.prohibit,
        }
    }
}

/// Associative recall (reference §1.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArSpec {
    /// Size of the key + value vocabulary, split evenly into keys and values. Paper: 8192.
    #[serde(default = "d_num_kv")]
    pub num_kv: usize,
    /// Key-value pairs in context (sequence length 2·pairs + 5). Paper AR-32: 16.
    #[serde(default = "d_pairs")]
    pub pairs: usize,
    /// Training sequences, generated once and consumed in the same order each epoch. Paper: 100032.
    #[serde(default = "d_train_size")]
    pub train_size: usize,
    /// Test sequences generated. Paper: 1024.
    #[serde(default = "d_test_size")]
    pub test_size: usize,
    /// Examples evaluated, from the start of the test set (and of the training set, for the
    /// `train` split). Paper: 320.
    #[serde(default = "d_eval_examples")]
    pub eval_examples: usize,
    /// `key` (default: query a key, answer its value) or `value` (reverse AR: query a value,
    /// answer its key).
    #[serde(default, skip_serializing_if = "ArQuery::is_key")]
    pub query: ArQuery,
    /// Share of (key, value) pairs never queried in training (reference generalisation split: 0.2);
    /// from 0.01 to 0.99. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prohibit: Option<f64>,
    /// With `prohibit`: `reference` (default; the reference's quirk: every split, test included,
    /// queries allowed pairs only) or `strict` (the test split queries only prohibited pairs).
    #[serde(default, skip_serializing_if = "is_default")]
    pub prohibit_split: ProhibitSplit,
    /// Random streams drawing the data: `chacha` (default; mechlab's own, one stream per split)
    /// or `reference` (the reference generators' numpy and CPython streams and call order: seed 42
    /// reproduces the paper's datasets token for token, grammar included).
    #[serde(default, skip_serializing_if = "is_default")]
    pub rng: crate::task::DataRng,
}

fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}

fn d_num_kv() -> usize {
    8192
}
fn d_pairs() -> usize {
    16
}
fn d_train_size() -> usize {
    100_032
}
fn d_test_size() -> usize {
    1024
}
fn d_eval_examples() -> usize {
    320
}

/// The architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Sequence mixer. Default: `attention`.
    #[serde(default = "d_mixer")]
    pub mixer: MixerKind,
    /// Number of blocks. Paper: 2 (1 and 3 in appendices).
    #[serde(default = "d_layers")]
    pub layers: usize,
    /// Residual stream width. Paper sweeps 16, 32, 64, 128, 256.
    #[serde(default = "d_d_model")]
    pub d_model: usize,
    /// Learned absolute position embedding. Default: on for `attention`, off otherwise (paper).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos_emb: Option<bool>,
    /// MLP after each mixer. Default: on, except for `mamba` (whose blocks have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlp: Option<bool>,
    /// Rows of the position table, the longest sequence the model accepts. Reference: 1024.
    #[serde(default = "d_max_positions")]
    pub max_positions: usize,
    /// Base standard deviation σ of weights and embeddings at initialisation; out-projections get
    /// σ/√(2·layers). Reference: 0.02.
    #[serde(default = "d_init_std")]
    pub init_std: f64,
    /// The mixer's convolution, where it has a choice: `mamba` d_conv (0 = none, 1–4; default
    /// 4), `based` short kernel on its BaseConv layers (1–4 or "long"; default 3), `base_conv`
    /// per layer (one value for all, or a list by layer index; default [3, "long", 3, …]),
    /// `delta_net` its three short convolutions (1–16, one value or a list by layer; default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv_kernel: Option<ConvChoice>,
    /// Heads, where the mixer has them: `delta_net` (a divisor of d_model), `gla` (a divisor of
    /// d_model/2, its keys' width); default 2 for both, as zoology configures them. `mamba2` (a
    /// divisor of d_inner = 2·d_model; default d_inner/64, mamba_ssm's heads of 64 channels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<usize>,
    /// State size of each head's state space, where the mixer has a choice: `mamba2` (1–256;
    /// default 128, mamba_ssm's `Mamba2` default, which the paper's code keeps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d_state: Option<usize>,
    /// Weights trained elsewhere, to evaluate instead of training: a safetensors state dict in
    /// the reference's names (what `mechlab export weights` writes, what zoology's modules save),
    /// relative to the file that sets it. It must fit this model exactly (checked at validate:
    /// every missing, unexpected or mis-shaped tensor is listed); the run's train node loads it,
    /// evaluates it at step 0, and its interventions run on it. `[train]` is not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<String>,
}

/// One convolution for every layer, or a list by layer index.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ConvChoice {
    All(ConvKernel),
    PerLayer(Vec<ConvKernel>),
}

impl<'de> Deserialize<'de> for ConvChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ConvChoice;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "{CONV_KERNEL_EXPECTED}, or a list of them by layer")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ConvChoice, E> {
                ConvKernelVisitor.visit_u64(v).map(ConvChoice::All)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ConvChoice, E> {
                ConvKernelVisitor.visit_i64(v).map(ConvChoice::All)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ConvChoice, E> {
                ConvKernelVisitor.visit_str(v).map(ConvChoice::All)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ConvChoice, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = seq.next_element::<ConvKernel>()? {
                    out.push(k);
                }
                Ok(ConvChoice::PerLayer(out))
            }
        }
        d.deserialize_any(V)
    }
}

fn d_mixer() -> MixerKind {
    MixerKind::Attention
}
fn d_layers() -> usize {
    2
}
fn d_d_model() -> usize {
    64
}
fn d_max_positions() -> usize {
    1024
}
fn d_init_std() -> f64 {
    crate::model::init::REFERENCE_INIT_STD
}

impl Default for ModelSpec {
    fn default() -> Self {
        ModelSpec {
            mixer: d_mixer(),
            layers: d_layers(),
            d_model: d_d_model(),
            pos_emb: None,
            mlp: None,
            max_positions: d_max_positions(),
            init_std: d_init_std(),
            conv_kernel: None,
            heads: None,
            d_state: None,
            weights: None,
        }
    }
}

/// Optimisation and evaluation cadence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// Sequences per update. Paper: 32.
    #[serde(default = "d_batch_size")]
    pub batch_size: usize,
    /// Passes over the training set. Paper: 16 (AR), 32 (ATR). Default 16 unless `steps` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Total updates; an alternative to `epochs` (set one, not both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Peak learning rate. Paper sweeps 3e-5 … 3e-3.
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// AdamW decoupled weight decay. Paper: 0.
    #[serde(default)]
    pub weight_decay: f64,
    /// AdamW β1, β2. Paper: [0.9, 0.999].
    #[serde(default = "d_betas")]
    pub betas: [f64; 2],
    /// AdamW ε. Paper: 1e-8.
    #[serde(default = "d_eps")]
    pub eps: f64,
    #[serde(default)]
    pub schedule: ScheduleSpec,
    /// Evaluate every this many updates (also at step 0 and at the end). Paper: 200.
    #[serde(default = "d_eval_every")]
    pub eval_every: usize,
    /// Save a resumable checkpoint every this many updates. Default: 1000.
    #[serde(default = "d_checkpoint_every")]
    pub checkpoint_every: usize,
    /// Also keep the weights every this many updates, so interventions with `every` can run on
    /// intermediate steps. Part of the train node: setting it retrains. Default: final weights only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weights_every: Option<usize>,
}

fn d_batch_size() -> usize {
    32
}
fn d_lr() -> f64 {
    3e-4
}
fn d_betas() -> [f64; 2] {
    [0.9, 0.999]
}
fn d_eps() -> f64 {
    1e-8
}
fn d_eval_every() -> usize {
    200
}
fn d_checkpoint_every() -> usize {
    1000
}

impl Default for TrainSpec {
    fn default() -> Self {
        TrainSpec {
            batch_size: d_batch_size(),
            epochs: None,
            steps: None,
            lr: d_lr(),
            weight_decay: 0.0,
            betas: d_betas(),
            eps: d_eps(),
            schedule: ScheduleSpec::default(),
            eval_every: d_eval_every(),
            checkpoint_every: d_checkpoint_every(),
            keep_weights_every: None,
        }
    }
}

/// Learning-rate schedule: linear warmup, then decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// `cosine` (paper: AR, ATR), `linear` (paper: generalisation, sibling) or `constant`.
    #[serde(default = "d_schedule_kind")]
    pub kind: ScheduleKind,
    /// Fraction of all updates spent in linear warmup. Paper: 0.1.
    #[serde(default = "d_warmup")]
    pub warmup: f64,
}

fn d_schedule_kind() -> ScheduleKind {
    ScheduleKind::Cosine
}
fn d_warmup() -> f64 {
    0.1
}

impl Default for ScheduleSpec {
    fn default() -> Self {
        ScheduleSpec {
            kind: d_schedule_kind(),
            warmup: d_warmup(),
        }
    }
}

/// Sweeps: a grid (product), zipped axes, conditional overrides and exclusions, expanded in that
/// order; `experiment.seeds` is the innermost axis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// Cartesian product: dotted key → list of values, e.g. `"train.lr" = [1e-4, 1e-3]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub grid: BTreeMap<String, Vec<serde_json::Value>>,
    /// Groups of axes varied together: in each group every list has the same length, and the
    /// i-th values go together. Groups multiply with the grid and with each other.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zip: Vec<BTreeMap<String, Vec<serde_json::Value>>>,
    /// Conditional overrides, applied in order to every point.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<WhenSpec>,
    /// Points to drop: each entry is a condition (dotted key → value, or list of values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<BTreeMap<String, serde_json::Value>>,
}

/// `if` every listed key has the given value (or one of a list of values), `set` the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhenSpec {
    #[serde(rename = "if")]
    pub condition: BTreeMap<String, serde_json::Value>,
    pub set: BTreeMap<String, serde_json::Value>,
}
