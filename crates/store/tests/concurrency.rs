//! Concurrent publishers, as threads with their own handles and as separate processes.

mod common;

use std::process::Command;
use std::sync::{Arc, Barrier};

use common::*;
use fts_store::{Store, StoreReader};

const CHILD_STORE_ENV: &str = "FTS_STORE_TEST_CHILD_STORE";

fn assert_consecutive_on_all(store_dir: &std::path::Path, count: u64) {
    let reader = StoreReader::open(store_dir).unwrap();
    assert_eq!(reader.damage(), None, "the journal stays valid to its end");
    let mut seqs: Vec<u64> = reader.entries().iter().map(|e| e.statement.seq.get()).collect();
    assert_eq!(seqs, (1..=count).collect::<Vec<_>>(), "publish order is seq order");
    seqs.dedup();
    assert_eq!(seqs.len() as u64, count);
    assert_eq!(reader.newest_seq(&target("all")), count);
}

#[test]
fn twenty_concurrent_publishers_get_distinct_consecutive_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    Store::open_or_create(&store_dir).unwrap();
    let barrier = Arc::new(Barrier::new(20));
    let handles: Vec<_> = (0..20u8)
        .map(|i| {
            let (store_dir, barrier, src) = (store_dir.clone(), barrier.clone(), dir.path().to_path_buf());
            std::thread::spawn(move || {
                let store = Store::open_or_create(&store_dir).unwrap();
                let file = source_file(&src, &format!("file-{i}"), &[i; 1000]);
                barrier.wait();
                let entries = store
                    .publish(&file, &name(&format!("file-{i}")), &targets(&["all"]), &TestKey::new(1))
                    .unwrap();
                entries[0].statement.seq.get()
            })
        })
        .collect();
    let mut got: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    got.sort();
    assert_eq!(got, (1..=20).collect::<Vec<_>>());
    assert_consecutive_on_all(&store_dir, 20);
}

#[test]
fn concurrent_publisher_processes_never_share_a_seq() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let exe = std::env::current_exe().unwrap();
    // Each child creates the store too, racing on the creation as well.
    let children: Vec<_> = (0..8)
        .map(|_| {
            Command::new(&exe)
                .args(["--exact", "publisher_child_process", "--ignored", "--nocapture", "--test-threads=1"])
                .env(CHILD_STORE_ENV, &store_dir)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    assert_consecutive_on_all(&store_dir, 8 * 3);
}

/// Not a test on its own: the body of each child process of the test above.
#[test]
#[ignore = "run as a child process by concurrent_publisher_processes_never_share_a_seq"]
fn publisher_child_process() {
    let Some(store_dir) = std::env::var_os(CHILD_STORE_ENV) else { return };
    let store = Store::open_or_create(&store_dir).unwrap();
    let src = tempfile::tempdir().unwrap();
    for i in 0..3u8 {
        let file = source_file(src.path(), "f", &[i, std::process::id() as u8]);
        store.publish(&file, &name("f"), &targets(&["all"]), &TestKey::new(1)).unwrap();
    }
}
