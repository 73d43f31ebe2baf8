//! One spinner per cluster on a terminal, showing the step it is at (`cairn apply`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use cairn::apply::progress::Progress;

#[derive(Clone, Default)]
pub struct Spinners {
    multi: MultiProgress,
    bars: Arc<Mutex<BTreeMap<String, ProgressBar>>>,
}

impl Spinners {
    /// The progress callback that moves this set's spinners.
    pub fn progress(&self) -> Progress {
        let spinners = self.clone();
        Arc::new(move |cluster, step| {
            let mut bars = spinners.bars.lock().unwrap_or_else(|e| e.into_inner());
            let bar = bars
                .entry(cluster.to_string())
                .or_insert_with(|| spinners.spinner(cluster));
            bar.set_message(step.to_string());
        })
    }

    fn spinner(&self, cluster: &str) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(cluster.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    pub fn finish(self) {
        for bar in self.bars.lock().unwrap_or_else(|e| e.into_inner()).values() {
            bar.finish_and_clear();
        }
    }
}
