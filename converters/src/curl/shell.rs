//! Splits shell text into commands and words, the way a shell would before running `curl`.
//!
//! Two dialects, because commands are copied from both: POSIX shells (bash's quoting: `'…'`,
//! `"…"` with its four escapes, `$'…'` ANSI-C strings, backslash escapes and `\` line
//! continuations) and Windows `cmd.exe` (`^` escapes and `^` line continuations, then the
//! C runtime's `"` and `\"` rules that split a command line into arguments). Browsers'
//! "Copy as cURL (cmd)" writes the latter.
//!
//! Nothing is executed: `$NAME` and `${NAME}` become `${env.NAME}` placeholders, which the plan
//! resolves from the environment as the shell would have; command substitution (`$(…)`,
//! backquotes) is kept as written and reported.

use ld_plan::SourcePos;

/// One word after quote removal, with where it started.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Word {
    pub(crate) text: String,
    pub(crate) pos: SourcePos,
}

/// One simple command: its words, and what was set aside while reading it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Command {
    pub(crate) words: Vec<Word>,
    /// Shell features that cannot be represented and were left as written or ignored.
    pub(crate) notes: Vec<&'static str>,
}

/// A syntax error at a position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ShellError {
    pub(crate) message: String,
    pub(crate) pos: SourcePos,
}

/// The quoting rules of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Posix,
    Cmd,
}

/// Guesses the dialect: `cmd.exe` when a line ends with the `^` continuation or `^"` escapes
/// appear, which POSIX shell text has no reason to contain.
pub(crate) fn dialect(text: &str) -> Dialect {
    let caret_continuation = text.lines().any(|l| {
        let l = l.trim_end();
        l.ends_with('^') && !l.ends_with("\\^")
    });
    if caret_continuation || text.contains("^\"") {
        Dialect::Cmd
    } else {
        Dialect::Posix
    }
}

/// Splits `text` into commands. Commands end at unquoted newlines and at `;`, `&`, `&&`,
/// `||` and `|`; comments (`#` at the start of a word) run to the end of the line.
pub(crate) fn split(text: &str, dialect: Dialect) -> Result<Vec<Command>, ShellError> {
    let chars = positioned(text);
    match dialect {
        Dialect::Posix => Posix::new(chars).run(),
        Dialect::Cmd => cmd_split(chars),
    }
}

/// Characters with their 1-based line and column.
fn positioned(text: &str) -> Vec<(char, SourcePos)> {
    let mut out = Vec::with_capacity(text.len());
    let (mut line, mut column) = (1, 1);
    for c in text.chars() {
        out.push((c, SourcePos { line, column }));
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    out
}

/// The POSIX tokenizer's state: the input, a cursor, the command and word being built.
struct Posix {
    chars: Vec<(char, SourcePos)>,
    at: usize,
    commands: Vec<Command>,
    current: Command,
    word: Option<Word>,
}

impl Posix {
    fn new(chars: Vec<(char, SourcePos)>) -> Posix {
        Posix {
            chars,
            at: 0,
            commands: Vec::new(),
            current: Command::default(),
            word: None,
        }
    }

    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).map(|(c, _)| *c)
    }

    fn pos(&self) -> SourcePos {
        self.chars
            .get(self.at)
            .or(self.chars.last())
            .map(|(_, p)| *p)
            .unwrap_or(SourcePos { line: 1, column: 1 })
    }

    /// Appends to the current word, starting one at `pos` if needed.
    fn push(&mut self, s: &str, pos: SourcePos) {
        self.word
            .get_or_insert_with(|| Word {
                text: String::new(),
                pos,
            })
            .text
            .push_str(s);
    }

    /// Starts a word (possibly empty, as `''` is an empty argument).
    fn begin(&mut self, pos: SourcePos) {
        self.word.get_or_insert_with(|| Word {
            text: String::new(),
            pos,
        });
    }

    fn end_word(&mut self) {
        if let Some(w) = self.word.take() {
            self.current.words.push(w);
        }
    }

    fn end_command(&mut self) {
        self.end_word();
        let command = std::mem::take(&mut self.current);
        if !command.words.is_empty() {
            self.commands.push(command);
        }
    }

    fn run(mut self) -> Result<Vec<Command>, ShellError> {
        while let Some(c) = self.peek(0) {
            let pos = self.pos();
            match c {
                ' ' | '\t' | '\r' => {
                    self.end_word();
                    self.at += 1;
                }
                '\n' => {
                    self.end_command();
                    self.at += 1;
                }
                '#' if self.word.is_none() => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.at += 1;
                    }
                }
                ';' => {
                    self.end_command();
                    self.at += 1;
                }
                '&' | '|' => {
                    if c == '|' && self.peek(1) != Some('|') {
                        self.current
                            .notes
                            .push("a pipe after the command (its output is not used)");
                    }
                    self.end_command();
                    self.at += 1;
                    if self.peek(0) == Some(c) {
                        self.at += 1;
                    }
                }
                '<' | '>' => {
                    // A redirection: its target is not an argument of the command, nor is
                    // a file descriptor number written just before it (`2>`).
                    if self
                        .word
                        .as_ref()
                        .is_some_and(|w| w.text.bytes().all(|b| b.is_ascii_digit()))
                    {
                        self.word = None;
                    }
                    self.end_word();
                    while self.peek(0).is_some_and(|c| matches!(c, '<' | '>' | '&')) {
                        self.at += 1;
                    }
                    while self.peek(0).is_some_and(|c| c == ' ' || c == '\t') {
                        self.at += 1;
                    }
                    let saved = std::mem::take(&mut self.current.words);
                    self.read_one_word()?;
                    self.end_word();
                    self.current.words = saved;
                    self.current
                        .notes
                        .push("a redirection (input or output files are not used)");
                }
                _ => self.word_part(c, pos)?,
            }
        }
        self.end_command();
        Ok(self.commands)
    }

    /// Reads the characters of one word (for a redirection target).
    fn read_one_word(&mut self) -> Result<(), ShellError> {
        while let Some(c) = self.peek(0) {
            if matches!(c, ' ' | '\t' | '\r' | '\n' | ';' | '&' | '|' | '<' | '>') {
                break;
            }
            let pos = self.pos();
            self.word_part(c, pos)?;
        }
        Ok(())
    }

    /// One piece of a word starting at the cursor: a quoted string, an escape, an expansion
    /// or a plain character.
    fn word_part(&mut self, c: char, pos: SourcePos) -> Result<(), ShellError> {
        match c {
            '\\' => {
                match self.peek(1) {
                    Some('\n') => self.at += 2,
                    Some('\r') if self.peek(2) == Some('\n') => self.at += 3,
                    Some(next) => {
                        self.push(&next.to_string(), pos);
                        self.at += 2;
                    }
                    None => {
                        self.push("\\", pos);
                        self.at += 1;
                    }
                }
                Ok(())
            }
            '\'' => {
                self.begin(pos);
                self.at += 1;
                let mut text = String::new();
                loop {
                    match self.peek(0) {
                        Some('\'') => break,
                        Some(ch) => {
                            text.push(ch);
                            self.at += 1;
                        }
                        None => return Err(unterminated("single", pos)),
                    }
                }
                self.at += 1;
                self.push(&text, pos);
                Ok(())
            }
            '"' => self.double_quoted(pos),
            '$' => self.dollar(pos, false),
            '`' => {
                let start = self.at;
                self.at += 1;
                while self.peek(0).is_some_and(|c| c != '`') {
                    self.at += 1;
                }
                if self.peek(0).is_none() {
                    return Err(unterminated("back", pos));
                }
                self.at += 1;
                let raw: String = self.chars[start..self.at].iter().map(|(c, _)| *c).collect();
                self.push(&raw, pos);
                self.current
                    .notes
                    .push("command substitution (kept as written)");
                Ok(())
            }
            _ => {
                self.push(&c.to_string(), pos);
                self.at += 1;
                Ok(())
            }
        }
    }

    fn double_quoted(&mut self, pos: SourcePos) -> Result<(), ShellError> {
        self.begin(pos);
        self.at += 1;
        loop {
            let here = self.pos();
            match self.peek(0) {
                None => return Err(unterminated("double", pos)),
                Some('"') => {
                    self.at += 1;
                    return Ok(());
                }
                Some('\\') => match self.peek(1) {
                    Some(e @ ('$' | '`' | '"' | '\\')) => {
                        self.push(&e.to_string(), here);
                        self.at += 2;
                    }
                    Some('\n') => self.at += 2,
                    _ => {
                        self.push("\\", here);
                        self.at += 1;
                    }
                },
                Some('$') => self.dollar(here, true)?,
                Some('`') => self.word_part('`', here)?,
                Some(ch) => {
                    self.push(&ch.to_string(), here);
                    self.at += 1;
                }
            }
        }
    }

    /// `$'…'`, `$"…"`, `$NAME`, `${NAME}`, `$(…)`, or a literal `$`.
    fn dollar(&mut self, pos: SourcePos, quoted: bool) -> Result<(), ShellError> {
        match self.peek(1) {
            Some('\'') if !quoted => {
                self.at += 2;
                let text = self.ansi_c(pos)?;
                self.push(&text, pos);
                Ok(())
            }
            Some('"') if !quoted => {
                // Locale translation: the text itself.
                self.at += 1;
                self.double_quoted(pos)
            }
            Some('{') => {
                let start = self.at;
                let mut end = self.at + 2;
                while end < self.chars.len() && self.chars[end].0 != '}' {
                    end += 1;
                }
                if end >= self.chars.len() {
                    return Err(ShellError {
                        message: "unterminated ${…} parameter expansion".into(),
                        pos,
                    });
                }
                let inner: String = self.chars[start + 2..end].iter().map(|(c, _)| *c).collect();
                self.at = end + 1;
                if is_name(&inner) {
                    self.push(&format!("${{env.{inner}}}"), pos);
                } else {
                    let raw: String = self.chars[start..end + 1].iter().map(|(c, _)| *c).collect();
                    self.push(&raw, pos);
                    self.current
                        .notes
                        .push("a parameter expansion with an operator (kept as written)");
                }
                Ok(())
            }
            Some('(') => {
                // Command or arithmetic substitution: kept verbatim up to the matching `)`.
                let start = self.at;
                let mut depth = 0usize;
                let mut end = self.at + 1;
                while end < self.chars.len() {
                    match self.chars[end].0 {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    end += 1;
                }
                if end >= self.chars.len() {
                    return Err(ShellError {
                        message: "unterminated $( command substitution".into(),
                        pos,
                    });
                }
                let raw: String = self.chars[start..end + 1].iter().map(|(c, _)| *c).collect();
                self.at = end + 1;
                self.push(&raw, pos);
                self.current
                    .notes
                    .push("command substitution (kept as written)");
                Ok(())
            }
            Some(c) if c == '_' || c.is_ascii_alphabetic() => {
                let mut end = self.at + 1;
                while end < self.chars.len()
                    && (self.chars[end].0 == '_' || self.chars[end].0.is_ascii_alphanumeric())
                {
                    end += 1;
                }
                let name: String = self.chars[self.at + 1..end]
                    .iter()
                    .map(|(c, _)| *c)
                    .collect();
                self.at = end;
                self.push(&format!("${{env.{name}}}"), pos);
                Ok(())
            }
            _ => {
                self.push("$", pos);
                self.at += 1;
                Ok(())
            }
        }
    }

    /// The body of `$'…'`, cursor just after the opening quote.
    fn ansi_c(&mut self, pos: SourcePos) -> Result<String, ShellError> {
        let mut bytes: Vec<u8> = Vec::new();
        let push_char = |bytes: &mut Vec<u8>, c: char| {
            let mut buf = [0u8; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        };
        loop {
            match self.peek(0) {
                None => return Err(unterminated("$'", pos)),
                Some('\'') => {
                    self.at += 1;
                    break;
                }
                Some('\\') => {
                    self.at += 1;
                    let Some(e) = self.peek(0) else {
                        return Err(unterminated("$'", pos));
                    };
                    self.at += 1;
                    match e {
                        'a' => bytes.push(0x07),
                        'b' => bytes.push(0x08),
                        'e' | 'E' => bytes.push(0x1b),
                        'f' => bytes.push(0x0c),
                        'n' => bytes.push(b'\n'),
                        'r' => bytes.push(b'\r'),
                        't' => bytes.push(b'\t'),
                        'v' => bytes.push(0x0b),
                        '\\' | '\'' | '"' | '?' => push_char(&mut bytes, e),
                        '0'..='7' => {
                            let mut value = e.to_digit(8).unwrap_or(0);
                            for _ in 0..2 {
                                match self.peek(0).and_then(|c| c.to_digit(8)) {
                                    Some(d) => {
                                        value = value * 8 + d;
                                        self.at += 1;
                                    }
                                    None => break,
                                }
                            }
                            bytes.push((value & 0xFF) as u8);
                        }
                        'x' => {
                            let value = self.hex_digits(2);
                            match value {
                                Some(v) => bytes.push(v as u8),
                                None => bytes.extend_from_slice(b"\\x"),
                            }
                        }
                        'u' | 'U' => {
                            let max = if e == 'u' { 4 } else { 8 };
                            match self.hex_digits(max).and_then(char::from_u32) {
                                Some(c) => push_char(&mut bytes, c),
                                None => {
                                    bytes.push(b'\\');
                                    push_char(&mut bytes, e);
                                }
                            }
                        }
                        'c' => {
                            // Control character: `\cA` is 0x01.
                            if let Some(c) = self.peek(0) {
                                self.at += 1;
                                bytes.push((c as u32 & 0x1f) as u8);
                            }
                        }
                        other => {
                            bytes.push(b'\\');
                            push_char(&mut bytes, other);
                        }
                    }
                }
                Some(c) => {
                    push_char(&mut bytes, c);
                    self.at += 1;
                }
            }
        }
        // Octal and hex escapes can make bytes that are not UTF-8: shown as U+FFFD.
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn hex_digits(&mut self, max: usize) -> Option<u32> {
        let mut value = 0u32;
        let mut n = 0;
        while n < max {
            match self.peek(0).and_then(|c| c.to_digit(16)) {
                Some(d) => {
                    value = value * 16 + d;
                    self.at += 1;
                    n += 1;
                }
                None => break,
            }
        }
        (n > 0).then_some(value)
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn unterminated(kind: &str, pos: SourcePos) -> ShellError {
    let message = match kind {
        "single" => "unterminated single-quoted string: the ' here is never closed",
        "double" => "unterminated double-quoted string: the \" here is never closed",
        "back" => "unterminated backquote: the ` here is never closed",
        _ => "unterminated $'…' string: the quote here is never closed",
    };
    ShellError {
        message: message.into(),
        pos,
    }
}

/// `cmd.exe`: first its own `^` escapes and continuations, then the C runtime's argument
/// splitting for each line.
fn cmd_split(chars: Vec<(char, SourcePos)>) -> Result<Vec<Command>, ShellError> {
    // Pass 1: remove `^` escapes; a `^` before a line end joins the lines. An escaped
    // character only escapes cmd's own reading: the program's runtime still sees it, so
    // `^\^"` is the runtime's `\"`, a literal quote.
    let mut unescaped: Vec<(char, SourcePos)> = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let (c, pos) = chars[i];
        if c == '^' {
            match chars.get(i + 1).map(|(c, _)| *c) {
                Some('\n') => {
                    i += 2;
                    continue;
                }
                Some('\r') if chars.get(i + 2).map(|(c, _)| *c) == Some('\n') => {
                    i += 3;
                    continue;
                }
                Some(next) => {
                    unescaped.push((next, chars[i + 1].1));
                    i += 2;
                    continue;
                }
                None => {
                    i += 1;
                    continue;
                }
            }
        }
        unescaped.push((c, pos));
        i += 1;
    }
    // Pass 2: the runtime's rules. `"` toggles quoting; 2n backslashes before a quote are n
    // backslashes, 2n+1 are n and a literal quote; `""` inside quotes is one quote.
    let mut commands = Vec::new();
    let mut current = Command::default();
    let mut word: Option<Word> = None;
    let mut quoted = false;
    let mut quote_pos = SourcePos { line: 1, column: 1 };
    let mut i = 0;
    while i < unescaped.len() {
        let (c, pos) = unescaped[i];
        match c {
            '\\' => {
                let mut n = 0;
                while i + n < unescaped.len() && unescaped[i + n].0 == '\\' {
                    n += 1;
                }
                let w = word.get_or_insert_with(|| Word {
                    text: String::new(),
                    pos,
                });
                if unescaped.get(i + n).map(|u| u.0) == Some('"') {
                    w.text.push_str(&"\\".repeat(n / 2));
                    if n % 2 == 1 {
                        w.text.push('"');
                        i += n + 1;
                    } else {
                        i += n;
                    }
                } else {
                    w.text.push_str(&"\\".repeat(n));
                    i += n;
                }
            }
            '"' => {
                let w = word.get_or_insert_with(|| Word {
                    text: String::new(),
                    pos,
                });
                if quoted && unescaped.get(i + 1).map(|u| u.0) == Some('"') {
                    w.text.push('"');
                    i += 2;
                    continue;
                }
                quoted = !quoted;
                quote_pos = pos;
                i += 1;
            }
            ' ' | '\t' | '\r' if !quoted => {
                if let Some(w) = word.take() {
                    current.words.push(w);
                }
                i += 1;
            }
            '\n' => {
                if quoted {
                    return Err(unterminated("double", quote_pos));
                }
                if let Some(w) = word.take() {
                    current.words.push(w);
                }
                if !current.words.is_empty() {
                    commands.push(std::mem::take(&mut current));
                }
                i += 1;
            }
            _ => {
                word.get_or_insert_with(|| Word {
                    text: String::new(),
                    pos,
                })
                .text
                .push(c);
                i += 1;
            }
        }
    }
    if quoted {
        return Err(unterminated("double", quote_pos));
    }
    if let Some(w) = word.take() {
        current.words.push(w);
    }
    if !current.words.is_empty() {
        commands.push(current);
    }
    Ok(commands)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<Vec<String>> {
        split(text, dialect(text))
            .expect("parses")
            .into_iter()
            .map(|c| c.words.into_iter().map(|w| w.text).collect())
            .collect()
    }

    #[test]
    fn posix_quoting() {
        assert_eq!(
            words(r#"curl 'a b' "c \"d\" \x $" e\ f ''"#),
            [vec!["curl", "a b", "c \"d\" \\x $", "e f", ""]]
        );
        assert_eq!(
            words("curl $'a\\tb\\x41\\101\\u00e9\\'' x"),
            [vec!["curl", "a\tbAAé'", "x"]]
        );
        assert_eq!(
            words("curl -H \"A: $TOKEN\" ${HOST}/x"),
            [vec!["curl", "-H", "A: ${env.TOKEN}", "${env.HOST}/x"]]
        );
    }

    #[test]
    fn continuations_comments_and_separators() {
        let text = "# list\ncurl -X POST \\\n  http://a/ # trailing\ncurl http://b/ && echo ok; curl http://c | jq .\n";
        assert_eq!(
            words(text),
            [
                vec!["curl", "-X", "POST", "http://a/"],
                vec!["curl", "http://b/"],
                vec!["echo", "ok"],
                vec!["curl", "http://c"],
                vec!["jq", "."],
            ]
        );
        assert_eq!(words("curl x > out.txt -s"), [vec!["curl", "x", "-s"]]);
    }

    #[test]
    fn unterminated_quotes_point_at_the_quote() {
        let err = split("curl -H 'x\n  -d y", Dialect::Posix).expect_err("bad");
        assert_eq!(err.pos, SourcePos { line: 1, column: 9 });
        assert!(err.message.contains("single"));
        let err = split("curl \"x", Dialect::Posix).expect_err("bad");
        assert_eq!(err.pos, SourcePos { line: 1, column: 6 });
    }

    #[test]
    fn windows_cmd() {
        let text = "curl ^\"https://a/x?q=1^&r=2^\" ^\r\n  -H ^\"accept: */*^\" ^\n  --data-raw ^\"^{^\\^\"a^\\^\":1^}^\"\n";
        assert_eq!(dialect(text), Dialect::Cmd);
        assert_eq!(
            words(text),
            [vec![
                "curl",
                "https://a/x?q=1&r=2",
                "-H",
                "accept: */*",
                "--data-raw",
                "{\"a\":1}"
            ]]
        );
        assert_eq!(
            words("curl \"a \"\"b\"\" c\" d ^\n e"),
            [vec!["curl", "a \"b\" c", "d", "e"]]
        );
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        for text in [
            "", "\\", "$", "${", "$(", "$'", "$'\\", "$'\\x", "$'\\u", "'", "\"", "`", "^", "^\"",
            "a\\", "\"\\", "$'\\c", "<", ">", "|", "&&", "$((1+1))", "\"$\"", "${a:-b}",
        ] {
            let _ = split(text, Dialect::Posix);
            let _ = split(text, Dialect::Cmd);
        }
    }
}
