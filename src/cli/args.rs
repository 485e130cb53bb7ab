//! Arguments several commands share: the spec (file or folder) with its profile, overrides and
//! memory bound, and the small value parsers.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;

use mechlab::spec::{LoadOptions, Resolved, RunPoint, load};

#[derive(Args, Clone)]
pub struct SpecArgs {
    /// The experiment spec (TOML), or a folder: every experiment spec in it, in path order
    /// (files without an `[experiment]` table are include fragments, skipped).
    pub spec: PathBuf,
    /// Merge `[profile.NAME]` over the spec.
    #[arg(long)]
    pub profile: Option<String>,
    /// Override a key: `--set train.lr=1e-3` (repeatable; TOML values).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Refuse runs estimated to need more memory than this (`64G`, `512M`); default: this
    /// machine's memory.
    #[arg(
        long,
        value_name = "SIZE",
        env = "MECHLAB_MAX_MEMORY",
        value_parser = mechlab::spec::resources::parse_size
    )]
    pub max_memory: Option<u64>,
}

impl SpecArgs {
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            profile: self.profile.clone(),
            sets: self.sets.clone(),
            env: true,
            max_memory: self.max_memory,
        }
    }

    /// The spec loaded and resolved; its warnings printed.
    pub fn resolve(&self) -> Result<Resolved> {
        let resolved = load(&self.spec, &self.load_options())?;
        super::warn_all(&resolved.warnings);
        Ok(resolved)
    }

    /// The spec resolved and planned.
    pub fn plan(&self) -> Result<mechlab::plan::RunGraph> {
        Ok(mechlab::plan::plan(&self.resolve()?))
    }
}

/// The run `run` (default: the first) of the spec.
pub fn pick_run<'r>(resolved: &'r Resolved, run: Option<&str>) -> Result<&'r RunPoint> {
    match run {
        Some(name) => resolved
            .runs
            .iter()
            .find(|r| r.name == name)
            .with_context(|| {
                let names: Vec<&str> = resolved.runs.iter().map(|r| r.name.as_str()).collect();
                format!("--run {name}: no such run; runs: {}", names.join(", "))
            }),
        None => resolved.runs.first().context("the spec expands to no runs"),
    }
}

pub fn parse_finite(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err("expected a finite number".into()),
    }
}

pub fn parse_filter(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| "expected COLUMN=VALUE".into())
}
