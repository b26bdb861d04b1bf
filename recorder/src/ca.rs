//! The local certificate authority that makes HTTPS interception possible.
//!
//! On first use a CA (ECDSA P-256, ten years) is generated into the user's data directory: the
//! certificate as `ca/ld-ca.pem`, the private key as `ca/ld-ca-key.pem` with mode 0600. Later runs
//! load the same files, so a client that trusts the CA once keeps trusting every recording.
//!
//! Leaf certificates are issued per host on demand and cached. Each carries a subjectAltName
//! (a DNS name, or an IP address for IP hosts), because browsers refuse certificates that only
//! name the host in the common name. All leaves share one key generated per run: a key pair per
//! host would cost a key generation per new host and buy nothing, since every leaf is only ever
//! presented by this process. Each leaf gets a unique serial number, because Firefox rejects two
//! different certificates with the same issuer and serial.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{Error, Result};

/// File name of the CA certificate inside the data directory.
pub const CERT_FILE: &str = "ca/ld-ca.pem";
/// File name of the CA private key inside the data directory.
pub const KEY_FILE: &str = "ca/ld-ca-key.pem";
/// The common name the generated CA carries; users find it under this name in trust stores.
pub const CA_NAME: &str = "ld recording proxy CA";

/// Leaf certificates kept in memory; past this the cache starts over (a browsing session
/// touches far fewer hosts, and a miss only costs one signature).
const LEAF_CACHE_LIMIT: usize = 4096;

/// Where `ld` keeps its data: `LD_DATA_DIR` when set, else `$XDG_DATA_HOME/ld`, else
/// `~/.local/share/ld`. The caller reads the environment and passes the values in.
pub fn data_dir(
    ld_data_dir: Option<PathBuf>,
    xdg_data_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Option<PathBuf> {
    let non_empty = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = non_empty(ld_data_dir) {
        return Some(dir);
    }
    // The XDG specification says a relative XDG_DATA_HOME is invalid and must be ignored.
    if let Some(xdg) = non_empty(xdg_data_home).filter(|p| p.is_absolute()) {
        return Some(xdg.join("ld"));
    }
    non_empty(home).map(|h| h.join(".local").join("share").join("ld"))
}

/// The CA certificate's path inside `data_dir`.
pub fn cert_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CERT_FILE)
}

/// An existing CA key that group or others could read, and was made private (0600).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyTightened {
    /// The key file.
    pub path: PathBuf,
    /// Its permission bits before (e.g. `0o644`).
    pub was: u32,
}

/// Makes an existing CA key in `data_dir` readable by its owner only (0600) when group or
/// others could read or write it, and says so, so the caller can warn: anyone who read the key
/// can impersonate any site to clients that trust the CA. `None` when there is no key yet, it
/// was already private, or the platform has no Unix permissions.
/// [`LocalCa::load_or_create`] applies the same fix silently; call this first to learn of it.
pub fn tighten_key(data_dir: &Path) -> Result<Option<KeyTightened>> {
    let path = data_dir.join(KEY_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let was = meta.permissions().mode() & 0o7777;
        if was & 0o077 == 0 {
            return Ok(None);
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(&path, e))?;
        Ok(Some(KeyTightened { path, was }))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(None)
    }
}

/// The local CA, loaded or created, and the leaf certificates it has issued in this run.
pub struct LocalCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    cert_path: PathBuf,
    leaf_key: KeyPair,
    provider: Arc<rustls::crypto::CryptoProvider>,
    leaves: Mutex<HashMap<String, Arc<ServerConfig>>>,
    serial: AtomicU64,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa")
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

impl LocalCa {
    /// Loads the CA from `data_dir`, generating it first when it does not exist yet.
    /// Returns the CA and whether it was just created.
    pub fn load_or_create(data_dir: &Path) -> Result<(LocalCa, bool)> {
        let cert_path = data_dir.join(CERT_FILE);
        let key_path = data_dir.join(KEY_FILE);
        let created = if cert_path.exists() && key_path.exists() {
            tighten_key(data_dir)?;
            false
        } else {
            create(data_dir, &cert_path, &key_path)?;
            true
        };
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(|e| Error::io(&cert_path, e))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(|e| Error::io(&key_path, e))?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| Error::Ca(format!("{}: {e}", key_path.display())))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
            .map_err(|e| Error::Ca(format!("{}: {e}", cert_path.display())))?;
        let cert_der = pem_to_der(&cert_pem)
            .ok_or_else(|| Error::Ca(format!("{}: no certificate", cert_path.display())))?;
        let leaf_key = KeyPair::generate().map_err(|e| Error::Ca(e.to_string()))?;
        Ok((
            LocalCa {
                issuer,
                cert_pem,
                cert_der,
                cert_path,
                leaf_key,
                provider: Arc::new(rustls::crypto::ring::default_provider()),
                leaves: Mutex::new(HashMap::new()),
                serial: AtomicU64::new(0),
            },
            created,
        ))
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        self.cert_der.as_ref()
    }

    /// Where the CA certificate is stored.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// A TLS server configuration presenting a certificate for `host` (a DNS name or an IP
    /// address), issued on first use and cached. ALPN offers HTTP/2 and HTTP/1.1 so the client
    /// keeps the protocol it would have used without the proxy.
    pub(crate) fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let key = host.to_ascii_lowercase();
        if let Ok(cache) = self.leaves.lock()
            && let Some(config) = cache.get(&key)
        {
            return Ok(Arc::clone(config));
        }
        let leaf = self.issue_leaf(&key)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.serialize_der()));
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(Error::Tls)?
            .with_no_client_auth()
            .with_single_cert(vec![leaf], key_der)
            .map_err(Error::Tls)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let config = Arc::new(config);
        if let Ok(mut cache) = self.leaves.lock() {
            if cache.len() >= LEAF_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(key, Arc::clone(&config));
        }
        Ok(config)
    }

    fn issue_leaf(&self, host: &str) -> Result<CertificateDer<'static>> {
        let mut params = CertificateParams::default();
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                host.try_into()
                    .map_err(|e| Error::Ca(format!("{host:?} is not a valid host name: {e}")))?,
            ),
        };
        params.subject_alt_names = vec![san];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        params.distinguished_name = dn;
        // Backdated a day so a client with a slightly wrong clock still accepts it; 300 days
        // stays under the 398-day limit that some clients apply even to private roots.
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(300);
        params.serial_number = Some(self.next_serial());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&self.leaf_key, &self.issuer)
            .map_err(|e| Error::Ca(format!("signing a certificate for {host}: {e}")))?;
        Ok(cert.der().clone())
    }

    /// A serial unique across runs (time) and within one (counter), positive in 16 bytes.
    fn next_serial(&self) -> SerialNumber {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default() as u64;
        let count = self.serial.fetch_add(1, Ordering::Relaxed);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&nanos.to_be_bytes());
        bytes[8..].copy_from_slice(&count.to_be_bytes());
        bytes[0] &= 0x7f;
        bytes[0] |= 0x01;
        SerialNumber::from_slice(&bytes)
    }
}

fn create(data_dir: &Path, cert_path: &Path, key_path: &Path) -> Result<()> {
    let ca_dir = cert_path.parent().unwrap_or(data_dir);
    create_private_dir(ca_dir)?;
    let key = KeyPair::generate().map_err(|e| Error::Ca(e.to_string()))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    dn.push(DnType::OrganizationName, "ld");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    let mut serial = [0u8; 16];
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    serial.copy_from_slice(&nanos.to_be_bytes());
    serial[0] = 0x01;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let cert = params
        .self_signed(&key)
        .map_err(|e| Error::Ca(format!("generating the CA: {e}")))?;
    // The key first, private from its first byte; the certificate last, so a CA whose
    // certificate exists always has its key.
    ld_plan::fs::write_atomic(key_path, key.serialize_pem().as_bytes(), true)
        .map_err(|e| Error::Ca(e.to_string()))?;
    ld_plan::fs::write_atomic(cert_path, cert.pem().as_bytes(), false)
        .map_err(|e| Error::Ca(e.to_string()))?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| Error::io(dir, e))
}

/// The first certificate in a PEM text, DER-decoded.
pub(crate) fn pem_to_der(pem: &str) -> Option<CertificateDer<'static>> {
    pem_certificates(pem).into_iter().next()
}

/// Every `CERTIFICATE` block in a PEM text, DER-decoded.
pub(crate) fn pem_certificates(pem: &str) -> Vec<CertificateDer<'static>> {
    use base64::Engine as _;
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in pem.lines() {
        let line = line.trim();
        if line == "-----BEGIN CERTIFICATE-----" {
            body = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            if let Some(b64) = body.take()
                && let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b64)
            {
                out.push(CertificateDer::from(der));
            }
        } else if let Some(b) = body.as_mut() {
            b.push_str(line);
        }
    }
    out
}

/// The steps to make each common client trust the CA at `cert`.
pub fn install_help(cert: &Path, proxy: &str) -> String {
    let path = cert.display();
    format!(
        "\
The ld CA certificate is {path}
Clients must trust it before `ld record` can show them HTTPS sites. It is also served by the
running proxy at http://ld.proxy/ (ld.pem, ld.der).

Chromium / Chrome (Linux, NSS database):
  certutil -d sql:$HOME/.pki/nssdb -A -t \"C,,\" -n \"{CA_NAME}\" -i {path}
  (certutil is in the libnss3-tools package.) Chromium skips proxies for localhost unless
  started with --proxy-server=http://{proxy} --proxy-bypass-list=\"<-loopback>\".

Firefox:
  Settings > Privacy & Security > Certificates > View Certificates > Authorities > Import,
  pick {path} and tick \"Trust this CA to identify websites\". Or, per profile:
  certutil -d sql:$HOME/.mozilla/firefox/<profile> -A -t \"C,,\" -n \"{CA_NAME}\" -i {path}

curl:
  curl --proxy http://{proxy} --cacert {path} https://example.com/

Python (requests, httpx, urllib):
  export REQUESTS_CA_BUNDLE={path} SSL_CERT_FILE={path}
  export HTTPS_PROXY=http://{proxy} HTTP_PROXY=http://{proxy}

Node.js:
  export NODE_EXTRA_CA_CERTS={path}

System store:
  Debian/Ubuntu: sudo cp {path} /usr/local/share/ca-certificates/ld-ca.crt && sudo update-ca-certificates
  Fedora/RHEL:   sudo cp {path} /etc/pki/ca-trust/source/anchors/ld-ca.pem && sudo update-ca-trust
  macOS:         sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {path}
  Windows:       certutil -addstore -f ROOT {path}

The private key lives beside the certificate (mode 0600). Anyone holding it can impersonate
any site to a client that trusts this CA: remove the CA from trust stores when you are done.
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_prefers_ld_data_dir_then_xdg_then_home() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(data_dir(p("/x"), p("/xdg"), p("/h")), p("/x"));
        assert_eq!(data_dir(None, p("/xdg"), p("/h")), p("/xdg/ld"));
        assert_eq!(data_dir(p(""), p("rel"), p("/h")), p("/h/.local/share/ld"));
        assert_eq!(data_dir(None, None, None), None);
    }

    #[test]
    fn ca_is_created_once_with_a_private_key_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, created) = LocalCa::load_or_create(dir.path()).expect("create");
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, created) = LocalCa::load_or_create(dir.path()).expect("load");
        assert!(!created);
        assert_eq!(ca.cert_pem(), again.cert_pem());
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[cfg(unix)]
    #[test]
    fn a_readable_key_is_made_private_and_reported() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(tighten_key(dir.path()).expect("no key yet"), None);
        LocalCa::load_or_create(dir.path()).expect("create");
        assert_eq!(tighten_key(dir.path()).expect("private"), None);
        let key = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let tightened = tighten_key(dir.path()).expect("tighten").expect("reported");
        assert_eq!(tightened.was, 0o644);
        assert_eq!(tightened.path, key);
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        LocalCa::load_or_create(dir.path()).expect("load");
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn leaves_carry_a_san_for_names_and_ips_and_are_cached() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, _) = LocalCa::load_or_create(dir.path()).expect("create");
        let a = ca.server_config("Example.com").expect("dns leaf");
        let b = ca.server_config("example.com").expect("cached");
        assert!(Arc::ptr_eq(&a, &b));
        ca.server_config("127.0.0.1").expect("ip leaf");
        ca.server_config("[::1]").expect("ipv6 leaf");
        let der = ca.issue_leaf("example.com").expect("leaf");
        // The SAN extension (OID 2.5.29.17) and the name itself are in the certificate.
        let bytes = der.as_ref();
        assert!(bytes.windows(3).any(|w| w == [0x55, 0x1d, 0x11]));
        assert!(bytes.windows(11).any(|w| w == b"example.com"));
        let other = ca.issue_leaf("example.com").expect("leaf");
        assert_ne!(der, other, "two leaves never share a serial");
    }

    #[test]
    fn pem_blocks_are_decoded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, _) = LocalCa::load_or_create(dir.path()).expect("create");
        let twice = format!("{}{}", ca.cert_pem(), ca.cert_pem());
        assert_eq!(pem_certificates(&twice).len(), 2);
        assert_eq!(
            pem_to_der(ca.cert_pem()).expect("der").as_ref(),
            ca.cert_der()
        );
    }
}
