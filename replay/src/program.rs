//! The compiled plan: what `compile` builds and the executor runs, and nothing else. It sits
//! below `compile`, `load` and the executor so that they share these types without importing
//! each other.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::redact::Redactor;
use crate::report::ReportKind;
use crate::task::{NameInfo, Task};
use crate::template::Unresolved;

/// A compiled document.
#[derive(Debug, Default)]
pub(crate) struct Program {
    pub(crate) steps: Vec<Step>,
    /// Distinct task names, in order of first appearance: the rows of every report.
    pub(crate) names: Vec<NameInfo>,
    pub(crate) unresolved: Vec<Unresolved>,
    pub(crate) notes: Vec<String>,
    /// Live outputs the plan starts (`LD_start_prometheus_exporter`, `LD_start_influxdb_sink`,
    /// `LD_start_statsd_sink`), beside the caller's.
    pub(crate) outputs: Vec<crate::export::Output>,
}

/// One thing the executor does.
#[derive(Debug)]
pub(crate) enum Step {
    Variables(Vec<(String, String)>),
    ClearResolver,
    StartTest(Box<TestSpec>),
    Report {
        kind: ReportKind,
        name: String,
    },
    Summary,
    ClearRecords,
    Wait(Duration),
    Store(crate::store::StoreStep),
    /// `LD_post_slack_summary`, `LD_post_teams_summary`, `LD_emit_github_annotations`: handed
    /// to the caller in the outcome, which posts or prints.
    Notice(crate::notify::Notice),
}

/// How tasks are picked in an iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Sequence,
    Weighted,
    Conditional,
}

/// A compiled `LD_start_test`.
#[derive(Debug)]
pub(crate) struct TestSpec {
    pub(crate) users: u64,
    pub(crate) spawn_rate: f64,
    /// `None`: until stopped (`test_time: null`).
    pub(crate) duration: Option<Duration>,
    pub(crate) shape: Option<Profile>,
    pub(crate) variables: Vec<(String, String)>,
    pub(crate) mode: Mode,
    /// `user_detail_dict.h2_streams`: users per shared HTTP/2 connection.
    pub(crate) h2_streams: Option<usize>,
    /// Shared by the test's users; built once.
    pub(crate) tasks: Arc<Vec<Task>>,
}

/// How the number of virtual users changes over time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Profile {
    /// Linear ramps from the previous target to each stage's target (`--stages`).
    Ramp(Vec<(Duration, u64)>),
    /// LoadDensity's stages: hold `users`, reached at `spawn_rate` users per second.
    Steps(Vec<(Duration, u64, f64)>),
}

impl Profile {
    /// LoadDensity's `load_shape` with its `shape_config`.
    pub(crate) fn from_shape(kind: &str, config: &Value) -> Result<Profile, String> {
        let num = |k: &str, d: f64| config.get(k).and_then(Value::as_f64).unwrap_or(d);
        let secs = |f: f64| Duration::from_secs_f64(f.max(0.0));
        match kind {
            "stages" => {
                let Some(Value::Array(stages)) = config.get("stages") else {
                    return Err("load_shape stages needs shape_config.stages".into());
                };
                Ok(Profile::Steps(
                    stages
                        .iter()
                        .map(|s| {
                            let g = |k: &str, d: f64| s.get(k).and_then(Value::as_f64).unwrap_or(d);
                            (
                                secs(g("duration", 0.0)),
                                g("users", 0.0) as u64,
                                g("spawn_rate", 1.0),
                            )
                        })
                        .collect(),
                ))
            }
            "spike" => {
                let base = num("baseline_users", 0.0) as u64;
                let spike = num("spike_users", base as f64) as u64;
                let rate = num("spawn_rate", 10.0);
                Ok(Profile::Steps(vec![
                    (secs(num("pre_seconds", 30.0)), base, rate),
                    (secs(num("spike_seconds", 30.0)), spike, rate),
                    (secs(num("post_seconds", 30.0)), base, rate),
                ]))
            }
            "soak" => {
                let users = num("users", 0.0) as u64;
                Ok(Profile::Ramp(vec![
                    (secs(num("ramp_seconds", 60.0)), users),
                    (secs(num("hold_seconds", 600.0)), users),
                    (secs(num("cooldown_seconds", 60.0)), 0),
                ]))
            }
            other => Err(format!(
                "unknown load_shape `{other}`: stages, spike or soak"
            )),
        }
    }

    pub(crate) fn total(&self) -> Duration {
        match self {
            Profile::Ramp(s) => s.iter().map(|(d, _)| *d).sum(),
            Profile::Steps(s) => s.iter().map(|(d, _, _)| *d).sum(),
        }
    }

    /// Target users and spawn rate at `t`; `None` once the profile is over.
    pub(crate) fn at(&self, t: Duration) -> Option<(u64, f64)> {
        let mut elapsed = Duration::ZERO;
        match self {
            Profile::Ramp(stages) => {
                let mut from = 0u64;
                for (d, target) in stages {
                    if t < elapsed + *d {
                        let f = (t - elapsed).as_secs_f64() / d.as_secs_f64().max(1e-9);
                        let users = from as f64 + (*target as f64 - from as f64) * f;
                        return Some((users.round() as u64, f64::INFINITY));
                    }
                    elapsed += *d;
                    from = *target;
                }
                None
            }
            Profile::Steps(stages) => {
                for (d, users, rate) in stages {
                    if t < elapsed + *d {
                        return Some((*users, *rate));
                    }
                    elapsed += *d;
                }
                None
            }
        }
    }
}

impl Program {
    /// The run's redactor: `values` (the secrets files', the environment values the plan
    /// uses) and the secrets the plan itself holds.
    pub(crate) fn redactor(&self, values: &[String]) -> Redactor {
        let mut variables: Vec<&[(String, String)]> = Vec::new();
        let mut tasks: Vec<&Task> = Vec::new();
        for step in &self.steps {
            match step {
                Step::Variables(vars) => variables.push(vars),
                Step::StartTest(spec) => {
                    variables.push(&spec.variables);
                    tasks.extend(spec.tasks.iter());
                }
                _ => {}
            }
        }
        crate::redact::for_plan(&variables, &tasks, values)
    }
}
