//! Just enough URL structure for importing: scheme, authority, path and query, without
//! normalising anything, so that a recorded URL is replayed byte for byte.

/// The parts of an absolute URL, borrowed from it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Parts<'a> {
    pub(crate) scheme: &'a str,
    pub(crate) authority: &'a str,
    pub(crate) path: &'a str,
}

/// Splits `url`; `None` unless it is absolute with a scheme and a non-empty host and has no
/// whitespace.
pub(crate) fn split(url: &str) -> Option<Parts<'_>> {
    let whitespace = if url.is_ascii() {
        // `char::is_whitespace` for ASCII.
        url.bytes().any(|b| matches!(b, b' ' | b'\t'..=b'\r'))
    } else {
        url.chars().any(char::is_whitespace)
    };
    if whitespace {
        return None;
    }
    let (scheme, rest) = url.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return None;
    }
    let tail = &rest[end..];
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    Some(Parts {
        scheme,
        authority,
        path: &tail[..path_end],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_without_normalising() {
        let p = split("https://u@api.example.com:8443/a/b%20c?q=1#f").expect("url");
        assert_eq!(p.scheme, "https");
        assert_eq!(p.authority, "u@api.example.com:8443");
        assert_eq!(p.path, "/a/b%20c");
        assert_eq!(split("http://h").expect("url").path, "");
    }

    #[test]
    fn rejects_what_cannot_be_requested() {
        assert!(split("/relative/path").is_none());
        assert!(split("http:///nohost").is_none());
        assert!(split("http://exa mple.com/").is_none());
        assert!(split("ht tp://x/").is_none());
        for space in ["\t", "\n", "\u{b}", "\u{c}", "\r", "\u{a0}", "\u{2028}"] {
            assert!(split(&format!("http://x/{space}")).is_none(), "{space:?}");
        }
        assert!(split("http://x/\u{1}\u{e}\u{1f}é").is_some());
    }
}
