//! Interchange interventions: properties that cannot hold by accident, and a direct recomputation.

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use mechlab::interp::{
    AblationConfig, AblationMode, Capture, Corruption, InterchangeConfig, Patch, PatchPath, ablate,
    interchange, interchange_with,
};
use mechlab::model::ops::int_tensor;
use mechlab::model::{LanguageModel, MixerKind, ModelConfig, NoSites, Site};
use mechlab::task::{ArConfig, ArQuery, Role, Split, TaskConfig};

type B = Flex;

fn task() -> ArConfig {
    ArConfig {
        num_kv: 16,
        pairs: 3,
        query: ArQuery::Key,
        prohibit: None,
    }
}

fn model() -> LanguageModel<B> {
    model_of(MixerKind::Attention)
}

fn model_of(mixer: MixerKind) -> LanguageModel<B> {
    deep_model_of(mixer, 2)
}

fn deep_model_of(mixer: MixerKind, layers: usize) -> LanguageModel<B> {
    ModelConfig {
        max_positions: 16,
        // A large init gives a model whose output depends strongly on every position.
        init_std: 0.5,
        ..ModelConfig::fitted(mixer, task().vocab_size(), 16, layers)
    }
    .init(11, &Default::default())
    .unwrap()
}

fn logits(
    m: &LanguageModel<B>,
    tokens: &[u32],
    sites: &mut dyn mechlab::model::Sites<B>,
) -> Vec<f32> {
    let s = task().seq_len();
    let b = tokens.len() / s;
    let device = Default::default();
    let t = int_tensor::<B, 2>(tokens.iter().map(|&x| x as i64).collect(), [b, s], &device);
    m.logits_all(m.residual(t, sites))
        .into_data()
        .to_vec()
        .unwrap()
}

fn full_mask(b: usize, s: usize) -> Tensor<B, 3> {
    Tensor::from_data(
        TensorData::new(vec![1f32; b * s], [b, s, 1]),
        &Default::default(),
    )
}

#[test]
fn patching_clean_activations_into_the_clean_run_changes_nothing() {
    let m = model();
    let data = task().generate(1, Split::Test, 4);
    let mut cap = Capture::default();
    let clean = logits(&m, &data.tokens, &mut cap);
    for layer in 0..2 {
        for site in Site::BLOCK {
            let mut patch = Patch {
                layer,
                site,
                mask_bs1: full_mask(4, data.seq_len),
                clean_bsd: cap.acts[&(layer, site)].clone(),
            };
            assert_eq!(
                logits(&m, &data.tokens, &mut patch),
                clean,
                "layer {layer} {site}"
            );
        }
    }
}

#[test]
fn patching_layer0_block_input_everywhere_restores_the_clean_output_exactly() {
    let m = model();
    let data = task().generate(2, Split::Test, 4);
    let mut cap = Capture::default();
    let clean = logits(&m, &data.tokens, &mut cap);
    let mut corrupted = data.tokens.clone();
    for i in 0..4 {
        corrupted[i * data.seq_len + data.position(i, Role::Key)] = 3 + ((i as u32 + 1) % 8);
    }
    assert_ne!(
        logits(&m, &corrupted, &mut NoSites),
        clean,
        "corruption must matter"
    );
    let mut patch = Patch {
        layer: 0,
        site: Site::BlockInput,
        mask_bs1: full_mask(4, data.seq_len),
        clean_bsd: cap.acts[&(0, Site::BlockInput)].clone(),
    };
    assert_eq!(logits(&m, &corrupted, &mut patch), clean);
}

fn grid(examples: usize) -> InterchangeConfig {
    InterchangeConfig {
        layers: vec![0, 1],
        sites: Site::BLOCK.to_vec(),
        corrupt: vec![Role::Key, Role::Value],
        patch_at: Role::ALL.to_vec(),
        examples,
        corruption: Corruption::Reference,
        seed: 5,
    }
}

/// Every site of `mixer`'s blocks, its own internal ones included (Mamba blocks have no MLP).
fn sites_of(mixer: MixerKind) -> Vec<Site> {
    Site::BLOCK
        .into_iter()
        .chain(Site::INTERNAL)
        .filter(|&s| mixer.info().has_site(s, mixer.info().default_mlp))
        .collect()
}

#[test]
fn patching_after_the_query_has_no_effect() {
    for mixer in MixerKind::ALL {
        patching_after_the_query_has_no_effect_for(mixer);
    }
}

fn patching_after_the_query_has_no_effect_for(mixer: MixerKind) {
    let m = model_of(mixer);
    let data = task().generate(3, Split::Test, 40);
    let sites = sites_of(mixer);
    let cfg = InterchangeConfig {
        sites: sites.clone(),
        ..grid(40)
    };
    // Full reruns: the cached path skips patches after the query on the strength of this very
    // property.
    let rows = interchange_with(
        &m,
        &TaskConfig::Ar(task()),
        &data,
        &cfg,
        &Default::default(),
        PatchPath::Naive,
    )
    .rows;
    assert_eq!(rows.len(), 2 * 2 * sites.len() * 5, "{mixer:?}");
    for r in rows.iter().filter(|r| r.patch_role == Role::Answer) {
        assert!((r.p_rest - r.p_corr).abs() < 1e-6, "{mixer:?} {r:?}");
        assert!(r.kl.abs() < 1e-6, "{mixer:?} {r:?}");
    }
    // …while patching the corrupted position itself at the model input restores everything.
    for r in rows
        .iter()
        .filter(|r| r.layer == 0 && r.site == Site::BlockInput && r.patch_role == r.corrupted_role)
    {
        assert!((r.p_rest - r.p_orig).abs() < 1e-6, "{mixer:?} {r:?}");
        assert!((r.attrib - 1.0).abs() < 1e-4, "{mixer:?} {r:?}");
    }
    // The corruption changed something, so the tests above are not vacuous.
    // (Logits, not probabilities: with this large init the softmax can saturate.)
    assert!(
        rows.iter()
            .any(|r| (r.logit_orig - r.logit_corr).abs() > 1e-3),
        "{mixer:?}: corruption changed nothing"
    );
}

/// Recomputes grid cells directly: full forward passes, no cache, no stacking. The cells cover
/// each way the cached path computes a patch: position-wise in a middle and in the last block,
/// a mixer rerun, a mixer-internal site.
#[test]
fn grid_cells_match_a_direct_recomputation() {
    for (layer, site, patch_role) in [
        (1, Site::MixerOutput, Role::Query),
        (0, Site::MixerOutput, Role::Value),
        (0, Site::MlpInput, Role::Query),
        (1, Site::BlockInput, Role::Value),
        (0, Site::AttnPattern, Role::Query),
        (1, Site::MixerInput, Role::Key),
    ] {
        grid_cell_matches_a_direct_recomputation(layer, site, patch_role);
    }
}

fn grid_cell_matches_a_direct_recomputation(layer: usize, site: Site, patch_role: Role) {
    let m = model();
    let task = task();
    let data = task.generate(4, Split::Test, 6);
    let cfg = InterchangeConfig {
        layers: vec![layer],
        sites: vec![site],
        corrupt: vec![Role::Key],
        patch_at: vec![patch_role],
        examples: 6,
        corruption: Corruption::Reference,
        seed: 9,
    };
    let row = interchange(
        &m,
        &TaskConfig::Ar(task.clone()),
        &data,
        &cfg,
        &Default::default(),
    )
    .remove(0);

    // Same corruption draws as the grid: one ChaCha stream per corrupted role.
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    rng.set_stream(100 + Role::Key as u64);
    let s = data.seq_len;
    let v = task.vocab_size();
    let (mut p_orig, mut p_corr, mut p_rest) = (0.0, 0.0, 0.0);
    let softmax = |row: &[f32], a: usize| {
        let max = row.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let z: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
        (row[a] as f64 - max).exp() / z
    };
    for i in 0..6 {
        let clean = data.example(i).to_vec();
        let (q, a) = (
            data.position(i, Role::Query),
            clean[data.position(i, Role::Answer)] as usize,
        );
        let mut corrupted = clean.clone();
        let k = data.position(i, Role::Key);
        corrupted[k] = mechlab::interp::corrupt::corrupt_token(
            &TaskConfig::Ar(task.clone()),
            Role::Key,
            clean[k],
            Corruption::Reference,
            &mut rng,
        );
        let mut cap = Capture::default();
        let lc = logits(&m, &clean, &mut cap);
        let lx = logits(&m, &corrupted, &mut NoSites);
        let mut mask = vec![0f32; s];
        mask[data.position(i, patch_role)] = 1.0;
        let mut patch = Patch {
            layer,
            site,
            mask_bs1: Tensor::from_data(TensorData::new(mask, [1, s, 1]), &Default::default()),
            clean_bsd: cap.acts[&(layer, site)].clone(),
        };
        let lp = logits(&m, &corrupted, &mut patch);
        p_orig += softmax(&lc[q * v..(q + 1) * v], a) / 6.0;
        p_corr += softmax(&lx[q * v..(q + 1) * v], a) / 6.0;
        p_rest += softmax(&lp[q * v..(q + 1) * v], a) / 6.0;
    }
    let cell = format!("{layer} {site} {patch_role:?}");
    assert!(
        (row.p_orig - p_orig).abs() < 1e-5,
        "{cell}: {row:?} vs {p_orig}"
    );
    assert!(
        (row.p_corr - p_corr).abs() < 1e-5,
        "{cell}: {row:?} vs {p_corr}"
    );
    assert!(
        (row.p_rest - p_rest).abs() < 1e-5,
        "{cell}: {row:?} vs {p_rest}"
    );
    assert!(
        (row.attrib - (p_rest - p_corr) / (p_orig - p_corr)).abs() < 1e-3,
        "{cell}"
    );
    // The patch moved the answer's probability, so agreement is not that of an unpatched run.
    assert!(
        (p_rest - p_corr).abs() > 1e-5,
        "{cell}: patch changed nothing"
    );
}

#[test]
fn cached_path_matches_the_naive_full_rerun_for_every_mixer() {
    for mixer in MixerKind::ALL {
        // Three layers, so that a patch reruns a middle block and then the readout-only last one.
        let m = deep_model_of(mixer, 3);
        let data = task().generate(6, Split::Test, 40);
        let cfg = InterchangeConfig {
            layers: vec![0, 1, 2],
            sites: sites_of(mixer),
            ..grid(40)
        };
        let run = |path| {
            interchange_with(
                &m,
                &TaskConfig::Ar(task()),
                &data,
                &cfg,
                &Default::default(),
                path,
            )
        };
        let (cached, naive) = (run(PatchPath::Cached), run(PatchPath::Naive));
        assert_eq!(cached.rows.len(), naive.rows.len());
        assert_eq!(cached.rows.len(), 2 * 3 * cfg.sites.len() * 5);
        let mut restored = 0;
        for (a, b) in cached.rows.iter().zip(&naive.rows) {
            assert_eq!(
                (a.layer, a.site, a.corrupted_role, a.patch_role),
                (b.layer, b.site, b.corrupted_role, b.patch_role)
            );
            for (x, y) in [
                (a.p_rest, b.p_rest),
                (a.logit_rest, b.logit_rest),
                (a.kl, b.kl),
                (a.p_corr, b.p_corr),
            ] {
                assert!((x - y).abs() < 1e-5, "{mixer:?}: {a:?} vs {b:?}");
            }
            restored += usize::from(a.kl > 1e-6);
        }
        // Many cells do change the output, so the agreement is not that of skipped rows.
        assert!(restored >= cached.rows.len() / 5, "{mixer:?}: {restored}");
        for (a, b) in cached.detail.iter().zip(&naive.detail) {
            assert!(
                (a.best_prob_diff - b.best_prob_diff).abs() < 1e-5,
                "{a:?} vs {b:?}"
            );
        }
    }
}

#[test]
fn detail_names_the_cell_with_the_largest_restoration() {
    let m = model();
    let data = task().generate(7, Split::Test, 10);
    let out = interchange_with(
        &m,
        &TaskConfig::Ar(task()),
        &data,
        &grid(10),
        &Default::default(),
        PatchPath::Cached,
    );
    assert_eq!(out.detail.len(), 10 * 2);
    for d in &out.detail {
        // Patching the corrupted position itself at the model input restores the clean answer,
        // so the best cell restores at least p_orig − p_corr.
        assert!(d.best_prob_diff >= (d.p_orig - d.p_corr) - 1e-6, "{d:?}");
    }
}

fn ablation(mode: AblationMode, examples: usize) -> AblationConfig {
    AblationConfig {
        layers: vec![0, 1],
        sites: Site::BLOCK.to_vec(),
        ablate_at: Role::ALL.to_vec(),
        examples,
        mode,
    }
}

#[test]
fn mean_ablation_over_one_example_is_the_identity() {
    let m = model();
    let data = task().generate(8, Split::Test, 1);
    let rows = ablate(
        &m,
        &data,
        &ablation(AblationMode::Mean, 1),
        &Default::default(),
    );
    assert_eq!(rows.len(), 2 * 6 * 5);
    for r in &rows {
        assert!(
            (r.p_abl - r.p_orig).abs() < 1e-6 && r.kl.abs() < 1e-6,
            "{r:?}"
        );
    }
}

#[test]
fn ablating_after_the_query_has_no_effect_and_before_it_does() {
    for mixer in MixerKind::ALL {
        let m = model_of(mixer);
        let data = task().generate(9, Split::Test, 24);
        for mode in [AblationMode::Zero, AblationMode::Mean] {
            let cfg = AblationConfig {
                sites: sites_of(mixer),
                ..ablation(mode, 24)
            };
            let rows = ablate(&m, &data, &cfg, &Default::default());
            for r in rows.iter().filter(|r| r.ablated_role == Role::Answer) {
                assert!(
                    r.prob_drop.abs() < 1e-6 && r.kl.abs() < 1e-6,
                    "{mixer:?} {r:?}"
                );
            }
            let at_query = rows
                .iter()
                .find(|r| {
                    r.layer == 0 && r.site == Site::BlockInput && r.ablated_role == Role::Query
                })
                .unwrap();
            assert!(
                at_query.kl > 1e-4,
                "{mixer:?} {mode:?}: ablating the query must matter: {at_query:?}"
            );
        }
    }
}

/// ATR: every role sits at a different position in each example, queries too, and rows are
/// right-padded to the longest; the cached path must still equal full reruns.
#[test]
fn cached_path_matches_the_naive_rerun_on_variable_length_atr() {
    use mechlab::task::AtrQuery;
    use mechlab::task::atr::AtrConfig;
    use mechlab::task::pcfg::GrammarConfig;
    let atr = AtrConfig {
        grammar: GrammarConfig::EASY,
        max_yield: 40,
        query: AtrQuery::Parent,
        unambiguous_queries: true,
        sibling_may_be_self: true,
        prohibit: None,
    };
    let data = atr.generate(8, Split::Test, 24);
    assert!(
        (0..data.len()).any(|i| data.length(i) < data.seq_len),
        "padded rows"
    );
    for mixer in [MixerKind::Attention, MixerKind::Mamba, MixerKind::Hyena] {
        let m = ModelConfig {
            max_positions: 64,
            init_std: 0.5,
            ..ModelConfig::fitted(mixer, atr.vocab_size(), 16, 2)
        }
        .init::<B>(2, &Default::default())
        .unwrap();
        let cfg = InterchangeConfig {
            sites: sites_of(mixer),
            ..grid(24)
        };
        let task = TaskConfig::Atr(atr.clone());
        let run = |path| interchange_with(&m, &task, &data, &cfg, &Default::default(), path).rows;
        let (cached, naive) = (run(PatchPath::Cached), run(PatchPath::Naive));
        assert_eq!(cached.len(), naive.len());
        for (a, b) in cached.iter().zip(&naive) {
            for (x, y) in [
                (a.p_rest, b.p_rest),
                (a.logit_rest, b.logit_rest),
                (a.kl, b.kl),
            ] {
                assert!((x - y).abs() < 1e-5, "{mixer:?}: {a:?} vs {b:?}");
            }
        }
    }
}
