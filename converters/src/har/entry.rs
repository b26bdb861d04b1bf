//! A reader for entries of the usual shape, several times faster than the derived
//! `Deserialize` through serde_json: keys are compared as bytes, the values an import does not
//! use are checked and skipped in one pass, strings are searched a word at a time.
//!
//! It reads exactly what `serde_json::from_slice::<Entry<Str>>` reads, or gives up: for any
//! input it either returns what serde_json would return, or `None`, and then serde_json reads
//! the entry. It gives up on every error serde_json would report (the messages are
//! serde_json's), and on what it leaves to serde_json: escaped keys and keys that are not ASCII,
//! `\u` escapes of surrogates in strings it keeps, entries written as arrays, arrays and objects
//! in number fields, values nested more than 64 levels deep in skipped values.

use super::model::{
    self, BodyText, Content, Entry, NameValue, Param, PostData, Request, Response, Str, WsMessage,
};
use crate::words;

/// The entry at `at` in `bytes`, and where it ends. `text` is `bytes` when all of it is UTF-8,
/// which spares checking each string.
pub(super) fn read_at<'a>(
    bytes: &'a [u8],
    text: Option<&'a str>,
    at: usize,
) -> Option<(Entry<Str<'a>>, usize)> {
    let mut reader = Reader { bytes, text, at };
    let entry = reader.entry()?;
    Some((entry, reader.at))
}

/// The entry that `bytes` holds, nothing else but whitespace after it.
#[cfg(test)]
fn read(bytes: &[u8]) -> Option<Entry<Str<'_>>> {
    let text = std::str::from_utf8(bytes).ok();
    let (entry, end) = read_at(bytes, text, 0)?;
    // Read without `text`, the entry is the same.
    let (again, again_end) = read_at(bytes, None, 0)?;
    assert_eq!(format!("{entry:?}"), format!("{again:?}"));
    assert_eq!(end, again_end);
    let rest = bytes.get(end..)?;
    rest.iter()
        .all(|b| matches!(b, b' ' | b'\n' | b'\t' | b'\r'))
        .then_some(entry)
}

struct Reader<'a> {
    bytes: &'a [u8],
    /// `bytes` as text, when it is all UTF-8.
    text: Option<&'a str>,
    at: usize,
}

/// Sets a field read once; a field given twice is an error to serde's derived readers.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// Skips JSON whitespace.
    fn space(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// Consumes `byte`, after whitespace.
    fn eat(&mut self, byte: u8) -> Option<()> {
        self.space();
        if self.peek()? != byte {
            return None;
        }
        self.at += 1;
        Some(())
    }

    /// Consumes `word` (`true`, `false`, `null`), after whitespace.
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.space();
        let end = self.at.checked_add(word.len())?;
        if self.bytes.get(self.at..end)? != word {
            return None;
        }
        self.at = end;
        Some(())
    }

    /// An object whose members `member` reads: it is given each key, and reads the value.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.space();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let key = self.key()?;
            member(self, key)?;
            self.space();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An array whose elements `element` reads.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        self.space();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            element(self)?;
            self.space();
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A key of an object read into a type, and its colon: plain ASCII, without escapes.
    fn key(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.at;
        let rest = self.bytes.get(start..)?;
        let len = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b))?;
        if rest.get(len) != Some(&b'"') {
            return None;
        }
        self.at = start + len + 1;
        self.eat(b':')?;
        rest.get(..len)
    }

    /// `null` as `None`, or what `value` reads.
    fn optional<T>(&mut self, value: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        self.space();
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        value(self).map(Some)
    }

    /// The index of the first `"`, `\` or control character at or after `from`.
    fn string_stop(&self, from: usize) -> Option<usize> {
        let bytes = self.bytes;
        let stop = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
        let mut i = from;
        // Most strings are short: a word at a time.
        for _ in 0..4 {
            let Some(x) = words::word(bytes, i) else {
                return bytes
                    .get(i..)?
                    .iter()
                    .position(|&b| stop(b))
                    .map(|at| i + at);
            };
            let found = words::below(x, 0x20) | words::equal(x, b'"') | words::equal(x, b'\\');
            if found != 0 {
                return Some(i + words::first(found));
            }
            i += 8;
        }
        // A long one (a body): the quote or backslash, then no control character before it,
        // checked without branches so that it runs many bytes at a time.
        let rest = bytes.get(i..)?;
        let end = memchr::memchr2(b'"', b'\\', rest)?;
        let run = rest.get(..end)?;
        if run.iter().fold(false, |control, &b| control | (b < 0x20)) {
            return run.iter().position(|&b| b < 0x20).map(|at| i + at);
        }
        Some(i + end)
    }

    /// A string, borrowed from the input when it has no escape.
    fn string(&mut self) -> Option<Str<'a>> {
        self.eat(b'"')?;
        let start = self.at;
        let stop = self.string_stop(start)?;
        match self.bytes.get(stop)? {
            b'"' => {
                self.at = stop + 1;
                // Cut at ASCII bytes, UTF-8 text is UTF-8.
                let text = match self.text {
                    Some(text) => text.get(start..stop)?,
                    None => std::str::from_utf8(self.bytes.get(start..stop)?).ok()?,
                };
                Some(Str::borrowed(text))
            }
            b'\\' => self.escaped(start, stop),
            _ => None,
        }
    }

    /// The rest of a string from its first escape, at `escape`, decoded as serde_json decodes
    /// it.
    fn escaped(&mut self, start: usize, mut escape: usize) -> Option<Str<'a>> {
        let mut text = Vec::with_capacity(escape - start + 16);
        text.extend_from_slice(self.bytes.get(start..escape)?);
        loop {
            let mut next = escape + 2;
            match *self.bytes.get(escape + 1)? {
                b'"' => text.push(b'"'),
                b'\\' => text.push(b'\\'),
                b'/' => text.push(b'/'),
                b'b' => text.push(0x08),
                b'f' => text.push(0x0c),
                b'n' => text.push(b'\n'),
                b'r' => text.push(b'\r'),
                b't' => text.push(b'\t'),
                b'u' => {
                    let code = hex4(self.bytes.get(next..next + 4)?)?;
                    next += 4;
                    // Surrogates (pairs or not) are left to serde_json.
                    let c = char::from_u32(u32::from(code))?;
                    text.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                _ => return None,
            }
            let stop = self.string_stop(next)?;
            text.extend_from_slice(self.bytes.get(next..stop)?);
            match self.bytes.get(stop)? {
                b'"' => {
                    self.at = stop + 1;
                    return String::from_utf8(text).ok().map(Str::owned);
                }
                b'\\' => escape = stop,
                _ => return None,
            }
        }
    }

    /// Skips the rest of a string whose opening quote was read, checking it as serde_json
    /// does (escapes, no control character; the bytes are not checked to be UTF-8).
    fn skip_string(&mut self) -> Option<()> {
        let mut from = self.at;
        loop {
            let stop = self.string_stop(from)?;
            match self.bytes.get(stop)? {
                b'"' => {
                    self.at = stop + 1;
                    return Some(());
                }
                b'\\' => match *self.bytes.get(stop + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => from = stop + 2,
                    b'u' => {
                        hex4(self.bytes.get(stop + 2..stop + 6)?)?;
                        from = stop + 6;
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
    }

    /// Skips the key of an object being skipped, and its colon.
    fn skip_key(&mut self) -> Option<()> {
        self.eat(b'"')?;
        self.skip_string()?;
        self.eat(b':')
    }

    /// Consumes a run of digits; how many.
    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    /// A number's text, checked as serde_json checks it.
    fn number(&mut self) -> Option<&'a [u8]> {
        self.space();
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => {
                self.at += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        self.bytes.get(start..self.at)
    }

    /// Skips any value, checking it as serde_json's `IgnoredAny` does.
    fn skip(&mut self) -> Option<()> {
        // The open arrays and objects, innermost in the lowest bit (1 for an object).
        let mut open = 0u64;
        let mut depth = 0u32;
        'value: loop {
            self.space();
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    self.skip_string()?;
                }
                b'-' | b'0'..=b'9' => {
                    self.number()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                bracket @ (b'[' | b'{') => {
                    self.at += 1;
                    if depth == 64 {
                        return None;
                    }
                    let object = bracket == b'{';
                    open = (open << 1) | u64::from(object);
                    depth += 1;
                    self.space();
                    if self.peek()? == if object { b'}' } else { b']' } {
                        self.at += 1;
                        open >>= 1;
                        depth -= 1;
                    } else {
                        if object {
                            self.skip_key()?;
                        }
                        continue 'value;
                    }
                }
                _ => return None,
            }
            // A value ended: close what ends after it, up to the next member.
            loop {
                if depth == 0 {
                    return Some(());
                }
                self.space();
                let object = open & 1 == 1;
                match self.peek()? {
                    b',' => {
                        self.at += 1;
                        if object {
                            self.skip_key()?;
                        }
                        continue 'value;
                    }
                    b'}' if object => {}
                    b']' if !object => {}
                    _ => return None,
                }
                self.at += 1;
                open >>= 1;
                depth -= 1;
            }
        }
    }

    /// An id field (see `model::lenient_key`): a string or an integer, hashed.
    fn id(&mut self) -> Option<Option<u64>> {
        self.space();
        match self.peek()? {
            b'"' => {
                let text = self.string()?;
                Some(Some(model::key_of(text.as_ref().as_bytes())))
            }
            b'-' | b'0'..=b'9' => {
                let text = self.number()?;
                // As serde_json reads it: an integer that fits `u64` or `i64`, else a float.
                let digits = std::str::from_utf8(text).ok()?;
                let integer = match digits.parse::<u64>() {
                    Ok(n) => Some(n.to_string()),
                    Err(_) => digits.parse::<i64>().ok().map(|n| n.to_string()),
                };
                Some(integer.map(|n| model::key_of(n.as_bytes())))
            }
            b't' => self.literal(b"true").map(|()| None),
            b'f' => self.literal(b"false").map(|()| None),
            b'n' => self.literal(b"null").map(|()| None),
            _ => None,
        }
    }

    /// A number field (see `model::lenient_f64`).
    fn lenient(&mut self) -> Option<Option<f64>> {
        self.space();
        match self.peek()? {
            b'"' => {
                let text = self.string()?;
                Some(text.as_ref().trim().parse().ok())
            }
            b'-' | b'0'..=b'9' => {
                let text = self.number()?;
                // Integers that fit are read as serde_json reads them (`u64`, then `as f64`);
                // the others by serde_json.
                if text.len() <= 18 && text.iter().all(u8::is_ascii_digit) {
                    let n: u64 = std::str::from_utf8(text).ok()?.parse().ok()?;
                    return Some(Some(n as f64));
                }
                model::lenient_number(text)
            }
            b't' => self.literal(b"true").map(|()| None),
            b'f' => self.literal(b"false").map(|()| None),
            b'n' => self.literal(b"null").map(|()| None),
            // Arrays and objects count against serde_json's depth limit (see
            // `model::take_nested_number`).
            _ => None,
        }
    }

    fn entry(&mut self) -> Option<Entry<Str<'a>>> {
        let (mut started, mut time, mut request, mut response) = (None, None, None, None);
        let (mut resource_type, mut websocket, mut connection) = (None, None, None);
        self.object(|r, key| match key {
            b"startedDateTime" => once(&mut started, r.optional(Self::string)?),
            b"time" => once(&mut time, r.lenient()?),
            b"request" => once(&mut request, r.request()?),
            b"response" => once(&mut response, r.optional(Self::response)?),
            b"_resourceType" => once(&mut resource_type, r.optional(Self::string)?),
            b"connection" => once(&mut connection, r.id()?),
            b"_webSocketMessages" => {
                let list = r.optional(|r| {
                    let mut list = Vec::new();
                    r.array(|r| {
                        list.push(r.ws_message()?);
                        Some(())
                    })?;
                    Some(list)
                })?;
                once(&mut websocket, list)
            }
            _ => r.skip(),
        })?;
        Some(Entry {
            started: started.flatten(),
            time: time.flatten(),
            request: request?,
            response: response.flatten(),
            resource_type: resource_type.flatten(),
            websocket_messages: websocket.flatten(),
            connection: connection.flatten(),
        })
    }

    fn request(&mut self) -> Option<Request<Str<'a>>> {
        let (mut method, mut url, mut headers) = (None, None, None);
        let (mut post_data, mut body_size) = (None, None);
        self.object(|r, key| match key {
            b"method" => once(&mut method, r.string()?),
            b"url" => once(&mut url, r.string()?),
            b"headers" => {
                let mut list = Vec::with_capacity(16);
                r.array(|r| {
                    list.push(r.name_value()?);
                    Some(())
                })?;
                once(&mut headers, list)
            }
            b"postData" => once(&mut post_data, r.optional(Self::post_data)?),
            b"bodySize" => once(&mut body_size, r.lenient()?),
            _ => r.skip(),
        })?;
        Some(Request {
            method: method?,
            url: url?,
            headers: headers.unwrap_or_default(),
            post_data: post_data.flatten(),
            body_size: body_size.flatten(),
        })
    }

    fn name_value(&mut self) -> Option<NameValue<Str<'a>>> {
        let (mut name, mut value) = (None, None);
        self.object(|r, key| match key {
            b"name" => once(&mut name, r.string()?),
            b"value" => once(&mut value, r.string()?),
            _ => r.skip(),
        })?;
        Some(NameValue {
            name: name?,
            value: value.unwrap_or_default(),
        })
    }

    fn post_data(&mut self) -> Option<PostData<Str<'a>>> {
        let (mut mime_type, mut text, mut params, mut encoding) = (None, None, None, None);
        self.object(|r, key| match key {
            b"mimeType" => once(&mut mime_type, r.string()?),
            b"text" => once(&mut text, r.optional(Self::string)?),
            b"params" => {
                let list = r.optional(|r| {
                    let mut list = Vec::new();
                    r.array(|r| {
                        list.push(r.param()?);
                        Some(())
                    })?;
                    Some(list)
                })?;
                once(&mut params, list)
            }
            b"encoding" => once(&mut encoding, r.optional(Self::string)?),
            _ => r.skip(),
        })?;
        Some(PostData {
            mime_type: mime_type.unwrap_or_default(),
            text: text.flatten(),
            params: params.flatten(),
            encoding: encoding.flatten(),
        })
    }

    fn param(&mut self) -> Option<Param<Str<'a>>> {
        let (mut name, mut value, mut file_name, mut content_type) = (None, None, None, None);
        self.object(|r, key| match key {
            b"name" => once(&mut name, r.string()?),
            b"value" => once(&mut value, r.optional(Self::string)?),
            b"fileName" => once(&mut file_name, r.optional(Self::string)?),
            b"contentType" => once(&mut content_type, r.optional(Self::string)?),
            _ => r.skip(),
        })?;
        Some(Param {
            name: name?,
            value: value.flatten(),
            file_name: file_name.flatten(),
            content_type: content_type.flatten(),
        })
    }

    fn ws_message(&mut self) -> Option<WsMessage<Str<'a>>> {
        let (mut kind, mut time, mut opcode, mut data) = (None, None, None, None);
        self.object(|r, key| match key {
            b"type" => once(&mut kind, r.optional(Self::string)?),
            b"time" => once(&mut time, r.lenient()?),
            b"opcode" => once(&mut opcode, r.lenient()?),
            b"data" => once(&mut data, r.optional(Self::string)?),
            _ => r.skip(),
        })?;
        Some(WsMessage {
            kind: kind.flatten(),
            time: time.flatten(),
            opcode: opcode.flatten(),
            data: data.flatten(),
        })
    }

    /// A response body's text, read for what [`BodyText`] counts.
    fn events(&mut self) -> Option<BodyText> {
        self.space();
        if self.peek()? == b'"' {
            let text = self.string()?;
            return Some(BodyText::read(text.as_ref()));
        }
        self.skip().map(|()| BodyText::default())
    }

    fn response(&mut self) -> Option<Response<Str<'a>>> {
        let (mut status, mut content, mut headers) = (None, None, None);
        self.object(|r, key| match key {
            b"status" => once(&mut status, r.lenient()?),
            b"headers" => {
                let mut trailers = model::Trailers::default();
                r.array(|r| {
                    let h = r.name_value()?;
                    trailers.take(h.name.as_ref(), h.value.as_ref());
                    Some(())
                })?;
                once(&mut headers, trailers)
            }
            b"content" => {
                let value = r.optional(|r| {
                    let (mut mime_type, mut text) = (None, None);
                    r.object(|r, key| match key {
                        b"mimeType" => once(&mut mime_type, r.optional(Self::string)?),
                        b"text" => once(&mut text, r.optional(Self::events)?),
                        _ => r.skip(),
                    })?;
                    Some(Content {
                        mime_type: mime_type.flatten(),
                        text: text.flatten(),
                    })
                })?;
                once(&mut content, value)
            }
            _ => r.skip(),
        })?;
        Some(Response {
            status: status.flatten(),
            content: content.flatten(),
            headers: headers.unwrap_or_default(),
        })
    }
}

/// The value of four hex digits, as serde_json reads a `\u` escape.
fn hex4(digits: &[u8]) -> Option<u16> {
    let mut n = 0u16;
    for &d in digits.get(..4)? {
        n = n << 4 | u16::from(char::from(d).to_digit(16)? as u8);
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `read` against serde_json: the same entry, or `None`. Returns whether `read` took it.
    fn check(text: &[u8]) -> bool {
        let ours = read(text).map(|e| format!("{e:?}"));
        let theirs = serde_json::from_slice::<Entry<Str<'_>>>(text);
        model::take_nested_number();
        match (ours, theirs) {
            (Some(ours), Ok(theirs)) => {
                assert_eq!(
                    ours,
                    format!("{theirs:?}"),
                    "{}",
                    String::from_utf8_lossy(text)
                );
                true
            }
            (Some(_), Err(e)) => panic!(
                "read what serde_json rejects ({e}): {}",
                String::from_utf8_lossy(text)
            ),
            (None, _) => false,
        }
    }

    /// The entries of the HAR fixtures, compact and pretty.
    fn fixture_entries() -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/har");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .expect("fixtures/har")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "har"))
            .collect();
        names.sort();
        let mut entries = Vec::new();
        for name in names {
            let bytes = std::fs::read(&name).expect("fixture");
            let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
            let Ok(doc) = serde_json::from_slice::<serde_json::Value>(bytes) else {
                continue;
            };
            for entry in doc["log"]["entries"].as_array().into_iter().flatten() {
                entries.push(serde_json::to_vec(entry).expect("json"));
                entries.push(serde_json::to_vec_pretty(entry).expect("json"));
            }
        }
        assert!(entries.len() > 20, "{}", entries.len());
        entries
    }

    #[test]
    fn fixture_entries_read_as_serde_json_reads_them() {
        for entry in fixture_entries() {
            assert!(check(&entry), "{}", String::from_utf8_lossy(&entry));
        }
    }

    #[test]
    fn odd_entries_read_as_serde_json_reads_them_or_not_at_all() {
        let request = r#""request": {"method": "GET", "url": "http://h/", "headers": [{"name": "a", "value": "b"}]}"#;
        let cases = [
            format!(r#"{{{request}}}"#),
            format!(r#"{{{request}, "time": 12.5, "startedDateTime": null}}"#),
            format!(r#"{{{request}, "time": "12.5 ", "response": {{"status": "200"}}}}"#),
            format!(r#"{{{request}, "time": -0, "response": {{"status": 1e3}}}}"#),
            format!(r#"{{{request}, "time": 123456789012345678901234567890}}"#),
            format!(r#"{{{request}, "time": 00}}"#),
            format!(r#"{{{request}, "time": 1.}}"#),
            format!(r#"{{{request}, "time": 1e}}"#),
            format!(r#"{{{request}, "time": -}}"#),
            format!(r#"{{{request}, "time": [1]}}"#),
            format!(r#"{{{request}, "time": {{}}}}"#),
            format!(r#"{{{request}, "time": true, "response": null}}"#),
            format!(r#"{{{request}, "time": nul}}"#),
            format!(r#"{{{request}, {request}}}"#),
            format!(r#"{{{request}, "time": 1, "time": 2}}"#),
            format!(r#"{{{request}, "extra": 1, "extra": 2}}"#),
            format!(r#"{{{request},}}"#),
            format!(r#"{{{request}}} x"#),
            format!(r#"{{{request}}}  "#),
            format!(r#" {{{request}}}"#),
            format!(r#"{{{request}, "r\u0065sponse": {{"status": 200}}}}"#),
            format!(r#"{{{request}, "é": 1}}"#),
            format!(r#"{{{request}, "x": "\u00e9\ud83d\ude00\n\/"}}"#),
            format!(r#"{{{request}, "x": "\x"}}"#),
            format!(r#"{{{request}, "x": "\u12"}}"#),
            format!(r#"{{{request}, "x": {{"a": [1, {{"b": [[], {{}}, "c"]}}], "d": null}}}}"#),
            format!(r#"{{{request}, "x": [1 2]}}"#),
            format!(r#"{{{request}, "x": {{"a" 1}}}}"#),
            format!(r#"{{{request}, "x": {{1: 1}}}}"#),
            format!(r#"{{{request}, "x": [}}"#),
            format!(r#"{{{request}, "x": "{}"}}"#, "[".repeat(100)),
            format!(r#"{{{request}, "x": {}{}}}"#, "[".repeat(70), "]".repeat(70)),
            format!(r#"{{{request}, "x": {}{}}}"#, "[".repeat(200), "]".repeat(200)),
            format!(r#"{{{request}, "_resourceType": "websocket", "_webSocketMessages": []}}"#),
            format!(r#"{{{request}, "_webSocketMessages": null}}"#),
            format!(r#"{{{request}, "_resourceType": 5}}"#),
            r#"{"request": {"method": "POST", "url": "http://h/", "postData": {"mimeType": "multipart/form-data", "params": [{"name": "f", "fileName": "a.txt", "contentType": null, "value": "x"}]}}}"#.to_string(),
            r#"{"request": {"method": "POST", "url": "http://h/", "postData": {"text": "a\"b\\c\u0041", "encoding": null, "params": null}}}"#.to_string(),
            r#"{"request": {"method": "POST", "url": "http://h/", "postData": {"mimeType": null}}}"#.to_string(),
            r#"{"request": {"method": "GET", "url": "http://h/", "headers": null}}"#.to_string(),
            r#"{"request": {"method": "GET", "url": "http://h/", "headers": [{"value": "b"}]}}"#.to_string(),
            r#"{"request": {"method": "GET", "url": "http://h/", "headers": [{"name": "a", "value": null}]}}"#.to_string(),
            r#"{"request": {"method": "GET", "url": "http://h/", "headers": [{"name": "a"}]}}"#.to_string(),
            r#"{"request": {"method": "GET", "url": "http://h/\u0000"}}"#.to_string(),
            r#"{"request": {"method": "GET"}}"#.to_string(),
            r#"{"request": ["GET", "http://h/"]}"#.to_string(),
            r#"["2024-01-01T00:00:00Z", 1, {"method": "GET", "url": "http://h/"}]"#.to_string(),
            r#"{"response": {"status": 200}}"#.to_string(),
            r#"{}"#.to_string(),
        ];
        let mut read_some = 0;
        for case in &cases {
            read_some += usize::from(check(case.as_bytes()));
        }
        assert!(read_some > 15, "{read_some}");
        // Raw bytes serde_json may or may not take.
        for raw in [
            b"{\"request\": {\"method\": \"GET\", \"url\": \"http://h/\xff\"}}".as_slice(),
            b"{\"request\": {\"method\": \"GET\", \"url\": \"http://h/\"}, \"x\": \"\xff\"}",
            b"{\"request\": {\"method\": \"GET\", \"url\": \"http://h/\"}, \"x\": \"a\tb\"}",
            b"{\"request\": {\"method\": \"GET\", \"url\": \"http://h/\"}, \"x\": \"a\x7fb\"}",
            b"{\"request\": {\"method\": \"GET\", \"url\": \"\\u00e9\xc3\xa9\"}}",
        ] {
            check(raw);
        }
    }

    /// Damaged copies of the fixtures' entries: never read differently from serde_json.
    #[test]
    fn damaged_entries_read_as_serde_json_reads_them_or_not_at_all() {
        let replacements: &[&[u8]] = &[
            b"",
            b"\"",
            b"\\",
            b"{",
            b"}",
            b"[",
            b"]",
            b",",
            b":",
            b" ",
            b"x",
            b"0",
            b"-",
            b".",
            b"e",
            b"\x00",
            b"\x1f",
            b"\xff",
            b"\xc3\xa9",
            b"null",
            b"true",
            b"{}",
            b"[]",
            b"1.5e3",
            b"\"\\u0041\"",
            b"\\u",
            b"\\ud800",
            b"\"name\"",
            b"\"value\"",
            b"\"url\"",
            b"\"status\"",
            b"\"time\"",
            b"\"headers\"",
            b"\"text\"",
            b"\"request\"",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            crate::test_rand::step(&mut seed);
            (seed % n as u64) as usize
        };
        let mut read_some = 0;
        let entries = fixture_entries();
        for entry in &entries {
            for _ in 0..400 {
                let mut damaged = entry.clone();
                for _ in 0..1 + next(2) {
                    let at = next(damaged.len() + 1);
                    let len = next(4).min(damaged.len() - at);
                    let with = replacements[next(replacements.len())];
                    damaged.splice(at..at + len, with.iter().copied());
                }
                read_some += usize::from(check(&damaged));
            }
        }
        assert!(read_some > entries.len() * 50, "{read_some}");
    }
}
