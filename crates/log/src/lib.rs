//! fts-log: the append-only log of published statements (docs/PROTOCOL.md section 7).
//!
//! Pure code, no I/O: RFC 6962 hashing, an in-memory tree that gives roots and
//! proofs at any size ([`merkle`]), and the heads tree, which commits to each
//! target's newest seq ([`heads`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod heads;
pub mod merkle;

use sha2::{Digest, Sha256};

/// The commitment to a release key (PROTOCOL.md section 8.3): SHA-256 of
/// `fts-next-key-v1\n` and its 32 raw bytes.
pub fn next_key_commitment(key: &fts_proto::RawKey) -> fts_proto::FileHash {
    let mut hasher = Sha256::new();
    hasher.update(b"fts-next-key-v1\n");
    hasher.update(key.0);
    fts_proto::FileHash::from_digest(hasher.finalize().into())
}

/// The key id of a raw release key (PROTOCOL.md section 5): the first 8 bytes of its
/// SHA-256.
pub fn key_id_of(key: &fts_proto::RawKey) -> fts_proto::KeyId {
    let digest = Sha256::digest(key.0);
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&digest[..8]);
    fts_proto::KeyId::from_prefix(prefix)
}

/// The SHA-256 of a statement's bytes: what a withdrawal names (PROTOCOL.md
/// section 8.1).
pub fn statement_hash(statement: &fts_proto::Statement) -> fts_proto::FileHash {
    fts_proto::FileHash::from_digest(Sha256::digest(statement.to_bytes()).into())
}
