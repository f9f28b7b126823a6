//! The request header a client sends (PROTOCOL.md section 3.1), the problem reports it
//! carries, and the server's classification of a bad request (section 2); and
//! [`ClientRequest`], which tells a `poll` from a `receipt` request
//! ([`crate::receipt`]).
//!
//! # Order of the checks in [`Request::decode`] and [`ClientRequest::decode`]
//!
//! 1. JSON validity (`bad-json`): no byte-order mark, UTF-8, JSON, no duplicate key
//!    at any level, an object.
//! 2. `request-type` (`bad-request` when missing or not a string, `unknown-request`
//!    when a string other than `poll`, or, for [`ClientRequest::decode`], other than
//!    `poll` and `receipt`).
//! 3. `protocol` (`bad-request` when missing or not a wire integer,
//!    `unsupported-protocol` when an integer other than 1).
//! 4. The rest, in field order `client-id`, `since`, `rejected` (`bad-request`); for
//!    a receipt request `client-id`, `receipts`.
//!
//! [`Request::decode`] answers `unknown-request` for `receipt`, as a server of the
//! first release does: a host that gets that answer keeps its receipts and polls on.
//!
//! So a future request type or protocol version is named as such even if its other
//! fields look nothing like version 1's; and a header that is not even JSON is never
//! mistaken for a future version.
//!
//! # Reasons from newer clients
//!
//! A newer client may report a reason this server does not know. Refusing the whole
//! request for it would stop that client from receiving anything, so a reason that
//! looks like one (a lower-case kebab-case word of at most
//! [`RejectReason::MAX_OTHER_LEN`] bytes) is kept as [`RejectReason::Other`] and
//! recorded; anything else is `bad-request`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::{ProtoError, excerpt};
use crate::frame::{MAX_CLIENT_REQUEST, encode_frame};
use crate::json::{self, convert, optional, required};
use crate::keys::KeyId;
use crate::names::{ClientId, FileHash, Target};
use crate::receipt::{REQUEST_TYPE_RECEIPT, ReceiptRequest};
use crate::seq::Seq;
use crate::wire_int::{self, WireInt};

/// The request type of a poll, the first of protocol version 1.
pub const REQUEST_TYPE_POLL: &str = "poll";

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u64 = 1;

/// At most this many reports ride in one request; the client keeps the rest.
pub const MAX_REPORTS: usize = 32;

/// At most this many held targets, and this many resume items, in one request (a
/// host has its id, `all` and its groups; a certificate with more groups than this
/// is not a host's).
pub const MAX_HELD: usize = 64;

/// A decoded `poll` request. `request-type` and `protocol` are not fields: decoding
/// guarantees they were `"poll"` and `1`, and encoding always writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The id the client claims; with TLS the server compares it with the
    /// certificate's.
    pub client_id: ClientId,
    /// Per target, the last applied seq. A target that is absent means 0.
    pub since: BTreeMap<Target, u64>,
    /// Problems not yet reported, at most [`MAX_REPORTS`].
    pub rejected: Vec<Report>,
    /// Per target the client holds, the entry it holds it at: the server sends
    /// nothing of that target (PROTOCOL.md section 3.1.1).
    pub held: BTreeMap<Target, Seq>,
    /// Transfers the client kept a prefix of (PROTOCOL.md section 3.2.1).
    pub resume: Vec<Resume>,
    /// The size of the newest checkpoint the client has verified (0: none yet).
    /// Present, it asks for the answer's `log` frame (PROTOCOL.md section 7).
    pub log_size: Option<u64>,
    /// The client's raised alarms, each with when it was first raised (Unix
    /// seconds), so that the server's status shows them (PROTOCOL.md section 7.5).
    pub alarms: BTreeMap<AlarmName, u64>,
    /// What this client understands beyond the first release (PROTOCOL.md section
    /// 8): `withdrawn` and `superseded` frames. Unknown names are ignored.
    pub features: Features,
    /// The largest file the client installs (`--max-file-size`): a server supersedes
    /// an entry only by one the client accepts (PROTOCOL.md section 8.2).
    pub max_file_size: Option<u64>,
    /// The ids of the release keys the client trusts now, at most [`MAX_KEYS`]: a
    /// server supersedes an entry only by one signed with one of them.
    pub keys: Vec<KeyId>,
    /// The number of the newest rotation of the release key the client knows, with
    /// every one before it (PROTOCOL.md section 8.3): the `log` frame carries only the
    /// rotations after it. Absent: all of them.
    pub rotation: Option<u64>,
    /// How many receipts this host has made in its current chain
    /// ([`crate::receipt`]): the number of its newest receipt. Absent: the host makes
    /// none (or does not say).
    pub receipt_count: Option<u64>,
    /// The hash of the host's newest receipt (the SHA-256 of its bytes), so that the
    /// server sees which receipts it has not received yet.
    pub receipt_head: Option<FileHash>,
    /// Seconds: the host promises its next poll within this long. The server calls
    /// the host silent after three times that without a poll.
    pub next_poll_within: Option<u64>,
    /// A reboot is required for what the host installed (a hook said so, or
    /// `/run/reboot-required` exists): `"reboot-required": true`, absent otherwise.
    pub reboot_required: bool,
}

/// At most this many key ids ride in one request.
pub const MAX_KEYS: usize = 16;

/// The frames a client announces it understands (the request's `features`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// `withdrawn` frames and withdrawn seqs in head proofs (section 8.1).
    pub withdrawn: bool,
    /// `superseded` frames (section 8.2).
    pub superseded: bool,
}

impl Features {
    /// Everything this release understands.
    pub const ALL: Features = Features { withdrawn: true, superseded: true };

    fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.withdrawn {
            names.push("withdrawn");
        }
        if self.superseded {
            names.push("superseded");
        }
        names
    }

    fn from_names(names: &[String]) -> Features {
        let has = |name: &str| names.iter().any(|n| n == name);
        Features { withdrawn: has("withdrawn"), superseded: has("superseded") }
    }
}

/// At most this many feature names ride in one request.
pub const MAX_FEATURES: usize = 16;

/// At most this many alarms ride in one request.
pub const MAX_ALARMS: usize = 16;

/// The name of a client alarm: a lower-case kebab-case word (`stale`, `withheld`,
/// `fork`, `clock`, `behind`, or a newer client's).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct AlarmName(String);

impl AlarmName {
    /// The longest alarm name accepted.
    pub const MAX_LEN: usize = 32;

    /// A kebab-case word of at most [`AlarmName::MAX_LEN`] bytes, or `None`.
    pub fn parse(s: &str) -> Option<AlarmName> {
        is_kebab_word(s, Self::MAX_LEN).then(|| AlarmName(s.to_owned()))
    }

    /// The name as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AlarmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AlarmName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        AlarmName::parse(&s).ok_or_else(|| serde::de::Error::custom("not a lower-case kebab-case alarm name"))
    }
}

/// A kept prefix of a cut transfer: the client has the first `offset` bytes of the
/// file whose hash is `file_hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Resume {
    /// The signed hash of the whole file.
    pub file_hash: FileHash,
    /// How many of its first bytes the client has.
    #[serde(with = "wire_int")]
    pub offset: u64,
}

impl Request {
    /// A request with nothing applied and nothing to report.
    pub fn new(client_id: ClientId) -> Self {
        Request {
            client_id,
            since: BTreeMap::new(),
            rejected: Vec::new(),
            held: BTreeMap::new(),
            resume: Vec::new(),
            log_size: None,
            alarms: BTreeMap::new(),
            features: Features::default(),
            max_file_size: None,
            keys: Vec::new(),
            rotation: None,
            receipt_count: None,
            receipt_head: None,
            next_poll_within: None,
            reboot_required: false,
        }
    }

    /// The last applied seq for `target` (0 when the client sent none).
    pub fn since(&self, target: &Target) -> u64 {
        self.since.get(target).copied().unwrap_or(0)
    }

    /// Decodes a request header (the JSON bytes of the frame, without the length
    /// prefix), classifying every failure as PROTOCOL.md section 2 says, in the order
    /// given in the module docs.
    ///
    /// Only `poll` is known here: a `receipt` request is `unknown-request`, as a server
    /// of the first release answers it. A server that takes receipts decodes with
    /// [`ClientRequest::decode`].
    pub fn decode(header: &[u8]) -> Result<Request, ProtoError> {
        let object = json::parse_object(header).map_err(|detail| ProtoError::BadJson { detail })?;
        match request_type(&object)? {
            REQUEST_TYPE_POLL => Request::from_object(&object),
            other => Err(ProtoError::UnknownRequest { request_type: excerpt(other) }),
        }
    }

    /// The checks after `request-type` (steps 3 and 4 of the module docs).
    fn from_object(object: &Map<String, Value>) -> Result<Request, ProtoError> {
        check_protocol(object)?;
        let bad = |detail: String| ProtoError::BadRequest { detail };

        let client_id: ClientId = required(object, "client-id").map_err(bad)?;
        let since: BTreeMap<Target, WireInt> = optional(object, "since").map_err(bad)?.unwrap_or_default();
        let rejected = match object.get("rejected") {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                if items.len() > MAX_REPORTS {
                    return Err(bad(format!(
                        "field `rejected`: {} reports, more than the {MAX_REPORTS} allowed",
                        items.len()
                    )));
                }
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| convert::<Report>(item, &format!("rejected[{i}]")))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(bad)?
            }
            Some(other) => {
                return Err(bad(format!("field `rejected`: expected an array, found {}", json::kind(other))));
            }
        };

        let held: BTreeMap<Target, WireInt> = optional(object, "held").map_err(bad)?.unwrap_or_default();
        if held.len() > MAX_HELD {
            return Err(bad(format!(
                "field `held`: {} targets, more than the {MAX_HELD} allowed",
                held.len()
            )));
        }
        let held = held
            .into_iter()
            .map(|(target, n)| match Seq::new(n.0) {
                Some(seq) => Ok((target, seq)),
                None => {
                    Err(bad(format!("field `held`: target {target} held at seq 0, which names no entry")))
                }
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let resume: Vec<Resume> = optional(object, "resume").map_err(bad)?.unwrap_or_default();
        if resume.len() > MAX_HELD {
            return Err(bad(format!(
                "field `resume`: {} items, more than the {MAX_HELD} allowed",
                resume.len()
            )));
        }

        let log_size = optional::<WireInt>(object, "log-size").map_err(bad)?.map(|n| n.0);
        let alarms: BTreeMap<AlarmName, WireInt> =
            optional(object, "alarms").map_err(bad)?.unwrap_or_default();
        if alarms.len() > MAX_ALARMS {
            return Err(bad(format!(
                "field `alarms`: {} alarms, more than the {MAX_ALARMS} allowed",
                alarms.len()
            )));
        }

        let features: Vec<String> = optional(object, "features").map_err(bad)?.unwrap_or_default();
        if features.len() > MAX_FEATURES {
            return Err(bad(format!(
                "field `features`: {} names, more than the {MAX_FEATURES} allowed",
                features.len()
            )));
        }
        let max_file_size = optional::<WireInt>(object, "max-file-size").map_err(bad)?.map(|n| n.0);
        let keys: Vec<KeyId> = optional(object, "keys").map_err(bad)?.unwrap_or_default();
        if keys.len() > MAX_KEYS {
            return Err(bad(format!(
                "field `keys`: {} key ids, more than the {MAX_KEYS} allowed",
                keys.len()
            )));
        }

        let rotation = optional::<WireInt>(object, "rotation").map_err(bad)?.map(|n| n.0);
        let receipt_count = optional::<WireInt>(object, "receipt-count").map_err(bad)?.map(|n| n.0);
        let receipt_head: Option<FileHash> = optional(object, "receipt-head").map_err(bad)?;
        let next_poll_within = optional::<WireInt>(object, "next-poll-within").map_err(bad)?.map(|n| n.0);
        let reboot_required: bool = optional(object, "reboot-required").map_err(bad)?.unwrap_or(false);

        Ok(Request {
            rotation,
            receipt_count,
            receipt_head,
            next_poll_within,
            reboot_required,
            features: Features::from_names(&features),
            max_file_size,
            keys,
            client_id,
            since: since.into_iter().map(|(t, n)| (t, n.0)).collect(),
            rejected,
            held,
            resume,
            log_size,
            alarms: alarms.into_iter().map(|(a, n)| (a, n.0)).collect(),
        })
    }

    /// The whole request frame (length prefix and header), refused unless it stays
    /// under [`MAX_CLIENT_REQUEST`] bytes and every integer is a wire integer.
    pub fn encode(&self) -> Result<Vec<u8>, ProtoError> {
        let frame = encode_frame(self)?;
        if frame.len() >= MAX_CLIENT_REQUEST {
            return Err(ProtoError::RequestTooLarge { len: frame.len(), limit: MAX_CLIENT_REQUEST });
        }
        Ok(frame)
    }
}

/// Any request a client sends: a poll, or the receipts it made ([`crate::receipt`]).
// One request per connection, decoded once: boxing the poll would only add an
// allocation to every poll.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRequest {
    /// `request-type` `poll` (PROTOCOL.md section 3.1).
    Poll(Request),
    /// `request-type` `receipt`: signed receipts for the server to store.
    Receipt(ReceiptRequest),
}

impl ClientRequest {
    /// Decodes a request header of either type, classifying every failure in the
    /// order of the module docs, as [`Request::decode`] does: `bad-json`, then
    /// `request-type`, then `protocol`, then the fields of that type.
    pub fn decode(header: &[u8]) -> Result<ClientRequest, ProtoError> {
        let object = json::parse_object(header).map_err(|detail| ProtoError::BadJson { detail })?;
        match request_type(&object)? {
            REQUEST_TYPE_POLL => Request::from_object(&object).map(ClientRequest::Poll),
            REQUEST_TYPE_RECEIPT => {
                check_protocol(&object)?;
                ReceiptRequest::from_fields(&object).map(ClientRequest::Receipt)
            }
            other => Err(ProtoError::UnknownRequest { request_type: excerpt(other) }),
        }
    }

    /// The whole request frame (length prefix and header), under
    /// [`MAX_CLIENT_REQUEST`] bytes ([`Request::encode`], [`ReceiptRequest::encode`]).
    pub fn encode(&self) -> Result<Vec<u8>, ProtoError> {
        match self {
            ClientRequest::Poll(request) => request.encode(),
            ClientRequest::Receipt(request) => request.encode(),
        }
    }

    /// The id the client claims, whichever the request.
    pub fn client_id(&self) -> &ClientId {
        match self {
            ClientRequest::Poll(request) => &request.client_id,
            ClientRequest::Receipt(request) => &request.client_id,
        }
    }

    /// The request's `request-type`: `poll` or `receipt`.
    pub fn request_type(&self) -> &'static str {
        match self {
            ClientRequest::Poll(_) => REQUEST_TYPE_POLL,
            ClientRequest::Receipt(_) => REQUEST_TYPE_RECEIPT,
        }
    }
}

/// Step 2 of the module docs: the `request-type` string (`bad-request` when missing
/// or not a string); which types are known is the caller's.
fn request_type(object: &Map<String, Value>) -> Result<&str, ProtoError> {
    match object.get("request-type") {
        None => Err(ProtoError::BadRequest { detail: "missing field `request-type`".into() }),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(ProtoError::BadRequest {
            detail: format!("field `request-type`: expected a string, found {}", json::kind(other)),
        }),
    }
}

/// Step 3 of the module docs: `protocol` is a wire integer, and 1.
fn check_protocol(object: &Map<String, Value>) -> Result<(), ProtoError> {
    let version: WireInt =
        required(object, "protocol").map_err(|detail| ProtoError::BadRequest { detail })?;
    if version.0 != PROTOCOL_VERSION {
        return Err(ProtoError::UnsupportedProtocol { version: version.0 });
    }
    Ok(())
}

/// The header as it is written: the two fixed fields first, then the rest.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct RequestWire<'a> {
    request_type: &'static str,
    #[serde(with = "wire_int")]
    protocol: u64,
    client_id: &'a ClientId,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    since: BTreeMap<&'a Target, WireInt>,
    #[serde(skip_serializing_if = "<[Report]>::is_empty")]
    rejected: &'a [Report],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    held: &'a BTreeMap<Target, Seq>,
    #[serde(skip_serializing_if = "<[Resume]>::is_empty")]
    resume: &'a [Resume],
    #[serde(with = "wire_int::option", skip_serializing_if = "Option::is_none")]
    log_size: Option<u64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    alarms: BTreeMap<&'a AlarmName, WireInt>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    features: Vec<&'static str>,
    #[serde(with = "wire_int::option", skip_serializing_if = "Option::is_none")]
    max_file_size: Option<u64>,
    #[serde(skip_serializing_if = "<[KeyId]>::is_empty")]
    keys: &'a [KeyId],
    #[serde(with = "wire_int::option", skip_serializing_if = "Option::is_none")]
    rotation: Option<u64>,
    #[serde(with = "wire_int::option", skip_serializing_if = "Option::is_none")]
    receipt_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt_head: Option<FileHash>,
    #[serde(with = "wire_int::option", skip_serializing_if = "Option::is_none")]
    next_poll_within: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    reboot_required: bool,
}

impl Serialize for Request {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RequestWire {
            request_type: REQUEST_TYPE_POLL,
            protocol: PROTOCOL_VERSION,
            client_id: &self.client_id,
            since: self.since.iter().map(|(t, &n)| (t, WireInt(n))).collect(),
            rejected: &self.rejected,
            held: &self.held,
            resume: &self.resume,
            log_size: self.log_size,
            alarms: self.alarms.iter().map(|(a, &n)| (a, WireInt(n))).collect(),
            features: self.features.names(),
            max_file_size: self.max_file_size,
            keys: &self.keys,
            rotation: self.rotation,
            receipt_count: self.receipt_count,
            receipt_head: self.receipt_head,
            next_poll_within: self.next_poll_within,
            reboot_required: self.reboot_required,
        }
        .serialize(serializer)
    }
}

/// One problem with one entry, reported in a later request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Report {
    /// The target of the entry that was refused.
    pub target: Target,
    #[serde(with = "wire_int")]
    /// The sequence number of the entry that was refused.
    pub seq: u64,
    /// Why the client refused it.
    pub reason: RejectReason,
    /// For a failed hook, which run of it failed (from 1); absent otherwise.
    #[serde(default, with = "wire_int::option", skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u64>,
}

impl Report {
    /// A report of `reason` about entry `seq` of `target`, without an attempt number.
    pub fn new(target: Target, seq: u64, reason: RejectReason) -> Report {
        Report { target, seq, reason, attempt: None }
    }
}

/// Why a client refused an entry (PROTOCOL.md section 3.1).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// A field breaks section 4, other than the file name.
    BadHeader,
    /// The file name breaks section 4.
    BadName,
    /// The target is not one of the client's.
    WrongTarget,
    /// `seq` is at or below the last applied one.
    Replay,
    /// `seq` skips ahead.
    Gap,
    /// `key-id` names no trusted key.
    UntrustedKey,
    /// The signature does not verify.
    Signature,
    /// A later publication of the same file name is installed.
    Superseded,
    /// `file-size` is above the client's maximum.
    TooLarge,
    /// The body's SHA-256 differs from `file-hash`.
    HashMismatch,
    /// Writing or renaming the file failed.
    InstallFailed,
    /// The hook ran and failed.
    HookFailed,
    /// The hook failed at its last attempt: it is not run again by itself.
    HookGivenUp,
    /// The entry is not in the verified log: its inclusion proof is missing or
    /// fails (PROTOCOL.md section 7.4).
    NotLogged,
    /// The entry is withdrawn (PROTOCOL.md section 8.1): applied without being
    /// installed.
    Withdrawn,
    /// An entry this host had installed has since been withdrawn: the file stays
    /// (removal is the host's policy, `--exec-withdrawn`), and this says so.
    WithdrawnInstalled,
    /// The entry is signed by a key a rotation retired, and is not a leaf below that
    /// rotation (PROTOCOL.md section 8.3).
    RetiredKey,
    /// A supersession or withdrawal the client could not accept (PROTOCOL.md
    /// section 8.2): the entry must come whole.
    BadSupersession,
    /// A reason from a newer client: a lower-case kebab-case word, kept so that the
    /// server can record it instead of refusing the request.
    Other(String),
}

impl RejectReason {
    /// The longest unknown reason accepted as [`RejectReason::Other`].
    pub const MAX_OTHER_LEN: usize = 32;

    const KNOWN: [(RejectReason, &'static str); 18] = [
        (RejectReason::BadHeader, "bad-header"),
        (RejectReason::BadName, "bad-name"),
        (RejectReason::WrongTarget, "wrong-target"),
        (RejectReason::Replay, "replay"),
        (RejectReason::Gap, "gap"),
        (RejectReason::UntrustedKey, "untrusted-key"),
        (RejectReason::Signature, "signature"),
        (RejectReason::Superseded, "superseded"),
        (RejectReason::TooLarge, "too-large"),
        (RejectReason::HashMismatch, "hash-mismatch"),
        (RejectReason::InstallFailed, "install-failed"),
        (RejectReason::HookFailed, "hook-failed"),
        (RejectReason::HookGivenUp, "hook-given-up"),
        (RejectReason::NotLogged, "not-logged"),
        (RejectReason::Withdrawn, "withdrawn"),
        (RejectReason::WithdrawnInstalled, "withdrawn-installed"),
        (RejectReason::BadSupersession, "bad-supersession"),
        (RejectReason::RetiredKey, "retired-key"),
    ];

    /// A known reason by its wire spelling, an unknown one that looks like a reason
    /// as [`RejectReason::Other`], anything else `None`.
    pub fn parse(s: &str) -> Option<RejectReason> {
        if let Some((reason, _)) = Self::KNOWN.iter().find(|(_, name)| *name == s) {
            return Some(reason.clone());
        }
        is_kebab_word(s, Self::MAX_OTHER_LEN).then(|| RejectReason::Other(s.to_owned()))
    }

    /// The wire spelling of the reason, as `parse` reads it.
    pub fn as_str(&self) -> &str {
        match self {
            RejectReason::Other(s) => s,
            known => Self::KNOWN.iter().find(|(reason, _)| reason == known).map_or("", |(_, name)| name),
        }
    }
}

/// `^[a-z][a-z0-9]*(-[a-z0-9]+)*$`, at most `max` bytes.
pub(crate) fn is_kebab_word(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1] != b'-'
        && !s.contains("--")
        && b.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RejectReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RejectReason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        RejectReason::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "invalid reason {:?}: a lower-case kebab-case word of at most {} bytes",
                excerpt(&s),
                RejectReason::MAX_OTHER_LEN
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_reason_round_trips_through_its_spelling() {
        for (reason, name) in RejectReason::KNOWN {
            assert_eq!(reason.as_str(), name);
            assert_eq!(RejectReason::parse(name), Some(reason));
        }
    }

    #[test]
    fn unknown_reasons_are_kept_only_when_they_look_like_reasons() {
        assert_eq!(RejectReason::parse("disk-quota"), Some(RejectReason::Other("disk-quota".into())));
        for bad in ["", "Signature", "-gap", "gap-", "a--b", "a b", "1gap", &"a".repeat(33)] {
            assert_eq!(RejectReason::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_missing_target_in_since_means_zero() {
        let request = Request::new(ClientId::parse("web-01").unwrap());
        assert_eq!(request.since(&Target::All), 0);
    }

    const HEAD: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn poll_with(fields: &str) -> Result<Request, ProtoError> {
        Request::decode(
            format!(r#"{{"request-type":"poll","protocol":1,"client-id":"web-01"{fields}}}"#).as_bytes(),
        )
    }

    #[test]
    fn the_receipt_fields_of_a_poll_decode_and_are_absent_when_none() {
        let request = poll_with(&format!(
            r#","receipt-count":7,"receipt-head":"{HEAD}","next-poll-within":300,"newer-field":[1]"#
        ))
        .unwrap();
        assert_eq!(request.receipt_count, Some(7));
        assert_eq!(request.receipt_head, Some(FileHash::parse(HEAD).unwrap()));
        assert_eq!(request.next_poll_within, Some(300));
        let frame = request.encode().unwrap();
        let header = std::str::from_utf8(&frame[2..]).unwrap();
        assert!(
            header
                .ends_with(&format!(r#""receipt-count":7,"receipt-head":"{HEAD}","next-poll-within":300}}"#)),
            "{header}"
        );
        assert_eq!(Request::decode(header.as_bytes()).unwrap(), request);

        let plain = poll_with("").unwrap();
        assert_eq!((plain.receipt_count, plain.receipt_head, plain.next_poll_within), (None, None, None));
        let frame = plain.encode().unwrap();
        let header = std::str::from_utf8(&frame[2..]).unwrap();
        assert_eq!(header, r#"{"request-type":"poll","protocol":1,"client-id":"web-01"}"#);
    }

    #[test]
    fn a_mistyped_receipt_field_of_a_poll_is_a_bad_request_naming_it() {
        for (fields, name) in [
            (r#","receipt-count":7.0"#, "receipt-count"),
            (r#","receipt-count":-1"#, "receipt-count"),
            (r#","receipt-count":null"#, "receipt-count"),
            (r#","receipt-count":9007199254740992"#, "receipt-count"),
            (r#","receipt-head":"sha256:33""#, "receipt-head"),
            (r#","receipt-head":7"#, "receipt-head"),
            (r#","next-poll-within":"300""#, "next-poll-within"),
            (r#","next-poll-within":3e2"#, "next-poll-within"),
        ] {
            let err = poll_with(fields).unwrap_err();
            assert_eq!(err.code(), crate::ErrorCode::BadRequest, "{fields}");
            assert!(err.to_string().contains(&format!("`{name}`")), "{fields}: {err}");
        }
    }

    const RECEIPT: &str = r#"{"receipt":"YWJj","scheme":"ed25519","signature":"AQI="}"#;

    fn classify(header: &str) -> crate::ErrorCode {
        ClientRequest::decode(header.as_bytes()).unwrap_err().code()
    }

    #[test]
    fn a_client_request_is_classified_in_the_order_of_a_poll() {
        use crate::ErrorCode::{BadJson, BadRequest, UnknownRequest, UnsupportedProtocol};
        assert_eq!(classify(r#"{"request-type":"receipt","#), BadJson);
        assert_eq!(classify(r#"{"request-type":"receipt","request-type":"poll"}"#), BadJson);
        assert_eq!(classify(r#"{"protocol":1,"client-id":"web-01"}"#), BadRequest);
        assert_eq!(classify(r#"{"request-type":["receipt"],"protocol":2}"#), BadRequest);
        assert_eq!(classify(r#"{"request-type":"status","protocol":"x"}"#), UnknownRequest);
        assert_eq!(classify(r#"{"request-type":"receipt","protocol":2,"receipts":7}"#), UnsupportedProtocol);
        assert_eq!(classify(r#"{"request-type":"receipt","protocol":1.0,"client-id":"web-01"}"#), BadRequest);
        assert_eq!(classify(r#"{"request-type":"poll","protocol":2}"#), UnsupportedProtocol);
        let receipt = |fields: &str| format!(r#"{{"request-type":"receipt","protocol":1{fields}}}"#);
        for (fields, expected) in [
            (format!(r#","receipts":[{RECEIPT}]"#), "missing field `client-id`"),
            (format!(r#","client-id":"Web-01","receipts":[{RECEIPT}]"#), "field `client-id`"),
            (r#","client-id":"web-01""#.to_owned(), "missing field `receipts`"),
            (r#","client-id":"web-01","receipts":[]"#.to_owned(), "at least one receipt"),
            (r#","client-id":"web-01","receipts":{}"#.to_owned(), "expected an array, found an object"),
            (
                format!(r#","client-id":"web-01","receipts":[{}]"#, [RECEIPT; 17].join(",")),
                "17 receipts, more than the 16",
            ),
            (
                format!(
                    r#","client-id":"web-01","receipts":[{RECEIPT},{}]"#,
                    RECEIPT.replace("ed25519", "dsa")
                ),
                "field `receipts[1]`: unknown receipt scheme",
            ),
        ] {
            let err = ClientRequest::decode(receipt(&fields).as_bytes()).unwrap_err();
            assert_eq!(err.code(), BadRequest, "{fields}");
            assert!(err.to_string().contains(expected), "{fields}: {err}");
        }
    }

    #[test]
    fn a_receipt_request_decodes_and_round_trips_but_is_unknown_to_request_decode() {
        let header = format!(
            r#"{{"request-type":"receipt","protocol":1,"client-id":"web-01","receipts":[{RECEIPT}]}}"#
        );
        let decoded = ClientRequest::decode(header.as_bytes()).unwrap();
        let ClientRequest::Receipt(request) = &decoded else { panic!("{decoded:?}") };
        assert_eq!(request.client_id.as_str(), "web-01");
        assert_eq!(request.receipts[0].bytes, b"abc");
        assert_eq!((decoded.request_type(), decoded.client_id().as_str()), ("receipt", "web-01"));
        let frame = decoded.encode().unwrap();
        assert_eq!(&frame[2..], header.as_bytes());
        assert_eq!(usize::from(u16::from_be_bytes([frame[0], frame[1]])), header.len());

        let err = Request::decode(header.as_bytes()).unwrap_err();
        assert_eq!(err, ProtoError::UnknownRequest { request_type: "receipt".into() });

        let poll = br#"{"request-type":"poll","protocol":1,"client-id":"web-01","since":{"all":4}}"#;
        assert_eq!(ClientRequest::decode(poll).unwrap(), ClientRequest::Poll(Request::decode(poll).unwrap()));
    }
}
