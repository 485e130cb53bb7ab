//! The one table from mechlab's parameters to the reference implementation's state-dict names
//! (zoology / tinylang) and PyTorch layouts. Export reads through it, import writes through it,
//! so the two cannot drift apart.
//!
//! | mechlab | reference name (under `backbone.layers.{l}.`) | layout change |
//! |---|---|---|
//! | `word_embeddings` | `backbone.embeddings.word_embeddings.weight` (and `lm_head.weight`, tied) | — |
//! | `position_embeddings` | `backbone.embeddings.position_embeddings.weight` | — |
//! | `norm1`, `norm2` | `norm1.{weight,bias}`, `norm2.…`; Mamba blocks: `norm.weight` (RMSNorm) | — |
//! | attention `wqkv`, `out_proj` | `sequence_mixer.Wqkv.weight`, `.out_proj.{weight,bias}` | Linear transposed |
//! | BaseConv `projection`, `conv_weight`, `conv_bias` | `sequence_mixer.projection.*`, `.conv.conv.{weight,bias}` | conv `[d,k]` → `[d,1,k]` |
//! | BaseConv long `pos_emb_z`, `mlp_0`, `mlp_2` | `sequence_mixer.conv.pos_emb.z`, `.conv.mlp.{0,2}.*` | z `[L,3]` → `[1,L,3]` |
//! | Based `proj_q/k/v/o` | `sequence_mixer.proj_{q,k,v,o}.weight` | Linear transposed |
//! | Hyena `in_proj`, `out_proj`, `short_filter_*` | `sequence_mixer.in_proj.*`, `.out_proj.*`, `.short_filter.*` | conv `[c,3]` → `[c,1,3]` |
//! | Hyena `pos_emb_z`, `filter_{0,2,4,6}`, `filter_freq`, `filter_bias` | `sequence_mixer.filter_fn.pos_emb.z`, `.filter_fn.implicit_filter.{0,2,4,6}.*`, `.filter_fn.implicit_filter.1.freq`, `.filter_fn.bias` | freq `[64]` → `[1,64]` |
//! | H3 `q_proj`, `k_proj`, `v_proj`, `output_linear`, `ssm_k_d`, `d` | same names, `ssm_k_D`, `D` | Linear transposed |
//! | H3 `shift_b`, `shift_c` | `sequence_mixer.ssm_k_kernel.kernel.{B,C}` | C `[d,N]` → `[1,d,N]` |
//! | H3 `log_dt`, `ssm_b`, `ssm_c`, `inv_a_real`, `a_imag` | `sequence_mixer.kernel.kernel.{log_dt,B,C,inv_A_real,A_imag}` | C `[h,m,2]` → `[1,h,m,2]` |
//! | Mamba `in_proj`, `conv1d`, `x_proj`, `dt_proj`, `a_log`, `d`, `out_proj` | `sequence_mixer.{in_proj,conv1d,x_proj,dt_proj,A_log,D,out_proj}.*` | conv `[i,k]` → `[i,1,k]` |
//! | MLP `fc1`, `fc2` | `state_mixer.{fc1,fc2}.{weight,bias}` | Linear transposed |
//! | `ln_f` | `backbone.ln_f.{weight,bias}` | — |
//!
//! burn stores a Linear weight as `[in, out]`; PyTorch as `[out, in]`. The `based` model is the
//! reference's hybrid wrapper, which nests each layer's mixer under `sequence_mixer.mixer.`.
//!
//! This table holds the parameters mechlab trains. The export adds what PyTorch's state dict
//! also lists ([`super::safetensors::state_dict`]): the tied `lm_head.weight`; Hyena's Sin
//! frequency again as `implicit_filter.3.freq` and `.5.freq` (one module used three times) and
//! its buffers `pos_emb.t` and `modulation.deltas`; and for Mamba with `d_conv = 0` the
//! reference's unused `conv1d` (kernel 4, which its ablation allocates and counts), as zeros.

use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Tensor, backend::Backend};

use crate::model::mixer::Mixer;
use crate::model::norm::Norm;
use crate::model::{LanguageModel, MixerKind};

/// A parameter of any rank.
pub enum Slot<'a, B: Backend> {
    Vector(&'a mut Param<Tensor<B, 1>>),
    Matrix(&'a mut Param<Tensor<B, 2>>),
    Cube(&'a mut Param<Tensor<B, 3>>),
}

/// How the reference stores a parameter relative to mechlab.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    AsIs,
    /// A matrix stored transposed (Linear weights).
    Transposed,
    /// The same values with this shape (an extra unit axis).
    Reshaped(Vec<usize>),
}

/// One parameter under its reference name.
pub struct Named<'a, B: Backend> {
    pub name: String,
    pub slot: Slot<'a, B>,
    pub layout: Layout,
}

struct Table<'a, B: Backend>(Vec<Named<'a, B>>);

impl<'a, B: Backend> Table<'a, B> {
    fn add(&mut self, name: String, slot: Slot<'a, B>, layout: Layout) {
        self.0.push(Named { name, slot, layout });
    }

    fn linear(&mut self, prefix: &str, l: &'a mut Linear<B>) {
        self.add(
            format!("{prefix}.weight"),
            Slot::Matrix(&mut l.weight),
            Layout::Transposed,
        );
        if let Some(b) = &mut l.bias {
            self.add(format!("{prefix}.bias"), Slot::Vector(b), Layout::AsIs);
        }
    }

    fn layer_norm(&mut self, prefix: &str, n: &'a mut LayerNorm<B>) {
        self.add(
            format!("{prefix}.weight"),
            Slot::Vector(&mut n.gamma),
            Layout::AsIs,
        );
        if let Some(b) = &mut n.beta {
            self.add(format!("{prefix}.bias"), Slot::Vector(b), Layout::AsIs);
        }
    }

    fn norm(&mut self, prefix: &str, n: &'a mut Norm<B>) {
        match n {
            Norm::Layer(n) => self.layer_norm(prefix, n),
            Norm::Rms(n) => self.add(
                format!("{prefix}.weight"),
                Slot::Vector(&mut n.gamma),
                Layout::AsIs,
            ),
        }
    }

    /// A depthwise conv `[c, k]`, stored `[c, 1, k]`.
    fn conv(
        &mut self,
        prefix: &str,
        w: &'a mut Param<Tensor<B, 2>>,
        b: &'a mut Param<Tensor<B, 1>>,
    ) {
        let [c, k] = w.dims();
        self.add(
            format!("{prefix}.weight"),
            Slot::Matrix(w),
            Layout::Reshaped(vec![c, 1, k]),
        );
        self.add(format!("{prefix}.bias"), Slot::Vector(b), Layout::AsIs);
    }

    fn vector(&mut self, name: String, p: &'a mut Param<Tensor<B, 1>>) {
        self.add(name, Slot::Vector(p), Layout::AsIs);
    }

    /// A parameter stored with an extra leading unit axis.
    fn matrix_unit(&mut self, name: String, p: &'a mut Param<Tensor<B, 2>>) {
        let [a, b] = p.dims();
        self.add(name, Slot::Matrix(p), Layout::Reshaped(vec![1, a, b]));
    }

    fn mixer(&mut self, m: &str, mixer: &'a mut Mixer<B>) {
        match mixer {
            Mixer::Attention(a) => {
                self.linear(&format!("{m}.Wqkv"), &mut a.wqkv);
                self.linear(&format!("{m}.out_proj"), &mut a.out_proj);
            }
            Mixer::BaseConv(c) => {
                self.linear(&format!("{m}.projection"), &mut c.projection);
                self.conv(
                    &format!("{m}.conv.conv"),
                    &mut c.conv_weight,
                    &mut c.conv_bias,
                );
            }
            Mixer::BaseConvLong(c) => {
                self.linear(&format!("{m}.projection"), &mut c.projection);
                self.matrix_unit(format!("{m}.conv.pos_emb.z"), &mut c.pos_emb_z);
                self.linear(&format!("{m}.conv.mlp.0"), &mut c.mlp_0);
                self.linear(&format!("{m}.conv.mlp.2"), &mut c.mlp_2);
            }
            Mixer::BasedAttention(a) => {
                self.linear(&format!("{m}.proj_q"), &mut a.proj_q);
                self.linear(&format!("{m}.proj_k"), &mut a.proj_k);
                self.linear(&format!("{m}.proj_v"), &mut a.proj_v);
                self.linear(&format!("{m}.proj_o"), &mut a.proj_o);
            }
            Mixer::Hyena(h) => {
                self.linear(&format!("{m}.in_proj"), &mut h.in_proj);
                self.conv(
                    &format!("{m}.short_filter"),
                    &mut h.short_filter_weight,
                    &mut h.short_filter_bias,
                );
                let f = format!("{m}.filter_fn");
                self.vector(format!("{f}.bias"), &mut h.filter_bias);
                self.matrix_unit(format!("{f}.pos_emb.z"), &mut h.pos_emb_z);
                self.linear(&format!("{f}.implicit_filter.0"), &mut h.filter_0);
                let [o] = h.filter_freq.dims();
                self.add(
                    format!("{f}.implicit_filter.1.freq"),
                    Slot::Vector(&mut h.filter_freq),
                    Layout::Reshaped(vec![1, o]),
                );
                self.linear(&format!("{f}.implicit_filter.2"), &mut h.filter_2);
                self.linear(&format!("{f}.implicit_filter.4"), &mut h.filter_4);
                self.linear(&format!("{f}.implicit_filter.6"), &mut h.filter_6);
                self.linear(&format!("{m}.out_proj"), &mut h.out_proj);
            }
            Mixer::H3(h) => {
                self.linear(&format!("{m}.q_proj"), &mut h.q_proj);
                self.linear(&format!("{m}.k_proj"), &mut h.k_proj);
                self.linear(&format!("{m}.v_proj"), &mut h.v_proj);
                let s = format!("{m}.ssm_k_kernel.kernel");
                self.add(format!("{s}.B"), Slot::Matrix(&mut h.shift_b), Layout::AsIs);
                self.matrix_unit(format!("{s}.C"), &mut h.shift_c);
                self.vector(format!("{m}.ssm_k_D"), &mut h.ssm_k_d);
                let k = format!("{m}.kernel.kernel");
                self.vector(format!("{k}.log_dt"), &mut h.log_dt);
                let [hh, mm, two] = h.ssm_c.dims();
                self.add(
                    format!("{k}.C"),
                    Slot::Cube(&mut h.ssm_c),
                    Layout::Reshaped(vec![1, hh, mm, two]),
                );
                self.add(format!("{k}.B"), Slot::Cube(&mut h.ssm_b), Layout::AsIs);
                self.add(
                    format!("{k}.inv_A_real"),
                    Slot::Matrix(&mut h.inv_a_real),
                    Layout::AsIs,
                );
                self.add(
                    format!("{k}.A_imag"),
                    Slot::Matrix(&mut h.a_imag),
                    Layout::AsIs,
                );
                self.vector(format!("{m}.D"), &mut h.d);
                self.linear(&format!("{m}.output_linear"), &mut h.output_linear);
            }
            Mixer::Mamba(x) => {
                self.linear(&format!("{m}.in_proj"), &mut x.in_proj);
                if let Some(c) = &mut x.conv1d {
                    self.conv(&format!("{m}.conv1d"), &mut c.weight, &mut c.bias);
                }
                self.linear(&format!("{m}.x_proj"), &mut x.x_proj);
                self.linear(&format!("{m}.dt_proj"), &mut x.dt_proj);
                self.add(
                    format!("{m}.A_log"),
                    Slot::Matrix(&mut x.a_log),
                    Layout::AsIs,
                );
                self.vector(format!("{m}.D"), &mut x.d);
                self.linear(&format!("{m}.out_proj"), &mut x.out_proj);
            }
        }
    }
}

/// Where layer `l`'s mixer sits in the reference's state dict, for a model of kind `mixer`.
pub fn mixer_prefix(mixer: MixerKind, l: usize) -> String {
    match mixer {
        MixerKind::Based => format!("backbone.layers.{l}.sequence_mixer.mixer"),
        _ => format!("backbone.layers.{l}.sequence_mixer"),
    }
}

/// Every parameter of `model` (of kind `mixer`) under its reference name, in the reference's
/// order.
pub fn named_params<B: Backend>(
    model: &mut LanguageModel<B>,
    mixer: MixerKind,
) -> Vec<Named<'_, B>> {
    let mut t = Table(Vec::new());
    t.add(
        "backbone.embeddings.word_embeddings.weight".into(),
        Slot::Matrix(&mut model.word_embeddings.weight),
        Layout::AsIs,
    );
    if let Some(pos) = &mut model.position_embeddings {
        t.add(
            "backbone.embeddings.position_embeddings.weight".into(),
            Slot::Matrix(&mut pos.weight),
            Layout::AsIs,
        );
    }
    for (l, block) in model.layers.iter_mut().enumerate() {
        let p = format!("backbone.layers.{l}");
        let mamba = matches!(block.mixer, Mixer::Mamba(_));
        let norm1 = if mamba { "norm" } else { "norm1" };
        t.norm(&format!("{p}.{norm1}"), &mut block.norm1);
        t.mixer(&mixer_prefix(mixer, l), &mut block.mixer);
        if let (Some(norm2), Some(mlp)) = (&mut block.norm2, &mut block.mlp) {
            t.norm(&format!("{p}.norm2"), norm2);
            t.linear(&format!("{p}.state_mixer.fc1"), &mut mlp.fc1);
            t.linear(&format!("{p}.state_mixer.fc2"), &mut mlp.fc2);
        }
    }
    t.layer_norm("backbone.ln_f", &mut model.ln_f);
    t.0
}
