//! Weights as safetensors with the reference implementation's state-dict names (zoology /
//! tinylang), so a PyTorch user can `load_state_dict` a mechlab model into the reference code.
//! The name and layout of every parameter: [`super::names`].

use std::path::Path;

use burn::tensor::{Tensor, backend::Backend};

use super::names::{Layout, Slot, mixer_prefix, named_params};
use crate::model::mixer::Mixer;
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
    for (l, block) in model.layers.iter().enumerate() {
        let m = mixer_prefix(mixer, l);
        match &block.mixer {
            Mixer::Hyena(h) => {
                let f = format!("{m}.filter_fn");
                let freq = values(h.filter_freq.val());
                for i in [3, 5] {
                    out.push(Entry {
                        name: format!("{f}.implicit_filter.{i}.freq"),
                        shape: vec![1, freq.len()],
                        values: freq.clone(),
                    });
                }
                let [l_max, _] = h.pos_emb_z.dims();
                let [_, d] = h.filter_6.weight.dims();
                out.push(Entry {
                    name: format!("{f}.pos_emb.t"),
                    shape: vec![1, l_max, 1],
                    values: torch_linspace(0.0, 1.0, l_max),
                });
                let target = 1e-2f64.ln();
                out.push(Entry {
                    name: format!("{f}.modulation.deltas"),
                    shape: vec![1, 1, d],
                    values: torch_linspace(target / 1.5, target / 0.3, d),
                });
            }
            Mixer::Mamba(x) if x.conv1d.is_none() => {
                // The reference's `MambaWithoutConv` keeps Mamba's default conv1d (kernel 4).
                let [_, two_inner] = x.in_proj.weight.dims();
                let inner = two_inner / 2;
                out.push(Entry {
                    name: format!("{m}.conv1d.weight"),
                    shape: vec![inner, 1, REFERENCE_UNUSED_CONV],
                    values: vec![0.0; inner * REFERENCE_UNUSED_CONV],
                });
                out.push(Entry {
                    name: format!("{m}.conv1d.bias"),
                    shape: vec![inner],
                    values: vec![0.0; inner],
                });
            }
            _ => {}
        }
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

/// Taps of the conv1d the reference allocates, unused, in Mamba without a convolution.
pub const REFERENCE_UNUSED_CONV: usize = 4;

/// `torch.linspace(start, end, steps)` in float32, as PyTorch's CPU kernel computes it: the
/// first half up from `start`, the second half down from `end`.
fn torch_linspace(start: f64, end: f64, steps: usize) -> Vec<f32> {
    let (start, end) = (start as f32, end as f32);
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f32;
    (0..steps)
        .map(|i| {
            if i < steps / 2 {
                start + step * i as f32
            } else {
                end - step * (steps - i - 1) as f32
            }
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
            ..ModelConfig::paper(mixer, 12, 8, 2)
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

    /// PyTorch's float32 `linspace` values, printed by `torch.linspace(...).tolist()`.
    #[test]
    fn linspace_rounds_as_torch_does() {
        let target = 1e-2f64.ln();
        let d = torch_linspace(target / 1.5, target / 0.3, 8);
        // As bit patterns: the printed decimals carry more digits than an f32 holds.
        let torch: [f32; 8] = [
            0xc044_7cbd,
            0xc09a_6202,
            0xc0d2_85a6,
            0xc105_54a5,
            0xc121_6676,
            0xc13d_7848,
            0xc159_8a1a,
            0xc175_9bec,
        ]
        .map(f32::from_bits);
        assert_eq!(d, torch);
        assert_eq!(torch_linspace(0.0, 1.0, 3), [0.0, 0.5, 1.0]);
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
