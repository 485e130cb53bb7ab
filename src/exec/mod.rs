//! Execution: runs the nodes of a run graph that are not done, locally, `jobs` at a time, with
//! progress bars, clean Ctrl-C (checkpoint, then stop) and resumption.

pub mod device;
pub mod local;
pub mod node;
pub mod progress;
pub mod slurm;

pub use device::DeviceChoice;
pub use local::{ExecOptions, RunReport, run_graph};

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(
        "this mechlab was built without the {feature} feature, so --device {device} is unavailable: rebuild with `cargo build --release --features {feature}`"
    )]
    NotBuilt {
        device: String,
        feature: &'static str,
    },
    #[error("--device {device}: this machine lacks what the runtime loads: {}", missing.join("; "))]
    Preflight {
        device: &'static str,
        missing: Vec<String>,
    },
    /// A device failure reported for each run of a group.
    #[error("{0}")]
    Device(String),
    #[error("unknown device \"{0}\": expected cpu, cuda, cuda:N or wgpu")]
    UnknownDevice(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Dataset(#[from] crate::task::DatasetError),
    #[error("generating data: {0}")]
    Generate(#[from] crate::task::reference::ReferenceError),
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    #[error("node {0} is not in the plan")]
    UnknownNode(String),
    #[error("node {node} needs node {dep}, which is {state}")]
    NotReady {
        node: String,
        dep: String,
        state: String,
    },
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// `model.weights` could not be loaded (or changed since the plan hashed it).
    #[error("importing {path}: {message}")]
    Import { path: String, message: String },
    #[error("node {node}: assembling its results: {source}")]
    Shard {
        node: String,
        #[source]
        source: polars::error::PolarsError,
    },
}
