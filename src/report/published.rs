//! The reference study's published accuracy tables (arXiv 2505.15105; `reference/paper-setup.md`
//! §5): 2 layers, best learning rate per cell, %, by mixer × d_model (16, 32, 64, 128, 256).

/// Widths of the published tables' columns.
pub const WIDTHS: [u32; 5] = [16, 32, 64, 128, 256];

/// AR-32 (attention with learned positions, the others NoPE; lrs 3e-5 … 3e-2).
const AR_32: [(&str, [f64; 5]); 6] = [
    ("attention", [6.56, 100.00, 100.00, 100.00, 100.00]),
    ("based", [24.38, 93.12, 99.06, 98.75, 99.06]),
    ("mamba", [10.00, 76.88, 80.62, 89.69, 91.25]),
    ("hyena", [0.62, 0.94, 2.81, 13.75, 29.69]),
    ("base_conv", [0.00, 0.94, 3.75, 6.56, 9.69]),
    ("h3", [0.94, 0.62, 1.88, 2.50, 1.56]),
];

/// ATR, L5 Σ20.
const PCFG_EASY: [(&str, [f64; 5]); 6] = [
    ("attention", [68.44, 90.31, 93.75, 95.31, 96.25]),
    ("base_conv", [67.50, 75.62, 82.50, 86.88, 90.00]),
    ("based", [82.19, 91.25, 91.88, 93.12, 92.19]),
    ("h3", [81.88, 87.81, 90.00, 94.06, 94.06]),
    ("hyena", [75.94, 80.94, 85.31, 92.50, 93.75]),
    ("mamba", [91.25, 94.38, 96.25, 96.88, 96.25]),
];

/// Names of the published tables.
pub const NAMES: [&str; 2] = ["ar_32", "pcfg_easy"];

/// The published accuracy (%) of `mixer` at width `d_model` in table `name`.
pub fn published(name: &str, mixer: &str, d_model: &str) -> Option<f64> {
    let table: &[(&str, [f64; 5])] = match name {
        "ar_32" => &AR_32,
        "pcfg_easy" => &PCFG_EASY,
        _ => return None,
    };
    let col = WIDTHS.iter().position(|w| w.to_string() == d_model)?;
    table
        .iter()
        .find(|(m, _)| *m == mixer)
        .map(|(_, values)| values[col])
}
