//! Which requests an import keeps: `--include`/`--exclude` regexes over the full URL (and, for
//! API descriptions, over operation ids and tags), `--tag` and `--skip-static`. Shared by every
//! importer. Also the ignore files `--include-from`/`--exclude-from` (one regex a line) and
//! `--drop-header-from` (one header name a line), which `ld record` reads too.

use regex::Regex;

use crate::{Error, Result};

/// Include and exclude patterns plus the static-asset rule.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    skip_static: bool,
    tags: Vec<String>,
}

/// Why a request was dropped by the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drop {
    NotIncluded,
    Excluded,
    Static,
}

impl Drop {
    /// The reason as the summary counts it.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Drop::NotIncluded => "not matching --include",
            Drop::Excluded => "matching --exclude",
            Drop::Static => "static assets (--skip-static)",
        }
    }
}

impl Filter {
    /// Compiles the patterns (Rust `regex` syntax, searched anywhere in the URL).
    pub fn new(include: &[String], exclude: &[String], skip_static: bool) -> Result<Filter> {
        let compile = |flag: &str, pattern: &String| {
            Regex::new(pattern).map_err(|e| {
                Error::Option(format!(
                    "--{flag} {pattern:?} is not a valid regular expression: {e}"
                ))
            })
        };
        Ok(Filter {
            include: include
                .iter()
                .map(|p| compile("include", p))
                .collect::<Result<_>>()?,
            exclude: exclude
                .iter()
                .map(|p| compile("exclude", p))
                .collect::<Result<_>>()?,
            skip_static,
            tags: Vec::new(),
        })
    }

    /// Adds the patterns of an ignore file (see [`patterns_from_file`]) to the `--include`
    /// ones (`exclude` false) or the `--exclude` ones.
    pub fn with_patterns(mut self, exclude: bool, patterns: Vec<Regex>) -> Filter {
        if exclude {
            self.exclude.extend(patterns);
        } else {
            self.include.extend(patterns);
        }
        self
    }

    /// Keeps only operations (or Postman folders) carrying one of `tags`, compared without
    /// regard to case.
    pub fn with_tags(mut self, tags: &[String]) -> Filter {
        self.tags = tags.to_vec();
        self
    }

    /// Decides on an operation of an API description: the patterns are tried on the URL and on
    /// each label (operation id, tags, folder names); `tags` are checked against `--tag`.
    /// Returns the reason to drop it, as the summary counts it.
    pub(crate) fn check_labels(
        &self,
        url: &str,
        labels: &[&str],
        tags: &[&str],
    ) -> Option<&'static str> {
        if !self.tags.is_empty()
            && !tags
                .iter()
                .any(|t| self.tags.iter().any(|w| w.eq_ignore_ascii_case(t)))
        {
            return Some("not tagged with --tag");
        }
        let matches = |r: &Regex| r.is_match(url) || labels.iter().any(|l| r.is_match(l));
        if !self.include.is_empty() && !self.include.iter().any(matches) {
            return Some("not matching --include");
        }
        if self.exclude.iter().any(matches) {
            return Some("matching --exclude");
        }
        None
    }

    /// Decides on one request. `mime` is the response content type when known, `resource_type`
    /// the browser's classification (`_resourceType`) when recorded.
    pub(crate) fn check(
        &self,
        url: &str,
        mime: Option<&str>,
        resource_type: Option<&str>,
    ) -> Option<Drop> {
        if !self.include.is_empty() && !self.include.iter().any(|r| r.is_match(url)) {
            return Some(Drop::NotIncluded);
        }
        if self.exclude.iter().any(|r| r.is_match(url)) {
            return Some(Drop::Excluded);
        }
        if self.skip_static && is_static(url, mime, resource_type) {
            return Some(Drop::Static);
        }
        None
    }
}

/// The lines of an ignore file that hold something: 1-based line number, column of the first
/// character kept, and the text without surrounding blanks. Blank lines and lines starting with
/// `#` are skipped.
fn meaningful_lines(text: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines().enumerate().filter_map(|(i, line)| {
        let kept = line.trim();
        if kept.is_empty() || kept.starts_with('#') {
            return None;
        }
        let column = line[..line.len() - line.trim_start().len()].chars().count() + 1;
        Some((i + 1, column, kept))
    })
}

/// Reads an ignore file for `--include-from` or `--exclude-from` (`name` is shown in errors):
/// one regex a line (Rust `regex` syntax, searched anywhere in the URL), blank lines and `#`
/// comments skipped. An invalid regex is an error at its file, line and column.
pub fn patterns_from_file(name: &str, text: &str) -> Result<Vec<Regex>> {
    meaningful_lines(text)
        .map(|(line, column, pattern)| {
            Regex::new(pattern).map_err(|e| {
                // The regex crate's error says what is wrong but not where; its parser does.
                let (at, what) = match regex_syntax::ast::parse::Parser::new().parse(pattern) {
                    Err(syntax) => (syntax.span().start.column, syntax.kind().to_string()),
                    Ok(_) => (1, e.to_string()),
                };
                Error::Option(ld_plan::render_source_error(
                    name,
                    text.strip_prefix('\u{feff}').unwrap_or(text),
                    ld_plan::SourcePos {
                        line,
                        column: column + at - 1,
                    },
                    &format!(
                        "invalid regular expression: {what}; expected one regex a line (Rust \
                         regex syntax; escape a literal `.`, `?` or `(` with `\\`)"
                    ),
                ))
            })
        })
        .collect()
}

/// Reads a file of header names for `--drop-header-from`: one name a line, blank lines and `#`
/// comments skipped; a trailing `:` is allowed. The names come back lowercased.
pub fn header_names_from_file(name: &str, text: &str) -> Result<Vec<String>> {
    meaningful_lines(text)
        .map(|(line, column, header)| {
            let header = header.strip_suffix(':').unwrap_or(header).trim_end();
            match header.char_indices().find(|&(_, c)| !is_token_char(c)) {
                None => Ok(header.to_ascii_lowercase()),
                Some((at, c)) => Err(Error::Option(ld_plan::render_source_error(
                    name,
                    text.strip_prefix('\u{feff}').unwrap_or(text),
                    ld_plan::SourcePos {
                        line,
                        column: column + header[..at].chars().count(),
                    },
                    &format!(
                        "{c:?} cannot be part of a header name; expected one header name a line \
                         (such as `X-Request-Id`)"
                    ),
                ))),
            }
        })
        .collect()
}

/// A header name given on the command line (`--drop-header`), lowercased.
pub fn header_name(flag: &str, name: &str) -> Result<String> {
    let header = name.trim();
    if header.is_empty() || !header.chars().all(is_token_char) {
        return Err(Error::Option(format!(
            "--{flag} {name:?} is not a header name; give the name alone, such as X-Request-Id"
        )));
    }
    Ok(header.to_ascii_lowercase())
}

/// RFC 9110's `tchar`.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

const STATIC_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "ico", "webp", "avif", "bmp", "tif", "tiff", "woff",
    "woff2", "ttf", "otf", "eot", "css", "js", "mjs", "map", "mp4", "webm", "ogg", "ogv", "mp3",
    "wav", "flac", "m4a", "aac", "mov",
];

const STATIC_RESOURCE_TYPES: &[&str] = &["image", "font", "stylesheet", "script", "media"];

fn is_static(url: &str, mime: Option<&str>, resource_type: Option<&str>) -> bool {
    if resource_type.is_some_and(|t| STATIC_RESOURCE_TYPES.contains(&t)) {
        return true;
    }
    if let Some(mime) = mime {
        let essence = mime
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if essence.starts_with("image/")
            || essence.starts_with("font/")
            || essence.starts_with("audio/")
            || essence.starts_with("video/")
            || essence == "text/css"
            || essence.contains("javascript")
            || essence.contains("ecmascript")
            || essence.starts_with("application/font")
            || essence.starts_with("application/x-font")
            || essence == "application/vnd.ms-fontobject"
        {
            return true;
        }
    }
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default();
    match last.rsplit_once('.') {
        Some((_, ext)) => STATIC_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str], skip_static: bool) -> Filter {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Filter::new(&own(include), &own(exclude), skip_static).expect("valid")
    }

    #[test]
    fn include_then_exclude() {
        let f = filter(&[r"api\.example\.com"], &[r"\.svg$"], false);
        assert_eq!(f.check("https://api.example.com/v1/x", None, None), None);
        assert_eq!(
            f.check("https://api.example.com/logo.svg", None, None),
            Some(Drop::Excluded)
        );
        assert_eq!(
            f.check("https://cdn.example.com/v1/x", None, None),
            Some(Drop::NotIncluded)
        );
        assert_eq!(filter(&[], &[], false).check("http://a/", None, None), None);
    }

    #[test]
    fn static_by_type_extension_and_resource() {
        let f = filter(&[], &[], true);
        assert_eq!(
            f.check("http://a/x.woff2?v=3", None, None),
            Some(Drop::Static)
        );
        assert_eq!(
            f.check("http://a/img", Some("image/png"), None),
            Some(Drop::Static)
        );
        assert_eq!(
            f.check("http://a/s", Some("text/javascript; charset=utf-8"), None),
            Some(Drop::Static)
        );
        assert_eq!(
            f.check("http://a/s", None, Some("stylesheet")),
            Some(Drop::Static)
        );
        assert_eq!(
            f.check(
                "http://a/api/x.json",
                Some("application/json"),
                Some("fetch")
            ),
            None
        );
    }

    #[test]
    fn ignore_file_skips_comments_and_blanks() {
        let text = "# static\n\n  \\.svg$  \n\t# indented comment\n/health\n";
        let patterns = patterns_from_file("x.ignore", text).expect("valid");
        assert_eq!(patterns.len(), 2);
        assert_eq!(patterns[0].as_str(), r"\.svg$");
        let f = Filter::default().with_patterns(true, patterns);
        assert_eq!(
            f.check("http://a/logo.svg", None, None),
            Some(Drop::Excluded)
        );
        assert_eq!(f.check("http://a/health", None, None), Some(Drop::Excluded));
        assert_eq!(f.check("http://a/api", None, None), None);
        let f = filter(&[], &[], false)
            .with_patterns(false, patterns_from_file("i", "api\n").expect("valid"));
        assert_eq!(f.check("http://a/x", None, None), Some(Drop::NotIncluded));
        assert_eq!(f.check("http://a/api", None, None), None);
    }

    #[test]
    fn include_file_adds_to_include_flags() {
        let f = filter(&["/a"], &[], false)
            .with_patterns(false, patterns_from_file("i", "/b\n").expect("valid"));
        assert_eq!(f.check("http://h/a", None, None), None);
        assert_eq!(f.check("http://h/b", None, None), None);
        assert_eq!(f.check("http://h/c", None, None), Some(Drop::NotIncluded));
    }

    #[test]
    fn bad_pattern_in_a_file_points_at_line_and_column() {
        let err = patterns_from_file("rules.ignore", "# ok\nfine\n  api/(v1\n")
            .expect_err("unclosed group");
        let text = err.to_string();
        assert!(text.contains("--> rules.ignore:3:7"), "{text}");
        assert!(text.contains("unclosed group"), "{text}");
        assert!(text.contains("expected one regex a line"), "{text}");
        let err = patterns_from_file("r", "a{2,1}\n").expect_err("bad repetition");
        assert!(err.to_string().contains("--> r:1:"), "{err}");
    }

    #[test]
    fn header_names_file() {
        let names = header_names_from_file("h", "# noise\nX-Request-Id\n  traceparent:\n\n")
            .expect("valid");
        assert_eq!(names, ["x-request-id", "traceparent"]);
        let err = header_names_from_file("h", "ok\nX Bad\n").expect_err("space");
        assert!(err.to_string().contains("--> h:2:2"), "{err}");
        assert_eq!(header_name("drop-header", "X-A").expect("ok"), "x-a");
        assert!(header_name("drop-header", "X-A: 1").is_err());
    }

    #[test]
    fn bad_pattern_names_the_flag() {
        let err = Filter::new(&["(".into()], &[], false).expect_err("bad");
        assert!(err.to_string().starts_with("--include \"(\""), "{err}");
    }
}
