//! Signatures over the log's checkpoints, as C2SP signed notes: the release key's
//! signature (C2SP signed-note Ed25519, [`NOTE_ED25519`]) and the timestamp signer's
//! cosignatures ([`COSIGNATURE_V1`]), and the only ways to get a checkpoint whose
//! signature was checked ([`verify_checkpoint`], [`verify_checkpoint_any_origin`]).
//!
//! Owns: key hints, signing and verifying notes, the timestamp key ([`TimestampKey`],
//! [`TimestampPublic`]) and its files. Does not own the text formats (fts-proto's
//! [`fts_proto::checkpoint`]) nor the Merkle rules (fts-log).
//!
//! The release key signs a checkpoint under the key name of its origin; a host's
//! release keys are the [`TrustedKeys`] it verifies statements with. The timestamp
//! key's name is `fts-timestamp/{key id}`, derived from its public key, so a host
//! needs only `timestamp.pub`; an origin can never start with `fts-`, so the two
//! names never meet. A line is the work of a known key only when both its name and
//! its 4-byte hint match (C2SP signed-note); other lines are ignored, a known key's
//! line that fails refuses the whole note. Verification is `verify_strict`.
//!
//! A cosignature signs the whole checkpoint text, as C2SP tlog-cosignature v1 has it
//! ([`fts_proto::cosignature_message`]), so it is bound to one exact text; what the
//! cosigner vouches for is the first three lines (origin, size, root), and the
//! `fts-heads` line is the release key's word alone.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use ed25519_dalek::Signer as _;
use fts_proto::{Checkpoint, KeyId, Note, NoteSignature, Origin, cosignature_message};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::signing::{PublicKey, SigningKey, TrustedKeys};

/// The C2SP signed-note signature type of Ed25519 note signatures.
pub const NOTE_ED25519: u8 = 0x01;
/// The C2SP signature type of timestamped Ed25519 cosignatures (tlog-cosignature).
pub const COSIGNATURE_V1: u8 = 0x04;
/// What every timestamp key's note name starts with; its key id follows.
pub const TIMESTAMP_NAME_PREFIX: &str = "fts-timestamp/";

/// The C2SP key hint (key ID): `SHA-256(name || 0x0A || alg || public key)[..4]`.
pub fn key_hint(name: &str, alg: u8, public: &[u8; 32]) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', alg]);
    hasher.update(public);
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

impl SigningKey {
    /// The checkpoint as a signed note under the key name of its origin: its text,
    /// a blank line, and `— {origin} base64(hint || signature)\n`, the signature being
    /// Ed25519 over the text.
    pub fn sign_checkpoint(&self, checkpoint: &Checkpoint) -> String {
        let text = checkpoint.text();
        let name = checkpoint.origin.as_str();
        let public = self.public_key().to_bytes();
        let line = NoteSignature {
            name: name.to_owned(),
            key_hint: key_hint(name, NOTE_ED25519, &public),
            signature: self.inner.sign(text.as_bytes()).to_bytes().to_vec(),
        };
        Note { text, signatures: vec![line] }.render()
    }
}

/// A checkpoint whose note carries a valid signature by a trusted release key. Only
/// [`verify_checkpoint`] and [`verify_checkpoint_any_origin`] make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    /// The checkpoint, read from the note's text.
    pub checkpoint: Checkpoint,
    /// The whole note, its cosignature lines included (unchecked: see
    /// [`verify_cosignatures`]).
    pub note: Note,
    /// The trusted release key whose signature verified (the first one, if several).
    pub key_id: KeyId,
}

/// Parses `note` strictly and its text as a [`Checkpoint`] for the log `origin`,
/// and checks it is signed by one of `keys`. The signature lines named `origin` whose
/// hint is a trusted key's must each verify (`verify_strict`) over the text, or the
/// whole note is refused; other lines (cosignatures, unknown keys) are ignored; at
/// least one must verify.
pub fn verify_checkpoint(
    note: &str,
    origin: &Origin,
    keys: &TrustedKeys,
) -> Result<VerifiedCheckpoint, Error> {
    let (note, checkpoint) = parse(note)?;
    if checkpoint.origin != *origin {
        return Err(Error::WrongOrigin { expected: origin.clone(), found: checkpoint.origin });
    }
    verify(note, checkpoint, keys)
}

/// [`verify_checkpoint`] without an origin to pin (a host's first checkpoint, the
/// timestamp signer): the origin is the one the text names.
pub fn verify_checkpoint_any_origin(note: &str, keys: &TrustedKeys) -> Result<VerifiedCheckpoint, Error> {
    let (note, checkpoint) = parse(note)?;
    verify(note, checkpoint, keys)
}

fn parse(note: &str) -> Result<(Note, Checkpoint), Error> {
    let note = Note::parse(note)?;
    let checkpoint = Checkpoint::parse_text(&note.text)?;
    Ok((note, checkpoint))
}

fn verify(note: Note, checkpoint: Checkpoint, keys: &TrustedKeys) -> Result<VerifiedCheckpoint, Error> {
    let name = checkpoint.origin.as_str();
    let known: Vec<([u8; 4], KeyId, &PublicKey)> =
        keys.iter().map(|(id, key)| (key_hint(name, NOTE_ED25519, &key.to_bytes()), id, key)).collect();
    let mut verified = None;
    for line in note.signatures.iter().filter(|line| line.name == name) {
        // Hints are 4 bytes: two trusted keys may share one, and the line is good if
        // either key's signature it is.
        let mut candidates = known.iter().filter(|(hint, _, _)| *hint == line.key_hint).peekable();
        let Some(&(_, first_id, _)) = candidates.peek() else { continue };
        let good = candidates.find(|(_, _, key)| {
            <[u8; 64]>::try_from(line.signature.as_slice()).is_ok_and(|sig| {
                key.inner
                    .verify_strict(note.text.as_bytes(), &ed25519_dalek::Signature::from_bytes(&sig))
                    .is_ok()
            })
        });
        match good {
            Some(&(_, id, _)) => {
                verified.get_or_insert(id);
            }
            None => {
                return Err(Error::CheckpointSignature { origin: checkpoint.origin, key_id: *first_id });
            }
        }
    }
    match verified {
        Some(key_id) => Ok(VerifiedCheckpoint { checkpoint, note, key_id }),
        None => Err(Error::CheckpointNotSigned { origin: checkpoint.origin }),
    }
}

/// The timestamp signer's private key: Ed25519, a type of its own so it is never
/// taken for a release key. `timestamp.key` (PKCS#8 v1 PEM, mode 0600) on the
/// timestamp machine only.
pub struct TimestampKey {
    inner: SigningKey,
}

impl TimestampKey {
    /// A new key from the operating system's random number generator.
    pub fn generate() -> Result<Self, Error> {
        Ok(TimestampKey { inner: SigningKey::generate()? })
    }

    /// The key whose RFC 8032 seed is `seed` (test vectors).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        TimestampKey { inner: SigningKey::from_seed(seed) }
    }

    /// Loads `timestamp.key` (the same PEM rules as a release key file).
    pub fn load(path: &Path) -> Result<Self, Error> {
        Ok(TimestampKey { inner: SigningKey::load(path)? })
    }

    /// Writes the key as PKCS#8 v1 PEM with mode 0600, never over an existing file
    /// unless `force`.
    pub fn save(&self, path: &Path, force: bool) -> Result<(), Error> {
        self.inner.save(path, force)
    }

    /// The public half, for `timestamp.pub`.
    pub fn public(&self) -> TimestampPublic {
        TimestampPublic::new(self.inner.public_key())
    }

    /// The key's note name, `fts-timestamp/{key id}`.
    pub fn name(&self) -> String {
        self.public().name().to_owned()
    }

    /// The key's id (the first 8 bytes of SHA-256 over the public key).
    pub fn key_id(&self) -> KeyId {
        self.inner.key_id()
    }

    /// The cosignature line over `checkpoint` at `time` (unix seconds, at most
    /// 2^63 - 1 for a verifier to accept it): `— {name} base64(hint || time as u64
    /// big-endian || signature)`, the signature being Ed25519 over
    /// [`cosignature_message`]`(time, checkpoint)`.
    pub fn cosign(&self, checkpoint: &Checkpoint, time: u64) -> NoteSignature {
        let public = self.public();
        let mut signature = Vec::with_capacity(72);
        signature.extend_from_slice(&time.to_be_bytes());
        signature
            .extend_from_slice(&self.inner.inner.sign(&cosignature_message(time, checkpoint)).to_bytes());
        NoteSignature { name: public.name, key_hint: public.hint, signature }
    }
}

impl fmt::Debug for TimestampKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimestampKey").field("key_id", &self.key_id()).finish_non_exhaustive()
    }
}

/// The timestamp signer's public key, `timestamp.pub` (SPKI PEM), which every host
/// is given (`fts poll --timestamp-key`). Its name and hint are derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampPublic {
    key: PublicKey,
    name: String,
    hint: [u8; 4],
}

impl TimestampPublic {
    fn new(key: PublicKey) -> Self {
        let name = format!("{TIMESTAMP_NAME_PREFIX}{}", key.key_id());
        let hint = key_hint(&name, COSIGNATURE_V1, &key.to_bytes());
        TimestampPublic { key, name, hint }
    }

    /// Reads a `PUBLIC KEY` PEM text holding one Ed25519 key (small-order keys are
    /// refused). `path` is only for errors.
    pub fn from_pem(pem_text: &[u8], path: &Path) -> Result<Self, Error> {
        PublicKey::from_pem(pem_text, path).map(Self::new)
    }

    /// The key as SPKI PEM, what `timestamp.pub` holds.
    pub fn to_pem(&self) -> String {
        self.key.to_pem()
    }

    /// Loads `timestamp.pub`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        PublicKey::load(path).map(Self::new)
    }

    /// Writes the key as SPKI PEM (mode 0644), never over an existing file unless
    /// `force`.
    pub fn save(&self, path: &Path, force: bool) -> Result<(), Error> {
        self.key.save(path, force)
    }

    /// The key's note name, `fts-timestamp/{key id}`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key's id.
    pub fn key_id(&self) -> KeyId {
        self.key.key_id()
    }

    /// The key hint its cosignature lines carry.
    pub fn key_hint(&self) -> [u8; 4] {
        self.hint
    }
}

/// A timestamp cosignature that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    /// The timestamp key's id.
    pub key_id: KeyId,
    /// Its note name.
    pub name: String,
    /// The time it vouches for the checkpoint at (unix seconds).
    pub time: u64,
}

/// The cosignatures of `note` by `keys` over `checkpoint`: each line whose name and
/// hint are one of `keys` must hold a time (at most 2^63 - 1) and a signature that
/// verifies over [`cosignature_message`] (the whole checkpoint text), or the whole
/// note is refused. Other lines are ignored. At most one per key,
/// in the order of `keys`: the newest time when a key has several lines.
pub fn verify_cosignatures(
    note: &Note,
    checkpoint: &Checkpoint,
    keys: &[TimestampPublic],
) -> Result<Vec<Cosigned>, Error> {
    let mut newest: BTreeMap<KeyId, u64> = BTreeMap::new();
    for line in &note.signatures {
        for key in keys.iter().filter(|k| k.name == line.name && k.hint == line.key_hint) {
            let bad = |why| Error::Cosignature { name: key.name.clone(), why };
            let (time, signature) = line
                .signature
                .split_first_chunk::<8>()
                .ok_or_else(|| bad("shorter than a time and a signature"))?;
            let signature =
                <[u8; 64]>::try_from(signature).map_err(|_| bad("not a time and a 64-byte signature"))?;
            let time = u64::from_be_bytes(*time);
            if time > i64::MAX as u64 {
                return Err(bad("its time is above 2^63 - 1"));
            }
            key.key
                .inner
                .verify_strict(
                    &cosignature_message(time, checkpoint),
                    &ed25519_dalek::Signature::from_bytes(&signature),
                )
                .map_err(|_| bad("bad signature"))?;
            let entry = newest.entry(key.key_id()).or_insert(time);
            *entry = (*entry).max(time);
        }
    }
    let mut out = Vec::with_capacity(newest.len());
    for key in keys {
        if let Some(time) = newest.remove(&key.key_id()) {
            out.push(Cosigned { key_id: key.key_id(), name: key.name.clone(), time });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use fts_proto::LogHash;

    use super::*;

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: Origin::parse("fts.example/test").unwrap(),
            size: 3,
            root: LogHash([1; 32]),
            heads_count: 2,
            heads_root: LogHash([2; 32]),
        }
    }

    fn origin() -> Origin {
        checkpoint().origin
    }

    fn trusting(keys: &[&SigningKey]) -> TrustedKeys {
        let mut trusted = TrustedKeys::default();
        for key in keys {
            trusted.insert(key.public_key(), Path::new("test")).unwrap();
        }
        trusted
    }

    /// The note with `line` added after its signature lines.
    fn with_line(note: &str, line: &str) -> String {
        format!("{note}{line}\n")
    }

    #[test]
    fn a_signed_checkpoint_verifies() {
        let key = SigningKey::generate().unwrap();
        let note = key.sign_checkpoint(&checkpoint());
        assert!(note.starts_with(&format!("{}\n\u{2014} fts.example/test ", checkpoint().text())), "{note}");
        let verified = verify_checkpoint(&note, &origin(), &trusting(&[&key])).unwrap();
        assert_eq!(verified.checkpoint, checkpoint());
        assert_eq!(verified.key_id, key.key_id());
        assert_eq!(verified.note.render(), note);
        let any = verify_checkpoint_any_origin(&note, &trusting(&[&key])).unwrap();
        assert_eq!(any, verified);
        // Rotation: any trusted key will do.
        let other = SigningKey::generate().unwrap();
        assert!(verify_checkpoint(&note, &origin(), &trusting(&[&other, &key])).is_ok());
    }

    #[test]
    fn a_checkpoint_by_an_untrusted_key_is_refused() {
        let (key, other) = (SigningKey::generate().unwrap(), SigningKey::generate().unwrap());
        let note = key.sign_checkpoint(&checkpoint());
        let err = verify_checkpoint(&note, &origin(), &trusting(&[&other])).unwrap_err();
        assert!(matches!(err, Error::CheckpointNotSigned { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "the checkpoint of log fts.example/test is not signed by a trusted release key"
        );
        assert!(verify_checkpoint_any_origin(&note, &trusting(&[&other])).is_err());
    }

    #[test]
    fn one_flipped_bit_in_the_text_or_the_signature_is_refused() {
        let key = SigningKey::generate().unwrap();
        let trusted = trusting(&[&key]);
        let note = key.sign_checkpoint(&checkpoint());
        // The text: another size, still a well-formed checkpoint.
        let altered = note.replacen("\n3\n", "\n2\n", 1);
        let err = verify_checkpoint(&altered, &origin(), &trusted).unwrap_err();
        assert!(matches!(err, Error::CheckpointSignature { key_id, .. } if key_id == key.key_id()), "{err}");
        // The signature: one bit of its last byte.
        let mut parsed = Note::parse(&note).unwrap();
        parsed.signatures[0].signature[10] ^= 1;
        let err = verify_checkpoint(&parsed.render(), &origin(), &trusted).unwrap_err();
        assert!(matches!(err, Error::CheckpointSignature { .. }), "{err}");
        // A hint that matches no key: the line is unknown, so the note is unsigned.
        let mut parsed = Note::parse(&note).unwrap();
        parsed.signatures[0].key_hint[0] ^= 1;
        let err = verify_checkpoint(&parsed.render(), &origin(), &trusted).unwrap_err();
        assert!(matches!(err, Error::CheckpointNotSigned { .. }), "{err}");
        // A known key's line with a signature of the wrong length.
        let mut parsed = Note::parse(&note).unwrap();
        parsed.signatures[0].signature.pop();
        let err = verify_checkpoint(&parsed.render(), &origin(), &trusted).unwrap_err();
        assert!(matches!(err, Error::CheckpointSignature { .. }), "{err}");
    }

    #[test]
    fn unknown_lines_are_ignored_and_a_failing_known_line_refuses_the_note() {
        let (key, other) = (SigningKey::generate().unwrap(), SigningKey::generate().unwrap());
        let trusted = trusting(&[&key]);
        let note = key.sign_checkpoint(&checkpoint());
        let unknown = Note::parse(&other.sign_checkpoint(&checkpoint())).unwrap().signatures[0].line();
        let witness = "\u{2014} witness.example/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==";
        let extra = with_line(&with_line(&note, &unknown), witness);
        assert_eq!(verify_checkpoint(&extra, &origin(), &trusted).unwrap().note.signatures.len(), 3);

        // The trusted key's hint under its own name, with a signature that fails.
        let mut forged = Note::parse(&note).unwrap().signatures[0].clone();
        forged.signature = vec![0; 64];
        let err = verify_checkpoint(&with_line(&note, &forged.line()), &origin(), &trusted).unwrap_err();
        assert!(matches!(err, Error::CheckpointSignature { .. }), "{err}");
    }

    #[test]
    fn a_note_with_17_signature_lines_is_refused() {
        let key = SigningKey::generate().unwrap();
        let note = key.sign_checkpoint(&checkpoint());
        let line = Note::parse(&note).unwrap().signatures[0].line();
        let mut sixteen = note.clone();
        for _ in 1..16 {
            sixteen = with_line(&sixteen, &line);
        }
        assert!(verify_checkpoint(&sixteen, &origin(), &trusting(&[&key])).is_ok());
        let err = verify_checkpoint(&with_line(&sixteen, &line), &origin(), &trusting(&[&key])).unwrap_err();
        assert!(matches!(err, Error::Note(fts_proto::NoteError::TooManySignatures)), "{err}");
    }

    #[test]
    fn a_checkpoint_of_another_log_is_refused() {
        let key = SigningKey::generate().unwrap();
        let note = key.sign_checkpoint(&checkpoint());
        let err = verify_checkpoint(&note, &Origin::parse("fts.example/prod").unwrap(), &trusting(&[&key]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the checkpoint is for log fts.example/test, not fts.example/prod: refused"
        );
        let err = verify_checkpoint("not a note", &origin(), &trusting(&[&key])).unwrap_err();
        assert!(matches!(err, Error::Note(_)), "{err}");
    }

    #[test]
    fn a_cosignature_is_bound_to_the_whole_checkpoint_text() {
        let ts = TimestampKey::from_seed(&[0x42; 32]);
        let keys = [ts.public()];
        let cp = checkpoint();
        let line = ts.cosign(&cp, 1764090060);
        assert_eq!(line.name, format!("fts-timestamp/{}", ts.key_id()));
        assert_eq!(line.signature.len(), 72);
        let note = Note { text: cp.text(), signatures: vec![line.clone()] };
        let got = verify_cosignatures(&note, &cp, &keys).unwrap();
        assert_eq!(got, vec![Cosigned { key_id: ts.key_id(), name: ts.name(), time: 1764090060 }]);

        for changed in [
            Checkpoint { heads_count: 9, heads_root: LogHash([9; 32]), ..cp.clone() },
            Checkpoint { size: 4, ..cp.clone() },
            Checkpoint { root: LogHash([7; 32]), ..cp.clone() },
            Checkpoint { origin: Origin::parse("fts.example/prod").unwrap(), ..cp.clone() },
        ] {
            let err = verify_cosignatures(&note, &changed, &keys).unwrap_err();
            assert!(matches!(err, Error::Cosignature { why: "bad signature", .. }), "{err}");
        }
        // Another time than the signed one.
        let mut retimed = line.clone();
        retimed.signature[7] ^= 1;
        let bad = Note { text: cp.text(), signatures: vec![retimed] };
        assert!(verify_cosignatures(&bad, &cp, &keys).is_err());
        // Too short for a time and a signature; a time above 2^63 - 1.
        let mut short = line.clone();
        short.signature.truncate(71);
        assert!(verify_cosignatures(&Note { text: cp.text(), signatures: vec![short] }, &cp, &keys).is_err());
        let far = ts.cosign(&cp, 1 << 63);
        let err =
            verify_cosignatures(&Note { text: cp.text(), signatures: vec![far] }, &cp, &keys).unwrap_err();
        assert!(matches!(err, Error::Cosignature { why: "its time is above 2^63 - 1", .. }), "{err}");
    }

    #[test]
    fn cosignatures_keep_the_newest_line_per_key_and_ignore_unknown_keys() {
        let (ts, other) = (TimestampKey::from_seed(&[0x42; 32]), TimestampKey::generate().unwrap());
        let cp = checkpoint();
        let note = Note {
            text: cp.text(),
            signatures: vec![
                ts.cosign(&cp, 20),
                other.cosign(&cp, 99),
                ts.cosign(&cp, 30),
                ts.cosign(&cp, 10),
            ],
        };
        let got = verify_cosignatures(&note, &cp, &[ts.public()]).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].time, 30);
        let both = verify_cosignatures(&note, &cp, &[other.public(), ts.public()]).unwrap();
        assert_eq!(both.iter().map(|c| c.time).collect::<Vec<_>>(), [99, 30]);
        assert!(verify_cosignatures(&note, &cp, &[]).unwrap().is_empty());
    }

    #[test]
    fn a_release_key_cannot_pass_as_a_timestamp_key_nor_the_other_way() {
        let release = SigningKey::from_seed(&[7; 32]);
        let cp = checkpoint();
        let signed = release.sign_checkpoint(&cp);
        let note = Note::parse(&signed).unwrap();
        // The same key pair given as a timestamp key: its name and hint differ.
        let as_timestamp = TimestampKey::from_seed(&[7; 32]);
        assert_ne!(as_timestamp.public().key_hint(), note.signatures[0].key_hint);
        assert!(verify_cosignatures(&note, &cp, &[as_timestamp.public()]).unwrap().is_empty());
        // A timestamp cosignature, even by a trusted release key pair, is no release signature.
        let cosigned = Note { text: cp.text(), signatures: vec![as_timestamp.cosign(&cp, 5)] }.render();
        let err = verify_checkpoint(&cosigned, &origin(), &trusting(&[&release])).unwrap_err();
        assert!(matches!(err, Error::CheckpointNotSigned { .. }), "{err}");
        assert_ne!(key_hint("a/b", NOTE_ED25519, &[1; 32]), key_hint("a/b", COSIGNATURE_V1, &[1; 32]));
    }

    #[test]
    fn timestamp_key_files_round_trip_with_their_modes() {
        let dir = tempfile::tempdir().unwrap();
        let (key_path, pub_path) = (dir.path().join("timestamp.key"), dir.path().join("timestamp.pub"));
        let key = TimestampKey::generate().unwrap();
        key.save(&key_path, false).unwrap();
        key.public().save(&pub_path, false).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key_path), 0o600);
        assert_eq!(mode(&pub_path), 0o644);
        assert_eq!(TimestampKey::load(&key_path).unwrap().key_id(), key.key_id());
        let public = TimestampPublic::load(&pub_path).unwrap();
        assert_eq!(public, key.public());
        assert_eq!(public.name(), key.name());
        let pem = std::fs::read(&pub_path).unwrap();
        assert_eq!(TimestampPublic::from_pem(&pem, &pub_path).unwrap(), public);
        assert!(matches!(key.save(&key_path, false), Err(Error::AlreadyExists { .. })));
        assert!(!format!("{key:?}").contains("inner"));
    }

    #[test]
    fn key_hints_are_the_c2sp_ones() {
        // The example verifier key of golang.org/x/mod/sumdb/note, whose format C2SP
        // signed-note specifies: "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        // (name, hint, base64 of 0x01 || the 32-byte key).
        let vkey = fts_proto::base64::decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").unwrap();
        assert_eq!(vkey[0], NOTE_ED25519);
        let public: [u8; 32] = vkey[1..].try_into().unwrap();
        assert_eq!(key_hint("PeterNeumann", NOTE_ED25519, &public), [0xc7, 0x4f, 0x20, 0xa3]);
    }
}
