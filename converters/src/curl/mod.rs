//! The cURL importer: one command, a file of commands or standard input, each `curl` command
//! becoming one task per URL it names.
//!
//! Options mean what they mean to curl: `-d` makes a POST with a form content type unless one
//! is set, `-G` moves the data into the query, `-I` is HEAD, `-u` is Basic authentication,
//! `--json` sets both JSON headers, a URL without a scheme is `http://`. Files a command
//! sends (`-d @FILE`, `-F name=@FILE`, `-T FILE`, ...) are read beside the command file and
//! embedded (see `files`); `--cacert`, `--cert`/`--key`, `--retry` and `--aws-sigv4` become
//! the task's `verify`, `cert`, `retry` and `auth`, the AWS keys moved to the secrets file.
//! Options that change nothing in the request (`-s`, `-v`, `-o FILE`, ...) are skipped
//! quietly; those that would change it in a way a task cannot express (proxies, other
//! authentication schemes) and unknown ones are reported by name, never guessed at.

mod shell;

use base64::Engine;
use serde_json::{Map, Value};

use crate::files::{Files, bytes_body, content};
use crate::output::{AuthMember, Body, Builder, Extras, Request};
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
    let mut files = Files::new(name, "command file", options);
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
        let mut parsed = parse(&words[1..], &mut builder, &mut files)?;
        if parsed.urls.is_empty() {
            return Err(Error::Invalid(ld_plan::render_source_error(
                name,
                text,
                first.pos,
                "this curl command names no URL",
            )));
        }
        if parsed.aws_sigv4.is_some() {
            // The command is not quoted back: it holds the secret access key.
            let at = format!("{name}:{}: curl --aws-sigv4", first.pos.line);
            parsed.sigv4 = Some(
                parsed
                    .sigv4_scope()
                    .map_err(|m| Error::Invalid(format!("{at} {m}")))?,
            );
        }
        if parsed.key.is_some() && parsed.cert.is_none() {
            builder.summary.warn(
                "curl option --key without --cert was ignored: a key goes with a certificate",
            );
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
    /// `-d` and its kin, in order, joined with `&`.
    data: Vec<Vec<u8>>,
    /// A `--data-binary @FILE` was among `data`: the body goes as its bytes, not read as a form
    /// or JSON.
    verbatim: bool,
    json: Vec<String>,
    form: Vec<Value>,
    get: bool,
    head: bool,
    /// `-T FILE`: the file's name and content.
    upload: Option<(String, Vec<u8>)>,
    insecure: bool,
    location: bool,
    compressed: bool,
    timeout: Option<f64>,
    /// `--cacert`, `--cert` (without its password) and `--key`, as the plan names them.
    cacert: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    /// `--retry N` and `--retry-delay SECONDS`.
    retry: Option<u64>,
    retry_delay: Option<f64>,
    /// `--aws-sigv4`'s argument: curl signs the request with the `-u` credentials.
    aws_sigv4: Option<String>,
    /// The region and service `aws_sigv4` signs for, once checked.
    sigv4: Option<(String, String)>,
    /// `-u USER:PASSWORD`.
    user: Option<(String, String)>,
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
        | "referer" | "url" | "max-time" | "oauth2-bearer" | "upload-file" | "cacert" | "cert"
        | "key" | "cert-type" | "key-type" | "pass" | "retry" | "retry-delay" | "aws-sigv4" => Arg,
        "get" | "head" | "insecure" | "compressed" | "location" | "location-trusted" | "basic" => {
            Flag
        }
        "output" | "write-out" | "dump-header" | "trace" | "trace-ascii" | "stderr"
        | "cookie-jar" | "output-dir" | "parallel-max" | "rate" => QuietArg,
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
        | "connect-timeout"
        | "retry-max-time"
        | "retry-all-errors-delay"
        | "max-redirs"
        | "capath"
        | "noproxy"
        | "keepalive-time"
        | "expect100-timeout"
        | "happy-eyeballs-timeout-ms"
        | "dns-servers"
        | "ciphers"
        | "tls-max"
        | "curves"
        | "pinnedpubkey"
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
        | "retry-all-errors"
        | "retry-connrefused"
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

fn parse(
    words: &[shell::Word],
    builder: &mut Builder<'_>,
    files: &mut Files<'_>,
) -> Result<Parsed> {
    let mut p = Parsed::default();
    let mut i = 0;
    let mut only_urls = false;
    while i < words.len() {
        let word = &words[i].text;
        let line = words[i].pos.line;
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
                    let at = At {
                        written: format!("--{name}"),
                        line,
                    };
                    apply(&mut p, name, kind, Some(&arg.text), &at, builder, files)?;
                }
                Some(kind) => {
                    if !negated {
                        let at = At {
                            written: format!("--{name}"),
                            line,
                        };
                        apply(&mut p, name, kind, None, &at, builder, files)?;
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
            let at = At {
                written: format!("-{c}"),
                line,
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
                apply(&mut p, name, kind, Some(&arg), &at, builder, files)?;
                break;
            }
            apply(&mut p, name, kind, None, &at, builder, files)?;
        }
    }
    if p.aws_sigv4.is_some() {
        // curl signs with the `-u` credentials instead of sending them as Basic.
        p.derived
            .retain(|(k, v)| !(k == "Authorization" && v.starts_with("Basic ")));
    }
    Ok(p)
}

/// Where an option was written: as spelled (`-d`, `--data-binary`) and its line.
struct At {
    written: String,
    line: usize,
}

impl At {
    /// The option and its argument, for messages (`-d @body.json`).
    fn with(&self, arg: &str) -> String {
        format!("{} {arg}", self.written)
    }
}

fn apply(
    p: &mut Parsed,
    name: &str,
    kind: Kind,
    arg: Option<&str>,
    at: &At,
    builder: &mut Builder<'_>,
    files: &mut Files<'_>,
) -> Result<()> {
    let arg = arg.unwrap_or_default();
    match kind {
        Kind::QuietArg | Kind::QuietFlag => return Ok(()),
        Kind::UnsupportedArg | Kind::UnsupportedFlag => {
            let why = if name.contains("proxy") || name.starts_with("socks") {
                "a task has no proxy: ld replay connects to every target directly"
            } else {
                "it cannot be expressed in a plan"
            };
            builder
                .summary
                .warn(format!("curl option --{name} was ignored: {why}"));
            return Ok(());
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
                return Ok(());
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
                    None => builder.summary.warn(format!(
                        "curl -H {arg:?} is not a header (no colon); ignored"
                    )),
                },
            }
        }
        "data" | "data-ascii" | "data-binary" => match arg.strip_prefix('@') {
            Some(file) => {
                let mut bytes = files.read(file, &at.with(arg), at.line)?;
                if name == "data-binary" {
                    p.verbatim = true;
                } else {
                    // As curl does with a file's content, not with inline data.
                    bytes.retain(|b| *b != b'\r' && *b != b'\n');
                }
                p.data.push(bytes);
            }
            None => p.data.push(arg.as_bytes().to_vec()),
        },
        "data-raw" => p.data.push(arg.as_bytes().to_vec()),
        "data-urlencode" => {
            let data = urlencode_data(arg, |file| files.read(file, &at.with(arg), at.line))?;
            p.data.push(data.into_bytes());
        }
        "json" => match arg.strip_prefix('@') {
            Some(file) => {
                let bytes = files.read(file, &at.with(arg), at.line)?;
                p.json.push(String::from_utf8_lossy(&bytes).into_owned());
            }
            None => p.json.push(arg.to_string()),
        },
        "form" | "form-string" => {
            if let Some(part) = form_part(arg, name == "form-string", at, builder, files)? {
                p.form.push(part);
            }
        }
        "upload-file" => {
            let bytes = files.read(arg, &at.with(arg), at.line)?;
            let base = arg.rsplit(['/', '\\']).next().unwrap_or(arg);
            p.upload = Some((base.to_string(), bytes));
        }
        "user" => {
            let (user, password) = match arg.split_once(':') {
                Some((u, pw)) => (u, pw),
                None => {
                    builder.summary.warn(
                        "curl -u without a password would prompt for one; an empty password is used",
                    );
                    (arg, "")
                }
            };
            p.user = Some((user.to_string(), password.to_string()));
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
        "cacert" => p.cacert = Some(files.path(arg).display().to_string()),
        "cert" => {
            let (file, password) = split_cert(arg);
            if password {
                builder.summary.warn(
                    "curl --cert FILE:PASSWORD: the key's password was left out of the plan; \
                     ld replay reads keys without a password",
                );
            }
            p.cert = Some(files.path(&file).display().to_string());
        }
        "key" => p.key = Some(files.path(arg).display().to_string()),
        "pass" => builder
            .summary
            .warn("curl option --pass was ignored: ld replay reads keys without a password"),
        "cert-type" | "key-type" if !arg.eq_ignore_ascii_case("pem") => {
            builder.summary.warn(format!(
                "curl option --{name} {arg} was ignored: ld replay reads PEM files only; \
                 convert the file to PEM (openssl)"
            ));
        }
        "retry" => match arg.trim().parse::<u64>() {
            Ok(n) => p.retry = Some(n),
            Err(_) => builder.summary.warn(format!(
                "curl --retry {arg:?} is not a number of retries; ignored"
            )),
        },
        "retry-delay" => match arg.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => p.retry_delay = Some(s),
            _ => builder.summary.warn(format!(
                "curl --retry-delay {arg:?} is not a number of seconds; ignored"
            )),
        },
        "aws-sigv4" => p.aws_sigv4 = Some(arg.to_string()),
        "get" => p.get = true,
        "head" => p.head = true,
        "insecure" => p.insecure = true,
        "compressed" => p.compressed = true,
        "location" | "location-trusted" => p.location = true,
        _ => {}
    }
    Ok(())
}

/// `--cert FILE[:PASSWORD]`: the file, and whether a password followed. A Windows drive
/// (`C:\...`) is part of the file, and `\:` is a colon in it, as curl reads them.
fn split_cert(arg: &str) -> (String, bool) {
    let mut file = String::with_capacity(arg.len());
    let mut chars = arg.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(|(_, n)| *n == ':') => {
                file.push(':');
                chars.next();
            }
            ':' if i == 1
                && arg.starts_with(|d: char| d.is_ascii_alphabetic())
                && chars.peek().is_some_and(|(_, n)| *n == '\\' || *n == '/') =>
            {
                file.push(':');
            }
            ':' => return (file, true),
            _ => file.push(c),
        }
    }
    (file, false)
}

/// `--data-urlencode`'s forms: `content`, `=content`, `name=content`, and `@file`,
/// `name@file` whose content `read` gives.
fn urlencode_data(arg: &str, read: impl FnOnce(&str) -> Result<Vec<u8>>) -> Result<String> {
    let at = arg.find('@');
    let eq = arg.find('=');
    Ok(match (eq, at) {
        (Some(e), Some(a)) if a < e => {
            format!("{}{}", name_eq(&arg[..a]), escape(&read(&arg[a + 1..])?))
        }
        (None, Some(a)) => format!("{}{}", name_eq(&arg[..a]), escape(&read(&arg[a + 1..])?)),
        (Some(0), _) => escape(&arg.as_bytes()[1..]),
        (Some(e), _) => format!("{}={}", &arg[..e], escape(&arg.as_bytes()[e + 1..])),
        (None, None) => escape(arg.as_bytes()),
    })
}

/// `name=`, or nothing for no name.
fn name_eq(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!("{name}=")
    }
}

/// curl's URL escaping: everything but ASCII letters, digits and `-._~` as `%XX`.
fn escape(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    ld_plan::encode::push_bytes(s, ld_plan::encode::UNRESERVED, &mut out);
    out
}

/// One `-F` part: `name=value`, `name=@file` (a file upload), `name=<file` (a value read from
/// a file), with `;type=` and `;filename=` modifiers.
fn form_part(
    arg: &str,
    literal: bool,
    at: &At,
    builder: &mut Builder<'_>,
    files: &mut Files<'_>,
) -> Result<Option<Value>> {
    let Some((name, rest)) = arg.split_once('=') else {
        builder
            .summary
            .warn(format!("curl -F {arg:?} has no `=`; ignored"));
        return Ok(None);
    };
    let mut part = Map::new();
    part.insert("name".into(), Value::String(name.to_string()));
    if literal {
        part.insert("value".into(), Value::String(rest.to_string()));
        return Ok(Some(Value::Object(part)));
    }
    let (value, modifiers) = form_value(rest);
    let mut content_type = None;
    let mut filename = None;
    for modifier in modifiers.split(';') {
        match modifier.trim().split_once('=') {
            Some(("type", t)) => content_type = Some(t.to_string()),
            Some(("filename", f)) => filename = Some(f.trim_matches('"').to_string()),
            _ => {}
        }
    }
    if let Some(path) = value.strip_prefix('@') {
        let bytes = files.read(path, &at.with(arg), at.line)?;
        let base = path.rsplit(['/', '\\']).next().unwrap_or(path);
        content(&mut part, bytes);
        part.insert(
            "filename".into(),
            Value::String(filename.unwrap_or_else(|| base.to_string())),
        );
    } else if let Some(path) = value.strip_prefix('<') {
        let bytes = files.read(path, &at.with(arg), at.line)?;
        content(&mut part, bytes);
        if let Some(f) = filename {
            part.insert("filename".into(), Value::String(f));
        }
    } else {
        part.insert("value".into(), Value::String(value));
        if let Some(f) = filename {
            part.insert("filename".into(), Value::String(f));
        }
    }
    if let Some(t) = content_type {
        part.insert("content_type".into(), Value::String(t));
    }
    Ok(Some(Value::Object(part)))
}

/// A `-F` value and its `;modifiers`: the value may be quoted (`@"a;b.txt"`), which keeps a
/// `;` in it.
fn form_value(rest: &str) -> (String, &str) {
    let (prefix, body) = match rest.strip_prefix(['@', '<']) {
        Some(b) => (&rest[..1], b),
        None => ("", rest),
    };
    if let Some(quoted) = body.strip_prefix('"')
        && let Some(end) = quoted.find('"')
    {
        let after = &quoted[end + 1..];
        return (
            format!("{prefix}{}", &quoted[..end]),
            after.strip_prefix(';').unwrap_or(after),
        );
    }
    match rest.split_once(';') {
        Some((v, m)) => (v.to_string(), m),
        None => (rest.to_string(), ""),
    }
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
            None if self.upload.is_some() => "PUT".into(),
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
            let joined = self.data.join(&b'&');
            if self.get {
                query_data = Some(String::from_utf8_lossy(&joined).into_owned());
            } else if self.verbatim || std::str::from_utf8(&joined).is_err() {
                if !self.has_header("content-type") {
                    headers.push((
                        "Content-Type".into(),
                        "application/x-www-form-urlencoded".into(),
                    ));
                }
                body = bytes_body(&joined);
            } else {
                let text = String::from_utf8_lossy(&joined).into_owned();
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
        } else if let Some((_, bytes)) = &self.upload {
            body = bytes_body(bytes);
        }
        if self.compressed && !self.has_header("accept-encoding") {
            headers.push(("Accept-Encoding".into(), "deflate, gzip, br, zstd".into()));
        }
        self.urls
            .iter()
            .map(|url| {
                let mut url = with_scheme(url);
                if let Some((file, _)) = &self.upload {
                    url = upload_url(url, file);
                }
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
                    extras: self.extras(),
                    ..Request::default()
                }
            })
            .collect()
    }
}

impl Parsed {
    /// The task members of `--aws-sigv4`, `--cacert`, `--cert`/`--key` and `--retry`.
    fn extras(&self) -> Extras {
        let mut extras = Extras::default();
        if let (Some((region, service)), Some((access, secret))) = (&self.sigv4, &self.user) {
            let member = |key, value: &str, secret| AuthMember {
                key,
                value: value.to_string(),
                secret,
            };
            extras.auth = vec![
                member("type", "sigv4", None),
                member("service", service, None),
                member("region", region, None),
                member("access_key", access, Some("aws_access_key_id")),
                member("secret_key", secret, Some("aws_secret_access_key")),
            ];
        }
        // curl -k skips verification whatever --cacert says.
        if let Some(ca) = self.cacert.as_ref().filter(|_| !self.insecure) {
            extras.members.push(("verify", Value::String(ca.clone())));
        }
        if let Some(cert) = &self.cert {
            let value = match &self.key {
                Some(key) => serde_json::json!([cert, key]),
                None => Value::String(cert.clone()),
            };
            extras.members.push(("cert", value));
        }
        if let Some(n) = self.retry {
            // curl retries what failed to connect or timed out; a failed check is not retried.
            let mut retry = Map::new();
            retry.insert("transient".into(), Value::from(n.min(MAX_RETRIES)));
            retry.insert("flaky".into(), Value::from(0));
            retry.insert("permanent".into(), Value::from(0));
            if let Some(delay) = self.retry_delay {
                // curl waits the same delay before each retry when it is given one.
                let delay = serde_json::Number::from_f64(delay.min(MAX_RETRY_DELAY))
                    .map_or(Value::from(1), Value::Number);
                retry.insert("base_delay".into(), delay.clone());
                retry.insert("max_delay".into(), delay);
                retry.insert("backoff_factor".into(), Value::from(1));
                retry.insert("jitter".into(), Value::from(0));
            }
            extras.members.push(("retry", Value::Object(retry)));
        }
        extras
    }

    /// The region and service `--aws-sigv4 PROVIDER1[:PROVIDER2[:REGION[:SERVICE]]]` signs
    /// for; both are read from an `SERVICE.REGION.amazonaws.com` host when not given. The
    /// message of an error follows `curl --aws-sigv4`.
    fn sigv4_scope(&self) -> Result<(String, String), String> {
        let spec = self.aws_sigv4.as_deref().unwrap_or_default();
        let mut parts = spec.split(':');
        let provider = parts.next().unwrap_or_default();
        if !provider.eq_ignore_ascii_case("aws") {
            return Err(format!(
                "{spec:?}: ld signs requests for AWS only (`aws:amz:REGION:SERVICE`)"
            ));
        }
        let _ = parts.next();
        let mut region = parts.next().unwrap_or_default().to_string();
        let mut service = parts.next().unwrap_or_default().to_string();
        if region.is_empty() || service.is_empty() {
            let url = with_scheme(self.urls.first().map(String::as_str).unwrap_or_default());
            let host = url
                .split_once("://")
                .map_or("", |(_, rest)| rest)
                .split(['/', '?', '#', ':'])
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let labels: Vec<&str> = host.split('.').collect();
            if let [s, r, "amazonaws", "com"] = labels.as_slice() {
                if service.is_empty() {
                    service = s.to_string();
                }
                if region.is_empty() {
                    region = r.to_string();
                }
            }
        }
        if region.is_empty() || service.is_empty() {
            return Err(format!(
                "{spec:?} names no region and service, and the host does not tell them:                  write --aws-sigv4 aws:amz:REGION:SERVICE"
            ));
        }
        match &self.user {
            Some((access, secret)) if !access.is_empty() && !secret.is_empty() => {}
            _ => {
                return Err("signs with the -u ACCESS_KEY:SECRET_KEY credentials, and this                             command gives none (or no secret key): add them"
                    .into());
            }
        }
        Ok((region, service))
    }
}

/// The URL `-T FILE` puts to: curl appends the file's name to a URL whose path ends in `/`.
fn upload_url(url: String, file: &str) -> String {
    let (base, rest) = match url.find(['?', '#']) {
        Some(i) => (&url[..i], &url[i..]),
        None => (url.as_str(), ""),
    };
    let path_starts = base.find("://").map_or(0, |i| i + 3);
    let has_path = base[path_starts..].contains('/');
    if base.ends_with('/') || !has_path {
        let slash = if has_path { "" } else { "/" };
        format!("{base}{slash}{}{rest}", escape(file.as_bytes()))
    } else {
        url
    }
}

/// Bounds the engine holds a task's `retry` to.
const MAX_RETRIES: u64 = 100;
const MAX_RETRY_DELAY: f64 = 3600.0;

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

    /// Imports `command` as the file `cmd.curl` in `dir`, beside the files it names.
    fn in_dir(dir: &std::path::Path, command: &str, inline: bool) -> Result<Import> {
        let options = ImportOptions {
            inline_secrets: inline,
            base_dir: Some(dir.to_path_buf()),
            ..ImportOptions::default()
        };
        import("cmd.curl", command.as_bytes(), &options)
    }

    fn first_task(import: &Import) -> ld_plan::Task {
        let action = import.plan().actions.last().expect("action").clone();
        let start = action.as_start_test("/0").expect("start");
        start.tasks.expect("tasks").to_list().remove(0)
    }

    fn files_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("x.png"), b"\x89PNG\r\n\x1a\n\0\xff").expect("write");
        std::fs::write(dir.path().join("note.txt"), "line one\r\nline two\n").expect("write");
        std::fs::write(dir.path().join("q.txt"), "red shoes & more\n").expect("write");
        dir
    }

    #[test]
    fn form_parts_embed_the_files_they_name() {
        let dir = files_dir();
        let import = in_dir(
            dir.path(),
            "curl -F 'a=1' -F 'f=@x.png;type=image/png' -F 'n=<note.txt' -F 't=@note.txt;filename=n.txt' http://a/up",
            true,
        )
        .expect("imports");
        let t = first_task(&import);
        assert_eq!(t.method.as_deref(), Some("post"));
        // Binary content keeps the parts in `body.multipart`, as base64.
        let parts = t.body.expect("body")["multipart"].clone();
        assert_eq!(parts[0], serde_json::json!({"name": "a", "value": "1"}));
        assert_eq!(parts[1]["filename"], "x.png");
        assert_eq!(parts[1]["content_type"], "image/png");
        assert_eq!(parts[1]["base64"], "iVBORw0KGgoA/w==");
        assert_eq!(parts[2]["value"], "line one\r\nline two\n");
        assert!(parts[2].get("filename").is_none(), "{parts}");
        assert_eq!(parts[3]["filename"], "n.txt");
        assert_eq!(parts[3]["value"], "line one\r\nline two\n");
    }

    #[test]
    fn text_form_files_go_in_the_loaddensity_fields() {
        let dir = files_dir();
        let import = in_dir(
            dir.path(),
            "curl -F a=1 -F 'f=@\"note.txt\";type=text/plain' http://a/up",
            true,
        )
        .expect("imports");
        let t = first_task(&import);
        assert!(t.body.is_none(), "{:?}", t.body);
        assert_eq!(t.data.expect("data")["a"], "1");
        let f = &t.files.expect("files")["f"];
        assert_eq!(f[0], "note.txt");
        assert_eq!(f[1], "line one\r\nline two\n");
        assert_eq!(f[2], "text/plain");
    }

    #[test]
    fn data_files_are_read_as_curl_reads_them() {
        let dir = files_dir();
        // `-d @FILE` drops carriage returns and newlines; `--data-binary @FILE` keeps every byte.
        let t = first_task(
            &in_dir(
                dir.path(),
                "curl -d @note.txt -H 'Content-Type: text/plain' http://a/",
                true,
            )
            .expect("imports"),
        );
        assert_eq!(t.data, Some(Value::String("line oneline two".into())));
        let t = first_task(
            &in_dir(dir.path(), "curl --data-binary @note.txt http://a/", true).expect("imports"),
        );
        assert_eq!(t.data, Some(Value::String("line one\r\nline two\n".into())));
        let t = first_task(
            &in_dir(dir.path(), "curl --data-binary @x.png http://a/", true).expect("imports"),
        );
        assert_eq!(t.body.expect("body")["base64"], "iVBORw0KGgoA/w==");
        // `--data-raw` gives `@` no meaning.
        let t = first_task(
            &in_dir(
                dir.path(),
                "curl --data-raw @note.txt -H 'Content-Type: text/plain' http://a/",
                true,
            )
            .expect("imports"),
        );
        assert_eq!(t.data, Some(Value::String("@note.txt".into())));
        let t = first_task(
            &in_dir(
                dir.path(),
                "curl -G --data-urlencode q@q.txt --data-urlencode @q.txt http://a/s",
                true,
            )
            .expect("imports"),
        );
        assert_eq!(
            t.request_url.as_deref(),
            Some("http://a/s?q=red%20shoes%20%26%20more%0A&red%20shoes%20%26%20more%0A")
        );
    }

    #[test]
    fn upload_file_puts_the_file_and_names_it_in_a_directory_url() {
        let dir = files_dir();
        let t =
            first_task(&in_dir(dir.path(), "curl -T x.png http://a/up/", true).expect("imports"));
        assert_eq!(t.method.as_deref(), Some("put"));
        assert_eq!(t.request_url.as_deref(), Some("http://a/up/x.png"));
        assert_eq!(t.body.expect("body")["base64"], "iVBORw0KGgoA/w==");
        let t = first_task(
            &in_dir(dir.path(), "curl -T note.txt http://a/up/n", true).expect("imports"),
        );
        assert_eq!(t.request_url.as_deref(), Some("http://a/up/n"));
    }

    #[test]
    fn a_missing_file_or_stdin_is_an_error_at_the_command_line() {
        let dir = files_dir();
        let err = in_dir(
            dir.path(),
            "# one\ncurl http://a/ \\\n  -F f=@nope.bin",
            true,
        )
        .expect_err("missing");
        let text = err.to_string();
        assert!(
            text.starts_with("cmd.curl:3: curl -F f=@nope.bin: cannot read "),
            "{text}"
        );
        assert!(text.contains("nope.bin: no such file"), "{text}");
        let err = in_dir(dir.path(), "curl -d @- http://a/", true).expect_err("stdin");
        assert!(
            err.to_string().contains("-d @- reads standard input"),
            "{err}"
        );
        let err = in_dir(dir.path(), "curl -T missing.txt http://a/", true).expect_err("missing");
        assert!(
            err.to_string().contains("missing.txt: no such file"),
            "{err}"
        );
        // Standard input has no directory to read a relative file from.
        let err = import(
            "-",
            b"curl -d @note.txt http://a/",
            &ImportOptions::default(),
        )
        .expect_err("no base");
        assert!(
            err.to_string().contains("came from standard input"),
            "{err}"
        );
    }

    #[test]
    fn an_oversized_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = std::fs::File::create(dir.path().join("big.bin")).expect("create");
        big.set_len(crate::files::MAX_FILE + 1).expect("grow");
        let err =
            in_dir(dir.path(), "curl --data-binary @big.bin http://a/", true).expect_err("big");
        assert!(err.to_string().contains("more than the"), "{err}");
    }

    #[test]
    fn cacert_cert_key_and_retry_become_task_fields() {
        let dir = files_dir();
        let import = in_dir(
            dir.path(),
            "curl --cacert ca.pem --cert client.pem:hunter2 --key client.key --retry 3 --retry-delay 2 https://a/",
            true,
        )
        .expect("imports");
        let t = first_task(&import);
        let ca = dir.path().join("ca.pem").display().to_string();
        assert_eq!(t.verify, Some(Value::String(ca)));
        let cert = dir.path().join("client.pem").display().to_string();
        let key = dir.path().join("client.key").display().to_string();
        assert_eq!(t.extra["cert"], serde_json::json!([cert, key]));
        assert_eq!(
            t.extra["retry"],
            serde_json::json!({"transient": 3, "flaky": 0, "permanent": 0, "base_delay": 2.0,
                               "max_delay": 2.0, "backoff_factor": 1, "jitter": 0})
        );
        let plan = import.to_json_string();
        assert!(!plan.contains("hunter2"), "{plan}");
        let warnings: Vec<&String> = import.summary.warnings.keys().collect();
        assert!(
            warnings.iter().any(|w| w.contains("password was left out")),
            "{warnings:?}"
        );
        assert!(
            !warnings.iter().any(|w| w.contains("hunter2")),
            "{warnings:?}"
        );
        // -k wins over --cacert, as in curl; a cert without --key holds both.
        let t = first_task(
            &in_dir(
                dir.path(),
                "curl -k --cacert ca.pem -E both.pem https://a/",
                true,
            )
            .expect("imports"),
        );
        assert_eq!(t.verify, Some(Value::Bool(false)));
        assert_eq!(
            t.extra["cert"],
            Value::String(dir.path().join("both.pem").display().to_string())
        );
    }

    #[test]
    fn cert_passwords_and_windows_drives() {
        assert_eq!(split_cert("c.pem"), ("c.pem".into(), false));
        assert_eq!(split_cert("c.pem:pw"), ("c.pem".into(), true));
        assert_eq!(
            split_cert(r"C:\certs\c.pem"),
            (r"C:\certs\c.pem".into(), false)
        );
        assert_eq!(split_cert(r"a\:b.pem:pw"), ("a:b.pem".into(), true));
    }

    #[test]
    fn aws_sigv4_signs_with_the_user_keys_moved_to_the_secrets_file() {
        let options = ImportOptions::default();
        let command = "curl --aws-sigv4 'aws:amz:eu-west-1:execute-api' --user 'AKIDEXAMPLE:wJalrSECRET' https://api.test/items";
        let import = import("t.curl", command.as_bytes(), &options).expect("imports");
        let plan = import.to_json_string();
        assert!(!plan.contains("wJalrSECRET"), "{plan}");
        assert!(!plan.contains("AKIDEXAMPLE"), "{plan}");
        assert!(!plan.contains("Basic"), "{plan}");
        let t = first_task(&import);
        assert_eq!(
            t.auth,
            Some(
                serde_json::json!({"type": "sigv4", "service": "execute-api", "region": "eu-west-1",
                "access_key": "${env.AWS_ACCESS_KEY_ID}", "secret_key": "${env.AWS_SECRET_ACCESS_KEY}"})
            )
        );
        assert!(t.headers.is_none_or(|h| !h.contains_key("Authorization")));
        let env = import.secrets_env().expect("secrets");
        assert!(env.contains("AWS_ACCESS_KEY_ID=AKIDEXAMPLE\n"), "{env}");
        assert!(env.contains("AWS_SECRET_ACCESS_KEY=wJalrSECRET\n"), "{env}");
        // The region and service come from an AWS host when not given.
        let command = "curl --aws-sigv4 aws:amz -u A:S https://s3.us-east-2.amazonaws.com/b";
        let t = first_task(&import_one(command));
        assert_eq!(t.auth.expect("auth")["region"], "us-east-2");
    }

    fn import_one(command: &str) -> Import {
        import("t.curl", command.as_bytes(), &ImportOptions::default()).expect("imports")
    }

    #[test]
    fn aws_sigv4_without_keys_or_scope_is_an_error_that_quotes_no_secret() {
        let options = ImportOptions::default();
        let err = import(
            "t.curl",
            b"curl --aws-sigv4 aws:amz:r:s https://a/",
            &options,
        )
        .expect_err("no -u");
        assert!(
            err.to_string()
                .starts_with("t.curl:1: curl --aws-sigv4 signs with the -u"),
            "{err}"
        );
        let err = import(
            "t.curl",
            b"curl --aws-sigv4 aws:amz -u A:TOPSECRET https://a/",
            &options,
        )
        .expect_err("no scope");
        assert!(err.to_string().contains("aws:amz:REGION:SERVICE"), "{err}");
        assert!(!err.to_string().contains("TOPSECRET"), "{err}");
        let err = import(
            "t.curl",
            b"curl --aws-sigv4 osc:x:r:s -u A:S https://a/",
            &options,
        )
        .expect_err("provider");
        assert!(err.to_string().contains("AWS only"), "{err}");
    }

    #[test]
    fn ignored_options_are_named_in_the_warnings() {
        let import = import_one(
            "curl --proxy http://p:3128 --connect-timeout 2 --capath /etc/ssl --retry-connrefused http://a/",
        );
        let warnings: Vec<&String> = import.summary.warnings.keys().collect();
        for name in [
            "--proxy",
            "--connect-timeout",
            "--capath",
            "--retry-connrefused",
        ] {
            assert!(
                warnings.iter().any(|w| w.contains(name)),
                "{name}: {warnings:?}"
            );
        }
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("connects to every target directly")),
            "{warnings:?}"
        );
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
