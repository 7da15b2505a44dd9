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

use super::web_config::{read_limited, RawTls};

/// What the client must show, in the exporter-toolkit's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    fn parse(s: &str) -> Result<ClientAuth, String> {
        Ok(match s {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            "RequireAnyClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            other => {
                return Err(format!(
                    "tls_server_config.client_auth_type: unknown policy {other:?} (expected NoClientCert, \
                     RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
                ))
            }
        })
    }
}

fn version(key: &str, s: &str) -> Result<u8, String> {
    match s {
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        "TLS10" | "TLS11" => Err(format!("tls_server_config.{key}: {s} is not supported (TLS12 or TLS13)")),
        other => Err(format!("tls_server_config.{key}: unknown version {other:?} (expected TLS12 or TLS13)")),
    }
}

/// The rustls configuration for a `tls_server_config` section, or `None`
/// when it names neither a certificate nor a key (TLS off, as in the
/// exporter-toolkit). Paths are resolved against `dir`. Errors name the key.
pub(crate) fn server_config(raw: &RawTls, dir: &Path) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    let cert_file = raw.cert_file.as_deref().unwrap_or("");
    let key_file = raw.key_file.as_deref().unwrap_or("");
    if cert_file.is_empty() && key_file.is_empty() {
        return Ok(None);
    }
    if cert_file.is_empty() {
        return Err("tls_server_config.cert_file: missing (key_file is set)".to_owned());
    }
    if key_file.is_empty() {
        return Err("tls_server_config.key_file: missing (cert_file is set)".to_owned());
    }
    if raw.client_allowed_sans.as_ref().is_some_and(|v| !v.is_empty()) {
        return Err("tls_server_config.client_allowed_sans: not supported by this exporter; \
                    use client_ca_file with a CA that signs only the allowed clients"
            .to_owned());
    }

    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    let min = version("min_version", raw.min_version.as_deref().unwrap_or("TLS12"))?;
    let max = version("max_version", raw.max_version.as_deref().unwrap_or("TLS13"))?;
    if min > max {
        return Err(format!("tls_server_config.min_version: TLS{min} is above max_version TLS{max}"));
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
            return Err("tls_server_config.cipher_suites: empty list with only TLS12 allowed".to_owned());
        }
    }
    if let Some(names) = &raw.curve_preferences {
        provider.kx_groups = curves(&provider, names)?;
    }

    let certs_pem = read_limited(&dir.join(cert_file)).map_err(|e| format!("tls_server_config.cert_file: {e}"))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&certs_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls_server_config.cert_file: {}: not PEM certificates: {e}", cert_file))?;
    if certs.is_empty() {
        return Err(format!("tls_server_config.cert_file: {cert_file}: holds no PEM certificate"));
    }
    let key_pem = read_limited(&dir.join(key_file)).map_err(|e| format!("tls_server_config.key_file: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("tls_server_config.key_file: {key_file}: no PEM private key: {e}"))?;

    let auth = ClientAuth::parse(raw.client_auth_type.as_deref().unwrap_or(""))?;
    let ca_file = raw.client_ca_file.as_deref().unwrap_or("");
    let provider = Arc::new(provider);
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let builder = match auth {
        ClientAuth::NoClientCert => {
            if !ca_file.is_empty() {
                return Err("tls_server_config.client_ca_file: set, but client_auth_type is NoClientCert \
                            (set VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
                    .to_owned());
            }
            builder.with_no_client_auth()
        }
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            builder.with_client_cert_verifier(Arc::new(AnyClientCert {
                mandatory: auth == ClientAuth::RequireAnyClientCert,
                algorithms: provider.signature_verification_algorithms,
            }))
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            if ca_file.is_empty() {
                return Err(format!(
                    "tls_server_config.client_ca_file: required by client_auth_type {auth:?} (the CA that signs the clients)"
                ));
            }
            let pem = read_limited(&dir.join(ca_file)).map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert
                    .map_err(|e| format!("tls_server_config.client_ca_file: {ca_file}: not PEM certificates: {e}"))?;
                roots.add(cert).map_err(|e| {
                    format!("tls_server_config.client_ca_file: {ca_file}: unusable CA certificate: {e}")
                })?;
            }
            if roots.is_empty() {
                return Err(format!("tls_server_config.client_ca_file: {ca_file}: holds no PEM certificate"));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier =
                if auth == ClientAuth::VerifyClientCertIfGiven { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(
                verifier.build().map_err(|e| format!("tls_server_config.client_ca_file: {ca_file}: {e}"))?,
            )
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_server_config.key_file: does not fit cert_file: {e}"))?;
    config.ignore_client_order = raw.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// The TLS 1.2 suites named (Go names, as the exporter-toolkit takes them),
/// plus every TLS 1.3 suite: as in Go, the list does not apply to TLS 1.3.
fn cipher_suites(provider: &CryptoProvider, names: &[String]) -> Result<Vec<rustls::SupportedCipherSuite>, String> {
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
            format!("tls_server_config.cipher_suites[{i}]: {name:?} is not supported (supported: {})", known.join(", "))
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
) -> Result<Vec<&'static dyn rustls::crypto::SupportedKxGroup>, String> {
    let mut out: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let group = match name.as_str() {
            "X25519" => NamedGroup::X25519,
            "CurveP256" => NamedGroup::secp256r1,
            "CurveP384" => NamedGroup::secp384r1,
            "CurveP521" => NamedGroup::secp521r1,
            "X25519MLKEM768" => NamedGroup::X25519MLKEM768,
            other => {
                return Err(format!(
                    "tls_server_config.curve_preferences[{i}]: unknown curve {other:?} \
                     (expected X25519, CurveP256, CurveP384, CurveP521 or X25519MLKEM768)"
                ))
            }
        };
        let found = provider
            .kx_groups
            .iter()
            .find(|g| g.name() == group)
            .ok_or_else(|| format!("tls_server_config.curve_preferences[{i}]: {name} is not supported"))?;
        out.push(*found);
    }
    if out.is_empty() {
        return Err("tls_server_config.curve_preferences: empty list".to_owned());
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
        Ok(WebConfig::parse(text.as_bytes(), dir)?.tls().expect("TLS on"))
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
