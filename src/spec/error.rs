//! Spec errors: every issue says where (file:line:col, or the `--set`/env override), which key,
//! what was expected, and how to fix it. All issues of a spec are reported together.

use std::fmt;
use std::path::PathBuf;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// A spec file, with 1-based line and column when the key was found in it.
    File {
        path: PathBuf,
        line: Option<usize>,
        col: Option<usize>,
    },
    /// `--set key=value` on the command line.
    Set(String),
    /// A `MECHLAB_…` environment variable.
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line, col } => {
                write!(f, "{}", path.display())?;
                if let Some(line) = line {
                    write!(f, ":{line}")?;
                    if let Some(col) = col {
                        write!(f, ":{col}")?;
                    }
                }
                Ok(())
            }
            Origin::Set(s) => write!(f, "--set {s}"),
            Origin::Env(v) => write!(f, "environment variable {v}"),
        }
    }
}

/// One problem in a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub origin: Origin,
    /// Dotted key path, e.g. `model.mixer`.
    pub key: String,
    pub message: String,
    /// Extra lines: valid values, a suggestion.
    pub help: Vec<String>,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.origin)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.message)?;
        for h in &self.help {
            write!(f, "\n  {h}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The reason is part of the message (not a `source`), so that error chains do not print
    /// it twice.
    #[error("{path}: cannot read spec: {reason}")]
    Read {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("{}", render(.0))]
    Invalid(Vec<Issue>),
}

fn render(issues: &[Issue]) -> String {
    let mut out = String::new();
    for (i, issue) in issues.iter().enumerate() {
        if i > 0 {
            out.push_str("\nerror: ");
        }
        out.push_str(&issue.to_string());
    }
    if issues.len() > 1 {
        out.push_str(&format!("\n({} errors in this spec)", issues.len()));
    }
    out
}

/// The closest of `candidates` to `found`, if it is close enough to be a likely typo.
pub fn suggest<'a>(found: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(found, c), c))
        .filter(|(d, c)| *d <= (c.len().max(found.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting an insertion, deletion, substitution or swap of two adjacent
/// characters as one edit (optimal string alignment): `modle` is one edit from `model`.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = (a[i - 1] != b[j - 1]) as usize;
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let names = ["attention", "based", "mamba", "hyena"];
        assert_eq!(suggest("mamaba", names), Some("mamba"));
        assert_eq!(suggest("atention", names), Some("attention"));
        assert_eq!(suggest("transformer", names), None);
        // A swap of two neighbours is one typo.
        assert_eq!(suggest("modle", ["task", "model", "train"]), Some("model"));
        assert_eq!(edit_distance("modle", "model"), 1);
        assert_eq!(edit_distance("abc", "ca"), 3);
    }
}
