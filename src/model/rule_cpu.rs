//! What the fused CPU recurrences of the linear-attention mixers share ([`super::delta_rule_cpu`],
//! [`super::gla_rule_cpu`]): their sizes, the heads laid side by side in the channels as the
//! projections write them, and the states an intervention grid keeps to resume from.

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};

/// Sizes of one recurrence call. Head `j` owns channels `j·k..(j+1)·k` of the keys and
/// `j·v..(j+1)·v` of the values.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub b: usize,
    pub s: usize,
    pub h: usize,
    /// Key and value width per head.
    pub k: usize,
    pub v: usize,
}

impl Dims {
    /// From the keys' and the values' shapes `[b, s, h·k]`, `[b, s, h·v]` and the heads.
    pub fn of([b, s, hk]: [usize; 3], [_, _, hv]: [usize; 3], h: usize) -> Self {
        Dims {
            b,
            s,
            h,
            k: hk / h,
            v: hv / h,
        }
    }

    /// Floats of one head's state.
    pub fn state(&self) -> usize {
        self.k * self.v
    }

    /// `[b, s, h·per_head]` from its values.
    pub fn tensor(
        &self,
        values: Vec<f32>,
        per_head: usize,
        device: &burn::tensor::Device<Flex>,
    ) -> Tensor<Flex, 3> {
        let shape = [self.b, self.s, self.h * per_head];
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    /// Every state as a recurrence keeps it (f64, `[b, h, s, k·v]`) rounded to f32 and laid out
    /// `[b, s, h, k·v]`: a position's states side by side, as a resume reads them.
    pub fn kept_states(&self, states: &[f64]) -> Vec<f32> {
        let Dims { b, s, h, .. } = *self;
        let state = self.state();
        let mut kept = vec![0f32; states.len()];
        for bb in 0..b {
            for hh in 0..h {
                for t in 0..s {
                    let from = &states[((bb * h + hh) * s + t) * state..][..state];
                    let to = &mut kept[((bb * s + t) * h + hh) * state..][..state];
                    for (a, &x) in to.iter_mut().zip(from) {
                        *a = x as f32;
                    }
                }
            }
        }
        kept
    }

    /// Head `hh` of batch row `bb`'s state before the first position: `s0`'s (`[b, h, k·v]`)
    /// or zero.
    pub fn initial_state(&self, s0: Option<&[f32]>, bb: usize, hh: usize, state: &mut [f64]) {
        match s0 {
            Some(s0) => {
                let from = &s0[(bb * self.h + hh) * self.state()..][..self.state()];
                for (a, &x) in state.iter_mut().zip(from) {
                    *a = x as f64;
                }
            }
            None => state.iter_mut().for_each(|x| *x = 0.0),
        }
    }
}
