//! Masks secrets in everything a run writes: failure messages, URLs and names in every
//! report, the terminal table and the run store.
//!
//! A [`Redactor`] is built once per run from the secret values known before the first
//! request: every value of the secrets files, the process environment values the plan names
//! with `${env.X}`, the literal values of secret-looking headers, cookies, auth fields and
//! variables (see [`Secrets`]). Values shorter than four bytes are not masked as values (too
//! many false hits); patterns still catch them where they have a recognisable shape.
//!
//! - [`Redactor::url`] masks the userinfo (`http://***@host/`), the value of every query
//!   parameter whose name looks secret (`api_key=***`), and every known value.
//! - [`Redactor::text`] masks every known value (also percent-, JSON- and debug-escaped, and
//!   the start of one cut off by a snippet's `…`), every URL in the text as above,
//!   `Bearer …` / `Basic …` credentials, and the value after a secret-looking key
//!   (`"password": "…"`, `x-api-key: …`, `token=…`).
//!
//! Both return the input borrowed when nothing was masked, so a clean URL costs a scan and
//! no allocation.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine as _;
use percent_encoding::{AsciiSet, utf8_percent_encode};
use regex::{Captures, Regex};

/// What a masked secret becomes.
pub(crate) const MASK: &str = "***";
/// Values shorter than this are not masked as values.
pub(crate) const MIN_LEN: usize = 4;
/// A cut-off value at the end of a snippet is masked from this many bytes on.
const MIN_TAIL: usize = 3;

/// RFC 3986 unreserved characters stay as they are; everything else is percent-encoded.
const COMPONENT: &AsciiSet = ld_plan::encode::UNRESERVED;

/// True for a header, query parameter, cookie, variable or JSON key whose value is a secret:
/// `Authorization`, `Proxy-Authorization`, `Cookie`, `X-Api-Key`, `*-token`, `*-key`,
/// `*secret*`, `*password*`, `*session*` and the like.
pub(crate) fn looks_secret(name: &str) -> bool {
    const PARTS: &[&str] = &[
        "token",
        "secret",
        "passw",
        "pwd",
        "session",
        "sessid",
        "apikey",
        "api_key",
        "api-key",
        "authorization",
        "credential",
        "signature",
        "cookie",
        "private",
    ];
    let n = name.trim().to_ascii_lowercase();
    if n.is_empty() {
        return false;
    }
    n.ends_with("key") || matches!(n.as_str(), "auth" | "sig" | "pass") || {
        PARTS.iter().any(|p| n.contains(p))
    }
}

/// The secret values a run knows of; [`Secrets::build`] turns them into a [`Redactor`].
#[derive(Debug, Default)]
pub(crate) struct Secrets {
    values: BTreeSet<String>,
}

impl Secrets {
    /// A secret value (ignored when shorter than [`MIN_LEN`] bytes).
    pub(crate) fn add(&mut self, value: &str) {
        let v = value.trim();
        if v.len() >= MIN_LEN && v != MASK {
            self.values.insert(v.to_string());
        }
    }

    /// A header as sent: its value is a secret when the name looks secret; the credential
    /// of `Bearer x` and `Basic x` (and the password inside the latter) too.
    pub(crate) fn header(&mut self, name: &str, value: &str) {
        if !looks_secret(name) {
            return;
        }
        self.add(value);
        let Some((scheme, credential)) = value.trim().split_once(' ') else {
            return;
        };
        let credential = credential.trim();
        self.add(credential);
        if scheme.eq_ignore_ascii_case("basic")
            && let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(credential)
            && let Ok(pair) = String::from_utf8(raw)
        {
            self.add(&pair);
            if let Some((_, password)) = pair.split_once(':') {
                self.add(password);
            }
        }
    }

    /// A literal JSON value of a request field: every string under a secret-looking key,
    /// headers as [`Secrets::header`]; `all` takes every string (cookies).
    pub(crate) fn json(&mut self, value: &serde_json::Value, all: bool) {
        match value {
            serde_json::Value::String(s) if all => self.add(s),
            serde_json::Value::Array(items) => items.iter().for_each(|v| self.json(v, all)),
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match v {
                        serde_json::Value::String(s) if looks_secret(k) => self.header(k, s),
                        other => self.json(other, all || looks_secret(k)),
                    }
                }
            }
            _ => {}
        }
    }

    pub(crate) fn build(self) -> Redactor {
        let mut patterns = BTreeSet::new();
        for v in &self.values {
            patterns.extend(variants(v));
        }
        let patterns: Vec<String> = patterns.into_iter().collect();
        let values = if patterns.is_empty() {
            None
        } else {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .ascii_case_insensitive(true)
                .build(&patterns)
                .ok()
        };
        let mut tails = patterns;
        tails.sort_by_key(|p| std::cmp::Reverse(p.len()));
        Redactor { values, tails }
    }
}

/// A value as it may appear in a URL, a JSON document or a quoted snippet.
fn variants(v: &str) -> Vec<String> {
    let mut out = vec![v.to_string()];
    let encoded = utf8_percent_encode(v, COMPONENT).to_string();
    out.push(encoded.replace("%20", "+"));
    out.push(encoded);
    if let Ok(json) = serde_json::to_string(v) {
        out.push(json.trim_matches('"').to_string());
    }
    let debug = format!("{v:?}");
    out.push(debug.trim_matches('"').to_string());
    let debug_json = format!("{:?}", out[out.len() - 2]);
    out.push(debug_json.trim_matches('"').to_string());
    out.retain(|s| s.len() >= MIN_LEN);
    out
}

/// Masks secrets; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Redactor {
    /// Every known value and its escaped forms.
    values: Option<AhoCorasick>,
    /// The same patterns, longest first, for a value cut off by a snippet.
    tails: Vec<String>,
}

// Constant patterns: they compile.
#[allow(clippy::expect_used)]
fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid pattern")
}

static URL: LazyLock<Regex> =
    LazyLock::new(|| regex(r#"(?i)\b[a-z][a-z0-9+.\-]*://[^\s"'<>\\`]+"#));
static AUTH_SCHEME: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/\-]+=*"));
static SECRET_KEY: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r#"(?i)([A-Za-z0-9_.\-]*(?:token|secret|passw(?:or)?d|pwd|session|sessid|api[_-]?key|authorization|cookie|credential)[A-Za-z0-9_.\-]*(?:\\?["'])?\s*[:=]\s*(?:\\?["'])?)([^"'\\\s,;&}<>]+)"#,
    )
});

impl Redactor {
    /// A URL with its userinfo, its secret query values and every known value masked.
    pub(crate) fn url<'a>(&self, url: &'a str) -> Cow<'a, str> {
        let structural = mask_url(url);
        match self.values(&structural) {
            Cow::Owned(s) => Cow::Owned(s),
            Cow::Borrowed(_) => structural,
        }
    }

    /// Free text (a failure message, a name) with every secret masked.
    pub(crate) fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out: Cow<'a, str> = self.values(text);
        if out.contains('…') {
            out = Cow::Owned(self.tail(&out));
        }
        for step in [Step::Urls, Step::Schemes, Step::Keys] {
            let next = match step {
                Step::Urls => URL.replace_all(&out, |c: &Captures<'_>| {
                    let m = c.get(0).map_or("", |m| m.as_str());
                    // Punctuation that ends a sentence is not part of the URL.
                    let url = m.trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']']);
                    format!("{}{}", mask_url(url), &m[url.len()..])
                }),
                Step::Schemes => AUTH_SCHEME
                    .replace_all(&out, |c: &Captures<'_>| format!("{}{}{MASK}", &c[1], &c[2])),
                Step::Keys => SECRET_KEY.replace_all(&out, |c: &Captures<'_>| {
                    if c[2].starts_with(MASK) {
                        c[0].to_string()
                    } else {
                        format!("{}{MASK}", &c[1])
                    }
                }),
            };
            if let Cow::Owned(s) = next
                && s != *out
            {
                out = Cow::Owned(s);
            }
        }
        out
    }

    /// Every known value replaced.
    fn values<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.values {
            Some(ac) if ac.is_match(text) => {
                let masks = vec![MASK; ac.patterns_len()];
                Cow::Owned(ac.replace_all(text, &masks))
            }
            _ => Cow::Borrowed(text),
        }
    }

    /// The start of a known value right before a `…` (a snippet cut it off) masked.
    fn tail(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find('…') {
            let before = &rest[..at];
            let cut = self
                .tails
                .iter()
                .filter_map(|p| {
                    (MIN_TAIL..p.len())
                        .rev()
                        .filter(|&n| p.is_char_boundary(n))
                        .find(|&n| ends_with_ignore_case(before, &p[..n]))
                })
                .max()
                .unwrap_or(0);
            out.push_str(&before[..before.len() - cut]);
            if cut > 0 {
                out.push_str(MASK);
            }
            out.push('…');
            rest = &rest[at + '…'.len_utf8()..];
        }
        out.push_str(rest);
        out
    }
}

/// The run's redactor: `values` (the secrets files', the environment values the plan uses)
/// and what the plan itself holds: secret-looking variables and the literal secret headers,
/// cookies, auth fields, query and body fields of every task.
pub(crate) fn for_plan(
    variables_lists: &[&[(String, String)]],
    tasks: &[&crate::task::Task],
    values: &[String],
) -> Redactor {
    let mut s = Secrets::default();
    for v in values {
        s.add(v);
    }
    let variables = |vars: &[(String, String)], s: &mut Secrets| {
        for (k, v) in vars {
            if looks_secret(k) {
                s.header(k, v);
            }
        }
    };
    for vars in variables_lists {
        variables(vars, &mut s);
    }
    for task in tasks {
        // Other protocols' literal headers are masked as they are sent.
        let crate::task::Proto::Http(task) = &task.proto else {
            continue;
        };
        if let Some(r) = &task.request {
            request(r, &mut s);
        }
        if let Some(auth) = &task.auth {
            for secret in auth.secrets() {
                s.add(secret);
            }
        }
        if let Some(p) = &task.prepared {
            for (name, value) in &p.headers {
                if let Ok(v) = value.to_str() {
                    s.header(name.as_str(), v);
                }
            }
            for (_, v) in &p.cookies {
                s.add(v);
            }
        }
        if let Some(l) = &task.literal {
            for (name, value) in l.headers() {
                s.header(name, value);
            }
            for (_, v) in &l.cookies {
                s.add(v);
            }
        }
    }
    s.build()
}

/// The literal parts of a task's request fields.
fn request(fields: &crate::template::TValue, s: &mut Secrets) {
    use crate::template::TValue;
    let field = |k: &str, v: &TValue, s: &mut Secrets| literal(v, k == "cookies", s);
    match fields {
        TValue::Literal(serde_json::Value::Object(map)) => {
            for (k, v) in map {
                if k != "url" {
                    s.json(v, k == "cookies");
                }
            }
        }
        TValue::Object(parts) => {
            for (k, v) in parts {
                if k != "url" {
                    field(k, v, s);
                }
            }
        }
        _ => {}
    }
}

fn literal(v: &crate::template::TValue, all: bool, s: &mut Secrets) {
    use crate::template::TValue;
    match v {
        TValue::Literal(value) => s.json(value, all),
        TValue::List(items) => items.iter().for_each(|i| literal(i, all, s)),
        TValue::Object(parts) => {
            for (k, v) in parts {
                match v {
                    TValue::Literal(serde_json::Value::String(text)) if looks_secret(k) => {
                        s.header(k, text)
                    }
                    other => literal(other, all || looks_secret(k), s),
                }
            }
        }
        TValue::Text(_) => {}
    }
}

/// Masks the request names once, before anything reports them (a name is the task's URL
/// when it has none of its own).
pub(crate) fn names(r: &Redactor, names: &mut [crate::task::NameInfo]) {
    for n in names {
        let masked = r.text(&r.url(&n.name)).into_owned();
        if *masked != *n.name {
            n.name = std::sync::Arc::from(masked);
        }
    }
}

#[derive(Clone, Copy)]
enum Step {
    Urls,
    Schemes,
    Keys,
}

fn ends_with_ignore_case(text: &str, suffix: &str) -> bool {
    text.len() >= suffix.len()
        && text.is_char_boundary(text.len() - suffix.len())
        && text[text.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// The userinfo and the values of secret-looking query parameters masked.
fn mask_url(url: &str) -> Cow<'_, str> {
    let (authority_start, authority_end) = match url.find("://") {
        Some(i) => {
            let start = i + 3;
            let end = url[start..]
                .find(['/', '?', '#'])
                .map_or(url.len(), |e| start + e);
            (start, end)
        }
        None => (0, 0),
    };
    let userinfo = url[authority_start..authority_end]
        .rfind('@')
        .map(|at| authority_start + at);
    let query = url[authority_end..]
        .find('?')
        .map(|q| authority_end + q + 1);
    let query_has_secret = query.is_some_and(|q| {
        let end = url[q..].find('#').map_or(url.len(), |e| q + e);
        url[q..end].split(['&', ';']).any(secret_pair)
    });
    if userinfo.is_none() && !query_has_secret {
        return Cow::Borrowed(url);
    }
    let mut out = String::with_capacity(url.len());
    match userinfo {
        Some(at) => {
            out.push_str(&url[..authority_start]);
            out.push_str(MASK);
            out.push_str(&url[at..authority_end]);
        }
        None => out.push_str(&url[..authority_end]),
    }
    match query {
        Some(q) if query_has_secret => {
            out.push_str(&url[authority_end..q]);
            let end = url[q..].find('#').map_or(url.len(), |e| q + e);
            for (i, part) in url[q..end].split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                let pieces: Vec<&str> = part.split(';').collect();
                for (j, pair) in pieces.iter().enumerate() {
                    if j > 0 {
                        out.push(';');
                    }
                    if secret_pair(pair) {
                        let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
                        out.push_str(name);
                        out.push('=');
                        out.push_str(MASK);
                    } else {
                        out.push_str(pair);
                    }
                }
            }
            out.push_str(&url[end..]);
        }
        _ => out.push_str(&url[authority_end..]),
    }
    Cow::Owned(out)
}

/// `name=value` with a value and a secret-looking (percent-decoded) name.
fn secret_pair(pair: &str) -> bool {
    let Some((name, value)) = pair.split_once('=') else {
        return false;
    };
    !value.is_empty()
        && value != MASK
        && looks_secret(&percent_encoding::percent_decode_str(name).decode_utf8_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(values: &[&str]) -> Redactor {
        let mut s = Secrets::default();
        for v in values {
            s.add(v);
        }
        s.build()
    }

    #[test]
    fn urls_lose_userinfo_secret_query_values_and_known_values() {
        let r = redactor(&["s3cr3t-path", "p@ss word"]);
        assert_eq!(
            r.url("http://user:pw@h:8/a?page=2&api_key=k1&access_token=t#f"),
            "http://***@h:8/a?page=2&api_key=***&access_token=***#f"
        );
        assert_eq!(r.url("https://h/x/s3cr3t-path/y"), "https://h/x/***/y");
        assert_eq!(r.url("https://h/?q=p%40ss+word"), "https://h/?q=***");
        assert_eq!(r.url("https://h/?q=p%40ss%20word"), "https://h/?q=***");
        let clean = "https://h/a?page=2";
        assert!(matches!(r.url(clean), Cow::Borrowed(_)));
        assert_eq!(r.url("/rel?Password=x&ok=1"), "/rel?Password=***&ok=1");
    }

    #[test]
    fn text_loses_values_schemes_keys_urls_and_cut_off_tails() {
        let r = redactor(&["tok-1234567890", "hunter2!", "k"]);
        let m = r.text(
            "GET /a: status_code expected 200, got 500; body: \"authorization: Bearer abc.def\\nx-api-key: zzz\\n{\\\"password\\\":\\\"hunter2!\\\"} http://u:p@h/?token=q tok-12345…\"",
        );
        for leak in ["abc.def", "zzz", "hunter2", "u:p", "token=q", "tok-12345"] {
            assert!(!m.contains(leak), "{leak} in {m}");
        }
        assert!(m.starts_with("GET /a: status_code expected 200, got 500; body: "));
        assert!(m.contains("***…"), "{m}");
        assert_eq!(
            r.text("http://h/q?api_key=x: status_code expected 200, got 500"),
            "http://h/q?api_key=***: status_code expected 200, got 500"
        );
        let plain = "GET /a: status_code expected 200, got 500";
        assert!(matches!(r.text(plain), Cow::Borrowed(_)));
    }

    #[test]
    fn headers_add_their_credentials() {
        let mut s = Secrets::default();
        s.header("Authorization", "Basic dXNlcjpodW50ZXIy");
        s.header("X-Api-Key", "key-value-1");
        s.header("Accept", "application/json");
        let r = s.build();
        assert_eq!(
            r.text("hunter2 and key-value-1 and application/json"),
            "*** and *** and application/json"
        );
        assert!(looks_secret("X-Session-Id") && looks_secret("refresh_token"));
        assert!(!looks_secret("content-type") && !looks_secret("page"));
    }
}
