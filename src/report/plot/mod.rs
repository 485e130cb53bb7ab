//! `mechlab plot`: the reference's figure set from collected results, as PNG and SVG.
//!
//! | kind | what it shows |
//! |---|---|
//! | `curves` | test accuracy by training step, one line per run (one panel per mixer when many), runs not done yet as far as they are |
//! | `accuracy` | final test accuracy by width, best learning rate per cell, one line per mixer |
//! | `accuracy_lr` | final test accuracy over learning rates, one panel per width |
//! | `lr_box` | final test accuracy over learning rates as boxes, per width and mixer |
//! | `scatter` | Attrib at value vs at query, and at key vs at query, last layer, one point per run |
//! | `attrib_layers` | Attrib per layer over learning-rate runs, at value and at query |
//! | `attrib` | Attrib heatmaps (layer × patch role), each mixer's best run |
//!
//! The Attrib figures read one site (`--site`) with `key` corrupted at each run's last
//! intervention step, and keep only runs whose corruption matters ([`data`]): the subtitle says
//! the threshold and how many runs remain. plotters has no PDF backend; SVG is the vector format.

pub mod charts;
pub mod data;
pub mod style;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::ReportError;
use super::Tables;
use super::cells::{Cell, interchange_cells, numbers, text};
use super::table::final_values;
use charts::{Series, XAxis};
use data::{Filter, RunInfo};
use style::render;

/// A figure kind (see the table above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Curves,
    Accuracy,
    AccuracyLr,
    LrBox,
    Scatter,
    AttribLayers,
    Attrib,
}

impl Kind {
    /// Every kind, in the order `mechlab plot` draws them.
    pub const ALL: [Kind; 7] = [
        Kind::Curves,
        Kind::Accuracy,
        Kind::AccuracyLr,
        Kind::LrBox,
        Kind::Scatter,
        Kind::AttribLayers,
        Kind::Attrib,
    ];

    /// The kind's name, also the stem of its files.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Curves => "curves",
            Kind::Accuracy => "accuracy",
            Kind::AccuracyLr => "accuracy_lr",
            Kind::LrBox => "lr_box",
            Kind::Scatter => "scatter",
            Kind::AttribLayers => "attrib_layers",
            Kind::Attrib => "attrib",
        }
    }
}

/// Which image files to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageFormat {
    Png,
    Svg,
    #[default]
    Both,
}

impl ImageFormat {
    pub const ALL: [ImageFormat; 3] = [ImageFormat::Png, ImageFormat::Svg, ImageFormat::Both];

    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Svg => "svg",
            ImageFormat::Both => "both",
        }
    }

    fn png(self) -> bool {
        matches!(self, ImageFormat::Png | ImageFormat::Both)
    }

    fn svg(self) -> bool {
        matches!(self, ImageFormat::Svg | ImageFormat::Both)
    }
}

/// How to draw.
#[derive(Debug, Clone)]
pub struct PlotOptions {
    pub format: ImageFormat,
    /// The intervention site the Attrib figures read.
    pub site: String,
    /// Keep runs with mean p_orig − mean p_corr above this; `None`: the task's default
    /// ([`data::default_threshold`]).
    pub threshold: Option<f64>,
}

fn load_runs(tables: &Tables) -> Result<HashMap<String, RunInfo>, ReportError> {
    let df = &tables.runs;
    let (ids, names, mixers, tasks) = (
        text(df, "run_id")?,
        text(df, "name")?,
        text(df, "model.mixer")?,
        text(df, "task.kind")?,
    );
    let (widths, lrs) = (numbers(df, "model.d_model")?, numbers(df, "train.lr")?);
    let (steps, step) = (numbers(df, "train.steps")?, numbers(df, "step")?);
    let int = |v: f64| v.is_finite().then_some(v as i64);
    Ok((0..df.height())
        .map(|i| {
            let run = RunInfo {
                id: ids[i].clone(),
                name: names[i].clone(),
                mixer: mixers[i].clone(),
                d_model: int(widths[i]),
                lr: lrs[i].is_finite().then_some(lrs[i]),
                task: tasks[i].clone(),
                steps: int(steps[i]),
                step: int(step[i]),
            };
            (ids[i].clone(), run)
        })
        .collect())
}

/// The interchange cells at `site` with `key` corrupted ([`interchange_cells`]).
fn load_cells(tables: &Tables, site: &str) -> Result<Vec<Cell>, ReportError> {
    interchange_cells(&tables.interventions, site, "key")
}

fn finals(tables: &Tables) -> Result<HashMap<String, f64>, ReportError> {
    final_values(&tables.metrics, "accuracy", "test")
}

/// The corruption filter of these runs: the given threshold or their task's default.
fn filter(cells: &[Cell], runs: &HashMap<String, RunInfo>, threshold: Option<f64>) -> Filter {
    let threshold = threshold.unwrap_or_else(|| {
        let task = runs
            .values()
            .map(|r| r.task.as_str())
            .next()
            .unwrap_or("ar");
        data::default_threshold(task)
    });
    Filter::new(&data::corruption_gaps(cells), threshold)
}

fn series(map: BTreeMap<String, Vec<(f64, f64)>>) -> Vec<Series> {
    map.into_iter()
        .map(|(name, points)| Series {
            name,
            points,
            color: None,
        })
        .collect()
}

/// mixer → run (or series) name → points.
type ByMixer = BTreeMap<String, BTreeMap<String, Vec<(f64, f64)>>>;
/// category label → series name → values (one box each).
type BoxGroups = BTreeMap<String, BTreeMap<String, Vec<f64>>>;

/// Test accuracy by step: one panel per mixer when `facet`, else every run in one.
fn curves_figure<DB: plotters::prelude::DrawingBackend>(
    a: &plotters::drawing::DrawingArea<DB, plotters::coord::Shift>,
    by_mixer: &ByMixer,
    facet: bool,
    steps: f64,
) -> Result<(), String> {
    let axis = XAxis::Steps { to: steps };
    let body = style::titled(a, "Test accuracy during training", None)?;
    if !facet {
        // One panel: each mixer's colour, a shade per run.
        let all: Vec<Series> = by_mixer
            .iter()
            .enumerate()
            .flat_map(|(m, (mixer, runs))| {
                let base = style::color(mixer, m);
                runs.iter()
                    .enumerate()
                    .map(move |(k, (name, points))| Series {
                        name: name.clone(),
                        points: points.clone(),
                        color: Some(style::shade(base, k, runs.len())),
                    })
            })
            .collect();
        return charts::line_panel(
            &body,
            None,
            "training step",
            "test accuracy (%)",
            &axis,
            (0.0, 100.0),
            &all,
            true,
        );
    }
    for ((mixer, runs), panel) in by_mixer.iter().zip(style::facets(&body, by_mixer.len())) {
        charts::line_panel(
            &panel,
            Some(mixer),
            "training step",
            "test accuracy (%)",
            &axis,
            (0.0, 100.0),
            &series(runs.clone()),
            runs.len() <= 6,
        )?;
    }
    Ok(())
}

/// (key, accuracy) points placed at the index of their key among `keys` (evenly spaced ticks),
/// accuracy in percent.
fn on_categories<K: PartialEq>(points: Vec<(K, f64)>, keys: &[K]) -> Vec<(f64, f64)> {
    points
        .into_iter()
        .map(|(k, acc)| {
            let i = keys.iter().position(|x| *x == k).unwrap_or(0);
            (i as f64, 100.0 * acc)
        })
        .collect()
}

/// Where and in which formats a figure is written.
struct Canvas<'a> {
    out: &'a Path,
    png: bool,
    svg: bool,
}

/// Renders the figure drawn by `$f` (a closure over a drawing area) as `$stem` on canvas `$c`.
macro_rules! draw {
    ($c:expr, $stem:expr, $f:expr) => {
        render($c.out, $stem, $c.png, $c.svg, &|a| $f(a), &|a| $f(a))
    };
}

/// Draws figure `kind` from an experiment's collected `tables` into `out`.
pub fn plot(
    tables: &Tables,
    out: &Path,
    kind: Kind,
    opts: &PlotOptions,
) -> Result<Vec<PathBuf>, ReportError> {
    style::register_font();
    let runs = load_runs(tables)?;
    let c = Canvas {
        out,
        png: opts.format.png(),
        svg: opts.format.svg(),
    };
    match kind {
        Kind::Curves => curves(tables, &runs, &c),
        Kind::Accuracy => accuracy(tables, &runs, &c),
        Kind::AccuracyLr => accuracy_lr(tables, &runs, &c),
        Kind::LrBox => lr_box(tables, &runs, &c),
        Kind::Scatter | Kind::AttribLayers | Kind::Attrib => {
            attrib_family(kind, tables, &runs, &c, opts)
        }
    }
}

/// Test accuracy by step, one line per run (one panel per mixer when many).
fn curves(
    tables: &Tables,
    runs: &HashMap<String, RunInfo>,
    c: &Canvas,
) -> Result<Vec<PathBuf>, ReportError> {
    // mixer → run name → points; runs not done yet (progress.parquet, absent from
    // tables collected by older versions) are drawn as far as they are, their step in
    // the legend.
    let mut by_mixer: BTreeMap<String, BTreeMap<String, Vec<(f64, f64)>>> = BTreeMap::new();
    for (m, partial) in [(&tables.metrics, false), (&tables.progress, true)] {
        let (ids, steps, splits, metrics, values) = (
            text(m, "run_id")?,
            numbers(m, "step")?,
            text(m, "split")?,
            text(m, "metric")?,
            numbers(m, "value")?,
        );
        for i in 0..m.height() {
            if splits[i] == "test" && metrics[i] == "accuracy" {
                let run = runs.get(&ids[i]);
                let (mixer, mut name) = run.map_or((String::new(), ids[i].clone()), |r| {
                    (r.mixer.clone(), r.name.clone())
                });
                if let Some(step) = run.and_then(|r| r.step).filter(|_| partial) {
                    name = format!("{name} (to step {step})");
                }
                by_mixer
                    .entry(mixer)
                    .or_default()
                    .entry(name)
                    .or_default()
                    .push((steps[i], 100.0 * values[i]));
            }
        }
    }
    for runs in by_mixer.values_mut() {
        for p in runs.values_mut() {
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
    }
    let total: usize = by_mixer.values().map(BTreeMap::len).sum();
    let facet = by_mixer.len() > 1 && total > 6;
    // The longest schedule of the experiment: where every curve is headed.
    let steps = runs.values().filter_map(|r| r.steps).max().unwrap_or(0) as f64;
    draw!(c, "curves", |a| curves_figure(a, &by_mixer, facet, steps))
}

/// Final test accuracy by width, best learning rate per cell.
fn accuracy(
    tables: &Tables,
    runs: &HashMap<String, RunInfo>,
    c: &Canvas,
) -> Result<Vec<PathBuf>, ReportError> {
    let by_width = data::accuracy_by_width(runs, &finals(tables)?);
    let mut widths: Vec<i64> = by_width.values().flatten().map(|p| p.0).collect();
    widths.sort();
    widths.dedup();
    let labels: Vec<String> = widths.iter().map(i64::to_string).collect();
    let s: Vec<Series> = by_width
        .into_iter()
        .map(|(name, points)| Series {
            name,
            points: on_categories(points, &widths),
            color: None,
        })
        .collect();
    let axis = XAxis::Categories(labels);
    draw!(c, "accuracy", |a| {
        let body = style::titled(
            a,
            "Final test accuracy by width",
            Some("best learning rate per cell, as the paper's tables"),
        )?;
        charts::line_panel(
            &body,
            None,
            "d_model",
            "test accuracy (%)",
            &axis,
            (0.0, 100.0),
            &s,
            true,
        )
    })
}

/// Final test accuracy over learning rates, one panel per width.
fn accuracy_lr(
    tables: &Tables,
    runs: &HashMap<String, RunInfo>,
    c: &Canvas,
) -> Result<Vec<PathBuf>, ReportError> {
    let by_lr = data::accuracy_by_lr(runs, &finals(tables)?);
    // Learning rates are a discrete sweep: one evenly spaced tick each.
    let mut lrs: Vec<f64> = by_lr
        .values()
        .flat_map(|m| m.values().flatten().map(|p| p.0))
        .collect();
    lrs.sort_by(f64::total_cmp);
    lrs.dedup();
    let labels: Vec<String> = lrs.iter().map(|lr| format!("{lr:e}")).collect();
    let panels: Vec<(i64, Vec<Series>)> = by_lr
        .into_iter()
        .map(|(d, per_mixer)| {
            let s = per_mixer
                .into_iter()
                .map(|(name, points)| Series {
                    name,
                    points: on_categories(points, &lrs),
                    color: None,
                })
                .collect();
            (d, s)
        })
        .collect();
    let axis = XAxis::Categories(labels);
    draw!(c, "accuracy_lr", |a| {
        let body = style::titled(
            a,
            "Final test accuracy over learning rates",
            Some("one panel per width; the paper keeps the best learning rate"),
        )?;
        for ((d, s), panel) in panels.iter().zip(style::facets(&body, panels.len())) {
            charts::line_panel(
                &panel,
                Some(&format!("d_model {d}")),
                "learning rate",
                "test accuracy (%)",
                &axis,
                (0.0, 100.0),
                s,
                true,
            )?;
        }
        Ok(())
    })
}

/// Final test accuracy over learning rates as boxes, per width and mixer.
fn lr_box(
    tables: &Tables,
    runs: &HashMap<String, RunInfo>,
    c: &Canvas,
) -> Result<Vec<PathBuf>, ReportError> {
    let finals = finals(tables)?;
    let mut groups: BoxGroups = BTreeMap::new();
    let mut by_width: BTreeMap<i64, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for (id, acc) in &finals {
        if let Some(r) = runs.get(id) {
            by_width
                .entry(r.d_model.unwrap_or(0))
                .or_default()
                .entry(r.mixer.clone())
                .or_default()
                .push(100.0 * acc);
        }
    }
    for (d, per_mixer) in by_width {
        groups.insert(format!("{d:>5}"), per_mixer);
    }
    draw!(c, "lr_box", |a| {
        let body = style::titled(
            a,
            "Final test accuracy over learning rates",
            Some("one box per mixer and width, over its learning-rate runs"),
        )?;
        charts::box_panel(
            &body,
            None,
            "d_model",
            "test accuracy (%)",
            (0.0, 100.0),
            &groups,
        )
    })
}

/// The Attrib figures (`scatter`, `attrib_layers`, `attrib`): one site, `key` corrupted, runs whose corruption matters.
fn attrib_family(
    kind: Kind,
    tables: &Tables,
    runs: &HashMap<String, RunInfo>,
    c: &Canvas,
    opts: &PlotOptions,
) -> Result<Vec<PathBuf>, ReportError> {
    let cells = load_cells(tables, &opts.site)?;
    let f = filter(&cells, runs, opts.threshold);
    let caption = f.caption();
    let top = cells.iter().map(|c| c.layer).max().unwrap_or(0);
    match kind {
        Kind::Scatter => {
            let vq = data::scatter(&cells, runs, &f, "value", "query");
            let kq = data::scatter(&cells, runs, &f, "key", "query");
            let title = format!("Attrib, layer {top} {}, key corrupted", opts.site);
            draw!(c, "scatter", |a| {
                let body = style::titled(a, &title, Some(&caption))?;
                let (l, r) = body.split_horizontally(body.dim_in_pixel().0 / 2);
                charts::scatter_panel(
                    &l,
                    "value vs query",
                    "Attrib at value (≈1: induction)",
                    "Attrib at query (≈1: at the last state)",
                    data::SCATTER_RANGE,
                    &vq,
                )?;
                charts::scatter_panel(
                    &r,
                    "key vs query",
                    "Attrib at key",
                    "Attrib at query",
                    data::SCATTER_RANGE,
                    &kq,
                )
            })
        }
        Kind::AttribLayers => {
            let panels: Vec<(&str, BoxGroups)> = ["value", "query"]
                .into_iter()
                .map(|role| {
                    // layer label → mixer → values.
                    let mut g: BoxGroups = BTreeMap::new();
                    for (mixer, layers) in data::layer_attribs(&cells, runs, &f, role) {
                        for (l, v) in layers {
                            g.entry(format!("layer {l}"))
                                .or_default()
                                .insert(mixer.clone(), v);
                        }
                    }
                    (role, g)
                })
                .collect();
            let title = format!("Attrib per layer ({}, key corrupted)", opts.site);
            draw!(c, "attrib_layers", |a| {
                let body = style::titled(a, &title, Some(&caption))?;
                for ((role, g), panel) in panels.iter().zip(style::facets(&body, 2)) {
                    charts::box_panel(
                        &panel,
                        Some(&format!("patched at {role}")),
                        "",
                        "Attrib",
                        (-0.5, 1.5),
                        g,
                    )?;
                }
                Ok(())
            })
        }
        _ => {
            let finals = finals(tables)?;
            let gaps = data::corruption_gaps(&cells);
            let panels = data::heatmap_panels(&cells, runs, &finals, &gaps, f.threshold);
            let title = format!(
                "Attrib (key corrupted, {}): layer × patch role, each mixer's best run",
                opts.site
            );
            let sub = format!(
                "colour clipped to [{}, {}], exact values printed; grey: corrupting the \
                 input does not change the answer (mean p_orig − p_corr ≤ {})",
                data::HEATMAP_RANGE.0,
                data::HEATMAP_RANGE.1,
                f.threshold
            );
            draw!(c, "attrib", |a| {
                let body = style::titled(a, &title, Some(&sub))?;
                charts::heatmaps(&body, &panels)
            })
        }
    }
}

/// Every figure of `kinds` (all when empty) from `tables` into `out`.
pub fn plot_all(
    tables: &Tables,
    kinds: &[Kind],
    out: &Path,
    opts: &PlotOptions,
) -> Result<Vec<(Kind, Vec<PathBuf>)>, ReportError> {
    let kinds = if kinds.is_empty() {
        &Kind::ALL[..]
    } else {
        kinds
    };
    kinds
        .iter()
        .map(|&kind| Ok((kind, plot(tables, out, kind, opts)?)))
        .collect()
}
