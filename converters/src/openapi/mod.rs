//! The OpenAPI importer: OpenAPI 2.0 (Swagger), 3.0 and 3.1 descriptions, JSON or YAML, turned
//! into one task per operation.
//!
//! Each task gets a URL on the API's server (`servers`, or `host` + `basePath`, or
//! `--server`), its required path, query, header and cookie parameters (and the optional ones
//! the description gives an example for), a request body from the description's examples or
//! generated from its schema, credentials for its security scheme as `${env.NAME}`
//! placeholders, and a `status_code` assertion on the lowest declared 2xx status.
//!
//! Modules: `refs` reads documents and resolves `$ref`s; `example` makes values from schemas.

mod example;
mod refs;
mod tabs;

use serde_json::{Map, Value};

use self::example::Generator;
use self::refs::{Docs, Node};
use crate::output::{Body, Builder, Request};
use crate::{Error, Import, ImportOptions, Result};

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// True when the start of a text looks like an OpenAPI or Swagger document, JSON or YAML.
pub(crate) fn looks_like_openapi(head: &str) -> bool {
    let json = head.trim_start().starts_with('{')
        && (head.contains("\"openapi\"") || head.contains("\"swagger\""));
    let yaml = head.lines().any(|l| {
        let l = l.trim_end();
        (l.starts_with("openapi:")
            || l.starts_with("swagger:")
            || l.starts_with("\"openapi\":")
            || l.starts_with("'openapi':"))
            && l.split_once(':').is_some_and(|(_, v)| !v.trim().is_empty())
    });
    json || yaml
}

/// Imports an OpenAPI description read from `name`.
pub fn import(name: &str, bytes: &[u8], options: &ImportOptions) -> Result<Import> {
    let text = String::from_utf8_lossy(bytes);
    let root = refs::parse(name, &text)?;
    let version = check_version(name, &root)?;
    let repeated = repeated_root_keys(&text);
    let docs = Docs::load(
        root,
        options.base_dir.as_deref(),
        options.files_within.as_deref(),
    );
    let mut builder = Builder::new(options);
    for problem in &docs.problems {
        builder.summary.warn(problem.clone());
    }
    for problem in repeated {
        builder.summary.warn(problem);
    }
    let api = Api::new(&docs, version, options, &mut builder);
    let root = docs.root().value;
    for problem in missing_members(root) {
        builder.summary.warn(problem);
    }
    let paths = match root.get("paths") {
        Some(Value::Object(paths)) => paths,
        // Named by `missing_members`.
        Some(Value::Null) | None => return Ok(builder.finish()),
        Some(_) => {
            return Err(Error::Invalid(format!(
                "{name}: /paths: expected an object of paths, e.g. {{\"/pets\": {{\"get\": {{...}}}}}}"
            )));
        }
    };
    for (path, item) in paths {
        let item = match docs.deref(Node {
            doc: 0,
            value: item,
        }) {
            Ok(n) => n,
            Err(e) => {
                builder.summary.warn(format!("path {path}: {e}"));
                continue;
            }
        };
        let Value::Object(item_map) = item.value else {
            builder
                .summary
                .warn(format!("path {path} is not an object; skipped"));
            continue;
        };
        for (method, operation) in item_map {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            builder.summary.read += 1;
            let Value::Object(_) = operation else {
                builder.summary.drop("malformed operations (not an object)");
                continue;
            };
            api.operation(
                path,
                method,
                item,
                Node {
                    doc: item.doc,
                    value: operation,
                },
                &mut builder,
            );
        }
    }
    Ok(builder.finish())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    Swagger2,
    OpenApi3,
}

/// What the description lacks of what both OpenAPI and Swagger require (`info` with its
/// `title` and `version`, `paths`), each named by its JSON pointer: worth a warning, since
/// the operations can still be imported.
/// The root keys written more than once. The parsers keep the last of them silently, which
/// loses what the earlier ones held, so each is named with its lines.
fn repeated_root_keys(text: &str) -> Vec<String> {
    crate::detect::duplicates(&crate::detect::root_keys(text))
        .into_iter()
        .map(|(key, lines)| {
            let lines: Vec<String> = lines.iter().map(ToString::to_string).collect();
            format!(
                "/{}: the top-level key {key:?} appears {} times (lines {}); only the last is read: merge them into one",
                key.replace('~', "~0").replace('/', "~1"),
                lines.len(),
                lines.join(", ")
            )
        })
        .collect()
}

fn missing_members(root: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    match root.get("info") {
        None | Some(Value::Null) => problems.push(
            "/info is missing: a description needs info with a title and a version".to_string(),
        ),
        Some(Value::Object(info)) => {
            for member in ["title", "version"] {
                match info.get(member) {
                    Some(Value::String(s)) if !s.trim().is_empty() => {}
                    Some(Value::String(_)) => problems.push(format!("/info/{member} is empty")),
                    None | Some(Value::Null) => {
                        problems.push(format!("/info/{member} is missing"));
                    }
                    Some(_) => problems.push(format!("/info/{member} is not a string")),
                }
            }
        }
        Some(_) => problems.push("/info is not an object".to_string()),
    }
    let no_paths = match root.get("paths") {
        None | Some(Value::Null) => {
            problems.push("/paths is missing: the description has no operation to import".into());
            true
        }
        Some(Value::Object(paths)) if paths.is_empty() => {
            problems.push("/paths is empty: the description has no operation to import".into());
            true
        }
        Some(_) => false,
    };
    if no_paths
        && let Some(Value::Object(hooks)) = root.get("webhooks")
        && !hooks.is_empty()
    {
        problems.push(format!(
            "/webhooks: its {} webhook(s) are requests the API sends to its subscribers, not requests to send it: they are not imported",
            hooks.len()
        ));
    }
    problems
}

fn check_version(name: &str, root: &Value) -> Result<Version> {
    let Value::Object(map) = root else {
        return Err(Error::Invalid(format!(
            "{name}: not an OpenAPI description: expected an object with an `openapi` (3.x) or `swagger` (2.0) field"
        )));
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    };
    if let Some(v) = map.get("openapi") {
        let v = text(v);
        if v.starts_with("3.") {
            return Ok(Version::OpenApi3);
        }
        return Err(Error::Invalid(format!(
            "{name}: /openapi: version {v:?} is not supported; expected 3.0.x or 3.1.x (or swagger 2.0)"
        )));
    }
    if let Some(v) = map.get("swagger") {
        let v = text(v);
        if v.starts_with("2.") || v == "2" {
            return Ok(Version::Swagger2);
        }
        return Err(Error::Invalid(format!(
            "{name}: /swagger: version {v:?} is not supported; expected 2.0 (or openapi 3.x)"
        )));
    }
    Err(Error::Invalid(format!(
        "{name}: not an OpenAPI description: no `openapi` or `swagger` field at the top level; \
         name the version at the top, e.g. `openapi: 3.0.3` (or `swagger: \"2.0\"`)"
    )))
}

/// What every operation shares: the documents, the base URL, the security schemes.
struct Api<'a> {
    docs: &'a Docs,
    version: Version,
    /// `--server`, or the 2.0 `host` + `basePath`; 3.x operations may override it.
    base: Option<String>,
    include_deprecated: bool,
}

impl<'a> Api<'a> {
    fn new(
        docs: &'a Docs,
        version: Version,
        options: &ImportOptions,
        builder: &mut Builder<'_>,
    ) -> Api<'a> {
        let root = docs.root().value;
        let forced = options
            .server
            .as_ref()
            .map(|s| s.trim_end_matches('/').to_string());
        let base = match (&forced, version) {
            (Some(s), _) => Some(s.clone()),
            (None, Version::Swagger2) => {
                let host = root.get("host").and_then(Value::as_str);
                let schemes: Vec<&str> = root
                    .get("schemes")
                    .and_then(Value::as_array)
                    .map(|s| s.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let scheme = if schemes.contains(&"https") {
                    "https"
                } else {
                    schemes.first().copied().unwrap_or("http")
                };
                let base_path = root
                    .get("basePath")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .trim_end_matches('/');
                let host = match host {
                    Some(h) if !h.is_empty() => h.to_string(),
                    _ => {
                        builder.summary.warn(
                            "the description names no host; using http://localhost (set one with --server)",
                        );
                        "localhost".into()
                    }
                };
                let scheme = if host == "localhost" { "http" } else { scheme };
                let base_path = if base_path.is_empty() || base_path.starts_with('/') {
                    base_path.to_string()
                } else {
                    format!("/{base_path}")
                };
                Some(format!("{scheme}://{host}{base_path}"))
            }
            (None, Version::OpenApi3) => None,
        };
        Api {
            docs,
            version,
            base,
            include_deprecated: options.include_deprecated,
        }
    }

    /// The base URL of an operation: `--server`, else the first of its own, its path's or the
    /// document's `servers`, with server variables at their defaults.
    fn base_url(&self, item: &Value, operation: &Value, builder: &mut Builder<'_>) -> String {
        if let Some(b) = &self.base {
            return b.clone();
        }
        let root = self.docs.root().value;
        let server = [operation, item, root]
            .iter()
            .filter_map(|v| v.get("servers").and_then(Value::as_array))
            .find(|s| !s.is_empty())
            .and_then(|s| s.first());
        let Some(server) = server else {
            builder.summary.warn(
                "the description names no server; using http://localhost (set one with --server)",
            );
            return "http://localhost".into();
        };
        let mut url = server
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or("/")
            .to_string();
        if let Some(Value::Object(vars)) = server.get("variables") {
            for (name, var) in vars {
                let value = match var.get("default") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) if !other.is_null() => other.to_string(),
                    _ => var
                        .get("enum")
                        .and_then(Value::as_array)
                        .and_then(|e| e.first())
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                };
                url = url.replace(&format!("{{{name}}}"), &value);
            }
        }
        let url = url.trim_end_matches('/').to_string();
        if url.contains("://") {
            url
        } else if let Some(rest) = url.strip_prefix("//") {
            format!("https://{rest}")
        } else {
            builder.summary.warn(
                "the server URL is relative; resolved against http://localhost (set one with --server)",
            );
            let path = url.trim_start_matches('/');
            if path.is_empty() {
                "http://localhost".into()
            } else {
                format!("http://localhost/{path}")
            }
        }
    }

    fn operation(
        &self,
        path: &str,
        method: &str,
        item: Node<'a>,
        operation: Node<'a>,
        builder: &mut Builder<'_>,
    ) {
        let op = operation.value;
        if op.get("deprecated").and_then(Value::as_bool) == Some(true) && !self.include_deprecated {
            builder
                .summary
                .drop("deprecated operations (--include-deprecated keeps them)");
            return;
        }
        let base = self.base_url(item.value, op, builder);
        let mut generator = Generator::new(self.docs, true);
        let params = self.parameters(item, operation, builder);

        let mut url_path = path.to_string();
        let mut query: Vec<(String, String)> = Vec::new();
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut cookies: Vec<(String, String)> = Vec::new();
        let mut form_params: Vec<(String, Value, bool)> = Vec::new();
        let mut body_param: Option<Node<'a>> = None;
        for param in &params {
            let p = param.value;
            let Some(name) = p.get("name").and_then(Value::as_str) else {
                continue;
            };
            let location = p.get("in").and_then(Value::as_str).unwrap_or_default();
            let required =
                p.get("required").and_then(Value::as_bool) == Some(true) || location == "path";
            if location == "body" {
                let schema = p.get("schema").unwrap_or(&Value::Null);
                body_param = Some(Node {
                    doc: param.doc,
                    value: schema,
                });
                continue;
            }
            let explicit = param_example(self.docs, *param);
            if !required && explicit.is_none() {
                continue;
            }
            let value = match explicit {
                Some(v) => v,
                None => {
                    let schema = match self.version {
                        // 2.0 parameters carry their schema inline (type, format, items, ...).
                        Version::Swagger2 => p,
                        Version::OpenApi3 => p
                            .get("schema")
                            .or_else(|| {
                                p.get("content")
                                    .and_then(Value::as_object)
                                    .and_then(|c| c.values().next())
                                    .and_then(|m| m.get("schema"))
                            })
                            .unwrap_or(&Value::Null),
                    };
                    generator.example(Node {
                        doc: param.doc,
                        value: schema,
                    })
                }
            };
            match location {
                "path" => {
                    let text = simple(&value);
                    let text = if text.is_empty() { "1".into() } else { text };
                    url_path = url_path.replace(&format!("{{{name}}}"), &escape(&text));
                }
                "query" => {
                    let (style, explode) = match self.version {
                        Version::OpenApi3 => {
                            let style = p.get("style").and_then(Value::as_str).unwrap_or("form");
                            let explode = p
                                .get("explode")
                                .and_then(Value::as_bool)
                                .unwrap_or(style == "form");
                            (style, explode)
                        }
                        Version::Swagger2 => {
                            match p.get("collectionFormat").and_then(Value::as_str) {
                                Some("multi") => ("form", true),
                                Some("ssv") => ("spaceDelimited", false),
                                Some("pipes") => ("pipeDelimited", false),
                                _ => ("form", false),
                            }
                        }
                    };
                    query_pairs(name, &value, style, explode, &mut query);
                }
                // The description's Accept, Content-Type and Authorization parameters are
                // ignored by the specification: the body and security decide them.
                "header"
                    if !["accept", "content-type", "authorization"]
                        .iter()
                        .any(|h| h.eq_ignore_ascii_case(name)) =>
                {
                    headers.push((name.to_string(), simple(&value)));
                }
                "cookie" => cookies.push((name.to_string(), simple(&value))),
                "formData" => {
                    let file = p.get("type").and_then(Value::as_str) == Some("file");
                    form_params.push((name.to_string(), value, file));
                }
                _ => {}
            }
        }

        let body = match self.version {
            Version::OpenApi3 => {
                self.request_body(operation, &mut generator, &mut headers, builder)
            }
            Version::Swagger2 => {
                let consumes = media_list(op.get("consumes"))
                    .or_else(|| media_list(self.docs.root().value.get("consumes")))
                    .unwrap_or_default();
                if let Some(schema) = body_param {
                    let media = consumes
                        .iter()
                        .find(|m| is_json(m))
                        .cloned()
                        .or_else(|| consumes.first().cloned())
                        .unwrap_or_else(|| "application/json".into());
                    let value = generator.example(schema);
                    self.body_for(&media, value, &mut headers, builder)
                } else if !form_params.is_empty() {
                    let multipart = form_params.iter().any(|(_, _, f)| *f)
                        || consumes.iter().any(|m| m.starts_with("multipart/"));
                    if multipart {
                        Body::Multipart(
                            form_params
                                .into_iter()
                                .map(|(name, value, file)| part(&name, &value, file))
                                .collect(),
                        )
                    } else {
                        headers.push((
                            "Content-Type".into(),
                            "application/x-www-form-urlencoded".into(),
                        ));
                        Body::Form(
                            form_params
                                .into_iter()
                                .map(|(name, value, _)| (name, Value::String(simple(&value))))
                                .collect(),
                        )
                    }
                } else {
                    Body::None
                }
            }
        };
        for problem in generator.problems.drain(..) {
            builder.summary.warn(problem);
        }

        self.security(operation, &mut headers, &mut query, &mut cookies, builder);
        if !cookies.is_empty() {
            let cookie = cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            headers.push(("Cookie".into(), cookie));
        }

        let mut url = format!("{base}{url_path}");
        if !query.is_empty() {
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| {
                    // Placeholders stay readable; everything else is escaped.
                    let v = if v.starts_with("${") {
                        v.clone()
                    } else {
                        escape(v)
                    };
                    format!("{}={v}", escape(k))
                })
                .collect();
            url = format!("{url}?{}", q.join("&"));
        }

        let operation_id = op.get("operationId").and_then(Value::as_str).unwrap_or("");
        let tags: Vec<&str> = op
            .get("tags")
            .and_then(Value::as_array)
            .map(|t| t.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut labels = vec![operation_id];
        labels.extend(tags.iter().copied());
        if let Some(reason) = builder.filter().check_labels(&url, &labels, &tags) {
            builder.summary.drop(reason);
            return;
        }
        let status = expected_status(op, path, method, builder);
        builder.push(Request {
            method: method.to_ascii_uppercase(),
            url,
            headers,
            body,
            status,
            name: Some(format!("{} {path}", method.to_ascii_uppercase())),
            ..Request::default()
        });
    }

    /// Path-level parameters overridden by operation-level ones with the same name and place.
    fn parameters(
        &self,
        item: Node<'a>,
        operation: Node<'a>,
        builder: &mut Builder<'_>,
    ) -> Vec<Node<'a>> {
        let mut out: Vec<Node<'a>> = Vec::new();
        for source in [item, operation] {
            let Some(Value::Array(list)) = source.value.get("parameters") else {
                continue;
            };
            for p in list {
                let p = match self.docs.deref(Node {
                    doc: source.doc,
                    value: p,
                }) {
                    Ok(p) => p,
                    Err(e) => {
                        builder.summary.warn(format!("parameter: {e}"));
                        continue;
                    }
                };
                let key = |n: &Node<'_>| {
                    (
                        n.value
                            .get("name")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        n.value
                            .get("in")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    )
                };
                let k = key(&p);
                out.retain(|existing| key(existing) != k);
                out.push(p);
            }
        }
        out
    }

    /// The 3.x `requestBody`: the preferred media type, its example or a generated one.
    fn request_body(
        &self,
        operation: Node<'a>,
        generator: &mut Generator<'a>,
        headers: &mut Vec<(String, String)>,
        builder: &mut Builder<'_>,
    ) -> Body {
        let Some(body) = operation.value.get("requestBody") else {
            return Body::None;
        };
        let body = match self.docs.deref(Node {
            doc: operation.doc,
            value: body,
        }) {
            Ok(b) => b,
            Err(e) => {
                builder.summary.warn(format!("requestBody: {e}"));
                return Body::None;
            }
        };
        let Some(Value::Object(content)) = body.value.get("content") else {
            return Body::None;
        };
        let rank = |m: &str| {
            let m = m.to_ascii_lowercase();
            if m.starts_with("application/json") {
                0
            } else if is_json(&m) {
                1
            } else if m.starts_with("application/x-www-form-urlencoded") {
                2
            } else if m.starts_with("multipart/form-data") {
                3
            } else if m.starts_with("text/plain") {
                4
            } else if m == "*/*" || m == "application/*" {
                5
            } else {
                6
            }
        };
        let Some((media, media_object)) = content.iter().min_by_key(|(m, _)| rank(m)) else {
            return Body::None;
        };
        let media_node = Node {
            doc: body.doc,
            value: media_object,
        };
        let value = media_example(self.docs, media_node).unwrap_or_else(|| {
            let schema = media_object.get("schema").unwrap_or(&Value::Null);
            if schema.is_null() {
                Value::Null
            } else {
                generator.example(Node {
                    doc: body.doc,
                    value: schema,
                })
            }
        });
        let media = if media == "*/*" || media == "application/*" {
            "application/json".to_string()
        } else {
            media.clone()
        };
        self.body_for(&media, value, headers, builder)
    }

    /// A body of media type `media` holding `value`; sets the content type.
    fn body_for(
        &self,
        media: &str,
        value: Value,
        headers: &mut Vec<(String, String)>,
        builder: &mut Builder<'_>,
    ) -> Body {
        let essence = media
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if essence.starts_with("multipart/") {
            let parts = match value {
                Value::Object(map) => map.into_iter().map(|(k, v)| part(&k, &v, false)).collect(),
                _ => Vec::new(),
            };
            return Body::Multipart(parts);
        }
        headers.push(("Content-Type".into(), media.to_string()));
        if is_json(&essence) {
            return Body::Json(value);
        }
        if essence == "application/x-www-form-urlencoded" {
            return match value {
                Value::Object(map) => Body::Form(
                    map.into_iter()
                        .map(|(k, v)| (k, Value::String(simple(&v))))
                        .collect(),
                ),
                other => Body::Text(simple(&other)),
            };
        }
        if essence.starts_with("text/") || essence.ends_with("+xml") || essence.ends_with("/xml") {
            return match value {
                Value::String(s) => Body::Text(s),
                Value::Null => Body::Text(String::new()),
                other if essence.contains("xml") => {
                    builder.summary.warn(
                        "XML request bodies are not generated from schemas; those tasks send the example as JSON text",
                    );
                    Body::Text(other.to_string())
                }
                other => Body::Text(simple(&other)),
            };
        }
        match value {
            Value::String(s) if !s.is_empty() => Body::Text(s),
            _ => {
                builder.summary.warn(format!(
                    "request bodies of type {essence} are sent empty (no example to send)"
                ));
                Body::Text(String::new())
            }
        }
    }

    /// Credentials for the first security alternative of the operation (or the document),
    /// as `${env.NAME}` placeholders named after the scheme.
    fn security(
        &self,
        operation: Node<'a>,
        headers: &mut Vec<(String, String)>,
        query: &mut Vec<(String, String)>,
        cookies: &mut Vec<(String, String)>,
        builder: &mut Builder<'_>,
    ) {
        let root = self.docs.root().value;
        let requirement = operation
            .value
            .get("security")
            .or_else(|| root.get("security"))
            .and_then(Value::as_array)
            .and_then(|alternatives| alternatives.first())
            .and_then(Value::as_object);
        let Some(requirement) = requirement else {
            return;
        };
        let schemes = match self.version {
            Version::OpenApi3 => root.pointer("/components/securitySchemes"),
            Version::Swagger2 => root.get("securityDefinitions"),
        };
        for name in requirement.keys() {
            let scheme = schemes.and_then(|s| s.get(name)).map(|s| {
                self.docs
                    .deref(Node { doc: 0, value: s })
                    .map(|n| n.value)
                    .unwrap_or(s)
            });
            let Some(scheme) = scheme else {
                builder
                    .summary
                    .warn(format!("security scheme `{name}` is not defined; ignored"));
                continue;
            };
            let env = format!("${{env.{}}}", crate::secrets::camel_env_name(name));
            let kind = scheme
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match kind {
                "apiKey" => {
                    let key = scheme
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("X-API-Key")
                        .to_string();
                    match scheme.get("in").and_then(Value::as_str) {
                        Some("query") => query.push((key, env.clone())),
                        Some("cookie") => cookies.push((key, env.clone())),
                        _ => headers.push((key, env.clone())),
                    }
                }
                "http" => {
                    let s = scheme
                        .get("scheme")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_ascii_lowercase();
                    match s.as_str() {
                        "bearer" => headers.push(("Authorization".into(), format!("Bearer {env}"))),
                        "basic" => headers.push(("Authorization".into(), format!("Basic {env}"))),
                        other => {
                            builder.summary.warn(format!(
                                "HTTP authentication scheme `{other}` is not supported; requests go without it"
                            ));
                            continue;
                        }
                    }
                }
                "basic" => headers.push(("Authorization".into(), format!("Basic {env}"))),
                "oauth2" | "openIdConnect" => {
                    headers.push(("Authorization".into(), format!("Bearer {env}")))
                }
                other => {
                    builder.summary.warn(format!(
                        "security scheme type `{other}` is not supported; requests go without it"
                    ));
                    continue;
                }
            }
            builder.summary.warn(format!(
                "credentials for security scheme `{name}` are read from {env}: set it before replaying"
            ));
        }
    }
}

/// The author's example for a parameter: `example`, the first of `examples`, or those of its
/// schema or content; `None` when there is none.
fn param_example(docs: &Docs, param: Node<'_>) -> Option<Value> {
    let p = param.value;
    if let Some(v) = p.get("example") {
        return Some(v.clone());
    }
    if let Some(v) = first_example(docs, param.doc, p.get("examples")) {
        return Some(v);
    }
    if let Some(schema) = p.get("schema") {
        let schema = docs
            .deref(Node {
                doc: param.doc,
                value: schema,
            })
            .map(|n| n.value)
            .unwrap_or(schema);
        if let Some(v) = schema.get("example") {
            return Some(v.clone());
        }
        if let Some(Value::Array(e)) = schema.get("examples")
            && let Some(v) = e.first()
        {
            return Some(v.clone());
        }
    }
    if let Some(Value::Object(content)) = p.get("content")
        && let Some(media) = content.values().next()
    {
        return media_example(
            docs,
            Node {
                doc: param.doc,
                value: media,
            },
        );
    }
    None
}

/// A media type object's `example` or first `examples` entry.
fn media_example(docs: &Docs, media: Node<'_>) -> Option<Value> {
    if let Some(v) = media.value.get("example") {
        return Some(v.clone());
    }
    first_example(docs, media.doc, media.value.get("examples"))
}

/// The first value of a 3.x `examples` map (`{name: {value}}`, entries possibly `$ref`s).
fn first_example(docs: &Docs, doc: usize, examples: Option<&Value>) -> Option<Value> {
    let Some(Value::Object(map)) = examples else {
        return None;
    };
    map.values().find_map(|e| {
        let e = docs.deref(Node { doc, value: e }).ok()?;
        e.value.get("value").cloned()
    })
}

/// The lowest declared 2xx status; else `2XX` or `default` as 200; else the lowest 1xx or
/// 3xx. An operation that declares only errors gets no assertion.
fn expected_status(op: &Value, path: &str, method: &str, builder: &mut Builder<'_>) -> Option<u16> {
    let responses = op.get("responses").and_then(Value::as_object);
    let Some(responses) = responses else {
        builder
            .summary
            .warn("operations without responses get no status assertion");
        return None;
    };
    let codes: Vec<u16> = responses
        .keys()
        .filter_map(|k| k.trim().parse::<u16>().ok())
        .collect();
    if let Some(c) = codes.iter().filter(|c| (200..300).contains(*c)).min() {
        return Some(*c);
    }
    if responses.keys().any(|k| k.eq_ignore_ascii_case("2XX")) || responses.contains_key("default")
    {
        return Some(200);
    }
    if let Some(c) = codes
        .iter()
        .filter(|c| (100..200).contains(*c) || (300..400).contains(*c))
        .min()
    {
        return Some(*c);
    }
    builder.summary.warn(format!(
        "{} {path} declares only error responses; no status assertion",
        method.to_ascii_uppercase()
    ));
    None
}

fn media_list(v: Option<&Value>) -> Option<Vec<String>> {
    let list: Vec<String> = v?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    (!list.is_empty()).then_some(list)
}

fn is_json(media: &str) -> bool {
    let m = media
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    m == "application/json" || m.ends_with("+json") || m == "text/json" || m.ends_with("/json")
}

/// A value as the `simple` style writes it: arrays comma-joined, objects `k,v,k,v`.
fn simple(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(simple).collect::<Vec<_>>().join(","),
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| [k.clone(), simple(v)])
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// Query pairs for one parameter, after its `style` and `explode`.
fn query_pairs(
    name: &str,
    value: &Value,
    style: &str,
    explode: bool,
    out: &mut Vec<(String, String)>,
) {
    match value {
        Value::Array(items) if explode => {
            for item in items {
                out.push((name.to_string(), simple(item)));
            }
        }
        Value::Array(items) => {
            let sep = match style {
                "spaceDelimited" => " ",
                "pipeDelimited" => "|",
                _ => ",",
            };
            let joined = items.iter().map(simple).collect::<Vec<_>>().join(sep);
            out.push((name.to_string(), joined));
        }
        Value::Object(map) if style == "deepObject" => {
            for (k, v) in map {
                out.push((format!("{name}[{k}]"), simple(v)));
            }
        }
        Value::Object(map) if explode => {
            for (k, v) in map {
                out.push((k.clone(), simple(v)));
            }
        }
        other => out.push((name.to_string(), simple(other))),
    }
}

/// A multipart part for a field.
fn part(name: &str, value: &Value, file: bool) -> Value {
    let mut part = Map::new();
    part.insert("name".into(), Value::String(name.to_string()));
    part.insert("value".into(), Value::String(simple(value)));
    if file {
        part.insert("filename".into(), Value::String(format!("{name}.bin")));
    }
    Value::Object(part)
}

/// Percent-encoding of a path segment or query component: all but unreserved characters.
fn escape(s: &str) -> String {
    ld_plan::encode::encode(s, ld_plan::encode::UNRESERVED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(spec: &str, options: &ImportOptions) -> Vec<ld_plan::Task> {
        let import = import("spec.yaml", spec.as_bytes(), options).expect("imports");
        let action = import.plan().actions.last().expect("action").clone();
        action
            .as_start_test("/0")
            .expect("start")
            .tasks
            .expect("tasks")
            .to_list()
    }

    const PETS: &str = r#"
openapi: 3.0.3
info: {title: Pets, version: "1"}
servers:
  - url: https://{region}.pets.test/v1
    variables:
      region: {default: eu}
security:
  - key: []
paths:
  /pets/{petId}:
    parameters:
      - {name: petId, in: path, required: true, schema: {type: integer, minimum: 1}}
    get:
      operationId: getPet
      tags: [pets]
      parameters:
        - {name: verbose, in: query, schema: {type: boolean}}
        - {name: fields, in: query, schema: {type: array, items: {type: string}}, example: [a, b]}
      responses:
        "404": {description: missing}
        "200": {description: ok}
        "201": {description: ok}
    delete:
      deprecated: true
      responses: {"204": {description: gone}}
  /pets:
    post:
      operationId: addPet
      tags: [admin]
      security: [{bearer: []}]
      requestBody:
        content:
          application/xml: {schema: {$ref: '#/components/schemas/Pet'}}
          application/json: {schema: {$ref: '#/components/schemas/Pet'}}
      responses: {default: {description: x}}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-Key}
    bearer: {type: http, scheme: bearer}
  schemas:
    Pet:
      type: object
      required: [name]
      properties:
        id: {type: integer, readOnly: true}
        name: {type: string, example: Rex}
"#;

    #[test]
    fn warnings_name_the_missing_members() {
        let warnings = |spec: &str| -> Vec<String> {
            // A server given, so that only what the description lacks is warned about.
            let options = ImportOptions {
                server: Some("http://api.test".into()),
                ..ImportOptions::default()
            };
            let import = import("spec.yaml", spec.as_bytes(), &options).expect("imports");
            // The server warning is left out: these descriptions name none.
            import
                .summary
                .warnings
                .into_keys()
                .filter(|w| w.starts_with('/'))
                .collect()
        };
        let get = "paths: {/a: {get: {responses: {'200': {description: ok}}}}}\n";
        let no_info = warnings(&format!("openapi: 3.0.0\n{get}"));
        assert_eq!(
            no_info,
            ["/info is missing: a description needs info with a title and a version"]
        );
        let no_title = warnings(&format!("openapi: 3.0.0\ninfo: {{version: '1'}}\n{get}"));
        assert_eq!(no_title, ["/info/title is missing"]);
        let no_version = warnings(&format!("swagger: '2.0'\ninfo: {{title: T}}\n{get}"));
        assert_eq!(no_version, ["/info/version is missing"]);
        let both = warnings(&format!("openapi: 3.0.0\ninfo: {{title: 3}}\n{get}"));
        assert_eq!(
            both,
            ["/info/title is not a string", "/info/version is missing"]
        );
        let no_paths = warnings("openapi: 3.1.0\ninfo: {title: T, version: '1'}\n");
        assert_eq!(
            no_paths,
            ["/paths is missing: the description has no operation to import"]
        );
        let empty = warnings("openapi: 3.1.0\ninfo: {title: T, version: '1'}\npaths: {}\n");
        assert_eq!(
            empty,
            ["/paths is empty: the description has no operation to import"]
        );
        assert!(
            warnings(&format!(
                "openapi: 3.0.0\ninfo: {{title: T, version: '1'}}\n{get}"
            ))
            .is_empty()
        );
    }

    #[test]
    fn operations_become_tasks() {
        let t = tasks(PETS, &ImportOptions::default());
        assert_eq!(t.len(), 2, "the deprecated DELETE is skipped");
        assert_eq!(
            t[0].request_url.as_deref(),
            Some("https://eu.pets.test/v1/pets/1?fields=a&fields=b")
        );
        assert_eq!(t[0].name.as_deref(), Some("GET /pets/{petId}"));
        assert_eq!(
            t[0].assertions.as_ref().expect("a")[0].value,
            Some(200.into())
        );
        let h = t[0].headers.as_ref().expect("headers");
        assert_eq!(h["X-Key"], "${env.KEY}");
        assert_eq!(t[1].json, Some(serde_json::json!({"name": "Rex"})));
        let h = t[1].headers.as_ref().expect("headers");
        assert_eq!(h["Authorization"], "Bearer ${env.BEARER}");
        assert_eq!(h["Content-Type"], "application/json");
    }

    #[test]
    fn server_tags_and_deprecated_options() {
        let options = ImportOptions {
            server: Some("http://127.0.0.1:9/".into()),
            include_deprecated: true,
            filter: crate::Filter::default().with_tags(&["PETS".to_string()]),
            ..ImportOptions::default()
        };
        let t = tasks(PETS, &options);
        let urls: Vec<&str> = t.iter().filter_map(|t| t.request_url.as_deref()).collect();
        assert_eq!(urls, ["http://127.0.0.1:9/pets/1?fields=a&fields=b"]);
        let options = ImportOptions {
            include_deprecated: true,
            filter: crate::Filter::new(&[], &["^addPet$".into()], false).expect("re"),
            ..ImportOptions::default()
        };
        let t = tasks(PETS, &options);
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].method.as_deref(), Some("delete"));
        assert_eq!(
            t[1].assertions.as_ref().expect("a")[0].value,
            Some(204.into())
        );
    }

    #[test]
    fn swagger_two() {
        let spec = r#"{"swagger": "2.0", "host": "api.test", "basePath": "/v2", "schemes": ["http", "https"],
          "paths": {"/users": {"post": {"consumes": ["application/x-www-form-urlencoded"],
            "parameters": [{"name": "name", "in": "formData", "type": "string", "required": true},
                           {"name": "age", "in": "formData", "type": "integer", "required": true, "minimum": 18}],
            "responses": {"201": {"description": "created"}}}}}}"#;
        let t = tasks(spec, &ImportOptions::default());
        assert_eq!(
            t[0].request_url.as_deref(),
            Some("https://api.test/v2/users")
        );
        assert_eq!(
            t[0].data,
            Some(serde_json::json!({"name": "string", "age": "18"}))
        );
    }

    #[test]
    fn versions_and_shapes_are_checked() {
        let o = ImportOptions::default();
        for (text, what) in [
            ("swagger: '1.2'\n", "not supported"),
            ("openapi: 4.0.0\n", "not supported"),
            ("- a\n", "not an OpenAPI description"),
            ("openapi: 3.0.0\npaths: [1]\n", "/paths"),
        ] {
            let err = import("x.yaml", text.as_bytes(), &o).expect_err(text);
            assert!(err.to_string().contains(what), "{err}");
        }
    }

    #[test]
    fn detection() {
        assert!(looks_like_openapi("openapi: 3.1.0\ninfo: {}"));
        assert!(looks_like_openapi("{\n  \"swagger\": \"2.0\""));
        assert!(!looks_like_openapi("curl http://a/"));
    }
}
