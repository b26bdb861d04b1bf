//! JSON texts written exactly as serde_json writes the value they hold, compact: such a text
//! can go into a plan as that value (a request body recorded as JSON is sent as `json` only when
//! the client will send the same bytes), and be written pretty from its own tokens, without
//! building the value, hashing its keys and writing it twice.

/// Whether `text` is what `serde_json::to_string` writes for the value
/// `serde_json::from_str::<Value>(text)` reads (`false` too when it is not JSON); `None` when
/// this is left to serde_json: numbers that are not small integers are checked by serde_json
/// here, but values nested deeper than [`MAX_DEPTH`] and objects of more than [`MAX_KEYS`]
/// members are not read.
pub(crate) fn is_canonical(text: &str) -> Option<bool> {
    let mut reader = Reader {
        bytes: text.as_bytes(),
        at: 0,
        keys: Vec::new(),
    };
    let canonical = reader.value(0)?;
    Some(canonical && reader.at == reader.bytes.len())
}

/// Deeper values are left to serde_json (whose own limit is 128 levels).
const MAX_DEPTH: usize = 100;
/// Larger objects are left to serde_json: keys are checked for repeats one by one.
const MAX_KEYS: usize = 64;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// The keys of the objects being read, innermost last.
    keys: Vec<&'a [u8]>,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// Reads one value at `at`: `Some(false)` at the first byte serde_json would not write
    /// there.
    fn value(&mut self, depth: usize) -> Option<bool> {
        let Some(first) = self.peek() else {
            return Some(false);
        };
        match first {
            b'{' | b'[' => {
                if depth == MAX_DEPTH {
                    return None;
                }
                self.at += 1;
                let object = first == b'{';
                let close = if object { b'}' } else { b']' };
                if self.peek() == Some(close) {
                    self.at += 1;
                    return Some(true);
                }
                let keys_start = self.keys.len();
                loop {
                    if object {
                        let Some(key) = self.string() else {
                            return Some(false);
                        };
                        let keys = self.keys.get(keys_start..).unwrap_or_default();
                        if keys.len() == MAX_KEYS {
                            return None;
                        }
                        // A repeated key leaves one member in the value.
                        if keys.contains(&key) || self.peek() != Some(b':') {
                            return Some(false);
                        }
                        self.keys.push(key);
                        self.at += 1;
                    }
                    if !self.value(depth + 1)? {
                        return Some(false);
                    }
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b) if b == close => {
                            self.at += 1;
                            self.keys.truncate(keys_start);
                            return Some(true);
                        }
                        _ => return Some(false),
                    }
                }
            }
            b'"' => Some(self.string().is_some()),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => Some(self.literal(b"true")),
            b'f' => Some(self.literal(b"false")),
            b'n' => Some(self.literal(b"null")),
            _ => Some(false),
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        let end = self.at + word.len();
        if self.bytes.get(self.at..end) != Some(word) {
            return false;
        }
        self.at = end;
        true
    }

    /// A string escaped as serde_json escapes strings, whole with its quotes.
    fn string(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        if self.peek()? != b'"' {
            return None;
        }
        let mut i = start + 1;
        loop {
            match *self.bytes.get(i)? {
                b'"' => break,
                b'\\' => {
                    i += match *self.bytes.get(i + 1)? {
                        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                        // `\u00xx`, lowercase, for the other control characters only.
                        b'u' => {
                            let hex = self.bytes.get(i + 2..i + 6)?;
                            let code =
                                u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                            let lower = hex.iter().all(|b| !b.is_ascii_uppercase());
                            let short = matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d);
                            if !hex.starts_with(b"00") || code >= 0x20 || short || !lower {
                                return None;
                            }
                            6
                        }
                        _ => return None,
                    };
                }
                b if b < 0x20 => return None,
                _ => i += 1,
            }
        }
        self.at = i + 1;
        self.bytes.get(start..self.at)
    }

    /// A number as serde_json writes it.
    fn number(&mut self) -> Option<bool> {
        let start = self.at;
        let rest = self.bytes.get(start..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
            .unwrap_or(rest.len());
        self.at += len;
        let token = rest.get(..len).unwrap_or_default();
        let digits = token.strip_prefix(b"-").unwrap_or(token);
        if !digits.is_empty() && digits.len() <= 18 && digits.iter().all(u8::is_ascii_digit) {
            // An integer that fits: written as read, but for leading zeros and `-0`.
            return Some(digits == b"0" && token.len() == 1 || digits[0] != b'0');
        }
        // Anything else is read and written again by serde_json.
        let token = std::str::from_utf8(token).ok()?;
        Some(
            serde_json::from_str::<serde_json::Number>(token)
                .ok()
                .and_then(|n| serde_json::to_string(&n).ok())
                .is_some_and(|written| written == token),
        )
    }
}

/// Writes a text for which [`is_canonical`] holds, pretty (two spaces an indent), as its value
/// stands `level` levels deep: the bytes serde_json's pretty printer writes for the value,
/// indented further by `level` levels.
pub(crate) fn write_pretty(out: &mut String, level: usize, text: &str) {
    let bytes = text.as_bytes();
    let mut level = level;
    let mut i = 0;
    let line = |out: &mut String, level: usize| {
        out.push('\n');
        for _ in 0..level {
            out.push_str("  ");
        }
    };
    while let Some(&b) = bytes.get(i) {
        match b {
            b'{' | b'[' => {
                let close = if b == b'{' { b'}' } else { b']' };
                if bytes.get(i + 1) == Some(&close) {
                    out.push_str(if b == b'{' { "{}" } else { "[]" });
                    i += 2;
                    continue;
                }
                out.push(char::from(b));
                level += 1;
                line(out, level);
            }
            b'}' | b']' => {
                level = level.saturating_sub(1);
                line(out, level);
                out.push(char::from(b));
            }
            b',' => {
                out.push(',');
                line(out, level);
            }
            b':' => out.push_str(": "),
            b'"' => {
                // Up to the closing quote, escapes included.
                let mut end = i + 1;
                while let Some(&c) = bytes.get(end) {
                    end += match c {
                        b'"' => break,
                        b'\\' => 2,
                        _ => 1,
                    };
                }
                out.push_str(text.get(i..=end).unwrap_or_default());
                i = end + 1;
                continue;
            }
            _ => {
                // A number or a literal, up to the next structural byte.
                let end = bytes
                    .get(i..)
                    .and_then(|rest| rest.iter().position(|c| matches!(c, b',' | b']' | b'}')))
                    .map_or(bytes.len(), |at| i + at);
                out.push_str(text.get(i..end).unwrap_or_default());
                i = end;
                continue;
            }
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// What serde_json says: canonical or not.
    fn reference(text: &str) -> bool {
        serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| serde_json::to_string(&v).ok())
            .is_some_and(|compact| compact == text)
    }

    fn check(text: &str) -> bool {
        let expected = reference(text);
        if let Some(canonical) = is_canonical(text) {
            assert_eq!(canonical, expected, "{text:?}");
        }
        if expected {
            let value: Value = serde_json::from_str(text).expect("json");
            for level in [0, 7] {
                let mut ours = String::new();
                write_pretty(&mut ours, level, text);
                // serde_json's pretty text with the level's indentation after every break.
                let theirs = serde_json::to_string_pretty(&value)
                    .expect("pretty")
                    .replace('\n', &format!("\n{}", "  ".repeat(level)));
                assert_eq!(ours, theirs, "{text:?}");
            }
        }
        expected
    }

    /// A random value, with the strings and numbers that are easy to get wrong.
    fn value(next: &mut dyn FnMut(u64) -> u64, depth: usize) -> Value {
        let strings = [
            "",
            "a",
            "\"",
            "\\",
            "/",
            "\n\t\r\u{8}\u{c}",
            "\u{1}\u{1f}\u{7f}",
            "é☃😀",
            "key",
            "Key",
        ];
        let numbers = [
            "0",
            "-1",
            "17",
            "1.5",
            "-0.0",
            "1e300",
            "123456789012345678",
            "12345678901234567890",
            "-9223372036854775808",
            "0.1",
            "3.0",
            "1.25e-7",
            "100000000000000000000000",
        ];
        match next(if depth > 4 { 6 } else { 9 }) {
            0 => Value::Null,
            1 => Value::Bool(next(2) == 0),
            2 | 3 => Value::String(strings[next(strings.len() as u64) as usize].into()),
            4 | 5 => {
                serde_json::from_str(numbers[next(numbers.len() as u64) as usize]).expect("number")
            }
            6 => Value::Array((0..next(4)).map(|_| value(next, depth + 1)).collect()),
            _ => Value::Object(
                (0..next(4))
                    .map(|_| {
                        let key = strings[next(strings.len() as u64) as usize].to_string();
                        (key, value(next, depth + 1))
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn canonical_texts_are_told_and_written_as_serde_json_does() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            crate::test_rand::step(&mut seed);
            seed % n
        };
        let edits: &[(&str, &str)] = &[
            (":", ": "),
            (",", ", "),
            ("\\\"", "\\u0022"),
            ("\\u001f", "\\u001F"),
            ("\\n", "\\u000a"),
            ("\\t", "\\u0009"),
            ("\\r", "\\u000d"),
            ("\\b", "\\u0008"),
            ("\\f", "\\u000c"),
            ("\\u0001", "\\u0041"),
            ("\u{7f}", "\\u007f"),
            ("/", "\\/"),
            ("0", "00"),
            ("1", "-0"),
            ("1.5", "1.50"),
            ("1.5", "15e-1"),
            ("[", "[ "),
            ("}", " }"),
            ("\"a\"", "\"key\""),
            ("null", "nul"),
            ("true", "True"),
        ];
        let mut canonical = 0;
        for _ in 0..20_000 {
            let text = serde_json::to_string(&value(&mut next, 0)).expect("json");
            canonical += usize::from(check(&text));
            let (from, to) = edits[next(edits.len() as u64) as usize];
            if let Some(at) = text.find(from) {
                let mut edited = text.clone();
                edited.replace_range(at..at + from.len(), to);
                check(&edited);
            }
            check(&format!(" {text}"));
            check(&format!("{text}x"));
        }
        assert!(canonical > 15_000, "{canonical}");
        for text in [
            "",
            "{",
            "[1,]",
            "{\"a\":1,\"a\":2}",
            "{\"a\":1,\"b\":{\"a\":2}}",
            "-",
            "1.",
            "01",
            "-0",
            "0",
            "\"\\u0000\"",
            "\"\\u0020\"",
            "[[[]]]",
            "{\"\":{}}",
            "1e400",
        ] {
            check(text);
        }
        let deep = format!("{}{}", "[".repeat(120), "]".repeat(120));
        assert_eq!(is_canonical(&deep), None);
        check(&deep);
    }
}
