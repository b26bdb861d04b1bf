//! The live progress line: elapsed time, requests per second, p95 and failures, redrawn a
//! few times a second on a terminal. Not drawn at all when stderr is not a terminal.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use crate::stats::Live;

/// A running progress line; `finish` clears it.
pub(crate) struct Progress {
    bar: ProgressBar,
    task: JoinHandle<()>,
}

impl Progress {
    /// Starts the line when `wanted` and stderr is a terminal.
    pub(crate) fn start(wanted: bool, live: Arc<Live>) -> Option<Progress> {
        if !wanted || !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let line = bar.clone();
        let task = tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let now = Instant::now();
                let requests = live.requests.load(Ordering::Relaxed);
                let rate = (requests - last.1.min(requests)) as f64
                    / (now - last.0).as_secs_f64().max(1e-3);
                last = (now, requests);
                line.set_message(format!(
                    "{requests} requests  {rate:.0} req/s  p95 {:.1} ms  {} failed",
                    live.p95_us.load(Ordering::Relaxed) as f64 / 1000.0,
                    live.failures.load(Ordering::Relaxed)
                ));
                line.tick();
            }
        });
        Some(Progress { bar, task })
    }

    pub(crate) fn finish(self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}
