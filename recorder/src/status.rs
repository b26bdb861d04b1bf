//! What the recorder tells the user while it runs: notices (one line each, on stderr) and, on
//! a terminal only, a live status line with the exchanges recorded, bytes and errors.
//!
//! Notices clear the status line before printing so the two never interleave; a notice that
//! would repeat for every connection (a client that does not trust the CA) is shown once per
//! host.

use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::journal::Stats;

/// Prints notices; shared by every task.
#[derive(Clone)]
pub(crate) struct Notices {
    inner: Arc<NoticesInner>,
}

struct NoticesInner {
    live: AtomicBool,
    quiet: bool,
    seen: Mutex<HashSet<String>>,
}

/// Notices past this many distinct keys are no longer deduplicated (bounded memory).
const SEEN_LIMIT: usize = 10_000;

impl Notices {
    pub(crate) fn new(live_line: bool, quiet: bool) -> Notices {
        Notices {
            inner: Arc::new(NoticesInner {
                live: AtomicBool::new(live_line),
                quiet,
                seen: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// Prints `message` on its own line.
    pub(crate) fn say(&self, message: &str) {
        if self.inner.quiet {
            return;
        }
        let clear = if self.inner.live.load(Ordering::Relaxed) {
            "\r\x1b[K"
        } else {
            ""
        };
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{clear}ld record: {message}");
    }

    /// Prints `message` unless a notice with the same `key` was printed before.
    pub(crate) fn say_once(&self, key: &str, message: &str) {
        let first = match self.inner.seen.lock() {
            Ok(mut seen) if seen.len() < SEEN_LIMIT => seen.insert(key.to_string()),
            _ => true,
        };
        if first {
            self.say(message);
        }
    }

    /// Redraws the status line (terminal only).
    pub(crate) fn status(&self, stats: &Stats) {
        if self.inner.quiet || !self.inner.live.load(Ordering::Relaxed) {
            return;
        }
        let line = status_line(stats);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{line}");
        let _ = err.flush();
    }

    /// Clears the status line for good.
    pub(crate) fn end_status(&self) {
        if self.inner.live.swap(false, Ordering::Relaxed) && !self.inner.quiet {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

fn status_line(stats: &Stats) -> String {
    let recorded = stats.recorded.load(Ordering::Relaxed);
    let bytes = stats.bytes.load(Ordering::Relaxed);
    let errors = stats.errors.load(Ordering::Relaxed);
    format!(
        "recording: {recorded} exchange{} · {} · {errors} error{} · Ctrl-C to stop",
        if recorded == 1 { "" } else { "s" },
        human_bytes(bytes),
        if errors == 1 { "" } else { "s" }
    )
}

/// `1536` → `1.5 KiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_the_status_line_read_well() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(10 * 1024 * 1024), "10.0 MiB");
        let stats = Stats::default();
        stats.recorded.store(1, Ordering::Relaxed);
        assert_eq!(
            status_line(&stats),
            "recording: 1 exchange · 0 B · 0 errors · Ctrl-C to stop"
        );
    }
}
