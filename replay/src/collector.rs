//! The collector: the one task every sample goes through. It masks each batch, adds it to
//! the one aggregator (`stats::Results`) and hands it to the sinks, and once a second gives
//! them a snapshot. Depends on `stats` and `sink`.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::sink::{Sinks, Snapshot};
use crate::stats::{Masker, Record, Results};

/// How often sinks get a [`Snapshot`].
const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);
/// How often a snapshot carries the mergeable results, for the sinks that want them.
const RESULTS_EVERY: Duration = Duration::from_secs(3);

/// Takes batches until every sender is gone, then hands the results and the sinks back.
pub(crate) async fn collect(
    mut rx: mpsc::UnboundedReceiver<Vec<Record>>,
    mut results: Results,
    mut masker: Masker,
    mut sinks: Sinks,
    (ctx, planned): (std::sync::Arc<crate::load::TestCtx>, Option<Duration>),
) -> (Results, Sinks) {
    let started = Instant::now();
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + SNAPSHOT_EVERY, SNAPSHOT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let first = results.requests;
    let mut last = (Instant::now(), results.requests);
    let mut last_results = Instant::now();
    loop {
        tokio::select! {
            batch = rx.recv() => {
                let Some(mut batch) = batch else { break };
                masker.batch(&mut batch);
                sinks.batch(&batch);
                for r in batch {
                    results.add(r);
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let rate = (results.requests - last.1) as f64
                    / now.duration_since(last.0).as_secs_f64().max(1e-3);
                last = (now, results.requests);
                sinks.snapshot(&Snapshot {
                    elapsed: started.elapsed(),
                    requests: results.requests - first,
                    failures: results.failed,
                    requests_per_s: rate,
                    p95_ms: results.total.value_at_quantile(0.95) as f64 / 1000.0,
                    active_users: ctx.active.load(std::sync::atomic::Ordering::Relaxed),
                    time_left: planned.map(|p| p.saturating_sub(started.elapsed())),
                    names: std::sync::Arc::new(if sinks.want_figures() {
                        results.figures()
                    } else {
                        Vec::new()
                    }),
                    results: (sinks.want_results()
                        && now.duration_since(last_results) >= RESULTS_EVERY)
                        .then(|| {
                            last_results = now;
                            let mut r = results.mergeable(false);
                            r.duration_s = (results.busy + started.elapsed()).as_secs_f64();
                            std::sync::Arc::new(r)
                        }),
                });
            }
        }
    }
    (results, sinks)
}
