//! JMeter post-processors and assertions → the task's `extract` and `assertions`.
//!
//! JSON and regex extractors become extractors; a default value becomes the variable's first
//! value (`LD_register_variables`), which stays when a response lacks the value, as JMeter's
//! default does at the first miss. JSON path, duration and response assertions become
//! `json_path`, `max_latency_ms`, `contains`, `not_contains` and `regex` checks. What the plan
//! cannot say (several matches, negated patterns, size limits) is reported with the element's
//! name and value and left out: a check that tests something else would be worse than none.

use regex::Regex;
use roxmltree::Node;
use serde_json::{Value, json};

use super::{Reader, Scope, bool_prop, text_prop};

/// The name a report gives an element: its `testname`, else its class.
pub(super) fn label(element: Node<'_, '_>) -> String {
    element
        .attribute("testname")
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| element.tag_name().name())
        .to_string()
}

/// A JMeter `;`-separated list, positions kept (an empty default stays empty).
fn list(text: Option<String>) -> Vec<String> {
    match text {
        Some(t) => t.split(';').map(|s| s.trim().to_string()).collect(),
        None => Vec::new(),
    }
}

/// True when the plan's JSON path reader gives the one value JMeter's would: member and
/// index steps only, no deep scan, wildcard, filter, slice, union or function.
pub(super) fn single_path(path: &str) -> bool {
    !path.is_empty() && !path.contains("..") && !path.contains(['*', '?', '@', '(', ':', ','])
}

/// A single JSONPath (`$.items[0]['id']`) written as the dotted path LoadDensity reads
/// (`items.0.id`); as it is when a step cannot be written so (a key with a dot).
pub(super) fn dotted(path: &str) -> String {
    let rest = path.strip_prefix('$').unwrap_or(path);
    let mut steps: Vec<String> = Vec::new();
    let mut s = rest;
    while !s.is_empty() {
        if let Some(r) = s.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            steps.push(r[..end].to_string());
            s = &r[end..];
        } else if let Some(r) = s.strip_prefix('[') {
            let Some(end) = r.find(']') else {
                return path.to_string();
            };
            let inner = r[..end].trim();
            let key = inner
                .strip_prefix('\'')
                .and_then(|k| k.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|k| k.strip_suffix('"')))
                .unwrap_or(inner);
            steps.push(key.to_string());
            s = &r[end + 1..];
        } else if steps.is_empty() {
            // `items.0` without the `$.`
            let end = s.find(['.', '[']).unwrap_or(s.len());
            steps.push(s[..end].to_string());
            s = &s[end..];
        } else {
            return path.to_string();
        }
    }
    if steps.is_empty() || steps.iter().any(|k| k.is_empty() || k.contains('.')) {
        return path.to_string();
    }
    steps.join(".")
}

/// True when `text` holds a character a regex reads as an operator.
fn has_meta(text: &str) -> bool {
    regex::escape(text) != text
}

/// A regex on response headers that reads one header's value: that header's name.
fn header_of(pattern: &str) -> Option<String> {
    let form = Regex::new(
        r"^(?:\(\?i\))?\^?([A-Za-z0-9_-]+):(?: |\\s\*|\\s\+| \?|\\s\?)?(?:\(\.\+\)|\(\.\*\)|\(\.\+\?\)|\(\.\*\?\)|\(\[\^\\r\\n\]\+\)|\(\[\^\\n\]\+\)|\(\\S\+\))(?:\$|\\r|\\n|\\r\\n|\\r\?\\n)?$",
    )
    .ok()?;
    form.captures(pattern)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string())
}

/// Which match an extractor takes: `Ok(())` for the first, else why the plan cannot say it.
fn first_match(number: &str, paths_are_single: bool) -> std::result::Result<(), String> {
    match number.trim() {
        "" | "1" => Ok(()),
        "0" if paths_are_single => Ok(()),
        "0" => Err("match number 0 (a random match)".into()),
        "-1" => Err("match number -1 (every match, as NAME_1, NAME_2...)".into()),
        n => Err(format!("match number {n}")),
    }
}

impl Reader<'_> {
    /// A JSON extractor (`JSONPostProcessor`): one extractor per reference name.
    pub(super) fn json_extractor(&mut self, element: Node<'_, '_>, scope: &mut Scope) {
        let label = label(element);
        let names = list(text_prop(element, "JSONPostProcessor.referenceNames"));
        let paths = list(text_prop(element, "JSONPostProcessor.jsonPathExprs"));
        let matches = list(text_prop(element, "JSONPostProcessor.match_numbers"));
        let defaults = list(text_prop(element, "JSONPostProcessor.defaultValues"));
        if names.is_empty() || names.len() != paths.len() {
            self.builder.summary.warn(format!(
                "JSON extractor {label}: {} names and {} JSON paths; each name needs one path, so it is skipped",
                names.len(),
                paths.len()
            ));
            return;
        }
        if !self.sample_scope(element, &label) {
            return;
        }
        for (i, (name, path)) in names.iter().zip(&paths).enumerate() {
            if name.is_empty() {
                continue;
            }
            if !single_path(path) {
                self.builder.summary.warn(format!(
                    "JSON extractor {label}: {name} reads JSON path {path:?}, which can match several values; the plan reads member and index steps only ($.a.b[0]), so {name} is not extracted"
                ));
                continue;
            }
            let number = matches.get(i).map_or("", String::as_str);
            if let Err(what) = first_match(number, true) {
                self.builder.summary.warn(format!(
                    "JSON extractor {label}: {name} takes {what}; the plan takes the first, so {name} is not extracted"
                ));
                continue;
            }
            self.extractor(
                scope,
                name,
                json!({"var": name, "from": "json_path", "path": dotted(path)}),
            );
            if let Some(d) = defaults.get(i).filter(|d| !d.is_empty()) {
                self.default_value(name, d);
            }
        }
    }

    /// A regex extractor (`RegexExtractor`): on the body, a header or the status code.
    pub(super) fn regex_extractor(&mut self, element: Node<'_, '_>, scope: &mut Scope) {
        let label = label(element);
        let name = text_prop(element, "RegexExtractor.refname").unwrap_or_default();
        let pattern = text_prop(element, "RegexExtractor.regex").unwrap_or_default();
        let template = text_prop(element, "RegexExtractor.template").unwrap_or_default();
        let number = text_prop(element, "RegexExtractor.match_number").unwrap_or_default();
        let default = text_prop(element, "RegexExtractor.default").unwrap_or_default();
        let field = text_prop(element, "RegexExtractor.useHeaders").unwrap_or_default();
        let skip = |this: &mut Self, why: String| {
            this.builder.summary.warn(format!(
                "regex extractor {label}: {why}, so {name} is not extracted"
            ));
        };
        if name.is_empty() || (pattern.is_empty() && field != "code") {
            self.builder.summary.warn(format!(
                "regex extractor {label}: a reference name and a regular expression are needed; skipped"
            ));
            return;
        }
        if !self.sample_scope(element, &label) {
            return;
        }
        if let Err(what) = first_match(&number, false) {
            return skip(self, format!("it takes {what}; the plan takes the first"));
        }
        if pattern.contains("${") {
            return skip(self, format!("its pattern {pattern:?} uses variables"));
        }
        let extractor = match field.trim() {
            "" | "false" => {
                let pattern = match template.trim() {
                    "" | "$1$" => pattern.clone(),
                    "$0$" => format!("({pattern})"),
                    other => {
                        return skip(
                            self,
                            format!(
                                "template {other:?}: the plan takes group 1 ($1$) or the whole match ($0$)"
                            ),
                        );
                    }
                };
                if let Err(e) = Regex::new(&pattern) {
                    let e = e.to_string();
                    let e = e.lines().last().unwrap_or_default().trim();
                    return skip(
                        self,
                        format!("pattern {pattern:?} is not one the plan reads ({e})"),
                    );
                }
                json!({"var": name, "from": "regex", "pattern": pattern})
            }
            "true" => match header_of(&pattern) {
                Some(header) => json!({"var": name, "from": "header", "name": header}),
                None => {
                    return skip(
                        self,
                        format!(
                            "pattern {pattern:?} on the response headers is not of the form `Name: (.+)`"
                        ),
                    );
                }
            },
            "code" => json!({"var": name, "from": "status_code"}),
            other => {
                return skip(
                    self,
                    format!(
                        "it reads {other:?}; the plan reads the body, a header or the status code"
                    ),
                );
            }
        };
        self.extractor(scope, &name, extractor);
        if !default.is_empty() {
            self.default_value(&name, &default);
        }
    }

    /// False (reported) when an extractor reads something other than the sampler's response.
    fn sample_scope(&mut self, element: Node<'_, '_>, label: &str) -> bool {
        match text_prop(element, "Sample.scope").as_deref() {
            None | Some("parent") | Some("all") => true,
            Some(other) => {
                self.builder.summary.warn(format!(
                    "extractor {label}: it reads sample scope {other:?}; the plan reads the response only, so it is skipped"
                ));
                false
            }
        }
    }

    fn extractor(&mut self, scope: &mut Scope, name: &str, extractor: Value) {
        scope.extract.retain(|(n, _)| n != name);
        scope.extract.push((name.to_string(), extractor));
    }

    /// An extractor's default: the variable's value until a response gives one.
    fn default_value(&mut self, name: &str, value: &str) {
        if !self.variables.contains_key(name) {
            self.define(name, value);
        }
    }

    /// A JSON path assertion (`JSONPathAssertion`) → a `json_path` check.
    pub(super) fn json_path_assertion(&mut self, element: Node<'_, '_>, scope: &mut Scope) {
        let label = label(element);
        let path = text_prop(element, "JSON_PATH").unwrap_or_default();
        let expected = text_prop(element, "EXPECTED_VALUE").unwrap_or_default();
        let compare = bool_prop(element, "JSONVALIDATION").unwrap_or(false);
        let null = bool_prop(element, "EXPECT_NULL").unwrap_or(false);
        let invert = bool_prop(element, "INVERT").unwrap_or(false);
        let regex = bool_prop(element, "ISREGEX").unwrap_or(false);
        let why = if !single_path(&path) {
            Some(format!(
                "JSON path {path:?} can match several values; the plan reads member and index steps only"
            ))
        } else if invert {
            Some("it is inverted; the plan's json_path check cannot be negated".into())
        } else if null {
            Some("it expects null; the plan's json_path check reads null as missing".into())
        } else if !compare {
            Some(
                "it checks only that the path exists; the plan's json_path check compares a value"
                    .into(),
            )
        } else if regex && has_meta(&expected) {
            Some(format!(
                "it matches the pattern {expected:?}; the plan's json_path check compares a value"
            ))
        } else {
            None
        };
        if let Some(why) = why {
            self.builder.summary.warn(format!(
                "JSON path assertion {label} on {path:?}: {why}; skipped"
            ));
            return;
        }
        let text = self.convert(&expected);
        // `42`, `true`, `[1]` as JSON, as the response holds them; anything else as text.
        let value = match serde_json::from_str::<Value>(&text) {
            Ok(v) if !v.is_string() && !v.is_null() && !text.contains("${") => v,
            _ => Value::String(text),
        };
        scope
            .checks
            .push(json!({"type": "json_path", "path": dotted(&path), "value": value}));
    }

    /// A duration assertion (`DurationAssertion`) → `max_latency_ms`.
    pub(super) fn duration_assertion(&mut self, element: Node<'_, '_>, scope: &mut Scope) {
        let text = text_prop(element, "DurationAssertion.duration").unwrap_or_default();
        match self.number(&text).filter(|ms| *ms > 0.0) {
            Some(ms) => scope
                .checks
                .push(json!({"type": "max_latency_ms", "value": super::integer(ms)})),
            None => self.builder.summary.warn(format!(
                "duration assertion {}: duration {text:?} is not a positive number of milliseconds; skipped",
                label(element)
            )),
        }
    }

    /// A size assertion (`SizeAssertion`): the plan has no size check.
    pub(super) fn size_assertion(&mut self, element: Node<'_, '_>) {
        let size = text_prop(element, "SizeAssertion.size").unwrap_or_default();
        let operator = match text_prop(element, "SizeAssertion.operator").as_deref() {
            Some("2") => "!=",
            Some("3") => ">",
            Some("4") => "<",
            Some("5") => ">=",
            Some("6") => "<=",
            _ => "=",
        };
        let field = match text_prop(element, "Assertion.test_field").as_deref() {
            Some("SizeAssertion.response_headers") => "headers",
            Some("SizeAssertion.response_data") => "body",
            Some("SizeAssertion.response_code") => "status code",
            Some("SizeAssertion.response_message") => "status message",
            _ => "whole response",
        };
        self.builder.summary.warn(format!(
            "size assertion {}: {field} size {operator} {size} bytes has no equivalent in the plan; skipped",
            label(element)
        ));
    }

    /// A response assertion (`ResponseAssertion`): one expected status code, or text checks on
    /// the body.
    pub(super) fn response_assertion(&mut self, element: Node<'_, '_>, scope: &mut Scope) {
        let label = label(element);
        let field = text_prop(element, "Assertion.test_field").unwrap_or_default();
        let kind: u32 = text_prop(element, "Assertion.test_type")
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        let strings: Vec<String> = element
            .descendants()
            .find(|c| {
                c.has_tag_name("collectionProp")
                    && c.attribute("name")
                        .is_some_and(|n| n.ends_with(".test_strings"))
            })
            .map(|c| {
                c.children()
                    .filter(Node::is_element)
                    .map(|s| s.text().unwrap_or_default().trim().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let negated = kind & 4 != 0;
        let any = kind & 32 != 0 && strings.len() > 1;
        let warn = |this: &mut Self, why: String| {
            this.builder
                .summary
                .warn(format!("response assertion {label}: {why}; skipped"));
        };
        match field.as_str() {
            "Assertion.response_code" => {
                let status = strings.first().and_then(|s| s.parse::<u16>().ok());
                match status.filter(|s| (100..600).contains(s)) {
                    Some(s) if !negated && strings.len() == 1 => scope.status = Some(s),
                    _ => warn(
                        self,
                        format!(
                            "the plan checks one expected status code, not {}{strings:?}",
                            if negated { "anything but " } else { "" }
                        ),
                    ),
                }
            }
            "Assertion.response_data" => {
                if any {
                    return warn(
                        self,
                        "it passes when any of its strings matches; the plan's checks must all hold"
                            .into(),
                    );
                }
                for s in &strings {
                    if let Some(check) = self.body_check(kind, s) {
                        match check {
                            Ok(check) => scope.checks.push(check),
                            Err(why) => warn(self, why),
                        }
                    }
                }
            }
            other => warn(
                self,
                format!(
                    "it tests {}; the plan checks the status code and the body",
                    other.strip_prefix("Assertion.").unwrap_or(other)
                ),
            ),
        }
    }

    /// The check for one string of a body assertion; `None` for an empty string.
    fn body_check(&mut self, kind: u32, text: &str) -> Option<std::result::Result<Value, String>> {
        if text.is_empty() {
            return None;
        }
        let negated = kind & 4 != 0;
        let bare = self.placeholder.replace_all(text, "");
        let literal = if kind & 16 != 0 || (kind & 2 != 0 && !has_meta(&bare)) {
            true
        } else if kind & (1 | 2 | 8) != 0 {
            false
        } else {
            return Some(Err(format!("test type {kind} is not one JMeter defines")));
        };
        if literal {
            let value = self.convert(text);
            let kind = if negated { "not_contains" } else { "contains" };
            return Some(Ok(json!({"type": kind, "value": value})));
        }
        if negated {
            return Some(Err(format!(
                "it must not match {text:?}; the plan's regex check cannot be negated"
            )));
        }
        if text.contains("${") {
            return Some(Err(format!(
                "pattern {text:?} uses variables; the plan's regex is read as written"
            )));
        }
        let pattern = match kind {
            k if k & 8 != 0 => format!(r"\A{}\z", regex::escape(text)),
            k if k & 1 != 0 => format!(r"\A(?:{text})\z"),
            _ => text.to_string(),
        };
        Some(match Regex::new(&pattern) {
            Ok(_) => Ok(json!({"type": "regex", "pattern": pattern})),
            Err(e) => {
                let e = e.to_string();
                let e = e.lines().last().unwrap_or_default().trim().to_string();
                Err(format!("pattern {text:?} is not one the plan reads ({e})"))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_patterns_name_their_header() {
        assert_eq!(header_of("Location: (.+)").as_deref(), Some("Location"));
        assert_eq!(
            header_of(r"(?i)^x-token:\s*(\S+)").as_deref(),
            Some("x-token")
        );
        assert_eq!(header_of(r"X-Id: (.+)\r\n").as_deref(), Some("X-Id"));
        assert_eq!(header_of("Set-Cookie: sid=(.+?);"), None);
    }

    #[test]
    fn json_paths_are_written_dotted() {
        assert_eq!(dotted("$.price"), "price");
        assert_eq!(dotted("$.items[0]['id']"), "items.0.id");
        assert_eq!(dotted("$[\"a\"].b"), "a.b");
        assert_eq!(dotted("items.0"), "items.0");
        assert_eq!(dotted("$['a.b']"), "$['a.b']");
    }

    #[test]
    fn single_paths_and_match_numbers() {
        assert!(single_path("$.data[0].token"));
        assert!(single_path("token"));
        assert!(!single_path("$..token"));
        assert!(!single_path("$.items[*].id"));
        assert!(!single_path("$.items[?(@.a==1)]"));
        assert!(first_match("0", true).is_ok());
        assert!(first_match("0", false).is_err());
        assert!(first_match("-1", true).is_err());
        assert!(first_match("2", true).is_err());
    }
}
