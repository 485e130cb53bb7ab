//! Site visitors for patching: [`Capture`] keeps activations, [`Patch`] swaps clean activations
//! in at chosen positions of one (layer, site).

use std::collections::HashMap;

use burn::tensor::{Tensor, backend::Backend};

use crate::model::{Site, Sites};

/// Records every visited activation by (layer, site).
#[derive(Default)]
pub struct Capture<B: Backend> {
    pub acts: HashMap<(usize, Site), Tensor<B, 3>>,
}

impl<B: Backend> Sites<B> for Capture<B> {
    fn visit(&mut self, layer: usize, site: Site, x_bsd: Tensor<B, 3>) -> Tensor<B, 3> {
        self.acts.insert((layer, site), x_bsd.clone());
        x_bsd
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
