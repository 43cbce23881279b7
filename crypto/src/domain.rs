//! Mandatory signing namespaces (domain separation).
//!
//! Every byte string that any BitCraps key signs is built by [`signing_bytes`]:
//!
//! ```text
//! "BITCRAPS\x01" || u8 len(chain_id) || chain_id || u8 len(tag) || tag || payload
//! ```
//!
//! so a signature is bound to one chain and one message kind. A notarize vote
//! cannot be replayed as a finalize vote, a transaction, or on another chain.

/// Longest chain id accepted (bytes). Chain ids are short human names.
pub const MAX_CHAIN_ID_LEN: usize = 64;

const PREFIX: &[u8] = b"BITCRAPS\x01";

/// The message kinds that get signed. Adding a variant is backwards compatible;
/// renaming a tag is a hard fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// Consensus: a vote for a block proposed in a view (Simplex "vote").
    Notarize,
    /// Consensus: a vote to skip a view (Simplex "vote for the dummy block").
    Nullify,
    /// Consensus: a vote to finalize a notarized block (Simplex "finalize").
    Finalize,
    /// A client transaction.
    Transaction,
    /// The QUIC peer handshake binding an identity key to a validator.
    Handshake,
    /// A signed release manifest (patch manager).
    Release,
    /// A threshold-BLS partial signature for the randomness beacon (one round).
    Beacon,
    /// The node's periodic test signature that checks its signer backend works.
    SignerProbe,
    /// A validator announcing a new QUIC identity key, signed with its
    /// consensus key. Not a vote: its own tag keeps it from ever being read
    /// as one, which is why it may bypass the signing guard.
    IdentityRotation,
}

impl Namespace {
    pub fn tag(self) -> &'static [u8] {
        match self {
            Namespace::Notarize => b"consensus/notarize",
            Namespace::Nullify => b"consensus/nullify",
            Namespace::Finalize => b"consensus/finalize",
            Namespace::Transaction => b"tx",
            Namespace::Handshake => b"p2p/handshake",
            Namespace::Release => b"release",
            Namespace::Beacon => b"beacon",
            Namespace::SignerProbe => b"signer/probe",
            Namespace::IdentityRotation => b"p2p/identity-rotation",
        }
    }
}

/// Builds the exact bytes to sign for `payload` under `chain_id` and `ns`.
///
/// Chain ids longer than [`MAX_CHAIN_ID_LEN`] are a configuration error caught at
/// genesis validation; here they are truncated defensively so the framing stays
/// unambiguous (the length byte always matches what follows).
pub fn signing_bytes(chain_id: &str, ns: Namespace, payload: &[u8]) -> Vec<u8> {
    let chain = &chain_id.as_bytes()[..chain_id.len().min(MAX_CHAIN_ID_LEN)];
    let tag = ns.tag();
    let mut out = Vec::with_capacity(PREFIX.len() + 2 + chain.len() + tag.len() + payload.len());
    out.extend_from_slice(PREFIX);
    out.push(chain.len() as u8);
    out.extend_from_slice(chain);
    out.push(tag.len() as u8);
    out.extend_from_slice(tag);
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_and_chains_are_separated() {
        let a = signing_bytes("main", Namespace::Notarize, b"x");
        let b = signing_bytes("main", Namespace::Finalize, b"x");
        let c = signing_bytes("test", Namespace::Notarize, b"x");
        // Length-prefixing prevents ("ma","in...") style ambiguity.
        let d = signing_bytes("mai", Namespace::Notarize, b"nx");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert!(a.starts_with(PREFIX));
        let r = signing_bytes("main", Namespace::IdentityRotation, b"x");
        for ns in [Namespace::Notarize, Namespace::Nullify, Namespace::Finalize] {
            assert_ne!(r, signing_bytes("main", ns, b"x"));
        }
    }
}
