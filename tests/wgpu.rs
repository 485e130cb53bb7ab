//! burn's cubecl stack (the kernel definitions, fusion and autotune CUDA uses) running mechlab's
//! models, on Vulkan: in CI on Mesa's lavapipe, a software driver on the CPU. Built only with
//! `--features wgpu` (`cargo test --features wgpu --test wgpu`); without a Vulkan device the tests
//! skip and say so, unless `MECHLAB_REQUIRE_WGPU=1` (CI), where they fail.
//!
//! The subset every commit runs: each mixer's fixture numerics, the scan, the generic operations
//! against the CPU's fused ones, one intervention grid against the CPU's, a packed group against
//! its runs alone, and a packed group that learns.

use mechlab::exec::DeviceChoice;
use mechlab::selftest::{CheckResult, Verdict};

/// The selftest checks whose name contains `only`, on wgpu; `None` when there is no Vulkan
/// device here (and the environment does not require one).
fn checks(only: &str) -> Option<Vec<CheckResult>> {
    match mechlab::selftest::run(DeviceChoice::Wgpu, Some(only), &mut |r| {
        eprintln!("{}", serde_json::to_string(r).unwrap());
    }) {
        Ok(results) => Some(results),
        Err(e) if std::env::var("MECHLAB_REQUIRE_WGPU").is_err() => {
            eprintln!(
                "skipped: no Vulkan device here ({e}); MECHLAB_REQUIRE_WGPU=1 makes this fail"
            );
            None
        }
        Err(e) => panic!("MECHLAB_REQUIRE_WGPU is set but wgpu cannot run: {e}"),
    }
}

/// Every check within the float32 tolerance, or `close` to it (lavapipe's transcendentals are
/// not correctly rounded: two ill-conditioned fixtures land at 1.09× and 1.24× of it). An
/// error of another kind, such as burn's tanh-approximation GELU gradient (70× the tolerance),
/// fails.
fn assert_pass(only: &str) {
    let Some(results) = checks(only) else { return };
    assert!(!results.is_empty(), "{only}: no such check");
    for r in results {
        assert!(
            matches!(r.verdict, Verdict::Pass | Verdict::Close),
            "{}: {} off by {:e} of its scale (tolerance {:e})",
            r.check,
            r.worst,
            r.error,
            r.tolerance
        );
    }
}

#[test]
fn every_mixer_matches_the_pytorch_fixtures_on_cubecl() {
    assert_pass("fixture:");
}

#[test]
fn the_scan_and_the_generic_operations_match_on_cubecl() {
    assert_pass("scan");
    assert_pass("generic_ops");
}

#[test]
fn an_intervention_grid_on_cubecl_equals_the_cpus() {
    assert_pass("interventions");
}

#[test]
fn a_packed_group_trains_as_its_runs_alone_on_cubecl() {
    assert_pass("packed:attention");
    assert_pass("packed:mamba");
}

/// Learning, not only agreement: two packed runs of a tiny model, 300 steps on wgpu, learn, and
/// their loss curves stay with the CPU's.
#[test]
fn a_packed_group_learns_on_cubecl_as_on_the_cpu() {
    use burn::backend::{Autodiff, Vulkan};
    use mechlab::exec::device::CpuBackend;
    use mechlab::model::{MixerKind, ModelConfig};
    use mechlab::selftest::packed::{GroupMember, group_curves};
    use mechlab::task::Split;
    use mechlab::train::{Schedule, ScheduleKind, TrainConfig};

    if checks("generic_ops").is_none() {
        return;
    }
    const STEPS: usize = 300;
    let task = mechlab::selftest::tiny_ar();
    let model = ModelConfig {
        max_positions: 32,
        ..ModelConfig::paper(MixerKind::Attention, task.vocab_size(), 16, 2)
    };
    let cfgs = [3e-3, 1e-2].map(|lr| TrainConfig {
        batch_size: 16,
        steps: STEPS,
        lr,
        weight_decay: 0.0,
        betas: [0.9, 0.999],
        eps: 1e-8,
        schedule: Schedule {
            kind: ScheduleKind::Cosine,
            warmup: 0.1,
        },
        eval_every: STEPS,
        checkpoint_every: 10 * STEPS,
        keep_weights_every: None,
    });
    let data: Vec<_> = (0..2)
        .map(|r| task.generate(r, Split::Train, 16 * STEPS))
        .collect();
    let runs: Vec<GroupMember> = (0..2)
        .map(|r| GroupMember {
            seed: r as u64,
            cfg: &cfgs[r],
            train: &data[r],
            test: None,
        })
        .collect();
    let gpu = group_curves::<Autodiff<Vulkan>>(&model, &runs, &Default::default()).unwrap();
    let cpu = group_curves::<CpuBackend>(&model, &runs, &Default::default()).unwrap();
    let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len() as f32;
    for r in 0..2 {
        let (gpu, cpu) = (&gpu[r].0, &cpu[r].0);
        let (first, last) = (mean(&gpu[..20]), mean(&gpu[STEPS - 20..]));
        assert!(last < 0.8 * first, "run {r}: loss {first} → {last}");
        let cpu_last = mean(&cpu[STEPS - 20..]);
        assert!(
            (last - cpu_last).abs() <= 0.02 * cpu_last,
            "run {r}: wgpu ends at {last}, the CPU at {cpu_last}"
        );
    }
}

/// `mechlab run SPEC --device wgpu` end to end: a packed sweep's dataset and train nodes run on
/// cubecl, the status records the backend, and the metrics equal the CPU's run to float32
/// agreement (losses within 1e-3 relative after 30 steps).
#[test]
fn mechlab_run_on_wgpu_writes_the_cpus_tables() {
    if checks("generic_ops").is_none() {
        return;
    }
    let spec_text = include_str!("common/mod.rs")
        .split("pub const TINY: &str = r#\"")
        .nth(1)
        .and_then(|s| s.split("\"#;").next())
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("tiny.toml");
    std::fs::write(&spec, spec_text).unwrap();
    let metrics = |device: &str| -> Vec<(String, f64)> {
        let results = dir.path().join(device);
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_mechlab"))
            .arg("--results")
            .arg(&results)
            .args(["run", "-q", "--device", device])
            .arg(&spec)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let csv = results.join("metrics.csv");
        let export = std::process::Command::new(env!("CARGO_BIN_EXE_mechlab"))
            .arg("--results")
            .arg(&results)
            .args([
                "export", "table", "--table", "metrics", "--format", "csv", "--out",
            ])
            .arg(&csv)
            .arg(&spec)
            .output()
            .unwrap();
        assert!(
            export.status.success(),
            "{}",
            String::from_utf8_lossy(&export.stderr)
        );
        let text = std::fs::read_to_string(&csv).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let (name, step, split, metric, value, backend) = (
            col("name"),
            col("step"),
            col("split"),
            col("metric"),
            col("value"),
            col("backend"),
        );
        text.lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                let expected = if device == "wgpu" { "wgpu" } else { "flex" };
                assert_eq!(f[backend], expected, "{l}");
                (
                    format!("{} {} {} {}", f[name], f[step], f[split], f[metric]),
                    f[value].parse().unwrap(),
                )
            })
            .collect()
    };
    let (gpu, cpu) = (metrics("wgpu"), metrics("cpu"));
    assert_eq!(gpu.len(), cpu.len());
    for ((key, got), (want_key, want)) in gpu.iter().zip(&cpu) {
        assert_eq!(key, want_key);
        if key.ends_with(" loss") {
            assert!(
                (got - want).abs() <= 1e-3 * want.abs(),
                "{key}: wgpu {got}, cpu {want}"
            );
        }
    }
}
