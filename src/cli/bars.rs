//! Progress bars on a terminal, from the library's progress calls.

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use initramfs_stream::{Pass, Progress};

/// Bars on stderr: one spinner while resolving, one bar per layer being
/// read, one counter for the output.
pub struct Bars {
    multi: MultiProgress,
    resolving: Mutex<Option<ProgressBar>>,
    layers: Mutex<HashMap<(Pass, usize), ProgressBar>>,
    output: Mutex<Option<ProgressBar>>,
}

impl Bars {
    pub fn new() -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            resolving: Mutex::new(None),
            layers: Mutex::new(HashMap::new()),
            output: Mutex::new(None),
        }
    }

    /// Removes every bar, so the summary line stands alone.
    pub fn clear(&self) {
        let take = |m: &Mutex<Option<ProgressBar>>| m.lock().ok().and_then(|mut b| b.take());
        for bar in [take(&self.resolving), take(&self.output)]
            .into_iter()
            .flatten()
        {
            bar.finish_and_clear();
        }
        if let Ok(mut layers) = self.layers.lock() {
            for (_, bar) in layers.drain() {
                bar.finish_and_clear();
            }
        }
        let _ = self.multi.clear();
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Progress for Bars {
    fn resolving(&self, image: &str) {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(style("{spinner} resolving {msg}"));
        bar.set_message(image.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        if let Ok(mut slot) = self.resolving.lock() {
            *slot = Some(bar);
        }
    }

    fn resolved(&self, _layers: usize) {
        if let Some(bar) = self.resolving.lock().ok().and_then(|mut b| b.take()) {
            bar.finish_and_clear();
        }
    }

    fn layer_started(&self, pass: Pass, layer: usize, size: Option<u64>) {
        let what = match pass {
            Pass::Headers => "headers ",
            Pass::Contents => "contents",
        };
        let bar = match size {
            Some(n) => {
                let bar = ProgressBar::new(n);
                bar.set_style(style(
                    "layer {prefix} {msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
                ));
                bar
            }
            None => {
                let bar = ProgressBar::new_spinner();
                bar.set_style(style(
                    "layer {prefix} {msg} {spinner} {binary_bytes} {binary_bytes_per_sec}",
                ));
                bar
            }
        };
        bar.set_prefix(layer.to_string());
        bar.set_message(what);
        let bar = self.multi.add(bar);
        if let Ok(mut layers) = self.layers.lock() {
            layers.insert((pass, layer), bar);
        }
    }

    fn layer_read(&self, pass: Pass, layer: usize, bytes: u64) {
        if let Ok(layers) = self.layers.lock() {
            if let Some(bar) = layers.get(&(pass, layer)) {
                bar.inc(bytes);
            }
        }
    }

    fn layer_finished(&self, pass: Pass, layer: usize) {
        let bar = self
            .layers
            .lock()
            .ok()
            .and_then(|mut l| l.remove(&(pass, layer)));
        if let Some(bar) = bar {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    fn writing(&self, archive_bytes: u64) {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(style("{spinner} writing {binary_bytes} {msg}"));
        bar.set_message(format!(
            "(archive {})",
            initramfs_stream::human_bytes(archive_bytes)
        ));
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        if let Ok(mut slot) = self.output.lock() {
            *slot = Some(bar);
        }
    }

    fn output_written(&self, bytes: u64) {
        if let Ok(slot) = self.output.lock() {
            if let Some(bar) = slot.as_ref() {
                bar.inc(bytes);
            }
        }
    }
}
