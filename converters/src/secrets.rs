//! Moving secrets out of a plan. Values of credential headers (`Authorization`,
//! `Proxy-Authorization`, `Cookie`, API-key-like names) and API-key-like query parameters are
//! replaced by `${env.NAME}`; the values go to a side file that `ld replay` loads. One name per
//! distinct value, so a token used by a hundred requests is one line in the side file.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

use regex::Regex;

/// One secret moved out of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub name: String,
    pub value: String,
}

/// How many names [`Secrets::placeholder`] remembers the last value of.
const RECENT: usize = 16;

/// Which names and values are secrets: what deciding needs, without the names given so far,
/// so that the threads of an import can share it.
#[derive(Debug, Clone)]
pub(crate) struct SecretRules {
    inline: bool,
    header_pattern: Regex,
    query_pattern: Regex,
}

impl SecretRules {
    pub(crate) fn new(inline: bool) -> SecretRules {
        SecretRules {
            inline,
            header_pattern: Regex::new(
                r"(?i)^(authorization|proxy-authorization|authentication|cookie|token|x-hub-signature(-256)?|x-?api-?key|api-?key|x-?auth-?token|x-?access-?token|.*-token|.*-key|.*secret.*|.*password.*|.*session.*)$",
            )
            .expect("constant pattern"),
            query_pattern: Regex::new(
                r"(?i)^(api[-_]?key|apikey|key|access[-_]?token|auth[-_]?token|id[-_]?token|refresh[-_]?token|token|jwt|session[-_]?id|sid|auth|code|secret|client[-_]?secret|password|passwd|signature|sig)$",
            )
            .expect("constant pattern"),
        }
    }

    /// Whether the value of header `name` moves out of the plan. `Sec-WebSocket-Key` is a
    /// nonce the client makes up for each handshake, not a credential.
    pub(crate) fn header(&self, name: &str, value: &str) -> bool {
        !(self.inline
            || value.is_empty()
            || !self.is_secret_header(name)
            || name.eq_ignore_ascii_case("sec-websocket-key")
            || value.contains("${"))
    }

    /// Whether the value of body field `name` (a JSON member or a form field) moves out of the
    /// plan: password-like names (`*secret*`, `*password*`, `*session*`, `*-token`, `*_token`,
    /// `*-key`) and the credential names of query parameters but the ones too common in
    /// bodies for anything else (`code`, `key`, `sid`, `auth`, `sig`, `signature`).
    pub(crate) fn field(&self, name: &str, value: &str) -> bool {
        !(self.inline || value.is_empty() || !self.is_secret_field(name) || value.contains("${"))
    }

    /// Whether a value an importer knows to be a credential (an `auth` object's key) moves
    /// out of the plan.
    pub(crate) fn credential(&self, value: &str) -> bool {
        !(self.inline || value.is_empty() || value.contains("${"))
    }

    /// Whether the userinfo of a URL (`user:password` before `@`) moves out of the plan.
    pub(crate) fn userinfo(&self, info: &str) -> bool {
        !(self.inline || info.is_empty() || info == ":" || info.contains("${"))
    }

    /// Whether JSON text may have a member that [`SecretRules::field`] moves out: one pass
    /// over its bytes for the words every such name holds, so that most bodies are written
    /// without being parsed.
    pub(crate) fn may_hold_field(&self, text: &str) -> bool {
        const THREE: u64 = (1 << 24) - 1;
        const FIVE: u64 = (1 << 40) - 1;
        const SIX: u64 = (1 << 48) - 1;
        const SEVEN: u64 = (1 << 56) - 1;
        const KEY: u64 = u64::from_be_bytes(*b"\0\0\0\0\0key");
        const JWT: u64 = u64::from_be_bytes(*b"\0\0\0\0\0jwt");
        const TOKEN: u64 = u64::from_be_bytes(*b"\0\0\0token");
        const PASSW: u64 = u64::from_be_bytes(*b"\0\0\0passw");
        const SECRET: u64 = u64::from_be_bytes(*b"\0\0secret");
        const SESSION: u64 = u64::from_be_bytes(*b"\0session");
        if self.inline {
            return false;
        }
        let mut window = 0u64;
        text.bytes().any(|b| {
            window = (window << 8) | u64::from(b | 0x20);
            // Names beyond ASCII are matched with Unicode case folding.
            b >= 0x80
                || window & THREE == KEY
                || window & THREE == JWT
                || window & FIVE == TOKEN
                || window & FIVE == PASSW
                || window & SIX == SECRET
                || window & SEVEN == SESSION
        })
    }

    fn is_secret_field(&self, name: &str) -> bool {
        if !name.is_ascii() {
            return self.is_secret_header(name);
        }
        let common = ["code", "key", "sid", "auth", "sig", "signature"];
        if common.iter().any(|w| name.eq_ignore_ascii_case(w)) {
            return false;
        }
        secret_word(name)
            || ends_with_ci(name, "-token")
            || ends_with_ci(name, "_token")
            || ends_with_ci(name, "-key")
            || self.is_secret_query(name)
    }

    /// Whether the value of query parameter `name` moves out of the plan.
    pub(crate) fn query(&self, name: &str, value: &str) -> bool {
        !(self.inline || value.is_empty() || !self.is_secret_query(name) || value.contains("${"))
    }

    /// Whether `header_pattern` matches `name`, read without the regex for ASCII names: every
    /// header of every request is checked. A name with other characters goes to the regex,
    /// whose case folding reaches beyond ASCII (`ſ` is an `s` to it).
    fn is_secret_header(&self, name: &str) -> bool {
        if !name.is_ascii() {
            return self.header_pattern.is_match(name);
        }
        let is = |word: &str| name.eq_ignore_ascii_case(word);
        if is("authorization")
            || is("proxy-authorization")
            || is("authentication")
            || is("cookie")
            || is("token")
            || is("x-hub-signature")
            || is("x-hub-signature-256")
        {
            return true;
        }
        let dash = |s: &str, a: &str, b: &str| joined(s, a, b, b"-");
        if let Some(rest) = strip_prefix_ci(name, "x") {
            let rest = rest.strip_prefix('-').unwrap_or(rest);
            if dash(rest, "api", "key")
                || dash(rest, "auth", "token")
                || dash(rest, "access", "token")
            {
                return true;
            }
        }
        // `.` in the pattern matches anything but a line feed.
        dash(name, "api", "key")
            || (!name.contains('\n')
                && (ends_with_ci(name, "-token")
                    || ends_with_ci(name, "-key")
                    || secret_word(name)))
    }

    /// Whether `query_pattern` matches `name`, read without the regex for ASCII names.
    fn is_secret_query(&self, name: &str) -> bool {
        if !name.is_ascii() {
            return self.query_pattern.is_match(name);
        }
        let is = |word: &str| name.eq_ignore_ascii_case(word);
        let sep = |a: &str, b: &str| joined(name, a, b, b"-_");
        [
            "apikey",
            "key",
            "token",
            "jwt",
            "sid",
            "auth",
            "code",
            "secret",
            "password",
            "passwd",
            "signature",
            "sig",
        ]
        .iter()
        .any(|w| is(w))
            || sep("api", "key")
            || sep("access", "token")
            || sep("auth", "token")
            || sep("id", "token")
            || sep("refresh", "token")
            || sep("session", "id")
            || sep("client", "secret")
    }
}

/// Assigns environment names to secret values.
#[derive(Debug)]
pub(crate) struct Secrets {
    rules: SecretRules,
    /// The names given under each base name (see [`env_name`]).
    bases: HashMap<String, Base>,
    /// Hashes the values of secrets, once each.
    hasher: RandomState,
    /// For each secret in `found`, the next one whose value has the same hash, under the same
    /// base name.
    same_hash: Vec<Option<usize>>,
    /// The last value met under each of a few names, with its placeholder: a recording sends
    /// the same cookie and token with request after request, and a name's placeholder for a
    /// value never changes once given.
    recent: Vec<Recent>,
    /// The placeholder last given, when it is not among `recent`.
    last: String,
    pub(crate) found: Vec<Secret>,
    pub(crate) replaced: usize,
    /// Every value hashes alike, to test values that share a hash.
    #[cfg(test)]
    collide: bool,
}

/// The names given under one base name.
#[derive(Debug, Default)]
struct Base {
    /// How many.
    count: usize,
    /// The first secret (in `found`) whose value has this hash: values are looked up as they
    /// are, hashed once, and not copied into a key (a cookie can be long, and is sent by
    /// nearly every request).
    names: HashMap<u64, usize, BuildHasherDefault<Rehashed>>,
}

/// The hasher of keys that are hashes already: it keeps them.
#[derive(Debug, Default)]
struct Rehashed(u64);

impl Hasher for Rehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Debug)]
struct Recent {
    name: String,
    /// `env_name(name)`.
    base: String,
    value: String,
    placeholder: String,
}

impl Secrets {
    pub(crate) fn new(inline: bool) -> Secrets {
        Secrets {
            rules: SecretRules::new(inline),
            bases: HashMap::new(),
            hasher: RandomState::new(),
            same_hash: Vec::new(),
            recent: Vec::new(),
            last: String::new(),
            found: Vec::new(),
            replaced: 0,
            #[cfg(test)]
            collide: false,
        }
    }

    /// The rules that tell secrets apart.
    pub(crate) fn rules(&self) -> &SecretRules {
        &self.rules
    }

    /// The value to write for header `name`: a placeholder when it is a secret.
    #[cfg(test)]
    pub(crate) fn header(&mut self, name: &str, value: &str) -> Option<String> {
        if !self.rules.header(name, value) {
            return None;
        }
        Some(self.placeholder(name, value).to_string())
    }

    /// The value to write for query parameter `name`: a placeholder when it is a secret.
    #[cfg(test)]
    pub(crate) fn query(&mut self, name: &str, value: &str) -> Option<String> {
        if !self.rules.query(name, value) {
            return None;
        }
        Some(self.placeholder(name, value).to_string())
    }

    /// The placeholder for a variable (Postman `{{token}}`) whose value is a credential: known
    /// by its name, or `forced` when it is used for authentication or marked secret.
    pub(crate) fn variable(&mut self, name: &str, value: &str, forced: bool) -> Option<String> {
        if self.rules.inline
            || value.is_empty()
            || value.contains("${")
            || !(forced
                || self.rules.header_pattern.is_match(name)
                || self.rules.query_pattern.is_match(name))
        {
            return None;
        }
        Some(self.placeholder(&camel_env_name(name), value).to_string())
    }

    /// The placeholder (`${env.NAME}`) for a secret `value` met under `name`.
    pub(crate) fn placeholder(&mut self, name: &str, value: &str) -> &str {
        self.replaced += 1;
        if let Some(i) = self
            .recent
            .iter()
            .position(|r| r.name == name && r.value == value)
        {
            return &self.recent[i].placeholder;
        }
        let slot = self.recent.iter().position(|r| r.name == name);
        let base = match slot {
            Some(i) => std::mem::take(&mut self.recent[i].base),
            None => env_name(name),
        };
        let secret = self.assign(&base, value);
        let env = self.found.get(secret).map_or("", |s| s.name.as_str());
        let text = match slot {
            Some(i) => {
                let recent = &mut self.recent[i];
                recent.base = base;
                recent.value.clear();
                recent.value.push_str(value);
                &mut recent.placeholder
            }
            None if self.recent.len() < RECENT => {
                self.recent.push(Recent {
                    name: name.to_string(),
                    base,
                    value: value.to_string(),
                    placeholder: String::new(),
                });
                let i = self.recent.len() - 1;
                &mut self.recent[i].placeholder
            }
            None => &mut self.last,
        };
        text.clear();
        text.push_str("${env.");
        text.push_str(env);
        text.push('}');
        text
    }

    /// The secret (in `found`) of `value` under `base`, named on first sight.
    fn assign(&mut self, base: &str, value: &str) -> usize {
        if !self.bases.contains_key(base) {
            self.bases.insert(base.to_string(), Base::default());
        }
        let Some(names) = self.bases.get_mut(base) else {
            return usize::MAX;
        };
        #[cfg(test)]
        let hash = if self.collide {
            0
        } else {
            self.hasher.hash_one(value)
        };
        #[cfg(not(test))]
        let hash = self.hasher.hash_one(value);
        let new = self.found.len();
        let mut last = None;
        let mut next = names.names.get(&hash).copied();
        while let Some(i) = next {
            if self.found.get(i).is_some_and(|s| s.value == value) {
                return i;
            }
            last = Some(i);
            next = self.same_hash.get(i).copied().flatten();
        }
        match last.and_then(|i| self.same_hash.get_mut(i)) {
            Some(link) => *link = Some(new),
            None => {
                names.names.insert(hash, new);
            }
        }
        names.count += 1;
        let env = if names.count == 1 {
            base.to_string()
        } else {
            format!("{base}_{}", names.count)
        };
        self.found.push(Secret {
            name: env,
            value: value.to_string(),
        });
        self.same_hash.push(None);
        new
    }
}

/// `s` without the ASCII prefix `prefix`, compared ignoring ASCII case.
fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    s.get(..prefix.len())
        .filter(|head| head.eq_ignore_ascii_case(prefix))
        .and_then(|_| s.get(prefix.len()..))
}

/// Whether `s` is `a`, at most one of the bytes `separators`, then `b`, ignoring ASCII case.
fn joined(s: &str, a: &str, b: &str, separators: &[u8]) -> bool {
    let Some(rest) = strip_prefix_ci(s, a) else {
        return false;
    };
    let rest = match rest.as_bytes().first() {
        Some(c) if separators.contains(c) => rest.get(1..).unwrap_or_default(),
        _ => rest,
    };
    rest.eq_ignore_ascii_case(b)
}

/// Whether `s` ends with the ASCII `suffix`, compared ignoring ASCII case.
fn ends_with_ci(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.as_bytes()
            .get(s.len() - suffix.len()..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix.as_bytes()))
}

/// Whether the ASCII `name` contains `secret`, `session` or `password`, ignoring ASCII case:
/// one pass, over a window of the last 8 bytes.
fn secret_word(name: &str) -> bool {
    const SECRET: u64 = u64::from_be_bytes(*b"\0\0secret");
    const SESSION: u64 = u64::from_be_bytes(*b"\0session");
    const PASSWORD: u64 = u64::from_be_bytes(*b"password");
    const SIX: u64 = (1 << 48) - 1;
    const SEVEN: u64 = (1 << 56) - 1;
    let mut window = 0u64;
    name.bytes().any(|b| {
        // `| 0x20` lowers letters; no other byte becomes a lowercase letter.
        window = (window << 8) | u64::from(b | 0x20);
        window & SIX == SECRET || window & SEVEN == SESSION || window == PASSWORD
    })
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
    fn name_checks_agree_with_the_patterns() {
        let s = SecretRules::new(false);
        let pieces = [
            "x",
            "X",
            "-",
            "_",
            "api",
            "API",
            "key",
            "Key",
            "auth",
            "token",
            "access",
            "secret",
            "PassWord",
            "passwd",
            "client",
            "signature",
            "sig",
            "cookie",
            "authorization",
            "proxy-",
            "\n",
            "é",
            "ſ",
            "\u{212a}",
            "a",
            " ",
            "apikey",
            "session",
            "SessioN",
            "-token",
            "-Key",
            "jwt",
            "sid",
            "code",
            "id",
            "refresh",
            "x-hub-signature",
            "-256",
            "authentication",
            "",
        ];
        for name in [
            "X-Api-Key",
            "xapikey",
            "x-apikey",
            "x_api_key",
            "X-Auth-Token",
            "x-access-token",
            "xaccess-token",
            "api-key",
            "Api_Key",
            "my_secret\n",
            "client_secret",
            "client-secret",
            "clientsecret",
            "ACCESS_TOKEN",
            "sig",
            "Signature",
            "x--api-key",
            "Proxy-Authorization",
            "a\nsecret",
            "X-Client-Password",
            "Cookie2",
            "Private-Token",
            "X-Vault-Token",
            "X-Amz-Security-Token",
            "X-Goog-Api-Key",
            "Ocp-Apim-Subscription-Key",
            "X-Hub-Signature",
            "X-Hub-Signature-256",
            "Authentication",
            "Token",
            "X-Session-Token",
            "id_token",
            "refresh-token",
            "sessionid",
            "session_id",
            "jwt",
            "sid",
            "auth",
            "code",
            "x-token\n",
            "Tokens",
        ] {
            assert_eq!(
                s.is_secret_header(name),
                s.header_pattern.is_match(name),
                "{name:?}"
            );
            assert_eq!(
                s.is_secret_query(name),
                s.query_pattern.is_match(name),
                "{name:?}"
            );
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut matched = 0;
        for _ in 0..50_000 {
            crate::test_rand::step(&mut seed);
            let n = (seed % 5) as usize;
            let name: String = (0..n)
                .map(|i| pieces[((seed >> (8 * i + 3)) % pieces.len() as u64) as usize])
                .collect();
            assert_eq!(
                s.is_secret_header(&name),
                s.header_pattern.is_match(&name),
                "header {name:?}"
            );
            assert_eq!(
                s.is_secret_query(&name),
                s.query_pattern.is_match(&name),
                "query {name:?}"
            );
            matched += usize::from(s.header_pattern.is_match(&name));
        }
        assert!(matched > 1000, "{matched}");
    }

    #[test]
    fn values_with_one_hash_keep_their_names() {
        let mut s = Secrets::new(false);
        s.collide = true;
        let secrets: Vec<usize> = ["a", "b", "a", "c", "b", "c"]
            .iter()
            .map(|value| s.assign("T", value))
            .collect();
        assert_eq!(secrets, [0, 1, 0, 2, 1, 2]);
        let names: Vec<&str> = s.found.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["T", "T_2", "T_3"]);
    }

    #[test]
    fn secret_words_are_found_in_any_case() {
        for name in [
            "secret",
            "X-SeCrEt",
            "my-secret-key",
            "PASSWORD",
            "x-password2",
            "ppassword",
        ] {
            assert!(secret_word(name), "{name}");
        }
        for name in [
            "secre",
            "s3cret",
            "passwor",
            "pass-word",
            "Accept",
            "",
            "SECRE\u{54}",
        ] {
            assert_eq!(
                secret_word(name),
                name.to_ascii_lowercase().contains("secret"),
                "{name}"
            );
        }
    }

    #[test]
    fn the_listed_credential_names_move_out() {
        let s = SecretRules::new(false);
        for name in [
            "Private-Token",
            "X-Vault-Token",
            "X-Amz-Security-Token",
            "X-Refresh-Token",
            "X-Goog-Api-Key",
            "X-Shopify-Access-Token",
            "Authentication",
            "X-Session-Token",
            "Token",
            "X-Token",
            "Ocp-Apim-Subscription-Key",
            "X-Hub-Signature",
            "X-Hub-Signature-256",
            "X-My-Session",
            "X-Client-Secret",
        ] {
            assert!(s.header(name, "v"), "{name}");
        }
        for name in [
            "Accept",
            "Sec-WebSocket-Key",
            "Content-Type",
            "X-Request-Id",
        ] {
            assert!(!s.header(name, "v"), "{name}");
        }
        for name in [
            "id_token",
            "refresh_token",
            "jwt",
            "sessionid",
            "sid",
            "auth",
            "code",
        ] {
            assert!(s.query(name, "v"), "{name}");
        }
        for name in [
            "password",
            "client_secret",
            "new_password",
            "refresh_token",
            "x-api-key",
            "sessionToken",
            "apiKey",
        ] {
            assert!(s.field(name, "v"), "{name}");
        }
        for name in ["code", "key", "username", "email", "sort_key", "tokens"] {
            assert!(!s.field(name, "v"), "{name}");
        }
    }

    #[test]
    fn inline_keeps_everything() {
        let mut s = Secrets::new(true);
        assert_eq!(s.header("Cookie", "a=b"), None);
        assert!(s.found.is_empty());
    }
}
