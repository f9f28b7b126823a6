//! Helpers shared by the store's integration tests: a real Ed25519 signer, names, and
//! snapshots of a folder tree.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ed25519_dalek::Signer as _;
use fts_proto::{FileName, KeyId, Signature, Statement, Target};
use fts_store::{Entry, Signer};
use sha2::{Digest, Sha256};

/// A release signing key made from a fixed seed.
pub struct TestKey(ed25519_dalek::SigningKey);

impl TestKey {
    pub fn new(seed: u8) -> Self {
        TestKey(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
    }

    /// Strict verification of an entry's signature over its statement bytes.
    pub fn verifies(&self, entry: &Entry) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(entry.signature.bytes());
        entry.key_id == self.key_id()
            && self.0.verifying_key().verify_strict(&entry.statement.to_bytes(), &sig).is_ok()
    }
}

impl Signer for TestKey {
    fn key_id(&self) -> KeyId {
        let digest = Sha256::digest(self.0.verifying_key().to_bytes());
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&digest[..8]);
        KeyId::from_prefix(prefix)
    }

    fn sign(&self, statement: &Statement) -> Signature {
        Signature::from_bytes(self.0.sign(&statement.to_bytes()).to_bytes())
    }
}

pub fn target(s: &str) -> Target {
    Target::parse(s).unwrap()
}

pub fn targets(list: &[&str]) -> Vec<Target> {
    list.iter().map(|s| target(s)).collect()
}

pub fn name(s: &str) -> FileName {
    FileName::parse(s).unwrap()
}

/// A file to publish, in its own folder (outside the store).
pub fn source_file(dir: &Path, file: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(file);
    fs::write(&path, content).unwrap();
    path
}

/// 2026-11-25T17:00:00Z plus `secs`.
pub fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_626_000 + secs)
}

/// Every file and folder under `root` with its size, mode and mtime.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u64, u32, SystemTime)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = fs::symlink_metadata(entry.path()).unwrap();
            out.insert(entry.path(), (meta.len(), meta.permissions().mode(), meta.modified().unwrap()));
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    out
}

/// The (target, seq) of each entry.
pub fn seqs(entries: &[Entry]) -> Vec<(String, u64)> {
    entries.iter().map(|e| (e.statement.target.to_string(), e.statement.seq)).collect()
}
