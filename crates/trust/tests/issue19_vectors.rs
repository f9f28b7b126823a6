//! The vectors of issue 19's signed formats (`tests/vectors/issue19-v1.json`, fields
//! explained in `tests/vectors/README.md`): a withdrawal (`fts-withdraw-v1`) of an
//! entry, the heads leaves (`fts-head-v1`, `fts-head-v2`), and key rotation (the
//! `fts-next-key-v1` commitment, the trust file lines, a planned and a recovery
//! `fts-rotate-v1`). Ed25519 is deterministic, so signing the fixed statements with
//! the fixed test keys must reproduce every byte, and every signature must verify.
//!
//! fts-trust does not depend on fts-log, so fts-log's own `merkle.rs` and `heads.rs`
//! are compiled into this test (their dependencies, fts-proto, sha2 and thiserror,
//! are fts-trust's too): `head_leaf` and `leaf_hash` here are the store's and the
//! client's code, not a copy. `statement_hash` (fts-log's `lib.rs`, one line) is
//! restated below and checked against the example of PROTOCOL.md section 8.1.

use std::path::Path;

use fts_proto::{
    FileHash, FileName, Origin, Published, RotateStatement, RotationProof, RotationSignature, Seq,
    SignedRotation, Statement, Target, WithdrawReason, WithdrawStatement, Withdrawal, signed_leaf,
};
use fts_trust::{KeyRing, NextKey, SigningKey, TrustedKeys, VerifyError, commitment};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use fts_log::heads::head_leaf;
use fts_log::merkle::leaf_hash;
use fts_log::statement_hash;

const VECTORS: &str = include_str!("vectors/issue19-v1.json");

fn seed(v: &Value, field: &str) -> [u8; 32] {
    hex::decode(v[field].as_str().unwrap()).unwrap().try_into().unwrap()
}

fn text(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_else(|| panic!("no field {field}")).to_owned()
}

fn utf8(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

fn seq(n: u64) -> Seq {
    Seq::new(n).unwrap()
}

/// The four keys of the vectors: the release key (active, rotation 0), the key it is
/// committed to (0x43), the one after (0x44), and the one rotation 2 commits to (0x45).
struct Keys {
    release: SigningKey,
    next: SigningKey,
    after_next: SigningKey,
    recovery_next: SigningKey,
}

fn keys(v: &Value) -> Keys {
    Keys {
        release: SigningKey::from_seed(&seed(v, "release_key_seed_hex")),
        next: SigningKey::from_seed(&seed(v, "next_key_seed_hex")),
        after_next: SigningKey::from_seed(&seed(v, "after_next_key_seed_hex")),
        recovery_next: SigningKey::from_seed(&seed(v, "recovery_next_key_seed_hex")),
    }
}

fn origin(v: &Value) -> Origin {
    Origin::parse(v["origin"].as_str().unwrap()).unwrap()
}

fn entry(v: &Value) -> Statement {
    let e = &v["entry"];
    Statement {
        target: Target::parse(e["target"].as_str().unwrap()).unwrap(),
        seq: seq(e["seq"].as_u64().unwrap()),
        file_name: FileName::parse(e["file-name"].as_str().unwrap()).unwrap(),
        file_size: e["file-size"].as_u64().unwrap(),
        file_hash: FileHash::parse(e["file-hash"].as_str().unwrap()).unwrap(),
        published: Published::parse(e["published"].as_str().unwrap()).unwrap(),
    }
}

fn withdrawal(v: &Value) -> WithdrawStatement {
    let entry = entry(v);
    let w = &v["withdrawal"];
    WithdrawStatement {
        origin: origin(v),
        target: entry.target.clone(),
        seq: entry.seq,
        statement_hash: statement_hash(&entry),
        withdrawn: Published::parse(w["withdrawn"].as_str().unwrap()).unwrap(),
        reason: WithdrawReason::parse(w["reason"].as_str().unwrap()).unwrap(),
    }
}

/// Rotation `field` (`rotation_1` or `rotation_2`) from `old` to `new`, committing to
/// `after`, signed by `new` and, when `planned`, by `old`.
fn rotation(
    v: &Value,
    field: &str,
    old: &SigningKey,
    new: &SigningKey,
    after: &SigningKey,
    planned: bool,
) -> RotationProof {
    let r = &v[field];
    let statement = RotateStatement {
        origin: origin(v),
        number: r["number"].as_u64().unwrap(),
        retired: old.public_key().raw(),
        key: new.public_key().raw(),
        next: commitment(&after.public_key()),
        time: Published::parse(r["time"].as_str().unwrap()).unwrap(),
    };
    let mut signatures =
        vec![RotationSignature { key_id: new.key_id(), signature: new.sign_rotation(&statement) }];
    if planned {
        signatures.push(RotationSignature { key_id: old.key_id(), signature: old.sign_rotation(&statement) });
    }
    RotationProof {
        rotation: SignedRotation { statement, signatures },
        log_index: r["log_index"].as_u64().unwrap(),
        inclusion: Vec::new(),
    }
}

fn rotations(v: &Value) -> [RotationProof; 2] {
    let k = keys(v);
    [
        rotation(v, "rotation_1", &k.release, &k.next, &k.after_next, true),
        rotation(v, "rotation_2", &k.next, &k.after_next, &k.recovery_next, false),
    ]
}

fn trust_file_text(v: &Value) -> String {
    let k = keys(v);
    let next = NextKey { next: commitment(&k.next.public_key()), rotation: 0 };
    format!("{}{}", k.release.public_key().to_pem(), next.to_lines())
}

/// A key's id and raw public key, and (a key a rotation reveals) its commitment.
fn key_fields(name: &str, key: &SigningKey) -> Vec<(String, Value)> {
    let mut fields = vec![
        (format!("{name}_key_id"), json!(key.key_id().to_string())),
        (format!("{name}_public_key_base64"), json!(key.public_key().raw().to_string())),
    ];
    if name != "release" {
        fields.push((format!("{name}_key_commitment"), json!(commitment(&key.public_key()).to_string())));
    }
    fields
}

/// Everything the vectors hold, computed from the seeds and the inputs.
fn computed(v: &Value) -> Value {
    let k = keys(v);
    let mut out = serde_json::Map::new();
    for (name, key) in [
        ("release", &k.release),
        ("next", &k.next),
        ("after_next", &k.after_next),
        ("recovery_next", &k.recovery_next),
    ] {
        out.extend(key_fields(name, key));
    }

    let entry = entry(v);
    let entry_signature = k.release.sign(&entry);
    let entry_leaf = signed_leaf(&entry.to_bytes(), &k.release.key_id(), &entry_signature);
    let w = withdrawal(v);
    let w_signature = k.release.sign_withdrawal(&w);
    let w_leaf = signed_leaf(&w.to_bytes(), &k.release.key_id(), &w_signature);
    let withdrawal_wire = Withdrawal {
        withdrawn: w.withdrawn.clone(),
        reason: w.reason.clone(),
        key_id: k.release.key_id(),
        signature: w_signature,
        log_index: v["withdrawal"]["log_index"].as_u64().unwrap(),
        inclusion: Vec::new(),
    };
    assert_eq!(withdrawal_wire.statement(&origin(v), &entry, statement_hash(&entry)), w);

    let h = &v["head"];
    let target = Target::parse(h["target"].as_str().unwrap()).unwrap();
    let head_seq = h["seq"].as_u64().unwrap();
    let withdrawn: Vec<Seq> =
        h["withdrawn"].as_array().unwrap().iter().map(|s| seq(s.as_u64().unwrap())).collect();
    let v1 = head_leaf(&target, head_seq, &[]);
    let v2 = head_leaf(&target, head_seq, &withdrawn);

    let [r1, r2] = rotations(v);
    let r1s = &r1.rotation;
    let r2s = &r2.rotation;

    out.extend([
        ("entry_statement_text".into(), json!(utf8(entry.to_bytes()))),
        ("entry_statement_hash".into(), json!(statement_hash(&entry).to_string())),
        ("entry_signature".into(), json!(entry_signature.to_string())),
        ("entry_leaf_text".into(), json!(utf8(entry_leaf.clone()))),
        ("entry_leaf_hash".into(), json!(leaf_hash(&entry_leaf).to_string())),
        ("withdraw_statement_text".into(), json!(utf8(w.to_bytes()))),
        ("withdraw_signature".into(), json!(w_signature.to_string())),
        ("withdraw_leaf_text".into(), json!(utf8(w_leaf.clone()))),
        ("withdraw_leaf_hash".into(), json!(leaf_hash(&w_leaf).to_string())),
        ("withdrawal_wire".into(), serde_json::to_value(&withdrawal_wire).unwrap()),
        ("head_v1_leaf_text".into(), json!(utf8(v1.clone()))),
        ("head_v1_leaf_hash".into(), json!(leaf_hash(&v1).to_string())),
        ("head_v2_leaf_text".into(), json!(utf8(v2.clone()))),
        ("head_v2_leaf_hash".into(), json!(leaf_hash(&v2).to_string())),
        ("trust_file_text".into(), json!(trust_file_text(v))),
        ("rotation_1_statement_text".into(), json!(utf8(r1s.statement.to_bytes()))),
        ("rotation_1_new_key_signature".into(), json!(r1s.signatures[0].signature.to_string())),
        ("rotation_1_retired_key_signature".into(), json!(r1s.signatures[1].signature.to_string())),
        ("rotation_1_leaf_text".into(), json!(utf8(r1s.leaf()))),
        ("rotation_1_leaf_hash".into(), json!(leaf_hash(&r1s.leaf()).to_string())),
        ("rotation_1_wire".into(), serde_json::to_value(&r1).unwrap()),
        ("rotation_2_statement_text".into(), json!(utf8(r2s.statement.to_bytes()))),
        ("rotation_2_new_key_signature".into(), json!(r2s.signatures[0].signature.to_string())),
        ("rotation_2_leaf_text".into(), json!(utf8(r2s.leaf()))),
        ("rotation_2_leaf_hash".into(), json!(leaf_hash(&r2s.leaf()).to_string())),
        ("rotation_2_wire".into(), serde_json::to_value(&r2).unwrap()),
    ]);
    Value::Object(out)
}

fn vectors() -> Value {
    serde_json::from_str(VECTORS).unwrap()
}

/// Strict Ed25519 over `bytes` by the key of 32 raw bytes given in base64.
fn verifies(public_key_base64: &str, bytes: &[u8], signature_base64: &str) -> bool {
    let raw: [u8; 32] = fts_proto::base64::decode_fixed(public_key_base64).unwrap();
    let sig: [u8; 64] = fts_proto::base64::decode_fixed(signature_base64).unwrap();
    ed25519_dalek::VerifyingKey::from_bytes(&raw)
        .unwrap()
        .verify_strict(bytes, &ed25519_dalek::Signature::from_bytes(&sig))
        .is_ok()
}

#[test]
fn the_vectors_are_reproduced_byte_for_byte() {
    let v = vectors();
    let got = computed(&v);
    for (field, value) in got.as_object().unwrap() {
        assert_eq!(&v[field], value, "field {field}");
    }
    // The statement is statement-v1.json's case 0, and so is its signature.
    assert_eq!(
        v["entry_signature"],
        "yqeg7FM1Rr9YHfvW3tD2uFV9ChY1NhZMZ2Q1JAY/D5hbQp+7NBhUydtr4qEMtXDX/g4oLvkTaGviyh7zFrXKBA=="
    );
    assert_eq!(v["release_key_id"], "4d06ee28107bfc40");
}

#[test]
fn every_signature_of_the_vectors_verifies_over_the_text_it_signs() {
    let v = vectors();
    let release = text(&v, "release_public_key_base64");
    let next = text(&v, "next_public_key_base64");
    let after_next = text(&v, "after_next_public_key_base64");
    let cases = [
        (&release, "entry_statement_text", "entry_signature"),
        (&release, "withdraw_statement_text", "withdraw_signature"),
        (&next, "rotation_1_statement_text", "rotation_1_new_key_signature"),
        (&release, "rotation_1_statement_text", "rotation_1_retired_key_signature"),
        (&after_next, "rotation_2_statement_text", "rotation_2_new_key_signature"),
    ];
    for (key, signed, signature) in cases {
        assert!(verifies(key, text(&v, signed).as_bytes(), &text(&v, signature)), "{signature}");
    }
    assert!(
        !verifies(
            &release,
            text(&v, "rotation_1_statement_text").as_bytes(),
            &text(&v, "rotation_1_new_key_signature")
        ),
        "the new key's signature is not the retired key's"
    );

    // A leaf is the signed text and its key-id and signature lines, each pair in order.
    let pair = |id: &str, sig: &str| format!("key-id {}\nsignature {}\n", text(&v, id), text(&v, sig));
    assert_eq!(
        text(&v, "withdraw_leaf_text"),
        text(&v, "withdraw_statement_text") + &pair("release_key_id", "withdraw_signature")
    );
    assert_eq!(
        text(&v, "rotation_1_leaf_text"),
        text(&v, "rotation_1_statement_text")
            + &pair("next_key_id", "rotation_1_new_key_signature")
            + &pair("release_key_id", "rotation_1_retired_key_signature")
    );
    assert_eq!(
        text(&v, "rotation_2_leaf_text"),
        text(&v, "rotation_2_statement_text") + &pair("after_next_key_id", "rotation_2_new_key_signature")
    );
    // RFC 6962 leaf hashes, computed here without fts-log.
    for (leaf, hash) in [
        ("entry_leaf_text", "entry_leaf_hash"),
        ("withdraw_leaf_text", "withdraw_leaf_hash"),
        ("head_v1_leaf_text", "head_v1_leaf_hash"),
        ("head_v2_leaf_text", "head_v2_leaf_hash"),
        ("rotation_1_leaf_text", "rotation_1_leaf_hash"),
        ("rotation_2_leaf_text", "rotation_2_leaf_hash"),
    ] {
        let digest: [u8; 32] =
            Sha256::new().chain_update([0x00]).chain_update(text(&v, leaf)).finalize().into();
        assert_eq!(fts_proto::base64::encode(&digest), text(&v, hash), "{hash}");
    }
    // The withdrawal names the entry's bytes.
    let entry_hash = hex::encode(Sha256::digest(text(&v, "entry_statement_text")));
    assert_eq!(text(&v, "entry_statement_hash"), format!("sha256:{entry_hash}"));
    assert_eq!(
        text(&v, "withdraw_statement_text").lines().nth(4),
        Some(text(&v, "entry_statement_hash").as_str())
    );
}

#[test]
fn the_withdrawal_verifies_by_the_release_key_and_names_its_entry() {
    let v = vectors();
    let k = keys(&v);
    let w = withdrawal(&v);
    let signature = fts_proto::Signature::parse(&text(&v, "withdraw_signature")).unwrap();
    let mut trusted = TrustedKeys::default();
    trusted.insert(k.release.public_key(), Path::new("vector")).unwrap();
    let verified = trusted.verify_withdrawal(w.clone(), &k.release.key_id(), &signature).unwrap();
    assert_eq!(verified.key_id(), k.release.key_id());
    assert!(w.withdraws(&origin(&v), &entry(&v), &statement_hash(&entry(&v))));

    let other_log = WithdrawStatement { origin: Origin::parse("fts.example/prod").unwrap(), ..w.clone() };
    assert!(matches!(
        trusted.verify_withdrawal(other_log, &k.release.key_id(), &signature),
        Err(VerifyError::BadSignature { .. })
    ));
    let other_reason = WithdrawStatement { reason: WithdrawReason::parse("").unwrap(), ..w };
    assert!(trusted.verify_withdrawal(other_reason, &k.release.key_id(), &signature).is_err());
}

#[test]
fn the_trust_file_and_both_rotations_move_a_ring_to_the_last_key() {
    let v = vectors();
    let k = keys(&v);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signing.pub");
    std::fs::write(&path, text(&v, "trust_file_text")).unwrap();
    let trusted = TrustedKeys::load(&[&path]).unwrap();
    assert_eq!(
        trusted.next_key(&k.release.key_id()),
        Some(NextKey { next: commitment(&k.next.public_key()), rotation: 0 })
    );
    let ring = KeyRing::from_trusted(&trusted);
    let proofs = rotations(&v);
    let (moved, used) = ring.advance(&origin(&v), &proofs).unwrap();
    assert_eq!(used.len(), 2);
    assert_eq!(moved.trusted_now().key_ids().collect::<Vec<_>>(), [k.after_next.key_id()]);
    assert_eq!(
        moved.active,
        [(
            k.after_next.public_key().raw(),
            Some(NextKey { next: commitment(&k.recovery_next.public_key()), rotation: 2 })
        )]
    );

    // The retired keys sign only entries below the rotation that retired them.
    let entry_index = v["entry_log_index"].as_u64().unwrap();
    let r1_index = v["rotation_1"]["log_index"].as_u64().unwrap();
    let signature = fts_proto::Signature::parse(&text(&v, "entry_signature")).unwrap();
    let id = k.release.key_id();
    assert!(moved.verify_entry(entry(&v), &id, &signature, Some(entry_index)).is_ok());
    assert!(matches!(
        moved.verify_entry(entry(&v), &id, &signature, Some(r1_index)),
        Err(VerifyError::RetiredKey { .. })
    ));
    let r2_index = v["rotation_2"]["log_index"].as_u64().unwrap();
    let by_next = k.next.sign(&entry(&v));
    assert!(moved.verify_entry(entry(&v), &k.next.key_id(), &by_next, Some(r2_index - 1)).is_ok());
    assert!(moved.verify_entry(entry(&v), &k.next.key_id(), &by_next, Some(r2_index)).is_err());
    // ... and never a withdrawal: the retired release key is not trusted now.
    let w_signature = fts_proto::Signature::parse(&text(&v, "withdraw_signature")).unwrap();
    assert!(matches!(
        moved.trusted_now().verify_withdrawal(withdrawal(&v), &id, &w_signature),
        Err(VerifyError::UntrustedKey { .. })
    ));

    // In any order: the ring sorts them by number.
    let reversed = [proofs[1].clone(), proofs[0].clone()];
    assert_eq!(ring.advance(&origin(&v), &reversed).unwrap().0, moved);

    // Rotation 1 alone moves the ring to the 0x43 key.
    let (after_one, _) = ring.advance(&origin(&v), &proofs[..1]).unwrap();
    assert_eq!(after_one.trusted_now().key_ids().collect::<Vec<_>>(), [k.next.key_id()]);
    assert_eq!(after_one.advance(&origin(&v), &proofs[1..]).unwrap().0, moved, "then rotation 2");

    // Rotation 2 alone (rotation 1 withheld) is not taken: it retires the 0x43 key,
    // which this ring does not trust, so `advance` passes it by (no error), the ring
    // still trusts only the release key, and a checkpoint signed by the 0x44 key will
    // not verify with it.
    let (skipped, used) = ring.advance(&origin(&v), &proofs[1..]).unwrap();
    assert!(used.is_empty());
    assert_eq!(skipped, ring);
    assert_eq!(skipped.trusted_now().key_ids().collect::<Vec<_>>(), [k.release.key_id()]);
    // A rotation numbered 2 that retires the release key skips rotation 1: refused.
    let mut two = rotation(&v, "rotation_1", &k.release, &k.next, &k.after_next, true);
    two.rotation.statement.number = 2;
    let statement = two.rotation.statement.clone();
    two.rotation.signatures[0].signature = k.next.sign_rotation(&statement);
    two.rotation.signatures[1].signature = k.release.sign_rotation(&statement);
    let err = ring.advance(&origin(&v), &[two]).unwrap_err();
    assert!(err.contains("skips rotation 1"), "{err}");
}

#[test]
fn a_rotation_to_a_key_other_than_the_committed_one_is_refused() {
    let v = vectors();
    let k = keys(&v);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signing.pub");
    std::fs::write(&path, text(&v, "trust_file_text")).unwrap();
    let ring = KeyRing::from_trusted(&TrustedKeys::load(&[&path]).unwrap());

    // Rotation 1 with its key replaced by the release key, re-signed by it.
    let [mut forged, _] = rotations(&v);
    forged.rotation.statement.key = k.release.public_key().raw();
    let signature = k.release.sign_rotation(&forged.rotation.statement);
    forged.rotation.signatures = vec![
        RotationSignature { key_id: k.release.key_id(), signature },
        RotationSignature { key_id: k.release.key_id(), signature },
    ];
    let err = ring.advance(&origin(&v), &[forged]).unwrap_err();
    assert!(err.contains("does not match the commitment"), "{err}");

    // The vector's own rotation 1, its key swapped but its signatures kept.
    let [mut swapped, _] = rotations(&v);
    swapped.rotation.statement.key = k.release.public_key().raw();
    let err = ring.advance(&origin(&v), &[swapped]).unwrap_err();
    assert!(err.contains("does not match the commitment"), "{err}");
}

/// The worked examples of PROTOCOL.md section 8.1, with the code of this test.
#[test]
fn the_examples_of_protocol_section_8_1_hold() {
    let entry = Statement {
        target: Target::parse("web-01").unwrap(),
        seq: seq(13),
        file_name: FileName::parse("openssl-3.0.19.deb").unwrap(),
        file_size: 4,
        file_hash: FileHash::parse("sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
            .unwrap(),
        published: Published::parse("2026-11-25T17:00:00Z").unwrap(),
    };
    let hash = statement_hash(&entry);
    assert_eq!(hash.to_string(), "sha256:3752d6140ed42c549d421d3f8dc5d6b369a62ebea34594fc7efed1251e88e3c5");
    let mut w = WithdrawStatement {
        origin: Origin::parse("fts.example/prod").unwrap(),
        target: entry.target.clone(),
        seq: entry.seq,
        statement_hash: hash,
        withdrawn: Published::parse("2026-12-02T09:00:00Z").unwrap(),
        reason: WithdrawReason::parse("breaks TLS on RHEL 8").unwrap(),
    };
    assert_eq!(
        utf8(w.to_bytes()),
        "fts-withdraw-v1\nfts.example/prod\nweb-01\n13\n\
         sha256:3752d6140ed42c549d421d3f8dc5d6b369a62ebea34594fc7efed1251e88e3c5\n\
         2026-12-02T09:00:00Z\nbreaks TLS on RHEL 8\n"
    );
    w.reason = WithdrawReason::parse("").unwrap();
    assert!(w.to_bytes().ends_with(b"2026-12-02T09:00:00Z\n\n"));
    assert_eq!(
        head_leaf(&Target::parse("web-01").unwrap(), 13, &[seq(3), seq(12)]),
        b"fts-head-v2\nweb-01\n13\nwithdrawn 3 12\n"
    );
}

/// Prints the computed fields, to write a new version of the vectors by hand:
/// `cargo test -p fts-trust --test issue19_vectors -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_the_computed_vectors() {
    let v = vectors();
    println!("{}", serde_json::to_string_pretty(&computed(&v)).unwrap());
}
