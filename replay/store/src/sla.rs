//! SLA gates in LoadDensity's rule shape, evaluated on a summary in LoadDensity's shape.
//!
//! A rule is `{"type": ..., "name": optional, "op": "lt" | "lte" | "gt" | "gte" (default
//! `lte`), "value": N}`. Overall: `latency_p50|p90|p95|p99` (ms, every request),
//! `failure_rate` (a fraction), `requests`. Per name (`name` given): `latency_p50..p99` and
//! `latency_mean` over successful requests (LoadDensity's `per_name`) and `requests`; ld also
//! reads `failure_rate` and `latency_max` per name from the summary's `run.names` rows, which
//! LoadDensity's summary does not have. Every rule gets its actual value and a verdict; the
//! failure reason reads as LoadDensity's: `latency_p95(overall)=180 not lte 100`.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

const OPS: &[&str] = &["lt", "lte", "gt", "gte"];
const OVERALL: &[&str] = &[
    "latency_p50",
    "latency_p90",
    "latency_p95",
    "latency_p99",
    "failure_rate",
    "requests",
];
const PER_NAME: &[&str] = &[
    "latency_p50",
    "latency_p90",
    "latency_p95",
    "latency_p99",
    "latency_mean",
    "latency_max",
    "failure_rate",
    "requests",
];

/// One rule's verdict, LoadDensity's `{passed, rule, actual, reason}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlaResult {
    pub passed: bool,
    pub rule: Value,
    pub actual: Option<f64>,
    pub reason: String,
}

/// Reads rules from a JSON list, or `{"rules": [...]}`, checking every one: an unknown type
/// or op or a missing value is an error that says which rule.
pub fn parse_rules(text: &str) -> Result<Vec<Value>> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| Error::Sla(format!("not JSON: {e}")))?;
    rules_from_value(value)
}

/// Like [`parse_rules`] on an already parsed value (the `rules` of `LD_assert_sla`).
pub fn rules_from_value(value: Value) -> Result<Vec<Value>> {
    let rules = match value {
        Value::Array(rules) => rules,
        Value::Object(mut map) if map.contains_key("rules") => match map.remove("rules") {
            Some(Value::Array(rules)) => rules,
            _ => return Err(Error::Sla("`rules` must be a list".into())),
        },
        _ => {
            return Err(Error::Sla(
                "expected a list of rules or {\"rules\": [...]}".into(),
            ));
        }
    };
    for (i, rule) in rules.iter().enumerate() {
        check(rule).map_err(|m| Error::Sla(format!("rule {} ({}): {m}", i + 1, compact(rule))))?;
    }
    Ok(rules)
}

fn check(rule: &Value) -> std::result::Result<(), String> {
    let Value::Object(map) = rule else {
        return Err("a rule is an object {type, name?, op?, value}".into());
    };
    for key in map.keys() {
        if !["type", "name", "op", "value"].contains(&key.as_str()) {
            return Err(format!("unknown field `{key}` (type, name, op, value)"));
        }
    }
    let kind = map
        .get("type")
        .and_then(Value::as_str)
        .ok_or("missing `type`")?;
    let per_name = map.get("name").is_some_and(|n| !n.is_null());
    let known = if per_name { PER_NAME } else { OVERALL };
    if !known.contains(&kind) {
        return Err(format!(
            "unknown type `{kind}` {}: one of {}",
            if per_name { "per name" } else { "overall" },
            known.join(", ")
        ));
    }
    if let Some(op) = map.get("op") {
        let op = op.as_str().map(str::to_ascii_lowercase).unwrap_or_default();
        if !OPS.contains(&op.as_str()) {
            return Err(format!(
                "unknown op {}: lt, lte, gt or gte",
                compact(&map["op"])
            ));
        }
    }
    match map.get("value") {
        Some(v) if v.as_f64().is_some() => Ok(()),
        Some(_) => Err("`value` must be a number".into()),
        None => Err("missing `value`".into()),
    }
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Evaluates every rule on `summary` (LoadDensity's summary shape).
pub fn evaluate(rules: &[Value], summary: &Value) -> Vec<SlaResult> {
    rules.iter().map(|r| evaluate_one(r, summary)).collect()
}

fn evaluate_one(rule: &Value, summary: &Value) -> SlaResult {
    let fail = |actual, reason: String| SlaResult {
        passed: false,
        rule: rule.clone(),
        actual,
        reason,
    };
    let op = rule
        .get("op")
        .and_then(Value::as_str)
        .unwrap_or("lte")
        .to_ascii_lowercase();
    let Some(expected) = rule.get("value").and_then(Value::as_f64) else {
        return fail(None, "rule missing 'value'".into());
    };
    let holds = match op.as_str() {
        "lt" => |a: f64, b: f64| a < b,
        "lte" => |a: f64, b: f64| a <= b,
        "gt" => |a: f64, b: f64| a > b,
        "gte" => |a: f64, b: f64| a >= b,
        other => return fail(None, format!("unsupported op '{other}'")),
    };
    let kind = rule.get("type").and_then(Value::as_str).unwrap_or("");
    let name = rule
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    let Some(actual) = lookup(summary, kind, name) else {
        return fail(None, "metric not available in summary".into());
    };
    if holds(actual, expected) {
        SlaResult {
            passed: true,
            rule: rule.clone(),
            actual: Some(actual),
            reason: String::new(),
        }
    } else {
        fail(
            Some(actual),
            format!(
                "{kind}({})={} not {op} {}",
                name.unwrap_or("overall"),
                number(actual),
                number(expected)
            ),
        )
    }
}

fn lookup(summary: &Value, kind: &str, name: Option<&str>) -> Option<f64> {
    match name {
        Some(name) => {
            let block = summary.get("per_name").and_then(|p| p.get(name));
            let row = summary
                .pointer("/run/names")
                .and_then(Value::as_array)
                .and_then(|rows| {
                    rows.iter()
                        .find(|r| r.get("name").and_then(Value::as_str) == Some(name))
                });
            let from_block = |key: &str| block.and_then(|b| b.get(key)).and_then(Value::as_f64);
            match kind {
                "latency_p50" => from_block("p50_ms"),
                "latency_p90" => from_block("p90_ms"),
                "latency_p95" => from_block("p95_ms"),
                "latency_p99" => from_block("p99_ms"),
                "latency_mean" => from_block("mean_ms"),
                "requests" => from_block("count")
                    .or_else(|| row.and_then(|r| r.get("requests")).and_then(Value::as_f64)),
                "latency_max" => row.and_then(|r| r.get("max_ms")).and_then(Value::as_f64),
                "failure_rate" => row.and_then(|r| {
                    let n = r.get("requests")?.as_f64()?;
                    let f = r.get("failures")?.as_f64()?;
                    Some(if n > 0.0 { f / n } else { 0.0 })
                }),
                _ => None,
            }
        }
        None => match kind {
            "failure_rate" => summary
                .pointer("/totals/failure_rate")
                .and_then(Value::as_f64),
            "requests" => summary.pointer("/totals/requests").and_then(Value::as_f64),
            "latency_p50" => summary
                .pointer("/latency_overall/p50_ms")
                .and_then(Value::as_f64),
            "latency_p90" => summary
                .pointer("/latency_overall/p90_ms")
                .and_then(Value::as_f64),
            "latency_p95" => summary
                .pointer("/latency_overall/p95_ms")
                .and_then(Value::as_f64),
            "latency_p99" => summary
                .pointer("/latency_overall/p99_ms")
                .and_then(Value::as_f64),
            _ => None,
        },
    }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// True when every rule held.
pub fn all_passed(results: &[SlaResult]) -> bool {
    results.iter().all(|r| r.passed)
}

/// One line per rule: verdict, rule, actual value, and why it failed.
pub fn render(results: &[SlaResult]) -> String {
    let mut out = String::new();
    let breached = results.iter().filter(|r| !r.passed).count();
    let _ = writeln!(
        out,
        "SLA: {} rule{}, {}",
        results.len(),
        if results.len() == 1 { "" } else { "s" },
        if breached == 0 {
            "all held".to_string()
        } else {
            format!("{breached} breached")
        }
    );
    for r in results {
        let kind = r.rule.get("type").and_then(Value::as_str).unwrap_or("?");
        let scope = r
            .rule
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("overall");
        let op = r.rule.get("op").and_then(Value::as_str).unwrap_or("lte");
        let value = r
            .rule
            .get("value")
            .and_then(Value::as_f64)
            .map(number)
            .unwrap_or_else(|| "?".into());
        let actual = r.actual.map(number).unwrap_or_else(|| "n/a".into());
        let _ = write!(
            out,
            "  {}  {kind}({scope}) {op} {value}: actual {actual}",
            if r.passed { "pass" } else { "FAIL" }
        );
        if !r.passed {
            let _ = write!(out, "  ({})", r.reason);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn summary() -> Value {
        json!({
            "totals": {"requests": 100, "successes": 98, "failures": 2, "failure_rate": 0.02},
            "latency_overall": {"count": 100, "p50_ms": 10.0, "p90_ms": 50.0, "p95_ms": 180.0, "p99_ms": 200.0, "max_ms": 250.0},
            "per_name": {"GET /a": {"count": 98, "min_ms": 1.0, "max_ms": 30.0, "mean_ms": 8.5, "p50_ms": 8.0, "p90_ms": 20.0, "p95_ms": 25.0, "p99_ms": 29.0}},
            "run": {"names": [{"name": "GET /a", "requests": 100, "failures": 2, "max_ms": 250.0}]}
        })
    }

    #[test]
    fn rules_get_actual_values_and_loaddensity_reasons() {
        let rules = parse_rules(
            r#"[{"type": "latency_p95", "op": "lte", "value": 100},
                {"type": "failure_rate", "op": "lt", "value": 0.05},
                {"type": "requests", "op": "gte", "value": 100},
                {"type": "latency_mean", "name": "GET /a", "value": 10},
                {"type": "failure_rate", "name": "GET /a", "op": "lte", "value": 0.01},
                {"type": "latency_p95", "name": "GET /missing", "value": 10}]"#,
        )
        .expect("rules");
        let r = evaluate(&rules, &summary());
        assert_eq!(
            r.iter().map(|r| r.passed).collect::<Vec<_>>(),
            [false, true, true, true, false, false]
        );
        assert_eq!(r[0].actual, Some(180.0));
        assert_eq!(r[0].reason, "latency_p95(overall)=180 not lte 100");
        assert_eq!(r[4].reason, "failure_rate(GET /a)=0.02 not lte 0.01");
        assert_eq!(r[5].reason, "metric not available in summary");
        assert!(!all_passed(&r));
        let text = render(&r);
        assert!(text.contains("3 breached"), "{text}");
        assert!(
            text.contains("FAIL  latency_p95(overall) lte 100: actual 180"),
            "{text}"
        );
        assert!(
            text.contains("pass  requests(overall) gte 100: actual 100"),
            "{text}"
        );
    }

    #[test]
    fn bad_rules_say_which_and_why() {
        let e = parse_rules(r#"{"rules": [{"type": "latency_p95", "value": 1}, {"type": "latency_p42", "value": 1}]}"#)
            .expect_err("bad type")
            .to_string();
        assert!(
            e.contains("rule 2") && e.contains("latency_p42") && e.contains("latency_p95"),
            "{e}"
        );
        assert!(parse_rules(r#"[{"type": "requests", "op": "eq", "value": 1}]"#).is_err());
        assert!(parse_rules(r#"[{"type": "requests"}]"#).is_err());
        assert!(
            parse_rules(r#"[{"type": "latency_mean", "value": 1}]"#).is_err(),
            "mean is per name only"
        );
        assert!(parse_rules("nope").is_err());
    }
}
