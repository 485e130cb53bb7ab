//! mechlab against an independent PyTorch implementation: `tests/reference/make_fixtures.py`
//! builds each mixer from the reference formulas, with random weights, and stores weights, inputs,
//! logits, loss and every gradient. mechlab loads the weights by reference name and must match
//! forward and backward within 1e-5 relative (fp32).

use std::collections::HashMap;

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use mechlab::model::lm::{cross_entropy, int_tensor};
use mechlab::model::{LanguageModel, MixerKind, ModelConfig, NoSites};
use mechlab::report::export::import::{Stored, load_state_dict, read};
use mechlab::report::export::state_dict;

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

fn assert_close(what: &str, ours: &[f32], reference: &[f32]) {
    assert_eq!(ours.len(), reference.len(), "{what}: length");
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        // 1e-5 relative to the tensor's scale: element-wise relative error is meaningless where a
        // value is near zero by cancellation.
        assert!(
            (a - b).abs() <= 1e-5 * scale,
            "{what}[{i}]: mechlab {a} vs PyTorch {b} (scale {scale})"
        );
    }
}

/// Replaces every parameter by its gradient, so `state_dict` names gradients like weights.
struct ToGrad<'g> {
    grads: &'g <B as AutodiffBackend>::Gradients,
}

impl ModuleMapper<B> for ToGrad<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let grad = param
            .val()
            .grad(self.grads)
            .expect("every parameter has a gradient");
        Param::from_tensor(Tensor::from_inner(grad))
    }
}

fn check(name: &str, mixer: MixerKind) {
    let t = fixture(name);
    let device = Default::default();
    let config = ModelConfig {
        max_positions: 16,
        init_std: 0.02,
        ..ModelConfig::paper(mixer, 12, 8, 2)
    };
    let model: LanguageModel<B> =
        load_state_dict(config.init(0, &device).unwrap(), &t, &device).unwrap();
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
    );

    let loss = cross_entropy(
        model.logits_at(r, int_tensor::<B, 1>(flat, [2], &device)),
        int_tensor::<B, 1>(i64s(&t, "input.targets"), [2], &device),
    );
    let value: Vec<f32> = loss.clone().into_data().to_vec().unwrap();
    assert_close(&format!("{name} loss"), &value, f32s(&t, "output.loss"));

    let grads = loss.backward();
    let grad_model = model.clone().map(&mut ToGrad { grads: &grads });
    let mut checked = 0;
    for entry in state_dict(&grad_model) {
        if entry.name == "lm_head.weight" {
            continue; // tied: the same tensor as the word embedding
        }
        assert_close(
            &format!("{name} grad.{}", entry.name),
            &entry.values,
            f32s(&t, &format!("grad.{}", entry.name)),
        );
        checked += 1;
    }
    assert!(checked >= 20, "{name}: only {checked} gradients compared");
}

#[test]
fn attention_matches_pytorch_forward_and_gradients() {
    check("attention", MixerKind::Attention);
}

#[test]
fn based_matches_pytorch_forward_and_gradients() {
    check("based", MixerKind::Based);
}
