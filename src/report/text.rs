//! Plain-text tables, the one renderer behind every table mechlab prints: aligned columns for a
//! terminal, or GitHub Markdown.

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Align {
    #[default]
    Left,
    /// Numbers.
    Right,
}

/// A header and rows of text cells.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TextTable {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Per column; missing entries are `Left`.
    pub align: Vec<Align>,
}

impl TextTable {
    pub fn new(header: impl IntoIterator<Item = impl Into<String>>) -> Self {
        TextTable {
            header: header.into_iter().map(Into::into).collect(),
            ..TextTable::default()
        }
    }

    /// Right-aligns every column from `first` on.
    pub fn numbers_from(mut self, first: usize) -> Self {
        self.align = (0..self.header.len())
            .map(|c| if c < first { Align::Left } else { Align::Right })
            .collect();
        self
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    fn width(&self) -> usize {
        self.rows
            .iter()
            .map(Vec::len)
            .chain([self.header.len()])
            .max()
            .unwrap_or(0)
    }

    /// Columns separated by two spaces, each as wide as its widest cell; no trailing blanks.
    pub fn aligned(&self) -> String {
        let n = self.width();
        let cell = |row: &[String], c: usize| row.get(c).map_or("", String::as_str).to_string();
        let widths: Vec<usize> = (0..n)
            .map(|c| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .map(|r| cell(r, c).chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |row: &[String]| {
            let cells: Vec<String> = (0..n)
                .map(|c| {
                    let (text, w) = (cell(row, c), widths[c]);
                    match self.align.get(c).copied().unwrap_or_default() {
                        Align::Left => format!("{text:<w$}"),
                        Align::Right => format!("{text:>w$}"),
                    }
                })
                .collect();
            cells.join("  ").trim_end().to_string()
        };
        std::iter::once(&self.header)
            .chain(&self.rows)
            .map(|r| line(r) + "\n")
            .collect()
    }

    /// A GitHub Markdown table.
    pub fn markdown(&self) -> String {
        let n = self.width();
        let line = |row: &[String]| {
            let cells: Vec<&str> = (0..n)
                .map(|c| row.get(c).map_or("", String::as_str))
                .collect();
            format!("| {} |\n", cells.join(" | "))
        };
        let rule: String = (0..n)
            .map(|c| match self.align.get(c).copied().unwrap_or_default() {
                Align::Left => "---|",
                Align::Right => "--:|",
            })
            .collect();
        let mut out = line(&self.header);
        out.push('|');
        out.push_str(&rule);
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TextTable {
        let mut t = TextTable::new(["run", "acc"]).numbers_from(1);
        t.push(vec!["a-long-name".into(), "9.5".into()]);
        t.push(vec!["b".into(), "10.25".into()]);
        t
    }

    #[test]
    fn aligned_pads_to_the_widest_cell_and_right_aligns_numbers() {
        assert_eq!(
            sample().aligned(),
            "run            acc\na-long-name    9.5\nb            10.25\n"
        );
    }

    #[test]
    fn markdown_marks_number_columns() {
        assert_eq!(
            sample().markdown(),
            "| run | acc |\n|---|--:|\n| a-long-name | 9.5 |\n| b | 10.25 |\n"
        );
    }
}
