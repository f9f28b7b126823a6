//! Release signing keys (Ed25519) and the only way to get a [`Verified`] statement.
//!
//! Owns: generating a key, its files (PKCS#8 v1 `PRIVATE KEY` and SPKI `PUBLIC KEY`
//! PEM, PROTOCOL.md section 5), key ids, signing a [`Statement`], and the set of
//! public keys a host trusts ([`TrustedKeys`], several at once so keys can be rotated).
//! Does not own the statement bytes (fts-proto) nor what a host does with a verified
//! entry (fts-net).
//!
//! Verification is `verify_strict`: it rejects non-canonical signatures and
//! small-order keys, so a signature has one valid form. Keys with small order are
//! also refused when loaded. Secret bytes are never printed (`Debug` shows the key
//! id) and buffers that held them are zeroed on drop (best effort).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::path::Path;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use fts_proto::{KeyId, Signature, Statement, WithdrawStatement};
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, VerifyError};
use crate::files::{MAX_CREDENTIAL_FILE, Mode, read_bounded, write_atomic};
use crate::pem;
use crate::rotation::NextKey;

/// RFC 8410 PKCS#8 v1 prefix of an Ed25519 private key; the 32-byte seed follows.
const PKCS8_V1_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
/// RFC 8410 SubjectPublicKeyInfo prefix of an Ed25519 public key; the 32-byte key follows.
const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// A release signing key. Held only by whoever publishes; never by a server.
pub struct SigningKey {
    pub(crate) inner: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// A new key from 32 bytes of the operating system's random number generator.
    pub fn generate() -> Result<Self, Error> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(Error::Random)?;
        Ok(Self::from_seed(&seed))
    }

    /// The key whose RFC 8032 seed is `seed` (test vectors, known answers).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SigningKey { inner: ed25519_dalek::SigningKey::from_bytes(seed) }
    }

    /// The public half, to write to `signing.pub` for the hosts.
    pub fn public_key(&self) -> PublicKey {
        PublicKey { inner: self.inner.verifying_key() }
    }

    /// The id entries signed with this key carry (`key-id`).
    pub fn key_id(&self) -> KeyId {
        self.public_key().key_id()
    }

    /// Signs the bytes of PROTOCOL.md section 5 for `statement`.
    pub fn sign(&self, statement: &Statement) -> Signature {
        use ed25519_dalek::Signer as _;
        Signature::from_bytes(self.inner.sign(&statement.to_bytes()).to_bytes())
    }

    /// Signs the bytes of a withdrawal (PROTOCOL.md section 8.1).
    pub fn sign_withdrawal(&self, withdrawal: &WithdrawStatement) -> Signature {
        use ed25519_dalek::Signer as _;
        Signature::from_bytes(self.inner.sign(&withdrawal.to_bytes()).to_bytes())
    }

    /// PKCS#8 v1 DER (RFC 8410): the form `openssl pkey` 3.0 reads. ed25519-dalek's own
    /// encoder writes v2, which it refuses.
    pub fn to_pkcs8_v1_der(&self) -> Zeroizing<Vec<u8>> {
        let mut der = Zeroizing::new(Vec::with_capacity(48));
        der.extend_from_slice(&PKCS8_V1_PREFIX);
        der.extend_from_slice(self.inner.as_bytes());
        der
    }

    /// The PKCS#8 v1 DER in a `PRIVATE KEY` PEM block.
    pub fn to_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(pem::encode("PRIVATE KEY", &self.to_pkcs8_v1_der()))
    }

    /// Reads a `PRIVATE KEY` PEM text holding an Ed25519 key as PKCS#8 v1 or v2 (a v2
    /// key's embedded public key must match its seed). `path` is only for errors.
    pub fn from_pem(pem_text: &[u8], path: &Path) -> Result<Self, Error> {
        let der: PrivatePkcs8KeyDer<'static> = pem::exactly_one_block(pem_text, path, "PRIVATE KEY")?;
        let inner = ed25519_dalek::SigningKey::from_pkcs8_der(der.secret_pkcs8_der())
            // pkcs8's errors quote their own cause: its text is the leaf.
            .map_err(|e| Error::bad_file_because(path, "not an Ed25519 PKCS#8 private key", e.to_string()))?;
        Ok(SigningKey { inner })
    }

    /// Loads a signing key file (`fts publish --signing-key`).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = Zeroizing::new(read_bounded(path, MAX_CREDENTIAL_FILE)?);
        Self::from_pem(&text, path)
    }

    /// Writes the key as PKCS#8 v1 PEM with mode 0600, never over an existing file
    /// unless `force`.
    pub fn save(&self, path: &Path, force: bool) -> Result<(), Error> {
        write_atomic(path, self.to_pem().as_bytes(), Mode::Secret, force)
    }
}

/// What `fts publish` signs with (the store takes any [`fts_proto::Signer`]).
impl fts_proto::Signer for SigningKey {
    fn key_id(&self) -> KeyId {
        SigningKey::key_id(self)
    }
    fn sign(&self, statement: &Statement) -> Signature {
        SigningKey::sign(self, statement)
    }
    fn sign_checkpoint(&self, checkpoint: &fts_proto::checkpoint::Checkpoint) -> String {
        SigningKey::sign_checkpoint(self, checkpoint)
    }
    fn sign_withdrawal(&self, withdrawal: &WithdrawStatement) -> Signature {
        SigningKey::sign_withdrawal(self, withdrawal)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("key_id", &self.key_id()).finish_non_exhaustive()
    }
}

/// A release signing key's public half.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    pub(crate) inner: ed25519_dalek::VerifyingKey,
}

impl PublicKey {
    /// The raw 32-byte key (RFC 8032 encoding).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.inner.to_bytes()
    }

    /// First 8 bytes of SHA-256 over the raw 32-byte key (PROTOCOL.md section 5).
    pub fn key_id(&self) -> KeyId {
        let digest = Sha256::digest(self.inner.as_bytes());
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&digest[..8]);
        KeyId::from_prefix(prefix)
    }

    /// SubjectPublicKeyInfo DER (RFC 8410).
    pub fn to_spki_der(&self) -> Vec<u8> {
        let mut der = Vec::with_capacity(44);
        der.extend_from_slice(&SPKI_PREFIX);
        der.extend_from_slice(self.inner.as_bytes());
        der
    }

    /// The SPKI DER in a `PUBLIC KEY` PEM block.
    pub fn to_pem(&self) -> String {
        pem::encode("PUBLIC KEY", &self.to_spki_der())
    }

    /// Reads a `PUBLIC KEY` PEM text holding one Ed25519 key. Small-order (weak) keys
    /// are refused: no honest key is one. `path` is only for errors.
    pub fn from_pem(pem_text: &[u8], path: &Path) -> Result<Self, Error> {
        let der: SubjectPublicKeyInfoDer<'static> = pem::exactly_one_block(pem_text, path, "PUBLIC KEY")?;
        let inner = ed25519_dalek::VerifyingKey::from_public_key_der(der.as_ref())
            // spki's errors quote their own cause: its text is the leaf.
            .map_err(|e| Error::bad_file_because(path, "not an Ed25519 public key", e.to_string()))?;
        if inner.is_weak() {
            return Err(Error::bad_file(path, "Ed25519 public key of small order: refused as weak"));
        }
        Ok(PublicKey { inner })
    }

    /// Loads a public key file (`fts poll --trust`).
    pub fn load(path: &Path) -> Result<Self, Error> {
        Self::from_pem(&read_bounded(path, MAX_CREDENTIAL_FILE)?, path)
    }

    /// Writes the key as SPKI PEM (mode 0644), never over an existing file unless `force`.
    pub fn save(&self, path: &Path, force: bool) -> Result<(), Error> {
        write_atomic(path, self.to_pem().as_bytes(), Mode::Public, force)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

/// The release keys a host trusts, by key id. Several at once, so a new key can be
/// trusted before the old one stops signing.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<KeyId, PublicKey>,
    /// Per key whose trust file carries one, the commitment to its next key
    /// ([`crate::rotation`]).
    next_keys: BTreeMap<KeyId, NextKey>,
}

impl TrustedKeys {
    /// Loads every file in `paths` (one public key each). At least one is required.
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<Self, Error> {
        if paths.is_empty() {
            return Err(Error::NoTrustedKeys);
        }
        let mut trusted = TrustedKeys::default();
        for path in paths {
            let path = path.as_ref();
            let text = read_bounded(path, MAX_CREDENTIAL_FILE)?;
            let key = PublicKey::from_pem(&text, path)?;
            trusted.insert(key, path)?;
            if let Some(next) = NextKey::from_text(&text, path)? {
                trusted.next_keys.insert(key.key_id(), next);
            }
        }
        Ok(trusted)
    }

    /// Adds a key. The same key twice is harmless; a different key with the same id
    /// is refused (`path` names where it came from), since ids must be unambiguous.
    pub fn insert(&mut self, key: PublicKey, path: &Path) -> Result<(), Error> {
        let key_id = key.key_id();
        match self.keys.get(&key_id) {
            Some(existing) if *existing != key => {
                Err(Error::KeyIdCollision { path: path.to_owned(), key_id })
            }
            _ => {
                self.keys.insert(key_id, key);
                Ok(())
            }
        }
    }

    /// Adds a key with its commitment to the next (a key ring's active keys).
    pub(crate) fn insert_with_next(&mut self, key: PublicKey, next: Option<NextKey>) {
        self.keys.insert(key.key_id(), key);
        if let Some(next) = next {
            self.next_keys.insert(key.key_id(), next);
        }
    }

    /// The commitment to the next key of the trusted key `id`, if its trust file
    /// holds one.
    pub fn next_key(&self, id: &KeyId) -> Option<NextKey> {
        self.next_keys.get(id).copied()
    }

    /// The ids of the trusted keys, for logs and `fts status`.
    pub fn key_ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.keys().copied()
    }

    /// Each trusted key with its id, in id order (checkpoint notes, [`crate::note`]).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (KeyId, &PublicKey)> + '_ {
        self.keys.iter().map(|(id, key)| (*id, key))
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is trusted (a loaded set never is).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks that `signature` is a valid strict Ed25519 signature by the trusted key
    /// `key_id` over `statement`'s bytes, and only then hands the statement back as
    /// [`Verified`].
    pub fn verify(
        &self,
        statement: Statement,
        key_id: &KeyId,
        signature: &Signature,
    ) -> Result<Verified<Statement>, VerifyError> {
        let key = self.keys.get(key_id).ok_or(VerifyError::UntrustedKey { key_id: *key_id })?;
        let signature = ed25519_dalek::Signature::from_bytes(signature.bytes());
        key.inner
            .verify_strict(&statement.to_bytes(), &signature)
            .map_err(|_| VerifyError::BadSignature { key_id: *key_id })?;
        Ok(Verified { value: statement, key_id: *key_id })
    }

    /// Checks a withdrawal's signature like [`TrustedKeys::verify`] checks an
    /// entry's: by a trusted key, strict Ed25519, over its bytes.
    pub fn verify_withdrawal(
        &self,
        withdrawal: WithdrawStatement,
        key_id: &KeyId,
        signature: &Signature,
    ) -> Result<Verified<WithdrawStatement>, VerifyError> {
        let key = self.keys.get(key_id).ok_or(VerifyError::UntrustedKey { key_id: *key_id })?;
        let signature = ed25519_dalek::Signature::from_bytes(signature.bytes());
        key.inner
            .verify_strict(&withdrawal.to_bytes(), &signature)
            .map_err(|_| VerifyError::BadSignature { key_id: *key_id })?;
        Ok(Verified { value: withdrawal, key_id: *key_id })
    }
}

impl<T> Verified<T> {
    /// Only this crate's checks make one.
    pub(crate) fn new(value: T, key_id: KeyId) -> Self {
        Verified { value, key_id }
    }
}

/// A value whose signature by a trusted key has been checked. Only
/// [`TrustedKeys::verify`] can make one, so code that takes a `Verified<Statement>`
/// cannot be handed an unchecked statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<T> {
    value: T,
    key_id: KeyId,
}

impl<T> Verified<T> {
    /// The id of the trusted key whose signature was checked (for logs).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The checked value, for code that no longer needs the proof that it was checked.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> AsRef<T> for Verified<T> {
    fn as_ref(&self) -> &T {
        &self.value
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    use fts_proto::{FileHash, FileName, Published, Target};
    use serde_json::Value;

    use super::*;

    const VECTORS: &str = include_str!("../../proto/tests/data/statement-v1.json");

    fn vectors() -> Value {
        serde_json::from_str(VECTORS).unwrap()
    }

    fn statement(fields: &Value) -> Statement {
        let s = |k: &str| fields[k].as_str().unwrap();
        Statement {
            target: Target::parse(s("target")).unwrap(),
            seq: fts_proto::Seq::new(fields["seq"].as_u64().unwrap()).unwrap(),
            file_name: FileName::parse(s("file-name")).unwrap(),
            file_size: fields["file-size"].as_u64().unwrap(),
            file_hash: FileHash::parse(s("file-hash")).unwrap(),
            published: Published::parse(s("published")).unwrap(),
        }
    }

    fn vector_key(v: &Value) -> SigningKey {
        let seed: [u8; 32] =
            hex::decode(v["private_key_seed_hex"].as_str().unwrap()).unwrap().try_into().unwrap();
        SigningKey::from_seed(&seed)
    }

    fn trusting(key: &SigningKey) -> TrustedKeys {
        let mut trusted = TrustedKeys::default();
        trusted.insert(key.public_key(), Path::new("test")).unwrap();
        trusted
    }

    #[test]
    fn signing_the_vectors_gives_exactly_their_signatures() {
        let v = vectors();
        let key = vector_key(&v);
        let trusted = trusting(&key);
        for case in v["cases"].as_array().unwrap() {
            let st = statement(&case["fields"]);
            assert_eq!(hex::encode(st.to_bytes()), case["statement_hex"].as_str().unwrap());
            let sig = key.sign(&st);
            assert_eq!(sig.to_string(), case["signature"].as_str().unwrap());
            let verified = trusted.verify(st.clone(), &key.key_id(), &sig).unwrap();
            assert_eq!(*verified, st);
            assert_eq!(verified.key_id(), key.key_id());
        }
    }

    #[test]
    fn key_id_and_public_key_pem_match_the_vectors() {
        let v = vectors();
        let key = vector_key(&v);
        assert_eq!(key.key_id().to_string(), v["key_id"].as_str().unwrap());
        assert_eq!(hex::encode(key.public_key().to_bytes()), v["public_key_raw_hex"].as_str().unwrap());
        assert_eq!(key.public_key().to_pem(), v["public_key_pem"].as_str().unwrap());
        let parsed =
            PublicKey::from_pem(v["public_key_pem"].as_str().unwrap().as_bytes(), Path::new("x")).unwrap();
        assert_eq!(parsed, key.public_key());
    }

    #[test]
    fn the_vector_pkcs8_v1_der_loads_and_is_what_we_write() {
        let v = vectors();
        let der = hex::decode(v["private_key_pkcs8_v1_der_hex"].as_str().unwrap()).unwrap();
        let pem_text = pem::encode("PRIVATE KEY", &der);
        let loaded = SigningKey::from_pem(pem_text.as_bytes(), Path::new("x")).unwrap();
        assert_eq!(loaded.key_id(), vector_key(&v).key_id());
        assert_eq!(*vector_key(&v).to_pkcs8_v1_der(), der);
        assert_eq!(vector_key(&v).to_pem().as_str(), pem_text);
    }

    #[test]
    fn pkcs8_v2_keys_from_ed25519_dalek_load() {
        let key = SigningKey::generate().unwrap();
        let v2 = key.inner.to_pkcs8_pem(Default::default()).unwrap();
        assert!(v2.contains("PRIVATE KEY"));
        let loaded = SigningKey::from_pem(v2.as_bytes(), Path::new("v2.key")).unwrap();
        assert_eq!(loaded.key_id(), key.key_id());
    }

    #[test]
    fn every_negative_vector_fails_to_verify() {
        let v = vectors();
        let key = vector_key(&v);
        let trusted = trusting(&key);
        for case in v["negative_cases"].as_array().unwrap() {
            let sig = Signature::parse(case["signature"].as_str().unwrap()).unwrap();
            let err = trusted.verify(statement(&case["fields"]), &key.key_id(), &sig).unwrap_err();
            assert_eq!(err, VerifyError::BadSignature { key_id: key.key_id() }, "{}", case["why"]);
        }
    }

    #[test]
    fn a_signature_by_an_untrusted_key_is_untrusted_not_bad() {
        let v = vectors();
        let case = &v["cases"][0];
        let other = SigningKey::generate().unwrap();
        let trusted = trusting(&other);
        let sig = Signature::parse(case["signature"].as_str().unwrap()).unwrap();
        let id = KeyId::parse(v["key_id"].as_str().unwrap()).unwrap();
        let err = trusted.verify(statement(&case["fields"]), &id, &sig).unwrap_err();
        assert_eq!(err, VerifyError::UntrustedKey { key_id: id });
    }

    #[test]
    fn several_keys_can_be_trusted_at_once_for_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (SigningKey::generate().unwrap(), SigningKey::generate().unwrap());
        let (old_path, new_path) = (dir.path().join("old.pub"), dir.path().join("new.pub"));
        old.public_key().save(&old_path, false).unwrap();
        new.public_key().save(&new_path, false).unwrap();
        let trusted = TrustedKeys::load(&[&old_path, &new_path]).unwrap();
        assert_eq!(trusted.len(), 2);
        let st = statement(&vectors()["cases"][1]["fields"]);
        for key in [&old, &new] {
            assert!(trusted.verify(st.clone(), &key.key_id(), &key.sign(&st)).is_ok());
        }
        assert!(matches!(TrustedKeys::load::<&Path>(&[]), Err(Error::NoTrustedKeys)));
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let v = vectors();
        let shown = format!("{:?}", vector_key(&v));
        assert!(shown.contains(v["key_id"].as_str().unwrap()), "{shown}");
        let seed = v["private_key_seed_hex"].as_str().unwrap();
        assert!(!shown.contains(seed) && !shown.contains(&seed[..8]), "{shown}");
    }

    #[test]
    fn key_files_that_are_not_ed25519_keys_are_refused_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        std::fs::write(&path, pem::encode("PRIVATE KEY", b"\x30\x03\x02\x01\x00")).unwrap();
        let err = SigningKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("signing.key"), "{err}");
        std::fs::write(&path, "").unwrap();
        assert!(SigningKey::load(&path).is_err());
        let key = SigningKey::generate().unwrap();
        let two = format!("{}{}", key.to_pem().as_str(), key.to_pem().as_str());
        std::fs::write(&path, two).unwrap();
        let err = SigningKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("exactly one"), "{err}");
    }

    /// Runs `/usr/bin/openssl` when present. Missing: a failure under CI, a skip otherwise.
    fn openssl() -> Option<std::process::Command> {
        let path = Path::new("/usr/bin/openssl");
        if path.exists() {
            return Some(std::process::Command::new(path));
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "openssl is required under CI but /usr/bin/openssl is missing"
        );
        eprintln!("skipping: /usr/bin/openssl not found");
        None
    }

    #[test]
    fn openssl_reads_the_key_files_we_write() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate().unwrap();
        let (key_path, pub_path) = (dir.path().join("signing.key"), dir.path().join("signing.pub"));
        key.save(&key_path, false).unwrap();
        key.public_key().save(&pub_path, false).unwrap();
        let Some(mut cmd) = openssl() else { return };
        let out = cmd.args(["pkey", "-noout", "-in"]).arg(&key_path).output().unwrap();
        assert!(out.status.success(), "openssl pkey: {}", String::from_utf8_lossy(&out.stderr));
        let Some(mut cmd) = openssl() else { return };
        let out = cmd.args(["pkey", "-pubin", "-noout", "-in"]).arg(&pub_path).output().unwrap();
        assert!(out.status.success(), "openssl pkey -pubin: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(SigningKey::load(&key_path).unwrap().key_id(), key.key_id());
        assert_eq!(PublicKey::load(&pub_path).unwrap(), key.public_key());
    }
}
