//! Replays every file of the fuzz corpus (`fuzz/corpus/decode/`) through the same
//! calls as the fuzz target, on the stable toolchain, so CI catches a regression
//! without nightly or cargo-fuzz.

include!("../fuzz/decode_all.rs");

#[test]
fn every_fuzz_corpus_input_decodes_without_panicking() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| decode_all(&data));
        assert!(outcome.is_ok(), "{} panicked", path.display());
        count += 1;
    }
    assert!(count >= 10, "the seed corpus is in {}", dir.display());
}
