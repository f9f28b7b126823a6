//! The client certificate chains one revocation state has already verified, so that
//! the check after a resumed handshake does not verify their signatures again.
//!
//! Why it is sound. webpki's verdict on a chain depends on the chain's bytes, the
//! roots, the CRLs and the time. The memo lives inside one revocation state (one set of
//! roots and CRLs; a CRL reload builds a new state with an empty memo), is keyed by the
//! SHA-256 of every presented certificate in order, and is only used while the time is inside
//! the validity period of every presented certificate (a superset of the path webpki
//! built, so this is at least as strict as webpki; roots' own dates are not checked by
//! webpki either). CRL dates play no part: an overdue CRL stays in force by policy. So a
//! hit is exactly a chain webpki would accept now; anything else, including a chain
//! outside its dates, is verified in full again, and a refusal is never remembered.
//! Chains are added only after a completed handshake (the client proved it holds the
//! key), so replaying someone's public certificate cannot fill the memo.
//!
//! Why it exists: without it every resumed poll paid an ECDSA P-256 verification, about
//! an eighth of the server's CPU per resumed poll.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Chains remembered at most; when full the memo starts afresh (a miss only costs the
/// verification it saves). About 6.5 MiB at the limit (hash table of 32-byte keys and
/// 16-byte values), enough for a fleet of 65,536 hosts without a miss.
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

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair, date_time_ymd};

    use super::*;

    /// A self-signed certificate valid from the start of `from` to the start of `to`
    /// (years); the memo reads only bytes and dates.
    fn cert(name: &str, from: i32, to: i32) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.not_before = date_time_ymd(from, 1, 1);
        params.not_after = date_time_ymd(to, 1, 1);
        params.self_signed(&KeyPair::generate().unwrap()).unwrap().der().clone()
    }

    fn at_year(year: i32) -> UnixTime {
        let secs = date_time_ymd(year, 1, 1).unix_timestamp();
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs as u64))
    }

    #[test]
    fn a_chain_is_remembered_only_as_itself_and_only_within_every_certificates_dates() {
        let memo = VerifiedChains::default();
        let leaf = cert("web-01", 2020, 2040);
        let intermediate = cert("intermediate", 2021, 2030);
        assert!(!memo.contains(&leaf, std::slice::from_ref(&intermediate), at_year(2025)), "empty");
        let chain = std::slice::from_ref(&intermediate);
        memo.insert(&leaf, chain);

        assert!(memo.contains(&leaf, chain, at_year(2025)));
        assert!(memo.contains(&leaf, chain, at_year(2030)), "the last second counts");
        assert!(!memo.contains(&leaf, chain, at_year(2031)), "the intermediate expired");
        assert!(!memo.contains(&leaf, chain, at_year(2020)), "the intermediate is not valid yet");
        assert!(!memo.contains(&leaf, &[], at_year(2025)), "another chain");
        let twice = [intermediate.clone(), intermediate.clone()];
        assert!(!memo.contains(&leaf, &twice, at_year(2025)), "another chain");
        assert!(!memo.contains(&intermediate, std::slice::from_ref(&leaf), at_year(2025)), "another order");
    }

    #[test]
    fn a_chain_whose_dates_cannot_be_read_is_not_remembered() {
        let memo = VerifiedChains::default();
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        memo.insert(&garbage, &[]);
        assert!(!memo.contains(&garbage, &[], at_year(2025)));
    }
}
