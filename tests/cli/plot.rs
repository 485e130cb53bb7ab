//! `plot`: every figure kind.

use crate::common::{Dir, INTERCHANGE_BLOCK, TINY};
use crate::stdout;

#[test]
fn plot_draws_every_figure_kind_as_png_and_svg() {
    let dir = Dir::new();
    let text = TINY.to_string() + INTERCHANGE_BLOCK;
    let spec = dir.write("tiny.toml", &text);
    dir.ok(&["run", "-q"], &spec);
    let out = stdout(&dir.ok(&["plot"], &spec));
    let figures = dir.results().join("tiny/figures");
    for kind in mechlab::report::plot::Kind::ALL.map(|k| k.name()) {
        let png = std::fs::read(figures.join(format!("{kind}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{kind}");
        let svg = std::fs::read_to_string(figures.join(format!("{kind}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{kind}");
        assert!(out.contains(&format!("{kind}.svg")), "{out}");
    }
    // Axis labels a reader needs without the spec.
    let curves = std::fs::read_to_string(figures.join("curves.svg")).unwrap();
    assert!(curves.contains("training step") && curves.contains("test accuracy (%)"));
    let attrib = std::fs::read_to_string(figures.join("attrib.svg")).unwrap();
    assert!(attrib.contains("layer 1") && attrib.contains("value"));
    // The Attrib figures say what they filtered, with the AR default threshold.
    let scatter = std::fs::read_to_string(figures.join("scatter.svg")).unwrap();
    assert!(
        scatter.contains("mean p_orig − p_corr &gt; 0.01")
            || scatter.contains("mean p_orig − p_corr > 0.01"),
        "{scatter}"
    );
    // A threshold no run passes leaves every heatmap panel grey, with the reason.
    dir.ok(&["plot", "--kind", "attrib", "--threshold", "2"], &spec);
    let attrib = std::fs::read_to_string(figures.join("attrib.svg")).unwrap();
    assert!(attrib.contains("corrupting changes nothing"), "{attrib}");
    let err = dir.fails(&["plot", "--kind", "attrib", "--threshold", "nan"], &spec);
    assert!(err.contains("--threshold"), "{err}");
}

/// Runs stopped short of their schedule (`run --until-step`) are drawn as far as they are, and
/// say so in the legend; finished runs are drawn as before.
#[test]
fn curves_show_runs_that_are_not_done_yet() {
    let dir = Dir::new();
    let spec = dir.write("tiny.toml", TINY);
    dir.ok(&["run", "-q", "--until-step", "20"], &spec);
    dir.ok(&["plot", "--kind", "curves", "--format", "svg"], &spec);
    let figures = dir.results().join("tiny/figures");
    let curves = std::fs::read_to_string(figures.join("curves.svg")).unwrap();
    assert_eq!(curves.matches("(to step 20)").count(), 2, "{curves}");
    dir.ok(&["run", "-q"], &spec);
    dir.ok(&["plot", "--kind", "curves", "--format", "svg"], &spec);
    let curves = std::fs::read_to_string(figures.join("curves.svg")).unwrap();
    assert!(!curves.contains("(to step"), "{curves}");
    assert!(curves.contains("lr1e-3"), "{curves}");
}
