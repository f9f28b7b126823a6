//! Pre-committed release key rotation (docs/PROTOCOL.md section 8.3, the design
//! study's section 6): every release key comes with the commitment to the next one,
//! `sha256(fts-next-key-v1\n ‖ next public key)`, which hosts hold in their trust
//! file beside the key. A rotation leaf reveals the next key, signed by it (and, in a
//! planned rotation, by the key it retires); a host accepts it only when the key
//! matches the commitment it holds, so a thief of the current key alone cannot move a
//! fleet to a key of his own. After a rotation at leaf `r` the retired key is valid
//! only for leaves below `r`, never for a checkpoint or a withdrawal.
//!
//! [`KeyRing`] is a host's view, kept in its log state: the keys trusted now (with the
//! commitment and rotation number of each that can rotate) and the retired keys with
//! the index below which each still signs entries.

use std::path::Path;

use fts_proto::checkpoint::Origin;
use fts_proto::{
    FileHash, KeyId, RawKey, RotateStatement, RotationProof, Signature, SignedRotation, Statement,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::VerifyError;
use crate::signing::{PublicKey, SigningKey, TrustedKeys, Verified};

/// The tag of a next-key commitment.
pub const COMMITMENT_TAG: &[u8] = b"fts-next-key-v1\n";

/// The commitment to `key`: SHA-256 of [`COMMITMENT_TAG`] and its 32 raw bytes.
pub fn commitment(key: &PublicKey) -> FileHash {
    let mut hasher = Sha256::new();
    hasher.update(COMMITMENT_TAG);
    hasher.update(key.to_bytes());
    FileHash::from_digest(hasher.finalize().into())
}

#[cfg(test)]
#[test]
fn the_commitment_is_fts_logs() {
    let key = SigningKey::from_seed(&[7; 32]).public_key();
    assert_eq!(commitment(&key), fts_log::next_key_commitment(&key.raw()));
}

/// What a trust file says beside its key: the commitment to the next key and the
/// number of the rotation that made this key active (0 for a first key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct NextKey {
    /// The commitment to the next key.
    pub next: FileHash,
    /// The number of the rotation that made the key active.
    pub rotation: u64,
}

impl NextKey {
    /// The lines a trust file carries after its PEM block.
    pub fn to_lines(&self) -> String {
        format!("fts-next-key {}\nfts-rotation {}\n", self.next, self.rotation)
    }

    /// Reads the lines of [`NextKey::to_lines`] from a trust file's text: `None` when
    /// it has none (a key without a commitment cannot rotate). Text outside PEM blocks
    /// is ignored by PEM readers, so a release that does not know them reads the key.
    pub fn from_text(text: &[u8], path: &Path) -> Result<Option<NextKey>, crate::Error> {
        let text = String::from_utf8_lossy(text);
        let mut next = None;
        let mut rotation = 0;
        for line in text.lines() {
            if let Some(value) = line.strip_prefix("fts-next-key ") {
                if next.is_some() {
                    return Err(crate::Error::bad_file(
                        path,
                        "it has two fts-next-key lines: which one is meant?",
                    ));
                }
                next = Some(FileHash::parse(value.trim()).map_err(|e| {
                    crate::Error::bad_file_because(
                        path,
                        "its fts-next-key line is not sha256:<64 hex>",
                        e.to_string(),
                    )
                })?);
            } else if let Some(value) = line.strip_prefix("fts-rotation ") {
                rotation = value.trim().parse().map_err(|_| {
                    crate::Error::bad_file(path, "its fts-rotation line is not a whole number")
                })?;
            }
        }
        Ok(next.map(|next| NextKey { next, rotation }))
    }
}

impl SigningKey {
    /// Signs the bytes of a rotation statement.
    pub fn sign_rotation(&self, rotation: &RotateStatement) -> Signature {
        use ed25519_dalek::Signer as _;
        Signature::from_bytes(self.inner.sign(&rotation.to_bytes()).to_bytes())
    }
}

impl PublicKey {
    /// The key of 32 raw bytes, refused when it is not a valid strong Ed25519 key.
    pub fn from_raw(raw: &RawKey) -> Option<PublicKey> {
        let inner = ed25519_dalek::VerifyingKey::from_bytes(&raw.0).ok()?;
        (!inner.is_weak()).then_some(PublicKey { inner })
    }

    /// Its 32 raw bytes.
    pub fn raw(&self) -> RawKey {
        RawKey(self.to_bytes())
    }

    fn verifies(&self, bytes: &[u8], signature: &Signature) -> bool {
        self.inner.verify_strict(bytes, &ed25519_dalek::Signature::from_bytes(signature.bytes())).is_ok()
    }
}

/// A key that signs only leaves below `below` (the index of the rotation that
/// retired it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RetiredKey {
    /// The key.
    pub key: RawKey,
    /// The leaf index of the rotation that retired it.
    pub below: u64,
    /// The number of that rotation.
    #[serde(default)]
    pub rotation: u64,
}

/// A host's release keys: trusted now, and retired by position in the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct KeyRing {
    /// The keys trusted now, each with its commitment to the next when it can rotate.
    pub active: Vec<(RawKey, Option<NextKey>)>,
    /// The keys retired by rotations, with the index below which each still signs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<RetiredKey>,
    /// The trust files' keys this ring grew from: when they change (a host given a
    /// new `signing.pub`), the ring starts again from them.
    #[serde(default)]
    pub from: Vec<(RawKey, Option<NextKey>)>,
}

/// What a host's trust files hold, as a ring's starting point.
fn base(trusted: &TrustedKeys) -> Vec<(RawKey, Option<NextKey>)> {
    trusted.iter().map(|(id, key)| (key.raw(), trusted.next_key(&id))).collect()
}

impl KeyRing {
    /// The ring of a host that has seen no rotation: its trust files' keys.
    pub fn from_trusted(trusted: &TrustedKeys) -> KeyRing {
        let from = base(trusted);
        KeyRing { active: from.clone(), retired: Vec::new(), from }
    }

    /// This ring if it grew from `trusted`'s keys, else a new one from them.
    pub fn for_trusted(self, trusted: &TrustedKeys) -> KeyRing {
        if self.from == base(trusted) { self } else { KeyRing::from_trusted(trusted) }
    }

    /// The newest rotation number `m` such that this ring knows every rotation from 1
    /// to `m` (taken forward, or learnt walking back): a server need send only the
    /// rotations after it. 0 while a rotation before its keys is unknown.
    pub fn known_through(&self) -> u64 {
        let known: std::collections::BTreeSet<u64> = self.retired.iter().map(|r| r.rotation).collect();
        let mut m = 0;
        while known.contains(&(m + 1)) {
            m += 1;
        }
        m
    }

    /// The keys trusted now, for checkpoints, withdrawals and new entries.
    pub fn trusted_now(&self) -> TrustedKeys {
        let mut keys = TrustedKeys::default();
        for (raw, next) in &self.active {
            if let Some(key) = PublicKey::from_raw(raw) {
                keys.insert_with_next(key, *next);
            }
        }
        keys
    }

    /// The rotations of `proofs` this ring does not know yet, applied in order: each
    /// rotation `m` of a key must follow the one the ring holds (its number is one
    /// more), reveal the key the held commitment names, retire the key that is active,
    /// and be signed by its new key (and, when a second signature is present, by the
    /// retired key). A rotation that made an active key active (found by walking back
    /// from it) teaches the retired key and its bound. Returns the new ring and the
    /// proofs it used, whose inclusion the caller checks against the checkpoint the
    /// new ring verifies. At most [`fts_proto::MAX_ROTATIONS`] forward steps.
    pub fn advance<'p>(
        &self,
        origin: &Origin,
        proofs: &'p [RotationProof],
    ) -> Result<(KeyRing, Vec<&'p RotationProof>), String> {
        let mut ring = self.clone();
        let mut used = Vec::new();
        let mut sorted: Vec<&RotationProof> = proofs.iter().collect();
        sorted.sort_by_key(|p| p.rotation.statement.number);
        // Forward: rotations of an active key past the one it was made by.
        let mut steps = 0;
        for proof in &sorted {
            let s = &proof.rotation.statement;
            if s.origin != *origin {
                return Err(format!("rotation {} names the log {}, not {origin}", s.number, s.origin));
            }
            let Some(at) = ring.active.iter().position(|(raw, _)| *raw == s.retired) else { continue };
            let Some(next) = ring.active[at].1 else {
                return Err(format!("rotation {} retires a key this host holds no commitment for", s.number));
            };
            if s.number <= next.rotation {
                continue; // made before this key was active: the backward walk's
            }
            if s.number != next.rotation + 1 {
                return Err(format!(
                    "rotation {} skips rotation {}: rotations are taken one by one",
                    s.number,
                    next.rotation + 1
                ));
            }
            steps += 1;
            if steps > fts_proto::MAX_ROTATIONS {
                return Err(format!(
                    "more than {} rotations since this host's trust file: give it the current signing.pub",
                    fts_proto::MAX_ROTATIONS
                ));
            }
            let key = check_signed(&proof.rotation, &next)?;
            ring.retired.push(RetiredKey { key: s.retired, below: proof.log_index, rotation: s.number });
            ring.active[at] = (key.raw(), Some(NextKey { next: s.next, rotation: s.number }));
            used.push(*proof);
        }
        // Backward: the rotation that made each active key active teaches the key it
        // retired (a host provisioned after rotations still verifies older entries).
        for proof in sorted.iter().rev() {
            let s = &proof.rotation.statement;
            if ring.retired.iter().any(|r| r.key == s.retired) || s.origin != *origin {
                continue;
            }
            // The rotation with exactly the number that made a known key active.
            let made_active = ring
                .active
                .iter()
                .any(|(raw, next)| *raw == s.key && next.is_some_and(|n| n.rotation == s.number))
                || ring.retired.iter().any(|r| r.key == s.key && r.rotation == s.number + 1);
            if !made_active {
                continue;
            }
            let Some(key) = PublicKey::from_raw(&s.key) else { continue };
            if !proof
                .rotation
                .signatures
                .first()
                .is_some_and(|sig| sig.key_id == key.key_id() && key.verifies(&s.to_bytes(), &sig.signature))
            {
                return Err(format!("rotation {} is not signed by the key it made active", s.number));
            }
            ring.retired.push(RetiredKey { key: s.retired, below: proof.log_index, rotation: s.number });
            used.push(*proof);
        }
        Ok((ring, used))
    }

    /// Checks an entry's signature: by a key trusted now at any index, or by a
    /// retired key only for a leaf below its bound (`log_index` unknown: never).
    pub fn verify_entry(
        &self,
        statement: Statement,
        key_id: &KeyId,
        signature: &Signature,
        log_index: Option<u64>,
    ) -> Result<Verified<Statement>, VerifyError> {
        let now = self.trusted_now();
        if now.key_ids().any(|id| id == *key_id) {
            return now.verify(statement, key_id, signature);
        }
        self.verify_retired(&statement.to_bytes(), key_id, signature, log_index)?;
        Ok(Verified::new(statement, *key_id))
    }

    /// Checks a withdrawal's signature by the rule of entries: a key trusted now, or
    /// a retired key for a withdrawal whose leaf is below the rotation that retired
    /// it (a withdrawal signed before a rotation stays valid).
    pub fn verify_withdrawal(
        &self,
        withdrawal: fts_proto::WithdrawStatement,
        key_id: &KeyId,
        signature: &Signature,
        log_index: u64,
    ) -> Result<Verified<fts_proto::WithdrawStatement>, VerifyError> {
        let now = self.trusted_now();
        if now.key_ids().any(|id| id == *key_id) {
            return now.verify_withdrawal(withdrawal, key_id, signature);
        }
        self.verify_retired(&withdrawal.to_bytes(), key_id, signature, Some(log_index))?;
        Ok(Verified::new(withdrawal, *key_id))
    }

    /// `bytes` signed by the retired key `key_id`, valid only below its bound.
    fn verify_retired(
        &self,
        bytes: &[u8],
        key_id: &KeyId,
        signature: &Signature,
        log_index: Option<u64>,
    ) -> Result<(), VerifyError> {
        let retired = self.retired.iter().filter_map(|r| PublicKey::from_raw(&r.key).map(|k| (k, r.below)));
        for (key, below) in retired {
            if key.key_id() != *key_id {
                continue;
            }
            if log_index.is_none_or(|index| index >= below) {
                return Err(VerifyError::RetiredKey { key_id: *key_id, below });
            }
            if !key.verifies(bytes, signature) {
                return Err(VerifyError::BadSignature { key_id: *key_id });
            }
            return Ok(());
        }
        Err(VerifyError::UntrustedKey { key_id: *key_id })
    }
}

/// Checks a forward rotation: the new key is the committed one, it signed first, and
/// a second signature, if present, is the retired key's and verifies.
fn check_signed(rotation: &SignedRotation, held: &NextKey) -> Result<PublicKey, String> {
    let s = &rotation.statement;
    let key = PublicKey::from_raw(&s.key)
        .ok_or_else(|| format!("rotation {}: not a valid Ed25519 key", s.number))?;
    if rotation.signatures.len() > 2 {
        return Err(format!("rotation {} carries more than two signatures", s.number));
    }
    if commitment(&key) != held.next {
        return Err(format!(
            "rotation {} reveals a key that does not match the commitment this host holds (a key of someone else's?)",
            s.number
        ));
    }
    if s.next == commitment(&key) || s.key == s.retired {
        // A next key equal to the new one would hand the current key's thief the
        // committed key too.
        return Err(format!("rotation {} commits to the key it makes active, or retires it", s.number));
    }
    let bytes = s.to_bytes();
    let Some(first) = rotation.signatures.first() else {
        return Err(format!("rotation {} carries no signature", s.number));
    };
    if first.key_id != key.key_id() || !key.verifies(&bytes, &first.signature) {
        return Err(format!("rotation {} is not signed by its new key", s.number));
    }
    if let Some(second) = rotation.signatures.get(1) {
        let retired = PublicKey::from_raw(&s.retired);
        let good =
            retired.is_some_and(|k| second.key_id == k.key_id() && k.verifies(&bytes, &second.signature));
        if !good {
            return Err(format!(
                "rotation {}: the retired key's signature is present but does not verify",
                s.number
            ));
        }
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use fts_proto::{FileName, Published, Seq, Target};

    use super::*;

    fn origin() -> Origin {
        Origin::parse("fts.example/prod").unwrap()
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed(&[seed; 32])
    }

    /// Rotation `number` from `old` to `new`, committing to `after`, at leaf `index`,
    /// signed by `new` and (planned) `old`.
    fn rotation(
        number: u64,
        old: &SigningKey,
        new: &SigningKey,
        after: &SigningKey,
        index: u64,
        planned: bool,
    ) -> RotationProof {
        let statement = RotateStatement {
            origin: origin(),
            number,
            retired: old.public_key().raw(),
            key: new.public_key().raw(),
            next: commitment(&after.public_key()),
            time: Published::parse("2026-12-02T09:00:00Z").unwrap(),
        };
        let mut signatures = vec![fts_proto::RotationSignature {
            key_id: new.key_id(),
            signature: new.sign_rotation(&statement),
        }];
        if planned {
            signatures.push(fts_proto::RotationSignature {
                key_id: old.key_id(),
                signature: old.sign_rotation(&statement),
            });
        }
        RotationProof {
            rotation: SignedRotation { statement, signatures },
            log_index: index,
            inclusion: Vec::new(),
        }
    }

    fn ring_of(current: &SigningKey, next: &SigningKey, number: u64) -> KeyRing {
        let entry = (
            current.public_key().raw(),
            Some(NextKey { next: commitment(&next.public_key()), rotation: number }),
        );
        KeyRing { active: vec![entry], retired: Vec::new(), from: vec![entry] }
    }

    fn statement() -> Statement {
        Statement {
            target: Target::parse("web-01").unwrap(),
            seq: Seq::new(1).unwrap(),
            file_name: FileName::parse("a.conf").unwrap(),
            file_size: 1,
            file_hash: FileHash::from_digest([1; 32]),
            published: Published::parse("2026-12-01T09:00:00Z").unwrap(),
        }
    }

    #[test]
    fn planned_and_recovery_rotations_move_the_ring_and_retire_by_index() {
        let (k1, k2, k3, k4) = (key(1), key(2), key(3), key(4));
        let ring = ring_of(&k1, &k2, 0);
        let proofs = [rotation(1, &k1, &k2, &k3, 10, true), rotation(2, &k2, &k3, &k4, 20, false)];
        assert_eq!(ring.known_through(), 0, "a first key: every rotation is news");
        let (ring, used) = ring.advance(&origin(), &proofs).unwrap();
        assert_eq!(used.len(), 2);
        assert_eq!(ring.known_through(), 2, "a server need send none of them again");
        let now = ring.trusted_now();
        assert_eq!(
            now.key_ids().collect::<Vec<_>>(),
            [k3.key_id()],
            "only the newest key signs checkpoints and withdrawals"
        );
        let signed_by = |k: &SigningKey| (statement(), k.key_id(), k.sign(&statement()));
        let (s, id, sig) = signed_by(&k1);
        assert!(ring.verify_entry(s.clone(), &id, &sig, Some(9)).is_ok(), "below its rotation");
        assert!(matches!(
            ring.verify_entry(s.clone(), &id, &sig, Some(10)),
            Err(VerifyError::RetiredKey { below: 10, .. })
        ));
        assert!(
            matches!(ring.verify_entry(s, &id, &sig, None), Err(VerifyError::RetiredKey { .. })),
            "no index: never"
        );
        let (s, id, sig) = signed_by(&k2);
        assert!(ring.verify_entry(s.clone(), &id, &sig, Some(19)).is_ok());
        assert!(ring.verify_entry(s, &id, &sig, Some(25)).is_err());
        let (s, id, sig) = signed_by(&k3);
        assert!(ring.verify_entry(s, &id, &sig, Some(1_000)).is_ok());
    }

    #[test]
    fn a_thief_with_the_current_key_cannot_rotate_to_a_key_of_his_own() {
        let (k1, k2, thief, k3) = (key(1), key(2), key(9), key(3));
        let ring = ring_of(&k1, &k2, 0);
        let forged = rotation(1, &k1, &thief, &k3, 10, true);
        let err = ring.advance(&origin(), &[forged]).unwrap_err();
        assert!(err.contains("does not match the commitment"), "{err}");
    }

    #[test]
    fn a_skipped_rotation_a_bad_old_signature_and_too_many_rotations_are_refused() {
        let (k1, k2, k3) = (key(1), key(2), key(3));
        let ring = ring_of(&k1, &k2, 0);
        let skipped = rotation(2, &k1, &k2, &k3, 10, true);
        assert!(ring.advance(&origin(), &[skipped]).unwrap_err().contains("skips rotation 1"));

        let mut bad = rotation(1, &k1, &k2, &k3, 10, true);
        bad.rotation.signatures[1].signature = k3.sign_rotation(&bad.rotation.statement);
        assert!(ring.advance(&origin(), &[bad]).unwrap_err().contains("retired key's signature"));

        let keys: Vec<SigningKey> =
            (0..=fts_proto::MAX_ROTATIONS as u8 + 2).map(|i| key(i.wrapping_add(20))).collect();
        let ring = ring_of(&keys[0], &keys[1], 0);
        let chain: Vec<RotationProof> = (1..=fts_proto::MAX_ROTATIONS + 1)
            .map(|m| rotation(m as u64, &keys[m - 1], &keys[m], &keys[m + 1], m as u64, false))
            .collect();
        assert!(ring.advance(&origin(), &chain).unwrap_err().contains("more than 64 rotations"));
        assert!(
            ring.advance(&origin(), &chain[..fts_proto::MAX_ROTATIONS]).is_ok(),
            "64 are walked in one poll"
        );
    }

    #[test]
    fn a_host_provisioned_after_a_rotation_learns_the_retired_key_by_walking_back() {
        let (k1, k2, k3) = (key(1), key(2), key(3));
        let ring = ring_of(&k2, &k3, 1);
        let proofs = [rotation(1, &k1, &k2, &k3, 7, false)];
        let (ring, used) = ring.advance(&origin(), &proofs).unwrap();
        assert_eq!(used.len(), 1);
        assert_eq!(ring.retired, [RetiredKey { key: k1.public_key().raw(), below: 7, rotation: 1 }]);
        assert_eq!(ring.known_through(), 1);
        let forged = [rotation(1, &key(8), &key(9), &k3, 7, false)];
        let (ring, used) = ring_of(&k2, &k3, 1).advance(&origin(), &forged).unwrap();
        assert!(
            used.is_empty() && ring.retired.is_empty(),
            "a rotation to a key this host does not hold teaches nothing"
        );
    }

    #[test]
    fn a_trust_file_carries_the_commitment_after_its_pem_block() {
        let next = NextKey { next: commitment(&key(2).public_key()), rotation: 3 };
        let text = format!("{}{}", key(1).public_key().to_pem(), next.to_lines());
        let path = Path::new("signing.pub");
        assert_eq!(NextKey::from_text(text.as_bytes(), path).unwrap(), Some(next));
        assert_eq!(
            PublicKey::from_pem(text.as_bytes(), path).unwrap(),
            key(1).public_key(),
            "PEM readers skip the lines"
        );
        assert_eq!(NextKey::from_text(key(1).public_key().to_pem().as_bytes(), path).unwrap(), None);
    }
}
