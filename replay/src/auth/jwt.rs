//! JSON Web Tokens (RFC 7519) minted by the engine: `header.claims.signature`, each part
//! base64url without padding, signed with HS256, RS256 or ES256.
//!
//! Written on `ring` (already in the tree through rustls) rather than taken from the
//! `jsonwebtoken` crate, whose releases sign with `aws-lc-rs` or the RustCrypto crates (`rsa`,
//! `p256`, ...): a second cryptography stack for three signatures ring already makes.
//!
//! The key is the HMAC secret itself for HS256. For RS256 and ES256 it is a PEM private key,
//! inline (text starting with `-----BEGIN`) or the path of a PEM file, relative to the plan:
//! PKCS#8 (`BEGIN PRIVATE KEY`) for both, PKCS#1 (`BEGIN RSA PRIVATE KEY`) for RSA too.

use base64::Engine as _;
use ring::hmac;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Map, Value};

/// A signing algorithm of RFC 7518 that ld mints with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alg {
    Hs256,
    Rs256,
    Es256,
}

impl Alg {
    /// The names a plan gives, as `alg` in the token's header.
    pub(crate) const NAMES: [&'static str; 3] = ["HS256", "RS256", "ES256"];

    pub(crate) fn parse(name: &str) -> Option<Alg> {
        match name.trim().to_ascii_uppercase().as_str() {
            "HS256" => Some(Alg::Hs256),
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }
}

/// A key ready to sign with, read once when the plan is compiled.
pub(crate) enum SigningKey {
    Hmac(hmac::Key),
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl std::fmt::Debug for SigningKey {
    // The key material stays out of every debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SigningKey::Hmac(_) => "SigningKey::Hmac(..)",
            SigningKey::Rsa(_) => "SigningKey::Rsa(..)",
            SigningKey::Ec(_) => "SigningKey::Ec(..)",
        })
    }
}

impl SigningKey {
    /// The key for `alg` from the plan's `key`: the secret for HS256, PEM text (or the
    /// contents of the PEM file it names) otherwise. Errors say what is wrong, never the key.
    pub(crate) fn new(
        alg: Alg,
        key: &str,
        base_dir: &std::path::Path,
    ) -> Result<SigningKey, String> {
        if alg == Alg::Hs256 {
            if key.is_empty() {
                return Err("an HS256 key must not be empty".into());
            }
            return Ok(SigningKey::Hmac(hmac::Key::new(
                hmac::HMAC_SHA256,
                key.as_bytes(),
            )));
        }
        let pem = if key.trim_start().starts_with("-----BEGIN") {
            key.as_bytes().to_vec()
        } else {
            let path = base_dir.join(key.trim());
            std::fs::read(&path)
                .map_err(|e| format!("cannot read the PEM key {}: {e}", path.display()))?
        };
        let der = PrivateKeyDer::from_pem_slice(&pem)
            .map_err(|_| format!("the {} key is not a PEM private key", alg.name()))?;
        match (alg, der) {
            (Alg::Rs256, PrivateKeyDer::Pkcs8(d)) => RsaKeyPair::from_pkcs8(d.secret_pkcs8_der())
                .map(SigningKey::Rsa)
                .map_err(|e| format!("not an RSA private key: {e}")),
            (Alg::Rs256, PrivateKeyDer::Pkcs1(d)) => RsaKeyPair::from_der(d.secret_pkcs1_der())
                .map(SigningKey::Rsa)
                .map_err(|e| format!("not an RSA private key: {e}")),
            (Alg::Es256, PrivateKeyDer::Pkcs8(d)) => EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                d.secret_pkcs8_der(),
                &SystemRandom::new(),
            )
            .map(SigningKey::Ec)
            .map_err(|e| format!("not a P-256 private key: {e}")),
            (Alg::Es256, _) => Err("an ES256 key must be PKCS#8 PEM (BEGIN PRIVATE KEY)".into()),
            _ => Err(format!(
                "an {} key must be PKCS#8 or PKCS#1 PEM",
                alg.name()
            )),
        }
    }

    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, String> {
        let rng = SystemRandom::new();
        match self {
            SigningKey::Hmac(k) => Ok(hmac::sign(k, input).as_ref().to_vec()),
            SigningKey::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, input, &mut sig)
                    .map_err(|_| "RSA signing failed".to_string())?;
                Ok(sig)
            }
            SigningKey::Ec(k) => k
                .sign(&rng, input)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| "ECDSA signing failed".to_string()),
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The signature part over `header.claims` (both already base64url).
pub(crate) fn signature(
    key: &SigningKey,
    header_b64: &str,
    claims_b64: &str,
) -> Result<String, String> {
    let input = format!("{header_b64}.{claims_b64}");
    Ok(b64(&key.sign(input.as_bytes())?))
}

/// A token of `claims` as given, with the header `{"alg":..,"typ":"JWT"}`.
pub(crate) fn encode(
    alg: Alg,
    key: &SigningKey,
    claims: &Map<String, Value>,
) -> Result<String, String> {
    let header = format!(r#"{{"alg":"{}","typ":"JWT"}}"#, alg.name());
    let header = b64(header.as_bytes());
    let claims = serde_json::to_vec(claims).map_err(|e| format!("claims: {e}"))?;
    let claims = b64(&claims);
    let sig = signature(key, &header, &claims)?;
    Ok(format!("{header}.{claims}.{sig}"))
}

/// `claims` with `iat` (now) and `exp` (now + `lifetime_s`) added where the plan sets
/// neither, as seconds since the epoch.
pub(crate) fn with_times(
    mut claims: Map<String, Value>,
    now_s: u64,
    lifetime_s: u64,
) -> Map<String, Value> {
    claims.entry("iat").or_insert_with(|| Value::from(now_s));
    claims
        .entry("exp")
        .or_insert_with(|| Value::from(now_s.saturating_add(lifetime_s)));
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2048-bit RSA key made for this test only (`openssl genpkey -algorithm RSA`).
    const RSA_PEM: &str = include_str!("testdata/rsa-2048.pem");

    fn part(token: &str, i: usize) -> Vec<u8> {
        let p = token.split('.').nth(i).expect("part");
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .expect("base64url")
    }

    #[test]
    fn hs256_matches_rfc_7515_appendix_a1() {
        // The JWK `k` of RFC 7515 A.1, and its encoded header and payload (with their CRLFs).
        let k = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
            .expect("k");
        let key = SigningKey::Hmac(hmac::Key::new(hmac::HMAC_SHA256, &k));
        let sig = signature(
            &key,
            "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9",
            "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
        )
        .expect("sign");
        assert_eq!(sig, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    }

    #[test]
    fn hs256_token_matches_jwt_io_example() {
        let key = SigningKey::new(Alg::Hs256, "your-256-bit-secret", std::path::Path::new("."))
            .expect("key");
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"sub":"1234567890","name":"John Doe","iat":1516239022}"#)
                .expect("claims");
        assert_eq!(
            encode(Alg::Hs256, &key, &claims).expect("token"),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
        );
    }

    #[test]
    fn rs256_verifies_with_the_public_key() {
        let key = SigningKey::new(Alg::Rs256, RSA_PEM, std::path::Path::new(".")).expect("key");
        let token = encode(Alg::Rs256, &key, &Map::new()).expect("token");
        let SigningKey::Rsa(pair) = &key else {
            panic!("an RSA key");
        };
        let (input, _) = token.rsplit_once('.').expect("dots");
        let public = signature::UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            pair.public().as_ref(),
        );
        public
            .verify(input.as_bytes(), &part(&token, 2))
            .expect("valid");
        assert!(public.verify(b"tampered", &part(&token, 2)).is_err());
        assert_eq!(part(&token, 0), br#"{"alg":"RS256","typ":"JWT"}"#);
    }

    #[test]
    fn es256_verifies_with_the_public_key() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate");
        let pem = rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_ref().to_vec());
        let text = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(pem.secret_pkcs8_der())
        );
        let key = SigningKey::new(Alg::Es256, &text, std::path::Path::new(".")).expect("key");
        let token = encode(Alg::Es256, &key, &Map::new()).expect("token");
        let SigningKey::Ec(pair) = &key else {
            panic!("an EC key");
        };
        use ring::signature::KeyPair as _;
        let public = signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            pair.public_key().as_ref(),
        );
        let (input, _) = token.rsplit_once('.').expect("dots");
        let sig = part(&token, 2);
        assert_eq!(sig.len(), 64, "JWS ES256 signatures are r || s");
        public.verify(input.as_bytes(), &sig).expect("valid");
    }

    #[test]
    fn iat_and_exp_are_added_unless_set() {
        let c = with_times(Map::new(), 1000, 60);
        assert_eq!(c["iat"], 1000);
        assert_eq!(c["exp"], 1060);
        let mut given = Map::new();
        given.insert("exp".into(), Value::from(5));
        assert_eq!(with_times(given, 1000, 60)["exp"], 5);
    }

    #[test]
    fn bad_keys_are_errors_that_do_not_quote_the_key() {
        let e = SigningKey::new(
            Alg::Rs256,
            "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
            std::path::Path::new("."),
        )
        .expect_err("bad key");
        assert!(!e.contains("bm90"), "{e}");
        assert!(SigningKey::new(Alg::Es256, RSA_PEM, std::path::Path::new(".")).is_err());
        assert!(SigningKey::new(Alg::Hs256, "", std::path::Path::new(".")).is_err());
    }
}
