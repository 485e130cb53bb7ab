//! `mechlab status`: node states per run, or (`--verify`) every done node's files against their
//! checksums.

use std::process::ExitCode;

use anyhow::Result;

use mechlab::plan::RunGraph;
use mechlab::store::{NodeState, Store};

use super::args::SpecArgs;
use super::folder::each_spec;
use super::plan::print_runs;
use super::{Context, say};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// Also check every file of every node against its checksum (exit 1 on any problem).
    #[arg(long)]
    verify: bool,
}

pub fn run(args: &Args, cx: &Context) -> Result<ExitCode> {
    each_spec(&args.spec, "status", None, |a| {
        one(a, &cx.store, args.verify)
    })
}

fn one(args: &SpecArgs, store: &Store, verify: bool) -> Result<ExitCode> {
    let graph = args.plan()?;
    if verify {
        return verify_files(&graph, store);
    }
    let counts = mechlab::report::runs::state_counts(&graph, store)?;
    let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    say!(
        "experiment {}: {} nodes: {}",
        graph.experiment,
        graph.nodes.len(),
        summary.join(", ")
    );
    say!();
    print_runs(&graph, store)
}

/// `status --verify`: every done node's files against their checksums.
fn verify_files(graph: &RunGraph, store: &Store) -> Result<ExitCode> {
    let (mut checked, mut bad) = (0usize, 0usize);
    for node in &graph.nodes {
        let status = store.status(&node.id)?;
        if let Some(e) = status
            .error
            .as_ref()
            .filter(|_| status.state == NodeState::Pending)
        {
            say!("{} {}: {e}", node.kind.name(), node.id);
        }
        if status.state != NodeState::Done {
            continue;
        }
        checked += 1;
        let problems = mechlab::store::checksum::problems(store, node);
        if !problems.is_empty() {
            bad += 1;
        }
        for (path, check) in problems {
            say!(
                "{} {}: {}: {check:?}",
                node.kind.name(),
                node.id,
                path.display()
            );
        }
    }
    if bad > 0 {
        say!(
            "{}: {bad} of {checked} done nodes have files that fail verification; `mechlab run` recomputes them",
            graph.experiment
        );
        return Ok(ExitCode::FAILURE);
    }
    say!(
        "{}: the files of all {checked} done nodes verify",
        graph.experiment
    );
    Ok(ExitCode::SUCCESS)
}
