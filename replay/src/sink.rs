//! The sink seam: everything that consumes a run's results while it runs or when it ends.
//!
//! The engine hands each sink the run's names when a test starts, every batch of samples
//! (already masked), a [`Snapshot`] once a second and the summary at the end, plus the
//! messages a run produces (warnings, notes, the data its commands print). The store is a
//! sink; the binary adds its progress line and terminal; exporters and a dashboard are sinks
//! too. The one aggregator (`stats`) is not a sink: the summary and the reports read it, so
//! their figures cannot disagree.
//!
//! A sink must not block: `batch` and `snapshot` run on the collector, which every user's
//! samples go through. A sink that has work to do flushes on a task or thread of its own,
//! as the store's writer thread does. A sink that fails is reported once in
//! [`crate::Outcome::sink_errors`] and left out from then on; it never stops the run.
//!
//! This module depends on `stats` (samples and summaries) and nothing above it.

use std::path::PathBuf;
use std::time::Duration;

use crate::stats::{Record, Summary};
use crate::task::NameInfo;

/// What a message is, for a sink that shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Output a command asked for (`LD_generate_summary_report` to the terminal, SLA
    /// verdicts, `LD_list_runs`): the binary prints it on stdout.
    Data,
    /// Something worth knowing: a field not acted on, where records were stored.
    Note,
    /// Something that may not be what was meant: a placeholder left as written.
    Warning,
    /// A command failed (an SLA gate, a database); the run goes on.
    Error,
}

/// One message of a run.
#[derive(Debug, Clone)]
pub struct Message {
    pub kind: MessageKind,
    pub text: String,
}

/// A test's request names, as the samples' `name_id` index them.
#[derive(Debug, Clone)]
pub struct Name {
    pub name: String,
    /// `get`, `post`, ... for HTTP; `ws send`, `sse wait`, `tcp`, `udp` for the others.
    pub method: String,
}

/// The run so far, once a second.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Since the test started.
    pub elapsed: Duration,
    pub requests: u64,
    pub failures: u64,
    /// Over the last snapshot's interval.
    pub requests_per_s: f64,
    /// Over the whole test so far.
    pub p95_ms: f64,
    /// Virtual users running now.
    pub active_users: u64,
    /// What remains of the test's planned duration; `None` when it ends on a count.
    pub time_left: Option<Duration>,
    /// Each name's figures since the run began, from the aggregator the summary reads.
    pub names: std::sync::Arc<Vec<crate::stats::NameFigures>>,
    /// Every few seconds, for the sinks that ask ([`Sink::wants_results`]): the test so far
    /// in the form that merges (`ld collect` merges the segments' live).
    pub results: Option<std::sync::Arc<ld_store::RunResults>>,
}

/// A consumer of results. Every method but [`Sink::name`] has a default that does nothing.
pub trait Sink: Send {
    /// Names the sink in error messages.
    fn name(&self) -> &str;

    /// A test starts with these names.
    fn start(&mut self, names: &[Name]) -> Result<(), String> {
        let _ = names;
        Ok(())
    }

    /// Samples, masked. Must not block.
    fn batch(&mut self, samples: &[Record]) -> Result<(), String> {
        let _ = samples;
        Ok(())
    }

    /// Whether the sink reads [`Snapshot::names`] (computing them costs a pass over every
    /// name's histogram each second).
    fn wants_figures(&self) -> bool {
        false
    }

    /// Whether the sink reads [`Snapshot::results`] (making them copies every name's
    /// histograms every few seconds).
    fn wants_results(&self) -> bool {
        false
    }

    /// Live figures, once a second while a test runs. Must not block.
    fn snapshot(&mut self, snapshot: &Snapshot) -> Result<(), String> {
        let _ = snapshot;
        Ok(())
    }

    /// A test ended.
    fn end_test(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// A message of the run.
    fn message(&mut self, message: &Message) -> Result<(), String> {
        let _ = message;
        Ok(())
    }

    /// Each name's final figures, just before [`Sink::finish`] (for sinks that read
    /// [`Snapshot::names`], so their last values are the summary's).
    fn final_figures(&mut self, figures: &[crate::stats::NameFigures]) -> Result<(), String> {
        let _ = figures;
        Ok(())
    }

    /// The run ended with this summary; returns the files the sink wrote.
    fn finish(&mut self, summary: &Summary) -> Result<Vec<PathBuf>, String> {
        let _ = summary;
        Ok(Vec::new())
    }
}

/// The run's sinks: each failure reported once, the failed sink left out from then on.
pub(crate) struct Sinks {
    sinks: Vec<(Box<dyn Sink>, bool)>,
    pub(crate) errors: Vec<String>,
}

impl Sinks {
    pub(crate) fn new(sinks: Vec<Box<dyn Sink>>) -> Self {
        Sinks {
            sinks: sinks.into_iter().map(|s| (s, true)).collect(),
            errors: Vec::new(),
        }
    }

    pub(crate) fn want_figures(&self) -> bool {
        self.sinks
            .iter()
            .any(|(s, alive)| *alive && s.wants_figures())
    }

    pub(crate) fn want_results(&self) -> bool {
        self.sinks
            .iter()
            .any(|(s, alive)| *alive && s.wants_results())
    }

    pub(crate) fn push(&mut self, sink: Box<dyn Sink>) {
        self.sinks.push((sink, true));
    }

    fn each(&mut self, what: &str, mut f: impl FnMut(&mut dyn Sink) -> Result<(), String>) {
        for (sink, alive) in &mut self.sinks {
            if !*alive {
                continue;
            }
            if let Err(e) = f(sink.as_mut()) {
                *alive = false;
                self.errors
                    .push(format!("the {} sink failed ({what}): {e}", sink.name()));
            }
        }
    }

    pub(crate) fn start(&mut self, names: &[NameInfo]) {
        let names: Vec<Name> = names
            .iter()
            .map(|n| Name {
                name: n.name.to_string(),
                method: n.method.to_string(),
            })
            .collect();
        self.each("start", |s| s.start(&names));
    }

    pub(crate) fn batch(&mut self, samples: &[Record]) {
        self.each("batch", |s| s.batch(samples));
    }

    pub(crate) fn snapshot(&mut self, snapshot: &Snapshot) {
        self.each("snapshot", |s| s.snapshot(snapshot));
    }

    pub(crate) fn end_test(&mut self) {
        self.each("end", |s| s.end_test());
    }

    pub(crate) fn message(&mut self, kind: MessageKind, text: impl Into<String>) {
        let message = Message {
            kind,
            text: text.into(),
        };
        self.each("message", |s| s.message(&message));
    }

    pub(crate) fn final_figures(&mut self, figures: &[crate::stats::NameFigures]) {
        self.each("final figures", |s| s.final_figures(figures));
    }

    pub(crate) fn finish(&mut self, summary: &Summary) -> Vec<PathBuf> {
        let mut files = Vec::new();
        self.each("finish", |s| {
            files.extend(s.finish(summary)?);
            Ok(())
        });
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing(u32);

    impl Sink for Failing {
        fn name(&self) -> &str {
            "failing"
        }

        fn batch(&mut self, _: &[Record]) -> Result<(), String> {
            self.0 += 1;
            Err("disk full".into())
        }
    }

    struct Counting(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl Sink for Counting {
        fn name(&self) -> &str {
            "counting"
        }

        fn batch(&mut self, samples: &[Record]) -> Result<(), String> {
            self.0
                .fetch_add(samples.len(), std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
    }

    #[test]
    fn a_failing_sink_is_reported_once_and_the_others_go_on() {
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut sinks = Sinks::new(vec![Box::new(Failing(0)), Box::new(Counting(seen.clone()))]);
        let sample = Record {
            name_id: 0,
            status: 200,
            latency_us: 1,
            bytes: 1,
            at_us: 0,
            url: "http://h/".into(),
            error: None,
            protocol: crate::protocol::ProtocolKind::Http,
            kind: crate::protocol::FailureKind::Check,
            check: 0,
        };
        for _ in 0..3 {
            sinks.batch(std::slice::from_ref(&sample));
        }
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 3);
        assert_eq!(sinks.errors.len(), 1, "{:?}", sinks.errors);
        assert!(sinks.errors[0].contains("failing") && sinks.errors[0].contains("disk full"));
    }
}
