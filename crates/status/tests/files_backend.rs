//! The shared status suite ([`suite`]) against the files backend, the embedded
//! default ([`fts_status::StatusDir`] in a temporary folder).

#[macro_use]
mod suite;

use fts_status::StatusDir;

/// A fresh, empty status folder (in a temporary folder kept beside it).
fn files(_test: &str) -> Option<(tempfile::TempDir, StatusDir)> {
    let dir = tempfile::tempdir().unwrap();
    let backend = StatusDir::open_or_create(dir.path().join("status")).unwrap();
    Some((dir, backend))
}

suite_tests!(files);
