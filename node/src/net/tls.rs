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
//! * Clients (the dialing side) allow exactly the keys of the peer they dial, so a
//!   different validator answering at that address is refused.
//! * The allowed keys can change at run time ([`AllowedKeys`]): a validator may
//!   rotate its identity key (`crate::engine::rotation`), and a connection
//!   authenticated by its old or new key maps to the same validator index.
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
use std::sync::{Arc, RwLock};

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

/// Identity keys the verifiers accept, with the validator index each belongs
/// to. Updatable at run time (identity key rotation): clones share one table,
/// and every TLS verifier consults it on each handshake.
///
/// Per validator there is a *current* key and at most one *previous* key. A
/// rotation makes the new key current and keeps the old one as previous, so
/// the rotating node (which keeps its old key until it restarts) stays
/// reachable. The previous key is retired as soon as a connection
/// authenticated with the current key is established ([`Self::confirm`]): from
/// then on a leaked old key no longer gets in. See `crate::engine::rotation`.
#[derive(Debug, Clone, Default)]
pub struct AllowedKeys(Arc<RwLock<BTreeMap<u16, KeySlot>>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeySlot {
    current: PublicKey,
    previous: Option<PublicKey>,
}

/// Why [`AllowedKeys::set`] refused a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyConflict {
    #[error("identity key already belongs to validator {0}")]
    InUse(u16),
    #[error("validator {0} is not a peer")]
    UnknownPeer(u16),
}

impl AllowedKeys {
    pub fn new(keys: impl IntoIterator<Item = (u16, PublicKey)>) -> Self {
        let table = keys
            .into_iter()
            .map(|(i, current)| {
                (
                    i,
                    KeySlot {
                        current,
                        previous: None,
                    },
                )
            })
            .collect();
        AllowedKeys(Arc::new(RwLock::new(table)))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u16, KeySlot>> {
        // The table is consistent between statements; a panicked writer must
        // not stop every future handshake.
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u16, KeySlot>> {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The validator index of `key`, if allowed (current or previous key).
    pub fn index_of(&self, key: &PublicKey) -> Option<u16> {
        self.read()
            .iter()
            .find(|(_, s)| s.current == *key || s.previous == Some(*key))
            .map(|(i, _)| *i)
    }

    /// The current key of `index`.
    pub fn current(&self, index: u16) -> Option<PublicKey> {
        self.read().get(&index).map(|s| s.current)
    }

    /// The previous key of `index` still accepted, if any.
    pub fn previous(&self, index: u16) -> Option<PublicKey> {
        self.read().get(&index).and_then(|s| s.previous)
    }

    /// Replaces the keys of `index`: `current` and, during a rotation's
    /// transition, `previous`. Refused if either key belongs to another
    /// validator (a key must map to exactly one index).
    pub fn set(
        &self,
        index: u16,
        current: PublicKey,
        previous: Option<PublicKey>,
    ) -> Result<(), KeyConflict> {
        let mut table = self.write();
        if !table.contains_key(&index) {
            return Err(KeyConflict::UnknownPeer(index));
        }
        for (i, s) in table.iter().filter(|(i, _)| **i != index) {
            let clash = |k: &PublicKey| s.current == *k || s.previous == Some(*k);
            if clash(&current) || previous.as_ref().is_some_and(clash) {
                return Err(KeyConflict::InUse(*i));
            }
        }
        let previous = previous.filter(|p| *p != current);
        table.insert(index, KeySlot { current, previous });
        Ok(())
    }

    /// A connection with `index` authenticated by `key` is established: if
    /// `key` is the current key, the previous one is retired. Returns true if
    /// a key was retired.
    pub fn confirm(&self, index: u16, key: &PublicKey) -> bool {
        let mut table = self.write();
        match table.get_mut(&index) {
            Some(s) if s.current == *key && s.previous.is_some() => {
                s.previous = None;
                true
            }
            _ => false,
        }
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

    /// The validator index the certificate's key belongs to, or an error.
    fn check_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<u16, rustls::Error> {
        // A pinned self-signed certificate never needs a chain.
        if !intermediates.is_empty() {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        let key = public_key_from_cert(end_entity)?;
        match self.allowed.index_of(&key) {
            Some(i) => Ok(i),
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

/// Client-side verifier: accepts the server iff its key is pinned to the
/// validator we dial (`expect`).
#[derive(Debug)]
struct ServerVerifier {
    pins: PinnedKeys,
    expect: u16,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.pins.check_cert(end_entity, intermediates)? {
            i if i == self.expect => Ok(ServerCertVerified::assertion()),
            // Another validator answering at this address.
            _ => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
        }
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
        self.pins.check_tls13(message, cert, dss)
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
            .map(|_| ClientCertVerified::assertion())
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
    client_config_for(identity, AllowedKeys::new([(0, peer)]), 0, transport)
}

/// QUIC client configuration for dialing validator `index`, accepting whatever
/// keys `allowed` holds for it at handshake time (so it follows rotations).
pub fn client_config_for(
    identity: &TlsIdentity,
    allowed: AllowedKeys,
    index: u16,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ClientConfig, TlsError> {
    let verifier = Arc::new(ServerVerifier {
        pins: PinnedKeys::new(allowed),
        expect: index,
    });
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

    #[test]
    fn rotated_keys_map_to_one_index_and_the_previous_key_retires() {
        let k = |i: u8| Keypair::from_seed(&[i; 32]).public();
        let allowed = AllowedKeys::new([(1, k(1)), (2, k(2))]);
        let pins = PinnedKeys::new(allowed.clone());
        let cert = |i: u8| {
            TlsIdentity::from_keypair(&Keypair::from_seed(&[i; 32]))
                .unwrap()
                .cert
        };
        assert!(pins.check_cert(&cert(9), &[]).is_err());
        allowed.set(1, k(9), Some(k(1))).unwrap();
        // Both keys of validator 1 are accepted, as validator 1.
        assert_eq!(pins.check_cert(&cert(9), &[]).unwrap(), 1);
        assert_eq!(pins.check_cert(&cert(1), &[]).unwrap(), 1);
        // Another validator's key is refused as a rotation target.
        assert_eq!(allowed.set(1, k(2), None), Err(KeyConflict::InUse(2)));
        assert_eq!(allowed.set(7, k(7), None), Err(KeyConflict::UnknownPeer(7)));
        // A connection under the old key does not retire it; one under the new does.
        assert!(!allowed.confirm(1, &k(1)));
        assert!(allowed.confirm(1, &k(9)));
        assert!(pins.check_cert(&cert(1), &[]).is_err());
        assert_eq!(pins.check_cert(&cert(9), &[]).unwrap(), 1);
        // The dialing side wants exactly the validator it dials.
        let v = ServerVerifier {
            pins: PinnedKeys::new(allowed.clone()),
            expect: 2,
        };
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(0));
        let name = ServerName::try_from(SERVER_NAME).unwrap();
        assert!(v.verify_server_cert(&cert(2), &[], &name, &[], now).is_ok());
        assert!(v
            .verify_server_cert(&cert(9), &[], &name, &[], now)
            .is_err());
    }
}
