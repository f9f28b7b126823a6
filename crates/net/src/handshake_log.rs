//! What the server logs about connections that never got to a request.
//!
//! Anyone can open a connection, so one log line per failed handshake would let a
//! port scan (or a flood) write the log: each failure is logged at debug, and a
//! summary at info says how many failed, by reason, at most once per
//! [`SUMMARY_EVERY`] ([`SummaryLog`]: the first failure gets one at once; later ones
//! are summed into the summary that the first failure after the interval writes). The
//! metrics count every one (`fts_handshake_failures_total`).
//!
//! The one refusal an operator must hear about, a certificate issued by the client
//! CA that was refused (revoked, expired, identity rules), is logged at warn by
//! fts-trust (`fts_trust::refusals`, once per client id per minute), where the
//! certificate is at hand.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use fts_trust::issued::rfc3339;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::metrics::HandshakeFailure;
use crate::summary_log::SummaryLog;

/// The least time between two summaries.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Why a connection failed before its request, as the summary counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedBefore {
    /// The server refused the client's certificate or session.
    Refused,
    /// The handshake did not finish in time.
    Timeout,
    /// The peer closed or reset the connection midway (a port scan, a client gone).
    Closed,
    /// The peer did not speak TLS.
    NotTls,
    /// Anything else (no common parameters, the client refused the server ...).
    Other,
}

impl FailedBefore {
    /// Every kind, in the order of the summary's counts.
    pub const ALL: [FailedBefore; 5] = [
        FailedBefore::Refused,
        FailedBefore::Timeout,
        FailedBefore::Closed,
        FailedBefore::NotTls,
        FailedBefore::Other,
    ];

    /// The metric's reason: `refused`, `timeout`, or `error` for the rest.
    pub fn metric(self) -> HandshakeFailure {
        match self {
            FailedBefore::Refused => HandshakeFailure::Refused,
            FailedBefore::Timeout => HandshakeFailure::Timeout,
            FailedBefore::Closed | FailedBefore::NotTls | FailedBefore::Other => HandshakeFailure::Error,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Sorts the error of a failed TLS accept (tokio-rustls wraps rustls' error in an
/// `io::Error`).
pub fn classify_handshake_error(e: &io::Error) -> FailedBefore {
    if let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return match tls {
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                FailedBefore::Refused
            }
            rustls::Error::InvalidMessage(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. } => FailedBefore::NotTls,
            _ => FailedBefore::Other,
        };
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
            FailedBefore::Closed
        }
        _ => FailedBefore::Other,
    }
}

/// The error of a failed TLS accept in words for the log, with times in RFC 3339
/// (rustls writes them as Unix seconds).
pub fn describe_handshake_error(e: &io::Error) -> String {
    use rustls::CertificateError::{ExpiredContext, ExpiredRevocationListContext, NotValidYetContext};
    let at = |t: &rustls::pki_types::UnixTime| {
        i64::try_from(t.as_secs())
            .ok()
            .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
            .map_or_else(|| t.as_secs().to_string(), rfc3339)
    };
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(ExpiredContext { not_after, .. })) => {
            format!("the client certificate expired at {}", at(not_after))
        }
        Some(rustls::Error::InvalidCertificate(NotValidYetContext { not_before, .. })) => {
            format!("the client certificate is not valid before {}", at(not_before))
        }
        Some(rustls::Error::InvalidCertificate(ExpiredRevocationListContext { next_update, .. })) => {
            format!("the CRL expired at {}", at(next_update))
        }
        _ => e.to_string(),
    }
}

/// The server's log of connections that failed before a request.
#[derive(Debug)]
pub struct HandshakeLog {
    failures: SummaryLog<{ FailedBefore::ALL.len() }>,
    crl_stale_refusals: SummaryLog<1>,
}

impl Default for HandshakeLog {
    fn default() -> Self {
        HandshakeLog {
            failures: SummaryLog::new(SUMMARY_EVERY),
            crl_stale_refusals: SummaryLog::new(SUMMARY_EVERY),
        }
    }
}

impl HandshakeLog {
    /// A connection from `peer` failed before its request: `detail` at debug, and
    /// the summary when it is due.
    pub fn failed(&self, kind: FailedBefore, peer: SocketAddr, detail: &dyn fmt::Display) {
        tracing::debug!(%peer, reason = ?kind, detail = %detail, "connection failed before a request");
        if let Some(summary) = self.failures.count(kind.index(), Instant::now()) {
            let [refused, timeout, closed, not_tls, other] = summary.counts;
            tracing::info!(
                total = summary.total(),
                refused,
                timeout,
                closed,
                not_tls,
                other,
                since = %rfc3339(OffsetDateTime::from(summary.since)),
                "connections failed before a request (details at debug level; summed at most once a minute)"
            );
        }
    }

    /// A poll was refused because the changed CRL has failed to load for `stale`
    /// (`--crl-max-stale`): one warning at once, then at most one a minute with the
    /// number refused meanwhile.
    pub fn refused_while_crl_stale(&self, stale: Duration, max: Duration) {
        let Some(summary) = self.crl_stale_refusals.count(0, Instant::now()) else { return };
        tracing::warn!(
            refused = summary.total(),
            failing_for_seconds = stale.as_secs(),
            crl_max_stale_seconds = max.as_secs(),
            "refusing polls: the changed CRL has failed to load for longer than --crl-max-stale \
             (see the CRL error in this log; polls are served again once it loads)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_is_summarized_at_once_then_once_a_minute() {
        let log = HandshakeLog::default();
        let start = Instant::now();
        let count = |kind: FailedBefore, at| log.failures.count(kind.index(), at).map(|s| s.counts);
        assert_eq!(count(FailedBefore::Closed, start), Some([0, 0, 1, 0, 0]));
        for i in 0..10 {
            assert!(count(FailedBefore::NotTls, start + Duration::from_secs(i)).is_none());
        }
        assert!(count(FailedBefore::Refused, start + Duration::from_secs(30)).is_none());
        assert_eq!(count(FailedBefore::Timeout, start + SUMMARY_EVERY), Some([1, 1, 0, 10, 0]));
    }

    #[test]
    fn handshake_errors_are_sorted_by_what_the_peer_did() {
        let tls = |e: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, e);
        let revoked = tls(rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked));
        assert_eq!(classify_handshake_error(&revoked), FailedBefore::Refused);
        assert_eq!(
            classify_handshake_error(&tls(rustls::Error::NoCertificatesPresented)),
            FailedBefore::Refused
        );
        let garbage = tls(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType));
        assert_eq!(classify_handshake_error(&garbage), FailedBefore::NotTls);
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(classify_handshake_error(&eof), FailedBefore::Closed);
        assert_eq!(FailedBefore::Closed.metric(), HandshakeFailure::Error);
        let expired = tls(rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext {
            time: rustls::pki_types::UnixTime::since_unix_epoch(Duration::from_secs(1_798_800_000)),
            not_after: rustls::pki_types::UnixTime::since_unix_epoch(Duration::from_secs(1_798_740_358)),
        }));
        assert_eq!(
            describe_handshake_error(&expired),
            "the client certificate expired at 2026-12-31T18:05:58Z"
        );
        assert_eq!(FailedBefore::Refused.metric(), HandshakeFailure::Refused);
    }
}
