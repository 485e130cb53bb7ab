//! The interchange grid on the device against the CPU's, for one model (the same seeded
//! weights on both): every cell's mean probabilities and logits of the clean answer, clean,
//! corrupted and restored, through both the cached path and the naive reruns.

use burn::tensor::backend::Backend;

use super::compare::Compare;
use crate::exec::device::CpuInference;
use crate::interp::{Corruption, InterchangeConfig, PatchPath, interchange_with};
use crate::model::{MixerKind, ModelConfig, Site};
use crate::task::{Role, Split, TaskConfig};

/// Float32 on both sides through different kernels, averaged over examples: 1e-5 of the scale.
const TOLERANCE: f64 = 1e-5;

/// Every number of the grid of `mixer`'s model on backend `B`, in cell order.
fn grid<B: Backend>(mixer: MixerKind, path: PatchPath, device: &B::Device) -> Vec<f32> {
    let task = super::tiny_ar();
    let data = task.generate(3, Split::Test, 16);
    let Ok(model) = ModelConfig {
        max_positions: 32,
        ..ModelConfig::fitted(mixer, task.vocab_size(), 16, 2)
    }
    .init::<B>(5, device) else {
        return Vec::new();
    };
    let cfg = InterchangeConfig {
        layers: vec![0, 1],
        sites: vec![Site::BlockInput, Site::MixerOutput, Site::BlockOutput],
        corrupt: vec![Role::Key, Role::Value],
        patch_at: Role::ALL.to_vec(),
        examples: 16,
        corruption: Corruption::Reference,
        seed: 1,
    };
    let out = interchange_with(&model, &TaskConfig::Ar(task), &data, &cfg, device, path);
    out.rows
        .iter()
        .flat_map(|r| {
            [
                r.p_orig,
                r.p_corr,
                r.p_rest,
                r.logit_orig,
                r.logit_corr,
                r.logit_rest,
            ]
            .map(|v| v as f32)
        })
        .collect()
}

pub fn check<B: Backend>(device: &B::Device) -> Compare {
    let mut c = Compare::default();
    for mixer in [MixerKind::Attention, MixerKind::Mamba, MixerKind::Hyena] {
        for (path, name) in [(PatchPath::Cached, "cached"), (PatchPath::Naive, "naive")] {
            let ours = grid::<B>(mixer, path, device);
            let cpu = grid::<CpuInference>(mixer, path, &Default::default());
            c.tensor(&format!("{} {name}", mixer.name()), &ours, &cpu, TOLERANCE);
        }
    }
    c
}
