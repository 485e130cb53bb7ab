//! Variable-length batches: right padding never changes the logits at an example's real
//! positions, for every mixer (all of them are causal, which is what makes padding invisible).

use burn::backend::Flex;
use mechlab::model::ops::int_tensor;
use mechlab::model::{MixerKind, ModelConfig, NoSites};
use mechlab::task::atr::AtrConfig;
use mechlab::task::pcfg::GrammarConfig;
use mechlab::task::{AtrQuery, Split};

type B = Flex;

fn task() -> AtrConfig {
    AtrConfig {
        grammar: GrammarConfig::EASY,
        max_yield: 60,
        query: AtrQuery::Parent,
        unambiguous_queries: true,
        sibling_may_be_self: true,
        prohibit: None,
    }
}

#[test]
fn padding_never_changes_logits_at_real_positions() {
    let data = task().generate(2, Split::Test, 12);
    let (b, s) = (data.len(), data.seq_len);
    assert!(
        (0..b).any(|i| data.length(i) < s),
        "the batch must contain padded examples"
    );
    let device = Default::default();
    for mixer in MixerKind::ALL {
        let model = ModelConfig {
            max_positions: 128,
            init_std: 0.3,
            ..ModelConfig::fitted(mixer, task().vocab_size(), 16, 2)
        }
        .init::<B>(3, &device)
        .unwrap();
        let tokens: Vec<i64> = data.tokens.iter().map(|&t| t as i64).collect();
        let padded =
            model.logits_all(model.residual(int_tensor(tokens, [b, s], &device), &mut NoSites));
        let padded: Vec<f32> = padded.into_data().to_vec().unwrap();
        let v = task().vocab_size();
        for i in 0..b {
            let n = data.length(i);
            let alone: Vec<i64> = data.example(i)[..n].iter().map(|&t| t as i64).collect();
            let alone: Vec<f32> = model
                .logits_all(model.residual(int_tensor(alone, [1, n], &device), &mut NoSites))
                .into_data()
                .to_vec()
                .unwrap();
            for t in 0..n {
                for k in 0..v {
                    let (x, y) = (padded[(i * s + t) * v + k], alone[t * v + k]);
                    assert!(
                        (x - y).abs() <= 1e-4 * y.abs().max(1.0),
                        "{mixer:?} example {i} position {t}: padded {x} vs alone {y}"
                    );
                }
            }
        }
    }
}
