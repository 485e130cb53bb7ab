//! The `mechlab` binary: the allocator, argument parsing and the one place errors are printed.
//! Each subcommand lives in its own file under `cli/`.

use std::process::ExitCode;

use clap::Parser;

mod cli;

// Tensor ops allocate a fresh output buffer each; the system allocator returns large ones to the
// kernel and page-faults them back in on every op, mimalloc keeps them (see README, Speed).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match cli::dispatch(cli::Cli::parse()) {
        Ok(code) => code,
        // `mechlab status | head`: a closed pipe is a normal end, as for ripgrep.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `: `-joined, leaving out a cause the text so far already says
/// (library errors name their source in their own message, as `path: No space left on device`).
fn chain(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}
