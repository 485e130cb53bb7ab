//! Parameters under the reference implementation's state-dict names (zoology / tinylang) and
//! PyTorch layouts. Each mixer lists its own (`reference_params` in its file, in the reference
//! module's order); `report::export::names` walks the backbone around them. Export reads through
//! these lists and import writes through them, so the two cannot drift apart.
//!
//! burn stores a Linear weight as `[in, out]`; PyTorch as `[out, in]`.

use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Tensor, backend::Backend};

use super::norm::Norm;

/// A parameter of any rank.
pub enum Slot<'a, B: Backend> {
    Vector(&'a mut Param<Tensor<B, 1>>),
    Matrix(&'a mut Param<Tensor<B, 2>>),
    Cube(&'a mut Param<Tensor<B, 3>>),
}

/// How the reference stores a parameter relative to mechlab.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    AsIs,
    /// A matrix stored transposed (Linear weights).
    Transposed,
    /// The same values with this shape (an extra unit axis).
    Reshaped(Vec<usize>),
}

/// One parameter under its reference name.
pub struct Named<'a, B: Backend> {
    pub name: String,
    pub slot: Slot<'a, B>,
    pub layout: Layout,
}

/// The parameters of a model (or a mixer) as the reference names them, in its order.
pub struct ParamTable<'a, B: Backend>(Vec<Named<'a, B>>);

impl<B: Backend> Default for ParamTable<'_, B> {
    fn default() -> Self {
        ParamTable(Vec::new())
    }
}

impl<'a, B: Backend> ParamTable<'a, B> {
    /// The parameters listed, in order.
    pub fn into_vec(self) -> Vec<Named<'a, B>> {
        self.0
    }

    pub fn add(&mut self, name: String, slot: Slot<'a, B>, layout: Layout) {
        self.0.push(Named { name, slot, layout });
    }

    pub fn linear(&mut self, prefix: &str, l: &'a mut Linear<B>) {
        self.add(
            format!("{prefix}.weight"),
            Slot::Matrix(&mut l.weight),
            Layout::Transposed,
        );
        if let Some(b) = &mut l.bias {
            self.add(format!("{prefix}.bias"), Slot::Vector(b), Layout::AsIs);
        }
    }

    pub fn layer_norm(&mut self, prefix: &str, n: &'a mut LayerNorm<B>) {
        self.add(
            format!("{prefix}.weight"),
            Slot::Vector(&mut n.gamma),
            Layout::AsIs,
        );
        if let Some(b) = &mut n.beta {
            self.add(format!("{prefix}.bias"), Slot::Vector(b), Layout::AsIs);
        }
    }

    pub fn norm(&mut self, prefix: &str, n: &'a mut Norm<B>) {
        match n {
            Norm::Layer(n) => self.layer_norm(prefix, n),
            Norm::Rms(n) => self.add(
                format!("{prefix}.weight"),
                Slot::Vector(&mut n.gamma),
                Layout::AsIs,
            ),
        }
    }

    /// A depthwise conv `[c, k]`, stored `[c, 1, k]`.
    pub fn conv(
        &mut self,
        prefix: &str,
        w: &'a mut Param<Tensor<B, 2>>,
        b: &'a mut Param<Tensor<B, 1>>,
    ) {
        let [c, k] = w.dims();
        self.add(
            format!("{prefix}.weight"),
            Slot::Matrix(w),
            Layout::Reshaped(vec![c, 1, k]),
        );
        self.add(format!("{prefix}.bias"), Slot::Vector(b), Layout::AsIs);
    }

    /// A depthwise conv `[c, k]` without bias, stored `[c, 1, k]`.
    pub fn conv_weight(&mut self, name: String, w: &'a mut Param<Tensor<B, 2>>) {
        let [c, k] = w.dims();
        self.add(name, Slot::Matrix(w), Layout::Reshaped(vec![c, 1, k]));
    }

    pub fn vector(&mut self, name: String, p: &'a mut Param<Tensor<B, 1>>) {
        self.add(name, Slot::Vector(p), Layout::AsIs);
    }

    /// A parameter stored with an extra leading unit axis.
    pub fn matrix_unit(&mut self, name: String, p: &'a mut Param<Tensor<B, 2>>) {
        let [a, b] = p.dims();
        self.add(name, Slot::Matrix(p), Layout::Reshaped(vec![1, a, b]));
    }
}

/// A tensor the reference's module holds besides its trained parameters (a buffer, a module
/// listed twice, an unused allocation), in PyTorch layout, as its state dict lists it.
pub struct Buffer {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}
