//! What a plan learns from a recording's responses: correlation rules (values a response
//! produced that later requests send, see `correlate`) and checks on response bodies (see
//! `shape`).
//!
//! It runs after the importer has written the plan's tasks, on the recording read a second
//! time whole (see `recording`), and rewrites the tasks it concerns. It depends on nothing but
//! the plan's JSON: the engine reads what it writes (`extract`, `${var.NAME}`, `json_shape`).

pub(crate) mod correlate;
pub(crate) mod recording;
pub(crate) mod shape;

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::{Import, ImportOptions};
use correlate::{Birth, Evidence, Locator, Rule, Untouched};
use recording::Exchange;

/// Which checks on response bodies an import learns (`--assert-body`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyChecks {
    /// Status codes only.
    Off,
    /// A `json_shape` assertion on each JSON response.
    #[default]
    Shape,
    /// The shape, and `json_path` checks on fields that stayed the same and are not noise.
    Values,
}

impl BodyChecks {
    /// The mode named `name`, as `--assert-body` takes it.
    pub fn from_name(name: &str) -> Option<BodyChecks> {
        match name {
            "off" => Some(BodyChecks::Off),
            "shape" => Some(BodyChecks::Shape),
            "values" => Some(BodyChecks::Values),
            _ => None,
        }
    }
}

/// What was learned, for the user: each correlation rule and the checks added.
#[derive(Debug, Clone, Default)]
pub struct Report {
    rules: Vec<RuleReport>,
    untouched: Vec<UntouchedReport>,
    /// `json_shape` assertions added.
    pub shape_checks: usize,
    /// `json_path` value assertions added.
    pub value_checks: usize,
    /// Whether a second recording was compared.
    compared: bool,
}

#[derive(Debug, Clone)]
struct Place {
    entry: usize,
    task: usize,
    method: String,
    url: String,
}

impl Place {
    fn json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("entry".into(), self.entry.into());
        m.insert("task".into(), self.task.into());
        m.insert("method".into(), Value::String(self.method.clone()));
        m.insert("url".into(), Value::String(self.url.clone()));
        m
    }
}

#[derive(Debug, Clone)]
struct RuleReport {
    name: String,
    preview: String,
    born: Vec<(Place, Locator, Value)>,
    /// Each use: where, which field, and the entry whose extractor it reads.
    used: Vec<(Place, String, usize)>,
}

#[derive(Debug, Clone)]
struct UntouchedReport {
    hint: String,
    place: Place,
    field: String,
    reason: &'static str,
}

impl Report {
    /// The number of correlation rules.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The report as JSON (`--correlation-report`).
    pub fn to_json(&self) -> Value {
        let rules: Vec<Value> = self
            .rules
            .iter()
            .map(|r| {
                let mut m = Map::new();
                m.insert("name".into(), Value::String(r.name.clone()));
                m.insert("value".into(), Value::String(r.preview.clone()));
                let born: Vec<Value> = r
                    .born
                    .iter()
                    .map(|(place, locator, extractor)| {
                        let mut b = place.json();
                        let (kind, at) = locator.describe();
                        b.insert(kind.into(), Value::String(at));
                        b.insert("extractor".into(), extractor.clone());
                        Value::Object(b)
                    })
                    .collect();
                m.insert("born".into(), Value::Array(born));
                let used: Vec<Value> = r
                    .used
                    .iter()
                    .map(|(place, field, from)| {
                        let mut u = place.json();
                        u.insert("field".into(), Value::String(field.clone()));
                        u.insert("extracted_at_entry".into(), (*from).into());
                        Value::Object(u)
                    })
                    .collect();
                m.insert("used".into(), Value::Array(used));
                Value::Object(m)
            })
            .collect();
        let untouched: Vec<Value> = self
            .untouched
            .iter()
            .map(|u| {
                let mut m = u.place.json();
                m.insert("name".into(), Value::String(u.hint.clone()));
                m.insert("field".into(), Value::String(u.field.clone()));
                m.insert("reason".into(), Value::String(u.reason.into()));
                Value::Object(m)
            })
            .collect();
        let mut out = Map::new();
        out.insert("rules".into(), Value::Array(rules));
        out.insert("not_correlated".into(), Value::Array(untouched));
        out.insert("compared".into(), Value::Bool(self.compared));
        out.insert("json_shape_checks".into(), self.shape_checks.into());
        out.insert("json_path_checks".into(), self.value_checks.into());
        Value::Object(out)
    }

    /// A few lines for stderr.
    pub fn render(&self) -> String {
        let mut out = match self.rules.len() {
            0 => "correlation: no values of responses are sent later".to_string(),
            1 => "correlation: 1 rule".to_string(),
            n => format!("correlation: {n} rules"),
        };
        for r in &self.rules {
            let born: Vec<String> = r
                .born
                .iter()
                .map(|(p, l, _)| {
                    let (kind, at) = l.describe();
                    format!("entry {} {} {} ({kind} {at})", p.entry, p.method, p.url)
                })
                .collect();
            let used: Vec<String> = r
                .used
                .iter()
                .map(|(p, f, _)| format!("entry {} {}", p.entry, f))
                .collect();
            out.push_str(&format!(
                "\n  ${{var.{}}} born in {}\n    used in {}",
                r.name,
                born.join(", then "),
                used.join(", ")
            ));
        }
        for u in &self.untouched {
            out.push_str(&format!(
                "\n  not correlated: {} in entry {} {}: {}",
                u.hint, u.place.entry, u.field, u.reason
            ));
        }
        if self.shape_checks + self.value_checks > 0 {
            out.push_str(&format!(
                "\nchecks learned from responses: {} json_shape, {} json_path",
                self.shape_checks, self.value_checks
            ));
        }
        out
    }
}

/// A short, recognisable part of a value for the report: the whole value is a stale
/// credential at best.
fn preview(value: &str) -> String {
    let head: String = value.chars().take(8).collect();
    if head.len() < value.len() {
        format!("{head}…")
    } else {
        head
    }
}

/// The key a request is matched by across two recordings: method and task name (the path
/// with ids as `{id}`).
fn key(exchange: &Exchange) -> (String, String) {
    let path = crate::url_parts::split(&exchange.url).map_or("", |p| p.path);
    (
        exchange.method.clone(),
        crate::naming::task_name_of_path(&exchange.method, path),
    )
}

/// Learns from `recording` (the HAR's entries in file order) into `import`'s tasks; `other`
/// is a second recording of the same flow (`--compare`).
pub(crate) fn learn(
    import: &mut Import,
    recording: &[Exchange],
    other: Option<&[Exchange]>,
    options: &ImportOptions,
) {
    let mut tasks = import.task_values();
    let entries = import.task_entries.clone();
    if tasks.len() != entries.len() {
        return;
    }
    // The response of each task that starts an HTTP entry.
    let responses: Vec<Option<&Exchange>> = (0..tasks.len())
        .map(|t| {
            let first = t == 0 || entries[t - 1] != entries[t];
            let http = tasks[t].get("protocol").is_none();
            recording
                .get(entries[t])
                .filter(|e| first && http && e.status > 0)
        })
        .collect();
    // The other recording's exchange for each task, matched by method and name in order.
    let mut matched: Vec<Option<&Exchange>> = vec![None; tasks.len()];
    if let Some(other) = other {
        let mut queues: HashMap<(String, String), std::collections::VecDeque<&Exchange>> =
            HashMap::new();
        for e in other {
            queues.entry(key(e)).or_default().push_back(e);
        }
        for (t, response) in responses.iter().enumerate() {
            if let Some(e) = response {
                matched[t] = queues.get_mut(&key(e)).and_then(|q| q.pop_front());
            }
        }
    }
    let evidence = |birth: &Birth| -> Evidence {
        if other.is_none() {
            return Evidence::Unknown;
        }
        match matched[birth.task].and_then(|e| birth.locator.read(e)) {
            Some(v) if v == birth.value => Evidence::Stays,
            Some(_) => Evidence::Changes,
            None => Evidence::Unknown,
        }
    };
    // Places as recorded, before the tasks are rewritten.
    let places: Vec<Place> = tasks
        .iter()
        .enumerate()
        .map(|(t, task)| {
            let get = |k: &str| {
                task.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            Place {
                entry: entries[t],
                task: t,
                method: get("method").to_ascii_uppercase(),
                url: get("request_url"),
            }
        })
        .collect();
    let place = |t: usize| places[t].clone();
    let mut report = Report {
        compared: other.is_some(),
        ..Report::default()
    };
    let mut rules: Vec<Rule> = Vec::new();
    if options.correlate {
        // What each response produced, read once for both passes.
        let born: Vec<Vec<Birth>> = responses
            .iter()
            .enumerate()
            .map(|(t, r)| r.map(|e| correlate::births(t, e)).unwrap_or_default())
            .collect();
        let returned = reveal_secrets(&mut tasks, &born, &import.secrets, &evidence);
        let (found, untouched) = correlate::find(&tasks, &responses, &born, &evidence);
        correlate::apply(&mut tasks, &found);
        // Secrets whose every placeholder became a correlated value leave the side file.
        let mut used: std::collections::HashSet<String> = std::collections::HashSet::new();
        for task in &tasks {
            let text = task.to_string();
            let mut rest = text.as_str();
            while let Some(open) = rest.find("${env.") {
                let after = &rest[open + "${env.".len()..];
                let Some(close) = after.find('}') else { break };
                used.insert(after[..close].to_string());
                rest = &after[close + 1..];
            }
        }
        import.secrets.retain(|s| used.contains(&s.name));
        import.summary.secrets_replaced = import.summary.secrets_replaced.saturating_sub(returned);
        for rule in &found {
            report.rules.push(RuleReport {
                name: rule.name.clone(),
                preview: preview(&rule.value),
                born: rule
                    .births
                    .iter()
                    .map(|b| {
                        (
                            place(b.task),
                            b.locator.clone(),
                            b.locator.extractor(&rule.name),
                        )
                    })
                    .collect(),
                used: rule
                    .uses
                    .iter()
                    .map(|u| {
                        let from = rule.births.get(u.from).map_or(0, |b| places[b.task].entry);
                        (place(u.task), u.field.clone(), from)
                    })
                    .collect(),
            });
        }
        report.untouched = untouched
            .into_iter()
            .map(|u: Untouched| UntouchedReport {
                hint: u.hint,
                place: place(u.task),
                field: u.field,
                reason: u.reason,
            })
            .collect();
        rules = found;
    }
    if options.assert_body != BodyChecks::Off {
        body_checks(
            &mut tasks,
            &responses,
            &matched,
            &rules,
            options,
            &mut report,
        );
    }
    import.set_tasks(&tasks);
    import.correlation = Some(Box::new(report));
}

/// Puts back the recorded value of a secret placeholder wherever a response before the task
/// produced it (or a part of it, as a token inside `Bearer ...`): that value is correlated,
/// not a credential. How many placeholders were put back.
fn reveal_secrets(
    tasks: &mut [Value],
    born: &[Vec<Birth>],
    secrets: &[crate::Secret],
    evidence: &dyn Fn(&Birth) -> Evidence,
) -> usize {
    if secrets.is_empty() {
        return 0;
    }
    // For each secret, the first task whose response produced (a part of) its value. A value
    // that stands in a secret on its own has each of its tokens among the secret's, so only
    // the secrets holding a birth's longest token are looked at.
    let mut by_token: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, s) in secrets.iter().enumerate() {
        for token in correlate::tokens(&s.value) {
            let list = by_token.entry(token).or_default();
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
    }
    let mut produced_at: Vec<Option<usize>> = vec![None; secrets.len()];
    for (t, births) in born.iter().enumerate() {
        for b in births {
            let Some(holding) = correlate::tokens(&b.value)
                .max_by_key(|t| t.len())
                .and_then(|t| by_token.get(t))
            else {
                continue;
            };
            for &i in holding {
                let s = &secrets[i];
                if produced_at[i].is_none()
                    && s.value.contains(&b.value)
                    && !correlate::occurrences(&s.value, &b.value).is_empty()
                    && correlate::candidate(&b.value, evidence(b))
                {
                    produced_at[i] = Some(t);
                }
            }
        }
    }
    let by_name: HashMap<&str, usize> = secrets
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut returned = 0;
    for (t, task) in tasks.iter_mut().enumerate() {
        for field in correlate::fields(task) {
            // The secrets this field names, in the secrets' order.
            let mut named: Vec<usize> = Vec::new();
            let mut rest = field.text.as_str();
            while let Some(open) = rest.find("${env.") {
                let after = &rest[open + "${env.".len()..];
                let Some(close) = after.find('}') else { break };
                if let Some(&i) = by_name.get(&after[..close]) {
                    named.push(i);
                }
                rest = &after[close + 1..];
            }
            named.sort_unstable();
            named.dedup();
            for i in named {
                let s = &secrets[i];
                let placeholder = format!("${{env.{}}}", s.name);
                if produced_at[i].is_some_and(|at| at < t) && field.text.contains(&placeholder) {
                    returned += field.text.matches(&placeholder).count();
                    *field.text = field.text.replace(&placeholder, &s.value);
                }
            }
        }
    }
    returned
}

/// Adds `json_shape` (and with [`BodyChecks::Values`], `json_path`) assertions learned from
/// the JSON responses of each request name.
fn body_checks(
    tasks: &mut [Value],
    responses: &[Option<&Exchange>],
    matched: &[Option<&Exchange>],
    rules: &[Rule],
    options: &ImportOptions,
    report: &mut Report,
) {
    let bodies: Vec<Option<Value>> = responses
        .iter()
        .map(|r| r.and_then(Exchange::json))
        .collect();
    let others: Vec<Option<Value>> = matched.iter().map(|r| r.and_then(Exchange::json)).collect();
    let name_of = |t: &Value| {
        t.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    let mut group_of: HashMap<String, usize> = HashMap::new();
    for (t, body) in bodies.iter().enumerate() {
        if body.is_none() {
            continue;
        }
        let name = name_of(&tasks[t]);
        match group_of.get(&name) {
            Some(&g) => groups[g].1.push(t),
            None => {
                group_of.insert(name.clone(), groups.len());
                groups.push((name, vec![t]));
            }
        }
    }
    for (_, members) in &groups {
        let values: Vec<&Value> = members.iter().filter_map(|&t| bodies[t].as_ref()).collect();
        let Some(shape) = shape::learn(values.iter().copied()) else {
            continue;
        };
        let shape = shape.to_json();
        let mut checks = vec![json_shape(&shape)];
        if options.assert_body == BodyChecks::Values {
            for (path, pointer, key, value) in shape::constant_fields(&values) {
                let correlated = correlate::scalar_text(&value)
                    .is_some_and(|v| rules.iter().any(|r| r.value == v));
                let changed = members.iter().any(|&t| {
                    others[t]
                        .as_ref()
                        .and_then(|o| o.pointer(&pointer))
                        .is_some_and(|o| *o != value)
                });
                // One response says nothing about a number: counters look like constants.
                let lone_number = value.is_number() && members.len() < 2;
                if correlated || changed || lone_number || shape::noise(&key, &value) {
                    continue;
                }
                let mut m = Map::new();
                m.insert("type".into(), "json_path".into());
                m.insert("path".into(), Value::String(path));
                m.insert("value".into(), value);
                checks.push(Value::Object(m));
            }
        }
        for &t in members {
            let Some(Value::Object(task)) = tasks.get_mut(t) else {
                continue;
            };
            if let Some(Value::Array(list)) = task.get_mut("assertions") {
                list.extend(checks.iter().cloned());
            } else {
                let at = task
                    .keys()
                    .position(|k| k == "extract")
                    .unwrap_or(task.len());
                task.shift_insert(at, "assertions".into(), Value::Array(checks.clone()));
            }
            report.shape_checks += 1;
            report.value_checks += checks.len() - 1;
        }
    }
}

fn json_shape(shape: &Value) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), "json_shape".into());
    m.insert("shape".into(), shape.clone());
    Value::Object(m)
}
