//! AWS Signature Version 4: the canonical request, the string to sign and the
//! `Authorization` header of one request, signed in the header (not presigned URLs).
//!
//! Written by hand on `ring` (already in the tree through rustls) rather than taken from the
//! `aws-sigv4` crate: that crate brings `aws-smithy-runtime-api`, `aws-credential-types`,
//! `http` 0.2 and their trees for what is a page of hashing and text. The unit tests hold AWS's
//! published test-suite vectors, so the canonical forms are checked against AWS's own.
//!
//! What ld signs: `host`, `x-amz-date`, `x-amz-content-sha256` (the hex SHA-256 of the body,
//! sent with every request: S3 requires it, other services ignore it), `x-amz-security-token`
//! with a session token, `content-type` when the request has one, and any other `x-amz-*`
//! header the task sets. The path is encoded once more as it goes on the wire (AWS's rule for
//! every service but S3, whose path is encoded once); the query's pairs are decoded, encoded
//! with AWS's unreserved set and sorted.

use ld_plan::encode;
use ring::{digest, hmac};

/// The algorithm's name, in the string to sign and the `Authorization` header.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Who signs, and for which region and service.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Credentials<'a> {
    pub(crate) access_key: &'a str,
    pub(crate) secret_key: &'a str,
    pub(crate) session_token: Option<&'a str>,
    pub(crate) region: &'a str,
    pub(crate) service: &'a str,
}

/// What is signed of a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    /// The path as sent on the wire (percent-encoded).
    pub(crate) path: &'a str,
    /// The query as sent, without `?`.
    pub(crate) query: &'a str,
    /// The headers to sign, `host` and `x-amz-date` among them; names in any case.
    pub(crate) headers: &'a [(&'a str, &'a str)],
    /// The hex SHA-256 of the body.
    pub(crate) payload_hash: &'a str,
}

/// The three texts a signature is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Signed {
    pub(crate) canonical_request: String,
    pub(crate) string_to_sign: String,
    pub(crate) authorization: String,
}

/// Hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// Signs `req` at `amz_date` (`YYYYMMDD'T'HHMMSS'Z'`).
pub(crate) fn sign(req: &Request<'_>, creds: &Credentials<'_>, amz_date: &str) -> Signed {
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let mut headers: Vec<(String, String)> = Vec::with_capacity(req.headers.len());
    for (name, value) in req.headers {
        let name = name.trim().to_ascii_lowercase();
        let value = collapse_spaces(value);
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push(',');
                v.push_str(&value);
            }
            None => headers.push((name, value)),
        }
    }
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let signed_headers = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let mut canonical = String::new();
    canonical.push_str(req.method);
    canonical.push('\n');
    canonical.push_str(&canonical_path(req.path, creds.service == "s3"));
    canonical.push('\n');
    canonical.push_str(&canonical_query(req.query));
    canonical.push('\n');
    for (n, v) in &headers {
        canonical.push_str(n);
        canonical.push(':');
        canonical.push_str(v);
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(&signed_headers);
    canonical.push('\n');
    canonical.push_str(req.payload_hash);

    let scope = format!("{date}/{}/{}/aws4_request", creds.region, creds.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let mut key = hmac_sha256(format!("AWS4{}", creds.secret_key).as_bytes(), date);
    for part in [creds.region, creds.service, "aws4_request"] {
        key = hmac_sha256(&key, part);
    }
    let signature = hex(&hmac_sha256(&key, &string_to_sign));
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key
    );
    Signed {
        canonical_request: canonical,
        string_to_sign,
        authorization,
    }
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&key, data.as_bytes()).as_ref().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// A header value trimmed, runs of spaces inside it made one.
fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// AWS's URI encoding: everything but `A-Za-z0-9-_.~` as `%XX` (upper case), `/` kept when
/// `keep_slash`.
fn uri_encode(bytes: &[u8], keep_slash: bool, out: &mut String) {
    let set = if keep_slash {
        encode::UNRESERVED_PATH
    } else {
        encode::UNRESERVED
    };
    encode::push_bytes(bytes, set, out);
}

fn canonical_path(path: &str, s3: bool) -> String {
    let path = if path.is_empty() { "/" } else { path };
    let mut out = String::with_capacity(path.len() + 8);
    if s3 {
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(path).collect();
        uri_encode(&decoded, true, &mut out);
    } else {
        uri_encode(path.as_bytes(), true, &mut out);
    }
    out
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let mut key = String::new();
            let mut value = String::new();
            let k: Vec<u8> = percent_encoding::percent_decode_str(k).collect();
            let v: Vec<u8> = percent_encoding::percent_decode_str(v).collect();
            uri_encode(&k, false, &mut key);
            uri_encode(&v, false, &mut value);
            (key, value)
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    //! AWS's SigV4 test suite (`aws-sig-v4-test-suite`, 2015-08-30 edition): each vector's
    //! published canonical request, string to sign and `Authorization`, written out by hand.
    use super::*;

    const CREDS: Credentials<'static> = Credentials {
        access_key: "AKIDEXAMPLE",
        secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        session_token: None,
        region: "us-east-1",
        service: "service",
    };
    const DATE: &str = "20150830T123600Z";
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const CREDENTIAL: &str = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";

    fn signed(
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Signed {
        let hash = sha256_hex(body.as_bytes());
        let req = Request {
            method,
            path,
            query,
            headers,
            payload_hash: &hash,
        };
        sign(&req, &CREDS, DATE)
    }

    fn authorization(signed_headers: &str, signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential={CREDENTIAL}, SignedHeaders={signed_headers}, Signature={signature}"
        )
    }

    #[test]
    fn empty_body_hash_is_sha256_of_nothing() {
        assert_eq!(sha256_hex(b""), EMPTY);
    }

    #[test]
    fn get_vanilla() {
        let s = signed(
            "GET",
            "/",
            "",
            &[("Host", "example.amazonaws.com"), ("X-Amz-Date", DATE)],
            "",
        );
        assert_eq!(
            s.canonical_request,
            format!(
                "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:{DATE}\n\nhost;x-amz-date\n{EMPTY}"
            )
        );
        assert_eq!(
            s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        assert_eq!(
            s.authorization,
            authorization(
                "host;x-amz-date",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        let s = signed(
            "GET",
            "/",
            "Param2=value2&Param1=value1",
            &[("Host", "example.amazonaws.com"), ("X-Amz-Date", DATE)],
            "",
        );
        assert_eq!(
            s.canonical_request,
            format!(
                "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:{DATE}\n\nhost;x-amz-date\n{EMPTY}"
            )
        );
        assert_eq!(
            s.authorization,
            authorization(
                "host;x-amz-date",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
            )
        );
    }

    #[test]
    fn get_header_value_trim() {
        let s = signed(
            "GET",
            "/",
            "",
            &[
                ("Host", "example.amazonaws.com"),
                ("My-Header1", " value1"),
                ("My-Header2", " \"a   b   c\""),
                ("X-Amz-Date", DATE),
            ],
            "",
        );
        assert_eq!(
            s.canonical_request,
            format!(
                "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\nx-amz-date:{DATE}\n\nhost;my-header1;my-header2;x-amz-date\n{EMPTY}"
            )
        );
        assert_eq!(
            s.authorization,
            authorization(
                "host;my-header1;my-header2;x-amz-date",
                "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"
            )
        );
    }

    #[test]
    fn post_x_www_form_urlencoded() {
        let s = signed(
            "POST",
            "/",
            "",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", DATE),
            ],
            "Param1=value1",
        );
        assert_eq!(
            s.canonical_request,
            format!(
                "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\nx-amz-date:{DATE}\n\ncontent-type;host;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
            )
        );
        assert_eq!(
            s.authorization,
            authorization(
                "content-type;host;x-amz-date",
                "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
            )
        );
    }

    #[test]
    fn post_sts_header_before() {
        let token = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
        let s = signed(
            "POST",
            "/",
            "",
            &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", DATE),
                ("X-Amz-Security-Token", token),
            ],
            "",
        );
        assert_eq!(
            s.canonical_request,
            format!(
                "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:{DATE}\nx-amz-security-token:{token}\n\nhost;x-amz-date;x-amz-security-token\n{EMPTY}"
            )
        );
        assert_eq!(
            s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nc237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6"
        );
        assert_eq!(
            s.authorization,
            authorization(
                "host;x-amz-date;x-amz-security-token",
                "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
            )
        );
    }

    #[test]
    fn paths_are_encoded_once_more_except_for_s3() {
        assert_eq!(canonical_path("/a%20b/c", false), "/a%2520b/c");
        assert_eq!(canonical_path("/a%20b/c", true), "/a%20b/c");
        assert_eq!(canonical_path("", false), "/");
    }
}
