//! The parts of a HAR file the importer reads, as lenient serde types.
//!
//! Real producers omit fields the specification requires (`cache`, `timings`, `cookies`, ...),
//! add `_`-prefixed ones, and write statuses as strings; the `har` crate's strict 1.2 types
//! reject such files, and its version detection re-parses the document once per version. These
//! types read HAR 1.1 and 1.2 in one pass and skip what an importer does not need (response
//! bodies above all), so memory stays close to the size of the requests.

use serde::{Deserialize, Deserializer};

#[derive(Debug, Deserialize)]
pub(crate) struct HarFile {
    pub(crate) log: Log,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Log {
    #[serde(default)]
    pub(crate) creator: Option<Creator>,
    pub(crate) entries: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Creator {
    #[serde(default)]
    pub(crate) name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Entry {
    #[serde(rename = "startedDateTime", default)]
    pub(crate) started: Option<String>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub(crate) time: Option<f64>,
    pub(crate) request: Request,
    #[serde(default)]
    pub(crate) response: Option<Response>,
    #[serde(rename = "_resourceType", default)]
    pub(crate) resource_type: Option<String>,
    #[serde(rename = "_webSocketMessages", default)]
    pub(crate) websocket_messages: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) url: String,
    #[serde(default)]
    pub(crate) headers: Vec<NameValue>,
    #[serde(rename = "postData", default)]
    pub(crate) post_data: Option<PostData>,
    #[serde(rename = "bodySize", default, deserialize_with = "lenient_f64")]
    pub(crate) body_size: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct NameValue {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) value: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PostData {
    #[serde(rename = "mimeType", default)]
    pub(crate) mime_type: String,
    #[serde(default)]
    pub(crate) text: Option<String>,
    #[serde(default)]
    pub(crate) params: Option<Vec<Param>>,
    #[serde(default)]
    pub(crate) encoding: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Param {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) value: Option<String>,
    #[serde(rename = "fileName", default)]
    pub(crate) file_name: Option<String>,
    #[serde(rename = "contentType", default)]
    pub(crate) content_type: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Response {
    #[serde(default, deserialize_with = "lenient_f64")]
    pub(crate) status: Option<f64>,
    #[serde(default)]
    pub(crate) content: Option<Content>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Content {
    #[serde(rename = "mimeType", default)]
    pub(crate) mime_type: Option<String>,
}

/// A number, a numeric string (`"200"`), or null / anything else as absent.
fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(f64),
        Text(String),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Option::<NumberOrText>::deserialize(d)? {
        Some(NumberOrText::Number(n)) => Some(n),
        Some(NumberOrText::Text(t)) => t.trim().parse().ok(),
        Some(NumberOrText::Other(_)) | None => None,
    })
}
