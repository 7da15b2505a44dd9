//! `--web.config.file`: the Prometheus exporter-toolkit web configuration
//! (`tls_server_config`, `http_server_config`, `basic_auth_users`), read into
//! a validated [`WebConfig`] whose errors name the key, and a reloadable
//! [`WebConfigHandle`] that the HTTP listeners read on every connection and
//! request. A reload that fails keeps the running configuration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::basic_auth::{self, BasicAuth};
use super::tls;

/// Largest web configuration, certificate, key or CA file read.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// A reload that has not read and validated the files within this time fails
/// (a FIFO or a hung network mount cannot hold the exporter).
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Highest bcrypt cost accepted: each step doubles the CPU time of a check
/// (cost 10 takes about 50-100 ms, 16 several seconds).
pub const MAX_BCRYPT_COST: u32 = 16;

/// Response headers that `http_server_config.headers` may set, as in the
/// exporter-toolkit.
const SETTABLE_HEADERS: [&str; 5] = [
    "strict-transport-security",
    "x-content-type-options",
    "x-frame-options",
    "x-xss-protection",
    "content-security-policy",
];

/// Why a web configuration was not taken. The cause, when there is one, is
/// the error's source: print it with [`crate::errors::chain`].
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The file is missing, unreadable, not a regular file or too large.
    #[error(transparent)]
    Unreadable(#[from] FileError),
    /// Its content is invalid; the source names the key.
    #[error("{path}")]
    Invalid { path: PathBuf, source: Invalid },
    #[error("{path}: reading and validating took longer than {}s", RELOAD_TIMEOUT.as_secs())]
    Timeout { path: PathBuf },
    #[error("{path}: the reload failed unexpectedly")]
    Failed { path: PathBuf, source: tokio::task::JoinError },
    #[error(
        "{path}: tls_server_config: a reload cannot turn TLS {}; restart the exporter to change it",
        if *now_tls { "on" } else { "off" }
    )]
    TlsSwitch { path: PathBuf, now_tls: bool },
}

/// What is wrong with a web configuration's content; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    /// Not YAML, or a key or type the file may not hold (serde's message).
    #[error("{0}")]
    Yaml(serde_norway::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("basic_auth_users: invalid user name {0:?} (empty or holding ':')")]
    UserName(String),
    #[error("basic_auth_users.{0}: not a bcrypt hash (expected $2y$..., 60 characters)")]
    NotBcrypt(String),
    #[error("basic_auth_users.{user}: bcrypt cost {cost} is above {MAX_BCRYPT_COST} (each check would take seconds)")]
    BcryptCost { user: String, cost: u32 },
    #[error("http_server_config.headers.{0}: this header cannot be set (allowed: {allowed})", allowed = SETTABLE_HEADERS.join(", "))]
    HeaderNotSettable(String),
    #[error("http_server_config.headers.{name}: invalid value {value:?}")]
    HeaderValue { name: String, value: String },
}

/// A file that cannot be read (see [`read_limited`]): the message is its
/// path, the source what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("{path}")]
pub struct FileError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
}

/// The `tls_server_config` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub client_auth_type: Option<String>,
    pub client_ca_file: Option<String>,
    pub client_allowed_sans: Option<Vec<String>>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub cipher_suites: Option<Vec<String>>,
    pub prefer_server_cipher_suites: Option<bool>,
    pub curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    /// Accepted for compatibility; the exporter serves HTTP/1.1.
    #[serde(default)]
    #[allow(dead_code)]
    http2: Option<bool>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
}

/// One validated web configuration.
#[derive(Debug)]
pub struct WebConfig {
    tls: Option<Arc<rustls::ServerConfig>>,
    auth: BasicAuth,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Default for WebConfig {
    fn default() -> WebConfig {
        WebConfig { tls: None, auth: BasicAuth::new(BTreeMap::new()), headers: Vec::new() }
    }
}

impl WebConfig {
    /// Reads and validates `path` (blocking I/O). Relative paths inside it
    /// are resolved against its folder.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = read_limited(path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        WebConfig::parse(&text, dir).map_err(|source| WebConfigError::Invalid { path: path.to_owned(), source })
    }

    /// Validates a configuration's text; `dir` resolves relative paths.
    pub fn parse(text: &[u8], dir: &Path) -> Result<WebConfig, Invalid> {
        let raw: RawWebConfig = if text.iter().all(u8::is_ascii_whitespace) {
            RawWebConfig::default()
        } else {
            serde_norway::from_slice(text).map_err(Invalid::Yaml)?
        };
        let tls = match &raw.tls_server_config {
            Some(t) => tls::server_config(t, dir)?,
            None => None,
        };
        let mut users = BTreeMap::new();
        for (user, hash) in raw.basic_auth_users.unwrap_or_default() {
            if user.is_empty() || user.contains(':') {
                return Err(Invalid::UserName(user));
            }
            let Ok(parts) = hash.parse::<bcrypt::HashParts>() else {
                return Err(Invalid::NotBcrypt(user));
            };
            if parts.get_cost() > MAX_BCRYPT_COST {
                return Err(Invalid::BcryptCost { user, cost: parts.get_cost() });
            }
            users.insert(user, hash);
        }
        let mut headers = Vec::new();
        for (name, value) in raw.http_server_config.and_then(|h| h.headers).unwrap_or_default() {
            let lower = name.to_ascii_lowercase();
            if !SETTABLE_HEADERS.contains(&lower.as_str()) {
                return Err(Invalid::HeaderNotSettable(name));
            }
            let ok = match lower.as_str() {
                "x-content-type-options" => value.eq_ignore_ascii_case("nosniff"),
                "x-frame-options" => value.eq_ignore_ascii_case("deny") || value.eq_ignore_ascii_case("sameorigin"),
                _ => true,
            };
            let parsed = HeaderValue::from_str(&value).ok().filter(|_| ok);
            let (Ok(n), Some(v)) = (HeaderName::from_bytes(lower.as_bytes()), parsed) else {
                return Err(Invalid::HeaderValue { name, value });
            };
            headers.push((n, v));
        }
        Ok(WebConfig { tls, auth: BasicAuth::new(users), headers })
    }

    /// The TLS configuration, when TLS is on.
    pub fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.clone()
    }

    /// Whether requests must carry basic-auth credentials.
    pub fn auth_enabled(&self) -> bool {
        self.auth.enabled()
    }

    /// Headers added to every response.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }
}

/// Reads a regular file of at most [`MAX_FILE_BYTES`] (see
/// [`crate::config::read_limited`]); the error names the file and the problem.
pub(crate) fn read_limited(path: &Path) -> Result<Vec<u8>, FileError> {
    crate::config::read_limited(path, MAX_FILE_BYTES).map_err(|source| FileError { path: path.to_owned(), source })
}

/// The running web configuration, shared by every listener; cheap to clone.
/// Each new connection takes the TLS configuration in force, and each
/// request is checked against the users in force.
#[derive(Debug, Clone)]
pub struct WebConfigHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: Option<PathBuf>,
    current: RwLock<Arc<WebConfig>>,
    bcrypt_slots: Arc<Semaphore>,
}

impl Default for WebConfigHandle {
    fn default() -> WebConfigHandle {
        WebConfigHandle::plain()
    }
}

impl WebConfigHandle {
    /// No web configuration file: plain HTTP, no authentication.
    pub fn plain() -> WebConfigHandle {
        WebConfigHandle::with(None, WebConfig::default())
    }

    /// Loads `path` (blocking I/O, for start-up).
    pub fn open(path: &Path) -> Result<WebConfigHandle, WebConfigError> {
        let config = WebConfig::load(path)?;
        Ok(WebConfigHandle::with(Some(path.to_owned()), config))
    }

    fn with(path: Option<PathBuf>, config: WebConfig) -> WebConfigHandle {
        WebConfigHandle {
            inner: Arc::new(Inner {
                path,
                current: RwLock::new(Arc::new(config)),
                bcrypt_slots: Arc::new(Semaphore::new(basic_auth::BCRYPT_IN_FLIGHT)),
            }),
        }
    }

    /// The file this handle reloads from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<WebConfig> {
        self.inner.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Re-reads the file on a blocking thread, within [`RELOAD_TIMEOUT`].
    /// On success the new certificates, users and headers apply to the next
    /// connection and request (the cache of checked passwords starts empty);
    /// on any failure the running configuration stays. TLS cannot be turned
    /// on or off by a reload. Without a file this does nothing.
    pub async fn reload(&self) -> Result<(), WebConfigError> {
        let Some(path) = self.inner.path.clone() else { return Ok(()) };
        let task = tokio::task::spawn_blocking({
            let handle = self.clone();
            move || handle.load_replacement()
        });
        let fresh = match tokio::time::timeout(RELOAD_TIMEOUT, task).await {
            Err(_) => return Err(WebConfigError::Timeout { path }),
            Ok(Err(source)) => return Err(WebConfigError::Failed { path, source }),
            Ok(Ok(loaded)) => loaded?,
        };
        if let Some(fresh) = fresh {
            self.apply(fresh);
        }
        Ok(())
    }

    /// The first half of [`reload`](Self::reload), for a caller that loads
    /// several files on its own blocking thread and applies them together:
    /// reads and validates the file (blocking I/O) and checks that it does
    /// not turn TLS on or off. `None` without a file.
    pub fn load_replacement(&self) -> Result<Option<WebConfig>, WebConfigError> {
        let Some(path) = self.inner.path.as_deref() else { return Ok(None) };
        let fresh = WebConfig::load(path)?;
        let running_tls = self.current().tls.is_some();
        if fresh.tls.is_some() != running_tls {
            return Err(WebConfigError::TlsSwitch { path: path.to_owned(), now_tls: !running_tls });
        }
        Ok(Some(fresh))
    }

    /// The second half: puts a configuration from
    /// [`load_replacement`](Self::load_replacement) in force.
    pub fn apply(&self, fresh: WebConfig) {
        *self.inner.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fresh);
    }

    /// Whether the request's `Authorization` header passes the users in force.
    pub(crate) async fn authorize(&self, header: Option<&HeaderValue>) -> bool {
        let config = self.current();
        config.auth.check(header, &self.inner.bcrypt_slots).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WebConfig, String> {
        WebConfig::parse(text.as_bytes(), Path::new("/nonexistent")).map_err(|e| crate::errors::chain(&e))
    }

    #[test]
    fn empty_file_means_plain_http_without_auth() {
        let c = parse("").unwrap();
        assert!(c.tls().is_none() && !c.auth_enabled() && c.headers().is_empty());
        let c = parse("tls_server_config: {}\n").unwrap();
        assert!(c.tls().is_none(), "no cert and no key: TLS off, as in the exporter-toolkit");
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("tls_server_config:\n  cert_fil: x\n", "cert_fil"),
            ("basic_auth_user:\n  a: b\n", "basic_auth_user"),
            ("tls_server_config:\n  cert_file: c.pem\n", "tls_server_config.key_file"),
            ("tls_server_config:\n  key_file: k.pem\n", "tls_server_config.cert_file"),
            ("tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n", "tls_server_config.cert_file"),
            ("basic_auth_users:\n  prom: plaintext\n", "basic_auth_users.prom"),
            ("basic_auth_users:\n  prom: $2y$17$abcdefghijklmnopqrstuuHFMyVNmvtUb6bZsWgQQ5A24lwEi0vz.\n", "cost 17"),
            ("basic_auth_users:\n  'a:b': x\n", "basic_auth_users"),
            ("http_server_config:\n  headers:\n    Server: x\n", "http_server_config.headers.Server"),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                "http_server_config.headers.X-Frame-Options",
            ),
            ("http_server_config:\n  http3: true\n", "http3"),
        ];
        for (text, key) in cases {
            let err = parse(text).err().unwrap_or_else(|| panic!("accepted: {text}"));
            assert!(err.contains(key), "{text:?} -> {err}");
        }
    }

    #[test]
    fn users_and_headers_are_taken() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let c = parse(&format!(
            "basic_auth_users:\n  prom: '{hash}'\nhttp_server_config:\n  http2: true\n  headers:\n    X-Frame-Options: deny\n"
        ))
        .unwrap();
        assert!(c.auth_enabled());
        assert_eq!(c.headers()[0].0, "x-frame-options");
    }

    #[test]
    fn files_must_be_regular_and_small() {
        let dir = tempfile::tempdir().unwrap();
        let err = crate::errors::chain(&read_limited(dir.path()).unwrap_err());
        assert!(err.contains("not a regular file"), "{err}");
        let big = dir.path().join("big.yml");
        std::fs::write(&big, vec![b' '; MAX_FILE_BYTES as usize + 1]).unwrap();
        let err = crate::errors::chain(&WebConfig::load(&big).unwrap_err());
        assert!(err.contains("larger than"), "{err}");
    }

    #[tokio::test]
    async fn a_broken_reload_keeps_the_running_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        let hash = bcrypt::hash("pw", 4).unwrap();
        std::fs::write(&path, format!("basic_auth_users:\n  prom: '{hash}'\n")).unwrap();
        let handle = WebConfigHandle::open(&path).unwrap();
        let good = HeaderValue::from_static("Basic cHJvbTpwdw=="); // prom:pw
        assert!(handle.authorize(Some(&good)).await);
        assert!(!handle.authorize(None).await);

        std::fs::write(&path, "basic_auth_users:\n  prom: not-a-hash\n").unwrap();
        let err = crate::errors::chain(&handle.reload().await.unwrap_err());
        assert!(err.contains("basic_auth_users.prom"), "{err}");
        assert!(handle.authorize(Some(&good)).await, "the running users stay");
        assert!(!handle.authorize(None).await);

        std::fs::remove_file(&path).unwrap();
        assert!(handle.reload().await.is_err());
        assert!(!handle.authorize(None).await, "a vanished file keeps the running configuration too");

        std::fs::write(&path, "").unwrap();
        handle.reload().await.unwrap();
        assert!(handle.authorize(None).await, "a good reload applies");

        // A FIFO in place of the file fails at once instead of blocking.
        std::fs::remove_file(&path).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(&path).status().unwrap().success());
        let err = crate::errors::chain(&handle.reload().await.unwrap_err());
        assert!(err.contains("not a regular file"), "{err}");
        assert!(handle.authorize(None).await);
    }

    #[test]
    fn a_reload_cannot_turn_tls_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, "").unwrap();
        let handle = WebConfigHandle::open(&path).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().self_signed(&key).unwrap();
        std::fs::write(dir.path().join("c.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("k.pem"), key.serialize_pem()).unwrap();
        std::fs::write(&path, "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n").unwrap();
        let err = crate::errors::chain(&handle.load_replacement().unwrap_err());
        assert!(err.contains("cannot turn TLS on"), "{err}");
        assert!(handle.current().tls().is_none());
        assert!(WebConfigHandle::open(&path).unwrap().current().tls().is_some(), "the file itself is valid");
    }
}
