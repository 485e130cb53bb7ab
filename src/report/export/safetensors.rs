//! Weights as safetensors with the reference implementation's state-dict names (zoology /
//! tinylang), so a PyTorch user can `load_state_dict` a mechlab model into the reference code.
//! The name and layout of every parameter: [`super::names`].

use std::path::Path;

use burn::tensor::{Tensor, backend::Backend};

use super::names::{Layout, Slot, mixer_prefix, named_params};
use crate::model::{LanguageModel, MixerKind};
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

fn entry<B: Backend, const D: usize>(name: String, t: Tensor<B, D>, layout: &Layout) -> Entry {
    let (shape, values) = match layout {
        Layout::AsIs => (t.dims().to_vec(), values(t)),
        Layout::Transposed => {
            let t = t.transpose();
            (t.dims().to_vec(), values(t))
        }
        Layout::Reshaped(shape) => (shape.clone(), values(t)),
    };
    Entry {
        name,
        shape,
        values,
    }
}

/// The state dict the reference's model of kind `mixer` has: every parameter under its
/// reference name in PyTorch layout, plus the entries PyTorch lists besides ([`super::names`]).
pub fn state_dict<B: Backend>(model: &LanguageModel<B>, mixer: MixerKind) -> Vec<Entry> {
    let emb = model.word_embeddings.weight.val();
    let mut out = param_entries(model, mixer);
    // The LM head is tied to the word embedding; PyTorch's state dict lists it under both names.
    out.push(entry("lm_head.weight".into(), emb, &Layout::AsIs));
    // And what the reference's modules hold beside their parameters (each mixer's own list).
    for (l, block) in model.layers.iter().enumerate() {
        let m = mixer_prefix(mixer, l);
        out.extend(
            block
                .mixer
                .reference_buffers(&m)
                .into_iter()
                .map(|b| Entry {
                    name: b.name,
                    shape: b.shape,
                    values: b.values,
                }),
        );
    }
    out
}

/// mechlab's parameters alone (each once) under their reference names, in PyTorch layout.
pub fn param_entries<B: Backend>(model: &LanguageModel<B>, mixer: MixerKind) -> Vec<Entry> {
    // Tensors are reference-counted: the clone shares the weights.
    let mut model = model.clone();
    named_params(&mut model, mixer)
        .into_iter()
        .map(|n| match n.slot {
            Slot::Vector(p) => entry(n.name, p.val(), &n.layout),
            Slot::Matrix(p) => entry(n.name, p.val(), &n.layout),
            Slot::Cube(p) => entry(n.name, p.val(), &n.layout),
        })
        .collect()
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
    mixer: MixerKind,
    path: &Path,
    metadata: &[(&str, String)],
) -> Result<usize, StoreError> {
    let entries = state_dict(model, mixer);
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
            ..ModelConfig::fitted(mixer, 12, 8, 2)
        }
        .init(1, &Default::default())
        .unwrap()
    }

    #[test]
    fn every_parameter_is_exported_once() {
        for mixer in MixerKind::ALL {
            let m = model(mixer);
            let total: usize = param_entries(&m, mixer)
                .iter()
                .map(|e| e.values.len())
                .sum();
            assert_eq!(total, m.num_params(), "{mixer:?}");
        }
    }

    #[test]
    fn encoded_file_reads_back_with_names_shapes_and_values() {
        let m = model(MixerKind::Attention);
        let entries = state_dict(&m, MixerKind::Attention);
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
        let crate::model::mixer::Mixer::Attention(a) = &m.layers[1].mixer else {
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
