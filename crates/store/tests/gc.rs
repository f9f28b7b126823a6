//! `Store::gc` on real files: what a dry run reports it leaves byte for byte in
//! place; a real run removes exactly those blob files and nothing else (the journal,
//! the log, stray files, links); unreferenced blobs go only once an hour old; a
//! missing store is an error that creates nothing.

mod common;

use std::fs;
use std::num::NonZeroUsize;
use std::time::Duration;

use common::*;
use fts_fs::FileKind;
use fts_proto::{FileHash, Seq, WithdrawReason};
use fts_store::{Collected, NotAStore, Reference, Store, StoreError, UNREFERENCED_MIN_AGE, Unneeded};

fn keep(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

/// app.conf three times (seq 1, 2, 4), tool.conf once (seq 3), seq 2 withdrawn: the
/// blobs of seq 1 (superseded by 4) and seq 2 (withdrawn) are unneeded.
fn three_versions(dir: &std::path::Path, key: &TestKey) -> (Store, Vec<FileHash>) {
    let store = Store::open_or_create(dir.join("store")).unwrap();
    let mut hashes = Vec::new();
    for (i, (file, content)) in
        [("app.conf", "v1"), ("app.conf", "v2"), ("tool.conf", "tool"), ("app.conf", "v3")].iter().enumerate()
    {
        let source = source_file(dir, "source", content.as_bytes());
        let entries =
            store.publish_at(&source, &name(file), &targets(&["web-01"]), key, at(i as u64)).unwrap();
        hashes.push(entries[0].statement.file_hash);
    }
    let reason = WithdrawReason::parse("bad").unwrap();
    store.withdraw(&target("web-01"), Seq::new(2).unwrap(), reason, false, key, at(10)).unwrap();
    (store, hashes)
}

#[test]
fn a_dry_run_lists_what_gc_then_removes_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::new(1);
    let (store, hashes) = three_versions(dir.path(), &key);
    let before = snapshot(store.dir());

    let dry = store.gc(keep(1), true, at(20)).unwrap();
    assert!(dry.dry_run);
    assert_eq!(snapshot(store.dir()), before, "a dry run writes nothing");
    let listed: Vec<_> = dry.blobs.iter().map(|b| (b.hash, b.size)).collect();
    assert_eq!(listed, [(hashes[0], 2), (hashes[1], 2)]);
    assert_eq!(dry.bytes(), 4);
    assert_eq!(
        dry.blobs[0].why,
        Collected::Unneeded(vec![Reference {
            target: target("web-01"),
            seq: Seq::new(1).unwrap(),
            file_name: name("app.conf"),
            why: Unneeded::SupersededBy(Seq::new(4).unwrap()),
        }])
    );

    let journal = fs::read(store.dir().join("journal")).unwrap();
    let leaves = fs::read(store.dir().join("log/leaves")).unwrap();
    let done = store.gc(keep(1), false, at(20)).unwrap();
    assert_eq!(done.blobs, dry.blobs, "the run removes what the dry run listed");
    for hash in &hashes[..2] {
        assert!(!store.blob_path(hash).exists(), "{hash} removed");
    }
    for hash in &hashes[2..] {
        assert!(store.blob_path(hash).exists(), "{hash} kept");
    }
    assert_eq!(fs::read(store.dir().join("journal")).unwrap(), journal, "the journal keeps every statement");
    assert_eq!(fs::read(store.dir().join("log/leaves")).unwrap(), leaves, "and so does the log");
    assert!(store.gc(keep(1), false, at(20)).unwrap().blobs.is_empty(), "a second run has nothing to do");
}

#[test]
fn keep_two_keeps_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::new(1);
    let (store, hashes) = three_versions(dir.path(), &key);
    let report = store.gc(keep(2), false, at(20)).unwrap();
    // v2 is withdrawn, so the two newest versions not withdrawn are v3 and v1.
    assert_eq!(report.blobs.iter().map(|b| b.hash).collect::<Vec<_>>(), [hashes[1]]);
    assert!(store.blob_path(&hashes[0]).exists());
}

#[test]
fn an_unreferenced_blob_goes_only_once_an_hour_old() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::new(1);
    let (store, _) = three_versions(dir.path(), &key);
    // What a publish that crashed after copying leaves: a blob no record names.
    let (orphan, size) = store.put_blob(&b"crashed before its record"[..]).unwrap();
    let now = std::time::SystemTime::now();
    let young = store.gc(keep(1), true, now).unwrap();
    assert!(young.blobs.iter().all(|b| b.hash != orphan), "a publish in progress may be about to name it");

    let later = now + UNREFERENCED_MIN_AGE + Duration::from_secs(1);
    let old = store.gc(keep(1), false, later).unwrap();
    let found = old.blobs.iter().find(|b| b.hash == orphan).expect("collected");
    assert_eq!(found.size, size);
    assert!(matches!(found.why, Collected::Unreferenced { age } if age >= UNREFERENCED_MIN_AGE));
    assert_eq!(old.unreferenced(), (1, size));
    assert!(!store.blob_path(&orphan).exists());
}

#[test]
fn links_and_stray_files_in_blobs_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::new(1);
    let (store, hashes) = three_versions(dir.path(), &key);
    // The superseded blob replaced by a link to a file outside the store.
    let outside = source_file(dir.path(), "outside", b"v1");
    let blob = store.blob_path(&hashes[0]);
    fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink(&outside, &blob).unwrap();
    // A sync tool's temp beside the blobs, old enough to be collected were it a blob.
    let stray = blob.parent().unwrap().join(".rsync-tmp.abc");
    fs::write(&stray, b"?").unwrap();

    let report = store.gc(keep(1), false, at(1_000_000)).unwrap();
    assert_eq!(report.blobs.iter().map(|b| b.hash).collect::<Vec<_>>(), [hashes[1]]);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].path, blob);
    assert_eq!(report.skipped[0].found, FileKind::SymbolicLink);
    assert!(fs::symlink_metadata(&blob).unwrap().file_type().is_symlink(), "the link is left");
    assert_eq!(fs::read(&outside).unwrap(), b"v1", "its target untouched");
    assert!(stray.exists(), "not a blob's name: not gc's");
}

#[test]
fn gc_refuses_a_folder_that_is_no_store_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    assert!(Store::open_existing(&missing).is_err());
    assert!(!missing.exists(), "nothing created");
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let err = Store::open_existing(&empty).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { problem: NotAStore::NoJournal, .. }), "{err:?}");
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0, "nothing created");
}

#[test]
fn a_version_published_again_after_gc_gets_its_content_back() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::new(1);
    let (store, hashes) = three_versions(dir.path(), &key);
    // A rollback: v1 published again after gc removed its blob. (The race, a publish
    // that found the blob stored before gc removed it, is the unit test of
    // `Store::blob_still_there` in gc.rs.)
    store.gc(keep(1), false, at(20)).unwrap();
    assert!(!store.blob_path(&hashes[0]).exists());
    let source = source_file(dir.path(), "again", b"v1");
    store.publish_at(&source, &name("app.conf"), &targets(&["web-01"]), &key, at(30)).unwrap();
    assert_eq!(fs::read(store.blob_path(&hashes[0])).unwrap(), b"v1");
}
