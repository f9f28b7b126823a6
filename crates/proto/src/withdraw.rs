//! The withdrawal statement (`fts-withdraw-v1`, docs/PROTOCOL.md section 8.1): the
//! bytes a release key signs to stop the delivery of one published entry. Syntax
//! only: signing and verifying are fts-trust's.
//!
//! ```text
//! fts-withdraw-v1                     tag
//! fts.example/prod                    the log's origin
//! group:web                           the withdrawn entry's target
//! 42                                  its seq
//! sha256:<64 hex>                     SHA-256 of its fts-file-v1 statement bytes
//! 2026-12-02T09:00:00Z                when it was withdrawn
//! broke TLS on RHEL 8                 the reason (may be empty)
//! ```
//!
//! The origin binds a withdrawal to one log, and the statement hash to one entry: a
//! withdrawal of another log, or of another statement that once held the same
//! (target, seq) in a forked store, names bytes the host's log does not hold there.
//! A withdrawal takes no seq of its own; it is a log leaf (its bytes, then the
//! `key-id` and `signature` lines, like an entry's leaf).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::checkpoint::Origin;
use crate::keys::{KeyId, Signature};
use crate::log::LogHash;
use crate::names::{FileHash, Published, Target};
use crate::seq::Seq;
use crate::statement::Statement;
use crate::wire_int;

/// The first line of a withdrawal statement.
pub const WITHDRAW_TAG: &str = "fts-withdraw-v1";

/// What a release key vouches for when it withdraws an entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WithdrawStatement {
    /// The log the withdrawn entry is in.
    pub origin: Origin,
    /// The withdrawn entry's target.
    pub target: Target,
    /// The withdrawn entry's seq.
    pub seq: Seq,
    /// The SHA-256 of the withdrawn entry's statement bytes (`fts-file-v1`).
    pub statement_hash: FileHash,
    /// When it was withdrawn.
    pub withdrawn: Published,
    /// Why (one line, may be empty).
    pub reason: WithdrawReason,
}

impl WithdrawStatement {
    /// The bytes that are signed: the tag and the six fields, one per line, each
    /// ended by `\n`.
    pub fn to_bytes(&self) -> Vec<u8> {
        format!(
            "{WITHDRAW_TAG}\n{}\n{}\n{}\n{}\n{}\n{}\n",
            self.origin, self.target, self.seq, self.statement_hash, self.withdrawn, self.reason
        )
        .into_bytes()
    }

    /// Whether this withdraws exactly `statement`, whose bytes hash to
    /// `statement_hash` (fts-log's `statement_hash`), of the log `origin`.
    pub fn withdraws(&self, origin: &Origin, statement: &Statement, statement_hash: &FileHash) -> bool {
        self.origin == *origin
            && self.target == statement.target
            && self.seq == statement.seq
            && self.statement_hash == *statement_hash
    }
}

/// The log leaf of any signed text: its bytes, then `key-id {16 hex}\n` and
/// `signature {base64}\n` (an entry's leaf is this of its statement).
pub fn signed_leaf(signed: &[u8], key_id: &KeyId, signature: &Signature) -> Vec<u8> {
    let mut leaf = signed.to_vec();
    leaf.extend_from_slice(format!("key-id {key_id}\nsignature {signature}\n").as_bytes());
    leaf
}

/// The reason of a withdrawal: at most [`WithdrawReason::MAX_LEN`] bytes of UTF-8
/// without a control character (so one line), possibly empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct WithdrawReason(String);

impl WithdrawReason {
    /// The longest reason, in bytes.
    pub const MAX_LEN: usize = 200;

    /// Checks the rule; the error says what is allowed.
    pub fn parse(text: &str) -> Result<WithdrawReason, String> {
        if text.len() > Self::MAX_LEN {
            return Err(format!(
                "a withdrawal reason is at most {} bytes; this one is {}",
                Self::MAX_LEN,
                text.len()
            ));
        }
        if text.chars().any(char::is_control) {
            return Err("a withdrawal reason is one line: no newline, tab or other control character".into());
        }
        // Characters that change the direction or visibility of the text around them
        // would let a reason read differently on a host's terminal than it was signed.
        let hidden = |c: char| matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}');
        if text.chars().any(hidden) {
            return Err("a withdrawal reason may not hold a character that changes the direction or visibility of text".into());
        }
        Ok(WithdrawReason(text.to_owned()))
    }

    /// The reason as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WithdrawReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for WithdrawReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for WithdrawReason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        WithdrawReason::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The withdrawal as a `withdrawn` frame carries it (its target, seq and statement
/// hash come from the withdrawn entry of the same frame, its origin from the log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Withdrawal {
    /// When it was withdrawn, as signed.
    pub withdrawn: Published,
    /// Why, as signed.
    #[serde(default)]
    pub reason: WithdrawReason,
    /// The key that signed it.
    pub key_id: KeyId,
    /// Ed25519 over the withdrawal statement.
    pub signature: Signature,
    /// The withdrawal's leaf index in the log.
    #[serde(with = "wire_int")]
    pub log_index: u64,
    /// Its inclusion proof in the answer's checkpoint.
    pub inclusion: Vec<LogHash>,
}

impl Withdrawal {
    /// The statement this withdrawal signs, for the entry `statement` of log
    /// `origin`, whose bytes hash to `statement_hash`.
    pub fn statement(
        &self,
        origin: &Origin,
        statement: &Statement,
        statement_hash: FileHash,
    ) -> WithdrawStatement {
        WithdrawStatement {
            origin: origin.clone(),
            target: statement.target.clone(),
            seq: statement.seq,
            statement_hash,
            withdrawn: self.withdrawn.clone(),
            reason: self.reason.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement() -> Statement {
        Statement {
            target: Target::parse("group:web").unwrap(),
            seq: Seq::new(42).unwrap(),
            file_name: crate::FileName::parse("openssl.deb").unwrap(),
            file_size: 3,
            file_hash: FileHash::from_digest([7; 32]),
            published: Published::parse("2026-12-01T09:00:00Z").unwrap(),
        }
    }

    #[test]
    fn a_withdrawal_names_its_log_and_the_statement_bytes() {
        let origin = Origin::parse("fts.example/prod").unwrap();
        let hash = FileHash::from_digest([9; 32]);
        let w = WithdrawStatement {
            origin: origin.clone(),
            target: statement().target,
            seq: statement().seq,
            statement_hash: hash,
            withdrawn: Published::parse("2026-12-02T09:00:00Z").unwrap(),
            reason: WithdrawReason::parse("broke TLS").unwrap(),
        };
        let text = String::from_utf8(w.to_bytes()).unwrap();
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(&lines[..4], ["fts-withdraw-v1", "fts.example/prod", "group:web", "42"]);
        assert_eq!(lines[4], hash.to_string());
        assert_eq!(&lines[5..], ["2026-12-02T09:00:00Z", "broke TLS", ""]);
        assert!(w.withdraws(&origin, &statement(), &hash));
        let other = FileHash::from_digest([8; 32]);
        assert!(!w.withdraws(&origin, &statement(), &other), "another statement at the same (target, seq)");
        assert!(!w.withdraws(&Origin::parse("fts.example/test").unwrap(), &statement(), &hash));
    }

    #[test]
    fn a_reason_is_one_short_line() {
        assert!(WithdrawReason::parse("").is_ok());
        assert!(WithdrawReason::parse("two\nlines").is_err());
        assert!(WithdrawReason::parse(&"x".repeat(201)).is_err());
        assert!(WithdrawReason::parse("looks fine\u{202E}txt.exe").is_err());
        assert!(serde_json::from_str::<WithdrawReason>("\"a\\tb\"").is_err());
    }
}
