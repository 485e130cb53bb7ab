//! Folders of specs: every command that takes a spec also takes a folder and acts on each
//! experiment spec in it. A file without an `[experiment]` table of its own is an include
//! fragment (`experiments/paper/common.toml`, `ar_base.toml`): it is listed and skipped.

use std::path::{Path, PathBuf};

/// One `.toml` file of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Declares `[experiment]`: a spec the command runs on.
    Experiment(PathBuf),
    /// Declares no experiment: something specs include.
    Fragment(PathBuf),
    /// Declares only `[[tables]]` composed from other specs (`tables`/`table` act on it).
    Tables(PathBuf),
}

/// What kind of file `path` is (see [`Found`]); a file that does not parse counts as an
/// experiment, so the command reports its error with file and line.
pub fn classify(path: &Path) -> Found {
    // Only regular files of spec size are read here (never `/dev/zero`); anything else counts as
    // an experiment, so that loading it reports why it is not a spec.
    let readable = std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() <= 1 << 20);
    let table = readable
        .then(|| std::fs::read_to_string(path).ok())
        .flatten()
        .and_then(|text| text.parse::<toml::Table>().ok());
    match table {
        Some(t) if !t.contains_key("experiment") && t.contains_key("tables") => {
            Found::Tables(path.to_path_buf())
        }
        Some(t) if !t.contains_key("experiment") => Found::Fragment(path.to_path_buf()),
        _ => Found::Experiment(path.to_path_buf()),
    }
}

/// The tables of a tables-only file.
pub fn load_tables_file(path: &Path) -> Result<Vec<super::raw::TableSpec>, super::SpecError> {
    let text = std::fs::read_to_string(path).map_err(|reason| super::SpecError::Read {
        path: path.to_path_buf(),
        reason,
    })?;
    toml::from_str::<super::raw::TablesFile>(&text)
        .map(|f| f.tables)
        .map_err(|e| super::SpecError::Read {
            path: path.to_path_buf(),
            reason: std::io::Error::other(e.to_string()),
        })
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("{path}: cannot list the folder: {message}")]
    Walk { path: String, message: String },
    #[error("{path}: no .toml files in this folder")]
    Empty { path: String },
}

/// Every `.toml` file under `root` (hidden folders skipped, symlinks not followed), in path
/// order, classified. A file that does not parse counts as an experiment, so the command
/// reports its error with file and line.
pub fn discover(root: &Path) -> Result<Vec<Found>, BatchError> {
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        let entry = entry.map_err(|e| BatchError::Walk {
            path: root.display().to_string(),
            message: e.to_string(),
        })?;
        let path = entry.path();
        if !entry.file_type().is_file() || path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        out.push(classify(path));
    }
    if out.is_empty() {
        return Err(BatchError::Empty {
            path: root.display().to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn experiments_and_fragments_in_path_order_hidden_folders_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
        };
        write("b.toml", "[experiment]\nname = \"b\"\n");
        write(
            "a.toml",
            "include = [\"common.toml\"]\n[experiment]\nname = \"a\"\n",
        );
        write("common.toml", "[train]\nlr = 1e-3\n");
        write("sub/c.toml", "[experiment]\nname = \"c\"\n");
        write("broken.toml", "[experiment\n");
        write(".hidden/d.toml", "[experiment]\nname = \"d\"\n");
        write("notes.md", "not a spec");
        let found = discover(dir.path()).unwrap();
        let p = |n: &str| dir.path().join(n);
        assert_eq!(
            found,
            [
                Found::Experiment(p("a.toml")),
                Found::Experiment(p("b.toml")),
                Found::Experiment(p("broken.toml")),
                Found::Fragment(p("common.toml")),
                Found::Experiment(p("sub/c.toml")),
            ]
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            discover(empty.path()),
            Err(BatchError::Empty { .. })
        ));
    }
}
