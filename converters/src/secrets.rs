//! Moving secrets out of a plan. Values of credential headers (`Authorization`,
//! `Proxy-Authorization`, `Cookie`, API-key-like names) and API-key-like query parameters are
//! replaced by `${env.NAME}`; the values go to a side file that `ld replay` loads. One name per
//! distinct value, so a token used by a hundred requests is one line in the side file.

use std::collections::HashMap;

use regex::Regex;

/// One secret moved out of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub name: String,
    pub value: String,
}

/// Assigns environment names to secret values.
#[derive(Debug)]
pub(crate) struct Secrets {
    inline: bool,
    header_pattern: Regex,
    query_pattern: Regex,
    /// The name given to each value, by the base name it was derived from: nested so that a
    /// value is looked up as it is, not copied into a key first (a cookie can be long, and is
    /// sent by nearly every request).
    by_value: HashMap<String, HashMap<String, String>>,
    taken: HashMap<String, usize>,
    pub(crate) found: Vec<Secret>,
    pub(crate) replaced: usize,
}

impl Secrets {
    pub(crate) fn new(inline: bool) -> Secrets {
        Secrets {
            inline,
            header_pattern: Regex::new(
                r"(?i)^(authorization|proxy-authorization|cookie|x-?api-?key|api-?key|x-?auth-?token|x-?access-?token|.*secret.*|.*password.*)$",
            )
            .expect("constant pattern"),
            query_pattern: Regex::new(
                r"(?i)^(api[-_]?key|apikey|key|access[-_]?token|auth[-_]?token|token|secret|client[-_]?secret|password|passwd|signature|sig)$",
            )
            .expect("constant pattern"),
            by_value: HashMap::new(),
            taken: HashMap::new(),
            found: Vec::new(),
            replaced: 0,
        }
    }

    /// The value to write for header `name`: a placeholder when it is a secret.
    pub(crate) fn header(&mut self, name: &str, value: &str) -> Option<String> {
        if self.inline
            || value.is_empty()
            || value.contains("${")
            || !self.header_pattern.is_match(name)
        {
            return None;
        }
        Some(self.placeholder(name, value))
    }

    /// The value to write for query parameter `name`: a placeholder when it is a secret.
    pub(crate) fn query(&mut self, name: &str, value: &str) -> Option<String> {
        if self.inline
            || value.is_empty()
            || value.contains("${")
            || !self.query_pattern.is_match(name)
        {
            return None;
        }
        Some(self.placeholder(name, value))
    }

    /// The placeholder for a variable (Postman `{{token}}`) whose value is a credential: known
    /// by its name, or `forced` when it is used for authentication or marked secret.
    pub(crate) fn variable(&mut self, name: &str, value: &str, forced: bool) -> Option<String> {
        if self.inline
            || value.is_empty()
            || value.contains("${")
            || !(forced || self.header_pattern.is_match(name) || self.query_pattern.is_match(name))
        {
            return None;
        }
        Some(self.placeholder(&camel_env_name(name), value))
    }

    fn placeholder(&mut self, name: &str, value: &str) -> String {
        self.replaced += 1;
        let base = env_name(name);
        if let Some(existing) = self.by_value.get(&base).and_then(|names| names.get(value)) {
            return format!("${{env.{existing}}}");
        }
        let count = self.taken.entry(base.clone()).or_insert(0);
        *count += 1;
        let env = if *count == 1 {
            base.clone()
        } else {
            format!("{base}_{count}")
        };
        self.by_value
            .entry(base)
            .or_default()
            .insert(value.to_string(), env.clone());
        self.found.push(Secret {
            name: env.clone(),
            value: value.to_string(),
        });
        format!("${{env.{env}}}")
    }
}

/// The side file's text: `NAME=value` lines, in the order the secrets were met.
pub(crate) fn render_env(secrets: &[Secret]) -> String {
    let mut out = String::from(
        "# Secrets moved out of the plan by `ld import`; `ld replay` loads this file.\n",
    );
    for s in secrets {
        out.push_str(&s.name);
        out.push('=');
        out.push_str(&s.value);
        out.push('\n');
    }
    out
}

/// An environment variable name for an identifier written in camel case, as API descriptions
/// name their variables and schemes: `bearerToken` → `BEARER_TOKEN`.
pub(crate) fn camel_env_name(name: &str) -> String {
    let mut spaced = String::with_capacity(name.len() + 4);
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            spaced.push('_');
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        spaced.push(c);
    }
    env_name(&spaced)
}

/// An environment variable name for `name`: upper case, `_` for anything else.
pub(crate) fn env_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_headers_and_keys_move_out() {
        let mut s = Secrets::new(false);
        assert_eq!(
            s.header("Authorization", "Bearer abc").as_deref(),
            Some("${env.AUTHORIZATION}")
        );
        assert_eq!(
            s.header("authorization", "Bearer abc").as_deref(),
            Some("${env.AUTHORIZATION}")
        );
        assert_eq!(
            s.header("Authorization", "Bearer xyz").as_deref(),
            Some("${env.AUTHORIZATION_2}")
        );
        assert_eq!(
            s.header("X-Api-Key", "k1").as_deref(),
            Some("${env.X_API_KEY}")
        );
        assert_eq!(s.header("Accept", "text/html"), None);
        assert_eq!(
            s.query("api_key", "SECRET").as_deref(),
            Some("${env.API_KEY}")
        );
        assert_eq!(s.query("page", "2"), None);
        assert_eq!(s.found.len(), 4);
        assert_eq!(s.replaced, 5);
        let env = render_env(&s.found);
        assert!(env.contains("\nAUTHORIZATION=Bearer abc\n"));
        assert!(env.contains("\nAUTHORIZATION_2=Bearer xyz\n"));
    }

    #[test]
    fn inline_keeps_everything() {
        let mut s = Secrets::new(true);
        assert_eq!(s.header("Cookie", "a=b"), None);
        assert!(s.found.is_empty());
    }
}
