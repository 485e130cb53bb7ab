//! Progress bars (indicatif): one for the sweep, one per running node. Hidden when stderr is
//! not a terminal.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

pub struct Progress {
    multi: MultiProgress,
    pub overall: ProgressBar,
}

impl Progress {
    pub fn new(total: usize, quiet: bool) -> Self {
        let multi = MultiProgress::new();
        if quiet {
            multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let overall = multi.add(ProgressBar::new(total as u64));
        overall.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} nodes {msg}")
                .expect("template")
                .progress_chars("=> "),
        );
        overall.set_prefix("sweep");
        Progress { multi, overall }
    }

    /// A bar for one node's training steps.
    pub fn node_bar(&self, name: &str, total: u64) -> ProgressBar {
        let bar = self
            .multi
            .insert_before(&self.overall, ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} steps {msg} ({eta})")
                .expect("template")
                .progress_chars("=> "),
        );
        bar.set_prefix(name.chars().take(40).collect::<String>());
        bar
    }

    /// Prints a line above the bars.
    pub fn println(&self, line: impl AsRef<str>) {
        if self.multi.is_hidden() {
            eprintln!("{}", line.as_ref());
        } else {
            let _ = self.multi.println(line.as_ref());
        }
    }
}
