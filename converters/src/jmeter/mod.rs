//! The JMeter importer: `.jmx` test plans, one task per enabled HTTP sampler.
//!
//! A plan is a tree written as pairs: an element, then the `hashTree` holding its children.
//! Configuration elements apply to every sampler in their scope (their `hashTree` level and
//! below), whatever their order there, so each level is read in two passes: configuration
//! first (HTTP request defaults, header managers, CSV data sets, user-defined variables,
//! constant timers, extractors, assertions), then samplers and controllers. Thread groups set
//! users, spawn rate and duration; CSV data sets become `LD_register_csv_sources`; variables
//! `LD_register_variables`. JMeter's `${name}` becomes `${var.name}` or `${csv.SOURCE.name}`;
//! after a task that extracts `name`, always `${var.name}`. Extractors and assertions are read
//! in [`checks`]. Loop controllers with a fixed count repeat their requests (at most
//! [`MAX_LOOP_TASKS`] tasks a loop); if controllers with a simple comparison become `run_if`;
//! other logic controllers are flattened and reported; elements with no equivalent are counted.

mod checks;

use std::collections::{HashMap, HashSet};

use regex::Regex;
use roxmltree::Node;
use serde_json::{Map, Value};

use crate::output::{Body, Builder, Extras, Request};
use crate::{Error, Import, ImportOptions, Result};

/// True when the start of a text looks like a JMeter plan.
pub(crate) fn looks_like_jmeter(head: &str) -> bool {
    head.contains("<jmeterTestPlan")
}

/// Imports a JMeter plan read from `name`.
pub fn import(name: &str, bytes: &[u8], options: &ImportOptions) -> Result<Import> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let doc = roxmltree::Document::parse(text).map_err(|e| {
        let pos = e.pos();
        Error::Syntax(ld_plan::render_source_error(
            name,
            text,
            ld_plan::SourcePos {
                line: pos.row as usize,
                column: pos.col as usize,
            },
            &format!("not valid XML: {e}"),
        ))
    })?;
    let root = doc.root_element();
    if root.tag_name().name() != "jmeterTestPlan" {
        return Err(Error::Invalid(format!(
            "{name}: the root element is <{}>; expected a JMeter plan (<jmeterTestPlan>)",
            root.tag_name().name()
        )));
    }
    let Some(tree) = root.children().find(|n| n.has_tag_name("hashTree")) else {
        return Err(Error::Invalid(format!(
            "{name}: <jmeterTestPlan> holds no <hashTree>: the plan is empty or not a JMeter plan"
        )));
    };
    let mut reader = Reader {
        builder: Builder::new(options),
        variables: HashMap::new(),
        csv_columns: HashMap::new(),
        thread_groups: 0,
        placeholder: Regex::new(r"\$\{([^{}]*)\}").expect("constant pattern"),
        variable_order: Vec::new(),
        extracted: HashSet::new(),
    };
    reader.level(tree, &Scope::default(), 0);
    if reader.thread_groups > 1 {
        reader.builder.summary.warn(format!(
            "{} thread groups were merged into one sequence; users, spawn rate and duration come from the first",
            reader.thread_groups
        ));
    }
    for key in std::mem::take(&mut reader.variable_order) {
        if let Some(value) = reader.variables.get(&key).cloned() {
            let value = reader.convert(&value);
            reader.builder.variable(&key, Value::String(value));
        }
    }
    Ok(reader.builder.finish())
}

/// What applies to the samplers of one level of the tree.
#[derive(Debug, Clone, Default)]
struct Scope {
    protocol: Option<String>,
    domain: Option<String>,
    port: Option<String>,
    path: Option<String>,
    headers: Vec<(String, String)>,
    /// A constant timer's delay, seconds.
    delay: Option<f64>,
    status: Option<u16>,
    /// Checks beyond the status, in the order met.
    checks: Vec<Value>,
    /// Extractors by the variable each sets; a nearer one for the same variable wins.
    extract: Vec<(String, Value)>,
    /// The `run_if` predicate of an enclosing if controller.
    run_if: Option<Value>,
}

/// The most tasks one loop controller repeats its requests into.
const MAX_LOOP_TASKS: usize = 1000;

struct Reader<'a> {
    builder: Builder<'a>,
    /// User-defined variables, raw as written.
    variables: HashMap<String, String>,
    variable_order: Vec<String>,
    /// CSV column → source name.
    csv_columns: HashMap<String, String>,
    thread_groups: usize,
    placeholder: Regex,
    /// Variables an extractor of a task already written sets.
    extracted: HashSet<String>,
}

/// The `*Prop` child of an element whose `name` attribute is `prop`.
fn prop<'a, 'i>(node: Node<'a, 'i>, prop: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.attribute("name") == Some(prop))
}

fn text_prop(node: Node<'_, '_>, name: &str) -> Option<String> {
    prop(node, name)
        .map(|p| p.text().unwrap_or_default().to_string())
        .filter(|s| !s.is_empty())
}

fn bool_prop(node: Node<'_, '_>, name: &str) -> Option<bool> {
    text_prop(node, name).map(|s| s.trim().eq_ignore_ascii_case("true"))
}

fn enabled(node: Node<'_, '_>) -> bool {
    node.attribute("enabled") != Some("false")
}

/// The elements of a `hashTree` with the `hashTree` that follows each.
fn pairs<'a, 'i>(tree: Node<'a, 'i>) -> Vec<(Node<'a, 'i>, Option<Node<'a, 'i>>)> {
    let elements: Vec<Node<'a, 'i>> = tree.children().filter(Node::is_element).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < elements.len() {
        let element = elements[i];
        if element.has_tag_name("hashTree") {
            i += 1;
            continue;
        }
        let children = elements
            .get(i + 1)
            .copied()
            .filter(|n| n.has_tag_name("hashTree"));
        out.push((element, children));
        i += if children.is_some() { 2 } else { 1 };
    }
    out
}

/// `Arguments`-like collections: `(name, value)` pairs.
fn arguments(node: Node<'_, '_>) -> Vec<(String, String, bool)> {
    let Some(collection) = node.descendants().find(|c| {
        c.has_tag_name("collectionProp") && c.attribute("name") == Some("Arguments.arguments")
    }) else {
        return Vec::new();
    };
    collection
        .children()
        .filter(|c| c.has_tag_name("elementProp"))
        .map(|arg| {
            let name = text_prop(arg, "Argument.name").unwrap_or_default();
            let value = text_prop(arg, "Argument.value").unwrap_or_default();
            let encode = bool_prop(arg, "HTTPArgument.always_encode").unwrap_or(false);
            (name, value, encode)
        })
        .collect()
}

impl Reader<'_> {
    /// Reads one `hashTree` level: configuration first, then everything else.
    fn level(&mut self, tree: Node<'_, '_>, parent: &Scope, depth: usize) {
        if depth > 64 {
            self.builder
                .summary
                .warn("elements nested deeper than 64 levels were skipped");
            return;
        }
        let items = pairs(tree);
        let mut scope = parent.clone();
        for (element, _) in items.iter().filter(|(e, _)| enabled(*e)) {
            self.configure(*element, &mut scope);
        }
        for (element, children) in items.iter().filter(|(e, _)| enabled(*e)) {
            self.element(*element, *children, &scope, depth);
        }
    }

    /// Applies a configuration element to `scope`; other elements are left for `element`.
    fn configure(&mut self, element: Node<'_, '_>, scope: &mut Scope) {
        let class = element.tag_name().name();
        match class {
            "ConfigTestElement" => {
                // HTTP Request Defaults: only set fields count.
                if let Some(v) = text_prop(element, "HTTPSampler.protocol") {
                    scope.protocol = Some(v);
                }
                if let Some(v) = text_prop(element, "HTTPSampler.domain") {
                    scope.domain = Some(v);
                }
                if let Some(v) = text_prop(element, "HTTPSampler.port") {
                    scope.port = Some(v);
                }
                if let Some(v) = text_prop(element, "HTTPSampler.path") {
                    scope.path = Some(v);
                }
            }
            "HeaderManager" => {
                for header in element.descendants().filter(|c| {
                    c.has_tag_name("elementProp") && c.attribute("elementType") == Some("Header")
                }) {
                    let name = text_prop(header, "Header.name").unwrap_or_default();
                    let value = text_prop(header, "Header.value").unwrap_or_default();
                    if name.is_empty() {
                        continue;
                    }
                    // A nearer header manager wins for the same name, as in JMeter.
                    scope
                        .headers
                        .retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
                    scope.headers.push((name, value));
                }
            }
            "Arguments" => {
                for (name, value, _) in arguments(element) {
                    self.define(&name, &value);
                }
            }
            "TestPlan" => {
                if let Some(vars) = prop(element, "TestPlan.user_defined_variables") {
                    for (name, value, _) in arguments(vars) {
                        self.define(&name, &value);
                    }
                }
            }
            "CSVDataSet" => self.csv(element),
            "ConstantTimer" => {
                let delay = text_prop(element, "ConstantTimer.delay").unwrap_or_default();
                match self.number(&delay) {
                    Some(ms) => scope.delay = Some(ms / 1000.0),
                    None => self.builder.summary.warn(format!(
                        "constant timer delay {delay:?} is not a number; ignored"
                    )),
                }
            }
            "UniformRandomTimer" | "GaussianRandomTimer" | "PoissonRandomTimer" => {
                let delay = text_prop(element, "ConstantTimer.delay").unwrap_or_default();
                if let Some(ms) = self.number(&delay) {
                    scope.delay = Some(ms / 1000.0);
                }
                self.builder.summary.warn(format!(
                    "{class}: only its constant delay is kept as think time"
                ));
            }
            "ResponseAssertion" => self.response_assertion(element, scope),
            "JSONPathAssertion" => self.json_path_assertion(element, scope),
            "DurationAssertion" => self.duration_assertion(element, scope),
            "SizeAssertion" => self.size_assertion(element),
            "JSONPostProcessor" => self.json_extractor(element, scope),
            "RegexExtractor" => self.regex_extractor(element, scope),
            _ => {}
        }
    }

    fn define(&mut self, name: &str, value: &str) {
        if name.is_empty() {
            return;
        }
        if !self.variables.contains_key(name) {
            self.variable_order.push(name.to_string());
        }
        self.variables.insert(name.to_string(), value.to_string());
    }

    fn csv(&mut self, element: Node<'_, '_>) {
        let file = text_prop(element, "filename").unwrap_or_default();
        let columns = text_prop(element, "variableNames").unwrap_or_default();
        let delimiter = text_prop(element, "delimiter").unwrap_or_else(|| ",".into());
        let ignore_first = bool_prop(element, "ignoreFirstLine").unwrap_or(false);
        let recycle = bool_prop(element, "recycle").unwrap_or(true);
        let base = element
            .attribute("testname")
            .filter(|n| !n.is_empty() && *n != "CSV Data Set Config")
            .map(str::to_string)
            .unwrap_or_else(|| {
                let last = file.rsplit(['/', '\\']).next().unwrap_or(&file);
                last.split('.').next().unwrap_or("data").to_string()
            });
        let source: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let source = if source.is_empty() {
            "data".to_string()
        } else {
            source
        };
        self.builder.csv_source(&source, &file, recycle);
        if columns.is_empty() {
            self.builder.summary.warn(format!(
                "CSV data set {source}: columns are named by the file's first line, as LoadDensity reads them"
            ));
        } else {
            let names: Vec<String> = columns
                .split(delimiter.as_str())
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect();
            for n in &names {
                self.csv_columns.insert(n.clone(), source.clone());
            }
            if !ignore_first {
                self.builder.summary.warn(format!(
                    "CSV data set {source}: LoadDensity reads column names from the file's first line; add the line `{}` to {file}",
                    names.join(",")
                ));
            }
        }
        if delimiter != "," {
            self.builder.summary.warn(format!(
                "CSV data set {source}: delimiter {delimiter:?}; LoadDensity reads commas"
            ));
        }
    }

    fn element(
        &mut self,
        element: Node<'_, '_>,
        children: Option<Node<'_, '_>>,
        scope: &Scope,
        depth: usize,
    ) {
        let class = element.tag_name().name();
        match class {
            "LoopController" => self.loop_controller(element, children, scope, depth),
            "IfController" => self.if_controller(element, children, scope, depth),
            "WhileController" => {
                let condition = text_prop(element, "WhileController.condition").unwrap_or_default();
                self.builder.summary.warn(format!(
                    "while controller {}: condition {condition:?} is not repeated on; its requests run once each, in order",
                    checks::label(element)
                ));
                if let Some(c) = children {
                    self.level(c, scope, depth + 1);
                }
            }
            "TestPlan" | "GenericController" | "TransactionController" | "OnceOnlyController" => {
                if let Some(c) = children {
                    self.level(c, scope, depth + 1);
                }
            }
            "ThreadGroup"
            | "SetupThreadGroup"
            | "PostThreadGroup"
            | "kg.apc.jmeter.threads.UltimateThreadGroup"
            | "com.blazemeter.jmeter.threads.concurrency.ConcurrencyThreadGroup" => {
                self.thread_group(element);
                if let Some(c) = children {
                    self.level(c, scope, depth + 1);
                }
            }
            "ForeachController"
            | "RandomController"
            | "RandomOrderController"
            | "InterleaveControl"
            | "ThroughputController"
            | "SwitchController"
            | "RunTime"
            | "CriticalSectionController" => {
                self.builder.summary.warn(format!(
                    "{class}: flattened; its requests run once each, in order"
                ));
                if let Some(c) = children {
                    self.level(c, scope, depth + 1);
                }
            }
            "HTTPSamplerProxy" | "HTTPSampler" => self.sampler(element, children, scope),
            // Configuration, read in the first pass; managers handled by the client itself.
            "ConfigTestElement"
            | "HeaderManager"
            | "Arguments"
            | "CSVDataSet"
            | "ConstantTimer"
            | "UniformRandomTimer"
            | "GaussianRandomTimer"
            | "PoissonRandomTimer"
            | "ResponseAssertion"
            | "JSONPathAssertion"
            | "DurationAssertion"
            | "SizeAssertion"
            | "JSONPostProcessor"
            | "RegexExtractor"
            | "CookieManager"
            | "CacheManager"
            | "DNSCacheManager" => {}
            "ResultCollector"
            | "ViewResultsFullVisualizer"
            | "SummaryReport"
            | "BackendListener" => {}
            other => {
                self.builder
                    .summary
                    .warn(format!("JMeter element {other} has no equivalent; skipped"));
            }
        }
    }

    /// A loop controller: a fixed count repeats its requests, at most [`MAX_LOOP_TASKS`]
    /// tasks; any other count runs them once, reported.
    fn loop_controller(
        &mut self,
        element: Node<'_, '_>,
        children: Option<Node<'_, '_>>,
        scope: &Scope,
        depth: usize,
    ) {
        let Some(c) = children else { return };
        let label = checks::label(element);
        let text = text_prop(element, "LoopController.loops").unwrap_or_else(|| "1".into());
        let loops = match self.number(&text) {
            Some(n) if n >= 1.0 && n.fract() == 0.0 => n as usize,
            Some(0.0) => {
                self.builder.summary.warn(format!(
                    "loop controller {label}: 0 loops; its requests are left out"
                ));
                return;
            }
            _ => {
                self.builder.summary.warn(format!(
                    "loop controller {label}: loop count {text:?} is not a fixed count; its requests run once each"
                ));
                1
            }
        };
        let before = self.builder.summary.kept;
        self.level(c, scope, depth + 1);
        let per_loop = self.builder.summary.kept - before;
        if per_loop == 0 || loops == 1 {
            return;
        }
        let times = loops.min((MAX_LOOP_TASKS / per_loop).max(1));
        for _ in 1..times {
            self.level(c, scope, depth + 1);
        }
        if times < loops {
            self.builder.summary.warn(format!(
                "loop controller {label}: {loops} loops of {per_loop} requests were cut to {times} loops ({MAX_LOOP_TASKS} tasks at most)"
            ));
        }
    }

    /// An if controller: its requests run when its condition holds (`run_if`), or, when the
    /// condition is not one the plan can say, every time, reported.
    fn if_controller(
        &mut self,
        element: Node<'_, '_>,
        children: Option<Node<'_, '_>>,
        scope: &Scope,
        depth: usize,
    ) {
        let Some(c) = children else { return };
        let label = checks::label(element);
        let condition = text_prop(element, "IfController.condition").unwrap_or_default();
        let mut inner = scope.clone();
        match self.condition(&condition) {
            Some(Value::Bool(true)) => {}
            Some(_) if scope.run_if.is_some() => self.builder.summary.warn(format!(
                "if controller {label}: condition {condition:?} is inside another if controller; only the outer condition is kept"
            )),
            Some(p) => inner.run_if = Some(p),
            None => self.builder.summary.warn(format!(
                "if controller {label}: condition {condition:?} has no equivalent; its requests run every time"
            )),
        }
        self.level(c, &inner, depth + 1);
    }

    /// A `run_if` predicate for an if controller's condition: `${flag}`, `true`, `false`, or
    /// one comparison (`"${a}" == "x"`, `!=`), bare or in `${__jexl3(...)}`,
    /// `${__groovy(...)}` or `${__javaScript(...)}`.
    fn condition(&mut self, condition: &str) -> Option<Value> {
        let mut text = condition.trim();
        for function in ["__jexl3(", "__jexl2(", "__groovy(", "__javaScript("] {
            if let Some(rest) = text
                .strip_prefix("${")
                .and_then(|t| t.strip_prefix(function))
                .and_then(|t| t.strip_suffix(")}"))
            {
                text = rest.trim().trim_end_matches(',').trim();
                break;
            }
        }
        match text {
            "true" => return Some(Value::Bool(true)),
            "false" => return Some(Value::Bool(false)),
            _ => {}
        }
        if self
            .placeholder
            .find(text)
            .is_some_and(|m| m.start() == 0 && m.end() == text.len())
        {
            return Some(Value::String(self.convert(text)));
        }
        let comparison = Regex::new(
            r#"^(?:"([^"]*)"|'([^']*)'|(\$\{[^{}]+\}))\s*(==|!=|===|!==|\.equals\()\s*(?:"([^"]*)"|'([^']*)'|(-?[0-9]+(?:\.[0-9]+)?))\s*\)?$"#,
        )
        .ok()?;
        let caps = comparison.captures(text)?;
        let left = caps.get(1).or(caps.get(2)).or(caps.get(3))?.as_str();
        let right = caps.get(5).or(caps.get(6)).or(caps.get(7))?.as_str();
        let op = caps.get(4)?.as_str();
        if !left.contains("${") || (op == ".equals(" && !text.ends_with(')')) {
            return None;
        }
        let name = if op.starts_with('!') {
            "not_equals"
        } else {
            "equals"
        };
        let (left, right) = (self.convert(left), self.convert(right));
        Some(serde_json::json!({ name: [left, right] }))
    }

    fn thread_group(&mut self, element: Node<'_, '_>) {
        self.thread_groups += 1;
        if self.thread_groups > 1 {
            return;
        }
        let threads = text_prop(element, "ThreadGroup.num_threads").and_then(|t| self.number(&t));
        let ramp = text_prop(element, "ThreadGroup.ramp_time").and_then(|t| self.number(&t));
        let scheduler = bool_prop(element, "ThreadGroup.scheduler").unwrap_or(false);
        let duration = text_prop(element, "ThreadGroup.duration").and_then(|t| self.number(&t));
        let loops = element
            .descendants()
            .find(|c| c.attribute("name") == Some("LoopController.loops"))
            .and_then(|c| c.text())
            .and_then(|t| self.number(t));
        let users = threads.filter(|t| *t >= 1.0).map(|t| t as u64);
        let spawn_rate = match (users, ramp) {
            (Some(u), Some(r)) if r > 0.0 => Some(((u as f64 / r) * 1000.0).round() / 1000.0),
            (Some(u), _) => Some(u as f64),
            _ => None,
        };
        let duration = if scheduler {
            duration.filter(|d| *d > 0.0).map(|d| Some(d as u64))
        } else {
            if loops.is_some_and(|l| l >= 0.0) {
                self.builder.summary.warn(format!(
                    "thread group loop count {} is not kept: the plan runs for a duration",
                    loops.unwrap_or_default()
                ));
            }
            None
        };
        self.builder.load(users, spawn_rate, duration);
    }

    fn sampler(&mut self, element: Node<'_, '_>, children: Option<Node<'_, '_>>, parent: &Scope) {
        self.builder.summary.read += 1;
        // The sampler's own children (header managers, assertions, timers) apply to it only.
        let mut scope = parent.clone();
        if let Some(c) = children {
            for (child, _) in pairs(c).into_iter().filter(|(e, _)| enabled(*e)) {
                self.configure(child, &mut scope);
                let class = child.tag_name().name();
                if matches!(
                    class,
                    "XPathExtractor"
                        | "BoundaryExtractor"
                        | "JSR223PostProcessor"
                        | "JSR223PreProcessor"
                        | "BeanShellPreProcessor"
                        | "BeanShellPostProcessor"
                        | "JSR223Assertion"
                        | "XPathAssertion"
                ) {
                    self.builder
                        .summary
                        .warn(format!("JMeter element {class} has no equivalent; skipped"));
                }
            }
        }
        let name = element.attribute("testname").unwrap_or("").to_string();
        let pick =
            |own: Option<String>, inherited: &Option<String>| own.or_else(|| inherited.clone());
        let protocol = pick(text_prop(element, "HTTPSampler.protocol"), &scope.protocol)
            .unwrap_or_else(|| "http".into());
        let domain = pick(text_prop(element, "HTTPSampler.domain"), &scope.domain);
        let port = pick(text_prop(element, "HTTPSampler.port"), &scope.port);
        let path = pick(text_prop(element, "HTTPSampler.path"), &scope.path).unwrap_or_default();
        let method = text_prop(element, "HTTPSampler.method")
            .unwrap_or_else(|| "GET".into())
            .to_ascii_uppercase();
        let mut url = if path.starts_with("http://") || path.starts_with("https://") {
            path.clone()
        } else {
            let Some(domain) = domain else {
                self.builder
                    .summary
                    .drop("HTTP samplers without a server name (and no HTTP Request Defaults)");
                return;
            };
            let port = port
                .filter(|p| {
                    let p = p.trim();
                    !(p.is_empty()
                        || (protocol.eq_ignore_ascii_case("http") && p == "80")
                        || (protocol.eq_ignore_ascii_case("https") && p == "443"))
                })
                .map(|p| format!(":{}", p.trim()))
                .unwrap_or_default();
            let path = if path.is_empty() || path.starts_with('/') {
                path.clone()
            } else {
                format!("/{path}")
            };
            format!("{}://{domain}{port}{path}", protocol.to_ascii_lowercase())
        };
        let mut headers = scope.headers.clone();
        let args = prop(element, "HTTPsampler.Arguments")
            .map(arguments)
            .unwrap_or_default();
        let raw = bool_prop(element, "HTTPSampler.postBodyRaw").unwrap_or(false);
        let multipart = bool_prop(element, "HTTPSampler.DO_MULTIPART_POST").unwrap_or(false);
        let has_files = element
            .descendants()
            .any(|c| c.attribute("elementType") == Some("HTTPFileArg"));
        if has_files {
            self.builder
                .summary
                .warn("file uploads of HTTP samplers are not embedded; those parts are left out");
        }
        let body_method = matches!(method.as_str(), "POST" | "PUT" | "PATCH");
        let mut body = Body::None;
        if raw {
            let text: String = args.iter().map(|(_, v, _)| v.as_str()).collect();
            let text = self.convert(&text);
            let json_type = headers.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("content-type") && v.to_ascii_lowercase().contains("json")
            });
            body = match serde_json::from_str::<Value>(&text) {
                Ok(v) if json_type => Body::Json(v),
                _ => Body::Text(text),
            };
        } else if !args.is_empty() && (body_method || multipart) {
            if multipart {
                body = Body::Multipart(
                    args.iter()
                        .map(|(k, v, _)| {
                            let mut part = Map::new();
                            part.insert("name".into(), Value::String(self.convert(k)));
                            part.insert("value".into(), Value::String(self.convert(v)));
                            Value::Object(part)
                        })
                        .collect(),
                );
            } else {
                let mut fields = Map::new();
                for (k, v, _) in &args {
                    fields.insert(self.convert(k), Value::String(self.convert(v)));
                }
                if !headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                {
                    headers.push((
                        "Content-Type".into(),
                        "application/x-www-form-urlencoded".into(),
                    ));
                }
                body = Body::Form(fields);
            }
        } else if !args.is_empty() {
            let query: Vec<String> = args
                .iter()
                .map(|(k, v, encode)| {
                    let (k, v) = (self.convert(k), self.convert(v));
                    if *encode {
                        format!("{}={}", escape(&k), escape(&v))
                    } else {
                        format!("{k}={v}")
                    }
                })
                .collect();
            let sep = if url.contains('?') { '&' } else { '?' };
            url = format!("{url}{sep}{}", query.join("&"));
        }
        let url = self.convert(&url);
        let headers = headers
            .into_iter()
            .map(|(k, v)| (self.convert(&k), self.convert(&v)))
            .collect();
        if let Some(reason) = self
            .builder
            .filter()
            .check_labels(&url, &[name.as_str()], &[])
        {
            self.builder.summary.drop(reason);
            return;
        }
        let redirects = bool_prop(element, "HTTPSampler.follow_redirects")
            .or(bool_prop(element, "HTTPSampler.auto_redirects"));
        let mut extras = Extras {
            assertions: scope.checks.clone(),
            extract: scope.extract.iter().map(|(_, e)| e.clone()).collect(),
            ..Extras::default()
        };
        if let Some(p) = &scope.run_if {
            extras.members.push(("run_if", p.clone()));
        }
        self.builder.push(Request {
            name: Some(if name.is_empty() {
                format!("{method} {url}")
            } else {
                name
            }),
            method,
            url,
            headers,
            body,
            status: scope.status,
            think_time: scope.delay,
            allow_redirects: redirects,
            extras,
            ..Request::default()
        });
        // Uses after this task read what it extracted.
        for (name, _) in &scope.extract {
            self.extracted.insert(name.clone());
        }
    }

    /// A number after JMeter's `${__P(name,default)}` and variables are resolved.
    fn number(&self, text: &str) -> Option<f64> {
        let resolved = self.resolve_raw(text, 0);
        resolved.trim().parse::<f64>().ok()
    }

    /// `${name}` → the variable's raw value; `${__P(name,default)}` → the default.
    fn resolve_raw(&self, text: &str, depth: usize) -> String {
        if depth > 8 || !text.contains("${") {
            return text.to_string();
        }
        let out = self
            .placeholder
            .replace_all(text, |caps: &regex::Captures<'_>| {
                let inner = caps.get(1).map_or("", |m| m.as_str());
                if let Some(args) = property_args(inner) {
                    return args.1.unwrap_or_default();
                }
                self.variables
                    .get(inner)
                    .cloned()
                    .unwrap_or_else(|| caps.get(0).map_or("", |m| m.as_str()).to_string())
            })
            .into_owned();
        if out == text {
            out
        } else {
            self.resolve_raw(&out, depth + 1)
        }
    }

    /// JMeter expressions in a value → placeholders the plan resolves.
    fn convert(&mut self, text: &str) -> String {
        if !text.contains("${") {
            return text.to_string();
        }
        let mut warnings = Vec::new();
        let out = self
            .placeholder
            .replace_all(text, |caps: &regex::Captures<'_>| {
                let whole = caps.get(0).map_or("", |m| m.as_str());
                let inner = caps.get(1).map_or("", |m| m.as_str()).trim();
                // Placeholders of the plan's own (converted earlier) stay as they are.
                let converted = ["var.", "env.", "csv.", "faker.", "session.", "randint("]
                    .iter()
                    .any(|p| inner.starts_with(p))
                    || inner == "uuid()"
                    || inner == "now()";
                if converted {
                    return whole.to_string();
                }
                if let Some((name, default)) = property_args(inner) {
                    // A property given on JMeter's command line: its default, or an
                    // environment variable of that name.
                    return match default {
                        Some(d) => d,
                        None => format!("${{env.{}}}", crate::secrets::env_name(&name)),
                    };
                }
                if let Some(function) = inner.strip_prefix("__") {
                    let (fname, args) = function.split_once('(').unwrap_or((function, ")"));
                    let args: Vec<&str> = args.trim_end_matches(')').split(',').map(str::trim).collect();
                    return match fname {
                        "UUID" => "${uuid()}".to_string(),
                        "time" if args.iter().all(|a| a.is_empty()) => "${now()}".to_string(),
                        "Random" if args.len() >= 2 => {
                            format!("${{randint({},{})}}", args[0], args[1])
                        }
                        _ => {
                            warnings.push(format!(
                                "JMeter function __{fname} has no equivalent; left as written"
                            ));
                            whole.to_string()
                        }
                    };
                }
                if self.extracted.contains(inner) {
                    return format!("${{var.{inner}}}");
                }
                if let Some(source) = self.csv_columns.get(inner) {
                    return format!("${{csv.{source}.{inner}}}");
                }
                if self.variables.contains_key(inner) {
                    return format!("${{var.{inner}}}");
                }
                warnings.push(format!(
                    "JMeter variable ${{{inner}}} is not defined in the plan (set by an extractor or script?); it reads ${{var.{inner}}}"
                ));
                format!("${{var.{inner}}}")
            })
            .into_owned();
        for w in warnings {
            self.builder.summary.warn(w);
        }
        out
    }
}

/// A number of milliseconds as the plan writes it: an integer when whole.
fn integer(v: f64) -> Value {
    if v.fract() == 0.0 && v >= 0.0 && v < u64::MAX as f64 {
        Value::from(v as u64)
    } else {
        serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
    }
}

/// `__P(name)` / `__P(name,default)` / `__property(...)`: the name and default.
fn property_args(inner: &str) -> Option<(String, Option<String>)> {
    let rest = inner
        .strip_prefix("__P(")
        .or_else(|| inner.strip_prefix("__property("))?;
    let rest = rest.strip_suffix(')')?;
    let mut parts = rest.splitn(2, ',');
    let name = parts.next().unwrap_or_default().trim().to_string();
    let default = parts.next().map(|d| d.trim().to_string());
    Some((name, default))
}

/// Percent-encoding of a query component (`HTTPArgument.always_encode`), as JMeter's
/// `URLEncoder` writes it (`*` kept, `~` encoded, a space as `+`).
fn escape(s: &str) -> String {
    ld_plan::encode::form(s, ld_plan::encode::WHATWG_FORM)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<jmeterTestPlan version="1.2" properties="5.0" jmeter="5.6.3">
  <hashTree>
    <TestPlan guiclass="TestPlanGui" testclass="TestPlan" testname="Plan" enabled="true">
      <elementProp name="TestPlan.user_defined_variables" elementType="Arguments">
        <collectionProp name="Arguments.arguments">
          <elementProp name="host" elementType="Argument">
            <stringProp name="Argument.name">host</stringProp>
            <stringProp name="Argument.value">api.test</stringProp>
          </elementProp>
        </collectionProp>
      </elementProp>
    </TestPlan>
    <hashTree>
      <ThreadGroup testclass="ThreadGroup" testname="Users" enabled="true">
        <stringProp name="ThreadGroup.num_threads">${__P(users,20)}</stringProp>
        <stringProp name="ThreadGroup.ramp_time">10</stringProp>
        <boolProp name="ThreadGroup.scheduler">true</boolProp>
        <stringProp name="ThreadGroup.duration">120</stringProp>
      </ThreadGroup>
      <hashTree>
        <HTTPSamplerProxy testclass="HTTPSamplerProxy" testname="Search" enabled="true">
          <elementProp name="HTTPsampler.Arguments" elementType="Arguments">
            <collectionProp name="Arguments.arguments">
              <elementProp name="q" elementType="HTTPArgument">
                <boolProp name="HTTPArgument.always_encode">true</boolProp>
                <stringProp name="Argument.name">q</stringProp>
                <stringProp name="Argument.value">red shoes</stringProp>
              </elementProp>
            </collectionProp>
          </elementProp>
          <stringProp name="HTTPSampler.path">/search</stringProp>
          <stringProp name="HTTPSampler.method">GET</stringProp>
        </HTTPSamplerProxy>
        <hashTree>
          <ResponseAssertion testclass="ResponseAssertion" enabled="true">
            <collectionProp name="Asserion.test_strings"><stringProp name="1">200</stringProp></collectionProp>
            <stringProp name="Assertion.test_field">Assertion.response_code</stringProp>
            <intProp name="Assertion.test_type">8</intProp>
          </ResponseAssertion>
          <hashTree/>
        </hashTree>
        <ConfigTestElement guiclass="HttpDefaultsGui" testclass="ConfigTestElement" enabled="true">
          <stringProp name="HTTPSampler.domain">${host}</stringProp>
          <stringProp name="HTTPSampler.protocol">https</stringProp>
        </ConfigTestElement>
        <hashTree/>
      </hashTree>
    </hashTree>
  </hashTree>
</jmeterTestPlan>"#;

    #[test]
    fn samplers_defaults_variables_and_load() {
        let import = import("p.jmx", PLAN.as_bytes(), &ImportOptions::default()).expect("imports");
        let plan = import.plan();
        let vars = plan.actions[0].kwargs().expect("kwargs");
        assert_eq!(vars["variables"]["host"], "api.test");
        let start = plan.actions[1].as_start_test("/1").expect("start");
        assert_eq!(start.user_count, Some(20));
        assert_eq!(start.spawn_rate, Some(serde_json::Number::from(2)));
        assert_eq!(start.test_time, Some(Some(serde_json::Number::from(120))));
        let task = &start.tasks.expect("tasks").to_list()[0];
        assert_eq!(
            task.request_url.as_deref(),
            Some("https://${var.host}/search?q=red+shoes")
        );
        assert_eq!(task.name.as_deref(), Some("Search"));
        assert_eq!(
            task.assertions.as_ref().expect("a")[0].value,
            Some(200.into())
        );
    }

    #[test]
    fn bad_xml_and_wrong_roots() {
        let o = ImportOptions::default();
        let err = import("p.jmx", b"<jmeterTestPlan>\n<hashTree><a></b>", &o).expect_err("bad");
        assert!(err.to_string().contains("p.jmx:2:"), "{err}");
        let err = import("p.jmx", b"<project/>", &o).expect_err("root");
        assert!(err.to_string().contains("<project>"), "{err}");
    }

    /// Imports `body` placed in a thread group with HTTP defaults: the tasks and the warnings.
    fn tasks_of(body: &str) -> (Vec<Value>, Vec<String>) {
        let xml = format!(
            r#"<jmeterTestPlan><hashTree><TestPlan/><hashTree>
<ThreadGroup/><hashTree>
<ConfigTestElement><stringProp name="HTTPSampler.domain">api.test</stringProp></ConfigTestElement><hashTree/>
{body}
</hashTree></hashTree></hashTree></jmeterTestPlan>"#
        );
        let import = import("p.jmx", xml.as_bytes(), &ImportOptions::default()).expect("imports");
        let plan: Value = serde_json::from_str(&import.to_json_string()).expect("json");
        let start = plan["load_density"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a[0] == "LD_start_test"))
            .expect("start");
        let tasks = start[1]["tasks"]["tasks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (tasks, import.summary.warnings.keys().cloned().collect())
    }

    fn sampler(name: &str, path: &str, children: &str) -> String {
        format!(
            r#"<HTTPSamplerProxy testname="{name}"><stringProp name="HTTPSampler.path">{path}</stringProp></HTTPSamplerProxy>
<hashTree>{children}</hashTree>"#
        )
    }

    fn warned(warnings: &[String], needle: &str) -> bool {
        warnings.iter().any(|w| w.contains(needle))
    }

    #[test]
    fn an_extracted_variable_wins_over_a_csv_column_after_its_task() {
        let csv = r#"<CSVDataSet testname="users"><stringProp name="filename">u.csv</stringProp>
<stringProp name="variableNames">id</stringProp><boolProp name="ignoreFirstLine">true</boolProp></CSVDataSet><hashTree/>"#;
        let extractor = r#"<RegexExtractor testname="id"><stringProp name="RegexExtractor.refname">id</stringProp>
<stringProp name="RegexExtractor.regex">id=(\d+)</stringProp><stringProp name="RegexExtractor.template">$1$</stringProp>
<stringProp name="RegexExtractor.match_number">1</stringProp></RegexExtractor><hashTree/>"#;
        let body = format!(
            "{csv}{}{}",
            sampler("first", "/a/${id}", extractor),
            sampler("second", "/b/${id}", "")
        );
        let (tasks, _) = tasks_of(&body);
        assert_eq!(tasks[0]["request_url"], "http://api.test/a/${csv.users.id}");
        assert_eq!(tasks[0]["extract"][0]["pattern"], r"id=(\d+)");
        assert_eq!(tasks[1]["request_url"], "http://api.test/b/${var.id}");
    }

    #[test]
    fn regex_extractors_map_templates_headers_and_codes_or_say_why_not() {
        let regex = |name: &str, pattern: &str, template: &str, field: &str, number: &str| {
            format!(
                r#"<RegexExtractor testname="{name}"><stringProp name="RegexExtractor.refname">{name}</stringProp>
<stringProp name="RegexExtractor.regex">{pattern}</stringProp><stringProp name="RegexExtractor.template">{template}</stringProp>
<stringProp name="RegexExtractor.useHeaders">{field}</stringProp><stringProp name="RegexExtractor.match_number">{number}</stringProp></RegexExtractor><hashTree/>"#
            )
        };
        let children = [
            regex("whole", "ab+c", "$0$", "false", "1"),
            regex("loc", "Location: (.+)", "$1$", "true", "1"),
            regex("code", "", "", "code", ""),
            regex("second", "x(.)", "$2$", "false", "1"),
            regex("all", "x(.)", "$1$", "false", "-1"),
            regex("look", "(?&lt;=a)b", "$1$", "false", "1"),
            regex("msg", "(.+)", "$1$", "message", "1"),
        ]
        .concat();
        let (tasks, warnings) = tasks_of(&sampler("s", "/", &children));
        let extract = tasks[0]["extract"].as_array().expect("extract");
        assert_eq!(extract.len(), 3, "{extract:?}");
        assert_eq!(extract[0]["pattern"], "(ab+c)");
        assert_eq!(extract[1]["from"], "header");
        assert_eq!(extract[1]["name"], "Location");
        assert_eq!(extract[2]["from"], "status_code");
        for needle in [
            "template \"$2$\"",
            "match number -1",
            "is not one the plan reads",
            "it reads \"message\"",
        ] {
            assert!(warned(&warnings, needle), "{needle}: {warnings:?}");
        }
    }

    #[test]
    fn assertions_become_checks_where_the_plan_has_them() {
        let children = r#"
<JSONPathAssertion testname="count"><stringProp name="JSON_PATH">$.count</stringProp><stringProp name="EXPECTED_VALUE">3</stringProp>
<boolProp name="JSONVALIDATION">true</boolProp><boolProp name="ISREGEX">true</boolProp></JSONPathAssertion><hashTree/>
<JSONPathAssertion testname="exists"><stringProp name="JSON_PATH">$.id</stringProp><boolProp name="JSONVALIDATION">false</boolProp></JSONPathAssertion><hashTree/>
<JSONPathAssertion testname="deep"><stringProp name="JSON_PATH">$..id</stringProp><boolProp name="JSONVALIDATION">true</boolProp></JSONPathAssertion><hashTree/>
<DurationAssertion><stringProp name="DurationAssertion.duration">250</stringProp></DurationAssertion><hashTree/>
<SizeAssertion testname="small"><stringProp name="SizeAssertion.size">1024</stringProp><intProp name="SizeAssertion.operator">6</intProp>
<stringProp name="Assertion.test_field">SizeAssertion.response_data</stringProp></SizeAssertion><hashTree/>
<ResponseAssertion testname="body"><collectionProp name="Asserion.test_strings"><stringProp name="1">ok</stringProp><stringProp name="2">a.c</stringProp></collectionProp>
<stringProp name="Assertion.test_field">Assertion.response_data</stringProp><intProp name="Assertion.test_type">2</intProp></ResponseAssertion><hashTree/>
<ResponseAssertion testname="no error"><collectionProp name="Asserion.test_strings"><stringProp name="1">error</stringProp></collectionProp>
<stringProp name="Assertion.test_field">Assertion.response_data</stringProp><intProp name="Assertion.test_type">20</intProp></ResponseAssertion><hashTree/>
<ResponseAssertion testname="exact"><collectionProp name="Asserion.test_strings"><stringProp name="1">done.</stringProp></collectionProp>
<stringProp name="Assertion.test_field">Assertion.response_data</stringProp><intProp name="Assertion.test_type">8</intProp></ResponseAssertion><hashTree/>
<ResponseAssertion testname="not matching"><collectionProp name="Asserion.test_strings"><stringProp name="1">e.+r</stringProp></collectionProp>
<stringProp name="Assertion.test_field">Assertion.response_data</stringProp><intProp name="Assertion.test_type">6</intProp></ResponseAssertion><hashTree/>
<ResponseAssertion testname="headers"><collectionProp name="Asserion.test_strings"><stringProp name="1">x</stringProp></collectionProp>
<stringProp name="Assertion.test_field">Assertion.response_headers</stringProp><intProp name="Assertion.test_type">2</intProp></ResponseAssertion><hashTree/>"#;
        let (tasks, warnings) = tasks_of(&sampler("s", "/", children));
        let checks = tasks[0]["assertions"].as_array().expect("assertions");
        let expected = serde_json::json!([
            {"type": "json_path", "path": "count", "value": 3},
            {"type": "max_latency_ms", "value": 250},
            {"type": "contains", "value": "ok"},
            {"type": "regex", "pattern": "a.c"},
            {"type": "not_contains", "value": "error"},
            {"type": "regex", "pattern": r"\Adone\.\z"},
        ]);
        assert_eq!(Value::Array(checks.clone()), expected);
        for needle in [
            "exists on \"$.id\": it checks only that the path exists",
            "can match several values",
            "size assertion small: body size <= 1024 bytes has no equivalent",
            "response assertion not matching: it must not match",
            "response assertion headers: it tests response_headers",
        ] {
            assert!(warned(&warnings, needle), "{needle}: {warnings:?}");
        }
    }

    #[test]
    fn loops_repeat_their_requests_up_to_a_bound() {
        let looped = |n: &str| {
            format!(
                r#"<LoopController testname="three"><stringProp name="LoopController.loops">{n}</stringProp></LoopController>
<hashTree>{}{}</hashTree>"#,
                sampler("a", "/a", ""),
                sampler("b", "/b", "")
            )
        };
        let (tasks, _) = tasks_of(&looped("3"));
        let names: Vec<&str> = tasks.iter().filter_map(|t| t["name"].as_str()).collect();
        assert_eq!(names, ["a", "b", "a", "b", "a", "b"]);
        let (tasks, warnings) = tasks_of(&looped("100000"));
        assert_eq!(tasks.len(), MAX_LOOP_TASKS);
        assert!(warned(
            &warnings,
            "100000 loops of 2 requests were cut to 500 loops"
        ));
        let (tasks, warnings) = tasks_of(&looped("-1"));
        assert_eq!(tasks.len(), 2);
        assert!(warned(&warnings, "loop count \"-1\" is not a fixed count"));
    }

    #[test]
    fn if_controllers_become_run_if_and_while_controllers_are_reported() {
        let controller = |class: &str, prop: &str, condition: &str| {
            format!(
                r#"<{class} testname="c"><stringProp name="{prop}">{condition}</stringProp></{class}>
<hashTree>{}</hashTree>"#,
                sampler("x", "/x", "")
            )
        };
        let run_if = |condition: &str| {
            let (tasks, warnings) = tasks_of(&controller(
                "IfController",
                "IfController.condition",
                condition,
            ));
            (tasks[0].get("run_if").cloned(), warnings)
        };
        let (p, _) = run_if(r#"${__jexl3("${status}" == "ok")}"#);
        assert_eq!(
            p,
            Some(serde_json::json!({"equals": ["${var.status}", "ok"]}))
        );
        let (p, _) = run_if(r#""${n}" != '0'"#);
        assert_eq!(
            p,
            Some(serde_json::json!({"not_equals": ["${var.n}", "0"]}))
        );
        let (p, _) = run_if("${go}");
        assert_eq!(p, Some(Value::String("${var.go}".into())));
        let (p, _) = run_if("true");
        assert_eq!(p, None);
        let (p, warnings) = run_if("${__groovy(vars.get('n').toInteger() > 2)}");
        assert_eq!(p, None);
        assert!(
            warned(&warnings, "if controller c: condition"),
            "{warnings:?}"
        );
        let (tasks, warnings) = tasks_of(&controller(
            "WhileController",
            "WhileController.condition",
            "${more}",
        ));
        assert_eq!(tasks.len(), 1);
        assert!(warned(
            &warnings,
            "while controller c: condition \"${more}\""
        ));
    }
}
