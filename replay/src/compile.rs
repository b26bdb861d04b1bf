//! Validation and compilation of the whole action document before anything runs.
//!
//! Every command, keyword and task field is checked against what LoadDensity accepts; an
//! unknown one is an error that names it, gives its JSON pointer and the nearest known names.
//! Files named by `LD_execute_files` and CSV sources are read here too, so a run never stops
//! half-way on a typo. The result is a flat list of steps with tasks ready to run.
//!
//! A task is read into the plan model (`ld_plan::Task`), then for its protocol
//! (`ld_plan::Task::split`: the shared fields and the protocol's own, typed); the protocol
//! modules compile from those structs, never from the JSON object. What a field means
//! beyond its type (a URL's scheme, a topic's wildcards, a number's range) is checked here
//! and in the protocol modules, with the field's pointer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ld_plan::{Action, Args, Plan};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::check::{Check, Extract, Source};
use crate::program::{Mode, Profile, Program, Step, TestSpec};
use crate::protocol::{CompileCx, grpc, mqtt, socket, sse, ws};
use crate::report::ReportKind;
use crate::task::{
    HttpTask, Literal, NameInfo, Predicate, Proto, Recorded, Task, Think, Throttle, prepare,
};
use crate::template::{Binder, CsvSource, TValue, escape_pointer, nearest, value_text};
use crate::tls::{TlsSettings, client_config};
use crate::{Error, HttpVersion, Result};

/// What compilation takes from the options.
pub(crate) struct Settings {
    pub(crate) insecure: bool,
    pub(crate) ca_cert: Option<PathBuf>,
    /// `--cert`/`--key`: for the tasks that name no `cert`.
    pub(crate) client_cert: Option<(PathBuf, PathBuf)>,
    pub(crate) timeout: Duration,
    pub(crate) http: HttpVersion,
    pub(crate) env: HashMap<String, String>,
    /// The share of the plan this process runs (`--segment`): its share of CSV rows.
    pub(crate) segment: crate::segment::Segment,
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

const ASSERTION_FIELDS: &[&str] = &["type", "value", "path", "name", "pattern", "shape"];
const ASSERTION_TYPES: &[&str] = &[
    "status_code",
    "contains",
    "not_contains",
    "json_path",
    "header",
    "regex",
    "max_latency_ms",
    "grpc_status",
    "message_count",
    "json_shape",
];
const EXTRACT_FIELDS: &[&str] = &[
    "var",
    "from",
    "path",
    "name",
    "pattern",
    "scope",
    "recorded_sha256",
];
const EXTRACT_SOURCES: &[&str] = &["json_path", "header", "status_code", "regex"];
/// Which protocol module compiles a task.
type Kind = ld_plan::Protocol;

fn user_protocol(user: &str) -> Option<Kind> {
    Kind::of_user(user)
}

/// A task's protocol: its `protocol` field (ld's extension; `tcp` and `udp` as LoadDensity's
/// `socket_user` writes them), else a `ws://` or `wss://` URL, else an `mqtt://` or `mqtts://`
/// `broker`, else the user's default.
fn task_protocol(
    file: &Path,
    t: &Map<String, Value>,
    pointer: &str,
    default: Kind,
) -> Result<Kind> {
    match t.get("protocol") {
        None | Some(Value::Null) => {}
        Some(Value::String(p)) => {
            return match Kind::named(p) {
                Some(k) => Ok(k),
                None => {
                    let known = ld_plan::fields::PROTOCOL_NAMES;
                    let other = p.to_ascii_lowercase();
                    Err(err(
                        file,
                        &format!("{pointer}/protocol"),
                        format!(
                            "unknown protocol `{other}`{}: {}",
                            nearest(&other, known.iter().copied()),
                            known.join(", ")
                        ),
                    ))
                }
            };
        }
        Some(v) => {
            return Err(err(
                file,
                &format!("{pointer}/protocol"),
                format!("expected a string, found {}", kind_of(v)),
            ));
        }
    }
    let url = t
        .get("request_url")
        .or_else(|| t.get("url"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if matches!(scheme.as_deref(), Some("ws" | "wss")) {
        return Ok(Kind::WebSocket);
    }
    let broker = t.get("broker").and_then(Value::as_str).unwrap_or("");
    let scheme = broker
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase());
    if matches!(scheme.as_deref(), Some("mqtt" | "mqtts")) {
        return Ok(Kind::Mqtt);
    }
    Ok(default)
}

/// The live output `LD_start_prometheus_exporter(port=9646, addr="127.0.0.1")`,
/// `LD_start_influxdb_sink(transport="udp", host, port=8089)` or
/// `LD_start_statsd_sink(host, port=8125)` asks for.
fn live_output(file: &Path, cmd: &str, args: Args, pointer: &str) -> Result<crate::export::Output> {
    let (fields, host_key, default_port, name): (&[&str], &str, u16, &str) = match cmd {
        "LD_start_prometheus_exporter" => (&["port", "addr"], "addr", 9646, "prometheus"),
        "LD_start_dashboard" => (
            &["host", "port", "refresh_seconds", "window_seconds"],
            "host",
            8765,
            "dashboard",
        ),
        "LD_start_influxdb_sink" => (
            &["transport", "host", "port", "database", "measurement"],
            "host",
            8089,
            "influxdb",
        ),
        _ => (&["host", "port", "prefix"], "host", 8125, "statsd"),
    };
    let kw = kwargs(file, cmd, args, fields, pointer)?;
    let host = kw
        .get(host_key)
        .map(value_text)
        .unwrap_or_else(|| "127.0.0.1".into());
    let http = name == "influxdb" && kw.get("transport").map(value_text).as_deref() == Some("http");
    let port = match kw.get("port") {
        // InfluxDB's HTTP API listens on 8086, its UDP listener on 8089.
        None | Some(Value::Null) if http => 8086,
        None | Some(Value::Null) => default_port,
        Some(v) => value_text(v).parse::<u16>().map_err(|_| {
            err(
                file,
                &format!("{pointer}/1/port"),
                format!("`{cmd}`: `port` must be a number from 0 to 65535"),
            )
        })?,
    };
    let transport = kw.get("transport").map(value_text);
    if name == "influxdb" && !matches!(transport.as_deref(), None | Some("udp") | Some("http")) {
        return Err(err(
            file,
            &format!("{pointer}/1/transport"),
            "`LD_start_influxdb_sink`: ld replay sends line protocol over \"udp\" or \"http\" (InfluxDB 1.x's /write)",
        ));
    }
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let target = if http {
        let db = kw
            .get("database")
            .map(value_text)
            .unwrap_or_else(|| "loaddensity".into());
        let db = ld_plan::encode::encode(&db, ld_plan::encode::UNRESERVED);
        format!("http://{host}:{port}/write?db={db}")
    } else if name == "influxdb" {
        format!("udp://{host}:{port}")
    } else {
        format!("{host}:{port}")
    };
    crate::export::parse_output(&format!("{name}={target}"))
        .map_err(|e| err(file, &format!("{pointer}/1"), format!("`{cmd}`: {e}")))
}

/// Commands that only return data to a Python caller: accepted, and skipped with a note.
const SKIPPED_COMMANDS: &[&str] = &["LD_generate_html", "LD_generate_json", "LD_generate_xml"];

/// `LD_start_test` fields LoadDensity reads for its distributed runners or its database
/// sources: accepted, and left alone by ld replay with a note (`web_ui_dict` is served as
/// ld's dashboard).
const IGNORED_START_FIELDS: &[&str] = &[
    "runner_mode",
    "engine",
    "db_sources",
    "master_bind_host",
    "master_bind_port",
    "master_host",
    "master_port",
    "expected_workers",
    "worker_startup_policy",
];

/// The longest duration a plan or an option may give (test time, timeouts, stages, think
/// times, waits): one year, in seconds.
pub(crate) const MAX_SECONDS: f64 = 365.0 * 86_400.0;
/// The most virtual users a plan or an option may ask for.
pub(crate) const MAX_USERS: u64 = 1_000_000;
/// The highest rate (users spawned, iterations started or requests throttled, per second).
pub(crate) const MAX_RATE: f64 = 1_000_000.0;
/// The largest count of anything else (throttle burst, task weight).
pub(crate) const MAX_COUNT: u64 = 1_000_000;
/// The most retries of one class of failure.
pub(crate) const MAX_RETRIES: u64 = 100;
/// The longest wait before a retry, in seconds.
pub(crate) const MAX_RETRY_DELAY: f64 = 3600.0;
/// The largest plan file (the plan and each file `LD_execute_files` names), in bytes.
pub(crate) const MAX_PLAN_BYTES: u64 = 256 * 1024 * 1024;
/// The most tasks a run compiles: every `LD_start_test` of every file together.
pub(crate) const MAX_TASKS: usize = 1_000_000;

/// The most users an open-model run keeps without `--users`: the plan's users, or one
/// second's worth of arrivals up to [`DEFAULT_OPEN_USERS`], whichever is more. Arrivals that
/// find every user busy are dropped and counted.
pub(crate) fn open_model_users(plan_users: u64, rate: f64) -> u64 {
    let per_second = rate.ceil().clamp(1.0, DEFAULT_OPEN_USERS as f64) as u64;
    plan_users.max(per_second)
}

/// See [`open_model_users`].
pub(crate) const DEFAULT_OPEN_USERS: u64 = 1_000;

/// A JSON number, finite, within `lo..=hi`; the error names the pointer and the bounds.
fn number_in(file: &Path, v: &Value, p: &str, lo: f64, hi: f64, what: &str) -> Result<f64> {
    let Some(f) = v.as_f64() else {
        return Err(err(
            file,
            p,
            format!("expected {what}, found {}", kind_of(v)),
        ));
    };
    if !f.is_finite() || f < lo || f > hi {
        return Err(err(
            file,
            p,
            format!("{v} is out of range for {what}: {lo} to {hi}"),
        ));
    }
    Ok(f)
}

/// Seconds from 0 to [`MAX_SECONDS`].
fn seconds(file: &Path, v: &Value, p: &str) -> Result<Duration> {
    let f = number_in(file, v, p, 0.0, MAX_SECONDS, "a number of seconds")?;
    Duration::try_from_secs_f64(f).map_err(|e| err(file, p, e))
}

/// A whole number from 0 to `max`.
fn count(file: &Path, v: &Value, p: &str, max: u64, what: &str) -> Result<u64> {
    let f = number_in(file, v, p, 0.0, max as f64, what)?;
    if f.fract() != 0.0 {
        return Err(err(file, p, format!("expected {what}, found {f}")));
    }
    Ok(f as u64)
}

/// A rate per second from 0 to [`MAX_RATE`].
fn rate(file: &Path, v: &Value, p: &str) -> Result<f64> {
    number_in(file, v, p, 0.0, MAX_RATE, "a rate per second")
}

/// How an error message names a JSON value's type.
fn kind_of(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("{n}"),
        Value::String(s) => format!("the string {}", Value::String(s.clone())),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// The load options checked against the same bounds as the plan: the error names the flag.
pub(crate) fn check_overrides(o: &crate::LoadOverrides, timeout: Option<Duration>) -> Result<()> {
    let bad = |m: String| Err(Error::Options(m));
    let max = Duration::from_secs(MAX_SECONDS as u64);
    if let Some(u) = o.users
        && u > MAX_USERS
    {
        return bad(format!("--users {u}: at most {MAX_USERS}"));
    }
    if let Some(r) = o.spawn_rate
        && !(r.is_finite() && (0.0..=MAX_RATE).contains(&r))
    {
        return bad(format!("--spawn-rate {r}: 0 to {MAX_RATE} per second"));
    }
    if let Some(r) = o.rate
        && !(r.is_finite() && r > 0.0 && r <= MAX_RATE)
    {
        return bad(format!("--rate {r}/s: above 0, at most {MAX_RATE}/s"));
    }
    for (flag, d) in [("--duration", o.duration), ("--timeout", timeout)] {
        if let Some(d) = d
            && d > max
        {
            return bad(format!("{flag} {d:?}: at most one year ({MAX_SECONDS} s)"));
        }
    }
    if timeout == Some(Duration::ZERO) {
        return bad("--timeout 0: a timeout must be above 0".into());
    }
    for s in o.stages.iter().flatten() {
        if s.duration > max || s.target > MAX_USERS {
            return bad(format!(
                "--stages {:?}:{}: at most one year and {MAX_USERS} users a stage",
                s.duration, s.target
            ));
        }
    }
    Ok(())
}

struct Compiler<'s> {
    settings: &'s Settings,
    program: Program,
    csv: HashMap<String, Arc<CsvSource>>,
    vars: Vec<String>,
    name_ids: HashMap<Arc<str>, usize>,
    /// The names' methods, each held once.
    methods: Vec<Arc<str>>,
    tls: HashMap<(TlsSettings, HttpVersion), Arc<rustls::ClientConfig>>,
    throttles: HashMap<String, Arc<Throttle>>,
    /// The OAuth 2.0 tokens of `shared: true` auths, one store for the run.
    shared_tokens: Arc<crate::auth::SharedTokens>,
    /// The `LD_start_test` being compiled runs as `fast_http_user`, whose client labels form
    /// bodies `application/x-www-form-urlencoded; charset=utf-8` (`http_user`'s leaves the
    /// charset out): ld sends what LoadDensity would.
    form_charset: bool,
    files: Vec<PathBuf>,
    /// The directory of each plan file, shared by its tasks.
    bases: HashMap<PathBuf, Arc<Path>>,
    /// Tasks compiled so far, against [`MAX_TASKS`].
    task_count: usize,
    /// Task fields already noted as not acted on: one note per field, not one per task.
    noted_fields: Vec<&'static str>,
    /// gRPC descriptors, shared by the tasks that read the same files or target.
    grpc: grpc::Schemas,
}

/// The tasks of one `LD_start_test`: read as values, or still text (see `doc`), read one
/// at a time from their places in the file.
enum TaskList {
    Values(Vec<RawTask>),
    Text {
        base: String,
        spans: Vec<(u64, u32)>,
        extracted: Vec<(String, bool)>,
    },
}

impl TaskList {
    fn len(&self) -> usize {
        match self {
            TaskList::Values(v) => v.len(),
            TaskList::Text { spans, .. } => spans.len(),
        }
    }

    fn pointer(&self, i: usize) -> String {
        match self {
            TaskList::Values(v) => v.get(i).map(|(p, _)| p.clone()).unwrap_or_default(),
            TaskList::Text { base, .. } => format!("{base}/{i}"),
        }
    }
}

/// Compiles the plan file at `path` with its text.
pub(crate) fn compile(path: &Path, text: String, settings: &Settings) -> Result<Program> {
    let mut c = Compiler {
        settings,
        program: Program::default(),
        csv: HashMap::new(),
        vars: Vec::new(),
        name_ids: HashMap::new(),
        methods: Vec::new(),
        tls: HashMap::new(),
        throttles: HashMap::new(),
        shared_tokens: Arc::default(),
        form_charset: true,
        files: Vec::new(),
        bases: HashMap::new(),
        task_count: 0,
        noted_fields: Vec::new(),
        grpc: grpc::Schemas::default(),
    };
    c.file(path, text)?;
    Ok(c.program)
}

/// Why a plan file was not read.
#[derive(Debug)]
pub(crate) enum PlanRead {
    Io(std::io::Error),
    /// Larger than [`MAX_PLAN_BYTES`]: its size, or at least how much was seen.
    TooLarge(u64),
}

impl std::fmt::Display for PlanRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanRead::Io(e) => write!(f, "{e}"),
            PlanRead::TooLarge(n) => write!(
                f,
                "the plan is {} bytes; a plan file may be at most {MAX_PLAN_BYTES} bytes ({} MiB)",
                n,
                MAX_PLAN_BYTES / (1024 * 1024)
            ),
        }
    }
}

/// Reads a plan file, refusing one above [`MAX_PLAN_BYTES`] before reading it.
pub(crate) fn read_plan(path: &Path) -> std::result::Result<Vec<u8>, PlanRead> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(PlanRead::Io)?;
    let len = file.metadata().map_err(PlanRead::Io)?.len();
    if len > MAX_PLAN_BYTES {
        return Err(PlanRead::TooLarge(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_PLAN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(PlanRead::Io)?;
    if bytes.len() as u64 > MAX_PLAN_BYTES {
        return Err(PlanRead::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

/// The text of a plan or CSV file read as bytes: invalid UTF-8 is an input error that gives
/// the line and column (1-based, in characters) of the first invalid byte.
pub(crate) fn decode<'b>(path: &Path, bytes: &'b [u8]) -> Result<&'b str> {
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        // The prefix is valid UTF-8, so its characters are countable.
        let column = String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count()
            + 1;
        Error::plan(format!(
            "{}:{line}:{column}: invalid UTF-8 (byte 0x{:02x} at offset {})",
            path.display(),
            bytes[e.valid_up_to()],
            e.valid_up_to()
        ))
    })
}

/// [`decode`] taking the bytes: the text is the same buffer, not a copy.
pub(crate) fn into_text(path: &Path, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| match decode(path, e.as_bytes()) {
        Err(e) => e,
        Ok(_) => Error::plan(format!("{}: invalid UTF-8", path.display())),
    })
}

/// Plans larger than this are not held while their tasks are compiled: each task's text is
/// read again from the file as it is compiled.
const KEEP_TEXT: usize = 1024 * 1024;

/// Where the tasks of a file's task lists are read from once its document is read.
enum TaskSource {
    /// The file's text, kept.
    Text(String),
    /// The file, read again at each task's place: the text of a large plan is not held
    /// beside its compiled tasks.
    File(PathBuf),
}

/// Reads task texts in the order they stand in the file.
struct TaskReader<'s> {
    source: &'s TaskSource,
    file: Option<std::io::BufReader<std::fs::File>>,
    /// Where `file` reads next.
    pos: u64,
    buf: Vec<u8>,
}

impl<'s> TaskReader<'s> {
    fn new(source: &'s TaskSource) -> Self {
        TaskReader {
            source,
            file: None,
            pos: 0,
            buf: Vec::new(),
        }
    }

    /// The task at `span` (its offset and length in the file) as a value; `None` when it is
    /// no longer there (the file changed while it was read).
    fn read(&mut self, span: (u64, u32)) -> std::io::Result<Option<Value>> {
        use std::io::{Read, Seek, SeekFrom};
        let (at, len) = (span.0, span.1 as usize);
        let text = match self.source {
            TaskSource::Text(text) => usize::try_from(at)
                .ok()
                .and_then(|at| text.get(at..at.checked_add(len)?)),
            TaskSource::File(path) => {
                let file = match &mut self.file {
                    Some(f) => f,
                    None => self
                        .file
                        .insert(std::io::BufReader::new(std::fs::File::open(path)?)),
                };
                match at.checked_sub(self.pos).and_then(|d| i64::try_from(d).ok()) {
                    Some(ahead) => file.seek_relative(ahead)?,
                    None => {
                        file.seek(SeekFrom::Start(at))?;
                    }
                }
                self.buf.resize(len, 0);
                file.read_exact(&mut self.buf)?;
                self.pos = at + len as u64;
                std::str::from_utf8(&self.buf).ok()
            }
        };
        Ok(text
            .filter(|t| t.trim_start().starts_with('{'))
            .and_then(|t| serde_json::from_str(t).ok()))
    }
}

/// A task list of a file's document: left as text (each task's place in the file and the
/// variables its extractors set), or read as a value.
enum Tasks {
    Spans {
        nested: bool,
        mode: Option<Value>,
        spans: Vec<(u64, u32)>,
        /// The first item that is not an object.
        not_object: Option<usize>,
        /// Variables set by extractors: (name, session scope).
        extracted: Vec<(String, bool)>,
    },
    Value(Value),
}

impl Tasks {
    /// The task list `raw`, a slice of `text`.
    fn of(text: &str, raw: &RawValue) -> Tasks {
        let base = text.as_ptr() as usize;
        let Some(list) = crate::doc::task_list(raw) else {
            return Tasks::Value(crate::doc::value(raw));
        };
        let mut spans = Vec::with_capacity(list.items.len());
        let mut extracted = Vec::new();
        let mut not_object = None;
        for (i, item) in list.items.iter().enumerate() {
            let t = item.get();
            let at = (t.as_ptr() as usize).wrapping_sub(base);
            let (Ok(at), Ok(len)) = (u64::try_from(at), u32::try_from(t.len())) else {
                return Tasks::Value(crate::doc::value(raw));
            };
            if text
                .get(at as usize..at as usize + t.len())
                .map(str::as_ptr)
                != Some(t.as_ptr())
            {
                return Tasks::Value(crate::doc::value(raw));
            }
            spans.push((at, len));
            if not_object.is_none() && !crate::doc::is_object(item) {
                not_object = Some(i);
            }
            // Only a task whose text may name `extract` is read here.
            if (t.contains("extract") || t.contains("\\u"))
                && let Value::Object(task) = crate::doc::value(item)
            {
                extracted.extend(extractor_vars(&task));
            }
        }
        Tasks::Spans {
            nested: list.nested,
            mode: list.mode,
            spans,
            not_object,
            extracted,
        }
    }
}

/// The variables a task's extractors set: (name, session scope).
fn extractor_vars(t: &Map<String, Value>) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    if let Some(Value::Array(ex)) = t.get("extract") {
        for e in ex {
            if let Some(var) = e.get("var").and_then(Value::as_str) {
                let session = e.get("scope").and_then(Value::as_str) == Some("session");
                out.push((var.to_string(), session));
            }
        }
    }
    out
}

/// Formats a plan error for `file` at `pointer`.
fn err(file: &Path, pointer: &str, message: impl std::fmt::Display) -> Error {
    let at = if pointer.is_empty() { "/" } else { pointer };
    Error::plan(format!("{}: {at}: {message}", file.display()))
}

/// A plan-model error of a task in `file`: `file: pointer: message`.
fn plan_err(file: &Path, e: ld_plan::Error) -> Error {
    Error::plan(format!("{}: {e}", file.display()))
}

fn base_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl Compiler<'_> {
    fn file(&mut self, path: &Path, text: String) -> Result<()> {
        if self.files.len() > 16 || self.files.iter().any(|f| f == path) {
            return Err(err(path, "", "LD_execute_files includes itself"));
        }
        let doc =
            crate::doc::read(&text).map_err(|e| match e {
                ld_plan::Error::Syntax { message, pos } => Error::plan(
                    ld_plan::render_source_error(&path.display().to_string(), &text, pos, &message),
                ),
                other => Error::plan(format!("{}: {other}", path.display())),
            })?;
        let base = if doc.wrapped { "/load_density" } else { "" };
        let crate::doc::Doc { actions, tasks, .. } = doc;
        let tasks: Vec<Option<Tasks>> = tasks
            .into_iter()
            .map(|t| t.map(|raw| Tasks::of(&text, raw)))
            .collect();
        // Only a regular file that still has the text's length is read again: a pipe or a
        // process substitution is read once.
        let again = text.len() > KEEP_TEXT
            && std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == text.len() as u64);
        let source = if again {
            drop(text);
            TaskSource::File(path.to_path_buf())
        } else {
            TaskSource::Text(text)
        };
        self.files.push(path.to_path_buf());
        let result = self.actions(path, actions, tasks, &source, base);
        self.files.pop();
        result
    }

    /// Compiles `actions`; `tasks` holds the task lists left as text, action by action, read
    /// from `source`.
    fn actions(
        &mut self,
        file: &Path,
        actions: Vec<Action>,
        tasks: Vec<Option<Tasks>>,
        source: &TaskSource,
        base: &str,
    ) -> Result<()> {
        let mut tasks = tasks.into_iter();
        for (i, action) in actions.into_iter().enumerate() {
            let t = tasks.next().flatten();
            self.action(file, action, t, source, &format!("{base}/{i}"))?;
        }
        Ok(())
    }

    fn action(
        &mut self,
        file: &Path,
        action: Action,
        tasks: Option<Tasks>,
        source: &TaskSource,
        pointer: &str,
    ) -> Result<()> {
        let Action { command, args } = action;
        let cmd = command.as_str();
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
            let kw = kwargs(file, cmd, args, &[param], pointer)?;
            let name = kw.get(param).map(value_text).unwrap_or(default);
            self.program.steps.push(Step::Report { kind, name });
            return Ok(());
        }
        match cmd {
            "LD_post_slack_summary" | "LD_post_teams_summary" => {
                let kw = kwargs(
                    file,
                    cmd,
                    args,
                    &["webhook_url", "summary", "title", "timeout"],
                    pointer,
                )?;
                let channel = if cmd == "LD_post_slack_summary" {
                    crate::notify::Channel::Slack
                } else {
                    crate::notify::Channel::Teams
                };
                let raw = match kw.get("webhook_url") {
                    Some(Value::String(u)) => u.clone(),
                    _ => {
                        return Err(err(
                            file,
                            &format!("{pointer}/1"),
                            format!("`{cmd}` needs a `webhook_url` (http or https)"),
                        ));
                    }
                };
                let url = self.env_text(file, &raw, &format!("{pointer}/1/webhook_url"))?;
                let title = kw
                    .get("title")
                    .map(value_text)
                    .unwrap_or_else(|| "LoadDensity run".into());
                self.program
                    .steps
                    .push(Step::Notice(crate::notify::Notice::Post {
                        channel,
                        url,
                        title,
                    }));
                return Ok(());
            }
            "LD_start_prometheus_exporter"
            | "LD_start_influxdb_sink"
            | "LD_start_statsd_sink"
            | "LD_start_dashboard" => {
                let output = live_output(file, cmd, args, pointer)?;
                self.program.outputs.push(output);
                return Ok(());
            }
            "LD_stop_prometheus_exporter"
            | "LD_stop_influxdb_sink"
            | "LD_stop_statsd_sink"
            | "LD_stop_opentelemetry_exporter"
            | "LD_stop_dashboard" => {
                kwargs(file, cmd, args, &[], pointer)?;
                self.program.notes.push(format!(
                    "{pointer}: `{cmd}`: ld replay's outputs stop when the run ends"
                ));
                return Ok(());
            }
            "LD_start_opentelemetry_exporter" => {
                let kw = kwargs(file, cmd, args, &["endpoint", "service_name"], pointer)?;
                let output = otlp_output(file, &kw, pointer)?;
                self.program.outputs.push(output);
                return Ok(());
            }
            "LD_emit_github_annotations" => {
                let kw = kwargs(file, cmd, args, &["title", "stream"], pointer)?;
                let title = kw
                    .get("title")
                    .map(value_text)
                    .unwrap_or_else(|| "LoadDensity".into());
                self.program
                    .steps
                    .push(Step::Notice(crate::notify::Notice::Annotate { title }));
                return Ok(());
            }
            "LD_start_test" => {
                let kw = kwargs(file, cmd, args, START_FIELDS, pointer)?;
                let spec = self.start_test(file, kw, tasks, source, pointer)?;
                self.program.steps.push(Step::StartTest(Box::new(spec)));
            }
            "LD_register_variable" => {
                let kw = kwargs(file, cmd, args, &["name", "value"], pointer)?;
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
                let kw = kwargs(file, cmd, args, &["variables"], pointer)?;
                let vars =
                    self.variables(file, kw.get("variables"), &format!("{pointer}/1/variables"))?;
                self.program.steps.push(Step::Variables(vars));
            }
            "LD_register_csv_source" => {
                let kw = kwargs(file, cmd, args, &["name", "file_path", "cycle"], pointer)?;
                self.csv_source(file, &Value::Object(kw), &format!("{pointer}/1"))?;
            }
            "LD_register_csv_sources" => {
                let kw = kwargs(file, cmd, args, &["sources"], pointer)?;
                self.csv_sources(file, kw.get("sources"), &format!("{pointer}/1/sources"))?;
            }
            "LD_clear_resolver" => {
                kwargs(file, cmd, args, &[], pointer)?;
                self.vars.clear();
                self.csv.clear();
                self.program.steps.push(Step::ClearResolver);
            }
            "LD_clear_records" => {
                kwargs(file, cmd, args, &[], pointer)?;
                self.program.steps.push(Step::ClearRecords);
            }
            "LD_persist_records"
            | "LD_list_runs"
            | "LD_fetch_run_records"
            | "LD_evaluate_sla"
            | "LD_assert_sla" => {
                let kw = kwargs(file, cmd, args, crate::store::params(cmd), pointer)?;
                let step = crate::store::command(cmd, kw, &base_dir(file))
                    .map_err(|m| err(file, &format!("{pointer}/1"), m))?;
                self.program.steps.push(Step::Store(step));
            }
            "LD_summary" => {
                kwargs(file, cmd, args, &["success", "failures"], pointer)?;
                self.program.steps.push(Step::Summary);
            }
            "LD_wait" => {
                let kw = kwargs(file, cmd, args, &["seconds"], pointer)?;
                let wait = match kw.get("seconds") {
                    None | Some(Value::Null) => Duration::ZERO,
                    Some(v) => seconds(file, v, &format!("{pointer}/1/seconds"))?,
                };
                self.program.steps.push(Step::Wait(wait));
            }
            "LD_execute_action" => {
                let list = match args {
                    Args::Kwargs(mut map) => {
                        check_keys(file, &map, &["action_list"], &format!("{pointer}/1"))?;
                        map.remove("action_list").unwrap_or(Value::Null)
                    }
                    Args::List(mut list) => {
                        if list.len() == 1 && list[0].is_array() && is_action_list(&list[0]) {
                            list.swap_remove(0)
                        } else {
                            Value::Array(list)
                        }
                    }
                    Args::None => Value::Array(Vec::new()),
                };
                let inner =
                    Plan::from_value(list).map_err(|e| err(file, &format!("{pointer}/1"), e))?;
                self.actions(
                    file,
                    inner.actions,
                    Vec::new(),
                    source,
                    &format!("{pointer}/1"),
                )?;
            }
            "LD_execute_files" => {
                let kw = kwargs(file, cmd, args, &["execute_files_list"], pointer)?;
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
                    let bytes = read_plan(&path).map_err(|source| {
                        err(
                            file,
                            &p,
                            format!("cannot read {}: {source}", path.display()),
                        )
                    })?;
                    self.file(&path, into_text(&path, bytes)?)?;
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
        let source = crate::csv::CsvFile::open(&path).map_err(|e| match e {
            crate::csv::CsvError::Io(source) => err(
                file,
                &format!("{pointer}/file_path"),
                format!("cannot read the CSV source {}: {source}", path.display()),
            ),
            crate::csv::CsvError::Content(message) => Error::plan(message),
        })?;
        self.csv.insert(
            name.to_string(),
            Arc::new(CsvSource::from_file(source, cycle, self.settings.segment)),
        );
        Ok(())
    }

    fn start_test(
        &mut self,
        file: &Path,
        mut kw: Map<String, Value>,
        tasks_text: Option<Tasks>,
        source: &TaskSource,
        pointer: &str,
    ) -> Result<TestSpec> {
        let at = |k: &str| format!("{pointer}/1/{k}");
        if let Some(ud) = kw.get("user_detail_dict") {
            let Value::Object(ud) = ud else {
                return Err(err(file, &at("user_detail_dict"), "expected an object"));
            };
            for key in ud.keys() {
                if !matches!(key.as_str(), "user" | "host" | "h2_streams") {
                    self.program.notes.push(format!(
                        "{}/{}: `{key}` is accepted and not acted on by ld replay",
                        at("user_detail_dict"),
                        escape_pointer(key)
                    ));
                }
            }
            for key in ["user", "host"] {
                if let Some(v) = ud.get(key)
                    && !v.is_string()
                {
                    return Err(err(
                        file,
                        &format!("{}/{key}", at("user_detail_dict")),
                        format!("expected a string, found {}", kind_of(v)),
                    ));
                }
            }
        }
        let user = kw
            .get("user_detail_dict")
            .and_then(|u| u.get("user"))
            .and_then(Value::as_str)
            .unwrap_or("fast_http_user");
        self.form_charset = user == "fast_http_user";
        let Some(default_protocol) = user_protocol(user) else {
            let known: Vec<&str> = ld_plan::fields::USERS.iter().map(|(u, _)| *u).collect();
            let hint = nearest(user, known.iter().copied());
            return Err(err(
                file,
                &format!("{}/user", at("user_detail_dict")),
                format!(
                    "user `{user}` is not supported by ld replay{hint} (known: {})",
                    known.join(", ")
                ),
            ));
        };
        let host = kw
            .get("user_detail_dict")
            .and_then(|u| u.get("host"))
            .and_then(Value::as_str)
            .map(|h| h.trim_end_matches('/').to_string());
        let h2_streams = match kw.get("user_detail_dict").and_then(|u| u.get("h2_streams")) {
            None | Some(Value::Null) => None,
            Some(v) => {
                let p = format!("{}/h2_streams", at("user_detail_dict"));
                let what = "streams per HTTP/2 connection";
                let n = number_in(file, v, &p, 1.0, crate::MAX_H2_STREAMS as f64, what)?;
                if n.fract() != 0.0 {
                    return Err(err(file, &p, format!("expected a whole number, found {n}")));
                }
                Some(n as usize)
            }
        };
        let users = match kw.get("user_count") {
            None | Some(Value::Null) => 50,
            Some(v) => count(file, v, &at("user_count"), MAX_USERS, "a number of users")?,
        };
        let spawn_rate = match kw.get("spawn_rate") {
            None | Some(Value::Null) => 10.0,
            Some(v) => rate(file, v, &at("spawn_rate"))?,
        };
        let duration = match kw.get("test_time") {
            None => Some(Duration::from_secs(60)),
            Some(Value::Null) => None,
            Some(v) => Some(seconds(file, v, &at("test_time"))?),
        };
        for k in IGNORED_START_FIELDS {
            if kw.contains_key(*k) {
                let hint = if k.starts_with("master_")
                    || matches!(
                        *k,
                        "runner_mode" | "expected_workers" | "worker_startup_policy"
                    ) {
                    " (ld splits a plan over machines with `ld replay --segment I/N` and `ld collect --segments N`, or `ld k8s`)"
                } else {
                    ""
                };
                self.program.notes.push(format!(
                    "{}: `{k}` is accepted and not acted on by ld replay{hint}",
                    at(k)
                ));
            }
        }
        if let Some(ui) = kw.get("web_ui_dict").filter(|v| !v.is_null()) {
            // LoadDensity opens Locust's web UI for any dict, 127.0.0.1:8089 by default.
            let Value::Object(ui) = ui else {
                return Err(err(
                    file,
                    &at("web_ui_dict"),
                    "expected {\"host\": ..., \"port\": ...}",
                ));
            };
            let host = ui
                .get("host")
                .map(value_text)
                .unwrap_or_else(|| "127.0.0.1".into());
            let port = match ui.get("port") {
                None | Some(Value::Null) => 8089,
                Some(v) => value_text(v).parse::<u16>().map_err(|_| {
                    err(
                        file,
                        &format!("{}/port", at("web_ui_dict")),
                        "`port` must be a number from 0 to 65535",
                    )
                })?,
            };
            let host = if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]")
            } else {
                host
            };
            let output = crate::export::parse_output(&format!("dashboard={host}:{port}"))
                .map_err(|e| err(file, &at("web_ui_dict"), e))?;
            self.program.notes.push(format!(
                "{}: `web_ui_dict`: ld's live dashboard at http://{host}:{port}/",
                at("web_ui_dict")
            ));
            self.program.outputs.push(output);
        }
        let shape = match kw.get("load_shape") {
            None | Some(Value::Null) => {
                if kw.get("shape_config").is_some_and(|c| !c.is_null()) {
                    self.program.notes.push(format!(
                        "{}: `shape_config` is not acted on without a `load_shape`",
                        at("shape_config")
                    ));
                }
                None
            }
            Some(Value::String(kind)) => {
                let config = kw.get("shape_config").unwrap_or(&Value::Null);
                check_shape(file, kind, config, &at("load_shape"), &at("shape_config"))?;
                Some(
                    Profile::from_shape(kind, config)
                        .map_err(|m| err(file, &at("load_shape"), m))?,
                )
            }
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
        let (mode, list) = match tasks_text {
            Some(Tasks::Spans {
                nested,
                mode,
                spans,
                not_object,
                extracted,
            }) => {
                let (mode, base) = if nested {
                    let mode = mode_of(file, mode.as_ref(), &format!("{tasks_ptr}/mode"))?;
                    (mode, format!("{tasks_ptr}/tasks"))
                } else {
                    (Mode::Sequence, tasks_ptr.clone())
                };
                if let Some(i) = not_object {
                    return Err(err(file, &format!("{base}/{i}"), "expected a task object"));
                }
                (
                    mode,
                    TaskList::Text {
                        base,
                        spans,
                        extracted,
                    },
                )
            }
            other => {
                let value = match other {
                    Some(Tasks::Value(v)) => Some(v),
                    _ => kw.remove("tasks"),
                };
                let (mode, list) = self.task_values(file, value, &tasks_ptr)?;
                (mode, TaskList::Values(list))
            }
        };
        if list.len() > MAX_TASKS - self.task_count {
            return Err(err(
                file,
                &list.pointer(MAX_TASKS - self.task_count),
                format!(
                    "too many tasks: a plan may have at most {MAX_TASKS} tasks, every \
                     LD_start_test and included file together"
                ),
            ));
        }
        self.task_count += list.len();
        // Variables extractors will set are known names for the placeholder report.
        let mut session = Vec::new();
        let mut known = |vars: Vec<(String, bool)>| {
            for (var, in_session) in vars {
                if in_session {
                    session.push(var);
                } else {
                    self.vars.push(var);
                }
            }
        };
        match &list {
            TaskList::Values(v) => v.iter().for_each(|(_, t)| known(extractor_vars(t))),
            TaskList::Text { extracted, .. } => known(extracted.clone()),
        }
        let mut tasks = Vec::with_capacity(list.len());
        match list {
            TaskList::Values(v) => {
                for (p, t) in v {
                    let task =
                        self.task(file, t, &p, host.as_deref(), &session, default_protocol)?;
                    tasks.push(task);
                }
            }
            TaskList::Text { base, spans, .. } => {
                let mut reader = TaskReader::new(source);
                for (i, span) in spans.into_iter().enumerate() {
                    let p = format!("{base}/{i}");
                    let t = match reader.read(span) {
                        Ok(Some(Value::Object(t))) => t,
                        Ok(_) => {
                            return Err(err(
                                file,
                                &p,
                                "the task is no longer there: the file changed while it was read",
                            ));
                        }
                        Err(e) => return Err(err(file, &p, format!("cannot read the task: {e}"))),
                    };
                    let task =
                        self.task(file, t, &p, host.as_deref(), &session, default_protocol)?;
                    tasks.push(task);
                }
            }
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
            h2_streams,
            tasks: Arc::new(tasks),
        })
    }

    /// LoadDensity's `proxy`, `step_id` and `scenario_id`: accepted (a proxy is a URL
    /// string, as LoadDensity checks it), and noted once each as not acted on.
    fn portability_fields(
        &mut self,
        common: &ld_plan::Common,
        fields: &ld_plan::Fields,
        pointer: &str,
    ) {
        let proxy = matches!(fields, ld_plan::Fields::Http(h) if h.proxy.is_some());
        for (field, set, why) in [
            (
                "proxy",
                proxy,
                "ld replay connects to every target directly, not through a proxy",
            ),
            (
                "step_id",
                common.step_id.is_some(),
                "ld's records and reports do not carry it",
            ),
            (
                "scenario_id",
                common.scenario_id.is_some(),
                "ld's records and reports do not carry it",
            ),
        ] {
            if set && !self.noted_fields.contains(&field) {
                self.noted_fields.push(field);
                self.program.notes.push(format!(
                    "{pointer}/{field}: `{field}` is accepted and not acted on: {why} (noted once \
                     for every task)"
                ));
            }
        }
    }

    /// The tasks of an `LD_start_test` read as a value: a list, `{mode, tasks}` or tasks keyed
    /// by method.
    fn task_values(
        &mut self,
        file: &Path,
        value: Option<Value>,
        tasks_ptr: &str,
    ) -> Result<(Mode, Vec<RawTask>)> {
        Ok(match value {
            None | Some(Value::Null) => {
                return Err(err(file, tasks_ptr, "LD_start_test needs `tasks`"));
            }
            Some(Value::Array(list)) => (Mode::Sequence, task_objects(file, list, tasks_ptr)?),
            Some(Value::Object(mut map)) if map.contains_key("tasks") => {
                check_keys(file, &map, &["mode", "tasks"], tasks_ptr)?;
                let mode = mode_of(file, map.get("mode"), &format!("{tasks_ptr}/mode"))?;
                let inner = format!("{tasks_ptr}/tasks");
                let list = match map.remove("tasks") {
                    Some(Value::Array(list)) => task_objects(file, list, &inner)?,
                    Some(Value::Object(by_method)) => by_method_tasks(file, by_method, &inner)?,
                    _ => return Err(err(file, &inner, "expected a list of tasks")),
                };
                (mode, list)
            }
            Some(Value::Object(by_method)) => {
                (Mode::Sequence, by_method_tasks(file, by_method, tasks_ptr)?)
            }
            Some(_) => {
                return Err(err(
                    file,
                    tasks_ptr,
                    "expected a list of tasks or {mode, tasks}",
                ));
            }
        })
    }

    /// A text field that may be `${env.NAME}` as a whole (a webhook URL kept in the secrets
    /// file); other text is taken as it is.
    fn env_text(&self, file: &Path, text: &str, p: &str) -> Result<String> {
        let t = text.trim();
        if let Some(name) = t
            .strip_prefix("${")
            .and_then(|r| r.strip_suffix('}'))
            .and_then(|r| r.trim().strip_prefix("env."))
        {
            return self.settings.env.get(name.trim()).cloned().ok_or_else(|| {
                err(
                    file,
                    p,
                    format!("`${{env.{name}}}` is not set (secrets file or environment)"),
                )
            });
        }
        let lower = t.to_ascii_lowercase();
        if !lower.starts_with("http://") && !lower.starts_with("https://") {
            return Err(err(file, p, "expected an http or https URL"));
        }
        Ok(t.to_string())
    }

    fn task(
        &mut self,
        file: &Path,
        t: Map<String, Value>,
        pointer: &str,
        host: Option<&str>,
        session: &[String],
        default_protocol: Kind,
    ) -> Result<Task> {
        let kind = task_protocol(file, &t, pointer, default_protocol)?;
        check_keys(file, &t, &kind.fields(), pointer)?;
        // The task read into the plan model, then for its protocol: from here on every field
        // is a typed one.
        let mut typed = ld_plan::Task::from_map(t, pointer).map_err(|e| plan_err(file, e))?;
        let (common, mut fields) = typed.split(kind, pointer).map_err(|e| plan_err(file, e))?;
        self.portability_fields(&common, &fields, pointer);
        let at = |k: &str| format!("{pointer}/{k}");
        let mut graphql = false;
        if let ld_plan::Fields::Http(h) = &mut fields
            && let Some(g) = h.graphql.take()
        {
            graphql_request(file, &mut typed, g, pointer)?;
            graphql = true;
        }
        let method_text = typed.method.as_deref().unwrap_or("").to_ascii_uppercase();
        let url_field = match (&typed.request_url, &typed.url) {
            (Some(u), _) => Some(("request_url", u.clone())),
            (_, Some(u)) => Some(("url", u.clone())),
            _ => None,
        };
        let (report_method, default_name) = match kind {
            Kind::Http => {
                if method_text.is_empty() {
                    return Err(err(file, pointer, "a task needs a `method`"));
                }
                let Some((_, url)) = &url_field else {
                    return Err(err(
                        file,
                        pointer,
                        "a task needs a `request_url` (or `url`) string",
                    ));
                };
                (method_text.to_ascii_lowercase(), url.clone())
            }
            Kind::Socket => {
                let proto = common
                    .protocol
                    .as_deref()
                    .unwrap_or("tcp")
                    .to_ascii_lowercase();
                let target = match &fields {
                    ld_plan::Fields::Socket(f) => f.target.as_deref().unwrap_or(""),
                    _ => "",
                };
                (proto.clone(), format!("{proto} {target}"))
            }
            Kind::Mqtt => match &fields {
                ld_plan::Fields::Mqtt(f) => mqtt::MqttTask::names(&typed, f),
                _ => Default::default(),
            },
            Kind::Grpc => match &fields {
                ld_plan::Fields::Grpc(f) => grpc::GrpcTask::names(&typed, f),
                _ => Default::default(),
            },
            Kind::WebSocket | Kind::Sse => {
                let prefix = if kind == Kind::WebSocket { "ws" } else { "sse" };
                let op = method_text.to_ascii_lowercase();
                let url = url_field.as_ref().map(|(_, u)| u.as_str()).unwrap_or("");
                (format!("{prefix} {op}"), format!("{prefix} {op} {url}"))
            }
        };
        let name_text = match &typed.name {
            Some(n) if !n.is_empty() => n.clone(),
            _ => default_name.trim().to_string(),
        };
        let name_id = match self.name_ids.get(name_text.as_str()) {
            Some(id) => *id,
            None => {
                let id = self.program.names.len();
                let name: Arc<str> = Arc::from(name_text.as_str());
                let method = match self.methods.iter().find(|m| ***m == *report_method) {
                    Some(m) => m.clone(),
                    None => {
                        let m: Arc<str> = Arc::from(report_method.as_str());
                        self.methods.push(m.clone());
                        m
                    }
                };
                self.program.names.push(NameInfo {
                    name: name.clone(),
                    method,
                });
                self.name_ids.insert(name, id);
                id
            }
        };
        let name = self.program.names[name_id].name.clone();

        let mut tls = TlsSettings {
            verify: !self.settings.insecure,
            ca_files: self.settings.ca_cert.iter().cloned().collect(),
            client_cert: self.settings.client_cert.clone(),
        };
        match &typed.verify {
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
        let cert = match &fields {
            ld_plan::Fields::Http(h) => h.cert.as_ref().or(h.client_cert.as_ref()),
            ld_plan::Fields::Mqtt(m) => m.cert.as_ref(),
            ld_plan::Fields::Grpc(g) => g.cert.as_ref(),
            _ => None,
        };
        match cert {
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
        // MQTT's and gRPC's own TLS fields: `ca_cert` trusted besides the roots, `key` beside `cert`.
        let (ca_cert, key) = match &fields {
            ld_plan::Fields::Mqtt(m) => (m.ca_cert.as_ref(), m.key.as_ref()),
            ld_plan::Fields::Grpc(g) => (g.ca_cert.as_ref(), g.key.as_ref()),
            _ => (None, None),
        };
        if let Some(ca) = ca_cert {
            tls.ca_files.push(resolve_path(file, ca));
        }
        match (key, tls.client_cert.as_mut()) {
            (None, _) => {}
            (Some(k), Some((_, key))) => *key = resolve_path(file, k),
            (Some(_), None) => return Err(err(file, &at("key"), "a `key` needs a `cert`")),
        }
        // gRPC speaks HTTP/2; other protocols HTTP/1.1 at most (the WebSocket handshake).
        let version = match kind {
            Kind::Http => self.settings.http,
            Kind::Grpc => HttpVersion::Http2,
            _ => HttpVersion::Http1,
        };
        let tls = match self.tls.get(&(tls.clone(), version)) {
            Some(c) => c.clone(),
            None => {
                let config = Arc::new(client_config(&tls, version)?);
                self.tls.insert((tls, version), config.clone());
                config
            }
        };
        let timeout_default = match kind {
            Kind::Http => self.settings.timeout,
            // LoadDensity's defaults: 5 s for WebSocket and socket steps, 30 s for SSE.
            Kind::WebSocket | Kind::Socket | Kind::Mqtt => Duration::from_secs(5),
            Kind::Sse => Duration::from_secs(30),
            Kind::Grpc => grpc::DEFAULT_TIMEOUT,
        };

        if kind == Kind::Http {
            match &typed.auth {
                None | Some(Value::Null) => {}
                Some(Value::Object(auth)) => {
                    let kind = auth.get("type").and_then(Value::as_str).unwrap_or("");
                    let known: &[&str] = match kind.to_ascii_lowercase().as_str() {
                        "basic" | "bearer" => &["type", "username", "password", "token"],
                        "oauth2" => crate::auth::OAUTH2_FIELDS,
                        "sigv4" => crate::auth::SIGV4_FIELDS,
                        "jwt" => crate::auth::JWT_FIELDS,
                        _ => {
                            return Err(err(
                                file,
                                &format!("{}/type", at("auth")),
                                format!(
                                    "unknown auth type `{kind}`: basic, bearer, oauth2, sigv4 or jwt"
                                ),
                            ));
                        }
                    };
                    check_keys(file, auth, known, &at("auth"))?;
                }
                Some(_) => return Err(err(file, &at("auth"), "expected an object")),
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
        let mut request_tv = TValue::Literal(Value::Null);
        let mut other: Option<Proto> = None;
        let mut auth = None;
        match kind {
            Kind::Http => {
                let Some((url_key, url)) = &url_field else {
                    return Err(err(file, pointer, "a task needs a `request_url`"));
                };
                // `basic` and `bearer` are request fields; the other types are helpers the
                // transport runs.
                if let Some(Value::Object(map)) = &typed.auth
                    && !map.get("type").and_then(Value::as_str).is_some_and(|k| {
                        k.eq_ignore_ascii_case("basic") || k.eq_ignore_ascii_case("bearer")
                    })
                {
                    let base = base_dir(file);
                    let compiled = crate::auth::Auth::compile(
                        map,
                        &at("auth"),
                        &mut binder,
                        &base,
                        &self.shared_tokens,
                    )
                    .map_err(|(p, m)| err(file, &p, m))?;
                    auth = Some(compiled);
                    typed.auth = None;
                }
                let full_url = match host {
                    Some(h) if url.starts_with('/') => format!("{h}{url}"),
                    _ => url.clone(),
                };
                // The request fields move out of the task: nothing reads them from it again.
                let mut request = Map::new();
                request.insert("url".into(), Value::String(full_url));
                for (k, v) in [
                    ("params", typed.params.take()),
                    ("headers", typed.headers.take().map(Value::Object)),
                    ("cookies", typed.cookies.take().map(Value::Object)),
                    ("json", typed.json.take()),
                    ("data", typed.data.take()),
                    ("body", typed.body.take()),
                    ("files", typed.files.take()),
                    ("auth", typed.auth.take()),
                ] {
                    if let Some(v) = v {
                        request.insert(k.into(), v);
                    }
                }
                // The url's pointer is the task field, the others keep their own.
                let mut parts = Vec::new();
                for (k, v) in &request {
                    let p = if k == "url" { at(url_key) } else { at(k) };
                    parts.push((k.clone(), binder.value(v, &p)));
                }
                request_tv = if parts.iter().all(|(_, v)| v.as_literal().is_some()) {
                    TValue::Literal(Value::Object(
                        parts
                            .into_iter()
                            .map(|(k, v)| (k, v.as_literal().cloned().unwrap_or(Value::Null)))
                            .collect(),
                    ))
                } else {
                    TValue::Object(parts)
                };
            }
            Kind::WebSocket | Kind::Sse | Kind::Socket | Kind::Mqtt | Kind::Grpc => {
                let mut cx = CompileCx {
                    file,
                    pointer,
                    task: &typed,
                    common: &common,
                    binder: &mut binder,
                    tls: tls.clone(),
                    host,
                };
                other = Some(match &fields {
                    ld_plan::Fields::WebSocket(f) => {
                        Proto::WebSocket(Box::new(ws::WsTask::compile(&mut cx, f)?))
                    }
                    ld_plan::Fields::Sse(f) => {
                        Proto::Sse(Box::new(sse::SseTask::compile(&mut cx, f)?))
                    }
                    ld_plan::Fields::Mqtt(f) => {
                        Proto::Mqtt(Box::new(mqtt::MqttTask::compile(&mut cx, f)?))
                    }
                    ld_plan::Fields::Grpc(f) => Proto::Grpc(Box::new(grpc::GrpcTask::compile(
                        &mut cx,
                        f,
                        &mut self.grpc,
                    )?)),
                    ld_plan::Fields::Socket(f) => {
                        Proto::Socket(Box::new(socket::SocketTask::compile(&mut cx, f)?))
                    }
                    ld_plan::Fields::Http(_) => {
                        return Err(err(file, pointer, "an HTTP task read for another protocol"));
                    }
                });
            }
        }

        let mut checks = Vec::new();
        for (i, a) in typed.assertions.iter().flatten().enumerate() {
            let p = format!("{}/{i}", at("assertions"));
            checks.push(assertion(file, a, &p, &mut binder)?);
        }
        if graphql {
            checks.push(Check::GraphqlErrors);
        }
        let mut extract = Vec::new();
        for (i, e) in typed.extract.iter().flatten().enumerate() {
            extract.push(extractor(file, e, &format!("{}/{i}", at("extract")))?);
        }
        let run_if = typed
            .run_if
            .as_ref()
            .map(|v| predicate(file, v, &at("run_if"), &mut binder).map(Box::new))
            .transpose()?;
        let skip_if = typed
            .skip_if
            .as_ref()
            .map(|v| predicate(file, v, &at("skip_if"), &mut binder).map(Box::new))
            .transpose()?;
        self.program.unresolved = unresolved;

        let timeout = match &typed.timeout {
            None | Some(Value::Null) => timeout_default,
            Some(v) => {
                let d = seconds(file, v, &at("timeout"))?;
                if d.is_zero() {
                    return Err(err(file, &at("timeout"), "a timeout must be above 0"));
                }
                d
            }
        };
        let proto = match other {
            Some(p) => p,
            None => {
                let method = http::Method::from_bytes(method_text.as_bytes()).map_err(|_| {
                    err(
                        file,
                        &at("method"),
                        format!("invalid method `{method_text}`"),
                    )
                })?;
                let base = match self.bases.get(file) {
                    Some(b) => b.clone(),
                    None => {
                        let b: Arc<Path> = Arc::from(base_dir(file));
                        self.bases.insert(file.to_path_buf(), b.clone());
                        b
                    }
                };
                let follow_redirects = typed.allow_redirects.unwrap_or(false);
                let prepared = match request_tv.as_literal() {
                    Some(fields) => {
                        let mut p = prepare(
                            fields,
                            &base,
                            &mut SmallRng::seed_from_u64(0),
                            self.form_charset,
                        )
                        .map_err(|m| err(file, pointer, m))?;
                        // A task named by its URL shares the name's text.
                        if *p.url == *name {
                            p.url = name.clone();
                        }
                        Some(p)
                    }
                    None => None,
                };
                // Requests without auth take the compact form unless they are certain to go
                // out over HTTP/2 (auth reads the header map, kept for it). An `https://`
                // request whose server picks `h2` makes its full form when first sent.
                let h1 = match self.settings.http {
                    HttpVersion::Http1 | HttpVersion::Auto => true,
                    HttpVersion::Http2 => false,
                };
                let (prepared, literal) = match prepared {
                    Some(p) if h1 && auth.is_none() => match Literal::new(&p) {
                        Some(l) => (None, Some(Box::new(l))),
                        None => (Some(p), None),
                    },
                    other => (other, None),
                };
                let prepared = prepared.map(|mut p| {
                    p.headers = compact_headers(&p.headers);
                    Arc::new(p)
                });
                let request_tv = match (prepared.is_some() || literal.is_some(), request_tv) {
                    (true, TValue::Literal(Value::Object(fields))) => {
                        let rest = unprepared_fields(fields);
                        // An empty map still holds its table: a plan of many tasks would pay
                        // for it in each.
                        if rest.is_empty() {
                            TValue::Literal(Value::Null)
                        } else {
                            TValue::Literal(Value::Object(rest.into_iter().collect()))
                        }
                    }
                    (_, tv) => tv,
                };
                Proto::Http(HttpTask {
                    method,
                    form_charset: self.form_charset,
                    request: match request_tv {
                        TValue::Literal(Value::Null) => None,
                        tv => Some(Box::new(tv)),
                    },
                    prepared,
                    literal,
                    base_dir: base,
                    follow_redirects,
                    tls,
                    auth,
                })
            }
        };
        let weight = match &typed.weight {
            None | Some(Value::Null) => 1,
            // LoadDensity's plans sometimes quote the weight.
            Some(Value::String(s)) => match s.trim().parse::<f64>() {
                Ok(w) => count(file, &Value::from(w), &at("weight"), MAX_COUNT, "a weight")?,
                Err(_) => {
                    return Err(err(
                        file,
                        &at("weight"),
                        format!(
                            "expected a weight, found {}",
                            kind_of(&Value::String(s.clone()))
                        ),
                    ));
                }
            },
            Some(v) => count(file, v, &at("weight"), MAX_COUNT, "a weight")?,
        };
        let think = match &typed.think_time {
            None | Some(Value::Null) => None,
            Some(v @ Value::Number(_)) => Some(Think::Fixed(seconds(file, v, &at("think_time"))?)),
            Some(Value::Object(m)) => {
                let tp = at("think_time");
                check_keys(file, m, &["min", "max"], &tp)?;
                let lo = match m.get("min") {
                    None | Some(Value::Null) => Duration::ZERO,
                    Some(v) => seconds(file, v, &format!("{tp}/min"))?,
                };
                let hi = match m.get("max") {
                    None | Some(Value::Null) => lo,
                    Some(v) => seconds(file, v, &format!("{tp}/max"))?,
                };
                if hi < lo {
                    return Err(err(file, &format!("{tp}/max"), "`max` is below `min`"));
                }
                Some(Think::Between(lo, hi))
            }
            Some(_) => {
                return Err(err(
                    file,
                    &at("think_time"),
                    "expected seconds or {min, max}",
                ));
            }
        };
        let throttle = match &common.throttle {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => {
                let tp = at("throttle");
                check_keys(file, m, &["rps", "burst", "key"], &tp)?;
                let rps = match m.get("rps") {
                    Some(v) => rate(file, v, &format!("{tp}/rps"))?,
                    None => return Err(err(file, &tp, "a throttle needs `rps`")),
                };
                if rps == 0.0 {
                    return Err(err(
                        file,
                        &format!("{tp}/rps"),
                        "a throttle's `rps` must be above 0",
                    ));
                }
                let burst = match m.get("burst") {
                    None | Some(Value::Null) => 1,
                    Some(v) => count(file, v, &format!("{tp}/burst"), MAX_COUNT, "a burst size")?,
                };
                let key = m
                    .get("key")
                    .map(value_text)
                    .unwrap_or_else(|| name_text.clone());
                Some(
                    self.throttles
                        .entry(key)
                        .or_insert_with(|| Arc::new(Throttle::new(rps, burst)))
                        .clone(),
                )
            }
            Some(v) => {
                return Err(err(
                    file,
                    &at("throttle"),
                    format!("expected {{rps, burst, key}}, found {}", kind_of(v)),
                ));
            }
        };
        let retry = match &common.retry {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(Box::new(retry_policy(file, m, &at("retry"))?)),
            Some(v) => {
                return Err(err(
                    file,
                    &at("retry"),
                    format!("expected an object, found {}", kind_of(v)),
                ));
            }
        };
        let recorded = match &common.recorded {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => {
                let rp = at("recorded");
                check_keys(file, m, &["at", "session"], &rp)?;
                let offset = match m.get("at") {
                    Some(v) => seconds(file, v, &format!("{rp}/at"))?,
                    None => return Err(err(file, &rp, "`recorded` needs `at`, in seconds")),
                };
                let session = match m.get("session") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(count(
                        file,
                        v,
                        &format!("{rp}/session"),
                        u64::from(u32::MAX),
                        "a session number",
                    )? as u32),
                };
                Some(Box::new(Recorded {
                    at: offset,
                    session,
                }))
            }
            Some(v) => {
                return Err(err(
                    file,
                    &at("recorded"),
                    format!("expected {{at, session}}, found {}", kind_of(v)),
                ));
            }
        };
        // A failed assertion quotes the body, so any check keeps it (a single-chunk body is
        // kept without a copy).
        let needs_body = !checks.is_empty() || extract.iter().any(Extract::needs_body);
        let needs_headers = checks.iter().any(|c| matches!(c, Check::Header { .. }))
            || extract
                .iter()
                .any(|e| matches!(e.source, Source::Header(_)));
        let checks = checks.into_boxed_slice();
        extract.shrink_to_fit();
        Ok(Task {
            name_id,
            name,
            timeout,
            weight,
            run_if,
            skip_if,
            think,
            throttle,
            retry,
            recorded,
            checks,
            extract,
            needs_body,
            needs_headers,
            proto,
        })
    }
}

/// A task's `graphql: {query, variables, operation_name}` made its `json` body, `{"query",
/// "variables", "operationName"}`, sent with POST (the method when the task names none).
fn graphql_request(
    file: &Path,
    t: &mut ld_plan::Task,
    g: Map<String, Value>,
    pointer: &str,
) -> Result<()> {
    let gp = format!("{pointer}/graphql");
    check_keys(file, &g, &["query", "variables", "operation_name"], &gp)?;
    for (body, set) in [
        ("json", t.json.is_some()),
        ("data", t.data.is_some()),
        ("body", t.body.is_some()),
        ("files", t.files.is_some()),
    ] {
        if set {
            return Err(err(
                file,
                &format!("{pointer}/{body}"),
                "a graphql task's body is its query: drop this field",
            ));
        }
    }
    let mut json = Map::new();
    match g.get("query") {
        Some(q @ Value::String(s)) if !s.trim().is_empty() => {
            json.insert("query".into(), q.clone());
        }
        _ => return Err(err(file, &gp, "a graphql task needs a `query` string")),
    }
    match g.get("variables") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Object(_)) => {
            json.insert("variables".into(), v.clone());
        }
        Some(v) => {
            return Err(err(
                file,
                &format!("{gp}/variables"),
                format!("expected an object, found {}", kind_of(v)),
            ));
        }
    }
    match g.get("operation_name") {
        None | Some(Value::Null) => {}
        Some(v @ Value::String(_)) => {
            json.insert("operationName".into(), v.clone());
        }
        Some(v) => {
            return Err(err(
                file,
                &format!("{gp}/operation_name"),
                format!("expected a string, found {}", kind_of(v)),
            ));
        }
    }
    match t.method.as_deref() {
        None => t.method = Some("post".into()),
        Some(m) if m.eq_ignore_ascii_case("post") => {}
        Some(_) => {
            return Err(err(
                file,
                &format!("{pointer}/method"),
                "a graphql task is sent with POST",
            ));
        }
    }
    t.json = Some(Value::Object(json));
    Ok(())
}

/// A task's `retry` object: LoadDensity's keys and defaults, each checked.
fn retry_policy(file: &Path, m: &Map<String, Value>, rp: &str) -> Result<crate::task::Retry> {
    check_keys(
        file,
        m,
        &[
            "transient",
            "flaky",
            "permanent",
            "base_delay",
            "max_delay",
            "backoff_factor",
            "jitter",
        ],
        rp,
    )?;
    let mut r = crate::task::Retry::default();
    let field = |k: &str| m.get(k).filter(|v| !v.is_null());
    let p = |k: &str| format!("{rp}/{k}");
    for (k, slot) in [
        ("transient", &mut r.transient),
        ("flaky", &mut r.flaky),
        ("permanent", &mut r.permanent),
    ] {
        if let Some(v) = field(k) {
            *slot = count(file, v, &p(k), MAX_RETRIES, "a number of retries")? as u32;
        }
    }
    if let Some(v) = field("base_delay") {
        r.base_delay = seconds_within(file, v, &p("base_delay"), MAX_RETRY_DELAY)?;
    }
    if let Some(v) = field("max_delay") {
        r.max_delay = seconds_within(file, v, &p("max_delay"), MAX_RETRY_DELAY)?;
    }
    if let Some(v) = field("backoff_factor") {
        r.backoff_factor = number_in(file, v, &p("backoff_factor"), 0.0, 100.0, "a factor")?;
    }
    if let Some(v) = field("jitter") {
        r.jitter = number_in(file, v, &p("jitter"), 0.0, 10.0, "a fraction of the delay")?;
    }
    Ok(r)
}

/// Seconds from 0 to `max`.
fn seconds_within(file: &Path, v: &Value, p: &str, max: f64) -> Result<Duration> {
    let f = number_in(file, v, p, 0.0, max, "a number of seconds")?;
    Duration::try_from_secs_f64(f).map_err(|e| err(file, p, e))
}

/// Checks a `load_shape`'s `shape_config` before it is built: known keys, numbers in range.
fn check_shape(file: &Path, kind: &str, config: &Value, kind_p: &str, p: &str) -> Result<()> {
    const SECONDS: &[&str] = &[
        "duration",
        "pre_seconds",
        "spike_seconds",
        "post_seconds",
        "ramp_seconds",
        "hold_seconds",
        "cooldown_seconds",
    ];
    const USERS: &[&str] = &["users", "baseline_users", "spike_users"];
    let check = |m: &Map<String, Value>, known: &[&str], p: &str| -> Result<()> {
        check_keys(file, m, known, p)?;
        for (k, v) in m {
            let vp = format!("{p}/{}", escape_pointer(k));
            if SECONDS.contains(&k.as_str()) {
                seconds(file, v, &vp)?;
            } else if USERS.contains(&k.as_str()) {
                count(file, v, &vp, MAX_USERS, "a number of users")?;
            } else if k == "spawn_rate" {
                rate(file, v, &vp)?;
            }
        }
        Ok(())
    };
    let known: &[&str] = match kind {
        "stages" => &["stages"],
        "spike" => &[
            "baseline_users",
            "spike_users",
            "spawn_rate",
            "pre_seconds",
            "spike_seconds",
            "post_seconds",
        ],
        "soak" => &["users", "ramp_seconds", "hold_seconds", "cooldown_seconds"],
        other => {
            let hint = nearest(other, ["stages", "spike", "soak"].into_iter());
            return Err(err(
                file,
                kind_p,
                format!("unknown load_shape `{other}`{hint}: stages, spike or soak"),
            ));
        }
    };
    let empty = Map::new();
    let map = match config {
        Value::Null => &empty,
        Value::Object(m) => m,
        other => {
            return Err(err(
                file,
                p,
                format!("expected an object, found {}", kind_of(other)),
            ));
        }
    };
    check(map, known, p)?;
    if kind == "stages" {
        let sp = format!("{p}/stages");
        let Some(Value::Array(stages)) = map.get("stages") else {
            return Err(err(
                file,
                &sp,
                "load_shape `stages` needs a list of {duration, users, spawn_rate} here",
            ));
        };
        for (i, stage) in stages.iter().enumerate() {
            let ip = format!("{sp}/{i}");
            let Value::Object(m) = stage else {
                return Err(err(
                    file,
                    &ip,
                    format!(
                        "expected {{duration, users, spawn_rate}}, found {}",
                        kind_of(stage)
                    ),
                ));
            };
            check(m, &["duration", "users", "spawn_rate"], &ip)?;
        }
    }
    Ok(())
}

fn assertion(
    file: &Path,
    a: &ld_plan::Assertion,
    p: &str,
    binder: &mut Binder<'_>,
) -> Result<Check> {
    // The model names every field but `shape`, which only `json_shape` takes.
    check_keys(file, &a.extra, ASSERTION_FIELDS, p)?;
    let kind = a.kind.to_ascii_lowercase();
    let value = |binder: &mut Binder<'_>| -> Result<TValue> {
        a.value
            .as_ref()
            .map(|v| binder.value(v, &format!("{p}/value")))
            .ok_or_else(|| err(file, p, format!("a `{kind}` assertion needs a `value`")))
    };
    let text_field = |k: &str, v: &Option<String>| -> Result<String> {
        v.clone().ok_or_else(|| {
            err(
                file,
                p,
                format!("a `{kind}` assertion needs a `{k}` string"),
            )
        })
    };
    Ok(match kind.as_str() {
        "status_code" => match a.value.as_ref().and_then(Value::as_u64) {
            Some(code) if code <= u64::from(u16::MAX) => Check::StatusCode(code as u16),
            _ => Check::Status(Box::new(value(binder)?)),
        },
        "grpc_status" => {
            let v = a
                .value
                .as_ref()
                .ok_or_else(|| err(file, p, "a `grpc_status` assertion needs a `value`"))?;
            let code = match v {
                Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                Value::String(s) => grpc::parse_status(s),
                _ => None,
            };
            Check::GrpcStatus(code.ok_or_else(|| {
                err(
                    file,
                    &format!("{p}/value"),
                    format!(
                        "expected a gRPC status: a number or a name ({})",
                        grpc::STATUS_NAMES.join(", ")
                    ),
                )
            })?)
        }
        "message_count" => Check::Header {
            name: "grpc-messages".into(),
            value: Box::new(value(binder)?),
        },
        "contains" => Check::Contains(Box::new(value(binder)?)),
        "not_contains" => Check::NotContains(Box::new(value(binder)?)),
        "json_path" => Check::JsonPath {
            path: text_field("path", &a.path)?.into(),
            value: Box::new(value(binder)?),
        },
        "header" => Check::Header {
            name: text_field("name", &a.name)?.into(),
            value: Box::new(value(binder)?),
        },
        "regex" => {
            let pattern = a
                .pattern
                .as_deref()
                .or_else(|| a.value.as_ref().and_then(Value::as_str))
                .ok_or_else(|| err(file, p, "a `regex` assertion needs a `pattern`"))?;
            Check::Regex(Box::new(
                regex::Regex::new(pattern).map_err(|e| err(file, &format!("{p}/pattern"), e))?,
            ))
        }
        "max_latency_ms" => {
            let v = a
                .value
                .as_ref()
                .ok_or_else(|| err(file, p, "a `max_latency_ms` assertion needs a `value`"))?;
            Check::MaxLatency(number_in(
                file,
                v,
                &format!("{p}/value"),
                0.0,
                MAX_SECONDS * 1000.0,
                "a number of milliseconds",
            )?)
        }
        "json_shape" => {
            let shape = a
                .extra
                .get("shape")
                .ok_or_else(|| err(file, p, "a `json_shape` assertion needs a `shape`"))?;
            Check::JsonShape(Box::new(
                crate::check::Shape::parse(shape)
                    .map_err(|(at, e)| err(file, &format!("{p}/shape{at}"), e))?,
            ))
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

fn extractor(file: &Path, e: &ld_plan::Extractor, p: &str) -> Result<Extract> {
    // The model names every field but `recorded_sha256`.
    check_keys(file, &e.extra, EXTRACT_FIELDS, p)?;
    if e.var.is_empty() {
        return Err(err(file, p, "an extractor needs a `var`"));
    }
    let var = e.var.clone();
    let from = e.from.to_ascii_lowercase();
    let field = |k: &str, v: &Option<String>| -> Result<String> {
        v.clone()
            .ok_or_else(|| err(file, p, format!("a `{from}` extractor needs a `{k}`")))
    };
    let source = match from.as_str() {
        "json_path" => Source::JsonPath(field("path", &e.path)?),
        "header" => Source::Header(field("name", &e.name)?),
        "status_code" => Source::Status,
        "regex" => {
            let pattern = e
                .pattern
                .as_deref()
                .or(e.path.as_deref())
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
    let session = match e.scope.as_deref().unwrap_or("var") {
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
    let recorded = match e.extra.get("recorded_sha256") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) if d.len() == 16 && d.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(d.to_ascii_lowercase().into_boxed_str())
        }
        Some(v) => {
            return Err(err(
                file,
                &format!("{p}/recorded_sha256"),
                format!(
                    "expected 16 hex digits (the start of a SHA-256), found {}",
                    kind_of(v)
                ),
            ));
        }
    };
    Ok(Extract {
        var,
        session,
        source,
        recorded,
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

/// A header map with room for its entries only: a map grown one insert at a time keeps
/// room for several more, and a plan may hold a million of them.
fn compact_headers(headers: &http::HeaderMap) -> http::HeaderMap {
    let mut out = http::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        out.append(name.clone(), value.clone());
    }
    out
}

/// What a prepared task keeps of its literal request fields: the ones the prepared request
/// does not already hold in a form the redactor reads the same way. The URL is never read
/// from them once prepared; string headers (no `Cookie`) and string cookies are read from the
/// prepared request.
fn unprepared_fields(mut fields: Map<String, Value>) -> Map<String, Value> {
    fields.remove("url");
    let strings = |v: Option<&Value>, cookie_ok: bool| {
        v.and_then(Value::as_object).is_some_and(|m| {
            m.iter().all(|(k, v)| {
                v.as_str()
                    .is_some_and(|s| s.is_ascii() && (!cookie_ok || !s.contains(' ')))
                    && (cookie_ok || !k.eq_ignore_ascii_case("cookie"))
            })
        })
    };
    if strings(fields.get("headers"), false) {
        fields.remove("headers");
    }
    if strings(fields.get("cookies"), true) {
        fields.remove("cookies");
    }
    fields
}

/// A task object with its JSON pointer.
type RawTask = (String, Map<String, Value>);

/// The `mode` of `{mode, tasks}`; `pointer` is the mode's.
fn mode_of(file: &Path, value: Option<&Value>, pointer: &str) -> Result<Mode> {
    match value {
        None | Some(Value::Null) => Ok(Mode::Sequence),
        Some(Value::String(m)) => match m.to_ascii_lowercase().as_str() {
            "sequence" => Ok(Mode::Sequence),
            "weighted" => Ok(Mode::Weighted),
            "conditional" => Ok(Mode::Conditional),
            other => {
                let hint = nearest(other, ["sequence", "weighted", "conditional"].into_iter());
                Err(err(file, pointer, format!("unknown mode `{other}`{hint}")))
            }
        },
        Some(_) => Err(err(file, pointer, "expected a string")),
    }
}

fn task_objects(file: &Path, list: Vec<Value>, pointer: &str) -> Result<Vec<RawTask>> {
    list.into_iter()
        .enumerate()
        .map(|(i, t)| {
            let p = format!("{pointer}/{i}");
            match t {
                Value::Object(m) => Ok((p, m)),
                _ => Err(err(file, &p, "expected a task object")),
            }
        })
        .collect()
}

fn by_method_tasks(file: &Path, map: Map<String, Value>, pointer: &str) -> Result<Vec<RawTask>> {
    map.into_iter()
        .map(|(method, body)| {
            let p = format!("{pointer}/{}", escape_pointer(&method));
            match body {
                Value::Object(mut m) => {
                    m.entry("method").or_insert_with(|| Value::String(method));
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
    command: &str,
    args: Args,
    params: &[&str],
    pointer: &str,
) -> Result<Map<String, Value>> {
    match args {
        Args::None => Ok(Map::new()),
        Args::Kwargs(map) => {
            check_keys(file, &map, params, &format!("{pointer}/1"))?;
            Ok(map)
        }
        Args::List(list) => {
            if list.len() > params.len() {
                return Err(err(
                    file,
                    &format!("{pointer}/1"),
                    format!(
                        "`{}` takes {} argument(s) ({}), this one has {}",
                        command,
                        params.len(),
                        params.join(", "),
                        list.len()
                    ),
                ));
            }
            Ok(params
                .iter()
                .zip(list)
                .map(|(k, v)| (k.to_string(), v))
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

/// `LD_start_opentelemetry_exporter`'s `endpoint` (OTLP/gRPC without TLS, `http://HOST:PORT`
/// or `HOST:PORT`; 127.0.0.1:4317 when absent) and `service_name` (`ld` when absent).
fn otlp_output(
    file: &Path,
    kw: &Map<String, Value>,
    pointer: &str,
) -> Result<crate::export::Output> {
    let endpoint = kw
        .get("endpoint")
        .filter(|v| !v.is_null())
        .map(value_text)
        .unwrap_or_else(|| "127.0.0.1:4317".into());
    let at = format!("{pointer}/1/endpoint");
    if endpoint.starts_with("https://") {
        return Err(err(
            file,
            &at,
            "`LD_start_opentelemetry_exporter`: ld replay sends OTLP/gRPC without TLS; give http://HOST:PORT",
        ));
    }
    let authority = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("grpc://"))
        .unwrap_or(&endpoint)
        .trim_end_matches('/');
    let output = crate::export::parse_output(&format!("otlp=grpc://{authority}"))
        .map_err(|m| err(file, &at, format!("`LD_start_opentelemetry_exporter`: {m}")))?;
    let service = kw
        .get("service_name")
        .filter(|v| !v.is_null())
        .map(value_text)
        .unwrap_or_else(|| "ld".into());
    Ok(match output {
        crate::export::Output::OtlpGrpc(addr, authority, _) => {
            crate::export::Output::OtlpGrpc(addr, authority, service)
        }
        other => other,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            insecure: false,
            ca_cert: None,
            client_cert: None,
            timeout: Duration::from_secs(5),
            http: HttpVersion::Auto,
            env: HashMap::new(),
            segment: crate::segment::Segment::WHOLE,
        }
    }

    fn compile_text(text: &str) -> Result<Program> {
        compile(Path::new("plan.json"), text.to_string(), &settings())
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
    fn auth_helpers_and_graphql_are_checked_with_their_pointers() {
        let task = |t: &str| format!(r#"[["LD_start_test", {{"tasks": [{t}]}}]]"#);
        for (t, pointer, message) in [
            (
                r#"{"method": "get", "url": "http://127.0.0.1:1/", "auth": {"type": "oauth2", "client_id": "a"}}"#,
                "/0/1/tasks/0/auth",
                "a `oauth2` auth needs `token_url`",
            ),
            (
                r#"{"method": "get", "url": "http://127.0.0.1:1/", "auth": {"type": "oauth2", "token_url": "http://127.0.0.1:1/t", "grant": "implicit"}}"#,
                "/0/1/tasks/0/auth/grant",
                "unknown grant `implicit`: client_credentials, password, refresh_token",
            ),
            (
                r#"{"method": "get", "url": "http://127.0.0.1:1/", "auth": {"type": "jwt", "alg": "HS512", "key": "k"}}"#,
                "/0/1/tasks/0/auth/alg",
                "unknown alg `HS512`: HS256, RS256, ES256",
            ),
            (
                r#"{"method": "get", "url": "http://127.0.0.1:1/", "auth": {"type": "jwt", "alg": "HS256", "key": "k", "per": "run"}}"#,
                "/0/1/tasks/0/auth/per",
                "expected `user` or `request`",
            ),
            (
                r#"{"method": "get", "url": "http://127.0.0.1:1/", "auth": {"type": "sigv4", "service": "s", "region": "r", "access_key": "a"}}"#,
                "/0/1/tasks/0/auth",
                "a `sigv4` auth needs `secret_key`",
            ),
            (
                r#"{"method": "get", "url": "http://127.0.0.1:1/", "auth": {"type": "oauth2", "token_url": "http://127.0.0.1:1/t", "client_id": "a", "shared": "yes"}}"#,
                "/0/1/tasks/0/auth/shared",
                "expected true or false",
            ),
            (
                r#"{"url": "http://127.0.0.1:1/", "graphql": {"variables": {}}}"#,
                "/0/1/tasks/0/graphql",
                "a graphql task needs a `query` string",
            ),
            (
                r#"{"method": "get", "url": "http://127.0.0.1:1/", "graphql": {"query": "{ a }"}}"#,
                "/0/1/tasks/0/method",
                "a graphql task is sent with POST",
            ),
            (
                r#"{"url": "http://127.0.0.1:1/", "graphql": {"query": "{ a }", "operation": "A"}}"#,
                "/0/1/tasks/0/graphql/operation",
                "unknown field `operation`",
            ),
        ] {
            let text = compile_text(&task(t)).expect_err(t).to_string();
            assert!(text.contains(pointer), "{t}: {text}");
            assert!(text.contains(message), "{t}: {text}");
        }
        let program = compile_text(&task(
            r#"{"url": "http://127.0.0.1:1/", "graphql": {"query": "{ a }"}}"#,
        ))
        .expect("a graphql task");
        assert!(format!("{:?}", program.steps).contains("GraphqlErrors"));
    }

    #[test]
    fn loaddensity_proxy_step_and_scenario_ids_are_accepted_with_one_note_each() {
        let p = compile_text(
            r#"[["LD_start_test", {"tasks": [
                {"method": "get", "request_url": "http://h/a", "proxy": "http://127.0.0.1:3128",
                 "step_id": "s1", "scenario_id": "checkout"},
                {"method": "get", "request_url": "http://h/b", "proxy": "http://127.0.0.1:3128",
                 "step_id": "s2"}]}]]"#,
        )
        .expect("compiles");
        let notes: Vec<&String> = p
            .notes
            .iter()
            .filter(|n| n.contains("not acted on"))
            .collect();
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes[0].starts_with("/0/1/tasks/0/proxy: "), "{notes:?}");
        assert!(notes[0].contains("directly"), "{notes:?}");
        let e = compile_text(
            r#"[["LD_start_test", {"tasks": [
                {"method": "get", "request_url": "http://h/", "proxy": 3128}]}]]"#,
        )
        .expect_err("a proxy is a URL");
        assert!(e.to_string().contains("/0/1/tasks/0/proxy"), "{e}");
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
    fn the_open_model_keeps_at_most_a_thousand_users_unless_the_plan_has_more() {
        assert_eq!(open_model_users(50, 1_000_000.0), DEFAULT_OPEN_USERS);
        assert_eq!(open_model_users(50, 10.0), 50);
        assert_eq!(open_model_users(5, 200.5), 201);
        assert_eq!(open_model_users(5000, 1_000_000.0), 5000);
        assert_eq!(open_model_users(0, 0.001), 1);
    }

    #[test]
    fn out_of_range_numbers_name_their_pointer() {
        for (field, pointer) in [
            (r#""test_time": 1e300"#, "/0/1/test_time"),
            (r#""test_time": -1"#, "/0/1/test_time"),
            (r#""user_count": 1000001"#, "/0/1/user_count"),
            (r#""user_count": 2.5"#, "/0/1/user_count"),
            (r#""spawn_rate": "5""#, "/0/1/spawn_rate"),
            (
                r#""load_shape": "stages", "shape_config": {"stages": [{"duration": 1e300, "users": 1}]}"#,
                "/0/1/shape_config/stages/0/duration",
            ),
            (
                r#""load_shape": "soak", "shape_config": {"hold_secs": 5}"#,
                "/0/1/shape_config/hold_secs",
            ),
        ] {
            let text = format!(
                r#"[["LD_start_test", {{{field}, "tasks": [{{"method": "get", "request_url": "http://h/"}}]}}]]"#
            );
            let e = compile_text(&text).expect_err(field);
            assert!(e.to_string().contains(pointer), "{field}: {e}");
            assert!(e.is_input_error());
        }
        for (field, pointer) in [
            (r#""timeout": 1e300"#, "/0/1/tasks/0/timeout"),
            (r#""timeout": 0"#, "/0/1/tasks/0/timeout"),
            (
                r#""think_time": {"min": 2, "max": 1}"#,
                "/0/1/tasks/0/think_time/max",
            ),
            (r#""think_time": -0.5"#, "/0/1/tasks/0/think_time"),
            (r#""throttle": {"rps": "5"}"#, "/0/1/tasks/0/throttle/rps"),
            (
                r#""throttle": {"rps": 5, "burst": -1}"#,
                "/0/1/tasks/0/throttle/burst",
            ),
            (
                r#""retry": {"transient": 1e9}"#,
                "/0/1/tasks/0/retry/transient",
            ),
            (r#""weight": -1"#, "/0/1/tasks/0/weight"),
            (r#""retry": {"flaky": -1}"#, "/0/1/tasks/0/retry/flaky"),
            (
                r#""retry": {"base_delay": 1e9}"#,
                "/0/1/tasks/0/retry/base_delay",
            ),
            (r#""retry": {"jitter": "x"}"#, "/0/1/tasks/0/retry/jitter"),
            (r#""retry": {"flakey": 1}"#, "/0/1/tasks/0/retry"),
        ] {
            let text = format!(
                r#"[["LD_start_test", {{"tasks": [{{"method": "get", "request_url": "http://h/", {field}}}]}}]]"#
            );
            let e = compile_text(&text).expect_err(field);
            assert!(e.to_string().contains(pointer), "{field}: {e}");
        }
        let e = compile_text(r#"[["LD_wait", {"seconds": 1e300}]]"#).expect_err("wait");
        assert!(e.to_string().contains("/0/1/seconds"), "{e}");
    }

    #[test]
    fn fields_not_acted_on_are_noted_with_their_pointer() {
        let p = compile_text(
            r#"[["LD_start_test", {"runner_mode": "local", "expected_workers": 2, "engine": "x",
                "web_ui_dict": {}, "user_detail_dict": {"user": "http_user", "wait": 1},
                "tasks": [{"method": "get", "request_url": "http://h/", "retry": {"flaky": 2}}]}]]"#,
        )
        .expect("compiles");
        let notes = p.notes.join("\n");
        for needle in [
            "/0/1/runner_mode: `runner_mode`",
            "/0/1/expected_workers: `expected_workers`",
            "/0/1/engine: `engine`",
            "/0/1/web_ui_dict: `web_ui_dict`: ld's live dashboard at http://127.0.0.1:8089/",
            "/0/1/user_detail_dict/wait: `wait`",
        ] {
            assert!(notes.contains(needle), "{needle} in {notes}");
        }
        assert!(
            !notes.contains("retry"),
            "every retry key is acted on: {notes}"
        );
    }

    #[test]
    fn invalid_utf8_gives_line_and_column() {
        let e = decode(Path::new("plan.json"), b"[\n  \"\xc3\xa9\xff\"]").expect_err("utf-8");
        assert!(
            e.to_string().starts_with("plan.json:2:5: invalid UTF-8"),
            "{e}"
        );
        assert_eq!(decode(Path::new("p"), b"ok").ok(), Some("ok"));
    }

    #[test]
    fn a_missing_csv_source_names_its_pointer() {
        let e = compile_text(
            r#"[["LD_register_csv_source", {"name": "u", "file_path": "/nonexistent/users.csv"}]]"#,
        )
        .expect_err("missing");
        assert!(e.to_string().contains("/0/1/file_path"), "{e}");
    }
}
