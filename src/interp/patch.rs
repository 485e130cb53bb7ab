//! Site visitors for patching: [`Capture`] keeps activations, [`Patch`] swaps clean activations
//! in at chosen positions of one (layer, site).

use std::collections::HashMap;
use std::sync::Arc;

use burn::tensor::{Tensor, backend::Backend};

use crate::model::{Site, Sites};

/// Records every visited activation by (layer, site), and, when `states` is `Some`, the
/// recurrent states of the layers that hand them over.
#[derive(Default)]
pub struct Capture<B: Backend> {
    pub acts: HashMap<(usize, Site), Tensor<B, 3>>,
    pub states: Option<HashMap<usize, Arc<Vec<f32>>>>,
}

impl<B: Backend> Sites<B> for Capture<B> {
    fn visit(&mut self, layer: usize, site: Site, x_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        self.acts.insert((layer, site), x_bsd.clone());
        x_bsd
    }

    fn wants_states(&self) -> bool {
        self.states.is_some()
    }

    fn keep_states(&mut self, layer: usize, states: Vec<f32>) {
        if let Some(kept) = &mut self.states {
            kept.insert(layer, Arc::new(states));
        }
    }
}

/// At (`layer`, `site`), replaces the activation where `mask_bs1` is 1 with `clean_bsd`.
/// `x·(1−m) + c·m` is exact for a 0/1 mask: unpatched positions keep their bits.
pub struct Patch<B: Backend> {
    pub layer: usize,
    pub site: Site,
    pub mask_bs1: Tensor<B, 3>,
    pub clean_bsd: Tensor<B, 3>,
}

impl<B: Backend> Sites<B> for Patch<B> {
    fn visit(&mut self, layer: usize, site: Site, x_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        if layer != self.layer || site != self.site {
            return x_bsd;
        }
        let keep = self.mask_bs1.clone().neg().add_scalar(1.0);
        x_bsd * keep + self.clean_bsd.clone() * self.mask_bs1.clone()
    }
}
