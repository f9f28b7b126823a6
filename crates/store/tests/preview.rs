//! The operator's view of a store: a publish previewed (`fts publish --dry-run`)
//! without writing anything, and the history with each record's note and publisher
//! (`fts log`).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;
use fts_proto::Signer;
use fts_store::{History, NotAStore, Note, Preview, Provenance, Publisher, Store, StoreError};

/// Every file under `root` with its bytes (folders as `None`), beside [`snapshot`]'s
/// sizes, modes and mtimes: "nothing written" means both are equal.
fn contents(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    snapshot(root)
        .into_keys()
        .map(|path| {
            let bytes = fs::symlink_metadata(&path).unwrap().is_file().then(|| fs::read(&path).unwrap());
            (path, bytes)
        })
        .collect()
}

fn preview(dir: &Path, file: &Path, to: &[&str], key: &TestKey) -> fts_store::Result<Preview> {
    Preview::of(dir, file, &name("fix.sh"), &targets(to), key.key_id(), &Provenance::default(), at(100))
}

#[test]
fn a_preview_gives_what_the_publish_then_gets_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let key = TestKey::new(3);
    let file = source_file(dir.path(), "fix.sh", b"echo fixed");
    store.publish_at(&file, &name("a"), &targets(&["all", "web-01"]), &key, at(0)).unwrap();
    store.publish_at(&file, &name("b"), &targets(&["all"]), &key, at(1)).unwrap();
    let before = (snapshot(store.dir()), contents(store.dir()));

    let plan = preview(store.dir(), &file, &["all", "web-01", "group:web"], &key).unwrap();
    assert_eq!((snapshot(store.dir()), contents(store.dir())), before, "a preview writes nothing");
    assert!(!plan.creates_store && plan.torn_tail.is_none());

    let published = store
        .publish_at(&file, &name("fix.sh"), &targets(&["all", "web-01", "group:web"]), &key, at(100))
        .unwrap();
    let got: Vec<_> = published.iter().map(|e| (e.statement.target.clone(), e.statement.seq)).collect();
    assert_eq!(plan.entries, got);
    assert_eq!(seqs(&published), [("all".into(), 3), ("web-01".into(), 2), ("group:web".into(), 1)]);
    let statement = &published[0].statement;
    assert_eq!(
        (&plan.file_name, plan.file_size, plan.file_hash, &plan.published),
        (&statement.file_name, statement.file_size, statement.file_hash, &statement.published)
    );
}

#[test]
fn a_preview_of_a_store_not_yet_made_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::new(3);
    let file = source_file(dir.path(), "fix.sh", b"echo fixed");
    let plan = preview(&dir.path().join("store"), &file, &["all"], &key).unwrap();
    assert!(plan.creates_store);
    assert_eq!(plan.entries[0].1.get(), 1);
    assert!(!dir.path().join("store").exists(), "not even the folder");
}

#[test]
fn a_preview_fails_as_the_publish_would_and_leaves_a_torn_tail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::new(3);
    let file = source_file(dir.path(), "fix.sh", b"echo fixed");

    let foreign = dir.path().join("home");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join(".bashrc"), b"").unwrap();
    let err = preview(&foreign, &file, &["all"], &key).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { problem: NotAStore::ForeignFile { .. }, .. }), "{err:?}");

    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    store.publish_at(&file, &name("a"), &targets(&["all"]), &key, at(0)).unwrap();
    let err = preview(store.dir(), &file, &["all", "all"], &key).unwrap_err();
    assert!(matches!(err, StoreError::DuplicateTarget { .. }), "{err:?}");
    let err = preview(store.dir(), &dir.path().join("missing"), &["all"], &key).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");

    // A torn tail: the publish would truncate it; the preview says so and leaves it.
    let journal = store.dir().join("journal");
    let intact = fs::read(&journal).unwrap();
    fs::OpenOptions::new().append(true).open(&journal).unwrap().write_all(b"{\"record\":\"pub").unwrap();
    let before = contents(store.dir());
    let plan = preview(store.dir(), &file, &["all"], &key).unwrap();
    assert!(plan.torn_tail.is_some());
    assert_eq!(plan.entries[0].1.get(), 2);
    assert_eq!(contents(store.dir()), before);

    // Corruption in the middle: refused, as the publish refuses it.
    let header_end = intact.iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut bytes = intact.clone();
    bytes.extend_from_slice(b"garbage\n");
    bytes.extend_from_slice(&intact[header_end..]);
    fs::write(&journal, &bytes).unwrap();
    let err = preview(store.dir(), &file, &["all"], &key).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let err = store.publish_at(&file, &name("fix.sh"), &targets(&["all"]), &key, at(100)).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

#[test]
fn the_history_shows_each_record_with_its_note_and_publisher() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let key = TestKey::new(3);
    let file = source_file(dir.path(), "fix.sh", b"echo fixed");
    let noted =
        Provenance::new(Note::parse("CVE-2026-1234 hotfix").ok(), Publisher::new("alice", Some("signer")));
    store.publish_with(&file, &name("fix.sh"), &targets(&["web-01", "all"]), &key, &noted, at(0)).unwrap();
    store.publish_at(&file, &name("plain.sh"), &targets(&["all"]), &key, at(1)).unwrap();

    let history = History::read(store.dir()).unwrap();
    let rows: Vec<_> = history
        .entries()
        .map(|(entry, provenance)| {
            let note = provenance.and_then(|p| p.note.clone());
            let by = provenance.and_then(|p| p.publisher.as_ref()).map(ToString::to_string);
            (entry.statement.target.to_string(), entry.statement.seq.get(), note, by)
        })
        .collect();
    let hotfix = || Some("CVE-2026-1234 hotfix".to_owned());
    let alice = || Some("alice@signer".to_owned());
    assert_eq!(
        rows,
        [
            ("web-01".into(), 1, hotfix(), alice()),
            ("all".into(), 1, hotfix(), alice()),
            ("all".into(), 2, None, None)
        ]
    );
    assert!(history.damage().is_none());

    // The server serves the noted record like any other.
    let reader = fts_store::StoreReader::open(store.dir()).unwrap();
    assert_eq!(reader.entries().len(), 3);
    assert!(reader.entries().iter().all(|e| key.verifies(e)));
}

#[test]
fn the_history_of_a_folder_that_is_no_store_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = History::read(&dir.path().join("nope")).unwrap_err();
    assert!(matches!(&err, StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound));
    let err = History::read(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { problem: NotAStore::NoJournal, .. }), "{err:?}");
    let file = source_file(dir.path(), "f", b"x");
    let err = History::read(&file).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { problem: NotAStore::NotAFolder, .. }), "{err:?}");
}
