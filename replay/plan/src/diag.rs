//! Rendering of errors that point into a source text, in the style of compilers and hurl:
//!
//! ```text
//! error: expected `,` or `]`
//!   --> recording.har:12:7
//!    |
//! 12 |       "url": "http://x" "
//!    |       ^
//! ```

/// A 1-based line and column in a source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourcePos {
    pub line: usize,
    pub column: usize,
}

/// Formats `message` with the file name, the offending line of `source` and a caret under `pos`.
/// A position past the end of the text (a truncated file) points just after its last character.
pub fn render_source_error(file: &str, source: &str, pos: SourcePos, message: &str) -> String {
    let line_text = source
        .lines()
        .nth(pos.line.saturating_sub(1))
        .unwrap_or_default();
    // Long lines (minified JSON) are cut around the column so the caret stays readable.
    let col = pos.column.max(1);
    let chars: Vec<char> = line_text.chars().collect();
    let start = col.saturating_sub(60).min(chars.len());
    let end = (col + 60).min(chars.len());
    let shown: String = chars[start..end].iter().collect();
    let prefix = if start > 0 { "…" } else { "" };
    let suffix = if end < chars.len() { "…" } else { "" };
    let caret_at = col - 1 - start + prefix.chars().count();
    let gutter = pos.line.to_string().len();
    let pad = " ".repeat(gutter);
    format!(
        "{message}\n{pad}--> {file}:{line}:{column}\n{pad} |\n{line} | {prefix}{shown}{suffix}\n{pad} | {caret}^",
        line = pos.line,
        column = pos.column,
        caret = " ".repeat(caret_at),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_sits_under_the_column() {
        let text = "{\n  \"a\": 1,\n  \"b\" 2\n}";
        let out = render_source_error(
            "x.json",
            text,
            SourcePos { line: 3, column: 7 },
            "expected `:`",
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], " --> x.json:3:7");
        assert_eq!(lines[3], "3 |   \"b\" 2");
        let caret = lines[4].find('^').expect("caret");
        let source_col = lines[3].find("2").expect("digit");
        assert_eq!(caret, source_col);
    }

    #[test]
    fn long_lines_are_cut_around_the_column() {
        let text = "x".repeat(500);
        let out = render_source_error(
            "m.json",
            &text,
            SourcePos {
                line: 1,
                column: 300,
            },
            "bad",
        );
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[3].chars().count() < 140, "{}", lines[3]);
        assert!(lines[4].ends_with('^'));
    }
}
