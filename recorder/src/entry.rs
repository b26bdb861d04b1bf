//! One finished exchange as the proxy saw it ([`Record`]), and its HAR 1.2 entry.
//!
//! The HAR types here are written for output only. The `har` crate's `v1_2` types cannot carry
//! the fields a faithful recording needs beyond the specification: Chrome's `_webSocketMessages`
//! and `_resourceType`, `_error` on failed exchanges, and `encoding` on `postData` for binary
//! request bodies (which the `ld import` reader understands); they also own every string, where
//! these borrow from the captured exchange. The tests check that every entry written here still
//! parses as a `har::v1_2` entry, so the output stays within the specification.
//!
//! Bodies: text that is valid UTF-8 is written as text, anything else base64 with
//! `encoding: "base64"`; response content is decoded from its `Content-Encoding` for the record
//! while `bodySize` keeps the bytes that crossed the wire. `--max-body` cuts what is recorded,
//! never what is forwarded, and says so in the entry's `comment` and `_truncated`.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Version};
use serde::Serialize;

use crate::decode;

/// The request line and headers as the client sent them.
#[derive(Debug, Clone)]
pub(crate) struct RequestHead {
    pub(crate) method: String,
    pub(crate) url: String,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
}

/// The status line and headers as the upstream sent them.
#[derive(Debug, Clone)]
pub(crate) struct ResponseHead {
    pub(crate) status: u16,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
}

/// A body as it streamed through: the first `max` bytes kept (as the forwarded buffers
/// themselves, no copy), and the total size.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    chunks: Vec<Bytes>,
    kept: usize,
    pub(crate) total: u64,
    pub(crate) truncated: bool,
}

impl Captured {
    /// Notes one forwarded chunk, keeping at most `max` bytes in all.
    pub(crate) fn push(&mut self, chunk: &Bytes, max: usize) {
        self.total += chunk.len() as u64;
        let room = max.saturating_sub(self.kept);
        if chunk.len() <= room {
            if !chunk.is_empty() {
                self.chunks.push(chunk.clone());
                self.kept += chunk.len();
            }
        } else {
            if room > 0 {
                self.chunks.push(chunk.slice(..room));
                self.kept += room;
            }
            self.truncated = true;
        }
    }

    fn bytes(&self) -> Cow<'_, [u8]> {
        match self.chunks.as_slice() {
            [] => Cow::Borrowed(&[]),
            [one] => Cow::Borrowed(one.as_ref()),
            many => Cow::Owned(many.iter().flat_map(|c| c.iter().copied()).collect()),
        }
    }
}

/// Phase durations in milliseconds; `None` where not applicable (HAR's -1).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Phases {
    pub(crate) dns: Option<f64>,
    pub(crate) connect: Option<f64>,
    pub(crate) ssl: Option<f64>,
    pub(crate) send: f64,
    pub(crate) wait: f64,
    pub(crate) receive: f64,
}

/// One WebSocket data message.
#[derive(Debug, Clone)]
pub(crate) struct WsMessage {
    /// From the client to the server.
    pub(crate) sent: bool,
    pub(crate) at: SystemTime,
    /// 1 text, 2 binary.
    pub(crate) opcode: u8,
    pub(crate) data: Vec<u8>,
    pub(crate) truncated: bool,
}

/// Everything the proxy saw of one exchange.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) started: SystemTime,
    pub(crate) request: RequestHead,
    pub(crate) request_body: Captured,
    pub(crate) response: Option<ResponseHead>,
    pub(crate) response_body: Captured,
    pub(crate) phases: Phases,
    pub(crate) server_ip: Option<IpAddr>,
    pub(crate) connection: Option<String>,
    /// Why no response came (upstream unreachable, ...): a Chrome-style error entry.
    pub(crate) error: Option<String>,
    /// Why the exchange ended before it was complete (client gone, recorder stopped).
    pub(crate) incomplete: Option<String>,
    pub(crate) websocket: Option<Vec<WsMessage>>,
}

impl Record {
    pub(crate) fn new(started: SystemTime, request: RequestHead) -> Record {
        Record {
            started,
            request,
            request_body: Captured::default(),
            response: None,
            response_body: Captured::default(),
            phases: Phases::default(),
            server_ip: None,
            connection: None,
            error: None,
            incomplete: None,
            websocket: None,
        }
    }

    /// The HAR entry as one line of JSON (no newline), without the headers named (lowercase)
    /// in `drop`; the body is still decoded as the dropped headers say.
    pub(crate) fn to_json(&self, max_body: usize, drop: &[String]) -> Vec<u8> {
        let mut entry = build(self, max_body);
        if !drop.is_empty() {
            let dropped = |name: &str| drop.iter().any(|d| d.eq_ignore_ascii_case(name));
            entry.request.headers.retain(|h| !dropped(&h.name));
            entry.response.headers.retain(|h| !dropped(&h.name));
            if dropped("cookie") {
                entry.request.cookies.clear();
            }
            if dropped("set-cookie") {
                entry.response.cookies.clear();
            }
        }
        // Serialising plain structs of strings and numbers into memory cannot fail.
        serde_json::to_vec(&entry).unwrap_or_default()
    }
}

#[derive(Serialize)]
struct Entry<'a> {
    #[serde(rename = "startedDateTime")]
    started: String,
    time: f64,
    request: Request<'a>,
    response: Response<'a>,
    cache: Cache,
    timings: Timings,
    #[serde(rename = "serverIPAddress", skip_serializing_if = "Option::is_none")]
    server_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(rename = "_resourceType", skip_serializing_if = "Option::is_none")]
    resource_type: Option<&'static str>,
    #[serde(rename = "_webSocketMessages", skip_serializing_if = "Option::is_none")]
    websocket: Option<Vec<WsEntry>>,
    #[serde(rename = "_error", skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(rename = "_incomplete", skip_serializing_if = "std::ops::Not::not")]
    incomplete: bool,
}

#[derive(Serialize)]
struct NameValue<'a> {
    name: Cow<'a, str>,
    value: Cow<'a, str>,
}

#[derive(Serialize)]
struct Cookie<'a> {
    name: Cow<'a, str>,
    value: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<String>,
    #[serde(rename = "httpOnly", skip_serializing_if = "Option::is_none")]
    http_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secure: Option<bool>,
}

#[derive(Serialize)]
struct Request<'a> {
    method: &'a str,
    url: &'a str,
    #[serde(rename = "httpVersion")]
    http_version: &'static str,
    cookies: Vec<Cookie<'a>>,
    headers: Vec<NameValue<'a>>,
    #[serde(rename = "queryString")]
    query_string: Vec<NameValue<'a>>,
    #[serde(rename = "postData", skip_serializing_if = "Option::is_none")]
    post_data: Option<PostData<'a>>,
    #[serde(rename = "headersSize")]
    headers_size: i64,
    #[serde(rename = "bodySize")]
    body_size: i64,
}

#[derive(Serialize)]
struct PostData<'a> {
    #[serde(rename = "mimeType")]
    mime_type: Cow<'a, str>,
    text: String,
    params: Vec<Param>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(rename = "_truncated", skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
}

#[derive(Serialize)]
struct Param {
    name: String,
    value: String,
}

#[derive(Serialize)]
struct Response<'a> {
    status: u16,
    #[serde(rename = "statusText")]
    status_text: &'a str,
    #[serde(rename = "httpVersion")]
    http_version: &'static str,
    cookies: Vec<Cookie<'a>>,
    headers: Vec<NameValue<'a>>,
    content: Content<'a>,
    #[serde(rename = "redirectURL")]
    redirect_url: String,
    #[serde(rename = "headersSize")]
    headers_size: i64,
    #[serde(rename = "bodySize")]
    body_size: i64,
}

#[derive(Serialize)]
struct Content<'a> {
    size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    compression: Option<i64>,
    #[serde(rename = "mimeType")]
    mime_type: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(rename = "_truncated", skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
}

#[derive(Serialize)]
struct Cache {}

#[derive(Serialize)]
struct Timings {
    blocked: f64,
    dns: f64,
    connect: f64,
    send: f64,
    wait: f64,
    receive: f64,
    ssl: f64,
}

#[derive(Serialize)]
struct WsEntry {
    #[serde(rename = "type")]
    kind: &'static str,
    time: f64,
    opcode: u8,
    data: String,
}

fn build(record: &Record, max_body: usize) -> Entry<'_> {
    let req = &record.request;
    let phases = record.phases;
    let ms = |v: f64| (v.max(0.0) * 1000.0).round() / 1000.0;
    let opt = |v: Option<f64>| v.map(ms).unwrap_or(-1.0);
    let timings = Timings {
        blocked: -1.0,
        dns: opt(phases.dns),
        connect: opt(phases.connect),
        send: ms(phases.send),
        wait: ms(phases.wait),
        receive: ms(phases.receive),
        ssl: opt(phases.ssl),
    };
    // The specification: `time` is the sum of the phases that apply, and `ssl` is part of
    // `connect`, so it is not added twice.
    let time = [
        timings.dns,
        timings.connect,
        timings.send,
        timings.wait,
        timings.receive,
    ]
    .iter()
    .filter(|v| **v > 0.0)
    .sum::<f64>();
    let time = (time * 1000.0).round() / 1000.0;

    let mut comments = Vec::new();
    let post_data = post_data(req, &record.request_body, &mut comments);
    let response = match &record.response {
        Some(head) => response(head, req, &record.response_body, max_body, &mut comments),
        None => Response {
            status: 0,
            status_text: "",
            http_version: "",
            cookies: Vec::new(),
            headers: Vec::new(),
            content: Content {
                size: 0,
                compression: None,
                mime_type: Cow::Borrowed("x-unknown"),
                text: None,
                encoding: None,
                comment: None,
                truncated: false,
            },
            redirect_url: String::new(),
            headers_size: -1,
            body_size: -1,
        },
    };
    if let Some(reason) = &record.incomplete {
        comments.push(format!("incomplete: {reason}"));
    }
    if let Some(error) = &record.error {
        comments.push(format!("no response: {error}"));
    }
    let websocket = record.websocket.as_ref().map(|messages| {
        messages
            .iter()
            .map(|m| WsEntry {
                kind: if m.sent { "send" } else { "receive" },
                time: epoch_secs(m.at),
                opcode: m.opcode,
                data: if m.opcode == 1 {
                    String::from_utf8_lossy(&m.data).into_owned()
                } else {
                    base64::engine::general_purpose::STANDARD.encode(&m.data)
                },
            })
            .collect()
    });
    if record
        .websocket
        .as_ref()
        .is_some_and(|m| m.iter().any(|m| m.truncated))
    {
        comments.push(format!(
            "some WebSocket messages are cut to {max_body} bytes (--max-body)"
        ));
    }
    Entry {
        started: iso8601(record.started),
        time,
        request: Request {
            method: &req.method,
            url: &req.url,
            http_version: version(req.version),
            cookies: request_cookies(&req.headers),
            headers: headers(&req.headers),
            query_string: query_string(&req.url),
            post_data,
            headers_size: -1,
            body_size: record.request_body.total as i64,
        },
        response,
        cache: Cache {},
        timings,
        server_ip: record.server_ip.map(|ip| ip.to_string()),
        connection: record.connection.as_deref(),
        comment: (!comments.is_empty()).then(|| comments.join("; ")),
        resource_type: record.websocket.is_some().then_some("websocket"),
        websocket,
        error: record.error.as_deref(),
        incomplete: record.incomplete.is_some(),
    }
}

fn post_data<'a>(
    req: &'a RequestHead,
    body: &Captured,
    comments: &mut Vec<String>,
) -> Option<PostData<'a>> {
    if body.total == 0 {
        return None;
    }
    let mime = header_str(&req.headers, "content-type").unwrap_or(Cow::Borrowed(""));
    let bytes = body.bytes();
    let (text, encoding) = text_or_base64(&bytes, body.truncated);
    let essence = mime
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let params = if essence == "application/x-www-form-urlencoded" && encoding.is_none() {
        form_pairs(&text)
            .map(|(name, value)| Param { name, value })
            .collect()
    } else {
        Vec::new()
    };
    let comment = body.truncated.then(|| {
        let note = format!(
            "request body truncated: {} of {} bytes recorded (--max-body)",
            bytes.len(),
            body.total
        );
        comments.push(note.clone());
        note
    });
    Some(PostData {
        mime_type: mime,
        text,
        params,
        encoding,
        comment,
        truncated: body.truncated,
    })
}

fn response<'a>(
    head: &'a ResponseHead,
    req: &RequestHead,
    body: &Captured,
    max_body: usize,
    comments: &mut Vec<String>,
) -> Response<'a> {
    let status_text = http::StatusCode::from_u16(head.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mime = header_str(&head.headers, "content-type").unwrap_or(Cow::Borrowed("x-unknown"));
    let raw = body.bytes();
    let encodings = header_str(&head.headers, "content-encoding")
        .map(|v| decode::encodings(&v))
        .unwrap_or_default();
    let mut content_comment = None;
    let mut truncated = body.truncated;
    let (decoded, size, compression): (Cow<'_, [u8]>, i64, Option<i64>) = if encodings.is_empty() {
        (raw, body.total as i64, None)
    } else {
        match decode::decode(&raw, &encodings, max_body, !body.truncated) {
            Ok(d) => {
                truncated |= d.truncated;
                let size = d.bytes.len() as i64;
                // The decoded size of a cut body is unknown; only a whole one says how much
                // the encoding saved.
                let compression = (!truncated).then(|| size - body.total as i64);
                (Cow::Owned(d.bytes), size, compression)
            }
            Err(e) => {
                let note = format!("content kept as received: {e}");
                content_comment = Some(note.clone());
                comments.push(note);
                (raw, body.total as i64, None)
            }
        }
    };
    let (text, encoding) = text_or_base64(&decoded, truncated);
    if truncated {
        let note = format!(
            "response body truncated: {} bytes recorded, {} bytes forwarded (--max-body)",
            decoded.len(),
            body.total
        );
        comments.push(note.clone());
        content_comment = Some(match content_comment {
            Some(c) => format!("{c}; {note}"),
            None => note,
        });
    }
    let redirect_url = header_str(&head.headers, "location")
        .map(|l| resolve(&req.url, &l))
        .unwrap_or_default();
    Response {
        status: head.status,
        status_text,
        http_version: version(head.version),
        cookies: response_cookies(&head.headers),
        headers: headers(&head.headers),
        content: Content {
            size,
            compression,
            mime_type: mime,
            text: (body.total > 0).then_some(text),
            encoding,
            comment: content_comment,
            truncated,
        },
        redirect_url,
        headers_size: -1,
        body_size: body.total as i64,
    }
}

/// Valid UTF-8 as text; anything else base64. A cut body may end inside a character: the
/// partial character is dropped rather than turning the whole text into base64.
fn text_or_base64(bytes: &[u8], truncated: bool) -> (String, Option<&'static str>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), None),
        Err(e) if truncated && e.error_len().is_none() => (
            String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned(),
            None,
        ),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            Some("base64"),
        ),
    }
}

fn version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<Cow<'a, str>> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
}

fn headers(map: &HeaderMap) -> Vec<NameValue<'_>> {
    map.iter()
        .map(|(name, value)| NameValue {
            name: Cow::Borrowed(name.as_str()),
            value: String::from_utf8_lossy(value.as_bytes()),
        })
        .collect()
}

fn request_cookies(map: &HeaderMap) -> Vec<Cookie<'_>> {
    map.get_all("cookie")
        .iter()
        .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let pair = pair.trim();
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (!name.is_empty()).then(|| Cookie {
                name: Cow::Borrowed(name.trim()),
                value: Cow::Borrowed(value.trim()),
                path: None,
                domain: None,
                expires: None,
                http_only: None,
                secure: None,
            })
        })
        .collect()
}

fn response_cookies(map: &HeaderMap) -> Vec<Cookie<'_>> {
    map.get_all("set-cookie")
        .iter()
        .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
        .filter_map(|line| {
            let mut parts = line.split(';');
            let first = parts.next()?.trim();
            let (name, value) = first.split_once('=')?;
            let mut cookie = Cookie {
                name: Cow::Borrowed(name.trim()),
                value: Cow::Borrowed(value.trim()),
                path: None,
                domain: None,
                expires: None,
                http_only: None,
                secure: None,
            };
            for attr in parts {
                let attr = attr.trim();
                let (key, val) = attr.split_once('=').unwrap_or((attr, ""));
                match key.trim().to_ascii_lowercase().as_str() {
                    "path" => cookie.path = Some(Cow::Borrowed(val.trim())),
                    "domain" => cookie.domain = Some(Cow::Borrowed(val.trim())),
                    "expires" if cookie.expires.is_none() => {
                        cookie.expires = parse_http_date(val.trim()).map(iso8601);
                    }
                    "max-age" => {
                        // Max-Age wins over Expires (RFC 6265 5.3).
                        if let Ok(secs) = val.trim().parse::<i64>() {
                            let at = if secs <= 0 {
                                UNIX_EPOCH
                            } else {
                                SystemTime::now() + Duration::from_secs(secs as u64)
                            };
                            cookie.expires = Some(iso8601(at));
                        }
                    }
                    "httponly" => cookie.http_only = Some(true),
                    "secure" => cookie.secure = Some(true),
                    _ => {}
                }
            }
            Some(cookie)
        })
        .collect()
}

fn query_string(url: &str) -> Vec<NameValue<'static>> {
    let Some((_, rest)) = url.split_once('?') else {
        return Vec::new();
    };
    let query = rest.split('#').next().unwrap_or_default();
    form_pairs(query)
        .map(|(name, value)| NameValue {
            name: Cow::Owned(name),
            value: Cow::Owned(value),
        })
        .collect()
}

/// `a=1&b=x+y` pairs, percent-decoded with `+` as a space; repeated keys kept in order.
fn form_pairs(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
    text.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(name), form_decode(value))
    })
}

fn form_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// `location` made absolute against `base` by RFC 3986 reference resolution (dot segments,
/// network-path and query-only references), as browsers follow it. A base or a location that
/// does not parse leaves the location as it was sent.
fn resolve(base: &str, location: &str) -> String {
    url::Url::parse(base)
        .and_then(|base| base.join(location))
        .map(String::from)
        .unwrap_or_else(|_| location.to_string())
}

fn epoch_secs(t: SystemTime) -> f64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    (d.as_micros() as f64) / 1_000_000.0
}

/// `2024-05-01T12:00:00.123456Z`: fixed width, so that journal lines sort by start time as
/// plain strings.
pub(crate) fn iso8601(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (the usual era-based conversion).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`), also with dashes as old cookies write it.
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let s = s.split_once(',').map(|(_, r)| r).unwrap_or(s).trim();
    let s = s.replace('-', " ");
    let mut it = s.split_whitespace();
    let day: u32 = it.next()?.parse().ok()?;
    let month = match it.next()?.to_ascii_lowercase().as_str() {
        "jan" => 1,
        "feb" => 2,
        "mar" => 3,
        "apr" => 4,
        "may" => 5,
        "jun" => 6,
        "jul" => 7,
        "aug" => 8,
        "sep" => 9,
        "oct" => 10,
        "nov" => 11,
        "dec" => 12,
        _ => return None,
    };
    let mut year: i64 = it.next()?.parse().ok()?;
    if year < 100 {
        year += if year < 70 { 2000 } else { 1900 };
    }
    let mut hms = it.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, mi, se) = (hms.next()??, hms.next()??, hms.next()??);
    let days = days_from_civil(year, month, day);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + mi * 60 + se;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn head(method: &str, url: &str, headers: &[(&str, &str)]) -> RequestHead {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        RequestHead {
            method: method.into(),
            url: url.into(),
            version: Version::HTTP_11,
            headers: map,
        }
    }

    fn response_head(status: u16, headers: &[(&str, &str)]) -> ResponseHead {
        let req = head("GET", "http://x/", headers);
        ResponseHead {
            status,
            version: Version::HTTP_2,
            headers: req.headers,
        }
    }

    fn json(record: &Record) -> serde_json::Value {
        let bytes = record.to_json(1024, &[]);
        // Every entry must still be a HAR 1.2 entry for the reference model.
        let _: har::v1_2::Entries = serde_json::from_slice(&bytes).expect("har 1.2 entry");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[test]
    fn dropped_headers_leave_the_entry_but_the_body_is_still_decoded() {
        let mut record = Record::new(
            UNIX_EPOCH,
            head(
                "GET",
                "http://api.test/x",
                &[
                    ("X-Request-Id", "r-1"),
                    ("cookie", "sid=abc"),
                    ("accept", "*/*"),
                ],
            ),
        );
        record.response = Some(response_head(
            200,
            &[
                ("content-encoding", "gzip"),
                ("set-cookie", "sid=def"),
                ("x-trace", "t"),
            ],
        ));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, b"hello").expect("gzip");
        let body = Bytes::from(gz.finish().expect("gzip"));
        record.response_body.push(&body, 1024);
        let drop = [
            "x-request-id",
            "cookie",
            "set-cookie",
            "content-encoding",
            "x-trace",
        ]
        .map(String::from);
        let v: serde_json::Value =
            serde_json::from_slice(&record.to_json(1024, &drop)).expect("json");
        let names = |side: &str| -> Vec<String> {
            v[side]["headers"]
                .as_array()
                .expect("headers")
                .iter()
                .map(|h| h["name"].as_str().unwrap_or_default().to_string())
                .collect()
        };
        assert_eq!(names("request"), ["accept"]);
        assert!(names("response").is_empty(), "{v}");
        assert_eq!(v["request"]["cookies"], serde_json::json!([]));
        assert_eq!(v["response"]["cookies"], serde_json::json!([]));
        assert_eq!(v["response"]["content"]["text"], "hello");
    }

    #[test]
    fn a_complete_exchange_is_a_full_har_entry() {
        let started = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let mut record = Record::new(
            started,
            head(
                "POST",
                "http://api.test/login?next=%2Fhome&a=1&a=2",
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("cookie", "sid=abc; theme=dark"),
                ],
            ),
        );
        record
            .request_body
            .push(&Bytes::from_static(b"user=ann+lee&pw=%21"), 1024);
        record.response = Some(response_head(
            302,
            &[
                ("content-type", "text/plain"),
                ("location", "/home"),
                (
                    "set-cookie",
                    "sid=new; Path=/; HttpOnly; Secure; Expires=Wed, 21 Oct 2037 07:28:00 GMT",
                ),
            ],
        ));
        record
            .response_body
            .push(&Bytes::from_static(b"moved"), 1024);
        record.phases = Phases {
            dns: Some(1.0),
            connect: Some(2.0),
            ssl: None,
            send: 0.5,
            wait: 3.0,
            receive: 0.25,
        };
        record.server_ip = Some("127.0.0.1".parse().expect("ip"));
        let v = json(&record);
        assert_eq!(v["startedDateTime"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(v["time"], 6.75);
        assert_eq!(v["serverIPAddress"], "127.0.0.1");
        let req = &v["request"];
        assert_eq!(req["httpVersion"], "HTTP/1.1");
        assert_eq!(req["queryString"][0]["value"], "/home");
        assert_eq!(req["queryString"][2]["value"], "2");
        assert_eq!(req["cookies"][1]["name"], "theme");
        assert_eq!(req["postData"]["params"][0]["value"], "ann lee");
        assert_eq!(req["postData"]["params"][1]["value"], "!");
        assert_eq!(req["bodySize"], 19);
        let res = &v["response"];
        assert_eq!(res["status"], 302);
        assert_eq!(res["statusText"], "Found");
        assert_eq!(res["httpVersion"], "HTTP/2.0");
        assert_eq!(res["redirectURL"], "http://api.test/home");
        assert_eq!(res["cookies"][0]["httpOnly"], true);
        assert_eq!(res["cookies"][0]["expires"], "2037-10-21T07:28:00.000000Z");
        assert_eq!(res["content"]["text"], "moved");
        assert_eq!(v["timings"]["ssl"], -1.0);
        assert_eq!(v["timings"]["blocked"], -1.0);
    }

    #[test]
    fn gzip_content_is_decoded_for_the_record_and_sizes_say_so() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&[b'x'; 500]).expect("write");
        let gz = e.finish().expect("gz");
        let mut record = Record::new(SystemTime::now(), head("GET", "https://h/", &[]));
        record.response = Some(response_head(200, &[("content-encoding", "gzip")]));
        record.response_body.push(&Bytes::from(gz.clone()), 1024);
        let v = json(&record);
        let content = &v["response"]["content"];
        assert_eq!(content["size"], 500);
        assert_eq!(content["text"].as_str().map(str::len), Some(500));
        assert_eq!(v["response"]["bodySize"], gz.len() as u64);
        assert_eq!(content["compression"], 500 - gz.len() as i64);
    }

    #[test]
    fn binary_is_base64_and_max_body_truncates_with_a_marker() {
        let mut record = Record::new(
            SystemTime::now(),
            head(
                "PUT",
                "http://h/blob",
                &[("content-type", "application/octet-stream")],
            ),
        );
        record
            .request_body
            .push(&Bytes::from_static(&[0xff, 0x00, 0xfe]), 1024);
        record.response = Some(response_head(200, &[]));
        record
            .response_body
            .push(&Bytes::from(vec![b'a'; 600]), 1000);
        record
            .response_body
            .push(&Bytes::from(vec![b'b'; 600]), 1000);
        let v = json(&record);
        assert_eq!(v["request"]["postData"]["encoding"], "base64");
        assert_eq!(v["request"]["postData"]["text"], "/wD+");
        let content = &v["response"]["content"];
        assert_eq!(content["_truncated"], true);
        assert_eq!(content["text"].as_str().map(str::len), Some(1000));
        assert_eq!(content["size"], 1200);
        assert_eq!(v["response"]["bodySize"], 1200);
        assert!(
            v["comment"]
                .as_str()
                .expect("comment")
                .contains("--max-body")
        );
    }

    #[test]
    fn an_unanswered_request_is_a_chrome_style_error_entry() {
        let mut record = Record::new(SystemTime::now(), head("GET", "http://down/", &[]));
        record.error = Some("connection refused".into());
        let v = json(&record);
        assert_eq!(v["response"]["status"], 0);
        assert_eq!(v["_error"], "connection refused");
    }

    #[test]
    fn websocket_messages_follow_chrome() {
        let mut record = Record::new(SystemTime::now(), head("GET", "ws://h/chat", &[]));
        record.response = Some(response_head(101, &[("upgrade", "websocket")]));
        record.websocket = Some(vec![
            WsMessage {
                sent: true,
                at: UNIX_EPOCH + Duration::from_millis(1_500),
                opcode: 1,
                data: b"hi".to_vec(),
                truncated: false,
            },
            WsMessage {
                sent: false,
                at: UNIX_EPOCH + Duration::from_millis(2_000),
                opcode: 2,
                data: vec![1, 2],
                truncated: false,
            },
        ]);
        let v = json(&record);
        assert_eq!(v["_resourceType"], "websocket");
        let m = &v["_webSocketMessages"];
        assert_eq!(m[0]["type"], "send");
        assert_eq!(m[0]["time"], 1.5);
        assert_eq!(m[0]["data"], "hi");
        assert_eq!(m[1]["type"], "receive");
        assert_eq!(m[1]["opcode"], 2);
        assert_eq!(m[1]["data"], "AQI=");
    }

    #[test]
    fn redirects_resolve_against_the_request() {
        assert_eq!(resolve("https://a.b/x/y?q", "z"), "https://a.b/x/z");
        assert_eq!(resolve("https://a.b/x/y", "/r"), "https://a.b/r");
        assert_eq!(resolve("https://a.b", "//c.d/e"), "https://c.d/e");
        assert_eq!(resolve("https://a.b/p", "http://o/"), "http://o/");
        assert_eq!(resolve("https://a.b/p?x", "?y"), "https://a.b/p?y");
        assert_eq!(resolve("https://a.b/x/y/z", "../w"), "https://a.b/x/w");
        assert_eq!(resolve("https://a.b/x/y", "./v/../u"), "https://a.b/x/u");
        assert_eq!(resolve("https://a.b/x/y?q", "#f"), "https://a.b/x/y?q#f");
        assert_eq!(resolve("https://a.b/x", ""), "https://a.b/x");
        assert_eq!(resolve("not a url", "/r"), "/r");
    }

    #[test]
    fn dates_round_trip() {
        let t = parse_http_date("Thu, 01 Jan 1970 00:00:10 GMT").expect("date");
        assert_eq!(iso8601(t), "1970-01-01T00:00:10.000000Z");
        let t = parse_http_date("Sun, 29-Feb-2032 23:59:59 GMT").expect("date");
        assert_eq!(iso8601(t), "2032-02-29T23:59:59.000000Z");
        assert!(parse_http_date("soon").is_none());
    }

    #[test]
    fn a_cut_utf8_character_stays_text() {
        let (text, enc) = text_or_base64("héllo".as_bytes().get(..2).expect("slice"), true);
        assert_eq!((text.as_str(), enc), ("h", None));
    }
}
