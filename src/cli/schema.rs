//! `mechlab schema`: write, or check, the JSON Schema of the spec format.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};

use super::say;

#[derive(clap::Args)]
pub struct Args {
    /// Fail if the committed schema differs instead of writing it.
    #[arg(long)]
    check: bool,
    #[arg(long, default_value = mechlab::spec::schema::SCHEMA_PATH)]
    out: PathBuf,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let text = mechlab::spec::schema::experiment_schema();
    let path = &args.out;
    if args.check {
        let committed = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        if committed != text {
            bail!(
                "{} is stale: run `mechlab schema` and commit the result",
                path.display()
            );
        }
        say!("{}: up to date", path.display());
    } else {
        mechlab::store::write_atomic(path, text.as_bytes())?;
        say!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
