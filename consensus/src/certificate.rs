//! Checking votes and certificates, and assembling certificates from votes.

use crate::genesis::{ValidatorIndex, ValidatorSet};
use crate::message::{Certificate, Vote};
use bitcraps_crypto::batch::{verify_batch, BatchItem};
use bitcraps_crypto::Signature;

/// Why a vote or certificate was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum CertError {
    #[error("vote body is malformed (block field does not match kind)")]
    Malformed,
    #[error("unknown validator index {0}")]
    UnknownSigner(ValidatorIndex),
    #[error("bad signature from validator {0}")]
    BadSignature(ValidatorIndex),
    #[error("signers are not strictly increasing")]
    UnsortedSigners,
    #[error("only {got} signers, quorum is {need}")]
    NoQuorum { got: usize, need: usize },
}

/// Verifies one vote's signature against the validator set.
pub fn verify_vote(vote: &Vote, set: &ValidatorSet, chain_id: &str) -> Result<(), CertError> {
    if !vote.body.is_well_formed() {
        return Err(CertError::Malformed);
    }
    let key = set
        .key(vote.signer)
        .ok_or(CertError::UnknownSigner(vote.signer))?;
    key.verify(&vote.body.signing_bytes(chain_id), &vote.signature)
        .map_err(|_| CertError::BadSignature(vote.signer))
}

/// Verifies a certificate: well-formed body, distinct known signers in increasing
/// order, at least a quorum of them, and every signature valid (batch-verified).
/// A certificate carrying any invalid signature is refused whole.
pub fn verify_certificate(
    cert: &Certificate,
    set: &ValidatorSet,
    chain_id: &str,
) -> Result<(), CertError> {
    verify_certificate_with(cert, set, chain_id, |_, _| false)
}

/// [`verify_certificate`], skipping the signatures `checked` says were
/// already verified over this certificate's body (votes the caller counted):
/// every structural rule still applies to every signer.
pub fn verify_certificate_with(
    cert: &Certificate,
    set: &ValidatorSet,
    chain_id: &str,
    checked: impl Fn(ValidatorIndex, &Signature) -> bool,
) -> Result<(), CertError> {
    if !cert.body.is_well_formed() {
        return Err(CertError::Malformed);
    }
    let need = set.quorum();
    if cert.signatures.len() < need {
        return Err(CertError::NoQuorum {
            got: cert.signatures.len(),
            need,
        });
    }
    let mut prev: Option<ValidatorIndex> = None;
    let mut keys = Vec::with_capacity(cert.signatures.len());
    for (idx, _) in &cert.signatures {
        if prev.is_some_and(|p| p >= *idx) {
            return Err(CertError::UnsortedSigners);
        }
        prev = Some(*idx);
        keys.push(set.key(*idx).ok_or(CertError::UnknownSigner(*idx))?);
    }
    let message = cert.body.signing_bytes(chain_id);
    let (signers, items): (Vec<ValidatorIndex>, Vec<BatchItem<'_>>) = cert
        .signatures
        .iter()
        .zip(&keys)
        .filter(|((idx, sig), _)| !checked(*idx, sig))
        .map(|((idx, sig), key)| {
            let item = BatchItem {
                key,
                message: &message,
                signature: sig,
            };
            (*idx, item)
        })
        .unzip();
    let results = verify_batch(&items);
    match results.iter().position(|ok| !ok) {
        Some(i) => Err(CertError::BadSignature(signers[i])),
        None => Ok(()),
    }
}

/// Builds a certificate from votes that all carry the same body (caller checks).
/// Signers are sorted; only the first `quorum` are kept so certificates are
/// minimal and identical on every node that saw the same votes.
pub fn assemble<'a>(votes: impl Iterator<Item = &'a Vote>, quorum: usize) -> Option<Certificate> {
    let mut sigs: Vec<_> = votes.map(|v| (v.signer, v.signature, v.body)).collect();
    let body = sigs.first()?.2;
    sigs.sort_by_key(|(i, _, _)| *i);
    sigs.dedup_by_key(|(i, _, _)| *i);
    if sigs.len() < quorum {
        return None;
    }
    sigs.truncate(quorum);
    Some(Certificate {
        body,
        signatures: sigs.into_iter().map(|(i, s, _)| (i, s)).collect(),
    })
}
