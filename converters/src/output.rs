//! What every importer produces, and the shared steps that turn one request into a task:
//! header rules, secrets, `--header` overrides, naming, the status assertion.

use std::borrow::Cow;
use std::collections::BTreeMap;

use ld_plan::{Action, Args, Plan, StartTest};
#[cfg(test)]
use ld_plan::{Assertion, Task};
use serde_json::{Map, Number, Value};

use crate::secrets::{Secret, SecretRules, Secrets, render_env};
use crate::{Filter, words};

/// How an import shapes its plan.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub filter: Filter,
    /// Keep secrets in the plan instead of moving them to the side file.
    pub inline_secrets: bool,
    /// Keep the recorded pauses between requests as `think_time`.
    pub think_time: bool,
    /// `user_detail_dict.user` of the generated `LD_start_test`.
    pub user: String,
    pub users: u64,
    pub spawn_rate: f64,
    /// Seconds.
    pub duration: u64,
    /// Headers added to, or overriding, every kept task (`--header`).
    pub headers: Vec<(String, String)>,
    /// Lowercased names of the input's headers that are left out of every task
    /// (`--drop-header`); `headers` are still added.
    pub drop_headers: Vec<String>,
    /// Which of `users`, `spawn_rate` and `duration` were given on the command line. Settings
    /// read from the input (a JMeter thread group) replace only the others.
    pub given: GivenLoad,
    /// The base URL that replaces an API description's servers (`--server`).
    pub server: Option<String>,
    /// Import operations marked deprecated (OpenAPI).
    pub include_deprecated: bool,
    /// A Postman environment file (`--env`): its name and content.
    pub environment: Option<(String, Vec<u8>)>,
    /// The directory of the input file, against which relative references (OpenAPI `$ref`s
    /// to other files) are read; `None` for standard input.
    pub base_dir: Option<std::path::PathBuf>,
    /// When set, files the input refers to are read only inside this directory (canonical);
    /// a reference that resolves elsewhere, through `..` or a link, is reported and not read.
    pub files_within: Option<std::path::PathBuf>,
    /// Find values responses produced that later requests send, and extract them (HAR).
    pub correlate: bool,
    /// Checks learned from recorded JSON response bodies (HAR).
    pub assert_body: crate::BodyChecks,
    /// A second recording of the same flow (a HAR's bytes): values that differ between the
    /// two are dynamic (`--compare`).
    pub compare: Option<Vec<u8>>,
    /// Descriptors that show recorded gRPC messages as JSON (`--proto`).
    pub grpc_schema: Option<std::sync::Arc<crate::GrpcSchema>>,
}

/// Load settings given explicitly on the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GivenLoad {
    pub users: bool,
    pub spawn_rate: bool,
    pub duration: bool,
}

impl Default for ImportOptions {
    /// LoadDensity's importer defaults: `fast_http_user`, 10 users, spawn rate 5, 60 s.
    fn default() -> Self {
        ImportOptions {
            filter: Filter::default(),
            inline_secrets: false,
            think_time: false,
            user: "fast_http_user".into(),
            users: 10,
            spawn_rate: 5.0,
            duration: 60,
            headers: Vec::new(),
            drop_headers: Vec::new(),
            given: GivenLoad::default(),
            server: None,
            include_deprecated: false,
            environment: None,
            base_dir: None,
            files_within: None,
            correlate: true,
            assert_body: crate::BodyChecks::Shape,
            compare: None,
            grpc_schema: None,
        }
    }
}

/// The result of an import.
///
/// The tasks are held as text, each already in the plan's canonical form, not as a JSON value
/// tree: a tree costs several times the text's size, and a 20,000-request recording would need
/// far more memory for its plan than for the recording. [`Import::write_plan`] streams the text
/// out; [`Import::plan`] builds the document for callers that want to inspect it.
#[derive(Debug, Clone)]
pub struct Import {
    /// The plan with [`TASKS_SENTINEL`] standing for the tasks of its `LD_start_test`.
    skeleton: Plan,
    /// Each task pretty-printed as it stands in the plan, [`TASK_LEVEL`] levels deep.
    tasks: TaskTexts,
    /// Secrets moved out of the plan, for the side file.
    pub secrets: Vec<Secret>,
    pub summary: Summary,
    /// For each task, the index of the input entry it came from (HAR imports; empty for the
    /// other formats).
    pub(crate) task_entries: Vec<usize>,
    /// The rules correlation found (HAR imports with correlation on).
    pub correlation: Option<Box<crate::learn::Report>>,
}

/// Stands for the task list in [`Import::skeleton`]; control characters keep it from colliding
/// with anything a plan holds.
const TASKS_SENTINEL: &str = "\u{1}ld-tasks\u{1}";
/// The sentinel as it appears in the skeleton's JSON text.
const TASKS_SENTINEL_JSON: &str = "\"\\u0001ld-tasks\\u0001\"";
/// How deep the tasks stand in the plan's text: `{"load_density": [["LD_start_test", {"tasks":
/// {"tasks": [` (see [`Builder::finish`]). Tasks are written at this depth once, when they are
/// made, so that writing the plan copies them as they are.
const TASK_LEVEL: usize = 6;
/// The indentation of a line [`TASK_LEVEL`] levels deep.
const TASK_INDENT: &str = "            ";
/// What stands between two tasks in the plan's text: `,\n` and [`TASK_INDENT`].
const TASK_SEPARATOR: &str = ",\n            ";

/// The tasks' texts one after another, each but the last followed by [`TASK_SEPARATOR`]: the
/// list as the plan holds it, written out at once, with no allocation per task.
#[derive(Debug, Clone, Default)]
struct TaskTexts {
    text: String,
    /// Where each task starts in `text`.
    starts: Vec<usize>,
}

impl TaskTexts {
    fn len(&self) -> usize {
        self.starts.len()
    }

    fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Task `i`, without the separator after it.
    fn get(&self, i: usize) -> &str {
        let start = self.starts.get(i).copied().unwrap_or(self.text.len());
        let end = match self.starts.get(i + 1) {
            Some(next) => next - TASK_SEPARATOR.len(),
            None => self.text.len(),
        };
        self.text.get(start..end).unwrap_or_default()
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Starts a task: the text it is to be written to.
    fn begin(&mut self) -> &mut String {
        if !self.starts.is_empty() {
            self.text.push_str(TASK_SEPARATOR);
        }
        self.starts.push(self.text.len());
        &mut self.text
    }
}

impl Import {
    /// The side file's text (`NAME=value` lines), or `None` when no secret was moved.
    pub fn secrets_env(&self) -> Option<String> {
        (!self.secrets.is_empty()).then(|| render_env(&self.secrets))
    }

    /// The side file's text when `existing` (a secrets file already there, `NAME=value`
    /// lines) is kept: its lines as they are, then the secrets it does not hold yet. A name
    /// it holds with another value is an error naming it: merging would change what another
    /// plan sends.
    pub fn merged_secrets_env(&self, existing: &str) -> Result<String, String> {
        let mut held: Vec<(&str, &str)> = Vec::new();
        for line in existing.lines() {
            let line = line.trim();
            let line = line.strip_prefix("export ").unwrap_or(line);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                held.push((k.trim(), v.trim()));
            }
        }
        let mut out = existing.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        for s in &self.secrets {
            match held.iter().find(|(k, _)| *k == s.name) {
                Some((_, v)) if *v == s.value => {}
                Some(_) => return Err(s.name.clone()),
                None => {
                    out.push_str(&s.name);
                    out.push('=');
                    out.push_str(&s.value);
                    out.push('\n');
                }
            }
        }
        Ok(out)
    }

    /// Names the plan's secrets file with the `ld_secrets_file` variable (in the plan's
    /// `LD_register_variables`, added when there is none), for a secrets file that is not the
    /// one `ld replay` looks for beside the plan.
    pub fn name_secrets_file(&mut self, path: &str) {
        let actions = &mut self.skeleton.actions;
        let at = match actions
            .iter()
            .position(|a| a.command == "LD_register_variables")
        {
            Some(i) => i,
            None => {
                let mut kwargs = Map::new();
                kwargs.insert("variables".into(), Value::Object(Map::new()));
                actions.insert(0, Action::with_kwargs("LD_register_variables", kwargs));
                0
            }
        };
        if let Args::Kwargs(kwargs) = &mut actions[at].args
            && let Some(Value::Object(vars)) = kwargs.get_mut("variables")
        {
            vars.insert("ld_secrets_file".into(), Value::String(path.to_string()));
        }
    }

    /// The tasks as JSON values, in plan order.
    pub(crate) fn task_values(&self) -> Vec<Value> {
        self.tasks
            .iter()
            .map(|t| serde_json::from_str(t).unwrap_or(Value::Null))
            .collect()
    }

    /// Replaces the tasks with `tasks`, written as the plan's text has them.
    pub(crate) fn set_tasks(&mut self, tasks: &[Value]) {
        let mut texts = TaskTexts::default();
        for task in tasks {
            let out = texts.begin();
            nested_value(out, TASK_LEVEL, task);
        }
        self.tasks = texts;
    }

    /// The number of tasks in the plan.
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// The whole plan as a document.
    pub fn plan(&self) -> Plan {
        let tasks: Vec<Value> = self
            .tasks
            .iter()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect();
        let mut plan = self.skeleton.clone();
        let mut tasks = Some(tasks);
        for action in &mut plan.actions {
            if let Args::Kwargs(kwargs) = &mut action.args
                && let Some(Value::Object(t)) = kwargs.get_mut("tasks")
                && let Some(list) = t.get_mut("tasks")
                && let Some(tasks) = tasks.take()
            {
                *list = Value::Array(tasks);
            }
        }
        plan
    }

    /// Writes the plan's canonical text (as [`Plan::write_json`] would write [`Import::plan`]).
    pub fn write_plan<W: std::io::Write>(&self, mut out: W) -> std::io::Result<()> {
        let skeleton = self.skeleton.to_json_string();
        let Some(at) = skeleton.find(TASKS_SENTINEL_JSON) else {
            return out.write_all(skeleton.as_bytes());
        };
        let line_start = skeleton[..at].rfind('\n').map_or(0, |i| i + 1);
        let indent = &skeleton[line_start..at];
        let after = &skeleton[at + TASKS_SENTINEL_JSON.len()..];
        if self.tasks.is_empty() {
            // `[` ends the line before the sentinel's; an empty list is written `[]`.
            let open = skeleton[..line_start].trim_end_matches('\n');
            out.write_all(open.as_bytes())?;
            let close = after.trim_start_matches('\n').trim_start();
            return out.write_all(close.as_bytes());
        }
        out.write_all(&skeleton.as_bytes()[..line_start])?;
        if indent == TASK_INDENT {
            // The tasks are held as the plan's text has them, separators included.
            out.write_all(indent.as_bytes())?;
            out.write_all(self.tasks.text.as_bytes())?;
            return out.write_all(after.as_bytes());
        }
        // Each line of a task starts with at least TASK_INDENT: written at another depth, a
        // task is indented again.
        let (from, to) = (format!("\n{TASK_INDENT}"), format!("\n{indent}"));
        for (i, task) in self.tasks.iter().enumerate() {
            if i > 0 {
                out.write_all(b",\n")?;
            }
            out.write_all(indent.as_bytes())?;
            out.write_all(task.replace(&from, &to).as_bytes())?;
        }
        out.write_all(after.as_bytes())
    }

    /// The plan's canonical text.
    pub fn to_json_string(&self) -> String {
        let mut out = Vec::new();
        let _ = self.write_plan(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// What happened to the input's requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub read: usize,
    pub kept: usize,
    /// Dropped requests by reason, e.g. `"--exclude"` → 3.
    pub dropped: BTreeMap<String, usize>,
    /// Values replaced by `${env.NAME}` placeholders.
    pub secrets_replaced: usize,
    /// Things worth knowing that did not stop the import, grouped with counts.
    pub warnings: BTreeMap<String, usize>,
    /// Kept entries that became WebSocket tasks (connect, messages, close), one session each.
    pub websockets: usize,
    /// Kept entries that became server-sent events tasks (open, wait, close).
    pub event_streams: usize,
}

impl Summary {
    pub(crate) fn drop(&mut self, reason: &str) {
        match self.dropped.get_mut(reason) {
            Some(n) => *n += 1,
            None => {
                self.dropped.insert(reason.to_string(), 1);
            }
        }
    }

    pub(crate) fn warn<M: AsRef<str> + Into<String>>(&mut self, message: M) {
        match self.warnings.get_mut(message.as_ref()) {
            Some(n) => *n += 1,
            None => {
                self.warnings.insert(message.into(), 1);
            }
        }
    }

    /// A few lines for stderr.
    pub fn render(&self) -> String {
        let mut out = format!("read {} requests, kept {}", self.read, self.kept);
        let mut sessions = Vec::new();
        match self.websockets {
            0 => {}
            1 => sessions.push("1 WebSocket session".to_string()),
            n => sessions.push(format!("{n} WebSocket sessions")),
        }
        match self.event_streams {
            0 => {}
            1 => sessions.push("1 event stream".to_string()),
            n => sessions.push(format!("{n} event streams")),
        }
        if !sessions.is_empty() {
            out.push_str(&format!(" (of which {})", sessions.join(", ")));
        }
        if !self.dropped.is_empty() {
            let parts: Vec<String> = self
                .dropped
                .iter()
                .map(|(reason, n)| format!("{n} {reason}"))
                .collect();
            out.push_str(&format!("; dropped {}", parts.join(", ")));
        }
        if self.secrets_replaced > 0 {
            out.push_str(&format!(
                "; {} secret values moved out",
                self.secrets_replaced
            ));
        }
        for (message, n) in &self.warnings {
            if *n > 1 {
                out.push_str(&format!("\nwarning: {message} ({n} times)"));
            } else {
                out.push_str(&format!("\nwarning: {message}"));
            }
        }
        out
    }
}

/// Headers that must not be replayed as recorded: HTTP/2 pseudo-headers (`:authority`, ...),
/// hop-by-hop headers, and those the client computes for the request it sends.
pub(crate) fn is_dropped_header(name: &str) -> bool {
    name.starts_with(':')
        || [
            "host",
            "content-length",
            "connection",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "te",
            "trailer",
            "upgrade",
        ]
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

/// A request in the importer-neutral form the shared steps work on.
#[derive(Debug, Default)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) url: String,
    /// Headers as recorded, in order, duplicates included.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Body,
    /// The recorded or declared status, when there is one.
    pub(crate) status: Option<u16>,
    pub(crate) think_time: Option<f64>,
    /// The task's name; `None` derives it from the method and the URL's path.
    pub(crate) name: Option<String>,
    /// `verify: false` for TLS without certificate checks (curl `-k`).
    pub(crate) verify: Option<bool>,
    pub(crate) allow_redirects: Option<bool>,
    /// Seconds.
    pub(crate) timeout: Option<f64>,
    /// Task members beyond the request itself.
    pub(crate) extras: Extras,
}

/// Task members an importer sets beyond the request itself (curl's `--aws-sigv4`,
/// `--cacert`, `--cert`, `--retry`).
#[derive(Debug, Default)]
pub(crate) struct Extras {
    /// The `auth` object's members, in order; written after the body.
    pub(crate) auth: Vec<AuthMember>,
    /// Members written after `verify`, in order (`verify` as a CA path, `cert`, `retry`).
    pub(crate) members: Vec<(&'static str, Value)>,
    /// Checks written after the status assertion (JMeter assertions).
    pub(crate) assertions: Vec<Value>,
    /// The task's `extract` list, written last (JMeter extractors).
    pub(crate) extract: Vec<Value>,
}

/// One member of an `auth` object.
#[derive(Debug)]
pub(crate) struct AuthMember {
    pub(crate) key: &'static str,
    pub(crate) value: String,
    /// For a credential: the name its value goes by in the secrets file.
    pub(crate) secret: Option<&'static str>,
}

/// A request body as the plan will carry it.
#[derive(Debug, Default)]
pub(crate) enum Body {
    #[default]
    None,
    Json(Value),
    /// JSON text written exactly as serde_json writes its value (see `canonical`): `json`.
    JsonText(String),
    /// Form fields, sent urlencoded.
    Form(Map<String, Value>),
    /// Text sent verbatim (`data` as a string).
    Text(String),
    /// Bytes (`body: {"base64": ...}`).
    Base64(String),
    /// Parts (`body: {"multipart": [...]}`); the client writes the boundary, so a recorded
    /// `Content-Type` is dropped.
    Multipart(Vec<Value>),
}

/// Builds tasks with the shared rules and collects the plan.
pub(crate) struct Builder<'a> {
    options: &'a ImportOptions,
    secrets: Secrets,
    /// Tasks in their canonical text (see [`Import`]).
    tasks: TaskTexts,
    /// The end of the task being written, from where its think time goes (see
    /// [`Builder::commit`]).
    tail: String,
    /// Where [`Builder::push`] drafts a task, kept to save allocations.
    drafts: Drafts,
    pub(crate) summary: Summary,
    /// Emitted as `LD_register_variables` before the test, for `${var.NAME}` placeholders.
    variables: Map<String, Value>,
    /// Emitted as `LD_register_csv_sources` (`{name, file_path, cycle}` each).
    csv_sources: Vec<Value>,
    /// Load settings read from the input.
    users: Option<u64>,
    spawn_rate: Option<f64>,
    duration: Option<Option<u64>>,
    /// Sessions opened so far, by connection prefix (see [`Socket::connection`]).
    connections: Vec<(String, usize)>,
    /// The input entry the tasks being committed come from (HAR).
    pub(crate) entry: usize,
    /// The entry of each committed task.
    task_entries: Vec<usize>,
    /// When the task last committed was sent in the recording, written as its `recorded`
    /// member when it is closed (see [`Recorded`]).
    pub(crate) recorded: Option<Recorded>,
}

/// When and on which connection a task's request was recorded: what `ld replay --pace
/// recorded` replays it by. `at` is seconds after the recording's first kept request;
/// `session` numbers the recorded connections in the order they first appear.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Recorded {
    pub(crate) at: f64,
    pub(crate) session: Option<u32>,
}

impl<'a> Builder<'a> {
    pub(crate) fn new(options: &'a ImportOptions) -> Builder<'a> {
        Builder {
            options,
            secrets: Secrets::new(options.inline_secrets),
            tasks: TaskTexts::default(),
            tail: String::new(),
            drafts: Drafts::default(),
            summary: Summary::default(),
            variables: Map::new(),
            csv_sources: Vec::new(),
            users: None,
            spawn_rate: None,
            duration: None,
            connections: Vec::new(),
            entry: 0,
            task_entries: Vec::new(),
            recorded: None,
        }
    }

    /// Registers a variable for `${var.NAME}`; a later value for the same name wins.
    pub(crate) fn variable(&mut self, name: &str, value: Value) {
        self.variables.insert(name.to_string(), value);
    }

    /// Registers a CSV source for `${csv.NAME.COLUMN}`.
    pub(crate) fn csv_source(&mut self, name: &str, file_path: &str, cycle: bool) {
        let mut source = Map::new();
        source.insert("name".into(), Value::String(name.to_string()));
        source.insert("file_path".into(), Value::String(file_path.to_string()));
        source.insert("cycle".into(), Value::Bool(cycle));
        self.csv_sources.push(Value::Object(source));
    }

    /// Moves the value of a variable that holds a credential to the side file: the
    /// placeholder to use instead of `${var.NAME}`, or `None` to keep it as a variable.
    pub(crate) fn secret_variable(
        &mut self,
        name: &str,
        value: &str,
        forced: bool,
    ) -> Option<String> {
        self.secrets.variable(name, value, forced)
    }

    /// Load settings read from the input; those given on the command line still win.
    pub(crate) fn load(
        &mut self,
        users: Option<u64>,
        spawn_rate: Option<f64>,
        duration: Option<Option<u64>>,
    ) {
        if !self.options.given.users && users.is_some() {
            self.users = users;
        }
        if !self.options.given.spawn_rate && spawn_rate.is_some() {
            self.spawn_rate = spawn_rate;
        }
        if !self.options.given.duration && duration.is_some() {
            self.duration = duration;
        }
    }

    /// The options the import runs with.
    pub(crate) fn options(&self) -> &'a ImportOptions {
        self.options
    }

    pub(crate) fn filter(&self) -> &Filter {
        &self.options.filter
    }

    /// The rules a task is drafted with.
    pub(crate) fn rules(&self) -> Rules<'_> {
        Rules {
            options: self.options,
            secrets: self.secrets.rules(),
        }
    }

    /// The rules that tell secrets apart.
    pub(crate) fn secret_rules(&self) -> &SecretRules {
        self.secrets.rules()
    }

    /// Turns one kept request into a task.
    pub(crate) fn push(&mut self, request: Request) {
        let view = RequestView {
            method: &request.method,
            url: &request.url,
            body: &request.body,
            status: request.status,
            name: request.name.as_deref(),
            verify: request.verify,
            allow_redirects: request.allow_redirects,
            timeout: request.timeout.filter(|t| *t > 0.0),
            socket: None,
        };
        let mut drafts = std::mem::take(&mut self.drafts);
        drafts.clear();
        let headers = request
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()));
        let (task, joined) = self
            .rules()
            .draft_with(&mut drafts, &view, headers, &request.extras);
        if joined {
            self.summary.warn(JOINED_HEADERS);
        }
        self.commit(&drafts, &task);
        self.close(request.think_time);
        self.drafts = drafts;
    }

    /// Writes a drafted task into the plan up to its think time, giving its secrets their
    /// names; [`Builder::close`] ends it. Tasks are committed in plan order, since the names
    /// of secrets follow the order in which they are first met.
    pub(crate) fn commit(&mut self, drafts: &Drafts, task: &Drafted) {
        self.task_entries.push(self.entry);
        let out = self.tasks.begin();
        let text = |from: usize, to: usize| drafts.text.get(from..to).unwrap_or_default();
        let data = |(from, to): (usize, usize)| drafts.data.get(from..to).unwrap_or_default();
        let mut last = task.start;
        for hole in drafts
            .holes
            .get(task.holes.0..task.holes.1)
            .unwrap_or_default()
        {
            out.push_str(text(last, hole.at));
            last = hole.at;
            if let Fill::Connection { opens } = hole.fill {
                let prefix = data(hole.name);
                let n = match self.connections.iter_mut().find(|(p, _)| p == prefix) {
                    Some((_, n)) => n,
                    None => {
                        self.connections.push((prefix.to_string(), 0));
                        &mut self.connections.last_mut().expect("pushed").1
                    }
                };
                if opens {
                    *n += 1;
                }
                string(out, &format!("{prefix}{n}"));
                continue;
            }
            let placeholder = self.secrets.placeholder(data(hole.name), data(hole.value));
            match hole.fill {
                Fill::Quoted => string(out, placeholder),
                Fill::Bare => escape(out, placeholder),
                Fill::Nothing | Fill::Connection { .. } => {}
            }
        }
        out.push_str(text(last, task.think_at));
        self.tail.clear();
        self.tail.push_str(text(task.think_at, task.end));
    }

    /// Ends the task last committed, with its think time (seconds) when above zero, and counts
    /// its request as kept.
    pub(crate) fn close(&mut self, think_time: Option<f64>) {
        self.close_step(think_time);
        self.summary.kept += 1;
    }

    /// Ends the task last committed, one step of a request that gives several tasks (a
    /// WebSocket session): the request is counted by [`Builder::close`] on its last task.
    pub(crate) fn close_step(&mut self, think_time: Option<f64>) {
        let out = &mut self.tasks.text;
        // A think time that is not a finite number is left out, as the model leaves it out.
        if let Some(t) = think_time
            .filter(|t| *t > 0.0)
            .and_then(|t| Number::from_f64((t * 1000.0).round() / 1000.0))
        {
            member(out, &mut false, TASK_LEVEL + 1, "think_time");
            nested_value(out, TASK_LEVEL + 1, &t);
        }
        if let Some(r) = self.recorded.take()
            && let Some(at) = Number::from_f64((r.at.max(0.0) * 1000.0).round() / 1000.0)
        {
            let mut m = Map::new();
            m.insert("at".into(), Value::Number(at));
            if let Some(s) = r.session {
                m.insert("session".into(), Value::from(s));
            }
            member(out, &mut false, TASK_LEVEL + 1, "recorded");
            nested_value(out, TASK_LEVEL + 1, &m);
        }
        out.push_str(&self.tail);
    }

    /// The plan: one `LD_start_test` in sequence mode.
    pub(crate) fn finish(mut self) -> Import {
        let settings = StartTest {
            user_detail_dict: {
                let mut m = Map::new();
                m.insert("user".into(), Value::String(self.options.user.clone()));
                m
            },
            tasks: None,
            user_count: Some(self.users.unwrap_or(self.options.users)),
            spawn_rate: Some(number(self.spawn_rate.unwrap_or(self.options.spawn_rate))),
            test_time: Some(match self.duration {
                Some(d) => d.map(Number::from),
                None => Some(Number::from(self.options.duration)),
            }),
            extra: Map::new(),
        };
        let mut tasks = Map::new();
        tasks.insert("mode".into(), Value::String("sequence".into()));
        tasks.insert(
            "tasks".into(),
            Value::Array(vec![Value::String(TASKS_SENTINEL.into())]),
        );
        let mut action = Action::start_test(&settings);
        if let Args::Kwargs(kwargs) = &mut action.args {
            // `tasks` goes where the typed model puts it, after `user_detail_dict`.
            kwargs.shift_insert(1, "tasks".into(), Value::Object(tasks));
        }
        self.summary.secrets_replaced = self.secrets.replaced;
        // LoadDensity's own generators register variables with an action before the test;
        // its resolver is global, so every user sees them.
        let mut actions = Vec::new();
        if !self.variables.is_empty() {
            let mut kwargs = Map::new();
            let variables = std::mem::take(&mut self.variables);
            kwargs.insert("variables".into(), Value::Object(variables));
            actions.push(Action::with_kwargs("LD_register_variables", kwargs));
        }
        if !self.csv_sources.is_empty() {
            let mut kwargs = Map::new();
            let sources = std::mem::take(&mut self.csv_sources);
            kwargs.insert("sources".into(), Value::Array(sources));
            actions.push(Action::with_kwargs("LD_register_csv_sources", kwargs));
        }
        actions.push(action);
        Import {
            skeleton: Plan {
                wrapped: true,
                actions,
            },
            tasks: self.tasks,
            secrets: self.secrets.found,
            summary: self.summary,
            task_entries: self.task_entries,
            correlation: None,
        }
    }
}

/// serde_json's pretty format (two spaces, as [`Plan::write_json`] writes) for a value that
/// stands [`TASK_LEVEL`] levels deep in a document: the same bytes as the value pretty-printed
/// on its own with [`TASK_INDENT`] after every line break.
struct Nested {
    level: usize,
    has_value: bool,
}

impl Default for Nested {
    fn default() -> Self {
        Nested {
            level: TASK_LEVEL,
            has_value: false,
        }
    }
}

impl Nested {
    fn line<W: ?Sized + std::io::Write>(&self, out: &mut W, first: bool) -> std::io::Result<()> {
        out.write_all(if first { b"\n" } else { b",\n" })?;
        self.indent(out)
    }

    fn indent<W: ?Sized + std::io::Write>(&self, out: &mut W) -> std::io::Result<()> {
        for _ in 0..self.level {
            out.write_all(b"  ")?;
        }
        Ok(())
    }

    fn close<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
        bracket: &[u8],
    ) -> std::io::Result<()> {
        self.level = self.level.saturating_sub(1);
        if self.has_value {
            out.write_all(b"\n")?;
            self.indent(out)?;
        }
        out.write_all(bracket)
    }
}

impl serde_json::ser::Formatter for Nested {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.level += 1;
        self.has_value = false;
        out.write_all(b"[")
    }

    fn end_array<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.close(out, b"]")
    }

    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.line(out, first)
    }

    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.level += 1;
        self.has_value = false;
        out.write_all(b"{")
    }

    fn end_object<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.close(out, b"}")
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.line(out, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
    ) -> std::io::Result<()> {
        out.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// The summary's warning for joined headers.
pub(crate) const JOINED_HEADERS: &str = "repeated header names were joined into one header";

/// The rules that turn a request into task text: the options and the secret rules, shared by
/// the threads of an import.
#[derive(Clone, Copy)]
pub(crate) struct Rules<'r> {
    options: &'r ImportOptions,
    secrets: &'r SecretRules,
}

/// A request as the shared steps read it, borrowed from wherever the importer holds it.
pub(crate) struct RequestView<'r> {
    pub(crate) method: &'r str,
    pub(crate) url: &'r str,
    pub(crate) body: &'r Body,
    pub(crate) status: Option<u16>,
    /// The task's name; `None` derives it from the method and the URL's path.
    pub(crate) name: Option<&'r str>,
    pub(crate) verify: Option<bool>,
    pub(crate) allow_redirects: Option<bool>,
    /// Seconds.
    pub(crate) timeout: Option<f64>,
    /// What a WebSocket or server-sent events task adds; `None` for an HTTP task.
    pub(crate) socket: Option<&'r Socket>,
}

/// The members of a WebSocket or server-sent events task that an HTTP task does not have.
#[derive(Debug, Default)]
pub(crate) struct Socket {
    /// `websocket` or `sse`.
    pub(crate) protocol: &'static str,
    /// The connection the steps of one session share: its name is this prefix and the number
    /// of the session among those with the prefix, given in plan order; `true` for the step
    /// that opens the session (the next number).
    pub(crate) connection: Option<(&'static str, bool)>,
    /// Written after the headers, in order (`payload`, `subprotocols`, `count`...).
    pub(crate) fields: Vec<(&'static str, Value)>,
    /// Written in place of the `status_code` assertion of an HTTP task; none when empty.
    pub(crate) assertions: Vec<Value>,
}

/// Tasks written ahead of the plan, in any order and any thread, with holes for what only the
/// tasks before them decide: the names of secrets, given in the order the secrets are met,
/// and think times, which need the next request.
#[derive(Debug, Default)]
pub(crate) struct Drafts {
    /// The tasks' text, holes left out.
    text: String,
    /// The names and values of the secrets in the holes.
    data: String,
    holes: Vec<Hole>,
}

impl Drafts {
    pub(crate) fn clear(&mut self) {
        self.text.clear();
        self.data.clear();
        self.holes.clear();
    }
}

/// Where a secret's placeholder goes, and how.
#[derive(Debug)]
struct Hole {
    /// In [`Drafts::text`].
    at: usize,
    fill: Fill,
    /// In [`Drafts::data`].
    name: (usize, usize),
    value: (usize, usize),
}

#[derive(Debug, Clone, Copy)]
enum Fill {
    /// A JSON string of its own (a header's value).
    Quoted,
    /// Inside a JSON string (a query parameter of the URL).
    Bare,
    /// Nowhere: a header replaced by `--header`, whose value is still named as a secret.
    Nothing,
    /// Not a secret: the name of a session's connection (see [`Socket::connection`]), a JSON
    /// string of its own; the hole's name is its prefix.
    Connection { opens: bool },
}

/// One task in a [`Drafts`].
#[derive(Debug, Clone)]
pub(crate) struct Drafted {
    start: usize,
    end: usize,
    /// Its holes, in [`Drafts::holes`].
    holes: (usize, usize),
    /// Where its think time would go.
    think_at: usize,
}

impl<'r> Rules<'r> {
    pub(crate) fn new(options: &'r ImportOptions, secrets: &'r SecretRules) -> Rules<'r> {
        Rules { options, secrets }
    }

    pub(crate) fn filter(&self) -> &'r Filter {
        &self.options.filter
    }

    pub(crate) fn grpc_schema(&self) -> Option<&'r crate::GrpcSchema> {
        self.options.grpc_schema.as_deref()
    }

    /// Writes the task for `request` and its recorded `headers` into `drafts`, byte for byte
    /// what serializing the plan model's `Task` with [`Nested`] writes, without building the
    /// task and its maps: most of an import's output is headers, and each would otherwise be
    /// copied into a map and out again. `true` in second place when repeated header names were
    /// joined.
    pub(crate) fn draft<'h>(
        &self,
        drafts: &mut Drafts,
        request: &RequestView<'_>,
        headers: impl IntoIterator<Item = (&'h str, &'h str)>,
    ) -> (Drafted, bool) {
        self.draft_with(drafts, request, headers, &Extras::default())
    }

    /// As [`Rules::draft`], with `extras` written in the task too: `auth` after the body
    /// (credentials as secrets), the other members after `verify`.
    pub(crate) fn draft_with<'h>(
        &self,
        drafts: &mut Drafts,
        request: &RequestView<'_>,
        headers: impl IntoIterator<Item = (&'h str, &'h str)>,
        extras: &Extras,
    ) -> (Drafted, bool) {
        // Gathered in a list, which the few headers of a request make cheaper to search by
        // name than a map.
        let multipart = matches!(request.body, Body::Multipart(_));
        let mut list: Vec<(&str, Cow<'h, str>)> = Vec::with_capacity(16);
        let mut joined = false;
        for (key, value) in headers {
            if is_dropped_header(key)
                || (multipart && key.eq_ignore_ascii_case("content-type"))
                || self
                    .options
                    .drop_headers
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(key))
            {
                continue;
            }
            match list.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
                Some((_, v)) => {
                    // One name, several lines: HTTP allows joining them with ", " (cookies
                    // with "; "), which is what the server would have seen as one list.
                    joined = true;
                    let sep = if key.eq_ignore_ascii_case("cookie") {
                        "; "
                    } else {
                        ", "
                    };
                    let v = v.to_mut();
                    v.push_str(sep);
                    v.push_str(value);
                }
                None => list.push((key, Cow::Borrowed(value))),
            }
        }
        // `--header` replaces a recorded header of the same name and goes last; of several
        // with one name, the last wins.
        let overrides = &self.options.headers;
        let overridden = |name: &str| overrides.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        let last_override = |i: usize, name: &str| {
            !overrides[i + 1..]
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(name))
        };
        let written = list.iter().filter(|(k, _)| !overridden(k)).count()
            + (0..overrides.len())
                .filter(|&i| last_override(i, &overrides[i].0))
                .count();

        let Drafts {
            text: out,
            data,
            holes,
        } = drafts;
        let start = out.len();
        let first_hole = holes.len();
        let inner = TASK_LEVEL + 1;
        let mut first = true;
        out.push('{');
        // A gRPC task has none: its URL names the RPC.
        if request.socket.is_none_or(|s| s.protocol != "grpc") {
            member(out, &mut first, inner, "method");
            let method_at = out.len();
            string(out, request.method);
            // Escapes hold no capital letters: lowering the written text lowers the method.
            if let Some(method) = out.get_mut(method_at..) {
                method.make_ascii_lowercase();
            }
        }
        member(out, &mut first, inner, "request_url");
        out.push('"');
        self.url(out, data, holes, request.url);
        out.push('"');
        member(out, &mut first, inner, "name");
        match request.name {
            Some(name) => string(out, name),
            None => string(out, &crate::naming::task_name(request.method, request.url)),
        }
        if let Some(socket) = request.socket {
            member(out, &mut first, inner, "protocol");
            string(out, socket.protocol);
            if let Some((prefix, opens)) = socket.connection {
                member(out, &mut first, inner, "connection");
                let fill = Fill::Connection { opens };
                hole(out, data, holes, fill, prefix, "");
            }
        }
        if written > 0 {
            member(out, &mut first, inner, "headers");
            out.push('{');
            let mut first_header = true;
            // Secrets are named in the order of the recorded headers, replaced ones included.
            for (key, value) in &list {
                let secret = self.secrets.header(key, value);
                if overridden(key) {
                    if secret {
                        hole(out, data, holes, Fill::Nothing, key, value);
                    }
                    continue;
                }
                member(out, &mut first_header, inner + 1, key);
                if secret {
                    hole(out, data, holes, Fill::Quoted, key, value);
                } else {
                    string(out, value);
                }
            }
            for (i, (key, value)) in overrides.iter().enumerate() {
                if last_override(i, key) {
                    member(out, &mut first_header, inner + 1, key);
                    string(out, value);
                }
            }
            out.push('\n');
            indent(out, inner);
            out.push('}');
        } else {
            for (key, value) in &list {
                if self.secrets.header(key, value) {
                    hole(out, data, holes, Fill::Nothing, key, value);
                }
            }
        }
        for (key, value) in request.socket.iter().flat_map(|s| &s.fields) {
            member(out, &mut first, inner, key);
            nested_value(out, inner, value);
        }
        match request.body {
            Body::None => {}
            Body::Json(v) => {
                member(out, &mut first, inner, "json");
                self.body_value(out, data, holes, inner, v);
            }
            Body::JsonText(t) => {
                member(out, &mut first, inner, "json");
                let parsed = self
                    .secrets
                    .may_hold_field(t)
                    .then(|| serde_json::from_str::<Value>(t).ok())
                    .flatten()
                    .filter(|v| self.has_secret_field(v));
                match parsed {
                    Some(v) => self.body_value(out, data, holes, inner, &v),
                    None => crate::canonical::write_pretty(out, inner, t),
                }
            }
            Body::Form(map) => {
                member(out, &mut first, inner, "data");
                let fields = Value::Object(map.clone());
                self.body_value(out, data, holes, inner, &fields);
            }
            Body::Text(t) => {
                member(out, &mut first, inner, "data");
                string(out, t);
            }
            Body::Base64(b) => {
                member(out, &mut first, inner, "body");
                out.push('{');
                member(out, &mut true, inner + 1, "base64");
                string(out, b);
                out.push('\n');
                indent(out, inner);
                out.push('}');
            }
            Body::Multipart(parts) => match loaddensity_form(parts) {
                Some((fields, files)) => {
                    if !fields.is_empty() {
                        member(out, &mut first, inner, "data");
                        self.body_value(out, data, holes, inner, &Value::Object(fields));
                    }
                    member(out, &mut first, inner, "files");
                    nested_value(out, inner, &Value::Object(files));
                }
                None => {
                    member(out, &mut first, inner, "body");
                    out.push('{');
                    member(out, &mut true, inner + 1, "multipart");
                    nested_value(out, inner + 1, parts);
                    out.push('\n');
                    indent(out, inner);
                    out.push('}');
                }
            },
        }
        if !extras.auth.is_empty() {
            member(out, &mut first, inner, "auth");
            out.push('{');
            let mut first_member = true;
            for m in &extras.auth {
                member(out, &mut first_member, inner + 1, m.key);
                match m.secret {
                    Some(name) if self.secrets.credential(&m.value) => {
                        hole(out, data, holes, Fill::Quoted, name, &m.value);
                    }
                    _ => string(out, &m.value),
                }
            }
            out.push('\n');
            indent(out, inner);
            out.push('}');
        }
        if let Some(t) = request.timeout {
            member(out, &mut first, inner, "timeout");
            nested_value(out, inner, &number(t));
        }
        if let Some(b) = request.allow_redirects {
            member(out, &mut first, inner, "allow_redirects");
            out.push_str(if b { "true" } else { "false" });
        }
        if let Some(b) = request.verify {
            member(out, &mut first, inner, "verify");
            out.push_str(if b { "true" } else { "false" });
        }
        for (key, value) in &extras.members {
            member(out, &mut first, inner, key);
            nested_value(out, inner, value);
        }
        let think_at = out.len();
        if let Some(socket) = request.socket {
            if !socket.assertions.is_empty() {
                member(out, &mut first, inner, "assertions");
                nested_value(out, inner, &socket.assertions);
            }
        } else if !extras.assertions.is_empty() {
            let status = request
                .status
                .map(|s| serde_json::json!({"type": "status_code", "value": s}));
            let all: Vec<&Value> = status.iter().chain(&extras.assertions).collect();
            member(out, &mut first, inner, "assertions");
            nested_value(out, inner, &all);
        } else if let Some(status) = request.status {
            member(out, &mut first, inner, "assertions");
            out.push('[');
            out.push('\n');
            indent(out, inner + 1);
            out.push('{');
            member(out, &mut true, inner + 2, "type");
            string(out, "status_code");
            member(out, &mut false, inner + 2, "value");
            let _ = std::fmt::Write::write_fmt(out, format_args!("{status}"));
            out.push('\n');
            indent(out, inner + 1);
            out.push('}');
            out.push('\n');
            indent(out, inner);
            out.push(']');
        }
        if !extras.extract.is_empty() {
            member(out, &mut first, inner, "extract");
            nested_value(out, inner, &extras.extract);
        }
        out.push('\n');
        indent(out, TASK_LEVEL);
        out.push('}');
        let task = Drafted {
            start,
            end: out.len(),
            holes: (first_hole, holes.len()),
            think_at,
        };
        (task, joined)
    }

    /// The URL's text inside its JSON string, with holes for the values of secret query
    /// parameters; every other byte as recorded.
    fn url(&self, out: &mut String, data: &mut String, holes: &mut Vec<Hole>, url: &str) {
        let url = self.userinfo(out, data, holes, url);
        let (before_fragment, fragment) = match url.split_once('#') {
            Some((a, b)) => (a, Some(b)),
            None => (url, None),
        };
        let Some((base, query)) = before_fragment.split_once('?') else {
            escape(out, url);
            return;
        };
        escape(out, base);
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            let secret = pair.split_once('=').and_then(|(k, v)| {
                let key = if k.contains('%') {
                    percent_encoding::percent_decode_str(k).decode_utf8_lossy()
                } else {
                    Cow::Borrowed(k)
                };
                self.secrets.query(&key, v).then_some((k, key, v))
            });
            match secret {
                Some((k, key, v)) => {
                    escape(out, k);
                    out.push('=');
                    hole(out, data, holes, Fill::Bare, &key, v);
                }
                None => escape(out, pair),
            }
        }
        if let Some(f) = fragment {
            out.push('#');
            escape(out, f);
        }
    }
}

impl Rules<'_> {
    /// Writes the start of `url` up to its userinfo's `@` with holes for the user and the
    /// password (`https://${env.URL_USER}:${env.URL_PASSWORD}@host/`), and returns the rest;
    /// returns `url` whole, writing nothing, when it has no userinfo to move out.
    fn userinfo<'u>(
        &self,
        out: &mut String,
        data: &mut String,
        holes: &mut Vec<Hole>,
        url: &'u str,
    ) -> &'u str {
        let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
            return url;
        };
        let rest = url.get(scheme_end..).unwrap_or_default();
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let Some(at) = authority.rfind('@') else {
            return url;
        };
        let info = authority.get(..at).unwrap_or_default();
        if !self.secrets.userinfo(info) {
            return url;
        }
        escape(out, url.get(..scheme_end).unwrap_or_default());
        let (user, password) = match info.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (info, None),
        };
        if !user.is_empty() {
            hole(out, data, holes, Fill::Bare, "url_user", user);
        }
        if let Some(p) = password {
            out.push(':');
            if !p.is_empty() {
                hole(out, data, holes, Fill::Bare, "url_password", p);
            }
        }
        out.push('@');
        rest.get(at + 1..).unwrap_or_default()
    }

    /// Whether a member of an object in `v`, at any depth, holds a secret string.
    fn has_secret_field(&self, v: &Value) -> bool {
        match v {
            Value::Object(map) => map.iter().any(|(k, v)| match v {
                Value::String(s) => self.secrets.field(k, s),
                other => self.has_secret_field(other),
            }),
            Value::Array(items) => items.iter().any(|v| self.has_secret_field(v)),
            _ => false,
        }
    }

    /// Writes the body value `v` `level` levels deep, with holes for the strings of its
    /// password-like members.
    fn body_value(
        &self,
        out: &mut String,
        data: &mut String,
        holes: &mut Vec<Hole>,
        level: usize,
        v: &Value,
    ) {
        if !self.has_secret_field(v) {
            nested_value(out, level, v);
            return;
        }
        let mut moved = Vec::new();
        let mut copy = v.clone();
        take_secret_fields(self.secrets, &mut copy, &mut moved);
        let mut text = String::new();
        nested_value(&mut text, level, &copy);
        let pieces: Vec<&str> = text.split(SECRET_SENTINEL_JSON).collect();
        if pieces.len() != moved.len() + 1 {
            // The body holds the sentinel itself; it is written as it was rather than cut at
            // the wrong places.
            nested_value(out, level, v);
            return;
        }
        for (piece, (name, value)) in pieces.iter().zip(&moved) {
            out.push_str(piece);
            hole(out, data, holes, Fill::Quoted, name, value);
        }
        out.push_str(pieces.last().copied().unwrap_or_default());
    }
}

/// Stands for a secret member's value while a body is written (see [`Rules::body_value`]).
const SECRET_SENTINEL: &str = "\u{1}ld-secret\u{1}";
/// [`SECRET_SENTINEL`] as JSON text.
const SECRET_SENTINEL_JSON: &str = "\"\\u0001ld-secret\\u0001\"";

/// Replaces the secret strings of `v`'s members with [`SECRET_SENTINEL`], in the order they
/// are written, keeping their names and values in `moved`.
fn take_secret_fields(rules: &SecretRules, v: &mut Value, moved: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match v {
                    Value::String(s) if rules.field(k, s) => {
                        let value = std::mem::replace(s, SECRET_SENTINEL.to_string());
                        moved.push((k.clone(), value));
                    }
                    other => take_secret_fields(rules, other, moved),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                take_secret_fields(rules, item, moved);
            }
        }
        _ => {}
    }
}

/// Records a hole at the end of `out` for the secret `value` of `name`.
fn hole(out: &str, data: &mut String, holes: &mut Vec<Hole>, fill: Fill, name: &str, value: &str) {
    let name_at = data.len();
    data.push_str(name);
    let value_at = data.len();
    data.push_str(value);
    holes.push(Hole {
        at: out.len(),
        fill,
        name: (name_at, value_at),
        value: (value_at, data.len()),
    });
}

/// What starts a member `level` levels deep: `,\n` and the indentation, the comma left out
/// before the first.
const MEMBER_START: &str = ",\n                                                                ";

fn indent(out: &mut String, level: usize) {
    match MEMBER_START.get(2..2 + 2 * level) {
        Some(spaces) => out.push_str(spaces),
        None => {
            for _ in 0..level {
                out.push_str("  ");
            }
        }
    }
}

/// A JSON string as serde_json writes it: `"` and `\\` escaped, control characters as their
/// short escapes or `\u00xx`, everything else (non-ASCII included) as it is.
fn string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    escape(out, s);
    out.push('"');
}

/// The inside of [`string`]: escaping is byte by byte, so a string may be escaped in pieces
/// cut at ASCII bytes.
fn escape(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    // The first byte not written yet.
    let mut start = 0;
    while let Some(at) = next_escape(bytes, start) {
        // Escaped bytes are ASCII, so `start` and `at` stand at character boundaries.
        out.push_str(s.get(start..at).unwrap_or_default());
        start = at + 1;
        match bytes.get(at).copied().unwrap_or_default() {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            b => {
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
    out.push_str(s.get(start..).unwrap_or_default());
}

/// The index of the first byte at or after `from` that a JSON string escapes: header values
/// and URLs are long runs of plain bytes, searched a word at a time.
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(x) = words::word(bytes, i) {
        let found = words::below(x, 0x20) | words::equal(x, b'"') | words::equal(x, b'\\');
        if found != 0 {
            return Some(i + words::first(found));
        }
        i += 8;
    }
    let tail = bytes.get(i..)?;
    tail.iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .map(|at| i + at)
}

/// A value serialized `level` levels deep, as it stands inside the task.
fn nested_value<T: serde::Serialize + ?Sized>(out: &mut String, level: usize, value: &T) {
    let formatter = Nested {
        level,
        has_value: false,
    };
    let mut text = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut text, formatter);
    // Plan values (JSON values, numbers) always serialize, as UTF-8.
    if value.serialize(&mut ser).is_ok() {
        out.push_str(&String::from_utf8_lossy(&text));
    }
}

/// Starts the member `key` of an object whose members stand `level` levels deep.
fn member(out: &mut String, first: &mut bool, level: usize, key: &str) {
    match MEMBER_START.get(usize::from(*first)..2 + 2 * level) {
        Some(start) => out.push_str(start),
        None => {
            out.push_str(if *first { "\n" } else { ",\n" });
            indent(out, level);
        }
    }
    *first = false;
    string(out, key);
    out.push_str(": ");
}

/// A task's fields once the shared rules have run, in the order the plan model writes them.
#[cfg(test)]
struct TaskParts {
    method: String,
    url: String,
    name: String,
    /// Distinct names, even ignoring case, in the order they are written.
    headers: Vec<(String, String)>,
    body: Body,
    status: Option<u16>,
    /// Seconds, above zero.
    think_time: Option<f64>,
    verify: Option<bool>,
    allow_redirects: Option<bool>,
    /// Seconds, above zero.
    timeout: Option<f64>,
}

/// The text [`Rules::draft`], [`Builder::commit`] and [`Builder::close`] write for `task`.
#[cfg(test)]
fn write_task(task: &TaskParts) -> String {
    let options = ImportOptions {
        inline_secrets: true,
        ..ImportOptions::default()
    };
    let mut builder = Builder::new(&options);
    let mut drafts = Drafts::default();
    let view = RequestView {
        method: &task.method,
        url: &task.url,
        body: &task.body,
        status: task.status,
        name: Some(&task.name),
        verify: task.verify,
        allow_redirects: task.allow_redirects,
        timeout: task.timeout,
        socket: None,
    };
    let headers = task.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let (drafted, _) = builder.rules().draft(&mut drafts, &view, headers);
    builder.commit(&drafts, &drafted);
    builder.close(task.think_time);
    builder.tasks.get(0).to_string()
}

/// The task as the plan model builds and serializes it: the reference [`write_task`] must
/// match.
#[cfg(test)]
fn serde_task(task: TaskParts) -> Vec<u8> {
    let headers: Map<String, Value> = task
        .headers
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let mut model = Task {
        method: Some(task.method.to_ascii_lowercase()),
        request_url: Some(task.url),
        name: Some(task.name),
        headers: (!headers.is_empty()).then_some(headers),
        ..Task::default()
    };
    match task.body {
        Body::None => {}
        Body::Json(v) => model.json = Some(v),
        Body::JsonText(t) => model.json = serde_json::from_str(&t).ok(),
        Body::Form(map) => model.data = Some(Value::Object(map)),
        Body::Text(t) => model.data = Some(Value::String(t)),
        Body::Base64(b) => {
            let mut map = Map::new();
            map.insert("base64".into(), Value::String(b));
            model.body = Some(Value::Object(map));
        }
        Body::Multipart(parts) => match loaddensity_form(&parts) {
            Some((fields, files)) => {
                model.data = (!fields.is_empty()).then_some(Value::Object(fields));
                model.files = Some(Value::Object(files));
            }
            None => {
                let mut map = Map::new();
                map.insert("multipart".into(), Value::Array(parts));
                model.body = Some(Value::Object(map));
            }
        },
    }
    if let Some(status) = task.status {
        model.assertions = Some(vec![Assertion::status_code(status)]);
    }
    if let Some(t) = task.think_time {
        model.think_time = Number::from_f64((t * 1000.0).round() / 1000.0).map(Value::Number);
    }
    model.verify = task.verify.map(Value::Bool);
    model.allow_redirects = task.allow_redirects;
    if let Some(t) = task.timeout {
        model.timeout = Some(Value::Number(number(t)));
    }
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Nested::default());
    serde::Serialize::serialize(&model, &mut ser).expect("serialize");
    out
}

/// Integers stay integers in the output (`5`, not `5.0`).
fn number(v: f64) -> Number {
    if v.fract() == 0.0 && v >= 0.0 && v < u64::MAX as f64 {
        Number::from(v as u64)
    } else {
        Number::from_f64(v).unwrap_or_else(|| Number::from(0))
    }
}

/// Multipart parts in the fields LoadDensity sends (as `requests` does): text fields in
/// `data`, and in `files` each file as `[filename, content]` or `[filename, content,
/// content_type]`, and each field that `data` cannot say (one with a content type, or every
/// field of a form without files, which `data` alone would send urlencoded) as `[null,
/// content, ...]`. `None` when a part cannot be said there, and the plan keeps `body:
/// {"multipart": ...}`: content that is not UTF-8 text, or a name given twice.
fn loaddensity_form(parts: &[Value]) -> Option<(Map<String, Value>, Map<String, Value>)> {
    use base64::Engine as _;
    let any_file = parts.iter().any(|p| p.get("filename").is_some());
    let mut fields = Map::new();
    let mut files = Map::new();
    for part in parts {
        let part = part.as_object()?;
        let name = part.get("name")?.as_str()?.to_string();
        let content = match (part.get("value"), part.get("base64")) {
            (Some(Value::String(v)), None) => v.clone(),
            (None, Some(Value::String(b))) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()?;
                String::from_utf8(bytes).ok()?
            }
            (None, None) => String::new(),
            _ => return None,
        };
        let content_type = part.get("content_type").and_then(Value::as_str);
        let filename = part.get("filename").and_then(Value::as_str);
        if fields.contains_key(&name) || files.contains_key(&name) {
            return None;
        }
        if filename.is_none() && content_type.is_none() && any_file {
            fields.insert(name, Value::String(content));
            continue;
        }
        let mut spec = vec![
            filename.map_or(Value::Null, |f| Value::String(f.into())),
            Value::String(content),
        ];
        spec.extend(content_type.map(|c| Value::String(c.into())));
        files.insert(name, Value::Array(spec));
    }
    (!files.is_empty()).then_some((fields, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import_of(urls: &[&str]) -> Import {
        let options = ImportOptions::default();
        let mut builder = Builder::new(&options);
        for url in urls {
            builder.push(Request {
                method: "GET".into(),
                url: (*url).into(),
                headers: vec![("Accept".into(), "application/json".into())],
                status: Some(200),
                ..Request::default()
            });
        }
        builder.finish()
    }

    /// A task with every kind of field, built the same way from `seed` each time.
    fn generated_task(seed: u64) -> TaskParts {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let texts = [
            "",
            "a",
            "\"quoted\"",
            "back\\slash",
            "line\nbreak\ttab",
            "\u{1}\u{1f}",
            "é☃😀",
            "${env.X}",
            "</script>",
            "\u{7f}\u{2028}",
            "\u{8}\u{c}\r",
        ];
        let text =
            |next: &mut dyn FnMut(u64) -> u64| texts[next(texts.len() as u64) as usize].to_string();
        let headers = (0..next(5))
            .map(|i| (format!("H{i}{}", text(&mut next)), text(&mut next)))
            .collect();
        let json_values = [
            "{}",
            "[]",
            "null",
            "1.5",
            "{\"a\": [1, {\"b\": []}], \"c\": {}}",
            "[[], [{}], \"x\\ny\"]",
        ];
        let body = match next(7) {
            0 => Body::None,
            1 => Body::Json(
                serde_json::from_str(json_values[next(json_values.len() as u64) as usize])
                    .expect("json"),
            ),
            2 => {
                let mut map = Map::new();
                for i in 0..next(3) {
                    map.insert(format!("f{i}"), Value::String(text(&mut next)));
                }
                Body::Form(map)
            }
            3 => Body::Text(text(&mut next)),
            4 => Body::Base64(text(&mut next)),
            5 => Body::Multipart(
                (0..next(3))
                    .map(|_| serde_json::json!({"name": text(&mut next), "value": "v"}))
                    .collect(),
            ),
            _ => Body::Multipart(Vec::new()),
        };
        let floats = [
            0.001,
            0.0004,
            1.0,
            2.5,
            1e300,
            f64::NAN,
            f64::INFINITY,
            123_456.789,
        ];
        let float = |next: &mut dyn FnMut(u64) -> u64| {
            (next(3) > 0).then(|| floats[next(floats.len() as u64) as usize])
        };
        let flag = |next: &mut dyn FnMut(u64) -> u64| match next(3) {
            0 => None,
            1 => Some(true),
            _ => Some(false),
        };
        TaskParts {
            method: text(&mut next),
            url: text(&mut next),
            name: text(&mut next),
            headers,
            body,
            status: (next(4) > 0).then(|| next(1000) as u16),
            think_time: float(&mut next),
            verify: flag(&mut next),
            allow_redirects: flag(&mut next),
            timeout: float(&mut next),
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let pieces = [
            "a", "é", "☃", "\"", "\\", "\n", "\u{1}", "\u{1f}", " ", "\u{7f}", "\u{80}", "~",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            crate::test_rand::step(&mut seed);
            let len = (seed % 40) as usize;
            let s: String = (0..len)
                .map(|i| pieces[((seed >> (i % 50)) as usize + i * 7) % pieces.len()])
                .collect();
            let mut out = String::new();
            string(&mut out, &s);
            assert_eq!(out, serde_json::to_string(&s).expect("json"), "{s:?}");
        }
    }

    #[test]
    fn written_tasks_match_the_serialized_model() {
        for seed in 0..5000 {
            let written = write_task(&generated_task(seed));
            let model = serde_task(generated_task(seed));
            assert_eq!(written, String::from_utf8_lossy(&model), "seed {seed}");
        }
    }

    #[test]
    fn nested_text_is_the_pretty_text_indented() {
        let value: Value = serde_json::from_str(
            r#"{"a": [], "b": {}, "c": [1, {"d": [[], {}], "e": "x\ny"}], "f": null, "g": [[1]]}"#,
        )
        .expect("json");
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, Nested::default());
        serde::Serialize::serialize(&value, &mut ser).expect("serialize");
        let pretty = serde_json::to_string_pretty(&value).expect("pretty");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            pretty.replace('\n', &format!("\n{TASK_INDENT}"))
        );
        assert_eq!(TASK_INDENT.len(), 2 * TASK_LEVEL);
        assert!(TASK_INDENT.bytes().all(|b| b == b' '));
    }

    #[test]
    fn streamed_text_equals_the_document_written_whole() {
        for urls in [
            &[][..],
            &["http://h/a"][..],
            &["http://h/a", "http://h/b?x=1"][..],
        ] {
            let import = import_of(urls);
            let plan = import.plan();
            assert_eq!(import.to_json_string(), plan.to_json_string(), "{urls:?}");
            let start = plan.actions[0].as_start_test("/0").expect("start");
            assert_eq!(start.tasks.expect("tasks").to_list().len(), urls.len());
            assert!(!import.to_json_string().contains("ld-tasks"));
        }
    }
}
