//! What `ld replay` shows on the terminal while it runs, as the engine's sinks: the live
//! progress line (stderr, only on a terminal) and the run's messages (data on stdout,
//! warnings and notes on stderr unless `-q`, errors always).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ld_replay::{Message, MessageKind, Name, Sample, Sink, Snapshot};

/// The sinks of a replay: the terminal's messages, and the progress line unless `quiet`.
pub(crate) fn sinks(quiet: bool) -> Vec<Box<dyn Sink>> {
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(Messages { quiet })];
    if !quiet && std::io::stderr().is_terminal() {
        sinks.push(Box::new(Progress { bar: None }));
    }
    sinks
}

/// Prints the run's messages.
struct Messages {
    quiet: bool,
}

impl Sink for Messages {
    fn name(&self) -> &str {
        "terminal"
    }

    fn batch(&mut self, _: &[Sample]) -> Result<(), String> {
        Ok(())
    }

    fn message(&mut self, message: &Message) -> Result<(), String> {
        match message.kind {
            MessageKind::Data => {
                let text = &message.text;
                if text.ends_with('\n') {
                    print!("{text}");
                } else {
                    println!("{text}");
                }
            }
            MessageKind::Error => eprintln!("ld: error: {}", message.text),
            MessageKind::Warning if !self.quiet => eprintln!("ld: warning: {}", message.text),
            MessageKind::Note if !self.quiet => eprintln!("ld: note: {}", message.text),
            _ => {}
        }
        Ok(())
    }
}

/// The live line: elapsed time, requests, requests per second, p95 and failures, redrawn
/// on each snapshot (once a second) while a test runs, cleared when it ends.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Sink for Progress {
    fn name(&self) -> &str {
        "progress"
    }

    fn start(&mut self, _: &[Name]) -> Result<(), String> {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(250));
        self.bar = Some(bar);
        Ok(())
    }

    fn batch(&mut self, _: &[Sample]) -> Result<(), String> {
        Ok(())
    }

    fn snapshot(&mut self, s: &Snapshot) -> Result<(), String> {
        if let Some(bar) = &self.bar {
            let left = s.time_left.map_or(String::new(), |d| {
                let secs = d.as_secs();
                format!("  {}:{:02} left", secs / 60, secs % 60)
            });
            bar.set_message(format!(
                "{} users  {} requests  {:.0} req/s  p95 {:.1} ms  {} failed{left}",
                s.active_users, s.requests, s.requests_per_s, s.p95_ms, s.failures
            ));
        }
        Ok(())
    }

    fn end_test(&mut self) -> Result<(), String> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        Ok(())
    }
}
