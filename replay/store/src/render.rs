//! A diff for people and machines: a terminal table, JSON (LoadDensity's `diff_runs` keys
//! with ld's findings added), Markdown for a pull-request comment, JUnit for CI, and an HTML
//! section the replay's HTML report embeds.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use crate::aggregate::Aggregate;
use crate::diff::{Diff, NameDiff, Presence, fmt_ms, percent};

/// An output format of `ld diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Markdown,
    Junit,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "markdown" | "md" => Ok(Format::Markdown),
            "junit" => Ok(Format::Junit),
            other => Err(format!(
                "unknown format `{other}`: table, json, markdown or junit"
            )),
        }
    }
}

/// Renders `diff` in `format`; `color` applies to the table only.
pub fn render(diff: &Diff, format: Format, color: bool) -> String {
    match format {
        Format::Table => table(diff, color),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&to_json(diff)).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Markdown => markdown(diff),
        Format::Junit => junit(diff),
    }
}

fn pair<T>(n: &NameDiff, f: impl Fn(&Aggregate) -> T, show: impl Fn(T) -> String) -> String {
    let side = |a: Option<&Aggregate>| a.map(|a| show(f(a))).unwrap_or_else(|| "–".into());
    format!(
        "{} → {}",
        side(n.baseline.as_ref()),
        side(n.current.as_ref())
    )
}

fn verdict(n: &NameDiff) -> &'static str {
    match n.presence {
        Presence::Added => "ADDED",
        Presence::Missing => "MISSING",
        Presence::Both if n.regressed() => "REGRESSED",
        Presence::Both if !n.findings.is_empty() => "changed",
        Presence::Both => "ok",
    }
}

fn headline(diff: &Diff) -> String {
    format!(
        "{} against {}",
        diff.current.describe(),
        diff.baseline.describe()
    )
}

fn conclusion(diff: &Diff) -> String {
    let n = diff.regressed_names();
    if n == 0 {
        format!(
            "no regression ({} request{} compared)",
            diff.names.len(),
            if diff.names.len() == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "{n} of {} request{} regressed",
            diff.names.len(),
            if diff.names.len() == 1 { "" } else { "s" }
        )
    }
}

/// The terminal table: one row per name, then every finding.
pub fn table(diff: &Diff, color: bool) -> String {
    let paint = |text: &str, code: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    let header = [
        "request", "requests", "failed", "p50 ms", "p95 ms", "p99 ms", "",
    ];
    let rows: Vec<[String; 7]> = diff
        .names
        .iter()
        .map(|n| {
            [
                n.name.clone(),
                pair(n, |a| a.requests, |v| v.to_string()),
                pair(n, |a| a.failure_rate(), percent),
                pair(n, |a| a.p50_ms, fmt_ms),
                pair(n, |a| a.p95_ms, fmt_ms),
                pair(n, |a| a.p99_ms, fmt_ms),
                verdict(n).to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    widths[0] = widths[0].min(50);
    let cell = |text: &str, w: usize| {
        let count = text.chars().count();
        if count > w {
            let mut s: String = text.chars().take(w.saturating_sub(1)).collect();
            s.push('…');
            s
        } else {
            format!("{text}{}", " ".repeat(w - count))
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", headline(diff));
    let line: Vec<String> = header.iter().zip(widths).map(|(h, w)| cell(h, w)).collect();
    let _ = writeln!(out, "{}", line.join("  ").trim_end());
    for (r, n) in rows.iter().zip(&diff.names) {
        let mut cells: Vec<String> = r.iter().zip(widths).map(|(c, w)| cell(c, w)).collect();
        if let Some(last) = cells.last_mut() {
            let v = last.trim_end().to_string();
            *last = match verdict(n) {
                "ok" => paint(&v, "32"),
                "changed" => paint(&v, "33"),
                _ => paint(&v, "1;31"),
            };
        }
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    let regressions: Vec<(&str, &str)> = diff
        .names
        .iter()
        .flat_map(|n| {
            n.findings
                .iter()
                .filter(|f| f.regression)
                .map(move |f| (n.name.as_str(), f.message.as_str()))
        })
        .collect();
    let notes: Vec<(&str, &str)> = diff
        .names
        .iter()
        .flat_map(|n| {
            n.findings
                .iter()
                .filter(|f| !f.regression)
                .map(move |f| (n.name.as_str(), f.message.as_str()))
        })
        .collect();
    if !regressions.is_empty() {
        let _ = writeln!(out, "\n{}", paint("regressions:", "1;31"));
        for (name, m) in &regressions {
            let _ = writeln!(out, "  {name}: {m}");
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "\nchanges that break nothing:");
        for (name, m) in &notes {
            let _ = writeln!(out, "  {name}: {m}");
        }
    }
    let _ = writeln!(out, "\n{}", conclusion(diff));
    out
}

fn delta(base: Option<f64>, cur: Option<f64>) -> Value {
    let (b, c) = (base.unwrap_or(0.0), cur.unwrap_or(0.0));
    let abs = c - b;
    json!({
        "baseline": b,
        "current": c,
        "abs": abs,
        "pct": if b > 0.0 { abs / b } else { 0.0 },
    })
}

/// The JSON document: LoadDensity's `diff_runs` keys (`baseline_run_id`, `current_run_id`,
/// `per_name.NAME.deltas`, `regressions[{name, metrics}]`, `has_regressions`) and ld's
/// (`baseline`, `current`, `thresholds`, per-name `presence`, `statuses`, `findings`).
pub fn to_json(diff: &Diff) -> Value {
    let mut per_name = Map::new();
    let mut regressions = Vec::new();
    for n in &diff.names {
        let (b, c) = (n.baseline.as_ref(), n.current.as_ref());
        let metric = |f: fn(&Aggregate) -> f64| delta(b.map(f), c.map(f));
        let statuses = |a: Option<&Aggregate>| {
            a.map(|a| {
                Value::Object(
                    a.statuses
                        .iter()
                        .map(|(k, v)| (k.to_string(), Value::from(*v)))
                        .collect(),
                )
            })
            .unwrap_or(Value::Null)
        };
        per_name.insert(
            n.name.clone(),
            json!({
                "method": n.method,
                "presence": n.presence,
                "deltas": {
                    "p50_ms": metric(|a| a.p50_ms),
                    "p95_ms": metric(|a| a.p95_ms),
                    "p99_ms": metric(|a| a.p99_ms),
                    "failure_rate": metric(Aggregate::failure_rate),
                    "mean_ms": metric(|a| a.mean_ms),
                    "mean_bytes": metric(Aggregate::mean_bytes),
                    "requests": metric(|a| a.requests as f64),
                },
                "statuses": {"baseline": statuses(b), "current": statuses(c)},
                "findings": n.findings,
                "regressed": n.regressed(),
            }),
        );
        if n.regressed() {
            let metrics: Vec<&str> = n
                .findings
                .iter()
                .filter(|f| f.regression)
                .map(|f| f.kind.metric())
                .collect();
            regressions.push(json!({"name": n.name, "metrics": metrics}));
        }
    }
    json!({
        "baseline_run_id": diff.baseline.id,
        "current_run_id": diff.current.id,
        "baseline": diff.baseline,
        "current": diff.current,
        "thresholds": diff.thresholds,
        "per_name": per_name,
        "regressions": regressions,
        "has_regressions": diff.has_regressions(),
    })
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('`', "'").replace('\n', " ")
}

/// Markdown for a pull-request comment.
pub fn markdown(diff: &Diff) -> String {
    let mut out = String::new();
    let icon = if diff.has_regressions() { "❌" } else { "✅" };
    let _ = writeln!(out, "### {icon} ld diff: {}\n", conclusion(diff));
    let _ = writeln!(out, "{}\n", md_escape(&headline(diff)));
    let _ = writeln!(
        out,
        "| | request | requests | failed | p50 ms | p95 ms | p99 ms | what changed |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---|");
    for n in &diff.names {
        let mark = if n.regressed() {
            "❌"
        } else if n.findings.is_empty() {
            "✅"
        } else {
            "ℹ️"
        };
        let changes: Vec<String> = n.findings.iter().map(|f| md_escape(&f.message)).collect();
        let _ = writeln!(
            out,
            "| {mark} | `{}` | {} | {} | {} | {} | {} | {} |",
            md_escape(&n.name),
            pair(n, |a| a.requests, |v| v.to_string()),
            pair(n, |a| a.failure_rate(), percent),
            pair(n, |a| a.p50_ms, fmt_ms),
            pair(n, |a| a.p95_ms, fmt_ms),
            pair(n, |a| a.p99_ms, fmt_ms),
            if changes.is_empty() {
                "–".to_string()
            } else {
                changes.join("<br>")
            }
        );
    }
    out
}

fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit: one test case per request name, failed when it regressed.
pub fn junit(diff: &Diff) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"ld diff\" tests=\"{}\" failures=\"{}\">\n",
        diff.names.len(),
        diff.regressed_names()
    );
    let _ = writeln!(
        out,
        "  <properties><property name=\"baseline_run_id\" value=\"{}\"/><property name=\"current_run_id\" value=\"{}\"/></properties>",
        diff.baseline.id, diff.current.id
    );
    for n in &diff.names {
        let _ = write!(
            out,
            "  <testcase classname=\"ld.diff\" name=\"{}\"",
            xml(&n.name)
        );
        let failures: Vec<&str> = n
            .findings
            .iter()
            .filter(|f| f.regression)
            .map(|f| f.message.as_str())
            .collect();
        if failures.is_empty() {
            out.push_str("/>\n");
        } else {
            let text = failures.join("\n");
            let _ = writeln!(
                out,
                "><failure message=\"{}\">{}</failure></testcase>",
                xml(failures[0]),
                xml(&text)
            );
        }
    }
    out.push_str("</testsuite>\n");
    out
}

/// An HTML `<section>` (own scoped style, no script) the replay's HTML report embeds.
pub fn html_section(diff: &Diff) -> String {
    let mut out = String::new();
    let bad = diff.has_regressions();
    out.push_str(
        "<section class=\"ld-diff\"><style>\
.ld-diff table{border-collapse:collapse;width:100%;font-size:13px}\
.ld-diff th,.ld-diff td{border-bottom:1px solid #e3e3e3;padding:4px 8px;text-align:right;vertical-align:top}\
.ld-diff th:nth-child(2),.ld-diff td:nth-child(2),.ld-diff td:last-child,.ld-diff th:last-child{text-align:left}\
.ld-diff .bad{color:#b3261e;font-weight:600}.ld-diff .ok{color:#1e7f34}.ld-diff .info{color:#8a6d00}\
.ld-diff ul{margin:0;padding-left:16px}\
</style>",
    );
    let _ = write!(
        out,
        "<h2>Compared with the baseline</h2><p class=\"{}\">{}</p><p>{}</p>",
        if bad { "bad" } else { "ok" },
        xml(&conclusion(diff)),
        xml(&headline(diff))
    );
    out.push_str("<table><thead><tr><th></th><th>request</th><th>requests</th><th>failed</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>what changed</th></tr></thead><tbody>");
    for n in &diff.names {
        let (class, mark) = if n.regressed() {
            ("bad", "✗")
        } else if n.findings.is_empty() {
            ("ok", "✓")
        } else {
            ("info", "•")
        };
        let changes: String = if n.findings.is_empty() {
            "–".into()
        } else {
            let items: String = n
                .findings
                .iter()
                .map(|f| {
                    format!(
                        "<li class=\"{}\">{}</li>",
                        if f.regression { "bad" } else { "info" },
                        xml(&f.message)
                    )
                })
                .collect();
            format!("<ul>{items}</ul>")
        };
        let _ = write!(
            out,
            "<tr><td class=\"{class}\">{mark}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{changes}</td></tr>",
            xml(&n.name),
            xml(&pair(n, |a| a.requests, |v| v.to_string())),
            xml(&pair(n, |a| a.failure_rate(), percent)),
            xml(&pair(n, |a| a.p50_ms, fmt_ms)),
            xml(&pair(n, |a| a.p95_ms, fmt_ms)),
            xml(&pair(n, |a| a.p99_ms, fmt_ms)),
        );
    }
    out.push_str("</tbody></table></section>");
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::diff::{RunRef, Thresholds, compare};

    fn agg(name: &str, p: f64, status: u16) -> Aggregate {
        Aggregate {
            name: name.into(),
            method: "GET".into(),
            requests: 10,
            failures: if status == 200 { 0 } else { 10 },
            bytes: 1000,
            min_ms: p,
            mean_ms: p,
            p50_ms: p,
            p90_ms: p,
            p95_ms: p,
            p99_ms: p,
            max_ms: p,
            statuses: BTreeMap::from([(status, 10)]),
            shape: None,
        }
    }

    fn diff() -> Diff {
        let r = |id| RunRef {
            id,
            label: None,
            started_at: String::new(),
            outcome: "passed".into(),
            baseline: (id == 1).then(|| "main".to_string()),
        };
        compare(
            r(1),
            &[
                agg("GET /a|b", 1.0, 200),
                agg("GET <slow>", 1.0, 200),
                agg("GET /gone", 1.0, 200),
            ],
            r(2),
            &[agg("GET /a|b", 1.0, 200), agg("GET <slow>", 250.0, 200)],
            &Thresholds::default(),
        )
    }

    #[test]
    fn every_format_names_the_regressions() {
        let d = diff();
        let t = table(&d, false);
        assert!(t.contains("run 2 against run 1 (baseline \"main\")"), "{t}");
        assert!(t.contains("REGRESSED") && t.contains("MISSING"), "{t}");
        assert!(t.contains("GET <slow>: p95 1.00 → 250 ms"), "{t}");
        assert!(t.contains("2 of 3 requests regressed"), "{t}");
        let j = to_json(&d);
        assert_eq!(j["has_regressions"], true);
        assert_eq!(j["regressions"][0]["name"], "GET <slow>");
        assert_eq!(
            j["regressions"][0]["metrics"],
            json!(["p50_ms", "p95_ms", "p99_ms"])
        );
        assert_eq!(
            j["per_name"]["GET <slow>"]["deltas"]["p95_ms"]["abs"],
            249.0
        );
        assert_eq!(j["per_name"]["GET /gone"]["presence"], "missing");
        let m = markdown(&d);
        assert!(m.contains("| ✅ | `GET /a\\|b` |"), "{m}");
        assert!(
            m.starts_with("### ❌ ld diff: 2 of 3 requests regressed"),
            "{m}"
        );
        let x = junit(&d);
        assert!(
            x.contains("<testsuite name=\"ld diff\" tests=\"3\" failures=\"2\">"),
            "{x}"
        );
        assert!(
            x.contains("name=\"GET &lt;slow&gt;\"><failure message=\"p50"),
            "{x}"
        );
        let h = html_section(&d);
        assert!(h.starts_with("<section class=\"ld-diff\">") && h.ends_with("</section>"));
        assert!(h.contains("GET &lt;slow&gt;") && !h.contains("<script"));
    }

    #[test]
    fn a_clean_diff_says_so() {
        let r = |id| RunRef {
            id,
            label: Some("ci".into()),
            started_at: String::new(),
            outcome: "passed".into(),
            baseline: None,
        };
        let d = compare(
            r(1),
            &[agg("a", 1.0, 200)],
            r(2),
            &[agg("a", 1.1, 200)],
            &Thresholds::default(),
        );
        assert!(table(&d, false).contains("no regression (1 request compared)"));
        assert!(markdown(&d).starts_with("### ✅"));
        assert!(junit(&d).contains("failures=\"0\""));
    }
}
