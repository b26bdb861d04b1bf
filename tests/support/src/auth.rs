//! Servers that check what `ld`'s auth helpers send: an OAuth 2.0 token endpoint with an API
//! that refuses expired and unknown tokens, an API that verifies JWTs (HS256, ES256), an API
//! that recomputes AWS SigV4 signatures, and a GraphQL endpoint. Each verification here is
//! written from the specifications, apart from ld's code, so a shared mistake cannot pass.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::{digest, hmac, signature};
use serde_json::{Value, json};

use crate::http::{Kind, Received, Reply, ServerHandle, serve};

/// What the OAuth 2.0 server saw.
#[derive(Debug, Default)]
pub struct OAuthStats {
    /// Token requests answered with a token.
    pub issued: AtomicUsize,
    /// Token requests refused (bad client or grant).
    pub refused: AtomicUsize,
    /// API requests refused for an expired or unknown token.
    pub rejected: AtomicUsize,
    /// API requests let through.
    pub served: AtomicUsize,
}

impl OAuthStats {
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
    pub fn rejected(&self) -> usize {
        self.rejected.load(Ordering::SeqCst)
    }
    pub fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

/// `POST /token` (client credentials in HTTP Basic: `client_id:client_secret`) issues
/// tokens living `life`; every other path wants `Authorization: Bearer` with a live one.
pub fn oauth2(
    client_id: &str,
    client_secret: &str,
    life: Duration,
) -> (SocketAddr, ServerHandle, Arc<OAuthStats>) {
    let stats = Arc::new(OAuthStats::default());
    let tokens: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{client_secret}"))
    );
    let s = stats.clone();
    let (addr, handle) = serve(Kind::Http1, move |r: &Received| {
        let mut tokens = tokens.lock().expect("tokens");
        if r.path() == "/token" {
            let form = String::from_utf8_lossy(&r.body);
            let grant_ok = form
                .split('&')
                .any(|p| p == "grant_type=client_credentials");
            if r.method != "POST" || r.header("authorization") != basic || !grant_ok {
                s.refused.fetch_add(1, Ordering::SeqCst);
                return Reply::json(401, r#"{"error":"invalid_client"}"#);
            }
            let n = s.issued.fetch_add(1, Ordering::SeqCst) + 1;
            let token = format!("tok-{n}");
            tokens.insert(token.clone(), Instant::now() + life);
            return Reply::json(
                200,
                json!({"access_token": token, "token_type": "Bearer",
                       "expires_in": life.as_secs_f64()})
                .to_string(),
            );
        }
        let live = r
            .header("authorization")
            .strip_prefix("Bearer ")
            .and_then(|t| tokens.get(t))
            .is_some_and(|expires| Instant::now() < *expires);
        if live {
            s.served.fetch_add(1, Ordering::SeqCst);
            Reply::json(200, r#"{"ok":true}"#)
        } else {
            s.rejected.fetch_add(1, Ordering::SeqCst);
            Reply::json(401, r#"{"error":"invalid_token"}"#)
        }
    });
    (addr, handle, stats)
}

/// An ES256 key pair made for a test: the private key as PKCS#8 PEM, the public key as the
/// uncompressed point ring verifies with.
pub fn es256_key() -> (String, Vec<u8>) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
    (pair.serialize_pem(), pair.public_key_raw().to_vec())
}

/// Verifies a compact JWS with `verify` (given the signing input and the signature); the
/// claims when the signature holds, the header names `alg` and `exp` is in the future.
fn verified_claims(token: &str, alg: &str, verify: &dyn Fn(&[u8], &[u8]) -> bool) -> Option<Value> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (input, sig) = token.rsplit_once('.')?;
    let (header, claims) = input.split_once('.')?;
    let header: Value = serde_json::from_slice(&b64.decode(header).ok()?).ok()?;
    if header.get("alg").and_then(Value::as_str) != Some(alg) {
        return None;
    }
    if !verify(input.as_bytes(), &b64.decode(sig).ok()?) {
        return None;
    }
    let claims: Value = serde_json::from_slice(&b64.decode(claims).ok()?).ok()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    let exp = claims.get("exp").and_then(Value::as_u64)?;
    let iat = claims.get("iat").and_then(Value::as_u64)?;
    (iat <= now + 5 && now < exp).then_some(claims)
}

/// `GET /hs256` wants a JWT signed with HMAC-SHA256 under `secret`, `GET /es256` one signed
/// with the P-256 key whose public point is `es_public`. A valid token's claims are echoed
/// in a 200; anything else is a 401.
pub fn jwt(secret: &[u8], es_public: Vec<u8>) -> (SocketAddr, ServerHandle) {
    let hs = hmac::Key::new(hmac::HMAC_SHA256, secret);
    serve(Kind::Http1, move |r: &Received| {
        let token = r
            .header("authorization")
            .strip_prefix("Bearer ")
            .unwrap_or("");
        let claims = match r.path() {
            "/hs256" => verified_claims(token, "HS256", &|input, sig| {
                hmac::verify(&hs, input, sig).is_ok()
            }),
            "/es256" => verified_claims(token, "ES256", &|input, sig| {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &es_public)
                    .verify(input, sig)
                    .is_ok()
            }),
            _ => None,
        };
        match claims {
            Some(c) => Reply::json(200, c.to_string()),
            None => Reply::json(401, r#"{"error":"bad token"}"#),
        }
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Percent-encoding as SigV4 wants it: all but `A-Za-z0-9-_.~` (and `/` in paths).
fn aws_encode(s: &[u8], keep_slash: bool) -> String {
    s.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Recomputes the SigV4 signature of `r` with `secret`; `Err` says what did not match.
fn check_sigv4(r: &Received, access_key: &str, secret: &str) -> Result<(), String> {
    let auth = r.header("authorization");
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("not AWS4-HMAC-SHA256")?;
    let mut fields = HashMap::new();
    for part in rest.split(", ") {
        let (k, v) = part.split_once('=').ok_or("a malformed Authorization")?;
        fields.insert(k, v);
    }
    let credential = fields.get("Credential").ok_or("no Credential")?;
    let mut scope = credential.splitn(2, '/');
    if scope.next() != Some(access_key) {
        return Err("another access key".into());
    }
    let scope = scope.next().ok_or("no scope")?;
    let parts: Vec<&str> = scope.split('/').collect();
    let [date, region, service, "aws4_request"] = parts[..] else {
        return Err(format!("a malformed scope {scope}"));
    };
    let amz_date = r.header("x-amz-date");
    if !amz_date.starts_with(date) {
        return Err("x-amz-date is not the scope's date".into());
    }
    let payload = hex(digest::digest(&digest::SHA256, &r.body).as_ref());
    if r.header("x-amz-content-sha256") != payload {
        return Err("x-amz-content-sha256 is not the body's".into());
    }
    let signed = fields.get("SignedHeaders").ok_or("no SignedHeaders")?;
    for needed in ["host", "x-amz-date"] {
        if !signed.split(';').any(|h| h == needed) {
            return Err(format!("{needed} is not signed"));
        }
    }
    let mut canonical_headers = String::new();
    for name in signed.split(';') {
        let value = r
            .header(name)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }
    let (path, query) = r.target.split_once('?').unwrap_or((&r.target, ""));
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                aws_encode(&percent_decode(k), false),
                aws_encode(&percent_decode(v), false),
            )
        })
        .collect();
    pairs.sort();
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let canonical = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed}\n{payload}",
        r.method,
        aws_encode(path.as_bytes(), true),
        query.join("&")
    );
    let digest_hex = hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref());
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{digest_hex}");
    let mac = |key: &[u8], data: &str| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
            .as_ref()
            .to_vec()
    };
    let mut key = mac(format!("AWS4{secret}").as_bytes(), date);
    for part in [region, service, "aws4_request"] {
        key = mac(&key, part);
    }
    let expected = hex(&mac(&key, &to_sign));
    if fields.get("Signature") != Some(&expected.as_str()) {
        return Err("the signature does not match".into());
    }
    Ok(())
}

/// An API that recomputes each request's SigV4 signature with `secret` and wants
/// `x-amz-security-token` to be `token` when one is given: 200 when it holds, 403 with the
/// reason otherwise.
pub fn sigv4(access_key: &str, secret: &str, token: Option<&str>) -> (SocketAddr, ServerHandle) {
    let (access_key, secret) = (access_key.to_string(), secret.to_string());
    let token = token.map(str::to_string);
    serve(Kind::Http1, move |r: &Received| {
        let mut result = check_sigv4(r, &access_key, &secret);
        if let Some(t) = &token
            && result.is_ok()
            && r.header("x-amz-security-token") != t
        {
            result = Err("no session token".into());
        }
        match result {
            Ok(()) => Reply::json(200, r#"{"signed":true}"#),
            Err(why) => Reply::json(403, json!({"message": why}).to_string()),
        }
    })
}

/// `POST /graphql` with a JSON `{query, variables, operationName}`: `{ hello }` queries get
/// `data`, other queries a GraphQL `errors` list (with status 200, as GraphQL servers answer).
pub fn graphql() -> (SocketAddr, ServerHandle) {
    serve(Kind::Http1, |r: &Received| {
        let body: Value = match serde_json::from_slice(&r.body) {
            Ok(v)
                if r.method == "POST"
                    && r.header("content-type").starts_with("application/json") =>
            {
                v
            }
            _ => return Reply::json(400, r#"{"errors":[{"message":"expected a JSON POST"}]}"#),
        };
        let query = body.get("query").and_then(Value::as_str).unwrap_or("");
        if query.contains("hello") {
            let name = body
                .pointer("/variables/name")
                .and_then(Value::as_str)
                .unwrap_or("world");
            Reply::json(
                200,
                json!({"data": {"hello": format!("hi {name}")}}).to_string(),
            )
        } else {
            Reply::json(
                200,
                r#"{"data":null,"errors":[{"message":"Cannot query field \"nope\" on type \"Query\"."}]}"#,
            )
        }
    })
}
