//! `mechlab export weights` writes the state dict the reference's modules have, so PyTorch's
//! `load_state_dict(strict=True)` takes it: every name, shape and buffer, for every mixer and
//! ablation, against `tests/fixtures/state_dicts.json` (written down from the reference's module
//! code by `tests/reference/state_dicts.py`, which also checks that list against the paper's
//! parameter counts).

use std::collections::BTreeMap;

use burn::backend::Flex;
use burn::module::Module;
use mechlab::model::kind::LongConv;
use mechlab::model::{ConvKernel, MixerKeys, MixerKind, ModelConfig};
use mechlab::report::export::state_dict;
use serde_json::Value;

fn fixture() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/state_dicts.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The reference model `name` as a mechlab configuration.
fn config(name: &str, d: usize) -> ModelConfig {
    let (mixer, conv) = match name {
        "attention" => (MixerKind::Attention, vec![]),
        "based" => (MixerKind::Based, vec![]),
        "base_conv" => (MixerKind::BaseConv, vec![]),
        "h3" => (MixerKind::H3, vec![]),
        "hyena" => (MixerKind::Hyena, vec![]),
        "mamba" => (MixerKind::Mamba, vec![]),
        "based_long" => (MixerKind::Based, vec![ConvKernel::Long(LongConv::Long); 2]),
        "based_k1" => (MixerKind::Based, vec![ConvKernel::Taps(1); 2]),
        "mamba_conv0" => (MixerKind::Mamba, vec![ConvKernel::Taps(0); 2]),
        "mamba_conv2" => (MixerKind::Mamba, vec![ConvKernel::Taps(2); 2]),
        "delta_net" => (MixerKind::DeltaNet, vec![]),
        "gla" => (MixerKind::Gla, vec![]),
        "mamba2" => (MixerKind::Mamba2, vec![]),
        other => panic!("unknown fixture model {other}"),
    };
    let keys = MixerKeys {
        conv_kernel: (!conv.is_empty()).then_some(conv),
        // mamba_ssm cannot build Mamba-2 at d 16 (64-wide heads); state_dicts.py lists 4 heads.
        heads: (mixer == MixerKind::Mamba2 && d == 16).then_some(4),
        d_state: None,
    };
    ModelConfig {
        mixer: mixer
            .configure(&keys, 2)
            .expect("the fixture's settings are the mixer's"),
        ..ModelConfig::paper(mixer, 8196, d, 2)
    }
}

#[test]
fn exports_have_the_reference_state_dict_for_every_mixer_and_ablation() {
    let f = fixture();
    let models = f["models"].as_object().unwrap();
    assert_eq!(models.len(), 26, "13 models × 2 widths");
    for (key, expected) in models {
        let (name, d) = key.split_once('/').unwrap();
        let cfg = config(name, d.parse().unwrap());
        let model = cfg.init::<Flex>(0, &Default::default()).unwrap();
        let ours: BTreeMap<String, Vec<usize>> = state_dict(&model, cfg.kind())
            .into_iter()
            .map(|e| (e.name, e.shape))
            .collect();
        let theirs: BTreeMap<String, Vec<usize>> = expected["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let shape = e["shape"].as_array().unwrap();
                (
                    e["name"].as_str().unwrap().to_string(),
                    shape.iter().map(|x| x.as_u64().unwrap() as usize).collect(),
                )
            })
            .collect();
        let missing: Vec<_> = theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
        let unexpected: Vec<_> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
        assert!(
            missing.is_empty() && unexpected.is_empty(),
            "{key}: missing {missing:?}, unexpected {unexpected:?}"
        );
        for (name, shape) in &theirs {
            assert_eq!(&ours[name], shape, "{key}: shape of {name}");
        }
        // mechlab counts what it trains; the reference also counts Mamba's unused conv1d.
        let unused = if name == "mamba_conv0" {
            let di = 2 * cfg.d_model;
            2 * (di * 4 + di)
        } else {
            0
        };
        assert_eq!(cfg.reference_only_params(), unused, "{key}");
        assert_eq!(
            model.num_params() + unused,
            expected["params"].as_u64().unwrap() as usize,
            "{key}: parameter count"
        );
    }
}

#[test]
fn hyena_buffers_hold_the_reference_values() {
    let cfg = config("hyena", 16);
    let model = cfg.init::<Flex>(0, &Default::default()).unwrap();
    let sd = state_dict(&model, cfg.kind());
    let get = |n: &str| sd.iter().find(|e| e.name == n).unwrap().values.clone();
    let f = "backbone.layers.0.sequence_mixer.filter_fn";
    let t = get(&format!("{f}.pos_emb.t"));
    assert_eq!((t[0], t[1023]), (0.0, 1.0));
    assert!((t[512] - 512.0 / 1023.0).abs() < 1e-7);
    let freq = get(&format!("{f}.implicit_filter.1.freq"));
    assert_eq!(
        get(&format!("{f}.implicit_filter.3.freq")),
        freq,
        "one Sin, listed thrice"
    );
    assert_eq!(get(&format!("{f}.implicit_filter.5.freq")), freq);
    let deltas = get(&format!("{f}.modulation.deltas"));
    let target = 1e-2f64.ln();
    assert!((deltas[0] as f64 - target / 1.5).abs() < 1e-6);
    assert!((deltas[15] as f64 - target / 0.3).abs() < 1e-5);
}
