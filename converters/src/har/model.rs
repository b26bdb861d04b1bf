//! The parts of a HAR file the importer reads, as lenient serde types.
//!
//! Real producers omit fields the specification requires (`cache`, `timings`, `cookies`, ...),
//! add `_`-prefixed ones, and write statuses as strings; the `har` crate's strict 1.2 types
//! reject such files, and its version detection re-parses the document once per version. These
//! types read HAR 1.1 and 1.2 in one pass and skip what an importer does not need (response
//! bodies above all), so memory stays close to the size of the requests.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

// The types are generic over the type of their strings: [`Str`] borrows from a document held
// in memory, `String` serves documents read as a stream.

#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
pub(crate) struct HarFile<S> {
    pub(crate) log: Log<S>,
}

#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
pub(crate) struct Log<S> {
    #[serde(default)]
    pub(crate) creator: Option<Creator>,
    pub(crate) entries: Vec<Entry<S>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Creator {
    #[serde(default)]
    pub(crate) name: String,
}

#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
pub(crate) struct Entry<S> {
    #[serde(rename = "startedDateTime", default)]
    pub(crate) started: Option<S>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub(crate) time: Option<f64>,
    pub(crate) request: Request<S>,
    #[serde(default)]
    pub(crate) response: Option<Response<S>>,
    #[serde(rename = "_resourceType", default)]
    pub(crate) resource_type: Option<S>,
    #[serde(rename = "_webSocketMessages", default)]
    pub(crate) websocket_messages: Option<Vec<WsMessage<S>>>,
    /// The recorded connection's id (a string, or a number as some tools write it), hashed.
    #[serde(default, deserialize_with = "lenient_key")]
    pub(crate) connection: Option<u64>,
}

/// One message of a WebSocket session, as Chrome records it in `_webSocketMessages`.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
pub(crate) struct WsMessage<S> {
    /// `send` or `receive`.
    #[serde(rename = "type", default)]
    pub(crate) kind: Option<S>,
    /// Seconds since the epoch.
    #[serde(default, deserialize_with = "lenient_f64")]
    pub(crate) time: Option<f64>,
    /// 1 for text, 2 for binary (the data then in base64).
    #[serde(default, deserialize_with = "lenient_f64")]
    pub(crate) opcode: Option<f64>,
    #[serde(default)]
    pub(crate) data: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
pub(crate) struct Request<S> {
    pub(crate) method: S,
    pub(crate) url: S,
    #[serde(default)]
    pub(crate) headers: Vec<NameValue<S>>,
    #[serde(rename = "postData", default)]
    pub(crate) post_data: Option<PostData<S>>,
    #[serde(rename = "bodySize", default, deserialize_with = "lenient_f64")]
    pub(crate) body_size: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
pub(crate) struct NameValue<S> {
    pub(crate) name: S,
    #[serde(default)]
    pub(crate) value: S,
}

#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
pub(crate) struct PostData<S> {
    #[serde(rename = "mimeType", default)]
    pub(crate) mime_type: S,
    #[serde(default)]
    pub(crate) text: Option<S>,
    #[serde(default)]
    pub(crate) params: Option<Vec<Param<S>>>,
    #[serde(default)]
    pub(crate) encoding: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
pub(crate) struct Param<S> {
    pub(crate) name: S,
    #[serde(default)]
    pub(crate) value: Option<S>,
    #[serde(rename = "fileName", default)]
    pub(crate) file_name: Option<S>,
    #[serde(rename = "contentType", default)]
    pub(crate) content_type: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
pub(crate) struct Response<S> {
    #[serde(default, deserialize_with = "lenient_f64")]
    pub(crate) status: Option<f64>,
    #[serde(default)]
    pub(crate) content: Option<Content<S>>,
    /// Only gRPC's status and message, which `ld record` keeps after the headers.
    #[serde(default)]
    pub(crate) headers: Trailers,
}

/// A response's `grpc-status` and `grpc-message`, read from its headers (where HAR recorders
/// put trailers); every other header is read through and dropped.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Trailers {
    pub(crate) grpc_status: Option<String>,
    pub(crate) grpc_message: Option<String>,
}

impl Trailers {
    /// Keeps the header when it is one of the two; the last of each wins.
    pub(crate) fn take(&mut self, name: &str, value: &str) {
        if name.eq_ignore_ascii_case("grpc-status") {
            self.grpc_status = Some(value.trim().to_string());
        } else if name.eq_ignore_ascii_case("grpc-message") {
            self.grpc_message = Some(value.to_string());
        }
    }
}

/// Implements the visits of JSON's scalars but strings, each giving `$none`: a lenient reader
/// reads through what it does not want.
macro_rules! read_through_scalars {
    ($value:ty, $none:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<$value, E> {
            Ok($none)
        }
        fn visit_i64<E>(self, _: i64) -> Result<$value, E> {
            Ok($none)
        }
        fn visit_u64<E>(self, _: u64) -> Result<$value, E> {
            Ok($none)
        }
        fn visit_f64<E>(self, _: f64) -> Result<$value, E> {
            Ok($none)
        }
        fn visit_unit<E>(self) -> Result<$value, E> {
            Ok($none)
        }
    };
}

/// [`read_through_scalars`] and arrays.
macro_rules! read_through {
    ($value:ty, $none:expr) => {
        read_through_scalars!($value, $none);
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<$value, A::Error> {
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok($none)
        }
    };
}

impl<'de> Deserialize<'de> for Trailers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Trailers, D::Error> {
        /// Response headers are not needed by most imports: anything malformed among them is
        /// read through, never an error.
        struct Headers;
        impl<'de> Visitor<'de> for Headers {
            type Value = Trailers;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence of headers")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Trailers, A::Error> {
                let mut trailers = Trailers::default();
                while let Some(h) = seq.next_element::<Header<'de>>()? {
                    if let (Some(name), Some(value)) = (h.name, h.value) {
                        trailers.take(name.as_ref(), value.as_ref());
                    }
                }
                Ok(trailers)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Trailers, A::Error> {
                drain_map(map).map(|()| Trailers::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Trailers, E> {
                Ok(Trailers::default())
            }
            read_through_scalars!(Trailers, Trailers::default());
        }
        d.deserialize_any(Headers)
    }
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map
        .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
        .is_some()
    {}
    Ok(())
}

/// One element of a response's headers: its name and value when it is an object with
/// string ones; both `None` for anything else.
#[derive(Default)]
struct Header<'a> {
    name: Option<Str<'a>>,
    value: Option<Str<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Header<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Header<'a>, D::Error> {
        struct Reading<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Reading<'a> {
            type Value = Header<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a header")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header<'a>, A::Error> {
                let mut header = Header::default();
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match key.as_ref() {
                        "name" => header.name = map.next_value::<MaybeStr<'de>>()?.0,
                        "value" => header.value = map.next_value::<MaybeStr<'de>>()?.0,
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(header)
            }
            fn visit_str<E>(self, _: &str) -> Result<Header<'a>, E> {
                Ok(Header::default())
            }
            read_through!(Header<'a>, Header::default());
        }
        d.deserialize_any(Reading(PhantomData))
    }
}

/// A string, or `None` for any other value (read through).
struct MaybeStr<'a>(Option<Str<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for MaybeStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MaybeStr<'a>, D::Error> {
        struct Reading<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Reading<'a> {
            type Value = MaybeStr<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<MaybeStr<'a>, E> {
                Ok(MaybeStr(Some(Str::borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<MaybeStr<'a>, E> {
                Ok(MaybeStr(Some(Str::owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<MaybeStr<'a>, E> {
                Ok(MaybeStr(Some(Str::owned(v))))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MaybeStr<'a>, A::Error> {
                drain_map(map).map(|()| MaybeStr(None))
            }
            read_through!(MaybeStr<'a>, MaybeStr(None));
        }
        d.deserialize_any(Reading(PhantomData))
    }
}

#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
pub(crate) struct Content<S> {
    #[serde(rename = "mimeType", default)]
    pub(crate) mime_type: Option<S>,
    /// The body is not kept: only what [`BodyText`] counts in it.
    #[serde(default)]
    pub(crate) text: Option<BodyText>,
}

/// What the importer reads from a recorded response body without keeping it.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct BodyText {
    pub(crate) events: Events,
    /// The number of gRPC messages, when the body is gRPC's length-prefixed messages.
    pub(crate) grpc_messages: Option<u32>,
}

impl BodyText {
    pub(crate) fn read(text: &str) -> BodyText {
        BodyText {
            events: Events::count(text),
            grpc_messages: super::frames::count_in_text(text),
        }
    }
}

/// The number of server-sent events in a recorded response body (see [`Events::count`]),
/// read from the body's text without keeping it; a body that is not a string holds none.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Events(pub(crate) u32);

impl Events {
    /// The most events counted: a wait for more would outlast most tests.
    pub(crate) const MAX: u32 = 100;

    /// Events are blocks of lines separated by blank lines; a block counts when it has a
    /// `data` field (`data:...`, or a line that is just `data`), as a browser dispatches only
    /// those. Counting stops at [`Events::MAX`].
    pub(crate) fn count(text: &str) -> Events {
        let mut n = 0;
        let mut has_data = false;
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                if has_data {
                    n += 1;
                    if n == Events::MAX {
                        return Events(n);
                    }
                }
                has_data = false;
            } else if line == "data" || line.starts_with("data:") {
                has_data = true;
            }
        }
        if has_data {
            n += 1;
        }
        Events(n)
    }
}

impl<'de> Deserialize<'de> for BodyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<BodyText, D::Error> {
        struct Counting;
        impl<'de> Visitor<'de> for Counting {
            type Value = BodyText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a body text")
            }
            fn visit_str<E>(self, v: &str) -> Result<BodyText, E> {
                Ok(BodyText::read(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<BodyText, A::Error> {
                drain_map(map).map(|()| BodyText::default())
            }
            read_through!(BodyText, BodyText::default());
        }
        d.deserialize_any(Counting)
    }
}

/// A string of the document, borrowed from it when it holds no escape: most strings of an
/// entry are read without a copy. Reads what `String` reads, with the same errors.
#[derive(Debug, Default)]
pub(crate) struct Str<'a>(Cow<'a, str>);

impl<'a> Str<'a> {
    pub(crate) fn borrowed(s: &'a str) -> Str<'a> {
        Str(Cow::Borrowed(s))
    }

    pub(crate) fn owned(s: String) -> Str<'a> {
        Str(Cow::Owned(s))
    }
}

impl AsRef<str> for Str<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Str<'a>, D::Error> {
        d.deserialize_string(StrVisitor(PhantomData))
    }
}

struct StrVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for StrVisitor<'a> {
    type Value = Str<'a>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As `String` words it.
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str<'a>, E> {
        Ok(Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Str<'a>, E> {
        Ok(Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Str<'a>, E> {
        Ok(Str(Cow::Owned(v)))
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Str<'a>, E> {
        match std::str::from_utf8(v) {
            Ok(s) => Ok(Str(Cow::Owned(s.to_owned()))),
            Err(_) => Err(E::invalid_value(serde::de::Unexpected::Bytes(v), &self)),
        }
    }
    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Str<'a>, E> {
        match String::from_utf8(v) {
            Ok(s) => Ok(Str(Cow::Owned(s))),
            Err(e) => Err(E::invalid_value(
                serde::de::Unexpected::Bytes(&e.into_bytes()),
                &self,
            )),
        }
    }
}

/// A number field holding the number `text`, as [`lenient_f64`] reads it; `None` if `text` is
/// not a number.
pub(crate) fn lenient_number(text: &[u8]) -> Option<Option<f64>> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let value = lenient_f64(&mut de).ok()?;
    de.end().ok()?;
    Some(value)
}

/// Implements the visits of a lenient scalar field for null (absent), `Some` (read on) and
/// arrays and objects (read through as values, marked in [`NESTED_NUMBER`]).
macro_rules! read_through_nested {
    ($value:ty) => {
        fn visit_none<E>(self) -> Result<$value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<$value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<$value, A::Error> {
            NESTED_NUMBER.with(|n| n.set(true));
            AnyVisitor.visit_seq(seq).map(|_| None)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<$value, A::Error> {
            NESTED_NUMBER.with(|n| n.set(true));
            AnyVisitor.visit_map(map).map(|_| None)
        }
    };
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
        read_through_nested!(Option<f64>);
    }
    d.deserialize_any(Lenient)
}

/// A key for an id field: a string hashed (see [`key_of`]), a number by its value; anything
/// else is absent, read through as [`lenient_f64`] reads it.
fn lenient_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct Key;
    impl<'de> Visitor<'de> for Key {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an id")
        }
        fn visit_str<E>(self, v: &str) -> Result<Option<u64>, E> {
            Ok(Some(key_of(v.as_bytes())))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Option<u64>, E> {
            Ok(Some(key_of(v.to_string().as_bytes())))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Option<u64>, E> {
            Ok(Some(key_of(v.to_string().as_bytes())))
        }
        fn visit_f64<E>(self, _: f64) -> Result<Option<u64>, E> {
            Ok(None)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Option<u64>, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Option<u64>, E> {
            Ok(None)
        }
        read_through_nested!(Option<u64>);
    }
    d.deserialize_any(Key)
}

/// FNV-1a of an id's text: the same id gives the same key on either parser.
pub(crate) fn key_of(text: &[u8]) -> u64 {
    text.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
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
