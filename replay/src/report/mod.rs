//! The six reports of LoadDensity, with its file names and field names: HTML, JSON and XML
//! (a success and a failure file each), CSV, JUnit and the summary JSON.
//!
//! Every report is created mode 0600 (owner only): reports hold URLs and failure messages,
//! whose secrets are masked before the records reach the results (see `redact`), and a
//! report should still not be readable by other users.
//!
//! Per-record reports come from the records the run kept; request bodies are not kept under
//! load, so the JSON and XML `text`, `content` and `headers` fields of successes are empty.

mod html;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::stats::Results;
use crate::{Error, Result};

/// A report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReportKind {
    Html,
    Json,
    Xml,
    Csv,
    Junit,
    Summary,
}

impl ReportKind {
    /// Every format, in `--report` order.
    pub const ALL: [ReportKind; 6] = [
        ReportKind::Html,
        ReportKind::Json,
        ReportKind::Xml,
        ReportKind::Csv,
        ReportKind::Junit,
        ReportKind::Summary,
    ];

    /// The name `--report` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Html => "html",
            ReportKind::Json => "json",
            ReportKind::Xml => "xml",
            ReportKind::Csv => "csv",
            ReportKind::Junit => "junit",
            ReportKind::Summary => "summary",
        }
    }

    /// The base file name when the command line asks for the report.
    pub(crate) fn default_name(self) -> &'static str {
        match self {
            ReportKind::Junit => "loaddensity-junit",
            ReportKind::Summary => "loaddensity-summary",
            _ => "ld-report",
        }
    }
}

impl std::str::FromStr for ReportKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        ReportKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown report `{s}`: one of html, json, xml, csv, junit, summary")
            })
    }
}

/// Writes one report under `dir` with base name `name`; returns the files written.
pub(crate) fn write(
    kind: ReportKind,
    results: &Results,
    dir: &Path,
    name: &str,
) -> Result<Vec<PathBuf>> {
    let path = |suffix: &str| dir.join(format!("{name}{suffix}"));
    let files: Vec<(PathBuf, String)> = match kind {
        ReportKind::Html => vec![(path(".html"), html::render(results))],
        ReportKind::Json => {
            let (ok, failed) = json(results);
            vec![(path("_success.json"), ok), (path("_failure.json"), failed)]
        }
        ReportKind::Xml => {
            let (ok, failed) = xml(results);
            vec![(path("_success.xml"), ok), (path("_failure.xml"), failed)]
        }
        ReportKind::Csv => vec![(path(".csv"), csv(results))],
        ReportKind::Junit => vec![(path(".xml"), junit(results))],
        ReportKind::Summary => {
            let mut text = serde_json::to_string_pretty(&results.summary()).unwrap_or_default();
            text.push('\n');
            vec![(path(".json"), text)]
        }
    };
    let mut written = Vec::new();
    for (p, text) in files {
        if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Error::Report {
                path: parent.display().to_string(),
                source,
            })?;
        }
        ld_plan::fs::write_atomic(&p, text.as_bytes(), true).map_err(|e| Error::Report {
            path: p.display().to_string(),
            source: match e {
                ld_plan::Error::Io { source, .. } => source,
                other => std::io::Error::other(other.to_string()),
            },
        })?;
        written.push(p);
    }
    Ok(written)
}

fn method(results: &Results, id: u32) -> String {
    results
        .names
        .get(id as usize)
        .map(|n| n.method.to_string())
        .unwrap_or_default()
}

fn name(results: &Results, id: u32) -> String {
    results
        .names
        .get(id as usize)
        .map(|n| n.name.to_string())
        .unwrap_or_default()
}

fn status_text(status: u16) -> String {
    if status == 0 {
        "None".into()
    } else {
        status.to_string()
    }
}

/// `Success_TestN` / `Failure_TestN` objects, as LoadDensity's `generate_json`.
fn json(results: &Results) -> (String, String) {
    let mut ok = serde_json::Map::new();
    let mut failed = serde_json::Map::new();
    for r in &results.records {
        let mut m = serde_json::Map::new();
        m.insert("Method".into(), method(results, r.name_id).into());
        m.insert("test_url".into(), r.url.to_string().into());
        m.insert("name".into(), name(results, r.name_id).into());
        m.insert("status_code".into(), status_text(r.status).into());
        match &r.error {
            None => {
                m.insert("text".into(), "".into());
                m.insert("content".into(), "".into());
                m.insert("headers".into(), "".into());
                ok.insert(format!("Success_Test{}", ok.len() + 1), m.into());
            }
            Some(e) => {
                m.insert("error".into(), e.to_string().into());
                failed.insert(format!("Failure_Test{}", failed.len() + 1), m.into());
            }
        }
    }
    let pretty = |m: serde_json::Map<String, serde_json::Value>| {
        serde_json::to_string_pretty(&serde_json::Value::Object(m)).unwrap_or_default()
    };
    (pretty(ok), pretty(failed))
}

pub(crate) fn escape_xml(s: &str) -> String {
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

/// The same records under `<xml_data>`.
fn xml(results: &Results) -> (String, String) {
    let mut ok = String::from("<?xml version=\"1.0\" ?>\n<xml_data>\n");
    let mut failed = ok.clone();
    let (mut n_ok, mut n_failed) = (0, 0);
    for r in &results.records {
        let (out, tag) = match &r.error {
            None => {
                n_ok += 1;
                (&mut ok, format!("Success_Test{n_ok}"))
            }
            Some(_) => {
                n_failed += 1;
                (&mut failed, format!("Failure_Test{n_failed}"))
            }
        };
        let _ = writeln!(out, "\t<{tag}>");
        let mut field = |k: &str, v: &str| {
            let _ = writeln!(out, "\t\t<{k}>{}</{k}>", escape_xml(v));
        };
        field("Method", &method(results, r.name_id));
        field("test_url", &r.url);
        field("name", &name(results, r.name_id));
        field("status_code", &status_text(r.status));
        match &r.error {
            None => {
                field("text", "");
                field("content", "");
                field("headers", "");
            }
            Some(e) => field("error", e),
        }
        let _ = writeln!(out, "\t</{tag}>");
    }
    ok.push_str("</xml_data>\n");
    failed.push_str("</xml_data>\n");
    (ok, failed)
}

pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// LoadDensity's columns; successes first, then failures, as it writes them.
fn csv(results: &Results) -> String {
    let mut out = String::from(
        "outcome,Method,test_url,name,status_code,response_time_ms,response_length,error\r\n",
    );
    for pass in [false, true] {
        for r in results.records.iter().filter(|r| r.error.is_some() == pass) {
            let _ = write!(
                out,
                "{},{},{},{},{},{:.3},{},{}\r\n",
                if pass { "failure" } else { "success" },
                csv_field(&method(results, r.name_id)),
                csv_field(&r.url),
                csv_field(&name(results, r.name_id)),
                if r.status == 0 {
                    String::new()
                } else {
                    r.status.to_string()
                },
                r.latency_us as f64 / 1000.0,
                r.bytes,
                csv_field(r.error.as_deref().unwrap_or("")),
            );
        }
    }
    out
}

/// One `<testcase>` per record, as LoadDensity writes it.
fn junit(results: &Results) -> String {
    let total = results.records.len();
    let failures = results.records.iter().filter(|r| r.error.is_some()).count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><testsuite name=\"loaddensity\" tests=\"{total}\" failures=\"{failures}\">"
    );
    for pass in [false, true] {
        for r in results.records.iter().filter(|r| r.error.is_some() == pass) {
            let n = name(results, r.name_id);
            let n = if n.is_empty() { r.url.to_string() } else { n };
            let classname = escape_xml(&method(results, r.name_id));
            let time = r.latency_us as f64 / 1e6;
            match &r.error {
                None => {
                    let _ = write!(
                        out,
                        "<testcase classname=\"{classname}\" name=\"{}\" time=\"{time:.3}\"/>",
                        escape_xml(&n)
                    );
                }
                Some(e) => {
                    let m = escape_xml(e);
                    let _ = write!(
                        out,
                        "<testcase classname=\"{classname}\" name=\"{}\" time=\"{time:.3}\"><failure message=\"{m}\">{m}</failure></testcase>",
                        escape_xml(&n)
                    );
                }
            }
        }
    }
    out.push_str("</testsuite>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Record;
    use crate::task::NameInfo;
    use std::sync::Arc;

    fn results() -> Results {
        let mut r = Results::new(vec![NameInfo {
            name: Arc::from("GET /a"),
            method: "get".into(),
        }]);
        let rec = |status, error: Option<&str>| Record {
            name_id: 0,
            status,
            latency_us: 1500,
            bytes: 3,
            at_us: 0,
            url: Arc::from("http://h/a?x=1,2"),
            error: error.map(Box::from),
            protocol: crate::protocol::ProtocolKind::Http,
            kind: crate::protocol::FailureKind::Check,
            check: 1,
        };
        r.records.push(rec(200, None));
        r.records
            .push(rec(500, Some("GET /a: status_code expected 200, got 500")));
        r
    }

    #[test]
    fn csv_and_junit_use_loaddensity_fields() {
        let r = results();
        let text = csv(&r);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("outcome,Method,test_url,name,status_code,response_time_ms,response_length,error")
        );
        assert_eq!(
            lines.next(),
            Some("success,get,\"http://h/a?x=1,2\",GET /a,200,1.500,3,")
        );
        assert!(lines.next().is_some_and(|l| l.starts_with("failure,get,")));
        let j = junit(&r);
        assert!(j.contains("<testsuite name=\"loaddensity\" tests=\"2\" failures=\"1\">"));
        assert!(
            j.contains("<testcase classname=\"get\" name=\"GET /a\" time=\"0.00"),
            "{j}"
        );
        assert!(j.contains("<failure message=\"GET /a: status_code expected 200, got 500\">"));
        let (ok, failed) = json(&r);
        let ok: serde_json::Value = serde_json::from_str(&ok).expect("json");
        assert_eq!(ok["Success_Test1"]["status_code"], "200");
        let failed: serde_json::Value = serde_json::from_str(&failed).expect("json");
        assert!(
            failed["Failure_Test1"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("got 500"))
        );
        let (x, _) = xml(&r);
        assert!(x.contains("<xml_data>") && x.contains("<Success_Test1>"));
    }
}
