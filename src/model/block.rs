//! The pre-LN residual block shared by every mixer:
//!
//! ```text
//! r ─┬─► LN1 ─► Mixer ─► (+) ─┬─► LN2 ─► MLP ─► (+) ─► r'
//!    └────────────────────┘   └──────────────────┘
//! ```
//! Each named [`Site`] is visited at exactly one line below.

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Tensor, backend::Backend};

use super::init::Init;
use super::mixer::{Mixer, MixerKind, ModelError};
use super::mlp::Mlp;
use super::sites::{Site, Sites};

/// Reference LayerNorm epsilon.
pub const LN_EPS: f64 = 1e-5;

#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    pub layer: usize,
    pub norm1: LayerNorm<B>,
    pub mixer: Mixer<B>,
    pub norm2: Option<LayerNorm<B>>,
    pub mlp: Option<Mlp<B>>,
}

impl<B: Backend> Block<B> {
    pub fn init(
        layer: usize,
        kind: MixerKind,
        d_model: usize,
        layers: usize,
        mlp: bool,
        init: &mut Init<B>,
    ) -> Result<Self, ModelError> {
        let device = init.device();
        let norm = || {
            LayerNormConfig::new(d_model)
                .with_epsilon(LN_EPS)
                .init(device)
        };
        let norm1 = norm();
        let mixer = Mixer::init(kind, layer, d_model, layers, init)?;
        let (norm2, mlp) = if mlp {
            (Some(norm()), Some(Mlp::init(d_model, layers, init)))
        } else {
            (None, None)
        };
        Ok(Block {
            layer,
            norm1,
            mixer,
            norm2,
            mlp,
        })
    }

    /// # Shapes
    /// - `r_bsd`: residual stream `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, r_bsd: Tensor<B, 3>, sites: &mut dyn Sites<B>) -> Tensor<B, 3> {
        let l = self.layer;
        let r_bsd = sites.visit(l, Site::BlockInput, r_bsd);
        let h_bsd = sites.visit(l, Site::MixerInput, self.norm1.forward(r_bsd.clone()));
        let h_bsd = sites.visit(l, Site::MixerOutput, self.mixer.forward(h_bsd));
        let mut r_bsd = r_bsd + h_bsd;
        if let (Some(norm2), Some(mlp)) = (&self.norm2, &self.mlp) {
            let h_bsd = sites.visit(l, Site::MlpInput, norm2.forward(r_bsd.clone()));
            let h_bsd = sites.visit(l, Site::MlpOutput, mlp.forward(h_bsd));
            r_bsd = r_bsd + h_bsd;
        }
        sites.visit(l, Site::BlockOutput, r_bsd)
    }
}
