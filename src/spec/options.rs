//! How a spec is layered and checked: the choices a command passes to [`super::load`].

/// How to layer a spec.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--profile NAME`: merge `[profile.NAME]` over the spec.
    pub profile: Option<String>,
    /// `--set key=value` overrides, in order (later wins). Values are TOML (`1e-3`, `"x"`,
    /// `[1, 2]`); anything that does not parse as TOML is taken as a string.
    pub sets: Vec<String>,
    /// Read `MECHLAB_<SECTION>__<KEY>` variables (on for the CLI; tests turn it off).
    pub env: bool,
    /// Refuse runs estimated to need more memory than this many bytes; `None`: this machine's
    /// memory ([`super::resources::machine_memory`]).
    pub max_memory: Option<u64>,
}
