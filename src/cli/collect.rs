//! `mechlab collect`: the experiment's tables rebuilt from the store.

use std::process::ExitCode;

use anyhow::Result;

use super::args::SpecArgs;
use super::folder::each_spec;
use super::{Context, say, warn_all};

pub fn run(args: &SpecArgs, cx: &Context) -> Result<ExitCode> {
    each_spec(args, "collect", None, |a| {
        let graph = a.plan()?;
        let s = mechlab::report::collect(&graph, &cx.store)?;
        warn_all(&s.warnings);
        say!(
            "collected {} runs ({} done, {} metric rows, {} intervention rows) into {}",
            s.runs,
            s.done,
            s.metric_rows,
            s.intervention_rows,
            s.tables.path().display()
        );
        Ok(ExitCode::SUCCESS)
    })
}
