//! Reading safetensors and loading reference-named weights into a mechlab model: the inverse of
//! [`super::safetensors::state_dict`], used to check mechlab against the PyTorch reference
//! fixtures (`tests/reference/make_fixtures.py`).

use std::collections::HashMap;

use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Tensor, TensorData, backend::Backend};

use crate::model::LanguageModel;
use crate::model::mixer::Mixer;

/// A tensor read from a safetensors file.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    F32 { shape: Vec<usize>, values: Vec<f32> },
    I64 { shape: Vec<usize>, values: Vec<i64> },
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not a safetensors file: {0}")]
    Format(String),
    #[error("tensor {0} is missing")]
    Missing(String),
    #[error("tensor {name}: expected shape {expected:?} (f32), found {found:?}")]
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
}

/// Parses every tensor of a safetensors file (F32 and I64 only).
pub fn read(bytes: &[u8]) -> Result<HashMap<String, Stored>, ImportError> {
    let bad = |m: &str| ImportError::Format(m.to_string());
    let n = u64::from_le_bytes(
        bytes
            .get(..8)
            .ok_or_else(|| bad("too short"))?
            .try_into()
            .expect("8 bytes"),
    ) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes.get(8..8 + n).ok_or_else(|| bad("truncated header"))?)
            .map_err(|e| bad(&e.to_string()))?;
    let data = &bytes[8 + n..];
    let mut out = HashMap::new();
    for (name, info) in header {
        if name == "__metadata__" {
            continue;
        }
        let shape: Vec<usize> =
            serde_json::from_value(info["shape"].clone()).map_err(|e| bad(&e.to_string()))?;
        let [start, end]: [usize; 2] = serde_json::from_value(info["data_offsets"].clone())
            .map_err(|e| bad(&e.to_string()))?;
        let raw = data
            .get(start..end)
            .ok_or_else(|| bad("data offsets out of range"))?;
        let stored = match info["dtype"].as_str() {
            Some("F32") => Stored::F32 {
                shape,
                values: raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
                    .collect(),
            },
            Some("I64") => Stored::I64 {
                shape,
                values: raw
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8")))
                    .collect(),
            },
            other => return Err(bad(&format!("{name}: unsupported dtype {other:?}"))),
        };
        out.insert(name, stored);
    }
    Ok(out)
}

struct Loader<'a, B: Backend> {
    tensors: &'a HashMap<String, Stored>,
    device: &'a B::Device,
}

impl<B: Backend> Loader<'_, B> {
    fn get<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<B, D>, ImportError> {
        match self.tensors.get(name) {
            Some(Stored::F32 { shape: s, values }) if s.as_slice() == shape.as_slice() => Ok(
                Tensor::from_data(TensorData::new(values.clone(), shape), self.device),
            ),
            Some(Stored::F32 { shape: s, .. } | Stored::I64 { shape: s, .. }) => {
                Err(ImportError::Shape {
                    name: name.to_string(),
                    expected: shape.to_vec(),
                    found: s.clone(),
                })
            }
            None => Err(ImportError::Missing(name.to_string())),
        }
    }

    /// PyTorch `[out, in]` into burn's `[in, out]`.
    fn linear(&self, prefix: &str, l: &mut Linear<B>) -> Result<(), ImportError> {
        let [d_in, d_out] = l.weight.dims();
        l.weight = Param::from_tensor(
            self.get(&format!("{prefix}.weight"), [d_out, d_in])?
                .transpose(),
        );
        if l.bias.is_some() {
            l.bias = Some(Param::from_tensor(
                self.get(&format!("{prefix}.bias"), [d_out])?,
            ));
        }
        Ok(())
    }

    fn norm(&self, prefix: &str, n: &mut LayerNorm<B>) -> Result<(), ImportError> {
        let [d] = n.gamma.dims();
        n.gamma = Param::from_tensor(self.get(&format!("{prefix}.weight"), [d])?);
        if n.beta.is_some() {
            n.beta = Some(Param::from_tensor(
                self.get(&format!("{prefix}.bias"), [d])?,
            ));
        }
        Ok(())
    }
}

/// Replaces every parameter of `model` with the tensor of the same reference name.
pub fn load_state_dict<B: Backend>(
    mut model: LanguageModel<B>,
    tensors: &HashMap<String, Stored>,
    device: &B::Device,
) -> Result<LanguageModel<B>, ImportError> {
    let load = Loader::<B> { tensors, device };
    let [v, d] = model.word_embeddings.weight.dims();
    model.word_embeddings.weight =
        Param::from_tensor(load.get("backbone.embeddings.word_embeddings.weight", [v, d])?);
    if let Some(pos) = &mut model.position_embeddings {
        let [rows, _] = pos.weight.dims();
        pos.weight = Param::from_tensor(
            load.get("backbone.embeddings.position_embeddings.weight", [rows, d])?,
        );
    }
    for (l, block) in model.layers.iter_mut().enumerate() {
        let p = format!("backbone.layers.{l}");
        load.norm(&format!("{p}.norm1"), &mut block.norm1)?;
        let m = format!("{p}.sequence_mixer");
        match &mut block.mixer {
            Mixer::Attention(a) => {
                load.linear(&format!("{m}.Wqkv"), &mut a.wqkv)?;
                load.linear(&format!("{m}.out_proj"), &mut a.out_proj)?;
            }
            Mixer::BaseConv(c) => {
                load.linear(&format!("{m}.projection"), &mut c.projection)?;
                let [d, k] = c.conv_weight.dims();
                c.conv_weight = Param::from_tensor(
                    load.get::<3>(&format!("{m}.conv.conv.weight"), [d, 1, k])?
                        .reshape([d, k]),
                );
                c.conv_bias = Param::from_tensor(load.get(&format!("{m}.conv.conv.bias"), [d])?);
            }
            Mixer::BasedAttention(a) => {
                for (name, lin) in [
                    ("proj_q", &mut a.proj_q),
                    ("proj_k", &mut a.proj_k),
                    ("proj_v", &mut a.proj_v),
                    ("proj_o", &mut a.proj_o),
                ] {
                    load.linear(&format!("{m}.{name}"), lin)?;
                }
            }
        }
        if let (Some(norm2), Some(mlp)) = (&mut block.norm2, &mut block.mlp) {
            load.norm(&format!("{p}.norm2"), norm2)?;
            load.linear(&format!("{p}.state_mixer.fc1"), &mut mlp.fc1)?;
            load.linear(&format!("{p}.state_mixer.fc2"), &mut mlp.fc2)?;
        }
    }
    load.norm("backbone.ln_f", &mut model.ln_f)?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MixerKind, ModelConfig};
    use crate::report::export::safetensors::{encode, state_dict};
    use burn::backend::Flex;

    #[test]
    fn export_then_import_is_the_identity() {
        for mixer in [MixerKind::Attention, MixerKind::Based] {
            let cfg = ModelConfig {
                max_positions: 16,
                init_std: 0.3,
                ..ModelConfig::paper(mixer, 12, 8, 2)
            };
            let device = Default::default();
            let source = cfg.init::<Flex>(1, &device).unwrap();
            let tensors = read(&encode(&state_dict(&source), &[])).unwrap();
            // A differently seeded model takes on every weight of the source.
            let loaded =
                load_state_dict(cfg.init::<Flex>(2, &device).unwrap(), &tensors, &device).unwrap();
            let names = |m: &LanguageModel<Flex>| {
                state_dict(m)
                    .into_iter()
                    .map(|e| (e.name, e.values))
                    .collect::<Vec<_>>()
            };
            assert_eq!(names(&loaded), names(&source), "{mixer:?}");
        }
    }
}
