//! `mechlab selftest`: the committed fixtures, the scan, the generic operations and packing,
//! checked on a device; one JSON line per check, exit 1 past the tolerance.

use std::process::ExitCode;

use anyhow::Result;

use mechlab::exec::DeviceChoice;
use mechlab::selftest::{CLOSE_FACTOR, TF32_TOLERANCE, Verdict};

use super::say;

#[derive(clap::Args)]
pub struct Args {
    /// `cpu`, `cuda[:N]` or `wgpu`, as the binary was built.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// Only the checks whose name contains this (`fixture:`, `scan`, `generic_ops`, `packed:`).
    #[arg(long)]
    only: Option<String>,
    /// Which verdicts pass: `fp32` (the CPU's tolerances), `device` (also `close`: within 4× of
    /// them, as another device's float32 kernels round) or `tf32` (also errors within the TF32
    /// bound, for GPUs whose matrix products run in TF32).
    #[arg(long, default_value = "device", value_parser = ["fp32", "device", "tf32"])]
    tolerance: String,
    /// List the checks and exit.
    #[arg(long)]
    list: bool,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    if args.list {
        for name in mechlab::selftest::names() {
            say!("{name}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut write_error = None;
    let results = mechlab::selftest::run(args.device, args.only.as_deref(), &mut |r| {
        // Each line as soon as its check ends: a GPU slot cut short keeps what it measured.
        let line = serde_json::to_string(r).unwrap_or_default();
        let written = (|| -> Result<()> {
            say!("{line}");
            Ok(())
        })();
        if let Err(e) = written {
            write_error.get_or_insert(e);
        }
    })?;
    if let Some(e) = write_error {
        return Err(e);
    }
    let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
    let (pass, close, tf32, fail) = (
        count(Verdict::Pass),
        count(Verdict::Close),
        count(Verdict::Tf32),
        count(Verdict::Fail),
    );
    eprintln!(
        "selftest on {}: {pass} passed, {close} close (within {CLOSE_FACTOR}× the float32 tolerance), {tf32} within TF32's bound only ({TF32_TOLERANCE:e} of scale), {fail} failed",
        args.device.device_name()
    );
    if results.is_empty() {
        anyhow::bail!(
            "--only {}: no such check (see --list)",
            args.only.as_deref().unwrap_or("")
        );
    }
    let refused = match args.tolerance.as_str() {
        "fp32" => close + tf32 + fail,
        "device" => tf32 + fail,
        _ => fail,
    };
    Ok(if refused > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
