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

/// Serialised flat into the train config (`schedule = "cosine"`, `warmup = 0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    #[serde(rename = "schedule")]
    pub kind: ScheduleKind,
    /// Fraction of total steps spent warming up (paper: 0.1).
    pub warmup: f64,
}

impl Schedule {
    /// Warm-up updates: `int(warmup · total)`, as the reference computes them (5,001 of 50,016).
    pub fn warmup_steps(&self, total: usize) -> usize {
        (self.warmup * total as f64).floor() as usize
    }

    /// Learning rate for update `step` (0-based) of `total`, peak `lr`.
    ///
    /// The reference's schedules (`transformers.get_{cosine,linear,constant}_schedule_with_warmup`
    /// stepped once per update): `lr·t/W` while `t < W`, so the first update has rate 0, then
    /// cosine `½(1 + cos(π·p))` or linear `(T − t)/(T − W)` with `p = (t − W)/(T − W)`, floored at 0.
    pub fn lr(&self, lr: f64, step: usize, total: usize) -> f64 {
        let warmup = self.warmup_steps(total);
        if step < warmup {
            return lr * step as f64 / warmup.max(1) as f64;
        }
        let decay_steps = total.saturating_sub(warmup).max(1) as f64;
        let factor = match self.kind {
            ScheduleKind::Cosine => {
                let progress = (step - warmup) as f64 / decay_steps;
                0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            ScheduleKind::Linear => total.saturating_sub(step) as f64 / decay_steps,
            ScheduleKind::Constant => 1.0,
        };
        lr * factor.max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference's schedule, written out from `transformers`' formulas (independent of
    /// [`Schedule::lr`]'s arithmetic): `int(0.1·T)` warm-up steps, `t/W`, then the decay.
    fn reference(kind: ScheduleKind, t: usize, total: usize) -> f64 {
        let w = (total as f64 * 0.1) as usize;
        if t < w {
            return t as f64 / w as f64;
        }
        let p = (t - w) as f64 / (total - w) as f64;
        match kind {
            ScheduleKind::Cosine => {
                (0.5 * (1.0 + (std::f64::consts::PI * 0.5 * 2.0 * p).cos())).max(0.0)
            }
            ScheduleKind::Linear => ((total - t) as f64 / (total - w) as f64).max(0.0),
            ScheduleKind::Constant => 1.0,
        }
    }

    #[test]
    fn ar_32_warms_up_for_5001_updates_starting_at_zero() {
        let s = Schedule {
            kind: ScheduleKind::Cosine,
            warmup: 0.1,
        };
        assert_eq!(s.warmup_steps(50_016), 5_001);
        assert_eq!(s.lr(1e-3, 0, 50_016), 0.0, "the first update has rate 0");
        assert!((s.lr(1e-3, 1, 50_016) - 1e-3 / 5001.0).abs() < 1e-18);
        assert!(
            (s.lr(1e-3, 5_001, 50_016) - 1e-3).abs() < 1e-15,
            "peak at t = W"
        );
    }

    #[test]
    fn every_kind_matches_the_reference_formula_step_for_step() {
        for kind in [
            ScheduleKind::Cosine,
            ScheduleKind::Linear,
            ScheduleKind::Constant,
        ] {
            let s = Schedule { kind, warmup: 0.1 };
            for total in [1_000, 50_016, 100_032] {
                for t in (0..total).step_by(7).chain([total - 1]) {
                    let (ours, theirs) = (s.lr(3e-4, t, total), 3e-4 * reference(kind, t, total));
                    assert!(
                        (ours - theirs).abs() <= 1e-15 * theirs.abs().max(1e-12),
                        "{kind:?} T={total} t={t}: {ours} vs {theirs}"
                    );
                }
            }
        }
        let lin = Schedule {
            kind: ScheduleKind::Linear,
            warmup: 0.1,
        };
        assert!((lin.lr(2.0, 550, 1000) - 2.0 * 450.0 / 900.0).abs() < 1e-12);
    }

    #[test]
    fn no_warmup_starts_at_the_peak() {
        let s = Schedule {
            kind: ScheduleKind::Constant,
            warmup: 0.0,
        };
        assert_eq!(s.lr(0.5, 0, 10), 0.5);
    }
}
