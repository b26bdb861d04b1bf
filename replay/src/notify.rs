//! Where a run's result goes besides the terminal: Slack and Teams webhooks, GitHub Actions'
//! annotations and job summary. This module builds the messages and posts them; the binary
//! decides when (it reads the environment and prints), so nothing here prints or reads the
//! process environment.
//!
//! The payloads are LoadDensity's (`LD_post_slack_summary`, `LD_post_teams_summary`): Slack
//! Block Kit with requests, failures, failure rate and p95, and a legacy Teams MessageCard
//! with the same facts; ld adds the most frequent failures and, when a baseline comparison
//! ran, its findings.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use rand::SeedableRng;
use serde_json::{Value, json};

use crate::cookies::Jar;
use crate::http::HttpTransport;
use crate::tls::TlsSettings;
use crate::{HttpVersion, Outcome};

/// A chat a summary can be posted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Slack,
    Teams,
}

impl Channel {
    /// `slack` or `teams`.
    pub fn parse(name: &str) -> Option<Channel> {
        match name.to_ascii_lowercase().as_str() {
            "slack" => Some(Channel::Slack),
            "teams" => Some(Channel::Teams),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Slack => "slack",
            Channel::Teams => "teams",
        }
    }
}

/// What a plan's notification commands ask of the caller, in the plan's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Post the summary to this webhook (`webhook_url`, `title`).
    Post {
        channel: Channel,
        url: String,
        title: String,
    },
    /// Print the failures as GitHub Actions annotations (`title`).
    Annotate { title: String },
}

/// The most failure groups and diff lines a message carries.
const MAX_LINES: usize = 10;
/// How long one post may take, connect to answer.
pub const POST_TIMEOUT: Duration = Duration::from_secs(10);

fn facts(outcome: &Outcome) -> Vec<(&'static str, String)> {
    let t = &outcome.summary.totals;
    vec![
        ("Requests", t.requests.to_string()),
        ("Failures", t.failures.to_string()),
        ("Failure rate", format!("{:.2}%", t.failure_rate * 100.0)),
        (
            "P95 latency",
            format!("{:.0} ms", outcome.summary.latency_overall.p95_ms),
        ),
    ]
}

fn failure_lines(outcome: &Outcome) -> Vec<String> {
    outcome
        .failures
        .iter()
        .take(MAX_LINES)
        .map(|f| format!("{} x {} {}", f.count, f.kind, f.message))
        .collect()
}

/// The message for `channel`: `title`, the run's figures, its most frequent failures and,
/// when given, the baseline comparison's text (`diff`).
pub fn payload(channel: Channel, outcome: &Outcome, title: &str, diff: Option<&str>) -> Value {
    let verdict = if outcome.passed { "passed" } else { "failed" };
    let failures = failure_lines(outcome);
    let diff = diff
        .map(|d| d.lines().take(MAX_LINES * 2).collect::<Vec<_>>().join("\n"))
        .filter(|d| !d.trim().is_empty());
    match channel {
        Channel::Slack => {
            let fields: Vec<Value> = facts(outcome)
                .into_iter()
                .map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{k}*\n{v}")}))
                .collect();
            let mut blocks = vec![
                json!({"type": "header", "text": {"type": "plain_text", "text": title}}),
                json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("Run {verdict}")}}),
                json!({"type": "section", "fields": fields}),
            ];
            if !failures.is_empty() {
                blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
                    "text": format!("*Failures*\n```{}```", failures.join("\n"))}}));
            }
            if let Some(d) = &diff {
                blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
                    "text": format!("*Against the baseline*\n```{d}```")}}));
            }
            json!({"text": format!("{title}: {verdict}"), "blocks": blocks})
        }
        Channel::Teams => {
            let facts: Vec<Value> = facts(outcome)
                .into_iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect();
            let mut sections = vec![json!({"facts": facts, "markdown": true})];
            if !failures.is_empty() {
                sections.push(json!({"title": "Failures", "text": failures.join("<br>")}));
            }
            if let Some(d) = &diff {
                sections.push(
                    json!({"title": "Against the baseline", "text": format!("<pre>{d}</pre>")}),
                );
            }
            json!({
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "summary": title,
                "themeColor": if outcome.passed { "2EB886" } else { "D40E0D" },
                "title": format!("{title}: {verdict}"),
                "sections": sections,
            })
        }
    }
}

/// POSTs `body` as JSON to `url` within [`POST_TIMEOUT`]; the answer's status. TLS is
/// verified against the system's roots (and `ca_file`), unless `insecure`.
pub async fn post_json(
    url: &str,
    body: &Value,
    insecure: bool,
    ca_file: Option<&std::path::Path>,
) -> Result<u16, String> {
    let fields = json!({
        "url": url,
        "headers": {"Content-Type": "application/json"},
        "body": serde_json::to_string(body).map_err(|e| e.to_string())?,
    });
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0);
    let prepared = crate::task::prepare(&fields, std::path::Path::new("."), &mut rng, false)?;
    let settings = TlsSettings {
        verify: !insecure,
        ca_files: ca_file.map(|p| p.to_path_buf()).into_iter().collect(),
        client_cert: None,
    };
    let tls = Arc::new(
        crate::tls::client_config(&settings, HttpVersion::Auto).map_err(|e| e.to_string())?,
    );
    let mut transport = HttpTransport::new(HttpVersion::Auto, 64 * 1024);
    let mut jar = Jar::default();
    let sent = tokio::time::timeout(
        POST_TIMEOUT,
        transport.send(
            &mut jar,
            &Method::POST,
            &prepared,
            &tls,
            false,
            false,
            false,
        ),
    )
    .await
    .map_err(|_| format!("no answer within {}s", POST_TIMEOUT.as_secs()))??;
    Ok(sent.status)
}

/// GitHub Actions workflow commands: one `::error` line per failure group (the most
/// frequent first, at most ten) and one per name that regressed against the baseline.
pub fn github_annotations(outcome: &Outcome, plan: &str, regressions: &[String]) -> Vec<String> {
    let esc_prop = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
            .replace(':', "%3A")
            .replace(',', "%2C")
    };
    let esc = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let mut out = Vec::new();
    for f in outcome.failures.iter().take(MAX_LINES) {
        out.push(format!(
            "::error file={},title={}::{} x {}",
            esc_prop(plan),
            esc_prop(&format!("ld: {} ({})", f.name, f.kind)),
            f.count,
            esc(&f.message)
        ));
    }
    for r in regressions.iter().take(MAX_LINES) {
        out.push(format!(
            "::error file={},title={}::{}",
            esc_prop(plan),
            esc_prop("ld: regression against the baseline"),
            esc(r)
        ));
    }
    out
}

/// The run as Markdown, for `$GITHUB_STEP_SUMMARY`: the verdict, a table per name, the most
/// frequent failures and the baseline comparison.
pub fn markdown_summary(outcome: &Outcome, title: &str, diff: Option<&str>) -> String {
    let mut md = String::new();
    let verdict = if outcome.passed { "passed" } else { "failed" };
    let _ = writeln!(md, "## {title}: {verdict}\n");
    for (k, v) in facts(outcome) {
        let _ = writeln!(md, "- **{k}**: {v}");
    }
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let _ = writeln!(
        md,
        "\n| name | requests | failed | req/s | p50 ms | p95 ms | p99 ms |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for r in &outcome.summary.run.names {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            cell(&r.name),
            r.requests,
            r.failures,
            r.requests_per_s,
            r.p50_ms,
            r.p95_ms,
            r.p99_ms
        );
    }
    let failures = failure_lines(outcome);
    if !failures.is_empty() {
        let _ = writeln!(md, "\n### Failures\n");
        for f in failures {
            let _ = writeln!(md, "- {}", cell(&f));
        }
    }
    if let Some(d) = diff.filter(|d| !d.trim().is_empty()) {
        let _ = writeln!(
            md,
            "\n### Against the baseline\n\n```\n{}\n```",
            d.trim_end()
        );
    }
    md
}
