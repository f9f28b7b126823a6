//! The signed entry ([`Entry`]) as the store keeps and serves it. A publisher signs
//! with any [`fts_proto::Signer`].
//!
//! An entry is the statement of PROTOCOL.md section 5 plus the key id and signature
//! that make it verifiable, and its place in the store's global publish order. The
//! store never checks signatures (it holds no trusted keys); hosts do.

use fts_proto::{KeyId, Signature, Statement, WithdrawStatement, signed_leaf};

/// One signed entry: what a `file` frame carries, plus where it sits in the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Its leaf index in the log: the place in the store's global publish order, from
    /// 0, counting withdrawals. Entries of one publish are consecutive, in the order
    /// their targets were given.
    pub position: u64,
    /// The signed fields: target, seq, file name, size, hash, published time.
    pub statement: Statement,
    /// The key that signed [`Entry::signature`].
    pub key_id: KeyId,
    /// Ed25519 over `statement.to_bytes()`.
    pub signature: Signature,
}

impl Entry {
    /// Its log leaf: the statement's bytes, then its `key-id` and `signature` lines.
    pub fn leaf(&self) -> Vec<u8> {
        signed_leaf(&self.statement.to_bytes(), &self.key_id, &self.signature)
    }
}

/// One signed withdrawal (docs/PROTOCOL.md section 8.1), with its place in the log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WithdrawalEntry {
    /// Its leaf index in the log.
    pub position: u64,
    /// What was signed.
    pub statement: WithdrawStatement,
    /// The key that signed it.
    pub key_id: KeyId,
    /// Ed25519 over `statement.to_bytes()`.
    pub signature: Signature,
}

impl WithdrawalEntry {
    /// Its log leaf: the statement's bytes, then its `key-id` and `signature` lines.
    pub fn leaf(&self) -> Vec<u8> {
        signed_leaf(&self.statement.to_bytes(), &self.key_id, &self.signature)
    }
}
