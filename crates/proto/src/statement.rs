//! The signed statement of PROTOCOL.md section 5: the exact bytes a release signing
//! key signs when a file is published and a host verifies before it installs.
//!
//! This module only builds the bytes; signing and verifying live in fts-trust. Every
//! field that decides what is installed, or where, is in the statement, so a server
//! that forwards it cannot change any of them without breaking the signature.

use crate::keys::{KeyId, Signature};
use crate::names::{FileHash, FileName, Published, Target};
use crate::seq::Seq;

/// The first line of every version-1 statement. A new signed field means a new tag.
pub const STATEMENT_TAG: &str = "fts-file-v1";

/// What a publisher vouches for: this content, under this name, for this target, at
/// this place in the target's sequence.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Statement {
    /// Who the file is published for.
    pub target: Target,
    /// The entry's place in the target's sequence: signed, so an entry cannot be replayed under another.
    pub seq: Seq,
    /// The name the file is installed under.
    pub file_name: FileName,
    /// The file's length in bytes.
    pub file_size: u64,
    /// The SHA-256 of the file's bytes.
    pub file_hash: FileHash,
    /// When it was published.
    pub published: Published,
}

/// Something that signs statements with a release signing key: fts-trust's
/// `SigningKey`, or another signer (a hardware token, an external signing service).
/// Defined here, beside the bytes it signs, so that the store can publish with any
/// signer without depending on the crate that holds the cryptography. Signing is
/// infallible: a key that is loaded can sign.
pub trait Signer {
    /// The id of the key, as written in each entry's `key-id`.
    fn key_id(&self) -> KeyId;
    /// The signature over `statement.to_bytes()`.
    fn sign(&self, statement: &Statement) -> Signature;
    /// The log's checkpoint as a signed note: its text, a blank line and this key's
    /// signature line (PROTOCOL.md section 7.2).
    fn sign_checkpoint(&self, checkpoint: &crate::checkpoint::Checkpoint) -> String;
    /// The signature over `withdrawal.to_bytes()` (PROTOCOL.md section 8.1).
    fn sign_withdrawal(&self, withdrawal: &crate::withdraw::WithdrawStatement) -> Signature;
}

impl<S: Signer + ?Sized> Signer for &S {
    fn key_id(&self) -> KeyId {
        (**self).key_id()
    }
    fn sign(&self, statement: &Statement) -> Signature {
        (**self).sign(statement)
    }
    fn sign_checkpoint(&self, checkpoint: &crate::checkpoint::Checkpoint) -> String {
        (**self).sign_checkpoint(checkpoint)
    }
    fn sign_withdrawal(&self, withdrawal: &crate::withdraw::WithdrawStatement) -> Signature {
        (**self).sign_withdrawal(withdrawal)
    }
}

impl Statement {
    /// The bytes that are signed: the tag and the six fields, one per line, each line
    /// ended by `\n`, integers in decimal without leading zeros.
    pub fn to_bytes(&self) -> Vec<u8> {
        format!(
            "{STATEMENT_TAG}\n{}\n{}\n{}\n{}\n{}\n{}\n",
            self.target, self.seq, self.file_name, self.file_size, self.file_hash, self.published
        )
        .into_bytes()
    }
}
