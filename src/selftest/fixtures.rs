//! mechlab against the independent PyTorch implementation (`tests/reference/make_fixtures.py`):
//! each fixture holds a mixer's random weights, inputs, logits, loss and every gradient, exact
//! (float64) and as PyTorch float32 computes them. The model loads the weights by reference name
//! and must match within 1e-5 of each tensor's scale, or at least as closely as PyTorch float32
//! does (twice its largest error: some randomly drawn fixtures are ill-conditioned enough that
//! float32 itself cannot reach 1e-5). The fixtures are embedded, so a binary copied alone to a
//! GPU machine checks itself there.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use super::SelftestError;
use super::compare::{Compare, host};
use crate::model::kind::LongConv;
use crate::model::lm::cross_entropy;
use crate::model::ops::int_tensor;
use crate::model::{ConvKernel, LanguageModel, MixerKeys, MixerKind, ModelConfig, NoSites};
use crate::report::export::import::{Stored, load_state_dict, read};
use crate::report::export::param_entries;

/// The convolution a fixture's model is built with.
#[derive(Debug, Clone, Copy)]
pub enum Conv {
    /// The reference's defaults for the mixer.
    Default,
    /// Every layer's long implicit filter.
    Long,
    /// Every layer a short kernel of this many taps.
    Taps(usize),
}

/// One committed fixture.
pub struct Fixture {
    pub name: &'static str,
    pub mixer: MixerKind,
    pub conv: Conv,
    /// `model.heads` and `model.d_state` where the fixture sets them (Mamba-2's reference sizes
    /// do not fit its d_model of 8).
    pub heads: Option<usize>,
    pub d_state: Option<usize>,
    bytes: &'static [u8],
}

macro_rules! fixture {
    ($name:literal, $mixer:expr, $conv:expr) => {
        fixture!($name, $mixer, $conv, None, None)
    };
    ($name:literal, $mixer:expr, $conv:expr, $heads:expr, $d_state:expr) => {
        Fixture {
            name: $name,
            mixer: $mixer,
            conv: $conv,
            heads: $heads,
            d_state: $d_state,
            bytes: include_bytes!(concat!("../../tests/fixtures/", $name, ".safetensors")),
        }
    };
}

/// Every fixture `tests/reference/make_fixtures.py` writes.
pub static FIXTURES: [Fixture; 13] = [
    fixture!("attention", MixerKind::Attention, Conv::Default),
    fixture!("based", MixerKind::Based, Conv::Default),
    fixture!("based_long", MixerKind::Based, Conv::Long),
    fixture!("based_k1", MixerKind::Based, Conv::Taps(1)),
    fixture!("base_conv", MixerKind::BaseConv, Conv::Default),
    fixture!("h3", MixerKind::H3, Conv::Default),
    fixture!("hyena", MixerKind::Hyena, Conv::Default),
    fixture!("mamba", MixerKind::Mamba, Conv::Default),
    fixture!("mamba_conv2", MixerKind::Mamba, Conv::Taps(2)),
    fixture!("mamba_conv0", MixerKind::Mamba, Conv::Taps(0)),
    fixture!("delta_net", MixerKind::DeltaNet, Conv::Default),
    fixture!("gla", MixerKind::Gla, Conv::Default),
    fixture!("mamba2", MixerKind::Mamba2, Conv::Default, Some(2), Some(4)),
];

/// The fixture called `name`.
///
/// # Panics
/// When there is none: names come from [`FIXTURES`].
pub fn by_name(name: &str) -> &'static Fixture {
    FIXTURES
        .iter()
        .find(|f| f.name == name)
        .expect("a name from FIXTURES")
}

/// Replaces every parameter by its gradient, so `state_dict` names gradients like weights.
struct ToGrad<'g, B: AutodiffBackend> {
    grads: &'g B::Gradients,
}

impl<B: AutodiffBackend> ModuleMapper<B> for ToGrad<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let value = param.val();
        if !value.is_require_grad() {
            // Fixed parameters (BaseConv's positional features) have no gradient: NaN marks them.
            return Param::from_tensor(Tensor::from_inner(value.inner().full_like(f32::NAN)));
        }
        // A trained parameter outside the graph (Hyena's inert filter bias, which the reference
        // multiplies by 0) has gradient 0; the fixture then holds exact zeros for it.
        let grad = value
            .grad(self.grads)
            .unwrap_or_else(|| value.inner().zeros_like());
        Param::from_tensor(Tensor::from_inner(grad))
    }
}

fn f32s<'a>(t: &'a HashMap<String, Stored>, name: &str) -> Result<&'a [f32], String> {
    match t.get(name) {
        Some(Stored::F32 { values, .. }) => Ok(values),
        other => Err(format!("{name}: expected f32, found {other:?}")),
    }
}

fn i64s(t: &HashMap<String, Stored>, name: &str) -> Result<Vec<i64>, String> {
    match t.get(name) {
        Some(Stored::I64 { values, .. }) => Ok(values.clone()),
        other => Err(format!("{name}: expected i64, found {other:?}")),
    }
}

/// The tolerance of one fixture tensor: 1e-5 of its scale, or twice PyTorch float32's error.
fn tolerance(exact: &[f32], torch32: &[f32]) -> f64 {
    let scale = exact
        .iter()
        .fold(0f64, |m, v| m.max(f64::from(v.abs())))
        .max(1e-6);
    let torch_err = torch32
        .iter()
        .zip(exact)
        .fold(0f64, |m, (a, b)| m.max(f64::from((a - b).abs())));
    1e-5f64.max(2.0 * torch_err / scale)
}

/// Compares `ours` with the fixture's exact `name`, within the fixture's tolerance for it.
fn against(
    c: &mut Compare,
    t: &HashMap<String, Stored>,
    what: &str,
    name: &str,
    ours: &[f32],
) -> Result<(), String> {
    let exact = f32s(t, name)?;
    let torch32 = f32s(t, &format!("torch32.{name}"))?;
    c.tensor(what, ours, exact, tolerance(exact, torch32));
    Ok(())
}

/// Runs fixture `f` through mechlab's model on `device`: logits, loss, every gradient.
pub fn check<B: AutodiffBackend>(
    f: &Fixture,
    device: &B::Device,
) -> Result<Compare, SelftestError> {
    compare::<B>(f, device).map_err(|message| SelftestError::Setup {
        check: format!("fixture:{}", f.name),
        message,
    })
}

fn compare<B: AutodiffBackend>(f: &Fixture, device: &B::Device) -> Result<Compare, String> {
    let t = read(f.bytes).map_err(|e| e.to_string())?;
    let keys = MixerKeys {
        conv_kernel: match f.conv {
            Conv::Default => None,
            Conv::Long => Some(vec![ConvKernel::Long(LongConv::Long); 2]),
            Conv::Taps(k) => Some(vec![ConvKernel::Taps(k); 2]),
        },
        heads: f.heads,
        d_state: f.d_state,
    };
    let mixer = f.mixer.configure(&keys, 2).map_err(|p| format!("{p:?}"))?;
    let config = ModelConfig {
        max_positions: 16,
        init_std: 0.02,
        mixer,
        ..ModelConfig::fitted(f.mixer, 12, 8, 2)
    };
    let init = config.init::<B>(0, device).map_err(|e| e.to_string())?;
    // The reference module's own state dict (the fixture also holds inputs, outputs and
    // gradients under other prefixes), loaded strictly: every tensor, nothing else.
    let weights: HashMap<String, Stored> = t
        .iter()
        .filter(|(name, _)| name.starts_with("backbone.") || *name == "lm_head.weight")
        .map(|(name, stored)| (name.clone(), stored.clone()))
        .collect();
    let model: LanguageModel<B> =
        load_state_dict(init, f.mixer, &weights, device).map_err(|e| e.to_string())?;
    let tokens = int_tensor::<B, 2>(i64s(&t, "input.tokens")?, [2, 7], device);
    let flat: Vec<i64> = i64s(&t, "input.query")?
        .iter()
        .enumerate()
        .map(|(b, q)| b as i64 * 7 + q)
        .collect();

    let mut c = Compare::default();
    let r = model.residual(tokens, &mut NoSites);
    let logits = host(model.logits_all(r.clone()));
    against(&mut c, &t, "logits", "output.logits", &logits)?;
    let loss = cross_entropy(
        model.logits_at(r, int_tensor::<B, 1>(flat, [2], device)),
        int_tensor::<B, 1>(i64s(&t, "input.targets")?, [2], device),
    );
    against(&mut c, &t, "loss", "output.loss", &host(loss.clone()))?;

    let grads = loss.backward();
    let grad_model = model.clone().map(&mut ToGrad::<B> { grads: &grads });
    let mut compared = 0;
    for entry in param_entries(&grad_model, f.mixer) {
        let name = format!("grad.{}", entry.name);
        if !t.contains_key(&name) {
            // Not trained in the reference: it must not be trained here either.
            if !entry.values.iter().all(|v| v.is_nan()) {
                c.fail(&name, "fixed in the reference but trained by mechlab");
            }
            continue;
        }
        against(&mut c, &t, &name, &name, &entry.values)?;
        compared += 1;
    }
    let expected = t.keys().filter(|k| k.starts_with("grad.")).count();
    if compared != expected {
        c.fail(
            "gradients",
            &format!("{compared} compared, the fixture has {expected}"),
        );
    }
    Ok(c)
}
