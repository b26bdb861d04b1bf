//! Block scalars whose first line starts with a tab after its indentation.
//!
//! ```yaml
//! description: |-
//!     <TAB>
//!     Date and time of travel.
//! ```
//!
//! YAML reads the tab as the scalar's first character: the indentation is the spaces before it.
//! libyaml (the parser behind serde_norway), while it guesses that indentation, refuses the tab
//! ("found a tab character where an indentation space is expected"); other readers such as
//! js-yaml accept it, and published descriptions carry it. Given the indentation explicitly
//! (`|-2`), libyaml reads the same scalar. So, on that error only, [`explicit_indents`] writes
//! the indicator into each such header and the text is parsed once more.

/// The text with an explicit indentation indicator on every block scalar header (`key: |`,
/// `key: >-`, ...) that has none and whose first non-blank line starts with spaces then a tab;
/// `None` when there is no such header. Only headers that end a `key:` line of a block mapping
/// are changed, where the scalar's indentation is counted from the key's.
pub(crate) fn explicit_indents(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = String::with_capacity(text.len() + 64);
    let mut changed = false;
    for (i, line) in lines.iter().enumerate() {
        match indicator_for(line, &lines[i + 1..]) {
            Some((at, digit)) => {
                out.push_str(&line[..at]);
                out.push(digit);
                out.push_str(&line[at..]);
                changed = true;
            }
            None => out.push_str(line),
        }
    }
    changed.then_some(out)
}

/// Where to insert the indentation digit in a header `line` (just after `|` or `>`) and which
/// digit, when the scalar's first non-blank line in `rest` starts with a tab after its spaces.
fn indicator_for(line: &str, rest: &[&str]) -> Option<(usize, char)> {
    let body = line.trim_end_matches(['\n', '\r']);
    let parent = body.len() - body.trim_start_matches(' ').len();
    let key_line = &body[parent..];
    if key_line.starts_with(['-', '#', '?']) {
        return None;
    }
    // The value after the last `: ` (quoted keys and plain keys alike end there).
    let colon = key_line.rfind(": ")?;
    let value = key_line[colon + 2..].trim_start();
    let value = value.split(" #").next().unwrap_or(value).trim_end();
    let mut chars = value.chars();
    let style = chars.next().filter(|c| matches!(c, '|' | '>'))?;
    if !chars.all(|c| matches!(c, '+' | '-')) || value.len() > 2 {
        // Not a header, or one that already names its indentation.
        return None;
    }
    let first = rest
        .iter()
        .map(|l| l.trim_end_matches(['\n', '\r']))
        .find(|l| !l.trim_start_matches(' ').is_empty())?;
    let indent = first.len() - first.trim_start_matches(' ').len();
    if !first[indent..].starts_with('\t') || indent <= parent {
        return None;
    }
    let digit = char::from_digit(u32::try_from(indent - parent).ok()?, 10)?;
    if digit == '0' {
        return None;
    }
    // `body` is a prefix of `line`: its offsets are the line's.
    let after = &key_line[colon + 2..];
    let at = parent + colon + 2 + (after.len() - after.trim_start().len());
    debug_assert_eq!(line[at..].chars().next(), Some(style));
    Some((at + 1, digit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tab_first_line_gets_an_explicit_indentation() {
        let text =
            "a:\n  description: |-\n    \t\n    Text.\n  b: >\n    plain\n  c: |\n\n     \tx\n";
        let fixed = explicit_indents(text).expect("changed");
        assert_eq!(
            fixed,
            "a:\n  description: |2-\n    \t\n    Text.\n  b: >\n    plain\n  c: |3\n\n     \tx\n"
        );
        assert_eq!(explicit_indents("a: |\n  text\n"), None);
        assert_eq!(explicit_indents("a: |2\n  \ttext\n"), None);
        assert_eq!(explicit_indents("- |\n  \ttext\n"), None);
    }

    #[test]
    fn the_parser_reads_such_a_scalar_as_yaml_means_it() {
        let text = "openapi: 3.1.0\ninfo:\n  title: t\n  description: |-\n    \t\n    Date of travel.\n    * Format: x\n  version: '1'\npaths: {}\n";
        assert!(serde_norway::from_str::<serde_json::Value>(text).is_err());
        let v = super::super::refs::parse("t.yaml", text).expect("parsed");
        assert_eq!(v["info"]["description"], "\t\nDate of travel.\n* Format: x");
        assert_eq!(v["info"]["version"], "1");
    }

    #[test]
    fn a_tab_elsewhere_is_refused_with_what_to_do() {
        let text = "openapi: 3.1.0\nx:\n  - |\n    \tt\n";
        let err = super::super::refs::parse("t.yaml", text).expect_err("tab");
        let err = err.to_string();
        assert!(err.contains("t.yaml:"), "{err}");
        assert!(err.contains("spaces only"), "{err}");
    }
}
