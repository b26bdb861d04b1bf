//! The Postman importer: collections v2.0 and v2.1, v1 collections (converted to v2.1 first)
//! and collections without `info` (with an environment file from `--env`),
//! one task per request.
//!
//! Folders become name prefixes (`Users / Get user`). Collection and environment variables are
//! registered with `LD_register_variables` and `{{name}}` becomes `${var.name}`; variables that
//! hold credentials (used by an auth block, typed `secret`, or named like a key or token) go to
//! the secrets side file instead and read `${env.NAME}`. Auth blocks (bearer, basic, API key,
//! OAuth 2 tokens) become headers or query parameters, inherited from folders and the
//! collection as Postman does. A test script's status check (`pm.response.to.have.status(201)`)
//! becomes the status assertion; every other script line is reported, never dropped silently.

use std::collections::{BTreeSet, HashMap};

use base64::Engine;
use regex::Regex;
use serde_json::{Map, Value};

use crate::files::{Files, bytes_body, content};
use crate::output::{Body, Builder, Request};
use crate::{Error, Import, ImportOptions, Result};

/// True when the start of a JSON text looks like a Postman collection.
pub(crate) fn looks_like_postman(head: &str) -> bool {
    head.trim_start().starts_with('{')
        && (head.contains("schema.getpostman.com")
            || head.contains("schema.postman.com")
            || head.contains("\"_postman_id\"")
            // v1 collections.
            || (head.contains("\"requests\"") && head.contains("\"order\""))
            // Collections without `info`, which Postman and newman run: a list of items
            // holding requests, and nothing another format names first.
            || (head.contains("\"item\"")
                && head.contains("\"request\"")
                && !head.contains("\"openapi\"")
                && !head.contains("\"swagger\"")))
}

/// Imports a Postman collection read from `name`.
pub fn import(name: &str, bytes: &[u8], options: &ImportOptions) -> Result<Import> {
    let root = parse_json(name, bytes)?;
    let root = match &root {
        Value::Object(m) if m.contains_key("requests") && !m.contains_key("item") => v1_to_v2(m),
        _ => root,
    };
    let Value::Object(map) = &root else {
        return Err(invalid(name, "", "expected a Postman collection object"));
    };
    // `info` only names the collection: Postman and newman run a collection without it.
    if map.get("info").is_some_and(|i| !i.is_object()) {
        return Err(invalid(
            name,
            "/info",
            "expected the collection's `info` to be an object with its `name` and `schema`",
        ));
    }
    let items = match map.get("item") {
        Some(Value::Array(items)) => items,
        _ => {
            return Err(invalid(
                name,
                "/item",
                "expected a list of requests and folders",
            ));
        }
    };
    let mut builder = Builder::new(options);

    // Variables: the collection's, then the environment's, which win.
    let mut declared: Vec<(String, Value, bool)> = Vec::new();
    if let Some(Value::Array(vars)) = map.get("variable") {
        for v in vars {
            if v.get("disabled").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let Some(key) = v.get("key").or_else(|| v.get("id")).and_then(Value::as_str) else {
                continue;
            };
            let secret = v.get("type").and_then(Value::as_str) == Some("secret");
            declared.push((
                key.to_string(),
                v.get("value").cloned().unwrap_or_default(),
                secret,
            ));
        }
    }
    if let Some((env_name, env_bytes)) = &options.environment {
        let env = parse_json(env_name, env_bytes)?;
        let Some(values) = env.get("values").and_then(Value::as_array) else {
            return Err(invalid(
                env_name,
                "/values",
                "expected a Postman environment: {\"name\": ..., \"values\": [{\"key\", \"value\"}]}",
            ));
        };
        for v in values {
            if v.get("enabled").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let Some(key) = v.get("key").and_then(Value::as_str) else {
                continue;
            };
            let secret = v.get("type").and_then(Value::as_str) == Some("secret");
            declared.retain(|(k, _, _)| k != key);
            declared.push((
                key.to_string(),
                v.get("value").cloned().unwrap_or_default(),
                secret,
            ));
        }
    }
    let mut auth_refs = BTreeSet::new();
    collect_auth_refs(&root, &mut auth_refs, 0);
    let raw_values: HashMap<String, String> = declared
        .iter()
        .map(|(k, v, _)| (k.clone(), text_of(v)))
        .collect();
    let mut vars = Vars {
        placeholders: HashMap::new(),
        raw: raw_values,
        auth_refs: auth_refs.clone(),
        pattern: Regex::new(r"\{\{\s*([^{}]+?)\s*\}\}").expect("constant pattern"),
    };
    for (key, value, secret) in &declared {
        // A value may itself refer to other variables: expanded now, so the plan's variables
        // are plain values.
        let expanded = vars.expand_raw(&text_of(value), 0);
        let forced = *secret || auth_refs.contains(key);
        match builder.secret_variable(key, &expanded, forced) {
            Some(placeholder) => {
                vars.placeholders.insert(key.clone(), placeholder);
            }
            None => {
                let plain = match value {
                    Value::String(_) => Value::String(expanded),
                    other => other.clone(),
                };
                builder.variable(key, plain);
                vars.placeholders
                    .insert(key.clone(), format!("${{var.{key}}}"));
            }
        }
    }

    report_scripts(map.get("event"), "the collection", &mut builder);
    let context = Context {
        folders: Vec::new(),
        auth: map.get("auth").filter(|a| !a.is_null()),
        events: map.get("event").into_iter().collect(),
    };
    let mut files = Files::new(name, "collection", options);
    let mut at = Walk {
        vars: &mut vars,
        builder: &mut builder,
        files: &mut files,
        name,
    };
    walk(items, "/item", &context, &mut at, 0)?;
    Ok(builder.finish())
}

/// A v1 collection (top-level `requests`, `folders`, `order`) written as v2.1, as newman
/// converts it before running it: folders in `folders_order` (else those no folder holds),
/// then the requests in `order`, then any request neither names.
fn v1_to_v2(root: &Map<String, Value>) -> Value {
    let ids = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let id_of = |v: &Value| {
        v.get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let requests: HashMap<String, &Value> = root
        .get("requests")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| (id_of(r), r))
        .collect();
    let folders: HashMap<String, &Value> = root
        .get("folders")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|f| (id_of(f), f))
        .collect();
    let mut used = BTreeSet::new();
    let mut top_folders = ids(root.get("folders_order"));
    if top_folders.is_empty() {
        let nested: BTreeSet<String> = folders
            .values()
            .flat_map(|f| ids(f.get("folders_order")))
            .collect();
        for f in root
            .get("folders")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let id = id_of(f);
            if !nested.contains(&id) && f.get("folder").is_none_or(Value::is_null) {
                top_folders.push(id);
            }
        }
    }
    fn folder_item(
        id: &str,
        folders: &HashMap<String, &Value>,
        requests: &HashMap<String, &Value>,
        used: &mut BTreeSet<String>,
        ids: &dyn Fn(Option<&Value>) -> Vec<String>,
        depth: usize,
    ) -> Option<Value> {
        let folder = folders.get(id)?;
        if depth > 64 || !used.insert(format!("folder:{id}")) {
            return None;
        }
        let mut items = Vec::new();
        for sub in ids(folder.get("folders_order")) {
            items.extend(folder_item(&sub, folders, requests, used, ids, depth + 1));
        }
        for r in ids(folder.get("order")) {
            if let Some(req) = requests.get(&r)
                && used.insert(r.clone())
            {
                items.push(v1_request(req));
            }
        }
        let mut m = Map::new();
        m.insert(
            "name".into(),
            folder.get("name").cloned().unwrap_or_default(),
        );
        m.insert("item".into(), Value::Array(items));
        Some(Value::Object(m))
    }
    let mut items = Vec::new();
    for f in &top_folders {
        items.extend(folder_item(f, &folders, &requests, &mut used, &ids, 0));
    }
    let mut rest = ids(root.get("order"));
    rest.extend(
        root.get("requests")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(id_of),
    );
    for r in rest {
        if let Some(req) = requests.get(&r)
            && used.insert(r.clone())
        {
            items.push(v1_request(req));
        }
    }
    let mut out = Map::new();
    let mut info = Map::new();
    info.insert("name".into(), root.get("name").cloned().unwrap_or_default());
    out.insert("info".into(), Value::Object(info));
    if let Some(vars) = root.get("variables").filter(|v| v.is_array()) {
        out.insert("variable".into(), vars.clone());
    }
    out.insert("item".into(), Value::Array(items));
    Value::Object(out)
}

/// One v1 request as a v2.1 item.
fn v1_request(r: &Value) -> Value {
    let text = |k: &str| r.get(k).map(text_of).unwrap_or_default();
    let mut request = Map::new();
    request.insert("method".into(), Value::String(text("method")));
    let mut url = Map::new();
    url.insert("raw".into(), Value::String(text("url")));
    if let Some(Value::Object(pv)) = r.get("pathVariables") {
        let list: Vec<Value> = pv
            .iter()
            .map(|(k, v)| serde_json::json!({"key": k, "value": text_of(v)}))
            .collect();
        url.insert("variable".into(), Value::Array(list));
    }
    request.insert("url".into(), Value::Object(url));
    request.insert("header".into(), Value::String(text("headers")));
    let fields = |v1: &str| -> Vec<Value> {
        r.get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|d| {
                let mut f = Map::new();
                f.insert("key".into(), d.get("key").cloned().unwrap_or_default());
                f.insert("value".into(), d.get("value").cloned().unwrap_or_default());
                if d.get("enabled").and_then(Value::as_bool) == Some(false) {
                    f.insert("disabled".into(), Value::Bool(true));
                }
                if v1 == "params" && d.get("type").and_then(Value::as_str) == Some("file") {
                    f.insert("type".into(), "file".into());
                    f.insert("src".into(), d.get("value").cloned().unwrap_or_default());
                }
                Value::Object(f)
            })
            .collect()
    };
    let body = match r.get("dataMode").and_then(Value::as_str) {
        Some("raw") => Some(serde_json::json!({"mode": "raw", "raw": text("rawModeData")})),
        Some("urlencoded") => {
            Some(serde_json::json!({"mode": "urlencoded", "urlencoded": fields("urlencoded")}))
        }
        Some("params") => {
            Some(serde_json::json!({"mode": "formdata", "formdata": fields("params")}))
        }
        Some("binary") => Some(serde_json::json!({"mode": "file"})),
        _ => None,
    };
    if let Some(b) = body {
        request.insert("body".into(), b);
    }
    let mut events = Vec::new();
    for (key, listen) in [("preRequestScript", "prerequest"), ("tests", "test")] {
        let script = text(key);
        if !script.trim().is_empty() {
            events.push(serde_json::json!({"listen": listen, "script": {"exec": script.lines().collect::<Vec<_>>()}}));
        }
    }
    let mut item = Map::new();
    item.insert("name".into(), Value::String(text("name")));
    item.insert("request".into(), Value::Object(request));
    if !events.is_empty() {
        item.insert("event".into(), Value::Array(events));
    }
    Value::Object(item)
}

fn parse_json(name: &str, bytes: &[u8]) -> Result<Value> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    serde_json::from_slice(bytes).map_err(|e| {
        let text = String::from_utf8_lossy(bytes);
        let raw = e.to_string();
        let message = raw.rfind(" at line ").map_or(raw.as_str(), |i| &raw[..i]);
        let pos = end_of_previous_line(&text, e.line(), e.column());
        let what = if e.is_eof() {
            format!("the file ends too early ({message}): it looks truncated")
        } else {
            format!("not valid JSON: {message}")
        };
        Error::Syntax(ld_plan::render_source_error(name, &text, pos, &what))
    })
}

/// serde_json reports a position just after a line break as column 0 of the next line; a
/// caret reads better at the end of the line where the text stopped.
pub(crate) fn end_of_previous_line(text: &str, line: usize, column: usize) -> ld_plan::SourcePos {
    if column > 0 || line <= 1 {
        return ld_plan::SourcePos {
            line: line.max(1),
            column: column.max(1),
        };
    }
    let previous = text.lines().nth(line - 2).unwrap_or_default();
    ld_plan::SourcePos {
        line: line - 1,
        column: previous.chars().count() + 1,
    }
}

fn invalid(name: &str, pointer: &str, message: &str) -> Error {
    let pointer = if pointer.is_empty() { "/" } else { pointer };
    Error::Invalid(format!("{name}: {pointer}: {message}"))
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Every `{{name}}` used inside an auth block: those variables hold credentials.
fn collect_auth_refs(value: &Value, out: &mut BTreeSet<String>, depth: usize) {
    if depth > 64 {
        return;
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "auth" {
                    let mut texts = Vec::new();
                    strings(v, &mut texts, 0);
                    for t in texts {
                        let mut rest = t.as_str();
                        while let Some(start) = rest.find("{{") {
                            let after = &rest[start + 2..];
                            let Some(end) = after.find("}}") else { break };
                            out.insert(after[..end].trim().to_string());
                            rest = &after[end + 2..];
                        }
                    }
                } else {
                    collect_auth_refs(v, out, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                collect_auth_refs(v, out, depth + 1);
            }
        }
        _ => {}
    }
}

fn strings(value: &Value, out: &mut Vec<String>, depth: usize) {
    if depth > 16 {
        return;
    }
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out, depth + 1)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out, depth + 1)),
        _ => {}
    }
}

/// How `{{name}}` is written in the plan, and the raw values for what must be computed at
/// import time (Basic credentials).
struct Vars {
    placeholders: HashMap<String, String>,
    raw: HashMap<String, String>,
    /// Variables used by auth blocks: undefined ones are credentials to supply at replay.
    auth_refs: BTreeSet<String>,
    pattern: Regex,
}

impl Vars {
    /// `{{name}}` → `${var.name}`, `${env.NAME}` or a dynamic-variable equivalent.
    fn subst(&self, text: &str, builder: &mut Builder<'_>) -> String {
        if !text.contains("{{") {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for caps in self.pattern.captures_iter(text) {
            let (Some(whole), Some(name)) = (caps.get(0), caps.get(1)) else {
                continue;
            };
            out.push_str(&text[last..whole.start()]);
            last = whole.end();
            let name = name.as_str();
            if let Some(p) = self.placeholders.get(name) {
                out.push_str(p);
            } else if let Some(dynamic) = name.strip_prefix('$') {
                match dynamic_variable(dynamic) {
                    Some(p) => out.push_str(p),
                    None => {
                        builder.summary.warn(format!(
                            "Postman dynamic variable {{{{${dynamic}}}}} has no equivalent; left as written"
                        ));
                        out.push_str(whole.as_str());
                    }
                }
            } else if self.auth_refs.contains(name) {
                let env = crate::secrets::camel_env_name(name);
                builder.summary.warn(format!(
                    "credential variable {{{{{name}}}}} is not defined; it reads ${{env.{env}}}: set it before replaying"
                ));
                out.push_str(&format!("${{env.{env}}}"));
            } else {
                builder.summary.warn(format!(
                    "variable {{{{{name}}}}} is not defined in the collection or environment; it reads ${{var.{name}}}"
                ));
                out.push_str(&format!("${{var.{name}}}"));
            }
        }
        out.push_str(&text[last..]);
        out
    }

    /// `{{name}}` replaced by its value, for values computed at import time.
    fn expand_raw(&self, text: &str, depth: usize) -> String {
        if depth > 8 || !text.contains("{{") {
            return text.to_string();
        }
        let replaced = self
            .pattern
            .replace_all(text, |caps: &regex::Captures<'_>| {
                let name = caps.get(1).map_or("", |m| m.as_str());
                match self.raw.get(name) {
                    Some(v) => v.clone(),
                    None => caps.get(0).map_or("", |m| m.as_str()).to_string(),
                }
            })
            .into_owned();
        if replaced == text {
            replaced
        } else {
            self.expand_raw(&replaced, depth + 1)
        }
    }
}

/// Postman's dynamic variables that have an equivalent placeholder.
fn dynamic_variable(name: &str) -> Option<&'static str> {
    Some(match name {
        "guid" | "randomUUID" => "${uuid()}",
        "randomInt" => "${randint(0,1000)}",
        "isoTimestamp" => "${now()}",
        "randomEmail" | "randomExampleEmail" => "${faker.email}",
        "randomFirstName" => "${faker.first_name}",
        "randomLastName" => "${faker.last_name}",
        "randomFullName" => "${faker.name}",
        "randomUserName" => "${faker.user_name}",
        "randomPassword" => "${faker.password}",
        "randomCity" => "${faker.city}",
        "randomCountry" => "${faker.country}",
        "randomPhoneNumber" => "${faker.phone_number}",
        "randomUrl" => "${faker.url}",
        "randomCompanyName" => "${faker.company}",
        "randomWord" => "${faker.word}",
        "randomLoremSentence" => "${faker.sentence}",
        _ => return None,
    })
}

/// What a request inherits from its folders and the collection.
struct Context<'a> {
    folders: Vec<String>,
    auth: Option<&'a Value>,
    events: Vec<&'a Value>,
}

/// What the walk over a collection's items reads and writes.
struct Walk<'w, 'b, 'f> {
    vars: &'w mut Vars,
    builder: &'w mut Builder<'b>,
    files: &'w mut Files<'f>,
    /// The collection's name, for messages.
    name: &'w str,
}

/// Imports `items`, which stand at `pointer` in the collection.
fn walk(
    items: &[Value],
    pointer: &str,
    context: &Context<'_>,
    at: &mut Walk<'_, '_, '_>,
    depth: usize,
) -> Result<()> {
    let builder = &mut *at.builder;
    if depth > 64 {
        builder
            .summary
            .warn("folders nested deeper than 64 levels were skipped");
        return Ok(());
    }
    for (index, item) in items.iter().enumerate() {
        let builder = &mut *at.builder;
        let pointer = format!("{pointer}/{index}");
        let Value::Object(map) = item else {
            builder
                .summary
                .warn("an item that is not an object was skipped");
            continue;
        };
        let name = map
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if let Some(Value::Array(children)) = map.get("item") {
            let mut folders = context.folders.clone();
            folders.push(name);
            report_scripts(
                map.get("event"),
                &format!("folder \"{}\"", folders.join(" / ")),
                builder,
            );
            let auth = map.get("auth").filter(|a| !a.is_null()).or(context.auth);
            let mut events = context.events.clone();
            events.extend(map.get("event"));
            let inner = Context {
                folders,
                auth,
                events,
            };
            walk(children, &format!("{pointer}/item"), &inner, at, depth + 1)?;
            continue;
        }
        let Some(request) = map.get("request") else {
            builder
                .summary
                .warn("an item with neither a request nor items was skipped");
            continue;
        };
        builder.summary.read += 1;
        request_task(map, request, &name, &pointer, context, at)?;
    }
    Ok(())
}

/// Imports one request `item`, which stands at `pointer` in the collection.
fn request_task(
    item: &Map<String, Value>,
    request: &Value,
    name: &str,
    pointer: &str,
    context: &Context<'_>,
    at: &mut Walk<'_, '_, '_>,
) -> Result<()> {
    let vars = &*at.vars;
    let builder = &mut *at.builder;
    let mut full_name = context.folders.clone();
    full_name.push(name.to_string());
    let full_name: Vec<String> = full_name.into_iter().filter(|n| !n.is_empty()).collect();
    let display = full_name.join(" / ");

    // v2 allows a bare URL string for a GET.
    let request = match request {
        Value::String(url) => {
            let mut m = Map::new();
            m.insert("url".into(), Value::String(url.clone()));
            Value::Object(m)
        }
        other => other.clone(),
    };
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("GET")
        .to_ascii_uppercase();
    let mut query_extra: Vec<(String, String)> = Vec::new();
    let mut headers: Vec<(String, String)> = Vec::new();
    match request.get("header") {
        Some(Value::Array(list)) => {
            for h in list {
                if h.get("disabled").and_then(Value::as_bool) == Some(true) {
                    continue;
                }
                let (Some(k), v) = (h.get("key").and_then(Value::as_str), h.get("value")) else {
                    continue;
                };
                headers.push((
                    vars.subst(k, builder),
                    vars.subst(&text_of(v.unwrap_or(&Value::Null)), builder),
                ));
            }
        }
        Some(Value::String(block)) => {
            for line in block.lines() {
                if let Some((k, v)) = line.split_once(':') {
                    headers.push((vars.subst(k.trim(), builder), vars.subst(v.trim(), builder)));
                }
            }
        }
        _ => {}
    }

    // Auth: the request's own, else inherited; `noauth` stops inheritance.
    // `auth: null` (as converters write it) inherits like a missing block.
    let auth = request
        .get("auth")
        .filter(|a| !a.is_null())
        .or(context.auth);
    if let Some(auth) = auth {
        apply_auth(
            auth,
            vars,
            &mut headers,
            &mut query_extra,
            &display,
            builder,
        );
    }

    let mut url = url_of(request.get("url"), vars, builder);
    if !query_extra.is_empty() {
        let q: Vec<String> = query_extra
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let sep = if url.contains('?') { '&' } else { '?' };
        url = format!("{url}{sep}{}", q.join("&"));
    }

    let body = body_of(
        request.get("body"),
        vars,
        &mut headers,
        &display,
        builder,
        (&mut *at.files, at.name, &format!("{pointer}/request/body")),
    )?;

    // Scripts: the collection's and folders' run around every request inside them; their
    // status checks apply here, their other lines were reported once at their level.
    let mut status = None;
    for events in &context.events {
        for lines in test_scripts(Some(events)) {
            if status.is_none() {
                status = status_checks(&lines).0;
            }
        }
    }
    let mut own_status = None;
    let mut extract: Vec<(String, Value)> = Vec::new();
    if let Some(list) = item.get("event").and_then(Value::as_array) {
        for event in list {
            if event.get("disabled").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let listen = event
                .get("listen")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let lines = script_lines(event.get("script"));
            if lines.iter().all(|l| l.trim().is_empty()) {
                continue;
            }
            if listen == "test" {
                let (found, rest) = status_checks(&lines);
                if own_status.is_none() {
                    own_status = found;
                }
                let sets = crate::pm_script::sets(&rest);
                extract.extend(sets.extractors);
                for (var, value) in &sets.unconverted {
                    builder.summary.warn(format!(
                        "\"{display}\": the test script sets {{{{{var}}}}} to `{}`, which is not a field or header of the response; not converted",
                        shorten(value)
                    ));
                }
                let rest = sets.rest;
                if let Some(first) = rest.first() {
                    builder.summary.warn(format!(
                        "\"{display}\": test script lines not converted ({} lines, starting `{}`)",
                        rest.len(),
                        shorten(first)
                    ));
                }
            } else {
                builder.summary.warn(format!(
                    "\"{display}\": {listen} script not converted ({} lines)",
                    lines.iter().filter(|l| !l.trim().is_empty()).count()
                ));
            }
        }
    }
    // The request's own check is the most specific.
    status = own_status.or(status);
    if status.is_none() {
        // Saved example responses tell what the request is expected to return.
        status = item
            .get("response")
            .and_then(Value::as_array)
            .and_then(|r| {
                r.iter()
                    .filter_map(|resp| resp.get("code").and_then(Value::as_u64))
                    .filter(|c| (200..300).contains(c))
                    .min()
            })
            .map(|c| c as u16);
    }

    let labels: Vec<&str> = context
        .folders
        .iter()
        .map(String::as_str)
        .chain([name])
        .collect();
    let tags: Vec<&str> = context.folders.iter().map(String::as_str).collect();
    if let Some(reason) = builder.filter().check_labels(&url, &labels, &tags) {
        builder.summary.drop(reason);
        return Ok(());
    }
    let mut extras = crate::output::Extras::default();
    if !extract.is_empty() {
        // Later requests read what this one extracts, whatever the collection said before.
        for (var, _) in &extract {
            at.vars
                .placeholders
                .insert(var.clone(), format!("${{var.{var}}}"));
        }
        extras.extract = extract.into_iter().map(|(_, e)| e).collect();
    }
    at.builder.push(Request {
        method: method.clone(),
        name: Some(if display.is_empty() {
            format!("{method} {url}")
        } else {
            display
        }),
        url,
        headers,
        body,
        status,
        extras,
        ..Request::default()
    });
    Ok(())
}

/// The lines of each enabled test script in an `event` list.
fn test_scripts(events: Option<&Value>) -> Vec<Vec<String>> {
    let Some(list) = events.and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter(|e| e.get("disabled").and_then(Value::as_bool) != Some(true))
        .filter(|e| e.get("listen").and_then(Value::as_str) == Some("test"))
        .map(|e| script_lines(e.get("script")))
        .collect()
}

/// Reports the scripts of a collection or folder that cannot be converted, once.
fn report_scripts(events: Option<&Value>, owner: &str, builder: &mut Builder<'_>) {
    let Some(list) = events.and_then(Value::as_array) else {
        return;
    };
    for event in list {
        if event.get("disabled").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let listen = event
            .get("listen")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let lines = script_lines(event.get("script"));
        let rest = if listen == "test" {
            status_checks(&lines).1
        } else {
            lines.into_iter().filter(|l| !l.trim().is_empty()).collect()
        };
        if let Some(first) = rest.first() {
            builder.summary.warn(format!(
                "{owner}: {listen} script not converted ({} lines, starting `{}`), it ran around each of its requests",
                rest.len(),
                shorten(first)
            ));
        }
    }
}

fn shorten(line: &str) -> String {
    let line = line.trim();
    if line.chars().count() > 60 {
        format!("{}…", line.chars().take(60).collect::<String>())
    } else {
        line.to_string()
    }
}

fn script_lines(script: Option<&Value>) -> Vec<String> {
    match script.and_then(|s| s.get("exec")) {
        Some(Value::Array(lines)) => lines
            .iter()
            .filter_map(Value::as_str)
            .flat_map(|l| l.lines().map(str::to_string).collect::<Vec<_>>())
            .collect(),
        Some(Value::String(text)) => text.lines().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// The status a test script checks for, and the lines that are neither a status check nor the
/// `pm.test(...)` wrapping around one.
fn status_checks(lines: &[String]) -> (Option<u16>, Vec<String>) {
    let patterns = [
        r"pm\.response\.to\.have\.status\(\s*(\d{3})\s*\)",
        r"pm\.expect\(\s*pm\.response\.code\s*\)\.to\.(?:eql|equal|eq|be\.equal|be)\(\s*(\d{3})\s*\)",
        r"pm\.response\.code\s*===?\s*(\d{3})",
        r"responseCode\.code\s*===?\s*(\d{3})",
    ];
    let named = [
        (r"pm\.response\.to\.be\.ok\b", 200u16),
        (
            r"pm\.response\.to\.have\.status\(\s*['\x22]OK['\x22]\s*\)",
            200,
        ),
        (
            r"pm\.response\.to\.have\.status\(\s*['\x22]Created['\x22]\s*\)",
            201,
        ),
    ];
    let mut status = None;
    let mut rest = Vec::new();
    for line in lines {
        let trimmed = line.trim();
        let mut is_check = false;
        for p in patterns {
            if let Ok(re) = Regex::new(p)
                && let Some(c) = re.captures(trimmed).and_then(|c| c.get(1))
            {
                is_check = true;
                if status.is_none() {
                    status = c.as_str().parse().ok();
                }
            }
        }
        for (p, code) in named {
            if Regex::new(p).is_ok_and(|re| re.is_match(trimmed)) {
                is_check = true;
                if status.is_none() {
                    status = Some(code);
                }
            }
        }
        // `pm.test("name", function () {` only opens a check written on the next lines.
        let opens_test = trimmed.starts_with("pm.test(") && trimmed.ends_with('{');
        let boilerplate = trimmed.is_empty()
            || trimmed.starts_with("//")
            || opens_test
            || (trimmed.starts_with("tests[") && is_check)
            || matches!(trimmed, "});" | "})" | "}" | "};");
        if !is_check && !boilerplate {
            rest.push(line.clone());
        }
    }
    (status, rest)
}

/// The URL of a request: `raw` (path variables `:name` filled in), or built from its parts.
fn url_of(url: Option<&Value>, vars: &Vars, builder: &mut Builder<'_>) -> String {
    let joined = |v: Option<&Value>, sep: &str| -> Option<String> {
        match v? {
            Value::String(s) => Some(s.clone()),
            Value::Array(parts) => Some(
                parts
                    .iter()
                    .map(|p| match p {
                        Value::Object(o) => o.get("value").map(text_of).unwrap_or_default(),
                        other => text_of(other),
                    })
                    .collect::<Vec<_>>()
                    .join(sep),
            ),
            _ => None,
        }
    };
    let (mut text, path_vars) = match url {
        Some(Value::String(s)) => (s.clone(), Vec::new()),
        Some(Value::Object(u)) => {
            let path_vars: Vec<(String, String)> = u
                .get("variable")
                .and_then(Value::as_array)
                .map(|vs| {
                    vs.iter()
                        .filter_map(|v| {
                            let k = v
                                .get("key")
                                .or_else(|| v.get("id"))
                                .and_then(Value::as_str)?;
                            Some((
                                k.to_string(),
                                v.get("value").map(text_of).unwrap_or_default(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let text = match u.get("raw").and_then(Value::as_str) {
                Some(raw) if !raw.is_empty() => {
                    // `raw` keeps disabled query parameters out, as Postman sends it.
                    raw.to_string()
                }
                _ => {
                    let host = joined(u.get("host"), ".").unwrap_or_default();
                    let path = joined(u.get("path"), "/").unwrap_or_default();
                    let mut s = String::new();
                    if let Some(p) = u.get("protocol").and_then(Value::as_str) {
                        s.push_str(p);
                        s.push_str("://");
                    }
                    s.push_str(&host);
                    if let Some(port) = u.get("port").map(text_of).filter(|p| !p.is_empty()) {
                        s.push(':');
                        s.push_str(&port);
                    }
                    if !path.is_empty() {
                        s.push('/');
                        s.push_str(path.trim_start_matches('/'));
                    }
                    let query: Vec<String> = u
                        .get("query")
                        .and_then(Value::as_array)
                        .map(|qs| {
                            qs.iter()
                                .filter(|q| {
                                    q.get("disabled").and_then(Value::as_bool) != Some(true)
                                })
                                .filter_map(|q| {
                                    let k = q.get("key").map(text_of)?;
                                    match q.get("value") {
                                        Some(Value::Null) | None => Some(k),
                                        Some(v) => Some(format!("{k}={}", text_of(v))),
                                    }
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    if !query.is_empty() {
                        s.push('?');
                        s.push_str(&query.join("&"));
                    }
                    s
                }
            };
            (text, path_vars)
        }
        _ => {
            builder
                .summary
                .warn("a request without a URL got an empty one");
            (String::new(), Vec::new())
        }
    };
    // Path variables (`/users/:id`), in the path only.
    if !path_vars.is_empty() {
        let (before_query, query) = match text.split_once('?') {
            Some((a, b)) => (a.to_string(), Some(b.to_string())),
            None => (text.clone(), None),
        };
        let segments: Vec<String> = before_query
            .split('/')
            .map(|seg| match seg.strip_prefix(':') {
                Some(var) => path_vars
                    .iter()
                    .find(|(k, _)| k == var)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| seg.to_string()),
                None => seg.to_string(),
            })
            .collect();
        text = segments.join("/");
        if let Some(q) = query {
            text.push('?');
            text.push_str(&q);
        }
    }
    let text = escape_url(&vars.subst(text.trim(), builder));
    if text.contains("://") || text.starts_with("${") || text.is_empty() {
        text
    } else {
        // Postman, like curl, assumes http:// for a URL without a scheme.
        format!("http://{text}")
    }
}

/// Percent-encodes what cannot appear in a URL (spaces, `<long>`-style placeholders written by
/// converters, non-ASCII), as Postman does when it sends one; `${...}` placeholders are kept.
fn escape_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while !rest.is_empty() {
        if rest.starts_with("${")
            && let Some(end) = rest.find('}')
        {
            out.push_str(&rest[..=end]);
            rest = &rest[end + 1..];
            continue;
        }
        // Up to the next placeholder, as a URL can carry it.
        let skip = rest.chars().next().map_or(1, char::len_utf8);
        let end = rest[skip..].find("${").map_or(rest.len(), |i| i + skip);
        ld_plan::encode::push(&rest[..end], ld_plan::encode::UNSAFE_IN_URL, &mut out);
        rest = &rest[end..];
    }
    out
}

/// Headers or query parameters for an auth block.
fn apply_auth(
    auth: &Value,
    vars: &Vars,
    headers: &mut Vec<(String, String)>,
    query: &mut Vec<(String, String)>,
    display: &str,
    builder: &mut Builder<'_>,
) {
    let kind = auth.get("type").and_then(Value::as_str).unwrap_or("noauth");
    // v2.1 lists `[{key, value}]`; v2.0 an object `{key: value}`.
    let field = |name: &str| -> Option<String> {
        match auth.get(kind)? {
            Value::Array(list) => list
                .iter()
                .find(|e| e.get("key").and_then(Value::as_str) == Some(name))
                .and_then(|e| e.get("value"))
                .map(text_of),
            Value::Object(map) => map.get(name).map(text_of),
            _ => None,
        }
    };
    let has_header = |headers: &Vec<(String, String)>, name: &str| {
        headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    match kind {
        "noauth" | "inherit" => {}
        "bearer" => {
            let token = vars.subst(&field("token").unwrap_or_default(), builder);
            if !has_header(headers, "authorization") {
                headers.push(("Authorization".into(), format!("Bearer {token}")));
            }
        }
        "basic" => {
            // The header holds base64 of the credentials, so they are computed now, from the
            // variables' values; the shared secrets step then moves the header out.
            let user = vars.expand_raw(&field("username").unwrap_or_default(), 0);
            let password = vars.expand_raw(&field("password").unwrap_or_default(), 0);
            if user.contains("{{") || password.contains("{{") {
                builder.summary.warn(format!(
                    "\"{display}\": basic auth uses undefined variables; the header holds them as written"
                ));
            }
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            if !has_header(headers, "authorization") {
                headers.push(("Authorization".into(), format!("Basic {encoded}")));
            }
        }
        "apikey" => {
            let key = vars.subst(&field("key").unwrap_or_else(|| "X-API-Key".into()), builder);
            let value = vars.subst(&field("value").unwrap_or_default(), builder);
            if field("in").as_deref() == Some("query") {
                query.push((key, value));
            } else if !has_header(headers, &key) {
                headers.push((key, value));
            }
        }
        "oauth2" => match field("accessToken") {
            Some(token) if !token.is_empty() => {
                let prefix = field("headerPrefix").unwrap_or_else(|| "Bearer".into());
                let token = vars.subst(&token, builder);
                if !has_header(headers, "authorization") {
                    headers.push(("Authorization".into(), format!("{prefix} {token}")));
                }
            }
            _ => builder.summary.warn(
                "OAuth 2 auth without a stored access token is not converted; set the header with --header",
            ),
        },
        other => builder.summary.warn(format!(
            "Postman auth type `{other}` is not supported; those requests go without it (add it with --header)"
        )),
    }
}

/// The body of a request, adding the content type Postman would send. `reads` are the files
/// of the collection, its name and the body's JSON pointer, for the files the body names.
fn body_of(
    body: Option<&Value>,
    vars: &Vars,
    headers: &mut Vec<(String, String)>,
    display: &str,
    builder: &mut Builder<'_>,
    reads: (&mut Files<'_>, &str, &str),
) -> Result<Body> {
    let (files, name, pointer) = reads;
    let Some(body) = body.filter(|b| b.is_object()) else {
        return Ok(Body::None);
    };
    if body.get("disabled").and_then(Value::as_bool) == Some(true) {
        return Ok(Body::None);
    }
    let set_type = |headers: &mut Vec<(String, String)>, t: &str| {
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("Content-Type".into(), t.into()));
        }
    };
    let mode = body.get("mode").and_then(Value::as_str).unwrap_or("raw");
    match mode {
        "raw" => {
            let raw = body.get("raw").map(text_of).unwrap_or_default();
            if raw.is_empty() {
                return Ok(Body::None);
            }
            let text = vars.subst(&raw, builder);
            let language = body
                .pointer("/options/raw/language")
                .and_then(Value::as_str)
                .unwrap_or("text");
            let declared = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.to_ascii_lowercase());
            let json =
                language == "json" || declared.as_deref().is_some_and(|t| t.contains("json"));
            let media = match language {
                "json" => "application/json",
                "xml" => "application/xml",
                "html" => "text/html",
                "javascript" => "application/javascript",
                _ => "text/plain",
            };
            set_type(headers, media);
            if json && let Ok(v) = serde_json::from_str::<Value>(&text) {
                return Ok(Body::Json(v));
            }
            Ok(Body::Text(text))
        }
        "urlencoded" => {
            let mut fields = Map::new();
            for f in body
                .get("urlencoded")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if f.get("disabled").and_then(Value::as_bool) == Some(true) {
                    continue;
                }
                let Some(k) = f.get("key").map(text_of) else {
                    continue;
                };
                let v = f.get("value").map(text_of).unwrap_or_default();
                if fields
                    .insert(
                        vars.subst(&k, builder),
                        Value::String(vars.subst(&v, builder)),
                    )
                    .is_some()
                {
                    builder.summary.warn(format!(
                        "\"{display}\": a repeated form field keeps its last value"
                    ));
                }
            }
            set_type(headers, "application/x-www-form-urlencoded");
            Ok(Body::Form(fields))
        }
        "formdata" => {
            let mut parts = Vec::new();
            for (index, f) in body
                .get("formdata")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                if f.get("disabled").and_then(Value::as_bool) == Some(true) {
                    continue;
                }
                let Some(k) = f.get("key").map(text_of) else {
                    continue;
                };
                let mut part = Map::new();
                part.insert("name".into(), Value::String(vars.subst(&k, builder)));
                let content_type = f
                    .get("contentType")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty());
                if f.get("type").and_then(Value::as_str) == Some("file") {
                    // One part per file: Postman sends each file of a list under the key.
                    let at = format!("{pointer}/formdata/{index}/src");
                    let sources: Vec<(String, String)> = match f.get("src") {
                        Some(Value::Array(list)) => list
                            .iter()
                            .enumerate()
                            .map(|(i, v)| (text_of(v), format!("{at}/{i}")))
                            .collect(),
                        Some(v) => vec![(text_of(v), at)],
                        None => Vec::new(),
                    };
                    let sources: Vec<_> =
                        sources.into_iter().filter(|(p, _)| !p.is_empty()).collect();
                    if sources.is_empty() {
                        builder.summary.warn(format!(
                            "\"{display}\": form-data file part `{k}` names no file (`src`); it is sent empty: choose the file in Postman and export again"
                        ));
                        part.insert("value".into(), Value::String(String::new()));
                        part.insert("filename".into(), Value::String("file".into()));
                        if let Some(t) = content_type {
                            part.insert("content_type".into(), Value::String(t.into()));
                        }
                        parts.push(Value::Object(part));
                        continue;
                    }
                    for (src, at) in sources {
                        let src = vars.subst(&src, builder);
                        let bytes =
                            files.read_at(&src, &format!("{name}: {at} (\"{display}\")"))?;
                        let mut part = part.clone();
                        content(&mut part, bytes);
                        let base = src.rsplit(['/', '\\']).next().unwrap_or_default();
                        part.insert(
                            "filename".into(),
                            Value::String(if base.is_empty() {
                                "file".into()
                            } else {
                                base.into()
                            }),
                        );
                        if let Some(t) = content_type {
                            part.insert("content_type".into(), Value::String(t.into()));
                        }
                        parts.push(Value::Object(part));
                    }
                    continue;
                } else {
                    let v = f.get("value").map(text_of).unwrap_or_default();
                    part.insert("value".into(), Value::String(vars.subst(&v, builder)));
                }
                if let Some(t) = content_type {
                    part.insert("content_type".into(), Value::String(t.into()));
                }
                parts.push(Value::Object(part));
            }
            Ok(Body::Multipart(parts))
        }
        "graphql" => {
            let g = body.get("graphql").cloned().unwrap_or_default();
            let query = vars.subst(&g.get("query").map(text_of).unwrap_or_default(), builder);
            let variables = match g.get("variables") {
                Some(Value::String(s)) if !s.trim().is_empty() => {
                    let s = vars.subst(s, builder);
                    serde_json::from_str(&s).unwrap_or(Value::String(s))
                }
                Some(Value::Object(o)) => Value::Object(o.clone()),
                _ => Value::Object(Map::new()),
            };
            let mut doc = Map::new();
            doc.insert("query".into(), Value::String(query));
            doc.insert("variables".into(), variables);
            set_type(headers, "application/json");
            Ok(Body::Json(Value::Object(doc)))
        }
        "file" => {
            let file = body.get("file");
            if let Some(text) = file.and_then(|f| f.get("content")).and_then(Value::as_str) {
                return Ok(Body::Text(vars.subst(text, builder)));
            }
            let src = file
                .and_then(|f| f.get("src"))
                .map(text_of)
                .unwrap_or_default();
            if src.is_empty() {
                builder.summary.warn(format!(
                    "\"{display}\": the binary body names no file (`file.src`); the task sends no body: choose the file in Postman and export again"
                ));
                return Ok(Body::None);
            }
            let src = vars.subst(&src, builder);
            let bytes =
                files.read_at(&src, &format!("{name}: {pointer}/file/src (\"{display}\")"))?;
            Ok(bytes_body(&bytes))
        }
        other => {
            builder.summary.warn(format!(
                "\"{display}\": body mode `{other}` is not supported; the task sends no body"
            ));
            Ok(Body::None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(collection: &str, env: Option<&str>, inline: bool) -> Import {
        let options = ImportOptions {
            environment: env.map(|e| ("env.json".to_string(), e.as_bytes().to_vec())),
            inline_secrets: inline,
            ..ImportOptions::default()
        };
        import("c.json", collection.as_bytes(), &options).expect("imports")
    }

    fn tasks(import: &Import) -> Vec<ld_plan::Task> {
        let action = import.plan().actions.last().expect("action").clone();
        action
            .as_start_test("/0")
            .expect("start")
            .tasks
            .expect("tasks")
            .to_list()
    }

    const COLLECTION: &str = r#"{
      "info": {"name": "Shop", "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"},
      "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "{{token}}", "type": "string"}]},
      "variable": [{"key": "baseUrl", "value": "http://127.0.0.1:{{port}}"}, {"key": "port", "value": "8080"}, {"key": "token", "value": "t0k"}],
      "item": [
        {"name": "Users", "item": [
          {"name": "Get user", "request": {"method": "GET", "url": {"raw": "{{baseUrl}}/users/:id?x=1", "host": ["{{baseUrl}}"], "path": ["users", ":id"], "variable": [{"key": "id", "value": "7"}]}},
           "event": [{"listen": "test", "script": {"exec": ["pm.test(\"ok\", function () {", "    pm.response.to.have.status(200);", "});", "pm.expect(pm.response.json().id).to.eql(7);"]}}]},
          {"name": "Create", "request": {"method": "POST", "auth": {"type": "noauth"}, "header": [{"key": "X-Off", "value": "1", "disabled": true}],
            "url": "{{baseUrl}}/users", "body": {"mode": "raw", "raw": "{\"name\": \"{{$randomFirstName}}\"}", "options": {"raw": {"language": "json"}}}},
           "event": [{"listen": "test", "script": {"exec": ["pm.expect(pm.response.code).to.eql(201);"]}}]}
        ]},
        {"name": "Login", "request": {"method": "POST", "auth": {"type": "basic", "basic": [{"key": "username", "value": "ann"}, {"key": "password", "value": "{{pw}}"}]},
          "url": "{{baseUrl}}/login", "body": {"mode": "urlencoded", "urlencoded": [{"key": "a", "value": "1"}]}},
         "response": [{"code": 404}, {"code": 202}]}
      ]
    }"#;

    #[test]
    fn variables_auth_scripts_and_folders() {
        let env = r#"{"name": "local", "values": [{"key": "port", "value": "9090", "enabled": true}, {"key": "pw", "value": "s3cret", "type": "secret"}]}"#;
        let import = plan(COLLECTION, Some(env), false);
        let start = &import.plan().actions[0];
        assert_eq!(start.command, "LD_register_variables");
        let vars = &start.kwargs().expect("kwargs")["variables"];
        assert_eq!(vars["baseUrl"], "http://127.0.0.1:9090");
        assert!(vars.get("token").is_none(), "the token is a secret");
        let t = tasks(&import);
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].name.as_deref(), Some("Users / Get user"));
        assert_eq!(
            t[0].request_url.as_deref(),
            Some("${var.baseUrl}/users/7?x=1")
        );
        assert_eq!(
            t[0].headers.as_ref().expect("h")["Authorization"],
            "Bearer ${env.TOKEN}"
        );
        assert_eq!(
            t[0].assertions.as_ref().expect("a")[0].value,
            Some(200.into())
        );
        assert!(
            t[1].headers
                .as_ref()
                .expect("h")
                .get("Authorization")
                .is_none()
        );
        assert!(t[1].headers.as_ref().expect("h").get("X-Off").is_none());
        assert_eq!(
            t[1].json,
            Some(serde_json::json!({"name": "${faker.first_name}"}))
        );
        assert_eq!(
            t[1].assertions.as_ref().expect("a")[0].value,
            Some(201.into())
        );
        assert_eq!(
            t[2].headers.as_ref().expect("h")["Authorization"],
            "${env.AUTHORIZATION}"
        );
        assert_eq!(
            t[2].assertions.as_ref().expect("a")[0].value,
            Some(202.into())
        );
        let secrets = import.secrets_env().expect("secrets");
        assert!(secrets.contains("TOKEN=t0k"), "{secrets}");
        assert!(
            secrets.contains("AUTHORIZATION=Basic YW5uOnMzY3JldA=="),
            "{secrets}"
        );
        assert!(
            import
                .summary
                .warnings
                .keys()
                .any(|w| w.contains("Get user") && w.contains("not converted")),
            "{:?}",
            import.summary.warnings
        );
    }

    #[test]
    fn bad_collections_are_errors() {
        let o = ImportOptions::default();
        for (text, what) in [
            ("{\"info\": {}, \"item\": 3}", "/item"),
            ("{\"info\": 3, \"item\": []}", "/info"),
            ("{\"info\": {}, \"item\": [}", "c.json:1:"),
        ] {
            let err = import("c.json", text.as_bytes(), &o).expect_err(text);
            assert!(err.to_string().contains(what), "{err}");
        }
    }

    #[test]
    fn a_collection_without_info_imports() {
        let text = r#"{
          "variable": [{"key": "host", "value": "http://127.0.0.1:1"}],
          "item": [{"name": "Ping", "request": {"method": "GET", "url": "{{host}}/ping"}}]
        }"#;
        assert_eq!(
            crate::Format::detect(text.as_bytes()),
            Some(crate::Format::Postman)
        );
        let import = plan(text, None, false);
        let t = tasks(&import);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].name.as_deref(), Some("Ping"));
        assert_eq!(t[0].request_url.as_deref(), Some("${var.host}/ping"));
    }

    #[test]
    fn v1_collections_import() {
        let text = r#"{"id": "c1", "name": "Old", "order": ["r2"], "folders_order": ["f1"],
          "folders": [{"id": "f1", "name": "Users", "order": ["r1"]}],
          "requests": [
            {"id": "r1", "name": "Make", "method": "POST", "url": "http://h/users/:id", "pathVariables": {"id": "7"},
             "headers": "X-A: 1\nContent-Type: application/json\n", "dataMode": "raw", "rawModeData": "{\"n\": 1}",
             "tests": "tests[\"ok\"] = responseCode.code === 201;"},
            {"id": "r2", "name": "Form", "method": "POST", "url": "http://h/f", "dataMode": "urlencoded",
             "data": [{"key": "a", "value": "1", "type": "text", "enabled": true}, {"key": "b", "value": "2", "enabled": false}]}
          ]}"#;
        assert_eq!(
            crate::Format::detect(text.as_bytes()),
            Some(crate::Format::Postman)
        );
        let t = tasks(&plan(text, None, false));
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].name.as_deref(), Some("Users / Make"));
        assert_eq!(t[0].request_url.as_deref(), Some("http://h/users/7"));
        assert_eq!(t[0].headers.as_ref().expect("h")["X-A"], "1");
        assert_eq!(t[0].json, Some(serde_json::json!({"n": 1})));
        assert_eq!(
            t[0].assertions.as_ref().expect("a")[0].value,
            Some(201.into())
        );
        assert_eq!(t[1].data, Some(serde_json::json!({"a": "1"})));
    }

    #[test]
    fn file_parts_and_file_bodies_are_read_beside_the_collection() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("data")).expect("mkdir");
        std::fs::write(dir.path().join("data/a.txt"), "alpha").expect("write");
        std::fs::write(dir.path().join("data/b.bin"), b"\xff\x00b").expect("write");
        let text = r#"{"item": [
          {"name": "Up", "request": {"method": "POST", "url": "http://h/up", "body": {"mode": "formdata", "formdata": [
            {"key": "doc", "type": "file", "src": "data/a.txt", "contentType": "text/plain"},
            {"key": "many", "type": "file", "src": ["data/a.txt", "data/b.bin"]},
            {"key": "none", "type": "file", "src": []},
            {"key": "n", "value": "1"}]}}},
          {"name": "Raw", "request": {"method": "PUT", "url": "http://h/raw", "body": {"mode": "file", "file": {"src": "data/b.bin"}}}}
        ]}"#;
        let options = ImportOptions {
            base_dir: Some(dir.path().to_path_buf()),
            ..ImportOptions::default()
        };
        let import = import("c.json", text.as_bytes(), &options).expect("imports");
        let t = tasks(&import);
        let plan = serde_json::to_value(&t[0]).expect("json");
        let parts = plan.pointer("/body/multipart").expect("parts");
        assert_eq!(
            parts,
            &serde_json::json!([
                {"name": "doc", "value": "alpha", "filename": "a.txt", "content_type": "text/plain"},
                {"name": "many", "value": "alpha", "filename": "a.txt"},
                {"name": "many", "base64": "/wBi", "filename": "b.bin"},
                {"name": "none", "value": "", "filename": "file"},
                {"name": "n", "value": "1"}
            ])
        );
        assert!(
            import
                .summary
                .warnings
                .keys()
                .any(|w| w.contains("`none` names no file") && w.contains("sent empty")),
            "{:?}",
            import.summary.warnings
        );
        let raw = serde_json::to_value(&t[1]).expect("json");
        assert_eq!(raw["body"], serde_json::json!({"base64": "/wBi"}));

        let missing = text.replace("data/a.txt", "data/gone.txt");
        let err = crate::postman::import("c.json", missing.as_bytes(), &options)
            .expect_err("a missing file is an error")
            .to_string();
        assert!(
            err.contains("c.json: /item/0/request/body/formdata/0/src (\"Up\"): cannot read")
                && err.contains("gone.txt: no such file")
                && err.contains("collection's directory"),
            "{err}"
        );
    }

    #[test]
    fn urls_are_escaped_around_their_placeholders() {
        assert_eq!(
            escape_url("http://h/é café/${var.id}/{x}?q=a b${env.K}"),
            "http://h/%C3%A9%20caf%C3%A9/${var.id}/%7Bx%7D?q=a%20b${env.K}"
        );
        assert_eq!(escape_url("${unclosed"), "$%7Bunclosed");
    }

    #[test]
    fn status_checks_are_recognised() {
        let lines: Vec<String> = [
            "pm.test('s', () => {",
            "  pm.response.to.have.status(204);",
            "});",
            "console.log('x')",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (status, rest) = status_checks(&lines);
        assert_eq!(status, Some(204));
        assert_eq!(rest, ["console.log('x')"]);
    }
}
