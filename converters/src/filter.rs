//! Which requests an import keeps: `--include`/`--exclude` regexes over the full URL (and, for
//! API descriptions, over operation ids and tags), `--tag` and `--skip-static`. Shared by every
//! importer.

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
    fn bad_pattern_names_the_flag() {
        let err = Filter::new(&["(".into()], &[], false).expect_err("bad");
        assert!(err.to_string().starts_with("--include \"(\""), "{err}");
    }
}
