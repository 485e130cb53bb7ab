//! Loading a spec: figment layers the sources, serde types them, the sweep expands them, and
//! every problem found on the way is reported with the place that caused it.
//!
//! Layers, lowest first: field defaults < `include`d files (depth first) < the spec file <
//! `[profile.<name>]` of the merged files < `MECHLAB_<SECTION>__<KEY>` environment variables <
//! `--set key=value`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{Issue, Origin, SpecError, suggest};
use super::locate::locate;
use super::raw::{
    ArSpec, AtrSpec, ExperimentSpec, InterventionSpec, ModelSpec, MqarSpec, SweepSpec, TableSpec,
    TaskSpec, TrainSpec,
};
use super::resolve::{
    Resolved, RunPoint, label, resolve_intervention, resolve_model, resolve_train,
};
use super::sweep::expand;
use super::validate::{check_run, warnings};

/// How to layer a spec.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--profile NAME`: merge `[profile.NAME]` over the spec.
    pub profile: Option<String>,
    /// `--set key=value` overrides, in order (later wins). Values are TOML (`1e-3`, `"x"`,
    /// `[1, 2]`); anything that does not parse as TOML is taken as a string.
    pub sets: Vec<String>,
    /// Read `MECHLAB_<SECTION>__<KEY>` variables (on for the CLI; tests turn it off).
    pub env: bool,
}

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

/// Where each layer came from, to point errors at the right place.
struct Sources {
    /// Include files then the spec itself (lowest to highest precedence), with their text.
    files: Vec<(PathBuf, String)>,
    profile: Option<String>,
    /// (dotted key, raw `--set` text)
    sets: Vec<(String, String)>,
    /// (dotted key, variable name)
    env: Vec<(String, String)>,
}

impl Sources {
    fn spec(&self) -> &Path {
        &self.files.last().expect("spec file").0
    }

    /// The place a raw path of the files was written (full match in the highest file first,
    /// else the deepest partial match in the spec itself).
    fn in_files(&self, raw: &[String]) -> Origin {
        let mut best: Option<(usize, Origin)> = None;
        for (path, text) in self.files.iter().rev() {
            if let Some(found) = locate(text, raw) {
                let origin = Origin::File {
                    path: path.clone(),
                    line: Some(found.line),
                    col: Some(found.col),
                };
                if found.depth == raw.len() {
                    return origin;
                }
                if best.as_ref().is_none_or(|(d, _)| found.depth > *d) {
                    best = Some((found.depth, origin));
                }
            }
        }
        best.map(|(_, o)| o).unwrap_or_else(|| Origin::File {
            path: self.spec().to_path_buf(),
            line: None,
            col: None,
        })
    }

    /// Where the effective value of dotted `key` came from.
    fn origin(&self, key: &str, set_by: Option<&BTreeMap<String, Vec<String>>>) -> Origin {
        let covers = |k: &str| {
            key == k || key.starts_with(&format!("{k}.")) || k.starts_with(&format!("{key}."))
        };
        if let Some((k, raw)) = self.sets.iter().rev().find(|(k, _)| covers(k)) {
            return Origin::Set(format!("{k}={raw}"));
        }
        if let Some((_, var)) = self.env.iter().rev().find(|(k, _)| covers(k)) {
            return Origin::Env(var.clone());
        }
        if let Some(raw) =
            set_by.and_then(|s| s.iter().find(|(k, _)| covers(k)).map(|(_, raw)| raw))
        {
            return self.in_files(raw);
        }
        let parts: Vec<String> = key.split('.').map(String::from).collect();
        if let Some(p) = &self.profile {
            let mut raw = vec!["profile".to_string(), p.clone()];
            raw.extend(parts.iter().cloned());
            if self
                .files
                .iter()
                .any(|(_, text)| locate(text, &raw).is_some_and(|f| f.depth == raw.len()))
            {
                return self.in_files(&raw);
            }
        }
        self.in_files(&parts)
    }

    fn issue(
        &self,
        key: &str,
        set_by: Option<&BTreeMap<String, Vec<String>>>,
        message: String,
        help: Vec<String>,
    ) -> Issue {
        Issue {
            origin: self.origin(key, set_by),
            key: key.to_string(),
            message,
            help,
        }
    }
}

/// Reads, layers, expands and validates the spec at `path`.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Resolved, SpecError> {
    let mut files = Vec::new();
    let mut issues = Vec::new();
    collect_files(path, &mut Vec::new(), &mut files, &mut issues)?;
    if !issues.is_empty() {
        return Err(SpecError::Invalid(issues));
    }

    let mut sources = Sources {
        files,
        profile: opts.profile.clone(),
        sets: Vec::new(),
        env: Vec::new(),
    };
    let mut fig = Figment::new();
    for (_, text) in &sources.files {
        fig = fig.merge(Toml::string(text));
    }
    if let Some(name) = &opts.profile {
        match fig.find_value(&format!("profile.{name}")) {
            Ok(section) => fig = fig.merge(Serialized::defaults(section)),
            Err(_) => {
                let available: Vec<String> = fig
                    .find_value("profile")
                    .ok()
                    .and_then(|v| v.into_dict())
                    .map(|d| d.into_keys().collect())
                    .unwrap_or_default();
                let mut help = vec![if available.is_empty() {
                    "this spec defines no profiles; add a [profile.NAME] table".to_string()
                } else {
                    format!("profiles defined: {}", available.join(", "))
                }];
                if let Some(s) = suggest(name, available.iter().map(String::as_str)) {
                    help.push(format!("help: did you mean \"{s}\"?"));
                }
                return Err(SpecError::Invalid(vec![Issue {
                    origin: Origin::File {
                        path: sources.spec().to_path_buf(),
                        line: None,
                        col: None,
                    },
                    key: format!("profile.{name}"),
                    message: format!("--profile {name}: no such profile"),
                    help,
                }]));
            }
        }
    }
    if opts.env {
        for (var, _) in std::env::vars() {
            if let Some(rest) = var.strip_prefix("MECHLAB_").filter(|r| r.contains("__")) {
                sources
                    .env
                    .push((rest.to_lowercase().replace("__", "."), var.clone()));
            }
        }
        fig = fig.merge(
            Env::prefixed("MECHLAB_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
    }
    for set in &opts.sets {
        let Some((key, raw)) = set.split_once('=') else {
            issues.push(Issue {
                origin: Origin::Set(set.clone()),
                key: String::new(),
                message: "expected KEY=VALUE, e.g. --set train.lr=1e-3".into(),
                help: Vec::new(),
            });
            continue;
        };
        let key = key.trim().to_string();
        let value = parse_set_value(raw.trim());
        sources.sets.push((key.clone(), raw.trim().to_string()));
        fig = fig.merge(Serialized::default(&key, value));
    }
    if !issues.is_empty() {
        return Err(SpecError::Invalid(issues));
    }

    let merged: Value = fig.extract().map_err(|e| {
        SpecError::Invalid(vec![Issue {
            origin: Origin::File {
                path: sources.spec().to_path_buf(),
                line: None,
                col: None,
            },
            key: e.path.join("."),
            message: e.kind.to_string(),
            help: Vec::new(),
        }])
    })?;
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
    if experiment.name == crate::store::STORE_DIR {
        issues.push(sources.issue(
            "experiment.name",
            None,
            format!(
                "\"{}\" is reserved: the node store lives in results/{}/",
                experiment.name,
                crate::store::STORE_DIR
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

    let mut runs = Vec::new();
    for point in &points {
        let set_by = Some(&point.set_by);
        let task: Option<TaskSpec> = task_section(&point.value, &sources, set_by, &mut issues);
        let model: Option<ModelSpec> =
            section(&point.value, "model", &sources, set_by, &mut issues, false);
        let train: Option<TrainSpec> =
            section(&point.value, "train", &sources, set_by, &mut issues, false);
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
        for &seed in &experiment.seeds {
            let mut axes = point.axes.clone();
            axes.push(("seed".to_string(), Value::from(seed)));
            let mut name: Vec<String> = point.axes.iter().map(|(k, v)| label(k, v)).collect();
            name.push(format!("s{seed}"));
            let resolved_model = resolve_model(&model, task.config().vocab_size());
            let run = RunPoint {
                name: name.join("-"),
                seed,
                axes,
                interventions: interventions
                    .iter()
                    .map(|i| resolve_intervention(i, &resolved_model))
                    .collect(),
                model: resolved_model,
                train: resolve_train(&train, task.train_size()),
                task: task.clone(),
            };
            for (key, message, help) in check_run(&run) {
                issues.push(sources.issue(&key, set_by, message, help));
            }
            all_warnings.extend(warnings(&run));
            runs.push(run);
        }
    }
    dedup(&mut issues);
    if !issues.is_empty() {
        return Err(SpecError::Invalid(issues));
    }
    // Names must identify runs; `when` overrides can make two points share axis values.
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for run in &runs {
        *counts.entry(run.name.clone()).or_default() += 1;
    }
    for (i, run) in runs.iter_mut().enumerate() {
        if counts[&run.name] > 1 {
            run.name = format!("{}-{i}", run.name);
        }
    }
    // Through a JSON value, so keys are sorted and the hash does not depend on field order.
    let canonical = serde_json::to_value(&runs)
        .map(|v| crate::plan::id::canonical(&v))
        .expect("runs serialise");
    let mut warnings_dedup = Vec::new();
    for w in all_warnings {
        if !warnings_dedup.contains(&w) {
            warnings_dedup.push(w);
        }
    }
    Ok(Resolved {
        experiment: experiment.name,
        description: experiment.description,
        source: path.to_path_buf(),
        spec_hash: blake3::hash(canonical.as_bytes()).to_hex()[..16].to_string(),
        runs,
        tables,
        warnings: warnings_dedup,
    })
}

/// The largest spec or include fragment read: far above any real spec, far below a runaway read.
const MAX_SPEC_BYTES: u64 = 1 << 20;

/// Why `path` cannot be a spec file (a folder, a device such as `/dev/zero`, something huge), or
/// `None`; a path that cannot be inspected is left to the read, which reports why.
fn not_a_spec_file(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return Some("is not a regular file".into());
    }
    (meta.len() > MAX_SPEC_BYTES).then(|| {
        format!(
            "is {} bytes; a spec or include fragment is at most {MAX_SPEC_BYTES}",
            meta.len()
        )
    })
}

/// Reads `path` and, depth first, the files it includes. Syntax errors and include cycles are
/// issues; an unreadable spec is an error of its own.
fn collect_files(
    path: &Path,
    stack: &mut Vec<PathBuf>,
    files: &mut Vec<(PathBuf, String)>,
    issues: &mut Vec<Issue>,
) -> Result<(), SpecError> {
    if let Some(problem) = not_a_spec_file(path) {
        return Err(SpecError::Read {
            path: path.to_path_buf(),
            source: std::io::Error::other(problem),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if stack.contains(&canonical) {
        issues.push(Issue {
            origin: Origin::File {
                path: path.to_path_buf(),
                line: None,
                col: None,
            },
            key: "include".into(),
            message: "include cycle: this file includes itself through its includes".into(),
            help: Vec::new(),
        });
        return Ok(());
    }
    let table: toml::Table = match toml::from_str(&text) {
        Ok(t) => t,
        Err(e) => {
            let (line, col) = e
                .span()
                .map(|s| {
                    let before = &text[..s.start.min(text.len())];
                    (
                        before.matches('\n').count() + 1,
                        before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1,
                    )
                })
                .unzip();
            issues.push(Issue {
                origin: Origin::File {
                    path: path.to_path_buf(),
                    line,
                    col,
                },
                key: String::new(),
                message: format!("invalid TOML: {}", e.message()),
                help: Vec::new(),
            });
            return Ok(());
        }
    };
    stack.push(canonical);
    if let Some(includes) = table.get("include") {
        let dir = path.parent().unwrap_or(Path::new("."));
        match includes.as_array() {
            Some(items) => {
                for item in items {
                    match item.as_str() {
                        Some(rel) => {
                            let inc = dir.join(rel);
                            let problem = if inc.exists() {
                                not_a_spec_file(&inc)
                            } else {
                                Some("does not exist".to_string())
                            };
                            if let Some(problem) = problem {
                                let (line, col) = locate(&text, &["include".into()])
                                    .map(|f| (f.line, f.col))
                                    .unzip();
                                issues.push(Issue {
                                    origin: Origin::File {
                                        path: path.to_path_buf(),
                                        line,
                                        col,
                                    },
                                    key: "include".into(),
                                    message: format!("included file {} {problem}", inc.display()),
                                    help: Vec::new(),
                                });
                                continue;
                            }
                            collect_files(&inc, stack, files, issues)?;
                        }
                        None => issues.push(Issue {
                            origin: Origin::File {
                                path: path.to_path_buf(),
                                line: None,
                                col: None,
                            },
                            key: "include".into(),
                            message: "expected a list of file paths".into(),
                            help: Vec::new(),
                        }),
                    }
                }
            }
            None => issues.push(Issue {
                origin: Origin::File {
                    path: path.to_path_buf(),
                    line: None,
                    col: None,
                },
                key: "include".into(),
                message: "expected a list of file paths, e.g. include = [\"base.toml\"]".into(),
                help: Vec::new(),
            }),
        }
    }
    stack.pop();
    files.push((path.to_path_buf(), text));
    Ok(())
}

/// `--set` values are TOML; bare words become strings.
fn parse_set_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
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
