//! `ld replay`'s segment options: which share of the plan this process runs, when it starts,
//! and where its mergeable results go.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use ld_replay::{CancellationToken, Segment};

use crate::exit;
use crate::wire::{self, Endpoint};

/// The environment variable an Indexed Job sets in each pod: the pod's index from 0.
pub(crate) const INDEX_VAR: &str = "JOB_COMPLETION_INDEX";

/// How long a segment waits at the collector for the others, at most.
const START_WAIT: Duration = Duration::from_secs(3600);
/// How long a segment keeps trying to reach a collector that does not answer yet.
const REGISTER_RETRY: Duration = Duration::from_secs(120);
/// The furthest `--start-at` may be.
const MAX_START_AHEAD: Duration = Duration::from_secs(24 * 3600);

/// Options of `ld replay` for a plan split over several processes or machines.
#[derive(Debug, Clone, Args)]
pub(crate) struct SegmentArgs {
    /// Run segment INDEX of COUNT (INDEX from 0): the plan's users, arrivals and CSV rows
    /// numbered in one sequence, this process takes every COUNT-th from INDEX, so COUNT
    /// segments together run exactly the plan, e.g. 0/4
    #[arg(long, value_name = "INDEX/COUNT", value_parser = Segment::parse, help_heading = "Segments", conflicts_with = "segments")]
    pub(crate) segment: Option<Segment>,

    /// Run one of COUNT segments, the index read from JOB_COMPLETION_INDEX (what a
    /// Kubernetes Indexed Job sets in each pod)
    #[arg(long, value_name = "COUNT", help_heading = "Segments")]
    pub(crate) segments: Option<u64>,

    /// Write what the run measured, in the form `ld merge` adds up (per-name HDR
    /// histograms, counts, statuses, failure groups), to FILE
    #[arg(long, value_name = "FILE", help_heading = "Segments")]
    pub(crate) results: Option<PathBuf>,

    /// Wait at this `ld collect` until every segment has registered (trying for 2 minutes
    /// while it does not answer yet), start together, report live every 3 seconds, and send
    /// the results there at the end, e.g. http://127.0.0.1:9650
    #[arg(long, value_name = "URL", value_parser = Endpoint::parse, help_heading = "Segments")]
    pub(crate) collector: Option<Endpoint>,

    /// Start at this time (RFC 3339, e.g. 2026-12-06T15:00:00Z, or Unix seconds), at most a
    /// day ahead
    #[arg(long, value_name = "TIME", value_parser = parse_start_at, help_heading = "Segments")]
    pub(crate) start_at: Option<SystemTime>,
}

fn parse_start_at(text: &str) -> Result<SystemTime, String> {
    let t = text.trim();
    let at = if let Ok(secs) = t.parse::<f64>() {
        if !(secs.is_finite() && secs >= 0.0) {
            return Err(format!("invalid start time `{text}`"));
        }
        UNIX_EPOCH + Duration::from_secs_f64(secs.min(1e11))
    } else {
        humantime::parse_rfc3339_weak(t).map_err(|e| {
            format!("invalid start time `{text}`: {e} (expected e.g. 2026-12-06T15:00:00Z)")
        })?
    };
    if at
        .duration_since(SystemTime::now())
        .is_ok_and(|ahead| ahead > MAX_START_AHEAD)
    {
        return Err(format!(
            "invalid start time `{text}`: more than a day ahead"
        ));
    }
    Ok(at)
}

impl SegmentArgs {
    /// The share of the plan to run: `--segment`, or `--segments` with the index from the
    /// environment.
    pub(crate) fn segment(&self) -> anyhow::Result<Segment> {
        if let Some(s) = self.segment {
            return Ok(s);
        }
        let Some(count) = self.segments else {
            return Ok(Segment::WHOLE);
        };
        let index = std::env::var(INDEX_VAR).map_err(|_| {
            exit::input_error(format!(
                "--segments {count}: {INDEX_VAR} is not set (an Indexed Job sets it; elsewhere pass --segment INDEX/{count})"
            ))
        })?;
        let index: u64 = index.trim().parse().map_err(|_| {
            exit::input_error(format!(
                "--segments {count}: {INDEX_VAR}={index} is not a whole number"
            ))
        })?;
        Segment::new(index, count).map_err(|e| {
            exit::input_error(format!("--segments {count} with {INDEX_VAR}={index}: {e}"))
        })
    }

    /// Whether the run's mergeable results are wanted.
    pub(crate) fn wants_results(&self) -> bool {
        self.results.is_some() || self.collector.is_some()
    }

    /// Waits for `--start-at`, then for the collector's release; `stop` (Ctrl-C) ends the
    /// wait. Returns false when stopped.
    pub(crate) fn wait_for_start(
        &self,
        segment: Segment,
        stop: &CancellationToken,
        quiet: bool,
    ) -> anyhow::Result<bool> {
        if let Some(at) = self.start_at {
            if !quiet {
                eprintln!(
                    "waiting for the start time ({})",
                    humantime::format_rfc3339_seconds(at)
                );
            }
            if !sleep_until(at, stop) {
                return Ok(false);
            }
        }
        let Some(collector) = &self.collector else {
            return Ok(true);
        };
        if !quiet {
            eprintln!(
                "segment {segment}: waiting at the collector {} for the other segments",
                collector.authority
            );
        }
        let path = format!("/start?segment={}/{}", segment.index, segment.count);
        // The collector may come up after the segments (pods start in any order).
        let give_up = std::time::Instant::now() + REGISTER_RETRY;
        let answer = loop {
            match wire::request(collector, "GET", &path, b"", START_WAIT) {
                Ok(a) => break a,
                Err(_) if std::time::Instant::now() < give_up && !stop.is_cancelled() => {
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => {
                    return Err(anyhow::anyhow!(
                        "cannot register at the collector {} (tried for {}): {e}",
                        collector.authority,
                        humantime::format_duration(REGISTER_RETRY)
                    ));
                }
            }
        };
        if answer.status != 200 {
            return Err(exit::input_error(format!(
                "the collector {} refused segment {segment}: {}",
                collector.authority,
                String::from_utf8_lossy(&answer.body).trim()
            )));
        }
        let start_ms = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|v| v.get("start_at_ms").and_then(serde_json::Value::as_u64))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the collector {} answered no start time",
                    collector.authority
                )
            })?;
        Ok(sleep_until(
            UNIX_EPOCH + Duration::from_millis(start_ms),
            stop,
        ))
    }

    /// Writes `--results` (to a temporary file, then renamed) and sends them to the
    /// collector. A failure is returned after both were tried.
    pub(crate) fn deliver(
        &self,
        results: &ld_store::RunResults,
        quiet: bool,
    ) -> anyhow::Result<()> {
        let text = serde_json::to_vec(results)?;
        let mut failed = Vec::new();
        if let Some(path) = &self.results {
            match ld_plan::fs::write_atomic(path, &text, true) {
                Ok(()) if !quiet => eprintln!("results: {}", path.display()),
                Ok(()) => {}
                Err(e) => failed.push(format!("cannot write {}: {e}", path.display())),
            }
        }
        if let Some(collector) = &self.collector {
            let path = match results.segment {
                Some(s) => format!("/results?segment={}/{}", s.index, s.count),
                None => "/results".to_string(),
            };
            let mut last = String::new();
            let mut sent = false;
            for attempt in 0..5u32 {
                if attempt > 0 {
                    std::thread::sleep(Duration::from_millis(250 << attempt));
                }
                match wire::request(collector, "POST", &path, &text, Duration::from_secs(60)) {
                    Ok(r) if r.status == 200 => {
                        sent = true;
                        break;
                    }
                    Ok(r) if (400..500).contains(&r.status) => {
                        last = format!("{}: {}", r.status, String::from_utf8_lossy(&r.body).trim());
                        break;
                    }
                    Ok(r) => last = format!("status {}", r.status),
                    Err(e) => last = e.to_string(),
                }
            }
            if sent {
                if !quiet {
                    eprintln!("results sent to the collector {}", collector.authority);
                }
            } else {
                failed.push(format!(
                    "cannot send the results to the collector {}: {last}",
                    collector.authority
                ));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(anyhow::anyhow!(failed.join("; ")))
        }
    }
}

/// Streams the run's live results to the collector (`POST /progress`) from a thread of its
/// own, and stops the run when the collector says so (a global SLA breached with
/// `ld collect --abort-on-fail`). A post that finds the previous one still going is skipped:
/// the next carries everything anyway.
pub(crate) struct LiveSink {
    segment: Segment,
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
}

/// Why the collector stopped this segment, once it has.
pub(crate) type StopReason = std::sync::Arc<std::sync::Mutex<Option<String>>>;

impl LiveSink {
    pub(crate) fn start(
        collector: Endpoint,
        segment: Segment,
        stop: CancellationToken,
        reason: StopReason,
    ) -> anyhow::Result<LiveSink> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
        let path = format!("/progress?segment={}/{}", segment.index, segment.count);
        std::thread::Builder::new()
            .name("ld-live".into())
            .spawn(move || {
                for body in rx {
                    let Ok(answer) =
                        wire::request(&collector, "POST", &path, &body, Duration::from_secs(10))
                    else {
                        continue;
                    };
                    let verdict: serde_json::Value =
                        serde_json::from_slice(&answer.body).unwrap_or_default();
                    if verdict["stop"].as_bool() == Some(true) && !stop.is_cancelled() {
                        let why = verdict["reason"].as_str().unwrap_or("stopped").to_string();
                        eprintln!("\nld: the collector stops the run: {why}");
                        if let Ok(mut r) = reason.lock() {
                            *r = Some(why);
                        }
                        stop.cancel();
                    }
                }
            })?;
        Ok(LiveSink { segment, tx })
    }
}

impl ld_replay::Sink for LiveSink {
    fn name(&self) -> &str {
        "collector"
    }

    fn wants_results(&self) -> bool {
        true
    }

    fn snapshot(&mut self, snapshot: &ld_replay::Snapshot) -> Result<(), String> {
        let Some(results) = &snapshot.results else {
            return Ok(());
        };
        let mut r = (**results).clone();
        r.active_users = Some(snapshot.active_users);
        r.segment = Some(ld_store::results::SegmentId {
            index: self.segment.index,
            count: self.segment.count,
        });
        if let Ok(body) = serde_json::to_vec(&r) {
            // Full: the previous post is still on its way.
            let _ = self.tx.try_send(body);
        }
        Ok(())
    }
}

/// Sleeps until `at` or until `stop`; false when stopped.
fn sleep_until(at: SystemTime, stop: &CancellationToken) -> bool {
    while let Ok(left) = at.duration_since(SystemTime::now()) {
        if stop.is_cancelled() {
            return false;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
    !stop.is_cancelled()
}
