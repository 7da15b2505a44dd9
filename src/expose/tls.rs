//! TLS for the HTTP listeners: turns the `tls_server_config` section of the
//! web configuration file into a rustls server configuration on the aws-lc-rs
//! provider (the one the AWS SDK already brings), with the exporter-toolkit's
//! client-certificate policies, TLS versions, cipher suites and curves.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, NamedGroup, RootCertStore, SignatureScheme};

use super::web_config::{read_limited, FileError, RawTls};

/// What the client must show, in the exporter-toolkit's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

/// Why a `tls_server_config` section was refused; every message names the key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls_server_config.cert_file: missing (key_file is set)")]
    CertFileMissing,
    #[error("tls_server_config.key_file: missing (cert_file is set)")]
    KeyFileMissing,
    #[error(
        "tls_server_config.client_allowed_sans: not supported by this exporter; \
         use client_ca_file with a CA that signs only the allowed clients"
    )]
    AllowedSans,
    #[error(
        "tls_server_config.client_auth_type: unknown policy {0:?} (expected NoClientCert, \
         RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
    )]
    UnknownPolicy(String),
    #[error("tls_server_config.{key}: {version} is not supported (TLS12 or TLS13)")]
    OldVersion { key: &'static str, version: String },
    #[error("tls_server_config.{key}: unknown version {version:?} (expected TLS12 or TLS13)")]
    UnknownVersion { key: &'static str, version: String },
    #[error("tls_server_config.min_version: TLS{min} is above max_version TLS{max}")]
    VersionOrder { min: u8, max: u8 },
    #[error("tls_server_config.cipher_suites: empty list with only TLS12 allowed")]
    NoTls12Suites,
    #[error("tls_server_config.cipher_suites[{index}]: {name:?} is not supported (supported: {supported})")]
    UnknownSuite { index: usize, name: String, supported: String },
    #[error(
        "tls_server_config.curve_preferences[{index}]: unknown curve {name:?} \
         (expected X25519, CurveP256, CurveP384, CurveP521 or X25519MLKEM768)"
    )]
    UnknownCurve { index: usize, name: String },
    #[error("tls_server_config.curve_preferences[{index}]: {name} is not supported")]
    UnsupportedCurve { index: usize, name: String },
    #[error("tls_server_config.curve_preferences: empty list")]
    NoCurves,
    /// A certificate, key or CA file that cannot be read.
    #[error("tls_server_config.{key}")]
    Read { key: &'static str, source: FileError },
    #[error("tls_server_config.{key}: {file}: not PEM certificates")]
    NotPem { key: &'static str, file: String, source: rustls::pki_types::pem::Error },
    #[error("tls_server_config.{key}: {file}: holds no PEM certificate")]
    NoCertificate { key: &'static str, file: String },
    #[error("tls_server_config.key_file: {file}: no PEM private key")]
    NoKey { file: String, source: rustls::pki_types::pem::Error },
    #[error("tls_server_config")]
    Versions(#[source] rustls::Error),
    #[error(
        "tls_server_config.client_ca_file: set, but client_auth_type is NoClientCert \
         (set VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
    )]
    CaWithoutVerification,
    #[error("tls_server_config.client_ca_file: required by client_auth_type {0:?} (the CA that signs the clients)")]
    CaRequired(ClientAuth),
    #[error("tls_server_config.client_ca_file: {file}: unusable CA certificate")]
    BadCa { file: String, source: rustls::Error },
    #[error("tls_server_config.client_ca_file: {file}")]
    Verifier { file: String, source: rustls::server::VerifierBuilderError },
    #[error("tls_server_config.key_file: does not fit cert_file")]
    KeyMismatch(#[source] rustls::Error),
}

impl ClientAuth {
    fn parse(s: &str) -> Result<ClientAuth, TlsError> {
        Ok(match s {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            "RequireAnyClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            other => return Err(TlsError::UnknownPolicy(other.to_owned())),
        })
    }
}

fn version(key: &'static str, s: &str) -> Result<u8, TlsError> {
    match s {
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        "TLS10" | "TLS11" => Err(TlsError::OldVersion { key, version: s.to_owned() }),
        other => Err(TlsError::UnknownVersion { key, version: other.to_owned() }),
    }
}

/// The rustls configuration for a `tls_server_config` section, or `None`
/// when it names neither a certificate nor a key (TLS off, as in the
/// exporter-toolkit). Paths are resolved against `dir`. Errors name the key.
pub(crate) fn server_config(raw: &RawTls, dir: &Path) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    let cert_file = raw.cert_file.as_deref().unwrap_or("");
    let key_file = raw.key_file.as_deref().unwrap_or("");
    if cert_file.is_empty() && key_file.is_empty() {
        return Ok(None);
    }
    if cert_file.is_empty() {
        return Err(TlsError::CertFileMissing);
    }
    if key_file.is_empty() {
        return Err(TlsError::KeyFileMissing);
    }
    if raw.client_allowed_sans.as_ref().is_some_and(|v| !v.is_empty()) {
        return Err(TlsError::AllowedSans);
    }
    let (provider, versions) = provider_and_versions(raw)?;
    let certs = certificates("cert_file", dir, cert_file)?;
    let key_pem = read("key_file", dir, key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|source| TlsError::NoKey { file: key_file.to_owned(), source })?;
    let auth = ClientAuth::parse(raw.client_auth_type.as_deref().unwrap_or(""))?;
    let provider = Arc::new(provider);
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(TlsError::Versions)?;
    let verifier = client_verifier(auth, raw.client_ca_file.as_deref().unwrap_or(""), dir, &provider)?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(TlsError::KeyMismatch)?;
    config.ignore_client_order = raw.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// The aws-lc-rs provider narrowed to the section's cipher suites and
/// curves, and the TLS versions it allows.
fn provider_and_versions(
    raw: &RawTls,
) -> Result<(CryptoProvider, Vec<&'static rustls::SupportedProtocolVersion>), TlsError> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    let min = version("min_version", raw.min_version.as_deref().unwrap_or("TLS12"))?;
    let max = version("max_version", raw.max_version.as_deref().unwrap_or("TLS13"))?;
    if min > max {
        return Err(TlsError::VersionOrder { min, max });
    }
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if min <= 12 {
        versions.push(&rustls::version::TLS12);
    }
    if max >= 13 {
        versions.push(&rustls::version::TLS13);
    }
    if let Some(names) = &raw.cipher_suites {
        provider.cipher_suites = cipher_suites(&provider, names)?;
        if min <= 12 && max == 12 && names.is_empty() {
            return Err(TlsError::NoTls12Suites);
        }
    }
    if let Some(names) = &raw.curve_preferences {
        provider.kx_groups = curves(&provider, names)?;
    }
    Ok((provider, versions))
}

/// The bytes of a file named by the section (`key`), resolved against `dir`.
fn read(key: &'static str, dir: &Path, file: &str) -> Result<Vec<u8>, TlsError> {
    read_limited(&dir.join(file)).map_err(|source| TlsError::Read { key, source })
}

/// The PEM certificates of a file named by the section (`key`): at least one.
fn certificates(key: &'static str, dir: &Path, file: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(key, dir, file)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::NotPem { key, file: file.to_owned(), source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { key, file: file.to_owned() });
    }
    Ok(certs)
}

/// The client-certificate verifier of a policy (`None`: no client
/// certificate asked for); the CA file is read for the verifying policies.
fn client_verifier(
    auth: ClientAuth,
    ca_file: &str,
    dir: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, TlsError> {
    match auth {
        ClientAuth::NoClientCert if !ca_file.is_empty() => Err(TlsError::CaWithoutVerification),
        ClientAuth::NoClientCert => Ok(None),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => Ok(Some(Arc::new(AnyClientCert {
            mandatory: auth == ClientAuth::RequireAnyClientCert,
            algorithms: provider.signature_verification_algorithms,
        }))),
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            if ca_file.is_empty() {
                return Err(TlsError::CaRequired(auth));
            }
            let mut roots = RootCertStore::empty();
            for cert in certificates("client_ca_file", dir, ca_file)? {
                roots.add(cert).map_err(|source| TlsError::BadCa { file: ca_file.to_owned(), source })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier =
                if auth == ClientAuth::VerifyClientCertIfGiven { verifier.allow_unauthenticated() } else { verifier };
            let built = verifier.build().map_err(|source| TlsError::Verifier { file: ca_file.to_owned(), source })?;
            Ok(Some(built))
        }
    }
}

/// The TLS 1.2 suites named (Go names, as the exporter-toolkit takes them),
/// plus every TLS 1.3 suite: as in Go, the list does not apply to TLS 1.3.
fn cipher_suites(provider: &CryptoProvider, names: &[String]) -> Result<Vec<rustls::SupportedCipherSuite>, TlsError> {
    let mut out: Vec<rustls::SupportedCipherSuite> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        // Go also knows the ChaCha suites without the `_SHA256` ending.
        let full = if name.ends_with("_CHACHA20_POLY1305") { format!("{name}_SHA256") } else { name.clone() };
        let found = provider
            .cipher_suites
            .iter()
            .find(|s| s.tls13().is_none() && format!("{:?}", s.suite()) == full)
            .ok_or_else(|| {
            let known: Vec<String> = provider
                .cipher_suites
                .iter()
                .filter(|s| s.tls13().is_none())
                .map(|s| format!("{:?}", s.suite()))
                .collect();
            TlsError::UnknownSuite { index: i, name: name.clone(), supported: known.join(", ") }
        })?;
        if !out.iter().any(|s| s.suite() == found.suite()) {
            out.push(*found);
        }
    }
    out.extend(provider.cipher_suites.iter().filter(|s| s.tls13().is_some()).copied());
    Ok(out)
}

/// Go's curve names mapped onto the provider's key-exchange groups.
fn curves(
    provider: &CryptoProvider,
    names: &[String],
) -> Result<Vec<&'static dyn rustls::crypto::SupportedKxGroup>, TlsError> {
    let mut out: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let group = match name.as_str() {
            "X25519" => NamedGroup::X25519,
            "CurveP256" => NamedGroup::secp256r1,
            "CurveP384" => NamedGroup::secp384r1,
            "CurveP521" => NamedGroup::secp521r1,
            "X25519MLKEM768" => NamedGroup::X25519MLKEM768,
            other => return Err(TlsError::UnknownCurve { index: i, name: other.to_owned() }),
        };
        let found = provider
            .kx_groups
            .iter()
            .find(|g| g.name() == group)
            .ok_or_else(|| TlsError::UnsupportedCurve { index: i, name: name.clone() })?;
        out.push(*found);
    }
    if out.is_empty() {
        return Err(TlsError::NoCurves);
    }
    Ok(out)
}

/// `RequestClientCert` and `RequireAnyClientCert`: a certificate is asked
/// for (and, for the latter, required) but not checked against any CA; the
/// client still has to prove it holds the certificate's key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection, ServerConnection};

    use super::*;
    use crate::expose::web_config::WebConfig;

    /// A trusted CA with a server and a client certificate, and a client
    /// certificate from another CA, written to a temporary folder.
    fn pki() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        let ca = |name: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, name);
            CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
        };
        let leaf = |issuer: &CertifiedIssuer<'_, KeyPair>, san: &str, base: &str| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![san.to_owned()]).unwrap().signed_by(&key, issuer).unwrap();
            std::fs::write(dir.join(format!("{base}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.join(format!("{base}.key")), key.serialize_pem()).unwrap();
        };
        let trusted = ca("trusted");
        std::fs::write(dir.join("ca.pem"), trusted.pem()).unwrap();
        leaf(&trusted, "localhost", "server");
        leaf(&trusted, "client", "client");
        leaf(&ca("rogue"), "client", "rogue");
        (tmp, dir)
    }

    fn server(dir: &Path, extra: &str) -> Result<Arc<rustls::ServerConfig>, String> {
        let text = format!("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n{extra}");
        let config = WebConfig::parse(text.as_bytes(), dir).map_err(|e| crate::errors::chain(&e))?;
        Ok(config.tls().expect("TLS on"))
    }

    fn client(
        dir: &Path,
        cert: Option<&str>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap()).unwrap();
        let b = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
        Arc::new(match cert {
            Some(base) => b
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_file(dir.join(format!("{base}.pem"))).unwrap()],
                    PrivateKeyDer::from_pem_file(dir.join(format!("{base}.key"))).unwrap(),
                )
                .unwrap(),
            None => b.with_no_client_auth(),
        })
    }

    /// Runs a handshake in memory, plus one application record so that the
    /// server has seen the client's certificate under TLS 1.3.
    fn handshake(server: Arc<rustls::ServerConfig>, client: Arc<ClientConfig>) -> Result<(), rustls::Error> {
        let mut c = ClientConnection::new(client, ServerName::try_from("localhost").unwrap())?;
        let mut s = ServerConnection::new(server)?;
        std::io::Write::write_all(&mut c.writer(), b"ping").unwrap();
        for _ in 0..10 {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut &buf[..]).unwrap();
            s.process_new_packets()?;
            buf.clear();
            s.write_tls(&mut buf).unwrap();
            c.read_tls(&mut &buf[..]).unwrap();
            c.process_new_packets()?;
            let mut got = [0u8; 4];
            if !s.is_handshaking() && std::io::Read::read(&mut s.reader(), &mut got).is_ok_and(|n| n == 4) {
                return Ok(());
            }
        }
        Err(rustls::Error::General("handshake did not finish".to_owned()))
    }

    const TLS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

    #[test]
    fn client_auth_types_behave_as_in_the_exporter_toolkit() {
        let (_tmp, dir) = pki();
        // (policy, no certificate, trusted certificate, untrusted certificate)
        let cases = [
            ("NoClientCert", true, true, true),
            ("RequestClientCert", true, true, true),
            ("RequireAnyClientCert", false, true, true),
            ("VerifyClientCertIfGiven", true, true, false),
            ("RequireAndVerifyClientCert", false, true, false),
        ];
        for (policy, none, trusted, untrusted) in cases {
            let ca = if policy.contains("Verify") { "  client_ca_file: ca.pem\n" } else { "" };
            let s = server(&dir, &format!("  client_auth_type: {policy}\n{ca}")).unwrap();
            for (cert, want) in [(None, none), (Some("client"), trusted), (Some("rogue"), untrusted)] {
                let got = handshake(s.clone(), client(&dir, cert, TLS));
                assert_eq!(got.is_ok(), want, "{policy} with {cert:?}: {got:?}");
            }
        }
    }

    #[test]
    fn versions_and_cipher_suites_are_honoured() {
        let (_tmp, dir) = pki();
        let tls13 = server(&dir, "  min_version: TLS13\n").unwrap();
        assert!(handshake(tls13.clone(), client(&dir, None, &[&rustls::version::TLS12])).is_err());
        assert!(handshake(tls13, client(&dir, None, TLS)).is_ok());
        let tls12 = server(
            &dir,
            "  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305]\n  curve_preferences: [CurveP256]\n",
        )
        .unwrap();
        let mut c = ClientConnection::new(client(&dir, None, TLS), ServerName::try_from("localhost").unwrap()).unwrap();
        let mut s = ServerConnection::new(tls12).unwrap();
        for _ in 0..4 {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut &buf[..]).unwrap();
            s.process_new_packets().unwrap();
            buf.clear();
            s.write_tls(&mut buf).unwrap();
            c.read_tls(&mut &buf[..]).unwrap();
            c.process_new_packets().unwrap();
        }
        assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
        assert_eq!(
            c.negotiated_cipher_suite().map(|s| s.suite()),
            Some(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)
        );
    }

    #[test]
    fn bad_tls_settings_are_refused_naming_the_key() {
        let (_tmp, dir) = pki();
        let cases = [
            ("  client_auth_type: Sometimes\n", "tls_server_config.client_auth_type"),
            ("  client_auth_type: RequireAndVerifyClientCert\n", "tls_server_config.client_ca_file"),
            ("  client_ca_file: ca.pem\n", "tls_server_config.client_ca_file"),
            ("  min_version: TLS11\n", "tls_server_config.min_version"),
            ("  max_version: TLS14\n", "tls_server_config.max_version"),
            ("  min_version: TLS13\n  max_version: TLS12\n", "tls_server_config.min_version"),
            ("  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n", "tls_server_config.cipher_suites[0]"),
            ("  curve_preferences: [CurveP999]\n", "tls_server_config.curve_preferences[0]"),
            ("  client_allowed_sans: [a]\n", "tls_server_config.client_allowed_sans"),
        ];
        for (extra, key) in cases {
            let err = server(&dir, extra).unwrap_err();
            assert!(err.contains(key), "{extra:?}: {err}");
        }
        // A key that does not belong to the certificate.
        std::fs::copy(dir.join("client.key"), dir.join("server.key")).unwrap();
        let err = server(&dir, "").unwrap_err();
        assert!(err.contains("tls_server_config.key_file"), "{err}");
        // Not PEM at all.
        std::fs::write(dir.join("server.pem"), "hello").unwrap();
        let err = server(&dir, "").unwrap_err();
        assert!(err.contains("tls_server_config.cert_file"), "{err}");
    }
}
