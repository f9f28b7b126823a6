//! fts-testkit: the helpers more than one test suite needs, in one copy. Test suites
//! of different crates are different crates, so they share through this one (a
//! dev-dependency only; nothing here is shipped).
//!
//! - [`openssl`]: runs the system's `openssl` to check fts's keys, certificates and
//!   CRLs with an independent implementation;
//! - [`strategies`]: proptest strategies for the protocol's names, numbers and reasons;
//! - [`postgres`]: a real PostgreSQL on loopback: a database per test, or a cluster
//!   of a test's own that it can stop and start.
//!
//! Integration tests only: a crate's own unit tests would see a second copy of
//! fts-proto's types through this crate.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod openssl;
pub mod postgres;
pub mod strategies;

/// Writes `bytes` to a new file at `path` that only its owner may read (a test's
/// password file, say).
pub fn write_private(path: &std::path::Path, bytes: &[u8]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    file.write_all(bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}
