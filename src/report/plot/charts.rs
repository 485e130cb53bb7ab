//! The chart kinds the figures are made of, drawn in the shared style ([`super::style`]).

use std::collections::BTreeMap;

use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;

use super::data::{Clip, HEATMAP_RANGE, Panel, ScatterPoint, clip};
use super::style::{FONT, GREY_FILL, GRID, INK, MUTED, color, legend};

fn e<T: std::fmt::Display>(err: T) -> String {
    err.to_string()
}

/// How a line chart's x axis reads its values.
pub enum XAxis {
    /// Training steps from 0 to `to` (the longest schedule): every panel shares it, and a run not
    /// done yet visibly ends short of the edge.
    Steps { to: f64 },
    /// Values are indices into these labels, evenly spaced (widths 16, 32, 64, …: log-2 steps).
    Categories(Vec<String>),
}

/// A named line; coloured by name unless given a colour.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub color: Option<RGBColor>,
}

/// A panel's chart builder: optional caption, the shared margin and axis-label space.
fn panel<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: Option<&str>,
) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(area);
    if let Some(c) = caption {
        builder.caption(c, (FONT, 15).into_font().color(&INK));
    }
    builder
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(56);
    builder
}

/// The axes every x/y panel shares: major grid lines only, muted axes, labelled.
fn house_mesh<'a, 'b, X, Y, DB>(
    chart: &'b mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    x_label: &str,
    y_label: &str,
) -> MeshStyle<'a, 'b, X, Y, DB>
where
    X: Ranged + ValueFormatter<X::ValueType>,
    Y: Ranged + ValueFormatter<Y::ValueType>,
    DB: DrawingBackend,
{
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .axis_style(MUTED)
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style((FONT, 13).into_font().color(&INK))
        .axis_desc_style((FONT, 14).into_font().color(&INK));
    mesh
}

/// A line chart with markers: one line per series, coloured by name.
#[allow(clippy::too_many_arguments)]
pub fn line_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: Option<&str>,
    x_label: &str,
    y_label: &str,
    x_axis: &XAxis,
    y_range: (f64, f64),
    series: &[Series],
    with_legend: bool,
) -> Result<(), String> {
    let (x0, x1) = match x_axis {
        XAxis::Categories(labels) => (0.0, labels.len().saturating_sub(1) as f64),
        XAxis::Steps { to } => {
            let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
            (0.0, xs.fold(*to, f64::max))
        }
    };
    let pad = if x1 > x0 { (x1 - x0) * 0.04 } else { 0.5 };
    let (x0, x1) = (x0 - pad, x1 + pad);
    let mut chart = panel(area, caption)
        .build_cartesian_2d(x0..x1, y_range.0..y_range.1)
        .map_err(e)?;
    let n_labels = match x_axis {
        XAxis::Categories(l) => l.len().max(1),
        _ => 6,
    };
    let fmt = |x: &f64| match x_axis {
        XAxis::Steps { .. } => {
            if x.abs() >= 1000.0 {
                format!("{}k", x / 1000.0)
            } else {
                format!("{x}")
            }
        }
        XAxis::Categories(labels) => {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        }
    };
    house_mesh(&mut chart, x_label, y_label)
        .x_labels(n_labels)
        .x_label_formatter(&fmt)
        .y_label_formatter(&|v: &f64| format!("{v:.0}"))
        .draw()
        .map_err(e)?;
    for (i, s) in series.iter().enumerate() {
        let c = s.color.unwrap_or_else(|| color(&s.name, i));
        chart
            .draw_series(LineSeries::new(s.points.clone(), c.stroke_width(2)))
            .map_err(e)?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(e)?;
    }
    if with_legend && !series.is_empty() {
        legend(&mut chart, emptiest_corner(series, (x0, x1), y_range))?;
    }
    Ok(())
}

/// The corner whose quarter-panel holds the fewest points, so the legend hides the least data
/// (learning curves on a plateau lie along the bottom, curves that learned along the top right);
/// ties go to the first of upper left, lower right, upper right, lower left.
fn emptiest_corner(
    series: &[Series],
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> SeriesLabelPosition {
    let (xm, ym) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let corners = [
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let points: Vec<(f64, f64)> = series.iter().flat_map(|s| s.points.clone()).collect();
    let count = |right: bool, upper: bool| {
        points
            .iter()
            .filter(|&&(x, y)| (x > xm) == right && (y > ym) == upper)
            .count()
    };
    corners
        .into_iter()
        .min_by_key(|&(_, right, upper)| count(right, upper))
        .map_or(SeriesLabelPosition::UpperLeft, |(corner, _, _)| corner)
}

/// A tick label with one decimal, and no "-0.0".
fn tick(v: &f64) -> String {
    let v = if v.abs() < 1e-9 { 0.0 } else { *v };
    format!("{v:.1}")
}

/// A triangle pointing `dir` (unit vector, y down) with its tip at `tip`, in pixels.
fn arrow_head(tip: (i32, i32), dir: (f64, f64), size: f64) -> Vec<(i32, i32)> {
    let (dx, dy) = dir;
    let back = (tip.0 as f64 - dx * size, tip.1 as f64 - dy * size);
    let (px, py) = (-dy * size * 0.6, dx * size * 0.6);
    vec![
        tip,
        ((back.0 + px) as i32, (back.1 + py) as i32),
        ((back.0 - px) as i32, (back.1 - py) as i32),
    ]
}

/// Attrib against Attrib, one point per run; a run outside the drawn range is an arrow at the
/// edge it left by, labelled with its value, never a plain point.
pub fn scatter_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    x_label: &str,
    y_label: &str,
    range: (f64, f64),
    points: &[ScatterPoint],
) -> Result<(), String> {
    let mut chart = panel(area, Some(caption))
        .build_cartesian_2d(range.0..range.1, range.0..range.1)
        .map_err(e)?;
    house_mesh(&mut chart, x_label, y_label)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .draw()
        .map_err(e)?;
    // Reference lines at 0 and 1: the two mechanisms' signatures.
    for v in [0.0, 1.0] {
        let dashed = MUTED.mix(0.5).stroke_width(1);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(v, range.0), (v, range.1)],
                dashed,
            )))
            .map_err(e)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(range.0, v), (range.1, v)],
                dashed,
            )))
            .map_err(e)?;
    }
    let mut mixers: Vec<&str> = points.iter().map(|p| p.mixer.as_str()).collect();
    mixers.sort();
    mixers.dedup();
    for (i, mixer) in mixers.iter().enumerate() {
        let c = color(mixer, i);
        let inside: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.mixer == *mixer)
            .filter(|p| matches!(p.placed(), ((_, Clip::Inside), (_, Clip::Inside))))
            .map(|p| (p.x, p.y))
            .collect();
        chart
            .draw_series(inside.iter().map(|&p| Circle::new(p, 5, c.filled())))
            .map_err(e)?
            .label(mixer.to_string())
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, c.filled()));
    }
    for (i, p) in points.iter().enumerate() {
        let ((x, cx), (y, cy)) = p.placed();
        if cx == Clip::Inside && cy == Clip::Inside {
            continue;
        }
        let c = color(
            &p.mixer,
            mixers.iter().position(|m| *m == p.mixer).unwrap_or(i),
        );
        let dir = |clip: Clip| -> f64 {
            match clip {
                Clip::Below => -1.0,
                Clip::Above => 1.0,
                Clip::Inside => 0.0,
            }
        };
        let (dx, dy) = (dir(cx), -dir(cy));
        let norm: f64 = (dx * dx + dy * dy).sqrt();
        // The arrow in pixels, relative to this panel.
        let (abs, base) = (chart.backend_coord(&(x, y)), area.get_base_pixel());
        let tip = (abs.0 - base.0, abs.1 - base.1);
        area.draw(&Polygon::new(
            arrow_head(tip, (dx / norm, dy / norm), 12.0),
            c.filled(),
        ))
        .map_err(e)?;
        // The true values beside the arrow, inside the frame.
        let label = format!("({:.2}, {:.2})", p.x, p.y);
        let (w, h) = area.dim_in_pixel();
        let lx = (tip.0 as f64 - dx / norm * 20.0 - 30.0).clamp(4.0, w as f64 - 90.0);
        let ly = (tip.1 as f64 - dy / norm * 20.0 - 6.0).clamp(4.0, h as f64 - 16.0);
        area.draw(&Text::new(
            label,
            (lx as i32, ly as i32),
            (FONT, 11).into_font().color(&c),
        ))
        .map_err(e)?;
    }
    if !mixers.is_empty() {
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    }
    Ok(())
}

/// Blue below 0, white at 0, red above, saturating at the ends of [`HEATMAP_RANGE`].
pub fn diverging(v: f64) -> RGBColor {
    let (lo, hi) = HEATMAP_RANGE;
    let (v, _) = clip(v, lo, hi);
    let t = if v >= 0.0 { v / hi } else { v / lo };
    let end = if v >= 0.0 {
        (178.0, 24.0, 43.0)
    } else {
        (33.0, 102.0, 172.0)
    };
    let mix = |a: f64| (255.0 + (a - 255.0) * t) as u8;
    RGBColor(mix(end.0), mix(end.1), mix(end.2))
}

const ROLES: [&str; 5] = ["key", "value", "divider", "query", "answer"];

/// One heatmap per mixer (layer × patch role) on one diverging scale, with its colour bar;
/// greyed panels say why.
pub fn heatmaps<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panels: &[Panel],
) -> Result<(), String> {
    let (body, bar) = area.split_horizontally(area.dim_in_pixel().0.saturating_sub(90));
    let roles: Vec<&str> = ROLES
        .iter()
        .copied()
        .filter(|r| panels.iter().any(|p| p.cells.iter().any(|c| c.1 == *r)))
        .collect();
    let layers = panels
        .iter()
        .flat_map(|p| p.cells.iter().map(|c| c.0))
        .max()
        .unwrap_or(0)
        + 1;
    for (panel, sub) in panels.iter().zip(super::style::facets(&body, panels.len())) {
        let mut chart = ChartBuilder::on(&sub)
            .caption(
                format!("{}: {}", panel.mixer, panel.name),
                (FONT, 13).into_font().color(&INK),
            )
            .margin(8)
            .margin_top(if panel.greyed.is_some() { 22 } else { 8 })
            .x_label_area_size(24)
            .y_label_area_size(56)
            .build_cartesian_2d(
                (0..roles.len() as i32 - 1).into_segmented(),
                (0..layers as i32 - 1).into_segmented(),
            )
            .map_err(e)?;
        let centre = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(i) => Some(*i),
            _ => None,
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .axis_style(MUTED)
            .x_label_formatter(&|x| {
                centre(x)
                    .and_then(|i| roles.get(i as usize))
                    .map_or(String::new(), |r| r.to_string())
            })
            .y_label_formatter(&|y| centre(y).map_or(String::new(), |l| format!("layer {l}")))
            .label_style((FONT, 11).into_font().color(&INK))
            .draw()
            .map_err(e)?;
        for (layer, role, attrib) in &panel.cells {
            let Some(x) = roles.iter().position(|r| r == role) else {
                continue;
            };
            let (x, y) = (x as i32, *layer as i32);
            let fill = if panel.greyed.is_some() || !attrib.is_finite() {
                GREY_FILL
            } else {
                diverging(*attrib)
            };
            let exact = SegmentValue::Exact;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(exact(x), exact(y)), (exact(x + 1), exact(y + 1))],
                    fill.filled(),
                )))
                .map_err(e)?;
            let label = if attrib.is_finite() {
                format!("{attrib:.2}")
            } else {
                "n/a".into()
            };
            let ink = if panel.greyed.is_some() {
                MUTED
            } else if attrib.abs() > 0.6 {
                WHITE
            } else {
                INK
            };
            chart
                .draw_series(std::iter::once(Text::new(
                    label,
                    (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
                    (FONT, 12).into_font().color(&ink),
                )))
                .map_err(e)?;
        }
        if let Some(reason) = &panel.greyed {
            sub.draw(&Text::new(
                reason.clone(),
                (8, 4),
                (FONT, 10).into_font().color(&MUTED),
            ))
            .map_err(e)?;
        }
    }
    colour_bar(&bar)
}

/// The heatmaps' scale: [`HEATMAP_RANGE`] top to bottom, ticks at its ends and 0.
fn colour_bar<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>) -> Result<(), String> {
    let (lo, hi) = HEATMAP_RANGE;
    let (_, h) = area.dim_in_pixel();
    let (top, bottom) = (40i32, h as i32 - 50);
    let steps = 60;
    for k in 0..steps {
        let v = hi - (hi - lo) * (k as f64 + 0.5) / steps as f64;
        let y0 = top + (bottom - top) * k / steps;
        let y1 = top + (bottom - top) * (k + 1) / steps;
        area.draw(&Rectangle::new([(20, y0), (40, y1)], diverging(v).filled()))
            .map_err(e)?;
    }
    for (v, label) in [
        (hi, format!("≥ {hi}")),
        (0.0, "0".to_string()),
        (lo, format!("≤ {lo}")),
    ] {
        let y = top + ((hi - v) / (hi - lo) * (bottom - top) as f64) as i32;
        area.draw(&Text::new(
            label,
            (44, y - 6),
            (FONT, 12).into_font().color(&INK),
        ))
        .map_err(e)?;
    }
    area.draw(&Text::new(
        "Attrib".to_string(),
        (12, top - 24),
        (FONT, 13).into_font().color(&INK),
    ))
    .map_err(e)?;
    Ok(())
}

/// A box plot's numbers: quartiles by linear interpolation, whiskers at the furthest values
/// within 1.5 interquartile ranges (Tukey), never beyond the data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tukey {
    pub low: f64,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub high: f64,
}

pub fn tukey(values: &[f64]) -> Tukey {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if v.is_empty() {
            return f64::NAN;
        }
        let pos = p * (v.len() - 1) as f64;
        let (i, frac) = (pos.floor() as usize, pos.fract());
        v[i] + (v[(i + 1).min(v.len() - 1)] - v[i]) * frac
    };
    let (q1, median, q3) = (q(0.25), q(0.5), q(0.75));
    let iqr = q3 - q1;
    let low = v
        .iter()
        .copied()
        .find(|&x| x >= q1 - 1.5 * iqr)
        .unwrap_or(q1);
    let high = v
        .iter()
        .rev()
        .copied()
        .find(|&x| x <= q3 + 1.5 * iqr)
        .unwrap_or(q3);
    Tukey {
        low,
        q1,
        median,
        q3,
        high,
    }
}

/// Box plots of values per category on the x axis, one box per series at each category, side
/// by side (`groups`: category label → series → values).
pub fn box_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: Option<&str>,
    x_label: &str,
    y_label: &str,
    y_range: (f32, f32),
    groups: &BTreeMap<String, BTreeMap<String, Vec<f64>>>,
) -> Result<(), String> {
    let categories: Vec<&String> = groups.keys().collect();
    let mut names: Vec<&String> = groups.values().flat_map(|s| s.keys()).collect();
    names.sort();
    names.dedup();
    let n = categories.len().max(1) as i32;
    let mut chart = panel(area, caption)
        .build_cartesian_2d((0..n - 1).into_segmented(), y_range.0..y_range.1)
        .map_err(e)?;
    house_mesh(&mut chart, x_label, y_label)
        .disable_x_mesh()
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => categories
                .get(*i as usize)
                .map_or(String::new(), |c| c.to_string()),
            _ => String::new(),
        })
        .y_label_formatter(&|v: &f32| {
            if y_range.1 - y_range.0 > 10.0 {
                format!("{v:.0}")
            } else {
                tick(&(*v as f64))
            }
        })
        .draw()
        .map_err(e)?;
    let width = (60 / names.len().max(1)).clamp(8, 40) as i32;
    let base = area.get_base_pixel();
    for (k, name) in names.iter().enumerate() {
        let c = color(name, k);
        let offset = ((k as f64 - (names.len() as f64 - 1.0) / 2.0) * (width as f64 + 6.0)) as i32;
        // The legend entry (an empty series carries it).
        chart
            .draw_series(std::iter::empty::<Circle<(SegmentValue<i32>, f32), i32>>())
            .map_err(e)?
            .label(name.to_string())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.stroke_width(2)));
        for (i, cat) in categories.iter().enumerate() {
            let Some(values) = groups[*cat].get(*name).filter(|v| !v.is_empty()) else {
                continue;
            };
            let px = |v: f64| {
                let (y, _) = clip(v, y_range.0 as f64, y_range.1 as f64);
                let (x, y) = chart.backend_coord(&(SegmentValue::CenterOf(i as i32), y as f32));
                (x - base.0 + offset, y - base.1)
            };
            let t = tukey(values);
            let (x, _) = px(t.median);
            let half = width / 2;
            let stroke = c.stroke_width(2);
            let (q1, q3, med) = (px(t.q1).1, px(t.q3).1, px(t.median).1);
            let (lo, hi) = (px(t.low).1, px(t.high).1);
            area.draw(&Rectangle::new([(x - half, q3), (x + half, q1)], stroke))
                .map_err(e)?;
            for seg in [
                vec![(x - half, med), (x + half, med)],
                vec![(x, q3), (x, hi)],
                vec![(x, q1), (x, lo)],
                vec![(x - half / 2, hi), (x + half / 2, hi)],
                vec![(x - half / 2, lo), (x + half / 2, lo)],
            ] {
                area.draw(&PathElement::new(seg, stroke)).map_err(e)?;
            }
            // Every run as a dot over its box (a box of two or three runs hides how few there
            // are); runs outside the range sit on its edge as hollow dots.
            for &v in values {
                let (_, clipped) = clip(v, y_range.0 as f64, y_range.1 as f64);
                let centre = px(v);
                let dot = if clipped == Clip::Inside {
                    Circle::new(centre, 3, c.mix(0.6).filled())
                } else {
                    Circle::new(centre, 4, c.stroke_width(2))
                };
                area.draw(&dot).map_err(e)?;
            }
        }
    }
    if names.len() > 1 {
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiskers_stay_within_the_data() {
        let t = tukey(&[26.0, 67.0]);
        assert_eq!((t.low, t.high), (26.0, 67.0));
        assert_eq!(t.median, 46.5);
        let t = tukey(&[1.0, 2.0, 3.0, 4.0, 100.0]);
        assert_eq!((t.q1, t.median, t.q3), (2.0, 3.0, 4.0));
        assert_eq!(t.high, 4.0, "100 is an outlier, drawn as a dot");
    }

    #[test]
    fn diverging_scale_is_white_at_zero_and_saturates_at_the_ends() {
        assert_eq!(diverging(0.0), RGBColor(255, 255, 255));
        assert_eq!(diverging(1.0), RGBColor(178, 24, 43));
        assert_eq!(diverging(22.4), diverging(1.0), "clipped, not extrapolated");
        assert_eq!(diverging(-5.0), RGBColor(33, 102, 172));
    }

    fn curve(points: &[(f64, f64)]) -> Series {
        Series {
            name: "run".into(),
            points: points.to_vec(),
            color: None,
        }
    }

    #[test]
    fn the_legend_goes_where_the_curves_are_not() {
        let corner = |s: &[Series]| emptiest_corner(s, (0.0, 50_000.0), (0.0, 100.0));
        let plateau = curve(&[
            (0.0, 0.0),
            (10_000.0, 1.0),
            (30_000.0, 0.5),
            (50_000.0, 1.0),
        ]);
        // A run that never learns leaves the top free.
        assert!(matches!(corner(&[plateau]), SeriesLabelPosition::UpperLeft));
        // A run that learns at 15k fills the upper right and part of the upper left.
        let learned = curve(&[
            (0.0, 0.0),
            (10_000.0, 2.0),
            (16_000.0, 77.0),
            (20_000.0, 95.0),
            (30_000.0, 99.0),
            (50_000.0, 99.0),
        ]);
        assert!(matches!(
            corner(&[learned]),
            SeriesLabelPosition::LowerRight
        ));
    }
}
