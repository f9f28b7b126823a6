//! Arbitrary bytes as sizes and indexes (up to 2^64 - 1, with 2^63 and its
//! neighbours likely) and hash lists through `verify_inclusion`,
//! `verify_consistency` and `verify_head`, none of which may panic; and proofs of
//! small trees built from the bytes, which must verify (and fail once changed). The
//! stable test `crates/log/tests/fuzz_corpus.rs` replays the corpus through the same
//! function.
#![no_main]

include!("../proofs_all.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| proofs_all(data));
