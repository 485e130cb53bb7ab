//! The pre-norm residual block shared by every mixer:
//!
//! ```text
//! r ─┬─► N1 ─► Mixer ─► (+) ─┬─► N2 ─► MLP ─► (+) ─► r'
//!    └───────────────────┘   └─────────────────┘
//! ```
//! Standard blocks use LayerNorm and an MLP; Mamba blocks RMSNorm and, by default, no MLP.
//! Each named [`Site`] is visited at exactly one line below.

use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use super::config::ModelConfig;
use super::init::Init;
use super::kind::ModelError;
use super::mixer::Mixer;
use super::mlp::Mlp;
use super::norm::Norm;
use super::sites::{Site, Sites};

#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    pub layer: usize,
    pub norm1: Norm<B>,
    pub mixer: Mixer<B>,
    pub norm2: Option<Norm<B>>,
    pub mlp: Option<Mlp<B>>,
}

impl<B: Backend> Block<B> {
    pub fn init(layer: usize, cfg: &ModelConfig, init: &mut Init<B>) -> Result<Self, ModelError> {
        let device = init.device();
        let d_model = cfg.d_model;
        let norm = || {
            if cfg.kind().info().rms_norm {
                Norm::rms(d_model, device)
            } else {
                Norm::layer(d_model, device)
            }
        };
        let norm1 = norm();
        let mixer = Mixer::init(&cfg.mixer, &cfg.shape(), layer, init)?;
        let (norm2, mlp) = if cfg.mlp {
            (Some(norm()), Some(Mlp::init(d_model, cfg.layers, init)))
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
        let h_bsd = self.mixer.forward(h_bsd, l, sites);
        let h_bsd = sites.visit(l, Site::MixerOutput, h_bsd);
        let mut r_bsd = r_bsd + h_bsd;
        if let (Some(norm2), Some(mlp)) = (&self.norm2, &self.mlp) {
            let h_bsd = sites.visit(l, Site::MlpInput, norm2.forward(r_bsd.clone()));
            let h_bsd = sites.visit(l, Site::MlpOutput, mlp.forward(h_bsd));
            r_bsd = r_bsd + h_bsd;
        }
        sites.visit(l, Site::BlockOutput, r_bsd)
    }

    /// The block from `site` on, for sites after the mixer, where the block acts position by
    /// position: `x` is the site's activation, `r_bsd` the block input and `h_bsd` the mixer
    /// output at the same positions (read only by the `mlp_*` sites). Any subset of positions may
    /// be passed (`seq` may be 1), which is what makes patching after the mixer cheap. Returns the
    /// block output, or `None` for a site before the mixer or one this block lacks.
    ///
    /// # Shapes
    /// - `x_bsw`, `r_bsd`, `h_bsd`: `[batch, seq, ·]` → `[batch, seq, d_model]`
    pub fn resume_after_mixer(
        &self,
        site: Site,
        x_bsw: Tensor<B, 3>,
        r_bsd: Tensor<B, 3>,
        h_bsd: Option<Tensor<B, 3>>,
    ) -> Option<Tensor<B, 3>> {
        // Same operations in the same order as `forward`, so unpatched values agree bit for bit.
        let mlp = || self.norm2.as_ref().zip(self.mlp.as_ref());
        match site {
            Site::MixerOutput => {
                let r_bsd = r_bsd + x_bsw;
                Some(match mlp() {
                    Some((norm2, mlp)) => {
                        let h_bsd = mlp.forward(norm2.forward(r_bsd.clone()));
                        r_bsd + h_bsd
                    }
                    None => r_bsd,
                })
            }
            Site::MlpInput => mlp()
                .zip(h_bsd)
                .map(|((_, mlp), h_bsd)| r_bsd + h_bsd + mlp.forward(x_bsw)),
            Site::MlpOutput => mlp().zip(h_bsd).map(|(_, h_bsd)| r_bsd + h_bsd + x_bsw),
            Site::BlockOutput => Some(x_bsw),
            Site::BlockInput | Site::MixerInput | Site::AttnPattern | Site::ConvOutput => None,
        }
    }
}
