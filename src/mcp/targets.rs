//! Which hosts a plan run through `ld mcp` may send to: loopback, and the `--allow-target`
//! entries. The plan is read before it runs and every place that names where traffic goes
//! (`user_detail_dict.host`, a task's `request_url`, `url`, `target`, `host` or `broker`)
//! must name an allowed host literally: a host made of a `${...}` placeholder cannot be
//! checked, so it is refused, and so are redirects followed to wherever a server points,
//! and the commands that run other files.
//!
//! It also refuses file names in the plan's other commands (reports, CSV sources, stores)
//! that climb out of the plan's directory or are absolute. Depends on nothing else of the
//! server.

use std::net::IpAddr;

use serde_json::Value;

/// One `--allow-target` entry: a host, and a port or any port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Allowed {
    host: String,
    port: Option<u16>,
}

/// `HOST`, `HOST:PORT`, `[V6]` or `[V6]:PORT`.
pub(crate) fn parse_allowed(text: &str) -> Result<Allowed, String> {
    let (host, port) = split_host_port(text.trim());
    if host.is_empty() || host.contains(['/', '$', '@', ' ']) {
        return Err(format!("`{text}` is not HOST or HOST:PORT"));
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("`{text}`: `{p}` is not a port"))?,
        ),
    };
    Ok(Allowed {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// The commands that read or run other plans, which cannot be checked before they run.
const NESTED: &[&str] = &["LD_execute_action", "LD_execute_files"];

/// The keys under `LD_start_test` whose string values say where traffic goes.
const TARGET_KEYS: &[&str] = &["request_url", "url", "target", "host", "broker"];

/// Checks a parsed plan document; the first refusal as `pointer: why`.
pub(crate) fn check_plan(doc: &Value, allowed: &[Allowed]) -> Result<(), String> {
    let actions = match doc {
        Value::Object(m) => m.get("load_density").unwrap_or(&Value::Null),
        other => other,
    };
    let (actions, prefix) = match (actions, doc.is_object()) {
        (Value::Array(a), true) => (a, "/load_density"),
        (Value::Array(a), false) => (a, ""),
        _ => return Ok(()), // not a plan: the engine says why
    };
    for (i, action) in actions.iter().enumerate() {
        let at = format!("{prefix}/{i}");
        let Some(command) = action.get(0).and_then(Value::as_str) else {
            continue;
        };
        if NESTED.contains(&command) {
            return Err(format!(
                "{at}: {command} runs other plans, which ld mcp cannot check before they run; \
                 run each plan with its own call"
            ));
        }
        let args = action.get(1).unwrap_or(&Value::Null);
        if command == "LD_start_test" {
            walk_targets(args, &format!("{at}/1"), allowed)?;
        } else {
            walk_files(args, &format!("{at}/1"))?;
        }
    }
    Ok(())
}

fn walk_targets(v: &Value, at: &str, allowed: &[Allowed]) -> Result<(), String> {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                if k == "allow_redirects" && v.as_bool() == Some(true) {
                    return Err(format!(
                        "{here}: a followed redirect may lead to any host; ld mcp runs plans \
                         whose every target it can check (set it to false)"
                    ));
                }
                if let (true, Value::String(s)) = (TARGET_KEYS.contains(&k.as_str()), v) {
                    check_target(s, allowed).map_err(|why| format!("{here}: {why}"))?;
                } else {
                    walk_targets(v, &here, allowed)?;
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                walk_targets(v, &format!("{at}/{i}"), allowed)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn walk_files(v: &Value, at: &str) -> Result<(), String> {
    match v {
        Value::String(s) => {
            let climbs = s.split(['/', '\\']).any(|part| part == "..");
            if climbs || s.starts_with('/') || s.starts_with('~') || s.starts_with('\\') {
                return Err(format!(
                    "{at}: `{s}` names a file outside the plan's directory; ld mcp keeps files \
                     inside its root"
                ));
            }
        }
        Value::Object(m) => {
            for (k, v) in m {
                walk_files(v, &format!("{at}/{k}"))?;
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                walk_files(v, &format!("{at}/{i}"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A URL, `host:port` or bare host: allowed, or why not.
pub(crate) fn check_target(text: &str, allowed: &[Allowed]) -> Result<(), String> {
    let text = text.trim();
    let (scheme, rest) = match text.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None if text.is_empty() || text.starts_with('/') => return Ok(()), // relative to host
        None => (String::new(), text),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or("");
    if authority.contains('$') || authority.contains('{') {
        return Err(format!(
            "the host of `{text}` is not written out, so it cannot be checked; write the \
             host literally"
        ));
    }
    let (host, port) = split_host_port(authority);
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("`{text}`: `{p}` is not a port"))?,
        ),
        None => match scheme.as_str() {
            "http" | "ws" => Some(80),
            "https" | "wss" => Some(443),
            _ => None,
        },
    };
    if is_loopback(host) {
        return Ok(());
    }
    let host = host.to_ascii_lowercase();
    if allowed
        .iter()
        .any(|a| a.host == host && (a.port.is_none() || a.port == port))
    {
        return Ok(());
    }
    Err(format!(
        "`{text}` is not a loopback address; ld mcp sends only to loopback unless started \
         with --allow-target {host}{}",
        port.map(|p| format!(":{p}")).unwrap_or_default()
    ))
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let h = bare.to_ascii_lowercase();
            h == "localhost" || h.ends_with(".localhost")
        }
    }
}

/// `host:port`, `[v6]:port`, `host`: the host (brackets kept for v6) and the port text.
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => {
                let port = authority[end + 1..].strip_prefix(':');
                (&authority[..=end], port)
            }
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn loopback_passes_and_others_need_an_entry() {
        assert!(check_target("http://127.0.0.1:8080/x?y=${z}", &[]).is_ok());
        assert!(check_target("ws://[::1]:9/", &[]).is_ok());
        assert!(check_target("http://localhost/", &[]).is_ok());
        assert!(check_target("127.0.0.2:7000", &[]).is_ok());
        assert!(check_target("/relative", &[]).is_ok());
        assert!(check_target("http://example.com/", &[]).is_err());
        assert!(check_target("http://10.0.0.1:80/", &[]).is_err());
        assert!(check_target("http://127.0.0.1.example.com/", &[]).is_err());
        assert!(check_target("http://u:p@example.com/", &[]).is_err());
        assert!(check_target("${base}/x", &[]).is_err());
        assert!(check_target("http://127.0.0.1:${port}/", &[]).is_err());
        let allowed = [parse_allowed("api.test:8443").expect("entry")];
        assert!(check_target("https://API.test:8443/x", &allowed).is_ok());
        assert!(check_target("https://api.test/x", &allowed).is_err());
        let any_port = [parse_allowed("api.test").expect("entry")];
        assert!(check_target("https://api.test/x", &any_port).is_ok());
        assert!(parse_allowed("http://x/").is_err());
        assert!(parse_allowed("x:99999").is_err());
    }

    #[test]
    fn plans_are_walked() {
        let ok = json!({"load_density": [["LD_start_test", {"user_detail_dict": {"host": "http://127.0.0.1:1"},
            "tasks": [{"request_url": "/a"}]}], ["LD_generate_html_report", {"html_name": "r.html"}]]});
        assert!(check_plan(&ok, &[]).is_ok());
        let far = json!({"load_density": [["LD_start_test", {"tasks": {"tasks": [{"url": "https://example.org/"}]}}]]});
        let why = check_plan(&far, &[]).expect_err("refused");
        assert!(
            why.starts_with("/load_density/0/1/tasks/tasks/0/url:"),
            "{why}"
        );
        let redirect = json!([["LD_start_test", {"tasks": [{"url": "http://127.0.0.1/", "allow_redirects": true}]}]]);
        assert!(check_plan(&redirect, &[]).is_err());
        let nested = json!([["LD_execute_files", [["a.json"]]]]);
        assert!(check_plan(&nested, &[]).is_err());
        let report = json!([["LD_generate_html_report", {"html_name": "../../r.html"}]]);
        assert!(check_plan(&report, &[]).is_err());
    }
}
