//! `application/x-www-form-urlencoded` bodies.
//!
//! A recorded form body must go out byte for byte as it was recorded. It becomes `data` as an
//! object of fields only when encoding those fields again, the way `ld replay` encodes `data`
//! objects, as LoadDensity's Python client does too (`urlencode`: `-._~` and alphanumerics kept,
//! space as `+`, the rest `%XX`),
//! gives back exactly the recorded text; otherwise the text is kept verbatim.

use serde_json::{Map, Value};

use crate::output::Body;

/// The plan body for recorded form text.
pub(crate) fn body_from_text(text: &str) -> Body {
    if text.is_empty() {
        return Body::Text(String::new());
    }
    let mut fields = Map::new();
    for pair in text.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (decode(k), decode(v)) else {
            return Body::Text(text.to_string());
        };
        if fields.insert(k, Value::String(v)).is_some() {
            return Body::Text(text.to_string());
        }
    }
    if encode_fields(&fields) == text {
        Body::Form(fields)
    } else {
        Body::Text(text.to_string())
    }
}

/// Encodes fields as a form body.
pub(crate) fn encode_fields(fields: &Map<String, Value>) -> String {
    let mut out = String::new();
    for (k, v) in fields {
        if !out.is_empty() {
            out.push('&');
        }
        encode_into(k, &mut out);
        out.push('=');
        match v {
            Value::String(s) => encode_into(s, &mut out),
            other => encode_into(&other.to_string(), &mut out),
        }
    }
    out
}

fn encode_into(s: &str, out: &mut String) {
    ld_plan::encode::push_form(s, ld_plan::encode::PYTHON_FORM, out);
}

fn decode(s: &str) -> Option<String> {
    let replaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&replaced)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_become_fields() {
        match body_from_text("user=ann+lee&tag=a%26b") {
            Body::Form(f) => {
                assert_eq!(f.get("user").and_then(Value::as_str), Some("ann lee"));
                assert_eq!(f.get("tag").and_then(Value::as_str), Some("a&b"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_spellings_stay_verbatim() {
        // `%20` for a space, lowercase escapes, repeated keys, a `*` written bare: re-encoding
        // would change the bytes, so the text is kept.
        for text in ["a=hello%20world", "a=%2b", "a=1&a=2", "a=*"] {
            match body_from_text(text) {
                Body::Text(t) => assert_eq!(t, text),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_plus_encoded_value_round_trips() {
        match body_from_text("q=hello%2Bworld+again") {
            Body::Form(f) => {
                assert_eq!(
                    f.get("q").and_then(Value::as_str),
                    Some("hello+world again")
                );
                assert_eq!(encode_fields(&f), "q=hello%2Bworld+again");
            }
            other => panic!("{other:?}"),
        }
    }
}
