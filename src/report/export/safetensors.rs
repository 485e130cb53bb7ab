//! Weights as safetensors with the reference implementation's state-dict names (zoology /
//! tinylang), so a PyTorch user can `load_state_dict` a mechlab model into the reference code.
//!
//! | mechlab | reference name | layout change |
//! |---|---|---|
//! | `word_embeddings` | `backbone.embeddings.word_embeddings.weight` (and `lm_head.weight`, tied) | — |
//! | `position_embeddings` | `backbone.embeddings.position_embeddings.weight` | — |
//! | `layers[l].norm1`, `norm2` | `backbone.layers.{l}.norm1.{weight,bias}`, `norm2` | — |
//! | attention `wqkv`, `out_proj` | `backbone.layers.{l}.sequence_mixer.Wqkv.weight`, `.out_proj.{weight,bias}` | Linear transposed |
//! | BaseConv `projection`, `conv_weight`, `conv_bias` | `….sequence_mixer.projection.{weight,bias}`, `.conv.conv.{weight,bias}` | conv `[d,k]` → `[d,1,k]` |
//! | Based `proj_q/k/v/o` | `….sequence_mixer.proj_{q,k,v,o}.weight` | Linear transposed |
//! | MLP `fc1`, `fc2` | `backbone.layers.{l}.state_mixer.{fc1,fc2}.{weight,bias}` | Linear transposed |
//! | `ln_f` | `backbone.ln_f.{weight,bias}` | — |
//!
//! burn stores a Linear weight as `[in, out]`; PyTorch as `[out, in]`.

use std::path::Path;

use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Tensor, backend::Backend};

use crate::model::LanguageModel;
use crate::model::mixer::Mixer;
use crate::store::{StoreError, write_atomic};

/// One named f32 tensor in PyTorch layout.
pub struct Entry {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec()
        .expect("f32 weights")
}

fn push<B: Backend, const D: usize>(out: &mut Vec<Entry>, name: String, t: Tensor<B, D>) {
    let shape = t.dims().to_vec();
    out.push(Entry {
        name,
        shape,
        values: values(t),
    });
}

fn linear<B: Backend>(out: &mut Vec<Entry>, prefix: &str, l: &Linear<B>) {
    push(out, format!("{prefix}.weight"), l.weight.val().transpose());
    if let Some(b) = &l.bias {
        push(out, format!("{prefix}.bias"), b.val());
    }
}

fn norm<B: Backend>(out: &mut Vec<Entry>, prefix: &str, n: &LayerNorm<B>) {
    push(out, format!("{prefix}.weight"), n.gamma.val());
    if let Some(b) = &n.beta {
        push(out, format!("{prefix}.bias"), b.val());
    }
}

/// The model's parameters under the reference's names, in PyTorch layout.
pub fn state_dict<B: Backend>(model: &LanguageModel<B>) -> Vec<Entry> {
    let mut out = Vec::new();
    let emb = model.word_embeddings.weight.val();
    push(
        &mut out,
        "backbone.embeddings.word_embeddings.weight".into(),
        emb.clone(),
    );
    if let Some(pos) = &model.position_embeddings {
        push(
            &mut out,
            "backbone.embeddings.position_embeddings.weight".into(),
            pos.weight.val(),
        );
    }
    for (l, block) in model.layers.iter().enumerate() {
        let p = format!("backbone.layers.{l}");
        norm(&mut out, &format!("{p}.norm1"), &block.norm1);
        let m = format!("{p}.sequence_mixer");
        match &block.mixer {
            Mixer::Attention(a) => {
                linear(&mut out, &format!("{m}.Wqkv"), &a.wqkv);
                linear(&mut out, &format!("{m}.out_proj"), &a.out_proj);
            }
            Mixer::BaseConv(c) => {
                linear(&mut out, &format!("{m}.projection"), &c.projection);
                let w = c.conv_weight.val();
                let [d, k] = w.dims();
                push(
                    &mut out,
                    format!("{m}.conv.conv.weight"),
                    w.reshape([d, 1, k]),
                );
                push(&mut out, format!("{m}.conv.conv.bias"), c.conv_bias.val());
            }
            Mixer::BasedAttention(a) => {
                for (name, lin) in [
                    ("proj_q", &a.proj_q),
                    ("proj_k", &a.proj_k),
                    ("proj_v", &a.proj_v),
                    ("proj_o", &a.proj_o),
                ] {
                    linear(&mut out, &format!("{m}.{name}"), lin);
                }
            }
        }
        if let (Some(norm2), Some(mlp)) = (&block.norm2, &block.mlp) {
            norm(&mut out, &format!("{p}.norm2"), norm2);
            linear(&mut out, &format!("{p}.state_mixer.fc1"), &mlp.fc1);
            linear(&mut out, &format!("{p}.state_mixer.fc2"), &mlp.fc2);
        }
    }
    norm(&mut out, "backbone.ln_f", &model.ln_f);
    // The LM head is tied to the word embedding; PyTorch's state dict lists it under both names.
    push(&mut out, "lm_head.weight".into(), emb);
    out
}

/// The safetensors encoding: `u64` header length, JSON header, then little-endian data.
pub fn encode(entries: &[Entry], metadata: &[(&str, String)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let meta: serde_json::Map<String, serde_json::Value> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone().into()))
        .collect();
    header.insert("__metadata__".into(), meta.into());
    let mut offset = 0usize;
    for e in entries {
        let end = offset + 4 * e.values.len();
        header.insert(
            e.name.clone(),
            serde_json::json!({ "dtype": "F32", "shape": e.shape, "data_offsets": [offset, end] }),
        );
        offset = end;
    }
    let mut head = serde_json::to_vec(&header).expect("header serialises");
    // The format asks for the data to start 8-byte aligned: pad the header with spaces.
    while !head.len().is_multiple_of(8) {
        head.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + head.len() + offset);
    out.extend_from_slice(&(head.len() as u64).to_le_bytes());
    out.extend_from_slice(&head);
    for e in entries {
        for v in &e.values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// Writes `model` to `path` (atomically) as safetensors with reference names.
pub fn export_weights<B: Backend>(
    model: &LanguageModel<B>,
    path: &Path,
    metadata: &[(&str, String)],
) -> Result<usize, StoreError> {
    let entries = state_dict(model);
    write_atomic(path, &encode(&entries, metadata))?;
    Ok(entries.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MixerKind, ModelConfig};
    use burn::backend::Flex;
    use burn::module::Module;

    fn model(mixer: MixerKind) -> LanguageModel<Flex> {
        ModelConfig {
            max_positions: 16,
            init_std: 0.02,
            ..ModelConfig::paper(mixer, 12, 8, 2)
        }
        .init(1, &Default::default())
        .unwrap()
    }

    #[test]
    fn state_dict_covers_every_parameter_once_plus_the_tied_head() {
        for mixer in [MixerKind::Attention, MixerKind::Based] {
            let m = model(mixer);
            let entries = state_dict(&m);
            let total: usize = entries.iter().map(|e| e.values.len()).sum();
            assert_eq!(total, m.num_params() + 12 * 8, "{mixer:?}");
        }
    }

    #[test]
    fn encoded_file_reads_back_with_names_shapes_and_values() {
        let m = model(MixerKind::Attention);
        let entries = state_dict(&m);
        let bytes = encode(&entries, &[("format", "pt".into())]);
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!((8 + n) % 8, 0);
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let wqkv = &header["backbone.layers.1.sequence_mixer.Wqkv.weight"];
        assert_eq!(wqkv["shape"], serde_json::json!([24, 8]));
        let [start, end] =
            [0, 1].map(|i| wqkv["data_offsets"][i].as_u64().unwrap() as usize + 8 + n);
        let stored: Vec<f32> = bytes[start..end]
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        // PyTorch layout: row o of Wqkv is burn's column o.
        let Mixer::Attention(a) = &m.layers[1].mixer else {
            unreachable!()
        };
        let burn_w: Vec<f32> = a.wqkv.weight.val().into_data().to_vec().unwrap();
        for o in 0..24 {
            for i in 0..8 {
                assert_eq!(stored[o * 8 + i], burn_w[i * 24 + o]);
            }
        }
        assert_eq!(header["__metadata__"]["format"], "pt");
    }
}
