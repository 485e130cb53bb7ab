//! AdamW over a model that holds several runs ([`crate::model::runs`]), each with its own
//! learning rate, betas, ε and weight decay.
//!
//! burn's optimizers take one scalar learning rate per step, so a packed group needs its own.
//! This one repeats burn's `AdamW` operation for operation (decoupled weight decay
//! `p·(1 − lr·wd)`, then `p − lr·m̂/(√v̂ + ε)`, bias corrections in f32), with every scalar
//! replaced by a per-run column: on one run it is burn's AdamW (tested below), and a run in a
//! group is updated exactly as alone.
//!
//! State is positional (the model's parameters in visiting order), which is what lets one run's
//! share be saved into that run's checkpoint and groups be re-formed from checkpoints.
//!
//! Shape letters: r runs, k elements of one run's share of a parameter.

use burn::module::{AutodiffModule, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

/// One run's optimizer settings (the learning rate comes per step from its schedule).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWSettings {
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
}

/// Moments of one parameter: `[R, k]` each, and the updates applied so far.
#[derive(Clone)]
struct Moments<B: Backend> {
    time: u64,
    m_rk: Tensor<B, 2>,
    v_rk: Tensor<B, 2>,
}

/// AdamW for a group of runs. `B` is the inner (non-autodiff) backend.
pub struct PackedAdamW<B: Backend> {
    settings: Vec<AdamWSettings>,
    /// One entry per float parameter in visiting order; `None` until it first has a gradient.
    state: Vec<Option<Moments<B>>>,
}

/// Why bytes are not a saved optimizer state.
#[derive(Debug, thiserror::Error)]
pub enum AdamWStateError {
    #[error(
        "not a mechlab AdamW state (a checkpoint of mechlab before packed training kept burn's optimizer record)"
    )]
    Format,
    #[error("optimizer state is truncated")]
    Truncated,
    #[error("optimizer state has {found} parameters, the model {expected}")]
    Parameters { found: usize, expected: usize },
    #[error("runs cannot train together: their optimizer states are at different update counts")]
    Mismatch,
}

/// First bytes of a saved state.
pub(crate) const MAGIC: &[u8] = b"mechlab-adamw-1\n";

impl<B: Backend> PackedAdamW<B> {
    pub fn new(settings: Vec<AdamWSettings>) -> Self {
        PackedAdamW {
            settings,
            state: Vec::new(),
        }
    }

    pub fn runs(&self) -> usize {
        self.settings.len()
    }

    /// One update of every run: run `r` with learning rate `lrs[r]`.
    pub fn step<AB, M>(&mut self, model: M, grads: &GradientsParams, lrs: &[f64]) -> M
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<AB>,
    {
        let mut mapper = Update::<AB> {
            optim: self,
            grads,
            lrs,
            index: 0,
            device: None,
        };
        model.map(&mut mapper)
    }

    /// Run `run`'s share of the state, for its checkpoint.
    pub fn run_state(&self, run: usize) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend((self.state.len() as u64).to_le_bytes());
        for entry in &self.state {
            match entry {
                None => out.push(0),
                Some(m) => {
                    out.push(1);
                    out.extend(m.time.to_le_bytes());
                    for t in [&m.m_rk, &m.v_rk] {
                        let [_, k] = t.dims();
                        let row: Vec<f32> = t
                            .clone()
                            .slice([run..run + 1, 0..k])
                            .into_data()
                            .convert::<f32>()
                            .to_vec()
                            .expect("f32 moments");
                        out.extend((k as u64).to_le_bytes());
                        for x in row {
                            out.extend(x.to_le_bytes());
                        }
                    }
                }
            }
        }
        out
    }

    /// A group's optimizer from its runs' saved states (all at the same update count).
    pub fn from_run_states(
        settings: Vec<AdamWSettings>,
        states: &[Vec<u8>],
        device: &B::Device,
    ) -> Result<Self, AdamWStateError> {
        let decoded: Vec<Vec<Entry>> =
            states.iter().map(|s| decode(s)).collect::<Result<_, _>>()?;
        let Some(first) = decoded.first() else {
            return Ok(Self::new(settings));
        };
        let mut state = Vec::with_capacity(first.len());
        for p in 0..first.len() {
            let entries: Vec<_> = decoded
                .iter()
                .map(|d| d.get(p).ok_or(AdamWStateError::Mismatch))
                .collect::<Result<_, _>>()?;
            match entries[0] {
                None => {
                    if entries.iter().any(|e| e.is_some()) {
                        return Err(AdamWStateError::Mismatch);
                    }
                    state.push(None);
                }
                Some((time, m, _)) => {
                    let k = m.len();
                    let (mut ms, mut vs) = (Vec::new(), Vec::new());
                    for e in &entries {
                        match e {
                            Some((t, m, v)) if t == time && m.len() == k && v.len() == k => {
                                ms.extend_from_slice(m);
                                vs.extend_from_slice(v);
                            }
                            _ => return Err(AdamWStateError::Mismatch),
                        }
                    }
                    let r = entries.len();
                    let tensor =
                        |v: Vec<f32>| Tensor::from_data(TensorData::new(v, [r, k]), device);
                    state.push(Some(Moments {
                        time: *time,
                        m_rk: tensor(ms),
                        v_rk: tensor(vs),
                    }));
                }
            }
        }
        Ok(PackedAdamW { settings, state })
    }

    /// The group without run `run` (it failed; the others go on).
    pub fn without_run(&self, run: usize) -> Self {
        let keep = |t: &Tensor<B, 2>| {
            let [r, k] = t.dims();
            let parts: Vec<_> = (0..r)
                .filter(|&i| i != run)
                .map(|i| t.clone().slice([i..i + 1, 0..k]))
                .collect();
            Tensor::cat(parts, 0)
        };
        let mut settings = self.settings.clone();
        settings.remove(run);
        PackedAdamW {
            settings,
            state: self
                .state
                .iter()
                .map(|e| {
                    e.as_ref().map(|m| Moments {
                        time: m.time,
                        m_rk: keep(&m.m_rk),
                        v_rk: keep(&m.v_rk),
                    })
                })
                .collect(),
        }
    }

    /// Checks a freshly restored state against the model it will update.
    pub fn check_parameters(&self, expected: usize) -> Result<(), AdamWStateError> {
        if !self.state.is_empty() && self.state.len() != expected {
            return Err(AdamWStateError::Parameters {
                found: self.state.len(),
                expected,
            });
        }
        Ok(())
    }
}

type Entry = Option<(u64, Vec<f32>, Vec<f32>)>;

fn decode(bytes: &[u8]) -> Result<Vec<Entry>, AdamWStateError> {
    let rest = bytes.strip_prefix(MAGIC).ok_or(AdamWStateError::Format)?;
    let mut r = Reader(rest);
    let n = r.u64()? as usize;
    // Each entry takes at least one byte: a count beyond the input is corrupt, not an allocation.
    if n > r.0.len() {
        return Err(AdamWStateError::Truncated);
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        match r.byte()? {
            0 => out.push(None),
            1 => {
                let time = r.u64()?;
                let m = r.floats()?;
                let v = r.floats()?;
                out.push(Some((time, m, v)));
            }
            _ => return Err(AdamWStateError::Format),
        }
    }
    Ok(out)
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], AdamWStateError> {
        if self.0.len() < n {
            return Err(AdamWStateError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn byte(&mut self) -> Result<u8, AdamWStateError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, AdamWStateError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn floats(&mut self) -> Result<Vec<f32>, AdamWStateError> {
        let k = self.u64()? as usize;
        let bytes = self.take(k.checked_mul(4).ok_or(AdamWStateError::Truncated)?)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    }
}

/// Applies one update to each float parameter in visiting order.
struct Update<'a, AB: AutodiffBackend> {
    optim: &'a mut PackedAdamW<AB::InnerBackend>,
    grads: &'a GradientsParams,
    lrs: &'a [f64],
    index: usize,
    device: Option<burn::tensor::Device<AB::InnerBackend>>,
}

impl<AB: AutodiffBackend> Update<'_, AB> {
    /// A per-run column `[R, 1]` of `f(run)` in f32.
    fn column(&mut self, f: impl Fn(usize) -> f32) -> Tensor<AB::InnerBackend, 2> {
        let r = self.optim.runs();
        let values: Vec<f32> = (0..r).map(f).collect();
        let device = self.device.clone().expect("device of the first parameter");
        Tensor::from_data(TensorData::new(values, [r, 1]), &device)
    }
}

impl<AB: AutodiffBackend> ModuleMapper<AB> for Update<'_, AB> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<AB, D>>) -> Param<Tensor<AB, D>> {
        let index = self.index;
        self.index += 1;
        if self.optim.state.len() <= index {
            self.optim.state.resize(index + 1, None);
        }
        if !param.is_require_grad() {
            return param;
        }
        let Some(grad) = self.grads.get::<AB::InnerBackend, D>(param.id) else {
            return param;
        };
        let (id, tensor, mapper) = param.consume();
        let dims: [usize; D] = tensor.dims();
        let inner = tensor.inner();
        self.device.get_or_insert_with(|| inner.device());
        let runs = self.optim.runs();
        let k = dims.iter().product::<usize>() / runs;
        let g_rk = grad.reshape([runs, k]);
        let p_rk = inner.reshape([runs, k]);
        let s = self.optim.settings.clone();
        let b1 = self.column(|r| s[r].betas[0] as f32);
        let b2 = self.column(|r| s[r].betas[1] as f32);
        let f1 = self.column(|r| 1.0 - s[r].betas[0] as f32);
        let f2 = self.column(|r| 1.0 - s[r].betas[1] as f32);
        let moments = match self.optim.state[index].take() {
            Some(m) => Moments {
                time: m.time + 1,
                m_rk: m.m_rk * b1 + g_rk.clone() * f1,
                v_rk: m.v_rk * b2 + g_rk.square() * f2,
            },
            None => Moments {
                time: 1,
                m_rk: g_rk.clone() * f1,
                v_rk: g_rk.square() * f2,
            },
        };
        let t = moments.time as i32;
        let c1 = self.column(|r| 1f32 - (s[r].betas[0] as f32).powi(t));
        let c2 = self.column(|r| 1f32 - (s[r].betas[1] as f32).powi(t));
        let eps = self.column(|r| s[r].eps as f32);
        let delta = (moments.m_rk.clone() / c1) / ((moments.v_rk.clone() / c2).sqrt() + eps);
        let lrs = self.lrs;
        // burn keeps the decay in f32 and multiplies in f64: the same rounding here.
        let decay = self.column(|r| (1.0 - lrs[r] * (s[r].weight_decay as f32) as f64) as f32);
        let lr = self.column(|r| lrs[r] as f32);
        // burn skips the decay multiply when lr·wd = 0; multiplying by exactly 1 is the same.
        let updated = p_rk * decay - delta * lr;
        self.optim.state[index] = Some(moments);
        let updated = Tensor::<AB, D>::from_inner(updated.reshape(dims)).require_grad();
        Param::from_mapped_value(id, updated, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::int_tensor;
    use crate::model::{MixerKind, ModelConfig, NoSites, runs};
    use burn::backend::{Autodiff, Flex};
    use burn::module::Module;
    use burn::optim::{AdamWConfig, Optimizer};

    type A = Autodiff<Flex>;

    fn params(model: &crate::model::LanguageModel<A>) -> Vec<f32> {
        struct Flat(Vec<f32>);
        impl burn::module::ModuleVisitor<A> for Flat {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<A, D>>) {
                self.0.extend(
                    p.val()
                        .into_data()
                        .convert::<f32>()
                        .to_vec::<f32>()
                        .unwrap(),
                );
            }
        }
        let mut f = Flat(Vec::new());
        model.visit(&mut f);
        f.0
    }

    /// A sum of logits of the model's runs, run `r` of them reading the tokens of run
    /// `first + r` of the group.
    fn loss(model: &crate::model::LanguageModel<A>, first: usize, seed: i64) -> Tensor<A, 1> {
        let device = Default::default();
        let runs = model.runs();
        let tokens: Vec<i64> = (first as i64 * 12..(first + runs) as i64 * 12)
            .map(|i| (i * 7 + seed) % 26)
            .collect();
        let r = model.residual(
            int_tensor::<A, 2>(tokens, [runs * 2, 6], &device),
            &mut NoSites,
        );
        let flat: Vec<i64> = (0..runs as i64 * 2).map(|i| i * 6 + 5).collect();
        model
            .logits_at(r, int_tensor::<A, 1>(flat, [runs * 2], &device))
            .sum()
    }

    const SETTINGS: AdamWSettings = AdamWSettings {
        betas: [0.9, 0.98],
        eps: 1e-8,
        weight_decay: 0.1,
    };

    #[test]
    fn one_run_is_burns_adamw() {
        let device = Default::default();
        let cfg = ModelConfig::paper(MixerKind::Attention, 26, 16, 2);
        let mut ours = cfg.init::<A>(1, &device).unwrap();
        let mut theirs = ours.clone();
        let mut burn_optim = AdamWConfig::new()
            .with_beta_1(0.9)
            .with_beta_2(0.98)
            .with_epsilon(1e-8)
            .with_weight_decay(0.1)
            .init::<A, crate::model::LanguageModel<A>>();
        let mut optim = PackedAdamW::new(vec![SETTINGS]);
        for (step, lr) in [1e-3, 3e-3, 0.0, 2e-3].into_iter().enumerate() {
            let g = GradientsParams::from_grads(loss(&ours, 0, step as i64).backward(), &ours);
            ours = optim.step(ours, &g, &[lr]);
            let g = GradientsParams::from_grads(loss(&theirs, 0, step as i64).backward(), &theirs);
            theirs = burn_optim.step(lr, theirs, g);
            let (a, b) = (params(&ours), params(&theirs));
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-6 * y.abs().max(1e-3),
                    "step {step} param {i}: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn runs_in_a_group_update_as_alone_and_states_round_trip() {
        let device = Default::default();
        let cfg = ModelConfig::paper(MixerKind::Mamba, 26, 16, 2);
        let models: Vec<_> = (0..3).map(|s| cfg.init::<A>(s, &device).unwrap()).collect();
        let settings: Vec<AdamWSettings> = (0..3)
            .map(|r| AdamWSettings {
                weight_decay: 0.05 * r as f64,
                ..SETTINGS
            })
            .collect();
        let lrs = [1e-3, 3e-3, 1e-2];
        let mut packed = runs::stack(models.clone());
        let mut optim = PackedAdamW::new(settings.clone());
        for step in 0..3 {
            let g = GradientsParams::from_grads(loss(&packed, 0, step).backward(), &packed);
            packed = optim.step(packed, &g, &lrs);
        }
        for (r, model) in models.into_iter().enumerate() {
            let mut alone = model;
            let mut single = PackedAdamW::new(vec![settings[r]]);
            for step in 0..3 {
                let g = GradientsParams::from_grads(loss(&alone, r, step).backward(), &alone);
                alone = single.step(alone, &g, &[lrs[r]]);
            }
            let (a, b) = (params(&runs::pick(&packed, r, 3)), params(&alone));
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-6 * y.abs().max(1e-3),
                    "run {r} param {i}: {x} vs {y}"
                );
            }
            // A run's saved share is its state trained alone (to rounding: the gradients of a
            // stacked model are summed in another order).
            let (ours, alone) = (
                decode(&optim.run_state(r)).unwrap(),
                decode(&single.run_state(0)).unwrap(),
            );
            assert_eq!(ours.len(), alone.len());
            for (p, (x, y)) in ours.iter().zip(&alone).enumerate() {
                let ((tx, mx, vx), (ty, my, vy)) = (x.as_ref().unwrap(), y.as_ref().unwrap());
                assert_eq!(tx, ty);
                for (a, b) in mx.iter().zip(my).chain(vx.iter().zip(vy)) {
                    assert!(
                        (a - b).abs() <= 1e-5 * b.abs().max(1e-6),
                        "run {r} param {p}: {a} vs {b}"
                    );
                }
            }
        }
        let states: Vec<_> = (0..3).map(|r| optim.run_state(r)).collect();
        let restored = PackedAdamW::<Flex>::from_run_states(settings, &states, &device).unwrap();
        for (r, state) in states.iter().enumerate() {
            assert_eq!(&restored.run_state(r), state);
        }
        assert_eq!(optim.without_run(1).run_state(1), states[2]);
        assert!(matches!(
            PackedAdamW::<Flex>::from_run_states(vec![SETTINGS], &[b"junk".to_vec()], &device),
            Err(AdamWStateError::Format)
        ));
        let truncated = states[0][..states[0].len() - 3].to_vec();
        assert!(matches!(
            PackedAdamW::<Flex>::from_run_states(vec![SETTINGS], &[truncated], &device),
            Err(AdamWStateError::Truncated)
        ));
    }
}
