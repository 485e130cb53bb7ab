//! What a model is, before it is built: sizes, the mixer and its own settings, positions, MLP and
//! initialisation, with the reference's defaults (each mixer's file says its own).

use serde::Serialize;

use super::kind::{ConfigProblem, MixerKind, MixerShape};
use super::mixer::MixerConfig;

/// Everything needed to build a model. Resolved from a spec's `[model]` (defaults filled) and
/// serialised as the `model` of a train node's hashed config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelConfig {
    /// Fixed by the task. Not serialised: the train node's id already depends on the dataset node,
    /// whose config fixes the task and so the vocabulary.
    #[serde(skip)]
    pub vocab_size: usize,
    pub d_model: usize,
    pub layers: usize,
    /// The mixer and its settings, serialised flat (`mixer = "mamba"`, `conv_kernel = […]`).
    #[serde(flatten)]
    pub mixer: MixerConfig,
    /// Learned absolute position embedding (paper: on for attention, off elsewhere).
    pub pos_emb: bool,
    /// Rows of the position table (reference: 1024).
    pub max_positions: usize,
    /// MLP after each mixer (reference: on, except in Mamba blocks).
    pub mlp: bool,
    /// Base σ of weights and embeddings (reference: 0.02; out-projections get σ/√(2·layers)).
    pub init_std: f64,
}

impl ModelConfig {
    /// The paper's model for `mixer`: the mixer as the reference configures it, learned
    /// positions only for attention, an MLP in every block except Mamba's, 1024 positions,
    /// σ = 0.02.
    pub fn paper(mixer: MixerKind, vocab_size: usize, d_model: usize, layers: usize) -> Self {
        ModelConfig {
            vocab_size,
            d_model,
            layers,
            mixer: mixer.reference(),
            pos_emb: mixer.info().default_pos_emb,
            max_positions: 1024,
            mlp: mixer.info().default_mlp,
            init_std: super::init::REFERENCE_INIT_STD,
        }
    }

    /// [`Self::paper`], except at widths where the reference has no model: Mamba-2's heads are
    /// 64 channels wide, so below d_model 32 (and wherever 64 does not divide 2·d_model) it gets
    /// heads of 8 channels and 16-wide states instead. What tests and benchmarks that cover
    /// every mixer at small widths build; a spec sets `model.heads` itself.
    pub fn fitted(mixer: MixerKind, vocab_size: usize, d_model: usize, layers: usize) -> Self {
        let mut cfg = Self::paper(mixer, vocab_size, d_model, layers);
        if let MixerConfig::Mamba2(c) = &mut cfg.mixer
            && c.heads(d_model) == 0
        {
            c.heads = Some((2 * d_model / 8).max(1));
            c.d_state = Some(16);
        }
        cfg
    }

    pub fn kind(&self) -> MixerKind {
        self.mixer.kind()
    }

    /// The sizes every mixer is built and checked against.
    pub fn shape(&self) -> MixerShape {
        MixerShape {
            d_model: self.d_model,
            layers: self.layers,
            max_positions: self.max_positions,
        }
    }

    /// Every problem of this configuration for its mixer.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        self.mixer.problems(&self.shape())
    }

    /// Whether some layer has implicit filters as long as `max_positions`.
    pub fn has_long_filters(&self) -> bool {
        self.mixer.long_filters(&self.shape())
    }

    /// Parameters the reference's model counts but mechlab does not build.
    pub fn reference_only_params(&self) -> usize {
        self.mixer.reference_only_params(&self.shape())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kind::MixerKeys;
    use crate::model::{ConvKernel, kind::LongConv};

    /// The hashed form of a model (node ids are its canonical JSON), written out as mechlab
    /// has serialised it since the first stored results: `mixer` by name beside the other keys,
    /// `conv_kernel` per layer and only where it differs from the reference's.
    #[test]
    fn the_serialised_model_is_the_one_node_ids_have_always_hashed() {
        let json = |mixer: MixerKind, conv: Option<Vec<ConvKernel>>| {
            let keys = MixerKeys {
                conv_kernel: conv,
                heads: None,
                d_state: None,
            };
            let cfg = ModelConfig {
                mixer: mixer.configure(&keys, 2).unwrap(),
                ..ModelConfig::paper(mixer, 26, 16, 2)
            };
            serde_json::to_value(&cfg).unwrap().to_string()
        };
        let base = |mixer: &str, pos: bool, mlp: bool, conv: &str| {
            format!(
                "{{{conv}\"d_model\":16,\"init_std\":0.02,\"layers\":2,\"max_positions\":1024,\
                 \"mixer\":\"{mixer}\",\"mlp\":{mlp},\"pos_emb\":{pos}}}"
            )
        };
        assert_eq!(
            json(MixerKind::Attention, None),
            base("attention", true, true, "")
        );
        for (kind, name) in [
            (MixerKind::Based, "based"),
            (MixerKind::BaseConv, "base_conv"),
            (MixerKind::H3, "h3"),
            (MixerKind::Hyena, "hyena"),
        ] {
            assert_eq!(json(kind, None), base(name, false, true, ""));
        }
        assert_eq!(
            json(MixerKind::Mamba, None),
            base("mamba", false, false, "")
        );
        let (taps, long) = (ConvKernel::Taps, ConvKernel::Long(LongConv::Long));
        // The reference's own kernels, written out, are the default: left out.
        assert_eq!(
            json(MixerKind::Mamba, Some(vec![taps(4); 2])),
            base("mamba", false, false, "")
        );
        assert_eq!(
            json(MixerKind::BaseConv, Some(vec![taps(3), long])),
            base("base_conv", false, true, "")
        );
        assert_eq!(
            json(MixerKind::Mamba, Some(vec![taps(2); 2])),
            base("mamba", false, false, "\"conv_kernel\":[2,2],")
        );
        assert_eq!(
            json(MixerKind::Based, Some(vec![long; 2])),
            base("based", false, true, "\"conv_kernel\":[\"long\",\"long\"],")
        );
        assert_eq!(
            json(MixerKind::BaseConv, Some(vec![taps(3); 2])),
            base("base_conv", false, true, "\"conv_kernel\":[3,3],")
        );
        assert_eq!(
            json(MixerKind::DeltaNet, Some(vec![taps(4); 2])),
            base("delta_net", false, true, "")
        );
        let heads = |heads| {
            let keys = MixerKeys {
                conv_kernel: Some(vec![taps(2); 2]),
                heads: Some(heads),
                ..Default::default()
            };
            let cfg = ModelConfig {
                mixer: MixerKind::DeltaNet.configure(&keys, 2).unwrap(),
                ..ModelConfig::paper(MixerKind::DeltaNet, 26, 16, 2)
            };
            serde_json::to_value(&cfg).unwrap().to_string()
        };
        // The reference's 2 heads are the default (left out); others are hashed.
        assert_eq!(
            heads(2),
            base("delta_net", false, true, "\"conv_kernel\":[2,2],")
        );
        assert_eq!(
            heads(4),
            "{\"conv_kernel\":[2,2],\"d_model\":16,\"heads\":4,\"init_std\":0.02,\"layers\":2,\
             \"max_positions\":1024,\"mixer\":\"delta_net\",\"mlp\":true,\"pos_emb\":false}"
        );
    }

    #[test]
    fn a_key_the_mixer_has_no_use_for_is_refused_by_the_mixer() {
        let keys = MixerKeys {
            conv_kernel: Some(vec![ConvKernel::Taps(3); 2]),
            heads: None,
            d_state: None,
        };
        for kind in [
            MixerKind::Attention,
            MixerKind::H3,
            MixerKind::Hyena,
            MixerKind::Gla,
        ] {
            let problems = kind.configure(&keys, 2).unwrap_err();
            assert_eq!(problems.len(), 1, "{kind:?}");
            assert_eq!(problems[0].key, "model.conv_kernel");
            assert!(
                problems[0]
                    .message
                    .contains("has no configurable convolution"),
                "{kind:?}: {}",
                problems[0].message
            );
        }
        let heads = MixerKeys {
            heads: Some(4),
            ..Default::default()
        };
        for kind in MixerKind::ALL {
            let result = kind.configure(&heads, 2);
            if matches!(
                kind,
                MixerKind::DeltaNet | MixerKind::Gla | MixerKind::Mamba2
            ) {
                assert!(result.is_ok());
                continue;
            }
            let problems = result.unwrap_err();
            assert_eq!(problems[0].key, "model.heads", "{kind:?}");
            assert!(problems[0].message.contains("has no configurable heads"));
        }
        let d_state = MixerKeys {
            d_state: Some(16),
            ..Default::default()
        };
        for kind in MixerKind::ALL {
            let result = kind.configure(&d_state, 2);
            if kind == MixerKind::Mamba2 {
                assert!(result.is_ok());
                continue;
            }
            let problems = result.unwrap_err();
            assert_eq!(problems[0].key, "model.d_state", "{kind:?}");
            assert!(problems[0].message.contains("has no configurable d_state"));
        }
    }
}
