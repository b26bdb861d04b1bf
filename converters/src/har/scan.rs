//! The fast path of the HAR import: the input is read in large chunks and every value of the
//! document's outer structure (each entry of `log.entries` above all) is parsed from the bytes in
//! memory.
//!
//! serde_json parses a slice several times faster than a reader (a reader is consumed byte by
//! byte, a slice is searched for the end of each string at once), but the whole file in memory
//! would double an import's peak memory. Here memory holds one chunk, or one entry when an entry
//! is larger.
//!
//! Only the outer structure (keys, commas, brackets) is read here; serde_json parses each value
//! in full and tells where it ends. Whenever the input is anything but a well-formed document of
//! the usual shape, the fast path gives up ([`Unsure`]) and the caller imports with the
//! streaming parser, so results and error messages (line, column, what was expected) are exactly
//! those of that parser. A well-formed value parsed on its own gives what it gives parsed in
//! place: a JSON value ends where its outermost bracket closes, whatever follows, and the types
//! the entries are read into nest only a few levels deep (skipped values are not counted against
//! serde_json's recursion limit; see `model::take_nested_number` for the one exception), so the
//! few levels of the document around an entry make no difference.

use std::io::Read;

use super::{StreamState, model};

/// Bytes read at a time.
pub(super) const CHUNK: usize = 1 << 20;
/// The largest single value the fast path holds in memory. A recording with a larger entry
/// (a video in a response body, say) is imported by the streaming parser, whose memory does not
/// grow with an entry's size.
const MAX_VALUE: usize = 64 << 20;
/// The fast path gave up; the streaming parser decides.
#[derive(Debug)]
pub(super) struct Unsure;

/// Whether the import goes on after a value.
pub(super) enum Flow {
    Continue,
    /// The importer stopped at an entry (an error, or entries out of order).
    Stop,
}

/// Input read in chunks; `buf[pos..]` is what has not been scanned yet.
pub(super) struct Source<R> {
    reader: R,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    chunk: usize,
}

impl<R: Read> Source<R> {
    pub(super) fn new(reader: R) -> Source<R> {
        Source::with_chunk(reader, CHUNK)
    }

    pub(super) fn with_chunk(reader: R, chunk: usize) -> Source<R> {
        Source {
            reader,
            buf: Vec::new(),
            pos: 0,
            eof: false,
            chunk,
        }
    }

    /// Skips a UTF-8 byte order mark at the start.
    pub(super) fn skip_bom(&mut self) -> Result<(), Unsure> {
        while self.buf.len() - self.pos < super::BOM.len() && !self.eof {
            self.fill()?;
        }
        if self.buf[self.pos..].starts_with(super::BOM) {
            self.pos += super::BOM.len();
        }
        Ok(())
    }

    /// Drops what has been scanned and reads more: at least a chunk, and as much as is already
    /// held, so that a value larger than a chunk is scanned again only a few times.
    fn fill(&mut self) -> Result<(), Unsure> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let start = self.buf.len();
        let want = self.chunk.max(start);
        if start + want > MAX_VALUE + self.chunk {
            return Err(Unsure);
        }
        self.buf.resize(start + want, 0);
        let mut filled = start;
        while filled < self.buf.len() {
            match self.reader.read(&mut self.buf[filled..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // The streaming parser reads again and reports the error.
                Err(_) => return Err(Unsure),
            }
        }
        self.buf.truncate(filled);
        Ok(())
    }

    /// The next byte that is not JSON whitespace (left unconsumed), or `None` at the end.
    fn peek(&mut self) -> Result<Option<u8>, Unsure> {
        loop {
            while let Some(&b) = self.buf.get(self.pos) {
                if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                    return Ok(Some(b));
                }
                self.pos += 1;
            }
            if self.eof {
                return Ok(None);
            }
            self.fill()?;
        }
    }

    /// Consumes `byte`, after whitespace.
    fn expect(&mut self, byte: u8) -> Result<(), Unsure> {
        if self.peek()? != Some(byte) {
            return Err(Unsure);
        }
        self.pos += 1;
        Ok(())
    }

    /// Parses the value that starts at the next non-whitespace byte and consumes it.
    ///
    /// serde_json finds where the value ends. A value cut short by the end of the buffer gives
    /// an error (or, for a number, possibly a shorter number), so on any error, and on a value
    /// that is not self-delimited (`{`, `[`, `"`) ending at the end of the buffer, more input
    /// is read and the value parsed again; only at the end of the input is an error final.
    fn parse<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, Unsure> {
        let first = self.peek()?.ok_or(Unsure)?;
        let delimited = matches!(first, b'{' | b'[' | b'"');
        loop {
            let rest = &self.buf[self.pos..];
            let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<T>();
            if let Some(Ok(value)) = values.next() {
                let end = values.byte_offset();
                if delimited || end < rest.len() || self.eof {
                    self.pos += end;
                    return Ok(value);
                }
            }
            if self.eof {
                return Err(Unsure);
            }
            self.fill()?;
        }
    }

    /// Consumes a value that the import does not read, checking it as the streaming parser
    /// does while skipping it.
    fn skip(&mut self) -> Result<(), Unsure> {
        self.parse::<serde::de::IgnoredAny>().map(|_| ())
    }

    /// Consumes an object key and its colon.
    fn key(&mut self) -> Result<Key, Unsure> {
        if self.peek()? != Some(b'"') {
            return Err(Unsure);
        }
        let end = loop {
            if let Some(end) = string_end(&self.buf[self.pos..], 1) {
                break end;
            }
            if self.eof {
                return Err(Unsure);
            }
            self.fill()?;
        };
        let inner = self
            .buf
            .get(self.pos + 1..self.pos + end - 1)
            .ok_or(Unsure)?;
        // Escapes would need decoding, and a key is parsed as text: both rare, both left to
        // the parser.
        if inner.iter().any(|&b| b == b'\\' || b < 0x20) || std::str::from_utf8(inner).is_err() {
            return Err(Unsure);
        }
        let key = match inner {
            b"log" => Key::Log,
            b"creator" => Key::Creator,
            b"entries" => Key::Entries,
            _ => Key::Other,
        };
        self.pos += end;
        self.expect(b':')?;
        Ok(key)
    }

    /// After a member of an object or array: `true` for a comma, `false` for `close`.
    fn next_member(&mut self, close: u8) -> Result<bool, Unsure> {
        match self.peek()? {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(b) if b == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(Unsure),
        }
    }
}

#[derive(PartialEq, Eq)]
enum Key {
    Log,
    Creator,
    Entries,
    Other,
}

/// Imports the document into `state`: `Ok` when `state` holds the outcome (the import went
/// through, or stopped at an entry), `Unsure` when the streaming parser must decide.
pub(super) fn import<R: Read>(
    mut src: Source<R>,
    state: &mut StreamState<'_>,
) -> Result<(), Unsure> {
    document(&mut src, state).map(|_| ())
}

/// Reads the document: what the serde visitors in the parent module do, in the same order.
fn document<R: Read>(src: &mut Source<R>, state: &mut StreamState<'_>) -> Result<Flow, Unsure> {
    src.expect(b'{')?;
    let mut seen_log = false;
    loop {
        let key = src.key()?;
        if key == Key::Log && !seen_log {
            seen_log = true;
            if let Flow::Stop = log(src, state)? {
                return Ok(Flow::Stop);
            }
        } else {
            src.skip()?;
        }
        if !src.next_member(b'}')? {
            break;
        }
    }
    // Anything after the document is not read, as by the streaming parser.
    if seen_log {
        Ok(Flow::Continue)
    } else {
        Err(Unsure)
    }
}

fn log<R: Read>(src: &mut Source<R>, state: &mut StreamState<'_>) -> Result<Flow, Unsure> {
    src.expect(b'{')?;
    let mut seen_entries = false;
    loop {
        match src.key()? {
            Key::Creator => {
                let creator: Option<model::Creator> = src.parse()?;
                state.latin1 = super::is_mitmproxy(creator.as_ref());
            }
            Key::Entries if !seen_entries => {
                seen_entries = true;
                if let Flow::Stop = entries(src, state)? {
                    return Ok(Flow::Stop);
                }
            }
            _ => src.skip()?,
        }
        if !src.next_member(b'}')? {
            break;
        }
    }
    if seen_entries {
        Ok(Flow::Continue)
    } else {
        Err(Unsure)
    }
}

fn entries<R: Read>(src: &mut Source<R>, state: &mut StreamState<'_>) -> Result<Flow, Unsure> {
    src.expect(b'[')?;
    if src.peek()? == Some(b']') {
        src.pos += 1;
        return Ok(Flow::Continue);
    }
    loop {
        // An entry is an object (or, to serde, a struct written as an array); anything else is
        // an error that the streaming parser reports.
        if !matches!(src.peek()?, Some(b'{' | b'[')) {
            return Err(Unsure);
        }
        model::take_nested_number();
        let entry: model::Entry = src.parse()?;
        if model::take_nested_number() {
            return Err(Unsure);
        }
        if !state.entry(entry) {
            return Ok(Flow::Stop);
        }
        if !src.next_member(b']')? {
            return Ok(Flow::Continue);
        }
    }
}

/// The index just past the `"` that closes the string whose content starts at `from`.
fn string_end(bytes: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = from
            + bytes
                .get(from..)?
                .iter()
                .position(|&b| b == b'"' || b == b'\\')?;
        if bytes.get(at) == Some(&b'"') {
            return Some(at + 1);
        }
        // A backslash and the byte it escapes (the hex digits of `\u` are plain bytes).
        from = at + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ImportOptions;

    #[test]
    fn strings_are_delimited() {
        assert_eq!(string_end(br#""a\"b" , 1"#, 1), Some(6));
        assert_eq!(string_end(br#""a\\" ]"#, 1), Some(5));
        assert_eq!(string_end(br#""a\"#, 1), None);
        assert_eq!(string_end(br#""abc"#, 1), None);
    }

    /// The outcome of an import as text, to compare the two paths.
    fn outcome(result: crate::Result<crate::Import>) -> String {
        match result {
            Ok(import) => format!(
                "{}\n{:?}\n{:?}",
                import.to_json_string(),
                import.summary,
                import.secrets
            ),
            Err(e) => format!("error: {e}"),
        }
    }

    fn compare(bytes: &[u8], options: &ImportOptions, chunk: usize) {
        let text = bytes.strip_prefix(super::super::BOM).unwrap_or(bytes);
        let streamed = outcome(super::super::import_streaming("t.har", text, options));
        let fast = outcome(super::super::import_with_chunk(
            "t.har", bytes, options, chunk,
        ));
        if fast != streamed {
            panic!(
                "chunk {chunk}\nfast:      {}\nstreaming: {}\ninput: {}",
                fast.chars().take(600).collect::<String>(),
                streamed.chars().take(600).collect::<String>(),
                String::from_utf8_lossy(bytes)
            );
        }
    }

    fn fixtures() -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/har");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .expect("fixtures/har")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "har"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read(p).expect("fixture"))
            .collect()
    }

    #[test]
    fn fixtures_take_the_fast_path_with_any_chunk_size() {
        let options = ImportOptions::default();
        for bytes in fixtures() {
            let text = bytes.strip_prefix(super::super::BOM).unwrap_or(&bytes);
            for chunk in [1, 7, 64, 4096, CHUNK] {
                let fast = super::super::fast(Source::with_chunk(text, chunk), "t.har", &options);
                assert!(fast.is_some(), "chunk {chunk}");
                compare(&bytes, &options, chunk);
            }
        }
    }

    /// Damaged copies of the fixtures give what the streaming parser gives, plan or error.
    #[test]
    fn damaged_documents_match_the_streaming_parser() {
        let options = ImportOptions {
            think_time: true,
            ..ImportOptions::default()
        };
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
            b"\x00",
            b"\xff",
            b"\"log\"",
            b"\"entries\"",
            b"null",
            b"{}",
            b"[]",
            b"\"\\u0041\"",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for bytes in fixtures() {
            for _ in 0..150 {
                let at = next(bytes.len());
                let len = next(4);
                let with = replacements[next(replacements.len())];
                let mut damaged = bytes[..at].to_vec();
                damaged.extend_from_slice(with);
                damaged.extend_from_slice(bytes.get(at + len..).unwrap_or_default());
                compare(&damaged, &options, [5, 300, CHUNK][next(3)]);
                compare(&bytes[..at], &options, 64);
            }
        }
    }

    #[test]
    fn odd_shapes_match_the_streaming_parser() {
        let options = ImportOptions::default();
        let entry = r#"{"startedDateTime": "2024-05-01T10:00:00Z", "request": {"method": "GET", "url": "http://h/a", "headers": []}, "response": {"status": 200}}"#;
        let late = r#"{"startedDateTime": "2024-05-01T09:00:00Z", "request": {"method": "GET", "url": "http://h/b"}, "response": {"status": 200}}"#;
        let bad_url =
            r#"{"request": {"method": "GET", "url": "http://"}, "response": {"status": 200}}"#;
        let docs = [
            format!(r#"{{"log": {{"entries": [{entry}]}}}} trailing"#),
            format!(
                r#"{{"a": [1, {{"b": "\""}}], "log": {{"version": "1.2", "entries": [{entry}, {entry}], "pages": []}}, "z": null}}"#
            ),
            format!(
                r#"{{"log": {{"entries": [{entry}], "creator": {{"name": "mitmproxy"}}, "entries": 5}}, "log": 1}}"#
            ),
            format!(r#"{{"log": {{"entries": [{entry}, {late}]}}}}"#),
            format!(r#"{{"log": {{"entries": [{entry}, {bad_url}, ]}}}}"#),
            format!(r#"{{"log": {{"entries": [{entry}, 1]}}}}"#),
            format!(r#"{{"log": {{"entries": [{entry},]}}}}"#),
            format!(r#"{{"l\u006fg": {{"entries": [{entry}]}}}}"#),
            format!(r#"{{"log": {{"creator": 5, "entries": [{entry}]}}}}"#),
            r#"{"log": {"entries": []}, }"#.to_string(),
            r#"{"log": {"creator": null, "entries": []}}"#.to_string(),
            r#"{"log": {}}"#.to_string(),
            r#"{}"#.to_string(),
            r#"[]"#.to_string(),
            r#"{"log": {"entries": [] "#.to_string(),
            format!(
                r#"{{"log": {{"entries": [{}{entry}{}]}}}}"#,
                "[".repeat(130),
                "]".repeat(130)
            ),
        ];
        for doc in &docs {
            for chunk in [3, CHUNK] {
                compare(doc.as_bytes(), &options, chunk);
            }
        }
    }
}
