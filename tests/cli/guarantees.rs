//! What mechlab promises about its files (README, "Guarantees"): nothing corrupt is trusted, a
//! killed run resumes to bit-identical tables, and two runs of one spec wait for each other.

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use crate::common::{Dir, INTERCHANGE_BLOCK, TINY};
use crate::stdout;
use mechlab::store::read_parquet;

/// One metric observation: run id, step, split, metric, value bits.
pub(crate) type Row = (String, i64, String, String, u64);

/// Every metric observation of the experiment, values as bits: equal means bit-identical.
pub(crate) fn metrics(dir: &Dir, experiment: &str) -> Vec<Row> {
    observations(dir, experiment, "metrics.parquet")
}

/// The rows of an experiment's table of observations (`metrics.parquet`, `progress.parquet`),
/// sorted, values as bits.
pub(crate) fn observations(dir: &Dir, experiment: &str, table: &str) -> Vec<Row> {
    let df = read_parquet(&dir.results().join(experiment).join(table)).unwrap();
    let text = |c: &str| -> Vec<String> {
        df.column(c)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect()
    };
    let (ids, splits, names) = (text("run_id"), text("split"), text("metric"));
    let steps: Vec<i64> = df
        .column("step")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let values: Vec<f64> = df
        .column("value")
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let mut rows: Vec<_> = (0..df.height())
        .map(|i| {
            (
                ids[i].clone(),
                steps[i],
                splits[i].clone(),
                names[i].clone(),
                values[i].to_bits(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// The directories of the store's nodes of `kind`.
fn nodes(dir: &Dir, kind: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir.results().join("store"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            std::fs::read_to_string(p.join("status.json"))
                .is_ok_and(|s| s.contains(&format!("\"kind\": \"{kind}\"")))
        })
        .collect();
    out.sort();
    out
}

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn corrupt_files_are_found_and_recomputed_never_trusted() {
    let dir = Dir::new();
    let spec = dir.write("tiny.toml", TINY);
    dir.ok(&["run", "-q"], &spec);
    let clean = metrics(&dir, "tiny");
    let verified = stdout(&dir.ok(&["status", "--verify"], &spec));
    assert!(verified.contains("the files of all"), "{verified}");

    // Flipped weights: `status --verify` names the file and fails; `run` recomputes the node.
    let train = nodes(&dir, "train");
    flip_a_byte(&train[0].join("model.bin"));
    let out = dir
        .mechlab()
        .args(["status", "--verify"])
        .arg(&spec)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(text.contains("model.bin: Mismatch"), "{text}");
    let out = dir.ok(&["run"], &spec);
    let log = String::from_utf8_lossy(&out.stderr).to_string() + &stdout(&out);
    assert!(log.contains("recomputing train node"), "{log}");
    assert_eq!(metrics(&dir, "tiny"), clean);

    // A truncated shard: collect leaves it out with a warning instead of failing.
    let shard = train[1].join("metrics.parquet");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    let out = dir.ok(&["collect"], &spec);
    let err = String::from_utf8_lossy(&out.stderr);
    // Named as corrupt, with the fix; not as missing.
    assert!(
        err.contains("checksum mismatch") && err.contains("`mechlab run` on its spec recomputes"),
        "{err}"
    );
    assert!(!err.contains("missing"), "{err}");
    // A garbage status record reads as pending; nothing blocks; `run` recomputes both.
    std::fs::write(train[0].join("status.json"), b"{not json").unwrap();
    let status = stdout(&dir.ok(&["status"], &spec));
    assert!(status.contains("pending"), "{status}");
    dir.ok(&["run", "-q"], &spec);
    assert_eq!(metrics(&dir, "tiny"), clean);
    dir.ok(&["status", "--verify"], &spec);

    // A status record changed so that it still parses fails its checksum: not believed, the
    // node is recomputed.
    let record = train[1].join("status.json");
    let text = std::fs::read_to_string(&record).unwrap();
    let changed = text.replacen("\"state\": \"done\"", "\"state\": \"failed\"", 1);
    assert_ne!(changed, text);
    std::fs::write(&record, changed).unwrap();
    let out = dir
        .mechlab()
        .args(["status", "--verify"])
        .arg(&spec)
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.contains("fails its checksum"), "{text}");
    dir.ok(&["run", "-q"], &spec);
    assert_eq!(metrics(&dir, "tiny"), clean);

    // A truncated checkpoint is set aside and training starts over: no panic, same numbers.
    let checkpoint = train[0].join("checkpoint.bin");
    std::fs::write(&checkpoint, b"\x08\0\0\0\0\0\0\0{\"step\"").unwrap();
    std::fs::write(
        train[0].join("status.json"),
        br#"{"state": "pending", "kind": "train", "step": 10}"#,
    )
    .unwrap();
    let out = dir.ok(&["run", "-q"], &spec);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("training starts over"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(metrics(&dir, "tiny"), clean);
}

/// Longer than TINY, checkpointing often, so a kill lands mid-training.
pub(crate) fn slow_spec() -> String {
    TINY.replace("steps = 30", "steps = 300")
        .replace("checkpoint_every = 10", "checkpoint_every = 7")
        .replace("eval_every = 10", "eval_every = 25")
}

fn spawn_run(dir: &Dir, spec: &Path) -> Child {
    dir.mechlab()
        .args(["run", "-q"])
        .arg(spec)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The metrics of an uninterrupted run of [`slow_spec`], and a fresh folder holding the spec.
fn reference_and_fresh() -> (Vec<Row>, Dir, PathBuf) {
    let reference = Dir::new();
    let spec = reference.write("tiny.toml", &slow_spec());
    reference.ok(&["run", "-q"], &spec);
    let dir = Dir::new();
    let spec = dir.write("tiny.toml", &slow_spec());
    (metrics(&reference, "tiny"), dir, spec)
}

#[test]
fn a_run_killed_at_any_point_resumes_to_bit_identical_tables() {
    let (want, dir, spec) = reference_and_fresh();
    for delay_ms in [700, 1500, 2600] {
        let mut child = spawn_run(&dir, &spec);
        std::thread::sleep(Duration::from_millis(delay_ms));
        // SIGKILL: no handler runs, no checkpoint is written on the way out.
        child.kill().unwrap();
        child.wait().unwrap();
        let status = stdout(&dir.ok(&["status"], &spec));
        assert!(
            !status.contains("running"),
            "a dead process shows as running:\n{status}"
        );
    }
    dir.ok(&["run", "-q"], &spec);
    assert_eq!(metrics(&dir, "tiny"), want);
    // No temporary file survives a run.
    for node in std::fs::read_dir(dir.results().join("store")).unwrap() {
        for f in std::fs::read_dir(node.unwrap().path()).unwrap() {
            let name = f.unwrap().file_name().to_string_lossy().to_string();
            assert!(!name.contains(".tmp-"), "{name}");
        }
    }
}

/// Slurm's stop ahead of a time limit (`#SBATCH --signal=B:TERM@…`): the run checkpoints and
/// exits 130 like a Ctrl-C, and the next run resumes to bit-identical tables.
#[test]
fn sigterm_checkpoints_and_the_next_run_resumes_bit_identically() {
    let (want, dir, spec) = reference_and_fresh();
    let mut child = spawn_run(&dir, &spec);
    // Mid-training: once the first checkpoint exists (a run this size takes seconds).
    let store = dir.results().join("store");
    let checkpointed = || {
        std::fs::read_dir(&store).is_ok_and(|nodes| {
            nodes
                .flatten()
                .any(|n| n.path().join("checkpoint.bin").exists())
        })
    };
    while !checkpointed() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its first checkpoint"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(130), "SIGTERM is handled as an interrupt");
    // Checkpointed on the way out, not killed: the next run resumes from there.
    let status = stdout(&dir.ok(&["status"], &spec));
    assert!(status.contains("(checkpoint at step"), "{status}");
    dir.ok(&["run", "-q"], &spec);
    assert_eq!(metrics(&dir, "tiny"), want);
}

#[test]
fn two_runs_of_one_spec_wait_for_each_other() {
    let (want, dir, spec) = reference_and_fresh();
    let (mut a, mut b) = (spawn_run(&dir, &spec), spawn_run(&dir, &spec));
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    assert_eq!(metrics(&dir, "tiny"), want);
}

/// What a file under the results folder is, for the disk-full test's coverage.
fn kind_of(name: &str, in_store: bool) -> &'static str {
    match name {
        "status.json" => "status",
        "checkpoint.bin" => "checkpoint",
        "checksums.json" => "checksums",
        n if n.ends_with(".json") => "record",
        n if n.starts_with("data-") => "data",
        n if n.ends_with(".bin") => "weights",
        n if n.ends_with(".parquet") && in_store => "shard",
        n if n.ends_with(".parquet") => "table",
        _ => "other",
    }
}

/// Every file under `root`: (path, kind, size).
fn files_by_kind(root: &Path) -> Vec<(PathBuf, &'static str, u64)> {
    let store = root.join("store");
    walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        // A folder not made yet has no files.
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let kind = kind_of(&name, e.path().starts_with(&store));
            (e.path().to_path_buf(), kind, e.metadata().unwrap().len())
        })
        .collect()
}

/// `mechlab ARGS… SPEC` where no file may grow past `limit` bytes (RLIMIT_FSIZE, SIGXFSZ
/// ignored): a write past it fails with EFBIG through the same calls as ENOSPC on a full disk.
fn run_with_file_limit(dir: &Dir, args: &[&str], spec: &Path, limit: u64) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = dir.mechlab();
    cmd.args(args).arg(spec);
    // SAFETY: only async-signal-safe calls (setrlimit, signal) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: libc::RLIM_INFINITY,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    cmd.output().unwrap()
}

/// A full disk at every kind of write (dataset cache, checkpoint, weights, shard, node record,
/// status, table): a clear error naming the file, no half-written or temporary file left, every file
/// already there intact and verifying, and the next run resuming to bit-identical tables.
#[test]
fn a_full_disk_is_an_error_naming_the_file_and_loses_nothing() {
    let reference = Dir::new();
    let spec = reference.write("tiny.toml", TINY);
    reference.ok(&["run", "-q"], &spec);
    let want = metrics(&reference, "tiny");
    // Limits just under each size written: a write of that size or more fails where it comes.
    let mut limits: Vec<u64> = files_by_kind(&reference.results())
        .iter()
        .map(|(_, _, size)| size.saturating_sub(1))
        .collect();
    limits.push(0);
    limits.sort();
    limits.dedup();

    // Where a run is when the disk fills: nothing yet, training half done, training done and
    // intervention grids added (evaluation nodes write only shards and records), everything done
    // (then `collect` rewrites the tables).
    let probed = format!("include = [\"tiny.toml\"]\n{INTERCHANGE_BLOCK}");
    type Start<'a> = (&'a str, &'a [&'a str], &'a str, &'a [&'a str]);
    let starts: [Start; 5] = [
        ("fresh", &[], "tiny.toml", &["run", "-q"]),
        (
            "mid-training",
            &["run", "-q", "--until-step", "10"],
            "tiny.toml",
            &["run", "-q"],
        ),
        // Past the last checkpoint: the final weights are the next big write.
        (
            "last-steps",
            &["run", "-q", "--until-step", "25"],
            "tiny.toml",
            &["run", "-q"],
        ),
        ("evaluation", &["run", "-q"], "probed.toml", &["run", "-q"]),
        ("collect", &["run", "-q"], "tiny.toml", &["collect"]),
    ];
    let mut failed_at = std::collections::BTreeSet::new();
    for (start, before, target, command) in starts {
        for &limit in &limits {
            let dir = Dir::new();
            let tiny = dir.write("tiny.toml", TINY);
            let spec = dir.write("probed.toml", &probed);
            let spec = if target == "tiny.toml" {
                tiny.clone()
            } else {
                spec
            };
            if !before.is_empty() {
                dir.ok(before, &tiny);
            }
            let earlier: Vec<(PathBuf, Vec<u8>)> = files_by_kind(&dir.results())
                .into_iter()
                // Written once each; tables are rewritten only by `collect` (with the same
                // bytes), checkpoints and records legitimately move on.
                .filter(|(_, kind, _)| {
                    matches!(*kind, "data" | "weights" | "shard")
                        || (*kind == "table" && start == "collect")
                })
                .map(|(p, _, _)| {
                    let bytes = std::fs::read(&p).unwrap();
                    (p, bytes)
                })
                .collect();
            let out = run_with_file_limit(&dir, command, &spec, limit);
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            if out.status.success() {
                continue;
            }
            let context = format!("{start}, limit {limit} B:\n{err}");
            // An error, not a panic or a signal, naming the file it could not write.
            assert!(
                matches!(out.status.code(), Some(c) if c != 101),
                "{context}"
            );
            let line = err
                .lines()
                .find(|l| l.contains("File too large"))
                .unwrap_or_else(|| panic!("no write error reported: {context}"));
            let path = line.split(": File too large").next().unwrap_or_default();
            let name = path.rsplit('/').next().unwrap_or_default();
            let named = (name, kind_of(name, path.contains("/store/")));
            assert!(
                path.contains(&dir.results().display().to_string()) && named.1 != "other",
                "the error names no file of the results: {context}"
            );
            failed_at.insert(named.1);
            // Nothing half-written under a final name, no temporary file left behind.
            for (path, _, _) in files_by_kind(&dir.results()) {
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                assert!(!name.contains(".tmp-"), "{name} left: {context}");
            }
            // What was there is still there, byte for byte.
            for (path, bytes) in &earlier {
                let now = std::fs::read(path).unwrap_or_default();
                assert!(&now == bytes, "{} changed: {context}", path.display());
            }
            let verify = dir
                .mechlab()
                .args(["status", "--verify"])
                .arg(&spec)
                .output();
            let verify = verify.unwrap();
            assert!(verify.status.success(), "{}\n{context}", stdout(&verify));
            // With room again, the run resumes to the tables of an undisturbed run.
            dir.ok(&["run", "-q"], &spec);
            assert_eq!(metrics(&dir, "tiny"), want, "{context}");
        }
    }
    // (A checksum record is written right after the larger file it describes, so that file's
    // write fails first; the same atomic write carries both.)
    for kind in [
        "record",
        "data",
        "checkpoint",
        "weights",
        "shard",
        "status",
        "table",
    ] {
        assert!(
            failed_at.contains(kind),
            "never failed at a {kind} write: {failed_at:?}"
        );
    }
}
