//! The run axis: one model object that holds `R` independent models of the same shape, so that a
//! learning-rate × seed group trains as one program and pays each operation's overhead once.
//!
//! Every parameter keeps its rank; its first dimension is `R` blocks of the single-run size
//! (`[R·d_in, d_out]` for a Linear weight, `[R·d]` for a norm's γ). A single run (`R = 1`) is
//! therefore exactly today's model: same shapes, same records, same exported names, and the
//! intervention code never sees the run axis. Activations are run-major along the batch
//! dimension: rows `r·B .. (r+1)·B` of a `[R·B, s, d]` tensor belong to run `r`. Operations that
//! act on each row alone (attention scores, elementwise maps, causal convolutions) need nothing;
//! the helpers below are the places where a parameter meets an activation.
//!
//! `R` is never stored: each helper reads it from a parameter's first dimension divided by the
//! width the activation brings (`d_in` of a Linear is the activation's last dimension).
//!
//! Shape letters: r runs, b batch rows of one run, s sequence, i/o in/out widths.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::nn::Linear;
use burn::tensor::{Tensor, backend::Backend};

/// Runs held by a parameter whose single-run first dimension is `single`.
///
/// # Panics
/// When the parameter is not a whole number of single-run blocks: an internal invariant (the
/// model was built or stacked wrongly), never a consequence of user input.
pub fn runs_of(first_dim: usize, single: usize) -> usize {
    assert!(
        single > 0 && first_dim.is_multiple_of(single),
        "parameter of {first_dim} rows is not a whole number of runs of {single}"
    );
    first_dim / single
}

/// `x·W + b` for each run's rows: `[R·b, s, i]` → `[R·b, s, o]`, with `W: [R·i, o]`.
pub fn linear<B: Backend>(layer: &Linear<B>, x_bsi: Tensor<B, 3>) -> Tensor<B, 3> {
    let [rb, s, i] = x_bsi.dims();
    let y = linear_rows(layer, x_bsi.reshape([rb * s, i]), runs_of_linear(layer, i));
    let [_, o] = y.dims();
    y.reshape([rb, s, o])
}

/// [`linear`] on run-major rows `[R·n, i]` → `[R·n, o]`.
pub fn linear_2d<B: Backend>(layer: &Linear<B>, x_ni: Tensor<B, 2>) -> Tensor<B, 2> {
    let [_, i] = x_ni.dims();
    linear_rows(layer, x_ni, runs_of_linear(layer, i))
}

fn runs_of_linear<B: Backend>(layer: &Linear<B>, d_in: usize) -> usize {
    runs_of(layer.weight.dims()[0], d_in)
}

fn linear_rows<B: Backend>(layer: &Linear<B>, x_ni: Tensor<B, 2>, runs: usize) -> Tensor<B, 2> {
    let [n, i] = x_ni.dims();
    let [_, o] = layer.weight.dims();
    let per_run = n / runs;
    let w_rio = layer.weight.val().reshape([runs, i, o]);
    let mut y_rno = x_ni.reshape([runs, per_run, i]).matmul(w_rio);
    if let Some(bias) = &layer.bias {
        y_rno = y_rno + per_run_rows(bias.val(), runs, per_run);
    }
    y_rno.reshape([n, o])
}

/// Run `r`'s vector `v[r·c..(r+1)·c]` for each of `rows` rows of run `r`: `[R·c]` →
/// `[R, rows, c]`, to combine elementwise with `[R, rows, c]` activations.
///
/// The rows are written out, as the product `1_{rows×1}·v_{1×c}` per run: burn's CPU backend has
/// fast paths for a row shared by every outer index but not for a row per run (it falls back to
/// an element-by-element strided walk several times slower), and the product's gradient is again
/// a product (`1ᵀ·g`) instead of a strided reduction. Training does this at every run count, so
/// a run computes the same in a group as alone; inference of one run gets `[1, 1, c]`, which the
/// backend broadcasts on its fast path. All are exact: `1·v = v`.
pub fn per_run_rows<B: Backend>(v: Tensor<B, 1>, runs: usize, rows: usize) -> Tensor<B, 3> {
    let [rc] = v.dims();
    let c = rc / runs;
    if runs == 1 && !B::ad_enabled(&v.device()) {
        return v.reshape([1, 1, c]);
    }
    written_rows(v, runs, rows)
}

/// [`per_run_rows`] always written out: `[R·c]` → `[R, rows, c]`.
pub fn written_rows<B: Backend>(v: Tensor<B, 1>, runs: usize, rows: usize) -> Tensor<B, 3> {
    let [rc] = v.dims();
    let c = rc / runs;
    let ones = Tensor::<B, 3>::ones([runs, rows, 1], &v.device());
    ones.matmul(v.reshape([runs, 1, c]))
}

/// A per-run, per-channel vector `[R·c]` times `[R·b, s, c]` activations, run by run.
pub fn scale_channels<B: Backend>(x_bsc: Tensor<B, 3>, v_rc: Tensor<B, 1>) -> Tensor<B, 3> {
    let [rb, s, c] = x_bsc.dims();
    let [rc] = v_rc.dims();
    let runs = runs_of(rc, c);
    let rows = rb / runs * s;
    (x_bsc.reshape([runs, rows, c]) * per_run_rows(v_rc, runs, rows)).reshape([rb, s, c])
}

/// A per-run, per-channel vector `[R·c]` plus `[R·b, s, c]` activations, run by run.
pub fn shift_channels<B: Backend>(x_bsc: Tensor<B, 3>, v_rc: Tensor<B, 1>) -> Tensor<B, 3> {
    let [rb, s, c] = x_bsc.dims();
    let [rc] = v_rc.dims();
    let runs = runs_of(rc, c);
    let rows = rb / runs * s;
    (x_bsc.reshape([runs, rows, c]) + per_run_rows(v_rc, runs, rows)).reshape([rb, s, c])
}

/// Adds run `r`'s table (position embeddings) to every row of run `r`:
/// `[R·b, s, c]` + `[R, s, c]`.
pub fn add_per_run<B: Backend>(x_bsc: Tensor<B, 3>, t_rsc: Tensor<B, 3>) -> Tensor<B, 3> {
    let [rb, s, c] = x_bsc.dims();
    let [runs, _, _] = t_rsc.dims();
    let table = per_run_rows(t_rsc.reshape([runs * s * c]), runs, rb / runs);
    (x_bsc.reshape([runs, rb / runs, s * c]) + table).reshape([rb, s, c])
}

/// Parameters of one model in visiting order, flattened, with their shapes: what stacking
/// concatenates.
struct Collect<B: Backend> {
    params: Vec<(Tensor<B, 1>, Vec<usize>)>,
}

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let dims = t.dims().to_vec();
        let n: usize = dims.iter().product();
        self.params.push((t.reshape([n]), dims));
    }
}

/// Replaces the k-th parameter by the concatenation of every model's k-th parameter.
struct Concatenate<B: Backend> {
    per_model: Vec<Vec<(Tensor<B, 1>, Vec<usize>)>>,
    next: usize,
}

impl<B: Backend> ModuleMapper<B> for Concatenate<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let k = self.next;
        self.next += 1;
        let require_grad = param.is_require_grad();
        let mut dims: [usize; D] = param.val().dims();
        let parts: Vec<Tensor<B, 1>> = self
            .per_model
            .iter()
            .map(|p| p[k].0.clone().detach())
            .collect();
        dims[0] *= parts.len();
        let stacked = Tensor::cat(parts, 0).reshape(dims).detach();
        let stacked = if require_grad {
            stacked.require_grad()
        } else {
            stacked
        };
        Param::initialized(ParamId::new(), stacked)
    }
}

/// Keeps run `run` of `runs` in every parameter.
struct Pick {
    run: usize,
    runs: usize,
}

impl<B: Backend> ModuleMapper<B> for Pick {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let require_grad = param.is_require_grad();
        let t = param.val();
        let dims: [usize; D] = t.dims();
        let rows = dims[0] / self.runs;
        let picked = t.narrow(0, self.run * rows, rows).detach();
        let picked = if require_grad {
            picked.require_grad()
        } else {
            picked
        };
        Param::initialized(ParamId::new(), picked)
    }
}

/// One model holding every model of `models` (which must have one run each and equal shapes),
/// run `r` being `models[r]`.
pub fn stack<B: Backend, M: Module<B>>(models: Vec<M>) -> M {
    let per_model: Vec<_> = models
        .iter()
        .map(|m| {
            let mut c = Collect { params: Vec::new() };
            m.visit(&mut c);
            c.params
        })
        .collect();
    if let Some(first) = per_model.first() {
        for other in &per_model[1..] {
            let same =
                other.len() == first.len() && other.iter().zip(first).all(|(a, b)| a.1 == b.1);
            assert!(same, "stacked models must have equal parameter shapes");
        }
    }
    let template = models.into_iter().next().expect("at least one model");
    template.map(&mut Concatenate { per_model, next: 0 })
}

/// Run `run` of a model holding `runs` runs, as a model of one run.
pub fn pick<B: Backend, M: Module<B>>(model: &M, run: usize, runs: usize) -> M {
    model.clone().map(&mut Pick { run, runs })
}

/// Every run of a model holding `runs` runs.
pub fn split<B: Backend, M: Module<B>>(model: &M, runs: usize) -> Vec<M> {
    (0..runs).map(|r| pick(model, r, runs)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::int_tensor;
    use crate::model::{LanguageModel, MixerKind, ModelConfig, NoSites};
    use burn::backend::{Autodiff, Flex};

    type A = Autodiff<Flex>;

    fn values<const D: usize, B: Backend>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().convert::<f32>().to_vec().unwrap()
    }

    /// Logits at the last position of every row, and the gradient of their mean log-probability
    /// of token 3 with respect to the word embeddings (input and tied head).
    fn logits_and_grad(
        model: &LanguageModel<A>,
        tokens: Vec<i64>,
        rows: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let device = Default::default();
        let s = tokens.len() / rows;
        let r = model.residual(int_tensor::<A, 2>(tokens, [rows, s], &device), &mut NoSites);
        let flat: Vec<i64> = (0..rows).map(|i| (i * s + s - 1) as i64).collect();
        let logits = model.logits_at(r, int_tensor::<A, 1>(flat, [rows], &device));
        let loss = burn::tensor::activation::log_softmax(logits.clone(), 1)
            .slice([0..rows, 3..4])
            .sum();
        let grads = loss.backward();
        let g = model.word_embeddings.weight.grad(&grads).unwrap();
        (values(logits), values(g))
    }

    #[test]
    fn a_stacked_model_computes_each_run_as_alone_for_every_mixer() {
        let device = Default::default();
        let (runs, rows, s) = (3, 2, 7);
        for kind in MixerKind::ALL {
            let cfg = ModelConfig {
                max_positions: 16,
                pos_emb: true,
                ..ModelConfig::fitted(kind, 26, 16, 2)
            };
            let models: Vec<LanguageModel<A>> = (0..runs)
                .map(|seed| cfg.init::<A>(seed as u64 + 1, &device).unwrap())
                .collect();
            let tokens: Vec<Vec<i64>> = (0..runs)
                .map(|r| {
                    (0..rows * s)
                        .map(|i| ((i * 5 + r * 7 + 1) % 26) as i64)
                        .collect()
                })
                .collect();
            let packed = stack(models.clone());
            assert_eq!(packed.runs(), runs, "{kind:?}");
            let (logits, grad) = logits_and_grad(&packed, tokens.concat(), runs * rows);
            let per_logits = logits.len() / runs;
            let per_grad = grad.len() / runs;
            for (r, model) in models.iter().enumerate() {
                let (want_logits, want_grad) = logits_and_grad(model, tokens[r].clone(), rows);
                for (what, got, want) in [
                    (
                        "logits",
                        &logits[r * per_logits..(r + 1) * per_logits],
                        &want_logits,
                    ),
                    (
                        "gradient",
                        &grad[r * per_grad..(r + 1) * per_grad],
                        &want_grad,
                    ),
                ] {
                    let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                    for (j, (a, b)) in got.iter().zip(want.iter()).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-5 * scale,
                            "{kind:?} run {r} {what} {j}: {a} vs {b}"
                        );
                    }
                }
            }
            // Splitting gives back the models, bit for bit.
            for (r, (picked, model)) in split(&packed, runs).iter().zip(&models).enumerate() {
                let (mut a, mut b) = (
                    Collect { params: Vec::new() },
                    Collect { params: Vec::new() },
                );
                picked.visit(&mut a);
                model.visit(&mut b);
                assert_eq!(a.params.len(), b.params.len());
                for ((x, dx), (y, dy)) in a.params.into_iter().zip(b.params) {
                    assert_eq!(dx, dy, "{kind:?} run {r}");
                    assert_eq!(values(x), values(y), "{kind:?} run {r}");
                }
            }
        }
    }
}
