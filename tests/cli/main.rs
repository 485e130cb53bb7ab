//! The `mechlab` binary end to end, one module per command (or capability of several):
//! a new test goes in the module of the command it exercises.

#[path = "../common/mod.rs"]
mod common;

mod batch;
mod data;
mod evaluate;
mod export;
mod guarantees;
mod import;
mod plan;
mod plot;
mod run;
mod selftest;
mod slurm;
mod table;

/// What a finished command printed.
pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
