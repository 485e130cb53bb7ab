//! Slurm fan-out, end to end, with a stand-in `sbatch` that runs each job script the way Slurm
//! would (every array index, `SLURM_ARRAY_TASK_ID` set), so the generated scripts really run.

use std::collections::BTreeMap;

use crate::common::{Dir, TINY};
use crate::stdout;

/// Records its arguments, runs the script (each array task in turn), prints a job id.
const FAKE_SBATCH: &str = r#"#!/bin/bash
set -euo pipefail
log="$(dirname "$0")/sbatch.log"
echo "$*" >> "$log"
id=$(( 1000 + $(wc -l < "$log") ))
script="${@: -1}"
last=$(sed -n 's/^#SBATCH --array=0-\([0-9]*\).*/\1/p' "$script")
if [ -n "$last" ]; then
  for i in $(seq 0 "$last"); do SLURM_ARRAY_TASK_ID=$i bash "$script" >> "$log.out" 2>&1; done
else
  bash "$script" >> "$log.out" 2>&1
fi
echo "$id"
"#;

fn spec_text() -> String {
    format!(
        "{TINY}\n[[interventions]]\nkind = \"interchange\"\nsites = [\"block_input\"]\nexamples = 16\n"
    )
}

/// The stand-in `sbatch`, in a directory of its own under Cargo's target tmp dir: /tmp may be
/// mounted noexec, the build directory cannot be (the test binaries run from it).
fn fake_sbatch() -> (tempfile::TempDir, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let bin = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = bin.path().join("sbatch");
    std::fs::write(&path, FAKE_SBATCH).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (bin, path)
}

/// Test accuracy per run name, from collected metrics.
fn accuracies(dir: &Dir) -> BTreeMap<(String, i64), f64> {
    let results = dir.results().join("tiny");
    let metrics = mechlab::store::read_parquet(&results.join("metrics.parquet")).unwrap();
    let runs = mechlab::store::read_parquet(&results.join("runs.parquet")).unwrap();
    let names: BTreeMap<String, String> = runs
        .column("run_id")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .zip(runs.column("name").unwrap().str().unwrap().iter())
        .map(|(id, name)| (id.unwrap().to_string(), name.unwrap().to_string()))
        .collect();
    let col = |c: &str| metrics.column(c).unwrap().clone();
    let (ids, metric, split, step, value) = (
        col("run_id"),
        col("metric"),
        col("split"),
        col("step"),
        col("value"),
    );
    let mut out = BTreeMap::new();
    for i in 0..metrics.height() {
        let text = |c: &polars::prelude::Column| c.str().unwrap().get(i).unwrap().to_string();
        if text(&metric) == "accuracy" && text(&split) == "test" {
            out.insert(
                (
                    names[&text(&ids)].clone(),
                    step.cast(&polars::prelude::DataType::Int64)
                        .unwrap()
                        .i64()
                        .unwrap()
                        .get(i)
                        .unwrap(),
                ),
                value.f64().unwrap().get(i).unwrap(),
            );
        }
    }
    out
}

#[test]
fn slurm_runs_every_node_in_array_tasks_then_collects_the_same_results_as_a_local_run() {
    let dir = Dir::new();
    let spec = dir.write("spec.toml", &spec_text());
    let (bin, sbatch) = fake_sbatch();
    let out = dir.ok(
        &[
            "slurm",
            "--sbatch",
            sbatch.to_str().unwrap(),
            "--partition",
            "debug",
            "--time",
            "0:10:00",
            "--max-parallel",
            "4",
            "--pack",
            "off",
        ],
        &spec,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("submitted array job 1001 (2 tasks"), "{text}");
    assert!(text.contains("collect job 1002"), "{text}");

    let log = std::fs::read_to_string(bin.path().join("sbatch.log")).unwrap();
    let calls: Vec<&str> = log.lines().collect();
    assert_eq!(calls.len(), 2, "{log}");
    assert!(calls[0].starts_with("--parsable ") && calls[0].ends_with("array.sbatch"));
    assert!(
        calls[1].contains("--dependency=afterany:1001") && calls[1].ends_with("collect.sbatch"),
        "{log}"
    );
    let array = std::fs::read_to_string(calls[0].rsplit(' ').next().unwrap()).unwrap();
    for line in [
        "#SBATCH --array=0-1%4",
        "#SBATCH --partition=debug",
        "#SBATCH --time=0:10:00",
    ] {
        assert!(array.lines().any(|l| l == line), "{line}\n{array}");
    }

    // Every node done, tables collected, and the numbers equal a plain local run's.
    let status = String::from_utf8_lossy(&dir.ok(&["status"], &spec).stdout).to_string();
    assert!(
        !status.contains("pending") && !status.contains("failed"),
        "{status}"
    );
    assert!(dir.results().join("tiny/interventions.parquet").exists());
    let local = Dir::new();
    let local_spec = local.write("spec.toml", &spec_text());
    local.ok(&["run", "-q"], &local_spec);
    let (a, b) = (accuracies(&dir), accuracies(&local));
    assert!(!a.is_empty());
    assert_eq!(a, b);

    // Nothing left: nothing submitted.
    let out = dir.ok(&["slurm", "--sbatch", sbatch.to_str().unwrap()], &spec);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to submit"));
    let log = std::fs::read_to_string(bin.path().join("sbatch.log")).unwrap();
    assert_eq!(log.lines().count(), 2);
}

#[test]
fn dry_run_writes_scripts_without_submitting_and_a_missing_sbatch_is_a_clear_error() {
    let dir = Dir::new();
    let spec = dir.write("spec.toml", &spec_text());
    // The tasks run this binary: a device it was not built for is refused before submitting.
    let device = if cfg!(feature = "cuda") {
        "cuda"
    } else {
        let err = dir.fails(&["slurm", "--dry-run", "--device", "cuda"], &spec);
        assert!(err.contains("--features cuda"), "{err}");
        "cpu"
    };
    let out = dir.ok(
        &[
            "slurm",
            "--dry-run",
            "--device",
            device,
            "--gpus",
            "1",
            "--sbatch",
            "/nonexistent/sbatch",
        ],
        &spec,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // The two learning rates pack: one task trains both as one program.
    assert!(text.contains("1 task (5 nodes)"), "{text}");
    assert!(text.contains("would submit"), "{text}");
    let array = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("/nonexistent/sbatch --parsable "))
        .unwrap();
    let script = std::fs::read_to_string(array).unwrap();
    assert!(script.contains("#SBATCH --gres=gpu:1"), "{script}");
    // Slurm's warning ahead of the time limit reaches mechlab itself (exec'd by the script).
    assert!(script.contains("#SBATCH --signal=B:TERM@120"), "{script}");
    let device = if device == "cuda" { "cuda:0" } else { "cpu" };
    assert!(
        script.contains(&format!("--device {device} --quiet --no-collect $NODES")),
        "{script}"
    );

    let err = dir.fails(&["slurm", "--sbatch", "/nonexistent/sbatch"], &spec);
    assert!(
        err.contains("cannot run `/nonexistent/sbatch`") && err.contains("is Slurm installed"),
        "{err}"
    );
}

/// Whether a Slurm cluster answers here (`tests/slurm/start-cluster.sh` starts a one-node one;
/// CI runs it and sets `MECHLAB_REQUIRE_SLURM`, so there the test cannot skip).
fn slurm_is_up() -> bool {
    let up = std::process::Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| {
            let states = String::from_utf8_lossy(&o.stdout);
            ["idle", "mixed", "alloc"]
                .iter()
                .any(|s| states.contains(s))
        });
    if !up {
        assert!(
            std::env::var_os("MECHLAB_REQUIRE_SLURM").is_none(),
            "MECHLAB_REQUIRE_SLURM is set but no Slurm node answers `sinfo`"
        );
        eprintln!(
            "skipped: no Slurm cluster answers `sinfo` (start one with tests/slurm/start-cluster.sh)"
        );
    }
    up
}

/// Waits until none of `jobs` is in the queue.
fn wait_for_jobs(jobs: &[&str]) {
    for _ in 0..1200 {
        let out = std::process::Command::new("squeue")
            .args(["-h", "-o", "%i", "-j", &jobs.join(",")])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    panic!("jobs {jobs:?} still queued after 5 minutes");
}

#[test]
fn a_real_slurm_runs_the_sweep_to_a_local_runs_tables_and_cancels_on_request() {
    if !slurm_is_up() {
        return;
    }
    let dir = Dir::new();
    let spec = dir.write("spec.toml", &spec_text());
    let out = stdout(&dir.ok(&["slurm", "--cpus-per-task", "1"], &spec));
    // "tiny: submitted array job N (…) and collect job M; …"
    let id_after = |label: &str| -> String {
        out.split(label)
            .nth(1)
            .unwrap_or_else(|| panic!("{out}"))
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect()
    };
    let (array, collect) = (id_after("array job"), id_after("collect job"));
    wait_for_jobs(&[&array, &collect]);
    let status = stdout(&dir.ok(&["status"], &spec));
    assert!(
        !status.contains("pending") && !status.contains("failed"),
        "{status}"
    );
    let local = Dir::new();
    let local_spec = local.write("spec.toml", &spec_text());
    local.ok(&["run", "-q"], &local_spec);
    assert_eq!(accuracies(&dir), accuracies(&local));

    // A long sweep: the queue shows in `status`, and `slurm --cancel` empties it.
    let slow = dir.write(
        "slow.toml",
        &TINY
            .replace("name = \"tiny\"", "name = \"slow\"")
            .replace("steps = 30", "steps = 100000"),
    );
    let out = stdout(&dir.ok(&["slurm", "--cpus-per-task", "1"], &slow));
    assert!(out.contains("submitted array job"), "{out}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let status = stdout(&dir.ok(&["status"], &slow));
    assert!(status.contains("slurm: "), "{status}");
    let out = stdout(&dir.ok(&["slurm", "--cancel"], &slow));
    assert!(out.contains("asked Slurm to cancel jobs"), "{out}");
    let ids: Vec<String> = out
        .rsplit("jobs ")
        .next()
        .unwrap()
        .split(", ")
        .map(|s| s.trim().to_string())
        .collect();
    wait_for_jobs(&ids.iter().map(String::as_str).collect::<Vec<_>>());
    let status = stdout(&dir.ok(&["status"], &slow));
    assert!(
        !status.contains("slurm: ") && !status.contains("running"),
        "{status}"
    );
}
