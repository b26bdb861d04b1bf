//! OAuth 2.0 access tokens (RFC 6749): the token request's form, the reply read into a
//! [`Token`], and when a token is due for renewal. The exchange itself is the HTTP
//! transport's: this module sends nothing.
//!
//! The client authenticates with HTTP Basic (`client_id:client_secret`, each form-encoded
//! first, RFC 6749 §2.3.1), the scheme every authorization server must support; a client with
//! no `client_secret` (a public client) sends its `client_id` in the form instead.

use std::time::{Duration, Instant};

use base64::Engine as _;
use ld_plan::encode;
use serde_json::Value;

/// The most bytes of a token reply read: a token endpoint's JSON is small, and a reply past
/// this is a failed fetch, not a large allocation.
pub(crate) const MAX_REPLY: usize = 64 * 1024;

/// The longest a token is renewed ahead of its expiry.
const MAX_MARGIN: Duration = Duration::from_secs(60);

/// The grants a plan may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    ClientCredentials,
    Password,
    RefreshToken,
}

impl Grant {
    pub(crate) const NAMES: [&'static str; 3] = ["client_credentials", "password", "refresh_token"];

    pub(crate) fn parse(name: &str) -> Option<Grant> {
        match name.trim() {
            "client_credentials" => Some(Grant::ClientCredentials),
            "password" => Some(Grant::Password),
            "refresh_token" => Some(Grant::RefreshToken),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Grant::ClientCredentials => "client_credentials",
            Grant::Password => "password",
            Grant::RefreshToken => "refresh_token",
        }
    }
}

/// The resolved fields of an `oauth2` auth.
#[derive(Debug, Clone, Default)]
pub(crate) struct Config {
    pub(crate) token_url: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) scope: String,
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) refresh_token: String,
}

impl Config {
    /// Reads the resolved auth object (strings; absent fields are empty).
    pub(crate) fn from_value(v: &Value) -> Config {
        let get = |k: &str| {
            v.get(k)
                .map(crate::template::value_text)
                .unwrap_or_default()
        };
        Config {
            token_url: get("token_url"),
            client_id: get("client_id"),
            client_secret: get("client_secret"),
            scope: get("scope"),
            username: get("username"),
            password: get("password"),
            refresh_token: get("refresh_token"),
        }
    }

    /// What tells two configurations' tokens apart, secrets left out (the key is held
    /// beside the token, and a user of the same endpoint, client and scope shares it).
    pub(crate) fn key(&self, grant: Grant) -> String {
        format!(
            "{}\n{}\n{}\n{}\n{}",
            grant.name(),
            self.token_url,
            self.client_id,
            self.scope,
            self.username
        )
    }
}

/// A token request: the form body and the `Authorization` header, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenRequest {
    pub(crate) form: String,
    pub(crate) authorization: Option<String>,
}

/// The request for a first token, or for a renewal with `refresh` (a refresh token an
/// earlier reply gave).
pub(crate) fn request(grant: Grant, c: &Config, refresh: Option<&str>) -> TokenRequest {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    match (refresh, grant) {
        (Some(r), _) => pairs.extend([("grant_type", "refresh_token"), ("refresh_token", r)]),
        (None, Grant::ClientCredentials) => pairs.push(("grant_type", "client_credentials")),
        (None, Grant::Password) => pairs.extend([
            ("grant_type", "password"),
            ("username", c.username.as_str()),
            ("password", c.password.as_str()),
        ]),
        (None, Grant::RefreshToken) => pairs.extend([
            ("grant_type", "refresh_token"),
            ("refresh_token", c.refresh_token.as_str()),
        ]),
    }
    if !c.scope.is_empty() {
        pairs.push(("scope", c.scope.as_str()));
    }
    let authorization = if c.client_secret.is_empty() {
        if !c.client_id.is_empty() {
            pairs.push(("client_id", c.client_id.as_str()));
        }
        None
    } else {
        let both = format!(
            "{}:{}",
            form_encode(&c.client_id),
            form_encode(&c.client_secret)
        );
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(both)
        ))
    };
    TokenRequest {
        form: form_urlencoded(&pairs),
        authorization,
    }
}

/// Text as `application/x-www-form-urlencoded` writes it: a space as `+`.
fn form_encode(s: &str) -> String {
    encode::form(s, encode::WHATWG_FORM)
}

/// `k=v&...`, form-encoded.
fn form_urlencoded(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// An access token and when to renew it.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) access_token: String,
    /// When to fetch a new one: a tenth of its life before it expires, at most a minute.
    /// `None` when the reply gave no `expires_in`: the token is kept for the run.
    pub(crate) renew_at: Option<Instant>,
    /// A refresh token the reply gave, for the renewal.
    pub(crate) refresh_token: Option<String>,
}

impl Token {
    pub(crate) fn fresh(&self, now: Instant) -> bool {
        self.renew_at.is_none_or(|t| now < t)
    }
}

/// Reads a token endpoint's reply. Errors name the status and the endpoint's `error` code,
/// never the body (it may echo credentials).
pub(crate) fn parse_reply(status: u16, body: &[u8], now: Instant) -> Result<Token, String> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if !(200..300).contains(&status) {
        let code = json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(Value::as_str)
            .map(|c| format!(" ({})", c.chars().take(64).collect::<String>()))
            .unwrap_or_default();
        return Err(format!("the token endpoint answered {status}{code}"));
    }
    let Some(json) = json else {
        return Err("the token endpoint's reply is not JSON".into());
    };
    let access_token = match json.get("access_token") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => return Err("the token endpoint's reply has no `access_token`".into()),
    };
    let lifetime = match json.get("expires_in") {
        Some(Value::Number(n)) => n.as_f64(),
        // Some servers quote it.
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|s| s.is_finite() && *s >= 0.0)
    .map(|s| Duration::from_secs_f64(s.min(1e9)));
    let renew_at = lifetime.map(|life| now + life - (life / 10).min(MAX_MARGIN));
    let refresh_token = json
        .get("refresh_token")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    Ok(Token {
        access_token,
        renew_at,
        refresh_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            token_url: "http://127.0.0.1/token".into(),
            client_id: "app 1".into(),
            client_secret: "s:cr&t".into(),
            scope: "read write".into(),
            username: "ada".into(),
            password: "p@ss word".into(),
            refresh_token: "r-1".into(),
        }
    }

    #[test]
    fn client_credentials_go_in_basic_auth_form_encoded() {
        let r = request(Grant::ClientCredentials, &config(), None);
        assert_eq!(r.form, "grant_type=client_credentials&scope=read+write");
        let b64 = base64::engine::general_purpose::STANDARD.encode("app+1:s%3Acr%26t");
        assert_eq!(r.authorization, Some(format!("Basic {b64}")));
    }

    #[test]
    fn password_and_refresh_grants_and_public_clients() {
        let mut c = config();
        c.client_secret.clear();
        let r = request(Grant::Password, &c, None);
        assert_eq!(
            r.form,
            "grant_type=password&username=ada&password=p%40ss+word&scope=read+write&client_id=app+1"
        );
        assert_eq!(r.authorization, None);
        let r = request(Grant::RefreshToken, &c, None);
        assert!(
            r.form
                .starts_with("grant_type=refresh_token&refresh_token=r-1&")
        );
        let r = request(Grant::Password, &c, Some("r-2"));
        assert!(
            r.form
                .starts_with("grant_type=refresh_token&refresh_token=r-2&")
        );
    }

    #[test]
    fn a_token_is_renewed_a_tenth_of_its_life_early() {
        let now = Instant::now();
        let t = parse_reply(200, br#"{"access_token":"a","expires_in":10}"#, now).expect("token");
        assert_eq!(t.renew_at, Some(now + Duration::from_secs(9)));
        assert!(t.fresh(now + Duration::from_millis(8900)));
        assert!(!t.fresh(now + Duration::from_secs(9)));
        let t = parse_reply(200, br#"{"access_token":"a","expires_in":"7200"}"#, now).expect("t");
        assert_eq!(t.renew_at, Some(now + Duration::from_secs(7140)));
        let t = parse_reply(200, br#"{"access_token":"a","refresh_token":"r"}"#, now).expect("t");
        assert!(t.renew_at.is_none() && t.refresh_token.as_deref() == Some("r"));
    }

    #[test]
    fn failed_replies_name_status_and_error_code_only() {
        let now = Instant::now();
        let e = parse_reply(
            401,
            br#"{"error":"invalid_client","client_secret":"x"}"#,
            now,
        )
        .expect_err("401");
        assert_eq!(e, "the token endpoint answered 401 (invalid_client)");
        assert!(parse_reply(200, b"<html>", now).is_err());
        assert!(parse_reply(200, br#"{"token_type":"bearer"}"#, now).is_err());
    }
}
