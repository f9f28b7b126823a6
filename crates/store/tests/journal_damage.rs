//! Property: whatever bytes are appended to the journal or written over part of it,
//! the reader never panics, serves only whole records, and keeps every record that
//! lies before the damage.

mod common;

use std::fs;
use std::sync::OnceLock;

use common::*;
use fts_store::{Entry, Store, StoreReader};
use proptest::prelude::*;

/// A journal of six publishes (some to several targets), with the end offset of each
/// record and the entries it holds when read whole.
struct Fixture {
    bytes: Vec<u8>,
    /// Offset just past each record, the header first.
    record_ends: Vec<usize>,
    /// How many entries the journal holds up to each record end.
    entries_at: Vec<usize>,
    entries: Vec<Entry>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_or_create(dir.path().join("store")).unwrap();
        let key = TestKey::new(5);
        let to: [&[&str]; 6] = [
            &["all"],
            &["web-01", "all"],
            &["group:web"],
            &["all", "group:web", "db-01"],
            &["all"],
            &["web-01"],
        ];
        let mut record_ends = vec![fs::read(store.dir().join("journal")).unwrap().len()];
        let mut entries_at = vec![0];
        for (i, list) in to.iter().enumerate() {
            let file = source_file(dir.path(), "f", &[i as u8; 10]);
            let made = store
                .publish_at(&file, &name(&format!("file-{i}")), &targets(list), &key, at(i as u64))
                .unwrap();
            record_ends.push(fs::read(store.dir().join("journal")).unwrap().len());
            entries_at.push(entries_at.last().unwrap() + made.len());
        }
        let reader = StoreReader::open(store.dir()).unwrap();
        Fixture {
            bytes: fs::read(store.dir().join("journal")).unwrap(),
            record_ends,
            entries_at,
            entries: reader.entries().to_vec(),
        }
    })
}

fn read_journal(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("journal"), bytes).unwrap();
    StoreReader::open(dir.path()).map(|r| r.entries().to_vec()).map_err(|e| e.to_string())
}

/// Entries kept must be a prefix of the original ones, at least those of the records
/// that end at or before `intact_up_to`.
fn check_prefix(got: &[Entry], intact_up_to: usize) {
    let f = fixture();
    let whole_records = f.record_ends.iter().filter(|&&end| end <= intact_up_to).count();
    let at_least = if whole_records == 0 { 0 } else { f.entries_at[whole_records - 1] };
    assert!(got.len() >= at_least, "lost records before the damage: {} < {at_least}", got.len());
    assert_eq!(got, &f.entries[..got.len()], "only original entries, in order");
}

/// Publishes to `all` over a journal holding `bytes`: must never panic; returns the
/// new seq, or the error.
fn publish_over(bytes: &[u8]) -> Result<u64, String> {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    fs::create_dir(&store_dir).unwrap();
    fs::write(store_dir.join("journal"), bytes).unwrap();
    Store::open_or_create(&store_dir)
        .and_then(|s| {
            s.publish(&source_file(dir.path(), "x", b"x"), &name("x"), &targets(&["all"]), &TestKey::new(5))
        })
        .map(|entries| entries[0].statement.seq.get())
        .map_err(|e| e.to_string())
}

fn check_damaged(bytes: &[u8], intact_up_to: usize) {
    match read_journal(bytes) {
        Ok(got) => check_prefix(&got, intact_up_to),
        // Only a damaged header may make the journal unreadable as a whole.
        Err(e) => assert!(intact_up_to < fixture().record_ends[0], "{e}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn appended_bytes_never_panic_the_reader_nor_lose_a_record(tail in proptest::collection::vec(any::<u8>(), 0..600)) {
        let f = fixture();
        let mut bytes = f.bytes.clone();
        bytes.extend_from_slice(&tail);
        let got = read_journal(&bytes).unwrap();
        prop_assert_eq!(got.len(), f.entries.len());
        // A damaged tail with nothing valid after it is truncated, never kept.
        prop_assert_eq!(publish_over(&bytes), Ok(5));
    }

    #[test]
    fn bytes_written_over_the_journal_never_panic_the_reader_nor_lose_what_is_before(
        at_fraction in 0.0f64..1.0,
        junk in proptest::collection::vec(any::<u8>(), 1..300),
        truncate in any::<bool>(),
    ) {
        let f = fixture();
        let start = ((f.bytes.len() as f64) * at_fraction) as usize;
        let mut bytes = f.bytes.clone();
        let end = (start + junk.len()).min(bytes.len());
        bytes.splice(start..end, junk.iter().copied());
        if truncate {
            bytes.truncate(start + junk.len());
        }
        // The first byte that may differ from the original.
        let intact_up_to = f.bytes.iter().zip(&bytes).position(|(a, b)| a != b).unwrap_or(start);
        check_damaged(&bytes, intact_up_to);
        let _ = publish_over(&bytes);
    }

    #[test]
    fn a_journal_cut_anywhere_keeps_every_whole_record(cut in 0usize..4000) {
        let f = fixture();
        let cut = cut.min(f.bytes.len());
        check_damaged(&f.bytes[..cut], cut);
    }

    #[test]
    fn arbitrary_files_never_panic_the_reader(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = read_journal(&bytes);
        let _ = publish_over(&bytes);
    }
}

#[test]
fn the_fixture_reads_back_whole() {
    let f = fixture();
    assert_eq!(read_journal(&f.bytes).unwrap().len(), 9);
    assert_eq!(f.record_ends.len(), 7);
}
