//! The client certificate chains one revocation state has already verified, so that
//! the check after a resumed handshake does not verify their signatures again.
//!
//! Why it is sound. webpki's verdict on a chain depends on the chain's bytes, the
//! roots, the CRLs and the time. The memo lives inside one revocation state (one set of
//! roots and CRLs; a CRL reload builds a new state with an empty memo), is keyed by the
//! SHA-256 of every presented certificate, and is only used while the time is inside
//! the validity period of every presented certificate (a superset of the path webpki
//! built, so this is at least as strict as webpki; roots' own dates are not checked by
//! webpki either). CRL dates play no part: an overdue CRL stays in force by policy. So a
//! hit is exactly a chain webpki would accept now; anything else, including a chain
//! outside its dates, is verified in full again, and a refusal is never remembered.
//!
//! Why it exists: without it every resumed poll paid an ECDSA P-256 verification, about
//! an eighth of the server's CPU per resumed poll.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Chains remembered at most; when full the memo starts afresh (a miss only costs the
/// verification it saves). About 3.5 MiB at the limit.
const MAX_CHAINS: usize = 65_536;

/// The period in which every certificate of a chain is valid, in Unix seconds,
/// bounds included (as webpki checks them).
#[derive(Debug, Clone, Copy)]
struct Validity {
    not_before: i64,
    not_after: i64,
}

/// Chains verified by one revocation state.
#[derive(Debug, Default)]
pub(crate) struct VerifiedChains {
    chains: Mutex<HashMap<[u8; 32], Validity>>,
}

impl VerifiedChains {
    /// Whether this exact chain was verified and `now` is within its dates.
    pub(crate) fn contains(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> bool {
        let key = chain_key(end_entity, intermediates);
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let chains = self.chains.lock().unwrap_or_else(PoisonError::into_inner);
        chains.get(&key).is_some_and(|v| v.not_before <= now && now <= v.not_after)
    }

    /// Remembers a chain that was just verified in full. A chain whose dates cannot be
    /// read is not remembered (it will be verified in full each time).
    pub(crate) fn insert(&self, end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) {
        let Some(validity) = chain_validity(end_entity, intermediates) else { return };
        let key = chain_key(end_entity, intermediates);
        let mut chains = self.chains.lock().unwrap_or_else(PoisonError::into_inner);
        if chains.len() >= MAX_CHAINS && !chains.contains_key(&key) {
            chains.clear();
        }
        chains.insert(key, validity);
    }
}

/// SHA-256 over every certificate, each preceded by its length, so that no two
/// different chains share a key.
fn chain_key(end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for cert in std::iter::once(end_entity).chain(intermediates) {
        hasher.update((cert.len() as u64).to_be_bytes());
        hasher.update(cert.as_ref());
    }
    hasher.finalize().into()
}

/// The intersection of the validity periods of every certificate presented.
fn chain_validity(end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> Option<Validity> {
    let mut validity = Validity { not_before: i64::MIN, not_after: i64::MAX };
    for cert in std::iter::once(end_entity).chain(intermediates) {
        let (_, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
        let dates = parsed.validity();
        validity.not_before = validity.not_before.max(dates.not_before.timestamp());
        validity.not_after = validity.not_after.min(dates.not_after.timestamp());
    }
    Some(validity)
}
