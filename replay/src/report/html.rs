//! The HTML report: one self-contained file (no script, no external asset) with inline SVG
//! charts of requests per second and latency percentiles over time, a table per name and the
//! failures grouped by message.

use std::fmt::Write as _;

use super::escape_xml as esc;
use crate::stats::Results;

const W: f64 = 900.0;
const H: f64 = 240.0;
const PAD_L: f64 = 60.0;
const PAD_R: f64 = 16.0;
const PAD_T: f64 = 16.0;
const PAD_B: f64 = 34.0;

struct Series<'a> {
    label: &'a str,
    color: &'a str,
    points: Vec<f64>,
}

/// A line chart over the timeline; x is seconds since the start.
fn chart(title: &str, unit: &str, bucket_s: f64, series: &[Series<'_>]) -> String {
    let n = series.iter().map(|s| s.points.len()).max().unwrap_or(0);
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .fold(0.0f64, f64::max);
    let top = nice_ceiling(max);
    let plot_w = W - PAD_L - PAD_R;
    let plot_h = H - PAD_T - PAD_B;
    let x = |i: usize| {
        PAD_L
            + if n <= 1 {
                plot_w / 2.0
            } else {
                plot_w * i as f64 / (n - 1) as f64
            }
    };
    let y = |v: f64| PAD_T + plot_h - if top > 0.0 { plot_h * v / top } else { 0.0 };
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        esc(title)
    );
    for k in 0..=4 {
        let v = top * k as f64 / 4.0;
        let yy = y(v);
        let _ = write!(
            svg,
            "<line x1=\"{PAD_L}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" class=\"grid\"/><text x=\"{}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{}</text>",
            W - PAD_R,
            PAD_L - 6.0,
            yy + 4.0,
            short(v)
        );
    }
    let ticks = n.clamp(1, 8);
    for k in 0..ticks {
        let i = if ticks == 1 {
            0
        } else {
            k * (n.saturating_sub(1)) / (ticks - 1)
        };
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" class=\"axis\" text-anchor=\"middle\">{}s</text>",
            x(i),
            H - PAD_B + 18.0,
            short(i as f64 * bucket_s)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"12\" y=\"{:.1}\" class=\"axis\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">{}</text>",
        PAD_T + plot_h / 2.0,
        PAD_T + plot_h / 2.0,
        esc(unit)
    );
    for s in series {
        if s.points.is_empty() {
            continue;
        }
        let pts: Vec<String> = s
            .points
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        if pts.len() == 1 {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{}\"/>",
                x(0),
                y(s.points[0]),
                s.color
            );
        } else {
            let _ = write!(
                svg,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
                s.color,
                pts.join(" ")
            );
        }
    }
    svg.push_str("</svg><div class=\"legend\">");
    for s in series {
        let _ = write!(
            svg,
            "<span><i style=\"background:{}\"></i>{}</span>",
            s.color,
            esc(s.label)
        );
    }
    svg.push_str("</div></figure>");
    svg
}

fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

pub(super) fn render(results: &Results) -> String {
    let summary = results.summary();
    let bucket_s = results.bucket_us as f64 / 1e6;
    // The last bucket is usually partial: rates divide by the time it actually covers, and a
    // sliver of under a fifth of a bucket is left out rather than drawn as a cliff.
    let end_s = results.end_us as f64 / 1e6;
    let span = |i: usize| (end_s - i as f64 * bucket_s).clamp(0.0, bucket_s);
    let shown = results
        .timeline
        .iter()
        .enumerate()
        .take_while(|(i, _)| {
            *i + 1 < results.timeline.len() || end_s == 0.0 || span(*i) >= bucket_s * 0.2
        })
        .count();
    let width = |i: usize| {
        if end_s > 0.0 {
            span(i).max(1e-9)
        } else {
            bucket_s
        }
    };
    let timeline = &results.timeline[..shown];
    let rps = Series {
        label: "requests/s",
        color: "#2563eb",
        points: timeline
            .iter()
            .enumerate()
            .map(|(i, b)| b.requests as f64 / width(i))
            .collect(),
    };
    let fps = Series {
        label: "failures/s",
        color: "#dc2626",
        points: timeline
            .iter()
            .enumerate()
            .map(|(i, b)| b.failures as f64 / width(i))
            .collect(),
    };
    let q = |quantile: f64| -> Vec<f64> {
        timeline
            .iter()
            .map(|b| {
                if b.latency.is_empty() {
                    0.0
                } else {
                    b.latency.value_at_quantile(quantile) as f64 / 1000.0
                }
            })
            .collect()
    };
    let lat = [
        Series {
            label: "p50",
            color: "#16a34a",
            points: q(0.50),
        },
        Series {
            label: "p95",
            color: "#d97706",
            points: q(0.95),
        },
        Series {
            label: "p99",
            color: "#dc2626",
            points: q(0.99),
        },
    ];
    let t = &summary.totals;
    let o = &summary.latency_overall;
    let verdict = if t.failures == 0 {
        ("pass", "every check held")
    } else {
        ("fail", "failures")
    };
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>ld replay report</title><style>{CSS}</style></head><body><header><h1>ld replay report</h1><p class=\"sub\">started {} · {:.1} s</p></header>",
        esc(&summary.run.started_at),
        summary.run.duration_s
    );
    let _ = write!(
        h,
        "<section class=\"cards\"><div class=\"card {cls}\"><b>{verdict_text}</b><span>{failures} failed of {requests}</span></div><div class=\"card\"><b>{rps:.0}</b><span>requests/s</span></div><div class=\"card\"><b>{p50} ms</b><span>p50</span></div><div class=\"card\"><b>{p95} ms</b><span>p95</span></div><div class=\"card\"><b>{p99} ms</b><span>p99</span></div><div class=\"card\"><b>{rate:.2}%</b><span>failure rate</span></div>{dropped}</section>",
        cls = verdict.0,
        verdict_text = verdict.1,
        failures = t.failures,
        requests = t.requests,
        rps = summary.run.requests_per_s,
        p50 = ms(o.p50_ms),
        p95 = ms(o.p95_ms),
        p99 = ms(o.p99_ms),
        rate = t.failure_rate * 100.0,
        dropped = if summary.run.dropped > 0 {
            format!(
                "<div class=\"card fail\"><b>{}</b><span>dropped arrivals</span></div>",
                summary.run.dropped
            )
        } else {
            String::new()
        }
    );
    h.push_str("<section class=\"charts\">");
    h.push_str(&chart("Throughput", "per second", bucket_s, &[rps, fps]));
    h.push_str(&chart("Latency percentiles", "ms", bucket_s, &lat));
    h.push_str("</section>");
    h.push_str("<section><h2>Requests by name</h2><table><thead><tr><th>name</th><th>method</th><th>requests</th><th>failures</th><th>req/s</th><th>mean ms</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>max</th></tr></thead><tbody>");
    for r in &summary.run.names {
        let _ = write!(
            h,
            "<tr{}><td class=\"name\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if r.failures > 0 { " class=\"bad\"" } else { "" },
            esc(&r.name),
            esc(&r.method),
            r.requests,
            r.failures,
            r.requests_per_s,
            ms(r.mean_ms),
            ms(r.p50_ms),
            ms(r.p90_ms),
            ms(r.p95_ms),
            ms(r.p99_ms),
            ms(r.max_ms)
        );
    }
    h.push_str("</tbody></table></section>");
    h.push_str("<section><h2>Failures</h2>");
    if results.failures.is_empty() {
        h.push_str("<p class=\"none\">No request failed.</p>");
    } else {
        h.push_str(
            "<table><thead><tr><th>count</th><th>name</th><th>message</th></tr></thead><tbody>",
        );
        let mut groups = results.failures.clone();
        groups.sort_by_key(|g| std::cmp::Reverse(g.count));
        for f in groups.iter().take(100) {
            let name = results
                .names
                .get(f.name_id as usize)
                .map(|n| n.name.to_string())
                .unwrap_or_default();
            let _ = write!(
                h,
                "<tr class=\"bad\"><td>{}</td><td class=\"name\">{}</td><td class=\"msg\">{}</td></tr>",
                f.count,
                esc(&name),
                esc(&f.message)
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>");
    if results.records_not_kept > 0 {
        let _ = write!(
            h,
            "<p class=\"sub\">{} records beyond the first {} were counted but not kept.</p>",
            results.records_not_kept,
            results.records.len()
        );
    }
    h.push_str("<footer>generated by ld</footer></body></html>\n");
    h
}

const CSS: &str = "body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1000px;padding:24px;color:#111827;background:#f9fafb}\
header h1{margin:0;font-size:24px}.sub{color:#6b7280;margin:4px 0 16px}\
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(130px,1fr));gap:12px;margin-bottom:20px}\
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px}.card b{display:block;font-size:20px}.card span{color:#6b7280;font-size:12px}\
.card.pass{border-left:5px solid #16a34a}.card.fail{border-left:5px solid #dc2626}\
figure{background:#fff;border:1px solid #e5e7eb;border-radius:8px;margin:0 0 16px;padding:12px}figcaption{font-weight:600;margin-bottom:4px}\
svg{width:100%;height:auto}.grid{stroke:#e5e7eb}.axis{fill:#6b7280;font-size:11px}\
.legend span{margin-right:14px;font-size:12px;color:#374151}.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}\
h2{font-size:17px;margin:20px 0 8px}table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #e5e7eb}\
th,td{padding:6px 8px;border-bottom:1px solid #f3f4f6;text-align:right;white-space:nowrap}th{background:#f3f4f6;font-weight:600}th:first-child{text-align:left}\
td.name,td.msg{text-align:left;white-space:normal;word-break:break-word}td.msg{font-family:ui-monospace,monospace;font-size:12px}tr.bad td:first-child{color:#b91c1c;font-weight:600}\
.none{color:#16a34a}footer{color:#9ca3af;font-size:12px;margin-top:24px}";
