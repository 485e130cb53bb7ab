//! `mechlab plot`: the paper's figure types from collected results, as PNG and SVG (plotters).
//!
//! - `curves`: test accuracy against training step, one line per run.
//! - `accuracy`: final test accuracy against d_model, one line per mixer (best learning rate per
//!   point, as the paper's tables).
//! - `attrib`: Attrib heatmaps, layer × patch role, one panel per mixer (interchange
//!   interventions at one site with `key` corrupted, final step, all runs of the mixer pooled;
//!   Attrib recomputed as a ratio of the pooled means).
//! - `scatter`: Attrib at `value` against Attrib at `query` (last layer), one point per run.
//! - `lr_box`: final test accuracy over learning rates, one box per mixer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use polars::prelude::*;

use super::ReportError;
use super::table::final_values;

/// The figure kinds, in the order `mechlab plot` draws them.
pub const KINDS: [&str; 5] = ["curves", "accuracy", "attrib", "scatter", "lr_box"];

const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (900, 600);

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // DejaVu Sans (assets/DejaVuSans.LICENSE): the PNG backend needs a font to draw text
        // and no system font can be assumed.
        let _ = plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("../../assets/DejaVuSans.ttf"),
        );
    });
}

fn err(what: &str) -> impl Fn(PolarsError) -> ReportError + '_ {
    move |e| ReportError::Shard {
        path: what.to_string(),
        message: e.to_string(),
    }
}

fn plot_err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> ReportError + '_ {
    move |e| ReportError::Shard {
        path: path.display().to_string(),
        message: format!("drawing failed: {e}"),
    }
}

/// Column `name` of `df` as text (numbers formatted), one entry per row.
fn text(df: &DataFrame, name: &str) -> Result<Vec<String>, ReportError> {
    let c = df.column(name).map_err(err(name))?;
    let c = c.cast(&DataType::String).map_err(err(name))?;
    Ok(c.str()
        .map_err(err(name))?
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect())
}

fn numbers(df: &DataFrame, name: &str) -> Result<Vec<f64>, ReportError> {
    let c = df.column(name).map_err(err(name))?;
    let c = c.cast(&DataType::Float64).map_err(err(name))?;
    Ok(c.f64()
        .map_err(err(name))?
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

/// One run of `runs.parquet`: its name, mixer and width as text.
struct Run {
    name: String,
    mixer: String,
    d_model: String,
}

fn runs(dir: &Path) -> Result<BTreeMap<String, Run>, ReportError> {
    let df = super::read_parquet(&dir.join("runs.parquet"))?;
    let col = |n: &str| -> Result<Vec<String>, ReportError> {
        if df.column(n).is_ok() {
            text(&df, n)
        } else {
            Ok(vec![String::new(); df.height()])
        }
    };
    let (ids, names, mixers, widths) = (
        col("run_id")?,
        col("name")?,
        col("model.mixer")?,
        col("model.d_model")?,
    );
    Ok((0..df.height())
        .map(|i| {
            (
                ids[i].clone(),
                Run {
                    name: names[i].clone(),
                    mixer: mixers[i].clone(),
                    d_model: widths[i].clone(),
                },
            )
        })
        .collect())
}

/// Writes `draw` as `<out>/<stem>.png` and/or `.svg`; returns the files written. plotters'
/// backends are distinct types borrowing their output, so each figure comes once per backend, as a
/// closure generic over that borrow (which a type alias cannot name).
#[allow(clippy::type_complexity)]
fn render(
    out: &Path,
    stem: &str,
    png: bool,
    svg: bool,
    draw: &dyn Fn(&DrawingArea<SVGBackend, Shift>) -> Result<(), String>,
    draw_png: &dyn Fn(&DrawingArea<BitMapBackend, Shift>) -> Result<(), String>,
) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(out).map_err(crate::store::StoreError::io(out))?;
    let mut files = Vec::new();
    if svg {
        let path = out.join(format!("{stem}.svg"));
        let mut text = String::new();
        {
            let area = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
            area.fill(&WHITE).map_err(plot_err(&path))?;
            draw(&area).map_err(plot_err(&path))?;
            area.present().map_err(plot_err(&path))?;
        }
        crate::store::write_atomic(&path, text.as_bytes())?;
        files.push(path);
    }
    if png {
        let path = out.join(format!("{stem}.png"));
        // The encoder picks the format from the extension, so the temporary file ends in .png.
        let tmp = out.join(format!(".{stem}.tmp.png"));
        {
            let area = BitMapBackend::new(&tmp, SIZE).into_drawing_area();
            area.fill(&WHITE).map_err(plot_err(&path))?;
            draw_png(&area).map_err(plot_err(&path))?;
            area.present().map_err(plot_err(&path))?;
        }
        std::fs::rename(&tmp, &path).map_err(crate::store::StoreError::io(&path))?;
        files.push(path);
    }
    Ok(files)
}

fn color(i: usize) -> RGBColor {
    let (r, g, b) = Palette99::pick(i).rgb();
    RGBColor(r, g, b)
}

/// A line chart: `series` (label, points) over numeric x and y.
/// A chart builder with the figures' common caption, margin and axis-label space.
fn framed<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    title: &str,
    size: u32,
) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, (FONT, size))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60);
    builder
}

/// The series legend, drawn the same way on every figure that has one.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()
        .map_err(|e| e.to_string())
}

fn lines<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    x_log2: bool,
) -> Result<(), String> {
    let xs = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
    let ys = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
    let tx = |x: f64| if x_log2 { x.log2() } else { x };
    let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| {
        (a.min(tx(x)), b.max(tx(x)))
    });
    let (y0, y1) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    let (x0, x1) = if x0 < x1 {
        (x0, x1)
    } else {
        (x0 - 1.0, x0 + 1.0)
    };
    let (y0, y1) = (y0.min(0.0), y1.max(1e-9) * 1.05);
    let mut chart = framed(area, title, 22)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|x| {
            if x_log2 {
                format!("{}", 2f64.powf(*x).round())
            } else {
                format!("{x}")
            }
        })
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (label, points)) in series.iter().enumerate() {
        let c = color(i);
        let pts: Vec<(f64, f64)> = points.iter().map(|&(x, y)| (tx(x), y)).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(|e| e.to_string())?;
    }
    legend(&mut chart)
}

/// Draws figure `kind` from the collected tables in `dir` into `out`.
pub fn plot(
    dir: &Path,
    out: &Path,
    kind: &str,
    png: bool,
    svg: bool,
    site: &str,
) -> Result<Vec<PathBuf>, ReportError> {
    register_font();
    let runs = runs(dir)?;
    match kind {
        "curves" => {
            let m = super::read_parquet(&dir.join("metrics.parquet"))?;
            let (ids, steps, splits, metrics, values) = (
                text(&m, "run_id")?,
                numbers(&m, "step")?,
                text(&m, "split")?,
                text(&m, "metric")?,
                numbers(&m, "value")?,
            );
            let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
            for i in 0..m.height() {
                if splits[i] == "test" && metrics[i] == "accuracy" {
                    let name = runs.get(&ids[i]).map_or(ids[i].clone(), |r| r.name.clone());
                    series
                        .entry(name)
                        .or_default()
                        .push((steps[i], 100.0 * values[i]));
                }
            }
            let mut series: Vec<_> = series.into_iter().collect();
            for (_, p) in &mut series {
                p.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
            let (t, x, y) = ("Training curves", "training step", "test accuracy (%)");
            render(
                out,
                "curves",
                png,
                svg,
                &|a| lines(a, t, x, y, &series, false),
                &|a| lines(a, t, x, y, &series, false),
            )
        }
        "accuracy" => {
            let m = super::read_parquet(&dir.join("metrics.parquet"))?;
            let finals = final_values(&m, "accuracy", "test")?;
            // Best learning rate per (mixer, width), by final accuracy.
            let mut best: BTreeMap<(String, String), f64> = BTreeMap::new();
            for (id, run) in &runs {
                if let Some(&v) = finals.get(id) {
                    let e = best
                        .entry((run.mixer.clone(), run.d_model.clone()))
                        .or_insert(v);
                    *e = e.max(v);
                }
            }
            let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
            for ((mixer, d), v) in best {
                if let Ok(d) = d.parse::<f64>() {
                    series.entry(mixer).or_default().push((d, 100.0 * v));
                }
            }
            let mut series: Vec<_> = series.into_iter().collect();
            for (_, p) in &mut series {
                p.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
            let (t, x, y) = (
                "Accuracy by width (best learning rate)",
                "d_model",
                "test accuracy (%)",
            );
            render(
                out,
                "accuracy",
                png,
                svg,
                &|a| lines(a, t, x, y, &series, true),
                &|a| lines(a, t, x, y, &series, true),
            )
        }
        "attrib" | "scatter" => {
            let path = dir.join("interventions.parquet");
            let df = super::read_parquet(&path)?;
            let (ids, steps, layers, sites, corrupted, roles) = (
                text(&df, "run_id")?,
                numbers(&df, "step")?,
                numbers(&df, "layer")?,
                text(&df, "site")?,
                text(&df, "corrupted_role")?,
                text(&df, "patch_role")?,
            );
            let (n, po, pc, pr) = (
                numbers(&df, "n")?,
                numbers(&df, "p_orig")?,
                numbers(&df, "p_corr")?,
                numbers(&df, "p_rest")?,
            );
            // The final step of each run's interventions.
            let mut last: BTreeMap<&str, f64> = BTreeMap::new();
            for i in 0..df.height() {
                let e = last.entry(ids[i].as_str()).or_insert(steps[i]);
                *e = e.max(steps[i]);
            }
            let keep = |i: usize| {
                sites[i] == site
                    && corrupted[i] == "key"
                    && Some(&steps[i]) == last.get(ids[i].as_str())
            };
            if kind == "scatter" {
                let top = (0..df.height())
                    .filter(|&i| keep(i))
                    .map(|i| layers[i])
                    .fold(0.0, f64::max);
                let mut points: BTreeMap<String, BTreeMap<String, (f64, f64)>> = BTreeMap::new();
                for i in (0..df.height()).filter(|&i| keep(i) && layers[i] == top) {
                    let attrib = (pr[i] - pc[i]) / (po[i] - pc[i]);
                    let mixer = runs.get(&ids[i]).map_or(String::new(), |r| r.mixer.clone());
                    let e = points
                        .entry(mixer)
                        .or_default()
                        .entry(ids[i].clone())
                        .or_insert((f64::NAN, f64::NAN));
                    match roles[i].as_str() {
                        "value" => e.0 = attrib,
                        "query" => e.1 = attrib,
                        _ => {}
                    }
                }
                let series: Vec<(String, Vec<(f64, f64)>)> = points
                    .into_iter()
                    .map(|(m, runs)| {
                        (
                            m,
                            runs.into_values()
                                .filter(|p| p.0.is_finite() && p.1.is_finite())
                                .collect(),
                        )
                    })
                    .collect();
                let title =
                    format!("Attrib at value vs at query (layer {top} {site}, key corrupted)");
                return render(
                    out,
                    "scatter",
                    png,
                    svg,
                    &|a| scatter(a, &title, &series),
                    &|a| scatter(a, &title, &series),
                );
            }
            // (mixer, layer, role) → pooled n-weighted sums of p_orig, p_corr, p_rest and n.
            let mut pooled: BTreeMap<(String, i64, String), [f64; 4]> = BTreeMap::new();
            for i in (0..df.height()).filter(|&i| keep(i)) {
                let mixer = runs.get(&ids[i]).map_or(String::new(), |r| r.mixer.clone());
                let e = pooled
                    .entry((mixer, layers[i] as i64, roles[i].clone()))
                    .or_insert([0.0; 4]);
                e[0] += n[i] * po[i];
                e[1] += n[i] * pc[i];
                e[2] += n[i] * pr[i];
                e[3] += n[i];
            }
            let cells: Vec<(String, i64, String, f64)> = pooled
                .into_iter()
                .map(|((m, l, r), s)| (m, l, r, (s[2] - s[1]) / (s[0] - s[1])))
                .collect();
            render(
                out,
                "attrib",
                png,
                svg,
                &|a| heatmaps(a, site, &cells),
                &|a| heatmaps(a, site, &cells),
            )
        }
        "lr_box" => {
            let m = super::read_parquet(&dir.join("metrics.parquet"))?;
            let finals = final_values(&m, "accuracy", "test")?;
            let mut by_mixer: BTreeMap<String, Vec<f32>> = BTreeMap::new();
            for (id, run) in &runs {
                if let Some(&v) = finals.get(id) {
                    by_mixer
                        .entry(run.mixer.clone())
                        .or_default()
                        .push(100.0 * v as f32);
                }
            }
            render(out, "lr_box", png, svg, &|a| boxes(a, &by_mixer), &|a| {
                boxes(a, &by_mixer)
            })
        }
        other => Err(ReportError::Shard {
            path: format!("--kind {other}"),
            message: format!("expected one of {}", KINDS.join(", ")),
        }),
    }
}

fn scatter<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), String> {
    let all = series.iter().flat_map(|(_, p)| p.iter());
    let (lo, hi) = all.fold((0.0f64, 1.0f64), |(a, b), &(x, y)| {
        (a.min(x).min(y), b.max(x).max(y))
    });
    let (lo, hi) = (lo.max(-2.0) - 0.05, hi.min(3.0) + 0.05);
    let mut chart = framed(area, title, 20)
        .build_cartesian_2d(lo..hi, lo..hi)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("Attrib at value (≈1: induction)")
        .y_desc("Attrib at query (≈1: retrieval at the last state)")
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (label, points)) in series.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 5, c.filled())))
            .map_err(|e| e.to_string())?
            .label(label.clone())
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, c.filled()));
    }
    legend(&mut chart)
}

/// One heatmap panel per mixer: layers down, patch roles across, Attrib as colour and text.
fn heatmaps<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    site: &str,
    cells: &[(String, i64, String, f64)],
) -> Result<(), String> {
    let mixers: Vec<&String> = {
        let mut m: Vec<&String> = cells.iter().map(|c| &c.0).collect();
        m.dedup();
        m
    };
    const ROLES: [&str; 5] = ["key", "value", "divider", "query", "answer"];
    let roles: Vec<&str> = ROLES
        .iter()
        .copied()
        .filter(|r| cells.iter().any(|c| c.2 == *r))
        .collect();
    let layers = cells.iter().map(|c| c.1).max().unwrap_or(0) + 1;
    let (title_area, body) = area.split_vertically(40);
    title_area
        .titled(
            &format!("Attrib (key corrupted, {site}): layer × patch role"),
            (FONT, 20),
        )
        .map_err(|e| e.to_string())?;
    let panels = body.split_evenly((mixers.len().div_ceil(3).max(1), mixers.len().clamp(1, 3)));
    for (mixer, panel) in mixers.iter().zip(panels.iter()) {
        let mut chart = ChartBuilder::on(panel)
            .caption(mixer.as_str(), (FONT, 16))
            .margin(8)
            .x_label_area_size(25)
            .y_label_area_size(55)
            // A segmented range 0..n has a segment for every value up to n inclusive.
            .build_cartesian_2d(
                (0..roles.len() as i32 - 1).into_segmented(),
                (0..layers as i32 - 1).into_segmented(),
            )
            .map_err(|e| e.to_string())?;
        let centre = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(i) => Some(*i),
            _ => None,
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_label_formatter(&|x| {
                centre(x)
                    .and_then(|i| roles.get(i as usize))
                    .map_or(String::new(), |r| r.to_string())
            })
            .y_label_formatter(&|y| centre(y).map_or(String::new(), |l| format!("layer {l}")))
            .label_style((FONT, 11))
            .draw()
            .map_err(|e| e.to_string())?;
        for (_, layer, role, attrib) in cells.iter().filter(|c| &&c.0 == mixer) {
            let Some(x) = roles.iter().position(|r| r == role) else {
                continue;
            };
            let v = if attrib.is_finite() {
                attrib.clamp(0.0, 1.0)
            } else {
                0.0
            };
            let shade = RGBColor(255, (255.0 * (1.0 - v)) as u8, (255.0 * (1.0 - v)) as u8);
            let (x, y) = (x as i32, *layer as i32);
            let exact = SegmentValue::Exact;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(exact(x), exact(y)), (exact(x + 1), exact(y + 1))],
                    shade.filled(),
                )))
                .map_err(|e| e.to_string())?;
            let label = if attrib.is_finite() {
                format!("{attrib:.2}")
            } else {
                "n/a".into()
            };
            chart
                .draw_series(std::iter::once(Text::new(
                    label,
                    (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
                    (FONT, 13),
                )))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// One box per mixer over its runs' final accuracies (learning rates, seeds, widths).
fn boxes<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    by_mixer: &BTreeMap<String, Vec<f32>>,
) -> Result<(), String> {
    let names: Vec<String> = by_mixer.keys().cloned().collect();
    let mut chart = framed(area, "Final test accuracy over learning rates", 22)
        .build_cartesian_2d(names.as_slice().into_segmented(), 0f32..100f32)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("mixer")
        .y_desc("test accuracy (%)")
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(by_mixer.iter().map(|(name, values)| {
            Boxplot::new_vertical(SegmentValue::CenterOf(name), &Quartiles::new(values))
        }))
        .map_err(|e| e.to_string())?;
    Ok(())
}
