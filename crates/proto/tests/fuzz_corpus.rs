//! Replays every file of the fuzz corpora (`fuzz/corpus/decode/`, `fuzz/corpus/notes/`)
//! through the same calls as the fuzz targets, on the stable toolchain, so CI catches
//! a regression without nightly or cargo-fuzz.

include!("../fuzz/decode_all.rs");
include!("../fuzz/notes_all.rs");

fn replay(corpus: &str, run: fn(&[u8]), at_least: usize) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(corpus);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{} panicked", path.display());
        count += 1;
    }
    assert!(count >= at_least, "the seed corpus is in {}", dir.display());
}

#[test]
fn every_fuzz_corpus_input_decodes_without_panicking() {
    replay("decode", decode_all, 10);
}

#[test]
fn every_notes_corpus_input_parses_without_panicking() {
    replay("notes", notes_all, 10);
}
