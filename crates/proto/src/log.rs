//! The log's wire shapes (docs/PROTOCOL.md section 7): the `log` frame that opens an
//! answer to a request carrying `log-size`, the proofs it carries, and the hashes
//! they are made of. Syntax only: what a proof proves is fts-log's (the Merkle
//! rules) and fts-trust's (the signatures).
//!
//! ```text
//! {"type":"log",
//!  "checkpoint":"<signed note: checkpoint text, a blank line, signature lines>",
//!  "consistency":["<base64 hash>", ...],          from the request's log-size
//!  "heads":{"web-01":{"present":{"target":"web-01","seq":13,"index":2,"proof":[...]}},
//!           "group:db":{"absent":{"before":{...},"after":null}}}}
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::names::Target;
use crate::seq::Seq;
use crate::wire_int;

/// A SHA-256 node or leaf hash of a Merkle tree, as base64 on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogHash(pub [u8; 32]);

impl LogHash {
    /// Canonical base64 of exactly 32 bytes, or `None`.
    pub fn parse(text: &str) -> Option<LogHash> {
        crate::base64::decode_fixed(text).map(LogHash)
    }
}

impl fmt::Display for LogHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::base64::encode(&self.0))
    }
}

impl fmt::Debug for LogHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogHash({self})")
    }
}

impl Serialize for LogHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LogHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        LogHash::parse(&text).ok_or_else(|| serde::de::Error::custom("not the base64 of a 32-byte hash"))
    }
}

/// One leaf of the heads tree with its inclusion proof: `target`'s newest seq in the
/// checkpoint, at `index` among the heads sorted by target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct HeadLeafProof {
    /// The target of this leaf.
    pub target: Target,
    /// Its head: the seq of its newest entry covered by the checkpoint.
    #[serde(with = "wire_int")]
    pub seq: u64,
    /// Its place in the heads tree (targets sorted by their bytes).
    #[serde(with = "wire_int")]
    pub index: u64,
    /// The inclusion proof of the leaf in the heads tree, sibling first.
    pub proof: Vec<LogHash>,
    /// The target's withdrawn seqs, ascending (PROTOCOL.md section 8.1); absent when
    /// it has none, and then the leaf is the issue-18 one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withdrawn: Vec<Seq>,
}

/// What the checkpoint says of one target's head: its leaf, or the two adjacent
/// leaves around where it would be (an edge has only one; an empty tree none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum HeadProof {
    /// The target has entries; its head is the leaf's seq.
    Present(HeadLeafProof),
    /// The target has no entry in the checkpoint.
    Absent {
        /// The leaf of the greatest target below it, if any.
        before: Option<HeadLeafProof>,
        /// The leaf of the least target above it, if any.
        after: Option<HeadLeafProof>,
    },
}

/// The header of a `log` frame: the first frame of an answer to a request with
/// `log-size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LogFrame {
    /// The checkpoint as a signed note: its text, a blank line, the release key's
    /// signature line and the cosignature lines the server holds for that text.
    pub checkpoint: String,
    /// The consistency proof from the request's `log-size` to the checkpoint's size
    /// (empty when they are equal or the request's is 0).
    pub consistency: Vec<LogHash>,
    /// For each of the client's targets, the proof of its head.
    pub heads: BTreeMap<Target, HeadProof>,
    /// Every rotation of the log's release key the checkpoint covers, in order, each
    /// with its inclusion proof (PROTOCOL.md section 8.3); absent when there is none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rotations: Vec<crate::rotate::RotationProof>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_proofs_have_one_json_shape() {
        let web = Target::parse("web-01").unwrap();
        let leaf = HeadLeafProof {
            target: web.clone(),
            seq: 13,
            index: 2,
            proof: vec![LogHash([7; 32])],
            withdrawn: vec![],
        };
        let present = HeadProof::Present(leaf.clone());
        let json = serde_json::to_string(&present).unwrap();
        assert_eq!(
            json,
            r#"{"present":{"target":"web-01","seq":13,"index":2,"proof":["BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="]}}"#
        );
        assert_eq!(serde_json::from_str::<HeadProof>(&json).unwrap(), present);
        let absent = HeadProof::Absent { before: Some(leaf), after: None };
        let json = serde_json::to_string(&absent).unwrap();
        assert_eq!(serde_json::from_str::<HeadProof>(&json).unwrap(), absent);
        assert!(
            serde_json::from_str::<HeadProof>(
                r#"{"present":{"target":"web-01","seq":1,"index":0,"proof":["AAAA"]}}"#
            )
            .is_err()
        );
    }
}
