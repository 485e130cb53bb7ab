//! Report tables declared in a spec (`[[tables]]`), built from the collected results: one cell
//! per (row value, column value), the final metric of each run, the best value of an axis per
//! cell (the paper's "best learning rate"), mean ± std over the remaining runs (seeds).
//! Missing cells (runs not done yet) are shown as such.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use polars::prelude::*;
use serde_json::Value;

use super::ReportError;
use super::published::published;
use super::tables::{Tables, param};
use super::text::TextTable;

use crate::spec::raw::{BestIs, TableSpec};

/// One cell: the runs of the best value of `best_of` (or all runs), aggregated.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub mean: f64,
    pub std: f64,
    /// Runs (seeds) aggregated.
    pub n: usize,
    /// The chosen value of `best_of`, if any.
    pub best: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: String,
    pub title: String,
    pub row_key: String,
    pub column_key: String,
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    pub cells: BTreeMap<(usize, usize), Cell>,
    /// Published values by cell, when the spec names a published table.
    pub published: BTreeMap<(usize, usize), f64>,
    pub percent: bool,
    /// Runs of the table whose final metric is missing (not done yet).
    pub missing_runs: usize,
}

/// A run of a report table: its id (train node) and parameters ([`Tables::run_params`]).
type RunRow = (String, Value);

/// The value of dotted `key` for `run`: `seed`, a swept value, or its resolved config's.
fn run_value(run: &RunRow, key: &str) -> Option<Value> {
    param(&run.1, key).cloned()
}

/// The runs of one cell with one value of `best_of`: that value and their final metrics (one
/// per seed).
type Arm = (String, Vec<(f64, String)>);

/// Output formats of `mechlab table`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Terminal,
    Markdown,
    Csv,
    Latex,
}

impl Format {
    pub const ALL: [Format; 4] = [
        Format::Terminal,
        Format::Markdown,
        Format::Csv,
        Format::Latex,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Terminal => "terminal",
            Format::Markdown => "markdown",
            Format::Csv => "csv",
            Format::Latex => "latex",
        }
    }
}

/// `value` as a table label: strings bare, numbers as written.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

fn matches(value: Option<&Value>, wanted: &Value) -> bool {
    match wanted {
        Value::Array(options) => options.iter().any(|w| value == Some(w)),
        w => value == Some(w),
    }
}

/// Attrib of every run id in a collected `interventions` table at the cell `a` names, at each
/// run's last intervention step, pooled over intervention blocks as the figures pool it
/// ([`super::cells::interchange_cells`]).
pub fn attrib_values(
    interventions: &DataFrame,
    a: &crate::spec::raw::AttribSpec,
) -> Result<HashMap<String, f64>, ReportError> {
    let cells = super::cells::interchange_cells(interventions, a.site.name(), a.corrupted.name())?;
    Ok(cells
        .into_iter()
        .filter(|c| c.layer == a.layer as i64 && c.role == a.patch.name())
        .map(|c| (c.run.clone(), c.attrib()))
        .filter(|(_, attrib)| attrib.is_finite())
        .collect())
}

/// The final value of `metric` on `split` for every run id in `metrics` (a collected
/// `metrics.parquet`).
pub fn final_values(
    metrics: &DataFrame,
    metric: &str,
    split: &str,
) -> Result<HashMap<String, f64>, ReportError> {
    let err = |e: PolarsError| ReportError::Shard {
        path: "metrics.parquet".into(),
        message: e.to_string(),
    };
    let run = metrics
        .column("run_id")
        .map_err(err)?
        .str()
        .map_err(err)?
        .clone();
    let step = metrics
        .column("step")
        .map_err(err)?
        .i64()
        .map_err(err)?
        .clone();
    let sp = metrics
        .column("split")
        .map_err(err)?
        .str()
        .map_err(err)?
        .clone();
    let me = metrics
        .column("metric")
        .map_err(err)?
        .str()
        .map_err(err)?
        .clone();
    let val = metrics
        .column("value")
        .map_err(err)?
        .f64()
        .map_err(err)?
        .clone();
    let mut last: HashMap<String, (i64, f64)> = HashMap::new();
    for i in 0..metrics.height() {
        let (Some(r), Some(s), Some(p), Some(m), Some(v)) =
            (run.get(i), step.get(i), sp.get(i), me.get(i), val.get(i))
        else {
            continue;
        };
        if p != split || m != metric {
            continue;
        }
        let entry = last.entry(r.to_string()).or_insert((s, v));
        if s >= entry.0 {
            *entry = (s, v);
        }
    }
    Ok(last.into_iter().map(|(k, (_, v))| (k, v)).collect())
}

/// Builds table `spec` over `runs`, with `values` the final metric by train node id; with
/// `shown`, each cell shows those values of its chosen runs instead (an Attrib table: the run
/// of the best learning rate by accuracy, its Attrib).
pub fn build_table(
    spec: &TableSpec,
    runs: &[RunRow],
    values: &HashMap<String, f64>,
    shown: Option<&HashMap<String, f64>>,
) -> Table {
    let key_of = run_value;
    let mut rows: Vec<String> = Vec::new();
    let mut columns: Vec<String> = Vec::new();
    let mut groups: BTreeMap<(usize, usize), Vec<Arm>> = BTreeMap::new();
    let mut missing_runs = 0;
    for run in runs {
        if !spec
            .filter
            .iter()
            .all(|(k, want)| matches(key_of(run, k).as_ref(), want))
        {
            continue;
        }
        let index =
            |list: &mut Vec<String>, label: String| match list.iter().position(|x| *x == label) {
                Some(i) => i,
                None => {
                    list.push(label);
                    list.len() - 1
                }
            };
        let r = index(
            &mut rows,
            show(&key_of(run, &spec.rows).unwrap_or(Value::Null)),
        );
        let c = index(
            &mut columns,
            show(&key_of(run, &spec.columns).unwrap_or(Value::Null)),
        );
        let Some(&v) = values.get(&run.0) else {
            missing_runs += 1;
            continue;
        };
        let arm = spec
            .best_of
            .as_ref()
            .map(|k| show(&key_of(run, k).unwrap_or(Value::Null)))
            .unwrap_or_default();
        let cell = groups.entry((r, c)).or_default();
        let entry = (v, run.0.clone());
        match cell.iter_mut().find(|(a, _)| *a == arm) {
            Some((_, vs)) => vs.push(entry),
            None => cell.push((arm, vec![entry])),
        }
    }
    let cells = choose_cells(spec, groups, shown);
    let published = spec
        .published
        .as_deref()
        .map(|name| published_cells(name, &rows, &columns))
        .unwrap_or_default();
    let title = spec.title.clone().unwrap_or_else(|| default_title(spec));
    Table {
        name: spec.name.clone(),
        title,
        row_key: spec.rows.clone(),
        column_key: spec.columns.clone(),
        rows,
        columns,
        cells,
        published,
        percent: spec
            .percent
            .unwrap_or(spec.metric == "accuracy" && spec.attrib.is_none()),
        missing_runs,
    }
}

/// Per cell: the arm (value of `best_of`) whose runs score best, aggregated over its runs
/// (mean ± sample std), or the `shown` values of those runs instead.
fn choose_cells(
    spec: &TableSpec,
    groups: BTreeMap<(usize, usize), Vec<Arm>>,
    shown: Option<&HashMap<String, f64>>,
) -> BTreeMap<(usize, usize), Cell> {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let metric_of = |vs: &[(f64, String)]| mean(&vs.iter().map(|(v, _)| *v).collect::<Vec<_>>());
    let better = |a: f64, b: f64| match spec.best {
        BestIs::Max => a > b,
        BestIs::Min => a < b,
    };
    groups
        .into_iter()
        .filter_map(|(at, arms)| {
            let (arm, chosen) = arms
                .into_iter()
                .reduce(|best, next| {
                    if better(metric_of(&next.1), metric_of(&best.1)) {
                        next
                    } else {
                        best
                    }
                })
                .expect("a group has at least one arm");
            let vs: Vec<f64> = match shown {
                None => chosen.iter().map(|(v, _)| *v).collect(),
                Some(shown) => chosen
                    .iter()
                    .filter_map(|(_, id)| shown.get(id).copied())
                    .collect(),
            };
            if vs.is_empty() {
                return None;
            }
            let m = mean(&vs);
            let std = if vs.len() > 1 {
                (vs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (vs.len() - 1) as f64).sqrt()
            } else {
                0.0
            };
            let cell = Cell {
                mean: m,
                std,
                n: vs.len(),
                best: spec.best_of.as_ref().map(|_| arm),
            };
            Some((at, cell))
        })
        .collect()
}

/// The published values of table `name` at the cells these row and column labels name.
fn published_cells(
    name: &str,
    rows: &[String],
    columns: &[String],
) -> BTreeMap<(usize, usize), f64> {
    let mut out = BTreeMap::new();
    for (r, row) in rows.iter().enumerate() {
        for (c, col) in columns.iter().enumerate() {
            if let Some(p) = published(name, row, col) {
                out.insert((r, c), p);
            }
        }
    }
    out
}

/// What a table without a `title` is called: its metric and axes (or its Attrib cell).
fn default_title(spec: &TableSpec) -> String {
    let best = spec
        .best_of
        .as_ref()
        .map(|k| format!(", best {k} per cell"))
        .unwrap_or_default();
    match &spec.attrib {
        Some(a) => format!(
            "Attrib at (layer {}, {}, {}), {} corrupted, of the runs with the best {} {}{best}, \
             {} × {}",
            a.layer,
            a.site.name(),
            a.patch.name(),
            a.corrupted.name(),
            spec.split,
            spec.metric,
            spec.rows,
            spec.columns
        ),
        None => format!(
            "{} {} (final step{best}), {} × {}",
            spec.split, spec.metric, spec.rows, spec.columns
        ),
    }
}

/// The tables of `specs` to build: all, or only the one called `name`.
pub fn choose<'s>(
    specs: &'s [TableSpec],
    name: Option<&str>,
) -> Result<Vec<&'s TableSpec>, ReportError> {
    if specs.is_empty() {
        return Err(ReportError::NoTables);
    }
    let Some(n) = name else {
        return Ok(specs.iter().collect());
    };
    let chosen: Vec<_> = specs.iter().filter(|t| t.name == n).collect();
    if chosen.is_empty() {
        let names: Vec<&str> = specs.iter().map(|t| t.name.as_str()).collect();
        return Err(ReportError::NoSuchTable {
            name: n.to_string(),
            tables: names.join(", "),
        });
    }
    Ok(chosen)
}

/// Table `spec` over the runs of `sources` (each an experiment's tables and the filter its runs
/// must pass; a run in several counts once), from their final values.
pub fn build(
    spec: &TableSpec,
    sources: &[(&Tables, &BTreeMap<String, Value>)],
) -> Result<Table, ReportError> {
    let mut runs: Vec<RunRow> = Vec::new();
    let mut values = HashMap::new();
    let mut attribs = HashMap::new();
    for (tables, filter) in sources {
        values.extend(final_values(&tables.metrics, &spec.metric, &spec.split)?);
        if let Some(a) = &spec.attrib {
            attribs.extend(attrib_values(&tables.interventions, a)?);
        }
        for run in tables.run_params()? {
            let keep = filter
                .iter()
                .all(|(k, want)| matches(param(&run.1, k), want));
            if keep && !runs.iter().any(|r| r.0 == run.0) {
                runs.push(run);
            }
        }
    }
    let shown = spec.attrib.as_ref().map(|_| &attribs);
    Ok(build_table(spec, &runs, &values, shown))
}

/// Several tables as one text: a blank line between them, one CSV header for all.
pub fn render_all(tables: &[Table], format: Format) -> String {
    let mut out = String::new();
    for (i, table) in tables.iter().enumerate() {
        if i > 0 && format != Format::Csv {
            out.push('\n');
        }
        let text = table.render(format);
        let text = if format == Format::Csv && i > 0 {
            text.lines().skip(1).map(|l| format!("{l}\n")).collect()
        } else {
            text
        };
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

impl Table {
    fn scale(&self, x: f64) -> f64 {
        if self.percent { 100.0 * x } else { x }
    }

    /// The text of one cell: `mean ± std` (std with several seeds), the chosen `best_of` value
    /// and the published value in brackets; `—` when missing.
    fn cell_text(&self, r: usize, c: usize, with_best: bool) -> String {
        let mut out = match self.cells.get(&(r, c)) {
            Some(cell) if cell.n > 1 => {
                format!("{:.2} ± {:.2}", self.scale(cell.mean), self.scale(cell.std))
            }
            Some(cell) => format!("{:.2}", self.scale(cell.mean)),
            None => "—".into(),
        };
        if with_best && let Some(best) = self.cells.get(&(r, c)).and_then(|c| c.best.as_ref()) {
            let _ = write!(out, " @{best}");
        }
        if let Some(p) = self.published.get(&(r, c)) {
            let _ = write!(out, " [{p:.2}]");
        }
        out
    }

    /// Renders the table in `format`.
    pub fn render(&self, format: Format) -> String {
        let mut out = String::new();
        let notes = || {
            let mut n = Vec::new();
            if !self.published.is_empty() {
                n.push("[x] = published value".to_string());
            }
            if self.cells.values().any(|c| c.best.is_some()) {
                n.push("@v = the chosen value".to_string());
            }
            if self.missing_runs > 0 {
                n.push(format!(
                    "{} runs not done yet (— = no run done)",
                    self.missing_runs
                ));
            }
            n
        };
        match format {
            Format::Terminal | Format::Markdown => {
                let header: Vec<String> =
                    std::iter::once(format!("{} \\ {}", self.row_key, self.column_key))
                        .chain(self.columns.iter().cloned())
                        .collect();
                let body: Vec<Vec<String>> = (0..self.rows.len())
                    .map(|r| {
                        std::iter::once(self.rows[r].clone())
                            .chain((0..self.columns.len()).map(|c| self.cell_text(r, c, true)))
                            .collect()
                    })
                    .collect();
                let mut grid = TextTable::new(header);
                grid.rows = body;
                let _ = writeln!(out, "{}: {}", self.name, self.title);
                if format == Format::Markdown {
                    let _ = writeln!(out);
                    out.push_str(&grid.markdown());
                } else {
                    out.push_str(&grid.aligned());
                }
                for n in notes() {
                    let _ = writeln!(out, "{n}");
                }
            }
            Format::Csv => {
                let _ = writeln!(
                    out,
                    "table,{},{},mean,std,n,best,published",
                    self.row_key, self.column_key
                );
                for (r, row) in self.rows.iter().enumerate() {
                    for (c, col) in self.columns.iter().enumerate() {
                        let cell = self.cells.get(&(r, c));
                        let num = |x: Option<f64>| x.map(|v| format!("{v}")).unwrap_or_default();
                        let _ = writeln!(
                            out,
                            "{},{row},{col},{},{},{},{},{}",
                            self.name,
                            num(cell.map(|c| self.scale(c.mean))),
                            num(cell.map(|c| self.scale(c.std))),
                            cell.map(|c| c.n).unwrap_or(0),
                            cell.and_then(|c| c.best.clone()).unwrap_or_default(),
                            num(self.published.get(&(r, c)).copied()),
                        );
                    }
                }
            }
            Format::Latex => {
                let esc = |s: &str| s.replace('_', "\\_");
                let _ = writeln!(out, "% {}: {}", self.name, esc(&self.title));
                let _ = writeln!(
                    out,
                    "\\begin{{tabular}}{{l{}}}",
                    "r".repeat(self.columns.len())
                );
                let _ = writeln!(out, "\\toprule");
                let _ = writeln!(
                    out,
                    "{} & {} \\\\",
                    esc(&self.row_key),
                    self.columns
                        .iter()
                        .map(|c| esc(c))
                        .collect::<Vec<_>>()
                        .join(" & ")
                );
                let _ = writeln!(out, "\\midrule");
                for (r, row) in self.rows.iter().enumerate() {
                    let cells: Vec<String> = (0..self.columns.len())
                        .map(|c| self.cell_text(r, c, false).replace('±', "$\\pm$"))
                        .collect();
                    let _ = writeln!(out, "{} & {} \\\\", esc(row), cells.join(" & "));
                }
                let _ = writeln!(out, "\\bottomrule");
                let _ = writeln!(out, "\\end{{tabular}}");
            }
        }
        out
    }
}
