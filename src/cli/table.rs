//! `mechlab table`: the report tables a spec declares, or a tables-only file composes from
//! several specs. Composition happens here: each source spec is loaded, planned and collected
//! (in memory, never rewriting its tables) once, and the tables are built from those.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use serde_json::Value;

use mechlab::plan::{RunGraph, plan};
use mechlab::report::table::{Format, Table, build, choose, render_all};
use mechlab::report::{ReportError, Tables, collect};
use mechlab::spec::batch::{Found, classify, load_tables_file};
use mechlab::spec::raw::TableSpec;
use mechlab::spec::{LoadOptions, load};
use mechlab::store::Store;

use super::args::SpecArgs;
use super::choice::choice;
use super::folder::each_spec;
use super::{Context, out, say, warn_all};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// Only this table (default: every table of the spec).
    #[arg(long)]
    name: Option<String>,
    #[arg(long, default_value = "terminal", value_parser = choice::<Format>())]
    format: Format,
}

pub fn run(args: &Args, cx: &Context) -> Result<ExitCode> {
    let batch = args.spec.spec.is_dir();
    let name = args.name.as_deref();
    each_spec(&args.spec, "table", None, |a| {
        let tables = if let Found::Tables(path) = classify(&a.spec) {
            let specs = load_tables_file(&path)?;
            let base = path.parent().unwrap_or(Path::new("."));
            compose(&specs, base, None, &cx.store, name, &a.load_options())
        } else {
            let resolved = a.resolve()?;
            if resolved.tables.is_empty() && batch {
                say!("{}: declares no tables", a.spec.display());
                return Ok(ExitCode::SUCCESS);
            }
            let graph = plan(&resolved);
            let base = resolved.source.parent().unwrap_or(Path::new("."));
            compose(
                &resolved.tables,
                base,
                Some(&graph),
                &cx.store,
                name,
                &a.load_options(),
            )
        }
        .with_context(|| a.spec.display().to_string())?;
        out(&render_all(&tables, args.format))?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Tables `specs` (only the one called `name`, if given): each from the runs of `own` (the
/// spec's own graph) or of the specs its `sources` list (loaded with `opts`, relative to
/// `base`), each experiment collected once however many tables use it.
fn compose(
    specs: &[TableSpec],
    base: &Path,
    own: Option<&RunGraph>,
    store: &Store,
    name: Option<&str>,
    opts: &LoadOptions,
) -> Result<Vec<Table>, ReportError> {
    // The own spec is the empty path.
    let mut experiments: Vec<(PathBuf, Tables)> = Vec::new();
    let mut built = Vec::new();
    for spec in choose(specs, name)? {
        let mut picks: Vec<(PathBuf, BTreeMap<String, Value>)> = Vec::new();
        if spec.sources.is_empty() {
            if own.is_none() {
                return Err(ReportError::Shard {
                    path: format!("table {}", spec.name),
                    message: "a tables-only file needs `sources` for every table".into(),
                });
            }
            picks.push((PathBuf::new(), BTreeMap::new()));
        }
        for source in &spec.sources {
            picks.push((base.join(&source.spec), source.filter.clone()));
        }
        for (path, _) in &picks {
            if experiments.iter().any(|(p, _)| p == path) {
                continue;
            }
            let graph = match own {
                Some(g) if path.as_os_str().is_empty() => g.clone(),
                _ => plan(&load(path, opts).map_err(|source| ReportError::Source {
                    path: path.clone(),
                    source: Box::new(source),
                })?),
            };
            let collected = collect(&graph, store)?;
            warn_all(&collected.warnings);
            experiments.push((path.clone(), collected.tables));
        }
        let sources: Vec<(&Tables, &BTreeMap<String, Value>)> = picks
            .iter()
            .map(|(path, filter)| {
                let (_, tables) = experiments
                    .iter()
                    .find(|(p, _)| p == path)
                    .expect("every source was collected above");
                (tables, filter)
            })
            .collect();
        built.push(build(spec, &sources)?);
    }
    Ok(built)
}
