//! Replays every file of the fuzz corpus (`fuzz/corpus/proofs/`) through the same
//! calls as the fuzz target, on the stable toolchain, so CI catches a regression
//! without nightly or cargo-fuzz.

include!("../fuzz/proofs_all.rs");

#[test]
fn every_fuzz_corpus_input_runs_without_panicking() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/proofs");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| proofs_all(&data));
        assert!(outcome.is_ok(), "{} panicked", path.display());
        count += 1;
    }
    assert!(count >= 5, "the seed corpus is in {}", dir.display());
}

#[test]
fn generated_inputs_run_without_panicking() {
    // A cheap stand-in for the fuzzer: pseudo-random inputs of many lengths.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for len in 0..600usize {
        let data: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        proofs_all(&data);
    }
}
