//! What mechlab's own CPU operations share ([`super::scan_cpu`], [`super::gelu_cpu`],
//! [`super::xent_cpu`], [`super::conv_cpu`], the recurrences [`super::delta_rule_cpu`],
//! [`super::gla_rule_cpu`] and [`super::ssd_rule_cpu`]): each is an operation of burn's `flex`
//! backend with its own backward pass (burn's `Backward` trait), reached from generic model code
//! by downcasting: when the backend is `Autodiff<Flex>` (training) or `Flex` (inference) the
//! operation runs, otherwise the tensor operations it replaces do.
//!
//! `MECHLAB_GENERIC_OPS=1` turns them off, so that the CPU runs the tensor operations every other
//! backend (CUDA, wgpu) runs: CI runs the model, training, packing and intervention tests both
//! ways, which is how the accelerators' code path is tested on every commit without one.

use std::any::Any;
use std::cell::Cell;
use std::sync::OnceLock;

use burn::backend::Autodiff;
use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::tensor::Tensor;

/// The CPU training backend these operations extend.
pub type Ad = Autodiff<Flex, NoCheckpointing>;

/// The environment variable that turns the fused CPU operations off (`1` or `true`).
pub const GENERIC_OPS_ENV: &str = "MECHLAB_GENERIC_OPS";

thread_local! {
    /// A test's choice for its own thread, over the environment's.
    static FORCED: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Whether the fused CPU operations run (on the CPU backend; other backends never have them).
pub fn fused_enabled() -> bool {
    static FROM_ENV: OnceLock<bool> = OnceLock::new();
    FORCED.with(Cell::get).unwrap_or_else(|| {
        *FROM_ENV.get_or_init(|| {
            !std::env::var(GENERIC_OPS_ENV).is_ok_and(|v| matches!(v.as_str(), "1" | "true"))
        })
    })
}

/// Runs `f` on this thread with the fused operations on or off whatever the environment says:
/// for tests that compare the two paths.
pub fn with_fused<R>(on: bool, f: impl FnOnce() -> R) -> R {
    let before = FORCED.with(|c| c.replace(Some(on)));
    let out = f();
    FORCED.with(|c| c.set(before));
    out
}

/// `t` seen as a `U`, when it is one (the generic model code's tensor of the CPU backend).
pub fn view<T: Any, U: Any>(t: &T) -> Option<&U> {
    (t as &dyn Any).downcast_ref::<U>()
}

/// All of `ts` seen as `U`, when every one is one: a fused operation's inputs, which run fused
/// only together.
pub fn view_all<T: Any, U: Any, const N: usize>(ts: [&T; N]) -> Option<[&U; N]> {
    let mut out = Vec::with_capacity(N);
    for t in ts {
        out.push(view::<T, U>(t)?);
    }
    out.try_into().ok()
}

/// `t` as type `U`, which it is when the caller's downcast of the same generic value succeeded.
pub fn cast<T: Any, U: Any>(t: T) -> Option<U> {
    (Box::new(t) as Box<dyn Any>)
        .downcast::<U>()
        .ok()
        .map(|b| *b)
}

/// A `flex` tensor's values on the host: its own buffer when the tensor is contiguous and not
/// shared (no copy), one copy otherwise (`into_data` copies shared or strided tensors;
/// `to_vec` would copy once more).
pub fn host<const D: usize>(t: Tensor<Flex, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec()
        .expect("f32 tensor")
}
