//! The parts of a HAR file the importer reads, as lenient serde types.
//!
//! Real producers omit fields the specification requires (`cache`, `timings`, `cookies`, ...),
//! add `_`-prefixed ones, and write statuses as strings; the `har` crate's strict 1.2 types
//! reject such files, and its version detection re-parses the document once per version. These
//! types read HAR 1.1 and 1.2 in one pass and skip what an importer does not need (response
//! bodies above all), so memory stays close to the size of the requests.

use serde::de::{MapAccess, SeqAccess, Visitor};
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
///
/// Parsed as an untagged enum of a number, a text and anything else would be (every array and
/// object read through, so that a malformed one gives the same error), without building
/// anything.
fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    struct Lenient;
    impl<'de> Visitor<'de> for Lenient {
        type Value = Option<f64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a number")
        }
        fn visit_u64<E>(self, v: u64) -> Result<Option<f64>, E> {
            Ok(Some(v as f64))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Option<f64>, E> {
            Ok(Some(v as f64))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Option<f64>, E> {
            Ok(Some(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Option<f64>, E> {
            Ok(v.trim().parse().ok())
        }
        fn visit_bool<E>(self, _: bool) -> Result<Option<f64>, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Option<f64>, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Option<f64>, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<f64>, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<f64>, A::Error> {
            NESTED_NUMBER.with(|n| n.set(true));
            AnyVisitor.visit_seq(seq).map(|_| None)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<f64>, A::Error> {
            NESTED_NUMBER.with(|n| n.set(true));
            AnyVisitor.visit_map(map).map(|_| None)
        }
    }
    d.deserialize_any(Lenient)
}

thread_local! {
    /// Set when a number field held an array or an object. Those are read as values, not
    /// skipped, so they count against serde_json's recursion limit: the fast path, which parses
    /// an entry on its own, a few levels less deep than in the document, leaves such an entry to
    /// the streaming parser.
    static NESTED_NUMBER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether a number field held an array or an object since the last call.
pub(crate) fn take_nested_number() -> bool {
    NESTED_NUMBER.with(|n| n.replace(false))
}

/// Any value, read through as an untagged enum's buffer would read it, and dropped.
struct Any;

impl<'de> Deserialize<'de> for Any {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Any, D::Error> {
        d.deserialize_any(AnyVisitor)
    }
}

struct AnyVisitor;

impl<'de> Visitor<'de> for AnyVisitor {
    type Value = Any;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Any, E> {
        Ok(Any)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Any, E> {
        Ok(Any)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Any, E> {
        Ok(Any)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Any, E> {
        Ok(Any)
    }
    fn visit_str<E>(self, _: &str) -> Result<Any, E> {
        Ok(Any)
    }
    fn visit_unit<E>(self) -> Result<Any, E> {
        Ok(Any)
    }
    fn visit_none<E>(self) -> Result<Any, E> {
        Ok(Any)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Any, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Any, A::Error> {
        while seq.next_element::<Any>()?.is_some() {}
        Ok(Any)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Any, A::Error> {
        while map.next_entry::<Any, Any>()?.is_some() {}
        Ok(Any)
    }
}
