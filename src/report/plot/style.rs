//! The look every figure shares: one font, one qualitative palette keyed by mixer (so a mixer
//! has the same colour in every figure), a clean frame with major grid lines only, and the
//! PNG/SVG output.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::ReportError;

pub const FONT: &str = "sans-serif";
pub const SIZE: (u32, u32) = (960, 640);
pub const GRID: RGBColor = RGBColor(225, 225, 225);
pub const INK: RGBColor = RGBColor(40, 40, 40);
pub const MUTED: RGBColor = RGBColor(110, 110, 110);
pub const GREY_FILL: RGBColor = RGBColor(215, 215, 215);

pub fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // DejaVu Sans (assets/DejaVuSans.LICENSE): the PNG backend needs a font to draw text
        // and no system font can be assumed.
        let _ = plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("../../../assets/DejaVuSans.ttf"),
        );
    });
}

/// Okabe & Ito's colour-blind-safe palette, one colour per mixer of the paper in a fixed order;
/// other series take the remaining colours, then grey.
const OKABE_ITO: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
    RGBColor(240, 228, 66),  // yellow
];
const MIXERS: [&str; 6] = ["attention", "based", "base_conv", "h3", "hyena", "mamba"];

/// The colour of series `name`: a mixer's own everywhere; other names take the palette's `i`-th.
pub fn color(name: &str, i: usize) -> RGBColor {
    match MIXERS.iter().position(|m| *m == name) {
        Some(k) => OKABE_ITO[k],
        None => OKABE_ITO[i % OKABE_ITO.len()],
    }
}

/// The `k`-th of `n` shades of `c`, from full colour to two thirds of the way to white: the runs
/// of one mixer in a shared panel.
pub fn shade(c: RGBColor, k: usize, n: usize) -> RGBColor {
    let t = if n > 1 {
        0.65 * k as f64 / (n - 1) as f64
    } else {
        0.0
    };
    let mix = |v: u8| (v as f64 + (255.0 - v as f64) * t) as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

fn plot_err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> ReportError + '_ {
    move |e| ReportError::Shard {
        path: path.display().to_string(),
        message: format!("drawing failed: {e}"),
    }
}

/// Writes a figure as `<out>/<stem>.svg` and/or `.png`; returns the files written. plotters'
/// backends are distinct types borrowing their output, so each figure comes once per backend,
/// as a closure generic over that borrow (which a type alias cannot name).
#[allow(clippy::type_complexity)]
pub fn render(
    out: &Path,
    stem: &str,
    png: bool,
    svg: bool,
    draw_svg: &dyn Fn(&DrawingArea<SVGBackend, Shift>) -> Result<(), String>,
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
            draw_svg(&area).map_err(plot_err(&path))?;
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

/// A title and an optional subtitle (what was filtered) above the figure; returns the body.
pub fn titled<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: Option<&str>,
) -> Result<DrawingArea<DB, Shift>, String> {
    let height = if subtitle.is_some() { 58 } else { 36 };
    let (top, body) = area.split_vertically(height);
    top.draw(&Text::new(
        title.to_string(),
        (14, 8),
        (FONT, 21).into_font().color(&INK),
    ))
    .map_err(|e| e.to_string())?;
    if let Some(s) = subtitle {
        top.draw(&Text::new(
            s.to_string(),
            (14, 34),
            (FONT, 14).into_font().color(&MUTED),
        ))
        .map_err(|e| e.to_string())?;
    }
    Ok(body)
}

/// `n` panels in a grid of at most three columns.
pub fn facets<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    n: usize,
) -> Vec<DrawingArea<DB, Shift>> {
    let cols = n.clamp(1, 3);
    let rows = n.div_ceil(cols).max(1);
    area.split_evenly((rows, cols))
}

/// The series legend, drawn the same way on every figure that has one.
pub fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(GRID)
        .label_font((FONT, 13))
        .draw()
        .map_err(|e| e.to_string())
}
