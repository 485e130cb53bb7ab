//! Loading a spec: [`super::layer`] merges its layers, serde types each section, the sweep
//! expands them into runs, [`super::validate`] checks each run, and every problem found on the
//! way is reported with the place that caused it ([`super::sources`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{Issue, Origin, SpecError, suggest};
use super::layer::layer;
pub use super::options::LoadOptions;
use super::raw::{
    ArSpec, AtrSpec, ExperimentSpec, InterventionSpec, ModelSpec, MqarSpec, SweepSpec, TableSpec,
    TaskSpec, TrainSpec,
};
use super::resolve::{
    Resolved, RunPoint, label, resolve_intervention, resolve_model, resolve_train,
};
use super::resources::{Estimate, estimate, human};
use super::sources::Sources;
use super::sweep::expand;
use super::validate::{check_run, warnings};

/// The folder of node directories under the results root, beside the experiments' folders:
/// no experiment may take its name. The store lays itself out by it (`store::STORE_DIR`).
pub const STORE_DIR: &str = "store";

/// The most runs (sweep points × seeds) one spec may expand to.
pub const MAX_RUNS: usize = 10_000;

/// The longest experiment name: it names a directory.
const MAX_NAME: usize = 100;

const SECTIONS: [&str; 9] = [
    "include",
    "experiment",
    "task",
    "model",
    "train",
    "sweep",
    "profile",
    "interventions",
    "tables",
];

/// Reads, layers, expands and validates the spec at `path`.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Resolved, SpecError> {
    let (merged, sources) = layer(path, opts)?;
    let mut issues = Vec::new();
    let Value::Object(top) = &merged else {
        unreachable!("figment always yields a dictionary")
    };
    for key in top.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            let mut help = vec![format!("valid top-level keys: {}", SECTIONS.join(", "))];
            if let Some(s) = suggest(key, SECTIONS) {
                help.push(format!("help: did you mean `{s}`?"));
            }
            issues.push(sources.issue(key, None, format!("unknown key `{key}`"), help));
        }
    }

    let experiment: Option<ExperimentSpec> =
        section(&merged, "experiment", &sources, None, &mut issues, true);
    let task = task_section(&merged, &sources, None, &mut issues);
    let _: Option<ModelSpec> = section(&merged, "model", &sources, None, &mut issues, false);
    let _: Option<TrainSpec> = section(&merged, "train", &sources, None, &mut issues, false);
    let sweep: Option<SweepSpec> = section(&merged, "sweep", &sources, None, &mut issues, false);
    let interventions = interventions_section(&merged, &sources, &mut issues);
    let tables: Option<Vec<TableSpec>> = match merged.get("tables") {
        None => Some(Vec::new()),
        Some(_) => section(&merged, "tables", &sources, None, &mut issues, false),
    };
    let (Some(experiment), Some(_task), Some(sweep), Some(interventions), Some(tables)) =
        (experiment, task, sweep, interventions, tables)
    else {
        return Err(SpecError::Invalid(issues));
    };
    issues.extend(check_experiment(&experiment, &sources));
    if !issues.is_empty() {
        return Err(SpecError::Invalid(issues));
    }

    let mut base = merged.clone();
    if let Value::Object(map) = &mut base {
        for meta in ["sweep", "profile", "include", "interventions", "tables"] {
            map.remove(meta);
        }
    }
    let pinned: BTreeSet<String> = sources
        .sets
        .iter()
        .chain(&sources.env)
        .map(|(k, _)| k.clone())
        .collect();
    let (points, mut all_warnings) = expand(&base, &sweep, &pinned).map_err(|problems| {
        SpecError::Invalid(
            problems
                .into_iter()
                .map(|(raw, message)| Issue {
                    origin: sources.in_files(&raw),
                    key: raw.join("."),
                    message,
                    help: Vec::new(),
                })
                .collect(),
        )
    })?;

    let count = points.len().saturating_mul(experiment.seeds.len());
    if count > MAX_RUNS {
        return Err(SpecError::Invalid(vec![sources.issue(
            "experiment.seeds",
            None,
            format!(
                "{} sweep points × {} seeds = {count} runs; at most {MAX_RUNS} per spec: split \
                 it into several specs (a folder of specs runs as one batch)",
                points.len(),
                experiment.seeds.len()
            ),
            Vec::new(),
        )]));
    }
    let max_memory = opts
        .max_memory
        .or_else(super::resources::machine_memory)
        .unwrap_or(u64::MAX);
    let runs = resolve_runs(
        &points,
        &experiment.seeds,
        &interventions,
        &sources,
        max_memory,
        &mut issues,
        &mut all_warnings,
    );
    dedup(&mut issues);
    if !issues.is_empty() {
        return Err(SpecError::Invalid(issues));
    }
    let mut runs = runs;
    make_names_unique(&mut runs);
    if let Some(profile) = &opts.profile {
        all_warnings.extend(profile_warnings(path, opts, profile, &runs));
    }
    let mut warnings_dedup = Vec::new();
    for w in sources.outside.iter().cloned().chain(all_warnings) {
        if !warnings_dedup.contains(&w) {
            warnings_dedup.push(w);
        }
    }
    Ok(Resolved {
        experiment: experiment.name,
        description: experiment.description,
        source: path.to_path_buf(),
        spec_hash: spec_hash(&runs),
        runs,
        tables,
        warnings: warnings_dedup,
    })
}

/// The names of the `[profile.NAME]` tables the spec at `path` and its includes define.
pub fn profiles(path: &Path) -> Result<Vec<String>, SpecError> {
    let (merged, _) = layer(path, &LoadOptions::default())?;
    Ok(merged
        .get("profile")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default())
}

/// What `--profile` changes that a user comparing results must know: the test sets it no longer
/// shares with the spec's own runs ([`test_set_changes`]).
fn profile_warnings(
    path: &Path,
    opts: &LoadOptions,
    profile: &str,
    runs: &[RunPoint],
) -> Vec<String> {
    // The spec without the profile: its own memory limit is not this profile's problem.
    let plain = LoadOptions {
        profile: None,
        max_memory: Some(u64::MAX),
        ..opts.clone()
    };
    match load(path, &plain) {
        Ok(own) => test_set_changes(profile, runs, &own.runs),
        Err(_) => Vec::new(),
    }
}

/// Where a profile's runs are evaluated on other test sequences than the spec's own runs of the
/// same seed (a reduced task, or fewer training sequences drawn before the test ones from the
/// reference's stream): one warning per distinct change, naming what differs.
fn test_set_changes(profile: &str, runs: &[RunPoint], own: &[RunPoint]) -> Vec<String> {
    let mut out = Vec::new();
    // The own runs' test sets, each once, looked up by seed and text: a sweep of thousands of
    // runs is not compared pairwise.
    let text = |f: &BTreeMap<String, Value>| serde_json::to_string(f).expect("JSON serialises");
    let mut known = BTreeSet::new();
    let mut first_of_seed: BTreeMap<u64, BTreeMap<String, Value>> = BTreeMap::new();
    for o in own {
        let fields = o.task.test_set_fields();
        known.insert((o.seed, text(&fields)));
        first_of_seed.entry(o.seed).or_insert(fields);
    }
    for run in runs {
        let fields = run.task.test_set_fields();
        if known.contains(&(run.seed, text(&fields))) {
            continue;
        }
        let message = match first_of_seed.get(&run.seed) {
            None => format!(
                "--profile {profile}: seed {} is not one of the spec's own seeds, so its test \
                 set is not the spec's",
                run.seed
            ),
            Some(theirs) => {
                let null = Value::Null;
                let changed: Vec<String> = fields
                    .keys()
                    .chain(theirs.keys())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .filter(|k| fields.get(*k) != theirs.get(*k))
                    .map(|k| {
                        format!(
                            "{k} = {} (without the profile: {})",
                            fields.get(k).unwrap_or(&null),
                            theirs.get(k).unwrap_or(&null)
                        )
                    })
                    .collect();
                let stream = if run.task.rng() == crate::task::DataRng::Reference
                    && changed
                        .iter()
                        .all(|c| c.starts_with("task.train_size") || c.starts_with("task.dev_size"))
                {
                    "; with rng = \"reference\" the test sequences are drawn after the \
                     training ones from one stream, so another training size shifts them"
                } else {
                    ""
                };
                format!(
                    "--profile {profile}: the test set differs from the spec's own, so results \
                     are not measured on the same sequences: {}{stream}",
                    changed.join(", ")
                )
            }
        };
        if !out.contains(&message) {
            out.push(message);
        }
    }
    out
}

/// `[experiment]`: a name that can be a directory beside the node store, and seeds.
fn check_experiment(experiment: &ExperimentSpec, sources: &Sources) -> Vec<Issue> {
    let mut issues = Vec::new();
    if experiment.name.is_empty()
        || !experiment
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        || experiment.name.starts_with('.')
    {
        issues.push(sources.issue(
            "experiment.name",
            None,
            format!(
                "expected letters, digits, `_`, `-` or `.` (it names a directory), found \"{}\"",
                experiment.name
            ),
            Vec::new(),
        ));
    }
    // The name is a directory beside the node store: not the store's own, and short enough for
    // every file system (a 300-character name trained and then failed at collect).
    if experiment.name == STORE_DIR {
        issues.push(sources.issue(
            "experiment.name",
            None,
            format!(
                "\"{}\" is reserved: the node store lives in results/{}/",
                experiment.name, STORE_DIR
            ),
            Vec::new(),
        ));
    }
    if experiment.name.len() > MAX_NAME {
        issues.push(sources.issue(
            "experiment.name",
            None,
            format!(
                "expected at most {MAX_NAME} characters, found {}",
                experiment.name.len()
            ),
            Vec::new(),
        ));
    }
    if experiment.seeds.is_empty() {
        issues.push(sources.issue(
            "experiment.seeds",
            None,
            "expected at least one seed".into(),
            Vec::new(),
        ));
    }
    issues
}

/// For each key a sweep point set, the raw path of the sweep line that set it.
type SetBy = BTreeMap<String, Vec<String>>;

/// One run per sweep point and seed: each point's sections typed, resolved and checked.
fn resolve_runs(
    points: &[super::sweep::Point],
    seeds: &[u64],
    interventions: &[InterventionSpec],
    sources: &Sources,
    max_memory: u64,
    issues: &mut Vec<Issue>,
    all_warnings: &mut Vec<String>,
) -> Vec<RunPoint> {
    let mut runs = Vec::new();
    // The run estimated to need the most memory, if any exceeds the limit: one error for the
    // sweep, not one per run.
    let mut worst: Option<(Estimate, String, Option<SetBy>)> = None;
    for point in points {
        let set_by = Some(&point.set_by);
        let task: Option<TaskSpec> = task_section(&point.value, sources, set_by, issues);
        let model: Option<ModelSpec> =
            section(&point.value, "model", sources, set_by, issues, false);
        let train: Option<TrainSpec> =
            section(&point.value, "train", sources, set_by, issues, false);
        let (Some(task), Some(model), Some(train)) = (task, model, train) else {
            continue;
        };
        if train.steps.is_some() && train.epochs.is_some() {
            issues.push(sources.issue(
                "train.steps",
                set_by,
                "set either train.steps or train.epochs, not both".into(),
                Vec::new(),
            ));
            continue;
        }
        // The mixer reads its own keys; one it has no use for is reported once, not per seed.
        let resolved_model = match resolve_model(&model, task.config().vocab_size()) {
            Ok(m) => m,
            Err(problems) => {
                for p in problems {
                    issues.push(sources.issue(p.key, set_by, p.message, p.help));
                }
                continue;
            }
        };
        let imported = match &model.weights {
            None => None,
            Some(file) => match import_weights(file, &resolved_model, sources, set_by) {
                Ok(imported) => Some(imported),
                Err(issue) => {
                    issues.push(*issue);
                    continue;
                }
            },
        };
        for &seed in seeds {
            let mut axes = point.axes.clone();
            axes.push(("seed".to_string(), Value::from(seed)));
            let mut name: Vec<String> = point.axes.iter().map(|(k, v)| label(k, v)).collect();
            name.push(format!("s{seed}"));
            let run = RunPoint {
                name: name.join("-"),
                seed,
                axes,
                interventions: interventions
                    .iter()
                    .map(|i| resolve_intervention(i, &resolved_model))
                    .collect(),
                model: resolved_model.clone(),
                train: resolve_train(&train, task.train_size()),
                task: task.clone(),
                imported: imported.clone(),
            };
            for (key, message, help) in check_run(&run) {
                issues.push(sources.issue(&key, set_by, message, help));
            }
            let need = estimate(&run);
            if need.total() > max_memory as f64
                && worst
                    .as_ref()
                    .is_none_or(|(w, ..)| need.total() > w.total())
            {
                worst = Some((need, run.name.clone(), set_by.cloned()));
            }
            all_warnings.extend(warnings(&run));
            runs.push(run);
        }
    }
    if let Some((need, name, set_by)) = worst {
        issues.push(sources.issue(
            need.main_key(),
            set_by.as_ref(),
            format!(
                "run {name} needs ≈ {} (training state {}, data {}, activations of a batch {}), \
                 more than the {} allowed",
                human(need.total()),
                human(need.training_state),
                human(need.data),
                human(need.activations),
                human(max_memory as f64)
            ),
            vec![
                "the limit is this machine's memory; --max-memory SIZE (e.g. 64G) sets another"
                    .into(),
            ],
        ));
    }
    runs
}

/// `model.weights`: the file (relative to the file that named it; to the working directory when
/// a `--set` or the environment did), its content hash, and whether it fits `model` — refused
/// here, at validate, with every mismatch listed, rather than when the run starts.
fn import_weights(
    file: &str,
    model: &crate::model::ModelConfig,
    sources: &Sources,
    set_by: Option<&SetBy>,
) -> Result<super::resolve::Imported, Box<Issue>> {
    const KEY: &str = "model.weights";
    let path = match sources.origin(KEY, set_by) {
        Origin::File { path: spec, .. } => spec
            .parent()
            .map_or_else(|| Path::new(file).to_path_buf(), |dir| dir.join(file)),
        _ => Path::new(file).to_path_buf(),
    };
    let fail =
        |message: String, help: Vec<String>| Box::new(sources.issue(KEY, set_by, message, help));
    if path
        .extension()
        .is_some_and(|e| matches!(e.to_str(), Some("pt" | "pth" | "bin" | "ckpt")))
    {
        return Err(fail(
            format!(
                "{}: PyTorch pickles are not read, only safetensors",
                path.display()
            ),
            vec![
                "convert it in Python: safetensors.torch.save_file(torch.load(path), \
                 \"weights.safetensors\") (a checkpoint's model dict: torch.load(path)[\"model\"])"
                    .into(),
            ],
        ));
    }
    let bytes = std::fs::read(&path)
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display()), Vec::new()))?;
    let tensors = crate::report::export::import::read(&bytes).map_err(|e| {
        fail(
            format!("{}: {e}", path.display()),
            vec!["expected a safetensors file (PyTorch: safetensors.torch.save_file)".into()],
        )
    })?;
    let device = Default::default();
    let built = model
        .init::<burn::backend::Flex>(0, &device)
        .map_err(|e| fail(e.to_string(), Vec::new()))?;
    crate::report::export::import::check_state_dict(&built, model.kind(), &tensors).map_err(
        |e| {
            fail(
                format!("{} does not fit the model: {e}", path.display()),
                vec![
                    "the names are the reference's (`mechlab export weights` writes them); \
                     model.mixer, d_model, layers, mlp, pos_emb, conv_kernel and heads must be \
                     the ones it was trained with"
                        .into(),
                ],
            )
        },
    )?;
    Ok(super::resolve::Imported {
        path,
        blake3: blake3::hash(&bytes).to_hex().to_string(),
    })
}

/// A run name that is safe as a file name (weights are exported as `<run>.safetensors`): only
/// letters, digits and `-_.+`, never `..`, at most [`MAX_NAME`] characters.
fn safe_name(name: &str) -> String {
    let mut safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    while safe.contains("..") {
        safe = safe.replace("..", "_");
    }
    if safe.starts_with('.') {
        safe.replace_range(0..1, "_");
    }
    safe.chars().take(MAX_NAME).collect()
}

/// Names must identify runs; `when` overrides can make two points share axis values, and then
/// each gets its index appended.
fn make_names_unique(runs: &mut [RunPoint]) {
    for run in runs.iter_mut() {
        run.name = safe_name(&run.name);
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for run in runs.iter() {
        *counts.entry(run.name.clone()).or_default() += 1;
    }
    for (i, run) in runs.iter_mut().enumerate() {
        if counts[&run.name] > 1 {
            run.name = format!("{}-{i}", run.name);
        }
    }
}

/// blake3 of the runs' canonical JSON: changes whenever any run changes. Through a JSON value,
/// so keys are sorted and the hash does not depend on field order.
fn spec_hash(runs: &[RunPoint]) -> String {
    // serde_json's map keeps keys sorted, so the compact text of the value is canonical (as
    // the planner's node ids use it).
    let canonical = serde_json::to_value(runs)
        .map(|v| v.to_string())
        .expect("runs serialise");
    blake3::hash(canonical.as_bytes()).to_hex()[..16].to_string()
}

/// Types one top-level section of `value`, turning serde's complaint into located issues.
fn section<T: DeserializeOwned>(
    value: &Value,
    name: &str,
    sources: &Sources,
    set_by: Option<&BTreeMap<String, Vec<String>>>,
    issues: &mut Vec<Issue>,
    required: bool,
) -> Option<T> {
    let v = match value.get(name) {
        Some(v) => v.clone(),
        None if required => {
            issues.push(Issue {
                origin: Origin::File {
                    path: sources.spec().to_path_buf(),
                    line: None,
                    col: None,
                },
                key: name.to_string(),
                message: format!("missing required section [{name}]"),
                help: Vec::new(),
            });
            return None;
        }
        None => Value::Object(Default::default()),
    };
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(t) => Some(t),
        Err(e) => {
            let mut key = vec![name.to_string()];
            for seg in e.path().iter() {
                match seg {
                    serde_path_to_error::Segment::Map { key: k } => key.push(k.clone()),
                    serde_path_to_error::Segment::Seq { index } => key.push(index.to_string()),
                    _ => {}
                }
            }
            let (message, help, extra_key) = explain(&e.inner().to_string());
            if let Some(k) = extra_key.filter(|k| key.last() != Some(k)) {
                key.push(k);
            }
            issues.push(sources.issue(&key.join("."), set_by, message, help));
            None
        }
    }
}

/// Types `[task]` by its `kind`, deserializing the variant's fields directly: serde cannot track
/// key paths inside an internally tagged enum, and errors must name `task.<key>`.
fn task_section(
    value: &Value,
    sources: &Sources,
    set_by: Option<&BTreeMap<String, Vec<String>>>,
    issues: &mut Vec<Issue>,
) -> Option<TaskSpec> {
    let Some(Value::Object(task)) = value.get("task") else {
        // Absent or not a table: the generic path reports it.
        return section(value, "task", sources, set_by, issues, true);
    };
    let mut fields = task.clone();
    let kind = fields.remove("kind");
    let wrapped = serde_json::json!({ "task": fields });
    match kind.as_ref().and_then(Value::as_str) {
        Some("ar") => {
            section::<ArSpec>(&wrapped, "task", sources, set_by, issues, true).map(TaskSpec::Ar)
        }
        Some("atr") => {
            section::<AtrSpec>(&wrapped, "task", sources, set_by, issues, true).map(TaskSpec::Atr)
        }
        Some("mqar") => {
            section::<MqarSpec>(&wrapped, "task", sources, set_by, issues, true).map(TaskSpec::Mqar)
        }
        other => {
            let message = match (other, &kind) {
                (Some(found), _) => format!("unknown value \"{found}\""),
                (None, Some(v)) => format!("expected a string, found {v}"),
                (None, None) => "missing required key".to_string(),
            };
            let mut help = vec![format!("valid: {}", TaskSpec::KINDS.join(", "))];
            if let Some(s) = other.and_then(|found| suggest(found, TaskSpec::KINDS)) {
                help.push(format!("help: did you mean \"{s}\"?"));
            }
            issues.push(sources.issue("task.kind", set_by, message, help));
            None
        }
    }
}

/// Types each `[[interventions]]` block by its `kind`, so errors name
/// `interventions.<i>.<key>` (serde loses paths inside internally tagged enums).
fn interventions_section(
    value: &Value,
    sources: &Sources,
    issues: &mut Vec<Issue>,
) -> Option<Vec<InterventionSpec>> {
    let Some(Value::Array(blocks)) = value.get("interventions") else {
        return match value.get("interventions") {
            None => Some(Vec::new()),
            Some(_) => section(value, "interventions", sources, None, issues, false),
        };
    };
    let before = issues.len();
    let mut out = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let name = format!("interventions.{i}");
        let mut fields = block.as_object().cloned().unwrap_or_default();
        let kind = fields.remove("kind");
        let wrapped = serde_json::json!({ name.clone(): fields });
        let typed = match kind.as_ref().and_then(Value::as_str) {
            Some("interchange") => section(&wrapped, &name, sources, None, issues, true)
                .map(InterventionSpec::Interchange),
            Some("ablation") => section(&wrapped, &name, sources, None, issues, true)
                .map(InterventionSpec::Ablation),
            other => {
                let kinds = ["interchange", "ablation"];
                let mut help = vec![format!("valid: {}", kinds.join(", "))];
                if let Some(s) = other.and_then(|found| suggest(found, kinds)) {
                    help.push(format!("help: did you mean \"{s}\"?"));
                }
                let message = match other {
                    Some(found) => format!("unknown value \"{found}\""),
                    None => "missing required key".to_string(),
                };
                issues.push(sources.issue(&format!("{name}.kind"), None, message, help));
                None
            }
        };
        out.extend(typed);
    }
    (issues.len() == before).then_some(out)
}

/// Rewords serde's messages in mechlab's shape: what was found, what is valid, a suggestion.
/// Returns (message, help, key to append for unknown/missing keys).
fn explain(msg: &str) -> (String, Vec<String>, Option<String>) {
    let ticked =
        |s: &str| -> Vec<String> { s.split('`').skip(1).step_by(2).map(String::from).collect() };
    for (prefix, what) in [("unknown field ", "key"), ("unknown variant ", "value")] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            let names = ticked(rest);
            let Some((found, valid)) = names.split_first() else {
                break;
            };
            let mut help = Vec::new();
            if !valid.is_empty() {
                help.push(format!("valid: {}", valid.join(", ")));
            }
            if let Some(s) = suggest(found, valid.iter().map(String::as_str)) {
                help.push(format!("help: did you mean \"{s}\"?"));
            }
            let key = (what == "key").then(|| found.clone());
            return (format!("unknown {what} \"{found}\""), help, key);
        }
    }
    if let Some(rest) = msg.strip_prefix("missing field ") {
        let field = ticked(rest).into_iter().next();
        return ("missing required key".into(), Vec::new(), field);
    }
    if let Some((found, expected)) = msg
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.split_once(", expected "))
    {
        return (
            format!("expected {expected}, found {found}"),
            Vec::new(),
            None,
        );
    }
    (msg.to_string(), Vec::new(), None)
}

fn dedup(issues: &mut Vec<Issue>) {
    let mut out: Vec<Issue> = Vec::new();
    for issue in issues.drain(..) {
        if !out.contains(&issue) {
            out.push(issue);
        }
    }
    *issues = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_are_safe_file_names() {
        assert_eq!(safe_name("attention-lr3e-4-s42"), "attention-lr3e-4-s42");
        assert_eq!(safe_name("../../etc/passwd"), "____etc_passwd");
        assert_eq!(safe_name("a/b\\c\u{0}d e"), "a_b_c_d_e");
        assert!(!safe_name("..x..").contains(".."));
        assert_eq!(safe_name(&"x".repeat(500)).len(), MAX_NAME);
    }
}
