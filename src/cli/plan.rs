//! `mechlab plan`: the run graph, the packed training groups and every run's state, without
//! running anything.

use std::process::ExitCode;

use anyhow::Result;

use mechlab::plan::pack::{PackPolicy, train_groups};
use mechlab::plan::{RunGraph, plan};
use mechlab::store::Store;

use super::args::SpecArgs;
use super::folder::each_spec;
use super::{Context, out, say};

pub fn run(args: &SpecArgs, cx: &Context) -> Result<ExitCode> {
    each_spec(args, "plan", None, |a| one(a, &cx.store))
}

fn one(args: &SpecArgs, store: &Store) -> Result<ExitCode> {
    let resolved = args.resolve()?;
    let graph = plan(&resolved);
    say!(
        "experiment {} (spec hash {})",
        graph.experiment,
        graph.spec_hash
    );
    if let Some(d) = &resolved.description {
        say!("{d}");
    }
    for c in mechlab::report::runs::kind_counts(&graph, store) {
        say!(
            "{:>8} nodes: {:>4} ({} done)",
            c.kind.name(),
            c.total,
            c.done
        );
    }
    print_groups(&graph)?;
    say!();
    print_runs(&graph, store)
}

/// The packed training groups `run` forms by default (`--pack auto`).
fn print_groups(graph: &RunGraph) -> Result<()> {
    let groups = train_groups(graph, PackPolicy::Auto);
    let packed = groups.iter().filter(|g| g.len() > 1).count();
    if packed == 0 {
        return Ok(());
    }
    say!(
        "packed training (--pack auto): {} programs for {} train nodes",
        groups.len(),
        groups.iter().map(Vec::len).sum::<usize>()
    );
    for (i, group) in groups.iter().enumerate().filter(|(_, g)| g.len() > 1) {
        let names: Vec<&str> = group
            .iter()
            .map(|&r| graph.runs[r].point.name.as_str())
            .collect();
        say!(
            "  group {} ({} runs): {}",
            i + 1,
            group.len(),
            names.join(", ")
        );
    }
    Ok(())
}

/// One line per run with its nodes' states (also `status`'s table).
pub fn print_runs(graph: &RunGraph, store: &Store) -> Result<ExitCode> {
    let queued = mechlab::exec::slurm::queued(store, &graph.experiment);
    if !queued.is_empty() {
        say!("{} nodes in the Slurm queue", queued.len());
    }
    out(&mechlab::report::runs::runs_table(graph, store, &queued)?.aligned())?;
    Ok(ExitCode::SUCCESS)
}
