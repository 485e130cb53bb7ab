//! `mechlab plot`: the paper's figure types from the results so far.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use mechlab::model::Site;
use mechlab::report::plot::{ImageFormat, Kind, PlotOptions, plot_all};

use super::args::{SpecArgs, parse_finite};
use super::choice::choice;
use super::folder::each_spec;
use super::{Context, say, warn_all};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// Figure kinds (repeatable; default: all).
    #[arg(long = "kind", value_parser = choice::<Kind>())]
    kinds: Vec<Kind>,
    /// Attrib figures keep runs whose corruption moves the clean answer's probability by
    /// more than this (mean p_orig − mean p_corr). Default: the reference's, 0.01 for AR and
    /// MQAR, 0.1 for ATR.
    #[arg(long, value_parser = parse_finite)]
    threshold: Option<f64>,
    #[arg(long, default_value = "both", value_parser = choice::<ImageFormat>())]
    format: ImageFormat,
    /// The intervention site of the Attrib figures.
    #[arg(long, default_value = "block_input", value_parser = choice::<Site>())]
    site: Site,
    /// Output directory. Default: results/<experiment>/figures.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: &Args, cx: &Context) -> Result<ExitCode> {
    let batch = args.spec.spec.is_dir();
    let opts = PlotOptions {
        format: args.format,
        site: args.site.name().to_string(),
        threshold: args.threshold,
    };
    each_spec(&args.spec, "plot", None, |a| {
        // A folder's figures go to one subfolder per spec under --out.
        let out = match (&args.out, batch) {
            (Some(o), true) => Some(o.join(a.spec.file_stem().unwrap_or_default())),
            (o, _) => o.clone(),
        };
        let graph = a.plan()?;
        // Collected now, in memory: drawing never rewrites the experiment's tables.
        let collected = mechlab::report::collect(&graph, &cx.store)?;
        warn_all(&collected.warnings);
        let out = out.unwrap_or_else(|| cx.store.experiment(&graph.experiment).figures());
        for (kind, files) in plot_all(&collected.tables, &args.kinds, &out, &opts)? {
            for f in files {
                say!("{}: {}", kind.name(), f.display());
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
