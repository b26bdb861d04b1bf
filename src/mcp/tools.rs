//! The tools `ld mcp` lists: names, LoadDensity's names for the same thing, descriptions,
//! input and output schemas and hints. Data only; the server runs them.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};

/// What a tool does, told apart from the name it was called by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Import,
    Replay,
    Diff,
    RunsList,
    RunsShow,
    BaselineSet,
    Lint,
    Schema,
    Commands,
    RecordStart,
    RecordStop,
}

/// A name a tool answers to, what it does, and the arguments an alias fixes.
pub(crate) struct Entry {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    /// For an alias: the `from` format it imports.
    pub(crate) from: Option<&'static str>,
    pub(crate) alias_of: Option<&'static str>,
}

/// Every name, the tools first and then LoadDensity's aliases.
pub(crate) const ENTRIES: &[Entry] = &[
    entry("import", Kind::Import),
    entry("replay", Kind::Replay),
    entry("diff", Kind::Diff),
    entry("runs_list", Kind::RunsList),
    entry("runs_show", Kind::RunsShow),
    entry("baseline_set", Kind::BaselineSet),
    entry("lint", Kind::Lint),
    entry("schema", Kind::Schema),
    entry("list_executor_commands", Kind::Commands),
    entry("record_start", Kind::RecordStart),
    entry("record_stop", Kind::RecordStop),
    alias("import_har", Kind::Import, "import", Some("har")),
    alias(
        "generate_from_openapi",
        Kind::Import,
        "import",
        Some("openapi"),
    ),
    alias("generate_from_curls", Kind::Import, "import", Some("curl")),
    alias("run_action_json", Kind::Replay, "replay", None),
    alias("list_runs", Kind::RunsList, "runs_list", None),
    alias("fetch_run", Kind::RunsShow, "runs_show", None),
    alias("summary", Kind::RunsShow, "runs_show", None),
];

const fn entry(name: &'static str, kind: Kind) -> Entry {
    Entry {
        name,
        kind,
        from: None,
        alias_of: None,
    }
}

const fn alias(
    name: &'static str,
    kind: Kind,
    of: &'static str,
    from: Option<&'static str>,
) -> Entry {
    Entry {
        name,
        kind,
        from,
        alias_of: Some(of),
    }
}

pub(crate) fn find(name: &str) -> Option<&'static Entry> {
    ENTRIES.iter().find(|e| e.name == name)
}

fn object(v: Value) -> Arc<JsonObject> {
    match v {
        Value::Object(m) => Arc::new(m),
        _ => Arc::new(JsonObject::new()),
    }
}

const DB: &str = "The run database, relative to the root [default: ld.db in the root]";

fn input(kind: Kind, from: Option<&str>) -> Value {
    let db = json!({"type": "string", "description": DB});
    match kind {
        Kind::Import => {
            let mut props = json!({
                "file": {"type": "string", "description": "The file to import, relative to the root: a HAR, Postman collection, OpenAPI description, cURL commands or a JMeter plan"},
                "output": {"type": "string", "description": "Where the plan is written, relative to the root [default: actions.json]"},
                "from": {"type": "string", "enum": ["har", "postman", "openapi", "curl", "jmeter"], "description": "The input format, when detection should not decide"},
                "env": {"type": "string", "description": "A Postman environment file whose variables override the collection's"},
                "server": {"type": "string", "description": "The base URL of the API, replacing an OpenAPI description's servers"},
                "tags": {"type": "array", "items": {"type": "string"}, "description": "Keep only OpenAPI operations with these tags, or Postman requests in these folders"},
                "include_deprecated": {"type": "boolean", "description": "Import OpenAPI operations marked deprecated"},
                "include": {"type": "array", "items": {"type": "string"}, "description": "Keep only requests whose URL (or operationId or tag) matches one of these regexes"},
                "exclude": {"type": "array", "items": {"type": "string"}, "description": "Drop requests matching one of these regexes (wins over include)"},
                "skip_static": {"type": "boolean", "description": "Drop images, fonts, stylesheets, scripts and media"},
                "headers": {"type": "array", "items": {"type": "string"}, "description": "'Name: value' headers added to or overriding every task's"},
                "inline_secrets": {"type": "boolean", "description": "Keep credentials in the plan instead of the secrets file"},
                "secrets_file": {"type": "string", "description": "Where secrets go [default: the plan's path + .secrets.env]"},
                "think_time": {"type": "boolean", "description": "Keep the recorded pauses as think time"},
                "users": {"type": "integer", "minimum": 0, "description": "Virtual users of the generated LD_start_test"},
                "spawn_rate": {"type": "number", "exclusiveMinimum": 0, "description": "Users started per second"},
                "duration": {"type": "string", "description": "Test duration of the plan, e.g. 60s, 2m"},
                "user": {"type": "string", "description": "User template [default: fast_http_user]"}
            });
            if from.is_some()
                && let Some(m) = props.as_object_mut()
            {
                m.remove("from");
            }
            json!({"type": "object", "required": ["file"], "properties": props})
        }
        Kind::Replay => json!({"type": "object", "required": ["plan"], "properties": {
            "plan": {"type": "string", "description": "The plan, relative to the root"},
            "mode": {"type": "string", "enum": ["once", "load"], "description": "once: one user, one iteration (the functional check); load: users for a duration, both within the server's bounds [default: once]"},
            "users": {"type": "integer", "minimum": 1, "description": "Virtual users under load [default: 1, at most the server's --max-users]"},
            "duration": {"type": "string", "description": "How long the load runs, e.g. 10s [default: 10s, at most the server's --max-duration]"},
            "iterations": {"type": "integer", "minimum": 1, "description": "Iterations per user under load"},
            "timeout": {"type": "string", "description": "Timeout of a request where the task sets none [default: 30s]"},
            "label": {"type": "string", "description": "A label stored with the run"},
            "baseline": {"type": "string", "description": "Compare the stored run with this baseline; the findings come back as `diff`"},
            "store": {"type": "boolean", "description": "Store the run in the database [default: true]"},
            "db": db,
            "seed": {"type": "integer", "minimum": 0, "description": "Seed for every random choice"}
        }}),
        Kind::Diff => json!({"type": "object", "properties": {
            "run": {"type": "string", "description": "The run: id, latest or a label [default: latest]"},
            "baseline": {"type": "string", "description": "The baseline to compare with [default: the baseline default, the only baseline, or the previous run]"},
            "against": {"type": "string", "description": "Compare with this run instead of a baseline"},
            "db": db
        }}),
        Kind::RunsList => json!({"type": "object", "properties": {
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "At most this many runs, newest first [default: 20]"},
            "db": db
        }}),
        Kind::RunsShow => json!({"type": "object", "properties": {
            "run": {"type": "string", "description": "Run id, latest, previous or a label [default: latest]"},
            "db": db
        }}),
        Kind::BaselineSet => json!({"type": "object", "properties": {
            "run": {"type": "string", "description": "Run id, latest, previous or a label [default: latest]"},
            "name": {"type": "string", "description": "The baseline's name [default: default]"},
            "db": db
        }}),
        Kind::Lint => json!({"type": "object", "required": ["plan"], "properties": {
            "plan": {"type": "string", "description": "The plan to check, relative to the root"}
        }}),
        Kind::RecordStart => json!({"type": "object", "properties": {
            "output": {"type": "string", "description": "The HAR to write, relative to the root [default: recording.har]"},
            "include": {"type": "array", "items": {"type": "string"}, "description": "Record only exchanges whose full URL matches one of these regexes"},
            "exclude": {"type": "array", "items": {"type": "string"}, "description": "Do not record exchanges matching one of these regexes"},
            "max_body": {"type": "string", "description": "Record bodies up to this size, e.g. 1MiB [default: 10MiB]"},
            "duration": {"type": "string", "description": "Stop by itself after this long [default: 10m, at most 1h]"}
        }}),
        Kind::Schema | Kind::Commands | Kind::RecordStop => {
            json!({"type": "object", "properties": {}})
        }
    }
}

fn output(kind: Kind) -> Value {
    let any = json!({"type": "object"});
    let diff = json!({"type": "object", "required": ["has_regressions", "regressed_names", "baseline", "current", "names"], "properties": {
        "has_regressions": {"type": "boolean"},
        "regressed_names": {"type": "integer"},
        "baseline": any, "current": any, "thresholds": any,
        "names": {"type": "array", "items": {"type": "object", "required": ["name", "presence", "findings"], "properties": {
            "name": {"type": "string"}, "method": {"type": "string"}, "presence": {"type": "string"},
            "findings": {"type": "array", "items": {"type": "object", "required": ["kind", "regression", "message"], "properties": {
                "kind": {"type": "string"}, "regression": {"type": "boolean"}, "message": {"type": "string"}}}}}}}
    }});
    match kind {
        Kind::Import => {
            json!({"type": "object", "required": ["plan", "format", "read", "kept", "tasks"], "properties": {
                "plan": {"type": "string", "description": "The plan written, relative to the root"},
                "format": {"type": "string"},
                "read": {"type": "integer"}, "kept": {"type": "integer"}, "tasks": {"type": "integer"},
                "dropped": {"type": "object", "additionalProperties": {"type": "integer"}},
                "warnings": {"type": "object", "additionalProperties": {"type": "integer"}},
                "secrets_replaced": {"type": "integer"},
                "secrets_file": {"type": ["string", "null"]},
                "websockets": {"type": "integer"}, "event_streams": {"type": "integer"}
            }})
        }
        Kind::Replay => {
            json!({"type": "object", "required": ["passed", "interrupted", "requests", "failed", "summary", "failures"], "properties": {
                "passed": {"type": "boolean", "description": "Every request answered and every assertion held (and no regression against the baseline asked for)"},
                "interrupted": {"type": "boolean", "description": "Stopped at the server's time bound or by cancellation"},
                "requests": {"type": "integer"}, "failed": {"type": "integer"},
                "run_id": {"type": ["integer", "null"]},
                "summary": any,
                "failures": {"type": "array", "items": {"type": "object", "required": ["name", "kind", "message", "count"], "properties": {
                    "name": {"type": "string"}, "kind": {"type": "string"}, "message": {"type": "string"}, "count": {"type": "integer"}}}},
                "messages": {"type": "array", "items": {"type": "object", "properties": {"kind": {"type": "string"}, "text": {"type": "string"}}}},
                "diff": {"anyOf": [diff, {"type": "null"}]}
            }})
        }
        Kind::Diff => diff,
        Kind::RunsList => json!({"type": "object", "required": ["runs"], "properties": {
            "runs": {"type": "array", "items": {"type": "object", "required": ["id", "outcome"], "properties": {
                "id": {"type": "integer"}, "outcome": {"type": "string"}}}}}}),
        Kind::RunsShow => json!({"type": "object", "required": ["run", "names"], "properties": {
            "run": {"type": "object", "required": ["id", "outcome"], "properties": {"id": {"type": "integer"}, "outcome": {"type": "string"}}},
            "names": {"type": "array", "items": {"type": "object", "required": ["name", "requests", "failures"], "properties": {
                "name": {"type": "string"}, "requests": {"type": "integer"}, "failures": {"type": "integer"}}}}}}),
        Kind::BaselineSet => {
            json!({"type": "object", "required": ["baseline", "run_id"], "properties": {
            "baseline": {"type": "string"}, "run_id": {"type": "integer"}}})
        }
        Kind::Lint => {
            json!({"type": "object", "required": ["file", "errors", "warnings", "findings"], "properties": {
            "file": {"type": "string"}, "errors": {"type": "integer"}, "warnings": {"type": "integer"},
            "findings": {"type": "array", "items": {"type": "object", "required": ["rule", "severity", "message", "location"], "properties": {
                "rule": {"type": "string"}, "severity": {"type": "string"}, "message": {"type": "string"},
                "location": {"type": "object", "properties": {"file": {"type": "string"}, "line": {"type": "integer"}, "column": {"type": "integer"}, "pointer": {"type": "string"}}}}}}}})
        }
        Kind::Schema => {
            json!({"type": "object", "required": ["schema"], "properties": {"schema": any}})
        }
        Kind::Commands => json!({"type": "object", "required": ["commands"], "properties": {
            "commands": {"type": "array", "items": {"type": "string"}}}}),
        Kind::RecordStart => {
            json!({"type": "object", "required": ["proxy", "output", "ca_cert", "stops_after_s"], "properties": {
            "proxy": {"type": "string", "description": "The proxy to point a client at, http://127.0.0.1:PORT"},
            "output": {"type": "string"}, "ca_cert": {"type": "string", "description": "The CA HTTPS clients must trust"},
            "stops_after_s": {"type": "integer"}}})
        }
        Kind::RecordStop => {
            json!({"type": "object", "required": ["output", "entries", "recorded", "errors", "bytes"], "properties": {
            "output": {"type": "string"}, "entries": {"type": "integer"}, "recorded": {"type": "integer"},
            "errors": {"type": "integer"}, "bytes": {"type": "integer"}}})
        }
    }
}

fn description(kind: Kind) -> &'static str {
    match kind {
        Kind::Import => {
            "Turn a recording or an API description (HAR, Postman, OpenAPI, cURL, JMeter) inside the root into an action JSON plan, with ld import's filters; returns what was read, kept and dropped"
        }
        Kind::Replay => {
            "Run a plan once (the functional check) or as bounded load against loopback (or the server's allowed targets); stores the run and returns the summary, the failures and, with a baseline, the diff"
        }
        Kind::Diff => {
            "Compare a stored run with a baseline (or another run): the findings name by name, and whether anything regressed"
        }
        Kind::RunsList => "List stored runs, newest first",
        Kind::RunsShow => "Show one stored run: what it was and its figures per request name",
        Kind::BaselineSet => "Make a finished run the baseline NAME",
        Kind::Lint => {
            "Check a plan with LoadDensity's lint rules and ld's, each finding at line and column"
        }
        Kind::Schema => "The JSON Schema (2020-12) of an action JSON plan",
        Kind::Commands => "The LD_* commands a plan may use",
        Kind::RecordStart => {
            "Start the recording proxy on 127.0.0.1 (one at a time): point a client at it, then record_stop writes the HAR inside the root"
        }
        Kind::RecordStop => "Stop the recording proxy and write its HAR",
    }
}

fn annotations(kind: Kind) -> ToolAnnotations {
    let (read_only, destructive, idempotent, open_world) = match kind {
        Kind::Import => (false, false, true, false),
        // Replay sends requests that may change what the target holds.
        Kind::Replay => (false, true, false, true),
        Kind::BaselineSet => (false, false, true, false),
        // The proxy forwards what its clients send, wherever they send it.
        Kind::RecordStart => (false, false, false, true),
        Kind::RecordStop => (false, false, true, false),
        _ => (true, false, true, false),
    };
    ToolAnnotations::from_raw(
        None,
        Some(read_only),
        Some(destructive),
        Some(idempotent),
        Some(open_world),
    )
}

/// The tool list as `tools/list` returns it.
pub(crate) fn list() -> Vec<Tool> {
    ENTRIES
        .iter()
        .map(|e| {
            let mut text = description(e.kind).to_string();
            if let Some(of) = e.alias_of {
                text = format!("{text} (LoadDensity's name for `{of}`)");
            }
            Tool::new(e.name, text, object(input(e.kind, e.from)))
                .with_title(e.name.replace('_', " "))
                .with_raw_output_schema(object(output(e.kind)))
                .with_annotations(annotations(e.kind))
        })
        .collect()
}
