//! What the server says about a client certificate it refuses, and how often.
//!
//! A refused certificate is one of two kinds, told apart by whether its chain
//! verifies up to a client CA root:
//!
//! - **issued by the client CA** (revoked, expired, not yet valid, no CRL for its
//!   issuer, breaking the identity rules): an operator wants to know, so it is logged
//!   at warn with its client id and serial, at most once per client id per
//!   [`WARN_EVERY`] (more refusals of the same id go to debug). The memory of ids is
//!   bounded ([`MAX_REMEMBERED`]): past it, warnings for new ids go to debug too, so a
//!   peer replaying many hosts' public certificates cannot flood the log;
//! - **not issued by the client CA**: anyone can present such a certificate (a port
//!   scan with a certificate, a host of another fleet), so it is logged at debug only,
//!   its claimed name escaped and marked unverified; the server's summary of failed
//!   handshakes counts it.
//!
//! webpki checks a certificate's dates before its chain, so "expired" alone does not
//! say who issued it: `classify` then asks the verifier again at a time inside the
//! certificate's validity, **only** to decide how to log it. The refusal itself
//! always stands; nothing here can turn a refusal into an acceptance.
//!
//! Every time is written in RFC 3339 UTC, and every name from the certificate through
//! [`fts_proto::Printable`], since the peer chose it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use fts_proto::Printable;
use rustls::CertificateError;
use rustls_pki_types::{CertificateDer, UnixTime};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::IdentityError;
use crate::issued::{Serial, rfc3339};

/// At most one warning per client id per this long.
pub const WARN_EVERY: Duration = Duration::from_secs(60);

/// Client ids remembered for [`WARN_EVERY`].
pub const MAX_REMEMBERED: usize = 10_000;

/// Why a client certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalReason {
    /// A CRL in force lists the certificate's serial.
    Revoked,
    /// The certificate's validity ended.
    Expired {
        /// When it ended, when the certificate could be read.
        not_after: Option<OffsetDateTime>,
    },
    /// The certificate's validity has not begun.
    NotYetValid {
        /// When it begins, when the certificate could be read.
        not_before: Option<OffsetDateTime>,
    },
    /// Revocation is on and no CRL in force covers the certificate's issuer.
    UnknownRevocationStatus,
    /// The chain does not lead to a client CA root (unknown issuer, bad signature).
    NotIssuedByClientCa,
    /// No clientAuth extended key usage.
    WrongPurpose,
    /// The certificate breaks the identity rules of PROTOCOL.md section 4.
    Identity(IdentityError),
    /// Any other refusal of the verifier, in its words.
    Other(String),
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefusalReason::Revoked => f.write_str("revoked"),
            RefusalReason::Expired { not_after: Some(t) } => write!(f, "expired at {}", rfc3339(*t)),
            RefusalReason::Expired { not_after: None } => f.write_str("expired"),
            RefusalReason::NotYetValid { not_before: Some(t) } => {
                write!(f, "not valid before {}", rfc3339(*t))
            }
            RefusalReason::NotYetValid { not_before: None } => f.write_str("not valid yet"),
            RefusalReason::UnknownRevocationStatus => {
                f.write_str("no CRL in force covers its issuer (unknown revocation status is refused)")
            }
            RefusalReason::NotIssuedByClientCa => f.write_str("not issued by the client CA"),
            RefusalReason::WrongPurpose => {
                f.write_str("not made for client authentication (no clientAuth usage)")
            }
            // A description, not an error: it prints the identity error with its cause.
            RefusalReason::Identity(e) => write!(f, "{}", fts_proto::ErrorChain(e)),
            RefusalReason::Other(problem) => f.write_str(problem),
        }
    }
}

/// A refused client certificate: why, and what it says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRefusal {
    /// Why it was refused.
    pub reason: RefusalReason,
    /// Whether its chain verified up to a client CA root (at a time inside its
    /// validity, for an expired one). Only then are its name and serial facts.
    pub issued_by_client_ca: bool,
    /// The subject's first common name, as presented (escape before printing).
    pub common_name: Option<String>,
    /// The certificate's serial, as presented.
    pub serial: Option<Serial>,
}

impl fmt::Display for CertificateRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reason)
    }
}

/// What a certificate says about itself; nothing of it is checked.
struct Presented {
    common_name: Option<String>,
    serial: Option<Serial>,
    not_before: Option<OffsetDateTime>,
    not_after: Option<OffsetDateTime>,
}

fn presented(end_entity: &CertificateDer<'_>) -> Presented {
    let Ok((_, cert)) = X509Certificate::from_der(end_entity.as_ref()) else {
        return Presented { common_name: None, serial: None, not_before: None, not_after: None };
    };
    let time = |t: x509_parser::time::ASN1Time| OffsetDateTime::from_unix_timestamp(t.timestamp()).ok();
    Presented {
        common_name: cert.subject().iter_common_name().next().map(|cn| {
            cn.as_str().map_or_else(|_| String::from_utf8_lossy(cn.as_slice()).into_owned(), str::to_owned)
        }),
        serial: Some(Serial::from_bytes(cert.raw_serial())),
        not_before: time(cert.validity().not_before),
        not_after: time(cert.validity().not_after),
    }
}

/// Whether `verdict` (of the verifier, for a chain) means the chain verified up to a
/// root: accepted, or refused only for what webpki checks after the chain.
fn chain_verified(verdict: &Result<(), rustls::Error>) -> bool {
    matches!(
        verdict,
        Ok(())
            | Err(rustls::Error::InvalidCertificate(
                CertificateError::Revoked
                    | CertificateError::UnknownRevocationStatus
                    | CertificateError::ExpiredRevocationList
                    | CertificateError::ExpiredRevocationListContext { .. }
            ))
    )
}

/// Describes the verifier's refusal `error` of `end_entity`. `verify_at` runs the same
/// verifier on the same chain at another time; it is used only for a certificate
/// refused for its dates, at a time inside them, to learn whether the chain verifies.
pub(crate) fn classify(
    error: &rustls::Error,
    end_entity: &CertificateDer<'_>,
    verify_at: impl Fn(UnixTime) -> Result<(), rustls::Error>,
) -> CertificateRefusal {
    let cert = presented(end_entity);
    let inside_validity = || {
        cert.not_before.and_then(|t| u64::try_from(t.unix_timestamp()).ok()).is_some_and(|secs| {
            chain_verified(&verify_at(UnixTime::since_unix_epoch(Duration::from_secs(secs))))
        })
    };
    let (reason, issued_by_client_ca) = match error {
        rustls::Error::InvalidCertificate(e) => match e {
            CertificateError::Revoked => (RefusalReason::Revoked, true),
            CertificateError::UnknownRevocationStatus
            | CertificateError::ExpiredRevocationList
            | CertificateError::ExpiredRevocationListContext { .. } => {
                (RefusalReason::UnknownRevocationStatus, true)
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                (RefusalReason::Expired { not_after: cert.not_after }, inside_validity())
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                (RefusalReason::NotYetValid { not_before: cert.not_before }, inside_validity())
            }
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                (RefusalReason::WrongPurpose, false)
            }
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                (RefusalReason::NotIssuedByClientCa, false)
            }
            other => (RefusalReason::Other(format!("{other:?}")), false),
        },
        other => (RefusalReason::Other(other.to_string()), false),
    };
    CertificateRefusal { reason, issued_by_client_ca, common_name: cert.common_name, serial: cert.serial }
}

/// A refusal of a certificate whose chain is known to have verified (revoked after
/// its session began, or breaking the identity rules).
pub(crate) fn verified_refusal(reason: RefusalReason, end_entity: &CertificateDer<'_>) -> CertificateRefusal {
    let cert = presented(end_entity);
    CertificateRefusal {
        reason,
        issued_by_client_ca: true,
        common_name: cert.common_name,
        serial: cert.serial,
    }
}

/// When a refusal was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checked {
    /// By the verifier, in a full handshake (before the peer proved it holds the key).
    Handshake,
    /// After a completed handshake, full or resumed ([`crate::ClientAuth::check_session`]).
    Session,
}

impl Checked {
    fn as_str(self) -> &'static str {
        match self {
            Checked::Handshake => "handshake",
            Checked::Session => "session",
        }
    }
}

/// The warnings about refused certificates the client CA issued, at most one per
/// client id a minute (not the summary of refused connections: `fts_net::summary_log`).
#[derive(Debug, Default)]
pub(crate) struct CertificateWarnings {
    warned: Mutex<HashMap<String, Instant>>,
}

impl CertificateWarnings {
    pub(crate) fn log(&self, refusal: &CertificateRefusal, checked: Checked) {
        let name = refusal.common_name.as_deref().map(Printable);
        let serial = refusal.serial.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string);
        let name_text = name.map_or_else(|| "-".to_owned(), |n| n.to_string());
        if !refusal.issued_by_client_ca {
            tracing::debug!(
                claimed_name = %name_text,
                reason = %refusal.reason,
                checked = checked.as_str(),
                "refused a client certificate not issued by the client CA (its name is unverified)"
            );
            return;
        }
        if self.may_warn(&name_text, Instant::now()) {
            tracing::warn!(
                client_id = %name_text,
                serial = %serial,
                reason = %refusal.reason,
                checked = checked.as_str(),
                "refused a client certificate issued by the client CA"
            );
        } else {
            tracing::debug!(
                client_id = %name_text,
                serial = %serial,
                reason = %refusal.reason,
                checked = checked.as_str(),
                "refused a client certificate issued by the client CA (again within a minute)"
            );
        }
    }

    /// Whether `client` may get a warning now, and if so notes it.
    fn may_warn(&self, client: &str, now: Instant) -> bool {
        let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(last) = warned.get(client)
            && now.duration_since(*last) < WARN_EVERY
        {
            return false;
        }
        if warned.len() >= MAX_REMEMBERED && !warned.contains_key(client) {
            warned.retain(|_, last| now.duration_since(*last) < WARN_EVERY);
            if warned.len() >= MAX_REMEMBERED {
                return false;
            }
        }
        warned.insert(client.to_owned(), now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_client_id_per_minute_and_a_bounded_memory() {
        let log = CertificateWarnings::default();
        let start = Instant::now();
        assert!(log.may_warn("web-01", start));
        assert!(!log.may_warn("web-01", start + Duration::from_secs(59)));
        assert!(log.may_warn("web-02", start + Duration::from_secs(59)), "another id is its own");
        assert!(log.may_warn("web-01", start + Duration::from_secs(61)));

        let log = CertificateWarnings::default();
        for i in 0..MAX_REMEMBERED {
            assert!(log.may_warn(&format!("h{i}"), start));
        }
        assert!(!log.may_warn("one-too-many", start), "full of recent ids: no more warnings");
        assert!(log.may_warn("one-too-many", start + WARN_EVERY), "old ones are forgotten");
    }

    #[test]
    fn reasons_read_as_words_with_rfc3339_times() {
        let t = OffsetDateTime::from_unix_timestamp(1_798_740_358).unwrap();
        assert_eq!(
            RefusalReason::Expired { not_after: Some(t) }.to_string(),
            "expired at 2026-12-31T18:05:58Z"
        );
        assert_eq!(
            RefusalReason::NotYetValid { not_before: Some(t) }.to_string(),
            "not valid before 2026-12-31T18:05:58Z"
        );
        assert_eq!(RefusalReason::Revoked.to_string(), "revoked");
    }

    #[test]
    fn only_a_verdict_after_the_chain_counts_as_issued_by_the_ca() {
        use rustls::Error::InvalidCertificate;
        assert!(chain_verified(&Ok(())));
        assert!(chain_verified(&Err(InvalidCertificate(CertificateError::Revoked))));
        assert!(!chain_verified(&Err(InvalidCertificate(CertificateError::UnknownIssuer))));
        assert!(!chain_verified(&Err(InvalidCertificate(CertificateError::BadSignature))));
        assert!(!chain_verified(&Err(InvalidCertificate(CertificateError::Expired))));
    }
}
