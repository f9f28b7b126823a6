//! The errors of fts-net, and how a poll ends, in one place.
//!
//! - the server: [`PollEnd`], how one poll ended (logged as `result = %end`, counted,
//!   and what the tests match); its causes are typed ([`Busy`], [`IdentityMismatch`],
//!   `ProtoError`, `io::Error`, `StoreError`);
//! - the client: [`PollError`], why a poll failed as a whole, with its typed causes
//!   ([`TlsProblem`], [`Interruption`], [`ProtocolBreach`], [`ReceiveError`],
//!   [`LocalFailure`]); [`ReceiveError`], why a body was not turned into a verified
//!   file; the state file's `StateError` lives with the state
//!   ([`crate::client::state`]).
//!
//! The convention of every fts error ([`fts_proto::ErrorChain`]): a message says what
//! failed and about what, never quotes its cause; the cause is `source()`. Whoever
//! prints one prints the chain. Two kinds of leaf here say a lower layer's failure in
//! their own words instead of exposing it as a source: [`TlsProblem`] (what the
//! operator should check, without rustls' documentation links or `Debug` dumps) and
//! [`ProtocolBreach::Frame`] (a protocol error that may quote the server's bytes,
//! escaped). Their causes stay reachable as fields, for code, but a chain printer
//! never prints the raw text.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use fts_fs::FsError;
use fts_proto::{ClientId, ErrorChain, ErrorFrame, FileHash, ProtoError, Published, printable};
use fts_store::StoreError;
use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError};

use crate::client::deadline::MIN_RECEIVE_RATE;
use crate::client::state::StateError;
use crate::client::tls_words;
pub use crate::limits::Busy;

// ---------------------------------------------------------------------------------
// The server

/// How one poll ended: the `result` of its log line (`result = %end` prints a short,
/// stable name: `ok`, `blob-vanished`, `no-request`, `client-closed`, the protocol
/// error code of a bad request (`bad-json`, `header-too-large` ...), `read-failed`,
/// `identity-mismatch`, `busy`, `deadline`, `slow-reader`, `stopped-reading`,
/// `send-failed`, `blob-unreadable`, `blob-shrank`, `encode-failed`, `internal`; its `error` says
/// it in words, [`PollEnd::reason`]), whether it counts as answered in
/// `fts_polls_total`, and what tests match.
#[derive(Debug)]
#[non_exhaustive]
pub enum PollEnd {
    /// The whole answer went out, up to `done`.
    Served,
    /// A blob that was checked when the answer was chosen could not be opened when
    /// its turn came: the answer ended before it (with `done`, `more` false), every
    /// target still contiguous, and the client comes back for the rest.
    BlobVanished(StoreError),
    /// No request arrived within `--request-timeout`.
    NoRequest,
    /// The client closed the connection before its request.
    ClientClosed,
    /// The request broke the protocol; an `error` frame with its code was sent.
    BadRequest(ProtoError),
    /// Reading the request failed (a reset, a TLS error).
    ReadFailed(io::Error),
    /// The request named another client than the certificate; `identity-mismatch`
    /// was sent.
    IdentityMismatch(IdentityMismatch),
    /// The server or the client id was at its limit of polls; `busy` was sent.
    Busy(Busy),
    /// The server's checkpoint is smaller than the client's `log-size`;
    /// `log-behind` was sent.
    LogBehind {
        /// The size of the checkpoint this server serves.
        server: u64,
        /// The size the client has verified.
        client: u64,
    },
    /// `--poll-deadline` passed.
    Deadline,
    /// A write of the answer did not finish in time: the client reads slower than
    /// `--min-send-rate`.
    SlowReader,
    /// The last flush (or `done`) did not finish in time: the client stopped reading.
    StoppedReading,
    /// Sending the answer failed (a reset, a TLS error).
    SendFailed(io::Error),
    /// Reading a blob failed midway: the client sees a truncated body.
    BlobUnreadable(io::Error),
    /// A blob ended before its signed size: the client sees a truncated body.
    BlobShrank {
        /// The blob's hash.
        hash: FileHash,
    },
    /// A file header could not be encoded (a bug: the store holds what it checked).
    Encode(ProtoError),
    /// A blocking task of the poll failed (a bug).
    Internal(tokio::task::JoinError),
    /// A `receipt` request's receipts were not stored (the rate, or the status
    /// folder failed); an error frame said so, and the host sends them again.
    ReceiptsNotStored(String),
}

impl PollEnd {
    fn fixed_name(&self) -> &'static str {
        match self {
            PollEnd::Served => "ok",
            PollEnd::BlobVanished(_) => "blob-vanished",
            PollEnd::NoRequest => "no-request",
            PollEnd::ClientClosed => "client-closed",
            PollEnd::BadRequest(_) => "bad-request",
            PollEnd::ReadFailed(_) => "read-failed",
            PollEnd::IdentityMismatch(_) => "identity-mismatch",
            PollEnd::Busy(_) => "busy",
            PollEnd::LogBehind { .. } => "log-behind",
            PollEnd::Deadline => "deadline",
            PollEnd::SlowReader => "slow-reader",
            PollEnd::StoppedReading => "stopped-reading",
            PollEnd::SendFailed(_) => "send-failed",
            PollEnd::BlobUnreadable(_) => "blob-unreadable",
            PollEnd::BlobShrank { .. } => "blob-shrank",
            PollEnd::Encode(_) => "encode-failed",
            PollEnd::Internal(_) => "internal",
            PollEnd::ReceiptsNotStored(_) => "receipts-not-stored",
        }
    }

    /// Whether the client got a complete answer (`fts_polls_total{result="ok"}`).
    pub fn is_answered(&self) -> bool {
        matches!(self, PollEnd::Served | PollEnd::BlobVanished(_))
    }

    /// How the poll ended in words, with every cause (the `error` of its log line).
    pub fn reason(&self) -> Reason<'_> {
        Reason(self)
    }
}

/// `result = %end`: the short name.
impl fmt::Display for PollEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PollEnd::BadRequest(e) => write!(f, "{}", e.code()),
            other => f.write_str(other.fixed_name()),
        }
    }
}

/// [`PollEnd::reason`]: what happened, in the words the log has always used, then its
/// causes.
pub struct Reason<'a>(&'a PollEnd);

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            PollEnd::Served => f.write_str("ok"),
            PollEnd::BlobVanished(e) => {
                write!(f, "a blob vanished between query and send: {}", ErrorChain(e))
            }
            PollEnd::NoRequest => f.write_str("no request within the request timeout"),
            PollEnd::ClientClosed => {
                f.write_str("reading the request: the connection closed before a frame began")
            }
            PollEnd::BadRequest(e) => write!(f, "{}: {}", e.code(), ErrorChain(e)),
            PollEnd::ReadFailed(e) => write!(f, "reading the request: {}", ErrorChain(e)),
            PollEnd::IdentityMismatch(e) => write!(f, "identity-mismatch: {e}"),
            PollEnd::Busy(e) => write!(f, "busy: {e}"),
            PollEnd::LogBehind { server, client } => write!(
                f,
                "the server's checkpoint covers {server} leaves, the client has verified {client} (this replica lags)"
            ),
            PollEnd::Deadline => f.write_str("the poll deadline passed"),
            PollEnd::SlowReader => f.write_str("the client read slower than the minimum send rate"),
            PollEnd::StoppedReading => f.write_str("the client stopped reading"),
            PollEnd::SendFailed(e) => write!(f, "sending: {}", ErrorChain(e)),
            PollEnd::BlobUnreadable(e) => write!(f, "reading a blob: {}", ErrorChain(e)),
            PollEnd::BlobShrank { hash } => write!(f, "blob {hash} ended early"),
            PollEnd::Encode(e) => write!(f, "encoding a file header: {}", ErrorChain(e)),
            PollEnd::Internal(e) => write!(f, "a task of the poll failed: {}", ErrorChain(e)),
            PollEnd::ReceiptsNotStored(why) => write!(f, "receipts not stored: {why}"),
        }
    }
}

impl fmt::Debug for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A request that names another client than the session's certificate. The message
/// goes to the client in the `identity-mismatch` frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the request names client {requested} but the certificate is for {certificate}")]
pub struct IdentityMismatch {
    /// The client id the request names.
    pub requested: ClientId,
    /// The client id of the session's certificate.
    pub certificate: ClientId,
}

// ---------------------------------------------------------------------------------
// The client

/// Why a poll failed as a whole (nothing about one entry): exit status 1.
///
/// Text that came from the server is escaped ([`fts_proto::Printable`]) in every
/// message: [`PollError::Refused`] escapes the frame's code and message when
/// displayed, [`ProtocolBreach`] the protocol error that may quote the server's bytes,
/// [`TlsProblem`] the names of the server's certificate.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// This host's receipt could not be signed (its key cannot sign the receipt's
    /// scheme: a bug, or a key file replaced by another kind).
    #[error("cannot sign this host's receipt")]
    Receipt(#[source] fts_trust::ReceiptError),
    /// `--rerun-hook` without `--exec`.
    #[error("no hook to run: --rerun-hook needs --exec")]
    NoHook,
    /// `--rerun-hook NAME` for a name this host has not installed.
    #[error("{name} is not installed on this host (its state records no such file)")]
    NotInstalled {
        /// The name asked for.
        name: fts_proto::FileName,
    },
    /// The TCP connection to the server could not be made.
    #[error("cannot connect to {server}")]
    Connect {
        /// `--server` as given.
        server: String,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// The TCP connection was not made in time.
    #[error("cannot connect to {server}: no answer within {after:?}")]
    ConnectTimeout {
        /// `--server` as given.
        server: String,
        /// How long the client waited.
        after: Duration,
    },
    /// The handshake failed on this host's side (the server's certificate, above all);
    /// `problem` says what does not match and what to check.
    #[error("the TLS handshake with {server} failed")]
    Handshake {
        /// `--server` as given.
        server: String,
        /// What went wrong, in words an operator can act on.
        #[source]
        problem: TlsProblem,
    },
    /// The TLS handshake made no progress.
    #[error("the TLS handshake with {server} failed: no progress for {after:?}")]
    HandshakeTimeout {
        /// `--server` as given.
        server: String,
        /// How long it made none.
        after: Duration,
    },
    /// The server answered this host's certificate with a TLS alert (during the
    /// handshake or, in TLS 1.3, at the first read).
    #[error(
        "the server refused this host's certificate (revoked, expired or from another CA): {server} {}",
        tls_words::refusal_detail(alert)
    )]
    CertificateRefused {
        /// `--server` as given.
        server: String,
        /// The alert the server sent.
        alert: AlertDescription,
    },
    /// A `--once` run did not dial: the server refused this certificate less than
    /// `--max-interval` ago ([`crate::client::Client::recent_certificate_refusal`]).
    #[error(
        "the server refused this host's certificate at {at} (revoked, expired or from another CA): not \
         dialling again with it before {again_after} (--max-interval); a new certificate is tried at once"
    )]
    RefusedRecently {
        /// When the server refused it.
        at: Published,
        /// When a run dials again with the same certificate.
        again_after: Published,
    },
    /// The connection ended before the first frame, without a TLS alert.
    #[error(
        "the server {how} the connection without answering ({server}{after})",
        how = if *.reset { "reset" } else { "closed" },
        after = if *.tls { ", right after the TLS handshake: its log says why" } else { "" }
    )]
    NoAnswer {
        /// `--server` as given.
        server: String,
        /// Whether the connection was reset rather than closed.
        reset: bool,
        /// Whether a TLS handshake had completed.
        tls: bool,
    },
    /// The server answered with an `error` frame (`busy`, `identity-mismatch` ...);
    /// its `retry-after`, when it has one, is said too.
    #[error(
        "the server refused the poll: {code}: {message}{retry}",
        code = printable(&.0.code.to_string()),
        message = fts_proto::Printable(&.0.message),
        retry = RetryAfter(.0.retry_after)
    )]
    Refused(ErrorFrame),
    /// The server's answer cannot be read as the protocol says.
    #[error("the server's answer breaks the protocol")]
    Protocol(#[source] ProtocolBreach),
    /// The connection ended or failed under the poll.
    #[error("the poll was cut short")]
    Interrupted(#[source] Interruption),
    /// A read made no progress for the read timeout.
    #[error("no progress for {0:?}: the poll was abandoned")]
    Timeout(Duration),
    /// `--poll-timeout` passed: the round ended between two files.
    #[error(
        "the poll ran past --poll-timeout ({limit:?}) and was ended between two files: what was \
         installed stays installed, the rest comes at the next poll"
    )]
    PollDeadline {
        /// `--poll-timeout`.
        limit: Duration,
    },
    /// `--poll-timeout` passed while a file arrived below the minimum receive rate.
    #[error(
        "the poll ran past --poll-timeout ({limit:?}) while a file arrived slower than {rate} bytes/s \
         (the minimum receive rate): it was abandoned after {received} of {expected} bytes",
        rate = MIN_RECEIVE_RATE.bytes_per_second
    )]
    BelowMinimumRate {
        /// `--poll-timeout`.
        limit: Duration,
        /// The bytes of the body that arrived.
        received: u64,
        /// The body's signed size.
        expected: u64,
    },
    /// Several `--server`s, and none answered: each one's failure, in the order tried
    /// (a leaf: every failure is said whole, with its chain, in the message).
    #[error("no server answered: {}", ServerFailures(.0))]
    NoServerAnswered(Vec<(String, PollError)>),
    /// The state file cannot be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The destination or the state file's folder cannot be used: missing, a link
    /// where fts makes its own files, writable by others, or an I/O error.
    #[error(transparent)]
    Folder(#[from] FsError),
    /// `--reset-state` was given, but the state file is not damaged: it cannot be read
    /// at all (permissions, I/O), and throwing it away would refetch and re-run every
    /// hook for nothing.
    #[error(
        "--reset-state replaces only a state file whose content is damaged, and this one could not be \
         read at all (permissions are not damage): check its owner and mode, and the user fts runs as"
    )]
    ResetRefused(#[source] StateError),
    /// The destination folder did not exist and could not be made.
    #[error("cannot create the destination {}", path.display())]
    CreateDestination {
        /// The destination.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// `--state` has no file name (it is `/` or ends in `..`).
    #[error("--state {} does not name a file", path.display())]
    StateNotAFile {
        /// `--state` as given.
        path: PathBuf,
    },
    /// Another client holds the destination's lock.
    #[error("another fts poll is already using {}", path.display())]
    Locked {
        /// The destination.
        path: PathBuf,
    },
    /// The temporary files of an interrupted run could not be removed.
    #[error("cannot clean {}", dir.display())]
    Clean {
        /// The folder they are in.
        dir: PathBuf,
        /// The error that stopped the cleaning.
        #[source]
        source: FsError,
    },
}

impl PollError {
    /// The server's `retry-after` advice, for `busy`.
    /// With several servers, the shortest advice, when every one of them gave one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            PollError::Refused(frame) => frame.retry_after,
            PollError::NoServerAnswered(failures) => {
                failures.iter().map(|(_, e)| e.retry_after()).collect::<Option<Vec<u64>>>()?.into_iter().min()
            }
            _ => None,
        }
    }

    /// The server refused this host's certificate with a TLS alert: polling again soon
    /// will not help (the loop waits `--max-interval`, the metrics file counts it).
    /// With several servers, only when every one of them refused it.
    pub fn is_certificate_refusal(&self) -> bool {
        match self {
            PollError::CertificateRefused { .. } => true,
            PollError::NoServerAnswered(failures) => {
                !failures.is_empty() && failures.iter().all(|(_, e)| e.is_certificate_refusal())
            }
            _ => false,
        }
    }
}

/// The failures of [`PollError::NoServerAnswered`], each with its chain:
/// `a:1: cannot connect to a:1: refused; b:1: ...`.
struct ServerFailures<'a>(&'a [(String, PollError)]);

impl fmt::Display for ServerFailures<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (server, e)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{server}: {}", ErrorChain(e))?;
        }
        Ok(())
    }
}

/// Why a TLS handshake failed on this host's side, in words an operator can act on
/// ([`tls_words`]). A leaf: the words replace rustls' message, which is kept here for
/// code but never printed.
#[derive(Debug, thiserror::Error)]
pub enum TlsProblem {
    /// The server's certificate is not acceptable; `dialled` is the HOST of `--server`.
    #[error("{}", tls_words::server_certificate_problem(problem, dialled))]
    ServerCertificate {
        /// What rustls found wrong with it.
        problem: CertificateError,
        /// The name the certificate had to hold.
        dialled: ServerName<'static>,
    },
    /// The server ended the handshake with an alert that is not about this host's
    /// certificate (no common protocol, version or cipher ...).
    #[error("{}", tls_words::handshake_alert(.0))]
    Alert(AlertDescription),
    /// Another TLS or transport failure.
    #[error("{}", tls_words::io_reason(.0))]
    Transport(io::Error),
}

/// How a poll under way was cut short.
#[derive(Debug, thiserror::Error)]
pub enum Interruption {
    /// The server closed the connection cleanly, but before its answer ended.
    #[error("the server closed the connection before `done`")]
    ClosedBeforeDone,
    /// The connection failed between frames.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The connection failed in the middle of a body ([`ReceiveError::Truncated`]).
    #[error(transparent)]
    Body(ReceiveError),
}

/// A connection that failed under a poll, said in words ([`tls_words::io_reason`]): an
/// unclean TLS close without rustls' documentation link, an alert by its number. A
/// leaf, like [`TlsProblem`].
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The server closed the connection (a clean TLS close, or the end of the stream).
    #[error("the connection closed")]
    Closed,
    /// Reading or writing failed (a reset, a TLS error).
    #[error("{}", tls_words::io_reason(.0))]
    Io(io::Error),
}

/// How the server broke the protocol.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolBreach {
    /// A frame that cannot be read. Displayed escaped when a control character got
    /// through (fts-proto already quotes peer strings with `{:?}`): a leaf, so that a
    /// chain printer never prints the server's bytes raw.
    #[error("{}", peer_text(&.0.to_string()))]
    Frame(ProtoError),
    /// The answer held more frames than the client accepts (the limit,
    /// [`ClientSettings::max_frames`](crate::client::ClientSettings::max_frames)).
    #[error("more than {0} frames in one answer")]
    TooManyFrames(usize),
    /// A `log` frame that is not the first of the answer (PROTOCOL.md section 7.3).
    #[error("a log frame after the first frame of the answer")]
    LateLogFrame,
    /// A frame of a kind the request did not announce it understands (PROTOCOL.md
    /// section 8): the server ignores `features`.
    #[error("a {0} frame, which this host did not announce it understands")]
    UnannouncedFrame(&'static str),
    /// A `file` frame for a target the request held (PROTOCOL.md section 3.1.1): the
    /// server ignored `held`, so it is older than this host (upgrade servers first).
    #[error(
        "the server sent entry {seq} of {target}, a target this host holds and said so: \
         the server ignores `held` (is it older than this host? upgrade servers first)"
    )]
    FrameForHeldTarget {
        /// The held target.
        target: fts_proto::Target,
        /// The entry sent.
        seq: u64,
    },
}

/// Text that quotes what the server sent (a protocol error's excerpt), safe to print:
/// fts-proto already quotes peer strings with `{:?}`, so the text is escaped again only
/// when a control character got through, which keeps those quotes readable.
pub(crate) fn peer_text(text: &str) -> String {
    if text.chars().any(char::is_control) { printable(text) } else { text.to_owned() }
}

/// Why a body was not turned into a [`crate::client::receive::VerifiedFile`].
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The bytes arrived but are not what was signed: reported as `hash-mismatch`.
    #[error("the body's hash is {actual}, not the signed {expected}")]
    HashMismatch {
        /// The hash the statement signs.
        expected: FileHash,
        /// The hash of the bytes that arrived.
        actual: FileHash,
    },
    /// The connection ended or failed mid-body: a failure of the poll.
    #[error("the body was cut short: {received} of {expected} bytes arrived")]
    Truncated {
        /// The bytes of the body that arrived.
        received: u64,
        /// The body's signed size.
        expected: u64,
        /// How the connection ended or failed.
        #[source]
        cause: TransportError,
    },
    /// No body byte arrived for the read timeout: a failure of the poll.
    #[error("no body bytes arrived for the read timeout")]
    Timeout,
    /// The poll deadline passed while the body arrived slower than the minimum receive
    /// rate ([`crate::client::deadline`]): a failure of the poll.
    #[error(
        "the body arrived slower than {} bytes/s after the poll deadline: {received} of {expected} bytes arrived",
        MIN_RECEIVE_RATE.bytes_per_second
    )]
    BelowMinimumRate {
        /// The bytes of the body that arrived.
        received: u64,
        /// The body's signed size.
        expected: u64,
    },
    /// This host could not store the file (disk full, permissions, I/O): reported as
    /// `install-failed`.
    #[error("cannot store the file in {}", dir.display())]
    Local {
        /// The folder the file was being written in.
        dir: PathBuf,
        /// What failed.
        #[source]
        cause: LocalFailure,
    },
}

/// Why this host could not store a file it was receiving.
#[derive(Debug, thiserror::Error)]
pub enum LocalFailure {
    /// Checked before the transfer starts.
    #[error("not enough free space: {needed} bytes needed, {available} available")]
    NoSpace {
        /// The body's size.
        needed: u64,
        /// The bytes available on the destination's file system.
        available: u64,
    },
    /// A write found the disk full (`ENOSPC`).
    #[error("the disk is full")]
    DiskFull,
    /// A write failed otherwise.
    #[error(transparent)]
    Write(io::Error),
    /// Creating the temporary file, or looking at the free space, failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A thread that hashes or writes the body panicked.
    #[error("the disk writer failed")]
    WriterFailed(#[source] tokio::task::JoinError),
    /// A thread that hashes or writes the body ended before the body did.
    #[error("the disk writer stopped")]
    WriterGone,
    /// The kept prefix of a transfer is shorter than the offset the server resumed at
    /// (someone changed the partial folder).
    #[error("{} has {len} bytes, fewer than the {start} the transfer resumes after", path.display())]
    KeptTooShort {
        /// The kept file.
        path: std::path::PathBuf,
        /// Its length now.
        len: u64,
        /// The offset asked for.
        start: u64,
    },
}

impl LocalFailure {
    /// A failed write: `ENOSPC` is said as such.
    pub fn write(e: io::Error) -> LocalFailure {
        match e.raw_os_error() {
            Some(28) => LocalFailure::DiskFull,
            _ => LocalFailure::Write(e),
        }
    }
}

/// ` (retry after N s)`, the `retry-after` of an error frame, or nothing.
struct RetryAfter(Option<u64>);

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(secs) => write!(f, " (retry after {secs} s)"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_end_logs_its_name_as_result_and_its_reason_in_words() {
        let bad = PollEnd::BadRequest(ProtoError::BadJson { detail: "not an object".into() });
        assert_eq!(bad.to_string(), "bad-json");
        assert_eq!(
            bad.reason().to_string(),
            "bad-json: the header is not a valid JSON object: not an object"
        );
        assert_eq!(PollEnd::Deadline.to_string(), "deadline");
        assert_eq!(PollEnd::Deadline.reason().to_string(), "the poll deadline passed");
        let mismatch = PollEnd::IdentityMismatch(IdentityMismatch {
            requested: ClientId::parse("web-02").unwrap(),
            certificate: ClientId::parse("web-01").unwrap(),
        });
        assert_eq!(
            mismatch.reason().to_string(),
            "identity-mismatch: the request names client web-02 but the certificate is for web-01"
        );
        assert!(PollEnd::Served.is_answered() && !PollEnd::SlowReader.is_answered());
    }

    #[test]
    fn each_cause_is_printed_once() {
        let e = PollError::Interrupted(Interruption::Body(ReceiveError::Truncated {
            received: 3,
            expected: 10,
            cause: TransportError::Closed,
        }));
        assert_eq!(
            ErrorChain(&e).to_string(),
            "the poll was cut short: the body was cut short: 3 of 10 bytes arrived: the connection closed"
        );
        let full = ReceiveError::Local {
            dir: "/srv/in/.fts-partial".into(),
            cause: LocalFailure::write(io::Error::from_raw_os_error(28)),
        };
        assert_eq!(
            ErrorChain(&full).to_string(),
            "cannot store the file in /srv/in/.fts-partial: the disk is full"
        );
    }

    #[test]
    fn a_protocol_breach_never_prints_the_servers_control_characters() {
        let e = PollError::Protocol(ProtocolBreach::Frame(ProtoError::BadServerFrame {
            detail: "unknown field `\u{1b}[2K`".into(),
        }));
        let text = ErrorChain(&e).to_string();
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert_eq!(
            text,
            r"the server's answer breaks the protocol: bad server frame: unknown field `\u{1b}[2K`"
        );
    }
}
