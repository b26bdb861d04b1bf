//! Validation and compilation of the whole action document before anything runs.
//!
//! Every command, keyword and task field is checked against what LoadDensity accepts; an
//! unknown one is an error that names it, gives its JSON pointer and the nearest known names.
//! Files named by `LD_execute_files` and CSV sources are read here too, so a run never stops
//! half-way on a typo. The result is a flat list of steps with tasks ready to run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ld_plan::{Action, Args, Plan};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde_json::{Map, Value};

use crate::check::{Check, Extract, Source};
use crate::load::Profile;
use crate::report::ReportKind;
use crate::task::{HttpTask, Predicate, Think, Throttle, prepare};
use crate::template::{Binder, CsvSource, TValue, Unresolved, escape_pointer, nearest, value_text};
use crate::tls::{TlsSettings, client_config};
use crate::{Error, HttpVersion, Result};

/// A compiled document.
#[derive(Debug, Default)]
pub(crate) struct Program {
    pub(crate) steps: Vec<Step>,
    /// Distinct task names, in order of first appearance: the rows of every report.
    pub(crate) names: Vec<NameInfo>,
    pub(crate) unresolved: Vec<Unresolved>,
    pub(crate) notes: Vec<String>,
}

/// What a report row is about.
#[derive(Debug, Clone)]
pub(crate) struct NameInfo {
    pub(crate) name: Arc<str>,
    pub(crate) method: String,
}

/// One thing the executor does.
#[derive(Debug)]
pub(crate) enum Step {
    Variables(Vec<(String, String)>),
    ClearResolver,
    StartTest(Box<TestSpec>),
    Report { kind: ReportKind, name: String },
    Summary,
    ClearRecords,
    Wait(Duration),
    Store(crate::store::StoreStep),
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
    pub(crate) tasks: Vec<Arc<HttpTask>>,
}

/// What compilation takes from the options.
pub(crate) struct Settings {
    pub(crate) insecure: bool,
    pub(crate) ca_cert: Option<PathBuf>,
    pub(crate) timeout: Duration,
    pub(crate) http: HttpVersion,
    pub(crate) env: HashMap<String, String>,
}

const START_FIELDS: &[&str] = &[
    "user_detail_dict",
    "user_count",
    "spawn_rate",
    "test_time",
    "web_ui_dict",
    "runner_mode",
    "load_shape",
    "shape_config",
    "tasks",
    "variables",
    "csv_sources",
    "db_sources",
    "engine",
    "master_bind_host",
    "master_bind_port",
    "master_host",
    "master_port",
    "expected_workers",
    "worker_startup_policy",
];

const EXTRA_TASK_FIELDS: &[&str] = &["throttle", "retry", "cert", "client_cert"];
const ASSERTION_FIELDS: &[&str] = &["type", "value", "path", "name", "pattern"];
const ASSERTION_TYPES: &[&str] = &[
    "status_code",
    "contains",
    "not_contains",
    "json_path",
    "header",
    "regex",
    "max_latency_ms",
];
const EXTRACT_FIELDS: &[&str] = &["var", "from", "path", "name", "pattern", "scope"];
const EXTRACT_SOURCES: &[&str] = &["json_path", "header", "status_code", "regex"];
const HTTP_USERS: &[&str] = &["fast_http_user", "http_user"];

/// Commands that only return data to a Python caller: accepted, and skipped with a note.
const SKIPPED_COMMANDS: &[&str] = &["LD_generate_html", "LD_generate_json", "LD_generate_xml"];

struct Compiler<'s> {
    settings: &'s Settings,
    program: Program,
    csv: HashMap<String, Arc<CsvSource>>,
    vars: Vec<String>,
    name_ids: HashMap<String, usize>,
    tls: HashMap<TlsSettings, Arc<rustls::ClientConfig>>,
    throttles: HashMap<String, Arc<Throttle>>,
    files: Vec<PathBuf>,
}

/// Compiles the plan file at `path` with its text.
pub(crate) fn compile(path: &Path, text: &str, settings: &Settings) -> Result<Program> {
    let mut c = Compiler {
        settings,
        program: Program::default(),
        csv: HashMap::new(),
        vars: Vec::new(),
        name_ids: HashMap::new(),
        tls: HashMap::new(),
        throttles: HashMap::new(),
        files: Vec::new(),
    };
    c.file(path, text)?;
    Ok(c.program)
}

/// Formats a plan error for `file` at `pointer`.
fn err(file: &Path, pointer: &str, message: impl std::fmt::Display) -> Error {
    let at = if pointer.is_empty() { "/" } else { pointer };
    Error::plan(format!("{}: {at}: {message}", file.display()))
}

fn base_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl Compiler<'_> {
    fn file(&mut self, path: &Path, text: &str) -> Result<()> {
        if self.files.len() > 16 || self.files.iter().any(|f| f == path) {
            return Err(err(path, "", "LD_execute_files includes itself"));
        }
        let plan =
            Plan::parse(text).map_err(|e| match e {
                ld_plan::Error::Syntax { message, pos } => Error::plan(
                    ld_plan::render_source_error(&path.display().to_string(), text, pos, &message),
                ),
                other => Error::plan(format!("{}: {other}", path.display())),
            })?;
        self.files.push(path.to_path_buf());
        let base = if plan.wrapped { "/load_density" } else { "" };
        let result = self.actions(path, &plan.actions, base);
        self.files.pop();
        result
    }

    fn actions(&mut self, file: &Path, actions: &[Action], base: &str) -> Result<()> {
        for (i, action) in actions.iter().enumerate() {
            self.action(file, action, &format!("{base}/{i}"))?;
        }
        Ok(())
    }

    fn action(&mut self, file: &Path, action: &Action, pointer: &str) -> Result<()> {
        let cmd = action.command.as_str();
        let report = |kind: ReportKind, param: &'static str, default: &str| {
            (kind, param, default.to_string())
        };
        let report_kind = match cmd {
            "LD_generate_html_report" => {
                Some(report(ReportKind::Html, "html_name", "default_name"))
            }
            "LD_generate_json_report" => {
                Some(report(ReportKind::Json, "json_file_name", "default_name"))
            }
            "LD_generate_xml_report" => {
                Some(report(ReportKind::Xml, "xml_file_name", "default_name"))
            }
            "LD_generate_csv_report" => Some(report(ReportKind::Csv, "csv_name", "default_name")),
            "LD_generate_junit_report" => Some(report(
                ReportKind::Junit,
                "report_name",
                "loaddensity-junit",
            )),
            "LD_generate_summary_report" => Some(report(
                ReportKind::Summary,
                "report_name",
                "loaddensity-summary",
            )),
            _ => None,
        };
        if let Some((kind, param, default)) = report_kind {
            let kw = kwargs(file, action, &[param], pointer)?;
            let name = kw.get(param).map(value_text).unwrap_or(default);
            self.program.steps.push(Step::Report { kind, name });
            return Ok(());
        }
        match cmd {
            "LD_start_test" => {
                let kw = kwargs(file, action, START_FIELDS, pointer)?;
                let spec = self.start_test(file, &kw, pointer)?;
                self.program.steps.push(Step::StartTest(Box::new(spec)));
            }
            "LD_register_variable" => {
                let kw = kwargs(file, action, &["name", "value"], pointer)?;
                let name = kw.get("name").and_then(Value::as_str).ok_or_else(|| {
                    err(
                        file,
                        &format!("{pointer}/1"),
                        "LD_register_variable needs a `name` string",
                    )
                })?;
                let value = kw.get("value").cloned().unwrap_or(Value::Null);
                self.vars.push(name.to_string());
                self.program.steps.push(Step::Variables(vec![(
                    name.to_string(),
                    value_text(&value),
                )]));
            }
            "LD_register_variables" => {
                let kw = kwargs(file, action, &["variables"], pointer)?;
                let vars =
                    self.variables(file, kw.get("variables"), &format!("{pointer}/1/variables"))?;
                self.program.steps.push(Step::Variables(vars));
            }
            "LD_register_csv_source" => {
                let kw = kwargs(file, action, &["name", "file_path", "cycle"], pointer)?;
                self.csv_source(file, &Value::Object(kw), &format!("{pointer}/1"))?;
            }
            "LD_register_csv_sources" => {
                let kw = kwargs(file, action, &["sources"], pointer)?;
                self.csv_sources(file, kw.get("sources"), &format!("{pointer}/1/sources"))?;
            }
            "LD_clear_resolver" => {
                kwargs(file, action, &[], pointer)?;
                self.vars.clear();
                self.csv.clear();
                self.program.steps.push(Step::ClearResolver);
            }
            "LD_clear_records" => {
                kwargs(file, action, &[], pointer)?;
                self.program.steps.push(Step::ClearRecords);
            }
            "LD_persist_records"
            | "LD_list_runs"
            | "LD_fetch_run_records"
            | "LD_evaluate_sla"
            | "LD_assert_sla" => {
                let kw = kwargs(file, action, crate::store::params(cmd), pointer)?;
                let step = crate::store::command(cmd, kw, &base_dir(file))
                    .map_err(|m| err(file, &format!("{pointer}/1"), m))?;
                self.program.steps.push(Step::Store(step));
            }
            "LD_summary" => {
                kwargs(file, action, &["success", "failures"], pointer)?;
                self.program.steps.push(Step::Summary);
            }
            "LD_wait" => {
                let kw = kwargs(file, action, &["seconds"], pointer)?;
                let secs = kw.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
                self.program.steps.push(Step::Wait(Duration::from_secs_f64(
                    secs.clamp(0.0, 86_400.0),
                )));
            }
            "LD_execute_action" => {
                let list = match &action.args {
                    Args::Kwargs(map) => {
                        check_keys(file, map, &["action_list"], &format!("{pointer}/1"))?;
                        map.get("action_list").cloned().unwrap_or(Value::Null)
                    }
                    Args::List(list) => match list.as_slice() {
                        [inner @ Value::Array(_)] if is_action_list(inner) => inner.clone(),
                        _ => Value::Array(list.clone()),
                    },
                    Args::None => Value::Array(Vec::new()),
                };
                let inner =
                    Plan::from_value(list).map_err(|e| err(file, &format!("{pointer}/1"), e))?;
                self.actions(file, &inner.actions, &format!("{pointer}/1"))?;
            }
            "LD_execute_files" => {
                let kw = kwargs(file, action, &["execute_files_list"], pointer)?;
                let list = match kw.get("execute_files_list") {
                    Some(Value::Array(items)) => items.clone(),
                    Some(Value::String(s)) => vec![Value::String(s.clone())],
                    _ => Vec::new(),
                };
                for (i, item) in list.iter().enumerate() {
                    let p = format!("{pointer}/1/{i}");
                    let Some(rel) = item.as_str() else {
                        return Err(err(file, &p, "expected a file path"));
                    };
                    let path = base_dir(file).join(rel);
                    let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                        path: path.display().to_string(),
                        source,
                    })?;
                    self.file(&path, &text)?;
                }
            }
            other if SKIPPED_COMMANDS.contains(&other) => {
                self.program.notes.push(format!(
                    "{pointer}: `{other}` is not run by ld replay; skipped"
                ));
            }
            other => {
                let mut known: Vec<&str> = ld_plan::KNOWN_COMMANDS.to_vec();
                known.sort_unstable();
                let hint = nearest(other, known.iter().copied());
                return Err(err(
                    file,
                    &format!("{pointer}/0"),
                    format!("unknown command `{other}`{hint}"),
                ));
            }
        }
        Ok(())
    }

    fn variables(
        &mut self,
        file: &Path,
        value: Option<&Value>,
        pointer: &str,
    ) -> Result<Vec<(String, String)>> {
        match value {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Object(map)) => {
                let vars: Vec<(String, String)> = map
                    .iter()
                    .map(|(k, v)| (k.clone(), value_text(v)))
                    .collect();
                self.vars.extend(vars.iter().map(|(k, _)| k.clone()));
                Ok(vars)
            }
            Some(_) => Err(err(file, pointer, "expected an object of variables")),
        }
    }

    fn csv_sources(&mut self, file: &Path, value: Option<&Value>, pointer: &str) -> Result<()> {
        match value {
            None | Some(Value::Null) => Ok(()),
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    self.csv_source(file, item, &format!("{pointer}/{i}"))?;
                }
                Ok(())
            }
            Some(_) => Err(err(file, pointer, "expected a list of CSV sources")),
        }
    }

    fn csv_source(&mut self, file: &Path, value: &Value, pointer: &str) -> Result<()> {
        let Value::Object(map) = value else {
            return Err(err(file, pointer, "expected {name, file_path, cycle}"));
        };
        check_keys(file, map, &["name", "file_path", "cycle"], pointer)?;
        let name = map
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| err(file, pointer, "a CSV source needs a `name`"))?;
        let rel = map
            .get("file_path")
            .and_then(Value::as_str)
            .ok_or_else(|| err(file, pointer, "a CSV source needs a `file_path`"))?;
        let cycle = map.get("cycle").is_none_or(|v| v.as_bool().unwrap_or(true));
        let path = resolve_path(file, rel);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut lines = parse_csv(&text).into_iter();
        let columns = lines.next().unwrap_or_default();
        let rows: Vec<Vec<String>> = lines
            .filter(|r| !(r.len() == 1 && r[0].is_empty()))
            .collect();
        self.csv.insert(
            name.to_string(),
            Arc::new(CsvSource::new(columns, rows, cycle)),
        );
        Ok(())
    }

    fn start_test(
        &mut self,
        file: &Path,
        kw: &Map<String, Value>,
        pointer: &str,
    ) -> Result<TestSpec> {
        let at = |k: &str| format!("{pointer}/1/{k}");
        if let Some(ud) = kw.get("user_detail_dict") {
            let Value::Object(ud) = ud else {
                return Err(err(file, &at("user_detail_dict"), "expected an object"));
            };
            let user = ud
                .get("user")
                .and_then(Value::as_str)
                .unwrap_or("fast_http_user");
            if !HTTP_USERS.contains(&user) {
                return Err(err(
                    file,
                    &format!("{}/user", at("user_detail_dict")),
                    format!(
                        "user `{user}` is not supported by ld replay yet (HTTP: {})",
                        HTTP_USERS.join(", ")
                    ),
                ));
            }
        }
        let host = kw
            .get("user_detail_dict")
            .and_then(|u| u.get("host"))
            .and_then(Value::as_str)
            .map(|h| h.trim_end_matches('/').to_string());
        let number = |k: &str| -> Result<Option<f64>> {
            match kw.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .filter(|f| *f >= 0.0)
                    .map(Some)
                    .ok_or_else(|| err(file, &at(k), "expected a non-negative number")),
            }
        };
        let users = number("user_count")?.unwrap_or(50.0) as u64;
        let spawn_rate = number("spawn_rate")?.unwrap_or(10.0);
        let duration = match kw.get("test_time") {
            None => Some(Duration::from_secs(60)),
            Some(Value::Null) => None,
            Some(_) => number("test_time")?.map(Duration::from_secs_f64),
        };
        for k in [
            "db_sources",
            "master_bind_host",
            "master_host",
            "expected_workers",
        ] {
            if kw.contains_key(k) {
                self.program
                    .notes
                    .push(format!("{}: `{k}` is ignored by ld replay", at(k)));
            }
        }
        let shape = match kw.get("load_shape") {
            None | Some(Value::Null) => None,
            Some(Value::String(kind)) => Some(
                Profile::from_shape(kind, kw.get("shape_config").unwrap_or(&Value::Null))
                    .map_err(|m| err(file, &at("load_shape"), m))?,
            ),
            Some(_) => {
                return Err(err(
                    file,
                    &at("load_shape"),
                    "expected stages, spike or soak",
                ));
            }
        };
        let saved_vars = self.vars.clone();
        let variables = self.variables(file, kw.get("variables"), &at("variables"))?;
        let saved_csv = self.csv.clone();
        self.csv_sources(file, kw.get("csv_sources"), &at("csv_sources"))?;

        let tasks_ptr = at("tasks");
        let (mode, raw_tasks): (Mode, Vec<RawTask>) = match kw.get("tasks") {
            None | Some(Value::Null) => {
                return Err(err(file, &tasks_ptr, "LD_start_test needs `tasks`"));
            }
            Some(Value::Array(list)) => (Mode::Sequence, task_objects(file, list, &tasks_ptr)?),
            Some(Value::Object(map)) if map.contains_key("tasks") => {
                check_keys(file, map, &["mode", "tasks"], &tasks_ptr)?;
                let mode = match map.get("mode") {
                    None | Some(Value::Null) => Mode::Sequence,
                    Some(Value::String(m)) => match m.to_ascii_lowercase().as_str() {
                        "sequence" => Mode::Sequence,
                        "weighted" => Mode::Weighted,
                        "conditional" => Mode::Conditional,
                        other => {
                            let hint =
                                nearest(other, ["sequence", "weighted", "conditional"].into_iter());
                            return Err(err(
                                file,
                                &format!("{tasks_ptr}/mode"),
                                format!("unknown mode `{other}`{hint}"),
                            ));
                        }
                    },
                    Some(_) => {
                        return Err(err(file, &format!("{tasks_ptr}/mode"), "expected a string"));
                    }
                };
                let inner = format!("{tasks_ptr}/tasks");
                let list = match map.get("tasks") {
                    Some(Value::Array(list)) => task_objects(file, list, &inner)?,
                    Some(Value::Object(by_method)) => by_method_tasks(file, by_method, &inner)?,
                    _ => return Err(err(file, &inner, "expected a list of tasks")),
                };
                (mode, list)
            }
            Some(Value::Object(by_method)) => (
                Mode::Sequence,
                by_method_tasks(file, by_method, &tasks_ptr)?,
            ),
            Some(_) => {
                return Err(err(
                    file,
                    &tasks_ptr,
                    "expected a list of tasks or {mode, tasks}",
                ));
            }
        };
        // Variables extractors will set are known names for the placeholder report.
        let mut session = Vec::new();
        for (_, t) in &raw_tasks {
            if let Some(Value::Array(ex)) = t.get("extract") {
                for e in ex {
                    if let Some(var) = e.get("var").and_then(Value::as_str) {
                        if e.get("scope").and_then(Value::as_str) == Some("session") {
                            session.push(var.to_string());
                        } else {
                            self.vars.push(var.to_string());
                        }
                    }
                }
            }
        }
        let mut tasks = Vec::new();
        for (p, t) in &raw_tasks {
            tasks.push(Arc::new(self.task(
                file,
                t,
                p,
                host.as_deref(),
                &session,
            )?));
        }
        if tasks.is_empty() {
            return Err(err(file, &tasks_ptr, "LD_start_test has no tasks"));
        }
        // Registered variables outlive the test; its own `variables` and extractions do not.
        self.vars = saved_vars;
        self.csv = saved_csv;
        Ok(TestSpec {
            users,
            spawn_rate,
            duration,
            shape,
            variables,
            mode,
            tasks,
        })
    }

    fn task(
        &mut self,
        file: &Path,
        t: &Map<String, Value>,
        pointer: &str,
        host: Option<&str>,
        session: &[String],
    ) -> Result<HttpTask> {
        let mut allowed: Vec<&str> = ld_plan::TASK_FIELDS.to_vec();
        allowed.extend_from_slice(EXTRA_TASK_FIELDS);
        check_keys(file, t, &allowed, pointer)?;
        let at = |k: &str| format!("{pointer}/{k}");
        let method_text = t
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_uppercase();
        if method_text.is_empty() {
            return Err(err(file, pointer, "a task needs a `method`"));
        }
        let method = http::Method::from_bytes(method_text.as_bytes()).map_err(|_| {
            err(
                file,
                &at("method"),
                format!("invalid method `{method_text}`"),
            )
        })?;
        let (url_key, url) = match (t.get("request_url"), t.get("url")) {
            (Some(Value::String(u)), _) => ("request_url", u.clone()),
            (_, Some(Value::String(u))) => ("url", u.clone()),
            _ => {
                return Err(err(
                    file,
                    pointer,
                    "a task needs a `request_url` (or `url`) string",
                ));
            }
        };
        let full_url = match host {
            Some(h) if url.starts_with('/') => format!("{h}{url}"),
            _ => url.clone(),
        };
        let name_text = match t.get("name") {
            Some(Value::String(n)) if !n.is_empty() => n.clone(),
            _ => url.clone(),
        };
        let name_id = match self.name_ids.get(&name_text) {
            Some(id) => *id,
            None => {
                let id = self.program.names.len();
                self.program.names.push(NameInfo {
                    name: Arc::from(name_text.as_str()),
                    method: method_text.to_ascii_lowercase(),
                });
                self.name_ids.insert(name_text.clone(), id);
                id
            }
        };

        let mut request = Map::new();
        request.insert("url".into(), Value::String(full_url));
        for k in [
            "params", "headers", "cookies", "json", "data", "body", "files", "auth",
        ] {
            if let Some(v) = t.get(k) {
                request.insert(k.into(), v.clone());
            }
        }
        for (k, shape) in [
            ("headers", "an object"),
            ("cookies", "an object"),
            ("auth", "an object"),
        ] {
            if let Some(v) = t.get(k)
                && !v.is_object()
                && !v.is_null()
            {
                return Err(err(file, &at(k), format!("expected {shape}")));
            }
        }
        if let Some(Value::Object(auth)) = t.get("auth") {
            check_keys(
                file,
                auth,
                &["type", "username", "password", "token"],
                &at("auth"),
            )?;
            let kind = auth.get("type").and_then(Value::as_str).unwrap_or("");
            if !matches!(kind.to_ascii_lowercase().as_str(), "basic" | "bearer") {
                return Err(err(
                    file,
                    &format!("{}/type", at("auth")),
                    format!("unknown auth type `{kind}`: basic or bearer"),
                ));
            }
        }
        let mut unresolved = std::mem::take(&mut self.program.unresolved);
        let vars = self.vars.clone();
        let mut binder = Binder {
            env: &self.settings.env,
            csv: &self.csv,
            vars: &vars,
            session,
            unresolved: &mut unresolved,
        };
        // The url's pointer is the task field, the others keep their own.
        let mut parts = Vec::new();
        for (k, v) in &request {
            let p = if k == "url" { at(url_key) } else { at(k) };
            parts.push((k.clone(), binder.value(v, &p)));
        }
        let request_tv = if parts.iter().all(|(_, v)| v.as_literal().is_some()) {
            TValue::Literal(Value::Object(
                parts
                    .into_iter()
                    .map(|(k, v)| (k, v.as_literal().cloned().unwrap_or(Value::Null)))
                    .collect(),
            ))
        } else {
            TValue::Object(parts)
        };

        let mut checks = Vec::new();
        if let Some(list) = t.get("assertions") {
            let Value::Array(list) = list else {
                return Err(err(
                    file,
                    &at("assertions"),
                    "expected a list of assertions",
                ));
            };
            for (i, a) in list.iter().enumerate() {
                let p = format!("{}/{i}", at("assertions"));
                checks.push(assertion(file, a, &p, &mut binder)?);
            }
        }
        let mut extract = Vec::new();
        if let Some(list) = t.get("extract") {
            let Value::Array(list) = list else {
                return Err(err(file, &at("extract"), "expected a list of extractors"));
            };
            for (i, e) in list.iter().enumerate() {
                extract.push(extractor(file, e, &format!("{}/{i}", at("extract")))?);
            }
        }
        let run_if = t
            .get("run_if")
            .map(|v| predicate(file, v, &at("run_if"), &mut binder))
            .transpose()?;
        let skip_if = t
            .get("skip_if")
            .map(|v| predicate(file, v, &at("skip_if"), &mut binder))
            .transpose()?;
        self.program.unresolved = unresolved;

        let base = base_dir(file);
        let prepared = match request_tv.as_literal() {
            Some(fields) => Some(Arc::new(
                prepare(fields, &base, &mut SmallRng::seed_from_u64(0))
                    .map_err(|m| err(file, pointer, m))?,
            )),
            None => None,
        };
        let timeout = match t.get("timeout") {
            None | Some(Value::Null) => self.settings.timeout,
            Some(v) => v
                .as_f64()
                .filter(|f| *f > 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| err(file, &at("timeout"), "expected a number of seconds"))?,
        };
        let follow_redirects = match t.get("allow_redirects") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(err(file, &at("allow_redirects"), "expected true or false")),
        };
        let mut tls = TlsSettings {
            verify: !self.settings.insecure,
            ca_files: self.settings.ca_cert.iter().cloned().collect(),
            client_cert: None,
        };
        match t.get("verify") {
            None | Some(Value::Null) | Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => tls.verify = false,
            Some(Value::String(ca)) => tls.ca_files.push(resolve_path(file, ca)),
            Some(_) => {
                return Err(err(
                    file,
                    &at("verify"),
                    "expected a boolean or a CA bundle path",
                ));
            }
        }
        match t.get("cert").or_else(|| t.get("client_cert")) {
            None | Some(Value::Null) => {}
            Some(Value::String(both)) => {
                let p = resolve_path(file, both);
                tls.client_cert = Some((p.clone(), p));
            }
            Some(Value::Array(pair)) if pair.len() == 2 && pair.iter().all(Value::is_string) => {
                let c = resolve_path(file, pair[0].as_str().unwrap_or_default());
                let k = resolve_path(file, pair[1].as_str().unwrap_or_default());
                tls.client_cert = Some((c, k));
            }
            Some(_) => return Err(err(file, &at("cert"), "expected a PEM path or [cert, key]")),
        }
        let tls = match self.tls.get(&tls) {
            Some(c) => c.clone(),
            None => {
                let config = Arc::new(client_config(&tls, self.settings.http)?);
                self.tls.insert(tls, config.clone());
                config
            }
        };
        let weight = match t.get("weight") {
            None | Some(Value::Null) => 1,
            Some(v) => match v
                .as_f64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            {
                Some(w) => w.max(0.0) as u64,
                None => return Err(err(file, &at("weight"), "expected a number")),
            },
        };
        let think = match t.get("think_time") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(Think::Fixed(secs(n.as_f64().unwrap_or(0.0)))),
            Some(Value::Object(m)) => {
                check_keys(file, m, &["min", "max"], &at("think_time"))?;
                let lo = m.get("min").and_then(Value::as_f64).unwrap_or(0.0);
                let hi = m.get("max").and_then(Value::as_f64).unwrap_or(lo);
                Some(Think::Between(secs(lo), secs(hi)))
            }
            Some(_) => {
                return Err(err(
                    file,
                    &at("think_time"),
                    "expected seconds or {min, max}",
                ));
            }
        };
        let throttle = match t.get("throttle") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => {
                check_keys(file, m, &["rps", "burst", "key"], &at("throttle"))?;
                match m.get("rps").and_then(Value::as_f64) {
                    Some(rps) if rps > 0.0 => {
                        let key = m
                            .get("key")
                            .map(value_text)
                            .unwrap_or_else(|| name_text.clone());
                        let burst = m.get("burst").and_then(Value::as_u64).unwrap_or(1);
                        Some(
                            self.throttles
                                .entry(key)
                                .or_insert_with(|| Arc::new(Throttle::new(rps, burst)))
                                .clone(),
                        )
                    }
                    _ => None,
                }
            }
            Some(_) => return Err(err(file, &at("throttle"), "expected {rps, burst, key}")),
        };
        let retries = match t.get("retry") {
            None | Some(Value::Null) => 0,
            Some(Value::Object(m)) => {
                m.get("transient").and_then(Value::as_u64).unwrap_or(5) as u32
            }
            Some(_) => return Err(err(file, &at("retry"), "expected an object")),
        };
        // A failed assertion quotes the body, so any check keeps it (a single-chunk body is
        // kept without a copy).
        let needs_body = !checks.is_empty() || extract.iter().any(Extract::needs_body);
        let needs_headers = checks.iter().any(|c| matches!(c, Check::Header { .. }))
            || extract
                .iter()
                .any(|e| matches!(e.source, Source::Header(_)));
        Ok(HttpTask {
            name_id,
            name: Arc::from(name_text.as_str()),
            method,
            request: request_tv,
            prepared,
            base_dir: base,
            timeout,
            follow_redirects,
            tls,
            weight,
            run_if,
            skip_if,
            think,
            throttle,
            retries,
            checks,
            extract,
            needs_body,
            needs_headers,
        })
    }
}

fn secs(f: f64) -> Duration {
    Duration::from_secs_f64(f.clamp(0.0, 86_400.0))
}

fn assertion(file: &Path, a: &Value, p: &str, binder: &mut Binder<'_>) -> Result<Check> {
    let Value::Object(m) = a else {
        return Err(err(file, p, "expected an assertion object"));
    };
    check_keys(file, m, ASSERTION_FIELDS, p)?;
    let kind = m
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    let value = |binder: &mut Binder<'_>| -> Result<TValue> {
        m.get("value")
            .map(|v| binder.value(v, &format!("{p}/value")))
            .ok_or_else(|| err(file, p, format!("a `{kind}` assertion needs a `value`")))
    };
    let text_field = |k: &str| -> Result<String> {
        m.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                err(
                    file,
                    p,
                    format!("a `{kind}` assertion needs a `{k}` string"),
                )
            })
    };
    Ok(match kind.as_str() {
        "status_code" => Check::Status(value(binder)?),
        "contains" => Check::Contains(value(binder)?),
        "not_contains" => Check::NotContains(value(binder)?),
        "json_path" => Check::JsonPath {
            path: text_field("path")?,
            value: value(binder)?,
        },
        "header" => Check::Header {
            name: text_field("name")?,
            value: value(binder)?,
        },
        "regex" => {
            let pattern = m
                .get("pattern")
                .or_else(|| m.get("value"))
                .and_then(Value::as_str)
                .ok_or_else(|| err(file, p, "a `regex` assertion needs a `pattern`"))?;
            Check::Regex(
                regex::Regex::new(pattern).map_err(|e| err(file, &format!("{p}/pattern"), e))?,
            )
        }
        "max_latency_ms" => {
            Check::MaxLatency(m.get("value").and_then(Value::as_f64).ok_or_else(|| {
                err(
                    file,
                    &format!("{p}/value"),
                    "expected a number of milliseconds",
                )
            })?)
        }
        other => {
            let hint = nearest(other, ASSERTION_TYPES.iter().copied());
            return Err(err(
                file,
                &format!("{p}/type"),
                format!("unknown assertion type `{other}`{hint}"),
            ));
        }
    })
}

fn extractor(file: &Path, e: &Value, p: &str) -> Result<Extract> {
    let Value::Object(m) = e else {
        return Err(err(file, p, "expected an extractor object"));
    };
    check_keys(file, m, EXTRACT_FIELDS, p)?;
    let var = m
        .get("var")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| err(file, p, "an extractor needs a `var`"))?
        .to_string();
    let from = m
        .get("from")
        .and_then(Value::as_str)
        .unwrap_or("json_path")
        .to_ascii_lowercase();
    let field = |k: &str| -> Result<String> {
        m.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| err(file, p, format!("a `{from}` extractor needs a `{k}`")))
    };
    let source = match from.as_str() {
        "json_path" => Source::JsonPath(field("path")?),
        "header" => Source::Header(field("name")?),
        "status_code" => Source::Status,
        "regex" => {
            let pattern = m
                .get("pattern")
                .or_else(|| m.get("path"))
                .and_then(Value::as_str)
                .ok_or_else(|| err(file, p, "a `regex` extractor needs a `pattern`"))?;
            Source::Regex(
                regex::Regex::new(pattern).map_err(|e| err(file, &format!("{p}/pattern"), e))?,
            )
        }
        other => {
            let hint = nearest(other, EXTRACT_SOURCES.iter().copied());
            return Err(err(
                file,
                &format!("{p}/from"),
                format!("unknown extractor source `{other}`{hint}"),
            ));
        }
    };
    let session = match m.get("scope").and_then(Value::as_str).unwrap_or("var") {
        "var" => false,
        "session" => true,
        other => {
            return Err(err(
                file,
                &format!("{p}/scope"),
                format!("unknown scope `{other}`: var or session"),
            ));
        }
    };
    Ok(Extract {
        var,
        session,
        source,
    })
}

fn predicate(file: &Path, v: &Value, p: &str, binder: &mut Binder<'_>) -> Result<Predicate> {
    Ok(match v {
        Value::Bool(b) => Predicate::Constant(*b),
        Value::Number(n) => Predicate::Constant(n.as_f64().is_some_and(|f| f != 0.0)),
        Value::String(_) => Predicate::Truthy(binder.value(v, p)),
        Value::Object(m) => {
            let Some((op, args)) = m.iter().next() else {
                return Ok(Predicate::Constant(false));
            };
            if m.len() > 1 {
                return Err(err(file, p, "a predicate has one operator"));
            }
            let ap = format!("{p}/{}", escape_pointer(op));
            let pair = |binder: &mut Binder<'_>| -> Result<(TValue, TValue)> {
                match args {
                    Value::Array(items) if items.len() == 2 => Ok((
                        binder.value(&items[0], &format!("{ap}/0")),
                        binder.value(&items[1], &format!("{ap}/1")),
                    )),
                    _ => Err(err(file, &ap, format!("`{op}` takes a list of two values"))),
                }
            };
            match op.to_ascii_lowercase().as_str() {
                "equals" => {
                    let (a, b) = pair(binder)?;
                    Predicate::Equals(a, b)
                }
                "not_equals" => {
                    let (a, b) = pair(binder)?;
                    Predicate::NotEquals(a, b)
                }
                "in" => {
                    let (a, b) = pair(binder)?;
                    Predicate::In(a, b)
                }
                "truthy" => Predicate::Truthy(binder.value(args, &ap)),
                other => {
                    let hint = nearest(other, ["equals", "not_equals", "in", "truthy"].into_iter());
                    return Err(err(file, &ap, format!("unknown predicate `{other}`{hint}")));
                }
            }
        }
        _ => Predicate::Constant(false),
    })
}

/// A task object with its JSON pointer.
type RawTask = (String, Map<String, Value>);

fn task_objects(file: &Path, list: &[Value], pointer: &str) -> Result<Vec<RawTask>> {
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            let p = format!("{pointer}/{i}");
            match t {
                Value::Object(m) => Ok((p, m.clone())),
                _ => Err(err(file, &p, "expected a task object")),
            }
        })
        .collect()
}

fn by_method_tasks(file: &Path, map: &Map<String, Value>, pointer: &str) -> Result<Vec<RawTask>> {
    map.iter()
        .map(|(method, body)| {
            let p = format!("{pointer}/{}", escape_pointer(method));
            match body {
                Value::Object(m) => {
                    let mut m = m.clone();
                    m.entry("method")
                        .or_insert_with(|| Value::String(method.clone()));
                    Ok((p, m))
                }
                _ => Err(err(file, &p, "expected a task object")),
            }
        })
        .collect()
}

/// The keyword arguments of an action, from `{kwargs}` or positional `[args]`.
fn kwargs(
    file: &Path,
    action: &Action,
    params: &[&str],
    pointer: &str,
) -> Result<Map<String, Value>> {
    match &action.args {
        Args::None => Ok(Map::new()),
        Args::Kwargs(map) => {
            check_keys(file, map, params, &format!("{pointer}/1"))?;
            Ok(map.clone())
        }
        Args::List(list) => {
            if list.len() > params.len() {
                return Err(err(
                    file,
                    &format!("{pointer}/1"),
                    format!(
                        "`{}` takes {} argument(s) ({}), this one has {}",
                        action.command,
                        params.len(),
                        params.join(", "),
                        list.len()
                    ),
                ));
            }
            Ok(params
                .iter()
                .zip(list)
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect())
        }
    }
}

/// Every key of `map` must be one of `known`.
fn check_keys(file: &Path, map: &Map<String, Value>, known: &[&str], pointer: &str) -> Result<()> {
    for key in map.keys() {
        if !known.contains(&key.as_str()) {
            let hint = nearest(key, known.iter().copied());
            let expected = if hint.is_empty() && !known.is_empty() && known.len() <= 8 {
                format!("; known: {}", known.join(", "))
            } else {
                hint
            };
            return Err(err(
                file,
                &format!("{pointer}/{}", escape_pointer(key)),
                format!("unknown field `{key}`{expected}"),
            ));
        }
    }
    Ok(())
}

fn is_action_list(v: &Value) -> bool {
    v.as_array().is_some_and(|items| {
        items.iter().all(|i| {
            i.as_array()
                .and_then(|a| a.first())
                .is_some_and(Value::is_string)
        })
    })
}

/// A path from the plan: relative to the plan's directory, else to the working directory.
fn resolve_path(file: &Path, rel: &str) -> PathBuf {
    let p = Path::new(rel);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    let beside = base_dir(file).join(p);
    if beside.exists() || !p.exists() {
        beside
    } else {
        p.to_path_buf()
    }
}

/// RFC 4180 CSV: quoted fields, doubled quotes, CRLF or LF.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                '"' => quoted = false,
                other => field.push(other),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            other => field.push(other),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            insecure: false,
            ca_cert: None,
            timeout: Duration::from_secs(5),
            http: HttpVersion::Auto,
            env: HashMap::new(),
        }
    }

    fn compile_text(text: &str) -> Result<Program> {
        compile(Path::new("plan.json"), text, &settings())
    }

    #[test]
    fn unknown_command_names_pointer_and_nearest() {
        let e = compile_text(r#"{"load_density": [["LD_summary"], ["LD_strat_test", {}]]}"#)
            .expect_err("unknown");
        let text = e.to_string();
        assert!(text.contains("/load_density/1/0"), "{text}");
        assert!(text.contains("`LD_start_test`"), "{text}");
        assert!(e.is_input_error());
    }

    #[test]
    fn unknown_task_field_names_pointer_and_nearest() {
        let e = compile_text(
            r#"[["LD_start_test", {"tasks": {"mode": "sequence", "tasks": [
                {"method": "get", "request_url": "http://127.0.0.1:1/", "asserts": []}]}}]]"#,
        )
        .expect_err("unknown field");
        let text = e.to_string();
        assert!(text.contains("/0/1/tasks/tasks/0/asserts"), "{text}");
        assert!(text.contains("`assertions`"), "{text}");
    }

    #[test]
    fn unknown_assertion_type_and_placeholders_are_found() {
        let e = compile_text(
            r#"[["LD_start_test", {"tasks": [{"method": "get", "request_url": "http://h/",
                "assertions": [{"type": "status_cod", "value": 200}]}]}]]"#,
        )
        .expect_err("type");
        assert!(e.to_string().contains("`status_code`"), "{e}");
        let p = compile_text(
            r#"[["LD_register_variables", {"variables": {"token": "t"}}],
                ["LD_start_test", {"tasks": [{"method": "get", "request_url": "http://h/${var.tokn}"}]}]]"#,
        )
        .expect("compiles");
        assert_eq!(p.unresolved.len(), 1);
        assert!(
            p.unresolved[0].hint.contains("`token`"),
            "{:?}",
            p.unresolved
        );
        assert_eq!(p.unresolved[0].pointer, "/1/1/tasks/0/request_url");
    }

    #[test]
    fn csv_parses_quotes() {
        let rows = parse_csv("a,b\r\n\"x,1\",\"say \"\"hi\"\"\"\n");
        assert_eq!(rows, vec![vec!["a", "b"], vec!["x,1", "say \"hi\""]]);
    }
}
