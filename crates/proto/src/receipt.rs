//! Host receipts: the bytes of `fts-receipt-v1`, the signed form a host sends, and the
//! `receipt` request that carries them. Syntax only: signing with the host's TLS key
//! and checking against its certificate are fts-trust's (`fts_trust::receipt`), and
//! the receipt's hash (SHA-256 of its bytes) is computed there too, so that this
//! crate stays free of cryptography.
//!
//! After each answer in which anything changed, a host writes down what it did, one
//! outcome per line, and signs it with its client certificate's key: the server keeps
//! a record the host cannot later deny, and that the server cannot make up.
//!
//! ```text
//! fts-receipt-v1                    tag
//! web-01                            the host's client id
//! 7                                 its number in the host's chain, from 1
//! sha256:<64 hex>                   the previous receipt's hash (SHA-256 of its bytes), or `none`
//! 2026-12-02T09:00:00Z              when the host made it
//! 3                                 how many outcome lines follow, 1 to 256
//! installed group:web 42 openssl.deb sha256:<64 hex>
//! hook-failed group:web 42 openssl.deb sha256:<64 hex> 2/4
//! alarm stale raised
//! ```
//!
//! Every line is ended by `\n`, the text is printable ASCII, and a receipt is at most
//! [`MAX_RECEIPT_BYTES`]. Numbers are decimal without leading zeros, at most 2^53 - 1.
//! An outcome line is tokens separated by one space, none at either end:
//!
//! | line | says |
//! |---|---|
//! | `installed T S N H` | entry S of target T, file N with hash H, is installed |
//! | `hook-ok T S N H A` | its hook succeeded at attempt A (from 1) |
//! | `hook-failed T S N H A/M` | its hook failed at attempt A of M allowed |
//! | `held T S N H R` | the host holds target T at this entry, for reject reason R |
//! | `refused T S N H R` | the host refused the entry, for reject reason R |
//! | `withdrawn T S N H` | the entry is withdrawn: applied without being installed |
//! | `withdrawn-installed T S N H` | an entry the host had installed was withdrawn |
//! | `superseded T S N H B` | the entry was superseded by entry B (above S) of T |
//! | `alarm A raised` / `alarm A cleared` | the host's alarm A went on or off |
//! | `reboot-required` | a hook asked for a reboot |
//! | `dropped C` | the host dropped its C oldest receipts unsent (its queue was full) |
//! | `restart R` | this receipt starts a new chain, for reason R (`new-state`, ...) |
//!
//! `N H` is `- -` when the file's name and hash are not known (a report about an
//! entry whose header was never read whole); both or neither are known.
//!
//! # Chains
//!
//! Receipts chain like a log: each names the hash of the one before, numbers rise by
//! one. [`Receipt::parse`] checks what one receipt can say of its place: number 1 has
//! no previous receipt unless it restarts a chain; any other number has one; a
//! `restart` is the first outcome of a receipt numbered 1, whose `previous` names the
//! old chain's head (or `none`, when the host lost it). That the chain is unbroken is
//! for whoever stores it.
//!
//! # Canonical bytes
//!
//! One receipt has one spelling: `Receipt::parse(&r.to_bytes()) == Ok(r)` for every
//! valid receipt, and `Receipt::parse(b)?.to_bytes() == b` for every accepted `b`;
//! anything else is refused with [`ProtoError::BadReceipt`], whose detail names the
//! line. So the hash of a receipt's bytes names the receipt.
//!
//! # On the wire
//!
//! ```text
//! client -> server:  [receipt request: 1 to 16 signed receipts]
//! server -> client:  [receipts-stored]          or          [error]
//!
//! {"request-type":"receipt","protocol":1,"client-id":"web-01",
//!  "receipts":[{"receipt":"<base64 of the bytes>","scheme":"ed25519","signature":"<base64>"}]}
//! ```
//!
//! The request is one frame under [`MAX_CLIENT_REQUEST`] bytes, like a poll; a host
//! sends as many receipts as fit ([`ReceiptRequest::how_many_fit`]). Base64 grows a
//! receipt by a third, so a receipt of more than about 5.8 KiB fits no request at all
//! (less with a longer client id or an RSA signature): a host keeps each receipt
//! within [`MAX_SENDABLE_RECEIPT_BYTES`], which fits alone whatever the id and the
//! key, and spreads more outcomes over several receipts. The server answers with the
//! hashes of the receipts it has stored ([`crate::answer::ReceiptsStored`]).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::base64;
use crate::error::{ProtoError, excerpt};
use crate::frame::{LENGTH_PREFIX_LEN, MAX_CLIENT_REQUEST, encode_frame};
use crate::json::{self, convert, required};
use crate::names::{ClientId, FileHash, FileName, Published, Target};
use crate::request::{AlarmName, PROTOCOL_VERSION, RejectReason, is_kebab_word};
use crate::seq::Seq;
use crate::wire_int::{self, MAX_WIRE_INT};

/// The first line of a receipt.
pub const RECEIPT_TAG: &str = "fts-receipt-v1";

/// The longest receipt, in bytes: [`Receipt::parse`] refuses a longer one before
/// reading it. (A receipt that travels is much shorter: see the module docs.)
pub const MAX_RECEIPT_BYTES: usize = 64 * 1024;

/// A receipt of at most this many bytes always fits a `receipt` request alone, for
/// any client id and any signature up to [`MAX_RECEIPT_SIGNATURE_BYTES`]: a host
/// makes its receipts no longer (a longer one may fit no request, module docs).
pub const MAX_SENDABLE_RECEIPT_BYTES: usize = 4 * 1024;

/// The most outcome lines one receipt holds.
pub const MAX_OUTCOMES: usize = 256;

/// The most receipts one `receipt` request carries.
pub const MAX_RECEIPTS_PER_REQUEST: usize = 16;

/// The longest signature a signed receipt carries, in bytes (RSA with an 8192-bit key,
/// the largest that fts-trust verifies).
pub const MAX_RECEIPT_SIGNATURE_BYTES: usize = 1024;

/// The request type of a receipt request.
pub const REQUEST_TYPE_RECEIPT: &str = "receipt";

/// What a host did after one answer, as it signs it (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Receipt {
    /// The host that made it; the server compares it with the certificate's id.
    pub client_id: ClientId,
    /// Its place in the host's chain, from 1.
    pub number: u64,
    /// The hash of the previous receipt's bytes; `None` only for number 1.
    pub previous: Option<FileHash>,
    /// When the host made it.
    pub made: Published,
    /// What happened, 1 to [`MAX_OUTCOMES`] of them, in the host's order.
    pub outcomes: Vec<Outcome>,
}

impl Receipt {
    /// The bytes that are signed: the six header lines, then one line per outcome,
    /// each ended by `\n`.
    ///
    /// A receipt that breaks the rules (number 0, no outcome, a count of 0 ...) still
    /// gives bytes, which [`Receipt::parse`] refuses: a signer checks its receipt by
    /// parsing these bytes back before it signs them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let previous = self.previous.map_or_else(|| NONE.to_owned(), |hash| hash.to_string());
        let header = [
            RECEIPT_TAG.to_owned(),
            self.client_id.to_string(),
            self.number.to_string(),
            previous,
            self.made.to_string(),
            self.outcomes.len().to_string(),
        ];
        let mut bytes = Vec::with_capacity(160 + 100 * self.outcomes.len());
        for line in header.into_iter().chain(self.outcomes.iter().map(ToString::to_string)) {
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
        }
        bytes
    }

    /// Reads receipt bytes, refusing anything but the one canonical spelling of a
    /// valid receipt (module docs); the error's detail names the line. Input longer
    /// than [`MAX_RECEIPT_BYTES`] is refused before it is read.
    pub fn parse(bytes: &[u8]) -> Result<Receipt, ProtoError> {
        if bytes.len() > MAX_RECEIPT_BYTES {
            return Err(bad(format!(
                "the receipt is {} bytes, more than the {MAX_RECEIPT_BYTES} allowed",
                bytes.len()
            )));
        }
        let Some(body) = bytes.strip_suffix(b"\n") else {
            if bytes.is_empty() {
                return Err(bad("the receipt is empty".to_owned()));
            }
            let last = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
            return Err(bad(format!("line {last}: the last line is not ended by a newline")));
        };
        let mut lines = Lines::new(body);

        let (at, tag) = lines.next("the tag")?;
        if tag != RECEIPT_TAG {
            return Err(at.bad(format!("expected the tag {RECEIPT_TAG}, found {:?}", excerpt(tag))));
        }
        let client_id = lines.field("the client id", |s| ClientId::parse(s).map_err(|e| e.to_string()))?;
        let (number_line, number) = lines.next("the receipt number")?;
        let number = positive(number, "the receipt number").map_err(|e| number_line.bad(e))?;
        let (previous_line, previous) = lines.next("the previous receipt's hash")?;
        let previous = match previous {
            NONE => None,
            hash => Some(FileHash::parse(hash).map_err(|e| previous_line.bad(e.to_string()))?),
        };
        let made = lines.field("the time it was made", |s| Published::parse(s).map_err(|e| e.to_string()))?;
        let (count_line, count) = lines.next("the outcome count")?;
        let count = decimal(count, "the outcome count").map_err(|e| count_line.bad(e))?;
        if count == 0 {
            return Err(
                count_line.bad("the outcome count is 0: a receipt is made only when something changed")
            );
        }
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        if count > MAX_OUTCOMES {
            return Err(count_line.bad(format!("{count} outcomes, more than the {MAX_OUTCOMES} allowed")));
        }

        let mut outcomes = Vec::with_capacity(count);
        for i in 0..count {
            let (at, line) =
                lines.next_or(|| format!("the receipt ends after {i} of its {count} outcomes"))?;
            let outcome = parse_outcome(line).map_err(|e| at.bad(e))?;
            if matches!(outcome, Outcome::Restart { .. }) && i > 0 {
                return Err(at.bad("a restart is the first outcome of its receipt"));
            }
            outcomes.push(outcome);
        }
        if let Some(at) = lines.peek() {
            return Err(at.bad(format!("the receipt goes on after its {count} outcomes")));
        }

        let receipt = Receipt { client_id, number, previous, made, outcomes };
        if receipt.is_restart() && number != 1 {
            return Err(number_line.bad(format!(
                "receipt {number} restarts its chain: a receipt that starts a new chain has number 1"
            )));
        }
        match (number, previous, receipt.is_restart()) {
            (1, Some(_), false) => Err(previous_line.bad(
                "receipt 1 names a previous receipt but does not restart a chain: the first receipt of a \
                 host says `none`",
            )),
            (2.., None, _) => Err(previous_line
                .bad(format!("receipt {number} names no previous receipt: only number 1 may say `none`"))),
            _ => Ok(receipt),
        }
    }

    /// Whether this receipt starts a new chain (its first outcome is a `restart`).
    pub fn is_restart(&self) -> bool {
        self.outcomes.iter().any(|outcome| matches!(outcome, Outcome::Restart { .. }))
    }

    /// Why this receipt starts a new chain, when it does.
    pub fn restart_reason(&self) -> Option<&RestartReason> {
        self.outcomes.iter().find_map(|outcome| match outcome {
            Outcome::Restart { reason } => Some(reason),
            _ => None,
        })
    }

    /// The outcomes about entries, in order (what a checker compares with the host's
    /// targets).
    pub fn entries(&self) -> impl Iterator<Item = &EntryOutcome> + '_ {
        self.outcomes.iter().filter_map(|outcome| match outcome {
            Outcome::Entry(entry) => Some(entry),
            _ => None,
        })
    }
}

/// How the `previous` line says there is no previous receipt.
const NONE: &str = "none";

/// How a `file-name` or `file-hash` field says it is not known.
const UNKNOWN: &str = "-";

/// One line of a receipt: something that happened to an entry or to the host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Something that happened to one entry.
    Entry(EntryOutcome),
    /// One of the host's alarms went on (`raised`) or off.
    Alarm {
        /// Which alarm.
        name: AlarmName,
        /// On (`raised`) or off (`cleared`).
        raised: bool,
    },
    /// A hook asked for a reboot (`reboot-required`).
    RebootRequired,
    /// The host dropped this many of its oldest receipts unsent, because its queue
    /// was full (`dropped <count>`, at least 1).
    Dropped {
        /// How many receipts were dropped.
        count: u64,
    },
    /// This receipt starts a new chain (`restart <reason>`): it has number 1 and its
    /// `previous` names the old chain's head, or `none`.
    Restart {
        /// Why the host started over.
        reason: RestartReason,
    },
}

impl Outcome {
    /// The first word of the line: the entry outcome's kind (`installed`, ...), or
    /// `alarm`, `reboot-required`, `dropped`, `restart`. What a status view prints.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Entry(entry) => entry.kind.as_str(),
            Outcome::Alarm { .. } => "alarm",
            Outcome::RebootRequired => "reboot-required",
            Outcome::Dropped { .. } => "dropped",
            Outcome::Restart { .. } => "restart",
        }
    }
}

/// The outcome as its line in the receipt, without the newline.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Entry(entry) => entry.fmt(f),
            Outcome::Alarm { name, raised } => {
                write!(f, "alarm {name} {}", if *raised { "raised" } else { "cleared" })
            }
            Outcome::RebootRequired => f.write_str("reboot-required"),
            Outcome::Dropped { count } => write!(f, "dropped {count}"),
            Outcome::Restart { reason } => write!(f, "restart {reason}"),
        }
    }
}

/// What happened to one entry, named by its target and seq.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryOutcome {
    /// The entry's target.
    pub target: Target,
    /// The entry's seq.
    pub seq: Seq,
    /// The entry's file name and hash, as signed; `None` when the host never read
    /// the entry's header whole (`- -` on the line).
    pub file: Option<(FileName, FileHash)>,
    /// What happened.
    pub kind: EntryOutcomeKind,
}

/// The entry outcome as its line in the receipt, without the newline.
impl fmt::Display for EntryOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} ", self.kind.as_str(), self.target, self.seq)?;
        match &self.file {
            Some((name, hash)) => write!(f, "{name} {hash}")?,
            None => write!(f, "{UNKNOWN} {UNKNOWN}")?,
        }
        match &self.kind {
            EntryOutcomeKind::Installed
            | EntryOutcomeKind::Withdrawn
            | EntryOutcomeKind::WithdrawnInstalled => Ok(()),
            EntryOutcomeKind::HookOk { attempt } => write!(f, " {attempt}"),
            EntryOutcomeKind::HookFailed { attempt, allowed } => write!(f, " {attempt}/{allowed}"),
            EntryOutcomeKind::Held { reason } | EntryOutcomeKind::Refused { reason } => {
                write!(f, " {reason}")
            }
            EntryOutcomeKind::Superseded { by } => write!(f, " {by}"),
        }
    }
}

/// What happened to an entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntryOutcomeKind {
    /// The file is installed (`installed`).
    Installed,
    /// The entry's hook succeeded at this attempt (`hook-ok`, from 1).
    HookOk {
        /// Which run of the hook succeeded, from 1.
        attempt: u32,
    },
    /// The entry's hook failed at this attempt, of so many allowed (`hook-failed`,
    /// `<attempt>/<allowed>`, both from 1).
    HookFailed {
        /// Which run of the hook failed, from 1.
        attempt: u32,
        /// How many runs the host allows, from 1.
        allowed: u32,
    },
    /// The host holds the entry's target at this entry (`held`): nothing later of
    /// the target is applied until it is resolved.
    Held {
        /// Why.
        reason: RejectReason,
    },
    /// The host refused the entry (`refused`).
    Refused {
        /// Why.
        reason: RejectReason,
    },
    /// The entry is withdrawn, so it was applied without being installed
    /// (`withdrawn`).
    Withdrawn,
    /// An entry the host had installed has been withdrawn (`withdrawn-installed`);
    /// what happens to the file is the host's policy.
    WithdrawnInstalled,
    /// The entry was superseded by a later entry of its target (`superseded`), and
    /// not installed.
    Superseded {
        /// The seq of the entry that superseded it (above the entry's own).
        by: Seq,
    },
}

impl EntryOutcomeKind {
    /// Each kind's word, and the name of the field after the file hash, if it has one.
    const WORDS: [(&'static str, Option<&'static str>); 8] = [
        ("installed", None),
        ("hook-ok", Some("attempt")),
        ("hook-failed", Some("attempt/allowed")),
        ("held", Some("reason")),
        ("refused", Some("reason")),
        ("withdrawn", None),
        ("withdrawn-installed", None),
        ("superseded", Some("superseding seq")),
    ];

    /// The kind's word, the first of its line (`installed`, `hook-ok`, `hook-failed`,
    /// `held`, `refused`, `withdrawn`, `withdrawn-installed`, `superseded`).
    pub fn as_str(&self) -> &'static str {
        let index = match self {
            EntryOutcomeKind::Installed => 0,
            EntryOutcomeKind::HookOk { .. } => 1,
            EntryOutcomeKind::HookFailed { .. } => 2,
            EntryOutcomeKind::Held { .. } => 3,
            EntryOutcomeKind::Refused { .. } => 4,
            EntryOutcomeKind::Withdrawn => 5,
            EntryOutcomeKind::WithdrawnInstalled => 6,
            EntryOutcomeKind::Superseded { .. } => 7,
        };
        Self::WORDS[index].0
    }
}

impl fmt::Display for EntryOutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a host started a new chain of receipts: a lower-case kebab-case word of at
/// most [`RestartReason::MAX_LEN`] bytes (`new-state` when its state was lost or
/// reset, `new-certificate` when it has a new key, or a newer host's word).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RestartReason(String);

impl RestartReason {
    /// The longest reason accepted.
    pub const MAX_LEN: usize = 32;

    /// A kebab-case word of at most [`RestartReason::MAX_LEN`] bytes, or `None`.
    pub fn parse(s: &str) -> Option<RestartReason> {
        is_kebab_word(s, Self::MAX_LEN).then(|| RestartReason(s.to_owned()))
    }

    /// The reason as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RestartReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The error of a receipt's bytes.
fn bad(detail: String) -> ProtoError {
    ProtoError::BadReceipt { detail }
}

/// A line number, from 1, to name in an error.
#[derive(Debug, Clone, Copy)]
struct LineNumber(usize);

impl LineNumber {
    fn bad(self, detail: impl fmt::Display) -> ProtoError {
        bad(format!("line {}: {detail}", self.0))
    }
}

/// The lines of a receipt's bytes (without the last newline), each checked to be
/// printable ASCII, with their numbers.
struct Lines<'a> {
    /// What is left to read; `None` after the last line.
    rest: Option<&'a [u8]>,
    /// How many lines were read.
    read: usize,
}

impl<'a> Lines<'a> {
    fn new(body: &'a [u8]) -> Self {
        Lines { rest: Some(body), read: 0 }
    }

    /// The next line's bytes, without its newline.
    fn take(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match rest.iter().position(|&b| b == b'\n') {
            Some(end) => {
                self.rest = rest.get(end + 1..);
                rest.get(..end)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }

    /// The next line, or an error saying that `what` is missing.
    fn next(&mut self, what: &str) -> Result<(LineNumber, &'a str), ProtoError> {
        self.next_or(|| format!("missing {what}: the receipt ends early"))
    }

    /// The next line, or an error saying `missing()` at the line that is not there.
    fn next_or(&mut self, missing: impl FnOnce() -> String) -> Result<(LineNumber, &'a str), ProtoError> {
        let at = LineNumber(self.read + 1);
        let Some(line) = self.take() else {
            return Err(at.bad(missing()));
        };
        self.read += 1;
        if let Some(&byte) = line.iter().find(|&&b| !(0x20..=0x7e).contains(&b)) {
            return Err(at.bad(format!("byte 0x{byte:02x} is not printable ASCII")));
        }
        let text = std::str::from_utf8(line).map_err(|_| at.bad("not ASCII"))?;
        Ok((at, text))
    }

    /// The next line read by `parse`, whose error is said at the line.
    fn field<T>(
        &mut self,
        what: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ProtoError> {
        let (at, line) = self.next(what)?;
        parse(line).map_err(|e| at.bad(e))
    }

    /// The number of the next line, if there is one.
    fn peek(&self) -> Option<LineNumber> {
        self.rest.map(|_| LineNumber(self.read + 1))
    }
}

/// A decimal number without leading zeros, at most 2^53 - 1; `what` names it.
fn decimal(s: &str, what: &str) -> Result<u64, String> {
    let b = s.as_bytes();
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return Err(format!("{what} {:?} is not a decimal number", excerpt(s)));
    }
    if b.len() > 1 && b[0] == b'0' {
        return Err(format!("{what} {} has a leading zero", excerpt(s)));
    }
    s.parse::<u64>()
        .ok()
        .filter(|&n| n <= MAX_WIRE_INT)
        .ok_or_else(|| format!("{what} {} is above 2^53 - 1", excerpt(s)))
}

/// A [`decimal`] from 1.
fn positive(s: &str, what: &str) -> Result<u64, String> {
    match decimal(s, what)? {
        0 => Err(format!("{what} is 0: it counts from 1")),
        n => Ok(n),
    }
}

/// A [`positive`] that fits a `u32` (hook attempts).
fn attempt(s: &str, what: &str) -> Result<u32, String> {
    u32::try_from(positive(s, what)?).map_err(|_| format!("{what} {s} is above {}", u32::MAX))
}

fn seq(s: &str, what: &str) -> Result<Seq, String> {
    Seq::new(positive(s, what)?).ok_or_else(|| format!("{what} {s} is not a sequence number"))
}

/// One outcome line.
fn parse_outcome(line: &str) -> Result<Outcome, String> {
    let tokens: Vec<&str> = line.split(' ').collect();
    if tokens.iter().any(|token| token.is_empty()) {
        return Err("the fields of an outcome are separated by one space, with none at the start or end \
                    of the line"
            .to_owned());
    }
    let Some((&kind, fields)) = tokens.split_first() else {
        return Err("an empty line where an outcome was expected".to_owned());
    };
    match kind {
        "alarm" => {
            arity(kind, fields, &["alarm name", "raised or cleared"])?;
            let name = AlarmName::parse(fields[0]).ok_or_else(|| {
                format!(
                    "alarm name {:?} is not a lower-case kebab-case word of at most {} bytes",
                    excerpt(fields[0]),
                    AlarmName::MAX_LEN
                )
            })?;
            let raised = match fields[1] {
                "raised" => true,
                "cleared" => false,
                other => {
                    return Err(format!("an alarm is `raised` or `cleared`, not {:?}", excerpt(other)));
                }
            };
            Ok(Outcome::Alarm { name, raised })
        }
        "reboot-required" => {
            arity(kind, fields, &[])?;
            Ok(Outcome::RebootRequired)
        }
        "dropped" => {
            arity(kind, fields, &["count"])?;
            Ok(Outcome::Dropped { count: positive(fields[0], "the dropped count")? })
        }
        "restart" => {
            arity(kind, fields, &["reason"])?;
            let reason = RestartReason::parse(fields[0]).ok_or_else(|| {
                format!(
                    "restart reason {:?} is not a lower-case kebab-case word of at most {} bytes",
                    excerpt(fields[0]),
                    RestartReason::MAX_LEN
                )
            })?;
            Ok(Outcome::Restart { reason })
        }
        _ => match EntryOutcomeKind::WORDS.iter().position(|(word, _)| *word == kind) {
            Some(index) => parse_entry(index, fields).map(Outcome::Entry),
            None => Err(format!("unknown outcome {:?}", excerpt(kind))),
        },
    }
}

/// The fields after an entry outcome's kind, the kind given by its index in
/// [`EntryOutcomeKind::WORDS`].
fn parse_entry(index: usize, fields: &[&str]) -> Result<EntryOutcome, String> {
    let (word, detail) = EntryOutcomeKind::WORDS[index];
    let mut names = vec!["target", "seq", "file name", "file hash"];
    names.extend(detail);
    arity(word, fields, &names)?;
    let target = Target::parse(fields[0]).map_err(|e| e.to_string())?;
    let entry_seq = seq(fields[1], "the seq")?;
    let file = match (fields[2], fields[3]) {
        (UNKNOWN, UNKNOWN) => None,
        (UNKNOWN, _) | (_, UNKNOWN) => {
            return Err("the file name and the file hash are both known or both `-`".to_owned());
        }
        (name, hash) => Some((
            FileName::parse(name).map_err(|e| e.to_string())?,
            FileHash::parse(hash).map_err(|e| e.to_string())?,
        )),
    };
    let detail = fields.get(4).copied().unwrap_or_default();
    let reason = || {
        RejectReason::parse(detail).ok_or_else(|| {
            format!(
                "reason {:?} is not a lower-case kebab-case word of at most {} bytes",
                excerpt(detail),
                RejectReason::MAX_OTHER_LEN
            )
        })
    };
    let kind = match word {
        "installed" => EntryOutcomeKind::Installed,
        "hook-ok" => EntryOutcomeKind::HookOk { attempt: attempt(detail, "the attempt")? },
        "hook-failed" => {
            let Some((tried, allowed)) = detail.split_once('/') else {
                return Err(format!("{:?} is not `<attempt>/<attempts allowed>`", excerpt(detail)));
            };
            EntryOutcomeKind::HookFailed {
                attempt: attempt(tried, "the attempt")?,
                allowed: attempt(allowed, "the attempts allowed")?,
            }
        }
        "held" => EntryOutcomeKind::Held { reason: reason()? },
        "refused" => EntryOutcomeKind::Refused { reason: reason()? },
        "withdrawn" => EntryOutcomeKind::Withdrawn,
        "withdrawn-installed" => EntryOutcomeKind::WithdrawnInstalled,
        _ => {
            let by = seq(detail, "the superseding seq")?;
            if by <= entry_seq {
                return Err(format!(
                    "entry {entry_seq} superseded by entry {by}: an entry is superseded by a later one"
                ));
            }
            EntryOutcomeKind::Superseded { by }
        }
    };
    Ok(EntryOutcome { target, seq: entry_seq, file, kind })
}

/// Checks that `kind` is followed by exactly the fields `names`.
fn arity(kind: &str, fields: &[&str], names: &[&str]) -> Result<(), String> {
    if fields.len() == names.len() {
        return Ok(());
    }
    let wanted = match names {
        [] => "no field".to_owned(),
        [one] => format!("1 field ({one})"),
        several => format!("{} fields ({})", several.len(), several.join(", ")),
    };
    Err(format!("`{kind}` takes {wanted} after it, found {}", fields.len()))
}

/// How a receipt is signed: the host's TLS key type and the signature algorithm.
/// fts-trust signs with each one rustls uses for a client's key, and verifies with
/// webpki.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiptScheme {
    /// ECDSA with P-256 and SHA-256, an ASN.1 DER signature (`fts keygen`'s keys).
    EcdsaP256Sha256,
    /// ECDSA with P-384 and SHA-384, an ASN.1 DER signature.
    EcdsaP384Sha384,
    /// Ed25519 (RFC 8032).
    Ed25519,
    /// RSASSA-PSS with SHA-256 (MGF1 SHA-256, salt of 32 bytes), a 2048 to 8192-bit key.
    RsaPssSha256,
}

impl ReceiptScheme {
    /// Every scheme, in the order of their names in the module docs.
    pub const ALL: [ReceiptScheme; 4] = [
        ReceiptScheme::EcdsaP256Sha256,
        ReceiptScheme::EcdsaP384Sha384,
        ReceiptScheme::Ed25519,
        ReceiptScheme::RsaPssSha256,
    ];

    /// The scheme's name on the wire (`ecdsa-p256-sha256`, `ecdsa-p384-sha384`,
    /// `ed25519`, `rsa-pss-sha256`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptScheme::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            ReceiptScheme::EcdsaP384Sha384 => "ecdsa-p384-sha384",
            ReceiptScheme::Ed25519 => "ed25519",
            ReceiptScheme::RsaPssSha256 => "rsa-pss-sha256",
        }
    }

    /// The scheme of a wire name; `None` for any other.
    pub fn parse(s: &str) -> Option<ReceiptScheme> {
        Self::ALL.into_iter().find(|scheme| scheme.as_str() == s)
    }
}

impl fmt::Display for ReceiptScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ReceiptScheme {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ReceiptScheme {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ReceiptScheme::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "unknown receipt scheme {:?}: expected one of {}",
                excerpt(&s),
                ReceiptScheme::ALL.map(ReceiptScheme::as_str).join(", ")
            ))
        })
    }
}

/// A receipt as a host sends it and a server stores it: the exact bytes, the scheme,
/// and the signature of the host's TLS key over `fts host receipt v1\0` and the bytes
/// (fts-trust makes and checks it). The bytes are not read here: only a checked
/// signature makes them worth reading.
///
/// On the wire, a JSON object: `{"receipt": "<base64 of the bytes>", "scheme":
/// "<name>", "signature": "<base64>"}`, strict standard base64; unknown fields are
/// ignored.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SignedReceipt {
    /// The receipt's bytes, as signed (1 to [`MAX_RECEIPT_BYTES`] when decoded).
    pub bytes: Vec<u8>,
    /// How it is signed.
    pub scheme: ReceiptScheme,
    /// The signature (1 to [`MAX_RECEIPT_SIGNATURE_BYTES`] when decoded).
    pub signature: Vec<u8>,
}

impl SignedReceipt {
    /// The length of its JSON object on the wire, in bytes.
    fn wire_len(&self) -> usize {
        serde_json::to_vec(self).map_or(usize::MAX, |json| json.len())
    }
}

/// The bytes as text (a receipt is ASCII), the signature as base64.
impl fmt::Debug for SignedReceipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedReceipt")
            .field("bytes", &String::from_utf8_lossy(&self.bytes))
            .field("scheme", &self.scheme)
            .field("signature", &base64::encode(&self.signature))
            .finish()
    }
}

#[derive(Serialize)]
struct SignedReceiptWire<'a> {
    receipt: String,
    scheme: &'a str,
    signature: String,
}

impl Serialize for SignedReceipt {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SignedReceiptWire {
            receipt: base64::encode(&self.bytes),
            scheme: self.scheme.as_str(),
            signature: base64::encode(&self.signature),
        }
        .serialize(serializer)
    }
}

#[derive(Deserialize)]
struct SignedReceiptFields<'a> {
    #[serde(borrow)]
    receipt: std::borrow::Cow<'a, str>,
    scheme: ReceiptScheme,
    #[serde(borrow)]
    signature: std::borrow::Cow<'a, str>,
}

/// The base64 of `max` bytes is this long.
fn base64_len(max: usize) -> usize {
    max.div_ceil(3) * 4
}

/// Canonical base64 of 1 to `max` bytes; the error names `field`. The length is
/// checked on the text, before anything is decoded.
fn bounded_base64(text: &str, field: &str, max: usize) -> Result<Vec<u8>, String> {
    if text.len() > base64_len(max) {
        return Err(format!("`{field}` is more than {max} bytes"));
    }
    let bytes = base64::decode(text).ok_or_else(|| format!("`{field}` is not canonical standard base64"))?;
    if bytes.is_empty() {
        return Err(format!("`{field}` is empty"));
    }
    if bytes.len() > max {
        return Err(format!("`{field}` is more than {max} bytes"));
    }
    Ok(bytes)
}

impl<'de> Deserialize<'de> for SignedReceipt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = SignedReceiptFields::deserialize(deserializer)?;
        let bytes = bounded_base64(&fields.receipt, "receipt", MAX_RECEIPT_BYTES)
            .map_err(serde::de::Error::custom)?;
        let signature = bounded_base64(&fields.signature, "signature", MAX_RECEIPT_SIGNATURE_BYTES)
            .map_err(serde::de::Error::custom)?;
        Ok(SignedReceipt { bytes, scheme: fields.scheme, signature })
    }
}

/// A decoded `receipt` request: the host's signed receipts, oldest first. Like a
/// [`Request`](crate::Request), `request-type` and `protocol` are not fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRequest {
    /// The id the client claims; with TLS the server compares it with the
    /// certificate's.
    pub client_id: ClientId,
    /// 1 to [`MAX_RECEIPTS_PER_REQUEST`] receipts.
    pub receipts: Vec<SignedReceipt>,
}

impl ReceiptRequest {
    /// The whole request frame (length prefix and header), refused unless it carries
    /// 1 to [`MAX_RECEIPTS_PER_REQUEST`] receipts ([`ProtoError::Encode`]) and stays
    /// under [`MAX_CLIENT_REQUEST`] bytes ([`ProtoError::RequestTooLarge`]: send fewer,
    /// [`ReceiptRequest::how_many_fit`]).
    pub fn encode(&self) -> Result<Vec<u8>, ProtoError> {
        let count = self.receipts.len();
        if !(1..=MAX_RECEIPTS_PER_REQUEST).contains(&count) {
            return Err(ProtoError::Encode {
                detail: format!(
                    "a receipt request carries 1 to {MAX_RECEIPTS_PER_REQUEST} receipts, not {count}"
                ),
            });
        }
        let frame = encode_frame(self)?;
        if frame.len() >= MAX_CLIENT_REQUEST {
            return Err(ProtoError::RequestTooLarge { len: frame.len(), limit: MAX_CLIENT_REQUEST });
        }
        Ok(frame)
    }

    /// How many of `receipts`, from the first, one request of `client_id` carries:
    /// at most [`MAX_RECEIPTS_PER_REQUEST`], and no more than keep the frame under
    /// [`MAX_CLIENT_REQUEST`] bytes. 0 when even the first alone does not fit (it is
    /// too large to ever be sent).
    pub fn how_many_fit(client_id: &ClientId, receipts: &[SignedReceipt]) -> usize {
        let empty = ReceiptRequest { client_id: client_id.clone(), receipts: Vec::new() };
        let Ok(header) = serde_json::to_vec(&empty) else { return 0 };
        let mut len = LENGTH_PREFIX_LEN + header.len();
        for (i, receipt) in receipts.iter().take(MAX_RECEIPTS_PER_REQUEST).enumerate() {
            // Each receipt after the first adds a comma too.
            len = len.saturating_add(receipt.wire_len()).saturating_add(usize::from(i > 0));
            if len >= MAX_CLIENT_REQUEST {
                return i;
            }
        }
        receipts.len().min(MAX_RECEIPTS_PER_REQUEST)
    }

    /// The fields of a receipt request, after `request-type` and `protocol` were
    /// checked ([`crate::ClientRequest::decode`]).
    pub(crate) fn from_fields(object: &Map<String, Value>) -> Result<ReceiptRequest, ProtoError> {
        let bad = |detail: String| ProtoError::BadRequest { detail };
        let client_id: ClientId = required(object, "client-id").map_err(bad)?;
        let receipts = match object.get("receipts") {
            None => return Err(bad("missing field `receipts`".to_owned())),
            Some(Value::Array(items)) if items.is_empty() => {
                return Err(bad(
                    "field `receipts`: a receipt request carries at least one receipt".to_owned()
                ));
            }
            Some(Value::Array(items)) if items.len() > MAX_RECEIPTS_PER_REQUEST => {
                return Err(bad(format!(
                    "field `receipts`: {} receipts, more than the {MAX_RECEIPTS_PER_REQUEST} allowed",
                    items.len()
                )));
            }
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| convert::<SignedReceipt>(item, &format!("receipts[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?,
            Some(other) => {
                return Err(bad(format!("field `receipts`: expected an array, found {}", json::kind(other))));
            }
        };
        Ok(ReceiptRequest { client_id, receipts })
    }
}

/// The header as it is written: the two fixed fields first.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ReceiptRequestWire<'a> {
    request_type: &'static str,
    #[serde(with = "wire_int")]
    protocol: u64,
    client_id: &'a ClientId,
    receipts: &'a [SignedReceipt],
}

impl Serialize for ReceiptRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ReceiptRequestWire {
            request_type: REQUEST_TYPE_RECEIPT,
            protocol: PROTOCOL_VERSION,
            client_id: &self.client_id,
            receipts: &self.receipts,
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const FILE: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn text(lines: &[&str]) -> Vec<u8> {
        lines.iter().flat_map(|line| format!("{line}\n").into_bytes()).collect()
    }

    fn header(number: &str, previous: &str, count: &str) -> Vec<String> {
        ["fts-receipt-v1", "web-01", number, previous, "2026-12-02T09:00:00Z", count]
            .map(str::to_owned)
            .to_vec()
    }

    /// A receipt of the given outcome lines, number 7 after [`HASH`].
    fn with_outcomes(outcomes: &[&str]) -> Vec<u8> {
        let mut lines = header("7", HASH, &outcomes.len().to_string());
        lines.extend(outcomes.iter().map(|s| (*s).to_owned()));
        text(&lines.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn detail(bytes: &[u8]) -> String {
        match Receipt::parse(bytes) {
            Err(ProtoError::BadReceipt { detail }) => detail,
            other => {
                panic!("{:?} was not refused as a bad receipt: {other:?}", String::from_utf8_lossy(bytes))
            }
        }
    }

    fn every_outcome() -> Vec<String> {
        vec![
            format!("installed group:web 42 openssl.deb {FILE}"),
            format!("hook-ok group:web 42 openssl.deb {FILE} 1"),
            format!("hook-failed web-01 3 motd {FILE} 2/4"),
            "held all 12 - - signature".to_owned(),
            format!("refused all 13 big.iso {FILE} too-large"),
            format!("refused all 14 x {FILE} disk-quota"),
            format!("withdrawn group:web 43 openssl.deb {FILE}"),
            format!("withdrawn-installed group:web 42 openssl.deb {FILE}"),
            format!("superseded group:web 44 openssl.deb {FILE} 45"),
            "alarm stale raised".to_owned(),
            "alarm fork cleared".to_owned(),
            "reboot-required".to_owned(),
            "dropped 3".to_owned(),
        ]
    }

    #[test]
    fn a_receipt_with_every_outcome_reads_back_to_its_own_bytes() {
        let outcomes = every_outcome();
        let bytes = with_outcomes(&outcomes.iter().map(String::as_str).collect::<Vec<_>>());
        let receipt = Receipt::parse(&bytes).unwrap();
        assert_eq!(receipt.to_bytes(), bytes);
        assert_eq!(receipt.number, 7);
        assert_eq!(receipt.previous, Some(FileHash::parse(HASH).unwrap()));
        assert_eq!(receipt.outcomes.len(), outcomes.len());
        for (outcome, line) in receipt.outcomes.iter().zip(&outcomes) {
            assert_eq!(&outcome.to_string(), line);
            assert!(line.starts_with(outcome.as_str()), "{line}");
        }
        assert!(!receipt.is_restart());
        assert_eq!(receipt.entries().count(), 9);
        let refused = &receipt.outcomes[5];
        let Outcome::Entry(EntryOutcome { kind: EntryOutcomeKind::Refused { reason }, .. }) = refused else {
            panic!("{refused:?}")
        };
        assert_eq!(reason, &RejectReason::Other("disk-quota".into()), "a newer host's reason is kept");
        let Outcome::Entry(held) = &receipt.outcomes[3] else { panic!() };
        assert_eq!(held.file, None);
    }

    #[test]
    fn the_first_receipt_has_no_previous_and_a_restart_may_name_the_old_head() {
        let first =
            text(&["fts-receipt-v1", "web-01", "1", "none", "2026-12-02T09:00:00Z", "1", "reboot-required"]);
        assert_eq!(Receipt::parse(&first).unwrap().previous, None);
        for previous in ["none", HASH] {
            let restart = text(&[
                "fts-receipt-v1",
                "web-01",
                "1",
                previous,
                "2026-12-02T09:00:00Z",
                "2",
                "restart new-certificate",
                "alarm stale cleared",
            ]);
            let receipt = Receipt::parse(&restart).unwrap();
            assert!(receipt.is_restart());
            assert_eq!(receipt.restart_reason().map(RestartReason::as_str), Some("new-certificate"));
            assert_eq!(receipt.to_bytes(), restart);
        }
    }

    #[test]
    fn chain_rules_are_refused_at_their_line() {
        let lines = |number: &str, previous: &str, outcomes: &[&str]| {
            let mut all = header(number, previous, &outcomes.len().to_string());
            all.extend(outcomes.iter().map(|s| (*s).to_owned()));
            text(&all.iter().map(String::as_str).collect::<Vec<_>>())
        };
        let cases = [
            (lines("1", HASH, &["reboot-required"]), "line 4: receipt 1 names a previous receipt"),
            (lines("2", "none", &["reboot-required"]), "line 4: receipt 2 names no previous receipt"),
            (lines("7", HASH, &["restart new-state"]), "line 3: receipt 7 restarts its chain"),
            (lines("1", "none", &["reboot-required", "restart new-state"]), "line 8: a restart is the first"),
            (
                lines("1", "none", &["restart new-state", "restart new-state"]),
                "line 8: a restart is the first",
            ),
        ];
        for (bytes, expected) in cases {
            let detail = detail(&bytes);
            assert!(detail.starts_with(expected), "{detail}");
        }
    }

    #[test]
    fn every_header_line_is_refused_when_it_is_not_canonical() {
        let cases: [(&[&str], &str); 12] = [
            (&["fts-receipt-v2"], "line 1: expected the tag"),
            (&["fts-receipt-v1", "Web-01"], "line 2: invalid client id"),
            (&["fts-receipt-v1", "web-01", "07"], "line 3: the receipt number 07 has a leading zero"),
            (&["fts-receipt-v1", "web-01", "0"], "line 3: the receipt number is 0"),
            (&["fts-receipt-v1", "web-01", "+7"], "line 3: the receipt number \"+7\" is not a decimal"),
            (
                &["fts-receipt-v1", "web-01", "9007199254740992"],
                "line 3: the receipt number 9007199254740992 is above",
            ),
            (&["fts-receipt-v1", "web-01", "7", "NONE"], "line 4: invalid file hash"),
            (
                &["fts-receipt-v1", "web-01", "7", HASH, "2026-12-02 09:00:00Z"],
                "line 5: invalid published time",
            ),
            (
                &["fts-receipt-v1", "web-01", "7", HASH, "2026-12-02T09:00:00Z", "0"],
                "line 6: the outcome count is 0",
            ),
            (
                &["fts-receipt-v1", "web-01", "7", HASH, "2026-12-02T09:00:00Z", "257"],
                "line 6: 257 outcomes, more",
            ),
            (
                &["fts-receipt-v1", "web-01", "7", HASH, "2026-12-02T09:00:00Z", "2", "reboot-required"],
                "the receipt ends after 1 of its 2 outcomes",
            ),
            (&["fts-receipt-v1", "web-01"], "missing the receipt number"),
        ];
        for (lines, expected) in cases {
            let detail = detail(&text(lines));
            assert!(detail.contains(expected), "{lines:?}: {detail}");
        }
    }

    #[test]
    fn every_outcome_line_is_refused_when_it_is_not_canonical() {
        let cases = [
            (format!("installed group:web 42 openssl.deb {FILE} 1"), "`installed` takes 4 fields"),
            (format!("hook-ok group:web 42 openssl.deb {FILE}"), "`hook-ok` takes 5 fields"),
            (format!("hook-ok group:web 42 openssl.deb {FILE} 0"), "the attempt is 0"),
            (format!("hook-ok group:web 42 openssl.deb {FILE} 4294967296"), "above 4294967295"),
            (
                format!("hook-failed group:web 42 openssl.deb {FILE} 2"),
                "is not `<attempt>/<attempts allowed>`",
            ),
            (format!("hook-failed group:web 42 openssl.deb {FILE} 2/0"), "the attempts allowed is 0"),
            (format!("hook-failed group:web 42 openssl.deb {FILE} 2/04"), "leading zero"),
            (format!("held group:web 42 openssl.deb {FILE} Signature"), "reason \"Signature\""),
            (format!("refused group:web 42 - {FILE} signature"), "both known or both `-`"),
            ("refused group:web 42 openssl.deb - signature".to_owned(), "both known or both `-`"),
            (format!("superseded group:web 42 openssl.deb {FILE} 42"), "superseded by a later one"),
            (format!("installed group:Web 42 openssl.deb {FILE}"), "invalid target"),
            (format!("installed group:web 0 openssl.deb {FILE}"), "the seq is 0"),
            (format!("installed group:web 42 .hidden {FILE}"), "invalid file name"),
            (format!("installed group:web 42 openssl.deb {}", FILE.to_uppercase()), "invalid file hash"),
            (format!("installed  group:web 42 openssl.deb {FILE}"), "separated by one space"),
            (format!("installed group:web 42 openssl.deb {FILE} "), "separated by one space"),
            ("alarm stale on".to_owned(), "`raised` or `cleared`"),
            ("alarm Stale raised".to_owned(), "alarm name \"Stale\""),
            ("reboot-required now".to_owned(), "`reboot-required` takes no field"),
            ("dropped 0".to_owned(), "the dropped count is 0"),
            ("restart".to_owned(), "`restart` takes 1 field (reason)"),
            (format!("restart {}", "a".repeat(33)), "restart reason"),
            ("installed-twice all 1 - -".to_owned(), "unknown outcome \"installed-twice\""),
            (String::new(), "separated by one space"),
        ];
        for (line, expected) in cases {
            let detail = detail(&with_outcomes(&[&line]));
            assert!(detail.starts_with("line 7: "), "{line}: {detail}");
            assert!(detail.contains(expected), "{line}: {detail}");
        }
    }

    #[test]
    fn bytes_around_the_lines_are_refused() {
        let good = with_outcomes(&["reboot-required"]);
        assert!(Receipt::parse(&good).is_ok());
        assert_eq!(detail(b""), "the receipt is empty");
        assert_eq!(detail(&good[..good.len() - 1]), "line 7: the last line is not ended by a newline");
        assert_eq!(
            detail(&[&good[..], b"reboot-required\n"].concat()),
            "line 8: the receipt goes on after its 1 outcomes"
        );
        assert_eq!(detail(&[&good[..], b"\n"].concat()), "line 8: the receipt goes on after its 1 outcomes");
        let crlf = String::from_utf8(good.clone()).unwrap().replace('\n', "\r\n");
        assert_eq!(detail(crlf.as_bytes()), "line 1: byte 0x0d is not printable ASCII");
        let mut not_ascii = good.clone();
        not_ascii[16] = 0xc3;
        assert_eq!(detail(&not_ascii), "line 2: byte 0xc3 is not printable ASCII");
        let huge = vec![b'a'; MAX_RECEIPT_BYTES + 1];
        assert!(detail(&huge).contains("more than the 65536 allowed"));
    }

    #[test]
    fn a_signed_receipt_is_base64_on_the_wire_and_an_unknown_scheme_is_refused() {
        let signed =
            SignedReceipt { bytes: b"abc".to_vec(), scheme: ReceiptScheme::Ed25519, signature: vec![1, 2] };
        let json = serde_json::to_string(&signed).unwrap();
        assert_eq!(json, r#"{"receipt":"YWJj","scheme":"ed25519","signature":"AQI="}"#);
        assert_eq!(serde_json::from_str::<SignedReceipt>(&json).unwrap(), signed);
        for scheme in ReceiptScheme::ALL {
            assert_eq!(ReceiptScheme::parse(scheme.as_str()), Some(scheme));
        }
        let bad = [
            (
                r#"{"receipt":"YWJj","scheme":"ecdsa-p521-sha512","signature":"AQI="}"#,
                "unknown receipt scheme",
            ),
            (r#"{"receipt":"YWJj","scheme":"Ed25519","signature":"AQI="}"#, "unknown receipt scheme"),
            (r#"{"receipt":"YWJ","scheme":"ed25519","signature":"AQI="}"#, "`receipt` is not canonical"),
            (r#"{"receipt":"","scheme":"ed25519","signature":"AQI="}"#, "`receipt` is empty"),
            (r#"{"receipt":"YWJj","scheme":"ed25519","signature":""}"#, "`signature` is empty"),
            (r#"{"receipt":"YWJj","scheme":"ed25519"}"#, "missing field `signature`"),
        ];
        for (json, expected) in bad {
            let err = serde_json::from_str::<SignedReceipt>(json).unwrap_err().to_string();
            assert!(err.contains(expected), "{json}: {err}");
        }
        let long = base64::encode(&[7u8; MAX_RECEIPT_SIGNATURE_BYTES + 1]);
        let json = format!(r#"{{"receipt":"YWJj","scheme":"ed25519","signature":"{long}"}}"#);
        let err = serde_json::from_str::<SignedReceipt>(&json).unwrap_err().to_string();
        assert!(err.contains("more than 1024 bytes"), "{err}");
    }

    #[test]
    fn how_many_fit_agrees_with_encode() {
        let client_id = ClientId::parse("web-01").unwrap();
        for size in [10, 500, 1500, 3000, 7000] {
            let receipt = SignedReceipt {
                bytes: vec![b'x'; size],
                scheme: ReceiptScheme::RsaPssSha256,
                signature: vec![9; 256],
            };
            let receipts = vec![receipt; 20];
            let n = ReceiptRequest::how_many_fit(&client_id, &receipts);
            assert!(n <= MAX_RECEIPTS_PER_REQUEST);
            if n > 0 {
                let fits = ReceiptRequest { client_id: client_id.clone(), receipts: receipts[..n].to_vec() };
                assert!(fits.encode().is_ok(), "size {size}: {n} fit");
            }
            if n < MAX_RECEIPTS_PER_REQUEST {
                let more = ReceiptRequest { client_id: client_id.clone(), receipts: receipts[..=n].to_vec() };
                assert!(
                    matches!(more.encode(), Err(ProtoError::RequestTooLarge { .. })),
                    "size {size}: {n} fit"
                );
            }
        }
        let none = ReceiptRequest { client_id, receipts: Vec::new() };
        assert!(matches!(none.encode(), Err(ProtoError::Encode { .. })));
    }

    #[test]
    fn a_sendable_receipt_fits_a_request_alone_with_the_longest_id_and_signature() {
        let longest = ClientId::parse(&"w".repeat(63)).unwrap();
        for scheme in ReceiptScheme::ALL {
            let receipt = SignedReceipt {
                bytes: vec![b'x'; MAX_SENDABLE_RECEIPT_BYTES],
                scheme,
                signature: vec![0xff; MAX_RECEIPT_SIGNATURE_BYTES],
            };
            assert_eq!(ReceiptRequest::how_many_fit(&longest, &[receipt]), 1, "{scheme}");
        }
        let short = ClientId::parse("web-01").unwrap();
        let too_long = SignedReceipt {
            bytes: vec![b'x'; 6 * 1024],
            scheme: ReceiptScheme::Ed25519,
            signature: vec![1; 64],
        };
        assert_eq!(ReceiptRequest::how_many_fit(&short, &[too_long]), 0, "6 KiB never fits");
    }
}
