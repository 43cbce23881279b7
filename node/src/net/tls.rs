//! Mutual TLS for validator connections, pinned to the identity keys in genesis.
//!
//! There is no certificate authority. Each node presents a self-signed X.509
//! certificate whose SubjectPublicKeyInfo is its ed25519 *identity* key (separate
//! from the consensus key, so it can be rotated without touching consensus). A
//! verifier accepts a certificate if and only if that key is in its allowed set:
//! names, validity dates, extensions and issuers are ignored, because the key is
//! the identity. The TLS 1.3 handshake signature is verified with the same key
//! (ring's ed25519), which is what proves the peer holds the secret.
//!
//! * Servers (the accepting side) allow every peer identity key in genesis and
//!   require a client certificate; who connected is then read back from the
//!   connection with [`peer_public_key`].
//! * Clients (the dialing side) allow exactly the key of the peer they dial, so a
//!   different validator answering at that address is refused.
//!
//! Only TLS 1.3 with the ed25519 signature scheme is offered or accepted.

use bitcraps_crypto::{Keypair, PublicKey};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The one application protocol we speak. Bump it with any incompatible change
/// to the framing in [`super::frame`].
pub const ALPN: &[u8] = b"bitcraps/1";

/// The TLS server name used when dialing. Verifiers ignore it (the key is the
/// identity), but QUIC needs a syntactically valid name.
pub const SERVER_NAME: &str = "bitcraps.invalid";

/// PKCS#8 v1 `PrivateKeyInfo` prefix for an Ed25519 key (RFC 8410, section 7):
/// SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }.
/// The 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// DER `SubjectPublicKeyInfo` prefix for an Ed25519 key (RFC 8410, section 4):
/// SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING (0 unused bits) }. The
/// 32-byte key follows.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Why TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("building the self-signed certificate: {0}")]
    Certificate(String),
    #[error("rustls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("QUIC crypto configuration: {0}")]
    Quic(String),
}

/// Installs ring as the process-wide rustls crypto provider. Idempotent: if a
/// provider is already installed (by us or anyone else) it is left alone. Our
/// own configurations name ring explicitly either way.
pub fn install_crypto_provider() {
    // An Err only means a provider is already installed, which is fine.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// This node's TLS identity: a self-signed certificate over its identity key.
pub struct TlsIdentity {
    public: PublicKey,
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the private key.
        write!(f, "TlsIdentity(public={:?}, key=<redacted>)", self.public)
    }
}

impl TlsIdentity {
    /// Builds the certificate from the identity key pair.
    pub fn from_keypair(identity: &Keypair) -> Result<Self, TlsError> {
        let seed = identity.seed();
        let mut der = Vec::with_capacity(ED25519_PKCS8_PREFIX.len() + seed.len());
        der.extend_from_slice(&ED25519_PKCS8_PREFIX);
        der.extend_from_slice(seed.as_ref());
        let key = PrivatePkcs8KeyDer::from(der);
        let rc_key = rcgen::KeyPair::try_from(&key)
            .map_err(|e| TlsError::Certificate(format!("identity key: {e}")))?;
        let params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()])
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        let cert = params
            .self_signed(&rc_key)
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        let cert = cert.der().clone();
        // Belt and braces: the certificate must carry exactly our identity key.
        let in_cert = public_key_from_cert(&cert)
            .map_err(|e| TlsError::Certificate(format!("self-check: {e}")))?;
        if in_cert != identity.public() {
            return Err(TlsError::Certificate(
                "self-check: certificate key differs from the identity key".into(),
            ));
        }
        Ok(TlsIdentity {
            public: identity.public(),
            cert,
            key,
        })
    }

    pub fn public(&self) -> PublicKey {
        self.public
    }

    fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert.clone()]
    }

    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

/// Extracts the ed25519 identity key from a DER certificate. The certificate is
/// parsed by webpki (through rustls), so the key read here is the same key the
/// handshake signature is checked against.
pub fn public_key_from_cert(cert: &CertificateDer<'_>) -> Result<PublicKey, rustls::Error> {
    let parsed = ParsedCertificate::try_from(cert)?;
    let spki = parsed.subject_public_key_info();
    let spki: &[u8] = spki.as_ref();
    let key = spki
        .strip_prefix(&ED25519_SPKI_PREFIX[..])
        .and_then(|k| <&[u8; 32]>::try_from(k).ok())
        .ok_or(rustls::Error::InvalidCertificate(
            CertificateError::BadEncoding,
        ))?;
    PublicKey::from_bytes(key)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))
}

/// The identity key the peer presented on an established connection.
pub fn peer_public_key(conn: &quinn::Connection) -> Option<PublicKey> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    public_key_from_cert(certs.first()?).ok()
}

/// Whether the connection negotiated our ALPN protocol.
pub fn negotiated_alpn(conn: &quinn::Connection) -> bool {
    conn.handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.protocol)
        .is_some_and(|p| p == ALPN)
}

/// Identity keys a verifier accepts, with the validator index each belongs to.
#[derive(Debug, Clone, Default)]
pub struct AllowedKeys(BTreeMap<[u8; 32], u16>);

impl AllowedKeys {
    pub fn new(keys: impl IntoIterator<Item = (u16, PublicKey)>) -> Self {
        AllowedKeys(keys.into_iter().map(|(i, k)| (k.to_bytes(), i)).collect())
    }

    /// The validator index of `key`, if allowed.
    pub fn index_of(&self, key: &PublicKey) -> Option<u16> {
        self.0.get(key.as_bytes()).copied()
    }
}

/// The verification logic shared by the client and server verifiers.
#[derive(Debug)]
struct PinnedKeys {
    allowed: AllowedKeys,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedKeys {
    fn new(allowed: AllowedKeys) -> Self {
        PinnedKeys {
            allowed,
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }

    fn check_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        // A pinned self-signed certificate never needs a chain.
        if !intermediates.is_empty() {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        let key = public_key_from_cert(end_entity)?;
        match self.allowed.index_of(&key) {
            Some(_) => Ok(()),
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn check_tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if dss.scheme != SignatureScheme::ED25519 {
            return Err(rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::NoSignatureSchemesInCommon,
            ));
        }
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
}

fn tls12_refused() -> Result<HandshakeSignatureValid, rustls::Error> {
    // We only enable TLS 1.3 (QUIC requires it); this is unreachable in practice.
    Err(rustls::Error::PeerIncompatible(
        rustls::PeerIncompatible::Tls13RequiredForQuic,
    ))
}

/// Client-side verifier: accepts the server iff its key is pinned.
#[derive(Debug)]
struct ServerVerifier(PinnedKeys);

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0
            .check_cert(end_entity, intermediates)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.check_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// Server-side verifier: requires a client certificate whose key is pinned.
#[derive(Debug)]
struct ClientVerifier(PinnedKeys);

impl ClientCertVerifier for ClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0
            .check_cert(end_entity, intermediates)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.check_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// QUIC server configuration: our certificate, client certificates required and
/// pinned to `allowed`.
pub fn server_config(
    identity: &TlsIdentity,
    allowed: AllowedKeys,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ServerConfig, TlsError> {
    let verifier = Arc::new(ClientVerifier(PinnedKeys::new(allowed)));
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain(), identity.private_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicServerConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport);
    Ok(config)
}

/// QUIC client configuration for dialing the peer whose identity key is `peer`.
pub fn client_config(
    identity: &TlsIdentity,
    peer: PublicKey,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ClientConfig, TlsError> {
    let verifier = Arc::new(ServerVerifier(PinnedKeys::new(AllowedKeys::new([(
        0, peer,
    )]))));
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(identity.chain(), identity.private_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport);
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_carries_the_identity_key() {
        let kp = Keypair::from_seed(&[9u8; 32]);
        let id = TlsIdentity::from_keypair(&kp).unwrap();
        assert_eq!(public_key_from_cert(&id.cert).unwrap(), kp.public());
        assert!(!format!("{id:?}").contains("09090909"));
    }

    #[test]
    fn pinned_keys_refuse_unknown_keys() {
        let a = Keypair::from_seed(&[1u8; 32]);
        let b = Keypair::from_seed(&[2u8; 32]);
        let pins = PinnedKeys::new(AllowedKeys::new([(0, a.public())]));
        let ca = TlsIdentity::from_keypair(&a).unwrap();
        let cb = TlsIdentity::from_keypair(&b).unwrap();
        assert!(pins.check_cert(&ca.cert, &[]).is_ok());
        assert!(pins.check_cert(&cb.cert, &[]).is_err());
        assert!(pins
            .check_cert(&ca.cert, std::slice::from_ref(&cb.cert))
            .is_err());
        assert!(pins
            .check_cert(
                &CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]),
                &[]
            )
            .is_err());
    }
}
