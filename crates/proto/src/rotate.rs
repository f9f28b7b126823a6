//! The rotation statement (`fts-rotate-v1`, docs/PROTOCOL.md section 8.3): the bytes
//! that move a fleet from one release key to the next it was pre-committed to, and the
//! shape in which a `log` frame carries each rotation. Syntax only: the commitment
//! hash, signing and verifying are fts-trust's.
//!
//! ```text
//! fts-rotate-v1                          tag
//! fts.example/prod                       the log's origin
//! 2                                      rotation number m (the first is 1)
//! <base64 of 32 bytes>                   the key retired (active before m)
//! <base64 of 32 bytes>                   the key made active (its commitment was held)
//! sha256:<64 hex>                        the commitment to the key after it
//! 2026-12-02T09:00:00Z                   when
//! ```
//!
//! A rotation is a log leaf: its bytes, then one `key-id` and `signature` line pair
//! for the new key (always, first) and one for the retired key (a planned rotation;
//! absent in a recovery after the retired key was stolen or lost).

use serde::{Deserialize, Serialize};

use crate::checkpoint::Origin;
use crate::keys::{KeyId, Signature};
use crate::log::LogHash;
use crate::names::{FileHash, Published};
use crate::wire_int;

/// The first line of a rotation statement.
pub const ROTATE_TAG: &str = "fts-rotate-v1";

/// The most rotations a `log` frame carries, and a host walks in one poll.
pub const MAX_ROTATIONS: usize = 64;

/// An Ed25519 public key as 32 bytes, base64 on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawKey(pub [u8; 32]);

impl std::fmt::Display for RawKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::base64::encode(&self.0))
    }
}

impl Serialize for RawKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RawKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        crate::base64::decode_fixed(&text)
            .map(RawKey)
            .ok_or_else(|| serde::de::Error::custom("not the base64 of a 32-byte public key"))
    }
}

/// What a rotation vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RotateStatement {
    /// The log it rotates.
    pub origin: Origin,
    /// Its number: one more than the previous rotation's (the first is 1).
    #[serde(with = "wire_int")]
    pub number: u64,
    /// The key it retires.
    pub retired: RawKey,
    /// The key it makes active: the one the previous commitment named.
    pub key: RawKey,
    /// The commitment to the key after it (`fts-next-key-v1`).
    pub next: FileHash,
    /// When it was made.
    pub time: Published,
}

impl RotateStatement {
    /// The bytes that are signed: the tag and the six fields, one per line, each
    /// ended by `\n`.
    pub fn to_bytes(&self) -> Vec<u8> {
        format!(
            "{ROTATE_TAG}\n{}\n{}\n{}\n{}\n{}\n{}\n",
            self.origin, self.number, self.retired, self.key, self.next, self.time
        )
        .into_bytes()
    }
}

/// One signature of a rotation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RotationSignature {
    /// The key that signed.
    pub key_id: KeyId,
    /// Its Ed25519 signature over the statement bytes.
    pub signature: Signature,
}

/// A rotation as it is signed and logged: the statement and its signatures, the new
/// key's first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SignedRotation {
    /// What is signed.
    #[serde(flatten)]
    pub statement: RotateStatement,
    /// The new key's signature, then (a planned rotation) the retired key's.
    pub signatures: Vec<RotationSignature>,
}

impl SignedRotation {
    /// Its log leaf: the statement's bytes, then a `key-id` and `signature` line
    /// pair per signature, in order.
    pub fn leaf(&self) -> Vec<u8> {
        let mut leaf = self.statement.to_bytes();
        for s in &self.signatures {
            leaf.extend_from_slice(format!("key-id {}\nsignature {}\n", s.key_id, s.signature).as_bytes());
        }
        leaf
    }
}

/// A rotation in a `log` frame, with its leaf's place and inclusion proof in the
/// frame's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RotationProof {
    /// The signed rotation.
    #[serde(flatten)]
    pub rotation: SignedRotation,
    /// Its leaf index: the retired key signs only leaves below it.
    #[serde(with = "wire_int")]
    pub log_index: u64,
    /// The inclusion proof of its leaf.
    pub inclusion: Vec<LogHash>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_leaf_is_its_statement_then_each_signature() {
        let rotation = SignedRotation {
            statement: RotateStatement {
                origin: Origin::parse("fts.example/prod").unwrap(),
                number: 2,
                retired: RawKey([1; 32]),
                key: RawKey([2; 32]),
                next: FileHash::from_digest([3; 32]),
                time: Published::parse("2026-12-02T09:00:00Z").unwrap(),
            },
            signatures: vec![RotationSignature {
                key_id: KeyId::from_prefix([4; 8]),
                signature: Signature::from_bytes([5; 64]),
            }],
        };
        let leaf = String::from_utf8(rotation.leaf()).unwrap();
        let lines: Vec<&str> = leaf.split('\n').collect();
        assert_eq!(&lines[..3], ["fts-rotate-v1", "fts.example/prod", "2"]);
        assert_eq!(lines[3], crate::base64::encode(&[1; 32]));
        assert_eq!(lines[7], "key-id 0404040404040404");
        let json = serde_json::to_string(&rotation).unwrap();
        assert_eq!(serde_json::from_str::<SignedRotation>(&json).unwrap(), rotation);
    }
}
