//! The signed entry ([`Entry`]) as the store keeps and serves it. A publisher signs
//! with any [`fts_proto::Signer`].
//!
//! An entry is the statement of PROTOCOL.md section 5 plus the key id and signature
//! that make it verifiable, and its place in the store's global publish order. The
//! store never checks signatures (it holds no trusted keys); hosts do.

use fts_proto::{KeyId, Signature, Statement};

/// One signed entry: what a `file` frame carries, plus where it sits in the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Place in the store's global publish order, from 0. Entries of one publish are
    /// consecutive, in the order their targets were given.
    pub position: u64,
    /// The signed fields: target, seq, file name, size, hash, published time.
    pub statement: Statement,
    /// The key that signed [`Entry::signature`].
    pub key_id: KeyId,
    /// Ed25519 over `statement.to_bytes()`.
    pub signature: Signature,
}
