//! Comparing tensors against references: the largest absolute error over the reference's scale,
//! kept for the tensor that comes closest to (or goes furthest past) its tolerance.

use super::{CheckResult, Verdict};

/// Another device's float32 kernels round differently (transcendentals that are not correctly
/// rounded: Vulkan allows exp several ulp and sin/cos more; other summation orders): an error
/// within this many times the float32 tolerance is reported as `close`, not as a failure.
/// lavapipe measured 1.09× on the H3 fixture and 1.24× on the ill-conditioned `mamba_conv0`.
pub const CLOSE_FACTOR: f64 = 4.0;

/// A GPU computing matrix products in TF32 (10-bit mantissa, relative precision ≈ 5e-4 per
/// product) stays within this of each tensor's scale on these small models; a float32
/// tolerance it misses but this it meets is reported as `tf32`, not as a failure of the code.
pub const TF32_TOLERANCE: f64 = 5e-3;

/// The comparisons of one check.
#[derive(Debug, Default)]
pub struct Compare {
    /// (tensor, error over scale, tolerance), the largest error/tolerance so far.
    worst: Option<(String, f64, f64)>,
    tensors: usize,
}

impl Compare {
    /// Compares `ours` with `reference` within `tolerance` of the reference's scale.
    pub fn tensor(&mut self, name: &str, ours: &[f32], reference: &[f32], tolerance: f64) {
        let error = if ours.len() != reference.len() {
            f64::INFINITY
        } else {
            let scale = reference
                .iter()
                .fold(0f64, |m, v| m.max(f64::from(v.abs())))
                .max(1e-6);
            ours.iter()
                .zip(reference)
                .map(|(a, b)| f64::from((a - b).abs()))
                // NaN compares as the worst error, not as none.
                .fold(
                    0f64,
                    |m, e| if e.is_nan() { f64::INFINITY } else { m.max(e) },
                )
                / scale
        };
        self.tensors += 1;
        let ratio = |e: f64, t: f64| e / t;
        if self
            .worst
            .as_ref()
            .is_none_or(|(_, e, t)| ratio(error, tolerance) > ratio(*e, *t))
        {
            self.worst = Some((name.to_string(), error, tolerance));
        }
    }

    /// A check that cannot run, or finds what it compares missing: a failure named `what`.
    pub fn fail(&mut self, what: &str, message: &str) {
        self.tensors += 1;
        self.worst = Some((format!("{what}: {message}"), f64::INFINITY, 0.0));
    }

    /// How many tensors were compared.
    pub fn count(&self) -> usize {
        self.tensors
    }

    pub fn finish(self, check: &str, device: &str, seconds: f64) -> CheckResult {
        let (worst, error, tolerance) = self
            .worst
            .unwrap_or_else(|| ("nothing compared".into(), f64::INFINITY, 0.0));
        let verdict = if error <= tolerance {
            Verdict::Pass
        } else if error <= CLOSE_FACTOR * tolerance {
            Verdict::Close
        } else if error <= TF32_TOLERANCE {
            Verdict::Tf32
        } else {
            Verdict::Fail
        };
        CheckResult {
            check: check.to_string(),
            device: device.to_string(),
            worst,
            error,
            tolerance,
            verdict,
            seconds,
        }
    }
}

/// A tensor's values on the host.
pub fn host<B: burn::tensor::backend::Backend, const D: usize>(
    t: burn::tensor::Tensor<B, D>,
) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_tensor_against_its_tolerance_decides() {
        let mut c = Compare::default();
        c.tensor("a", &[1.0, 2.0], &[1.0, 2.0], 1e-5);
        c.tensor("b", &[1.0, 2.001], &[1.0, 2.0], 1e-5);
        c.tensor("c", &[1.0, 2.0001], &[1.0, 2.0], 1e-3);
        let r = c.finish("t", "cpu", 0.0);
        assert_eq!(r.worst, "b");
        assert!((r.error - 5e-4).abs() < 1e-6, "{}", r.error);
        assert_eq!(r.verdict, Verdict::Tf32);
        let mut c = Compare::default();
        c.tensor("a", &[1.0, 2.00005], &[1.0, 2.0], 1e-5);
        assert_eq!(c.finish("t", "cpu", 0.0).verdict, Verdict::Close);
        let mut c = Compare::default();
        c.tensor("nan", &[f32::NAN], &[1.0], 1.0);
        assert_eq!(c.finish("t", "cpu", 0.0).verdict, Verdict::Fail);
        let mut c = Compare::default();
        c.tensor("short", &[1.0], &[1.0, 2.0], 1.0);
        assert_eq!(c.finish("t", "cpu", 0.0).verdict, Verdict::Fail);
        assert_eq!(
            Compare::default().finish("t", "cpu", 0.0).verdict,
            Verdict::Fail
        );
        let mut c = Compare::default();
        c.tensor("ok", &[1.0], &[1.0], 1e-5);
        assert_eq!(c.finish("t", "cpu", 0.0).verdict, Verdict::Pass);
    }
}
