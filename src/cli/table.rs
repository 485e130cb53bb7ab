//! `mechlab table`: the report tables a spec declares, or a tables-only file composes from
//! several specs.

use std::process::ExitCode;

use anyhow::{Context as _, Result};

use mechlab::report::table::{Format, compose, render_all, spec_tables};
use mechlab::spec::batch::{Found, classify, load_tables_file};

use super::args::SpecArgs;
use super::choice::choice;
use super::folder::each_spec;
use super::{Context, out, say};

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
            let base = path.parent().unwrap_or(std::path::Path::new("."));
            compose(&specs, base, None, &cx.store, name, &a.load_options())
        } else {
            let resolved = a.resolve()?;
            if resolved.tables.is_empty() && batch {
                say!("{}: declares no tables", a.spec.display());
                return Ok(ExitCode::SUCCESS);
            }
            let graph = mechlab::plan::plan(&resolved);
            spec_tables(&resolved, &graph, &cx.store, name, &a.load_options())
        }
        .with_context(|| a.spec.display().to_string())?;
        out(&render_all(&tables, args.format))?;
        Ok(ExitCode::SUCCESS)
    })
}
