//! The RFC 6962 proof vectors of `tests/vectors/merkle/` (transparency-dev/merkle's
//! testdata, see its README): every file is read, and the verifiers must accept
//! exactly the cases with `wantErr: false`.
//!
//! Some cases hold "hashes" that are not 32 bytes (`""`, `"don't care"`, an empty
//! proof element). A [`LogHash`] cannot hold them: on the wire `LogHash::parse`
//! refuses them before any verifier runs, so such a case counts as refused. One of
//! them must be accepted (equal sizes of one, equal 12-byte roots, an empty proof): it
//! tests the equal-sizes rule, which the test checks by mapping each value that is
//! not 32 bytes to `SHA-256("not-32-bytes:" || value)` (equal values stay equal,
//! different ones different) and running the verifier on that.

use std::path::{Path, PathBuf};

use fts_log::merkle::{verify_consistency, verify_inclusion};
use fts_proto::LogHash;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/merkle")
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

/// A hash field, and whether it was a real 32-byte hash.
fn hash(v: &Value) -> (LogHash, bool) {
    let text = v.as_str().unwrap();
    let bytes = fts_proto::base64::decode(text).unwrap();
    match LogHash::parse(text) {
        Some(h) => (h, true),
        None => {
            let mut h = Sha256::new();
            h.update(b"not-32-bytes:");
            h.update(&bytes);
            (LogHash(h.finalize().into()), false)
        }
    }
}

fn proof(v: &Value) -> (Vec<LogHash>, bool) {
    match v {
        Value::Null => (Vec::new(), true),
        Value::Array(items) => {
            let hashes: Vec<(LogHash, bool)> = items.iter().map(hash).collect();
            (hashes.iter().map(|h| h.0).collect(), hashes.iter().all(|h| h.1))
        }
        other => panic!("proof {other}"),
    }
}

struct Outcome {
    files: usize,
    accepted: usize,
    refused: usize,
    /// Cases holding a value that is not a 32-byte hash.
    not_32: usize,
    /// Of those, the ones accepted (through the mapping).
    accepted_not_32: usize,
}

fn run(kind: &str) -> Outcome {
    let mut files = Vec::new();
    json_files(&vectors().join(kind), &mut files);
    let mut outcome = Outcome { files: 0, accepted: 0, refused: 0, not_32: 0, accepted_not_32: 0 };
    for path in &files {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let want_err = case["wantErr"].as_bool().unwrap();
        let (result, all_32) = if kind == "inclusion" {
            let (leaf, a) = hash(&case["leafHash"]);
            let (root, b) = hash(&case["root"]);
            let (p, c) = proof(&case["proof"]);
            let index = case["leafIdx"].as_u64().unwrap();
            let size = case["treeSize"].as_u64().unwrap();
            (verify_inclusion(index, size, &leaf, &p, &root), a && b && c)
        } else {
            let (root1, a) = hash(&case["root1"]);
            let (root2, b) = hash(&case["root2"]);
            let (p, c) = proof(&case["proof"]);
            let size1 = case["size1"].as_u64().unwrap();
            let size2 = case["size2"].as_u64().unwrap();
            (verify_consistency(size1, size2, &root1, &root2, &p), a && b && c)
        };
        if !all_32 {
            outcome.not_32 += 1;
            if want_err {
                // Refused by LogHash::parse; nothing more to check.
                outcome.refused += 1;
                outcome.files += 1;
                continue;
            }
        }
        assert_eq!(
            result.is_err(),
            want_err,
            "{}: {} ({result:?})",
            path.display(),
            case["desc"].as_str().unwrap_or("")
        );
        if result.is_ok() {
            outcome.accepted += 1;
        } else {
            outcome.refused += 1;
        }
        // A case with a value that is not a 32-byte hash could never reach the
        // verifier from the wire; it was run above all the same.
        if !all_32 && result.is_ok() {
            outcome.accepted_not_32 += 1;
        }
        outcome.files += 1;
    }
    assert_eq!(outcome.files, files.len());
    outcome
}

fn count_json(dir: &Path) -> usize {
    let mut files = Vec::new();
    json_files(dir, &mut files);
    files.len()
}

#[test]
fn inclusion_vectors() {
    let o = run("inclusion");
    assert!(o.files > 0);
    assert_eq!(o.files, count_json(&vectors().join("inclusion")));
    // 5 happy paths (trees 0 to 4) and the single-entry match.
    assert_eq!(o.accepted, 6, "accepted");
    assert_eq!(o.accepted_not_32, 0);
    assert_eq!(o.not_32, 26);
    assert_eq!(o.accepted + o.refused, o.files);
}

#[test]
fn consistency_vectors() {
    let o = run("consistency");
    assert!(o.files > 0);
    assert_eq!(o.files, count_json(&vectors().join("consistency")));
    // 5 happy paths (0 to 4) and equal sizes of one with equal (12-byte) roots.
    assert_eq!(o.accepted, 6, "accepted");
    assert_eq!(o.accepted_not_32, 1);
    assert_eq!(o.not_32, 27);
    assert_eq!(o.accepted + o.refused, o.files);
}

#[test]
fn every_vector_file_is_exercised() {
    // Every JSON file under the folder is an inclusion or a consistency case.
    let all = count_json(&vectors());
    assert_eq!(all, count_json(&vectors().join("inclusion")) + count_json(&vectors().join("consistency")));
    assert_eq!(all, 196, "the vectors as copied from transparency-dev/merkle 417fb0c");
}
