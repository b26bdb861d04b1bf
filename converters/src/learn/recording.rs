//! A recording read whole, responses included: what correlation and learned checks read.
//!
//! The importer proper skips response bodies (most of a HAR's size); this second reading keeps
//! them, once, and only when a plan is to learn from them. Types are lenient as the importer's
//! are: anything missing or of an unexpected kind is read as absent.

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

/// One entry of the recording: its request as sent, its response as received.
#[derive(Debug, Default, Clone)]
pub(crate) struct Exchange {
    pub(crate) method: String,
    pub(crate) url: String,
    pub(crate) request_headers: Vec<(String, String)>,
    pub(crate) request_body: String,
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) mime: String,
    /// The body as text; empty when it was not recorded or is not text.
    pub(crate) body: String,
    pub(crate) redirect: String,
}

impl Exchange {
    /// The first response header called `name` (any case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, when the response says or looks like JSON.
    pub(crate) fn json(&self) -> Option<Value> {
        let essence = self.mime.split(';').next().unwrap_or_default().trim();
        let looks = self.body.trim_start().starts_with(['{', '[']);
        let declared = essence.ends_with("json");
        if !(declared || (essence.is_empty() && looks)) {
            return None;
        }
        serde_json::from_str(&self.body).ok()
    }

    /// Whether the body is HTML or other markup worth scanning for values.
    pub(crate) fn is_markup(&self) -> bool {
        let essence = self.mime.to_ascii_lowercase();
        essence.contains("html") || essence.contains("xml")
    }
}

#[derive(Deserialize)]
struct File {
    log: Log,
}

#[derive(Deserialize)]
struct Log {
    #[serde(default)]
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    request: Option<Request>,
    #[serde(default)]
    response: Option<Response>,
}

#[derive(Deserialize, Default)]
struct Request {
    #[serde(default)]
    method: Value,
    #[serde(default)]
    url: Value,
    #[serde(default)]
    headers: Vec<NameValue>,
    #[serde(rename = "postData", default)]
    post_data: Option<PostData>,
}

#[derive(Deserialize, Default)]
struct PostData {
    #[serde(default)]
    text: Value,
}

#[derive(Deserialize, Default)]
struct Response {
    #[serde(default)]
    status: Value,
    #[serde(default)]
    headers: Vec<NameValue>,
    #[serde(default)]
    content: Option<Content>,
    #[serde(rename = "redirectURL", default)]
    redirect: Value,
}

#[derive(Deserialize, Default)]
struct Content {
    #[serde(rename = "mimeType", default)]
    mime_type: Value,
    #[serde(default)]
    text: Value,
    #[serde(default)]
    encoding: Value,
}

#[derive(Deserialize)]
struct NameValue {
    #[serde(default)]
    name: Value,
    #[serde(default)]
    value: Value,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

fn pairs(list: &[NameValue]) -> Vec<(String, String)> {
    list.iter()
        .map(|nv| (text(&nv.name), text(&nv.value)))
        .collect()
}

/// The entries of a HAR document, in file order; `None` when it cannot be read whole.
pub(crate) fn read(bytes: &[u8]) -> Option<Vec<Exchange>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let file: File = serde_json::from_slice(bytes).ok()?;
    Some(file.log.entries.into_iter().map(exchange).collect())
}

fn exchange(entry: Entry) -> Exchange {
    let request = entry.request.unwrap_or_default();
    let response = entry.response.unwrap_or_default();
    let content = response.content.unwrap_or_default();
    let raw = text(&content.text);
    let body = if text(&content.encoding).eq_ignore_ascii_case("base64") {
        base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default()
    } else {
        raw
    };
    let status = match &response.status {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    };
    Exchange {
        method: text(&request.method).trim().to_ascii_uppercase(),
        url: text(&request.url).trim().to_string(),
        request_headers: pairs(&request.headers),
        request_body: request.post_data.map(|p| text(&p.text)).unwrap_or_default(),
        status: if (1.0..1000.0).contains(&status) {
            status as u16
        } else {
            0
        },
        headers: pairs(&response.headers),
        mime: text(&content.mime_type),
        body,
        redirect: text(&response.redirect),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_read_with_their_bodies_and_headers() {
        let har = br#"{"log":{"entries":[{"request":{"method":"post","url":"http://a/login",
            "headers":[{"name":"A","value":"1"}],"postData":{"text":"{}"}},
            "response":{"status":"200","headers":[{"name":"X-Token","value":"t"}],
            "content":{"mimeType":"application/json","text":"eyJ0b2tlbiI6IDF9","encoding":"base64"}}},
            {"request":{"method":"GET","url":"http://a/x"}}]}}"#;
        let list = read(har).expect("read");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].method, "POST");
        assert_eq!(list[0].status, 200);
        assert_eq!(list[0].header("x-token"), Some("t"));
        assert_eq!(list[0].json(), Some(serde_json::json!({"token": 1})));
        assert_eq!(list[1].status, 0);
    }
}
