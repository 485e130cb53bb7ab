//! What a run will need, estimated from its resolved config before anything allocates, so that
//! `validate` refuses a run the machine cannot hold (with the estimate) instead of `run`
//! aborting mid-sweep with "memory allocation failed".
//!
//! Deliberately an upper estimate: parameters from a per-layer bound that covers every mixer,
//! four copies of them while training (weights, gradients, AdamW's two moments), the token and
//! role arrays of every split, and the activations autodiff keeps for one batch (including the
//! `s × s` attention scores and the long convolutions' Toeplitz products).

use super::resolve::RunPoint;

/// Estimated bytes of one run, by what needs them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Weights, gradients and optimizer state.
    pub training_state: f64,
    /// The part of `training_state` that grows with `max_positions` (position table, filters,
    /// shift state).
    pub positional: f64,
    /// The part of `training_state` that grows with the vocabulary (the tied embedding).
    pub vocabulary: f64,
    /// The task key that sets the vocabulary.
    pub vocabulary_key: &'static str,
    /// Token and role arrays of every split.
    pub data: f64,
    /// What one training step keeps for the backward pass.
    pub activations: f64,
}

impl Estimate {
    pub fn total(&self) -> f64 {
        self.training_state + self.data + self.activations
    }

    /// The spec key that most drives the estimate, to name in the error.
    pub fn main_key(&self) -> &'static str {
        if self.data >= self.training_state && self.data >= self.activations {
            "task.train_size"
        } else if self.training_state >= self.activations {
            if 2.0 * self.positional > self.training_state {
                "model.max_positions"
            } else if 2.0 * self.vocabulary > self.training_state {
                self.vocabulary_key
            } else {
                "model.d_model"
            }
        } else {
            "train.batch_size"
        }
    }
}

const F32: f64 = 4.0;

/// The estimate for `run` (floating point: sizes may be absurd until refused).
pub fn estimate(run: &RunPoint) -> Estimate {
    let m = &run.model;
    let (d, layers, positions) = (m.d_model as f64, m.layers as f64, m.max_positions as f64);
    let vocab = m.vocab_size as f64;
    let seq = run.task.seq_len() as f64;
    let batch = run.train.batch_size as f64;
    // Per layer: projections and MLP (≤ 16·d²), position-indexed state or filters (H3's shift
    // maps, implicit filters: ≤ 4·d·positions), the filter FFNs (≤ 2·64² + 64·d), norms.
    let per_layer = 16.0 * d * d + 2.0 * 64.0 * 64.0 + 64.0 * d + 8.0 * d;
    let per_position = d * if m.pos_emb { 1.0 } else { 0.0 } + layers * 4.0 * d;
    let params = vocab * d + layers * per_layer + positions * per_position;
    let sequences = [
        run.task.train_size(),
        run.task.test_size(),
        run.task.dev_size(),
    ]
    .iter()
    .map(|&n| n as f64)
    .sum::<f64>();
    let data = sequences * (seq + crate::task::Role::COUNT as f64) * F32;
    // Per layer and position: ~40 floats of width d kept for backward, and what the mixer keeps
    // beside them (softmax scores, Toeplitz products of long filters, H3's shift maps).
    let per_layer_act = 40.0 * batch * seq * d + m.mixer.activations(&m.shape(), batch, seq);
    let activations = (layers * per_layer_act + batch * vocab) * F32;
    Estimate {
        training_state: 4.0 * params * F32,
        positional: 4.0 * positions * per_position * F32,
        vocabulary: 4.0 * vocab * d * F32,
        vocabulary_key: match run.task {
            super::raw::TaskSpec::Ar(_) => "task.num_kv",
            super::raw::TaskSpec::Atr(_) => "task.num_terminals",
            super::raw::TaskSpec::Mqar(_) => "task.vocab_size",
        },
        data,
        activations,
    }
}

/// `bytes` for people: `512 MB`, `3.1 GB`, `64 TB`.
pub fn human(bytes: f64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if value.is_finite() {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        "more than can be counted".into()
    }
}

/// A `--max-memory` value: bytes, or a number with a unit (`512M`, `8G`, `1.5T`; powers of 1000,
/// an optional trailing `B`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim().trim_end_matches(['B', 'b']);
    let (number, scale) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let scale = match c.to_ascii_uppercase() {
                'K' => 1e3,
                'M' => 1e6,
                'G' => 1e9,
                'T' => 1e12,
                _ => return Err(format!("{text}: expected a size such as 512M, 8G or 1.5T")),
            };
            (&t[..i], scale)
        }
        _ => (t, 1.0),
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 && n * scale < u64::MAX as f64 => Ok((n * scale) as u64),
        _ => Err(format!("{text}: expected a size such as 512M, 8G or 1.5T")),
    }
}

/// This machine's memory (`MemTotal` of `/proc/meminfo`), if it can be read.
pub fn machine_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_size("8G"), Ok(8_000_000_000));
        assert_eq!(parse_size("512MB"), Ok(512_000_000));
        assert_eq!(parse_size("1.5T"), Ok(1_500_000_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in ["", "G", "-1G", "8Q", "nan", "1e30T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(human(3.14e9), "3.1 GB");
    }
}
