//! What mechlab's own CPU operations share ([`super::scan_cpu`], [`super::gelu_cpu`],
//! [`super::xent_cpu`]): each is an operation of burn's `flex` backend with its own backward pass
//! (burn's `Backward` trait), reached from generic model code by downcasting: when the backend
//! is `Autodiff<Flex>` (training) or `Flex` (inference) the operation runs, otherwise the tensor
//! operations it replaces do.

use std::any::Any;

use burn::backend::Autodiff;
use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::tensor::Tensor;

/// The CPU training backend these operations extend.
pub type Ad = Autodiff<Flex, NoCheckpointing>;

/// `t` seen as a `U`, when it is one (the generic model code's tensor of the CPU backend).
pub fn view<T: Any, U: Any>(t: &T) -> Option<&U> {
    (t as &dyn Any).downcast_ref::<U>()
}

/// `t` as type `U`, which it is when the caller's downcast of the same generic value succeeded.
pub fn cast<T: Any, U: Any>(t: T) -> Option<U> {
    (Box::new(t) as Box<dyn Any>)
        .downcast::<U>()
        .ok()
        .map(|b| *b)
}

/// A `flex` tensor's values on the host (a copy: the CPU backend's memory is the host's).
pub fn host<const D: usize>(t: Tensor<Flex, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().expect("f32 tensor")
}
