//! The server's answer (PROTOCOL.md sections 3.2 to 3.4): the `file`, `done` and
//! `error` frame headers, the error codes, and [`AnswerDecoder`], which splits a
//! client's input into frames and file bodies; and the answer to a receipt request,
//! `receipts-stored` ([`ReceiptsStored`], [`crate::receipt`]).
//!
//! [`ServerFrame::decode`] applies the same JSON rules as a request (UTF-8, no
//! byte-order mark, no duplicate keys, an object), then dispatches on `type`. For a
//! `file` header it reads `target` and `seq` first: when both are valid, any other
//! bad field gives a [`ProtoError::BadFileHeader`] that the client reports
//! (`bad-name` for the file name, `bad-header` for anything else); when they are
//! not, the poll fails without a report, since the entry cannot be named.
//!
//! Leniency, deliberately: an `error` frame with an unknown `code` is kept as
//! [`ErrorCode::Unknown`], and one without `message` gets an empty message, so that
//! a client always learns that, and if possible why, the server refused it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::{ProtoError, excerpt};
use crate::frame::{Chunk, FrameDecoder, encode_frame};
use crate::json::{self, optional, required};
use crate::keys::{KeyId, Signature};
use crate::log::{LogFrame, LogHash};
use crate::names::{FileHash, FileName, Published, Target};
use crate::receipt::MAX_RECEIPTS_PER_REQUEST;
use crate::request::RejectReason;
use crate::seq::Seq;
use crate::statement::Statement;
use crate::wire_int::{self, WireInt};
use crate::withdraw::Withdrawal;

/// A frame header sent by the server, keyed by its `type` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerFrame {
    /// An entry; `file-size` body bytes follow the header.
    File(FileHeader),
    /// The end of a successful answer.
    Done(Done),
    /// The request was refused; nothing follows.
    Error(ErrorFrame),
    /// The checkpoint and head proofs an answer starts with when the request
    /// carried `log-size` (PROTOCOL.md section 7.3).
    Log(LogFrame),
    /// A withdrawn entry, without its body, and its withdrawal (PROTOCOL.md
    /// section 8.1); only to a client that announced `withdrawn`.
    Withdrawn(WithdrawnFrame),
    /// An entry superseded by a later one of the same name, without its body
    /// (PROTOCOL.md section 8.2); only to a client that announced `superseded`.
    Superseded(SupersededFrame),
    /// The whole answer to a `receipt` request: which of its receipts the server has
    /// stored ([`crate::receipt`]).
    ReceiptsStored(ReceiptsStored),
}

/// The header of a `receipts-stored` frame, the answer to a `receipt` request:
/// `{"type":"receipts-stored","stored":["sha256:...", ...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReceiptsStored {
    /// The hash (SHA-256 of the bytes, fts-trust's `receipt_hash`) of each receipt of
    /// the request the server has stored durably, or had already; at most
    /// [`MAX_RECEIPTS_PER_REQUEST`]. A receipt not listed was not stored: the host
    /// keeps it and sends it again.
    pub stored: Vec<FileHash>,
}

/// The header of a `withdrawn` frame: the withdrawn entry's header (no body
/// follows; its signature is not checked, its leaf is) and the withdrawal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WithdrawnFrame {
    /// The withdrawn entry, with its `log-index` and `inclusion`.
    #[serde(flatten)]
    pub entry: FileHeader,
    /// The signed withdrawal of it.
    pub withdrawal: Withdrawal,
}

/// The header of a `superseded` frame: the superseded entry's header (no body
/// follows; its signature is not checked, its leaf is) and the whole header of the
/// later entry that supersedes it, signed, with its leaf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupersededFrame {
    /// The superseded entry, with its `log-index` and `inclusion`.
    #[serde(flatten)]
    pub entry: FileHeader,
    /// The entry that supersedes it (same target and file name, a higher seq),
    /// with its `log-index` and `inclusion`; its body comes later in its own frame.
    pub by: FileHeader,
}

impl ServerFrame {
    /// Decodes a server frame header (the JSON bytes, without the length prefix).
    pub fn decode(header: &[u8]) -> Result<ServerFrame, ProtoError> {
        let object = json::parse_object(header).map_err(|detail| ProtoError::BadJson { detail })?;
        let bad = |detail: String| ProtoError::BadServerFrame { detail };
        let frame_type: String = required(&object, "type").map_err(bad)?;
        match frame_type.as_str() {
            "file" => FileHeader::from_object(&object).map(ServerFrame::File),
            "done" => Ok(ServerFrame::Done(Done {
                more: required(&object, "more").map_err(bad)?,
                poll_after: required::<WireInt>(&object, "poll-after").map_err(bad)?.0,
                heads: optional::<BTreeMap<Target, WireInt>>(&object, "heads")
                    .map_err(bad)?
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(target, n)| (target, n.0))
                    .collect(),
            })),
            "error" => Ok(ServerFrame::Error(ErrorFrame {
                code: required(&object, "code").map_err(bad)?,
                message: optional(&object, "message").map_err(bad)?.unwrap_or_default(),
                retry_after: optional::<WireInt>(&object, "retry-after").map_err(bad)?.map(|n| n.0),
            })),
            "log" => Ok(ServerFrame::Log(LogFrame {
                checkpoint: required(&object, "checkpoint").map_err(bad)?,
                consistency: optional(&object, "consistency").map_err(bad)?.unwrap_or_default(),
                heads: optional(&object, "heads").map_err(bad)?.unwrap_or_default(),
                rotations: optional(&object, "rotations").map_err(bad)?.unwrap_or_default(),
            })),
            "withdrawn" => Ok(ServerFrame::Withdrawn(WithdrawnFrame {
                entry: bodiless(FileHeader::from_object(&object)?)?,
                withdrawal: required(&object, "withdrawal").map_err(bad)?,
            })),
            "superseded" => {
                let entry = bodiless(FileHeader::from_object(&object)?)?;
                let by = match object.get("by") {
                    Some(Value::Object(by)) => bodiless(FileHeader::from_object(by)?)?,
                    _ => return Err(bad("superseded frame: field `by` must be an entry header".into())),
                };
                Ok(ServerFrame::Superseded(SupersededFrame { entry, by }))
            }
            "receipts-stored" => {
                let stored: Vec<Value> = required(&object, "stored").map_err(bad)?;
                if stored.len() > MAX_RECEIPTS_PER_REQUEST {
                    return Err(bad(format!(
                        "receipts-stored frame: {} hashes, more than the {MAX_RECEIPTS_PER_REQUEST} receipts \
                         of a request",
                        stored.len()
                    )));
                }
                let stored = stored
                    .iter()
                    .enumerate()
                    .map(|(i, hash)| json::convert::<FileHash>(hash, &format!("stored[{i}]")))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(bad)?;
                Ok(ServerFrame::ReceiptsStored(ReceiptsStored { stored }))
            }
            other => Err(bad(format!("unknown frame type {:?}", excerpt(other)))),
        }
    }

    /// The header frame (length prefix and JSON); a `file` frame's body is written
    /// after it by the caller.
    pub fn encode(&self) -> Result<Vec<u8>, ProtoError> {
        encode_frame(self)
    }
}

/// A header that stands for an entry without sending its body: it has no `offset`.
fn bodiless(header: FileHeader) -> Result<FileHeader, ProtoError> {
    if header.offset.is_some() {
        return Err(ProtoError::BadServerFrame {
            detail: format!("{} seq {}: a frame without a body has no `offset`", header.target, header.seq),
        });
    }
    Ok(header)
}

/// The header of a `file` frame: one signed entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FileHeader {
    /// Who the entry is published for.
    pub target: Target,
    /// The entry's place in its target's sequence, from 1.
    pub seq: Seq,
    /// The name the host installs the body under.
    pub file_name: FileName,
    #[serde(with = "wire_int")]
    /// The length of the body that follows, in bytes.
    pub file_size: u64,
    /// The SHA-256 of the body, checked before the file is installed.
    pub file_hash: FileHash,
    /// When the entry was published, as signed.
    pub published: Published,
    /// Which release signing key signed the statement.
    pub key_id: KeyId,
    /// The Ed25519 signature over the statement (PROTOCOL.md section 5).
    pub signature: Signature,
    /// Where the body starts in the file: the frame resumes a transfer the client
    /// asked to resume (PROTOCOL.md section 3.2.1), and `file-size - offset` bytes
    /// follow. Not signed: it changes which bytes travel, never what is installed.
    #[serde(default, with = "wire_int::option", skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The entry's leaf index in the log (PROTOCOL.md section 7.4); with
    /// `inclusion`, only in answers that start with a `log` frame.
    #[serde(default, with = "wire_int::option", skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
    /// The inclusion proof of the entry's leaf in the answer's checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion: Option<Vec<LogHash>>,
}

impl FileHeader {
    /// The header that carries a signed statement.
    pub fn new(statement: Statement, key_id: KeyId, signature: Signature) -> Self {
        FileHeader {
            target: statement.target,
            seq: statement.seq,
            file_name: statement.file_name,
            file_size: statement.file_size,
            file_hash: statement.file_hash,
            published: statement.published,
            key_id,
            signature,
            offset: None,
            log_index: None,
            inclusion: None,
        }
    }

    /// Where the body starts in the file (0 unless the frame resumes a transfer).
    pub fn body_offset(&self) -> u64 {
        self.offset.unwrap_or(0)
    }

    /// How many body bytes follow the header.
    pub fn body_len(&self) -> u64 {
        self.file_size.saturating_sub(self.body_offset())
    }

    /// The statement the signature must verify over (PROTOCOL.md section 5).
    pub fn statement(&self) -> Statement {
        Statement {
            target: self.target.clone(),
            seq: self.seq,
            file_name: self.file_name.clone(),
            file_size: self.file_size,
            file_hash: self.file_hash,
            published: self.published.clone(),
        }
    }

    fn from_object(object: &Map<String, Value>) -> Result<FileHeader, ProtoError> {
        let unreportable =
            |detail: String| ProtoError::BadServerFrame { detail: format!("file header: {detail}") };
        let target: Target = required(object, "target").map_err(unreportable)?;
        let number = required::<WireInt>(object, "seq").map_err(unreportable)?.0;
        let reportable = |reason: RejectReason| {
            let target = target.clone();
            move |detail: String| ProtoError::BadFileHeader { target, seq: number, reason, detail }
        };
        let bad_header = || reportable(RejectReason::BadHeader);
        // Entries are numbered from 1: a header that says 0 names no entry, and is
        // reported as malformed rather than taken for one already applied.
        let Some(seq) = Seq::new(number) else {
            return Err(bad_header()("seq 0: sequence numbers start at 1".to_owned()));
        };
        let file_name: FileName = match object.get("file-name") {
            Some(value) => json::convert(value, "file-name").map_err(reportable(RejectReason::BadName))?,
            None => return Err(bad_header()("missing field `file-name`".to_owned())),
        };
        let file_size = required::<WireInt>(object, "file-size").map_err(bad_header())?.0;
        let offset = optional::<WireInt>(object, "offset").map_err(bad_header())?.map(|n| n.0);
        if offset.is_some_and(|offset| offset > file_size) {
            return Err(bad_header()(format!(
                "offset {} is past the file's {file_size} bytes",
                offset.unwrap_or(0)
            )));
        }
        Ok(FileHeader {
            file_size,
            offset,
            log_index: optional::<WireInt>(object, "log-index").map_err(bad_header())?.map(|n| n.0),
            inclusion: optional(object, "inclusion").map_err(bad_header())?,
            file_hash: required(object, "file-hash").map_err(bad_header())?,
            published: required(object, "published").map_err(bad_header())?,
            key_id: required(object, "key-id").map_err(bad_header())?,
            signature: required(object, "signature").map_err(bad_header())?,
            target,
            seq,
            file_name,
        })
    }
}

/// The end of a successful answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Done {
    /// The server stopped at its per-poll budget; more entries are waiting.
    pub more: bool,
    /// The server's advice for the next regular poll, in seconds.
    #[serde(with = "wire_int")]
    pub poll_after: u64,
    /// Per target of the client that has entries, the newest seq the server can
    /// serve (display only: how many entries wait behind a held one).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", serialize_with = "heads_on_the_wire")]
    pub heads: BTreeMap<Target, u64>,
}

fn heads_on_the_wire<S: Serializer>(heads: &BTreeMap<Target, u64>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_map(heads.iter().map(|(target, &n)| (target, WireInt(n))))
}

/// A refusal of the whole request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ErrorFrame {
    /// Which of the section 3.4 failures this is.
    pub code: ErrorCode,
    /// Human-readable; never secrets, server paths or stack traces.
    #[serde(default)]
    pub message: String,
    /// Seconds to wait before polling again (sent with `busy`).
    #[serde(default, with = "wire_int::option", skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl ErrorFrame {
    /// The `error` frame a server sends for a request it could not decode.
    pub fn from_error(error: &ProtoError) -> Self {
        ErrorFrame { code: error.code(), message: error.to_string(), retry_after: None }
    }
}

/// The error codes of PROTOCOL.md section 3.4.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `bad-frame`: the request's framing is broken (a header too short or cut off).
    BadFrame,
    /// `header-too-large`: the request header is longer than the server accepts.
    HeaderTooLarge,
    /// `bad-json`: the request header is not one strict JSON object.
    BadJson,
    /// `bad-request`: the header is JSON but a field is missing, mistyped or invalid.
    BadRequest,
    /// `unknown-request`: the `request-type` is not one this server knows.
    UnknownRequest,
    /// `unsupported-protocol`: the request asks for a protocol version other than 1.
    UnsupportedProtocol,
    /// `identity-mismatch`: the request's `client-id` is not the id of its certificate.
    IdentityMismatch,
    /// `busy`: the server is at its limit; poll again after `retry-after` seconds.
    Busy,
    /// `internal`: the server failed on its side; the request was not at fault.
    Internal,
    /// `log-behind`: the server's checkpoint is older than the request's `log-size`
    /// (a lagging replica); poll again after `retry-after` seconds.
    LogBehind,
    /// A code this side does not know (from a newer server), kept as sent so that
    /// the client can still show it.
    Unknown(String),
}

impl ErrorCode {
    const KNOWN: [(ErrorCode, &'static str); 10] = [
        (ErrorCode::BadFrame, "bad-frame"),
        (ErrorCode::HeaderTooLarge, "header-too-large"),
        (ErrorCode::BadJson, "bad-json"),
        (ErrorCode::BadRequest, "bad-request"),
        (ErrorCode::UnknownRequest, "unknown-request"),
        (ErrorCode::UnsupportedProtocol, "unsupported-protocol"),
        (ErrorCode::IdentityMismatch, "identity-mismatch"),
        (ErrorCode::Busy, "busy"),
        (ErrorCode::Internal, "internal"),
        (ErrorCode::LogBehind, "log-behind"),
    ];

    /// The code by its wire spelling; never fails.
    pub fn parse(s: &str) -> ErrorCode {
        Self::KNOWN
            .iter()
            .find(|(_, name)| *name == s)
            .map_or_else(|| ErrorCode::Unknown(s.to_owned()), |(code, _)| code.clone())
    }

    /// The wire spelling (`bad-frame`, ...), as `parse` reads it.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::Unknown(s) => s,
            known => Self::KNOWN.iter().find(|(code, _)| code == known).map_or("", |(_, name)| name),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(ErrorCode::parse(&s))
    }
}

/// One piece of a server's answer.
// One item at a time, on the stack of the reader: boxing the header would only add
// an allocation per frame.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerItem<'b> {
    /// A decoded frame header. After a [`ServerFrame::File`], its body follows as
    /// [`AnswerItem::Body`] pieces (none for an empty file).
    Frame(ServerFrame),
    /// Some bytes of the current file's body.
    Body(&'b [u8]),
}

/// A client's incremental decoder for the server's answer: frame headers, decoded
/// and checked, and file bodies in pieces as they arrive. Like [`FrameDecoder`] it
/// borrows the caller's buffer, returns `Ok(None)` when it needs more bytes, and
/// never allocates from a claimed length.
///
/// It does not enforce what comes after `done` or `error` (the client stops reading
/// there) nor any limit on `file-size` (check 5 of PROTOCOL.md section 6 is the
/// client's, with its own maximum).
#[derive(Debug, Clone)]
pub struct AnswerDecoder {
    frames: FrameDecoder,
}

impl AnswerDecoder {
    /// A decoder refusing server headers longer than `header_limit` (the protocol
    /// asks a client to accept at least
    /// [`MIN_CLIENT_HEADER_LIMIT`](crate::MIN_CLIENT_HEADER_LIMIT)).
    pub fn new(header_limit: usize) -> Self {
        AnswerDecoder { frames: FrameDecoder::new(header_limit) }
    }

    /// Decodes the next item from the front of `buf`; on `Ok(Some((item, used)))`
    /// the caller drops the first `used` bytes.
    pub fn decode<'b>(&mut self, buf: &'b [u8]) -> Result<Option<(AnswerItem<'b>, usize)>, ProtoError> {
        match self.frames.decode(buf)? {
            None => Ok(None),
            Some((Chunk::Body(body), used)) => Ok(Some((AnswerItem::Body(body), used))),
            Some((Chunk::Header(header), used)) => {
                let frame = ServerFrame::decode(header)?;
                if let ServerFrame::File(file) = &frame {
                    self.frames.expect_body(file.body_len());
                }
                Ok(Some((AnswerItem::Frame(frame), used)))
            }
        }
    }

    /// Bytes of the current body not yet returned.
    pub fn body_remaining(&self) -> u64 {
        self.frames.body_remaining()
    }

    /// See [`FrameDecoder::body_room`].
    pub fn body_room(&self, capacity: usize) -> usize {
        self.frames.body_room(capacity)
    }

    /// See [`FrameDecoder::body_arrived`].
    pub fn body_arrived(&mut self, n: usize) {
        self.frames.body_arrived(n);
    }

    /// See [`FrameDecoder::end_of_input`].
    pub fn end_of_input(&self, unused: &[u8]) -> Result<(), ProtoError> {
        self.frames.end_of_input(unused)
    }
}

impl Default for AnswerDecoder {
    /// Accepts any header the prefix can announce.
    fn default() -> Self {
        AnswerDecoder::new(crate::frame::MAX_HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_error_code_round_trips_through_its_spelling() {
        for (code, name) in ErrorCode::KNOWN {
            assert_eq!(code.as_str(), name);
            assert_eq!(ErrorCode::parse(name), code);
        }
        assert_eq!(ErrorCode::parse("rate-limited"), ErrorCode::Unknown("rate-limited".into()));
    }

    const HASH: &str = "sha256:4444444444444444444444444444444444444444444444444444444444444444";

    #[test]
    fn a_receipts_stored_frame_lists_hashes_and_round_trips() {
        let header = format!(r#"{{"type":"receipts-stored","stored":["{HASH}"]}}"#);
        let frame = ServerFrame::decode(header.as_bytes()).unwrap();
        let expected = ReceiptsStored { stored: vec![FileHash::parse(HASH).unwrap()] };
        assert_eq!(frame, ServerFrame::ReceiptsStored(expected));
        assert_eq!(&frame.encode().unwrap()[2..], header.as_bytes());
        let empty = ServerFrame::decode(br#"{"type":"receipts-stored","stored":[]}"#).unwrap();
        assert_eq!(empty, ServerFrame::ReceiptsStored(ReceiptsStored::default()));
    }

    #[test]
    fn a_bad_receipts_stored_frame_is_a_bad_server_frame() {
        let many = vec![format!("{HASH:?}"); MAX_RECEIPTS_PER_REQUEST + 1].join(",");
        for (stored, expected) in [
            (String::new(), "missing field `stored`"),
            (r#","stored":"x""#.to_owned(), "field `stored`"),
            (r#","stored":["sha256:44"]"#.to_owned(), "field `stored[0]`"),
            (format!(r#","stored":[{many}]"#), "17 hashes, more than the 16"),
        ] {
            let header = format!(r#"{{"type":"receipts-stored"{stored}}}"#);
            let err = ServerFrame::decode(header.as_bytes()).unwrap_err();
            assert!(matches!(err, ProtoError::BadServerFrame { .. }), "{header}: {err}");
            assert!(err.to_string().contains(expected), "{header}: {err}");
        }
    }

    #[test]
    fn a_request_error_becomes_an_error_frame_with_its_code() {
        let frame = ErrorFrame::from_error(&ProtoError::UnsupportedProtocol { version: 2 });
        assert_eq!(frame.code, ErrorCode::UnsupportedProtocol);
        assert!(frame.message.contains("version 2"));
    }
}
