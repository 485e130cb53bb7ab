//! Layering: the spec file and its includes, then `[profile.NAME]`, environment variables and
//! `--set` overrides, merged by figment into one JSON value, with the provenance of each layer.
//!
//! Layers, lowest first: field defaults < `include`d files (depth first) < the spec file <
//! `[profile.<name>]` of the merged files < `MECHLAB_<SECTION>__<KEY>` environment variables <
//! `--set key=value`.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde_json::Value;

use super::error::{Issue, Origin, SpecError, suggest};
use super::locate::locate;
use super::options::LoadOptions;
use super::sources::Sources;

/// The merged value of every layer of the spec at `path`, and where each layer came from.
pub(super) fn layer(path: &Path, opts: &LoadOptions) -> Result<(Value, Sources), SpecError> {
    let mut files = Vec::new();
    let mut issues = Vec::new();
    let mut vias = std::collections::BTreeMap::new();
    let mut outside = Vec::new();
    let root = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    collect_files(
        path,
        &mut Reach {
            root: root.as_deref(),
            stack: Vec::new(),
            outside: &mut outside,
        },
        &[],
        &mut files,
        &mut vias,
        &mut issues,
    )?;
    if !issues.is_empty() {
        return Err(SpecError::Invalid(issues));
    }

    let mut sources = Sources {
        files,
        vias,
        outside,
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
    Ok((merged, sources))
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

/// What the walk over includes carries down: the spec's own folder (includes outside it are
/// noted), the files being included (to find cycles), and the notes.
struct Reach<'a> {
    root: Option<&'a Path>,
    stack: Vec<PathBuf>,
    outside: &'a mut Vec<String>,
}

/// Reads `path` and, depth first, the files it includes. Syntax errors and include cycles are
/// issues; an unreadable spec is an error of its own.
fn collect_files(
    path: &Path,
    reach: &mut Reach,
    chain: &[String],
    files: &mut Vec<(PathBuf, String)>,
    vias: &mut std::collections::BTreeMap<PathBuf, String>,
    issues: &mut Vec<Issue>,
) -> Result<(), SpecError> {
    if let Some(problem) = not_a_spec_file(path) {
        return Err(SpecError::Read {
            path: path.to_path_buf(),
            reason: std::io::Error::other(problem),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|reason| SpecError::Read {
        path: path.to_path_buf(),
        reason,
    })?;
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    // Every problem found in an included file says through which files it was reached.
    let via = if chain.is_empty() {
        String::new()
    } else {
        format!(
            " (this file is included from {})",
            chain.join(", included from ")
        )
    };
    let table = match parse(path, &text, &via) {
        Ok(t) => t,
        Err(issue) => {
            issues.push(*issue);
            return Ok(());
        }
    };
    reach.stack.push(canonical);
    if let Some(includes) = table.get("include") {
        let dir = path.parent().unwrap_or(Path::new("."));
        // Every include problem points at this file's `include` line.
        let (line, col) = locate(&text, &["include".into()])
            .map(|f| (f.line, f.col))
            .unzip();
        let here = Origin::File {
            path: path.to_path_buf(),
            line,
            col,
        };
        let mut found: Vec<String> = Vec::new();
        let mut problem = |message: String| found.push(message);
        match includes.as_array() {
            Some(items) => {
                for item in items {
                    let Some(rel) = item.as_str() else {
                        problem(format!(
                            "expected a list of file paths, found an entry {item}"
                        ));
                        continue;
                    };
                    let inc = dir.join(rel);
                    let why = if inc.exists() {
                        not_a_spec_file(&inc)
                    } else {
                        Some("does not exist".to_string())
                    };
                    if let Some(why) = why {
                        problem(format!("included file {} {why}", inc.display()));
                        continue;
                    }
                    let target = inc.canonicalize().unwrap_or_else(|_| inc.clone());
                    if let Some(start) = reach.stack.iter().position(|p| *p == target) {
                        let cycle: Vec<String> = reach.stack[start..]
                            .iter()
                            .chain([&target])
                            .map(|p| p.display().to_string())
                            .collect();
                        problem(format!("include cycle: {}", cycle.join(" → ")));
                        continue;
                    }
                    let mut inner_chain = vec![match line {
                        Some(l) => format!("{}:{l}", path.display()),
                        None => path.display().to_string(),
                    }];
                    inner_chain.extend(chain.iter().cloned());
                    // Shared fragments in a sibling folder are a real pattern, so this is a
                    // warning, not a refusal: the spec then does not travel on its own.
                    if let Some(root) = reach.root.filter(|r| !target.starts_with(r)) {
                        reach.outside.push(format!(
                            "{}: included from {}, lies outside the spec's folder {}: the spec \
                             does not load where that file is absent",
                            target.display(),
                            inner_chain.join(", included from "),
                            root.display()
                        ));
                    }
                    collect_files(&inc, reach, &inner_chain, files, vias, issues)?;
                }
            }
            None => problem(format!(
                "expected a list of file paths, e.g. include = [\"base.toml\"], found {includes}"
            )),
        }
        issues.extend(found.into_iter().map(|message| Issue {
            origin: here.clone(),
            key: "include".into(),
            message: format!("{message}{via}"),
            help: Vec::new(),
        }));
    }
    reach.stack.pop();
    if !via.is_empty() {
        vias.insert(path.to_path_buf(), via);
    }
    files.push((path.to_path_buf(), text));
    Ok(())
}

/// `text` (read from `path`) as a TOML table, or the syntax error at its line and column, with
/// the chain `via` that included the file.
fn parse(path: &Path, text: &str, via: &str) -> Result<toml::Table, Box<Issue>> {
    toml::from_str(text).map_err(|e| {
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
        Box::new(Issue {
            origin: Origin::File {
                path: path.to_path_buf(),
                line,
                col,
            },
            key: String::new(),
            message: format!("invalid TOML: {}{via}", e.message().trim_end()),
            help: Vec::new(),
        })
    })
}

/// `--set` values are TOML; bare words become strings.
fn parse_set_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}
