//! Training behaviour a user relies on: it learns, it resumes exactly, it reports divergence.

use burn::backend::{Autodiff, Flex};
use mechlab::model::{MixerKeys, MixerKind, ModelConfig};
use mechlab::store::checkpoint::{decode, encode};
use mechlab::task::{ArConfig, ArQuery, Dataset, Split};
use mechlab::train::{
    Checkpoint, Checkpointer, Control, MetricRow, NoCheckpoints, Observer, Schedule, ScheduleKind,
    TrainConfig, TrainError, TrainOutcome, train,
};

type B = Autodiff<Flex>;

fn task() -> ArConfig {
    ArConfig {
        num_kv: 16,
        pairs: 2,
        query: ArQuery::Key,
        prohibit: None,
    }
}

fn model() -> ModelConfig {
    ModelConfig {
        max_positions: 64,
        init_std: 0.02,
        ..ModelConfig::paper(MixerKind::Attention, task().vocab_size(), 32, 2)
    }
}

fn config(steps: usize, lr: f64) -> TrainConfig {
    TrainConfig {
        batch_size: 32,
        steps,
        lr,
        weight_decay: 0.0,
        betas: [0.9, 0.999],
        eps: 1e-8,
        schedule: Schedule {
            kind: ScheduleKind::Cosine,
            warmup: 0.1,
        },
        eval_every: 50,
        checkpoint_every: 40,
        keep_weights_every: None,
    }
}

struct StopAt(Option<usize>);

impl Observer for StopAt {
    fn on_step(&mut self, step: usize, _: usize, _: f32) -> Control {
        if Some(step) == self.0 {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

#[derive(Default)]
struct Memory(Option<Checkpoint>);

impl Checkpointer for Memory {
    fn load(&mut self) -> Result<Option<Checkpoint>, Box<dyn std::error::Error + Send + Sync>> {
        // Through bytes, as on disk.
        Ok(self.0.as_ref().map(|c| decode(&encode(c)).unwrap()))
    }
    fn save(&mut self, c: &Checkpoint) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.0 = Some(c.clone());
        Ok(())
    }
}

fn data() -> (Dataset, Dataset) {
    (
        task().generate(1, Split::Train, 4096),
        task().generate(1, Split::Test, 256),
    )
}

fn final_metric(rows: &[MetricRow], split: &str, metric: &str) -> f64 {
    rows.iter()
        .rev()
        .find(|r| r.split == split && r.metric == metric)
        .unwrap()
        .value
}

fn finished(outcome: TrainOutcome<B>) -> Vec<MetricRow> {
    match outcome {
        TrainOutcome::Finished { metrics, .. } => metrics,
        TrainOutcome::Stopped { step } => panic!("stopped at {step}"),
    }
}

/// The seed of every model's initial weights here.
const SEED: u64 = 5;

/// The attention model of [`model`], freshly initialised.
fn fresh() -> mechlab::model::LanguageModel<B> {
    model().init(SEED, &Default::default()).unwrap()
}

/// Trains without checkpoints or interruption, evaluating on `test_set`.
fn train_to_end(
    model: &ModelConfig,
    seed: u64,
    cfg: &TrainConfig,
    train_set: &Dataset,
    test_set: &Dataset,
) -> Vec<MetricRow> {
    finished(
        train::<B>(
            model.init(seed, &Default::default()).unwrap(),
            cfg,
            train_set,
            &[("test", test_set)],
            &Default::default(),
            &mut NoCheckpoints,
            &mut StopAt(None),
        )
        .unwrap(),
    )
}

/// The first recorded loss, then the final test accuracy and loss.
fn learning(metrics: &[MetricRow]) -> (f64, f64, f64) {
    let first = metrics.iter().find(|r| r.metric == "loss").unwrap().value;
    (
        first,
        final_metric(metrics, "test", "accuracy"),
        final_metric(metrics, "test", "loss"),
    )
}

#[test]
fn tiny_model_learns_recall_far_above_chance() {
    let (train_set, test_set) = data();
    let metrics = train_to_end(&model(), SEED, &config(300, 3e-3), &train_set, &test_set);
    let (first, acc, loss) = learning(&metrics);
    // Chance is 1/20 over the vocabulary and 1/8 over the value tokens. A model that has learned
    // the task's structure (answer with a value from the context) reaches 1/2 with 2 pairs; the
    // induction solution above that forms much later (see README), so this asserts the former.
    assert!(acc > 0.4, "test accuracy {acc}");
    assert!(loss < 0.5 * first, "loss {first} -> {loss}");
}

#[test]
fn resumed_run_matches_uninterrupted_run_exactly() {
    let (train_set, test_set) = data();
    let evals = [("test", &test_set)];
    let device = Default::default();
    let full = finished(
        train::<B>(
            fresh(),
            &config(120, 3e-3),
            &train_set,
            &evals,
            &device,
            &mut NoCheckpoints,
            &mut StopAt(None),
        )
        .unwrap(),
    );

    let mut store = Memory::default();
    let stopped = train::<B>(
        fresh(),
        &config(120, 3e-3),
        &train_set,
        &evals,
        &device,
        &mut store,
        &mut StopAt(Some(70)),
    )
    .unwrap();
    assert!(matches!(stopped, TrainOutcome::Stopped { step: 70 }));
    let resumed = finished(
        train::<B>(
            fresh(),
            &config(120, 3e-3),
            &train_set,
            &evals,
            &device,
            &mut store,
            &mut StopAt(None),
        )
        .unwrap(),
    );
    assert_eq!(full, resumed);
}

#[test]
fn nan_loss_is_reported_as_divergence_with_its_step() {
    let (train_set, test_set) = data();
    let err = train::<B>(
        fresh(),
        &config(50, f64::NAN),
        &train_set,
        &[("test", &test_set)],
        &Default::default(),
        &mut NoCheckpoints,
        &mut StopAt(None),
    )
    .err()
    .expect("diverges");
    assert!(matches!(err, TrainError::Diverged { step: 1, .. }), "{err}");
}

/// Based (short convolution + linear attention) learns the lookup itself, far beyond the
/// "some in-context value" plateau, on the quickstart's task (reference §5: Based solves AR).
#[test]
fn based_learns_associative_recall_beyond_the_plateau() {
    let task = ArConfig {
        num_kv: 64,
        pairs: 4,
        query: ArQuery::Key,
        prohibit: None,
    };
    let model = ModelConfig {
        max_positions: 64,
        init_std: 0.02,
        ..ModelConfig::paper(MixerKind::Based, task.vocab_size(), 64, 2)
    };
    // The quickstart's schedule: the transition's timing depends on it (in 2,000 steps the cosine
    // can decay the rate before the transition; 3,000 leave room).
    let mut cfg = config(3000, 1e-3);
    cfg.eval_every = 3000;
    let train_set = task.generate(42, Split::Train, 64_000);
    let test_set = task.generate(42, Split::Test, 320);
    let metrics = train_to_end(&model, 42, &cfg, &train_set, &test_set);
    let acc = final_metric(&metrics, "test", "accuracy");
    // The plateau is 1/4 (4 pairs); recall by lookup reaches it far above.
    assert!(acc > 0.9, "test accuracy {acc}");
}

#[test]
fn every_other_mixer_learns_far_above_chance() {
    // Same task and budget as `tiny_model_learns_recall_far_above_chance`: chance is 1/8 over the
    // value tokens, and answering with one of the 2 in-context values gives 1/2. The paper's
    // point is that these mixers rarely go beyond that plateau, so this asserts the structure
    // is learned, not recall. BaseConv needs a larger step size to leave chance in 300 steps.
    let (train_set, test_set) = data();
    for (mixer, lr) in [
        (MixerKind::BaseConv, 1e-2),
        (MixerKind::H3, 3e-3),
        (MixerKind::Hyena, 3e-3),
        (MixerKind::Mamba, 3e-3),
    ] {
        let model = ModelConfig {
            max_positions: 64,
            init_std: 0.02,
            ..ModelConfig::paper(mixer, task().vocab_size(), 32, 2)
        };
        let metrics = train_to_end(&model, SEED, &config(300, lr), &train_set, &test_set);
        let (first, acc, loss) = learning(&metrics);
        assert!(acc > 0.35, "{mixer:?}: test accuracy {acc}");
        assert!(loss < 0.5 * first, "{mixer:?}: loss {first} -> {loss}");
    }
}

/// DeltaNet (beyond the paper's zoo) is a recall architecture: on the same task and budget as
/// the others it goes far beyond the "one of the 2 in-context values" plateau of 1/2, to the
/// lookup itself (measured: accuracy 1.0, loss 3.0 → 0.03, 5.5 s).
#[test]
fn delta_net_learns_associative_recall_beyond_the_plateau() {
    let (train_set, test_set) = data();
    let model = ModelConfig {
        max_positions: 64,
        init_std: 0.02,
        ..ModelConfig::paper(MixerKind::DeltaNet, task().vocab_size(), 32, 2)
    };
    let metrics = train_to_end(&model, SEED, &config(300, 3e-3), &train_set, &test_set);
    let (first, acc, loss) = learning(&metrics);
    assert!(acc > 0.9, "test accuracy {acc}");
    assert!(loss < 0.2 * first, "loss {first} -> {loss}");
}

/// GLA (beyond the paper's zoo) has no short convolution (zoology's `add_gla`), so it must
/// learn the key → value binding across layers, as attention does: it sits on the plateau
/// longer (0.47 after 300 and 600 steps at d 32, as the PyTorch reference layer does on the
/// same task: `bench/torch_ar.py`'s model, 0.46 after 600), then breaks past it: 0.83 after
/// 2,000 steps (the PyTorch model 0.88), where the accelerators' tensor form, whose f32
/// rounding puts it on another trajectory, is still at 0.51 — the escape is that sensitive.
/// After 3,000 steps both have solved it (measured: 0.98 fused, 1.0 tensor form; 28 s).
#[test]
fn gla_learns_associative_recall_beyond_the_plateau() {
    let (train_set, test_set) = data();
    let model = ModelConfig {
        max_positions: 64,
        init_std: 0.02,
        ..ModelConfig::paper(MixerKind::Gla, task().vocab_size(), 32, 2)
    };
    let metrics = train_to_end(&model, SEED, &config(3000, 3e-3), &train_set, &test_set);
    let (first, acc, loss) = learning(&metrics);
    assert!(acc > 0.9, "test accuracy {acc}");
    assert!(loss < 0.2 * first, "loss {first} -> {loss}");
}

/// Mamba-2 (beyond the paper's zoo; 4 heads of 16 channels and 16-wide states at d 32, where
/// mamba_ssm's 64-wide heads would make one) learns the lookup, after a plateau (0.47 after 300
/// steps; the PyTorch model of `bench/torch_ar.py` 0.40 after 300, 0.81 after 1,000). Measured:
/// accuracy 1.0, loss 3.0 → 0.006 after 1,000 steps, 18 s.
#[test]
fn mamba2_learns_associative_recall_beyond_the_plateau() {
    let (train_set, test_set) = data();
    let keys = MixerKeys {
        heads: Some(4),
        d_state: Some(16),
        ..Default::default()
    };
    let model = ModelConfig {
        max_positions: 64,
        init_std: 0.02,
        mixer: MixerKind::Mamba2.configure(&keys, 2).unwrap(),
        ..ModelConfig::paper(MixerKind::Mamba2, task().vocab_size(), 32, 2)
    };
    let metrics = train_to_end(&model, SEED, &config(1000, 3e-3), &train_set, &test_set);
    let (first, acc, loss) = learning(&metrics);
    assert!(acc > 0.9, "test accuracy {acc}");
    assert!(loss < 0.2 * first, "loss {first} -> {loss}");
}
