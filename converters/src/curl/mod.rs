//! The cURL importer: one command, a file of commands or standard input, each `curl` command
//! becoming one task per URL it names.
//!
//! Options mean what they mean to curl: `-d` makes a POST with a form content type unless one
//! is set, `-G` moves the data into the query, `-I` is HEAD, `-u` is Basic authentication,
//! `--json` sets both JSON headers, a URL without a scheme is `http://`. Options that change
//! nothing in the request (`-s`, `-v`, `-o FILE`, ...) are skipped quietly; those that would
//! change it in a way a task cannot express (proxies, client certificates, uploads from
//! files) and unknown ones are reported, never guessed at. No file named in a command is read.

mod shell;

use base64::Engine;
use serde_json::{Map, Value};

use crate::output::{Body, Builder, Request};
use crate::{Error, Import, ImportOptions, Result};

/// True when the text's first command is `curl` (after comments, blank lines and a prompt).
pub(crate) fn looks_like_curl(head: &str) -> bool {
    head.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches(['$', '>', ' ']))
        .is_some_and(|l| {
            let first = l.split_whitespace().next().unwrap_or_default();
            is_curl(first.trim_matches(['"', '\'']))
        })
}

fn is_curl(word: &str) -> bool {
    let base = word.rsplit(['/', '\\']).next().unwrap_or(word);
    base.eq_ignore_ascii_case("curl") || base.eq_ignore_ascii_case("curl.exe")
}

/// Imports the curl commands in `bytes`, read from `name`.
pub fn import(name: &str, bytes: &[u8], options: &ImportOptions) -> Result<Import> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_col(bytes, e.valid_up_to());
        Error::Syntax(ld_plan::render_source_error(
            name,
            &String::from_utf8_lossy(bytes),
            ld_plan::SourcePos { line, column },
            "not UTF-8 text: curl commands are read as text",
        ))
    })?;
    let commands = shell::split(text, shell::dialect(text))
        .map_err(|e| Error::Syntax(ld_plan::render_source_error(name, text, e.pos, &e.message)))?;
    let mut builder = Builder::new(options);
    let mut found = 0;
    for command in commands {
        let mut words = command.words.as_slice();
        // A copied prompt (`$ curl ...`) is not part of the command.
        if words
            .first()
            .is_some_and(|w| w.text == "$" || w.text == ">")
        {
            words = &words[1..];
        }
        let Some(first) = words.first() else {
            continue;
        };
        if !is_curl(&first.text) {
            builder.summary.warn(format!(
                "commands other than curl were ignored (`{}`)",
                first.text
            ));
            continue;
        }
        found += 1;
        for note in &command.notes {
            builder.summary.warn(format!("shell: {note}"));
        }
        let parsed = parse(&words[1..], &mut builder);
        if parsed.urls.is_empty() {
            return Err(Error::Invalid(ld_plan::render_source_error(
                name,
                text,
                first.pos,
                "this curl command names no URL",
            )));
        }
        if parsed.aws_sigv4 && parsed.user {
            // The command is not quoted back: it holds the secret access key.
            return Err(Error::Invalid(format!(
                "{name}:{}: curl --aws-sigv4 is not supported yet: AWS Signature Version 4 signing cannot be \
                 expressed in a plan, and importing the command would send the -u secret access key \
                 as Basic authentication; sign requests another way (for example a pre-signed URL \
                 or a header given with --header) and remove --aws-sigv4 and -u",
                first.pos.line
            )));
        }
        for request in parsed.requests() {
            builder.summary.read += 1;
            if let Some(reason) = builder.filter().check(&request.url, None, None) {
                builder.summary.drop(reason.reason());
                continue;
            }
            builder.push(request);
        }
    }
    if found == 0 {
        return Err(Error::Invalid(format!(
            "{name}: no curl command found; expected text such as `curl -H 'Accept: application/json' https://api.example.com/items`"
        )));
    }
    Ok(builder.finish())
}

fn line_col(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, column)
}

/// What one curl command asks for.
#[derive(Debug, Default)]
struct Parsed {
    method: Option<String>,
    urls: Vec<String>,
    /// `-H` headers in order; an empty value (`-H 'X:'`) removes the header.
    headers: Vec<(String, Option<String>)>,
    /// Headers curl derives from other options (`-A`, `-e`, `-b`, `-u`), overridden by `-H`.
    derived: Vec<(String, String)>,
    data: Vec<String>,
    json: Vec<String>,
    form: Vec<Value>,
    get: bool,
    head: bool,
    upload: bool,
    insecure: bool,
    location: bool,
    compressed: bool,
    timeout: Option<f64>,
    /// `--aws-sigv4` was given: curl would sign the request with the `-u` credentials.
    aws_sigv4: bool,
    /// `-u` was given.
    user: bool,
}

/// How an option is handled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Takes an argument that shapes the request.
    Arg,
    /// A flag that shapes the request.
    Flag,
    /// Changes nothing a task sends; its argument, if any, is skipped.
    QuietArg,
    QuietFlag,
    /// Would change the request in a way a task cannot express: reported.
    UnsupportedArg,
    UnsupportedFlag,
}

/// The long name and handling of each option the importer knows.
fn option(long: &str) -> Option<Kind> {
    use Kind::*;
    Some(match long {
        "request" | "header" | "data" | "data-ascii" | "data-raw" | "data-binary"
        | "data-urlencode" | "json" | "form" | "form-string" | "user" | "cookie" | "user-agent"
        | "referer" | "url" | "max-time" | "oauth2-bearer" | "upload-file" => Arg,
        "get" | "head" | "insecure" | "compressed" | "location" | "location-trusted" | "basic" => {
            Flag
        }
        "output"
        | "write-out"
        | "connect-timeout"
        | "retry"
        | "retry-delay"
        | "retry-max-time"
        | "max-redirs"
        | "dump-header"
        | "trace"
        | "trace-ascii"
        | "stderr"
        | "cookie-jar"
        | "cacert"
        | "capath"
        | "noproxy"
        | "keepalive-time"
        | "expect100-timeout"
        | "output-dir"
        | "parallel-max"
        | "rate"
        | "retry-all-errors-delay"
        | "happy-eyeballs-timeout-ms"
        | "dns-servers"
        | "ciphers"
        | "tls-max"
        | "curves"
        | "pinnedpubkey" => QuietArg,
        "silent"
        | "show-error"
        | "verbose"
        | "include"
        | "fail"
        | "fail-with-body"
        | "progress-bar"
        | "no-buffer"
        | "globoff"
        | "remote-name"
        | "remote-name-all"
        | "http1.0"
        | "http1.1"
        | "http2"
        | "http2-prior-knowledge"
        | "http3"
        | "http3-only"
        | "tlsv1"
        | "tlsv1.0"
        | "tlsv1.1"
        | "tlsv1.2"
        | "tlsv1.3"
        | "ipv4"
        | "ipv6"
        | "path-as-is"
        | "raw"
        | "tcp-nodelay"
        | "no-keepalive"
        | "styled-output"
        | "no-styled-output"
        | "create-dirs"
        | "retry-all-errors"
        | "retry-connrefused"
        | "no-progress-meter"
        | "no-sessionid"
        | "parallel"
        | "no-alpn"
        | "no-npn"
        | "ssl-reqd"
        | "ssl"
        | "disable"
        | "remote-time"
        | "remote-header-name"
        | "junk-session-cookies"
        | "no-clobber"
        | "ssl-no-revoke"
        | "ssl-revoke-best-effort"
        | "sslv2"
        | "sslv3"
        | "tr-encoding"
        | "suppress-connect-headers" => QuietFlag,
        "proxy"
        | "proxy-user"
        | "cert"
        | "key"
        | "cert-type"
        | "key-type"
        | "pass"
        | "aws-sigv4"
        | "resolve"
        | "connect-to"
        | "unix-socket"
        | "abstract-unix-socket"
        | "interface"
        | "range"
        | "continue-at"
        | "limit-rate"
        | "config"
        | "time-cond"
        | "socks4"
        | "socks4a"
        | "socks5"
        | "socks5-hostname"
        | "preproxy"
        | "proxy-header"
        | "request-target"
        | "max-filesize"
        | "local-port"
        | "netrc-file"
        | "variable"
        | "expand-url"
        | "expand-data"
        | "expand-header"
        | "url-query"
        | "hsts"
        | "alt-svc"
        | "proxy-cacert"
        | "delegation"
        | "service-name"
        | "login-options"
        | "sasl-authzid"
        | "mail-from"
        | "mail-rcpt"
        | "ftp-port"
        | "quote"
        | "telnet-option" => UnsupportedArg,
        "digest"
        | "ntlm"
        | "ntlm-wb"
        | "negotiate"
        | "anyauth"
        | "proxy-insecure"
        | "netrc"
        | "netrc-optional"
        | "proxy-digest"
        | "proxy-basic"
        | "proxy-ntlm"
        | "proxytunnel"
        | "post301"
        | "post302"
        | "post303"
        | "ignore-content-length"
        | "http0.9"
        | "next" => UnsupportedFlag,
        _ => return None,
    })
}

/// The long name of a short option.
fn short(c: char) -> Option<&'static str> {
    Some(match c {
        'X' => "request",
        'H' => "header",
        'd' => "data",
        'F' => "form",
        'u' => "user",
        'b' => "cookie",
        'A' => "user-agent",
        'e' => "referer",
        'G' => "get",
        'I' => "head",
        'k' => "insecure",
        'L' => "location",
        'm' => "max-time",
        'T' => "upload-file",
        'o' => "output",
        'w' => "write-out",
        'D' => "dump-header",
        'c' => "cookie-jar",
        's' => "silent",
        'S' => "show-error",
        'v' => "verbose",
        'i' => "include",
        'f' => "fail",
        '#' => "progress-bar",
        'N' => "no-buffer",
        'g' => "globoff",
        'O' => "remote-name",
        'J' => "remote-header-name",
        'R' => "remote-time",
        '0' => "http1.0",
        '1' => "tlsv1",
        '4' => "ipv4",
        '6' => "ipv6",
        'Z' => "parallel",
        'x' => "proxy",
        'U' => "proxy-user",
        'E' => "cert",
        'r' => "range",
        'C' => "continue-at",
        'K' => "config",
        'z' => "time-cond",
        'n' => "netrc",
        'p' => "proxytunnel",
        ':' => "next",
        _ => return None,
    })
}

fn parse(words: &[shell::Word], builder: &mut Builder<'_>) -> Parsed {
    let mut p = Parsed::default();
    let mut i = 0;
    let mut only_urls = false;
    while i < words.len() {
        let word = &words[i].text;
        i += 1;
        if only_urls || !word.starts_with('-') || word == "-" {
            p.urls.push(word.clone());
            continue;
        }
        if word == "--" {
            only_urls = true;
            continue;
        }
        if let Some(long) = word.strip_prefix("--") {
            // curl also accepts `--no-NAME` for boolean options.
            let (name, negated) = match long.strip_prefix("no-") {
                Some(rest) if option(long).is_none() && option(rest).is_some() => (rest, true),
                _ => (long, false),
            };
            match option(name) {
                Some(kind @ (Kind::Arg | Kind::QuietArg | Kind::UnsupportedArg)) => {
                    let Some(arg) = words.get(i) else {
                        builder
                            .summary
                            .warn(format!("curl option --{name} has no argument"));
                        continue;
                    };
                    i += 1;
                    apply(&mut p, name, kind, Some(&arg.text), builder);
                }
                Some(kind) => {
                    if !negated {
                        apply(&mut p, name, kind, None, builder);
                    }
                }
                None => builder
                    .summary
                    .warn(format!("unknown curl option --{name} was ignored")),
            }
            continue;
        }
        // Short options may be grouped (`-sSL`) and take their argument attached (`-XPOST`)
        // or from the next word.
        let flags: Vec<char> = word[1..].chars().collect();
        let mut j = 0;
        while j < flags.len() {
            let c = flags[j];
            j += 1;
            let Some(name) = short(c) else {
                builder
                    .summary
                    .warn(format!("unknown curl option -{c} was ignored"));
                continue;
            };
            let Some(kind) = option(name) else {
                continue;
            };
            if matches!(kind, Kind::Arg | Kind::QuietArg | Kind::UnsupportedArg) {
                let attached: String = flags[j..].iter().collect();
                let arg = if attached.is_empty() {
                    let Some(next) = words.get(i) else {
                        builder
                            .summary
                            .warn(format!("curl option -{c} has no argument"));
                        break;
                    };
                    i += 1;
                    next.text.clone()
                } else {
                    attached
                };
                apply(&mut p, name, kind, Some(&arg), builder);
                break;
            }
            apply(&mut p, name, kind, None, builder);
        }
    }
    p
}

fn apply(p: &mut Parsed, name: &str, kind: Kind, arg: Option<&str>, builder: &mut Builder<'_>) {
    let arg = arg.unwrap_or_default();
    if name == "aws-sigv4" {
        p.aws_sigv4 = true;
    }
    match kind {
        Kind::QuietArg | Kind::QuietFlag => return,
        Kind::UnsupportedArg | Kind::UnsupportedFlag => {
            builder.summary.warn(format!(
                "curl option --{name} cannot be expressed in a plan and was ignored"
            ));
            return;
        }
        Kind::Arg | Kind::Flag => {}
    }
    match name {
        "request" => p.method = Some(arg.to_string()),
        "header" => {
            if arg.starts_with('@') {
                builder
                    .summary
                    .warn("curl -H @FILE reads headers from a file; ignored");
                return;
            }
            match arg.split_once(':') {
                Some((k, v)) => {
                    let v = v.trim();
                    let value = (!v.is_empty()).then(|| v.to_string());
                    p.headers.push((k.trim().to_string(), value));
                }
                // `-H 'X;'` sends the header with an empty value.
                None => match arg.strip_suffix(';') {
                    Some(k) => p.headers.push((k.trim().to_string(), Some(String::new()))),
                    None => builder
                        .summary
                        .warn(format!("curl -H {arg:?} is not a header (no colon); ignored")),
                },
            }
        }
        "data" | "data-ascii" | "data-binary" => {
            if let Some(file) = arg.strip_prefix('@') {
                builder.summary.warn(format!(
                    "curl data read from a file (@{file}) is not embedded; that part of the body is left out"
                ));
            } else {
                // curl strips carriage returns and newlines only from file content, which
                // is not read here: inline data goes as written.
                p.data.push(arg.to_string());
            }
        }
        "data-raw" => p.data.push(arg.to_string()),
        "data-urlencode" => match urlencode_data(arg) {
            Some(d) => p.data.push(d),
            None => builder.summary.warn(
                "curl --data-urlencode reading a file (name@FILE) is not embedded; that part of the body is left out",
            ),
        },
        "json" => {
            if arg.starts_with('@') {
                builder
                    .summary
                    .warn("curl --json @FILE reads the body from a file; that part is left out");
            } else {
                p.json.push(arg.to_string());
            }
        }
        "form" | "form-string" => {
            if let Some(part) = form_part(arg, name == "form-string", builder) {
                p.form.push(part);
            }
        }
        "user" => {
            p.user = true;
            let (user, password) = match arg.split_once(':') {
                Some((u, pw)) => (u, pw),
                None => {
                    builder.summary.warn(
                        "curl -u without a password would prompt for one; an empty password is used",
                    );
                    (arg, "")
                }
            };
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            p.derived
                .push(("Authorization".into(), format!("Basic {encoded}")));
        }
        "oauth2-bearer" => p
            .derived
            .push(("Authorization".into(), format!("Bearer {arg}"))),
        "cookie" => {
            if arg.contains('=') {
                p.derived.push(("Cookie".into(), arg.to_string()));
            } else {
                builder.summary.warn(format!(
                    "curl -b {arg:?} names a cookie file, which is not read; no cookies are sent"
                ));
            }
        }
        "user-agent" => p.derived.push(("User-Agent".into(), arg.to_string())),
        "referer" => {
            let referer = arg.strip_suffix(";auto").unwrap_or(arg);
            if !referer.is_empty() {
                p.derived.push(("Referer".into(), referer.to_string()));
            }
        }
        "url" => p.urls.push(arg.to_string()),
        "max-time" => p.timeout = arg.trim().parse::<f64>().ok(),
        "upload-file" => {
            p.upload = true;
            builder.summary.warn(format!(
                "curl -T {arg} uploads a file, which is not embedded; the task sends no body"
            ));
        }
        "get" => p.get = true,
        "head" => p.head = true,
        "insecure" => p.insecure = true,
        "compressed" => p.compressed = true,
        "location" | "location-trusted" => p.location = true,
        _ => {}
    }
}

/// `--data-urlencode`'s forms: `content`, `=content`, `name=content`; `None` for the file
/// forms (`@file`, `name@file`).
fn urlencode_data(arg: &str) -> Option<String> {
    let at = arg.find('@');
    let eq = arg.find('=');
    match (eq, at) {
        (Some(e), Some(a)) if a < e => None,
        (None, Some(_)) => None,
        (Some(0), _) => Some(escape(&arg[1..])),
        (Some(e), _) => Some(format!("{}={}", &arg[..e], escape(&arg[e + 1..]))),
        (None, None) => Some(escape(arg)),
    }
}

/// curl's URL escaping: everything but ASCII letters, digits and `-._~` as `%XX`.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One `-F` part: `name=value`, `name=@file` (a file upload), `name=<file` (a value read from
/// a file), with `;type=` and `;filename=` modifiers.
fn form_part(arg: &str, literal: bool, builder: &mut Builder<'_>) -> Option<Value> {
    let Some((name, rest)) = arg.split_once('=') else {
        builder
            .summary
            .warn(format!("curl -F {arg:?} has no `=`; ignored"));
        return None;
    };
    let mut part = Map::new();
    part.insert("name".into(), Value::String(name.to_string()));
    if literal {
        part.insert("value".into(), Value::String(rest.to_string()));
        return Some(Value::Object(part));
    }
    let mut pieces = rest.split(';');
    let value = pieces.next().unwrap_or_default();
    let mut content_type = None;
    let mut filename = None;
    for modifier in pieces {
        match modifier.trim().split_once('=') {
            Some(("type", t)) => content_type = Some(t.to_string()),
            Some(("filename", f)) => filename = Some(f.trim_matches('"').to_string()),
            _ => {}
        }
    }
    if let Some(path) = value.strip_prefix('@') {
        builder.summary.warn(
            "curl -F name=@FILE uploads a file, which is not embedded; the part is sent empty",
        );
        let base = path.rsplit(['/', '\\']).next().unwrap_or(path);
        part.insert("value".into(), Value::String(String::new()));
        part.insert(
            "filename".into(),
            Value::String(filename.unwrap_or_else(|| base.to_string())),
        );
    } else if value.starts_with('<') {
        builder.summary.warn(
            "curl -F name=<FILE reads a value from a file, which is not embedded; the part is sent empty",
        );
        part.insert("value".into(), Value::String(String::new()));
    } else {
        part.insert("value".into(), Value::String(value.to_string()));
        if let Some(f) = filename {
            part.insert("filename".into(), Value::String(f));
        }
    }
    if let Some(t) = content_type {
        part.insert("content_type".into(), Value::String(t));
    }
    Some(Value::Object(part))
}

impl Parsed {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_deref())
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    /// One request per URL.
    fn requests(&self) -> Vec<Request> {
        let has_data = !self.data.is_empty();
        let has_json = !self.json.is_empty();
        let method = match &self.method {
            Some(m) => m.clone(),
            None if self.head => "HEAD".into(),
            None if self.get => "GET".into(),
            None if has_data || has_json || !self.form.is_empty() => "POST".into(),
            None if self.upload => "PUT".into(),
            None => "GET".into(),
        };
        // Headers: `-H` ones in order (the last of a name wins; an empty one removes it),
        // then those derived from other options unless `-H` named them.
        let mut headers: Vec<(String, String)> = Vec::new();
        for (k, v) in &self.headers {
            match v {
                // curl sends each `-H` line; the shared step joins lines of one name.
                Some(v) => headers.push((k.clone(), v.clone())),
                None => headers.retain(|(name, _)| !name.eq_ignore_ascii_case(k)),
            }
        }
        for (k, v) in &self.derived {
            if !self.has_header(k) {
                headers.retain(|(name, _)| !name.eq_ignore_ascii_case(k));
                headers.push((k.clone(), v.clone()));
            }
        }
        let mut body = Body::None;
        let mut query_data = None;
        if has_json {
            for (k, v) in [
                ("Content-Type", "application/json"),
                ("Accept", "application/json"),
            ] {
                if !self.has_header(k) {
                    headers.push((k.into(), v.into()));
                }
            }
            let text = self.json.concat();
            body = match serde_json::from_str::<Value>(&text) {
                Ok(v) => Body::Json(v),
                Err(_) => Body::Text(text),
            };
        } else if has_data {
            let text = self.data.join("&");
            if self.get {
                query_data = Some(text);
            } else {
                if !self.has_header("content-type") {
                    headers.push((
                        "Content-Type".into(),
                        "application/x-www-form-urlencoded".into(),
                    ));
                }
                let essence = self
                    .header("content-type")
                    .unwrap_or("application/x-www-form-urlencoded")
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase();
                body = if essence == "application/json" || essence.ends_with("+json") {
                    match serde_json::from_str::<Value>(&text) {
                        Ok(v) => Body::Json(v),
                        Err(_) => Body::Text(text),
                    }
                } else if essence == "application/x-www-form-urlencoded" {
                    crate::form::body_from_text(&text)
                } else {
                    Body::Text(text)
                };
            }
        } else if !self.form.is_empty() {
            body = Body::Multipart(self.form.clone());
        }
        if self.compressed && !self.has_header("accept-encoding") {
            headers.push(("Accept-Encoding".into(), "deflate, gzip, br, zstd".into()));
        }
        self.urls
            .iter()
            .map(|url| {
                let mut url = with_scheme(url);
                if let Some(q) = &query_data {
                    let (base, fragment) = match url.split_once('#') {
                        Some((b, f)) => (b.to_string(), Some(f.to_string())),
                        None => (url.clone(), None),
                    };
                    let sep = if base.contains('?') { '&' } else { '?' };
                    url = format!("{base}{sep}{q}");
                    if let Some(f) = fragment {
                        url.push('#');
                        url.push_str(&f);
                    }
                }
                Request {
                    method: method.to_ascii_uppercase(),
                    url,
                    headers: headers.clone(),
                    body: clone_body(&body),
                    verify: self.insecure.then_some(false),
                    // curl follows redirects only when told to.
                    allow_redirects: Some(self.location),
                    timeout: self.timeout,
                    ..Request::default()
                }
            })
            .collect()
    }
}

fn clone_body(body: &Body) -> Body {
    match body {
        Body::None => Body::None,
        Body::Json(v) => Body::Json(v.clone()),
        Body::JsonText(t) => Body::JsonText(t.clone()),
        Body::Form(m) => Body::Form(m.clone()),
        Body::Text(t) => Body::Text(t.clone()),
        Body::Base64(b) => Body::Base64(b.clone()),
        Body::Multipart(p) => Body::Multipart(p.clone()),
    }
}

/// curl assumes `http://` for a URL without a scheme.
fn with_scheme(url: &str) -> String {
    if url.contains("://") || url.starts_with("${") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(command: &str) -> ld_plan::Task {
        let options = ImportOptions {
            inline_secrets: true,
            ..ImportOptions::default()
        };
        let import = import("t.curl", command.as_bytes(), &options).expect("imports");
        let action = import.plan().actions.last().expect("action").clone();
        let start = action.as_start_test("/0").expect("start");
        start.tasks.expect("tasks").to_list().remove(0)
    }

    #[test]
    fn dropped_headers_leave_every_task_but_added_ones_stay() {
        let options = ImportOptions {
            inline_secrets: true,
            drop_headers: vec!["x-request-id".into(), "user-agent".into()],
            headers: vec![("X-Request-Id".into(), "fixed".into())],
            ..ImportOptions::default()
        };
        let command = "curl https://a.test/x -H 'X-REQUEST-ID: 42' -A bot -H 'Accept: */*'";
        let import = import("t.curl", command.as_bytes(), &options).expect("imports");
        let plan = import.to_json_string();
        assert!(!plan.contains("42"), "{plan}");
        assert!(!plan.contains("User-Agent"), "{plan}");
        assert!(plan.contains("\"X-Request-Id\": \"fixed\""), "{plan}");
        assert!(plan.contains("\"Accept\": \"*/*\""), "{plan}");
    }

    #[test]
    fn data_implies_post_and_a_form_type() {
        let t = one("curl https://a.test/x -d 'a=1' -d b=2");
        assert_eq!(t.method.as_deref(), Some("post"));
        let h = t.headers.expect("headers");
        assert_eq!(h["Content-Type"], "application/x-www-form-urlencoded");
        assert_eq!(t.data.expect("data")["b"], "2");
    }

    #[test]
    fn get_moves_data_to_the_query() {
        let t = one("curl -G https://a.test/x?z=0 --data-urlencode 'q=a b&c' -d n=1");
        assert_eq!(t.method.as_deref(), Some("get"));
        assert_eq!(
            t.request_url.as_deref(),
            Some("https://a.test/x?z=0&q=a%20b%26c&n=1")
        );
        assert!(t.data.is_none());
    }

    #[test]
    fn user_agent_referer_cookie_and_basic_auth() {
        let t = one("curl -sSL -u ann:pw -A agent/1 -e http://r/ -b 'a=1; b=2' -k a.test");
        assert_eq!(t.request_url.as_deref(), Some("http://a.test"));
        let h = t.headers.expect("headers");
        assert_eq!(h["Authorization"], "Basic YW5uOnB3");
        assert_eq!(h["User-Agent"], "agent/1");
        assert_eq!(h["Referer"], "http://r/");
        assert_eq!(h["Cookie"], "a=1; b=2");
        assert_eq!(t.verify, Some(Value::Bool(false)));
        assert_eq!(t.allow_redirects, Some(true));
    }

    #[test]
    fn json_sets_both_headers_and_head_and_explicit_method() {
        let t = one("curl --json '{\"a\": 1}' http://a.test/j");
        let h = t.headers.expect("headers");
        assert_eq!(h["Accept"], "application/json");
        assert_eq!(t.json.expect("json")["a"], 1);
        assert_eq!(one("curl -I http://a/").method.as_deref(), Some("head"));
        assert_eq!(
            one("curl -XDELETE http://a/ -d x").method.as_deref(),
            Some("delete")
        );
    }

    #[test]
    fn form_parts() {
        let t = one("curl -F 'a=1' -F 'f=@/tmp/x.png;type=image/png' http://a/up");
        assert_eq!(t.method.as_deref(), Some("post"));
        // In the fields LoadDensity sends too: text fields in `data`, files in `files`.
        assert!(t.body.is_none(), "{:?}", t.body);
        assert_eq!(t.data.expect("data")["a"], "1");
        let f = &t.files.expect("files")["f"];
        assert_eq!(f[0], "x.png");
        assert_eq!(f[2], "image/png");
    }

    #[test]
    fn unknown_options_are_reported() {
        let options = ImportOptions::default();
        let import = import("t", b"curl --frobnicate http://a/ -x proxy:1", &options).expect("ok");
        let warnings: Vec<&String> = import.summary.warnings.keys().collect();
        assert!(
            warnings.iter().any(|w| w.contains("--frobnicate")),
            "{warnings:?}"
        );
        assert!(
            warnings.iter().any(|w| w.contains("--proxy")),
            "{warnings:?}"
        );
    }

    #[test]
    fn no_url_and_no_command_are_errors() {
        let options = ImportOptions::default();
        let err = import("t.curl", b"curl -s", &options).expect_err("no url");
        assert!(err.to_string().contains("t.curl:1:1"), "{err}");
        let err = import("t.curl", b"echo hi", &options).expect_err("no curl");
        assert!(err.to_string().contains("no curl command"), "{err}");
    }

    #[test]
    fn detection() {
        assert!(looks_like_curl("# x\n\n$ curl http://a/"));
        assert!(looks_like_curl("curl.exe http://a/"));
        assert!(!looks_like_curl("{\"a\": 1}"));
    }
}
