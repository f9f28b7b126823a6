//! [`ProtoError`]: every way a frame or header can fail to encode or decode, and the
//! error code of PROTOCOL.md section 3.4 each one maps to; and [`ErrorChain`], how
//! every fts crate prints an error with its causes.
//!
//! Messages are lower-case, say what happened, and quote at most a short excerpt of
//! the peer's input (never the raw header), so they can be logged and sent back in
//! an `error` frame as they are.
//!
//! **The convention of every error in fts**: a message says what failed, about what
//! (a path, a peer, a flag), and never quotes its cause; the cause is the error's
//! `source()` (`#[source]`/`#[from]`). Whoever prints an error prints the chain, with
//! [`ErrorChain`]: `cannot read certs/signing.pub: Permission denied (os error 13)`.
//! So each cause appears once, whether an error is printed alone or inside another.

use std::error::Error as StdError;
use std::fmt;

use crate::answer::ErrorCode;
use crate::names::Target;
use crate::request::{RejectReason, Report};

/// Why a frame or header could not be encoded or decoded.
///
/// Every variant is a leaf (no `source()`): its message is what a server sends back
/// whole in an `error` frame, where a chain would not travel. So the `detail` fields
/// say a lower layer's failure (serde's message, cut to 200 bytes) in its own words;
/// none of them holds an `Error` that could be a source instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The peer announced a header shorter than the 2 bytes of `{}`.
    #[error("header length {len} is below the minimum of 2 bytes")]
    HeaderTooShort {
        /// The announced length.
        len: u16,
    },

    /// The peer announced a header longer than this side accepts. Detected from the
    /// length prefix alone, before any header byte is read or any buffer reserved.
    #[error("header length {len} exceeds the limit of {limit} bytes")]
    HeaderTooLarge {
        /// The announced length.
        len: usize,
        /// The longest header this side accepts.
        limit: usize,
    },

    /// The input ended between the start of a frame and the end of its header.
    #[error("the input ended inside a frame: {buffered} bytes of an unfinished header")]
    TruncatedHeader {
        /// How many bytes of the header had arrived.
        buffered: usize,
    },

    /// The input ended before the last byte of a `file` frame's body.
    #[error("the input ended {missing} bytes before the end of a file body")]
    TruncatedBody {
        /// How many bytes of the body never arrived.
        missing: u64,
    },

    /// The header is not one JSON object in UTF-8 without a byte-order mark and
    /// without duplicate keys.
    #[error("the header is not a valid JSON object: {detail}")]
    BadJson {
        /// What is wrong, in fts's words or serde's (cut to 200 bytes).
        detail: String,
    },

    /// A request that is JSON but misses a required field or has a known field of
    /// the wrong type (a bad name included), or carries too many reports.
    #[error("bad request: {detail}")]
    BadRequest {
        /// Which field is wrong and how.
        detail: String,
    },

    /// A request whose `request-type` is a string other than `poll`.
    #[error("unknown request type {request_type:?}")]
    UnknownRequest {
        /// The type asked for, cut to a short excerpt.
        request_type: String,
    },

    /// A request whose `protocol` is a well-formed integer other than 1.
    #[error("unsupported protocol version {version} (this side speaks version 1)")]
    UnsupportedProtocol {
        /// The version asked for.
        version: u64,
    },

    /// A server frame that is JSON but cannot be tied to an entry: no valid `type`,
    /// an unknown type, or a `file` header whose `target` or `seq` is unreadable, or a
    /// `done` / `error` frame with a missing or mistyped field. A failure of the poll.
    #[error("bad server frame: {detail}")]
    BadServerFrame {
        /// Which field is wrong and how.
        detail: String,
    },

    /// A `file` header whose `target` and `seq` are valid but another field breaks
    /// PROTOCOL.md section 4. The client reports it (see [`ProtoError::report`]).
    #[error("bad file header for target {target} seq {seq} ({reason}): {detail}")]
    BadFileHeader {
        /// The entry's target, as the header gave it.
        target: Target,
        /// The entry's sequence number, as the header gave it.
        seq: u64,
        /// [`RejectReason::BadName`] or [`RejectReason::BadHeader`].
        reason: RejectReason,
        /// Which field is wrong and how.
        detail: String,
    },

    /// Receipt bytes (`fts-receipt-v1`, [`crate::receipt`]) that break their format:
    /// the detail names the line (`line 3: ...`) and what is wrong on it. Whoever
    /// made the receipt is at fault (the host, or this side when it checks its own
    /// receipt before signing it).
    #[error("bad receipt: {detail}")]
    BadReceipt {
        /// The line and what is wrong on it.
        detail: String,
    },

    /// A request that would not stay under the client's limit of
    /// [`MAX_CLIENT_REQUEST`](crate::MAX_CLIENT_REQUEST) bytes.
    #[error("the request frame would be {len} bytes, not under the limit of {limit} bytes")]
    RequestTooLarge {
        /// The length of the frame the request would make.
        len: usize,
        /// The client's limit ([`MAX_CLIENT_REQUEST`](crate::MAX_CLIENT_REQUEST)).
        limit: usize,
    },

    /// This side failed to encode a header (an integer above 2^53 - 1, a header over
    /// 65535 bytes, or not an object). A local bug, never the peer's fault.
    #[error("cannot encode the header: {detail}")]
    Encode {
        /// serde's message (cut to 200 bytes).
        detail: String,
    },
}

impl ProtoError {
    /// The error code of PROTOCOL.md section 3.4 that describes this failure. A
    /// server sends it in its `error` frame; a client uses it to classify a failed
    /// poll.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtoError::HeaderTooShort { .. }
            | ProtoError::TruncatedHeader { .. }
            | ProtoError::TruncatedBody { .. } => ErrorCode::BadFrame,
            ProtoError::HeaderTooLarge { .. } => ErrorCode::HeaderTooLarge,
            ProtoError::BadJson { .. } => ErrorCode::BadJson,
            ProtoError::BadRequest { .. }
            | ProtoError::BadServerFrame { .. }
            | ProtoError::BadFileHeader { .. }
            | ProtoError::BadReceipt { .. } => ErrorCode::BadRequest,
            ProtoError::UnknownRequest { .. } => ErrorCode::UnknownRequest,
            ProtoError::UnsupportedProtocol { .. } => ErrorCode::UnsupportedProtocol,
            ProtoError::RequestTooLarge { .. } | ProtoError::Encode { .. } => ErrorCode::Internal,
        }
    }

    /// For a `file` header that failed check 1 of PROTOCOL.md section 6 but whose
    /// `target` and `seq` could be read: the report the client sends in its next
    /// request. `None` for every failure that cannot be tied to an entry.
    pub fn report(&self) -> Option<Report> {
        match self {
            ProtoError::BadFileHeader { target, seq, reason, .. } => {
                Some(Report::new(target.clone(), *seq, reason.clone()))
            }
            _ => None,
        }
    }
}

/// Displays an error and its causes, `: `-separated, outermost first: what a log line
/// or `fts: error:` prints (see the module docs).
pub struct ErrorChain<'a>(pub &'a (dyn StdError + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Longest excerpt of peer input quoted in a message, in bytes.
const EXCERPT_MAX: usize = 64;

/// Longest detail string kept from a lower layer (serde), in bytes.
const DETAIL_MAX: usize = 200;

/// At most [`EXCERPT_MAX`] bytes of `s`, cut on a character boundary, with `...`
/// appended when something was cut.
pub(crate) fn excerpt(s: &str) -> String {
    truncate(s, EXCERPT_MAX)
}

/// A lower layer's message (serde's messages can quote whole input strings), cut to
/// [`DETAIL_MAX`] bytes.
pub(crate) fn detail(message: impl std::fmt::Display) -> String {
    truncate(&message.to_string(), DETAIL_MAX)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &s[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the key")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_chain_prints_every_cause_once_outermost_first() {
        let e = Outer(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied"));
        assert_eq!(ErrorChain(&e).to_string(), "cannot read the key: permission denied");
        let plain = ProtoError::HeaderTooShort { len: 1 };
        assert_eq!(ErrorChain(&plain).to_string(), plain.to_string());
    }

    #[test]
    fn excerpts_are_cut_on_character_boundaries() {
        let long = "é".repeat(100);
        let cut = excerpt(&long);
        assert!(cut.len() <= EXCERPT_MAX + 3);
        assert!(cut.ends_with("..."));
        assert_eq!(excerpt("short"), "short");
    }

    #[test]
    fn every_error_names_its_protocol_code() {
        let e = ProtoError::HeaderTooLarge { len: 70000, limit: 16384 };
        assert_eq!(e.to_string(), "header length 70000 exceeds the limit of 16384 bytes");
        assert_eq!(e.code(), ErrorCode::HeaderTooLarge);
        assert_eq!(ProtoError::HeaderTooShort { len: 1 }.code(), ErrorCode::BadFrame);
        assert_eq!(ProtoError::UnsupportedProtocol { version: 2 }.code(), ErrorCode::UnsupportedProtocol);
        assert!(ProtoError::BadJson { detail: "x".into() }.report().is_none());
    }
}
