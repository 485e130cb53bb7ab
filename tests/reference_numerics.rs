//! mechlab against an independent PyTorch implementation: `tests/reference/make_fixtures.py`
//! builds each mixer from the reference formulas, with random weights, and stores weights, inputs,
//! logits, loss and every gradient, exact (float64) and as PyTorch float32 computes them. mechlab
//! loads the weights by reference name and must match forward and backward within 1e-5 of each
//! tensor's scale, or at least as closely as PyTorch float32 does.

use std::collections::HashMap;

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use mechlab::model::kind::LongConv;
use mechlab::model::lm::cross_entropy;
use mechlab::model::ops::int_tensor;
use mechlab::model::{ConvKernel, LanguageModel, MixerKind, ModelConfig, NoSites};
use mechlab::report::export::import::{Stored, load_state_dict, read};
use mechlab::report::export::param_entries;

type B = Autodiff<Flex>;

fn fixture(name: &str) -> HashMap<String, Stored> {
    let path = format!(
        "{}/tests/fixtures/{name}.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    read(
        &std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}; run python tests/reference/make_fixtures.py")),
    )
    .unwrap()
}

fn f32s<'a>(t: &'a HashMap<String, Stored>, name: &str) -> &'a [f32] {
    match &t[name] {
        Stored::F32 { values, .. } => values,
        other => panic!("{name}: expected f32, found {other:?}"),
    }
}

fn i64s(t: &HashMap<String, Stored>, name: &str) -> Vec<i64> {
    match &t[name] {
        Stored::I64 { values, .. } => values.clone(),
        other => panic!("{name}: expected i64, found {other:?}"),
    }
}

/// mechlab's `ours` against the exact answer `exact` (computed in float64 by the fixture script):
/// within 1e-5 of the tensor's scale, or at least as close as PyTorch's own float32 run `torch32`
/// gets (twice its largest error). Element-wise relative error is meaningless where a value is
/// near zero by cancellation, hence the scale; some randomly drawn fixtures are ill-conditioned
/// enough that float32 itself cannot reach 1e-5, hence the second bound.
fn assert_close(what: &str, ours: &[f32], exact: &[f32], torch32: &[f32]) {
    assert_eq!(ours.len(), exact.len(), "{what}: length");
    let scale = exact.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let max_err = |xs: &[f32]| {
        xs.iter()
            .zip(exact)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
    };
    let torch_err = max_err(torch32);
    let bound = (1e-5 * scale).max(2.0 * torch_err);
    for (i, (a, b)) in ours.iter().zip(exact).enumerate() {
        assert!(
            (a - b).abs() <= bound,
            "{what}[{i}]: mechlab {a} vs exact {b} (scale {scale}, PyTorch float32 max error {torch_err})"
        );
    }
}

/// Replaces every parameter by its gradient, so `state_dict` names gradients like weights.
struct ToGrad<'g> {
    grads: &'g <B as AutodiffBackend>::Gradients,
}

impl ModuleMapper<B> for ToGrad<'_> {
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

fn check(name: &str, mixer: MixerKind) {
    check_with(name, mixer, Vec::new());
}

/// Compares fixture `name` with mechlab's `mixer` model, with the convolution per layer `conv`
/// (empty: the reference's defaults).
fn check_with(name: &str, mixer: MixerKind, conv: Vec<ConvKernel>) {
    let t = fixture(name);
    let device = Default::default();
    let config = ModelConfig {
        max_positions: 16,
        init_std: 0.02,
        conv,
        ..ModelConfig::paper(mixer, 12, 8, 2)
    };
    let model: LanguageModel<B> =
        load_state_dict(config.init(0, &device).unwrap(), mixer, &t, &device).unwrap();
    let tokens = int_tensor::<B, 2>(i64s(&t, "input.tokens"), [2, 7], &device);
    let query = i64s(&t, "input.query");
    let flat: Vec<i64> = query
        .iter()
        .enumerate()
        .map(|(b, q)| b as i64 * 7 + q)
        .collect();

    let r = model.residual(tokens, &mut NoSites);
    let logits: Vec<f32> = model.logits_all(r.clone()).into_data().to_vec().unwrap();
    assert_close(
        &format!("{name} logits"),
        &logits,
        f32s(&t, "output.logits"),
        f32s(&t, "torch32.output.logits"),
    );

    let loss = cross_entropy(
        model.logits_at(r, int_tensor::<B, 1>(flat, [2], &device)),
        int_tensor::<B, 1>(i64s(&t, "input.targets"), [2], &device),
    );
    let value: Vec<f32> = loss.clone().into_data().to_vec().unwrap();
    assert_close(
        &format!("{name} loss"),
        &value,
        f32s(&t, "output.loss"),
        f32s(&t, "torch32.output.loss"),
    );

    let grads = loss.backward();
    let grad_model = model.clone().map(&mut ToGrad { grads: &grads });
    let mut checked = 0;
    for entry in param_entries(&grad_model, mixer) {
        if !t.contains_key(&format!("grad.{}", entry.name)) {
            // Not trained in the reference: it must not be trained here either.
            assert!(
                entry.values.iter().all(|v| v.is_nan()),
                "{name}: {} is fixed in the reference but trained by mechlab",
                entry.name
            );
            continue;
        }
        assert_close(
            &format!("{name} grad.{}", entry.name),
            &entry.values,
            f32s(&t, &format!("grad.{}", entry.name)),
            f32s(&t, &format!("torch32.grad.{}", entry.name)),
        );
        checked += 1;
    }
    let expected = t.keys().filter(|k| k.starts_with("grad.")).count();
    assert_eq!(checked, expected, "{name}: gradients compared");
}

#[test]
fn attention_matches_pytorch_forward_and_gradients() {
    check("attention", MixerKind::Attention);
}

#[test]
fn based_matches_pytorch_forward_and_gradients() {
    check("based", MixerKind::Based);
}

#[test]
fn base_conv_matches_pytorch_forward_and_gradients() {
    check("base_conv", MixerKind::BaseConv);
}

#[test]
fn based_with_long_or_one_tap_convolution_matches_pytorch() {
    check_with(
        "based_long",
        MixerKind::Based,
        vec![ConvKernel::Long(LongConv::Long); 2],
    );
    check_with("based_k1", MixerKind::Based, vec![ConvKernel::Taps(1); 2]);
}

#[test]
fn mamba_matches_pytorch_forward_and_gradients_for_each_conv_width() {
    check("mamba", MixerKind::Mamba);
    check_with(
        "mamba_conv2",
        MixerKind::Mamba,
        vec![ConvKernel::Taps(2); 2],
    );
    check_with(
        "mamba_conv0",
        MixerKind::Mamba,
        vec![ConvKernel::Taps(0); 2],
    );
}

#[test]
fn hyena_matches_pytorch_forward_and_gradients() {
    check("hyena", MixerKind::Hyena);
}

#[test]
fn h3_matches_pytorch_forward_and_gradients() {
    check("h3", MixerKind::H3);
}
