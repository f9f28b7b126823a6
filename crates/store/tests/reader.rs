//! The serving side: refresh, the servable prefix, the merge and the budget, and that
//! the reader never writes.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use fts_proto::Target;
use fts_store::{BlobProblem, Refresh, Store, StoreReader};

fn publish(store: &Store, src: &Path, file: &str, content: &[u8], to: &[&str]) -> Vec<fts_store::Entry> {
    let path = source_file(src, file, content);
    store.publish(&path, &name(file), &targets(to), &TestKey::new(9)).unwrap()
}

fn wants(list: &[(&str, u64)]) -> Vec<(Target, u64)> {
    list.iter().map(|(t, s)| (target(t), *s)).collect()
}

#[test]
fn new_entries_appear_after_a_publish_without_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    publish(&store, dir.path(), "a", b"1", &["all"]);
    let mut reader = StoreReader::open(store.dir()).unwrap();
    assert_eq!(reader.refresh().unwrap(), Refresh::Unchanged, "nothing changed, nothing read");
    publish(&store, dir.path(), "b", b"2", &["all", "web-01"]);
    assert_eq!(reader.refresh().unwrap(), Refresh::Appended { new_entries: 2 });
    assert_eq!(reader.newest_seq(&target("all")), 2);
    assert_eq!(reader.newest_seq(&target("web-01")), 1);
    assert_eq!(reader.refresh().unwrap(), Refresh::Unchanged);
    let fresh = StoreReader::open(store.dir()).unwrap();
    assert_eq!(reader.entries(), fresh.entries(), "an incremental read equals a full one");
}

#[test]
fn a_record_being_appended_is_picked_up_once_complete() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    publish(&store, dir.path(), "a", b"1", &["all"]);
    let journal = store.dir().join("journal");
    let one = fs::read(&journal).unwrap();
    publish(&store, dir.path(), "b", b"2", &["all"]);
    let two = fs::read(&journal).unwrap();
    fs::write(&journal, &one).unwrap();
    let mut reader = StoreReader::open(store.dir()).unwrap();
    // The second record arrives in two writes, as a reader may see an append.
    let half = one.len() + (two.len() - one.len()) / 2;
    std::io::Write::write_all(
        &mut fs::OpenOptions::new().append(true).open(&journal).unwrap(),
        &two[one.len()..half],
    )
    .unwrap();
    assert_eq!(reader.refresh().unwrap(), Refresh::Appended { new_entries: 0 });
    assert!(reader.damage().is_some());
    std::io::Write::write_all(&mut fs::OpenOptions::new().append(true).open(&journal).unwrap(), &two[half..])
        .unwrap();
    assert_eq!(reader.refresh().unwrap(), Refresh::Appended { new_entries: 1 });
    assert_eq!(reader.damage(), None);
}

#[test]
fn a_replaced_journal_is_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    publish(&store, dir.path(), "a", b"1", &["all"]);
    let mut reader = StoreReader::open(store.dir()).unwrap();
    publish(&store, dir.path(), "b", b"2", &["web-01"]);
    // What rsync does: write a copy beside it, rename it over the journal.
    let journal = store.dir().join("journal");
    let copy = store.dir().join(".journal.sync");
    fs::copy(&journal, &copy).unwrap();
    fs::rename(&copy, &journal).unwrap();
    assert_eq!(reader.refresh().unwrap(), Refresh::Reloaded { entries: 2 });
    assert_eq!(reader.newest_seq(&target("web-01")), 1);
}

#[test]
fn a_journal_rewritten_in_place_is_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    publish(&store, dir.path(), "a", b"1", &["all"]);
    let mut reader = StoreReader::open(store.dir()).unwrap();
    // Another store's journal, longer, written into the same inode.
    let other = Store::open_or_create(dir.path().join("other")).unwrap();
    publish(&other, dir.path(), "x", b"1", &["web-02"]);
    publish(&other, dir.path(), "y", b"2", &["web-02"]);
    let bytes = fs::read(other.dir().join("journal")).unwrap();
    std::io::Write::write_all(
        &mut fs::OpenOptions::new().write(true).open(store.dir().join("journal")).unwrap(),
        &bytes,
    )
    .unwrap();
    assert_eq!(reader.refresh().unwrap(), Refresh::Reloaded { entries: 2 });
    assert_eq!(reader.newest_seq(&target("all")), 0);
    assert_eq!(reader.newest_seq(&target("web-02")), 2);
}

#[test]
fn a_journal_that_appears_later_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let replica = dir.path().join("replica");
    fs::create_dir(&replica).unwrap();
    let mut reader = StoreReader::open(&replica).unwrap();
    assert!(reader.entries().is_empty());
    assert_eq!(reader.refresh().unwrap(), Refresh::Unchanged);
    let store = Store::open_or_create(&replica).unwrap();
    publish(&store, dir.path(), "a", b"1", &["all"]);
    assert_eq!(reader.refresh().unwrap(), Refresh::Reloaded { entries: 1 });
}

#[test]
fn a_missing_store_folder_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = StoreReader::open(dir.path().join("nowhere")).unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
}

#[test]
fn entries_are_contiguous_from_since_and_merged_in_publish_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    publish(&store, dir.path(), "p1", b"1", &["all"]); // all 1
    publish(&store, dir.path(), "p2", b"2", &["web-01"]); // web-01 1
    publish(&store, dir.path(), "p3", b"3", &["group:web", "all"]); // group:web 1, all 2
    publish(&store, dir.path(), "p4", b"4", &["web-01"]); // web-01 2
    publish(&store, dir.path(), "p5", b"5", &["all"]); // all 3
    let reader = StoreReader::open(store.dir()).unwrap();

    let answer = reader.entries_for(
        &wants(&[("web-01", 0), ("all", 1), ("group:web", 0), ("group:db", 0)]),
        100,
        u64::MAX,
    );
    assert_eq!(
        seqs(&answer.entries()),
        [
            ("web-01".into(), 1),
            ("group:web".into(), 1),
            ("all".into(), 2),
            ("web-01".into(), 2),
            ("all".into(), 3)
        ]
    );
    let positions: Vec<u64> = answer.entries().iter().map(|e| e.position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "publish order: {positions:?}");
    assert!(!answer.more);
    assert_eq!(answer.blocked, []);

    let beyond =
        reader.entries_for(&wants(&[("all", 3), ("web-01", 99), ("group:web", u64::MAX)]), 100, u64::MAX);
    assert!(
        beyond.entries().is_empty() && !beyond.more,
        "a since at or beyond the newest seq yields nothing"
    );
    let twice = reader.entries_for(&wants(&[("all", 2), ("all", 0)]), 100, u64::MAX);
    assert_eq!(seqs(&twice.entries()), [("all".into(), 3)], "a target given twice counts once");
}

#[test]
fn the_budget_lets_one_entry_through_even_when_it_is_too_large_and_says_more() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    publish(&store, dir.path(), "big", &[1u8; 1000], &["all"]);
    publish(&store, dir.path(), "small", b"s", &["web-01"]);
    publish(&store, dir.path(), "tiny", b"t", &["all"]);
    let reader = StoreReader::open(store.dir()).unwrap();
    let all = wants(&[("all", 0), ("web-01", 0)]);

    let answer = reader.entries_for(&all, 100, 10);
    assert_eq!(seqs(&answer.entries()), [("all".into(), 1)], "one entry larger than max_bytes still goes");
    assert!(answer.more);

    let answer = reader.entries_for(&all, 0, u64::MAX);
    assert_eq!(answer.entries().len(), 1, "even with a budget of zero files");
    assert!(answer.more);

    let answer = reader.entries_for(&all, 2, u64::MAX);
    assert_eq!(seqs(&answer.entries()), [("all".into(), 1), ("web-01".into(), 1)]);
    assert!(answer.more);

    let answer = reader.entries_for(&all, 3, 1002);
    assert_eq!(answer.entries().len(), 3, "a budget met exactly lets everything through");
    assert!(!answer.more);
}

#[test]
fn a_missing_or_short_blob_stops_only_its_own_target_which_resumes_when_it_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    publish(&store, dir.path(), "one", b"first", &["all"]);
    let second = publish(&store, dir.path(), "two", b"second", &["all"]);
    publish(&store, dir.path(), "three", b"third", &["web-01"]);
    publish(&store, dir.path(), "four", b"fourth", &["all"]);
    let reader = StoreReader::open(store.dir()).unwrap();
    let all = wants(&[("all", 0), ("web-01", 0)]);
    let blob = reader.blob_path(&second[0].statement.file_hash);
    let saved = dir.path().join("saved");
    fs::rename(&blob, &saved).unwrap();

    let answer = reader.entries_for(&all, 100, u64::MAX);
    assert_eq!(
        seqs(&answer.entries()),
        [("all".into(), 1), ("web-01".into(), 1)],
        "the other target goes on; its own later entry waits"
    );
    let [blocked] = &answer.blocked[..] else { panic!("one target waits: {:?}", answer.blocked) };
    assert_eq!((blocked.entry.statement.seq.get(), &blocked.problem), (2, &BlobProblem::Missing));
    assert!(!answer.more);

    fs::write(&blob, b"sec").unwrap(); // a replica still copying it
    let answer = reader.entries_for(&all, 100, u64::MAX);
    assert_eq!(answer.entries().len(), 2);
    assert_eq!(answer.blocked[0].problem, BlobProblem::WrongSize { found: 3 });
    assert!(reader.open_blob(&second[0]).is_err());

    fs::rename(&saved, &blob).unwrap();
    let answer = reader.entries_for(&all, 100, u64::MAX);
    assert_eq!(answer.entries().len(), 4);
    assert_eq!(answer.blocked, []);
    let mut content = Vec::new();
    std::io::Read::read_to_end(&mut reader.open_blob(&second[0]).unwrap(), &mut content).unwrap();
    assert_eq!(content, b"second");
}

#[test]
fn the_reader_never_writes_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    publish(&store, dir.path(), "a", b"1", &["all"]);
    publish(&store, dir.path(), "b", b"2", &["web-01"]);
    // Damage the tail too: a reader must not repair it.
    std::io::Write::write_all(
        &mut fs::OpenOptions::new().append(true).open(store.dir().join("journal")).unwrap(),
        b"\0\0\0",
    )
    .unwrap();
    let before = snapshot(store.dir());

    let mut reader = StoreReader::open(store.dir()).unwrap();
    reader.refresh().unwrap();
    let answer = reader.entries_for(&wants(&[("all", 0), ("web-01", 0)]), 100, u64::MAX);
    assert_eq!(answer.entries().len(), 2);
    for entry in &answer.entries() {
        reader.open_blob(entry).unwrap();
    }
    reader.targets().count();
    drop(reader);

    assert_eq!(snapshot(store.dir()), before, "no file changed or appeared");
}

/// Replaces the blob of `entry` by a symbolic link to `target`.
fn link_blob(reader: &StoreReader, entry: &fts_store::Entry, target: &Path) {
    let blob = reader.blob_path(&entry.statement.file_hash);
    fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink(target, &blob).unwrap();
}

#[test]
fn a_blob_that_is_a_link_is_never_opened_and_its_target_waits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let first = publish(&store, dir.path(), "one", b"innocent", &["all"]);
    publish(&store, dir.path(), "two", b"later", &["all"]);
    // A file the server can read, of exactly the signed size: the link's target.
    let secret = dir.path().join("server.key");
    fs::write(&secret, b"PRIVATE!").unwrap();
    let reader = StoreReader::open(store.dir()).unwrap();
    link_blob(&reader, &first[0], &secret);

    let answer = reader.entries_for(&wants(&[("all", 0)]), 100, u64::MAX);
    assert!(answer.entries().is_empty(), "nothing is served past the link: {answer:?}");
    let blocked = answer.blocked.first().expect("the entry is blocked");
    let blob = reader.blob_path(&first[0].statement.file_hash);
    assert_eq!(blocked.problem, BlobProblem::Link { path: blob.clone() });
    assert!(blocked.problem.to_string().contains("symbolic link"), "{}", blocked.problem);
    let err = fts_proto::ErrorChain(&reader.open_blob(&first[0]).unwrap_err()).to_string();
    assert!(err.contains("symbolic link") && err.contains(&blob.display().to_string()), "{err}");
}

#[test]
fn a_shard_folder_or_blob_folder_that_is_a_link_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let entry = publish(&store, dir.path(), "one", b"content", &["all"]).remove(0);
    let mut reader = StoreReader::open(store.dir()).unwrap();
    let blob = reader.blob_path(&entry.statement.file_hash);
    let shard = blob.parent().unwrap().to_path_buf();

    // The shard moved elsewhere (a folder of the attacker's) and a link left in its place.
    let elsewhere = dir.path().join("elsewhere");
    fs::rename(&shard, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &shard).unwrap();
    let answer = reader.entries_for(&wants(&[("all", 0)]), 100, u64::MAX);
    assert_eq!(answer.blocked[0].problem, BlobProblem::Link { path: shard.clone() });
    assert!(reader.open_blob(&entry).is_err());
    fs::remove_file(&shard).unwrap();
    fs::rename(&elsewhere, &shard).unwrap();

    // The same for `blobs/` itself, once a refresh has seen it (a poll refreshes first).
    let blobs = store.dir().join("blobs");
    fs::rename(&blobs, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &blobs).unwrap();
    reader.refresh().unwrap();
    let answer = reader.entries_for(&wants(&[("all", 0)]), 100, u64::MAX);
    assert_eq!(answer.blocked[0].problem, BlobProblem::Link { path: blobs.clone() });
    assert!(reader.open_blob(&entry).is_err());
    fs::remove_file(&blobs).unwrap();
    fs::rename(&elsewhere, &blobs).unwrap();
    reader.refresh().unwrap();
    assert_eq!(reader.entries_for(&wants(&[("all", 0)]), 100, u64::MAX).entries().len(), 1);
}

#[test]
fn a_blob_that_is_a_fifo_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    let entry = publish(&store, dir.path(), "one", b"content", &["all"]).remove(0);
    let reader = StoreReader::open(store.dir()).unwrap();
    let blob = reader.blob_path(&entry.statement.file_hash);
    fs::remove_file(&blob).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&blob).status().unwrap().success());
    let answer = reader.entries_for(&wants(&[("all", 0)]), 100, u64::MAX);
    assert_eq!(answer.blocked[0].problem, BlobProblem::NotAFile);
    // Without O_NONBLOCK this open would wait for a writer forever.
    assert!(reader.open_blob(&entry).is_err());
}

#[test]
fn a_journal_that_is_a_link_is_refused_and_the_index_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    publish(&store, dir.path(), "one", b"content", &["all"]);
    let journal = store.dir().join("journal");
    let mut reader = StoreReader::open(store.dir()).unwrap();

    // A journal moved away and linked back: the reader refuses it and serves what it has.
    let moved = dir.path().join("journal-elsewhere");
    fs::rename(&journal, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &journal).unwrap();
    let err = reader.refresh().unwrap_err().to_string();
    assert!(err.contains("symbolic link") && err.contains("journal"), "{err}");
    assert_eq!(reader.entries().len(), 1, "the index is kept");
    let err = StoreReader::open(store.dir()).unwrap_err().to_string();
    assert!(err.contains("symbolic link"), "{err}");
}

/// How each item of an answer travels, as (seq, "whole" | "superseded by M" | ...).
fn shape(answer: &fts_store::Answer) -> Vec<(u64, String)> {
    answer
        .items
        .iter()
        .map(|item| {
            let how = match &item.how {
                fts_store::Sending::Whole => "whole".to_owned(),
                fts_store::Sending::Superseded(by) => format!("superseded by {}", by.statement.seq),
                fts_store::Sending::Withdrawn(_) => "withdrawn".to_owned(),
            };
            (item.entry.statement.seq.get(), how)
        })
        .collect()
}

fn superseding_rules(reader: &StoreReader) -> fts_store::ServeRules {
    fts_store::ServeRules {
        log_size: Some(reader.current().leaf_count()),
        withdrawn: true,
        superseded: true,
        max_file_size: u64::MAX,
        keys: vec![fts_proto::Signer::key_id(&TestKey::new(9))],
    }
}

#[test]
fn a_superseded_entry_is_always_followed_by_its_successor_in_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    // a(1) b(2) b(3) c(4) a(5): 1 is superseded by 5, then 2 by 3, a smaller
    // successor named later; with a budget of one file, 5 must still come.
    for (file, content) in [("a", "a1"), ("b", "b2"), ("b", "b3"), ("c", "c4"), ("a", "a5")] {
        publish(&store, dir.path(), file, content.as_bytes(), &["web-01"]);
    }
    let reader = StoreReader::open(store.dir()).unwrap();
    let rules = superseding_rules(&reader);
    let answer = reader.answer_for(&wants(&[("web-01", 0)]), 1, u64::MAX, &rules);
    assert_eq!(
        shape(&answer),
        [
            (1, "superseded by 5".to_owned()),
            (2, "superseded by 3".to_owned()),
            (3, "whole".to_owned()),
            (4, "whole".to_owned()),
            (5, "whole".to_owned())
        ]
    );

    // The successor's blob is gone: nothing is superseded by it, and the whole entry
    // is sent instead (an old version rather than a window that cannot close).
    let a5 = reader.entry(&target("web-01"), fts_proto::Seq::new(5).unwrap()).unwrap().clone();
    fs::remove_file(reader.blob_path(&a5.statement.file_hash)).unwrap();
    let answer = reader.answer_for(&wants(&[("web-01", 0)]), 100, u64::MAX, &rules);
    assert_eq!(shape(&answer)[0], (1, "whole".to_owned()), "{:?}", shape(&answer));
    assert_eq!(answer.blocked.len(), 1, "and the target stops at 5, its blob missing");
}

#[test]
fn a_target_cut_inside_a_window_is_rolled_back_to_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    // web-01: a(1) b(2) a(3); the blob of b(2) goes missing: the window of 1 (until 3)
    // cannot close, so nothing of it is sent.
    for (file, content) in [("a", "a1"), ("b", "b2"), ("a", "a3")] {
        publish(&store, dir.path(), file, content.as_bytes(), &["web-01"]);
    }
    let reader = StoreReader::open(store.dir()).unwrap();
    let b2 = reader.entry(&target("web-01"), fts_proto::Seq::new(2).unwrap()).unwrap().clone();
    fs::remove_file(reader.blob_path(&b2.statement.file_hash)).unwrap();
    let answer = reader.answer_for(&wants(&[("web-01", 0)]), 100, u64::MAX, &superseding_rules(&reader));
    assert_eq!(shape(&answer), [], "the superseded frame of 1 is taken back");
    assert_eq!(answer.blocked.len(), 1);
}
