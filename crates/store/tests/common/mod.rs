//! Helpers shared by the store's integration tests: a real Ed25519 signer, names, and
//! snapshots of a folder tree.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use fts_proto::Signer;
use fts_proto::{FileName, KeyId, Signature, Statement, Target};
use fts_store::Entry;
use fts_trust::{SigningKey, TrustedKeys};

/// A release signing key made from a fixed seed, with the trusted set a host would
/// verify its entries with.
pub struct TestKey {
    key: SigningKey,
    trusted: TrustedKeys,
}

impl TestKey {
    pub fn new(seed: u8) -> Self {
        let key = SigningKey::from_seed(&[seed; 32]);
        let mut trusted = TrustedKeys::default();
        trusted.insert(key.public_key(), Path::new("test")).unwrap();
        TestKey { key, trusted }
    }

    /// What a host checks: the key id is trusted and the signature verifies
    /// (strictly) over the statement bytes.
    pub fn verifies(&self, entry: &Entry) -> bool {
        self.trusted.verify(entry.statement.clone(), &entry.key_id, &entry.signature).is_ok()
    }
}

/// Publishing goes through fts-trust's own key, as `fts publish` does.
impl Signer for TestKey {
    fn key_id(&self) -> KeyId {
        Signer::key_id(&self.key)
    }

    fn sign(&self, statement: &Statement) -> Signature {
        Signer::sign(&self.key, statement)
    }

    fn sign_checkpoint(&self, checkpoint: &fts_proto::Checkpoint) -> String {
        self.key.sign_checkpoint(checkpoint)
    }

    fn sign_withdrawal(&self, withdrawal: &fts_proto::WithdrawStatement) -> Signature {
        self.key.sign_withdrawal(withdrawal)
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
    entries.iter().map(|e| (e.statement.target.to_string(), e.statement.seq.get())).collect()
}
