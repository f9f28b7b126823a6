//! The store's log: what a publish writes to `log/`, and the publishes it refuses
//! before it writes anything.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use fts_log::merkle::{Tree, leaf_hash};
use fts_proto::checkpoint::{Checkpoint, Note};
use fts_store::log::{entry_leaf, read_checkpoint, read_leaves};
use fts_store::{Store, StoreError, StoreReader};

fn publish(store: &Store, dir: &Path, file: &str, secs: u64) {
    let source = source_file(dir, file, file.as_bytes());
    store.publish_at(&source, &name(file), &targets(&["all", "web-01"]), &TestKey::new(7), at(secs)).unwrap();
}

fn checkpoint(store: &Store) -> Checkpoint {
    read_checkpoint(store.dir()).unwrap().unwrap().checkpoint
}

/// Copies every file of a store folder (a backup, or a replica).
fn copy_store(from: &Path, to: &Path) {
    for entry in walk(from) {
        let rel = entry.strip_prefix(from).unwrap();
        let dest = to.join(rel);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(&entry, &dest).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

#[test]
fn each_publish_appends_its_leaves_and_signs_a_checkpoint_of_the_whole_journal() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    publish(&store, dir.path(), "one", 0);
    publish(&store, dir.path(), "two", 1);

    let entries = StoreReader::open(store.dir()).unwrap().entries().to_vec();
    let leaves = read_leaves(&mut fs::File::open(store.dir().join("log/leaves")).unwrap(), 0).unwrap();
    assert_eq!(leaves.leaves, entries.iter().map(entry_leaf).collect::<Vec<_>>(), "leaf i is entry i");
    let mut tree = Tree::new();
    for leaf in &leaves.leaves {
        tree.push(leaf_hash(leaf));
    }
    let cp = checkpoint(&store);
    assert_eq!((cp.size, cp.root), (4, tree.root(4).unwrap()));
    assert_eq!(cp.heads_count, 2, "two targets, each with a head");
    let note = Note::parse(&read_checkpoint(store.dir()).unwrap().unwrap().note).unwrap();
    assert_eq!(note.signatures.len(), 1, "signed by the release key alone");
    assert_eq!(note.signatures[0].name, cp.origin.as_str());
}

#[test]
fn a_store_whose_log_does_not_extend_a_cosigned_checkpoint_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let master = Store::open_or_create(dir.path().join("master")).unwrap();
    publish(&master, dir.path(), "one", 0);
    copy_store(master.dir(), &dir.path().join("backup"));
    publish(&master, dir.path(), "two", 1);
    // The timestamp signer cosigned the master's newest checkpoint; its folder is
    // copied back to the signing host (docs/OPERATIONS.md section 16).
    let cosigned = fs::read(master.dir().join("log/checkpoint")).unwrap();

    // A backup restored over a lost master, with the cosignature folder that came back:
    // older than what was cosigned. And one that forked: another publish in its place.
    let backup = Store::open_or_create(dir.path().join("backup")).unwrap();
    let forked = dir.path().join("forked");
    copy_store(backup.dir(), &forked);
    let forked = Store::open_or_create(&forked).unwrap();
    publish(&forked, dir.path(), "other", 1);
    publish(&forked, dir.path(), "more", 2);
    for store in [&backup, &forked] {
        fs::create_dir_all(store.dir().join("cosignatures")).unwrap();
        fs::write(store.dir().join("cosignatures/0123456789abcdef"), &cosigned).unwrap();
        let before: Vec<_> = ["journal", "log/leaves", "log/checkpoint"]
            .map(|f| fs::read(store.dir().join(f)).unwrap())
            .into();
        let source = source_file(dir.path(), "three", b"three");
        let err = store.publish(&source, &name("three"), &targets(&["all"]), &TestKey::new(7)).unwrap_err();
        assert!(matches!(err, StoreError::Log { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("cosigned") && text.contains("freshest replica"), "{text}");
        let after: Vec<_> = ["journal", "log/leaves", "log/checkpoint"]
            .map(|f| fs::read(store.dir().join(f)).unwrap())
            .into();
        assert_eq!(before, after, "nothing was written to {}", store.dir().display());
    }
}

#[test]
fn a_publish_killed_before_its_leaves_is_covered_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    publish(&store, dir.path(), "one", 0);
    let log_before = ["leaves", "checkpoint"].map(|f| fs::read(store.dir().join("log").join(f)).unwrap());
    publish(&store, dir.path(), "two", 1);
    // As if killed after the journal record, before the log: put the old log back,
    // with a torn leaf appended.
    for (f, bytes) in ["leaves", "checkpoint"].iter().zip(&log_before) {
        fs::write(store.dir().join("log").join(f), bytes).unwrap();
    }
    let mut torn = log_before[0].clone();
    torn.extend_from_slice(&[0, 200, b'f']);
    fs::write(store.dir().join("log/leaves"), &torn).unwrap();
    assert_eq!(checkpoint(&store).size, 2, "the checkpoint covers only the first publish");
    let reader = StoreReader::open(store.dir()).unwrap();
    assert_eq!(reader.snapshot().log().unwrap().size(), 2, "the server serves what the checkpoint covers");

    publish(&store, dir.path(), "three", 2);
    assert_eq!(checkpoint(&store).size, 6, "the next publish covers the rest");
    let entries = StoreReader::open(store.dir()).unwrap().entries().to_vec();
    let leaves = read_leaves(&mut fs::File::open(store.dir().join("log/leaves")).unwrap(), 0).unwrap();
    assert_eq!(leaves.leaves, entries.iter().map(entry_leaf).collect::<Vec<_>>());
}

#[test]
fn each_hosts_log_frame_carries_its_own_head_proof_beside_the_shared_ones() {
    use fts_proto::{HeadProof, ServerFrame, Target};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    publish(&store, dir.path(), "one", 0); // to all and web-01
    let reader = StoreReader::open(store.dir()).unwrap();
    let snapshot = reader.snapshot();
    let log = snapshot.log().unwrap();
    let frame_of = |targets: &[Target]| {
        let bytes = log.frame(targets, 0, None).unwrap();
        match ServerFrame::decode(&bytes[fts_proto::frame::LENGTH_PREFIX_LEN..]).unwrap() {
            ServerFrame::Log(frame) => frame,
            other => panic!("not a log frame: {other:?}"),
        }
    };
    let (all, web01, web02) =
        (Target::All, Target::parse("web-01").unwrap(), Target::parse("web-02").unwrap());
    let one = frame_of(&[all.clone(), web01.clone()]);
    let two = frame_of(&[all.clone(), web02.clone()]);
    let keys =
        |frame: &fts_proto::LogFrame| frame.heads.keys().cloned().collect::<std::collections::BTreeSet<_>>();
    assert_eq!(keys(&one), [all.clone(), web01.clone()].into());
    assert_eq!(keys(&two), [all.clone(), web02.clone()].into());
    assert!(matches!(one.heads[&web01], HeadProof::Present(_)), "web-01 has an entry");
    assert!(matches!(two.heads[&web02], HeadProof::Absent { .. }), "web-02 has none");
    assert_eq!(one.heads[&all], two.heads[&all], "the shared part is the same");
    for (frame, target) in [(&one, &web01), (&two, &web02), (&one, &all)] {
        assert_eq!(frame.heads[target], log.head_proof(target), "{target}");
    }
    assert_eq!(one.checkpoint, log.note);
    // Asked again: the same bytes.
    assert_eq!(
        log.frame(&[all.clone(), web01.clone()], 0, None).unwrap(),
        log.frame(&[all, web01], 0, None).unwrap()
    );
}
