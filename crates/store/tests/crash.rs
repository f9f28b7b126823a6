//! Torn, garbage and corrupt journals: what readers serve and what the next publisher
//! does.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use common::*;
use fts_store::{DamageKind, Store, StoreError, StoreReader};

/// A store with one publish to `all`, then the bytes of the journal before and after
/// a second, three-target publish.
fn store_with_a_multi_target_publish(dir: &Path) -> (Store, Vec<u8>, Vec<u8>) {
    let (store, before, after, _) = store_with_a_multi_target_publish_and_log(dir);
    (store, before, after)
}

/// The log's files (`log/leaves`, `log/checkpoint`), each with its bytes.
type LogFiles = [(std::path::PathBuf, Vec<u8>); 2];

/// The log's files as they are.
fn log_files(store: &Store) -> LogFiles {
    ["leaves", "checkpoint"].map(|name| {
        let path = store.dir().join("log").join(name);
        let bytes = fs::read(&path).unwrap();
        (path, bytes)
    })
}

/// [`store_with_a_multi_target_publish`], with the log's files before the second
/// publish: a publisher appends to the log only once its journal record is whole, so
/// a journal cut inside that record goes with the log of before.
fn store_with_a_multi_target_publish_and_log(dir: &Path) -> (Store, Vec<u8>, Vec<u8>, LogFiles) {
    let store = Store::open_or_create(dir.join("store")).unwrap();
    let key = TestKey::new(3);
    let file = source_file(dir, "f", b"first");
    store.publish_at(&file, &name("first"), &targets(&["all"]), &key, at(0)).unwrap();
    let before = fs::read(store.dir().join("journal")).unwrap();
    let log_before = log_files(&store);
    let file = source_file(dir, "g", b"second");
    store.publish_at(&file, &name("second"), &targets(&["web-01", "all", "group:web"]), &key, at(1)).unwrap();
    let after = fs::read(store.dir().join("journal")).unwrap();
    (store, before, after, log_before)
}

#[test]
fn a_multi_target_publish_cut_at_any_byte_serves_none_of_its_entries_and_the_next_publish_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, before, after, log_before) = store_with_a_multi_target_publish_and_log(dir.path());
    let journal = store.dir().join("journal");
    let key = TestKey::new(3);
    let file = source_file(dir.path(), "h", b"third");
    let wants = [(target("all"), 0), (target("web-01"), 0), (target("group:web"), 0)];
    for cut in before.len()..after.len() {
        fs::write(&journal, &after[..cut]).unwrap();
        for (path, bytes) in &log_before {
            fs::write(path, bytes).unwrap();
        }
        let reader = StoreReader::open(store.dir()).unwrap();
        assert_eq!(seqs(reader.entries()), [("all".into(), 1)], "cut at {cut}");
        assert_eq!(seqs(&reader.entries_for(&wants, 100, u64::MAX).entries()), [("all".into(), 1)]);
        if cut > before.len() {
            assert_eq!(reader.damage().unwrap().kind, DamageKind::Incomplete, "cut at {cut}");
        }

        let entries =
            store.publish_at(&file, &name("third"), &targets(&["group:web", "all"]), &key, at(2)).unwrap();
        assert_eq!(seqs(&entries), [("group:web".into(), 1), ("all".into(), 2)], "cut at {cut}");
        let reader = StoreReader::open(store.dir()).unwrap();
        assert_eq!(reader.damage(), None, "the torn tail was truncated (cut at {cut})");
        assert_eq!(reader.entries().len(), 3);
    }
}

#[test]
fn a_zero_filled_tail_is_never_served_and_is_truncated_by_the_next_publish() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _, after) = store_with_a_multi_target_publish(dir.path());
    let journal = store.dir().join("journal");
    OpenOptions::new().append(true).open(&journal).unwrap().write_all(&[0u8; 4096]).unwrap();
    let reader = StoreReader::open(store.dir()).unwrap();
    assert_eq!(reader.entries().len(), 4);
    assert_eq!(reader.damage().unwrap().offset, after.len() as u64);

    let file = source_file(dir.path(), "h", b"third");
    let entries = store.publish(&file, &name("third"), &targets(&["all"]), &TestKey::new(3)).unwrap();
    assert_eq!(entries[0].statement.seq.get(), 3);
    assert_eq!(
        &fs::read(&journal).unwrap()[..after.len()],
        &after[..],
        "the valid records are kept byte for byte"
    );
    assert_eq!(StoreReader::open(store.dir()).unwrap().damage(), None);
}

#[test]
fn a_garbage_line_at_the_end_is_ignored_by_readers() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _, _) = store_with_a_multi_target_publish(dir.path());
    let journal = store.dir().join("journal");
    OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap()
        .write_all(b"{\"record\":\"publish\"}\tdeadbeefdeadbeef\n")
        .unwrap();
    let reader = StoreReader::open(store.dir()).unwrap();
    assert_eq!(reader.entries().len(), 4);
    assert_eq!(reader.damage().unwrap().kind, DamageKind::BadChecksum);
}

#[test]
fn a_damaged_record_followed_by_valid_ones_is_corruption_for_the_publisher() {
    let dir = tempfile::tempdir().unwrap();
    let (store, before, _) = store_with_a_multi_target_publish(dir.path());
    let file = source_file(dir.path(), "h", b"third");
    store.publish(&file, &name("third"), &targets(&["all"]), &TestKey::new(3)).unwrap();
    let journal = store.dir().join("journal");
    let mut bytes = fs::read(&journal).unwrap();
    let damaged_at = before.len() + 10; // inside the second record
    bytes[damaged_at] ^= 0x20;
    fs::write(&journal, &bytes).unwrap();

    let reader = StoreReader::open(store.dir()).unwrap();
    assert_eq!(seqs(reader.entries()), [("all".into(), 1)], "readers stop at the damage");
    assert_eq!(reader.damage().unwrap().offset, before.len() as u64);

    let err = store.publish(&file, &name("third"), &targets(&["all"]), &TestKey::new(3)).unwrap_err();
    match &err {
        StoreError::Corrupt { offset, .. } => assert_eq!(*offset, before.len() as u64),
        other => panic!("expected corruption, got {other}"),
    }
    assert!(err.to_string().contains("followed by a valid record"), "{err}");
    assert_eq!(fs::read(&journal).unwrap(), bytes, "nothing is truncated or appended");
}

#[test]
fn an_intact_record_that_breaks_the_seq_rule_is_corruption_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _, _) = store_with_a_multi_target_publish(dir.path());
    let journal = store.dir().join("journal");
    let text = fs::read_to_string(&journal).unwrap();
    let last = text.lines().last().unwrap();
    // Replay the last record: valid checksum, but seqs that were already used.
    fs::write(&journal, format!("{text}{last}\n")).unwrap();
    let reader = StoreReader::open(store.dir()).unwrap();
    assert_eq!(reader.entries().len(), 4);
    assert!(matches!(&reader.damage().unwrap().kind, DamageKind::Invalid(d) if d.contains("expected")));
    let file = source_file(dir.path(), "h", b"third");
    let err = store.publish(&file, &name("third"), &targets(&["all"]), &TestKey::new(3)).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

#[test]
fn an_empty_journal_gets_its_header_from_the_next_publish() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    fs::write(store.dir().join("journal"), b"").unwrap();
    assert!(StoreReader::open(store.dir()).unwrap().entries().is_empty());
    let file = source_file(dir.path(), "f", b"x");
    store.publish(&file, &name("a"), &targets(&["all"]), &TestKey::new(1)).unwrap();
    let reader = StoreReader::open(store.dir()).unwrap();
    assert_eq!(reader.entries().len(), 1);
    assert_eq!(reader.damage(), None);
}
