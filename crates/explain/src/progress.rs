//! Terminal progress bars (hidden when output is not a terminal).

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("valid template")
        .progress_chars("=> ")
}

/// A bar of `total` steps named `what`; hidden for a single step.
pub fn bar(what: &str, total: usize) -> ProgressBar {
    if total <= 1 {
        return ProgressBar::hidden();
    }
    ProgressBar::new(total as u64)
        .with_style(style("{msg:>12} [{bar:30}] {pos}/{len} ({per_sec}, {eta})"))
        .with_message(what.to_string())
}

/// Shows the `data` crate's long work (decoding a folder) as a bar.
#[derive(Default)]
pub struct Bars(Mutex<Option<ProgressBar>>);

impl data::Progress for Bars {
    fn start(&self, what: &str, total: Option<u64>) {
        let bar = match total {
            Some(n) => bar(what, n as usize),
            None => ProgressBar::new_spinner().with_message(what.to_string()),
        };
        *self.0.lock().unwrap() = Some(bar);
    }

    fn advance(&self, done: u64) {
        if let Some(bar) = &*self.0.lock().unwrap() {
            bar.inc(done);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.0.lock().unwrap().take() {
            bar.finish_and_clear();
        }
    }
}
