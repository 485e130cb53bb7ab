//! Exports for use outside mechlab.

pub mod import;
pub mod names;
pub mod safetensors;
pub mod tables;

pub use safetensors::{export_weights, param_entries, state_dict};

use std::path::PathBuf;

use super::ReportError;
use crate::plan::RunGraph;
use crate::store::{NodeState, Store};

/// Writes the final weights of the run called `name` (or whose train node id is `name`) as
/// safetensors with reference names, to `out` or `<experiment>/weights/<run>.safetensors`;
/// returns the number of tensors and the file.
pub fn export_run_weights(
    graph: &RunGraph,
    store: &Store,
    name: &str,
    out: Option<PathBuf>,
) -> Result<(usize, PathBuf), ReportError> {
    let Some(run) = graph
        .runs
        .iter()
        .find(|r| r.point.name == name || r.train == name)
    else {
        let runs: Vec<&str> = graph.runs.iter().map(|r| r.point.name.as_str()).collect();
        return Err(ReportError::NoSuchRun {
            name: name.to_string(),
            runs: runs.join(", "),
        });
    };
    let state = store.status(&run.train)?.state;
    if state != NodeState::Done {
        return Err(ReportError::NotDone {
            name: name.to_string(),
            state: state.to_string(),
        });
    }
    let model =
        store.load_model::<burn::backend::Flex>(run, run.point.train.steps, &Default::default())?;
    let path = out.unwrap_or_else(|| {
        store
            .experiment(&graph.experiment)
            .exported_weights(&run.point.name)
    });
    let metadata = [
        ("format", "pt".to_string()),
        ("mechlab.version", crate::VERSION.to_string()),
        ("mechlab.run", run.point.name.clone()),
        ("mechlab.run_id", run.train.clone()),
        ("mechlab.mixer", run.point.model.mixer.name().to_string()),
    ];
    let n = export_weights(&model, run.point.model.kind(), &path, &metadata)?;
    Ok((n, path))
}
