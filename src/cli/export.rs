//! `mechlab export`: a run's weights under the reference's state-dict names, or a collected
//! table with the runs' parameters joined in.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Subcommand;

use mechlab::report::export::tables::{FileFormat, export_table, write_table};
use mechlab::store::Table;

use super::args::{SpecArgs, parse_filter};
use super::choice::choice;
use super::{Context, say, warn_all};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Final weights of one run as safetensors, loadable into the reference PyTorch code.
    Weights {
        #[command(flatten)]
        spec: SpecArgs,
        /// The run's name (as `mechlab plan` prints it) or its train node id.
        #[arg(long)]
        run: String,
        /// Output file. Default: results/<experiment>/weights/<run>.safetensors.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A collected table (runs, metrics, interventions, interventions_detail, ablations), with
    /// the runs' parameters joined in, filtered, as Parquet or CSV.
    Table {
        #[command(flatten)]
        spec: SpecArgs,
        /// Which table.
        #[arg(long, value_parser = choice::<Table>())]
        table: Table,
        /// Keep rows where COLUMN equals VALUE (repeatable), e.g. `--filter model.mixer=based`.
        #[arg(long = "filter", value_name = "COLUMN=VALUE", value_parser = parse_filter)]
        filters: Vec<(String, String)>,
        #[arg(long, default_value = "parquet", value_parser = choice::<FileFormat>())]
        format: FileFormat,
        /// Output file. Default: results/<experiment>/export/<table>.<format>.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(args: &Args, cx: &Context) -> Result<ExitCode> {
    match &args.what {
        What::Weights { spec, run, out } => {
            let graph = spec.plan()?;
            let (n, path) =
                mechlab::report::export::export_run_weights(&graph, &cx.store, run, out.clone())
                    .with_context(|| spec.spec.display().to_string())?;
            say!("wrote {} tensors to {}", n, path.display());
        }
        What::Table {
            spec,
            table,
            filters,
            format,
            out,
        } => {
            let graph = spec.plan()?;
            // Collected now, in memory: exporting never rewrites the experiment's tables.
            let collected = mechlab::report::collect(&graph, &cx.store)?;
            warn_all(&collected.warnings);
            let mut df = export_table(&collected.tables, *table, filters)?;
            let path = out.clone().unwrap_or_else(|| {
                cx.store
                    .experiment(&graph.experiment)
                    .exported_table(*table, format.extension())
            });
            write_table(&mut df, &path, *format)?;
            say!(
                "{} rows × {} columns → {}",
                df.height(),
                df.width(),
                path.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
