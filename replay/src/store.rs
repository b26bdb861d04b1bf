//! The engine's hooks into the run store (`ld-store`), kept in one place so the engine's own
//! modules each carry a single call: the request names when a plan starts, every batch of
//! records on its way to the collector, and a sample of response bodies for the shape
//! fingerprints.
//!
//! The store's writer runs on a thread of its own; nothing here blocks or takes a lock.

use ld_store::Recorder;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::compile::NameInfo;
use crate::http::Reply;
use crate::load::TestCtx;
use crate::stats::Record;

/// Tells the store the plan's request names, indexed as the records' `name_id`.
pub(crate) fn names(store: Option<&Recorder>, names: &[NameInfo]) {
    if let Some(s) = store {
        s.names(names.iter().map(|n| (n.name.to_string(), n.method.clone())));
    }
}

/// Puts the store between the virtual users and the collector: each batch is copied to the
/// store, then handed on unchanged. Without a store the receiver is returned as it is.
pub(crate) fn tee(
    mut rx: UnboundedReceiver<Vec<Record>>,
    store: Option<Recorder>,
) -> UnboundedReceiver<Vec<Record>> {
    let Some(store) = store else {
        return rx;
    };
    let (tx, out) = unbounded_channel();
    tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            store.requests(
                batch
                    .iter()
                    .map(|r| ld_store::Request {
                        name_id: r.name_id,
                        status: r.status,
                        latency_us: r.latency_us,
                        bytes: r.bytes,
                        at_us: r.at_us,
                        url: r.url.clone(),
                        error: r.error.clone(),
                    })
                    .collect(),
            );
            if tx.send(batch).is_err() {
                break;
            }
        }
    });
    out
}

impl TestCtx {
    /// Gives the test's virtual users the store's recorder, for the shape sampler.
    pub(crate) fn with_store(mut self, store: Option<Recorder>) -> Self {
        self.store = store;
        self
    }
}

/// Whether to keep this response's body for the shape sampler: the first response of each
/// name, then a sample (the store decides, with one atomic load).
pub(crate) fn wants_body(store: Option<&Recorder>, name_id: usize) -> bool {
    store.is_some_and(|s| s.wants_body(name_id as u32))
}

/// Hands a sampled response to the store's shape fingerprint.
pub(crate) fn sample(store: Option<&Recorder>, name_id: usize, reply: &Reply) {
    if let Some(s) = store {
        let content_type = reply
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        s.body(name_id as u32, reply.status, content_type, &reply.body);
    }
}
