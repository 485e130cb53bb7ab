//! Maps a dotted key path back to a line and column of a TOML file.

use toml::de::{DeTable, DeValue};

/// Where (part of) a key path was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// 1-based.
    pub line: usize,
    /// 1-based.
    pub col: usize,
    /// How many leading segments of the path matched.
    pub depth: usize,
}

/// The deepest key of `path` found in `text`, or `None` when not even the first key is there.
/// A path segment that is a number indexes an array of tables.
pub fn locate(text: &str, path: &[String]) -> Option<Found> {
    let root = DeTable::parse(text).ok()?;
    let mut table: &DeTable = root.get_ref();
    let mut found = None;
    let mut i = 0;
    while i < path.len() {
        let Some((key, value)) = table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == path[i].as_str())
        else {
            break;
        };
        found = Some(key.span().start);
        i += 1;
        let mut value: &DeValue = value.get_ref();
        // Arrays of tables: the next segment is an index.
        if let (DeValue::Array(items), Some(index)) =
            (value, path.get(i).and_then(|s| s.parse::<usize>().ok()))
        {
            match items.get(index) {
                Some(item) => {
                    found = Some(item.span().start);
                    value = item.get_ref();
                    i += 1;
                }
                None => break,
            }
        }
        match value {
            DeValue::Table(t) => table = t,
            _ => break,
        }
    }
    found.map(|offset| {
        let (line, col) = line_col(text, offset);
        Found {
            line,
            col,
            depth: i.min(path.len()),
        }
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(String::from).collect()
    }

    #[test]
    fn finds_nested_keys_dotted_keys_and_array_tables() {
        let text = "[experiment]\nname = \"x\"\n\n[model]\nmixer = \"mamaba\"\n\n[sweep.grid]\n\"train.lr\" = [1]\n\n[[sweep.when]]\nif = { a = 1 }\n";
        let at = |path: &[String]| locate(text, path).map(|f| (f.line, f.col, f.depth));
        assert_eq!(at(&p("model.mixer")), Some((5, 1, 2)));
        assert_eq!(
            at(&["sweep".into(), "grid".into(), "train.lr".into()]),
            Some((8, 1, 3))
        );
        assert_eq!(at(&p("sweep.when.0.if")), Some((11, 1, 4)));
        // A missing leaf falls back to its deepest present parent.
        assert_eq!(at(&p("model.d_model")), Some((4, 2, 1)));
        assert_eq!(at(&p("nothing")), None);
    }
}
