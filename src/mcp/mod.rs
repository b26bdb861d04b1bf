//! `ld mcp`: a Model Context Protocol server over standard input and output (rmcp), whose
//! tools call the crates as the other subcommands do and answer with structured content.
//!
//! Standard output is the transport: nothing else is written to it. Every path a tool names
//! is confined to the root directory (`root`), and a plan runs only when every target it
//! names is loopback or allowed (`targets`); load is bounded by `--max-users` and
//! `--max-duration`, and a run past its bound is stopped. Submodules depend on nothing here.

mod root;
mod targets;
mod tools;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Map, Value, json};

use crate::exit;
use root::{PathError, Root};
use targets::Allowed;
use tools::Kind;

/// Arguments of `ld mcp`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Tools: import, replay, diff, runs_list, runs_show, baseline_set, lint, schema,
list_executor_commands, record_start, record_stop; LoadDensity's names import_har, generate_from_openapi,
generate_from_curls, run_action_json, list_runs, fetch_run and summary call the same tools.
Every result is structured content; a refused or failed call has isError and
{\"error\": {\"kind\", \"message\"}}, kind one of outside-root, target-refused, input, runtime.")]
pub(crate) struct McpArgs {
    /// The directory tools may read and write; paths outside it are refused [default: the
    /// current directory]
    #[arg(long, value_name = "DIR")]
    pub(crate) root: Option<PathBuf>,

    /// Also let plans send to this host (any port, or only PORT); repeatable. Without it,
    /// only loopback targets run
    #[arg(long, value_name = "HOST[:PORT]", value_parser = targets::parse_allowed)]
    pub(crate) allow_target: Vec<Allowed>,

    /// The most virtual users a replay may start
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(crate) max_users: u64,

    /// The longest a replay may run, e.g. 60s; a run still going then is stopped
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) max_duration: Duration,
}

pub(crate) fn run(args: McpArgs) -> anyhow::Result<std::process::ExitCode> {
    let dir = args.root.clone().unwrap_or_else(|| PathBuf::from("."));
    let root = Root::new(&dir).map_err(|e| {
        exit::input_error(format!(
            "--root {}: {e} (give an existing directory)",
            dir.display()
        ))
    })?;
    if args.max_duration.is_zero() {
        return Err(exit::input_error("--max-duration must be more than 0s"));
    }
    let server = Server(Arc::new(State {
        root,
        allowed: args.allow_target,
        max_users: args.max_users,
        max_duration: args.max_duration,
        environment: std::env::vars().collect(),
        replaying: tokio::sync::Semaphore::new(1),
        recording: Mutex::new(None),
    }));
    let state = server.0.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the runtime: {e}"))?;
    let result = runtime.block_on(async move {
        let service = server
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| anyhow::anyhow!("the MCP session did not start: {e}"))?;
        service
            .waiting()
            .await
            .map_err(|e| anyhow::anyhow!("the MCP session failed: {e}"))?;
        anyhow::Ok(())
    });
    // A read of standard input cannot be cancelled: do not wait for it.
    runtime.shutdown_timeout(Duration::from_secs(1));
    // A recording still going is written out, not lost with the process.
    if let Err(f) = record_stop(&state)
        && f.kind != "input"
    {
        eprintln!("ld mcp: {}", f.message);
    }
    result?;
    Ok(std::process::ExitCode::from(exit::OK))
}

struct State {
    root: Root,
    allowed: Vec<Allowed>,
    max_users: u64,
    max_duration: Duration,
    /// For `${env.X}` in plans, read once here as `ld replay` does.
    environment: Vec<(String, String)>,
    /// One replay at a time, so that calls cannot add up past the load bounds.
    replaying: tokio::sync::Semaphore,
    /// The recording proxy, while one runs.
    recording: Mutex<Option<Recording>>,
}

/// A recording proxy running on a thread of its own.
struct Recording {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<Result<ld_recorder::Summary, ld_recorder::Error>>,
}

#[derive(Clone)]
struct Server(Arc<State>);

/// Why a call failed, as its structured content says.
#[derive(Debug)]
struct Failure {
    kind: &'static str,
    message: String,
}

impl Failure {
    fn input(message: impl Into<String>) -> Failure {
        Failure {
            kind: "input",
            message: message.into(),
        }
    }

    fn runtime(message: impl Into<String>) -> Failure {
        Failure {
            kind: "runtime",
            message: message.into(),
        }
    }

    /// An error of the binary's modules: input (exit 2) or runtime, with its chain.
    fn from_anyhow(e: &anyhow::Error) -> Failure {
        let input = e.chain().any(|c| {
            c.downcast_ref::<exit::Coded>()
                .is_some_and(|c| c.code == exit::USAGE)
        });
        let mut message = e.to_string();
        for cause in e.chain().skip(1) {
            message.push_str(&format!(": {cause}"));
        }
        Failure {
            kind: if input { "input" } else { "runtime" },
            message,
        }
    }

    fn from_store(e: ld_store::Error) -> Failure {
        if e.is_input_error() {
            Failure::input(e.to_string())
        } else {
            Failure::runtime(e.to_string())
        }
    }
}

impl From<PathError> for Failure {
    fn from(e: PathError) -> Failure {
        match e {
            PathError::Outside { given } => Failure {
                kind: "outside-root",
                message: format!(
                    "{given} is outside the root directory; ld mcp reads and writes only \
                     inside it (start it with --root DIR to serve another directory)"
                ),
            },
            PathError::Missing { given, message } => Failure::input(format!("{given}: {message}")),
        }
    }
}

type Outcome = Result<Value, Failure>;

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("ld", env!("CARGO_PKG_VERSION")))
            .with_instructions(format!(
                "ld imports recordings and API descriptions into action JSON plans, replays \
                 them as a check or as bounded load against loopback targets, stores runs and \
                 compares them with baselines. Paths are relative to the root {}.",
                self.0.root.dir().display()
            ))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools::list()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(entry) = tools::find(&request.name) else {
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{}`", request.name),
                None,
            ));
        };
        let args = request.arguments.unwrap_or_default();
        let state = self.0.clone();
        let outcome = match entry.kind {
            Kind::Replay => replay(state, args, &context).await,
            Kind::Schema => Ok(json!({"schema": ld_plan::schema::schema()})),
            Kind::Commands => Ok(json!({"commands": ld_plan::KNOWN_COMMANDS})),
            kind => {
                let from = entry.from;
                tokio::task::spawn_blocking(move || blocking(&state, kind, from, &args))
                    .await
                    .unwrap_or_else(|e| Err(Failure::runtime(format!("the tool failed: {e}"))))
            }
        };
        let result = match outcome {
            Ok(value) => CallToolResult::structured(value),
            Err(f) => {
                tracing_free_log(&format!("{}: {}", request.name, f.message));
                CallToolResult::structured_error(
                    json!({"error": {"kind": f.kind, "message": f.message}}),
                )
            }
        };
        Ok(result.into())
    }
}

/// Diagnostics go to standard error: standard output is the protocol.
fn tracing_free_log(text: &str) {
    eprintln!("ld mcp: {text}");
}

/// The tools that read and write files and the database: run off the protocol's threads.
fn blocking(state: &State, kind: Kind, from: Option<&str>, args: &Map<String, Value>) -> Outcome {
    let a = Arguments(args);
    match kind {
        Kind::Import => import(state, from, &a),
        Kind::Diff => {
            let store = open_db(state, &a, false)?;
            diff(
                state,
                &store,
                &a.string("run")?.unwrap_or_else(|| "latest".into()),
                &a,
            )
        }
        Kind::RunsList => {
            let store = open_db(state, &a, false)?;
            let limit = a.integer("limit")?.unwrap_or(20).clamp(1, 1000);
            let runs = store
                .runs(Some(limit as usize))
                .map_err(Failure::from_store)?;
            Ok(json!({"runs": runs}))
        }
        Kind::RunsShow => {
            let store = open_db(state, &a, false)?;
            let spec = a.string("run")?.unwrap_or_else(|| "latest".into());
            let id = store.resolve(&spec).map_err(Failure::from_store)?;
            let run = store.run(id).map_err(Failure::from_store)?;
            let names = store.aggregates(id).map_err(Failure::from_store)?;
            Ok(json!({"run": run, "names": names}))
        }
        Kind::BaselineSet => {
            let store = open_db(state, &a, true)?;
            let spec = a.string("run")?.unwrap_or_else(|| "latest".into());
            let name = a.string("name")?.unwrap_or_else(|| "default".into());
            if name.trim().is_empty() {
                return Err(Failure::input("a baseline needs a non-empty name"));
            }
            let id = store.resolve(&spec).map_err(Failure::from_store)?;
            store.set_baseline(&name, id).map_err(Failure::from_store)?;
            Ok(json!({"baseline": name, "run_id": id}))
        }
        Kind::Lint => {
            let given = a.required("plan")?;
            let plan = state.root.existing(&given)?;
            let lint_args = crate::lint::LintArgs {
                plan: plan.clone(),
                format: crate::lint::Format::Json,
                strict: false,
            };
            let (_, _, findings) =
                crate::lint::check(&lint_args).map_err(|e| Failure::from_anyhow(&e))?;
            let errors = findings
                .iter()
                .filter(|f| f.severity == ld_plan::lint::Severity::Error)
                .count();
            let mut report = crate::lint::json_report(&given, &findings);
            if let Some(m) = report.as_object_mut() {
                m.insert("errors".into(), errors.into());
                m.insert("warnings".into(), (findings.len() - errors).into());
            }
            Ok(report)
        }
        Kind::RecordStart => record_start(state, &a),
        Kind::RecordStop => record_stop(state),
        Kind::Replay | Kind::Schema | Kind::Commands => {
            Err(Failure::runtime("not a blocking tool"))
        }
    }
}

/// A tool's arguments, read with errors that name the argument.
struct Arguments<'a>(&'a Map<String, Value>);

impl Arguments<'_> {
    fn string(&self, key: &str) -> Result<Option<String>, Failure> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(Failure::input(format!(
                "argument `{key}`: expected a string, found {other}"
            ))),
        }
    }

    fn required(&self, key: &str) -> Result<String, Failure> {
        self.string(key)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Failure::input(format!("argument `{key}` is required")))
    }

    fn integer(&self, key: &str) -> Result<Option<u64>, Failure> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                Failure::input(format!(
                    "argument `{key}`: expected a whole number of at least 0, found {v}"
                ))
            }),
        }
    }

    fn number(&self, key: &str) -> Result<Option<f64>, Failure> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                Failure::input(format!("argument `{key}`: expected a number, found {v}"))
            }),
        }
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, Failure> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(Failure::input(format!(
                "argument `{key}`: expected true or false, found {other}"
            ))),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, Failure> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        Failure::input(format!(
                            "argument `{key}`: expected a list of strings, found {v}"
                        ))
                    })
                })
                .collect(),
            Some(other) => Err(Failure::input(format!(
                "argument `{key}`: expected a list of strings, found {other}"
            ))),
        }
    }

    fn duration(&self, key: &str) -> Result<Option<Duration>, Failure> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
                .map(|s| Some(Duration::from_secs_f64(s)))
                .ok_or_else(|| Failure::input(format!("argument `{key}`: {n} is not seconds"))),
            Some(Value::String(s)) => humantime::parse_duration(s).map(Some).map_err(|e| {
                Failure::input(format!(
                    "argument `{key}`: `{s}` is not a duration such as 10s or 2m: {e}"
                ))
            }),
            Some(other) => Err(Failure::input(format!(
                "argument `{key}`: expected a duration such as \"10s\", found {other}"
            ))),
        }
    }
}

fn import(state: &State, from: Option<&str>, a: &Arguments<'_>) -> Outcome {
    let file_given = a.required("file")?;
    let file = state.root.existing(&file_given)?;
    let output_given = a.string("output")?.unwrap_or_else(|| "actions.json".into());
    let output = state.root.writable(&output_given)?;
    let format = match (from, a.string("from")?) {
        (Some(f), _) => Some(f.to_string()),
        (None, Some(f)) => {
            if ld_converters::Format::from_name(&f).is_none() {
                return Err(Failure::input(format!(
                    "argument `from`: unknown format `{f}` (har, postman, openapi, curl, jmeter)"
                )));
            }
            Some(f)
        }
        (None, None) => None,
    };
    let environment = match a.string("env")? {
        Some(p) => Some(state.root.existing(&p)?),
        None => None,
    };
    let secrets_file = match a.string("secrets_file")? {
        Some(p) => Some(state.root.writable(&p)?),
        None => {
            // The default side file stands beside the plan: it must not lead outside either.
            state
                .root
                .writable(&format!("{output_given}.secrets.env"))?;
            None
        }
    };
    let users = a.integer("users")?;
    let spawn_rate = a.number("spawn_rate")?;
    let args = crate::import::ImportArgs {
        file,
        output: output.clone(),
        from: format.clone(),
        environment,
        working_dir: None,
        server: a.string("server")?,
        tag: a.strings("tags")?,
        include_deprecated: a.boolean("include_deprecated")?.unwrap_or(false),
        include: a.strings("include")?,
        exclude: a.strings("exclude")?,
        include_from: Vec::new(),
        exclude_from: Vec::new(),
        drop_header: Vec::new(),
        drop_header_from: Vec::new(),
        skip_static: a.boolean("skip_static")?.unwrap_or(false),
        headers: a.strings("headers")?,
        inline_secrets: a.boolean("inline_secrets")?.unwrap_or(false),
        secrets_file,
        think_time: a.boolean("think_time")?.unwrap_or(false),
        // As `ld import`'s defaults; a second recording and a report file are not offered
        // here, as they would be files outside the tool's arguments.
        no_correlate: false,
        compare: None,
        proto: Vec::new(),
        import_path: Vec::new(),
        correlation_report: None,
        assert_body: "shape".into(),
        users,
        spawn_rate,
        duration: a.duration("duration")?,
        user: a.string("user")?.unwrap_or_else(|| "fast_http_user".into()),
        quiet: true,
        files_within: Some(state.root.dir().to_path_buf()),
    };
    let written = crate::import::write(&args).map_err(|e| Failure::from_anyhow(&e))?;
    let detected = match format {
        Some(f) => f,
        None => detect_name(&args.file),
    };
    let s = &written.summary;
    let tasks = count_tasks(&output);
    Ok(json!({
        "plan": relative(state, &output),
        "format": detected,
        "read": s.read,
        "kept": s.kept,
        "tasks": tasks,
        "dropped": s.dropped,
        "warnings": s.warnings,
        "secrets_replaced": s.secrets_replaced,
        "secrets_file": written.secrets.as_ref().map(|(p, _)| relative(state, p)),
        "websockets": s.websockets,
        "event_streams": s.event_streams,
    }))
}

/// The format detection picks for `file`, by its first 64 KiB.
fn detect_name(file: &Path) -> String {
    use std::io::Read as _;
    let mut head = Vec::new();
    let _ = std::fs::File::open(file).and_then(|f| f.take(64 * 1024).read_to_end(&mut head));
    ld_converters::Format::detect(&head)
        .map(|f| f.name().to_string())
        .unwrap_or_default()
}

/// The tasks of the plan just written, every `LD_start_test` counted.
fn count_tasks(plan: &Path) -> usize {
    let Ok(text) = std::fs::read_to_string(plan) else {
        return 0;
    };
    let Ok(doc) = ld_plan::Plan::parse(&text) else {
        return 0;
    };
    doc.actions
        .iter()
        .filter(|a| a.command == "LD_start_test")
        .filter_map(|a| match &a.args {
            ld_plan::Args::Kwargs(kw) => kw.get("tasks"),
            ld_plan::Args::List(list) => list.first().and_then(|v| v.get("tasks")),
            ld_plan::Args::None => None,
        })
        .map(|t| match t {
            Value::Array(list) => list.len(),
            Value::Object(m) => m.get("tasks").and_then(Value::as_array).map_or(0, Vec::len),
            _ => 0,
        })
        .sum()
}

fn relative(state: &State, path: &Path) -> String {
    path.strip_prefix(state.root.dir())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The database a tool names, inside the root; `write` for commands that change it.
fn open_db(state: &State, a: &Arguments<'_>, write: bool) -> Result<ld_store::Store, Failure> {
    let given = a.string("db")?.unwrap_or_else(|| "ld.db".into());
    let path = state.root.existing(&given).map_err(|e| match e {
        PathError::Missing { given, .. } => Failure::input(format!(
            "no run database at {given} (a replay stores its runs there)"
        )),
        outside => outside.into(),
    })?;
    let store = if write {
        ld_store::Store::open(&path)
    } else {
        ld_store::Store::open_existing(&path)
    };
    store.map_err(Failure::from_store)
}

/// Run `spec` beside the baseline (or run) the arguments name, as `ld diff` chooses it.
fn diff(state: &State, store: &ld_store::Store, spec: &str, a: &Arguments<'_>) -> Outcome {
    let current = store.resolve(spec).map_err(Failure::from_store)?;
    let (base, name) = match (a.string("baseline")?, a.string("against")?) {
        (Some(name), _) => (
            store.baseline(&name).map_err(Failure::from_store)?,
            Some(name),
        ),
        (None, Some(run)) => (store.resolve(&run).map_err(Failure::from_store)?, None),
        (None, None) => default_baseline(store, current)?,
    };
    let plan = store.run(current).map_err(Failure::from_store)?.plan_path;
    // Thresholds a plan sets are read only from a plan inside the root.
    let planned = match plan.and_then(|p| state.root.existing(&p).ok()) {
        Some(p) => crate::diff::plan_thresholds(&p).map_err(|e| Failure::from_anyhow(&e))?,
        None => crate::diff::ThresholdArgs::default(),
    };
    let thresholds = crate::diff::ThresholdArgs::default().thresholds(&planned);
    let d = store
        .diff(base, name.as_deref(), current, &thresholds)
        .map_err(Failure::from_store)?;
    let mut value = serde_json::to_value(&d).map_err(|e| Failure::runtime(e.to_string()))?;
    if let Some(m) = value.as_object_mut() {
        m.insert("has_regressions".into(), d.has_regressions().into());
        m.insert("regressed_names".into(), d.regressed_names().into());
    }
    Ok(value)
}

fn default_baseline(
    store: &ld_store::Store,
    current: i64,
) -> Result<(i64, Option<String>), Failure> {
    let baselines = store.baselines().map_err(Failure::from_store)?;
    if let Some(b) = baselines.iter().find(|b| b.name == "default") {
        return Ok((b.run_id, Some(b.name.clone())));
    }
    if let [only] = baselines.as_slice() {
        return Ok((only.run_id, Some(only.name.clone())));
    }
    match store.previous(current).map_err(Failure::from_store)? {
        Some(prev) => Ok((prev, None)),
        None => Err(Failure::input(format!(
            "nothing to compare run {current} with: no baseline `default` and no earlier run \
             (call baseline_set first)"
        ))),
    }
}

/// The longest a recording runs before it stops by itself.
const MAX_RECORDING: Duration = Duration::from_secs(3600);

fn record_start(state: &State, a: &Arguments<'_>) -> Outcome {
    let output_given = a
        .string("output")?
        .unwrap_or_else(|| "recording.har".into());
    let output = state.root.writable(&output_given)?;
    // The journal stands beside the HAR.
    state.root.writable(&format!("{output_given}.journal"))?;
    let duration = a.duration("duration")?.unwrap_or(Duration::from_secs(600));
    if duration.is_zero() || duration > MAX_RECORDING {
        return Err(Failure::input(format!(
            "argument `duration`: {} is not more than 0s and at most 1h",
            humantime::format_duration(duration)
        )));
    }
    let max_body = match a.string("max_body")? {
        Some(text) => ld_recorder::parse_size(&text)
            .map_err(|e| Failure::input(format!("argument `max_body`: {e}")))?,
        None => ld_recorder::DEFAULT_MAX_BODY,
    };
    let regexes = |key: &str| -> Result<Vec<regex::Regex>, Failure> {
        a.strings(key)?
            .iter()
            .map(|p| {
                regex::Regex::new(p).map_err(|e| {
                    Failure::input(format!("argument `{key}`: {p:?} is not a regex: {e}"))
                })
            })
            .collect()
    };
    let include = regexes("include")?;
    let exclude = regexes("exclude")?;
    let mut slot = state
        .recording
        .lock()
        .map_err(|_| Failure::runtime("the recording state is poisoned"))?;
    if slot.is_some() {
        return Err(Failure::input(
            "a recording is already running; call record_stop first",
        ));
    }
    let data_dir = crate::ca::data_dir().map_err(|e| Failure::from_anyhow(&e))?;
    crate::ca::tighten_key(&data_dir).map_err(|e| Failure::from_anyhow(&e))?;
    let proxy = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|probe| probe.local_addr())
        .map_err(|e| Failure::runtime(format!("no free port on 127.0.0.1: {e}")))?;
    let mut options = ld_recorder::Options::new(proxy, output.clone(), data_dir.clone());
    options.include = include;
    options.exclude = exclude;
    options.max_body = max_body;
    options.quiet = true;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("ld-mcp-record".into())
        .spawn(move || {
            ld_recorder::record_until(options, async move {
                tokio::select! {
                    _ = stopped => {}
                    _ = tokio::time::sleep(duration) => {}
                }
            })
        })
        .map_err(|e| Failure::runtime(format!("cannot start the recorder: {e}")))?;
    // Ready when it accepts a connection; a recorder that fails to start says why.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if thread.is_finished() {
            let result = thread
                .join()
                .map_err(|_| Failure::runtime("the recorder stopped unexpectedly"))?;
            return Err(match result {
                Ok(_) => Failure::runtime("the recorder stopped at once"),
                Err(e) => Failure::runtime(format!("the recorder did not start: {e}")),
            });
        }
        if std::net::TcpStream::connect_timeout(&proxy, Duration::from_millis(200)).is_ok() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = stop.send(());
            return Err(Failure::runtime("the recorder did not listen within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    *slot = Some(Recording { stop, thread });
    Ok(json!({
        "proxy": format!("http://{proxy}"),
        "output": relative(state, &output),
        "ca_cert": ld_recorder::ca::cert_path(&data_dir).display().to_string(),
        "stops_after_s": duration.as_secs(),
    }))
}

fn record_stop(state: &State) -> Outcome {
    let recording = state
        .recording
        .lock()
        .map_err(|_| Failure::runtime("the recording state is poisoned"))?
        .take()
        .ok_or_else(|| Failure::input("no recording is running (record_start starts one)"))?;
    let _ = recording.stop.send(());
    let summary = recording
        .thread
        .join()
        .map_err(|_| Failure::runtime("the recorder stopped unexpectedly"))?
        .map_err(|e| Failure::runtime(format!("the recording failed: {e}")))?;
    Ok(json!({
        "output": relative(state, &summary.output),
        "entries": summary.entries,
        "recorded": summary.recorded,
        "errors": summary.errors,
        "bytes": summary.bytes,
    }))
}

/// The most messages a replay hands back; the rest are counted.
const MAX_MESSAGES: usize = 100;

/// Collects a run's messages for the result and turns its snapshots into progress
/// notifications; it never blocks the collector.
struct McpSink {
    messages: Arc<Mutex<Vec<ld_replay::Message>>>,
    progress: Option<tokio::sync::mpsc::UnboundedSender<ld_replay::Snapshot>>,
}

impl ld_replay::Sink for McpSink {
    fn name(&self) -> &str {
        "mcp"
    }

    fn batch(&mut self, _samples: &[ld_replay::Sample]) -> Result<(), String> {
        Ok(())
    }

    fn snapshot(&mut self, snapshot: &ld_replay::Snapshot) -> Result<(), String> {
        if let Some(tx) = &self.progress {
            let _ = tx.send(snapshot.clone());
        }
        Ok(())
    }

    fn message(&mut self, message: &ld_replay::Message) -> Result<(), String> {
        if let Ok(mut m) = self.messages.lock()
            && m.len() < MAX_MESSAGES
        {
            m.push(message.clone());
        }
        Ok(())
    }
}

async fn replay(
    state: Arc<State>,
    args: Map<String, Value>,
    context: &RequestContext<RoleServer>,
) -> Outcome {
    let a = Arguments(&args);
    let plan = state.root.existing(&a.required("plan")?)?;
    let Ok(_running) = state.replaying.try_acquire() else {
        return Err(Failure::runtime(
            "another replay is running; ld mcp runs one at a time (call again when it is done)",
        ));
    };
    let text = std::fs::read_to_string(&plan)
        .map_err(|e| Failure::input(format!("cannot read {}: {e}", relative(&state, &plan))))?;
    let doc = match serde_json::from_str::<Value>(&text) {
        Ok(doc) => doc,
        Err(e) => {
            // The engine's own message says where the plan is broken; a plan it would read
            // that is not plain JSON is not run, as its targets could not be checked.
            if let Err(engine) = ld_replay::check_plan(&plan, text.as_bytes()) {
                return Err(Failure::input(engine.to_string()));
            }
            return Err(Failure {
                kind: "target-refused",
                message: format!(
                    "{}: not plain JSON ({e}), so its targets cannot be checked",
                    relative(&state, &plan)
                ),
            });
        }
    };
    targets::check_plan(&doc, &state.allowed).map_err(|why| Failure {
        kind: "target-refused",
        message: format!("{}: {why}", relative(&state, &plan)),
    })?;
    let load = match a.string("mode")?.as_deref() {
        None | Some("once") => {
            if a.0.contains_key("users") || a.0.contains_key("duration") {
                return Err(Failure::input(
                    "users and duration are for mode \"load\"; mode \"once\" runs one user once",
                ));
            }
            ld_replay::LoadOverrides {
                once: true,
                ..Default::default()
            }
        }
        Some("load") => {
            let users = a.integer("users")?.unwrap_or(1);
            if users == 0 || users > state.max_users {
                return Err(Failure::input(format!(
                    "argument `users`: {users} is not between 1 and {} (the server's --max-users)",
                    state.max_users
                )));
            }
            let duration = a.duration("duration")?.unwrap_or(Duration::from_secs(10));
            if duration.is_zero() || duration > state.max_duration {
                return Err(Failure::input(format!(
                    "argument `duration`: {} is not more than 0s and at most {} (the server's --max-duration)",
                    humantime::format_duration(duration),
                    humantime::format_duration(state.max_duration)
                )));
            }
            ld_replay::LoadOverrides {
                users: Some(users),
                spawn_rate: Some(users as f64),
                duration: Some(duration),
                iterations: a.integer("iterations")?,
                ..Default::default()
            }
        }
        Some(other) => {
            return Err(Failure::input(format!(
                "argument `mode`: `{other}` is not once or load"
            )));
        }
    };
    let store_run = a.boolean("store")?.unwrap_or(true);
    let baseline = a.string("baseline")?;
    if baseline.is_some() && !store_run {
        return Err(Failure::input(
            "a baseline comparison needs the run stored (store: true)",
        ));
    }
    let db_given = a.string("db")?.unwrap_or_else(|| "ld.db".into());
    let db = state.root.writable(&db_given)?;
    let store_args = crate::diff::ReplayStoreArgs {
        no_store: !store_run,
        db: Some(db.clone()),
        store_records: crate::diff::RecordsPerS(Some(ld_store::RECORDS_PER_S)),
        label: a.string("label")?,
        meta: Vec::new(),
        diff: None,
        diff_format: crate::diff::DiffFormat::Json,
        sla: None,
        thresholds: crate::diff::ThresholdArgs::default(),
    };
    if let Some(name) = &baseline
        && let Ok(store) = ld_store::Store::open_existing(&db)
    {
        store.baseline(name).map_err(Failure::from_store)?;
    }
    let mut load_json = Map::new();
    load_json.insert("mcp".into(), true.into());
    if load.once {
        load_json.insert("once".into(), true.into());
    }
    if let Some(u) = load.users {
        load_json.insert("users".into(), u.into());
    }
    if let Some(d) = load.duration {
        load_json.insert(
            "duration".into(),
            humantime::format_duration(d).to_string().into(),
        );
    }
    let recorder = {
        let plan = plan.clone();
        let load_json = Value::Object(load_json);
        tokio::task::spawn_blocking(move || {
            crate::diff::ReplayStore::open(&store_args, &plan, load_json)
        })
        .await
        .map_err(|e| Failure::runtime(e.to_string()))?
        .map_err(|e| Failure::from_anyhow(&e))?
    };

    let mut options = ld_replay::ReplayOptions::new(&plan);
    options.load = load;
    options.seed = a.integer("seed")?;
    options.timeout = a.duration("timeout")?;
    options.environment = state.environment.clone();
    // The plan's report commands write beside the plan, inside the root.
    options.report_dir = plan.parent().map(Path::to_path_buf);
    options.store = recorder.recorder();
    let stop = options.stop.clone();
    let messages = Arc::new(Mutex::new(Vec::new()));
    let (progress_tx, progress) = match context.meta.get_progress_token() {
        Some(token) => {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let task = tokio::spawn(forward_progress(context.peer.clone(), token, rx));
            (Some(tx), Some(task))
        }
        None => (None, None),
    };
    let sink = McpSink {
        messages: messages.clone(),
        progress: progress_tx,
    };
    // The bound: the longest run the server allows, and a grace for in-flight requests; a
    // cancelled request stops the run too.
    let bound = state.max_duration + ld_replay::INTERRUPT_GRACE;
    let cancelled = context.ct.clone();
    let guard = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(bound) => {}
                _ = cancelled.cancelled() => {}
            }
            stop.cancel();
        })
    };
    let result = ld_replay::run_async(options, vec![Box::new(sink)]).await;
    guard.abort();
    if let Some(task) = progress {
        // The sink (and with it the sender) is gone: the forwarder ends after the last one.
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
    let result = result.map_err(|e| {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        if e.is_input_error() {
            exit::input_error(text)
        } else {
            anyhow::anyhow!(text)
        }
    });
    let gate = {
        let result = result
            .as_ref()
            .map(Clone::clone)
            .map_err(|e| anyhow::anyhow!("{e}"));
        tokio::task::spawn_blocking(move || recorder.finish(&result))
            .await
            .map_err(|e| Failure::runtime(e.to_string()))?
    };
    let outcome = result.map_err(|e| Failure::from_anyhow(&e))?;
    if let Some(e) = &gate.error {
        return Err(Failure::from_anyhow(e));
    }
    let diff_value = match (&baseline, gate.stored) {
        (Some(name), Some(id)) => {
            let state2 = state.clone();
            let mut diff_args = Map::new();
            diff_args.insert("baseline".into(), name.clone().into());
            let db2 = db.clone();
            let value = tokio::task::spawn_blocking(move || {
                let store = ld_store::Store::open_existing(&db2).map_err(Failure::from_store)?;
                diff(&state2, &store, &id.to_string(), &Arguments(&diff_args))
            })
            .await
            .map_err(|e| Failure::runtime(e.to_string()))??;
            Some(value)
        }
        _ => None,
    };
    let regressed = diff_value
        .as_ref()
        .and_then(|d| d.get("has_regressions"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let failures: Vec<Value> = outcome
        .failures
        .iter()
        .take(MAX_MESSAGES)
        .map(|f| json!({"name": f.name, "kind": f.kind, "message": f.message, "count": f.count}))
        .collect();
    let messages: Vec<Value> = messages
        .lock()
        .map(|m| {
            m.iter()
                .map(|m| json!({"kind": message_kind(m.kind), "text": m.text}))
                .collect()
        })
        .unwrap_or_default();
    Ok(json!({
        "passed": outcome.passed && !regressed && !outcome.interrupted,
        "interrupted": outcome.interrupted,
        "requests": outcome.summary.totals.requests,
        "failed": outcome.summary.totals.failures,
        "run_id": gate.stored,
        "summary": outcome.summary,
        "failures": failures,
        "messages": messages,
        "diff": diff_value,
    }))
}

fn message_kind(kind: ld_replay::MessageKind) -> &'static str {
    match kind {
        ld_replay::MessageKind::Data => "data",
        ld_replay::MessageKind::Note => "note",
        ld_replay::MessageKind::Warning => "warning",
        ld_replay::MessageKind::Error => "error",
    }
}

/// One progress notification a second while the run goes: requests so far, the elapsed
/// time in the message.
async fn forward_progress(
    peer: Peer<RoleServer>,
    token: rmcp::model::ProgressToken,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<ld_replay::Snapshot>,
) {
    while let Some(s) = rx.recv().await {
        let message = format!(
            "{} requests, {} failed, {:.1} req/s, p95 {:.1} ms after {:.0}s",
            s.requests,
            s.failures,
            s.requests_per_s,
            s.p95_ms,
            s.elapsed.as_secs_f64()
        );
        let param =
            ProgressNotificationParam::new(token.clone(), s.requests as f64).with_message(message);
        if peer.notify_progress(param).await.is_err() {
            break;
        }
    }
}
