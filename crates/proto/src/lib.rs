//! fts-proto: the fts wire format and nothing else.
//!
//! Pure code (no I/O, no async runtime, no cryptography) so that it is fast, easy to
//! read against PROTOCOL.md, and fuzzable. Everything that crosses the network
//! between `fts poll` and `fts serve` is a frame:
//!
//! ```text
//! +----------------------+---------------------+-------------------------------+
//! | header length: u16   | JSON header         | body (only `file` frames)     |
//! | big-endian, 2 bytes  | exactly that many   | exactly `file-size` bytes     |
//! |                      | bytes, UTF-8 object |                               |
//! +----------------------+---------------------+-------------------------------+
//!
//! client -> server:  [request]
//! server -> client:  [file][body] [file][body] ... [done]     or     [error]
//!
//! client -> server:  [receipt request]
//! server -> client:  [receipts-stored]                         or     [error]
//! ```
//!
//! - [`frame`]: the length prefix, the limits ([`MAX_REQUEST_HEADER`],
//!   [`MAX_CLIENT_REQUEST`]), [`encode_frame`], [`check_header_length`] and the
//!   incremental [`FrameDecoder`];
//! - [`request`]: the [`Request`] header and [`Report`]s, and the server's
//!   classification of a bad request ([`Request::decode`], and
//!   [`ClientRequest::decode`] for a server that takes receipts too);
//! - [`receipt`]: host receipts: the [`Receipt`] bytes (`fts-receipt-v1`), the
//!   [`SignedReceipt`] a host sends, and the [`ReceiptRequest`] that carries them;
//! - [`answer`]: the server's [`ServerFrame`]s (`file`, `done`, `error`, ...), the
//!   [`ErrorCode`]s, and the client's [`AnswerDecoder`];
//! - [`wire_int`]: the integer rule (0 to 2^53 - 1, no fraction or exponent);
//! - [`error`]: [`ProtoError`], every failure with its section 3.4 code, and
//!   [`ErrorChain`], how fts prints an error with its causes;
//! - [`names`]: the names of section 4 as types that cannot hold an invalid value;
//! - [`keys`]: the `key-id` and `signature` fields, syntax only;
//! - [`log`]: the `log` frame and the proof shapes it carries, syntax only;
//! - [`checkpoint`]: the log's text formats: [`Checkpoint`], its [`Origin`], the
//!   signed [`Note`] that carries it, the cosignature message and the statement leaf;
//! - [`base64`]: the one strict base64 of every field that carries bytes;
//! - [`statement`]: the bytes of the signed statement of section 5;
//! - [`rotate`]: the rotation statement of section 8.3 and its proof in a `log` frame;
//! - [`withdraw`]: the withdrawal statement of section 8.1 and the leaf of any signed text;
//! - [`printable`](mod@printable): peer text made safe to print or log ([`Printable`]).
//!
//! A server reads a request like this (the limit is checked on the two prefix bytes,
//! before the header is read):
//!
//! ```
//! use fts_proto::{check_header_length, Request, MAX_REQUEST_HEADER};
//!
//! let wire = b"\x00\x39{\"request-type\":\"poll\",\"protocol\":1,\"client-id\":\"web-01\"}";
//! let len = check_header_length(u16::from_be_bytes([wire[0], wire[1]]), MAX_REQUEST_HEADER)?;
//! let request = Request::decode(&wire[2..2 + len])?;
//! assert_eq!(request.client_id.as_str(), "web-01");
//! # Ok::<(), fts_proto::ProtoError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod answer;
pub mod base64;
mod calendar;
pub mod checkpoint;
pub mod error;
pub mod frame;
mod json;
pub mod keys;
pub mod log;
pub mod names;
pub mod printable;
pub mod receipt;
pub mod request;
pub mod rotate;
pub mod seq;
pub mod statement;
pub mod wire_int;
pub mod withdraw;

pub use answer::{
    AnswerDecoder, AnswerItem, Done, ErrorCode, ErrorFrame, FileHeader, ReceiptsStored, ServerFrame,
    SupersededFrame, WithdrawnFrame,
};
pub use checkpoint::{
    Checkpoint, MAX_NOTE_LEN, MAX_SIGNATURE_LINES, Note, NoteError, NoteSignature, Origin,
    cosignature_message, statement_leaf,
};
pub use error::{ErrorChain, ProtoError};
pub use frame::{
    Chunk, FrameDecoder, LENGTH_PREFIX_LEN, MAX_CLIENT_REQUEST, MAX_HEADER_LEN, MAX_REQUEST_HEADER,
    MIN_CLIENT_HEADER_LIMIT, MIN_HEADER_LEN, check_header_length, encode_frame,
};
pub use keys::{KeyId, Signature};
pub use log::{HeadLeafProof, HeadProof, LogFrame, LogHash};
pub use names::{ClientId, FileHash, FileName, GroupName, NameError, Published, Target};
pub use printable::{Printable, printable};
pub use receipt::{
    EntryOutcome, EntryOutcomeKind, MAX_OUTCOMES, MAX_RECEIPT_BYTES, MAX_RECEIPT_SIGNATURE_BYTES,
    MAX_RECEIPTS_PER_REQUEST, MAX_SENDABLE_RECEIPT_BYTES, Outcome, RECEIPT_TAG, REQUEST_TYPE_RECEIPT,
    Receipt, ReceiptRequest, ReceiptScheme, RestartReason, SignedReceipt,
};
pub use request::{
    AlarmName, ClientRequest, Features, MAX_ALARMS, MAX_FEATURES, MAX_HELD, MAX_KEYS, MAX_REPORTS,
    PROTOCOL_VERSION, REQUEST_TYPE_POLL, RejectReason, Report, Request, Resume,
};
pub use rotate::{
    MAX_ROTATIONS, ROTATE_TAG, RawKey, RotateStatement, RotationProof, RotationSignature, SignedRotation,
};
pub use seq::Seq;
pub use statement::{STATEMENT_TAG, Signer, Statement};
pub use wire_int::{MAX_WIRE_INT, WireInt};
pub use withdraw::{WITHDRAW_TAG, WithdrawReason, WithdrawStatement, Withdrawal, signed_leaf};
