//! The signed entry ([`Entry`]) as the store keeps and serves it, and the [`Signer`]
//! a publisher signs with.
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

/// Signs statements with a release signing key.
///
/// fts-trust's [`SigningKey`](fts_trust::SigningKey) implements it; a trait rather
/// than that type so that other signers (a hardware token, an external signing
/// service) can publish too. Signing is infallible: a key that is loaded can sign.
pub trait Signer {
    /// The id of the key, as written in each entry's `key-id`.
    fn key_id(&self) -> KeyId;
    /// The signature over `statement.to_bytes()`.
    fn sign(&self, statement: &Statement) -> Signature;
}

impl<S: Signer + ?Sized> Signer for &S {
    fn key_id(&self) -> KeyId {
        (**self).key_id()
    }
    fn sign(&self, statement: &Statement) -> Signature {
        (**self).sign(statement)
    }
}

impl Signer for fts_trust::SigningKey {
    fn key_id(&self) -> KeyId {
        fts_trust::SigningKey::key_id(self)
    }
    fn sign(&self, statement: &Statement) -> Signature {
        fts_trust::SigningKey::sign(self, statement)
    }
}
