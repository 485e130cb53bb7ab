//! Learning-rate schedules: linear warmup over a fraction of the steps, then decay to 0.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// Warmup then cosine decay to 0 (paper: AR, ATR main).
    Cosine,
    /// Warmup then linear decay to 0 (paper: generalisation and sibling configs).
    Linear,
    /// Warmup then constant.
    Constant,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub kind: ScheduleKind,
    /// Fraction of total steps spent warming up (paper: 0.1).
    pub warmup: f64,
}

impl Schedule {
    /// Learning rate for update `step` (0-based) of `total`, peak `lr`.
    pub fn lr(&self, lr: f64, step: usize, total: usize) -> f64 {
        let warmup = ((self.warmup * total as f64).round() as usize).max(1);
        if step < warmup {
            return lr * (step + 1) as f64 / warmup as f64;
        }
        let decay_steps = total.saturating_sub(warmup).max(1);
        let progress = ((step - warmup) as f64 / decay_steps as f64).min(1.0);
        match self.kind {
            ScheduleKind::Cosine => lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            ScheduleKind::Linear => lr * (1.0 - progress),
            ScheduleKind::Constant => lr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_reaches_peak_and_decays_to_near_zero() {
        let s = Schedule {
            kind: ScheduleKind::Cosine,
            warmup: 0.1,
        };
        assert!((s.lr(1.0, 0, 1000) - 0.01).abs() < 1e-12);
        assert!((s.lr(1.0, 99, 1000) - 1.0).abs() < 1e-12);
        assert!((s.lr(1.0, 100, 1000) - 1.0).abs() < 1e-12);
        // Halfway through the decay, cosine is at half the peak.
        assert!((s.lr(1.0, 550, 1000) - 0.5).abs() < 1e-12);
        assert!(s.lr(1.0, 999, 1000) < 1e-4);
        let lin = Schedule {
            kind: ScheduleKind::Linear,
            warmup: 0.1,
        };
        assert!((lin.lr(2.0, 550, 1000) - 1.0).abs() < 1e-12);
    }
}
