//! What each figure shows, computed from the collected tables and kept apart from drawing, so
//! the tests check which runs a figure keeps, which values it clips and which cells it greys.
//!
//! Attrib = (E[p_rest] − E[p_corr]) / (E[p_orig] − E[p_corr]) divides by how much corrupting
//! the input moved the clean answer's probability. Where that gap is about 0 (a model on the
//! plateau answers the same either way) Attrib is noise of any size, so, as the reference's
//! analysis does (`reference/paper-setup.md` §4), the Attrib figures keep only runs whose
//! corruption matters: mean p_orig − mean p_corr above a threshold (0.01 for AR and MQAR, 0.1
//! for ATR), read at layer 0, patch role `value` (the gap does not depend on the patch site).

use std::collections::{BTreeMap, HashMap};

/// One run of `runs.parquet`, as the figures group it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub id: String,
    pub name: String,
    pub mixer: String,
    pub d_model: Option<i64>,
    pub lr: Option<f64>,
    /// `task.kind`: picks the default corruption threshold.
    pub task: String,
    /// The schedule's length (`train.steps`).
    pub steps: Option<i64>,
    /// Updates completed (`step`; absent from tables collected by older versions).
    pub step: Option<i64>,
}

pub use crate::report::cells::Cell;

/// The reference's threshold on mean p_orig − mean p_corr for a task kind.
pub fn default_threshold(task: &str) -> f64 {
    match task {
        "atr" => 0.1,
        _ => 0.01,
    }
}

/// Mean p_orig − mean p_corr of each run: layer 0, patch role `value` (any cell of the run where
/// that one is missing: the gap is the same at every patch site).
pub fn corruption_gaps(cells: &[Cell]) -> BTreeMap<String, f64> {
    let mut gaps: BTreeMap<String, (bool, f64)> = BTreeMap::new();
    for c in cells {
        let preferred = c.layer == 0 && c.role == "value";
        let gap = c.p_orig - c.p_corr;
        match gaps.get(&c.run) {
            Some((true, _)) => {}
            Some((false, _)) if !preferred => {}
            _ => {
                gaps.insert(c.run.clone(), (preferred, gap));
            }
        }
    }
    gaps.into_iter().map(|(r, (_, g))| (r, g)).collect()
}

/// Which runs an Attrib figure keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub threshold: f64,
    /// Runs with interventions whose gap exceeds the threshold.
    pub kept: Vec<String>,
    /// Runs with interventions whose gap does not, with it.
    pub dropped: Vec<(String, f64)>,
}

impl Filter {
    pub fn new(gaps: &BTreeMap<String, f64>, threshold: f64) -> Self {
        let mut kept = Vec::new();
        let mut dropped = Vec::new();
        for (run, &gap) in gaps {
            if gap > threshold {
                kept.push(run.clone());
            } else {
                dropped.push((run.clone(), gap));
            }
        }
        Filter {
            threshold,
            kept,
            dropped,
        }
    }

    pub fn keeps(&self, run: &str) -> bool {
        self.kept.iter().any(|r| r == run)
    }

    /// The line a figure prints under its title.
    pub fn caption(&self) -> String {
        format!(
            "runs where corrupting changes the answer (mean p_orig − p_corr > {}): {} of {}",
            self.threshold,
            self.kept.len(),
            self.kept.len() + self.dropped.len()
        )
    }
}

/// Which side of a plotted range a value fell off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clip {
    Inside,
    Below,
    Above,
}

/// `v` within `[lo, hi]`, and whether it had to be moved there.
pub fn clip(v: f64, lo: f64, hi: f64) -> (f64, Clip) {
    if v < lo {
        (lo, Clip::Below)
    } else if v > hi {
        (hi, Clip::Above)
    } else {
        (v, Clip::Inside)
    }
}

/// The Attrib range the scatter plots draw; values outside it become arrows at the edge.
pub const SCATTER_RANGE: (f64, f64) = (-0.5, 1.5);
/// The heatmaps' colour range (diverging around 0); the cell text keeps the exact value.
pub const HEATMAP_RANGE: (f64, f64) = (-1.0, 1.0);

/// One run in an Attrib scatter plot: Attrib at two patch roles of the last layer.
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterPoint {
    pub run: String,
    pub mixer: String,
    pub x: f64,
    pub y: f64,
}

impl ScatterPoint {
    /// Where the point is drawn, and which coordinates were clipped to [`SCATTER_RANGE`].
    pub fn placed(&self) -> ((f64, Clip), (f64, Clip)) {
        let (lo, hi) = SCATTER_RANGE;
        (clip(self.x, lo, hi), clip(self.y, lo, hi))
    }
}

/// Attrib at `(x_role, y_role)` in the last layer, one point per kept run.
pub fn scatter(
    cells: &[Cell],
    runs: &HashMap<String, RunInfo>,
    filter: &Filter,
    x_role: &str,
    y_role: &str,
) -> Vec<ScatterPoint> {
    let top = cells.iter().map(|c| c.layer).max().unwrap_or(0);
    let mut points: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for c in cells
        .iter()
        .filter(|c| c.layer == top && filter.keeps(&c.run))
    {
        let e = points.entry(&c.run).or_insert((f64::NAN, f64::NAN));
        if c.role == x_role {
            e.0 = c.attrib();
        }
        if c.role == y_role {
            e.1 = c.attrib();
        }
    }
    points
        .into_iter()
        .filter(|(_, (x, y))| x.is_finite() && y.is_finite())
        .map(|(run, (x, y))| ScatterPoint {
            run: run.to_string(),
            mixer: runs.get(run).map_or(String::new(), |r| r.mixer.clone()),
            x,
            y,
        })
        .collect()
}

/// Attrib per layer for one patch role, over the kept runs: mixer → layer → values.
pub fn layer_attribs(
    cells: &[Cell],
    runs: &HashMap<String, RunInfo>,
    filter: &Filter,
    role: &str,
) -> BTreeMap<String, BTreeMap<i64, Vec<f64>>> {
    let mut out: BTreeMap<String, BTreeMap<i64, Vec<f64>>> = BTreeMap::new();
    for c in cells
        .iter()
        .filter(|c| c.role == role && filter.keeps(&c.run))
    {
        let a = c.attrib();
        if a.is_finite() {
            let mixer = runs.get(&c.run).map_or(String::new(), |r| r.mixer.clone());
            out.entry(mixer)
                .or_default()
                .entry(c.layer)
                .or_default()
                .push(a);
        }
    }
    out
}

/// One heatmap panel: a mixer's best run (by final test accuracy, as the reference's Attrib
/// tables take the best learning rate's run), layer × patch role.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub mixer: String,
    pub run: String,
    /// The run's name (`runs.parquet`), for the panel's caption.
    pub name: String,
    /// `Some(reason)` when the run's corruption does not matter: drawn grey, with the reason.
    pub greyed: Option<String>,
    /// (layer, patch role, Attrib).
    pub cells: Vec<(i64, String, f64)>,
}

pub fn heatmap_panels(
    cells: &[Cell],
    runs: &HashMap<String, RunInfo>,
    finals: &HashMap<String, f64>,
    gaps: &BTreeMap<String, f64>,
    threshold: f64,
) -> Vec<Panel> {
    // The best run of each mixer among those with interventions.
    let mut best: BTreeMap<String, (String, f64)> = BTreeMap::new();
    for run in gaps.keys() {
        let Some(info) = runs.get(run) else { continue };
        let acc = finals.get(run).copied().unwrap_or(f64::NEG_INFINITY);
        let e = best.entry(info.mixer.clone()).or_insert((run.clone(), acc));
        if acc > e.1 {
            *e = (run.clone(), acc);
        }
    }
    best.into_iter()
        .map(|(mixer, (run, _))| {
            let gap = gaps[&run];
            let greyed = (gap <= threshold).then(|| {
                format!("corrupting changes nothing: mean p_orig − p_corr = {gap:.3} ≤ {threshold}")
            });
            let cells = cells
                .iter()
                .filter(|c| c.run == run)
                .map(|c| (c.layer, c.role.clone(), c.attrib()))
                .collect();
            Panel {
                mixer,
                name: runs.get(&run).map_or(run.clone(), |r| r.name.clone()),
                run,
                greyed,
                cells,
            }
        })
        .collect()
}

/// Final test accuracy by width, best learning rate per (mixer, width): mixer → (d_model, acc).
pub fn accuracy_by_width(
    runs: &HashMap<String, RunInfo>,
    finals: &HashMap<String, f64>,
) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut best: BTreeMap<(String, i64), f64> = BTreeMap::new();
    for (id, acc) in finals {
        let Some(run) = runs.get(id) else { continue };
        let Some(d) = run.d_model else { continue };
        let e = best.entry((run.mixer.clone(), d)).or_insert(*acc);
        *e = e.max(*acc);
    }
    let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for ((mixer, d), acc) in best {
        out.entry(mixer).or_default().push((d, acc));
    }
    out
}

/// Final test accuracy over learning rates, per width: d_model → mixer → (lr, acc), the best
/// over seeds at each learning rate.
pub fn accuracy_by_lr(
    runs: &HashMap<String, RunInfo>,
    finals: &HashMap<String, f64>,
) -> BTreeMap<i64, BTreeMap<String, Vec<(f64, f64)>>> {
    let mut cells: BTreeMap<(i64, String, u64), (f64, f64)> = BTreeMap::new();
    for (id, acc) in finals {
        let Some(run) = runs.get(id) else { continue };
        let (Some(d), Some(lr)) = (run.d_model, run.lr) else {
            continue;
        };
        let e = cells
            .entry((d, run.mixer.clone(), lr.to_bits()))
            .or_insert((lr, *acc));
        e.1 = e.1.max(*acc);
    }
    let mut out: BTreeMap<i64, BTreeMap<String, Vec<(f64, f64)>>> = BTreeMap::new();
    for ((d, mixer, _), point) in cells {
        out.entry(d)
            .or_default()
            .entry(mixer)
            .or_default()
            .push(point);
    }
    for per_mixer in out.values_mut() {
        for points in per_mixer.values_mut() {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, mixer: &str, d: i64, lr: f64) -> (String, RunInfo) {
        (
            id.to_string(),
            RunInfo {
                id: id.into(),
                name: id.into(),
                mixer: mixer.into(),
                d_model: Some(d),
                lr: Some(lr),
                task: "ar".into(),
                steps: Some(100),
                step: Some(100),
            },
        )
    }

    fn cell(run: &str, layer: i64, role: &str, p: [f64; 3]) -> Cell {
        Cell {
            run: run.into(),
            layer,
            role: role.into(),
            n: 320.0,
            p_orig: p[0],
            p_corr: p[1],
            p_rest: p[2],
        }
    }

    /// `a` learned (corruption moves p from 0.9 to 0.1), `b` sits on the plateau (0.25 either
    /// way, so its Attrib is noise: 22.4 at `value`).
    fn grid() -> (HashMap<String, RunInfo>, Vec<Cell>) {
        let runs = [run("a", "based", 64, 1e-3), run("b", "attention", 64, 1e-3)]
            .into_iter()
            .collect();
        let cells = vec![
            cell("a", 0, "value", [0.9, 0.1, 0.1]),
            cell("a", 1, "value", [0.9, 0.1, 0.9]),
            cell("a", 1, "query", [0.9, 0.1, 0.1]),
            cell("b", 0, "value", [0.2501, 0.25, 0.2501]),
            cell("b", 1, "value", [0.2501, 0.25, 0.25224]),
            cell("b", 1, "query", [0.2501, 0.25, 0.24786]),
        ];
        (runs, cells)
    }

    #[test]
    fn runs_whose_corruption_changes_nothing_are_dropped_with_their_gap() {
        let (_, cells) = grid();
        let gaps = corruption_gaps(&cells);
        let f = Filter::new(&gaps, default_threshold("ar"));
        assert_eq!(f.kept, ["a"]);
        assert_eq!(f.dropped.len(), 1);
        assert_eq!(f.dropped[0].0, "b");
        assert!((f.dropped[0].1 - 1e-4).abs() < 1e-9);
        assert!(f.caption().contains("> 0.01): 1 of 2"), "{}", f.caption());
        // ATR's threshold is higher: a gap of 0.05 passes AR's and fails ATR's.
        let g: BTreeMap<String, f64> = [("c".to_string(), 0.05)].into_iter().collect();
        assert_eq!(Filter::new(&g, default_threshold("ar")).kept.len(), 1);
        assert_eq!(Filter::new(&g, default_threshold("atr")).kept.len(), 0);
    }

    #[test]
    fn scatter_keeps_learned_runs_and_marks_what_it_clips() {
        let (runs, cells) = grid();
        let f = Filter::new(&corruption_gaps(&cells), 0.01);
        let points = scatter(&cells, &runs, &f, "value", "query");
        assert_eq!(points.len(), 1, "the plateau run is not drawn");
        assert_eq!((points[0].x, points[0].y), (1.0, 0.0));
        assert_eq!(
            points[0].placed(),
            ((1.0, Clip::Inside), (0.0, Clip::Inside))
        );
        // Unfiltered, the plateau run's Attrib lands far outside and is marked, not hidden.
        let all = Filter::new(&corruption_gaps(&cells), f64::NEG_INFINITY);
        let b = scatter(&cells, &runs, &all, "value", "query")
            .into_iter()
            .find(|p| p.run == "b")
            .unwrap();
        assert!((b.x - 22.4).abs() < 1e-6, "{}", b.x);
        assert_eq!(b.placed().0, (1.5, Clip::Above));
        assert_eq!(b.placed().1, (-0.5, Clip::Below));
    }

    #[test]
    fn heatmap_panels_grey_out_runs_whose_corruption_does_not_matter() {
        let (runs, cells) = grid();
        let gaps = corruption_gaps(&cells);
        let finals: HashMap<String, f64> = [("a".into(), 0.97), ("b".into(), 0.27)].into();
        let panels = heatmap_panels(&cells, &runs, &finals, &gaps, 0.01);
        let by: HashMap<&str, &Panel> = panels.iter().map(|p| (p.mixer.as_str(), p)).collect();
        assert_eq!(by["based"].greyed, None);
        let reason = by["attention"].greyed.as_deref().unwrap();
        assert!(reason.contains("0.000 ≤ 0.01"), "{reason}");
        assert_eq!(by["based"].cells.len(), 3);
    }

    #[test]
    fn layer_boxes_hold_kept_runs_only() {
        let (runs, cells) = grid();
        let f = Filter::new(&corruption_gaps(&cells), 0.01);
        let boxes = layer_attribs(&cells, &runs, &f, "value");
        assert_eq!(boxes.keys().collect::<Vec<_>>(), ["based"]);
        assert_eq!(boxes["based"][&0], [0.0]);
        assert_eq!(boxes["based"][&1], [1.0]);
    }

    #[test]
    fn accuracy_takes_the_best_learning_rate_per_width() {
        let runs: HashMap<String, RunInfo> = [
            run("a", "based", 64, 1e-3),
            run("b", "based", 64, 3e-3),
            run("c", "based", 32, 1e-3),
        ]
        .into_iter()
        .collect();
        let finals: HashMap<String, f64> =
            [("a".into(), 0.5), ("b".into(), 0.9), ("c".into(), 0.2)].into();
        assert_eq!(
            accuracy_by_width(&runs, &finals)["based"],
            [(32, 0.2), (64, 0.9)]
        );
        let by_lr = accuracy_by_lr(&runs, &finals);
        assert_eq!(by_lr[&64]["based"], [(1e-3, 0.5), (3e-3, 0.9)]);
        assert_eq!(by_lr[&32]["based"], [(1e-3, 0.2)]);
    }
}
