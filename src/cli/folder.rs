//! Commands over a folder of specs ([`mechlab::spec::batch`] finds and classifies them): the
//! command runs on each experiment spec, prints a summary line per spec and returns one exit
//! code for all.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;

use mechlab::spec::batch::{Found, classify, discover};

use super::args::SpecArgs;
use super::say;

/// Runs `f` on the spec, or on every experiment spec of a folder: a summary line per spec, one
/// exit code for all (failure if any failed). After Ctrl-C (`interrupt`) no further spec starts.
pub fn each_spec(
    args: &SpecArgs,
    what: &str,
    interrupt: Option<&Arc<AtomicBool>>,
    mut f: impl FnMut(&SpecArgs) -> Result<ExitCode>,
) -> Result<ExitCode> {
    // `validate` and `table` read tables-only files; the other commands have nothing to do there.
    let takes_tables = matches!(what, "validate" | "table");
    if !args.spec.is_dir() {
        if !takes_tables && matches!(classify(&args.spec), Found::Tables(_)) {
            say!(
                "{}: declares only tables (composed from other specs): use `mechlab table`",
                args.spec.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        return f(args);
    }
    let (mut ok, mut failed, mut skipped) = (0usize, 0usize, 0usize);
    for found in discover(&args.spec)? {
        if interrupt.is_some_and(|i| i.load(Ordering::SeqCst)) {
            say!("{what}: interrupted; the remaining specs were not started");
            return Ok(ExitCode::from(130));
        }
        match found {
            Found::Tables(path) if !takes_tables => {
                skipped += 1;
                say!("{what} {}: skipped (tables only)", path.display());
            }
            Found::Fragment(path) => {
                skipped += 1;
                say!(
                    "{what} {}: skipped (no [experiment]: an include fragment)",
                    path.display()
                );
            }
            Found::Experiment(path) | Found::Tables(path) => {
                let one = SpecArgs {
                    spec: path.clone(),
                    ..args.clone()
                };
                if what != "validate" {
                    // validate's own line names the spec; the others print more than one line.
                    say!("── {}", path.display());
                }
                match f(&one) {
                    Ok(code) if code == ExitCode::SUCCESS => ok += 1,
                    Ok(_) => {
                        failed += 1;
                        say!("{what} {}: failed", path.display());
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: {e:#}");
                        say!("{what} {}: failed", path.display());
                    }
                }
            }
        }
    }
    say!(
        "{what} {}: {ok} ok, {failed} failed, {skipped} skipped (fragments or tables only)",
        args.spec.display()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
