//! Slurm fan-out: one array job with one task per packed group of runs that still has work (their
//! dataset, train and evaluate nodes, which `mechlab run --node …` executes in dependency order,
//! training the group as one program), then one job that collects the tables once every task has
//! ended. With `--pack off` a task holds one run.
//!
//! A task per group, not a job per wave of nodes: a run's evaluations start as soon as its own
//! training ends, and no barrier waits for the slowest run. Runs sharing a dataset node race for
//! it harmlessly: the node lock lets one task build it, and the others regenerate any split they
//! miss (generation is deterministic and every write is atomic).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::plan::RunGraph;
use crate::plan::pack::PackPolicy;
use std::collections::BTreeMap;

use crate::store::{NodeState, Store, StoreError, SubmissionDir, write_atomic};

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot run `{program}`: {source} (is Slurm installed here? `--sbatch PATH` names it)")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Sbatch {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` printed no job id: {stdout:?}")]
    NoJobId { command: String, stdout: String },
    #[error("{what}: {source}")]
    Environment {
        what: String,
        source: std::io::Error,
    },
}

/// Resources and placement of the jobs; `None` leaves the cluster's default.
#[derive(Debug, Clone, Default)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    pub account: Option<String>,
    /// Wall-clock limit per task, in any form sbatch accepts (`4:00:00`, `2-00:00:00`).
    pub time: Option<String>,
    pub cpus_per_task: usize,
    pub mem: Option<String>,
    /// GPUs per task (`--gres=gpu:N`); 0 for none.
    pub gpus: usize,
    /// At most this many tasks at once (the array's `%N`).
    pub max_parallel: Option<usize>,
    /// Further `#SBATCH` options, verbatim (`--qos=high`).
    pub extra: Vec<String>,
    /// Runs of a packed group share a task (whose `mechlab run --node …` then trains them as one
    /// program); `Off`: one task per run.
    pub pack: PackPolicy,
}

/// The pending node ids of each task, in execution order (datasets, trains, evaluations): one
/// task per packed group of runs ([`crate::plan::pack`]; one per run with `PackPolicy::Off`),
/// tasks with nothing pending left out.
pub fn tasks(
    graph: &RunGraph,
    store: &Store,
    pack: PackPolicy,
) -> Result<Vec<Vec<String>>, StoreError> {
    // Runs in groups by their train node; runs sharing a train node go with its group.
    let groups = crate::plan::pack::train_groups(graph, pack);
    let mut out = Vec::new();
    for group in groups {
        let members: Vec<&crate::plan::PlannedRun> = graph
            .runs
            .iter()
            .filter(|r| group.iter().any(|&g| graph.runs[g].train == r.train))
            .collect();
        let mut pending: Vec<String> = Vec::new();
        let ids = members
            .iter()
            .map(|r| &r.dataset)
            .chain(members.iter().map(|r| &r.train))
            .chain(members.iter().flat_map(|r| r.evals.iter()));
        for id in ids {
            if !pending.contains(id) && store.status(id)?.state != NodeState::Done {
                pending.push(id.clone());
            }
        }
        if !pending.is_empty() {
            out.push(pending);
        }
    }
    Ok(out)
}

/// Quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Seconds before a task's time limit at which Slurm asks it to stop (a checkpoint of a packed
/// group at the paper's widths takes well under a second; this leaves time for a slow disk).
pub const TERM_LEAD_S: u32 = 120;

fn header(name: &str, logs: &Path, opts: &SlurmOptions, array: Option<usize>) -> String {
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        format!("#SBATCH --job-name={name}"),
    ];
    match array {
        Some(n) => {
            let throttle = opts
                .max_parallel
                .map(|m| format!("%{m}"))
                .unwrap_or_default();
            lines.push(format!("#SBATCH --array=0-{}{throttle}", n - 1));
            lines.push(format!("#SBATCH --output={}/%A_%a.out", logs.display()));
        }
        None => lines.push(format!("#SBATCH --output={}/%j.out", logs.display())),
    }
    if array.is_some() {
        lines.push(format!(
            "#SBATCH --cpus-per-task={}",
            opts.cpus_per_task.max(1)
        ));
        // SIGTERM to the task (`exec`'d mechlab) ahead of the time limit: it checkpoints and
        // stops, and the next submission resumes it instead of losing the task's work.
        lines.push(format!("#SBATCH --signal=B:TERM@{TERM_LEAD_S}"));
        if let Some(mem) = &opts.mem {
            lines.push(format!("#SBATCH --mem={mem}"));
        }
        if opts.gpus > 0 {
            lines.push(format!("#SBATCH --gres=gpu:{}", opts.gpus));
        }
        if let Some(time) = &opts.time {
            lines.push(format!("#SBATCH --time={time}"));
        }
    }
    for (key, value) in [("partition", &opts.partition), ("account", &opts.account)] {
        if let Some(v) = value {
            lines.push(format!("#SBATCH --{key}={v}"));
        }
    }
    lines.extend(opts.extra.iter().map(|e| format!("#SBATCH {e}")));
    lines.push("set -euo pipefail".into());
    lines.join("\n") + "\n"
}

/// What both job scripts share.
pub struct Scripts<'a> {
    /// The job name (the collect job adds `-collect`).
    pub name: &'a str,
    /// Where Slurm writes the jobs' output.
    pub logs: &'a Path,
    /// The directory the jobs run in (relative paths of the spec resolve from there).
    pub workdir: &'a Path,
    /// The command prefix every job runs (executable, `--results`), shell-quoted.
    pub mechlab: &'a str,
    pub opts: &'a SlurmOptions,
}

impl Scripts<'_> {
    /// The array job: task `i` runs the nodes on line `i + 1` of `tasks_file`; `run_args` is what
    /// follows `run` (the spec, its `--profile`/`--set`, `--device`), shell-quoted.
    pub fn array(&self, tasks: usize, tasks_file: &Path, run_args: &str) -> String {
        header(self.name, self.logs, self.opts, Some(tasks))
            + &format!(
                "cd {}\nNODES=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {})\n\
                 # Node ids are hex, so word splitting of $NODES is safe.\n\
                 exec {} run {run_args} --quiet --no-collect $NODES\n",
                shell_quote(&self.workdir.to_string_lossy()),
                shell_quote(&tasks_file.to_string_lossy()),
                self.mechlab,
            )
    }

    /// The job that rebuilds the tables after the array; `spec_args` names the spec as for `run`.
    pub fn collect(&self, spec_args: &str) -> String {
        header(
            &format!("{}-collect", self.name),
            self.logs,
            self.opts,
            None,
        ) + &format!(
            "cd {}\nexec {} collect {spec_args}\n",
            shell_quote(&self.workdir.to_string_lossy()),
            self.mechlab,
        )
    }
}

/// Submits `script` with `sbatch --parsable`, after `after` (any end state) when given; returns
/// the job id.
pub fn submit(sbatch: &Path, script: &Path, after: Option<&str>) -> Result<String, SlurmError> {
    let mut cmd = Command::new(sbatch);
    cmd.arg("--parsable");
    if let Some(id) = after {
        cmd.arg(format!("--dependency=afterany:{id}"));
    }
    cmd.arg(script);
    let shown = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().map_err(|source| SlurmError::Spawn {
        program: sbatch.display().to_string(),
        source,
    })?;
    if !out.status.success() {
        return Err(SlurmError::Sbatch {
            command: shown,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    // `--parsable` prints `id` or `id;cluster`.
    match stdout.trim().split(';').next() {
        Some(id) if !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) => Ok(id.to_string()),
        _ => Err(SlurmError::NoJobId {
            command: shown,
            stdout,
        }),
    }
}

/// What a submission recorded: its job ids and the node ids of each array task, so `status` can
/// ask the queue about them and `slurm --cancel` can cancel them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Jobs {
    /// Submission folders are named `<experiment>-<time>`, which another experiment's name can
    /// also match (`tiny` and `tiny-2`): the record says whose it is.
    pub experiment: String,
    pub array: String,
    pub collect: String,
    pub tasks: Vec<Vec<String>>,
}

impl Jobs {
    /// The record of the submission in `dir`, if it is `experiment`'s.
    fn read(dir: &SubmissionDir, experiment: &str) -> Option<Jobs> {
        let bytes = std::fs::read(dir.jobs()).ok()?;
        serde_json::from_slice::<Jobs>(&bytes)
            .ok()
            .filter(|jobs| jobs.experiment == experiment)
    }
}

/// Slurm's state of every node of `experiment` that is in the queue (`PENDING`, `RUNNING`, …)
/// with its job id, from `squeue`; empty where nothing is queued or Slurm is not installed.
pub fn queued(store: &Store, experiment: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for dir in store.slurm_submissions(experiment) {
        let Some(jobs) = Jobs::read(&dir, experiment) else {
            continue;
        };
        // -r: one line per array task, `<array>_<index> <STATE>`.
        let Ok(listing) = Command::new("squeue")
            .args(["-h", "-r", "-o", "%i %T", "-j"])
            .arg(&jobs.array)
            .output()
        else {
            return out;
        };
        for line in String::from_utf8_lossy(&listing.stdout).lines() {
            let Some((id, state)) = line.split_once(' ') else {
                continue;
            };
            let index = id
                .strip_prefix(&format!("{}_", jobs.array))
                .and_then(|i| i.parse::<usize>().ok());
            if let Some(nodes) = index.and_then(|i| jobs.tasks.get(i)) {
                for node in nodes {
                    out.insert(node.clone(), format!("{state} (job {id})"));
                }
            }
        }
    }
    out
}

/// Cancels every job of `experiment`'s submissions that is still queued or running; returns the
/// job ids asked to cancel.
pub fn cancel(store: &Store, experiment: &str, scancel: &Path) -> Result<Vec<String>, SlurmError> {
    let mut ids = Vec::new();
    for dir in store.slurm_submissions(experiment) {
        if let Some(jobs) = Jobs::read(&dir, experiment) {
            ids.extend([jobs.array, jobs.collect]);
        }
    }
    if ids.is_empty() {
        return Ok(ids);
    }
    let out = Command::new(scancel)
        .args(&ids)
        .output()
        .map_err(|source| SlurmError::Spawn {
            program: scancel.display().to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(SlurmError::Sbatch {
            command: format!("{} {}", scancel.display(), ids.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(ids)
}

/// How the submitted tasks call mechlab again: the same spec, profile, overrides and device.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub spec: PathBuf,
    pub profile: Option<String>,
    pub sets: Vec<String>,
    /// As given to `--device` (`cpu`, `cuda:1`).
    pub device: String,
    /// The results root the tasks write to.
    pub results: PathBuf,
}

/// What [`submit_graph`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// Where the scripts, task list and logs are.
    pub dir: PathBuf,
    /// Array tasks (runs with work left).
    pub tasks: usize,
    /// Distinct nodes those tasks run.
    pub nodes: usize,
    pub array: PathBuf,
    pub collect: PathBuf,
    /// The array and collect job ids; `None` on a dry run.
    pub job_ids: Option<(String, String)>,
}

/// Writes the array and collect scripts for what is not done in `graph` into a new submission
/// folder and, unless `dry_run`, submits them with `sbatch`. `None` when every node is done.
pub fn submit_graph(
    graph: &RunGraph,
    store: &Store,
    call: &Invocation,
    opts: &SlurmOptions,
    sbatch: &Path,
    dry_run: bool,
) -> Result<Option<Submission>, SlurmError> {
    let tasks = tasks(graph, store, opts.pack)?;
    if tasks.is_empty() {
        return Ok(None);
    }
    // Tasks run elsewhere and later: every path they read must be absolute.
    let absolute = |p: &Path| -> Result<PathBuf, SlurmError> {
        std::path::absolute(p).map_err(|source| SlurmError::Environment {
            what: format!("{}: cannot make absolute", p.display()),
            source,
        })
    };
    let env = |what: &str| {
        let what = what.to_string();
        move |source| SlurmError::Environment { what, source }
    };
    let workdir = std::env::current_dir().map_err(env("reading the working directory"))?;
    let exe = std::env::current_exe().map_err(env("locating the mechlab executable"))?;
    let mechlab = format!(
        "{} --results {}",
        shell_quote(&exe.to_string_lossy()),
        shell_quote(&absolute(&call.results)?.to_string_lossy())
    );
    let mut spec_args = vec![shell_quote(&absolute(&call.spec)?.to_string_lossy())];
    if let Some(p) = &call.profile {
        spec_args.push(format!("--profile {}", shell_quote(p)));
    }
    for s in &call.sets {
        spec_args.push(format!("--set {}", shell_quote(s)));
    }
    let spec_args = spec_args.join(" ");
    let run_args = format!("{spec_args} --device {}", shell_quote(&call.device));

    let dir = crate::store::SubmissionDir::at(absolute(
        store.new_slurm_submission(&graph.experiment).path(),
    )?);
    let logs = dir.logs();
    std::fs::create_dir_all(&logs).map_err(StoreError::io(&logs))?;
    let tasks_file = dir.tasks();
    let lines: Vec<String> = tasks
        .iter()
        .map(|ids| {
            ids.iter()
                .map(|id| format!("--node {id}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    write_atomic(&tasks_file, (lines.join("\n") + "\n").as_bytes())?;
    let name = format!("mechlab-{}", graph.experiment);
    let scripts = Scripts {
        name: &name,
        logs: &logs,
        workdir: &workdir,
        mechlab: &mechlab,
        opts,
    };
    let array = dir.array_script();
    write_atomic(
        &array,
        scripts
            .array(tasks.len(), &tasks_file, &run_args)
            .as_bytes(),
    )?;
    let collect = dir.collect_script();
    write_atomic(&collect, scripts.collect(&spec_args).as_bytes())?;
    // Runs may share a dataset node: count it once.
    let nodes = tasks
        .iter()
        .flatten()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let job_ids = if dry_run {
        None
    } else {
        let array_id = submit(sbatch, &array, None)?;
        let collect_id = submit(sbatch, &collect, Some(&array_id))?;
        let jobs = Jobs {
            experiment: graph.experiment.clone(),
            array: array_id.clone(),
            collect: collect_id.clone(),
            tasks: tasks.clone(),
        };
        let json = serde_json::to_vec_pretty(&jobs).unwrap_or_default();
        write_atomic(&dir.jobs(), &json)?;
        Some((array_id, collect_id))
    };
    Ok(Some(Submission {
        dir: dir.path().to_path_buf(),
        tasks: tasks.len(),
        nodes,
        array,
        collect,
        job_ids,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_the_shell() {
        for s in ["plain", "train.lr=1e-3", "it's", "a b", "$HOME", ""] {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }

    #[test]
    fn array_script_asks_for_the_resources_and_runs_its_line() {
        let opts = SlurmOptions {
            partition: Some("gpu".into()),
            time: Some("4:00:00".into()),
            cpus_per_task: 4,
            gpus: 1,
            max_parallel: Some(8),
            extra: vec!["--qos=high".into()],
            ..SlurmOptions::default()
        };
        let scripts = Scripts {
            name: "mechlab-x",
            logs: Path::new("/r/logs"),
            workdir: Path::new("/work dir"),
            mechlab: "/bin/mechlab --results /r",
            opts: &opts,
        };
        let text = scripts.array(12, Path::new("/r/tasks.txt"), "spec.toml --device cuda");
        for line in [
            "#SBATCH --array=0-11%8",
            "#SBATCH --output=/r/logs/%A_%a.out",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --signal=B:TERM@120",
            "#SBATCH --time=4:00:00",
            "#SBATCH --partition=gpu",
            "#SBATCH --qos=high",
            "cd '/work dir'",
            "exec /bin/mechlab --results /r run spec.toml --device cuda --quiet --no-collect $NODES",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
    }
}
