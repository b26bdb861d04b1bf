//! Payloads as LoadDensity writes them: text as it is, `hex:` and `base64:` for bytes.

use base64::Engine as _;
use bytes::Bytes;

/// A payload after placeholders are resolved: text, or bytes when it says `hex:` or
/// `base64:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Payload {
    Text(String),
    Binary(Bytes),
}

impl Payload {
    /// Reads `text`; a `hex:` or `base64:` prefix that does not decode is an error that
    /// says what was expected.
    pub(crate) fn parse(text: String) -> Result<Payload, String> {
        if let Some(hex) = text.strip_prefix("hex:") {
            return decode_hex(hex).map(|b| Payload::Binary(b.into()));
        }
        if let Some(b64) = text.strip_prefix("base64:") {
            return base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map(|b| Payload::Binary(b.into()))
                .map_err(|e| format!("`base64:` payload does not decode: {e}"));
        }
        Ok(Payload::Text(text))
    }

    pub(crate) fn bytes(&self) -> Bytes {
        match self {
            Payload::Text(t) => Bytes::copy_from_slice(t.as_bytes()),
            Payload::Binary(b) => b.clone(),
        }
    }
}

/// Hex digits, spaces and `:` separators allowed (`hex:de ad:be ef`).
pub(crate) fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b':')
        .collect();
    if !digits.len().is_multiple_of(2) {
        return Err("`hex:` payload has an odd number of digits".into());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16);
            let lo = (pair[1] as char).to_digit(16);
            match (hi, lo) {
                (Some(h), Some(l)) => Ok((h * 16 + l) as u8),
                _ => Err(format!(
                    "`hex:` payload has a non-hex digit in `{}`",
                    String::from_utf8_lossy(pair)
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_text_hex_and_base64() {
        assert_eq!(Payload::parse("hi".into()), Ok(Payload::Text("hi".into())));
        assert_eq!(
            Payload::parse("hex:de ad:BE ef".into()),
            Ok(Payload::Binary(Bytes::from_static(&[
                0xde, 0xad, 0xbe, 0xef
            ])))
        );
        assert_eq!(
            Payload::parse("base64:AP8=".into()),
            Ok(Payload::Binary(Bytes::from_static(&[0, 0xff])))
        );
        assert!(Payload::parse("hex:abc".into()).is_err());
        assert!(Payload::parse("hex:zz".into()).is_err());
        assert!(Payload::parse("base64:***".into()).is_err());
    }
}
