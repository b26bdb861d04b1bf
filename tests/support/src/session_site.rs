//! A site whose recordings go stale: every login issues a new token and only this server's
//! tokens are accepted, every form page carries a new CSRF token, every order gets a new id.
//! A plan replays green against it only when it takes these values from the responses.
//!
//! - `POST /login` (JSON `{"user", "password"}`) → `{"token", "user", "issued_at"}`
//! - `GET /me` (`Authorization: Bearer TOKEN`) → `{"user", "now", "request_id"}`, else 401
//! - `GET /form` → HTML with the CSRF token in `<meta name="csrf-token">` and in a hidden
//!   `csrf_token` input
//! - `POST /orders` (bearer; form `csrf_token=..&item=..`, and `X-CSRF-Token` with the same
//!   token) → 201 `{"id", "item", "created_at"}`; 401 without a valid token, 403 on a CSRF
//!   token this server did not just hand out
//! - `GET /orders/ID`, `DELETE /orders/ID` (bearer) → the order, or 404 for an unknown id
//! - a WebSocket server beside it ([`live`]): each text message `{"type": "hello", "token"}`
//!   is answered `{"type": "welcome", "user", "at"}` for a token the site issued, else
//!   `{"error": "bad token"}`

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::http::{Kind, Received, Reply, ServerHandle, serve};
use crate::ws::{Answer, WsHandle, WsMessage, WsScript};

#[derive(Default)]
struct State {
    seed: u64,
    tokens: HashSet<String>,
    csrf: HashSet<String>,
    orders: HashMap<String, String>,
    served: u64,
}

impl State {
    /// A new value no other server start gives: the seed is the start time and the address.
    fn fresh(&mut self, len: usize) -> String {
        let mut out = String::new();
        while out.len() < len {
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            out.push_str(&format!("{:016x}", self.seed));
        }
        out.truncate(len);
        out
    }

    fn authorized(&self, r: &Received) -> bool {
        r.header("authorization")
            .strip_prefix("Bearer ")
            .is_some_and(|t| self.tokens.contains(t))
    }
}

fn now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "1970-01-01T00:00:00.{:09}Z+{}s",
        d.subsec_nanos(),
        d.as_secs()
    )
}

/// Restarts the site in place: a new seed, and every token, CSRF token and order it handed
/// out forgotten, as after a restart of its process, on the same address.
#[derive(Clone)]
pub struct Restart(Arc<Mutex<State>>);

impl Restart {
    pub fn restart(&self) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let seed = s.seed.rotate_left(17) ^ fresh_seed();
        *s = State {
            seed: seed | 1,
            ..State::default()
        };
    }
}

fn fresh_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1
}

/// Starts the site on `127.0.0.1:0`.
pub fn start() -> (SocketAddr, ServerHandle, Restart) {
    let state = Arc::new(Mutex::new(State {
        seed: fresh_seed(),
        ..State::default()
    }));
    let restart = Restart(state.clone());
    let (addr, handle) = serve(Kind::Http1, move |r| {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.served += 1;
        let served = s.served;
        let path = r.path().to_string();
        match (r.method.as_str(), path.as_str()) {
            ("POST", "/login") => {
                let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                if body["password"] != "pw" {
                    return Reply::json(401, r#"{"error": "bad password"}"#);
                }
                let token = format!("tk-{}", s.fresh(32));
                s.tokens.insert(token.clone());
                let reply =
                    serde_json::json!({"token": token, "user": body["user"], "issued_at": now()});
                Reply::json(200, reply.to_string())
            }
            ("GET", "/me") if s.authorized(r) => {
                let id = s.fresh(12);
                let reply = serde_json::json!({"user": "ada", "now": now(), "request_id": id, "visits": served});
                Reply::json(200, reply.to_string())
            }
            ("GET", "/form") => {
                let csrf = s.fresh(24);
                s.csrf.insert(csrf.clone());
                let html = format!(
                    "<!doctype html><html><head><meta charset=\"utf-8\">\n\
                     <meta name=\"csrf-token\" content=\"{csrf}\"><title>Order</title></head>\n\
                     <body><form method=\"post\" action=\"/orders\">\n\
                     <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\n\
                     <input name=\"item\" value=\"pen\"><button>Order</button></form></body></html>\n"
                );
                Reply::new(200, html).header("content-type", "text/html; charset=utf-8")
            }
            ("POST", "/orders") => {
                if !s.authorized(r) {
                    return Reply::json(401, r#"{"error": "bad token"}"#);
                }
                let form: HashMap<String, String> = String::from_utf8_lossy(&r.body)
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let csrf = form.get("csrf_token").cloned().unwrap_or_default();
                if !s.csrf.remove(&csrf) || r.header("x-csrf-token") != csrf {
                    return Reply::json(403, r#"{"error": "csrf"}"#);
                }
                let id = format!("o{}", s.fresh(10));
                let item = form.get("item").cloned().unwrap_or_default();
                s.orders.insert(id.clone(), item.clone());
                let reply = serde_json::json!({"id": id, "item": item, "created_at": now()});
                Reply::json(201, reply.to_string())
            }
            (method, p) if p.starts_with("/orders/") => {
                if !s.authorized(r) {
                    return Reply::json(401, r#"{"error": "bad token"}"#);
                }
                let id = p.trim_start_matches("/orders/").to_string();
                let Some(item) = s.orders.get(&id).cloned() else {
                    return Reply::json(404, r#"{"error": "no such order"}"#);
                };
                match method {
                    "GET" => {
                        let reply = serde_json::json!({"id": id, "item": item, "status": "open", "checked_at": now()});
                        Reply::json(200, reply.to_string())
                    }
                    "DELETE" => {
                        s.orders.remove(&id);
                        Reply::json(200, r#"{"deleted": true}"#)
                    }
                    _ => Reply::new(405, "no"),
                }
            }
            _ => Reply::json(401, r#"{"error": "bad token"}"#),
        }
    });
    (addr, handle, restart)
}

/// Starts the site's WebSocket server on `127.0.0.1:0`: it knows the tokens the site issued
/// (and forgets them when the site restarts).
pub fn live(site: &Restart) -> (SocketAddr, WsHandle) {
    let state = site.0.clone();
    let answer = move |m: &WsMessage| {
        let WsMessage::Text(text) = m else {
            return WsMessage::Text(r#"{"error": "expected text"}"#.into());
        };
        let hello: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        let s = state.lock().unwrap_or_else(|e| e.into_inner());
        let known = hello["token"]
            .as_str()
            .is_some_and(|t| s.tokens.contains(t));
        if hello["type"] == "hello" && known {
            let reply = serde_json::json!({"type": "welcome", "user": "ada", "at": now()});
            WsMessage::Text(reply.to_string())
        } else {
            WsMessage::Text(r#"{"error": "bad token"}"#.into())
        }
    };
    crate::ws::scripted_server(WsScript {
        answer: Some(Answer(Arc::new(answer))),
        ..WsScript::default()
    })
}
