//! The auth helpers a task's `auth` names beyond `basic` and `bearer`: `oauth2` (a token
//! fetched from a token endpoint, per user or shared, renewed before it expires), `sigv4`
//! (AWS Signature Version 4 on each request) and `jwt` (a token minted per user or per
//! request). Compiled here from the plan's object; the HTTP transport applies them, as the
//! OAuth 2.0 exchange is a request of its own.
//!
//! This module depends on the template machinery only: not on the transport, not on tasks.

pub(crate) mod jwt;
pub(crate) mod oauth2;
pub(crate) mod sigv4;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::template::{Binder, Scope, TValue, value_text};

/// The keys of each auth type, `type` among them.
pub(crate) const OAUTH2_FIELDS: &[&str] = &[
    "type",
    "grant",
    "token_url",
    "client_id",
    "client_secret",
    "scope",
    "username",
    "password",
    "refresh_token",
    "shared",
];
pub(crate) const SIGV4_FIELDS: &[&str] = &[
    "type",
    "service",
    "region",
    "access_key",
    "secret_key",
    "session_token",
];
pub(crate) const JWT_FIELDS: &[&str] = &["type", "alg", "key", "claims", "per", "expires_in"];

/// Fields whose values are secrets: kept out of every report, message and record.
const SECRET_FIELDS: &[&str] = &[
    "client_secret",
    "password",
    "refresh_token",
    "secret_key",
    "session_token",
    "key",
];

/// A JWT's life when the plan gives no `expires_in`.
const DEFAULT_JWT_LIFE: Duration = Duration::from_secs(300);

/// Tokens every virtual user shares (`shared: true`), by [`oauth2::Config::key`]. Held locked
/// while one user fetches, so the endpoint is asked once for all.
pub(crate) type SharedTokens = tokio::sync::Mutex<HashMap<String, oauth2::Token>>;

/// A compiled auth helper.
#[derive(Debug)]
pub(crate) enum Auth {
    OAuth2(Box<OAuth2Auth>),
    SigV4(Box<SigV4Auth>),
    Jwt(Box<JwtAuth>),
}

pub(crate) struct OAuth2Auth {
    pub(crate) grant: oauth2::Grant,
    /// The string fields, resolved when a token is fetched.
    fields: TValue,
    /// `Some` for `shared: true`.
    pub(crate) shared: Option<Arc<SharedTokens>>,
    secrets: Vec<String>,
}

impl OAuth2Auth {
    pub(crate) fn config(&self, scope: &mut Scope<'_>) -> oauth2::Config {
        oauth2::Config::from_value(&self.fields.resolve(scope))
    }
}

pub(crate) struct SigV4Auth {
    fields: TValue,
    secrets: Vec<String>,
}

pub(crate) struct JwtAuth {
    alg: jwt::Alg,
    key: jwt::SigningKey,
    /// An object; `${...}` resolved as each token is minted.
    claims: TValue,
    /// A new token for each request, rather than one per user renewed as it expires.
    pub(crate) per_request: bool,
    pub(crate) life: Duration,
    secrets: Vec<String>,
}

// The helpers' fields hold secrets: their debug form names the helper and nothing else.
impl std::fmt::Debug for OAuth2Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth2Auth")
            .field("grant", &self.grant)
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SigV4Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigV4Auth").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("alg", &self.alg)
            .field("per_request", &self.per_request)
            .field("life", &self.life)
            .finish_non_exhaustive()
    }
}

/// An error of the plan: the JSON pointer and what is wrong there.
pub(crate) type PlanError = (String, String);

impl Auth {
    /// Compiles `map` (its keys already checked against the type's fields) at `pointer`.
    pub(crate) fn compile(
        map: &Map<String, Value>,
        pointer: &str,
        binder: &mut Binder<'_>,
        base_dir: &Path,
        shared: &Arc<SharedTokens>,
    ) -> Result<Auth, PlanError> {
        let at = |k: &str| format!("{pointer}/{k}");
        let kind = map
            .get("type")
            .map(value_text)
            .unwrap_or_default()
            .to_ascii_lowercase();
        // Every field but these few is text that may hold placeholders.
        let structural = [
            "type",
            "grant",
            "shared",
            "claims",
            "per",
            "expires_in",
            "alg",
        ];
        let mut text = Map::new();
        for (k, v) in map {
            if structural.contains(&k.as_str()) {
                continue;
            }
            if !v.is_string() {
                return Err((at(k), format!("expected a string, found {}", kind_name(v))));
            }
            text.insert(k.clone(), v.clone());
        }
        let required = |keys: &[&str]| -> Result<(), PlanError> {
            for k in keys {
                if text
                    .get(*k)
                    .and_then(Value::as_str)
                    .is_none_or(|s| s.trim().is_empty())
                {
                    return Err((pointer.to_string(), format!("a `{kind}` auth needs `{k}`")));
                }
            }
            Ok(())
        };
        let secrets = |fields: &TValue| -> Vec<String> {
            let Some(Value::Object(m)) = fields.as_literal() else {
                return Vec::new();
            };
            SECRET_FIELDS
                .iter()
                .filter_map(|k| m.get(*k).and_then(Value::as_str))
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        match kind.as_str() {
            "oauth2" => {
                let grant = match map.get("grant") {
                    None | Some(Value::Null) => oauth2::Grant::ClientCredentials,
                    Some(Value::String(g)) => oauth2::Grant::parse(g).ok_or_else(|| {
                        (
                            at("grant"),
                            format!("unknown grant `{g}`: {}", oauth2::Grant::NAMES.join(", ")),
                        )
                    })?,
                    Some(v) => {
                        return Err((
                            at("grant"),
                            format!("expected a string, found {}", kind_name(v)),
                        ));
                    }
                };
                required(&["token_url"])?;
                match grant {
                    oauth2::Grant::Password => required(&["username", "password"])?,
                    oauth2::Grant::RefreshToken => required(&["refresh_token"])?,
                    oauth2::Grant::ClientCredentials => required(&["client_id"])?,
                }
                let shared_flag = match map.get("shared") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => return Err((at("shared"), "expected true or false".into())),
                };
                let fields = binder.value(&Value::Object(text), pointer);
                Ok(Auth::OAuth2(Box::new(OAuth2Auth {
                    grant,
                    secrets: secrets(&fields),
                    fields,
                    shared: shared_flag.then(|| shared.clone()),
                })))
            }
            "sigv4" => {
                required(&["service", "region", "access_key", "secret_key"])?;
                let fields = binder.value(&Value::Object(text), pointer);
                Ok(Auth::SigV4(Box::new(SigV4Auth {
                    secrets: secrets(&fields),
                    fields,
                })))
            }
            "jwt" => {
                let alg = match map.get("alg") {
                    Some(Value::String(a)) => jwt::Alg::parse(a).ok_or_else(|| {
                        (
                            at("alg"),
                            format!("unknown alg `{a}`: {}", jwt::Alg::NAMES.join(", ")),
                        )
                    })?,
                    None | Some(Value::Null) => {
                        return Err((pointer.to_string(), "a `jwt` auth needs `alg`".into()));
                    }
                    Some(v) => {
                        return Err((
                            at("alg"),
                            format!("expected a string, found {}", kind_name(v)),
                        ));
                    }
                };
                required(&["key"])?;
                let key_value = text.get("key").cloned().unwrap_or(Value::Null);
                let key_text = match binder.value(&key_value, &at("key")).as_literal() {
                    Some(Value::String(k)) => k.clone(),
                    _ => {
                        return Err((
                            at("key"),
                            "the key must be written out or `${env.NAME}`, known before the run"
                                .into(),
                        ));
                    }
                };
                let key =
                    jwt::SigningKey::new(alg, &key_text, base_dir).map_err(|m| (at("key"), m))?;
                let claims = match map.get("claims") {
                    None | Some(Value::Null) => TValue::Literal(Value::Object(Map::new())),
                    Some(v @ Value::Object(_)) => binder.value(v, &at("claims")),
                    Some(v) => {
                        return Err((
                            at("claims"),
                            format!("expected an object, found {}", kind_name(v)),
                        ));
                    }
                };
                let per_request = match map.get("per").and_then(Value::as_str) {
                    None if map.get("per").is_none_or(Value::is_null) => false,
                    Some("user") => false,
                    Some("request") => true,
                    _ => return Err((at("per"), "expected `user` or `request`".into())),
                };
                let life = match map.get("expires_in") {
                    None | Some(Value::Null) => DEFAULT_JWT_LIFE,
                    Some(v) => match v.as_f64() {
                        Some(s) if (1.0..=1e9).contains(&s) => Duration::from_secs_f64(s),
                        _ => {
                            return Err((
                                at("expires_in"),
                                "expected seconds from 1 to 1000000000".into(),
                            ));
                        }
                    },
                };
                let secrets =
                    if key_text.trim_start().starts_with("-----BEGIN") || alg == jwt::Alg::Hs256 {
                        vec![key_text]
                    } else {
                        Vec::new()
                    };
                Ok(Auth::Jwt(Box::new(JwtAuth {
                    alg,
                    key,
                    claims,
                    per_request,
                    life,
                    secrets,
                })))
            }
            other => Err((
                at("type"),
                format!("unknown auth type `{other}`: basic, bearer, oauth2, sigv4 or jwt"),
            )),
        }
    }

    /// The secrets written out in the plan (those from `${env.X}` are known to the redactor
    /// already).
    pub(crate) fn secrets(&self) -> &[String] {
        match self {
            Auth::OAuth2(a) => &a.secrets,
            Auth::SigV4(a) => &a.secrets,
            Auth::Jwt(a) => &a.secrets,
        }
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl JwtAuth {
    /// A new token: the claims resolved, `iat` and `exp` added.
    pub(crate) fn mint(&self, scope: &mut Scope<'_>) -> Result<String, String> {
        let claims = match self.claims.resolve(scope) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let claims = jwt::with_times(claims, unix_now(), self.life.as_secs().max(1));
        jwt::encode(self.alg, &self.key, &claims)
    }
}

/// The request being signed: what of it SigV4 reads.
pub(crate) struct ToSign<'a> {
    pub(crate) method: &'a str,
    pub(crate) uri: &'a http::Uri,
    /// The `Host` the request is sent with.
    pub(crate) host: &'a str,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a [u8],
}

impl SigV4Auth {
    /// The headers to add to `req`: `x-amz-date`, `x-amz-content-sha256`,
    /// `x-amz-security-token` with a session token, and `authorization`.
    pub(crate) fn headers(
        &self,
        scope: &mut Scope<'_>,
        req: &ToSign<'_>,
        amz_date: &str,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
        let fields = self.fields.resolve(scope);
        let get = |k: &str| fields.get(k).map(value_text).unwrap_or_default();
        let (access_key, secret_key, token) =
            (get("access_key"), get("secret_key"), get("session_token"));
        let (region, service) = (get("region"), get("service"));
        let creds = sigv4::Credentials {
            access_key: &access_key,
            secret_key: &secret_key,
            session_token: (!token.is_empty()).then_some(token.as_str()),
            region: &region,
            service: &service,
        };
        let hash = sigv4::sha256_hex(req.body);
        let mut signed: Vec<(&str, &str)> = vec![
            ("host", req.host),
            ("x-amz-date", amz_date),
            ("x-amz-content-sha256", &hash),
        ];
        if let Some(t) = creds.session_token {
            signed.push(("x-amz-security-token", t));
        }
        for (name, value) in req.headers {
            let n = name.as_str();
            let ours = matches!(
                n,
                "x-amz-date" | "x-amz-content-sha256" | "x-amz-security-token"
            );
            if (n == "content-type" || n.starts_with("x-amz-")) && !ours {
                signed.push((
                    n,
                    value
                        .to_str()
                        .map_err(|_| format!("header {n} is not text"))?,
                ));
            }
        }
        let to_sign = sigv4::Request {
            method: req.method,
            path: req.uri.path(),
            query: req.uri.query().unwrap_or(""),
            headers: &signed,
            payload_hash: &hash,
        };
        let out = sigv4::sign(&to_sign, &creds, amz_date);
        let value = |s: &str| {
            HeaderValue::from_str(s).map_err(|_| "a SigV4 field is not header text".to_string())
        };
        let mut headers = vec![
            (HeaderName::from_static("x-amz-date"), value(amz_date)?),
            (
                HeaderName::from_static("x-amz-content-sha256"),
                value(&hash)?,
            ),
        ];
        if let Some(t) = creds.session_token {
            headers.push((HeaderName::from_static("x-amz-security-token"), value(t)?));
        }
        headers.push((http::header::AUTHORIZATION, value(&out.authorization)?));
        Ok(headers)
    }
}

/// The time in SigV4's form, `YYYYMMDD'T'HHMMSS'Z'`.
pub(crate) fn amz_date_now() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}
