//! What the streaming protocols (WebSocket, SSE) share: the connection they speak over (TCP,
//! or TLS over TCP with the task's client configuration), the parts of a URL they need, and
//! the task fields they read alike (`connection`, `method`, the URL, `headers`).

use std::net::IpAddr;
use std::sync::Arc;

use http::Uri;
use http::header::{HeaderName, HeaderValue};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_util::either::Either;

use super::{CompileCx, Failure, FailureKind};
use crate::template::{Scope, TValue, nearest, value_text};

/// Plain TCP or TLS over it.
pub(crate) type Io = Either<TcpStream, Box<tokio_rustls::client::TlsStream<TcpStream>>>;

/// A URL split for connecting: `secure` is `wss`/`https`.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) uri: Uri,
    pub(crate) secure: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `host[:port]` as the URL writes it, for the `Host` header.
    pub(crate) authority: String,
    /// Path and query.
    pub(crate) path: String,
}

impl Endpoint {
    /// Reads `url`, whose scheme must be `plain` or `secure` (`ws`/`wss`, `http`/`https`).
    pub(crate) fn parse(url: &str, plain: &str, secure: &str) -> Result<Endpoint, String> {
        let uri: Uri = url
            .trim()
            .parse()
            .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        let secure = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case(plain) => false,
            Some(s) if s.eq_ignore_ascii_case(secure) => true,
            Some(other) => {
                return Err(format!(
                    "unsupported URL scheme `{other}` in {url:?}: {plain} or {secure}"
                ));
            }
            None => return Err(format!("URL {url:?} is not absolute ({plain}://...)")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("URL {url:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.as_str().rsplit('@').next().unwrap_or("").to_string())
            .unwrap_or_else(|| host.clone());
        let path = uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("/")
            .to_string();
        Ok(Endpoint {
            uri,
            secure,
            host,
            port,
            authority,
            path,
        })
    }

    /// The path without the query, for cookies.
    pub(crate) fn cookie_path(&self) -> &str {
        self.uri.path()
    }
}

/// Connects to the endpoint; a TCP failure is `Connect`, a TLS one `Tls`.
pub(crate) async fn dial(ep: &Endpoint, tls: &Arc<rustls::ClientConfig>) -> Result<Io, Failure> {
    let tcp = match ep.host.parse::<IpAddr>() {
        Ok(ip) => TcpStream::connect((ip, ep.port)).await,
        Err(_) => TcpStream::connect((ep.host.as_str(), ep.port)).await,
    }
    .map_err(|e| {
        Failure::io(
            FailureKind::Connect,
            &format!("connect to {}:{}", ep.host, ep.port),
            &e,
        )
    })?;
    let _ = tcp.set_nodelay(true);
    if !ep.secure {
        return Ok(Either::Left(tcp));
    }
    let name = rustls::pki_types::ServerName::try_from(ep.host.clone()).map_err(|e| {
        Failure::new(
            FailureKind::Plan,
            format!("invalid TLS server name {:?}: {e}", ep.host),
        )
    })?;
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| {
            Failure::io(
                FailureKind::Tls,
                &format!("TLS handshake with {}:{}", ep.host, ep.port),
                &e,
            )
        })?;
    Ok(Either::Right(Box::new(stream)))
}

/// The `Cookie` header value for the endpoint: `own` (a task's header) then the jar's.
pub(crate) fn cookie_value(jar: &crate::cookies::Jar, ep: &Endpoint, own: Option<&str>) -> String {
    let mut parts: Vec<String> = own
        .filter(|c| !c.trim().is_empty())
        .map(|c| vec![c.trim().to_string()])
        .unwrap_or_default();
    for (k, v) in jar.matching(&ep.host, ep.cookie_path(), ep.secure) {
        parts.push(format!("{k}={v}"));
    }
    parts.join("; ")
}

/// Keeps the `Set-Cookie` values of a handshake or response in the user's jar.
pub(crate) fn store_cookies(
    jar: &mut crate::cookies::Jar,
    ep: &Endpoint,
    headers: &http::HeaderMap,
) {
    for v in headers.get_all(http::header::SET_COOKIE) {
        if let Ok(text) = v.to_str() {
            jar.store(text, &ep.host, ep.cookie_path());
        }
    }
}

/// The task's `connection` name: a user holds one connection (or stream) per name.
pub(crate) fn connection(cx: &CompileCx<'_, '_>) -> crate::Result<Arc<str>> {
    match cx.common.connection.as_deref() {
        None => Ok(Arc::from("default")),
        Some(s) if !s.is_empty() => Ok(Arc::from(s)),
        Some(_) => Err(cx.err("connection", "expected a connection name")),
    }
}

/// The task's `method` in lower case, `default` when absent; one of `known`.
pub(crate) fn method(
    cx: &CompileCx<'_, '_>,
    default: &str,
    known: &[&str],
) -> crate::Result<String> {
    let m = match &cx.task.method {
        None => return Ok(default.to_string()),
        Some(m) => m.to_ascii_lowercase(),
    };
    if known.contains(&m.as_str()) {
        return Ok(m);
    }
    Err(cx.err(
        "method",
        format!(
            "unknown method `{m}`{}: {}",
            nearest(&m, known.iter().copied()),
            known.join(", ")
        ),
    ))
}

/// The task's `request_url` (or `url`); one starting with `/` is relative to the user's
/// `host`, and without either the `host` itself is the URL (as LoadDensity's templates
/// default to it). A URL without placeholders is checked now.
pub(crate) fn url(
    cx: &mut CompileCx<'_, '_>,
    plain: &str,
    secure: &str,
) -> crate::Result<Option<TValue>> {
    let (key, url) = match (&cx.task.request_url, &cx.task.url) {
        (Some(u), _) => ("request_url", Some(u)),
        (None, u) => ("url", u.as_ref()),
    };
    let raw = match url {
        None => match cx.host {
            Some(h) if Endpoint::parse(h, plain, secure).is_ok() => h.to_string(),
            _ => return Ok(None),
        },
        Some(s) => match cx.host {
            Some(h) if s.starts_with('/') => format!("{}{s}", h.trim_end_matches('/')),
            _ => s.clone(),
        },
    };
    let pointer = cx.at(key);
    let tv = cx.binder.value(&Value::String(raw), &pointer);
    if let Some(Value::String(u)) = tv.as_literal() {
        Endpoint::parse(u, plain, secure).map_err(|m| cx.err(key, m))?;
    }
    Ok(Some(tv))
}

/// The task's `headers` object; names are checked now, and `reserved` ones (set by the
/// protocol) refused.
pub(crate) fn headers(
    cx: &mut CompileCx<'_, '_>,
    reserved: &[&str],
) -> crate::Result<Option<TValue>> {
    let Some(map) = &cx.task.headers else {
        return Ok(None);
    };
    for k in map.keys() {
        if HeaderName::from_bytes(k.as_bytes()).is_err() {
            return Err(cx.err("headers", format!("invalid header name {k:?}")));
        }
        if reserved.iter().any(|r| r.eq_ignore_ascii_case(k)) {
            return Err(cx.err(
                "headers",
                format!("`{k}` is set by the protocol and cannot be given"),
            ));
        }
    }
    let headers = Value::Object(map.clone());
    Ok(cx.value("headers", Some(&headers)))
}

/// The resolved `headers`, as names and values; a value that is not a valid header value
/// fails the step.
pub(crate) fn header_pairs(
    headers: Option<&TValue>,
    scope: &mut Scope<'_>,
) -> Result<Vec<(HeaderName, HeaderValue)>, Failure> {
    let Some(tv) = headers else {
        return Ok(Vec::new());
    };
    let Value::Object(map) = tv.resolve(scope) else {
        return Ok(Vec::new());
    };
    map.iter()
        .map(|(k, v)| {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                Failure::new(FailureKind::Plan, format!("invalid header name {k:?}"))
            })?;
            let value = HeaderValue::from_str(&value_text(v)).map_err(|_| {
                Failure::new(FailureKind::Plan, format!("invalid value for header {k:?}"))
            })?;
            Ok((name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_read_scheme_host_port_and_path() {
        let ep = Endpoint::parse("wss://api.test/chat?room=1", "ws", "wss").expect("wss");
        assert!(ep.secure);
        assert_eq!((ep.host.as_str(), ep.port), ("api.test", 443));
        assert_eq!(ep.path, "/chat?room=1");
        assert_eq!(ep.cookie_path(), "/chat");
        let ep = Endpoint::parse("ws://[::1]:9001", "ws", "wss").expect("ws");
        assert_eq!((ep.host.as_str(), ep.port), ("::1", 9001));
        assert_eq!(ep.authority, "[::1]:9001");
        assert_eq!(ep.path, "/");
        assert!(Endpoint::parse("http://h/", "ws", "wss").is_err());
        assert!(Endpoint::parse("/relative", "http", "https").is_err());
    }
}
