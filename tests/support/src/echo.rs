//! A handler that echoes the request back in a 500 answer, so a failing task quotes it in
//! its failure message: the query string first, then the headers a test sets, the body, and
//! the usual headers last.

use crate::http::{Received, Reply};

/// Headers every request carries, echoed after the others.
const USUAL: &[&str] = &[
    "host",
    "user-agent",
    "accept",
    "accept-encoding",
    "content-length",
    "content-type",
    "connection",
];

/// The echo of `r`: `?query\nname: value\n…body\nhost: …`, status 500, `text/plain`.
pub fn echo(r: &Received) -> Reply {
    let mut out = String::new();
    if let Some((_, q)) = r.target.split_once('?') {
        out.push('?');
        out.push_str(q);
        out.push('\n');
    }
    let mut headers: Vec<(&str, String)> = r
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    headers.sort_by_key(|(k, _)| USUAL.contains(k));
    let line = |out: &mut String, (k, v): &(&str, String)| {
        out.push_str(k);
        out.push_str(": ");
        out.push_str(v);
        out.push('\n');
    };
    let (others, usual) = headers.split_at(headers.partition_point(|(k, _)| !USUAL.contains(k)));
    others.iter().for_each(|h| line(&mut out, h));
    out.push_str(&String::from_utf8_lossy(&r.body));
    out.push('\n');
    usual.iter().for_each(|h| line(&mut out, h));
    Reply::new(500, out).header("content-type", "text/plain")
}
