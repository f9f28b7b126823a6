//! The checkpoint note vectors (`tests/vectors/checkpoint-v1.json`, fields explained
//! in `tests/vectors/README.md`): Ed25519 is deterministic, so signing the fixed
//! checkpoint with the published test release key, and cosigning it with the fixed
//! timestamp key at the fixed time, must reproduce the notes byte for byte, and both
//! must verify.

use std::path::Path;

use fts_proto::{Checkpoint, LogHash, Note, Origin, cosignature_message};
use fts_trust::note::key_hint;
use fts_trust::{SigningKey, TimestampKey, TrustedKeys, verify_checkpoint, verify_cosignatures};
use serde_json::{Value, json};

const VECTORS: &str = include_str!("vectors/checkpoint-v1.json");

fn seed(v: &Value, field: &str) -> [u8; 32] {
    hex::decode(v[field].as_str().unwrap()).unwrap().try_into().unwrap()
}

/// Everything the vectors hold, computed from the keys' seeds and the checkpoint.
fn computed(v: &Value) -> Value {
    let release = SigningKey::from_seed(&seed(v, "release_key_seed_hex"));
    let timestamp = TimestampKey::from_seed(&seed(v, "timestamp_key_seed_hex"));
    let c = &v["checkpoint"];
    let checkpoint = Checkpoint {
        origin: Origin::parse(c["origin"].as_str().unwrap()).unwrap(),
        size: c["size"].as_u64().unwrap(),
        root: LogHash::parse(c["root"].as_str().unwrap()).unwrap(),
        heads_count: c["heads_count"].as_u64().unwrap(),
        heads_root: LogHash::parse(c["heads_root"].as_str().unwrap()).unwrap(),
    };
    let time = v["cosignature_time"].as_u64().unwrap();
    let signed = release.sign_checkpoint(&checkpoint);
    let cosignature = timestamp.cosign(&checkpoint, time);
    let cosigned = format!("{signed}{}\n", cosignature.line());
    let release_hint = key_hint(checkpoint.origin.as_str(), 0x01, &release.public_key().to_bytes());
    json!({
        "release_key_id": release.key_id().to_string(),
        "release_key_hint_hex": hex::encode(release_hint),
        "timestamp_key_id": timestamp.key_id().to_string(),
        "timestamp_key_name": timestamp.name(),
        "timestamp_key_hint_hex": hex::encode(timestamp.public().key_hint()),
        "timestamp_public_key_pem": timestamp.public().to_pem(),
        "checkpoint_text": checkpoint.text(),
        "signed_note": signed,
        "cosignature_message": String::from_utf8(cosignature_message(time, &checkpoint)).unwrap(),
        "cosignature_line": cosignature.line(),
        "cosigned_note": cosigned,
    })
}

#[test]
fn the_vector_notes_are_reproduced_byte_for_byte_and_verify() {
    let v: Value = serde_json::from_str(VECTORS).unwrap();
    let got = computed(&v);
    for (field, value) in got.as_object().unwrap() {
        assert_eq!(&v[field], value, "field {field}");
    }

    let release = SigningKey::from_seed(&seed(&v, "release_key_seed_hex"));
    let mut trusted = TrustedKeys::default();
    trusted.insert(release.public_key(), Path::new("vector")).unwrap();
    let origin = Origin::parse(v["checkpoint"]["origin"].as_str().unwrap()).unwrap();
    let verified = verify_checkpoint(v["cosigned_note"].as_str().unwrap(), &origin, &trusted).unwrap();
    assert_eq!(verified.key_id, release.key_id());
    let timestamp = TimestampKey::from_seed(&seed(&v, "timestamp_key_seed_hex")).public();
    let cosigned = verify_cosignatures(&verified.note, &verified.checkpoint, &[timestamp]).unwrap();
    assert_eq!(cosigned.len(), 1);
    assert_eq!(cosigned[0].time, v["cosignature_time"].as_u64().unwrap());
    assert_eq!(Note::parse(v["signed_note"].as_str().unwrap()).unwrap().render(), v["signed_note"]);
}

/// Prints the computed fields, to write a new version of the vectors by hand:
/// `cargo test -p fts-trust --test checkpoint_vectors -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_the_computed_vectors() {
    let v: Value = serde_json::from_str(VECTORS).unwrap();
    println!("{}", serde_json::to_string_pretty(&computed(&v)).unwrap());
}
