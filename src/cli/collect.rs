//! `mechlab collect`: the experiment's tables rebuilt from the store.

use std::process::ExitCode;

use anyhow::Result;

use super::args::SpecArgs;
use super::folder::each_spec;
use super::{Context, say, warn_all};

pub fn run(args: &SpecArgs, cx: &Context) -> Result<ExitCode> {
    each_spec(args, "collect", None, |a| {
        let graph = a.plan()?;
        let collected = mechlab::report::collect(&graph, &cx.store)?;
        warn_all(&collected.warnings);
        let dir = cx.store.experiment(&graph.experiment);
        let t = &collected.tables;
        t.write(&dir)?;
        say!(
            "collected {} runs ({} done, {} metric rows, {} intervention rows) into {}",
            t.runs.height(),
            t.done(),
            t.metrics.height(),
            t.interventions.height(),
            dir.path().display()
        );
        Ok(ExitCode::SUCCESS)
    })
}
