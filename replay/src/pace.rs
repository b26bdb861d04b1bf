//! Recorded pace (`--pace recorded`): each request starts at its recorded offset divided by
//! the speed, the recorded connections in parallel as they were.
//!
//! A plan imported from a recording gives each task `recorded: {at, session}`. The schedule
//! puts every task on one timeline in the order of `at` (a plan whose offsets go backwards is
//! repaired by that sort), scales the gaps by the speed, caps each gap at `max_wait`, and
//! groups the tasks into lanes by session: a lane sends its requests one after the other, the
//! lanes run at once. A task without `recorded` follows the task before it in the plan, on the
//! same lane, at once.

use std::time::Duration;

use crate::task::Task;

/// How a paced replay scales the recording.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// Recorded time divided by this: 2.0 replays twice as fast, 0.5 half as fast.
    pub speed: f64,
    /// The longest any one gap between two requests may last once scaled.
    pub max_wait: Option<Duration>,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            speed: 1.0,
            max_wait: None,
        }
    }
}

/// The slowest and fastest speeds `--speed` takes.
pub(crate) const SPEEDS: (f64, f64) = (0.001, 1000.0);

/// Parses `--speed`: `2x`, `2`, `0.5x`.
pub fn parse_speed(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let n = t.strip_suffix(['x', 'X']).unwrap_or(t);
    let speed: f64 = n
        .trim()
        .parse()
        .map_err(|_| format!("expected a speed such as 2x or 0.5x, found `{text}`"))?;
    if !(SPEEDS.0..=SPEEDS.1).contains(&speed) {
        return Err(format!(
            "a speed goes from {}x to {}x, found `{text}`",
            SPEEDS.0, SPEEDS.1
        ));
    }
    Ok(speed)
}

/// One test's paced timeline.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Schedule {
    /// Each lane's tasks (indices into the test's tasks) with their scaled start offsets,
    /// in the order they start.
    pub(crate) lanes: Vec<Vec<(usize, Duration)>>,
    /// The latest scaled start: how long one pass of the recording takes to send.
    pub(crate) total: Duration,
    /// The recorded span between the first and the last start.
    pub(crate) recorded: Duration,
    /// Gaps `max_wait` shortened.
    pub(crate) capped: usize,
    /// Tasks with a `recorded` offset.
    pub(crate) with_offsets: usize,
}

impl Schedule {
    /// The schedule of `tasks` at `pace`.
    pub(crate) fn new(tasks: &[Task], pace: &Pace) -> Schedule {
        // Each task's recorded offset and lane, those without one after the task before.
        let mut timeline: Vec<(Duration, u32, usize)> = Vec::with_capacity(tasks.len());
        let (mut at, mut lane) = (Duration::ZERO, 0u32);
        let mut with_offsets = 0;
        for (i, t) in tasks.iter().enumerate() {
            if let Some(r) = &t.recorded {
                at = r.at;
                lane = r.session.unwrap_or(0);
                with_offsets += 1;
            }
            timeline.push((at, lane, i));
        }
        // A stable sort: equal offsets keep their plan order.
        timeline.sort_by_key(|(at, _, _)| *at);
        let speed = pace.speed.clamp(SPEEDS.0, SPEEDS.1);
        let mut scheduled = Duration::ZERO;
        let mut previous = timeline.first().map_or(Duration::ZERO, |(at, _, _)| *at);
        let first = previous;
        let mut capped = 0;
        let mut lanes: Vec<(u32, Vec<(usize, Duration)>)> = Vec::new();
        for (at, lane, i) in timeline {
            let gap = at.saturating_sub(previous).div_f64(speed);
            previous = at;
            let gap = match pace.max_wait {
                Some(cap) if gap > cap => {
                    capped += 1;
                    cap
                }
                _ => gap,
            };
            scheduled += gap;
            match lanes.iter_mut().find(|(l, _)| *l == lane) {
                Some((_, tasks)) => tasks.push((i, scheduled)),
                None => lanes.push((lane, vec![(i, scheduled)])),
            }
        }
        Schedule {
            lanes: lanes.into_iter().map(|(_, tasks)| tasks).collect(),
            total: scheduled,
            recorded: previous.saturating_sub(first),
            capped,
            with_offsets,
        }
    }

    /// The tasks on the timeline.
    pub(crate) fn requests(&self) -> usize {
        self.lanes.iter().map(Vec::len).sum()
    }
}

/// How late paced requests started, against their scaled offsets.
#[derive(Debug)]
pub(crate) struct Lag {
    histogram: hdrhistogram::Histogram<u64>,
    /// Requests started.
    pub(crate) started: u64,
}

impl Default for Lag {
    fn default() -> Self {
        Lag {
            // Microseconds, up to an hour; three significant figures.
            histogram: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid bounds"),
            started: 0,
        }
    }
}

impl Lag {
    pub(crate) fn record(&mut self, late: Duration) {
        let us = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(us.max(1));
        self.started += 1;
    }

    /// `requests started, p50, p99, max` of the lag, in milliseconds.
    pub(crate) fn figures(&self) -> (u64, f64, f64, f64) {
        let ms = |us: u64| us as f64 / 1000.0;
        (
            self.started,
            ms(self.histogram.value_at_quantile(0.5)),
            ms(self.histogram.value_at_quantile(0.99)),
            ms(self.histogram.max()),
        )
    }
}

/// The note a paced test ends with.
pub(crate) fn report(schedule: &Schedule, pace: &Pace, lag: &Lag, took: Duration) -> String {
    let (started, p50, p99, max) = lag.figures();
    format!(
        "paced at {}x: {} of {} requests started, {:.3} s planned, {:.3} s taken; start lag \
         against the scaled offsets p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms",
        pace.speed,
        started,
        schedule.requests(),
        schedule.total.as_secs_f64(),
        took.as_secs_f64(),
    )
}

/// What `--dry-run` prints for one test.
pub(crate) fn describe(schedule: &Schedule, pace: &Pace) -> String {
    let mut text = format!(
        "{} requests in {} session{}: {:.3} s recorded, replayed at {}x in {:.3} s",
        schedule.requests(),
        schedule.lanes.len(),
        if schedule.lanes.len() == 1 { "" } else { "s" },
        schedule.recorded.as_secs_f64(),
        pace.speed,
        schedule.total.as_secs_f64(),
    );
    if let Some(cap) = pace.max_wait
        && schedule.capped > 0
    {
        text.push_str(&format!(
            " ({} gap{} capped at {} by --max-wait)",
            schedule.capped,
            if schedule.capped == 1 { "" } else { "s" },
            humantime::format_duration(cap)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_parse_with_or_without_x() {
        assert_eq!(parse_speed("2x"), Ok(2.0));
        assert_eq!(parse_speed("0.5"), Ok(0.5));
        assert!(parse_speed("0x").is_err());
        assert!(parse_speed("fast").is_err());
        assert!(parse_speed("1e9").is_err());
    }
}
