//! The one table from mechlab's parameters to the reference implementation's state-dict names
//! (zoology / tinylang) and PyTorch layouts. Export reads through it, import writes through it,
//! so the two cannot drift apart.
//!
//! | mechlab | reference name (under `backbone.layers.{l}.`) | layout change |
//! |---|---|---|
//! | `word_embeddings` | `backbone.embeddings.word_embeddings.weight` (and `lm_head.weight`, tied) | — |
//! | `position_embeddings` | `backbone.embeddings.position_embeddings.weight` | — |
//! | `norm1`, `norm2` | `norm1.{weight,bias}`, `norm2.…`; Mamba blocks: `norm.weight` (RMSNorm) | — |
//! | the mixer | `sequence_mixer.…` (Based: `sequence_mixer.mixer.…`): each mixer's `reference_params`, in its file | per mixer |
//! | MLP `fc1`, `fc2` | `state_mixer.{fc1,fc2}.{weight,bias}` | Linear transposed |
//! | `ln_f` | `backbone.ln_f.{weight,bias}` | — |
//!
//! burn stores a Linear weight as `[in, out]`; PyTorch as `[out, in]`. The `based` model is the
//! reference's hybrid wrapper, which nests each layer's mixer under `sequence_mixer.mixer.`
//! ([`crate::model::kind::MixerInfo::reference_module`]).
//!
//! This table holds the parameters mechlab trains. The export adds what PyTorch's state dict
//! also lists ([`super::safetensors::state_dict`]): the tied `lm_head.weight`; Hyena's Sin
//! frequency again as `implicit_filter.3.freq` and `.5.freq` (one module used three times) and
//! its buffers `pos_emb.t` and `modulation.deltas`; and for Mamba with `d_conv = 0` the
//! reference's unused `conv1d` (kernel 4, which its ablation allocates and counts), as zeros.

use burn::tensor::backend::Backend;

use crate::model::param_names::ParamTable;
pub use crate::model::param_names::{Layout, Named, Slot};
use crate::model::{LanguageModel, MixerKind};

/// Where layer `l`'s mixer sits in the reference's state dict, for a model of kind `mixer`.
pub fn mixer_prefix(mixer: MixerKind, l: usize) -> String {
    format!("backbone.layers.{l}.{}", mixer.info().reference_module)
}

/// Every parameter of `model` (of kind `mixer`) under its reference name, in the reference's
/// order.
pub fn named_params<B: Backend>(
    model: &mut LanguageModel<B>,
    mixer: MixerKind,
) -> Vec<Named<'_, B>> {
    let mut t = ParamTable::default();
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
        let norm1 = if mixer.info().rms_norm {
            "norm"
        } else {
            "norm1"
        };
        t.norm(&format!("{p}.{norm1}"), &mut block.norm1);
        block
            .mixer
            .reference_params(&mixer_prefix(mixer, l), &mut t);
        if let (Some(norm2), Some(mlp)) = (&mut block.norm2, &mut block.mlp) {
            t.norm(&format!("{p}.norm2"), norm2);
            t.linear(&format!("{p}.state_mixer.fc1"), &mut mlp.fc1);
            t.linear(&format!("{p}.state_mixer.fc2"), &mut mlp.fc2);
        }
    }
    t.layer_norm("backbone.ln_f", &mut model.ln_f);
    t.into_vec()
}
