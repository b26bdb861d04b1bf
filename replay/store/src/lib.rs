//! ld's run store: every replay in one SQLite database, baselines, diffs and SLA gates.
//!
//! The engine records a run through a [`Recorder`] (a writer thread fed by a channel, off the
//! hot path); the commands read it through a [`Store`]. The database keeps LoadDensity's
//! tables (`load_density_runs`, `load_density_records`) as ld's own, so LoadDensity's
//! `list_runs`, `fetch_run_records` and `diff_runs` read what ld stored, and ld reads what
//! LoadDensity stored. [`diff`] compares runs, [`render`] prints the comparison, [`sla`]
//! evaluates LoadDensity's SLA rules and [`shape`] fingerprints responses.
//!
//! This crate sits beneath the engine: it must not depend on it, nor on tokio or hyper.

mod aggregate;
pub mod diff;
mod error;
mod latencies;
mod recorder;
pub mod render;
pub mod results;
mod schema;
pub mod shape;
pub mod sla;
mod store;

pub use aggregate::Aggregate;
pub use diff::{Diff, Thresholds};
pub use error::{Error, Result};
pub use latencies::Latencies;
pub use recorder::{Budget, RECORDS_PER_S, Recorder, Request, RunEnd, RunMeta};
pub use results::RunResults;
pub use schema::SCHEMA_VERSION;
pub use store::{Baseline, LdRecord, LdRun, Run, Store};

/// The plan's content hash stored with a run: SHA-256, lowercase hex.
pub fn plan_hash(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn plan_hash_is_sha256_hex() {
        assert_eq!(
            super::plan_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
