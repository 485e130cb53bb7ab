//! Autodiff gradients of the whole model against central finite differences: an independent
//! check of every backward pass the training loop relies on (embedding, positions, LayerNorm,
//! attention, GELU MLP, the gathered tied head and the cross-entropy).

use burn::backend::{Autodiff, Flex};
use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use mechlab::model::lm::cross_entropy;
use mechlab::model::mixer::Mixer;
use mechlab::model::ops::int_tensor;
use mechlab::model::{LanguageModel, MixerKind, ModelConfig, NoSites};

type B = Autodiff<Flex>;

fn loss(model: &LanguageModel<B>) -> Tensor<B, 1> {
    let device = Default::default();
    let tokens = int_tensor::<B, 2>(vec![1, 4, 7, 5, 2, 1, 3, 8, 6, 2], [2, 5], &device);
    let r = model.residual(tokens, &mut NoSites);
    let logits = model.logits_at(r, int_tensor::<B, 1>(vec![3, 7], [2], &device));
    cross_entropy(logits, int_tensor::<B, 1>(vec![7, 3], [2], &device))
}

fn value(model: &LanguageModel<B>) -> f64 {
    loss(model).into_scalar() as f64
}

/// Reads one parameter tensor, or writes a replacement, for finite differences.
type Access = (
    &'static str,
    fn(&LanguageModel<B>) -> Tensor<B, 2>,
    fn(&mut LanguageModel<B>, Tensor<B, 2>),
);

/// Compares autodiff with central differences on a sample of each parameter's entries.
fn check(model: &mut LanguageModel<B>, params: &[Access]) {
    let device = Default::default();
    let grads = loss(model).backward();
    for &(name, get, set) in params {
        let base = get(model);
        let [rows, cols] = base.dims();
        let analytic: Vec<f32> = base
            .grad(&grads)
            .expect("gradient")
            .into_data()
            .to_vec()
            .unwrap();
        let values: Vec<f32> = base.clone().into_data().to_vec().unwrap();
        let mut checked = 0;
        for idx in (0..rows * cols).step_by(7).take(12) {
            let h = 1e-2f32;
            let mut shifted = |delta: f32| {
                let mut v = values.clone();
                v[idx] += delta;
                set(
                    model,
                    Tensor::from_data(TensorData::new(v, [rows, cols]), &device),
                );
                value(model)
            };
            let numeric = (shifted(h) - shifted(-h)) / (2.0 * h as f64);
            set(model, base.clone().detach().require_grad());
            let a = analytic[idx] as f64;
            let tol = 2e-3 + 2e-2 * numeric.abs().max(a.abs());
            assert!(
                (a - numeric).abs() <= tol,
                "{name}[{idx}]: autodiff {a} vs finite difference {numeric}"
            );
            checked += (a.abs() > 1e-4) as usize;
        }
        assert!(
            checked > 0,
            "{name}: every sampled gradient was ~0, the check proves nothing"
        );
    }
}

fn wqkv(m: &LanguageModel<B>) -> &burn::nn::Linear<B> {
    let Mixer::Attention(a) = &m.layers[1].mixer else {
        panic!("attention model")
    };
    &a.wqkv
}

#[test]
fn autodiff_gradients_match_finite_differences() {
    let device = Default::default();
    let mut model = ModelConfig {
        max_positions: 8,
        // Larger than the reference so every path carries a gradient well above f32 noise.
        init_std: 0.5,
        ..ModelConfig::paper(MixerKind::Attention, 10, 8, 2)
    }
    .init::<B>(3, &device)
    .unwrap();

    let params: [Access; 4] = [
        (
            "word_embeddings",
            |m| m.word_embeddings.weight.val(),
            |m, t| m.word_embeddings.weight = Param::from_tensor(t),
        ),
        (
            "position_embeddings",
            |m| m.position_embeddings.as_ref().unwrap().weight.val(),
            |m, t| m.position_embeddings.as_mut().unwrap().weight = Param::from_tensor(t),
        ),
        (
            "layers.1.wqkv",
            |m| wqkv(m).weight.val(),
            |m, t| {
                let Mixer::Attention(a) = &mut m.layers[1].mixer else {
                    unreachable!()
                };
                a.wqkv.weight = Param::from_tensor(t);
            },
        ),
        (
            "layers.0.fc1",
            |m| m.layers[0].mlp.as_ref().unwrap().fc1.weight.val(),
            |m, t| m.layers[0].mlp.as_mut().unwrap().fc1.weight = Param::from_tensor(t),
        ),
    ];
    check(&mut model, &params);
}

#[test]
fn based_gradients_match_finite_differences() {
    let device = Default::default();
    let mut model = ModelConfig {
        max_positions: 8,
        init_std: 0.5,
        ..ModelConfig::paper(MixerKind::Based, 10, 8, 2)
    }
    .init::<B>(4, &device)
    .unwrap();
    let params: [Access; 3] = [
        (
            "layers.0.conv_weight",
            |m| conv(m).conv_weight.val(),
            |m, t| {
                let Mixer::BaseConv(c) = &mut m.layers[0].mixer else {
                    unreachable!()
                };
                c.conv_weight = Param::from_tensor(t);
            },
        ),
        (
            "layers.0.projection",
            |m| conv(m).projection.weight.val(),
            |m, t| {
                let Mixer::BaseConv(c) = &mut m.layers[0].mixer else {
                    unreachable!()
                };
                c.projection.weight = Param::from_tensor(t);
            },
        ),
        (
            "layers.1.proj_k",
            |m| based(m).proj_k.weight.val(),
            |m, t| {
                let Mixer::BasedAttention(a) = &mut m.layers[1].mixer else {
                    unreachable!()
                };
                a.proj_k.weight = Param::from_tensor(t);
            },
        ),
    ];
    check(&mut model, &params);
}

fn conv(m: &LanguageModel<B>) -> &mechlab::model::base_conv::BaseConv<B> {
    let Mixer::BaseConv(c) = &m.layers[0].mixer else {
        panic!("layer 0 of based is BaseConv")
    };
    c
}

fn based(m: &LanguageModel<B>) -> &mechlab::model::based::BasedAttention<B> {
    let Mixer::BasedAttention(a) = &m.layers[1].mixer else {
        panic!("layer 1 of based is linear attention")
    };
    a
}
