//! `mechlab selftest --device D`: the numerics a user relies on, checked on whatever backend the
//! binary runs on, so that one binary copied to a GPU machine tells in a minute whether that
//! machine computes what the CPU does. Each check prints one JSON line with its largest error:
//!
//! - `fixture:<name>`: the committed PyTorch fixtures (`tests/fixtures/`, embedded in the
//!   binary) through every mixer: logits, loss and every gradient ([`fixtures`]);
//! - `scan`: the selective scan the backend runs against the plain recurrence, values and the
//!   gradients of x, Δ, A, B, C, two packed runs ([`scan`]);
//! - `generic_ops`: the tensor-operation paths accelerators take (GELU, the loss's
//!   log-probabilities, the scan) against the CPU's fused operations ([`generic`]);
//! - `interventions`: the interchange grid (cached and naive paths) of three mixers' models
//!   against the CPU's ([`interventions`]);
//! - `packed:<mixer>`: two runs trained 50 steps as one packed group against each alone
//!   ([`packed`]).
//!
//! Errors are measured against each reference tensor's scale (its largest magnitude), the
//! measure the fixture tests use. A check passes within its float32 tolerance; within
//! [`compare::CLOSE_FACTOR`] times it, it is `close` (another device's float32 kernels: not
//! correctly rounded transcendentals, other summation orders); a GPU whose matrix products run
//! in TF32 (10-bit mantissa) cannot reach either, so a check within [`TF32_TOLERANCE`] is
//! reported as `tf32`. `--tolerance` says which verdicts a run accepts.

pub mod compare;
pub mod fixtures;
pub mod generic;
pub mod interventions;
pub mod packed;
pub mod scan;

use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use serde::Serialize;

use crate::exec::DeviceChoice;
use crate::exec::device::OnTraining;
use crate::train::LossReads;

pub use compare::{CLOSE_FACTOR, Compare, TF32_TOLERANCE};

/// The outcome of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub check: String,
    pub device: String,
    /// The tensor whose error is largest against its tolerance.
    pub worst: String,
    /// That tensor's largest absolute error over its scale.
    pub error: f64,
    /// The float32 tolerance on that error.
    pub tolerance: f64,
    pub verdict: Verdict,
    pub seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within the float32 tolerance.
    Pass,
    /// Beyond it, within [`compare::CLOSE_FACTOR`] times it.
    Close,
    /// Beyond it, within [`TF32_TOLERANCE`].
    Tf32,
    Fail,
}

#[derive(Debug, thiserror::Error)]
pub enum SelftestError {
    #[error("check {check}: {message}")]
    Setup { check: String, message: String },
}

/// The small AR task the training and intervention checks use (16 keys and values, 4 pairs):
/// cheap on any device, and learnable within a few hundred steps.
pub fn tiny_ar() -> crate::task::ArConfig {
    crate::task::ArConfig {
        num_kv: 16,
        pairs: 4,
        query: crate::task::ArQuery::Key,
        prohibit: None,
    }
}

/// Every check's name, in the order they run.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = fixtures::FIXTURES
        .iter()
        .map(|f| format!("fixture:{}", f.name))
        .collect();
    names.push("scan".into());
    names.push("generic_ops".into());
    names.push("interventions".into());
    names.extend(
        crate::model::MixerKind::ALL
            .iter()
            .map(|m| format!("packed:{}", m.name())),
    );
    names
}

/// Runs the checks whose name contains `only` (all with `None`) on `device`, calling `report`
/// after each.
pub fn run(
    device: DeviceChoice,
    only: Option<&str>,
    report: &mut dyn FnMut(&CheckResult),
) -> Result<Vec<CheckResult>, crate::exec::ExecError> {
    struct Checks<'a> {
        name: String,
        only: Option<&'a str>,
        report: &'a mut dyn FnMut(&CheckResult),
    }
    impl OnTraining for Checks<'_> {
        type Output = Vec<CheckResult>;
        fn run<B: AutodiffBackend>(self, device: B::Device, _: LossReads) -> Self::Output {
            run_on::<B>(&device, &self.name, self.only, self.report)
        }
    }
    device.train_with(Checks {
        name: device.device_name(),
        only,
        report,
    })
}

fn run_on<B: AutodiffBackend>(
    device: &B::Device,
    device_name: &str,
    only: Option<&str>,
    report: &mut dyn FnMut(&CheckResult),
) -> Vec<CheckResult> {
    let mut results = Vec::new();
    for check in names() {
        if only.is_some_and(|o| !check.contains(o)) {
            continue;
        }
        let start = Instant::now();
        let compared = match check.split_once(':') {
            Some(("fixture", name)) => fixtures::check::<B>(fixtures::by_name(name), device),
            Some(("packed", mixer)) => packed::check::<B>(mixer, device),
            _ if check == "scan" => Ok(scan::check::<B>(device)),
            _ if check == "interventions" => Ok(interventions::check::<B::InnerBackend>(device)),
            _ => Ok(generic::check::<B>(device)),
        };
        let compared = compared.unwrap_or_else(|e| {
            let mut c = Compare::default();
            c.fail("setup", &e.to_string());
            c
        });
        let result = compared.finish(&check, device_name, start.elapsed().as_secs_f64());
        report(&result);
        results.push(result);
    }
    results
}
