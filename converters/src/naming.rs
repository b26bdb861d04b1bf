//! Readable task names: the method and the path, without the query string, with identifier-like
//! path segments (numbers, UUIDs, long hex) shown as `{id}`. A recording that fetched
//! `/items/1` … `/items/500` and `/search?q=…` many times gives two names, not hundreds, so
//! per-name statistics and reports stay meaningful.

/// `GET /items/{id}` for `GET https://host/items/42?x=1`.
pub(crate) fn task_name(method: &str, url: &str) -> String {
    let path = crate::url_parts::split(url).map(|u| u.path).unwrap_or("/");
    task_name_of_path(method, path)
}

/// [`task_name`] for a URL whose path is `path`.
pub(crate) fn task_name_of_path(method: &str, path: &str) -> String {
    let path = if path.is_empty() { "/" } else { path };
    let mut name = String::with_capacity(method.len() + 1 + path.len());
    name.extend(method.chars().map(|c| c.to_ascii_uppercase()));
    name.push(' ');
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            name.push('/');
        }
        name.push_str(if is_identifier(segment) {
            "{id}"
        } else {
            segment
        });
    }
    name
}

fn is_identifier(segment: &str) -> bool {
    if segment.is_empty() {
        return false;
    }
    let all_digits = segment.bytes().all(|b| b.is_ascii_digit());
    let hex = segment.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    let has_digit = segment.bytes().any(|b| b.is_ascii_digit());
    let uuid_like =
        segment.len() == 36 && hex && segment.bytes().filter(|b| *b == b'-').count() == 4;
    all_digits || uuid_like || (hex && has_digit && segment.len() >= 16)
}

#[cfg(test)]
mod tests {
    use super::task_name;

    #[test]
    fn query_variants_share_a_name() {
        assert_eq!(task_name("get", "http://h/search?q=a"), "GET /search");
        assert_eq!(
            task_name("get", "http://h/search?q=b&page=2"),
            "GET /search"
        );
    }

    #[test]
    fn identifiers_are_collapsed() {
        assert_eq!(
            task_name("delete", "http://h/api/items/7"),
            "DELETE /api/items/{id}"
        );
        assert_eq!(
            task_name("get", "http://h/u/3f2504e0-4f89-11d3-9a0c-0305e82c3301/x"),
            "GET /u/{id}/x"
        );
        assert_eq!(task_name("get", "http://h/v2/users"), "GET /v2/users");
        assert_eq!(task_name("get", "http://h"), "GET /");
    }
}
