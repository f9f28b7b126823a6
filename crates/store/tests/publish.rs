//! Publishing: entries, sequence numbers, blobs and the published time.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::*;
use fts_proto::{FileHash, Published};
use fts_store::{Store, StoreError, StoreReader};
use sha2::{Digest, Sha256};

#[test]
fn a_publish_is_read_back_with_its_statement_fields_and_content() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let key = TestKey::new(7);
    let file = source_file(dir.path(), "patch.deb", b"patch content");

    let published = store
        .publish_at(
            &file,
            &name("openssl-3.0.19.deb"),
            &targets(&["web-01", "all", "group:web"]),
            &key,
            at(0),
        )
        .unwrap();

    assert_eq!(seqs(&published), [("web-01".into(), 1), ("all".into(), 1), ("group:web".into(), 1)]);
    let expected_hash = FileHash::from_digest(Sha256::digest(b"patch content").into());
    for (i, entry) in published.iter().enumerate() {
        assert_eq!(entry.position, i as u64);
        assert_eq!(entry.statement.file_name.as_str(), "openssl-3.0.19.deb");
        assert_eq!(entry.statement.file_size, 13);
        assert_eq!(entry.statement.file_hash, expected_hash);
        assert_eq!(entry.statement.published.as_str(), "2026-11-25T17:00:00Z");
        assert!(key.verifies(entry), "entry {i} carries a valid signature over its statement");
    }

    let reader = StoreReader::open(store.dir()).unwrap();
    assert_eq!(reader.entries(), &published[..]);
    assert_eq!(reader.newest_seq(&target("all")), 1);
    assert_eq!(reader.newest_seq(&target("web-02")), 0);
    let blob = reader.blob_path(&expected_hash);
    assert_eq!(fs::read(&blob).unwrap(), b"patch content");
    assert_eq!(fs::metadata(&blob).unwrap().permissions().mode() & 0o777, 0o444, "blobs are read-only");
    let hex = expected_hash.hex();
    assert!(blob.ends_with(format!("blobs/{}/{hex}", &hex[..2])));
}

#[test]
fn each_target_counts_its_own_sequence_from_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let key = TestKey::new(1);
    let file = source_file(dir.path(), "f", b"x");
    store.publish_at(&file, &name("a"), &targets(&["all"]), &key, at(0)).unwrap();
    store.publish_at(&file, &name("b"), &targets(&["all", "web-01"]), &key, at(1)).unwrap();
    let third =
        store.publish_at(&file, &name("c"), &targets(&["web-01", "group:db", "all"]), &key, at(2)).unwrap();
    assert_eq!(seqs(&third), [("web-01".into(), 2), ("group:db".into(), 1), ("all".into(), 3)]);
    assert_eq!(third[0].position, 3, "positions continue across publishes");

    let reader = StoreReader::open(store.dir()).unwrap();
    let newest: Vec<_> = reader.targets().map(|(t, n)| (t.to_string(), n)).collect();
    assert_eq!(newest, [("web-01".into(), 2), ("all".into(), 3), ("group:db".into(), 1)]);
    let seq = |n| fts_proto::Seq::new(n).unwrap();
    assert_eq!(reader.entry(&target("all"), seq(2)).unwrap().statement.file_name.as_str(), "b");
    assert_eq!(
        reader.entry(&target("all"), fts_proto::Seq::FIRST).unwrap().statement.file_name.as_str(),
        "a"
    );
    assert!(reader.entry(&target("all"), seq(4)).is_none());
}

#[test]
fn the_published_time_always_moves_forward_even_when_the_clock_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let key = TestKey::new(1);
    let file = source_file(dir.path(), "f", b"x");
    let first = store.publish_at(&file, &name("a"), &targets(&["all"]), &key, at(100)).unwrap();
    let second = store.publish_at(&file, &name("a"), &targets(&["all"]), &key, at(50)).unwrap();
    let third = store.publish_at(&file, &name("a"), &targets(&["all"]), &key, at(101)).unwrap();
    let fourth = store.publish_at(&file, &name("a"), &targets(&["all"]), &key, at(200)).unwrap();
    // The clock went back (50) and then stood still (101 is the time already used).
    assert!(second[0].statement.published > first[0].statement.published);
    assert!(third[0].statement.published > second[0].statement.published);
    assert_eq!(third[0].statement.published, Published::parse("2026-11-25T17:01:42Z").unwrap());
    assert_eq!(
        fourth[0].statement.published,
        Published::parse("2026-11-25T17:03:20Z").unwrap(),
        "back on the clock"
    );
    assert!(key.verifies(&second[0]));
}

#[test]
fn a_publish_with_no_target_or_a_target_twice_is_refused_and_writes_no_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let key = TestKey::new(1);
    let file = source_file(dir.path(), "f", b"x");
    let err = store.publish(&file, &name("a"), &[], &key).unwrap_err();
    assert!(matches!(err, StoreError::NoTargets), "{err}");
    let err = store.publish(&file, &name("a"), &targets(&["all", "web-01", "all"]), &key).unwrap_err();
    assert_eq!(err.to_string(), "target all is given more than once");
    assert!(StoreReader::open(store.dir()).unwrap().entries().is_empty());
}

#[test]
fn a_missing_or_non_regular_source_is_refused_naming_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let key = TestKey::new(1);
    let missing = dir.path().join("nope.deb");
    let err = store.publish(&missing, &name("a"), &targets(&["all"]), &key).unwrap_err();
    assert!(err.to_string().starts_with("cannot open "), "{err}");
    assert!(err.to_string().contains("nope.deb"), "{err}");
    let err = store.publish(dir.path(), &name("a"), &targets(&["all"]), &key).unwrap_err();
    assert!(matches!(err, StoreError::NotAFile { .. }), "{err}");
}

#[test]
fn the_same_content_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let (h1, s1) = store.put_blob(&b"same bytes"[..]).unwrap();
    let (h2, s2) = store.put_blob(&b"same bytes"[..]).unwrap();
    assert_eq!((h1, s1), (h2, s2));
    let shard = store.blob_path(&h1).parent().unwrap().to_path_buf();
    assert_eq!(fs::read_dir(&shard).unwrap().count(), 1);
    assert_eq!(fs::read_dir(store.dir().join("tmp")).unwrap().count(), 0, "no temp is left behind");
}

#[test]
fn a_file_larger_than_the_copy_buffer_is_hashed_and_copied_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let content: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i * 31 % 251) as u8).collect();
    let (hash, size) = store.put_blob(&content[..]).unwrap();
    assert_eq!(size, content.len() as u64);
    assert_eq!(hash, FileHash::from_digest(Sha256::digest(&content).into()));
    assert_eq!(fs::read(store.blob_path(&hash)).unwrap(), content);
}

#[test]
fn a_blob_of_the_wrong_size_is_replaced_by_the_next_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let (hash, _) = store.put_blob(&b"good content"[..]).unwrap();
    let blob = store.blob_path(&hash);
    fs::remove_file(&blob).unwrap();
    fs::write(&blob, b"cut").unwrap();
    store.put_blob(&b"good content"[..]).unwrap();
    assert_eq!(fs::read(&blob).unwrap(), b"good content");
}

#[test]
fn a_blob_with_other_bytes_of_the_same_size_is_repaired_by_the_next_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let (hash, _) = store.put_blob(&b"good content"[..]).unwrap();
    let blob = store.blob_path(&hash);
    // Bit rot, or a change on the signing host: same size, other bytes.
    fs::remove_file(&blob).unwrap();
    fs::write(&blob, b"evil content").unwrap();
    assert_eq!(store.put_blob(&b"good content"[..]).unwrap().0, hash);
    assert_eq!(fs::read(&blob).unwrap(), b"good content");
    assert_eq!(fs::metadata(&blob).unwrap().permissions().mode() & 0o777, 0o444);
    assert_eq!(fs::read_dir(store.dir().join("tmp")).unwrap().count(), 0, "no temp is left behind");
}

#[test]
fn a_link_in_the_place_of_a_blob_is_replaced_and_its_target_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let (hash, _) = store.put_blob(&b"good content"[..]).unwrap();
    let blob = store.blob_path(&hash);
    let target = dir.path().join("other");
    fs::write(&target, b"good content").unwrap();
    fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink(&target, &blob).unwrap();
    store.put_blob(&b"good content"[..]).unwrap();
    assert!(fs::symlink_metadata(&blob).unwrap().is_file(), "the link was replaced by the blob");
    assert_eq!(fs::read(&blob).unwrap(), b"good content");
    assert_eq!(fs::read(&target).unwrap(), b"good content");
}

#[test]
fn a_publisher_removes_temps_left_by_a_killed_one_but_not_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    // A killed publisher's temp: its lock went with the process, however young it is.
    let old = store.dir().join("tmp/.fts-tmp-blob-4242424242424242");
    let young = store.dir().join("tmp/.fts-tmp-blob-4343434343434343");
    fs::write(&old, b"half a copy").unwrap();
    fs::write(&young, b"half a copy").unwrap();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    fs::File::options().write(true).open(&old).unwrap().set_modified(two_hours_ago).unwrap();
    // A live publisher's temp, locked while it copies, however slowly.
    let tmp = fts_fs::Dir::open(store.dir().join("tmp")).unwrap();
    let (live, _copying) =
        fts_fs::TempFile::create(&tmp, "blob", fts_fs::FileMode::LessUmask(0o644)).unwrap();
    let file = source_file(dir.path(), "f", b"x");
    store.publish(&file, &name("a"), &targets(&["all"]), &TestKey::new(1)).unwrap();
    assert!(!old.exists(), "an old unlocked temp is removed");
    assert!(!young.exists(), "so is a young one: only a lock says a temp is in the making");
    assert!(live.path().exists(), "a temp whose publisher holds its lock is kept");
}

#[test]
fn a_folder_with_other_files_is_not_turned_into_a_store() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    let err = Store::open_or_create(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err}");
    let text = fts_proto::ErrorChain(&err).to_string();
    assert!(text.contains("notes.txt"), "{text}");
    assert!(!dir.path().join("journal").exists());
}

#[test]
fn a_store_of_an_unknown_version_is_refused_by_publisher_and_reader() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    Store::open_or_create(&store_dir).unwrap();
    let json = r#"{"record":"store","format":"fts-store","version":7}"#;
    let sum = &hex::encode(Sha256::digest(json.as_bytes()))[..16];
    fs::write(store_dir.join("journal"), format!("{json}\t{sum}\n")).unwrap();
    for err in [Store::open_or_create(&store_dir).unwrap_err(), StoreReader::open(&store_dir).unwrap_err()] {
        assert!(matches!(err, StoreError::UnsupportedVersion { found: 7, supported: 1, .. }), "{err}");
        assert!(err.to_string().contains("journal"), "names the path: {err}");
    }
}

#[test]
fn reopening_an_existing_store_keeps_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::new(1);
    let file = source_file(dir.path(), "f", b"x");
    Store::open_or_create(dir.path().join("s"))
        .unwrap()
        .publish(&file, &name("a"), &targets(&["all"]), &key)
        .unwrap();
    let again = Store::open_or_create(dir.path().join("s")).unwrap();
    let e = again.publish(&file, &name("a"), &targets(&["all"]), &key).unwrap();
    assert_eq!(e[0].statement.seq.get(), 2);
}

#[test]
fn a_publish_signed_with_the_trust_signing_key_verifies_and_a_changed_field_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let key = fts_trust::SigningKey::from_seed(&[4; 32]);
    let file = source_file(dir.path(), "f", b"x");
    let entry = store.publish(&file, &name("a"), &targets(&["web-01"]), &key).unwrap().remove(0);
    let mut trusted = fts_trust::TrustedKeys::default();
    trusted.insert(key.public_key(), std::path::Path::new("signing.pub")).unwrap();
    assert_eq!(entry.key_id, key.key_id());
    assert!(trusted.verify(entry.statement.clone(), &entry.key_id, &entry.signature).is_ok());
    let mut moved = entry.statement.clone();
    moved.target = target("all");
    assert!(trusted.verify(moved, &entry.key_id, &entry.signature).is_err());
}
