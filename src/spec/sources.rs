//! Provenance of a layered spec: which file, line, profile, environment variable or `--set`
//! gave each value, so every error points at the place to edit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::{Issue, Origin};
use super::locate::locate;

/// Where each layer came from, to point errors at the right place.
pub(super) struct Sources {
    /// Include files then the spec itself (lowest to highest precedence), with their text.
    pub(super) files: Vec<(PathBuf, String)>,
    /// For each included file, how it was reached (" (this file is included from …)").
    pub(super) vias: BTreeMap<PathBuf, String>,
    /// Included files outside the spec's own folder tree, as warnings.
    pub(super) outside: Vec<String>,
    pub(super) profile: Option<String>,
    /// (dotted key, raw `--set` text)
    pub(super) sets: Vec<(String, String)>,
    /// (dotted key, variable name)
    pub(super) env: Vec<(String, String)>,
}

impl Sources {
    pub(super) fn spec(&self) -> &Path {
        &self.files.last().expect("spec file").0
    }

    /// The place a raw path of the files was written (full match in the highest file first,
    /// else the deepest partial match in the spec itself).
    pub(super) fn in_files(&self, raw: &[String]) -> Origin {
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
    pub(super) fn origin(
        &self,
        key: &str,
        set_by: Option<&BTreeMap<String, Vec<String>>>,
    ) -> Origin {
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

    pub(super) fn issue(
        &self,
        key: &str,
        set_by: Option<&BTreeMap<String, Vec<String>>>,
        message: String,
        help: Vec<String>,
    ) -> Issue {
        let origin = self.origin(key, set_by);
        // A value written in an included file says through which files it was reached.
        let via = match &origin {
            Origin::File { path, .. } => self.vias.get(path).map_or("", String::as_str),
            _ => "",
        };
        Issue {
            message: format!("{message}{via}"),
            origin,
            key: key.to_string(),
            help,
        }
    }
}
