//! A virtual user's cookie jar: what a browser would keep between requests, reduced to what
//! replays need (domain and path matching, `Secure`, deletion by `Max-Age=0` or a past
//! `Expires`). Each virtual user owns one; the lanes of a paced user (`--pace recorded`)
//! keep theirs in step through a journal.

/// One stored cookie.
#[derive(Debug, Clone)]
struct Cookie {
    name: String,
    value: String,
    domain: String,
    host_only: bool,
    path: String,
    secure: bool,
}

/// The jar.
#[derive(Debug, Default)]
pub(crate) struct Jar {
    cookies: Vec<Cookie>,
    /// The `Set-Cookie` values stored since the last [`Jar::take_journal`], kept only when
    /// the jar mirrors one that several lanes of a paced user share.
    journal: Option<Vec<(String, String, String)>>,
}

impl Jar {
    /// A jar that keeps a journal of what it stores (see [`Jar::take_journal`]).
    pub(crate) fn journaled() -> Jar {
        Jar {
            cookies: Vec::new(),
            journal: Some(Vec::new()),
        }
    }

    /// Makes this jar's cookies those of `other`.
    pub(crate) fn copy_from(&mut self, other: &Jar) {
        self.cookies.clone_from(&other.cookies);
    }

    /// What was stored since the last call, as `(Set-Cookie value, host, request path)`.
    pub(crate) fn take_journal(&mut self) -> Vec<(String, String, String)> {
        self.journal
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }

    /// Stores a `Set-Cookie` value received from `host` for a request to `path`.
    pub(crate) fn store(&mut self, header: &str, host: &str, request_path: &str) {
        if let Some(j) = &mut self.journal {
            j.push((
                header.to_string(),
                host.to_string(),
                request_path.to_string(),
            ));
        }
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
            return;
        };
        let name = name.trim().to_string();
        if name.is_empty() {
            return;
        }
        let mut cookie = Cookie {
            name,
            value: value.trim().trim_matches('"').to_string(),
            domain: host.to_ascii_lowercase(),
            host_only: true,
            path: default_path(request_path),
            secure: false,
        };
        let mut delete = false;
        for attr in parts {
            let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "domain" if !v.is_empty() => {
                    let d = v.trim_start_matches('.').to_ascii_lowercase();
                    if domain_matches(host, &d) {
                        cookie.domain = d;
                        cookie.host_only = false;
                    } else {
                        return;
                    }
                }
                "path" if v.starts_with('/') => cookie.path = v.to_string(),
                "secure" => cookie.secure = true,
                "max-age" => delete = v.parse::<i64>().is_ok_and(|s| s <= 0),
                "expires" => {
                    if let Ok(t) = chrono::DateTime::parse_from_rfc2822(&v.replace('-', " ")) {
                        delete |= t < chrono::Utc::now();
                    }
                }
                _ => {}
            }
        }
        self.cookies.retain(|c| {
            !(c.name == cookie.name && c.domain == cookie.domain && c.path == cookie.path)
        });
        if !delete {
            self.cookies.push(cookie);
        }
    }

    /// The cookies to send to `host` for `path`, as name/value pairs.
    pub(crate) fn matching<'a>(
        &'a self,
        host: &'a str,
        path: &'a str,
        https: bool,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.cookies
            .iter()
            .filter(move |c| {
                (if c.host_only {
                    c.domain.eq_ignore_ascii_case(host)
                } else {
                    domain_matches(host, &c.domain)
                }) && path_matches(path, &c.path)
                    && (https || !c.secure)
            })
            .map(|c| (c.name.as_str(), c.value.as_str()))
    }
}

fn domain_matches(host: &str, domain: &str) -> bool {
    let host = host.to_ascii_lowercase();
    host == domain || host.ends_with(&format!(".{domain}"))
}

fn path_matches(path: &str, cookie_path: &str) -> bool {
    path == cookie_path
        || (path.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || path[cookie_path.len()..].starts_with('/')))
}

fn default_path(request_path: &str) -> String {
    let path = request_path.split('?').next().unwrap_or("/");
    match path.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => path[..i].to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_follow_domain_path_and_deletion() {
        let mut jar = Jar::default();
        jar.store("sid=abc; Path=/; HttpOnly", "api.test", "/login");
        jar.store("pref=1; Path=/app", "api.test", "/login");
        jar.store("wide=w; Domain=test", "api.test", "/");
        jar.store("evil=1; Domain=other.org", "api.test", "/");
        let got: Vec<_> = jar.matching("api.test", "/app/x", false).collect();
        assert_eq!(got, vec![("sid", "abc"), ("pref", "1"), ("wide", "w")]);
        let other: Vec<_> = jar.matching("www.test", "/", false).collect();
        assert_eq!(other, vec![("wide", "w")]);
        jar.store("sid=; Max-Age=0; Path=/", "api.test", "/logout");
        assert!(
            jar.matching("api.test", "/", false)
                .all(|(n, _)| n != "sid")
        );
    }
}
