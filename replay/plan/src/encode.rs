//! The percent-encoding rules every importer and the engine share, as `percent-encoding`
//! sets: one place decides which bytes a URL component, a form body or a signature keeps.

use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};

/// RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`) stay; every other byte is
/// `%XX`. A path segment or query component as curl, OpenAPI tools and AWS SigV4 write it.
pub const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// [`UNRESERVED`], with `/` kept: a whole path as SigV4 canonicalises it.
pub const UNRESERVED_PATH: &AsciiSet = &UNRESERVED.remove(b'/');

/// What a browser's and Java's `application/x-www-form-urlencoded` serializer keeps:
/// `A-Z a-z 0-9 * - . _` (and a space, written as `+` by [`form`]); `~` is encoded.
pub const WHATWG_FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b' ');

/// What Python's `urlencode` keeps: the unreserved characters (and a space, written as `+`
/// by [`form`]).
pub const PYTHON_FORM: &AsciiSet = &UNRESERVED.remove(b' ');

/// Bytes a URL cannot carry as they are: controls, space, `"<>\^`{|}` and every byte past
/// ASCII. What `requests` (`requote_uri`) and Postman encode in a URL they are given.
pub const UNSAFE_IN_URL: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// `s` with every byte of `set` as `%XX` (upper-case hex), appended to `out`.
pub fn push(s: &str, set: &'static AsciiSet, out: &mut String) {
    out.extend(utf8_percent_encode(s, set));
}

/// `s` with every byte of `set` as `%XX` (upper-case hex).
pub fn encode(s: &str, set: &'static AsciiSet) -> String {
    utf8_percent_encode(s, set).to_string()
}

/// Bytes (not necessarily UTF-8) with every byte of `set` as `%XX`, appended to `out`.
pub fn push_bytes(bytes: &[u8], set: &'static AsciiSet, out: &mut String) {
    out.extend(percent_encoding::percent_encode(bytes, set));
}

/// A form component: the bytes of `set` (a form set that keeps the space) as `%XX`, a space
/// as `+`, appended to `out`.
pub fn push_form(s: &str, set: &'static AsciiSet, out: &mut String) {
    for chunk in utf8_percent_encode(s, set) {
        if chunk.contains(' ') {
            out.extend(chunk.chars().map(|c| if c == ' ' { '+' } else { c }));
        } else {
            out.push_str(chunk);
        }
    }
}

/// [`push_form`] into a new string.
pub fn form(s: &str, set: &'static AsciiSet) -> String {
    let mut out = String::with_capacity(s.len());
    push_form(s, set, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "a b+c*d~e/f?g=h&i%j-k.l_m\u{e9}\"<>";

    #[test]
    fn unreserved_keeps_only_letters_digits_and_four_marks() {
        assert_eq!(
            encode(SAMPLE, UNRESERVED),
            "a%20b%2Bc%2Ad~e%2Ff%3Fg%3Dh%26i%25j-k.l_m%C3%A9%22%3C%3E"
        );
        assert_eq!(encode("/a b/c~", UNRESERVED_PATH), "/a%20b/c~");
    }

    #[test]
    fn forms_write_a_space_as_plus_and_differ_on_star_and_tilde() {
        assert_eq!(
            form(SAMPLE, PYTHON_FORM),
            "a+b%2Bc%2Ad~e%2Ff%3Fg%3Dh%26i%25j-k.l_m%C3%A9%22%3C%3E"
        );
        assert_eq!(
            form(SAMPLE, WHATWG_FORM),
            "a+b%2Bc*d%7Ee%2Ff%3Fg%3Dh%26i%25j-k.l_m%C3%A9%22%3C%3E"
        );
    }

    #[test]
    fn unsafe_in_url_leaves_url_syntax_alone() {
        assert_eq!(
            encode("http://h/p a?q={x}&r=\u{e9}#f", UNSAFE_IN_URL),
            "http://h/p%20a?q=%7Bx%7D&r=%C3%A9#f"
        );
        let mut out = String::new();
        push_bytes(&[0xff, b'a', b' '], UNRESERVED, &mut out);
        assert_eq!(out, "%FFa%20");
    }
}
