//! The action JSON plan model: the language `ld` writes and runs, compatible with LoadDensity's.
//!
//! This crate is the bottom of the workspace. Importers, the recorder and the engine all speak it,
//! so it must not depend on anything that does I/O over a network (no tokio, hyper or reqwest):
//! `converters` builds on it without the engine's network stack.
//!
//! A document is a bare list of actions or `{"load_density": [...]}`; an action is `[command]`,
//! `[command, {kwargs}]` or `[command, [args]]`. Commands and fields this crate does not know are
//! kept as they were, so a plan read and written again loses nothing, and writing is
//! deterministic: the same plan gives the same bytes.

mod diag;
pub mod encode;
mod error;
pub mod fields;
pub mod fs;
pub mod lint;
mod model;
pub mod schema;
mod task;

pub use diag::{SourcePos, render_source_error};
pub use error::{Error, Result};
pub use fields::{Common, Fields, Flag, Protocol};
pub use model::{Action, Args, Plan, StartTest, Tasks};
pub use task::{Assertion, Extractor, TASK_FIELDS, Task, value_digest};

/// The commands LoadDensity's executor knows, and so the names a plan may use.
pub const KNOWN_COMMANDS: &[&str] = &[
    "LD_start_test",
    "LD_register_variable",
    "LD_register_variables",
    "LD_register_csv_source",
    "LD_register_csv_sources",
    "LD_clear_resolver",
    "LD_execute_action",
    "LD_execute_files",
    "LD_generate_html",
    "LD_generate_html_report",
    "LD_generate_json",
    "LD_generate_json_report",
    "LD_generate_xml",
    "LD_generate_xml_report",
    "LD_generate_csv_report",
    "LD_generate_junit_report",
    "LD_generate_summary_report",
    "LD_summary",
    "LD_persist_records",
    "LD_list_runs",
    "LD_fetch_run_records",
    "LD_clear_records",
    "LD_evaluate_sla",
    "LD_assert_sla",
    "LD_wait",
    "LD_post_slack_summary",
    "LD_post_teams_summary",
    "LD_emit_github_annotations",
    "LD_start_prometheus_exporter",
    "LD_stop_prometheus_exporter",
    "LD_start_influxdb_sink",
    "LD_stop_influxdb_sink",
    "LD_start_statsd_sink",
    "LD_stop_statsd_sink",
    "LD_start_opentelemetry_exporter",
    "LD_stop_opentelemetry_exporter",
    "LD_start_dashboard",
    "LD_stop_dashboard",
];
