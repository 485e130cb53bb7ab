//! Reading safetensors and loading reference-named weights into a mechlab model: the inverse of
//! [`super::safetensors::state_dict`], used to check mechlab against the PyTorch reference
//! fixtures (`tests/reference/make_fixtures.py`). Loading is strict ([`check_state_dict`]): a
//! dict that does not fit the model — missing, unexpected or mis-shaped tensors, another mixer's
//! names — is refused with every mismatch listed, never half-loaded.

use std::collections::{BTreeSet, HashMap};

use burn::module::Param;
use burn::tensor::{Tensor, TensorData, backend::Backend};

use super::names::{Layout, Slot, named_params};
use super::safetensors::state_dict;
use crate::model::{LanguageModel, MixerKind, ModelConfig};

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
    #[error(
        "the state dict does not fit this {mixer} model ({} problems{}):\n  {}",
        problems.len(),
        looks_like.map_or(String::new(), |m| format!("; its names are a {m} model's")),
        problems.join("\n  ")
    )]
    Mismatch {
        mixer: &'static str,
        /// Every mismatch, one line each: missing, unexpected and mis-shaped tensors.
        problems: Vec<String>,
        /// The mixer whose parameter names the dict has, when that is another one.
        looks_like: Option<&'static str>,
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
    let head = n
        .checked_add(8)
        .and_then(|end| bytes.get(8..end))
        .ok_or_else(|| bad("truncated header"))?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(head).map_err(|e| bad(&e.to_string()))?;
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

/// The stored tensor `name`, which must be f32 of exactly `shape`.
fn get<'t>(
    tensors: &'t HashMap<String, Stored>,
    name: &str,
    shape: &[usize],
) -> Result<&'t [f32], ImportError> {
    match tensors.get(name) {
        Some(Stored::F32 { shape: s, values }) if s.as_slice() == shape => Ok(values),
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

/// `param` replaced by the stored tensor of reference name `name` and layout `layout`.
fn load<B: Backend, const D: usize>(
    tensors: &HashMap<String, Stored>,
    name: &str,
    layout: &Layout,
    param: &mut Param<Tensor<B, D>>,
    device: &B::Device,
) -> Result<(), ImportError> {
    let dims = param.dims();
    let stored_shape: Vec<usize> = match layout {
        Layout::AsIs => dims.to_vec(),
        Layout::Transposed => dims.iter().rev().copied().collect(),
        Layout::Reshaped(shape) => shape.clone(),
    };
    let values = get(tensors, name, &stored_shape)?.to_vec();
    let t = match layout {
        Layout::Transposed => {
            let mut rev = dims;
            rev.reverse();
            Tensor::<B, D>::from_data(TensorData::new(values, rev), device).transpose()
        }
        _ => Tensor::<B, D>::from_data(TensorData::new(values, dims), device),
    };
    let require_grad = param.is_require_grad();
    *param = Param::from_tensor(t).set_require_grad(require_grad);
    Ok(())
}

/// Whether `tensors` is exactly a state dict of `model` (of kind `mixer`), in the reference's
/// names and PyTorch layout: every parameter present as f32 of its shape; the tied head
/// (`lm_head.weight`) and the modules' buffers optional (PyTorch lists them, `safetensors`'
/// `save_model` drops the tied copy) but of their shape when present; nothing else. Every
/// mismatch is listed; when the names are those of another mixer's model of the same sizes, the
/// error says which.
pub fn check_state_dict<B: Backend>(
    model: &LanguageModel<B>,
    mixer: MixerKind,
    tensors: &HashMap<String, Stored>,
) -> Result<(), ImportError> {
    let required: BTreeSet<String> = param_names(model, mixer);
    let mut problems = Vec::new();
    let mut known = BTreeSet::new();
    for entry in state_dict(model, mixer) {
        let shape = |s: &[usize]| format!("{s:?}");
        match tensors.get(&entry.name) {
            None if required.contains(&entry.name) => problems.push(format!(
                "missing: {} (f32 {})",
                entry.name,
                shape(&entry.shape)
            )),
            None => {}
            Some(Stored::F32 { shape: s, .. }) if *s == entry.shape => {}
            Some(Stored::F32 { shape: s, .. }) => problems.push(format!(
                "mis-shaped: {}: expected {}, found {}",
                entry.name,
                shape(&entry.shape),
                shape(s)
            )),
            Some(Stored::I64 { shape: s, .. }) => problems.push(format!(
                "mis-typed: {}: expected f32 {}, found i64 {}",
                entry.name,
                shape(&entry.shape),
                shape(s)
            )),
        }
        known.insert(entry.name);
    }
    let mut unexpected: Vec<&String> = tensors.keys().filter(|n| !known.contains(*n)).collect();
    unexpected.sort();
    problems.extend(unexpected.iter().map(|n| format!("unexpected: {n}")));
    if problems.is_empty() {
        return Ok(());
    }
    let names: BTreeSet<String> = tensors.keys().cloned().collect();
    let [vocab, d] = model.word_embeddings.weight.dims();
    let device = model.word_embeddings.weight.device();
    let looks_like = MixerKind::ALL
        .into_iter()
        .filter(|&other| other != mixer)
        .find(|&other| {
            ModelConfig::fitted(other, vocab, d, model.layers.len())
                .init::<B>(0, &device)
                .is_ok_and(|m| param_names(&m, other).is_subset(&names))
        })
        .map(MixerKind::name);
    Err(ImportError::Mismatch {
        mixer: mixer.name(),
        problems,
        looks_like,
    })
}

/// The reference names of `model`'s parameters.
fn param_names<B: Backend>(model: &LanguageModel<B>, mixer: MixerKind) -> BTreeSet<String> {
    let mut model = model.clone();
    named_params(&mut model, mixer)
        .into_iter()
        .map(|n| n.name)
        .collect()
}

/// Replaces every parameter of `model` with the tensor of the same reference name, after
/// [`check_state_dict`] found the dict to fit exactly.
pub fn load_state_dict<B: Backend>(
    mut model: LanguageModel<B>,
    mixer: MixerKind,
    tensors: &HashMap<String, Stored>,
    device: &B::Device,
) -> Result<LanguageModel<B>, ImportError> {
    check_state_dict(&model, mixer, tensors)?;
    for n in named_params(&mut model, mixer) {
        match n.slot {
            Slot::Vector(p) => load(tensors, &n.name, &n.layout, p, device)?,
            Slot::Matrix(p) => load(tensors, &n.name, &n.layout, p, device)?,
            Slot::Cube(p) => load(tensors, &n.name, &n.layout, p, device)?,
        }
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MixerKind, ModelConfig};
    use crate::report::export::safetensors::{encode, state_dict};
    use burn::backend::Flex;

    fn dict_of(mixer: MixerKind) -> (ModelConfig, HashMap<String, Stored>) {
        let cfg = ModelConfig {
            max_positions: 16,
            ..ModelConfig::fitted(mixer, 12, 8, 2)
        };
        let model = cfg.init::<Flex>(1, &Default::default()).unwrap();
        let tensors = read(&encode(&state_dict(&model, mixer), &[])).unwrap();
        (cfg, tensors)
    }

    #[test]
    fn a_dict_that_does_not_fit_is_refused_with_every_mismatch() {
        let (cfg, mut tensors) = dict_of(MixerKind::Attention);
        tensors.remove("backbone.layers.0.sequence_mixer.out_proj.bias");
        tensors.insert(
            "backbone.layers.0.extra.weight".into(),
            Stored::F32 {
                shape: vec![2],
                values: vec![0.0; 2],
            },
        );
        tensors.insert(
            "backbone.layers.1.norm1.weight".into(),
            Stored::F32 {
                shape: vec![7],
                values: vec![0.0; 7],
            },
        );
        // The tied head is optional: a dict saved without it still loads.
        tensors.remove("lm_head.weight");
        let device = Default::default();
        let model = cfg.init::<Flex>(2, &device).unwrap();
        let err = load_state_dict(model, MixerKind::Attention, &tensors, &device)
            .expect_err("refused")
            .to_string();
        assert!(err.contains("(3 problems)"), "{err}");
        for line in [
            "missing: backbone.layers.0.sequence_mixer.out_proj.bias (f32 [8])",
            "unexpected: backbone.layers.0.extra.weight",
            "mis-shaped: backbone.layers.1.norm1.weight: expected [8], found [7]",
        ] {
            assert!(err.contains(line), "{line} in {err}");
        }
    }

    #[test]
    fn another_mixers_dict_is_named() {
        let (_, tensors) = dict_of(MixerKind::Mamba);
        let (cfg, _) = dict_of(MixerKind::Hyena);
        let device = Default::default();
        let err = load_state_dict(
            cfg.init::<Flex>(0, &device).unwrap(),
            MixerKind::Hyena,
            &tensors,
            &device,
        )
        .expect_err("refused")
        .to_string();
        assert!(err.contains("this hyena model"), "{err}");
        assert!(err.contains("its names are a mamba model's"), "{err}");
    }

    #[test]
    fn export_then_import_is_the_identity() {
        for mixer in MixerKind::ALL {
            let cfg = ModelConfig {
                max_positions: 16,
                init_std: 0.3,
                ..ModelConfig::fitted(mixer, 12, 8, 2)
            };
            let device = Default::default();
            let source = cfg.init::<Flex>(1, &device).unwrap();
            let tensors = read(&encode(&state_dict(&source, mixer), &[])).unwrap();
            // A differently seeded model takes on every weight of the source.
            let loaded = load_state_dict(
                cfg.init::<Flex>(2, &device).unwrap(),
                mixer,
                &tensors,
                &device,
            )
            .unwrap();
            let names = |m: &LanguageModel<Flex>| {
                state_dict(m, mixer)
                    .into_iter()
                    .map(|e| (e.name, e.values))
                    .collect::<Vec<_>>()
            };
            assert_eq!(names(&loaded), names(&source), "{mixer:?}");
        }
    }
}
