//! gRPC's length-prefixed messages as a recorded body holds them: each a flag byte (1 when
//! the message is compressed), its length as a big-endian `u32`, then the message. Depends on
//! nothing else in the importer.

use base64::Engine;

/// Why a body is not a list of messages that can be replayed byte for byte.
#[derive(Debug, PartialEq)]
pub(crate) enum Unsplit {
    /// A message was compressed (`grpc-encoding`): its bytes are not the message.
    Compressed,
    /// The body ends inside a prefix or a message, or a flag is neither 0 nor 1.
    Malformed,
}

/// The messages of a body, in order.
pub(crate) fn split(mut bytes: &[u8]) -> Result<Vec<&[u8]>, Unsplit> {
    let mut messages = Vec::new();
    while !bytes.is_empty() {
        let (&flag, rest) = bytes.split_first().ok_or(Unsplit::Malformed)?;
        let (len, rest) = rest.split_first_chunk::<4>().ok_or(Unsplit::Malformed)?;
        let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| Unsplit::Malformed)?;
        if len > rest.len() {
            return Err(Unsplit::Malformed);
        }
        match flag {
            0 => {}
            1 => return Err(Unsplit::Compressed),
            _ => return Err(Unsplit::Malformed),
        }
        let (message, rest) = rest.split_at(len);
        messages.push(message);
        bytes = rest;
    }
    Ok(messages)
}

/// The most text of a response body read for its messages; a longer body's are not counted.
const MAX_COUNTED: usize = 8 << 20;

/// The number of messages in a recorded response body's text: the bytes themselves (text that
/// starts with a flag byte, as a recorder writes valid UTF-8) or their base64 (a flag byte of 0
/// or 1 and a length below 2^24 start with `AA` or `AQ`). `None` when the text is neither.
pub(crate) fn count_in_text(text: &str) -> Option<u32> {
    if text.len() > MAX_COUNTED || text.len() < 5 {
        return None;
    }
    let count = |bytes: &[u8]| split(bytes).ok().and_then(|m| u32::try_from(m.len()).ok());
    match text.as_bytes() {
        [0 | 1, ..] => count(text.as_bytes()),
        [b'A', b'A' | b'Q', ..] => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()?;
            count(&bytes)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_split_at_their_prefixes() {
        let body = [0, 0, 0, 0, 2, b'h', b'i', 0, 0, 0, 0, 0];
        assert_eq!(split(&body), Ok(vec![&b"hi"[..], &b""[..]]));
        assert_eq!(split(&[]), Ok(vec![]));
        assert_eq!(split(&[0, 0, 0, 0, 3, b'h']), Err(Unsplit::Malformed));
        assert_eq!(split(&[0, 0, 0]), Err(Unsplit::Malformed));
        assert_eq!(split(&[2, 0, 0, 0, 0]), Err(Unsplit::Malformed));
        assert_eq!(split(&[1, 0, 0, 0, 1, 9]), Err(Unsplit::Compressed));
    }

    #[test]
    fn a_response_text_counts_its_messages_raw_or_in_base64() {
        let body = [0, 0, 0, 0, 2, b'h', b'i', 0, 0, 0, 0, 1, b'!'];
        let b64 = base64::engine::general_purpose::STANDARD.encode(body);
        assert_eq!(count_in_text(&b64), Some(2));
        let raw = std::str::from_utf8(&body).expect("utf-8");
        assert_eq!(count_in_text(raw), Some(2));
        assert_eq!(count_in_text("AAPL closed higher"), None);
        assert_eq!(count_in_text("{\"a\": 1}"), None);
        assert_eq!(count_in_text(""), None);
    }
}
