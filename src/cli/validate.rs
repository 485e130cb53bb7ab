//! `mechlab validate`: a spec (or a tables-only file) loads, with every error located.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use mechlab::plan::{NodeKind, plan};
use mechlab::spec::batch::{Found, classify, load_tables_file};
use mechlab::spec::{load, profiles};

use super::args::SpecArgs;
use super::folder::each_spec;
use super::say;

pub fn run(args: &SpecArgs) -> Result<ExitCode> {
    each_spec(args, "validate", None, one)
}

fn one(args: &SpecArgs) -> Result<ExitCode> {
    if let Found::Tables(path) = classify(&args.spec) {
        // A tables-only file: its tables parse and every source spec loads.
        let tables = load_tables_file(&path)?;
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        let mut sources: Vec<PathBuf> = tables
            .iter()
            .flat_map(|t| t.sources.iter().map(|s| base.join(&s.spec)))
            .collect();
        sources.sort();
        sources.dedup();
        for source in &sources {
            load(source, &args.load_options())
                .with_context(|| format!("{}: a table source", path.display()))?;
        }
        say!(
            "{}: ok: {} tables over {} source specs",
            path.display(),
            tables.len(),
            sources.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let resolved = args.resolve()?;
    let graph = plan(&resolved);
    say!(
        "{}: ok: experiment \"{}\", {} runs ({} dataset, {} train and {} evaluate nodes)",
        args.spec.display(),
        resolved.experiment,
        resolved.runs.len(),
        graph.count(NodeKind::Dataset),
        graph.count(NodeKind::Train),
        graph.count(NodeKind::Evaluate)
    );
    if args.profile.is_none() {
        let names = profiles(&args.spec)?;
        if !names.is_empty() {
            say!("  profiles: {} (--profile NAME)", names.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
